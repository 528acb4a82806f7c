"""wasmenv.vmglobals: global cells and the per-module globals template."""
import struct

import pytest
import wasmtime

import runtime
import wasmenv
from runtime.values import from_bits
from wasmenv import ValType
from wasmenv.vmglobals import (CELL_SIZE, GlobalsTemplate, decode_cell, encode_cell,
                               func_marker)


def module_of(text):
    return wasmenv.translate(wasmtime.wat2wasm(text)).module


def cell(raw: bytes) -> bytes:
    return raw + bytes(CELL_SIZE - len(raw))


def evaluated(module, k, values):
    """ConstExpr.evaluate of defined global k, earlier defined globals from ``values``."""
    n_imp = module.num_imported_globals
    return module.globals[n_imp + k].init.evaluate(lambda i: values[i - n_imp])


EVERY_TYPE = """
(module
  (type $t (func))
  (func $f (type $t))
  (global i32 (i32.const -1))
  (global i64 (i64.const -2))
  (global f32 (f32.const -1.5))
  (global f64 (f64.const 0x1.8p1))
  (global f32 (f32.const nan:0x200000))
  (global v128 (v128.const i32x4 1 2 3 -1))
  (global funcref (ref.null func))
  (global externref (ref.null extern))
  (global (ref null $t) (ref.null $t))
  (global exnref (ref.null exn))
  (global funcref (ref.func $f))
  (global (ref $t) (ref.func $f)))
"""


def test_every_value_type_encodes_like_its_bits():
    m = module_of(EVERY_TYPE)
    t = GlobalsTemplate.for_module(m)
    assert len(t.cells) == 12 * CELL_SIZE
    expected = [
        cell(b"\xff" * 4), cell(struct.pack("<q", -2)), cell(struct.pack("<f", -1.5)),
        cell(struct.pack("<d", 3.0)), cell(struct.pack("<I", 0x7fa00000)),
        struct.pack("<4i", 1, 2, 3, -1),
        cell(b""), cell(b""), cell(b""), cell(b""),
        cell(struct.pack("<Q", func_marker(0))), cell(struct.pack("<Q", func_marker(0))),
    ]
    assert [bytes(t.cell(k)) for k in range(12)] == expected
    # Against the constant-expression evaluator, value by value.
    values = []
    for k in range(12):
        ty = m.globals[k].type.content
        value = evaluated(m, k, values)
        values.append(value)
        if ty.is_ref:
            assert decode_cell(ty, t.cell(k)) == (None if value is None else func_marker(value[1]))
        else:
            assert decode_cell(ty, t.cell(k)) == value
    # Only the ref.func globals differ between instances.
    assert [g.defined_index for g in t.per_instance] == [10, 11]


def test_extended_const_and_reads_of_defined_globals_fold_once():
    m = module_of("""
    (module
      (global $a i32 (i32.const 10))
      (global $b i32 (i32.sub (global.get $a) (i32.const 11)))
      (global $c i64 (i64.mul (i64.const 0x100000000) (i64.const 0x100000001)))
      (global $d i64 (i64.add (global.get $c) (i64.sub (i64.const 0) (i64.const 1))))
      (global $e i32 (i32.add (i32.mul (global.get $b) (global.get $b)) (i32.const 7)))
      (global $f f64 (f64.const 1.25))
      (global $g f64 (global.get $f)))
    """)
    t = GlobalsTemplate.for_module(m)
    assert t.per_instance == ()
    values = []
    for k in range(len(m.globals)):
        values.append(evaluated(m, k, values))
        assert decode_cell(m.globals[k].type.content, t.cell(k)) == values[k]
    assert values[:5] == [10, 0xFFFFFFFF, 0x100000000, 0xFFFFFFFF, 8]  # 2^64 + 2^32 wraps
    assert bytes(t.cell(6)) == cell(struct.pack("<d", 1.25))


