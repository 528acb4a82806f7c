"""PoolingAllocator, the allocator API: limits and their errors, the reservation and the
slot layout, host memories, close and the backstops, the one-call path through the C slot
table.

The pool helpers (``make_pool``, ``MODULES``, ``check_clean``, ...) are in tests/helpers.py,
its fixtures (``pool``, ``reset``) in tests/conftest.py. Elsewhere: what one tenant can
see of another, test_pooling_isolation.py; threads, test_pooling_threads.py; the C slot
table on its own, test_wenv_pool.py.
"""
import gc

import pytest

import runtime
from runtime import (AllocationError, Engine, Instance, Memory, Module, PoolingAllocator, Trap,
                     TrapCode, WasmRuntimeError)
from runtime.pooling import PoolMemorySlot
from runtime.table import TableSpec
from tests.helpers import (GUARD, MAX_PAGES, WASM_PAGE, _memory_only, check_clean, compile_all, mapped_bytes,
                           dirty, layout, linux_only, make_pool, maps_and_fds, module_text,
                           run_child, wat)


# ---- limits ---------------------------------------------------------------------------

@linux_only
def test_max_instances_exhaustion_and_recovery():
    with make_pool(max_instances=3) as pool:
        mod = compile_all(Engine(allocator=pool), ["img_a"])["img_a"]
        for _ in range(2):  # warm up: every slot used (and grown) once, lazy imports done
            live = [Instance(mod) for _ in range(3)]
            with pytest.raises(AllocationError) as info:
                Instance(mod)
            for i in live:
                dirty(i)  # a released slot keeps its grown pages' protection until reuse
                i.close()
        before = maps_and_fds()
        for rep in range(10):
            live = [Instance(mod) for _ in range(3)]
            for _ in range(3):
                with pytest.raises(AllocationError) as info:
                    Instance(mod)
                assert info.value.limit == "max_instances" and "max_instances" in str(info.value)
            assert pool.live_instances == 3
            live.pop(rep % 3).close()
            live.append(Instance(mod))
            for i in live:
                check_clean(i, "img_a")
                dirty(i)
                i.close()
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0
        assert maps_and_fds() == before


@pytest.mark.parametrize("text, limit", [
    ("(module (memory 1) (memory 1))", "max_memories_per_instance"),
    ("(module (memory 49))", "max_memory_pages"),
    ("(module (table 1 funcref) (table 1 funcref))", "max_tables_per_instance"),
    ("(module (table 65 funcref))", "max_table_elements"),
])
def test_module_limits_refused_before_anything_is_taken(pool, text, limit):
    mod = Module(Engine(allocator=pool), wat(text))
    for _ in range(5):
        with pytest.raises(AllocationError) as info:
            Instance(mod)
        assert info.value.limit == limit and limit in str(info.value)
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0
    ok = Module(Engine(allocator=pool), wat(module_text(1)))
    with Instance(ok) as inst:
        assert inst.exports["m"].size_pages == 1


def test_table_limits_at_grow_and_reset(pool):
    mod = Module(Engine(allocator=pool), wat(module_text(1, table=(4, 1000))))
    for _ in range(10):
        with Instance(mod) as inst:
            t, f = inst.exports["t"], inst.exports["f"]
            assert [t.get(i) for i in range(t.size)] == [None] * 4
            assert t.grow(60) == 4
            assert t.grow(1) == -1  # max_table_elements=64 even though the type allows 1000
            assert t.size == 64
            t.fill(0, f, 64)
            assert t.get(63) is f


def test_a_dropped_pooled_table_returns_its_table_slot():
    """A pooled Table owns its table slot, with close(), a context manager and the Owner
    backstop: dropped unclosed, it gives the slot back (its instance usually closes it)."""
    with make_pool() as pool:  # one table slot
        mod = Module(Engine(allocator=pool), wat(module_text(1)))
        table = pool.begin_instance(mod).allocate_table(TableSpec.of(mod.env.table_plans[0], None), None)
        assert pool.live_tables == 1 and table.size == 4
        del table  # no collection needed: the backstop runs when the last reference goes
        assert pool.live_tables == 0
        with Instance(mod) as inst:  # the only slot serves the next tenant
            assert inst.exports["t"].size == 4 and pool.live_tables == 1
        with pool.begin_instance(mod).allocate_table(TableSpec.of(mod.env.table_plans[0], None), None) as table:
            assert pool.live_tables == 1
        assert pool.live_tables == 0 and table.closed


