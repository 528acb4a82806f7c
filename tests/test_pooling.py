"""PoolingAllocator: slot reuse, reset, isolation, limits, threads.

Every isolation test reuses the same slot many times (max_instances=1, or checks the
slot address) and checks *every* byte and table element the next tenant can reach.
Regression tests are named after Wasmtime's pooling-allocator advisories and model them:

* CVE-2022-39393 (GHSA-wh6w-3828-g9qf): a slot that held module A's CoW image is reused
  by a module without an image; the old image stayed mapped and was readable (and the
  slot's state confused the next image module).
* CVE-2022-39392 (GHSA-44mr-8vmm-wjhg): out-of-bounds access with a zero-memory-pages
  pool: bounds-check elision assumed the tunables' 4 GiB static bound although the slot
  was tiny, so accesses reached neighbouring slots. Here: the C descriptor of a memory in
  a slot must describe the slot, a reused slot must expose exactly the memory's size,
  and every out-of-bounds access traps.
* GHSA-6wgr-89rj-399p (CVE-2026-34988): data leakage between pooling allocator
  instances when a slot is not fully reset before reuse (a failed madvise/mmap reset,
  see Wasmtime PRs 12888/13070; and the keep_resident prefix). Here: failing reset
  steps, and keep_resident values that are not page multiples.
"""
import gc
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime
from runtime import (AllocationError, Engine, Instance, Memory, Module, PoolingAllocator, Trap,
                     TrapCode, WasmRuntimeError, _ffi)
from runtime.pooling import PoolMemorySlot
from tests.helpers import layout, maps_and_fds, run_child, smaps_usage, wat

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

PAGE = _ffi.PAGE_SIZE
WASM_PAGE = 65536
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


@pytest.fixture(params=["madvise", "remap"])
def reset(request, monkeypatch):
    """Run an isolation test with each pool reset (MADV_DONTNEED, and the macOS way:
    fresh anonymous pages): make_pool() and the ``pool`` fixture use it."""
    monkeypatch.setitem(POOL_DEFAULTS, "reset", request.param)
    return request.param


#: Isolation tests run with both resets.
each_reset = pytest.mark.usefixtures("reset")


@pytest.fixture
def pool(request):
    if "reset" in request.fixturenames:
        request.getfixturevalue("reset")  # before the pool is made
    with make_pool() as p:
        yield p


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


# ---- reuse and reset ------------------------------------------------------------------

@each_reset
@pytest.mark.parametrize("keep_resident", [0, 64 << 10, 10000, 1 << 20])
@pytest.mark.parametrize("name", ["img_a", "plain", "img_c"])
def test_dirty_slot_is_reset_for_the_next_instance(name, keep_resident):
    with make_pool(keep_resident=keep_resident) as pool:
        mod = compile_all(Engine(allocator=pool), [name])[name]
        slots = set()
        for i in range(30):
            with Instance(mod) as inst:
                slots.add(inst.exports["m"].reservation_range)
                check_clean(inst, name)
                if i % 3 == 2:
                    check_grown_clean(inst, name)
                dirty(inst)
        assert len(slots) == 1
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0


SEQUENCE = ["img_a", "plain", "img_a", "img_c", "plain", "img_c", "img_big", "img_a", "img_big",
            "plain", "plain", "img_big", "img_c", "img_a", "img_a"]


@each_reset
@pytest.mark.parametrize("keep_resident", [0, 10000, 3 * WASM_PAGE])
def test_slot_switches_between_images_and_no_image(keep_resident):
    with make_pool(keep_resident=keep_resident) as pool:
        mods = compile_all(Engine(allocator=pool))
        slots = set()
        for rep in range(4):
            for step, name in enumerate(SEQUENCE):
                with Instance(mods[name]) as inst:
                    slots.add(inst.exports["m"].reservation_range)
                    check_clean(inst, name)
                    if (rep + step) % 4 == 0:
                        check_grown_clean(inst, name)
                    dirty(inst)
        assert len(slots) == 1


