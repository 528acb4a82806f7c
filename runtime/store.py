"""Store: what bounds the execution of the instances made in it (wasmtime-py's names):
fuel, the epoch deadline, and limits on memories, tables and instances.

An :class:`runtime.Instance` made without a store gets a private one (made the first
time someone asks for ``instance.store``). A call from Python runs under the store of
the function called. The fuel and the deadline live in native cells the interpreter
reads (``wenv_call.fuel``, ``wenv_call.epoch_deadline``): every call running under one
store draws from the same fuel, atomically.

A store owns the externrefs its instances are given (call arguments, host function
results, values stored in its tables and globals): they stay alive while the store lives,
and go with it (runtime/refs.py).
"""
from __future__ import annotations

import threading
import weakref
from typing import NamedTuple, Optional

from . import _ffi
from .engine import Engine
from ._owner import Owner
from .errors import AllocationError, WasmRuntimeError
from .refs import ExternRefs

__all__ = ["Store", "StoreLimits", "StoreError"]

WASM_PAGE_BYTES = 65536


class StoreError(WasmRuntimeError):
    """A store operation its engine's configuration does not allow (wasmtime-py raises
    ``WasmtimeError`` with the same message)."""


class StoreLimits(NamedTuple):
    """``Store.set_limits``: None means unlimited."""

    memory_size: Optional[int] = None     # bytes, per linear memory
    table_elements: Optional[int] = None  # elements, per table
    instances: Optional[int] = None       # live instances in the store
    tables: Optional[int] = None          # live defined tables in the store
    memories: Optional[int] = None        # live defined memories in the store


_UNLIMITED = StoreLimits()


class _Needs(NamedTuple):
    """What an instance of a module counts for in a store (made once per module)."""

    memories: int        # defined memories
    tables: int          # defined tables
    memory_bytes: int    # the largest minimum of its defined memories
    table_elements: int  # the largest minimum of its defined tables


def _needs_of(module) -> _Needs:
    env = module.env
    memory_plans = env.memory_plans[env.num_imported_memories:]
    table_plans = env.table_plans[env.num_imported_tables:]
    needs = _Needs(len(memory_plans), len(table_plans),
                   max((p.memory.minimum * WASM_PAGE_BYTES for p in memory_plans), default=0),
                   max((p.table.minimum for p in table_plans), default=0))
    module._store_needs = needs
    return needs