@linux_only
def test_pool_dropped_with_its_live_instances_in_one_garbage_cycle():
    """The allocator, its module and live instances (memories made and written) all become
    garbage in one cycle: the finalizers run in any order, and the instances' backstops
    still return their slots to the C pool, so it must outlive them (freed memory is
    poisoned by MALLOC_PERTURB_, so a use after free crashes or misbehaves)."""
    proc = run_child("""
        import gc, wasmtime
        from runtime import Engine, Instance, Module, PoolingAllocator
        wasm = wasmtime.wat2wasm('(module (memory 1) (data (i32.const 0) "x"))')
        left = 0
        for trial in range(20):
            pool = PoolingAllocator(8, 1, 2, 1, 10, guard_bytes=65536)
            module = Module(Engine(allocator=pool), wasm)
            Instance(module).close()  # the one-call path from now on
            lo, hi = pool.reservation_range
            junk = [Instance(module) for _ in range(4)]
            for inst in junk[:2]:
                inst.memory(0).store_i32(0, 7)
            junk.append(junk)  # a cycle holding everything
            del pool, module, inst, junk
            gc.collect()
            with open("/proc/self/maps") as f:
                for line in f:
                    a, b = (int(x, 16) for x in line.split()[0].split("-"))
                    left += a < hi and b > lo
        from runtime import pooling
        print("ok", left, len(pooling._IN_USE))  # every pool closed (its backstop) and freed
    """, env_extra={"MALLOC_PERTURB_": "165", "MALLOC_CHECK_": "3"})
    assert proc.returncode == 0 and proc.stdout.split() == ["ok", "0", "0"], proc.stdout + proc.stderr


@linux_only
def test_failed_instantiation_half_way_returns_everything():
    # The out-of-bounds segment keeps the module Segmented: "ok" is written, then a trap.
    text = module_text(2, [(0, b"ok"), (200000, b"oob")])
    with make_pool(max_instances=2) as pool:
        eng = Engine(allocator=pool)
        bad = Module(eng, wat(text))
        good = compile_all(eng, ["plain"])["plain"]
        assert bad.env.memory_initialization.is_segmented()
        with pytest.raises(Trap):
            Instance(bad)
        for i in [Instance(good), Instance(good)]:  # warm up: both slots used once
            i.close()
        before = maps_and_fds()
        for _ in range(20):
            with pytest.raises(Trap) as info:
                Instance(bad)
            assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS
            assert pool.live_instances == pool.live_memories == pool.live_tables == 0
        a, b = Instance(good), Instance(good)
        check_clean(a, "plain")
        check_clean(b, "plain")  # "ok" written by the failed instances is gone
        a.close()
        b.close()
        assert maps_and_fds() == before


@linux_only
def test_pool_reservation_failure_names_the_limit():
    before = maps_and_fds()
    with pytest.raises(AllocationError) as info:  # 2^20 slots of 4 GiB + 2 GiB
        PoolingAllocator(1 << 20, 1, 65536, 1, 1, guard_bytes=2 << 30)
    assert info.value.limit == "address space" and "PoolingAllocator" in str(info.value)
    with pytest.raises(AllocationError) as info:  # more than 2^64 bytes
        PoolingAllocator(1 << 40, 4, 65536, 1, 1, guard_bytes=2 << 30)
    assert info.value.limit == "address space"
    # Lazily reserved from the engine's tunables: the first instantiation fails.
    pool = PoolingAllocator(1 << 20, 1, 65536, 1, 1)
    eng = Engine(runtime.Engine().tunables.replace(static_memory_offset_guard_size=2 << 30), allocator=pool)
    mod = Module(eng, wat("(module (memory 1))"))
    with pytest.raises(AllocationError) as info:
        Instance(mod)
    assert info.value.limit == "address space"
    assert pool.live_instances == 0
    pool.close()
    assert maps_and_fds()[1] == before[1]


@linux_only
@pytest.mark.parametrize("args, kw", [
    ((2**32, 1, 0, 0, 0), dict(guard_bytes=4096)),            # 2^32 slots of one page: 16 TiB
    ((2**32, 0, 0, 0, 0), dict(guard_bytes=4096)),            # max_instances past the C's uint32
    ((1 << 16, 1 << 16, 0, 0, 0), dict(guard_bytes=4096)),    # 2^32 slots, each count fits
    ((1, 1, 1, 1, 1), dict(guard_bytes=4096, keep_resident=2**64)),
    ((0, 1, 2**60, 1, 1), dict(guard_bytes=4096)),            # a slot past 2^64 bytes
])
def test_arguments_the_pool_cannot_hold_are_refused_before_reserving(args, kw):
    """Refused with ValueError or AllocationError (never cffi's OverflowError), and
    nothing stays reserved -- not even until the next garbage collection."""
    before = mapped_bytes()
    with pytest.raises((ValueError, AllocationError)) as info:
        PoolingAllocator(*args, **kw)
    assert not isinstance(info.value, OverflowError)
    assert mapped_bytes() - before < (1 << 30)  # no reservation left behind


