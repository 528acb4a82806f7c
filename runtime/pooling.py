"""PoolingAllocator: instance memories and tables from pre-reserved, reused slots.

DESIGN.md "Allocators". One reservation holds every memory slot of the pool::

    [pre-guard][slot 0: bound | guard][slot 1: bound | guard] ... [slot S-1: bound | guard]
               ^base_0                 ^base_1 = base_0 + stride

``bound`` = ``max_memory_pages`` x 64 KiB (a host-page multiple), ``guard`` = the offset
guard (rounded to the host page), ``stride`` = bound + guard and S = max_instances x
max_memories_per_instance. A slot's trailing guard is the next slot's pre-guard; the
first slot gets its own pre-guard when guards before linear memory are on. A pool larger
than ``MAX_CHUNK_BYTES`` (16 TiB) is reserved in chunks of whole slots, each with its own
pre-guard: no single gap of a 47-bit address space holds 30,000 x 4 GiB. The guard
size is ``guard_bytes`` if given (the pool is then reserved at construction), else the
static offset guard of the Engine that first instantiates through the pool (reserved
then). Nothing of the pool is unmapped until the pool itself is released.

A memory in a slot never moves: it grows with mprotect up to ``max_memory_pages`` (past
that, ``grow`` returns -1). Its C descriptor says bound = the slot's bound and guard =
the slot's guard, so accessors skip bounds checks only when
``0xFFFFFFFF + offset + width <= bound + guard`` (with small slots: explicit checks;
memory64 and Dynamic-plan memories: always explicit checks). A memory whose minimum
exceeds ``max_memory_pages`` is refused (AllocationError, limit "max_memory_pages").

Slot state (what the pool knows about each slot's pages)
-------------------------------------------------------
* ``accessible``: bytes from the slot's base that are R/W; everything above is PROT_NONE.
* ``image``: which MemoryImage (its ``key``, never reused) is mapped (MAP_PRIVATE) over
  which range, if any; it always lies inside ``[0, accessible)``.
* every R/W byte outside the image range is zero and every image byte equals the
  image file, whenever the slot is free (the reset below makes it so), and every
  PROT_NONE byte of the bound reads as zero once made accessible.
* ``poisoned``: a reset step failed, so nothing above holds; the slot is replaced by
  fresh PROT_NONE anonymous memory (``mmap(MAP_FIXED)``) before anybody gets it.

A slot whose Memory object was never made is not reset at release: nothing could write
it (a write needs the descriptor: a Memory, the instance's interpreter state, which
makes its Memory objects, or data segments, written through them), so its pages are as
its take left them (``wenv_pool_put_clean``). Otherwise:

Release (Instance.close, or Memory.close once its object was made; a slot whose Memory
has an access, grow or wasm call in flight is released by C when the last of them has
left, and a grow names the tenancy it started in): reset the contents of ``[0, accessible)``: the
first ``keep_resident`` bytes (rounded up to a host page) are zeroed with memset and stay
resident, except the image range; the image range and everything above keep_resident
are decommitted (Linux: ``madvise(MADV_DONTNEED)``: image pages revert to the file, the
rest to zero; macOS: fresh anonymous pages, which also drops the image mapping). If any
step fails the slot is remapped PROT_NONE anonymous now, or marked poisoned if even that
fails. The protection is left as it is; the slot goes back on the free list (LIFO, so a
module instantiated in a loop gets the slot it just released).

Acquire (an Instance allocates a memory of ``minimum`` pages with image I or None):
poisoned -> remap the slot; a different image (or none wanted) -> the old image range is
replaced by fresh anonymous zero pages; then exactly ``[0, minimum)`` is made R/W
(mprotect the difference: R/W below, PROT_NONE above); then I is mapped if the slot does
not hold it already. The same module instantiated again in the same slot costs no
syscall at acquire and one madvise at release.

Tables: max_instances x max_tables_per_instance table slots, in C (c_src/wenv_tables.h,
a ``wenv_table_pool``). A slot keeps its table storage (a reservation of elements)
between tenants: a tenant's table is moved out of it at instantiation and back at
release, zeroed where the tenant may have written (a table no Table view was made of
was never written: nothing to zero), so a tenancy costs no syscall.
``max_table_elements`` caps a table's minimum (AllocationError at instantiation) and its
growth (``grow`` returns -1); the slot returns to the pool with its instance's close,
or, once a Table view of it was made, when that view is closed and no importer shares
it any more (or by the view's own backstop).

Instances: ``begin_instance`` checks a module against the limits once, before anything
is allocated; the instance's first slot take counts it (at most ``max_instances``), and
the count drops with its last release, after its tables were returned. At the instance limit it
runs the cyclic GC (at most every 0.5 s) before refusing: instances dropped without
``close()`` are reference cycles that hold their slots until the next collection.
Host memories (``Memory.new(engine, ...)``) do not come from the pool: they are
allocated on demand.

Closing the pool with live instances is deferred: ``close()`` refuses new instances at
once (ValueError) and the reservation is unmapped when the last live instance and slot
are returned. The allocator's backstop (``__del__``) does the same.

Where it runs: the per-instance work above (count the instance, pop a slot, prepare it;
reset it, push it back) is C (c_src/wenv_pool.c), one call each way, so that a pooled
instantiation costs little more than its syscalls; an instance with one memory takes
its slot and its table slots in one call, and gives them back in one
(``wenv_instance_open_tables``). Python reserves the pool and checks a module against
the limits once. Threads: slot and instance
bookkeeping is under one mutex; the syscalls that prepare or reset a slot run outside
it, on a slot nobody else can see.
"""
from __future__ import annotations

