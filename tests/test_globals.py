"""runtime.globals: instance globals live in 16-byte cells of the instance's native block
(copied from the module's GlobalsTemplate), Global objects are views made on demand,
imported globals alias the exporter's cell; instantiation allocates nothing per function
or per constant global on the Python side."""
import gc
import math
import struct
import sys
import tracemalloc
import weakref

import pytest
import wasmtime

from harness import oracle
from runtime import Func, Global, Instance, Module, _ffi
from wasmenv import FuncType

EXPORTER = """(module
  (global (export "g") (mut i32) (i32.const 5))
  (global (export "x") (mut externref) (ref.null extern))
  (global (export "k") i64 (i64.const -3)))"""
IMPORTER = """(module
  (import "a" "g" (global $g (mut i32)))
  (import "a" "x" (global $x (mut externref)))
  (import "a" "k" (global $k i64))
  (global (export "k2") i64 (i64.add (global.get $k) (i64.const 100)))
  (export "g" (global $g))
  (export "x" (global $x)))"""
NO_FUNC = Func(FuncType((), ()), lambda: None)


def module_of(engine, wat):
    return Module(engine, wasmtime.wat2wasm(wat))


def imports_of(exporter):
    return {("a", name): exporter.exports[name] for name in "gxk"}


def block_bytes(inst, offset, byte_len):
    """Bytes of ``inst``'s native block (its globals' cells live at GlobalCells.start)."""
    return bytes(inst._cells._buffer()[offset:offset + byte_len])


def test_exported_mutable_global_reads_and_writes_its_cell(engine):
    inst = Instance(module_of(engine, EXPORTER))
    layout = inst.module._instance_layout
    offsets = layout.vmoffsets
    assert offsets.end("imported_globals") <= layout.block_bytes <= offsets.size
    assert len(inst._cells._buffer()) == layout.block_bytes
    cell = offsets.global_cell(0)
    g = inst.exports["g"]
    assert g.value == 5 and block_bytes(inst, cell, 16) == (5).to_bytes(4, "little") + bytes(12)
    g.value = -2
    assert block_bytes(inst, cell, 8) == struct.pack("<Q", 0xFFFFFFFE)
    assert inst.exports["g"].value == -2 and inst.globals[0].value == -2  # a fresh view: same cell
    assert inst.exports["k"].value == -3
    with pytest.raises(AttributeError, match="immutable"):
        inst.exports["k"].value = 1
    inst.close()


def test_every_value_type_round_trips_through_a_cell(engine):
    wat = """(module
      (global (export "i32") (mut i32) (i32.const 0)) (global (export "i64") (mut i64) (i64.const 0))
      (global (export "f32") (mut f32) (f32.const 0)) (global (export "f64") (mut f64) (f64.const 0))
      (global (export "v") (mut v128) (v128.const i64x2 1 2)))"""
    with Instance(module_of(engine, wat)) as inst:
        ex = inst.exports
        assert ex["v"].value == 1 | 2 << 64  # v128 values are 128-bit unsigned ints
        for name, value in [("i32", -(1 << 31)), ("i64", (1 << 63) - 1), ("f32", 1.5), ("f64", -0.25),
                            ("v", (1 << 128) - 1)]:
            ex[name].value = value
            assert ex[name].value == value
        ex["f32"].value = float("nan")
        assert math.isnan(ex["f32"].value) and ex["f32"].bits == 0x7FC00000
        with pytest.raises(ValueError, match="does not fit"):
            ex["i32"].value = 1 << 32
        with pytest.raises(TypeError):
            ex["i64"].value = "1"
        assert ex["i32"].value == -(1 << 31)  # a refused write changes nothing


def test_template_is_made_once_and_only_import_readers_are_per_instance(engine):
    wat = """(module (import "env" "base" (global $b i32))
      (global (export "c") i32 (i32.mul (i32.const 6) (i32.const 7)))
      (global (export "d") i32 (i32.add (global.get $b) (i32.const 1))))"""
    module = module_of(engine, wat)
    one = Instance(module, {("env", "base"): Global.new(engine, "i32", 10)})
    two = Instance(module, {("env", "base"): Global.new(engine, "i32", 20)})
    template = module._instance_layout.globals_template
    assert [p.defined_index for p in template.per_instance] == [1]
    assert template.cell(0)[:4] == (42).to_bytes(4, "little")
    assert [one.exports[n].value for n in "cd"] == [42, 11] and [two.exports[n].value for n in "cd"] == [42, 21]
    one.close()
    two.close()


