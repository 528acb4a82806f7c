"""Memory: layout from outside (/proc/self/maps), grow, bulk access, accessor arguments, lifetime, images."""
import gc
import os
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from runtime._accessors import ACCESSOR_WIDTHS
from runtime.allocator import InstanceAllocator, OnDemandAllocator
from runtime.errors import AllocationError, WasmRuntimeError
from runtime.image import MemoryImage
from runtime.memory import Memory, MemorySlot, ReservedSlot
from runtime.traps import Trap, TrapCode
from tests.helpers import (GIB, KIB, MIB, PAGE, WASM_PAGE, engine, expected_layout, layout,
                           parse_maps, smaps_usage)
from wasmenv import MemoryPlan, MemoryStyle, MemoryType, Tunables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_layout(mem):
    start, end = mem.reservation_range
    assert layout(start, end) == expected_layout(start, mem.base_address, mem.byte_len, end)


# ---- layout ---------------------------------------------------------------------------

def test_static_layout_before_and_after_grow():
    eng = engine()
    with Memory.new(eng, 1, 10) as m:
        plan = m.plan
        assert plan.style == MemoryStyle.Static(65536)
        start, end = m.reservation_range
        assert end - start == plan.reservation_bytes() == 2 * GIB + 4 * GIB + 2 * GIB
        assert m.base_address == start + plan.pre_guard_size == start + 2 * GIB
        assert_layout(m)
        assert m.grow(3) == 1
        assert m.reservation_range == (start, end) and m.base_address == start + 2 * GIB
        assert_layout(m)
        assert layout(m.base_address, m.base_address + 4 * WASM_PAGE) == [
            (m.base_address, m.base_address + 4 * WASM_PAGE, "rw-p")]


@pytest.mark.parametrize("guard", [0, 64 * KIB, 32 * MIB])
def test_static_layout_small_guards_and_no_pre_guard(guard):
    for before in (True, False):
        eng = engine(static_memory_offset_guard_size=guard, guard_before_linear_memory=before,
                     static_memory_bound=16)
        with Memory.new(eng, 2, 16) as m:
            start, end = m.reservation_range
            assert m.base_address - start == (guard if before else 0)
            assert end - m.base_address == 16 * WASM_PAGE + guard
            assert_layout(m)
            m.grow(14)
            assert_layout(m)
            assert m.grow(1) == -1


def test_dynamic_layout_grows_in_place_inside_its_reserve():
    eng = engine(static_memory_bound=16, dynamic_memory_growth_reserve=4 * WASM_PAGE,
                 dynamic_memory_offset_guard_size=64 * KIB)
    with Memory.new(eng, 2) as m:
        plan = m.plan
        assert plan.style == MemoryStyle.Dynamic(4 * WASM_PAGE)
        start, end = m.reservation_range
        assert end - start == plan.reservation_bytes(2) == 64 * KIB + 6 * WASM_PAGE + 64 * KIB
        assert_layout(m)
        base = m.base_address
        assert m.grow(4) == 2  # exactly fills the reserve
        assert m.base_address == base and m.reservation_range == (start, end)
        assert_layout(m)


def test_dynamic_move_new_reservation_copy_and_old_one_released():
    eng = engine(static_memory_bound=16, dynamic_memory_growth_reserve=2 * WASM_PAGE,
                 dynamic_memory_offset_guard_size=64 * KIB)
    with Memory.new(eng, 1) as m:
        m.write(0, b"first")
        m.store_i64(WASM_PAGE - 8, -2)
        old_start, old_end = m.reservation_range
        assert m.grow(3) == 1  # 4 pages > 1 + 2 reserve: moves
        start, end = m.reservation_range
        assert (start, end) != (old_start, old_end)
        assert end - start == m.plan.reservation_bytes(4)
        assert_layout(m)
        assert layout(old_start, old_end) == [(old_start, old_end, None)]  # unmapped
        assert m.read(0, 5) == b"first" and m.load_i64(WASM_PAGE - 8) == -2
        assert m.read(WASM_PAGE, 3 * WASM_PAGE) == bytes(3 * WASM_PAGE)
        m.store_i32(4 * WASM_PAGE - 4, 7)
        assert m.load_i32(4 * WASM_PAGE - 4) == 7
        with pytest.raises(Trap):
            m.load_i32(4 * WASM_PAGE - 3)