def test_constructor_validation():
    for bad in (-1, 1.5, None, True):
        with pytest.raises(ValueError):
            PoolingAllocator(bad, 1, 1, 1, 1)
    with pytest.raises(ValueError):
        PoolingAllocator(1, 1, 1, 1, 1, keep_resident=-1)


def test_dropped_unclosed_instances_are_collected_at_the_limit(monkeypatch):
    """Instances with views are reference cycles; dropped without close() they hold their slots
    until the cyclic GC runs, which the pool forces (rate-limited) at max_instances."""
    monkeypatch.setattr(runtime.pooling, "_COLLECT_INTERVAL", 0.0)
    with make_pool(max_instances=2) as pool:
        mod = compile_all(Engine(allocator=pool), ["img_a"])["img_a"]
        gc.disable()
        try:
            for _ in range(10):  # never closed, only dropped
                inst = Instance(mod)
                dirty(inst)
            del inst
        finally:
            gc.enable()
        with Instance(mod) as a, Instance(mod) as b:
            check_clean(a, "img_a")
            check_clean(b, "img_a")
            with pytest.raises(AllocationError):
                Instance(mod)
        # Rate-limited: right after a forced collection, a refusal does not collect again.
        monkeypatch.setattr(runtime.pooling, "_COLLECT_INTERVAL", 3600.0)
        gc.disable()
        try:
            for _ in range(2):  # a Memory view and its instance: garbage cycles now, but...
                Instance(mod).memory(0)
            with pytest.raises(AllocationError):
                Instance(mod)  # ...the last forced collection was just now
        finally:
            gc.enable()
        gc.collect()
        assert pool.live_instances == 0


# ---- layout, host memories, close ----------------------------------------------------

@linux_only
def test_slot_layout_one_reservation_guards_between_slots():
    with make_pool(max_instances=4, max_memory_pages=3) as pool:
        assert pool.slot_bytes == 3 * WASM_PAGE + GUARD
        start, end = pool.reservation_range
        assert end - start == GUARD + 4 * pool.slot_bytes
        mod = Module(Engine(allocator=pool), wat(module_text(2, max_pages=3, table=None)))
        insts = [Instance(mod) for _ in range(4)]
        bases = sorted(i.exports["m"].base_address for i in insts)
        assert bases == [start + GUARD + k * pool.slot_bytes for k in range(4)]
        pieces = layout(start, end)
        expect = [(start, bases[0], "---p")]
        for b in bases:
            expect += [(b, b + 2 * WASM_PAGE, "rw-p"), (b + 2 * WASM_PAGE, b + pool.slot_bytes, "---p")]
        merged = []
        for lo, hi, perms in expect:
            if merged and merged[-1][2] == perms and merged[-1][1] == lo:
                merged[-1] = (merged[-1][0], hi, perms)
            else:
                merged.append((lo, hi, perms))
        assert pieces == merged
        for i in insts:
            i.close()


def test_host_memories_are_on_demand_not_pooled(pool):
    eng = Engine(allocator=pool)
    with Memory.new(eng, 1, 100) as m:
        start, end = pool.reservation_range or (0, 0)
        assert not start <= m.base_address < end
        assert m.grow(99) == 1  # not capped by max_memory_pages
    assert pool.live_memories == 0


@linux_only
def test_close_with_live_instances_is_deferred():
    pool = make_pool(max_instances=2)
    mod = compile_all(Engine(allocator=pool), ["img_a"])["img_a"]
    a = Instance(mod)
    start, end = pool.reservation_range
    pool.close()
    assert pool.closed
    with pytest.raises(ValueError, match="closed"):
        Instance(mod)
    assert a.exports["m"].read(0, 4) == b"AAAA"  # still mapped, still usable
    assert pool.reservation_range == (start, end)
    a.close()
    assert pool.reservation_range is None
    assert layout(start, end) == [(start, end, None)] or all(p is None or p == "---p"
                                                             for _, _, p in layout(start, end))
    pool.close()  # idempotent


@linux_only
def test_context_manager_and_finalizer_unmap_the_pool():
    with make_pool() as pool:
        mod = compile_all(Engine(allocator=pool), ["plain"])["plain"]
        with Instance(mod):
            start, end = pool.reservation_range
    assert pool.closed and pool.reservation_range is None
    assert all(p is None for _, _, p in layout(start, end))
    pool = make_pool()
    eng = Engine(allocator=pool)
    mod = Module(eng, wat(module_text(1)))
    Instance(mod).close()
    start, end = pool.reservation_range
    del pool, eng, mod
    gc.collect()
    assert all(p is None for _, _, p in layout(start, end))