def test_imported_globals_alias_the_exporters_cell(engine):
    a = Instance(module_of(engine, EXPORTER))
    b = Instance(module_of(engine, IMPORTER), imports_of(a))
    assert b.exports["k2"].value == 97  # evaluated from the cell at instantiation
    pointer = b.module._instance_layout.vmoffsets.imported_global(0)
    assert struct.unpack("<Q", block_bytes(b, pointer, 8))[0] == a._cells.address(0)
    a.exports["g"].value = 7
    assert b.exports["g"].value == 7 and b.globals[0].value == 7
    b.exports["g"].value = 8
    assert a.exports["g"].value == 8
    token = object()
    b.exports["x"].value = token
    assert a.exports["x"].value is token  # references too (the exporter's side table)
    a.exports["x"].value = None
    assert b.exports["x"].value is None
    b.close()
    a.close()


def test_host_global_owns_a_cell_that_importers_share(engine):
    host = Global.new(engine, "i32", 3, mutable=True)
    ext = Global.new(engine, "externref", None, mutable=True)
    b = Instance(module_of(engine, IMPORTER), {("a", "g"): host, ("a", "x"): ext,
                                                ("a", "k"): Global.new(engine, "i64", 1)})
    host.value = 40
    assert b.exports["g"].value == 40 and b.exports["k2"].value == 101
    b.exports["g"].value = 41
    assert host.value == 41
    b.close()
    assert host.value == 41  # the host's cell is its own


def test_importer_keeps_the_exporters_cell_alive(engine):
    a = Instance(module_of(engine, EXPORTER))
    imports = imports_of(a)
    b = Instance(module_of(engine, IMPORTER), imports)
    a.exports["g"].value = 77
    token = object()
    a.exports["x"].value = token
    gone = weakref.ref(a)
    a.close()
    del a, imports
    gc.collect()
    assert gone() is None  # the exporter instance itself is garbage
    assert b.exports["g"].value == 77 and b.exports["x"].value is token
    b.exports["g"].value = 78
    assert b.globals[0].value == 78
    b.close()


@pytest.mark.parametrize("called", [False, True], ids=["no-state", "called"])
def test_an_instance_block_is_freed_once_by_its_last_holder(engine, monkeypatch, called):
    """The block is freed once, when its last holder is garbage: an importer's cell
    pointers lead into it; once the instance's code ran (it has an interpreter state), the
    closed instance keeps it too (a call in flight reads it)."""
    import runtime.globals as globals_mod
    freed = []
    real = globals_mod._free_block
    monkeypatch.setattr(globals_mod, "_free_block", lambda block: (freed.append(_ffi.block_address(block)), real(block)))
    a = Instance(module_of(engine, EXPORTER.replace(
        "(module", '(module (func (export "get") (result i32) (global.get 0))', 1)))
    address = _ffi.block_address(a._cells.block)
    if called:
        assert a.exports["get"]() == 5
    b = Instance(module_of(engine, IMPORTER), imports_of(a))
    a.close()
    assert (a._cells is not None) is called and freed == []
    del a
    gc.collect()
    assert freed == []  # the importer's cell pointers lead into it
    assert b.exports["g"].value == 5
    b.close()
    del b
    gc.collect()
    assert freed.count(address) == 1


def test_globals_of_a_closed_instance_raise(engine):
    a = Instance(module_of(engine, EXPORTER))
    g, x = a.exports["g"], a.globals[1]
    imports = imports_of(a)
    a.close()
    for view in (g, x):
        with pytest.raises(ValueError, match="instance is closed"):
            _ = view.value
        with pytest.raises(ValueError, match="instance is closed"):
            view.value = None if view is x else 1
        assert "closed" in repr(view)
    with pytest.raises(ValueError, match="instance is closed"):
        a.exports["g"]
    with pytest.raises(ValueError, match="instance is closed"):
        a.globals[0]
    with pytest.raises(ValueError, match="instance is closed"):  # nor can it be imported
        Instance(module_of(engine, IMPORTER), imports)


