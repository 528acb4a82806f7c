"""Tables: views of native tables (c_src/wenv_table.h), with lazy FuncTable initialization."""
from __future__ import annotations

import threading
import weakref
from typing import NamedTuple, Optional, Sequence

from wasmenv import TablePlan, TableType

from . import _ffi
from ._owner import Owner, lock_of
from .func import Func, instance_resources
from .refs import ExternRefs, cell_of, holder_of, is_func_heap, value_of
from .traps import Trap, TrapCode
from .values import check_ref, valtype

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

# A module's FuncTable array as a C array, made once per array (the layout keeps the tuple).
_LAZY = {}
_LAZY_LOCK = threading.Lock()


def _lazy_array(lazy: Sequence[Optional[int]]):
    entry = _LAZY.get(id(lazy))
    if entry is None or entry[0] is not lazy:
        none = _ffi.LAZY_NONE
        with _LAZY_LOCK:
            entry = _LAZY[id(lazy)] = (lazy, _ffi.new_u32s([none if f is None else f for f in lazy]))
    return entry[1]


def table_limit(ty: TableType) -> int:
    """The most elements a table of type ``ty`` may grow to (before any pool's cap)."""
    return ty.maximum if ty.maximum is not None else (U64_MAX if ty.table64 else U32_MAX)


class TableSpec(NamedTuple):
    """What opening one defined table of a module needs, computed once per module
    (runtime/layout.py): its plan, its limit, its FuncTable array as a C array (or None)."""

    plan: TablePlan
    limit: int
    lazy: object
    lazy_len: int
    funcs: bool  # its elements are funcrefs (is_func_heap)

    @classmethod
    def of(cls, plan: TablePlan, lazy: Optional[Sequence[Optional[int]]]) -> "TableSpec":
        return cls(plan, table_limit(plan.table), _lazy_array(lazy) if lazy else None,
                   len(lazy) if lazy else 0, is_func_heap(plan.table.element))


