"""An instance's memories and tables as its code and Python reach them: Memory objects and
Table views made on first use (one per memory or entry, under one lock), the C descriptor
its allocation describes for a memory nobody made a Memory for (what its interpreter state
and data segments use), and the table entries its interpreter state binds itself. A mixin
of :class:`runtime.Instance`, kept apart so that its lifetime (runtime/instance.py) reads
on its own."""
from __future__ import annotations

import threading

from . import _ffi
from .memory import limit_growth
from .table import Table


class Views:
    """The memory and table side of :class:`runtime.Instance` (see the module docstring)."""

    __slots__ = ()

    def memory(self, index: int = 0):
        """Memory ``index`` (imported ones first); a defined one's object is made on first use."""
        imported = self._imported_memories
        if index < len(imported):
            return imported[index] if index >= 0 else self.memories[index]
        made = self._made
        defined = index - len(imported)
        if made is not None and defined < len(made) and made[defined] is not None \
                and self._handles is not None:
            return made[defined]
        # Made once, under a lock: two Memory objects for one memory would release it twice
        # (threads sharing an instance's shared memory may ask for it at the same time).
        with _MAKE_LOCK:
            handles = self._handles
            if handles is None:
                raise ValueError("instance is closed")
            made = self._made
            if made is None:
                made = self._made = [None] * len(handles)
            memory = made[defined]
            if memory is None:
                descs = self._descs  # (a descriptor described before: the Memory adopts it)
                memory = self._layout.allocation.memory(self._layout, defined, handles[defined],
                                                        None if descs is None else descs[defined])
                if descs is not None:  # (the Memory holds it from now on)
                    descs[defined] = None
                    if not any(descs):
                        self._descs = None
                memory._set_store(self._store)  # its limits bound grow
                memory._owner = self  # a view keeps its instance (and so its memory) alive
                made[defined] = memory
        return memory

    def _memory_desc(self, defined: int):
        """The C descriptor of defined memory ``defined``: its Memory's, else one its
        allocation describes now (once; a Memory made later adopts it), or the Memory
        made now when the allocation's memories are Memory objects from the start.

        Raises:
            ValueError: the instance is closed.
        """
        with _MAKE_LOCK:  # one descriptor per memory (memory() takes the same lock)
            handles = self._handles
            if handles is None:
                raise ValueError("instance is closed")
            made = self._made
            if made is not None and made[defined] is not None:
                return made[defined]._desc
            descs = self._descs
            desc = None if descs is None else descs[defined]
            if desc is None:
                layout = self._layout
                desc = layout.allocation.describe(layout, defined, handles[defined])
                if desc is None:
                    return self.memory(len(self._imported_memories) + defined)._desc
                limit_growth(desc, self._store)  # (a Memory adopting it sets the same)
                if descs is None:
                    descs = self._descs = [None] * len(handles)
                descs[defined] = desc
            return desc

    def _table(self, index: int) -> Table:
        """Table ``index`` (imported ones first); a defined one's view is made on first use.

        Raises:
            ValueError: the instance is closed.
            IndexError: no such table.
        """
        imported = self._imported_tables
        if 0 <= index < len(imported):
            return imported[index]
        defined = index - len(imported)
        views = self._views
        if views is not None and 0 <= defined < len(views) and views[defined] is not None \
                and self._handles is not None:
            return views[defined]
        # Made once, under a lock (as memory(i)): two views of one entry would release it twice.
        with _MAKE_LOCK:
            if self._handles is None:
                raise ValueError("instance is closed")
            layout = self._layout
            if not 0 <= defined < len(layout.tables):
                raise IndexError(f"no table {index} ({len(imported) + len(layout.tables)} tables)")
            views = self._views
            if views is None:
                views = self._views = [None] * len(layout.tables)
            view = views[defined]
            if view is None:
                view = layout.allocation.table(layout, defined, self._table_entries, self)
                view._store = self._store  # its limits bound grow
                views[defined] = view
        return view

    def _tables_to_bind(self, vm, tables: list):
        """For its interpreter state ``vm`` (being made; the caller holds _MAKE_LOCK and
        binds in C, _ffi.vm_open): append to ``tables`` each defined table's view's
        ``wenv_table *`` (its lazy array bound to ``vm`` here), or NULL where it has no view;
        return the entries C binds at those NULLs (each marked taken there: the allocation's
        release skips it, a later view adopts it bound, Holds._release_held gives it back
        after the last call in flight), or NULL when it defines no table.

        Raises:
            ValueError: the instance is closed.
        """
        if self._handles is None:
            raise ValueError("instance is closed")
        entries = self._table_entries
        if entries is None:
            return _ffi.NULL
        views = self._views
        for k in range(len(self._layout.tables)):
            view = None if views is None else views[k]
            if view is None:
                tables.append(_ffi.NULL)
                continue
            if view._binder is self:
                view._bind_vm(vm)  # (before _native, which would wait for it)
            tables.append(view._native)
        return entries

    @property
    def tables(self) -> list:
        """Every table of the instance, imported ones first (a defined one's view made on first use)."""
        return [self._table(i) for i in range(len(self._imported_tables) + len(self._layout.tables))]

    @property
    def memories(self) -> list:
        """Every memory of the instance, imported ones first (made on first use)."""
        count = len(self._imported_memories) + self._layout.memory_count
        return [self.memory(i) for i in range(count)]

    def reservation_ranges(self) -> list:
        """(start, end) of each defined memory's reservation, guards included, without
        making Memory objects for the ones nobody looked at."""
        layout = self._layout
        alloc, made, out = layout.allocation, self._made, []
        if self._handles is None:
            raise ValueError("instance is closed")
        for index, handle in enumerate(self._handles):
            memory = made[index] if made is not None else None
            out.append(memory.reservation_range if memory is not None else alloc.range(layout, index, handle))
        return out

    def _memory_descs(self):
        """Each defined memory's descriptor (its Memory's or a described one; None for a
        memory that has neither), or None when none has one."""
        made, described = self._made, self._descs
        if made is None and described is None:
            return None
        return [made[k]._desc if made is not None and made[k] is not None
                else None if described is None else described[k] for k in range(len(made or described))]


# Instance.memory: one Memory object per memory, and none once close() began. Reentrant:
# a collection inside memory() may run another instance's __del__ (close) on this thread.
_MAKE_LOCK = threading.RLock()
