"""PoolingAllocator isolation beyond memory bytes: a reused slot shows nothing of its
previous tenant's globals or table elements, a table view made lazily never sees the
next tenant, and a memory slot whose Memory object was never made goes back without a
reset and stays clean (the memory side is tests/test_pooling_isolation.py).

Isolation tests run with both pool resets (``each_reset``: the ``reset`` fixture of
tests/conftest.py).
"""

import pytest

from runtime import Engine, Global, Instance, Module, Trap, TrapCode, _ffi
from tests.helpers import (check_clean,
                           check_grown_clean, compile_all, dirty, each_reset, make_pool, wat)


_DIRTY_TENANT = '''(module
  (global $i (export "i") (mut i32) (i32.const 7)) (global $l (export "l") (mut i64) (i64.const -7))
  (global $s (export "s") (mut f32) (f32.const 1.5)) (global $d (export "d") (mut f64) (f64.const 2.5))
  (global $r (export "r") (mut funcref) (ref.null func))
  (global $e (export "e") (mut externref) (ref.null extern))
  (table $t (export "t") 4 64 funcref) (table $x (export "x") 4 64 externref)
  (elem (table $t) (i32.const 1) func $one)
  (func $one (export "one") (result i32) (i32.const 1))
  (func (export "dirty") (param $v externref)
    (global.set $i (i32.const -1)) (global.set $l (i64.const -1))
    (global.set $s (f32.const -3)) (global.set $d (f64.const -3))
    (global.set $r (ref.func $one)) (global.set $e (local.get $v))
    (table.fill $t (i32.const 0) (ref.func $one) (table.size $t))
    (drop (table.grow $t (ref.func $one) (i32.sub (i32.const 64) (table.size $t))))
    (table.fill $x (i32.const 0) (local.get $v) (table.size $x))
    (drop (table.grow $x (local.get $v) (i32.sub (i32.const 64) (table.size $x)))))
  (func (export "clean") (result i32) (local $k i32)
    (if (i32.ne (global.get $i) (i32.const 7)) (then (return (i32.const 0))))
    (if (i64.ne (global.get $l) (i64.const -7)) (then (return (i32.const 0))))
    (if (f32.ne (global.get $s) (f32.const 1.5)) (then (return (i32.const 0))))
    (if (f64.ne (global.get $d) (f64.const 2.5)) (then (return (i32.const 0))))
    (if (i32.eqz (ref.is_null (global.get $r))) (then (return (i32.const 0))))
    (if (i32.eqz (ref.is_null (global.get $e))) (then (return (i32.const 0))))
    (if (i32.ne (table.size $t) (i32.const 4)) (then (return (i32.const 0))))
    (if (i32.ne (table.size $x) (i32.const 4)) (then (return (i32.const 0))))
    (if (i32.ne (call_indirect $t (result i32) (i32.const 1)) (i32.const 1)) (then (return (i32.const 0))))
    ;; grown from wasm with null: every element null, the segment's one aside
    (drop (table.grow $t (ref.null func) (i32.const 60)))
    (drop (table.grow $x (ref.null extern) (i32.const 60)))
    (loop $each
      (if (i32.and (i32.ne (local.get $k) (i32.const 1)) (i32.eqz (ref.is_null (table.get $t (local.get $k)))))
        (then (return (i32.const 0))))
      (if (i32.eqz (ref.is_null (table.get $x (local.get $k)))) (then (return (i32.const 0))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $k) (i32.const 64))))
    (i32.const 1)))'''