class Table(Owner):
    """A wasm table: a view of a native table (64-bit elements in an mmap'd reservation:
    untouched elements are zero pages, so a 10-million-element table costs nothing until
    it is written).

    Elements hold reference cells (``runtime.refs``); externrefs stored in it stay alive
    with its registry: its instance's store's, or a host table's own. A defined funcref table with a
    FuncTable array (the module's compile-time folding) starts uninitialized: an element
    is resolved to its instance's funcref record (``wenv_vm_funcref``: the same record
    ref.func gives) on its first read, by C, whoever reads it.

    A host table owns its native storage. A defined table of an instance is opened by its
    instance's allocator in C (``runtime.allocator``: its own reservation, or a pool's
    table slot) and owned by the instance; its Table, made on first use
    (``Instance._table``), views the instance's entry (:class:`_Entry`) and from then on
    owns it: :meth:`close` (its instance's, or the Owner backstop) gives it back, once the
    last importer sharing it is done (``_share``).

    ``grow_limit`` (a hook for a store's limits): None, or a callable ``(old, new) ->
    bool`` asked before every grow; False makes the grow return -1.
    """

    __slots__ = ("ty", "_entry", "_closed", "grow_limit", "_store", "_lock", "_lazy", "_lazy_len", "_binder",
                 "_holds", "_funcs", "_externs", "_definer", "_keeper", "_shares", "_t", "__weakref__")

    def __init__(self, ty: TableType, init=None, *, lazy: Optional[Sequence[Optional[int]]] = None):
        self._setup(ty, None, _lazy_array(lazy) if lazy else None, len(lazy) if lazy else 0,
                    is_func_heap(ty.element))
        self._t = _ffi.table_open(ty.minimum, table_limit(ty), self._cell(init))

    def _setup(self, ty: TableType, entry, lazy, lazy_len: int, funcs: bool) -> None:
        """The fields of a new Table (``entry``: an instance's :class:`_Entry` it views, or
        None: it owns ``_t``; ``lazy``: a C array from _lazy_array, or None; ``funcs``:
        its elements are funcrefs)."""
        self.ty = ty
        self._entry = entry
        self._closed = False
        self.grow_limit = None
        self._store = None  # set by the instance that defines it (runtime.store limits)
        self._lock = None  # made on first use (lock_of)
        self._lazy = lazy  # bound to its instance by _bind
        self._lazy_len = lazy_len
        self._binder = None  # the instance whose interpreter state the lazy array waits for
        self._holds = {}  # id -> (what keeps a record its cells name alive, *what _hold took)
        self._funcs = funcs
        self._externs = None  # the registry of its externrefs, found on first use (_registry)
        self._definer = None  # a weakref to the instance that defines it (_bind)
        self._keeper = None  # that instance, kept alive while its lazy array may resolve
        self._shares = 1  # its definer's, plus one per live importer (_share): the storage
        # goes when the last is given back, so an importer's code never reads freed cells

    @classmethod
    def _adopt(cls, spec: "TableSpec", instance, entry: "_Entry") -> "Table":
        """The view of ``instance``'s defined table that ``spec`` (its module's layout)
        describes, opened in ``entry`` (its elements uninitialized, or as the instance
        wrote them); the view owns the entry from now on."""
        self = cls.__new__(cls)
        self._setup(spec.plan.table, entry, spec.lazy, spec.lazy_len, spec.funcs)
        self._t, bound = entry.take()
        self._bind(instance, bound)
        return self

    def _hold(self, holder, storage: bool = True) -> None:
        """Keep ``holder`` (runtime.refs.holder_of) alive while this table is open; with
        ``storage``, an instance other than its definer with the memories and tables its
        code runs on (a call through the element never runs on freed or reused storage).
        No lock: see Instance._keep.

        Raises:
            ValueError: ``holder`` is a closed instance.
        """
        holds = self._holds
        if id(holder) in holds:
            return
        taken = ()
        if storage and (self._definer is None or self._definer() is not holder):
            taken = _take_for(holder, besides=self)
        entry = (holder, *taken)  # (one tuple: what _take took follows the holder)
        if holds.setdefault(id(holder), entry) is not entry:
            _give_back(taken)

    def _hold_storage(self, holder, memories, tables, again: bool = False) -> None:
        """Keep ``memories`` and ``tables`` (what instance ``holder``'s code runs on) while
        this table is open: its code stored one of its functions here (replacing a hold
        without storage); ``again``: as runtime.table._take's. No lock: see Instance._keep.

        Raises:
            ValueError: one of them is closed (nothing taken).
        """
        entry = (holder, *_take(memories, tables, besides=self, again=again))
        old = self._holds.get(id(holder))
        self._holds[id(holder)] = entry
        if old is not None:
            _give_back(old[1:])

    def _bind(self, instance, bound: bool = False) -> None:
        """Uninitialized elements read as the lazy array's functions of ``instance`` (kept
        alive here): its interpreter state (runtime/interp.py) is made, and bound here by
        :meth:`_bind_vm`, at the first access of an element, not at instantiation;
        ``bound``: that state bound the entry already (_ffi.vm_open)."""
        if instance is None:  # (an allocator's table made outside an instance)
            return
        self._definer = weakref.ref(instance)
        if self._lazy is not None:
            self._keeper = instance
            if not bound:
                self._binder = instance

    def _bind_vm(self, vm) -> None:
        """The binder's interpreter state ``vm`` (a ``wenv_vm *``) resolves the lazy array."""
        _ffi.table_bind(self._t, self._lazy, self._lazy_len, vm)
        self._binder = None

    @property
    def _elements(self):
        """The ``wenv_table *``, its lazy array bound (its binder's state made if need be)."""
        binder = self._binder
        if binder is not None:
            from .interp import site_of
            site = site_of(binder)  # binds this table (_make_site), unless made before it
            if self._binder is not None:
                self._bind_vm(site.vm)
        return self._t

    @classmethod
    def new(cls, engine, element, minimum: int, maximum: Optional[int] = None, init=None,
            *, table64: bool = False) -> "Table":
        """A host table of ``element`` references (``"funcref"``, ``"externref"``, a RefType
        such as ``RefType(False, "func")``); every element starts as ``init``, which a
        non-nullable element type requires (TypeError otherwise)."""
        el = valtype(element)
        if not el.is_ref:
            raise TypeError(f"table element type must be a reference type, got {el}")
        limit = U64_MAX if table64 else U32_MAX
        if not 0 <= minimum <= limit or (maximum is not None and not minimum <= maximum <= limit):
            raise ValueError(f"bad table limits {minimum}..{maximum}")
        check_ref(el, init)
        return cls(TableType(el, minimum, maximum, table64), init)

    @property
    def size(self) -> int:
        return self._t.size if not self._closed else 0

    @property
    def maximum(self) -> Optional[int]:
        return self.ty.maximum

    @property
    def _native(self):
        """The ``wenv_table *`` (the interpreter's view): a closed view's storage stays
        for the importers still sharing it, whose code runs on it (their interpreter
        state may be made after the definer closed); raises ValueError once it is gone."""
        if self._closed and not self._shares:
            raise ValueError("table is closed")
        return self._elements

    def get(self, index: int):
        """The element at ``index`` (None for null). Raises Trap if out of bounds."""
        self._check(index, 1)
        return value_of(self.ty.element, _ffi.table_get(self._elements, index))

    def set(self, index: int, value):
        """Store ``value`` (a Func, an extern object, or None). Raises Trap if out of bounds,
        TypeError if the value does not fit the element type (e.g. null in a ``(ref func)``
        table, or a Func of another type in a ``(ref $t)`` table)."""
        check_ref(self.ty.element, value)
        self._check(index, 1)
        _ffi.table_set(self._elements, index, self._cell(value))

    def grow(self, delta: int, init=None) -> int:
        """Grow by ``delta`` elements filled with ``init``; the old size, or -1 if not allowed."""
        check_ref(self.ty.element, init)
        if delta < 0:
            raise ValueError("delta must be >= 0")
        if self._closed:  # (_grow_cell is also the importers' code's, see _native)
            raise ValueError("table is closed")
        return self._grow_cell(delta, self._cell(init))

    def _grow_cell(self, delta: int, cell: int) -> int:
        """:meth:`grow` with the init value as a cell (the interpreter's table.grow)."""
        with lock_of(self):
            t = self._native
            old = t.size
            if old + delta > t.maximum:
                return -1
            store = self._store  # an instance's table: its store's limits
            if store is not None and not store._table_may_grow(old + delta):
                return -1
            if self.grow_limit is not None and not self.grow_limit(old, old + delta):
                return -1
            return _ffi.table_grow(t, delta, cell)

    def fill(self, index: int, value, n: int):
        """table.fill: bounds-checked before writing anything."""
        check_ref(self.ty.element, value)
        self._check(index, n)
        _ffi.table_fill(self._elements, index, self._cell(value), n)

    def _write_elements(self, start: int, values: Sequence):
        """Element-segment write: bounds-checked first, then all values (already refs)."""
        self._check(start, len(values))
        _ffi.table_init(self._elements, start, [self._cell(v) for v in values], 0, len(values))

    def _write_funcs(self, start: int, instance, write, first: int = 0, n: Optional[int] = None) -> None:
        """Element-segment write of ``write`` (a layout ElementWrite with ``funcs``; its
        items ``[first, first + n)``, default all, in bounds of it): the funcrefs of those
        functions of ``instance``, as :meth:`_write_elements` of their values writes them
        (the same holds first), in one C call."""
        if n is None:
            n = len(write.funcs) - first
        self._check(start, n)
        self._hold(instance)
        imported = instance._imported_funcs
        for index in write.imported:
            holder = holder_of(imported[index])
            if holder is not None:
                self._hold(holder)
        from .interp import site_of
        if not _ffi.table_init_funcs(self._elements, start, site_of(instance).vm, write.funcs + first, n):
            raise AssertionError("element segment: a function without a funcref")  # pragma: no cover

    def _check(self, index: int, n: int):
        if self._closed:
            raise ValueError("table is closed")
        size = self._t.size
        if index < 0 or n < 0 or index + n > size:
            raise Trap(TrapCode.TABLE_OUT_OF_BOUNDS,
                       f"table access [{index}, {index + n}) out of bounds (size {size})")

    def _cell(self, value) -> int:
        """``value``'s cell: a funcref's record kept alive by this table, an externref by
        the table's registry."""
        if not self._funcs:
            return cell_of(self.ty.element, value, self._registry())
        refs = holder_of(value)
        if refs is not None:
            self._hold(refs)
        return cell_of(self.ty.element, value)

    def _registry(self) -> ExternRefs:
        """Its externrefs' registry: its instance's store's, or (a host table) its own."""
        externs = self._externs
        if externs is None:
            store = self._store
            if store is None and self._definer is not None:
                instance = self._definer()
                store = instance.store if instance is not None else None
            externs = store._externs if store is not None else ExternRefs()
            with lock_of(self):
                if self._externs is None:
                    self._externs = externs
                externs = self._externs
        return externs

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self):
        """Close this view (idempotent; later accesses raise ValueError); the storage and a
        pool's table slot go back now, or when the last importer holding it closes."""
        if self._closed:  # (the Owner backstop after close(): no lock to take)
            return
        with lock_of(self):
            if self._closed:
                return
            self._closed = True
        self._unshare()

    def _share(self, again: bool = False) -> None:
        """An importing instance keeps the storage until it calls :meth:`_unshare`;
        ``again``: another share for an instance that holds one (valid even once closed).

        Raises:
            ValueError: the table is closed (and not ``again``).
        """
        with lock_of(self):
            if self._closed and not again:
                raise ValueError("an imported table is closed")
            self._shares += 1
        if not again:
            _ = self._elements  # bound while its definer is live: the importer's code reads it later

    def _unshare(self) -> None:
        with lock_of(self):
            self._shares -= 1
            if self._shares:
                return
            if self._entry is None:
                _ffi.table_close(self._t)
        holds, self._holds = self._holds, {}
        self._keeper = None
        for entry in holds.values():
            _give_back(entry[1:])
        if self._entry is not None:  # (kept: ``_t`` points into its entry's array)
            self._entry.release()

    def __repr__(self):
        return f"<Table {self.ty.element} size={self.size} max={self.ty.maximum}>"