@each_reset
def test_cve_2022_39393_image_of_the_previous_module_never_visible(pool):
    """A slot used by a module with an image, then by one without: the second must see
    zeros where the image was (the bug left the image mapped), and the first module must
    get its image back afterwards (the bug made Wasmtime fault on that reuse)."""
    mods = compile_all(Engine(allocator=pool), ["img_a", "plain", "img_big"])
    for _ in range(20):
        with Instance(mods["img_a"]) as a:       # image mapped, not even written
            assert a.exports["m"].read(0, 4) == b"AAAA"
        with Instance(mods["plain"]) as p:
            check_clean(p, "plain")
            check_grown_clean(p, "plain")
        with Instance(mods["img_big"]) as b:
            check_clean(b, "img_big")
        with Instance(mods["img_a"]) as a:
            check_clean(a, "img_a")


@each_reset
def test_image_survives_module_close_only_for_that_module(pool):
    """A slot keeps the last image mapped after release; once that module is closed and
    collected, another module with the same layout must not inherit the mapping."""
    eng = Engine(allocator=pool)
    text = module_text(2, [(0, b"first")])
    first = Module(eng, wat(text))
    with Instance(first) as i:
        assert i.exports["m"].read(0, 5) == b"first"
    first.close()
    del first, i
    gc.collect()
    second = Module(eng, wat(module_text(2, [(0, b"other")])))
    with Instance(second) as i:
        assert i.exports["m"].read(0, 8) == b"other\0\0\0"
    plain = Module(eng, wat(module_text(2)))
    with Instance(plain) as i:
        assert i.exports["m"].read(0, 8) == bytes(8)


@each_reset
def test_grown_instance_then_smaller_instance_traps_above_its_size(pool):
    eng = Engine(allocator=pool)
    big = Module(eng, wat(module_text(1)))
    small = Module(eng, wat(module_text(5)))
    for _ in range(25):
        with Instance(big) as inst:
            mem = inst.exports["m"]
            assert mem.grow(19) == 1 and mem.size_pages == 20
            mem.store_i64(15 * WASM_PAGE, -1)
            mem.fill(19 * WASM_PAGE, 0xFE, WASM_PAGE)
        with Instance(small) as inst:
            mem = inst.exports["m"]
            for addr in (15 * WASM_PAGE, 5 * WASM_PAGE, 5 * WASM_PAGE - 3, 20 * WASM_PAGE - 8):
                with pytest.raises(Trap) as info:
                    mem.load_i64(addr)
                assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS
            with pytest.raises(Trap):
                mem.read(15 * WASM_PAGE, 8)
            assert mem.grow(15) == 5
            assert mem.load_i64(15 * WASM_PAGE) == 0
            assert mem.read(19 * WASM_PAGE, WASM_PAGE) == bytes(WASM_PAGE)


@each_reset
@linux_only
@pytest.mark.parametrize("keep_resident", [0, 3 * WASM_PAGE])
def test_cve_2022_39392_reused_slot_exposes_exactly_the_memory_size(keep_resident):
    """After reuse the R/W part of the slot is exactly [base, base + byte_len): checked
    in /proc/self/maps, not only through the accessors."""
    with make_pool(keep_resident=keep_resident) as pool:
        mods = compile_all(Engine(allocator=pool), ["img_a", "plain", "img_big"])
        for name in ["img_big", "plain", "img_a", "img_big", "img_a", "plain"] * 3:
            with Instance(mods[name]) as inst:
                mem = inst.exports["m"]
                start, end = mem.reservation_range
                assert end - start == pool.slot_bytes
                rw = [(lo, hi) for lo, hi, perms in layout(start, end) if perms and perms[:2] == "rw"]
                assert rw and rw[0][0] == mem.base_address == start
                assert rw[-1][1] == start + mem.byte_len
                assert sum(hi - lo for lo, hi in rw) == mem.byte_len
                dirty(inst)


