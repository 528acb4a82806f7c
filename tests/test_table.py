"""Tables (runtime/table.py): element type checks (non-null, concrete function types),
initializer values, lazily initialized (FuncTable) and leftover element segments."""
import pytest

import runtime
from runtime import Func, Global
from tests.helpers import FUNCREF, NULL_T0, REF_FUNC, T0, T1, host, inst, wat
from wasmenv import FuncType, RefType, ValType


def test_functable_lazy_and_leftovers(engine):
    g = Global.new(engine, "i32", 3)
    i = inst(engine, """(module (import "env" "g" (global $g i32))
      (table (export "t") 6 funcref) (func $a) (func $b)
      (elem (i32.const 0) $a $b) (elem (global.get $g) $b) (elem (i32.const 5) $a))""",
             {("env", "g"): g})
    init = i.module.env.table_initialization
    assert len(init.segments) == 2  # the global-based one and everything after it
    t = i.exports["t"]
    assert [t.get(k) is not None for k in range(6)] == [True, True, False, True, False, True]
    assert t.get(0).wasm_index == 0 and t.get(3).wasm_index == 1 and t.get(3) is t.get(1)


def test_table_initializer_expressions(engine):
    """Defined tables start filled with their initializer's value (evaluated after the
    globals, so an imported global works), then element segments write over it."""
    t0 = FuncType((), ())
    host = Func(t0, lambda: None)
    i = inst(engine, """(module (type $t (func))
      (import "env" "g" (global $g (ref $t)))
      (func $f (type $t)) (func $h)
      (table (export "a") 4 (ref $t) (ref.func $f))
      (table (export "b") 3 (ref null $t) (global.get $g))
      (table (export "c") 2 funcref)
      (elem (table 0) (i32.const 2) (ref $t) (ref.func $h)))""",
             {("env", "g"): Global.new(engine, RefType(False, t0), host)})
    a, b, c = i.exports["a"], i.exports["b"], i.exports["c"]
    assert [a.get(k).wasm_index for k in range(4)] == [0, 0, 1, 0]
    assert [b.get(k) for k in range(3)] == [host] * 3
    assert [c.get(k) for k in range(2)] == [None, None]
    with pytest.raises(TypeError, match="non-nullable"):
        a.set(0, None)
    with pytest.raises(TypeError, match="needs a function of type"):
        b.set(0, Func(FuncType((ValType.I32,), ()), lambda x: None))
    b.set(0, None)
    assert b.get(0) is None and a.grow(1, host) == 4 and a.get(4) is host
    i.close()


# -- typed references -------------------------------------------------------------------
def test_table_non_null_and_concrete_checks(engine):
    f0, f1 = host(T0), host(T1)
    with pytest.raises(TypeError, match="non-nullable"):
        runtime.Table.new(engine, REF_FUNC, 2)
    t = runtime.Table.new(engine, REF_FUNC, 2, 10, f0)
    assert [t.get(0), t.get(1)] == [f0, f0]
    with pytest.raises(TypeError, match="non-nullable"):
        t.set(0, None)
    with pytest.raises(TypeError, match="non-nullable"):
        t.grow(1)
    with pytest.raises(TypeError, match="non-nullable"):
        t.fill(0, None, 1)
    assert t.grow(2, f1) == 2 and t.get(3) is f1
    t.fill(0, f1, 2)
    assert t.get(0) is f1
    typed = runtime.Table.new(engine, NULL_T0, 2)
    typed.set(0, f0)
    with pytest.raises(TypeError, match="needs a function of type"):
        typed.set(1, f1)
    with pytest.raises(TypeError, match="needs a function of type"):
        typed.grow(1, f1)
    assert typed.grow(1, None) == 2 and typed.get(2) is None


