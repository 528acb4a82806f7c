"""Helpers shared by the tests (plain functions and constants; fixtures are in conftest.py)."""
import gc
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import wasmtime

import wasmenv
from runtime import Func, Instance, Module, PoolingAllocator, Trap, TrapCode, _ffi
from runtime.allocator import OnDemandAllocator
from wasmenv import DecodeError, FuncType, RefType, Tunables, ValType
from wasmenv.encode import section, sleb, uleb, vec

WASM_PAGE = 65536
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


# -- modules ------------------------------------------------------------------------------
def mapped_bytes() -> int:
    """Bytes of address space this process maps (every mapping, reservations included)."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = line.split()[0].split("-")
            total += int(hi, 16) - int(lo, 16)
    return total


def wat(text: str) -> bytes:
    """Assemble WAT text to a binary module (wasmtime.wat2wasm)."""
    return bytes(wasmtime.wat2wasm(text))


def decode(data, tunables=None):
    """The decoded module (``wasmenv.translate(...).module``)."""
    return wasmenv.translate(data, tunables).module


def rejects(data, match=None, cls=DecodeError):
    """Assert that decoding ``data`` raises ``cls`` matching ``match``; return the error."""
    with pytest.raises(cls, match=match) as info:
        wasmenv.translate(data)
    return info.value


def engine(**tunables):
    """What ``Memory.new`` needs of an Engine: ``Tunables(**tunables)`` and an on-demand
    allocator (not the ``engine`` fixture of conftest.py, which makes real Engines)."""
    return SimpleNamespace(tunables=Tunables(**tunables), allocator=OnDemandAllocator())


def inst(engine, text, imports=None):
    """An Instance of the WAT module ``text``."""
    return Instance(Module(engine, wat(text)), imports)


def section_spans(wasm: bytes):
    """``(id, start, end)`` of every section (start = the id byte, end = past its body).

    A minimal independent walker for tests; raises ValueError on a malformed frame.
    """
    spans = []
    pos = 8
    while pos < len(wasm):
        start = pos
        sid = wasm[pos]
        pos += 1
        size = shift = 0
        while True:
            if pos >= len(wasm):
                raise ValueError("truncated section size")
            b = wasm[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if pos + size > len(wasm):
            raise ValueError("section past the end")
        pos += size
        spans.append((sid, start, pos))
    return spans


# -- typed references -----------------------------------------------------------------------
I32, I64 = ValType.I32, ValType.I64
FUNCREF, EXTERNREF, EXNREF = ValType.FUNCREF, ValType.EXTERNREF, ValType.EXNREF
T0 = FuncType((), ())                 # (func)
T1 = FuncType((I32,), ())             # (func (param i32))
REF_T0, NULL_T0 = RefType(False, T0), RefType(True, T0)
REF_T1, NULL_T1 = RefType(False, T1), RefType(True, T1)
REF_FUNC, REF_EXTERN, REF_EXN = RefType(False, "func"), RefType(False, "extern"), RefType(False, "exn")
NULLEXN = RefType(True, "noexn")


def host(ft=T0):
    """A host function of type ``ft`` that does nothing."""
    return Func(ft, lambda *a: None)


# -- the process seen from outside: /proc/self/maps, smaps, fds, a fresh interpreter ------
def parse_maps():
    """[(lo, hi, perms, offset, path)] for every mapping of this process."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            out.append((lo, hi, parts[1], int(parts[2], 16), path))
    return out


def layout(start, end, maps=None):
    """The mappings covering [start, end), clipped, with adjacent ones of equal
    permissions merged: [(lo, hi, perms)]. Gaps show up as perms None."""
    pieces = []
    cursor = start
    for lo, hi, perms, _, _ in sorted(maps if maps is not None else parse_maps()):
        if hi <= start or lo >= end:
            continue
        lo, hi = max(lo, start), min(hi, end)
        if lo > cursor:
            pieces.append([cursor, lo, None])
        if pieces and pieces[-1][2] == perms and pieces[-1][1] == lo:
            pieces[-1][1] = hi
        else:
            pieces.append([lo, hi, perms])
        cursor = hi
    if cursor < end:
        pieces.append([cursor, end, None])
    return [tuple(p) for p in pieces]


def expected_layout(start, base, byte_len, end):
    """What :func:`layout` shows for a reservation [start, end) with ``byte_len`` R/W bytes at ``base``."""
    out = []
    if base > start:
        out.append((start, base, "---p"))
    if byte_len:
        out.append((base, base + byte_len, "rw-p"))
    if base + byte_len < end:
        out.append((base + byte_len, end, "---p"))
    return out


def _smaps():
    """``(lo, hi, field_lines)`` for every mapping in /proc/self/smaps."""
    entry = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                if entry is not None:
                    yield entry
                lo, hi = (int(x, 16) for x in head.split("-"))
                entry = (lo, hi, [])
            elif entry is not None:
                entry[2].append(line)
    if entry is not None:
        yield entry


def smaps_usage(start, end):
    """Sum of the smaps fields (kB -> bytes) of the mappings inside [start, end)."""
    totals = {}
    for lo, hi, fields in _smaps():
        if lo >= start and hi <= end:
            for line in fields:
                if line.rstrip().endswith(" kB"):
                    key, value = line.split(":", 1)
                    totals[key] = totals.get(key, 0) + int(value.split()[0]) * 1024
    return totals


def vm_flags(addr):
    """The VmFlags of the mapping containing ``addr``."""
    for lo, hi, fields in _smaps():
        if lo <= addr < hi:
            return next((line.split()[1:] for line in fields if line.startswith("VmFlags:")), None)
    return None