@each_reset
@pytest.mark.parametrize("max_memory_pages", [0, 1, 16, 65536])
def test_cve_2022_39392_zero_and_small_slots_trap_on_every_out_of_bounds_access(max_memory_pages):
    """Default tunables plan every memory Static with a 4 GiB bound; the slot is smaller
    (0 pages: every slot is guard only). No access may reach a neighbour slot."""
    guard = GUARD if max_memory_pages != 65536 else 2 << 30
    with make_pool(max_instances=3, max_memory_pages=max_memory_pages, guard_bytes=guard) as pool:
        eng = Engine(allocator=pool)
        zero = Module(eng, wat(module_text(0, max_pages=max_memory_pages, table=None)))
        one = Module(eng, wat(module_text(min(1, max_memory_pages), max_pages=max_memory_pages,
                                          table=None)))
        neighbours = [Instance(one) for _ in range(2)]
        for n in neighbours:
            if n.exports["m"].byte_len:
                n.exports["m"].fill(0, 0xAB, n.exports["m"].byte_len)
        for _ in range(5):
            with Instance(zero) as inst:
                mem = inst.exports["m"]
                assert mem.byte_len == 0
                assert mem.plan.is_static and mem.plan.style.bound_pages == 65536
                # raw accesses only when the slot itself is 4 GiB + guard
                assert mem._access_mode(0, 4) == ("guard" if max_memory_pages == 65536 else "check")
                stride = pool.slot_bytes
                for addr in (0, 1, PAGE - 1, WASM_PAGE, stride - 4, stride, 2 * stride + 8,
                             (1 << 32) - 4):
                    if addr >= 1 << 32:
                        continue
                    for load in (mem.load_i32, mem.load_i32_8u, mem.load_i64):
                        with pytest.raises(Trap) as info:
                            load(addr)
                        assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS
                    with pytest.raises(Trap):
                        mem.store_i32(addr, 0x11111111)
                    with pytest.raises(Trap):
                        mem.read(addr, 1)
                    with pytest.raises(Trap):
                        mem.load_i32(0, offset=addr)
                mem.fill(0, 0, 0)  # zero-length at the end is in bounds
                if max_memory_pages == 0:
                    assert mem.grow(1) == -1
        for n in neighbours:
            m = n.exports["m"]
            assert m.read(0, m.byte_len) == b"\xab" * m.byte_len
            n.close()


@each_reset
def test_grow_stops_at_max_memory_pages(pool):
    mod = Module(Engine(allocator=pool), wat(module_text(1, max_pages=1000)))
    with Instance(mod) as inst:
        mem = inst.exports["m"]
        assert mem.grow(MAX_PAGES - 1) == 1
        assert mem.grow(1) == -1
        assert mem.size_pages == MAX_PAGES
        mem.store_i32(MAX_PAGES * WASM_PAGE - 4, 7)
        with pytest.raises(Trap):
            mem.load_i32(MAX_PAGES * WASM_PAGE)


@pytest.mark.parametrize("reset", ["madvise", "remap"])
def test_pool_reset_is_selectable_at_run_time(reset):
    """Both resets on Linux: madvise(MADV_DONTNEED), which keeps the image mapped for the
    next tenant of the same module, or fresh anonymous pages (the macOS way), which drop
    it; either way the next tenant sees its image and zeros."""
    with make_pool(reset=reset) as pool:
        assert pool.reset == reset
        mod = compile_all(Engine(allocator=pool), ["img_a"])["img_a"]
        for _ in range(3):
            with Instance(mod) as inst:
                check_clean(inst, "img_a")
                slot = inst.memory(0)._state.slot
                dirty(inst)
            assert slot.state["image_key"] == (mod.images[0].key if reset == "madvise" else 0)
    with pytest.raises(ValueError):
        make_pool(reset="defrag")


# ---- keep_resident --------------------------------------------------------------------