IMPORTING = """
(module
  (import "env" "base" (global $base i32))
  (import "env" "wide" (global $wide i64))
  (import "env" "v" (global $v v128))
  (func $f) (func $g)
  (global $k i32 (i32.const 5))
  (global $p (export "p") i32 (i32.add (global.get $base) (global.get $k)))
  (global $q (export "q") i32 (i32.mul (global.get $p) (i32.const 3)))
  (global $w (export "w") i64 (i64.add (global.get $wide) (i64.const 1)))
  (global $r funcref (ref.func $g))
  (global $s funcref (global.get $r))
  (global $c (export "c") f32 (f32.const 2.5))
  (global $vv v128 (global.get $v))
)
"""


def test_globals_reading_imports_or_ref_func_are_per_instance():
    m = module_of(IMPORTING)
    t = GlobalsTemplate.for_module(m)
    assert [g.defined_index for g in t.per_instance] == [1, 2, 3, 4, 5, 7]
    assert bytes(t.cell(0)) == cell(b"\x05\x00\x00\x00")
    assert bytes(t.cell(1)) == bytes(t.cell(2)) == bytes(t.cell(3)) == bytes(CELL_SIZE)
    assert bytes(t.cell(4)) == bytes(t.cell(5)) == cell(struct.pack("<Q", func_marker(1)))  # $g is function 1
    assert bytes(t.cell(6)) == cell(struct.pack("<f", 2.5))
    imported = {0: 0xFFFFFFFE, 1: 41, 2: bytes(range(16))}
    cells = t.instance_cells(imported.__getitem__, lambda i: 0x7000 + i)
    assert cells[:CELL_SIZE] == t.cells[:CELL_SIZE]  # constants copied from the template
    got = [decode_cell(ty, cells[k * CELL_SIZE:(k + 1) * CELL_SIZE]) for k, ty in enumerate(t.types)]
    assert got == [5, 3, 9, 42, 0x7001, 0x7001, 0x40200000, bytes(range(16))]
    assert t.cells != bytes(cells)  # the template itself is untouched
    assert bytes(t.cell(1)) == bytes(CELL_SIZE)


NUMERIC = "\n".join(line for line in IMPORTING.splitlines() if "v128" not in line)


def test_template_values_match_runtime_and_wasmtime():
    """Per-instance cells hold what today's runtime Instance and wasmtime-py compute."""
    m = module_of(NUMERIC)
    t = GlobalsTemplate.for_module(m)
    cells = t.instance_cells({0: 0xFFFFFFFE, 1: 41}.__getitem__, lambda i: 1)

    def ours(name):
        k = m.exports[name].index - m.num_imported_globals
        return from_bits(t.types[k], decode_cell(t.types[k], cells[k * CELL_SIZE:(k + 1) * CELL_SIZE]))

    engine = runtime.Engine()
    inst = runtime.Instance(runtime.Module(engine, wasmtime.wat2wasm(NUMERIC)), {
        ("env", "base"): runtime.Global.new(engine, "i32", -2),
        ("env", "wide"): runtime.Global.new(engine, "i64", 41)})
    store = wasmtime.Store()
    imports = [wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i32(), False), wasmtime.Val.i32(-2)),
               wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i64(), False), wasmtime.Val.i64(41))]
    wt = wasmtime.Instance(store, wasmtime.Module(store.engine, wasmtime.wat2wasm(NUMERIC)), imports)
    for name in ("p", "q", "w", "c"):
        assert ours(name) == inst.exports[name].value == wt.exports(store)[name].value(store), name
    inst.close()


def test_empty_and_import_only():
    assert GlobalsTemplate.for_module(module_of("(module)")) == GlobalsTemplate(b"", (), (), 0)
    t = GlobalsTemplate.for_module(module_of('(module (import "a" "g" (global i32)))'))
    assert t.cells == b"" and t.num_imported_globals == 1
    with pytest.raises(IndexError):
        t.cell(0)


def test_encode_cell_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        encode_cell(ValType.I32, 1 << 32)
    with pytest.raises(ValueError):
        encode_cell(ValType.I64, -1)
    with pytest.raises(ValueError, match="16 bytes"):
        encode_cell(ValType.V128, b"short")
    assert encode_cell(ValType.V128, 1) == cell(b"\x01")
    assert encode_cell(ValType.FUNCREF, ("func", 7)) == cell(struct.pack("<Q", 8))
    assert decode_cell(ValType.EXTERNREF, encode_cell(ValType.EXTERNREF, None)) is None