class _Entry:
    """Entry ``index`` of an instance's ``wenv_instance_table[]`` (``tables``, kept alive
    here), whose storage came from the table pool ``pool`` (NULL: a reservation of its
    own) of ``allocation`` (kept alive here: the pool stays until its tables are back)."""

    __slots__ = ("tables", "index", "pool", "allocation")

    def __init__(self, tables, index: int, pool, allocation):
        self.tables = tables
        self.index = index
        self.pool = pool
        self.allocation = allocation

    def take(self):
        """Hand the entry to its view (the instance's close releases it no more): its
        ``wenv_table *``, and whether the instance's interpreter state bound it already
        (then it was marked taken: _ffi.vm_open)."""
        entry = self.tables[self.index]
        bound = bool(entry.viewed)
        entry.viewed = 1
        return _ffi.instance_table(self.tables, self.index), bound

    def release(self) -> None:
        """Give the storage back (C: at most once), zeroed where its view may have written."""
        release_entry(self.pool, self.tables, self.index)


def release_entry(pool, tables, index: int) -> None:
    """Give entry ``index`` of ``tables`` (an instance's ``wenv_instance_table[]``) back to
    ``pool`` (NULL: unmap its reservation), zeroed where it may have been written (C: at
    most once)."""
    _ffi.table_release(pool, tables + index, 1)