def test_reservation_is_noreserve():
    from tests.helpers import vm_flags
    with Memory.new(engine(), 1) as m:
        assert "nr" in vm_flags(m.reservation_range[0])
        assert "nr" in vm_flags(m.base_address)


# ---- grow semantics -------------------------------------------------------------------

def test_grow_returns_old_size_and_minus_one_past_maximum():
    with Memory.new(engine(), 1, 3) as m:
        assert m.grow(0) == 1
        assert m.grow(1) == 1
        assert m.grow(1) == 2
        assert m.grow(1) == -1
        assert m.size_pages == 3 and m.byte_len == 3 * WASM_PAGE
        assert m.grow(0) == 3
        with pytest.raises(ValueError):
            m.grow(-1)


def test_grow_without_declared_maximum_stops_at_index_maximum():
    with Memory.new(engine(static_memory_offset_guard_size=64 * KIB), 0) as m:
        assert m.maximum_pages == 65536
        assert m.grow(65537) == -1
        assert m.grow(65536) == 0  # the full 4 GiB (reserved, not touched)
        assert m.byte_len == 4 * GIB
        assert m.load_i32(4 * GIB - 4) == 0
        assert m.grow(1) == -1


def test_static_bound_is_maximum_caps_growth():
    eng = engine(static_memory_bound=8, static_memory_bound_is_maximum=True)
    with Memory.new(eng, 1, 100) as m:
        assert m.plan.is_static and m.maximum_pages == 8
        assert m.grow(7) == 1 and m.grow(1) == -1


def test_memory64_grows():
    with Memory.new(engine(), 1, memory64=True) as m:
        assert not m.plan.is_static
        assert m.maximum_pages == 1 << 48
        assert m.grow(2) == 1
        m.store_i64(3 * WASM_PAGE - 8, 1 << 62)
        assert m.load_i64(3 * WASM_PAGE - 8) == 1 << 62
        assert m.grow(1 << 40) == -1  # 64 PiB: the OS refuses


def test_shared_memory_grow_is_thread_safe_and_never_moves():
    eng = engine(static_memory_bound=16, dynamic_memory_growth_reserve=64 * WASM_PAGE)
    with Memory.new(eng, 1, 1000, shared=True) as m:
        assert m.shared and not m.plan.is_static
        base = m.base_address
        results = []
        lock = threading.Lock()

        def worker():
            for _ in range(8):
                r = m.grow(1)
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sorted(r for r in results if r != -1)
        assert got == list(range(1, 65))  # every old size seen exactly once
        assert m.size_pages == 65 and m.base_address == base
        assert m.grow(1) == -1  # past the reserve: a shared memory never moves
        assert_layout(m)


def test_shared_memory_needs_a_maximum():
    with pytest.raises(ValueError):
        Memory.new(engine(), 1, shared=True)


def test_invalid_types():
    with pytest.raises(ValueError):
        Memory.new(engine(), 2, 1)
    with pytest.raises(ValueError):
        Memory.new(engine(), 65537)


# ---- bulk access ----------------------------------------------------------------------

@pytest.fixture
def mem():
    with Memory.new(engine(), 1, 2) as m:
        yield m


def test_read_write_round_trip_and_bounds(mem):
    mem.write(100, b"hello")
    assert mem.read(100, 5) == b"hello"
    mem.write(WASM_PAGE - 3, bytearray(b"xyz"))
    assert mem.read(WASM_PAGE - 3, 3) == b"xyz"
    assert mem.read(WASM_PAGE, 0) == b""
    with pytest.raises(Trap) as info:
        mem.write(WASM_PAGE - 2, b"xyz")
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS and info.value.address == WASM_PAGE - 2
    assert mem.read(WASM_PAGE - 3, 3) == b"xyz"  # nothing written
    with pytest.raises(Trap):
        mem.read(WASM_PAGE - 2, 3)
    with pytest.raises(Trap):
        mem.read(WASM_PAGE + 1, 0)
    with pytest.raises(Trap):
        mem.read(0, 1 << 50)  # checked before any buffer is allocated
    with pytest.raises(ValueError):
        mem.read(-1, 1)
    mem.write(0, memoryview(b"abcdef")[1:4])
    assert mem.read(0, 3) == b"bcd"


