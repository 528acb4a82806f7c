"""Memory failures leave nothing behind: no mapping, no fd, across address-space and map-count limits."""
import os

import pytest

from runtime import _ffi
from runtime.errors import AllocationError, WasmRuntimeError
from runtime.image import MemoryImage
from runtime.memory import Memory
from tests.helpers import engine, open_fd_count, parse_maps, run_child
from wasmenv import MemoryPlan, MemoryType


def _footprint():
    return len(parse_maps()), open_fd_count()


def test_plan_too_big_for_the_address_space():
    eng = engine()
    for _ in range(2):  # the first one warms up lazy allocations of the error path
        before = _footprint()
        with pytest.raises(AllocationError) as info:
            Memory.new(eng, 1 << 33, memory64=True)  # 512 TiB
        assert info.value.limit == "address space"
        assert isinstance(info.value.__cause__, OSError)
    assert _footprint() == before


def test_failure_after_reserving_releases_the_reservation():
    """The image mmap fails after the reservation was made (ENODEV: /dev/null cannot be
    mapped): the one C call unmaps what it reserved, and nothing is left behind."""
    eng = engine()
    plan = MemoryPlan.for_memory(MemoryType(2), eng.tunables)
    with MemoryImage(os.open("/dev/null", os.O_RDONLY), 0, _ffi.PAGE_SIZE, 0) as img:
        for _ in range(2):  # the first one warms up lazy allocations of the error path
            before = _footprint()
            with pytest.raises(WasmRuntimeError, match="with its image"):
                Memory(plan, img)
        assert _footprint() == before
        none_regions = [m for m in parse_maps() if m[1] - m[0] == plan.reservation_bytes()]
        assert none_regions == []


def test_address_space_limit_in_a_child():
    code = """
        import resource, psutil
        from types import SimpleNamespace
        from runtime import Memory, OnDemandAllocator, AllocationError
        from tests.helpers import parse_maps, open_fd_count
        from wasmenv import Tunables
        def footprint():
            return len(parse_maps()), open_fd_count()
        eng = SimpleNamespace(tunables=Tunables(), allocator=OnDemandAllocator())
        small = SimpleNamespace(tunables=Tunables(static_memory_bound=16, dynamic_memory_growth_reserve=65536,
                                                  dynamic_memory_offset_guard_size=65536),
                                allocator=OnDemandAllocator())
        grower = Memory.new(small, 1)
        grower.store_i32(0, 42)
        vms = psutil.Process().memory_info().vms
        resource.setrlimit(resource.RLIMIT_AS, (vms + (1 << 30), resource.RLIM_INFINITY))
        for _attempt in range(2):  # the first one warms up lazy allocations of the error path
            before = footprint()
            try:
                Memory.new(eng, 1)  # 8 GiB reservation
                print("allocated")
            except AllocationError as e:
                print("limit:", e.limit)
        print("same footprint:", footprint() == before)
        print("grow:", grower.grow(30000))  # needs a ~2 GiB move: refused
        print("still:", grower.size_pages, grower.load_i32(0))
        print("grow small:", grower.grow(1))
    """
    proc = run_child(code)
    assert proc.returncode == 0, proc.stderr
    assert "limit: address space" in proc.stdout
    assert "same footprint: True" in proc.stdout
    assert "grow: -1" in proc.stdout and "still: 1 42" in proc.stdout
    assert "grow small: 1" in proc.stdout


def test_max_map_count_limit_in_a_child():
    """Exhaust vm.max_map_count with small memories: a clear AllocationError naming the
    limit, and repeated failures leave no mapping behind."""
    code = """
        from types import SimpleNamespace
        from runtime import Memory, OnDemandAllocator, AllocationError, _ffi
        from wasmenv import Tunables
        eng = SimpleNamespace(tunables=Tunables(static_memory_bound=1, static_memory_offset_guard_size=65536),
                              allocator=OnDemandAllocator())
        mems = []
        try:
            while len(mems) < 200000:
                mems.append(Memory.new(eng, 1, 1))
        except AllocationError as e:
            print("limit:", e.limit, "after", len(mems))
        counts = set()
        for _ in range(5):
            try:
                Memory.new(eng, 1, 1)
            except AllocationError:
                pass
            counts.add(_ffi.mapping_count())
        print("stable:", len(counts) == 1, "near max:", max(counts) >= _ffi.max_map_count() - 16)
        for m in mems[:100]:
            m.close()
        Memory.new(eng, 1, 1).close()
        print("recovered")
    """
    proc = run_child(code, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "limit: vm.max_map_count" in proc.stdout, proc.stdout
    assert "stable: True near max: True" in proc.stdout
    assert "recovered" in proc.stdout
