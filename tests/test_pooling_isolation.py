"""PoolingAllocator isolation: slot reuse and reset, keep_resident, failing reset steps, and
a model of tenancy (random instantiate / write / grow / release sequences).

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

Isolation tests run with both pool resets (``each_reset``: the ``reset`` fixture of
tests/conftest.py, which make_pool() and the ``pool`` fixture use).
"""
import gc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import AllocationError, Engine, Instance, Module, Trap, TrapCode, WasmRuntimeError
from tests.helpers import (GUARD, MAX_PAGES, PAGE, WASM_PAGE, _memory_only, check_clean,
                           check_grown_clean, compile_all, dirty, each_reset, expected, layout,
                           linux_only, make_pool, module_text, smaps_usage, wat)


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
                del mem  # a view keeps its instance alive: "drop" must drop the last reference
            elif op == "grow":
                mem = live[pick % len(live)].memory(0)
                old = mem.byte_len
                if mem.grow(1 + where % 3) != -1:
                    assert mem.read(old, mem.byte_len - old) == bytes(mem.byte_len - old)
                    mem.fill(old, 0xFE, mem.byte_len - old)
                del mem
            elif op == "close":
                live.pop(pick % len(live)).close()
            else:  # dropped without close: the backstop releases it
                mem = None  # a view keeps its instance alive: drop the last one of a write/grow
                live.pop(pick % len(live))
                gc.collect()
        for inst in live:
            inst.close()
        live_instances, live_memories, created, free, in_use_but_free = pool._core.stats()
        assert (live_instances, live_memories, in_use_but_free) == (0, 0, 0) and free == created


# ---- globals and tables (issue 14 item 6) -----------------------------------------------
#: A tenant that dirties everything from wasm code: every global (each value type) and
#: both tables (funcref with a segment, externref), grown to the pool's 64 elements with
#: non-null values. ``clean`` answers from wasm whether it sees only its initial state.