def test_lazy_reservation_follows_the_engine_tunables():
    pool = PoolingAllocator(2, 1, 4, 1, 4)
    assert pool.reservation_range is None
    tunables = runtime.Engine().tunables.replace(static_memory_offset_guard_size=32 << 20,
                                                 guard_before_linear_memory=False)
    eng = Engine(tunables, allocator=pool)
    with Instance(Module(eng, wat("(module (memory 1))"))) as inst:
        assert pool.guard_bytes == 32 << 20 and pool.slot_bytes == 4 * WASM_PAGE + (32 << 20)
        start, end = pool.reservation_range
        assert end - start == 2 * pool.slot_bytes  # no pre-guard
        assert inst.memory(0).base_address == start
        slot = inst.memory(0)._state.slot
        assert isinstance(slot, PoolMemorySlot) and slot.guard_bytes == 32 << 20
    pool.close()


def test_memory64_and_shared_memories_in_slots(pool):
    eng = Engine(allocator=pool)
    mod = Module(eng, wat('(module (memory (export "m") i64 1 100))'))
    for _ in range(5):
        with Instance(mod) as inst:
            mem = inst.exports["m"]
            assert mem.read(0, WASM_PAGE) == bytes(WASM_PAGE)
            assert mem.grow(MAX_PAGES) == -1 and mem.grow(MAX_PAGES - 1) == 1
            with pytest.raises(Trap):
                mem.load_i64(MAX_PAGES * WASM_PAGE)
            mem.fill(0, 0xFE, mem.byte_len)
    shared = Module(eng, wat('(module (memory (export "m") 1 4 shared))'))
    for _ in range(5):
        with Instance(shared) as inst:
            mem = inst.exports["m"]
            assert mem.shared and mem.read(0, WASM_PAGE) == bytes(WASM_PAGE)
            assert mem.grow(3) == 1 and mem.grow(1) == -1
            mem.fill(0, 0xFE, mem.byte_len)


# ---- the C slot table (c_src/wenv_pool.c) -----------------------------------------------

def test_slot_keeps_its_image_for_the_same_module_and_drops_it_for_another(pool):
    eng = Engine(allocator=pool)
    a, b = Module(eng, _memory_only(2, [(0, b"AAAA")])), Module(eng, _memory_only(2, [(0, b"BBBB")]))
    for _ in range(3):  # the one-call path from the second instance on
        with Instance(a) as inst:
            slot = inst.memory(0)._state.slot
            assert slot.state["image_key"] == a.images[0].key and slot.state["in_use"] == 1
            assert inst.memory(0).read(0, 4) == b"AAAA"
            inst.memory(0).write(0, b"dirt")
    assert slot.state["in_use"] == 0 and slot.state["image_key"] == a.images[0].key  # affinity
    with Instance(b) as inst:
        assert inst.memory(0)._state.slot.index == slot.index  # LIFO: the same slot
        assert slot.state["image_key"] == b.images[0].key
        assert inst.memory(0).read(0, 8) == b"BBBB\0\0\0\0"


def test_a_slot_released_twice_is_refused_without_corrupting_the_pool():
    with make_pool(max_instances=2) as pool:
        mod = Module(Engine(allocator=pool), _memory_only(1))
        inst = Instance(mod)
        slot = inst.memory(0)._state.slot
        inst.close()
        with pytest.raises(WasmRuntimeError, match="not in use"):
            pool._core.put(slot.index, False)
        live_instances, live_memories, created, free, bad = pool._core.stats()
        assert (live_instances, live_memories, bad) == (0, 0, 0) and free == created
        a, b = Instance(mod), Instance(mod)  # both slots still handed out exactly once
        assert a.memory(0).base_address != b.memory(0).base_address
        a.close()
        b.close()


def test_one_call_instances_count_against_max_instances_and_come_back():
    with make_pool(max_instances=3) as pool:
        mod = Module(Engine(allocator=pool), _memory_only(1, [(0, b"x")]))
        Instance(mod).close()
        assert mod._instance_layout.fast
        for _ in range(20):
            live = [Instance(mod) for _ in range(3)]
            with pytest.raises(AllocationError) as info:
                Instance(mod)
            assert info.value.limit == "max_instances"
            assert pool.live_instances == pool.live_memories == 3
            for i in live:
                i.close()
        assert pool.live_instances == pool.live_memories == 0
        assert pool._core.stats()[4] == 0  # no in-use slot on the free list


