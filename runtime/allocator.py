"""Instance allocators: where an Engine's linear memories come from.

The interface is one method, ``allocate_memory(plan, image=None) -> Memory``. An
allocator hands the Memory a :class:`runtime.memory.MemorySlot` prepared for the plan
(accessible prefix R/W, image mapped); the Memory owns the slot and calls its
``release()`` once when closed. :class:`OnDemandAllocator` uses one fresh reservation
per memory (:class:`runtime.memory.ReservedSlot`); a pooling allocator implements the
same method with slots carved out of one big reservation, returned to the pool (reset)
on release.
"""
from __future__ import annotations

from typing import Optional

from wasmenv import MemoryPlan

from .memory import Memory, ReservedSlot

__all__ = ["InstanceAllocator", "OnDemandAllocator"]


class InstanceAllocator:
    """Base class: allocates linear memories for an Engine."""

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        """A new Memory for ``plan`` with ``image`` (a MemoryImage or None) mapped CoW.

        Raises:
            AllocationError: the address space (or another OS limit) ran out.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release allocator-wide resources (none for on-demand allocation)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OnDemandAllocator(InstanceAllocator):
    """One reservation per memory, sized by the plan (DESIGN.md "Allocators")."""

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        return Memory(plan, image, slot_factory=ReservedSlot)

    def __repr__(self):
        return "<OnDemandAllocator>"
