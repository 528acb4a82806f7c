"""runtime/_views.py: an instance's Memory objects and Table views, made on first use and
once, and what its interpreter state reaches without them (a descriptor its allocation
describes, the table entries themselves): a later Memory or view adopts them, an
instance closed during its call keeps them until the call returns, close and the
backstop give each back once."""
import gc
import os
import threading

import pytest

from runtime import Instance, Module, PoolingAllocator
from tests.helpers import ONE_MEMORY, inst, maps_and_fds, wat


def test_memory_objects_are_made_on_first_use_and_only_once(engine):
    i = Instance(Module(engine, wat(ONE_MEMORY)))
    assert i._made is None  # nobody looked yet
    ranges = i.reservation_ranges()  # no Memory object needed for this
    assert i._made is None
    m = i.memory(0)
    assert i.exports["m"] is m and i.memories == [m] and i._made == [m]
    assert m.reservation_range == ranges[0]
    i.close()
    assert m.closed and i.closed
    with pytest.raises(ValueError, match="closed"):
        m.read(0, 1)
    with pytest.raises(ValueError, match="instance is closed"):
        i.memory(0)  # neither the closed object nor a new one


def _closed_and_dropped_instances_leave_nothing(engine, module, live_counts, use=lambda i: None,
                                                pool_maps=True, imports=None):
    """50 instances closed and 50 dropped unclosed (the __del__ backstop) leave no mapping
    or fd, and a pool counts none of ``live_counts`` (its ``live_*`` attribute names);
    ``use(instance)`` runs on each first. ``pool_maps`` False: a pool's mappings are not
    counted when its tenants write (a table slot keeps the storage their writes mapped, a
    memory slot the splits its resets left, for the next tenant): its counts tell."""
    pooled = isinstance(engine.allocator, PoolingAllocator)
    Instance(module, imports).close()  # the first instance sets up the one-call path
    gc.collect()
    before = maps_and_fds(collect=True)
    for _ in range(50):
        i = Instance(module, imports)
        use(i)
        i.close()
    for _ in range(50):
        use(Instance(module, imports))  # dropped unclosed: __del__ releases it
    after = maps_and_fds(collect=True)
    if pool_maps or not pooled:
        assert after == before
    assert after[1] == before[1]  # (fds)
    if pooled:
        assert [getattr(engine.allocator, name) for name in live_counts] == [0] * len(live_counts)


def test_a_memory_never_looked_at_is_released_by_close_and_by_the_backstop(engine):
    _closed_and_dropped_instances_leave_nothing(engine, Module(engine, wat(ONE_MEMORY)),
                                                ("live_instances", "live_memories"))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps")
def test_reservation_ranges_of_unmade_memories_match_the_process_mappings(engine):
    from tests.helpers import layout
    module = Module(engine, wat(ONE_MEMORY))
    Instance(module).close()
    i = Instance(module)
    (start, end), = i.reservation_ranges()
    plan = module.env.memory_plans[0]
    perms = [p for _, _, p in layout(start, end)]
    assert "rw-p" in perms and perms[0] in ("---p", "rw-p")
    if not isinstance(engine.allocator, PoolingAllocator):
        assert end - start == plan.reservation_bytes()
        assert perms[0] == "---p" and perms[-1] == "---p"  # pre-guard and offset guard
    i.close()
    with pytest.raises(ValueError, match="closed"):
        i.reservation_ranges()
    with pytest.raises(ValueError, match="closed"):
        i.memory(0)



TABLES = """(module (memory 1) (table $t (export "t") 4 funcref) (table (export "u") 2 externref)
  (func $f (export "f") (result i32) (i32.const 7)) (elem (i32.const 1) $f)
  (func (export "call1") (result i32) (call_indirect $t (result i32) (i32.const 1))))"""


def test_table_views_are_made_on_first_use_and_only_once(engine):
    i = inst(engine, TABLES)
    assert i._views is None  # nobody looked yet: the tables are open in C only
    t = i.exports["t"]
    assert i._views == [t, None]  # only the table asked for
    assert i.exports["t"] is t and i._table(0) is t and i.tables[0] is t
    assert t.get(1) is i.exports["f"] and t.get(0) is None  # the lazy element: this instance's f
    i.close()
    assert t.closed
    with pytest.raises(ValueError, match="table is closed"):
        t.get(1)
    with pytest.raises(ValueError, match="instance is closed"):
        i.exports["u"]  # never made: none is made after close
    with pytest.raises(ValueError, match="instance is closed"):
        _ = i.tables


def test_a_call_binds_the_tables_and_resolves_lazy_elements_in_c(engine):
    i = inst(engine, TABLES)
    assert i.exports["call1"]() == 7  # its interpreter state reaches the entries: no view made
    assert i._views is None
    t = i.exports["t"]  # a view made afterwards adopts the bound entry
    assert t._binder is None and t.get(1) is i.exports["f"] and t.get(0) is None
    assert i.exports["call1"]() == 7
    i.close()
    assert t.closed
    with pytest.raises(ValueError, match="instance is closed"):
        i.exports["u"]


OWN_STATE = """(module (import "h" "close" (func $close)) (memory 1 4) (table 2 funcref)
  (func $three (result i32) (i32.const 3)) (elem (i32.const 1) $three)
  (func (export "store") (param i32) (i32.store (i32.const 0xFFF0) (local.get 0)))
  (func (export "run") (param i32) (result i32)
    call $close
    (i32.store (i32.const 0xFFF0) (local.get 0))
    (i32.add (i32.load (i32.const 0xFFF0)) (call_indirect (result i32) (i32.const 1)))))"""