def test_fill_semantics(mem):
    mem.fill(10, 0x1FF, 5)  # low byte
    assert mem.read(9, 7) == b"\x00" + b"\xff" * 5 + b"\x00"
    mem.fill(WASM_PAGE, 1, 0)  # n == 0 at the end: fine
    with pytest.raises(Trap):
        mem.fill(WASM_PAGE + 1, 1, 0)  # n == 0 past the end: traps
    with pytest.raises(Trap):
        mem.fill(WASM_PAGE - 4, 7, 5)
    assert mem.read(WASM_PAGE - 4, 4) == bytes(4)  # nothing written


def test_copy_is_memmove_and_checks_first(mem):
    mem.write(0, bytes(range(10)))
    mem.copy(2, 0, 8)  # overlapping forward
    assert mem.read(0, 10) == bytes([0, 1, 0, 1, 2, 3, 4, 5, 6, 7])
    mem.copy(0, 2, 8)  # overlapping backward
    assert mem.read(0, 8) == bytes([0, 1, 2, 3, 4, 5, 6, 7])
    before = mem.read(0, 16)
    with pytest.raises(Trap):
        mem.copy(0, WASM_PAGE - 4, 8)  # source out of bounds
    with pytest.raises(Trap):
        mem.copy(WASM_PAGE - 4, 0, 8)  # destination out of bounds
    assert mem.read(0, 16) == before and mem.read(WASM_PAGE - 4, 4) == bytes(4)
    mem.copy(WASM_PAGE, 0, 0)
    with pytest.raises(Trap):
        mem.copy(0, WASM_PAGE + 1, 0)


def test_init_bytes_semantics(mem):
    src = memoryview(b"0123456789")
    mem._init_bytes(5, src, 2, 4)
    assert mem.read(5, 4) == b"2345"
    mem._init_bytes(WASM_PAGE, src, 10, 0)  # both at their ends, n == 0
    with pytest.raises(Trap):
        mem._init_bytes(0, src, 8, 3)  # past the segment
    with pytest.raises(Trap):
        mem._init_bytes(0, src, 11, 0)
    with pytest.raises(Trap):
        mem._init_bytes(WASM_PAGE - 2, src, 0, 3)  # past the memory
    assert mem.read(WASM_PAGE - 2, 2) == b"\x00\x00" and mem.read(0, 3) == b"\x00\x00\x00"


# ---- accessor arguments ---------------------------------------------------------------

ACCESSORS = sorted(name for name in dir(Memory) if name.startswith(("load_", "store_")))
_BADARG = "an argument is outside its wasm type's range"


def _call(mem, name, addr, offset=0, value=0):
    if name.startswith("load_"):
        return getattr(mem, name)(addr, offset)
    return getattr(mem, name)(addr, 0.0 if name in ("store_f32", "store_f64") else value, offset)


def test_accessor_set_is_every_wasm_width():
    assert len(ACCESSORS) == 27 and {"load_i32", "load_i64_32u", "store_f64_bits"} <= set(ACCESSORS)
    assert sorted(ACCESSOR_WIDTHS) == ACCESSORS
    assert all(getattr(Memory, name).__module__ == "runtime._accessors" for name in ACCESSORS)


def test_checked_in_accessors_are_the_generator_output():
    script = os.path.join(ROOT, "scripts", "gen_accessors.py")
    proc = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(ROOT, "runtime", "_accessors.py")) as f:
        assert f.readline().startswith("# Generated by scripts/gen_accessors.py")