class Store(Owner):
    """A store of ``engine`` (a default Engine when None). :meth:`close` (or leaving a
    ``with`` block) closes every instance still live in it, as wasmtime-py's does.

    Args:
        engine: the :class:`runtime.Engine` every module instantiated here must share.
        data: any object, kept as ``store.data`` (wasmtime-py's user data).
    """

    def __init__(self, engine: Optional[Engine] = None, data=None):
        if engine is None:
            engine = Engine()
        elif not isinstance(engine, Engine):
            raise TypeError("expected an Engine")
        self.engine = engine
        self.data = data
        self._fuel = _ffi.new_fuel_cell()        # int64_t[1]: starts at 0, as wasmtime's
        self._deadline = _ffi.new_epoch_cell()   # uint64_t[1]: the absolute epoch deadline
        self._limits = _UNLIMITED
        self._memory_limit = _ffi.new_limit_cell()  # limits.memory_size, as the grows of its memories read it
        self._lock = threading.Lock()
        self._instances = self._memories = self._tables = 0
        self._admitted = {}   # id(instance) -> (its needs, a weakref to it)
        self._closed = False
        self._externs = ExternRefs()  # its externrefs, released with it (runtime/refs.py)

    # -- fuel ------------------------------------------------------------------------
    def set_fuel(self, fuel: int) -> None:
        """Set the fuel left to ``fuel`` (every call under this store draws from it).

        Raises:
            StoreError: the engine does not consume fuel.
            ValueError: ``fuel`` is negative or above 2**63 - 1.
        """
        if not self.engine.consume_fuel:
            raise StoreError("fuel is not configured in this store")
        if not isinstance(fuel, int) or not 0 <= fuel < 1 << 63:
            raise ValueError(f"fuel must be an int in [0, 2**63), got {fuel!r}")
        self._fuel[0] = fuel

    def get_fuel(self) -> int:
        """The fuel left (0 once a call ran out).

        Raises:
            StoreError: the engine does not consume fuel.
        """
        if not self.engine.consume_fuel:
            raise StoreError("fuel is not configured in this store")
        return max(0, self._fuel[0])

    # -- epochs ----------------------------------------------------------------------
    def set_epoch_deadline(self, ticks_after_current: int) -> None:
        """Wasm running under this store traps with INTERRUPT once the engine's epoch
        reaches its current value plus ``ticks_after_current`` (checked at function
        entries and loop headers, only with ``Engine(epoch_interruption=True)``)."""
        if not isinstance(ticks_after_current, int) or ticks_after_current < 0:
            raise ValueError(f"ticks_after_current must be a non-negative int, got {ticks_after_current!r}")
        self._deadline[0] = min(self.engine.current_epoch + ticks_after_current, (1 << 64) - 1)

    # -- limits ----------------------------------------------------------------------
    def set_limits(self, memory_size: int = -1, table_elements: int = -1, instances: int = -1,
                   tables: int = -1, memories: int = -1) -> None:
        """Replace the store's limits (wasmtime-py's arguments; a negative one is unlimited).

        ``memory_size`` bytes and ``table_elements`` bound each memory and table: a grow
        past them returns -1 (``memory.grow``, ``table.grow``, and ``Memory.grow`` /
        ``Table.grow`` from Python), an instantiation whose minimum is past them is an
        AllocationError. ``instances``, ``tables`` and ``memories`` bound how many live
        in the store at once (closing an instance gives its share back).
        """
        def lim(v):
            if not isinstance(v, int):
                raise TypeError(f"a limit is an int, got {type(v).__name__}")
            return None if v < 0 else v
        self._limits = StoreLimits(lim(memory_size), lim(table_elements), lim(instances),
                                   lim(tables), lim(memories))
        limit = self._limits.memory_size  # (None: unlimited)
        self._memory_limit[0] = _ffi.NO_LIMIT if limit is None else min(limit, _ffi.NO_LIMIT)

    @property
    def limits(self) -> StoreLimits:
        return self._limits

    def _admit(self, instance, module) -> None:
        """Count a new instance of ``module`` in; AllocationError (nothing counted) when
        that passes a limit."""
        needs = module.__dict__.get("_store_needs") or _needs_of(module)
        lim = self._limits
        ref = weakref.ref(instance)
        with self._lock:
            if self._closed:
                raise ValueError("store is closed")
            if lim is not _UNLIMITED:
                self._check(lim, needs)
            self._instances += 1
            self._memories += needs.memories
            self._tables += needs.tables
            self._admitted[id(instance)] = (needs, ref)

    def _check(self, lim: StoreLimits, needs: "_Needs") -> None:
        if lim.memory_size is not None and needs.memory_bytes > lim.memory_size:
            raise AllocationError(f"memory minimum size of {needs.memory_bytes // WASM_PAGE_BYTES} "
                                  f"pages exceeds memory limits", "store limits")
        if lim.table_elements is not None and needs.table_elements > lim.table_elements:
            raise AllocationError(f"table minimum size of {needs.table_elements} elements "
                                  f"exceeds table limits", "store limits")
        for what, count, more, limit in (("instance", self._instances, 1, lim.instances),
                                         ("memory", self._memories, needs.memories, lim.memories),
                                         ("table", self._tables, needs.tables, lim.tables)):
            if limit is not None and count + more > limit:
                raise AllocationError(f"resource limit exceeded: {what} count too high at "
                                      f"{count + more}", "store limits")

    def _release(self, instance) -> None:
        """Give back what ``instance`` was counted for (idempotent)."""
        with self._lock:
            entry = self._admitted.pop(id(instance), None)
            if entry is not None:
                counted = entry[0]
                self._instances -= 1
                self._memories -= counted.memories
                self._tables -= counted.tables

    def _table_may_grow(self, new_elements: int) -> bool:
        limit = self._limits.table_elements
        return limit is None or new_elements <= limit

    def close(self) -> None:
        """Close every instance still live in this store, then let go of its externrefs;
        later instantiations in it raise ValueError (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refs = [ref for _, ref in self._admitted.values()]
        for ref in refs:  # (outside the lock: each close() gives its share back here)
            instance = ref()
            if instance is not None:
                instance.close()
        self._externs.release()

    def __del__(self):  # nothing to back up: a live instance keeps its store alive
        pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self):
        return f"<Store {self._instances} instances{' closed' if self._closed else ''}>"
