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