import contextlib
import gc
import time
import weakref
from typing import Optional, Sequence

from wasmenv import WASM_PAGE_SIZE, MemoryPlan

from . import _ffi
from ._pool_core import PoolMemorySlot, _PoolCore
from .allocator import InstanceAllocation, InstanceAllocator
from .errors import AllocationError
from .memory import Memory, ReservedSlot, describe
# The pool's state lives in _pool_core; these stay importable from here, where they were
# defined before (tests and runtime/_owner.py name runtime.pooling._IN_USE).
from ._pool_core import MAX_CHUNK_BYTES as MAX_CHUNK_BYTES
from ._pool_core import _IN_USE as _IN_USE

__all__ = ["PoolingAllocator"]

#: Seconds between two garbage collections forced by a refused instance.
_COLLECT_INTERVAL = 0.5


def _check_count(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"PoolingAllocator.{name} must be a non-negative int, got {value!r}")
    return value


_take = _ffi.pool_take


class _PoolAllocation(InstanceAllocation):
    """What every instance of a pool goes through; handles are slot indices (the slot
    state lives in C). One object per pool: it keeps no per-instance state."""

    __slots__ = ("_core",)

    def __init__(self, allocator, core: _PoolCore):
        self.allocator = allocator
        self._core = core

    @property
    def table_pool(self):
        return self._core.table_native

    def begin(self, module, layout, tables=None) -> Sequence[int]:
        core = self._core
        if not core.reserved:
            core.ensure_reserved(module.engine.tunables)
        native = core.native
        if native is None:
            raise ValueError("the PoolingAllocator is closed")
        if layout.memory_count == 1:  # one C call: the slot (counting the instance) and the tables
            slot = self.open_one(layout, tables)
            if slot >= 0:
                return (slot,)
            # Nothing is left taken: the same in steps says which failed (after a
            # collection, at max_instances).
        if layout.memory_count == 0:
            code = _ffi.pool_begin(native)
            if code:
                self._retry(code, 0, lambda: _ffi.pool_begin(native) or 0)
        slots = []
        try:
            for index in range(layout.memory_count):
                slot = _take(native, layout.specs + index, 0 if slots else 1)
                if slot < 0:
                    err = _ffi.errno_now()
                    slot = self._retry(slot, err, lambda i=index: _take(native, layout.specs + i,
                                                                        0 if slots else 1))
                slots.append(slot)
            self.open_tables(layout, tables)
        except BaseException:
            if slots or layout.memory_count == 0:
                self.finish(layout, slots, None)
            raise
        return slots or ()  # (no memory: one shared empty handle sequence per instance)

    def tables_failed(self, code: int, err: int) -> None:
        if code == -1:
            _ffi.tables_open_failed("opening the instance's tables", err)
        raise self._core.refused(code, "opening the instance's tables", err)

    def _retry(self, code: int, err: int, again):
        """Raise for a refused call (``err``: its errno); at max_instances, collect
        dropped instances first and call ``again()`` once."""
        if code == _ffi.POOL_MAX_INSTANCES:
            allocator = self.allocator
            now = time.monotonic()
            if now - allocator._last_collect >= _COLLECT_INTERVAL:
                # Instances are reference cycles: ones dropped without close() hold their
                # slots until the cyclic GC finds them. Find them now (at most once per
                # _COLLECT_INTERVAL: a full collection is slow), then try once more.
                allocator._last_collect = now
                gc.collect()
                code = again()
                if code >= 0:
                    return code
                err = _ffi.errno_now()
        raise self._core.refused(code, "preparing a pool memory slot", err)

    def fast_context(self, layout):
        """The pool for _ffi.instance_open when the module has one memory, else None."""
        return self._core.native if layout.memory_count == 1 else None

    def close_failed(self, layout, slot: int, rc: int) -> None:
        """After _ffi.instance_close returned ``rc`` != 0 (wenv_pool_put_clean's result)."""
        self._core.after_put(rc, slot)

    def memory(self, layout, index: int, slot: int, desc=None) -> Memory:
        plan, image = layout.memories[index]
        _ffi.install_trap_handler()  # idempotent; puts ours back on top if covered
        return Memory._adopt(plan, image, PoolMemorySlot(self._core, slot), desc)

    def describe(self, layout, index: int, slot: int):
        core = self._core
        plan = layout.memories[index][0]
        _ffi.install_trap_handler()  # (its accessors' faults: as for a Memory)
        desc = _ffi.new_memory_desc()
        base, capacity, guard, reservation_range = core.slot_geometry(slot)
        describe(desc, plan, base, plan.memory.minimum * WASM_PAGE_SIZE, capacity, guard, reservation_range)
        _ffi.memory_own_pool_slot(desc, core.native, slot, 0)
        return desc

    def close_described(self, layout, index: int, slot: int, desc) -> None:
        rc = _ffi.memory_close(desc)
        if rc != _ffi.RELEASE_DEFERRED:
            self._core.after_put(rc, slot)

    def range(self, layout, index: int, slot: int) -> tuple:
        core = self._core
        base = _ffi.pool_slot_base(core.native, slot)
        return (base, base + core.stride)

    def closing(self, layout, slots, descs) -> bool:
        """When every memory has a descriptor, the one closed last (the first) ends the
        instance in C with its slot: at its close, or when the last access, grow or call
        in flight on it has left (so no instance is admitted before its slot is free)."""
        if descs is None or None in descs:
            return False
        desc = descs[0]
        if desc.flags & _ffi.MEM_CLOSED:  # closed by its holder already: finish() ends the instance
            return False
        _ffi.memory_own_pool_slot(desc, self._core.native, slots[0], 1)
        return True

    def finish(self, layout, slots, descs, ended: bool = False, tables=None) -> None:
        core = self._core
        if tables is not None and descs is None and len(slots) == 1:
            self.close_one(layout, slots[0], tables)
            return
        self.close_tables(layout, tables)
        # Slots without a descriptor: nothing could write them (no Memory, no interpreter
        # state, no data written), they need no reset.
        pending = [slot for index, slot in enumerate(slots) if descs is None or descs[index] is None]
        for slot in pending[:-1]:
            core.put(slot, False, clean=True)
        if pending:
            core.put(pending[-1], True, clean=True)
        elif not ended:
            core.end()