def _take(memories, tables, besides=None, what="the instance of a function reference",
          again: bool = False) -> tuple:
    """A use of each of ``memories`` and a share of each of ``tables`` (Tables, or
    :class:`Shared` storage; but ``besides``), given back by :func:`_give_back`. ``again``:
    each is held already by the instance the caller acts for (for whom this is another use
    or share, valid even once closed: that hold keeps it).

    Raises:
        ValueError: one of them is closed (what was taken is given back first); for a
            memory, the message names ``what`` owns it.
    """
    taken = []
    try:
        for memory in memories:
            if again:
                _ffi.memories_keep([memory._desc], 1)
            elif not _ffi.memory_enter(memory._desc):
                raise ValueError(f"{what} is closed")
            taken.append(memory)
        for table in tables:
            if table is not besides:
                table._share(again)
                taken.append(table)
    except BaseException:
        _give_back(taken)
        raise
    return tuple(taken)  # (kept as long as what took it: a tuple is the smaller object)


def _take_for(holder, besides=None) -> tuple:
    """What a cell naming ``holder``'s function (runtime.refs.holder_of) must keep: when
    ``holder`` is an instance, a use of every memory and a share of every table its code
    runs on (but ``besides``); a host function runs on none.

    Raises:
        ValueError: the instance, or one its code runs on, is closed (nothing taken).
    """
    if isinstance(holder, Func):
        return ()
    return _take(*instance_resources([holder]), besides=besides)


class Shared:
    """Storage that :func:`_take` shares as it shares a Table's (``_share``, ``_unshare``):
    runtime/_holds.py's PinnedStorage."""

    __slots__ = ()


def _give_back(held) -> None:
    """Give back what :func:`_take` took: memory uses and table (or Shared) shares."""
    for x in held:
        if isinstance(x, (Table, Shared)):
            x._unshare()
        else:
            rc = _ffi.memory_leave(x._desc)
            if rc:  # its instance closed first, and this was its last use
                x._state.slot._after_close(rc)
