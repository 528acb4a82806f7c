"""What an instance holds of others, and when it gives it back: the imports it holds
(memories and tables, and those of the instances whose code it may run), what funcrefs
that crossed in keep, its calls in flight (the release waits for the last), and, at close,
what its wasm code stored where others may still call it. A mixin of
:class:`runtime.Instance`, kept apart so that its lifetime rules read on their own."""
from __future__ import annotations

import threading

from . import _ffi
from .func import instance_resources
from .refs import is_func_heap
from .table import Shared, Table, _give_back, _take, _take_for, release_entry


class Holds:
    """The holding side of :class:`runtime.Instance` (see the module docstring)."""

    __slots__ = ()

    def _hold(self, memories, tables):
        """Keep imported memories and tables allocated until this instance closes and its
        last call in flight has returned (their own instance may close first: its views
        then raise, the pages and elements stay until here: this instance's code still
        runs on them)."""
        self._held = _take(memories, tables, what="an imported memory") or _NOTHING_HELD

    def _keep(self, holder) -> None:
        """A funcref cell naming ``holder``'s function crossed into this instance (a call
        argument, a host function's result, a table element or global set from Python):
        keep ``holder`` alive, and when it is another instance, the memories and tables its
        code runs on, until this instance closes and its last call returned (as imports:
        _hold), so the function never runs on freed or reused storage. (No lock: a
        collection run by an allocation here may close other instances; duplicates are
        given back at once.)

        Raises:
            ValueError: this instance, or ``holder``, is closed.
        """
        kept = self._kept
        if kept is not None and id(holder) in kept:
            return
        if self._handles is None:
            raise ValueError("instance is closed")
        taken = () if holder is self else _take_for(holder)
        entry = (holder, *taken)  # (one tuple: what _take took follows the holder)
        kept = self.__dict__.setdefault("_kept", {})  # (atomic: one dict whoever comes first)
        if kept.setdefault(id(holder), entry) is not entry:
            _give_back(taken)  # another thread kept it first

    def _enter(self):
        """The interpreter's call bridge, before a call (its interpreter state made): counts
        the call in flight on every memory this instance defines, so that none is released before
        :meth:`_leave`, even if the instance closes meanwhile.

        Raises:
            ValueError: the instance, or a memory it uses, is closed.
        """
        # Its interpreter state's descriptors (the caller made it), past the imported ones
        # (held until the last call after close: _hold; their owner may close first).
        # What owns them (its described descriptors, _descs, or the Memory objects that
        # took them over, _made) stays as long as it.
        vm, first, count = self._interp_site.vm, len(self._imported_memories), self._layout.memory_count
        if _vm_enter(vm, first, count) != count or self._handles is None:
            if self._handles is None and count:
                _vm_leave(vm, first, count)
            raise ValueError("instance is closed")
        # Tables, held imports and kept funcrefs have no count in C: their release waits
        # for the last call.
        # (_held is _NOTHING_HELD, what was taken, or _GIVEN_BACK: the test never changes.)
        if self._layout.counts_calls or self._held is not _NOTHING_HELD:
            with _CALLS_LOCK:
                if not self._closing:
                    self._calls += 1
                    return
            _vm_leave(vm, first, count)
            raise ValueError("instance is closed")

    def _leave(self):
        """The interpreter's call bridge, after a call (trap or not): the end of the call
        :meth:`_enter` counted."""
        if self._layout.counts_calls or self._held is not _NOTHING_HELD:
            with _CALLS_LOCK:
                self._calls -= 1
                last = self._calls == 0 and self._release_pending
                if last:
                    self._release_pending = False
            if last:
                self._release_after_calls()
        _vm_leave(self._interp_site.vm, len(self._imported_memories), self._layout.memory_count)

    def _release_after_calls(self) -> None:
        """The last call in flight after close() is returning (still inside its memories):
        release what the instance holds, unless its code stored its own funcrefs into
        imported tables or globals after close() looked (_pin_stored_funcrefs): then each of
        those keeps what that code runs on, as _pin_stored_funcrefs has them keep it: its
        own memories and tables (PinnedStorage, released by the last of them to let go), and
        another use of what it holds (imports, funcrefs kept) in place of its own."""
        site = self._interp_site
        if self._imported_tables or self._imported_globals:
            tables_, globals_ = self._funcref_holders(site)
            if tables_ or globals_:
                storage = PinnedStorage(self, site.vm)
                held = [*self._held, *(x for entry in (self._kept or {}).values() for x in entry[1:])]
                memories = [x for x in held if not isinstance(x, Table)]
                tables = [x for x in held if isinstance(x, Table)] + [storage]
                self._keep_in((*tables_, *globals_), memories, tables, again=True)
                self._give_back_held()
                storage._unshare()  # (the pinning's own share)
                return
        self._release_held()

    def _release_now_or_after_calls(self) -> bool:
        """close(): True if what it holds (_release_held) may go now; else the last call in
        flight releases it."""
        with _CALLS_LOCK:
            self._closing = True
            if self._calls:
                self._release_pending = True
                return False
            return True

    def _release_held(self) -> None:
        """Give back the imports held (_hold) and what funcrefs that crossed in keep
        (_keep), and its tables: close their views, release the entries its interpreter
        state bound without one."""
        self._give_back_held()
        self._release_tables()

    def _give_back_held(self) -> None:
        """Give back the imports held (_hold) and what funcrefs that crossed in keep (_keep)."""
        held = self._held
        if held is not _NOTHING_HELD:
            self._held = _GIVEN_BACK
            _give_back(held)
        kept = self._kept
        if kept is not None:
            self._kept = None  # (views keep their instances alive)
            for entry in kept.values():
                _give_back(entry[1:])

    def _release_tables(self) -> None:
        """Close its tables' views, release the entries its interpreter state bound without one."""
        views, entries = self._views, self._table_entries
        for k in range(len(self._layout.tables) - 1, -1, -1):
            view = None if views is None else views[k]
            if view is not None:
                view.close()  # returns its storage (or its last importer will)
            elif entries[k].viewed:  # bound by its interpreter state (else: allocation.finish)
                release_entry(self._layout.allocation.table_pool, entries, k)

    def _tables_taken(self) -> bool:
        """Whether a table entry of this instance was taken by a view or its interpreter
        state (_ffi.vm_open): then _release_held gives it back, after the last
        call in flight."""
        entries = self._table_entries
        return entries is not None and any(entries[k].viewed for k in range(len(self._layout.tables)))

    def _funcref_holders(self, site):
        """(imported tables, (cells, index) of imported globals) that name one of this
        instance's funcrefs (its vm's records), the tables among them holding nothing of
        its storage yet (no Python saw those stores: table.set, global.set from wasm)."""
        lo, hi = _ffi.funcref_range(site.vm, self._layout.vmoffsets.count("funcrefs"))
        if lo == hi:
            return (), ()
        # (a table that holds this instance with its storage already needs no scan: a
        # segment, a store from Python)
        tables_ = [t for t in self._imported_tables if len(t._holds.get(id(self), ())) < 2
                   and _ffi.table_names_range(t._t, lo, hi)]
        globals_ = [(cells, index) for ty, cells, index in self._imported_globals
                    if ty.content.is_ref and is_func_heap(ty.content) and lo <= cells.raw(index) < hi]
        return tables_, globals_

    def _pin_stored_funcrefs(self, site) -> None:
        """Before close: an imported table or global where this instance's code stored
        one of its functions (table.set, global.set...: no Python saw it) keeps what that
        code runs on from now on, as one set from Python does (Table._hold, _HeldRef); so
        a call through it after this instance closed runs on its own memory, never on a
        pool slot's next tenant. (Stores by calls still in flight: _release_after_calls.)"""
        tables_, globals_ = self._funcref_holders(site)
        if not tables_ and not globals_:
            return
        try:
            memories, tables = instance_resources([self])
        except ValueError:  # an imported function's instance closed first: its own storage
            memories = self.memories[len(self._imported_memories):]
            tables = self.tables[len(self._imported_tables):]
        self._keep_in((*tables_, *globals_), memories, tables)

    def _keep_in(self, holders, memories, tables, again: bool = False) -> None:
        """Each of ``holders`` (a Table, or (cells, index) of a global) keeps a use of
        ``memories`` and a share of ``tables`` for this instance's function it names
        (``again``: as runtime.table._take's)."""
        for holder in holders:
            try:
                if isinstance(holder, Table):
                    holder._hold_storage(self, memories, tables, again=again)
                else:
                    holder[0].hold(holder[1], self, memories, tables, again=again)
            except ValueError:  # (one of them closed meanwhile: nothing to keep there)
                pass