class PoolingAllocator(InstanceAllocator):
    """Instance memories and tables from a fixed pool of reused slots (see the module doc).

    Args:
        max_instances: live instances at once.
        max_memories_per_instance: defined memories per instance.
        max_memory_pages: the size of every memory slot, in wasm pages: a memory's minimum
            must fit (AllocationError) and it grows no further (``grow`` returns -1).
        max_tables_per_instance: defined tables per instance.
        max_table_elements: a table's minimum must fit (AllocationError) and it grows no
            further (``grow`` returns -1).
        keep_resident: bytes at the start of each memory slot reset with memset (kept
            resident) instead of being decommitted; rounded up to a host page.
        guard_bytes: the PROT_NONE guard after each slot (rounded up to a host page).
            Default: the static offset guard of the Engine that first instantiates with
            the pool, which is also when the pool is reserved; given explicitly, the
            pool is reserved here.
        guard_before: a guard before the first slot (default: the Engine's
            ``guard_before_linear_memory``).
        reset: how a released slot's pages are given back: "madvise"
            (``MADV_DONTNEED``: the rest reads zero, image pages revert to the file and
            the image stays mapped for the next tenant of the same module) or "remap"
            (fresh anonymous pages over the range: everything reads zero, the image is
            mapped again by its next tenant; the only way on macOS, where MADV_DONTNEED
            does not zero). Default: the platform's ("remap" on macOS, else "madvise").

    Raises (construction, or the first instantiation when reserved lazily):
        AllocationError: the reservation failed; ``limit`` is "address space" or
            "vm.max_map_count".

    Instantiation raises AllocationError with ``limit`` naming the exhausted limit:
    "max_instances", "max_memories_per_instance", "max_memory_pages",
    "max_tables_per_instance" or "max_table_elements"; nothing is left taken.
    """

    def __init__(self, max_instances: int, max_memories_per_instance: int, max_memory_pages: int,
                 max_tables_per_instance: int, max_table_elements: int, keep_resident: int = 0, *,
                 guard_bytes: Optional[int] = None, guard_before: Optional[bool] = None,
                 reset: Optional[str] = None):
        self.max_instances = _check_count("max_instances", max_instances)
        self.max_memories_per_instance = _check_count("max_memories_per_instance", max_memories_per_instance)
        self.max_memory_pages = _check_count("max_memory_pages", max_memory_pages)
        self.max_tables_per_instance = _check_count("max_tables_per_instance", max_tables_per_instance)
        self.max_table_elements = _check_count("max_table_elements", max_table_elements)
        self.keep_resident = _check_count("keep_resident", keep_resident)
        if guard_bytes is not None:
            _check_count("guard_bytes", guard_bytes)
        core = _PoolCore(max_instances, max_memories_per_instance, max_memory_pages,
                         max_tables_per_instance, max_table_elements, keep_resident)
        core.check_sizes(0 if guard_bytes is None else guard_bytes)  # lazy: the smallest guard
        if reset is not None:
            if reset not in _ffi.RESETS:
                raise ValueError(f"PoolingAllocator.reset must be one of {tuple(_ffi.RESETS)} or None, "
                                 f"got {reset!r}")
            if reset == "madvise" and _ffi.IS_MACOS:
                raise ValueError("PoolingAllocator.reset='madvise' does not zero pages on macOS")
            core.reset = reset
        core.guard_option = guard_bytes
        core.guard_before_option = None if guard_before is None else bool(guard_before)
        self._core = core
        self._allocation = _PoolAllocation(self, core)
        self._last_collect = -_COLLECT_INTERVAL
        self._fits = weakref.WeakSet()  # modules check_module accepted (the limits never change)
        if guard_bytes is not None:
            with core.lock:
                core.reserve(guard_bytes, True if guard_before is None else bool(guard_before))

    # ---- the allocator interface -----------------------------------------------------

    def begin_instance(self, module) -> InstanceAllocation:
        if module not in self._fits:
            self.check_module(module)
            self._fits.add(module)
        # Reserved now (once), so that the allocation's fast_context is the C pool.
        self._core.ensure_reserved(module.engine.tunables)
        return self._allocation

    def check_module(self, module) -> None:
        """Raise AllocationError if an instance of ``module`` could never fit this pool."""
        core = self._core
        env = module.env
        memories = env.memory_plans[env.num_imported_memories:]
        tables = env.table_plans[env.num_imported_tables:]
        if len(memories) > core.max_memories_per_instance:
            raise AllocationError(f"the module defines {len(memories)} memories "
                                  f"(max_memories_per_instance={core.max_memories_per_instance})",
                                  "max_memories_per_instance")
        if len(tables) > core.max_tables_per_instance:
            raise AllocationError(f"the module defines {len(tables)} tables "
                                  f"(max_tables_per_instance={core.max_tables_per_instance})",
                                  "max_tables_per_instance")
        for i, plan in enumerate(memories):
            if plan.memory.minimum > core.max_memory_pages:
                raise AllocationError(f"defined memory {i} needs {plan.memory.minimum} pages "
                                      f"(max_memory_pages={core.max_memory_pages})", "max_memory_pages")
        for i, plan in enumerate(tables):
            if plan.table.minimum > core.max_table_elements:
                raise AllocationError(f"defined table {i} needs {plan.table.minimum} elements "
                                      f"(max_table_elements={core.max_table_elements})", "max_table_elements")

    def allocate_memory(self, plan: MemoryPlan, image=None) -> Memory:
        """A host memory (not part of an instance): allocated on demand, not from the pool."""
        return Memory(plan, image, slot_factory=ReservedSlot)

    # ---- introspection ---------------------------------------------------------------

    @property
    def live_instances(self) -> int:
        return self._core.stats()[0]

    @property
    def live_memories(self) -> int:
        return self._core.stats()[1]

    @property
    def live_tables(self) -> int:
        return self._core.live_tables

    @property
    def reservation_ranges(self):
        """(start, end) of every chunk of the pool's reservation (one unless the pool is
        larger than MAX_CHUNK_BYTES); empty before it is made and after it was released."""
        return [(c.start, c.end) for c in self._core.chunks if not c.closed]

    @property
    def reservation_range(self):
        """(start, end) of the pool's (first) reservation (guards included), or None before
        it is made (lazily, at the first instantiation) and after it was released."""
        res = self._core.reservation
        return None if res is None or res.closed else (res.start, res.end)

    @property
    def slot_bytes(self) -> int:
        """Distance between two memory slots: bound + guard (0 before the reservation)."""
        return self._core.stride

    @property
    def guard_bytes(self) -> int:
        return self._core.guard_bytes

    @property
    def reset(self) -> str:
        """How a released slot's pages are given back: "madvise" or "remap"."""
        return self._core.reset

    @property
    def closed(self) -> bool:
        return self._core.closed

    @contextlib.contextmanager
    def _failing(self, *steps):
        """Tests: inside the block, the named slot steps ("decommit", "map_anon",
        "protect", "map_image") fail with EIO, as a failing kernel would make them."""
        native = self._core.native
        _ffi.pool_inject_failures(native, steps)
        try:
            yield
        finally:
            _ffi.pool_inject_failures(native, ())

    # ---- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new instances; unmap the pool now, or when the last live memory is closed
        (idempotent; ``__del__`` does the same as the backstop)."""
        self._core.close()

    def __repr__(self):
        core = self._core
        state = "closed" if core.closed else f"{self.live_instances}/{core.max_instances} instances"
        return (f"<PoolingAllocator {state}, {core.max_memories_per_instance} x {core.max_memory_pages} pages"
                f" memories, {core.max_tables_per_instance} x {core.max_table_elements} table elements>")
