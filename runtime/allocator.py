"""Instance allocators: where an Engine's linear memories and tables come from.

``allocate_memory(plan, image=None) -> Memory`` makes one memory (host memories,
``Memory.new``). An allocator hands the Memory a :class:`runtime.memory.MemorySlot`
prepared for the plan (accessible prefix R/W, image mapped); the Memory owns the slot and
calls its ``release()`` once when closed. :class:`OnDemandAllocator` uses one fresh
reservation per memory (:class:`runtime.memory.ReservedSlot`).

The interface is explicit, in one place: every allocator is an
:class:`InstanceAllocator` (an ABC: ``allocate_memory`` to implement, ``begin_instance``
to override), and what it returns is an :class:`Allocation` (a ``typing.Protocol``,
whose methods follow). ``begin_instance(module) -> Allocation`` is asked once per module (the first
instantiation; it may refuse with AllocationError, and is asked again next time then):
the object it returns serves every instance of that module, so it keeps no per-instance
state. Each Instance then goes through it, with the module's instantiation layout
(:class:`runtime.layout.InstanceLayout`):

* ``begin(module, layout, tables=None) -> handles``: counts the instance (a pooling
  allocator may refuse with AllocationError), opens one memory per ``layout.memories``
  entry and, into ``tables`` (a zeroed ``wenv_instance_table[]`` the instance owns, one
  entry per ``layout.tables``; None when there are none), every defined table
  (``layout.table_specs``, c_src/wenv_tables.h; elements uninitialized), all or
  nothing. A handle is whatever the allocation needs to find that memory again (a
  reservation's start, a pool slot, or a Memory).
* ``memory(layout, index, handle, desc=None) -> Memory``: the Memory object of an opened
  memory, made only when somebody asks for it (an instance that is never looked at costs
  no Memory object); from then on the Memory owns the memory and ``close()`` releases it.
  ``desc``: the descriptor :meth:`describe` made for it before, which the Memory adopts.
* ``describe(layout, index, handle) -> desc``: a C descriptor (``wenv_memory *``) of an
  opened memory without a Memory object, which releases the memory once closed and
  unused (``wenv_memory_own_*``): what an instance's interpreter state points at
  (Instance._memory_desc); None: the allocation's memories are Memory objects from the
  start. ``close_described(layout, index, handle, desc)`` closes such a descriptor
  whose Memory was never made (its release now, or C's after the last use in flight).
* ``table(layout, index, tables, instance) -> Table``: likewise the Table view of entry
  ``index`` of ``tables``, made on first use (``Instance._table``); from then on the
  Table owns the entry (C: ``viewed``), and gives it back when it is closed and no
  importer shares it any more. The instance's interpreter state takes the entries it
  binds the same way (runtime.interp._make_site, _ffi.vm_open: a later view adopts one) and the instance
  gives them back after its last call. A table nobody took was never written.
* ``closing(layout, handles, descs) -> ended``, before the instance closes its memories'
  descriptors, and ``finish(layout, handles, descs, ended, tables)`` after: release
  every table entry nothing took (``tables``), then every memory without a descriptor
  (``descs`` is None, or a list with None at those indices: neither a Memory nor an
  interpreter state had it, nothing wrote it, so a pool gives its slot back without a
  reset, ``wenv_pool_put_clean``); then the instance no longer counts (unless
  ``ended``: a pool hands the end of the instance to the release of its last memory,
  which C runs once the last access in flight on it has left). An instance with one
  memory opens and releases it with its tables in one C call each way
  (``wenv_instance_open_tables`` / ``wenv_instance_close_tables``).
* ``allocate_table(spec, instance=None, init=None) -> Table``: one table of this
  allocation outside :meth:`begin` (its own entry; the Table owns it).
* ``fast_context(layout)``: for a layout with one memory, what the C one-call path
  (``wenv_instance_open`` / ``wenv_instance_open_tables`` and their closes; a plain
  layout's instances after the first, runtime.layout) takes as the spec's pool (NULL
  for on-demand), or None. A refused one-call open is redone by ``begin`` (in steps: it
  raises the right exception, or a pool succeeds after a collection);
  ``close_failed(layout, handle, rc)`` turns a nonzero close result into the right
  exception or follow-up; ``open_one(layout, tables)`` is the one-call open (a plain
  instance's, and ``begin``'s first try), ``close_one(layout, handle, tables)`` the
  one-call release (finish's, and a plain instance's close). ``table_pool``: the
  ``wenv_table_pool *`` its tables come from (NULL: each its own reservation).

:class:`OnDemandAllocator` opens each memory with one C call (reserve, map the image,
mprotect the rest) and releases it with munmap.
:class:`runtime.pooling.PoolingAllocator` takes slots out of one big reservation and
returns them to the pool (reset) on release, one C call each way.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Protocol, Sequence, runtime_checkable

from wasmenv import WASM_PAGE_SIZE, MemoryPlan

from . import _ffi
from ._owner import Owner
from .memory import Memory, ReservedSlot, describe, own_reservation, reservation_geometry
from .table import Table, _Entry

__all__ = ["Allocation", "InstanceAllocator", "InstanceAllocation", "OnDemandAllocator", "begin_instance"]


@runtime_checkable
class Allocation(Protocol):
    """The interface an Instance allocates through (one object per module and allocator;
    the module docstring says when each method is called). Implemented by
    :class:`InstanceAllocation` (eager memories, the default of every
    :class:`InstanceAllocator`), the on-demand allocation and the pool's
    (``runtime.pooling._PoolAllocation``); nothing is looked up with ``getattr``."""

    table_pool: object

    def begin(self, module, layout, tables=None) -> list: ...
    def memory(self, layout, index: int, handle, desc=None) -> Memory: ...
    def describe(self, layout, index: int, handle): ...
    def close_described(self, layout, index: int, handle, desc) -> None: ...
    def range(self, layout, index: int, handle) -> tuple: ...
    def table(self, layout, index: int, tables, instance) -> Table: ...
    def allocate_table(self, spec, instance=None, init=None) -> Table: ...
    def closing(self, layout, handles, descs) -> bool: ...
    def finish(self, layout, handles, descs, ended: bool = False, tables=None) -> None: ...
    def fast_context(self, layout): ...
    def close_failed(self, layout, handle, rc: int) -> None: ...
    def open_one(self, layout, tables) -> int: ...
    def close_one(self, layout, handle, tables) -> None: ...


class InstanceAllocation:
    """The :class:`Allocation` of an allocator that implements only ``allocate_memory``:
    every memory is made eagerly and is its own handle (see the module docstring)."""

    __slots__ = ("allocator",)
    table_pool = _ffi.NULL  # each table its own reservation

    def __init__(self, allocator):
        self.allocator = allocator

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        return self.allocator.allocate_memory(plan, image)

    def begin(self, module, layout, tables=None) -> list:
        memories = []
        try:
            for plan, image in layout.memories:
                memories.append(self.allocate_memory(plan, image))
            self.open_tables(layout, tables)
        except BaseException:
            for memory in reversed(memories):
                memory.close()
            raise
        return memories

    def open_tables(self, layout, tables) -> None:
        """Open ``layout``'s defined tables into ``tables`` (None: none), all or nothing.

        Raises:
            AllocationError: a table could not be reserved, or a pool has no table slot left.
        """
        if tables is not None:
            code = _ffi.tables_open(self.table_pool, layout.table_specs, len(layout.tables), tables)
            if code:
                self.tables_failed(code, _ffi.errno_now())

    def tables_failed(self, code: int, err: int) -> None:
        """Raise for a negative result of _ffi.tables_open (``err``: its errno)."""
        _ffi.tables_open_failed("opening the instance's tables", err)

    def table(self, layout, index: int, tables, instance) -> Table:
        """The Table view of entry ``index`` of ``tables`` (see the module docstring)."""
        return Table._adopt(layout.tables[index], instance, _Entry(tables, index, self.table_pool, self))

    def close_tables(self, layout, tables) -> None:
        """Release the entries of ``tables`` (None: none) that no Table views."""
        if tables is not None:
            _ffi.tables_close(self.table_pool, len(layout.tables), tables)

    def allocate_table(self, spec, instance=None, init=None) -> Table:
        """A table of this allocation outside an instance's begin (its Table owns it)."""
        tables = _ffi.new_instance_tables(1)
        code = _ffi.tables_open(self.table_pool, _ffi.new_table_specs([(spec.plan.table.minimum, spec.limit)]),
                                1, tables)
        if code:
            self.tables_failed(code, _ffi.errno_now())
        table = Table._adopt(spec, instance, _Entry(tables, 0, self.table_pool, self))
        if init is not None:
            table.fill(0, init, table.size)
        return table

    def memory(self, layout, index: int, handle, desc=None) -> Memory:
        return handle

    def describe(self, layout, index: int, handle):
        """None: each memory is its Memory object (the handle) from the start."""
        return None

    def close_described(self, layout, index: int, handle, desc) -> None:
        raise AssertionError("no described memory without a Memory in an eager allocation")

    def fast_context(self, layout):
        """The spec's pool for the one-call path (see the module docstring); None: none."""
        return None

    def close_failed(self, layout, handle, rc: int) -> None:
        """After a one-call close returned ``rc`` != 0 (only with a fast_context)."""
        raise AssertionError("no one-call path without a fast_context")

    def open_one(self, layout, tables) -> int:
        """Open an instance's only memory and its tables (``tables``, None: none) in one C
        call (only with a fast_context): its handle, or < 0 with nothing left open
        (:meth:`begin`, in steps, then says which failed)."""
        return _ffi.instance_open_tables(layout.specs, self.table_pool, layout.table_specs, layout.table_count,
                                         _ffi.NULL if tables is None else tables)

    def close_one(self, layout, handle, tables) -> None:
        """Release an instance's only memory (``handle``, its Memory never made) and its
        tables (``tables``, None: none; no view of them) in one C call (only with a
        fast_context)."""
        rc = _ffi.instance_close_tables(layout.specs, handle, self.table_pool, layout.table_count,
                                        _ffi.NULL if tables is None else tables)
        if rc:
            self.close_failed(layout, handle, rc)

    def range(self, layout, index: int, handle) -> tuple:
        """(start, end) of an opened memory's reservation, guards included."""
        return handle.reservation_range

    def closing(self, layout, handles, descs) -> bool:
        """Before an instance closes its memories' descriptors: True if the allocation
        made the last of them end the instance when it is released (then finish()
        does not)."""
        return False

    def finish(self, layout, handles, descs, ended: bool = False, tables=None) -> None:
        self.close_tables(layout, tables)
        for memory in reversed(handles):
            memory.close()