class _Held(tuple):
    """An empty ``_held`` that is told apart from the others by identity."""


class PinnedStorage(Shared):
    """A closed instance's own memories and tables, kept for the tables and globals where
    its last call in flight stored its funcrefs after close() (Holds._release_after_calls):
    shared as a Table's storage is (runtime.table._take, _give_back); the last share given
    back releases them."""

    __slots__ = ("_instance", "_vm", "_shares")

    def __init__(self, instance, vm):
        self._instance, self._vm, self._shares = instance, vm, 1  # (the pinning's share)
        # (taken inside the call's own use of them: they cannot be released before this)
        _ffi.vm_memories_keep(vm, len(instance._imported_memories), instance._layout.memory_count)

    def _share(self, again: bool = False) -> None:
        with _CALLS_LOCK:
            if self._instance is None:
                raise ValueError("the storage of a closed instance is released")
            self._shares += 1

    def _unshare(self) -> None:
        with _CALLS_LOCK:
            self._shares -= 1
            if self._shares:
                return
            instance, self._instance = self._instance, None
        instance._release_tables()
        _ffi.vm_memories_leave(self._vm, len(instance._imported_memories), instance._layout.memory_count)


#: Instance._held: nothing held (its calls are counted only as layout.counts_calls says) / what it
#: held went back (its calls stay counted: the test in _enter and _leave never changes).
_NOTHING_HELD, _GIVEN_BACK = _Held(), _Held()

_CALLS_LOCK = threading.Lock()  # Instance._calls, _closing and _release_pending
_vm_enter, _vm_leave = _ffi.vm_memories_enter, _ffi.vm_memories_leave