_POOL_CLOSED_UNDER_A_LIVE_VIEW = """
import gc
from runtime import Engine, Instance, Module
from tests.helpers import _memory_only, make_pool
keep = []  # the views live until the interpreter's exit, their pools closed long before
for _ in range(2):
    with make_pool(max_instances=3, max_memory_pages=8) as pool:
        inst = Instance(Module(Engine(allocator=pool), _memory_only(1, [])))
        mem = inst.memory(0)
        mem.fill(0, 0xFE, 10)
        keep.append(mem)
        del inst, mem
        gc.collect()
    print("live", pool._core.stats()[:2])
"""


def test_a_pool_closed_under_a_live_view_is_freed_only_after_its_last_slot_returns():
    """The view outlives its pool's close and every Python reference: at exit its slot goes
    back into a C pool that is still allocated (a freed pool was written to: heap
    corruption, glibc aborted the process at exit)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONMALLOC="malloc")
    proc = subprocess.run([sys.executable, "-c", _POOL_CLOSED_UNDER_A_LIVE_VIEW], env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "live (1, 1)" in proc.stdout


@pytest.mark.parametrize("memory", ["(memory 1)", ""], ids=["one-memory", "no-memory"])
def test_an_instance_without_a_table_slot_is_refused_and_leaves_nothing_taken(memory):
    """Every table slot held (here by a table made outside an instance): instantiation
    (with one memory: the one-call open, then the same in steps) says which limit, with
    its memory slot given back and the instance not counted; once the table slot is free
    again the same module instantiates."""
    with make_pool() as pool:  # one instance, one table slot
        mod = Module(Engine(allocator=pool), wat(f'(module {memory} (table (export "t") 2 funcref))'))
        Instance(mod).close()
        held = pool.begin_instance(mod).allocate_table(TableSpec.of(mod.env.table_plans[0], None))
        with pytest.raises(AllocationError) as info:
            Instance(mod)
        assert info.value.limit == "max_tables_per_instance"
        assert pool.live_instances == pool.live_memories == 0 and pool.live_tables == 1
        held.close()
        with Instance(mod) as inst:
            assert inst.exports["t"].size == 2 and pool.live_tables == 1
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0


_POOL_CLOSED_UNDER_LIVE_TABLES = """
from runtime import Engine, Instance, Module
from tests.helpers import make_pool, wat
keep = []  # live until the interpreter's exit, their pools closed long before
for viewed in (False, True):
    with make_pool(max_instances=3, max_memory_pages=8) as pool:
        inst = Instance(Module(Engine(allocator=pool), wat('(module (memory 1) (table (export "t") 4 funcref))')))
        keep.append(inst)
        if viewed:
            keep.append(inst.exports["t"])
    print("live", pool.live_tables)
"""


def test_a_pool_closed_under_live_tables_keeps_its_table_slots_until_the_last_returns():
    """Instances (one with a Table view) outlive their pool's close and every Python
    reference: at exit, whatever order the finalizers run in, their tables go back into a
    table pool that is still allocated (C frees it with the last table in use)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONMALLOC="malloc")
    proc = subprocess.run([sys.executable, "-c", _POOL_CLOSED_UNDER_LIVE_TABLES], env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["live", "1", "live", "1"]


@pytest.mark.parametrize("grown_to", [64, 20_000], ids=["memset", "decommit"])
def test_a_table_slot_keeps_its_storage_and_the_next_tenant_sees_none_of_it(grown_to):
    """A table slot's storage is kept between tenants and reset in C: elements the last
    tenant set (a few, zeroed by memset; 20,000, whose pages are decommitted) read as
    the next tenant's own (its lazy segment element, nulls elsewhere), at its own size."""
    text = ('(module (table (export "t") 4 20000 funcref) (func $f (export "f"))'
            ' (elem (i32.const 1) $f))')
    with make_pool(max_table_elements=20_000) as pool:
        mod = Module(Engine(allocator=pool), wat(text))
        with Instance(mod) as first:
            table, f = first.exports["t"], first.exports["f"]
            assert table.grow(grown_to - 4, f) == 4
            table.fill(0, f, table.size)
            storage = table._t.elements  # (a tenant's table moves in and out of its slot)
        with Instance(mod) as second:
            table = second.exports["t"]
            assert table._t.elements == storage  # the same storage, reused
            assert table.size == 4
            assert [table.get(i) for i in (0, 2, 3)] == [None] * 3
            assert table.get(1) is second.exports["f"]
            assert table.grow(grown_to - 4) == 4
            assert all(table.get(i) is None for i in range(4, grown_to))