@pytest.mark.parametrize("name", ACCESSORS)
def test_accessor_address_outside_u64_raises_like_a_33_bit_address(mem, name):
    with pytest.raises(ValueError, match=_BADARG):  # the reference: a 33-bit address
        _call(mem, name, 1 << 33)
    for addr, offset in ((-1, 0), (1 << 64, 0), (0, -1), (0, 1 << 64), (-(1 << 70), 1 << 70)):
        with pytest.raises(ValueError, match=_BADARG):
            _call(mem, name, addr, offset)
    assert mem.read(0, 16) == bytes(16)


def test_memory64_accessor_address_of_2_pow_64_raises_a_clean_error():
    with Memory.new(engine(), 1, memory64=True) as m:
        with pytest.raises(Trap):
            m.load_i32((1 << 64) - 1)
        for name in ACCESSORS:
            with pytest.raises(ValueError, match=_BADARG):
                _call(m, name, 1 << 64)


@pytest.mark.parametrize("name, value", [("store_i32", 1 << 64), ("store_i32_8", -(1 << 63) - 1),
                                         ("store_i64", 1 << 64), ("store_i64_32", -(1 << 63) - 1),
                                         ("store_f64_bits", 1 << 64)])
def test_store_value_outside_its_range_raises_like_any_bad_value(mem, name, value):
    with pytest.raises(ValueError, match=_BADARG):  # the reference: just outside i32's range
        mem.store_i32(0, 1 << 32)
    with pytest.raises(ValueError, match=_BADARG):
        _call(mem, name, 0, value=value)
    assert mem.read(0, 8) == bytes(8)


@pytest.mark.parametrize("op", ["write", "fill", "fill_n", "copy_dst", "copy_src", "copy_n", "init"])
def test_bulk_address_past_2_pow_64_traps_like_a_33_bit_one(mem, op):
    """Bulk operations check ranges (read(2^64, 1) and write(2^33, ...) trap): so do these."""
    calls = {
        "write": lambda a: mem.write(a, b"x"), "fill": lambda a: mem.fill(a, 1, 1),
        "fill_n": lambda a: mem.fill(0, 1, a), "copy_dst": lambda a: mem.copy(a, 0, 1),
        "copy_src": lambda a: mem.copy(0, a, 1), "copy_n": lambda a: mem.copy(0, 0, a),
        "init": lambda a: mem._init_bytes(a, b"x", 0, 1),
    }
    for addr in (1 << 33, 1 << 64, 1 << 70):
        with pytest.raises(Trap) as info:
            calls[op](addr)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert mem.read(0, 8) == bytes(8)


# ---- lifetime -------------------------------------------------------------------------

def test_close_unmaps_and_blocks_access():
    m = Memory.new(engine(), 1)
    start, end = m.reservation_range
    m.close()
    m.close()
    assert m.closed and layout(start, end) == [(start, end, None)]
    with pytest.raises(ValueError):
        m.load_i32(0)
    with pytest.raises(ValueError):
        m.store_i32(0, 1)
    with pytest.raises(ValueError):
        m.read(0, 1)
    with pytest.raises(ValueError):
        _ = m.base_address
    assert "closed" in repr(m)


def test_grow_after_close_raises():
    m = Memory.new(engine(), 1, 4)
    m.close()
    with pytest.raises(ValueError):
        m.grow(1)


def test_finalizer_unmaps_an_unreferenced_memory():
    m = Memory.new(engine(), 1)
    start, end = m.reservation_range
    del m
    gc.collect()
    assert layout(start, end) == [(start, end, None)]


# ---- images ---------------------------------------------------------------------------

