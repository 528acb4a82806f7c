"""The state of a PoolingAllocator's pool (runtime/pooling.py's module docstring describes
the pool): ``_PoolCore`` owns the reservation chunks and the C slot table
(c_src/wenv_pool.h) and the C table slots (c_src/wenv_tables.h); ``PoolMemorySlot`` is
what a pooled Memory holds of it."""
from __future__ import annotations

import threading
from typing import List, Optional

from wasmenv import WASM_PAGE_SIZE

from . import _ffi
from .errors import AllocationError, WasmRuntimeError
from .memory import MemorySlot, Reservation


#: Largest single reservation of the pool: 16 TiB fits the gaps of a 47-bit address space.
MAX_CHUNK_BYTES = 16 << 40


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


#: What the C slot table holds (c_src/wenv_pool.h): uint32 counts, uint64 sizes.
_U32_MAX = (1 << 32) - 1
_U64_LIMIT = 1 << 64


class PoolMemorySlot(MemorySlot):
    """The slot of a pooled memory whose Memory object was made (its state lives in C)."""

    __slots__ = ("_core", "index", "tenancy", "base_address", "reservation_range", "capacity_bytes",
                 "guard_bytes", "_released")

    def __init__(self, core: "_PoolCore", index: int):
        self._core = core
        self.index = index
        # Read while the caller holds the slot (an open instance): a grow acts on this
        # tenancy only, never on the slot's next tenant's (C checks it under the lock).
        self.tenancy = _ffi.pool_slot_tenancy(core.native, index)
        self.base_address, self.capacity_bytes, self.guard_bytes, self.reservation_range = \
            core.slot_geometry(index)
        self._released = False

    def make_accessible(self, old_byte_len: int, new_byte_len: int) -> None:
        if new_byte_len > self.capacity_bytes:
            raise ValueError("growth past the slot's capacity")
        _ffi.pool_grow(self._core.native, self.index, self.tenancy, new_byte_len)

    def relocated(self, byte_len: int) -> None:
        return None  # slots never move: growth stops at max_memory_pages

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._core.put(self.index, False)

    def _hand_over(self, desc) -> bool:
        _ffi.memory_own_pool_slot(desc, self._core.native, self.index, 0)
        return self._handed_already()

    def _handed_already(self) -> bool:
        self._released = True  # by the descriptor, after the close and the last use in flight
        return True

    def _after_close(self, rc: int) -> None:
        self._core.after_put(rc, self.index)

    @property
    def state(self) -> dict:
        """The C slot state (in_use, poisoned, accessible, image_key, image_offset, image_len)."""
        return _ffi.pool_slot_state(self._core.native, self.index)

    def __repr__(self):
        return f"<PoolMemorySlot {self.index} at {self.base_address:#x}>"


#: Reserved pools not yet closed and unused (see _PoolCore).
_IN_USE = set()