def begin_instance(allocator: "InstanceAllocator", module) -> Allocation:
    """``allocator.begin_instance(module)``.

    Raises:
        TypeError: ``allocator`` is not an :class:`InstanceAllocator`.
    """
    if not isinstance(allocator, InstanceAllocator):
        raise TypeError(f"an Engine's allocator must be a runtime.allocator.InstanceAllocator "
                        f"(subclass it and implement allocate_memory), got {type(allocator).__name__}")
    return allocator.begin_instance(module)


class InstanceAllocator(Owner, metaclass=ABCMeta):
    """Base class of every allocator: allocates linear memories for an Engine, and gives
    instances of a module the :class:`Allocation` they go through. A subclass implements
    ``allocate_memory`` (then instances get eager memories) and may override
    ``begin_instance``: :class:`OnDemandAllocator` and
    :class:`runtime.pooling.PoolingAllocator` do. An allocator owns what it reserved for
    all its instances: :meth:`close`, context manager, ``__del__`` backstop."""

    @abstractmethod
    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        """A new Memory for ``plan`` with ``image`` (a MemoryImage or None) mapped CoW.

        Raises:
            AllocationError: the address space (or another OS limit) ran out.
        """
        raise NotImplementedError

    def begin_instance(self, module) -> Allocation:
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

    def begin(self, module, layout, tables=None) -> Sequence[int]:
        specs = layout.specs
        if layout.memory_count == 1:  # one C call, all or nothing
            start = self.open_one(layout, tables)
            if start >= 0:
                return (start,)
            # Nothing is left open: the same in steps says which failed.
        if not layout.memory_count:  # (a side module: one shared empty handle sequence)
            self.open_tables(layout, tables)
            return ()
        starts = []
        try:
            for index in range(layout.memory_count):
                starts.append(_ffi.memory_open(specs + index))
            self.open_tables(layout, tables)
        except BaseException:
            self.finish(layout, starts, None)
            raise
        return starts

    def fast_context(self, layout):
        return _ffi.NULL if layout.memory_count == 1 else None

    def close_failed(self, layout, start: int, rc: int) -> None:
        _ffi.release_failed(start, layout.reserve_bytes[0])

    def memory(self, layout, index: int, start: int, desc=None) -> Memory:
        plan, image = layout.memories[index]
        _ffi.install_trap_handler()  # idempotent; puts ours back on top if covered
        slot = ReservedSlot._adopt(plan, start, layout.reserve_bytes[index])
        return Memory._adopt(plan, image, slot, desc)

    def describe(self, layout, index: int, start: int):
        plan = layout.memories[index][0]
        total = layout.reserve_bytes[index]
        _ffi.install_trap_handler()  # (its accessors' faults: as for a Memory)
        desc = _ffi.new_memory_desc()
        base, capacity, guard = reservation_geometry(plan, start, total)
        describe(desc, plan, base, plan.memory.minimum * WASM_PAGE_SIZE, capacity, guard, (start, start + total))
        own_reservation(desc, plan)
        return desc

    def close_described(self, layout, index: int, start: int, desc) -> None:
        rc = _ffi.memory_close(desc)
        if rc and rc != _ffi.RELEASE_DEFERRED:
            _ffi.release_failed(start, layout.reserve_bytes[index])

    def range(self, layout, index: int, start: int) -> tuple:
        return (start, start + layout.reserve_bytes[index])

    def finish(self, layout, starts, descs, ended: bool = False, tables=None) -> None:
        totals = layout.reserve_bytes
        if tables is not None and descs is None and len(starts) == 1:
            self.close_one(layout, starts[0], tables)
            return
        self.close_tables(layout, tables)
        for index in range(len(starts) - 1, -1, -1):
            if descs is None or descs[index] is None:
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
