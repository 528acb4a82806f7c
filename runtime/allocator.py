"""Instance allocators: where an Engine's linear memories and tables come from.

``allocate_memory(plan, image=None) -> Memory`` makes one memory (host memories,
``Memory.new``). An allocator hands the Memory a :class:`runtime.memory.MemorySlot`
prepared for the plan (accessible prefix R/W, image mapped); the Memory owns the slot and
calls its ``release()`` once when closed. :class:`OnDemandAllocator` uses one fresh
reservation per memory (:class:`runtime.memory.ReservedSlot`).

An Instance goes through ``begin_instance(module) -> InstanceAllocation``: once, after
linking and before anything is allocated (a pooling allocator counts instances there and
may refuse with AllocationError); then ``allocate_memory`` / ``allocate_table`` on the
returned object for each defined memory and table; then ``end()`` once, after every
memory and table it handed out was closed (also when instantiation failed half-way).
The on-demand allocator does no per-instance work. :class:`runtime.pooling.PoolingAllocator`
takes slots out of one big reservation and returns them to the pool (reset) on release.
"""
from __future__ import annotations


from wasmenv import MemoryPlan

from .memory import Memory, ReservedSlot
from .table import Table

__all__ = ["InstanceAllocator", "InstanceAllocation", "OnDemandAllocator", "begin_instance"]


class InstanceAllocation:
    """What one Instance takes from an allocator (the default: no per-instance state).

    ``allocate_memory`` / ``allocate_table`` create the instance's defined memories and
    tables; ``end()`` is called once after all of them were closed.
    """

    __slots__ = ("allocator",)

    def __init__(self, allocator):
        self.allocator = allocator

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        return self.allocator.allocate_memory(plan, image)

    def allocate_table(self, plan, lazy=None, make_func=None, init=None) -> Table:
        return Table._for_plan(plan, lazy, make_func, init)

    def end(self) -> None:
        pass


def begin_instance(allocator, module) -> InstanceAllocation:
    """``allocator.begin_instance(module)``, or the default for allocators that only
    implement ``allocate_memory``."""
    begin = getattr(allocator, "begin_instance", None)
    return begin(module) if begin is not None else InstanceAllocation(allocator)


class InstanceAllocator:
    """Base class: allocates linear memories for an Engine."""

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        """A new Memory for ``plan`` with ``image`` (a MemoryImage or None) mapped CoW.

        Raises:
            AllocationError: the address space (or another OS limit) ran out.
        """
        raise NotImplementedError

    def begin_instance(self, module) -> InstanceAllocation:
        """Start allocating for one instance of ``module`` (see the module docstring).

        Raises:
            AllocationError: the allocator cannot host another instance of this module.
        """
        return InstanceAllocation(self)

    def close(self) -> None:
        """Release allocator-wide resources (none for on-demand allocation)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OnDemandAllocator(InstanceAllocator):
    """One reservation per memory, sized by the plan (DESIGN.md "Allocators")."""

    def begin_instance(self, module) -> InstanceAllocation:
        shared = self.__dict__.get("_shared")
        if shared is None:  # stateless: one object serves every instance
            shared = self.__dict__["_shared"] = InstanceAllocation(self)
        return shared

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        return Memory(plan, image, slot_factory=ReservedSlot)

    def __repr__(self):
        return "<OnDemandAllocator>"