class _PoolCore:
    """The pool's state; what slots, leases and layouts hold (never the PoolingAllocator).

    Owns the reservation chunks (unmapped by ``close()`` once nothing is in use) and the
    C pool, freed by ``__del__``. Backstops (an Instance's) call into the C pool, and the
    finalizers of a garbage cycle run in any order: so ``_IN_USE`` holds the core from
    reserving until it is closed and unused, and it is never garbage with them.
    """

    __slots__ = ("max_instances", "max_memories_per_instance", "max_memory_pages",
                 "max_tables_per_instance", "max_table_elements", "keep_bytes", "reset", "lock", "closed",
                 "native", "reservation", "chunks", "chunk_bases", "slots_per_chunk", "guard_bytes",
                 "pre_guard_bytes", "stride", "bound_bytes", "memory_slot_count", "table_slot_count",
                 "first_base", "reserved", "guard_option", "guard_before_option", "table_native")

    def __init__(self, max_instances: int, max_memories_per_instance: int, max_memory_pages: int,
                 max_tables_per_instance: int, max_table_elements: int, keep_resident: int):
        self.max_instances = max_instances
        self.max_memories_per_instance = max_memories_per_instance
        self.max_memory_pages = max_memory_pages
        self.max_tables_per_instance = max_tables_per_instance
        self.max_table_elements = max_table_elements
        self.keep_bytes = _round_up(keep_resident, _ffi.PAGE_SIZE)
        self.reset = _ffi.DEFAULT_RESET  # how released pages are given back (_ffi.RESETS)
        self.lock = threading.Lock()
        self.closed = False
        self.native = None          # the C pool (c_src/wenv_pool.h), once reserved
        self.reservation: Optional[Reservation] = None  # the first chunk
        self.chunks: List[Reservation] = []
        self.chunk_bases: List[int] = []   # base of the first slot of each chunk
        self.slots_per_chunk = 1
        self.guard_bytes = self.pre_guard_bytes = self.stride = 0
        self.bound_bytes = _round_up(self.max_memory_pages * WASM_PAGE_SIZE, _ffi.PAGE_SIZE)
        self.memory_slot_count = self.max_instances * self.max_memories_per_instance
        self.table_slot_count = self.max_instances * self.max_tables_per_instance
        self.first_base = 0
        self.reserved = False
        self.guard_option: Optional[int] = None
        self.guard_before_option: Optional[bool] = None
        self.table_native = None    # the C table slots (wenv_table_pool), made with the pool

    # ---- the reservation -------------------------------------------------------------

    def check_sizes(self, guard_bytes: int) -> None:
        """Refuse limits the pool could never hold, before anything is reserved.

        Raises:
            AllocationError: the slots need 2^64 bytes or more ("address space").
            ValueError: a count the C slot table cannot hold (2^32 or more).
        """
        stride = self.bound_bytes + self.slot_guard(guard_bytes)
        if stride * (self.memory_slot_count + 1) >= _U64_LIMIT:  # + 1: a pre-guard, at most a slot
            raise AllocationError(
                f"PoolingAllocator: {self.memory_slot_count} memory slots of {stride:#x} bytes need "
                f"2^64 bytes or more: they cannot be addressed", "address space")
        for name, value in (("max_instances", self.max_instances),
                            ("max_instances x max_memories_per_instance", self.memory_slot_count),
                            ("max_instances x max_tables_per_instance", self.table_slot_count)):
            if value > _U32_MAX:
                raise ValueError(f"PoolingAllocator: {name} = {value} exceeds {_U32_MAX}")
        if self.keep_bytes >= _U64_LIMIT:
            raise ValueError(f"PoolingAllocator: keep_resident = {self.keep_bytes} does not fit 64 bits")

    def slot_guard(self, guard_bytes: int) -> int:
        """The guard after each slot for ``guard_bytes``: page-rounded, at least a page
        when the slots have no pages (they still get distinct addresses and a guard)."""
        guard = _round_up(guard_bytes, _ffi.PAGE_SIZE)
        return guard if self.bound_bytes + guard else _ffi.PAGE_SIZE

    def reserve(self, guard_bytes: int, guard_before: bool) -> None:
        """Reserve every memory slot (under the lock, once)."""
        self.check_sizes(guard_bytes)
        guard = self.slot_guard(guard_bytes)
        self.guard_bytes = guard
        self.pre_guard_bytes = guard if guard_before else 0
        self.stride = self.bound_bytes + guard
        count = self.memory_slot_count
        # No single gap of a 47-bit address space holds e.g. 30,000 x 4 GiB slots (the
        # executable and the mmap base split it): reserve chunks of at most MAX_CHUNK_BYTES,
        # each with its own pre-guard. Usually that is one chunk.
        self.slots_per_chunk = max(1, min(count, MAX_CHUNK_BYTES // self.stride)) if count else 1
        try:
            for first in range(0, count, self.slots_per_chunk):
                n = min(self.slots_per_chunk, count - first)
                chunk = Reservation(self.pre_guard_bytes + n * self.stride)
                self.chunks.append(chunk)
                self.chunk_bases.append(chunk.start + self.pre_guard_bytes)
            if self.table_native is None:
                self.table_native = _ffi.table_pool_new(self.table_slot_count, self.max_table_elements)
            self.native = _ffi.pool_new(count, self.slots_per_chunk, self.chunk_bases, self.stride,
                                        self.bound_bytes, self.keep_bytes, self.max_instances, self.reset)
            _IN_USE.add(self)
        except AllocationError as exc:
            self._unmap()
            total = self.pre_guard_bytes + count * self.stride
            raise AllocationError(
                f"PoolingAllocator: reserving {count} memory slots of {self.stride:#x} bytes "
                f"({total:#x} bytes in chunks of up to {MAX_CHUNK_BYTES:#x}) failed: {exc.message}",
                exc.limit) from exc
        if self.chunks:
            self.reservation = self.chunks[0]
            self.first_base = self.chunk_bases[0]
        self.reserved = True

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.table_native is not None:
                _ffi.table_pool_close(self.table_native)
            if self.native is None or _ffi.pool_close(self.native):
                self._unmap()

    def _unmap(self) -> None:
        """Release the reservation (under the lock, once nothing is in use). The C pool
        stays (closed: it refuses every take) until the last reference to it goes, and
        the last descriptor owning a slot put it back (C counts those references)."""
        if self.native is not None and self.chunks:
            _ffi.pool_forget_reservation(self.native)
        for chunk in self.chunks:
            chunk.close()
        self.chunks.clear()
        self.chunk_bases.clear()
        _IN_USE.discard(self)  # nothing calls into the pool any more: it may become garbage

    def __del__(self, _pool_free=_ffi.pool_free, _table_pool_free=_ffi.table_pool_free):
        """Free the C pool: the last reference went, and nothing is in use (_IN_USE).
        (The frees are bound here: at interpreter exit, module globals may be gone.)"""
        native, self.native = getattr(self, "native", None), None
        if native is not None:
            _pool_free(native)
        tables, self.table_native = getattr(self, "table_native", None), None
        if tables is not None:
            _table_pool_free(tables)

    def _unmap_if_closed(self) -> None:
        with self.lock:
            if self.closed:
                self._unmap()

    def stats(self) -> tuple:
        """(live_instances, live_memories, slots ever used, free slots, bad free slots)."""
        native = self.native
        if native is None:
            return (0, 0, 0, 0, 0)
        stats = _ffi.pool_stats(native)
        if self.closed and stats[0] == stats[1] == 0 and self.chunks:
            # The last slot of a closed pool went back in C, by the last use in flight
            # on a closed memory (wenv_memory.h): nobody told Python to unmap it then.
            self._unmap_if_closed()
        return stats

    # ---- instances and memory slots -------------------------------------------------

    def ensure_reserved(self, tunables) -> None:
        if self.reserved:
            return
        with self.lock:
            if self.closed:
                raise ValueError("the PoolingAllocator is closed")
            if not self.reserved:
                self.reserve(tunables.static_memory_offset_guard_size if self.guard_option is None
                             else self.guard_option,
                             tunables.guard_before_linear_memory if self.guard_before_option is None
                             else self.guard_before_option)

    def refused(self, code: int, what: str, err: int = None):
        """The exception for a negative result of a pool call (``err``: its errno)."""
        if code == _ffi.POOL_MAX_INSTANCES:
            return AllocationError(f"the pool already hosts {self.max_instances} instances "
                                   f"(max_instances={self.max_instances})", "max_instances")
        if code == _ffi.POOL_NO_TABLE_SLOT:  # (only while Table views outlive their instances)
            return AllocationError(f"all {self.table_slot_count} table slots are in use",
                                   "max_tables_per_instance")
        if code == _ffi.POOL_NO_SLOT:
            return AllocationError(f"all {self.memory_slot_count} memory slots are in use",
                                   "max_memories_per_instance")
        if code == _ffi.POOL_CLOSED:
            return ValueError("the PoolingAllocator is closed")
        try:
            _ffi.pool_failed(what, err)
        except Exception as exc:
            return exc
        raise AssertionError("pool_failed returned")

    def slot_geometry(self, index: int) -> tuple:
        """(base address, capacity bytes, guard bytes, reservation range) of memory slot
        ``index``: the bound, then the guard (the pool's pre-guard lies before slot 0)."""
        base = _ffi.pool_slot_base(self.native, index)
        return base, self.bound_bytes, self.guard_bytes, (base, base + self.stride)

    def put(self, index: int, end_instance: bool, clean: bool = False) -> None:
        """Reset slot ``index`` and make it free (C: wenv_pool_put); ``clean``: nothing
        wrote it since its take (its Memory was never made), no reset (wenv_pool_put_clean)."""
        put = _ffi.pool_put_clean if clean else _ffi.pool_put
        self.after_put(put(self.native, index, end_instance), index)

    def after_put(self, rc: int, index: int) -> None:
        """Act on wenv_pool_put's result: unmap a closed, unused pool; refuse a double put."""
        if rc == 1:
            self._unmap_if_closed()
        elif rc < 0:
            raise WasmRuntimeError(f"pool memory slot {index} was released but is not in use")

    def end(self) -> None:
        """Count one live instance less (C: wenv_pool_end, which refuses one too many)."""
        rc = _ffi.pool_end(self.native)
        if rc == 1:
            self._unmap_if_closed()
        elif rc < 0:
            raise WasmRuntimeError("the pool ended an instance that was not live")

    # ---- table slots -----------------------------------------------------------------

    @property
    def live_tables(self) -> int:
        """Table slots in use."""
        return 0 if self.table_native is None else _ffi.table_pool_live(self.table_native)
