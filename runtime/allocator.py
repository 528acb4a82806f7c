"""Instance allocators: where an Engine's linear memories and tables come from.

``allocate_memory(plan, image=None) -> Memory`` makes one memory (host memories,
``Memory.new``). An allocator hands the Memory a :class:`runtime.memory.MemorySlot`
prepared for the plan (accessible prefix R/W, image mapped); the Memory owns the slot and
calls its ``release()`` once when closed. :class:`OnDemandAllocator` uses one fresh
reservation per memory (:class:`runtime.memory.ReservedSlot`).

``begin_instance(module) -> InstanceAllocation`` is asked once per module (the first
instantiation; it may refuse with AllocationError, and is asked again next time then):
the object it returns serves every instance of that module, so it keeps no per-instance
state. Each Instance then goes through it, with the module's instantiation layout
(:class:`runtime.layout.InstanceLayout`):

* ``begin(module, layout) -> handles``: counts the instance (a pooling allocator may
  refuse with AllocationError) and opens one memory per ``layout.memories`` entry, all
  or nothing. A handle is whatever the allocation needs to find that memory again (a
  reservation's start, a pool slot, or a Memory).
* ``memory(layout, index, handle) -> Memory``: the Memory object of an opened memory,
  made only when somebody asks for it (an instance that is never looked at costs no
  Memory object); from then on the Memory owns the memory and ``close()`` releases it.
* ``allocate_table(...)`` for each defined table;
* ``finish(layout, handles, made)``: release every memory whose Memory was never made
  (``made`` is None, or a list with None at those indices), after the instance closed
  the ones that were; then the instance no longer counts.
* ``fast_context(layout)``: for a layout with one memory, what the C one-call path
  (``wenv_instance_open`` / ``wenv_instance_close``) takes as the spec's pool (NULL for
  on-demand), or None; with it come ``open_failed(layout, code, errno)`` and
  ``close_failed``, which turn a negative or nonzero C result into the right exception
  or follow-up.

:class:`OnDemandAllocator` opens each memory with one C call (reserve, map the image,
mprotect the rest) and releases it with munmap.
:class:`runtime.pooling.PoolingAllocator` takes slots out of one big reservation and
returns them to the pool (reset) on release, one C call each way.
"""
from __future__ import annotations

from wasmenv import MemoryPlan

from . import _ffi
from ._owner import Owner
from .memory import Memory, ReservedSlot
from .table import Table

__all__ = ["InstanceAllocator", "InstanceAllocation", "OnDemandAllocator", "begin_instance"]


class InstanceAllocation:
    """What instances take from an allocator that only implements ``allocate_memory``:
    every memory is made eagerly and is its own handle (see the module docstring)."""

    __slots__ = ("allocator",)

    def __init__(self, allocator):
        self.allocator = allocator

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        return self.allocator.allocate_memory(plan, image)

    def begin(self, module, layout) -> list:
        memories = []
        try:
            for plan, image in layout.memories:
                memories.append(self.allocate_memory(plan, image))
        except BaseException:
            for memory in reversed(memories):
                memory.close()
            raise
        return memories

    def memory(self, layout, index: int, handle) -> Memory:
        return handle

    def fast_context(self, layout):
        """The spec's pool for the one-call path (see the module docstring); None: none."""
        return None

    def range(self, layout, index: int, handle) -> tuple:
        """(start, end) of an opened memory's reservation, guards included."""
        return handle.reservation_range

    def allocate_table(self, plan, lazy=None, funcrefs=None, init=None) -> Table:
        return Table._for_plan(plan, lazy, funcrefs, init)

    def finish(self, layout, handles, made) -> None:
        for memory in reversed(handles):
            memory.close()


def begin_instance(allocator, module) -> InstanceAllocation:
    """``allocator.begin_instance(module)``, or the default for allocators that only
    implement ``allocate_memory``."""
    begin = getattr(allocator, "begin_instance", None)
    return begin(module) if begin is not None else InstanceAllocation(allocator)


class InstanceAllocator(Owner):
    """Base class: allocates linear memories for an Engine. An allocator owns what it
    reserved for all its instances: :meth:`close`, context manager, ``__del__`` backstop."""

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        """A new Memory for ``plan`` with ``image`` (a MemoryImage or None) mapped CoW.

        Raises:
            AllocationError: the address space (or another OS limit) ran out.
        """
        raise NotImplementedError

    def begin_instance(self, module) -> InstanceAllocation:
        """What instances of ``module`` allocate through; asked once per module, and the
        object serves every instance of it (see the module docstring).

        Raises:
            AllocationError: the allocator cannot host an instance of this module.
        """
        return InstanceAllocation(self)

    def close(self) -> None:
        """Release allocator-wide resources (none for on-demand allocation)."""


class _OnDemandAllocation(InstanceAllocation):
    """Handles are reservation starts from ``_ffi.memory_open`` (one C call per memory)."""

    __slots__ = ()

    def begin(self, module, layout) -> list:
        specs = layout.specs
        starts = []
        try:
            for index in range(layout.memory_count):
                starts.append(_ffi.memory_open(specs + index))
        except BaseException:
            self.finish(layout, starts, None)
            raise
        return starts

    def fast_context(self, layout):
        return _ffi.NULL if layout.memory_count == 1 else None

    def open_failed(self, layout, code: int, err: int) -> int:
        _ffi.memory_open_failed(layout.specs, err)

    def close_failed(self, layout, start: int, rc: int) -> None:
        _ffi.release_failed(start, layout.reserve_bytes[0])

    def memory(self, layout, index: int, start: int) -> Memory:
        plan, image = layout.memories[index]
        _ffi.install_trap_handler()  # idempotent; puts ours back on top if covered
        slot = ReservedSlot._adopt(plan, plan.memory.minimum, start)
        return Memory._adopt(plan, image, slot, layout.max_pages[index])

    def range(self, layout, index: int, start: int) -> tuple:
        return (start, start + layout.reserve_bytes[index])

    def finish(self, layout, starts, made) -> None:
        totals = layout.reserve_bytes
        for index in range(len(starts) - 1, -1, -1):
            if made is None or made[index] is None:
                _ffi.release(starts[index], totals[index])


class OnDemandAllocator(InstanceAllocator):
    """One reservation per memory, sized by the plan (DESIGN.md "Allocators")."""

    def __init__(self):
        self._shared = _OnDemandAllocation(self)  # stateless: serves every instance

    def begin_instance(self, module) -> InstanceAllocation:
        return self._shared

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        return Memory(plan, image, slot_factory=ReservedSlot)

    def __repr__(self):
        return "<OnDemandAllocator>"