def open_fd_count():
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


def maps_and_fds(collect=False):
    """(mappings, open file descriptors) of this process; ``collect``: after gc.collect()
    (objects dropped earlier release their memories when collected)."""
    if collect:
        gc.collect()
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return maps, open_fd_count()


def run_child(code, *args, timeout=120, env_extra=None):
    """Run ``code`` in a fresh interpreter (the repo's venv); return CompletedProcess."""
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    if env_extra:
        env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


# -- pools (test_pooling*.py): small PoolingAllocators and modules whose slots are checked byte by byte
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

PAGE = _ffi.PAGE_SIZE
GUARD = 64 << 10   # small explicit guards keep the test pools small
MAX_PAGES = 48


def _escape(payload: bytes) -> str:
    return "".join("\\%02x" % b for b in payload)


def module_text(min_pages, data=(), max_pages=40, table=(4, 32)):
    segs = " ".join(f'(data (i32.const {off}) "{_escape(payload)}")' for off, payload in data)
    tab = f'(table (export "t") {table[0]} {table[1]} funcref)' if table else ""
    return (f'(module (memory (export "m") {min_pages} {max_pages}) {tab} '
            f'(func $f (export "f")) {segs})')


#: name -> (minimum pages, data segments); images differ in offset, size and content.
MODULES = {
    "img_a": (2, [(0, b"A" * 5000), (70000, b"tail-of-a")]),
    "img_c": (3, [(131072 + 100, b"C" * 300)]),            # image at linear offset 128 KiB
    "img_big": (5, [(0, bytes(range(1, 256)) * 1200)]),    # image larger than plain's memory
    "plain": (2, []),
}


def expected(name, byte_len):
    out = bytearray(byte_len)
    for off, payload in MODULES[name][1]:
        out[off:off + len(payload)] = payload
    return bytes(out)


#: make_pool()'s defaults; the ``reset`` fixture sets the pool reset of a test.
POOL_DEFAULTS = dict(max_instances=1, max_memories_per_instance=1, max_memory_pages=MAX_PAGES,
                     max_tables_per_instance=1, max_table_elements=64, guard_bytes=GUARD, reset=None)


def make_pool(**kw):
    args = dict(POOL_DEFAULTS)
    args.update(kw)
    return PoolingAllocator(**args)


#: Isolation tests run with both resets.
each_reset = pytest.mark.usefixtures("reset")


def compile_all(engine, names=MODULES):
    mods = {name: Module(engine, wat(module_text(*MODULES[name]))) for name in names}
    for name, mod in mods.items():
        assert (mod.images[0] is not None) == bool(MODULES[name][1]), name
    return mods


def check_clean(inst, name):
    """Everything the new tenant can reach: its image or zeros, null table elements; also
    after growing to the maximum (pages above the minimum were written by others)."""
    mem, table = inst.exports["m"], inst.exports["t"]
    assert mem.size_pages == MODULES[name][0]
    assert mem.read(0, mem.byte_len) == expected(name, mem.byte_len), name
    assert all(table.get(i) is None for i in range(table.size))
    with pytest.raises(Trap) as info:
        mem.load_i32_8u(mem.byte_len)
    assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS


def dirty(inst):
    """Write 0xFE over the whole memory grown to its maximum, set every table element."""
    mem, table, f = inst.exports["m"], inst.exports["t"], inst.exports["f"]
    assert mem.grow(40 - mem.size_pages) >= 0
    mem.fill(0, 0xFE, mem.byte_len)
    assert table.grow(32 - table.size) >= 0
    for i in range(table.size):
        table.set(i, f)


def check_grown_clean(inst, name):
    mem = inst.exports["m"]
    old = mem.byte_len
    assert mem.grow(40 - mem.size_pages) >= 0
    assert mem.read(0, mem.byte_len) == expected(name, old) + bytes(mem.byte_len - old)
    table = inst.exports["t"]
    table.grow(32 - table.size)
    assert all(table.get(i) is None for i in range(table.size))


def _memory_only(pages, data=()):
    segs = " ".join(f'(data (i32.const {off}) "{_escape(payload)}")' for off, payload in data)
    return wat(f'(module (memory (export "m") {pages} 40) {segs})')


# -- hand-encoded binary fragments (wasmenv.encode) ------------------------------------------
TYPE_VOID = section(1, vec([b"\x60\x00\x00"]))              # type 0: [] -> []
FUNC1 = section(3, vec([uleb(0)]))                          # one function of type 0
CODE1 = section(10, vec([b"\x02\x00\x0b"]))                 # its body: no locals, end
MEM1 = section(5, vec([b"\x00\x01"]))                       # memory 0: min 1
TABLE_FUNC = section(4, vec([b"\x70\x00\x0a"]))             # table 0: funcref min 10


def i32c(v):
    """The constant expression ``i32.const v; end``."""
    return b"\x41" + sleb(v) + b"\x0b"


def i64c(v):
    """The constant expression ``i64.const v; end``."""
    return b"\x42" + sleb(v) + b"\x0b"


def data_active(offset_expr, payload, memory=None):
    """An active data segment (flags 0, or 2 with an explicit ``memory``)."""
    if memory is None:
        return b"\x00" + offset_expr + uleb(len(payload)) + payload
    return b"\x02" + uleb(memory) + offset_expr + uleb(len(payload)) + payload


#: One memory with an image (two segments, one past the first page): a memories-only module.
ONE_MEMORY = '(module (memory (export "m") 2 5) (data (i32.const 70000) "late") (data (i32.const 0) "head"))'
