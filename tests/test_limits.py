"""Resource limits and hostile modules: each ends in a clear error or stays bounded
(issue: spec-suite harness, fuzzing and resource limits)."""
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

import runtime
import wasmenv
from tests.helpers import wat
from wasmenv.encode import module, section, sleb, uleb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(code: str, timeout=240):
    """Run ``code`` in a fresh interpreter (exhausting limits must not hurt this process)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


EXHAUST = """
    import os, runtime, wasmenv
    def counts():
        # Reservations show up as PROT_NONE ("---p") mappings and memfd images; Python's
        # own heap arenas (rw-p) may legitimately stay mapped after 16k objects are freed.
        none_maps = none_bytes = memfd = 0
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if fields[1] == "---p":
                    none_maps += 1
                    none_bytes += hi - lo
                memfd += "memfd:" in line
        return none_maps, none_bytes, memfd, len(os.listdir("/proc/self/fd"))
    engine = runtime.Engine({tunables})
    module = runtime.Module(engine, bytes.fromhex("{wasm_hex}"))
    runtime.Instance(module).close()          # warm up lazily created state
    baseline = counts()
    live = []
    try:
        while True:
            live.append(runtime.Instance(module))
    except runtime.AllocationError as exc:
        print("LIMIT", exc.limit, len(live))
        print("MESSAGE", exc)
    for inst in live:
        inst.close()
    del live
    assert counts() == baseline, (counts(), baseline)
    again = runtime.Instance(module)          # resources are back: instantiation works
    assert again.memory(0).read(0, 2) == b"hi"
    again.close()
    print("OK")
"""


def test_address_space_exhaustion_is_a_clear_allocation_error():
    wasm = wat('(module (memory 1) (data (i32.const 0) "hi"))')
    out = run_child(EXHAUST.format(tunables="", wasm_hex=wasm.hex()))
    limit_line = next(line for line in out.splitlines() if line.startswith("LIMIT"))
    _, limit, count = limit_line.split(maxsplit=2)[0], limit_line.split()[1:-1], int(limit_line.split()[-1])
    assert " ".join(limit) == "address space"
    # 8 GiB per default reservation in a 128 TiB user address space: about 16k memories.
    assert 10_000 < count < 17_000
    assert "OK" in out


def test_max_map_count_exhaustion_is_a_clear_allocation_error():
    # Tiny reservations (1-page bound, 64 KiB guards): the mapping count is the wall.
    tunables = ("wasmenv.Tunables(static_memory_bound=1, static_memory_offset_guard_size=65536, "
                "dynamic_memory_offset_guard_size=65536, dynamic_memory_growth_reserve=65536)")
    wasm = wat('(module (memory 1 1) (data (i32.const 0) "hi"))')
    out = run_child(EXHAUST.format(tunables=tunables, wasm_hex=wasm.hex()))
    limit_line = next(line for line in out.splitlines() if line.startswith("LIMIT"))
    assert "vm.max_map_count" in limit_line
    assert int(limit_line.split()[-1]) > 10_000
    assert "OK" in out


def test_rlimit_as_in_a_child():
    out = run_child("""
        import resource, runtime, wasmenv
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        wasm = bytes.fromhex("%s")
        try:
            runtime.Instance(runtime.Module(runtime.Engine(), wasm))
            print("NO ERROR")
        except runtime.AllocationError as exc:
            print("LIMIT", exc.limit)
        small = runtime.Engine(wasmenv.Tunables(static_memory_bound=16,
                                                static_memory_offset_guard_size=1 << 20))
        inst = runtime.Instance(runtime.Module(small, wasm))
        print("SMALL OK", inst.memory(0).size_pages)
    """ % wat("(module (memory 1))").hex())
    assert "LIMIT address space" in out and "SMALL OK 1" in out


# -- hostile modules -----------------------------------------------------------------------
def bounded(fn, seconds=60.0, peak_bytes=64 << 20):
    """Run fn; assert it finished (a hang guard, not a benchmark) and that Python
    allocations peaked under ``peak_bytes`` (tracemalloc; it slows the run down)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        took = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert took < seconds, took
    assert peak < peak_bytes, peak
    return result


def test_65536_page_minimum_instantiates_lazily():
    engine = runtime.Engine()
    m = runtime.Module(engine, wat("(module (memory (export \"m\") 65536) (data (i32.const 0xFFFFFFF0) \"end\"))"))
    inst = bounded(lambda: runtime.Instance(m))
    mem = inst.exports["m"]
    assert mem.byte_len == 1 << 32 and mem.read(0xFFFFFFF0, 3) == b"end"
    from runtime import usage
    assert usage.instance_usage(inst).rss <= 64 << 10  # 4 GiB accessible, pages untouched
    inst.close()


def test_ten_million_element_table_is_lazy():
    engine = runtime.Engine()
    m = runtime.Module(engine, wat("""(module (table (export "t") 10000000 funcref)
        (func $f) (elem (i32.const 9999999) $f))"""))
    inst = bounded(lambda: runtime.Instance(m), peak_bytes=8 << 20)
    t = inst.exports["t"]
    assert t.size == 10_000_000 and t.get(9_999_999) is not None and t.get(5) is None
    inst.close()


def test_data_segment_at_1_gib():
    engine = runtime.Engine()
    m = runtime.Module(engine, wat("(module (memory (export \"m\") 16385) (data (i32.const 0x40000000) \"far\"))"))
    init = m.env.memory_initialization
    assert not init.is_segmented() and init.map[0].offset == 0x40000000  # image at 1 GiB, one page
    inst = bounded(lambda: runtime.Instance(m))
    assert inst.exports["m"].read(0x40000000, 3) == b"far"
    inst.close()


def test_100000_tiny_segments():
    segs = b"".join(b"\x00\x41" + sleb(i * 2) + b"\x0b" + b"\x01" + bytes([i % 255 + 1])
                    for i in range(100_000))
    wasm = module(section(5, b"\x01\x00\x04"), section(11, uleb(100_000) + segs))
    engine = runtime.Engine()
    m = bounded(lambda: runtime.Module(engine, wasm), peak_bytes=200 << 20)
    inst = bounded(lambda: runtime.Instance(m))
    assert inst.memory(0).read(0, 4) == bytes([1, 0, 2, 0])
    inst.close()


def test_memory64_minimum_near_2_48_fails_cleanly():
    wasm = module(section(5, b"\x01\x04" + uleb((1 << 48) - 1)))
    engine = runtime.Engine()
    m = runtime.Module(engine, wasm)
    assert m.env.memory_plans[0].memory.minimum == (1 << 48) - 1
    with open("/proc/self/maps") as f:
        before = sum(1 for _ in f)
    with pytest.raises(runtime.AllocationError) as info:
        runtime.Instance(m)
    assert info.value.limit == "address space"
    with open("/proc/self/maps") as f:
        assert sum(1 for _ in f) == before


def test_huge_declared_counts_fail_fast():
    for sid in (1, 2, 3, 5, 6, 7, 9, 11):
        wasm = module(section(sid, uleb(0xFFFF_FFFF)))
        with pytest.raises(wasmenv.DecodeError):
            bounded(lambda wasm=wasm: wasmenv.translate(wasm), peak_bytes=1 << 20)