def test_defined_table_filled_with_init_value(engine):
    m = runtime.Module(engine, wat("""(module (type $t (func))
        (import "m" "g" (global $imp (ref null func)))
        (func $f (type $t)) (func $g)
        (table (export "a") 4 (ref func) (ref.func $f))
        (table (export "b") 3 funcref (global.get $imp))
        (table (export "c") 2 (ref null $t) (ref.null $t))
        (elem (table 0) (i32.const 1) func $g))"""))
    h = host(T1)
    with runtime.Instance(m, {("m", "g"): runtime.Global.new(engine, FUNCREF, h)}) as inst:
        a, b, c = inst.exports["a"], inst.exports["b"], inst.exports["c"]
        f = inst.exports["a"].get(0)
        assert f.wasm_index == 0 and f.ty == T0
        assert [x.wasm_index for x in (a.get(0), a.get(1), a.get(2), a.get(3))] == [0, 1, 0, 0]
        assert a.get(0) is a.get(2)  # one Func per function
        assert [b.get(i) for i in range(3)] == [h, h, h]
        assert [c.get(i) for i in range(2)] == [None, None]
        assert a.grow(1, a.get(1)) == 4 and a.get(4).wasm_index == 1
        with pytest.raises(TypeError):
            a.set(0, None)
        with pytest.raises(TypeError):
            c.set(0, h)  # (func (param i32)) is not $t


def test_folded_null_item_in_table_with_initializer(engine):
    m = runtime.Module(engine, wat("""(module (func $f)
        (table (export "t") 3 funcref (ref.func $f))
        (elem (i32.const 0) funcref (ref.null func)))"""))
    with runtime.Instance(m) as inst:
        t = inst.exports["t"]
        assert t.get(0) is None and t.get(1) is not None


def test_eager_null_item_in_table_with_initializer(engine):
    # Not folded (the segment's offset is a global): applied eagerly over the init value.
    m = runtime.Module(engine, wat("""(module (func $f) (global $o i32 (i32.const 0))
        (table (export "t") 3 funcref (ref.func $f))
        (elem (global.get $o) funcref (ref.null func)))"""))
    with runtime.Instance(m) as inst:
        t = inst.exports["t"]
        assert t.get(0) is None and t.get(1) is not None and t.get(2) is not None



_INTO_IMPORTED = """(module (type $r (func (result i32)))
  (import "env" "h" (func $h (result i32)))
  (import "env" "t" (table $t 8 funcref))
  (import "env" "g" (global $g i32))
  (func $a (result i32) (i32.const 10)) (func $b (result i32) (i32.const 20))
  (elem (table $t) (global.get $g) func $h $a $b $h)
  (elem (table $t) (i32.const 0) funcref (ref.null func) (ref.func $b))
  (elem (table $t) (i32.const 7) func $h)
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0))))"""


def test_function_index_segments_into_an_imported_table(engine):
    """Eager segments of function indices and nulls (here into an imported table, at a
    base read from a global) are written by one C call per segment: the same elements as
    wasmtime-py's, the table holding the instance and the imported function after the
    instance closed."""
    from runtime.layout import layout_of
    h = Func(FuncType((), (ValType.I32,)), lambda: 7)
    table = runtime.Table.new(engine, ValType.FUNCREF, 8, None, None)
    i = inst(engine, _INTO_IMPORTED, {("env", "h"): h, ("env", "t"): table,
                                      ("env", "g"): Global.new(engine, "i32", 3)})
    writes = layout_of(i.module).element_segments
    # (imports alone: written as values, which needs no interpreter state)
    assert [w.funcs is not None for w in writes] == [True, True, False] and writes[0].imported == (0,)
    got = [None if table.get(k) is None else table.get(k)() for k in range(8)]
    assert [i.exports["call"](k) for k in (1, 3, 4, 5, 6)] == [20, 7, 10, 20, 7]

    import wasmtime as wt
    store = wt.Store()
    wtable = wt.Table(store, wt.TableType(wt.ValType.funcref(), wt.Limits(8, None)), None)
    wh = wt.Func(store, wt.FuncType([], [wt.ValType.i32()]), lambda: 7)
    wi = wt.Instance(store, wt.Module(store.engine, _INTO_IMPORTED),
                     [wh, wtable, wt.Global(store, wt.GlobalType(wt.ValType.i32(), False), wt.Val.i32(3))])
    theirs = [getattr(v, "value", v) for v in (wtable.get(store, k) for k in range(8))]
    assert got == [None if f is None else f(store) for f in theirs]
    assert got == [None, 20, None, 7, 10, 20, 7, 7]
    assert wi.exports(store)["call"](store, 4) == 10

    i.close()
    assert table.get(3) is h and table.get(3)() == 7  # held by the table
    with pytest.raises(ValueError, match="instance is closed"):  # a view of the closed one
        table.get(4)()
    table.close()