def test_image_is_mapped_copy_on_write_and_shared():
    data = b"IMG!" * (PAGE // 4) + b"second page"
    eng = engine()
    plan = MemoryPlan.for_memory(MemoryType(2, 4), eng.tunables)
    with MemoryImage.from_bytes(data, 4 * PAGE) as img:
        a = eng.allocator.allocate_memory(plan, img)
        b = eng.allocator.allocate_memory(plan, img)
        with a, b:
            assert a.image is img
            for m in (a, b):
                assert m.read(4 * PAGE, len(data)) == data
                assert m.read(0, 4 * PAGE) == bytes(4 * PAGE)
                assert m.read(4 * PAGE + len(data), 64) == bytes(64)
                lo = m.base_address + 4 * PAGE
                maps = [x for x in parse_maps() if x[0] <= lo < x[1]]
                assert maps[0][2] == "rw-p" and maps[0][4].startswith("/memfd:wenv-image")
                assert maps[0][0] == lo and maps[0][1] == lo + img.byte_len
                assert_layout(m)  # permissions: still one R/W run
            a.write(4 * PAGE, b"mine")
            assert a.read(4 * PAGE, 4) == b"mine"
            assert b.read(4 * PAGE, 4) == b"IMG!"  # private copy
            assert img.read()[:4] == b"IMG!"  # the file is untouched
            c = eng.allocator.allocate_memory(plan, img)
            with c:
                assert c.read(4 * PAGE, 4) == b"IMG!"


def test_image_outlives_its_fd_and_grow_keeps_it():
    eng = engine()
    plan = MemoryPlan.for_memory(MemoryType(1, 4), eng.tunables)
    img = MemoryImage.from_bytes(b"kept", 0)
    with eng.allocator.allocate_memory(plan, img) as m:
        img.close()
        assert m.read(0, 4) == b"kept"
        assert m.grow(2) == 1
        assert m.read(0, 4) == b"kept" and m.image is img


def test_dynamic_move_drops_the_image_mapping():
    eng = engine(static_memory_bound=16, dynamic_memory_growth_reserve=WASM_PAGE)
    plan = MemoryPlan.for_memory(MemoryType(1), eng.tunables)
    with MemoryImage.from_bytes(b"moved" * 100, 0) as img, eng.allocator.allocate_memory(plan, img) as m:
        assert m.image is img
        assert m.grow(5) == 1
        assert m.image is None
        assert m.read(0, 500) == b"moved" * 100
        start, end = m.reservation_range
        assert not [x for x in parse_maps() if x[0] < end and x[1] > start and "memfd" in x[4]]


def test_image_must_fit_and_be_open():
    eng = engine()
    plan = MemoryPlan.for_memory(MemoryType(1), eng.tunables)
    with MemoryImage.from_bytes(bytes(PAGE), WASM_PAGE) as img:
        with pytest.raises(ValueError):
            Memory(plan, img)
    img = MemoryImage.from_bytes(b"x")
    img.close()
    with pytest.raises(ValueError):
        Memory(plan, img)


def test_untouched_1mib_image_instance_has_no_private_dirty_pages():
    data = bytes(range(256)) * 4096  # 1 MiB, no zero pages to trim
    eng = engine()
    plan = MemoryPlan.for_memory(MemoryType(16), eng.tunables)
    with MemoryImage.from_bytes(data, 0) as img, eng.allocator.allocate_memory(plan, img) as a, \
            eng.allocator.allocate_memory(plan, img) as b:
        for m in (a, b):
            usage = smaps_usage(*m.reservation_range)
            assert usage.get("Rss", 0) <= 2 * PAGE
            assert usage.get("Private_Dirty", 0) == 0
            assert usage.get("Anonymous", 0) == 0
        # Reading maps the image's own pages: no copies. (memfd pages are shmem, which
        # the kernel always counts as dirty; mapped by both instances they are shared.)
        assert a.read(0, len(data)) == data and b.read(0, len(data)) == data
        for m in (a, b):
            usage = smaps_usage(*m.reservation_range)
            assert usage["Rss"] >= len(data)
            assert usage.get("Anonymous", 0) == 0
            assert usage.get("Private_Dirty", 0) == 0 and usage.get("Shared_Dirty", 0) >= len(data)
        a.store_i32(5 * PAGE, 1)  # one written page -> one private (anonymous) copy
        usage = smaps_usage(*a.reservation_range)
        assert usage.get("Anonymous", 0) == PAGE and usage.get("Private_Dirty", 0) == PAGE
        assert smaps_usage(*b.reservation_range).get("Anonymous", 0) == 0


# ---- allocator interface --------------------------------------------------------------

class RecordingSlot(ReservedSlot):
    """A test slot: counts releases, refuses to move (like a pool slot)."""
    released = 0

    def relocated(self, byte_len):
        return None

    def release(self):
        type(self).released += 1
        super().release()


def test_custom_slot_factory_is_owned_and_released_once():
    RecordingSlot.released = 0
    eng = engine(static_memory_bound=16, dynamic_memory_growth_reserve=WASM_PAGE)
    plan = MemoryPlan.for_memory(MemoryType(1), eng.tunables)
    m = Memory(plan, slot_factory=RecordingSlot)
    assert isinstance(m._state.slot, MemorySlot)
    assert m.grow(1) == 1
    assert m.grow(1) == -1  # needs a move; this slot kind cannot
    m.close()
    m.close()
    assert RecordingSlot.released == 1


def test_a_reserved_slot_nobody_took_is_unmapped_by_its_backstop():
    eng = engine(static_memory_bound=16)
    plan = MemoryPlan.for_memory(MemoryType(1), eng.tunables)
    slot = ReservedSlot(plan, 1)
    start, end = slot.reservation_range
    assert any(perms == "rw-p" for _, _, perms in layout(start, end))
    del slot
    gc.collect()
    assert all(perms is None for _, _, perms in layout(start, end))


def test_allocators():
    assert isinstance(OnDemandAllocator(), InstanceAllocator)
    with pytest.raises(TypeError, match="abstract"):  # an ABC: allocate_memory is required
        InstanceAllocator()
    with OnDemandAllocator() as alloc:
        eng = SimpleNamespace(tunables=Tunables(), allocator=alloc)
        with Memory.new(eng, 1) as m:
            assert isinstance(m, Memory)


def test_runtime_errors_hierarchy():
    assert issubclass(AllocationError, WasmRuntimeError)
    assert not issubclass(Trap, WasmRuntimeError)


# ---- a memory with nothing to reserve -------------------------------------------------

ZERO_TUNABLES = [  # (memory 0 3) gets zero bytes reserved: no bound, reserve or guard
    dict(static_memory_bound=0, dynamic_memory_growth_reserve=0, dynamic_memory_offset_guard_size=0),
    dict(static_memory_bound=0, dynamic_memory_growth_reserve=0, dynamic_memory_offset_guard_size=0,
         guard_before_linear_memory=False),
]


@pytest.mark.parametrize("tunables", ZERO_TUNABLES)
@pytest.mark.parametrize("how", ["instance", "host"])
def test_zero_byte_reservation_instantiates_and_grows_like_wasmtime(tunables, how):
    """(memory 0 3) with a zero static bound, growth reserve and guard: wasmtime-py
    instantiates it and grows it page by page; so do we, trapping past the size."""
    import wasmtime

    from runtime import Engine, Instance, Module
    wasm = wasmtime.wat2wasm('(module (memory (export "m") 0 3))')
    cfg = wasmtime.Config()
    cfg.static_memory_maximum_size = 0
    cfg.static_memory_guard_size = 0
    cfg.dynamic_memory_guard_size = 0
    cfg.dynamic_memory_reserved_for_growth = 0
    store = wasmtime.Store(wasmtime.Engine(cfg))
    oracle = wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), []).exports(store)["m"]
    eng = Engine(Tunables(**tunables))
    inst = Instance(Module(eng, wasm)) if how == "instance" else None
    mem = inst.memory(0) if inst else Memory.new(eng, 0, 3)
    assert mem.plan.reservation_bytes() == 0
    assert mem.size_pages == oracle.size(store) == 0
    with pytest.raises(Trap):
        mem.load_i32_8u(0)
    for _ in range(3):
        assert mem.grow(1) == oracle.grow(store, 1)
        mem.store_i32(mem.byte_len - 4, 0x12345678)
        assert mem.load_i32(mem.byte_len - 4) == 0x12345678
        with pytest.raises(Trap):
            mem.load_i32_8u(mem.byte_len)
    assert mem.grow(1) == -1 and mem.size_pages == oracle.size(store) == 3
    (inst or mem).close()