#: Another tenant of the same slot: more globals (zero and constant initializers), a larger
#: funcref table whose segment names its own functions at other indices, no externref table.
_OTHER_TENANT = '''(module
  (global (export "g0") (mut i32) (i32.const 0)) (global (export "g1") (mut i64) (i64.const 0))
  (global (export "g2") (mut f64) (f64.const 0)) (global (export "g3") (mut externref) (ref.null extern))
  (global (export "g4") (mut funcref) (ref.null func)) (global (export "g5") (mut i32) (i32.const 0))
  (global (export "g6") (mut i64) (i64.const 42)) (global (export "g7") (mut f32) (f32.const 0))
  (table $t (export "t") 8 64 funcref) (elem (table $t) (i32.const 2) func $two $three)
  (func $two (export "two") (result i32) (i32.const 2)) (func $three (export "three") (result i32) (i32.const 3))
  (func (export "at") (param i32) (result i32) (call_indirect $t (result i32) (local.get 0))))'''


def _check_dirty_tenant_clean(inst):
    ex = inst.exports
    assert [ex[n].value for n in "ilsdre"] == [7, -7, 1.5, 2.5, None, None]
    assert ex["t"].size == ex["x"].size == 4
    assert [ex["t"].get(i) for i in (0, 2, 3)] == [None] * 3 and ex["t"].get(1)() == 1
    assert [ex["x"].get(i) for i in range(4)] == [None] * 4
    assert ex["clean"]() == 1  # wasm code sees the same, and grown elements are null
    assert ex["t"].size == ex["x"].size == 64
    assert all(ex["t"].get(i) is None for i in range(64) if i != 1)
    assert all(ex["x"].get(i) is None for i in range(64))


@each_reset
def test_reused_slot_shows_no_global_or_table_element_of_its_previous_tenant():
    """A slot dirtied from wasm (every global, every table element, tables grown to the
    pool's limit with non-null values) is reused by the same module and by another one:
    each new tenant reads its initializers, its own segments' functions and nulls,
    before and after growing its tables."""
    with make_pool(max_tables_per_instance=2) as pool:
        engine = Engine(allocator=pool)
        dirty_mod, other_mod = Module(engine, wat(_DIRTY_TENANT)), Module(engine, wat(_OTHER_TENANT))
        marker = object()
        for round_ in range(6):
            with Instance(dirty_mod) as inst:
                _check_dirty_tenant_clean(inst)
                inst.exports["dirty"](marker)
                assert inst.exports["e"].value is marker and inst.exports["x"].get(63) is marker
                assert inst.exports["i"].value == -1 and inst.exports["t"].get(63)() == 1
            if round_ % 2:
                with Instance(other_mod) as inst:
                    ex = inst.exports
                    assert [ex[f"g{k}"].value for k in range(8)] == [0, 0, 0.0, None, None, 0, 42, 0.0]
                    assert ex["t"].size == 8
                    assert [ex["at"](i) for i in (2, 3)] == [2, 3]
                    for i in (0, 1, 4, 5, 6, 7):
                        assert ex["t"].get(i) is None
                        with pytest.raises(Trap) as info:
                            ex["at"](i)
                        assert info.value.code is TrapCode.INDIRECT_CALL_TO_NULL
                    assert ex["t"].grow(56) == 8 and all(ex["t"].get(i) is None for i in range(8, 64))
                    for k in range(8):  # dirty this tenant's cells too, for the next round
                        g = ex[f"g{k}"]
                        g.value = marker if k == 3 else (ex["two"] if k == 4 else 5)
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0