def test_a_call_runs_on_descriptors_and_entries_no_memory_or_table_object_was_made_for(engine):
    """Its interpreter state points at a descriptor its allocation described and at the
    table entries themselves; a Memory (Table) made afterwards adopts that descriptor
    (entry) and reads what the code wrote; close releases each once."""
    i = Instance(Module(engine, wat(OWN_STATE)), {("h", "close"): lambda: None})
    i.exports["store"](0x1234)
    assert i._made is None and i._views is None
    desc, = i._descs
    m = i.memory(0)
    assert m._desc is desc and i._descs is None  # (the Memory holds it now)
    assert m.read(0xFFF0, 4) == (0x1234).to_bytes(4, "little")
    assert i.exports["run"](5) == 8 and m.read(0xFFF0, 1) == b"\x05"  # (through the Memory, the same bytes)
    i.close()
    assert m.closed
    if isinstance(engine.allocator, PoolingAllocator):
        assert engine.allocator.live_memories == engine.allocator.live_tables == 0


def test_an_instance_closed_during_its_call_keeps_what_its_code_runs_on_until_the_call_returns(engine):
    """A host function closes the instance mid-call while no Memory or Table object exists:
    the call goes on storing, loading and calling through its table, on its own memory and
    entries, which go back only when the call returns."""
    module = Module(engine, wat(OWN_STATE))
    box = {}

    def close():
        box["i"].close()
        box["closed_during"] = box["i"].closed

    Instance(module, {("h", "close"): close}).close()
    gc.collect()
    before = maps_and_fds(collect=True)
    i = box["i"] = Instance(module, {("h", "close"): close})
    assert i.exports["run"](0x5A5A) == 0x5A5A + 3
    assert box["closed_during"] and i._made is None and i._views is None
    with pytest.raises(ValueError, match="closed"):
        i.memory(0)
    if isinstance(engine.allocator, PoolingAllocator):
        assert [engine.allocator.live_instances, engine.allocator.live_memories,
                engine.allocator.live_tables] == [0, 0, 0]
    del box["i"], i
    assert maps_and_fds(collect=True) == before


def test_memories_written_by_a_call_are_released_by_close_and_by_the_backstop(engine):
    """A memory its code wrote through a described descriptor (no Memory object) goes back
    at close and with a dropped instance (a pool resets the slot: it was written)."""
    _closed_and_dropped_instances_leave_nothing(engine, Module(engine, wat(OWN_STATE)),
                                                ("live_instances", "live_memories", "live_tables"),
                                                use=lambda i: i.exports["store"](-1),
                                                imports={("h", "close"): lambda: None}, pool_maps=False)


def test_tables_bound_by_a_call_are_released_by_close_and_by_the_backstop(engine):
    """Entries its interpreter state bound without a view, then wrote (their storage
    mapped on that first write), go back at close (after the last call in flight) and
    with a dropped instance; none is released twice."""
    text = ('(module (memory 1) (table $t 4 funcref) (func $f (result i32) (i32.const 7))'
            ' (elem (i32.const 1) $f)'
            ' (func (export "set") (table.set $t (i32.const 2) (ref.func $f))))')

    def use(i):
        i.exports["set"]()
        assert i._views is None

    _closed_and_dropped_instances_leave_nothing(engine, Module(engine, wat(text)),
                                                ("live_tables", "live_instances"), use=use, pool_maps=False)


def test_tables_never_looked_at_are_released_by_close_and_by_the_backstop(engine):
    _closed_and_dropped_instances_leave_nothing(engine, Module(engine, wat(TABLES)),
                                                ("live_tables", "live_instances"))


def test_an_imported_table_outlives_its_definers_close(engine):
    a = inst(engine, '(module (table (export "t") 2 funcref) (func $f (result i32) (i32.const 7))'
                     ' (elem (i32.const 0) $f))')
    t = a.exports["t"]
    b = inst(engine, '(module (import "a" "t" (table 2 funcref))'
                     ' (func (export "call0") (result i32) (call_indirect (result i32) (i32.const 0))))',
             {("a", "t"): t})
    pool = engine.allocator if isinstance(engine.allocator, PoolingAllocator) else None
    live = pool.live_tables if pool else 0
    a.close()
    assert t.closed
    with pytest.raises(ValueError, match="table is closed"):
        t.get(0)
    assert b.exports["call0"]() == 7  # b's code still runs on the storage (and a's function)
    if pool:
        assert pool.live_tables == live  # its table slot stays taken until b closes
    b.close()
    if pool:
        assert pool.live_tables == live - 1


def _eight_threads_get_one_object(engine, module, ask, live_count):
    """20 rounds of 8 threads calling ``ask(inst)`` at once on a fresh instance get one
    object; closing the instance closes it once, and a pool counts none of ``live_count``."""

    for _ in range(20):
        inst = Instance(module)
        start, got = threading.Barrier(8), []

        def run(start=start, got=got, inst=inst):
            start.wait()
            got.append(ask(inst, len(got)))
        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 8 and all(x is got[0] for x in got)
        inst.close()  # one release: a second object would release it again
        assert got[0].closed
    if isinstance(engine.allocator, PoolingAllocator):
        assert getattr(engine.allocator, live_count) == 0


def test_threads_asking_for_a_memory_at_once_get_one_object(engine):
    module = Module(engine, wat('(module (memory (export "m") 1 2 shared))'))
    _eight_threads_get_one_object(engine, module, lambda inst, k: inst.memory(0), "live_memories")


def test_threads_asking_for_a_table_at_once_get_one_view(engine):
    _eight_threads_get_one_object(engine, Module(engine, wat(TABLES)),
                                  lambda inst, k: inst.exports["t"] if k % 2 else inst.tables[0],
                                  "live_tables")


