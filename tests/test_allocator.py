"""Allocators: the protocol instances go through (runtime/allocator.py), with a custom
allocator that only implements ``allocate_memory``, and the on-demand one-call path."""
import gc
import os

import pytest

from runtime import Engine, Instance, Memory, Module, Trap
from runtime.allocator import Allocation, InstanceAllocation, InstanceAllocator, OnDemandAllocator
from tests.helpers import wat

WASM_PAGE = 65536


class Recording(InstanceAllocator):
    """Hands out on-demand memories and remembers them (no begin_instance of its own)."""

    def __init__(self):
        self.made = []
        self._inner = OnDemandAllocator()

    def allocate_memory(self, plan, image=None):
        memory = self._inner.allocate_memory(plan, image)
        self.made.append(memory)
        return memory


class DuckTyped:
    """Not an InstanceAllocator at all: just allocate_memory (refused: the interface is
    explicit, nothing is discovered with getattr)."""

    def __init__(self):
        self.calls = 0

    def allocate_memory(self, plan, image=None):
        self.calls += 1
        return OnDemandAllocator().allocate_memory(plan, image)


TWO_MEMORIES = wat('(module (memory (export "a") 1) (memory (export "b") 2 3) (data (memory 1) (i32.const 5) "bee"))')
ONE_MEMORY = wat('(module (memory (export "m") 1) (data (i32.const 0) "one"))')


def test_an_allocator_must_be_an_instance_allocator():
    module = Module(Engine(allocator=DuckTyped()), ONE_MEMORY)
    with pytest.raises(TypeError, match="InstanceAllocator"):
        Instance(module)
    with pytest.raises(TypeError):
        InstanceAllocator()  # abstract: allocate_memory is the one method to implement


def test_an_allocator_with_only_allocate_memory_gets_eager_memories():
    alloc = Recording()
    module = Module(Engine(allocator=alloc), TWO_MEMORIES)
    for _ in range(3):  # the first instance and later ones take the same path
        with Instance(module) as inst:
            a, b = inst.exports["a"], inst.exports["b"]
            assert isinstance(a, Memory) and (a.size_pages, b.size_pages) == (1, 2)
            assert b.read(5, 3) == b"bee"
        assert a.closed and b.closed
    assert not module._instance_layout.fast  # no one-call path without the allocator's say
    assert len(alloc.made) == 6 and all(m.closed for m in alloc.made)


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_every_allocation_implements_the_one_interface(pooled):
    from tests.helpers import make_pool
    alloc = make_pool() if pooled else OnDemandAllocator()
    module = Module(Engine(allocator=alloc), ONE_MEMORY)
    Instance(module).close()
    allocation = module._instance_layout.allocation
    assert isinstance(allocation, Allocation) and isinstance(allocation, InstanceAllocation)
    alloc.close()


def test_the_allocation_is_asked_for_once_per_module():
    asked = []

    class Counting(OnDemandAllocator):
        def begin_instance(self, module):
            asked.append(module)
            return super().begin_instance(module)

    engine = Engine(allocator=Counting())
    one, two = Module(engine, ONE_MEMORY), Module(engine, TWO_MEMORIES)
    for _ in range(4):
        Instance(one).close()
        Instance(two).close()
    assert asked == [one, two]
    assert isinstance(one._instance_layout.allocation, InstanceAllocation)
    assert isinstance(one._instance_layout.allocation, Allocation)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps")
def test_on_demand_one_call_instances_unmap_everything():
    module = Module(Engine(), ONE_MEMORY)
    Instance(module).close()
    assert module._instance_layout.fast
    gc.collect()
    with open("/proc/self/maps") as f:
        before = sum(1 for _ in f)
    live = [Instance(module) for _ in range(200)]
    ranges = [i.reservation_ranges()[0] for i in live]
    assert len(set(ranges)) == 200
    assert all(end - start == module.env.memory_plans[0].reservation_bytes() for start, end in ranges)
    assert live[7].memory(0).read(0, 3) == b"one"
    with pytest.raises(Trap):
        live[7].memory(0).load_i32(WASM_PAGE - 3)
    for i in live:
        i.close()
    with open("/proc/self/maps") as f:
        assert sum(1 for _ in f) == before