@each_reset
@pytest.mark.parametrize("keep_resident", [10000, PAGE + 1, WASM_PAGE - 1, 100000, 5 * WASM_PAGE])
def test_ghsa_6wgr_89rj_399p_misaligned_keep_resident_resets_every_byte(keep_resident):
    """keep_resident that is not a page multiple: the bytes around the boundary (the
    rest of the partially memset page, the first decommitted page) are reset too."""
    with make_pool(keep_resident=keep_resident) as pool:
        mods = compile_all(Engine(allocator=pool), ["plain", "img_a"])
        marks = sorted({max(0, keep_resident + d) for d in (-PAGE, -2, -1, 0, 1, 2, PAGE)}
                       | {(keep_resident + PAGE - 1) // PAGE * PAGE + d for d in (-1, 0, 1)})
        for rep in range(20):
            name = ("plain", "img_a")[rep % 2]
            with Instance(mods[name]) as inst:
                mem = inst.exports["m"]
                check_clean(inst, name)
                mem.grow(40 - mem.size_pages)
                image = expected(name, mem.byte_len)
                for addr in marks:
                    assert mem.load_i32_8u(addr) == image[addr], addr
                    mem.store_i32_8(addr, 0x5A)
                dirty(inst)


@each_reset
@linux_only
def test_keep_resident_prefix_is_zeroed_and_stays_resident():
    keep = 2 * WASM_PAGE
    with make_pool(keep_resident=keep) as pool:
        mod = Module(Engine(allocator=pool), wat(module_text(4)))
        with Instance(mod) as inst:
            mem = inst.exports["m"]
            mem.fill(0, 0xFE, mem.byte_len)
            base = mem.base_address
            start, end = mem.reservation_range
        assert smaps_usage(start, end).get("Rss", 0) == keep  # the rest was decommitted
        with Instance(mod) as inst:
            assert inst.exports["m"].base_address == base
            assert inst.exports["m"].read(0, 4 * WASM_PAGE) == bytes(4 * WASM_PAGE)


# ---- failing reset steps (GHSA-6wgr-89rj-399p) ----------------------------------------

@each_reset
@pytest.mark.parametrize("name", ["plain", "img_a"])
def test_ghsa_6wgr_89rj_399p_failed_decommit_never_leaks(pool, name):
    mods = compile_all(Engine(allocator=pool), ["plain", "img_a"])
    for rep in range(6):
        with Instance(mods[name]) as inst:
            check_clean(inst, name)
            dirty(inst)
            # the fallback remap fails too on odd reps: the slot is poisoned
            with pool._failing("decommit", *(("map_anon",) if rep % 2 else ())):
                inst.close()
        other = "img_a" if name == "plain" else "plain"
        with Instance(mods[other if rep % 3 == 0 else name]) as inst:
            check_clean(inst, other if rep % 3 == 0 else name)
            check_grown_clean(inst, other if rep % 3 == 0 else name)
            dirty(inst)


@each_reset
def test_failed_wipe_of_a_poisoned_slot_fails_instantiation_then_recovers(pool):
    eng = Engine(allocator=pool)
    mod = Module(eng, wat(module_text(2, [(0, b"img")])))
    inst = Instance(mod)
    dirty(inst)
    with pool._failing("decommit", "map_anon"):
        inst.close()
        for _ in range(3):
            with pytest.raises(WasmRuntimeError, match="Input/output error"):
                Instance(mod)
            assert pool.live_instances == pool.live_memories == pool.live_tables == 0
    with Instance(mod) as inst:
        check = inst.exports["m"]
        assert check.read(0, 4) == b"img\0"
        assert check.read(4, check.byte_len - 4) == bytes(check.byte_len - 4)


@each_reset
@pytest.mark.parametrize("step", ["protect", "map_image"])
def test_failed_prepare_step_poisons_and_recovers(pool, step):
    eng = Engine(allocator=pool)
    small, big = Module(eng, wat(module_text(1))), Module(eng, wat(module_text(6, [(0, b"big")])))
    with Instance(small) as inst:
        dirty(inst)
    with pool._failing(step):
        with pytest.raises(WasmRuntimeError):
            Instance(big)
    assert pool.live_memories == pool.live_instances == 0
    for mod, pages in ((big, 6), (small, 1)):
        with Instance(mod) as inst:
            mem = inst.exports["m"]
            expect = bytearray(mem.byte_len)
            if mod is big:
                expect[:3] = b"big"
            assert mem.size_pages == pages and mem.read(0, mem.byte_len) == bytes(expect)
            with pytest.raises(Trap):
                mem.load_i32_8u(mem.byte_len)


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
        table = pool.begin_instance(mod).allocate_table(mod.env.table_plans[0])
        assert pool.live_tables == 1 and table.size == 4
        del table  # no collection needed: the backstop runs when the last reference goes
        assert pool.live_tables == 0
        with Instance(mod) as inst:  # the only slot serves the next tenant
            assert inst.exports["t"].size == 4 and pool.live_tables == 1
        with pool.begin_instance(mod).allocate_table(mod.env.table_plans[0]) as table:
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


def mapped_bytes():
    """Bytes of address space this process maps (every mapping, reservations included)."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = line.split()[0].split("-")
            total += int(hi, 16) - int(lo, 16)
    return total


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


# ---- threads --------------------------------------------------------------------------

def _hammer(seconds, threads=8, max_instances=8):
    with make_pool(max_instances=max_instances, max_memory_pages=8) as pool:
        eng = Engine(allocator=pool)
        mods = {name: Module(eng, wat(module_text(pages, data, max_pages=8)))
                for name, (pages, data) in MODULES.items() if pages <= 4}
        names = sorted(mods)
        lock = threading.Lock()
        live = {}
        handed = [0]
        refused = [0]
        errors = []
        deadline = time.monotonic() + seconds

        def work(tid):
            k = tid
            try:
                while time.monotonic() < deadline:
                    name = names[k % len(names)]
                    k += 1
                    try:
                        inst = Instance(mods[name])
                    except AllocationError as exc:
                        assert exc.limit == "max_instances"
                        with lock:
                            refused[0] += 1
                        # Back off as a real caller would: a thread spinning on refusals
                        # holds the GIL that the holders need after each C call.
                        time.sleep(0.0005)
                        continue
                    mem, table = inst.exports["m"], inst.exports["t"]
                    key = mem.reservation_range
                    with lock:
                        assert key not in live, f"slot {key} handed out twice at once"
                        live[key] = tid
                        handed[0] += 1
                    assert mem.read(0, mem.byte_len) == expected(name, mem.byte_len)
                    assert table.get(tid % table.size) is None
                    mem.fill(0, tid + 1, mem.byte_len)
                    if mem.grow(1) != -1:
                        assert mem.read(mem.byte_len - WASM_PAGE, WASM_PAGE) == bytes(WASM_PAGE)
                        mem.fill(mem.byte_len - WASM_PAGE, tid + 1, WASM_PAGE)
                    table.fill(0, inst.exports["f"], table.size)
                    with lock:
                        del live[key]
                    inst.close()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        assert handed[0] > 100
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0
        live_instances, live_memories, created, free, in_use_but_free = pool._core.stats()
        assert in_use_but_free == 0
        assert free == created <= max_instances
        return handed[0], refused[0]


def test_threads_instantiate_and_release_concurrently():
    handed, refused = _hammer(3.0)
    assert refused == 0


def test_threads_contend_for_fewer_instances_than_threads():
    handed, refused = _hammer(1.5, threads=8, max_instances=3)
    assert refused > 0


@pytest.mark.slow
def test_threads_instantiate_and_release_concurrently_long():
    _hammer(10.0)


def test_dropped_unclosed_instances_are_collected_at_the_limit(monkeypatch):
    """Instances are reference cycles; dropped without close() they hold their slots
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
            Instance(mod)
            Instance(mod)  # both garbage now, but...
            with pytest.raises(AllocationError):
                Instance(mod)  # ...the last forced collection was just now
        finally:
            gc.enable()
        gc.collect()
        assert pool.live_instances == 0


# ---- the C slot table (c_src/wenv_pool.c) -----------------------------------------------

def _memory_only(pages, data=()):
    segs = " ".join(f'(data (i32.const {off}) "{_escape(payload)}")' for off, payload in data)
    return wat(f'(module (memory (export "m") {pages} 40) {segs})')


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


# ---- a model of tenancy: random instantiate / write / grow / release sequences ---------

#: (minimum pages, data segments) of memories-only modules; loaded both from wasm (images
#: cover the whole initial size) and from artifacts (images mapped exactly where their
#: data is, so a reset must split keep_resident around them).
MODEL_MODULES = [
    (1, []),
    (2, [(0, b"head" * 3000)]),
    (3, [(2 * WASM_PAGE + 8, b"x" * 100)]),
    (4, [(WASM_PAGE, bytes(range(256)) * 600)]),
]


@pytest.fixture(scope="module")
def model_artifacts(tmp_path_factory):
    """The MODEL_MODULES compiled once as artifacts (default tunables, as the pools' Engines)."""
    import wasmenv
    tmp_dir = tmp_path_factory.mktemp("model")
    return [wasmenv.save_artifact(wasmenv.compile(_memory_only(pages, data)), tmp_dir / f"m{k}")
            for k, (pages, data) in enumerate(MODEL_MODULES)]


def _model_modules(engine, artifacts):
    mods = []
    assert len(artifacts) == len(MODEL_MODULES)
    for i, (pages, data) in enumerate(MODEL_MODULES):
        path = artifacts[i]
        mods.append((Module(engine, _memory_only(pages, data)), pages, data))
        mods.append((Module(engine, path), pages, data))
    return mods


def _expect_model(pages, data):
    expect = bytearray(pages * WASM_PAGE)
    for off, payload in data:
        expect[off:off + len(payload)] = payload
    return bytes(expect)


@each_reset
@pytest.mark.parametrize("keep", [0, 10000, WASM_PAGE, 3 * WASM_PAGE + 5])
def test_every_pair_of_tenants_with_exact_and_covering_images(model_artifacts, keep):
    """Each model module (from wasm: images cover the initial size; from an artifact:
    images sit exactly on their data) dirties a slot, grown to its maximum; then each one
    instantiated next in that slot reads exactly its image and zeros."""
    with make_pool(max_instances=1, max_memory_pages=8, keep_resident=keep) as pool:
        mods = _model_modules(Engine(allocator=pool), model_artifacts)
        for first, _, _ in mods:
            for second, pages, data in mods:
                with Instance(first) as inst:
                    mem = inst.memory(0)
                    assert mem.grow(8 - mem.size_pages) != -1
                    mem.fill(0, 0xFE, mem.byte_len)
                with Instance(second) as inst:
                    mem = inst.memory(0)
                    assert mem.read(0, mem.byte_len) == _expect_model(pages, data)
                    with pytest.raises(Trap):
                        mem.load_i32_8u(mem.byte_len)
                    assert mem.grow(8 - pages) != -1
                    assert mem.read(pages * WASM_PAGE, (8 - pages) * WASM_PAGE) == bytes((8 - pages) * WASM_PAGE)


@each_reset
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.sampled_from([0, 10000, WASM_PAGE, 3 * WASM_PAGE + 5]),
       ops=st.lists(st.tuples(st.sampled_from(["new", "new", "write", "grow", "close", "drop"]),
                              st.integers(0, 7), st.integers(0, 8 * WASM_PAGE - 1)),
                    min_size=1, max_size=40))
def test_every_new_tenant_sees_only_its_image_whatever_came_before(model_artifacts, keep, ops):
    with make_pool(max_instances=3, max_memory_pages=8, keep_resident=keep) as pool:
        eng = Engine(allocator=pool)
        mods = _model_modules(eng, model_artifacts)
        assert any(m.images[0] is not None and m.images[0].linear_offset > 0 for m, _, _ in mods)
        live = []
        for op, pick, where in ops:
            if op == "new":
                module, pages, data = mods[pick]
                try:
                    inst = Instance(module)
                except AllocationError as exc:
                    assert exc.limit == "max_instances" and len(live) == 3
                    continue
                mem = inst.memory(0) if where % 2 else inst.exports["m"]
                assert mem.size_pages == pages and mem.read(0, mem.byte_len) == _expect_model(pages, data)
                with pytest.raises(Trap):
                    mem.load_i32_8u(mem.byte_len)
                live.append(inst)
                del inst, mem  # "drop" must be able to drop the last reference
            elif not live:
                continue
            elif op == "write":  # a few bytes, or every byte (then nothing can hide)
                mem = live[pick % len(live)].memory(0)
                start = where % mem.byte_len if where % 3 else 0
                mem.fill(start, 0xFE, min(4096, mem.byte_len - start) if where % 3 else mem.byte_len)
            elif op == "grow":
                mem = live[pick % len(live)].memory(0)
                old = mem.byte_len
                if mem.grow(1 + where % 3) != -1:
                    assert mem.read(old, mem.byte_len - old) == bytes(mem.byte_len - old)
                    mem.fill(old, 0xFE, mem.byte_len - old)
            elif op == "close":
                live.pop(pick % len(live)).close()
            else:  # dropped without close: the backstop releases it
                live.pop(pick % len(live))
                gc.collect()
        for inst in live:
            inst.close()
        live_instances, live_memories, created, free, in_use_but_free = pool._core.stats()
        assert (live_instances, live_memories, in_use_but_free) == (0, 0, 0) and free == created