@each_reset
@pytest.mark.parametrize("memory", ["", "(memory 1)"], ids=["no-memory", "one-memory"])
def test_a_lazily_made_table_view_never_sees_the_next_tenant(memory):
    """A pooled instance's table view is made on first use, from the instance's own entry:
    a view made before its instance closed raises afterwards and its storage pointer
    reads as an empty table while the next tenant uses the same table slot; tenants
    that wrote through wasm code (bulk and grow instructions, which make the view), through
    wasm code only with no view ever made (table.set: the interpreter state binds the
    entry itself), through a view, or never made a view at all, each leave the slot clean
    (its next tenant's view reads its own lazy element and nulls, before and after
    growing)."""
    text = (f'(module {memory} (table (export "t") 4 64 funcref) (func $f (export "f"))'
            ' (elem (i32.const 1) $f)'
            ' (func (export "dirty") (table.fill 0 (i32.const 0) (ref.func $f) (i32.const 4))'
            '   (drop (table.grow 0 (ref.func $f) (i32.const 60))))'
            ' (func (export "set") (table.set 0 (i32.const 0) (ref.func $f))'
            '   (table.set 0 (i32.const 3) (ref.func $f))))')
    with make_pool() as pool:  # one table slot
        mod = Module(Engine(allocator=pool), wat(text))
        stale = None
        for round_ in range(12):
            inst = Instance(mod)
            assert inst._views is None and pool.live_tables == 1
            if stale is not None:  # the last tenant's view, while this one holds the slot
                with pytest.raises(ValueError, match="table is closed"):
                    stale.get(0)
                assert stale._t.size == 0 and stale._t.elements == _ffi.NULL
            t = inst.exports["t"]
            assert t.size == 4 and t.get(1) is inst.exports["f"]
            assert [t.get(i) for i in (0, 2, 3)] == [None] * 3
            assert t.grow(60) == 4 and all(t.get(i) is None for i in range(4, 64))
            inst.close()
            inst = Instance(mod)
            how = round_ % 4
            if how == 0:
                inst.exports["dirty"]()  # wasm code writes all 64 elements
                stale = None
            elif how == 3:
                inst.exports["set"]()  # elements 0 and 3, in C only
                assert inst._views is None
                stale = None
            elif how == 1:
                stale = inst.exports["t"]  # a view writes them
                stale.grow(60, inst.exports["f"])
                stale.fill(0, inst.exports["f"], 64)
            else:
                stale = None  # never looked at
            inst.close()
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0


@each_reset
@pytest.mark.parametrize("writer", ["segmented", "copied", "start", "called", "grown"])
def test_a_slot_whose_memory_was_never_made_is_not_reset_and_stays_clean(writer):
    """A tenant whose memory never had a descriptor (no Memory object, none described for
    its code) is released without a reset (its pages are as its take left them);
    everything that writes an instance's memory makes one first: data segments applied
    per instance (segmented), data copied when images are off, the interpreter (a start
    function that grows, a call that only stores: a descriptor described for its code,
    no Memory), a grow. After each such tenant (never looked at from Python), the next
    one finds only zeros."""
    cow = writer != "copied"
    with make_pool() as pool:
        engine = Engine(allocator=pool, memory_init_cow=cow)
        imports = None
        if writer == "segmented":  # the offset reads an import: applied per instance
            text = '(module (import "env" "g" (global i32)) (memory 2 40) (data (global.get 0) "segment"))'
            imports = {("env", "g"): Global.new(engine, "i32", 70000)}
        elif writer == "copied":
            text = '(module (memory 2 40) (data (i32.const 70000) "copied bytes"))'
        elif writer == "start":
            text = ('(module (memory 2 40) (func $s (i32.store (i32.const 70000) (i32.const -1))'
                    ' (drop (memory.grow (i32.const 1)))) (start $s))')
        elif writer == "called":
            text = '(module (memory 2 40) (func (export "w") (i32.store (i32.const 70000) (i32.const -1))))'
        else:
            text = '(module (memory (export "m") 2 40))'
        tenant = Module(engine, wat(text))
        plain = compile_all(engine, ["plain"])["plain"]
        for _ in range(3):
            inst = Instance(tenant, imports)
            if writer == "grown":
                assert inst.exports["m"].grow(1) == 2  # (the export makes it)
                inst.exports["m"].fill(65536, 0xFE, 2 * 65536)
            elif writer == "called":
                inst.exports["w"]()
                assert inst._made is None
            assert inst._memory_descs() is not None  # whatever wrote it made a descriptor
            inst.close()
            with Instance(plain) as inst:
                check_clean(inst, "plain")
                check_grown_clean(inst, "plain")
        # A tenant never looked at, released clean, between two that were.
        with Instance(plain) as inst:
            dirty(inst)
        Instance(plain).close()
        with Instance(plain) as inst:
            check_clean(inst, "plain")
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0