def test_ref_func_globals_and_the_lazy_side_table(engine):
    wat = """(module (import "env" "f" (func $h))
      (func $own) (table (export "t") 1 funcref) (elem (i32.const 0) $own)
      (global (export "own") funcref (ref.func $own))
      (global (export "imp") funcref (ref.func $h))
      (export "fn" (func $own)))"""
    host = Func(FuncType((), ()), lambda: None)
    inst = Instance(module_of(engine, wat), {("env", "f"): host})
    own = inst.exports["own"].value
    assert own is inst.exports["fn"] is inst.exports["t"].get(0) and own.wasm_index == 1
    assert inst.exports["imp"].value is host
    inst.close()
    numbers = Instance(module_of(engine, EXPORTER))
    assert numbers._cells.refs is None  # no non-null reference: no side table
    numbers.close()


def test_wasm_funcs_are_made_on_demand_once(engine):
    wat = '(module (import "env" "f" (func)) (func (export "a")) (func (export "b")))'
    inst = Instance(module_of(engine, wat), {("env", "f"): NO_FUNC})
    assert inst._funcs is None and tuple(inst._imported_funcs) == (NO_FUNC,)
    a = inst.exports["a"]
    assert inst.exports["a"] is a and list(inst._funcs) == [1]
    inst.close()


def test_differential_exported_global_values(engine):
    """Exported globals (constants, extended-const over imports, ref.func, mutable ones
    re-exported) agree with wasmtime-py's."""
    wat = """(module
      (import "env" "i" (global $i i32)) (import "env" "l" (global $l (mut i64)))
      (import "env" "d" (global $d f64))
      (func $f) (elem declare func $f)
      (global (export "c32") i32 (i32.const -7)) (global (export "c64") i64 (i64.const 1234567890123))
      (global (export "cf") f32 (f32.const -1.25)) (global (export "nan") f64 (f64.const nan))
      (global (export "sum") i32 (i32.sub (global.get $i) (i32.const 1)))
      (global (export "prod") i64 (i64.mul (i64.const 3) (i64.const 5)))
      (global (export "copy") f64 (global.get $d))
      (global (export "fr") funcref (ref.func $f)) (global (export "nul") externref (ref.null extern))
      (export "l" (global $l)))"""
    wasm = wasmtime.wat2wasm(wat)
    cat, ours, theirs = oracle.compare_one(oracle.wasmtime_engine(), engine, wasm)
    assert cat == "ok", (ours, theirs)
    assert ours.globals == theirs.globals
    # the harness's imports are 8 * position (+ 0.5 for floats): 0, 8, 2.5
    assert ours.globals[-10:] == (-7, 1234567890123, -1.25, ("nan",), -1, 15, 2.5, ("func", "unexported"), None, 8)


# -- allocation per instance ------------------------------------------------------------
HEAD = '(module (import "env" "f" (func))'


def _functions(n):
    return HEAD + " (func)" * n + ")"


def _constant_globals(n):
    return HEAD + "".join(f" (global i32 (i32.const {k}))" for k in range(n)) + ")"


def _allocated_per_instance(engine, wat, count=20):
    """(traced bytes, allocated blocks) that ``count`` live instances of ``wat`` hold, per
    instance, measured after a warm-up round (the module's layout is made once)."""
    module = module_of(engine, wat)
    imports = {("env", "f"): NO_FUNC}
    live = [None] * count
    out = None
    for _ in range(2):  # the first round pays one-off costs
        gc.collect()
        gc.disable()  # a collection inside the measurement would free others' garbage
        tracemalloc.start()
        try:
            blocks, traced = sys.getallocatedblocks(), tracemalloc.get_traced_memory()[0]
            for i in range(count):
                live[i] = Instance(module, imports)
            out = ((tracemalloc.get_traced_memory()[0] - traced) / count,
                   (sys.getallocatedblocks() - blocks) / count)
        finally:
            tracemalloc.stop()
            gc.enable()
            for i in range(count):
                live[i].close()
                live[i] = None
    return out


@pytest.mark.parametrize("series", [_functions, _constant_globals], ids=["functions", "globals"])
def test_instantiation_allocates_nothing_per_function_or_constant_global(engine, series):
    small, large = (_allocated_per_instance(engine, series(n)) for n in ((10, 10_000) if series is _functions
                                                                       else (0, 10_000)))
    assert large == small, (small, large)
    assert small[0] < 2048  # and what an instance does hold is small
