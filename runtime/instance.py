"""Instance: instantiation in spec order, and the instance's exports."""
from __future__ import annotations

from collections.abc import Sequence
from typing import List, Optional

from wasmenv import ExternKind

from . import _ffi
from ._holds import _NOTHING_HELD, Holds
from ._owner import Owner
from .initialization import Initialization
from .exports import Exports, _Globals
from .func import Func, instance_resources
from .globals import Global
from .layout import allocation_of, layout_of
from .memory import limit_growth
from .linking import NO_IMPORTS, ResolvedImports, group_imports, lookup_imports
from .module import Module
from .refs import link_imports
from .store import Store
from .tag import Tag
from ._views import _MAKE_LOCK, Views


class Instance(Initialization, Holds, Views, Owner):
    """An instantiated module: imports linked, globals, tables and memories created and
    initialized in spec order, then the start function run.

    An instance of a module with globals owns a native block laid out by the module's
    ``VMOffsets`` (``runtime.layout``); so far it holds the defined globals' cells, copied
    from the module's ``GlobalsTemplate`` (only initializers reading imports or making
    ``ref.func`` values are evaluated per instance), and a pointer to each imported
    global's cell. It is made at instantiation when the instance writes into it (those
    pointers, per-instance initializers), else on first use (a call, a global's view, an
    importer): until then it would hold the template, which nobody has read. ``Global``
    and ``Func`` objects are views made on demand: ``globals[i]``, ``exports[name]``,
    table reads; a wasm function's Func is made once (kept in a dict made on first use;
    the start function's is not kept), nothing is made per function or per global.

    Defined tables are opened by the allocator in C with the memories (their own
    reservations, or a pool's table slots) into an array of entries the instance owns;
    a :class:`runtime.Table` view of one is made on first use (``tables``,
    ``exports[name]``, an element segment, a grow or bulk instruction), and then owns its
    entry. Its interpreter state binds the entries themselves (``_tables_to_bind``, _ffi.vm_open; the
    instance gives them back after its last call). An instance nobody looked into
    releases its memory and tables in one C call when it has one memory.

    A defined memory is opened by its allocator in C (reserved and its image mapped, or a
    pool slot prepared); its :class:`runtime.Memory` object is made the first time it is
    asked for (``memory(i)``, ``memories``, ``exports``, a grow), so an instance nobody
    looks into costs one C call to open (memory and tables) and one to release when its
    layout is plain: one memory, nothing imported but functions, nothing to initialize
    (see ``runtime.layout``). Its interpreter state and data segments use a C descriptor
    the allocation describes without a Memory (``_memory_desc``), which a later Memory
    adopts.

    Args:
        module: a :class:`runtime.Module`.
        imports: mapping ``(module_name, field) -> extern`` or a sequence in import order;
            externs are Memory, Table, Global, Func, Tag or a bare callable for a function.
            (:class:`runtime.InstancePre` passes imports it resolved and checked once.)
        store: the :class:`runtime.Store` whose limits count this instance and whose fuel
            and deadline its calls run under; None: a private store (made when first
            asked for, ``instance.store``).

    Raises:
        LinkError: an import is missing or mistyped (nothing was allocated).
        Trap: a data or element segment is out of bounds, or the start function trapped
            (earlier writes to imported memories/tables stay, as the spec says; everything
            this instance allocated is released).
        AllocationError: a memory could not be reserved, or the store's limits do not
            allow this instance (nothing is left behind).
    """

    # What the general path sets lives in slots (_begin sets them all, no dict made for
    # them); the rest has a class-level default and is set (in the instance's __dict__,
    # made on first store) only by instances that need it. The first instance of a
    # memories-only module sets three slots, and a half-built instance (an import
    # refused) fewer: the others read as _UNSET says (__getattr__).
    __slots__ = ("module", "_handles", "_layout", "_store", "_imported_funcs", "_imported_globals",
                 "_imported_memories", "_imported_tables", "_cells", "_held", "_table_entries",
                 "_interp_site", "_made", "_descs", "_views", "_calls", "_closing",
                 "_release_pending",
                 "__dict__", "__weakref__")
    # Slots (unset until _begin):
    #   _imported_funcs     one Func per imported function, in import order
    #   _imported_globals   per imported global: (type, exporter's cells, cell index)
    #   _imported_memories, _imported_tables   in import order
    #   _cells              the defined globals in this instance's block (GlobalCells)
    #   _held               imported memories and tables (and those their functions' code
    #                       runs on) kept allocated until close and the last call (_hold)
    #   _table_entries      the defined tables' wenv_instance_table[] (the allocator opened)
    #   _interp_site        its interpreter state, once made (runtime/interp.py)
    #   _made               Memory objects of defined memories, once made (a list, None at
    #                       the others), or None
    #   _descs              C descriptors of defined memories its allocation described
    #                       without a Memory (_memory_desc: for its interpreter state), until
    #                       a Memory adopts one (a list, None at the others), or None
    #   _views              Table views of defined tables, once made (likewise), or None
    #   _calls              calls in flight (_enter/_leave), counted per layout.counts_calls
    #                       or held imports
    #   _closing            close() began: no new call is counted (_enter raises)
    #   _release_pending    closed during a call: the last _leave releases what it holds
    # (A started instance sets no attribute outside its slots: no __dict__.)
    _funcs: Optional[dict] = None        # defined function index -> its Func, made on first use
    tags: List[Tag] = ()
    _exports: Optional["Exports"] = None
    _dropped_data = None         # passive segments left after a data.drop (else the layout's)
    _kept = None  # id -> (what funcref cells that crossed name, *what _keep took for it)

    def __getattr__(self, name):
        """A slot the one-call path never set reads as its default; the block (``_cells``)
        of a layout with ``lazy_block`` is made on first use."""
        if name == "_cells":
            return self._lazy_cells()
        try:
            return _UNSET[name]
        except KeyError:
            raise AttributeError(f"'Instance' object has no attribute {name!r}") from None

    def __init__(self, module: Module, imports=None, store=None):
        self._store = store
        if store is not None:
            self._init_in(store, module, imports)
        else:
            self._init(module, imports)

    def _init(self, module: Module, imports):
        """__init__ once the store (if any) has admitted the instance."""
        layout = module._instance_layout
        if layout is not None and layout.fast and (  # (fast is False once closed)
                imports.plain and imports.env is module.env if type(imports) is ResolvedImports
                else not imports and not layout.links):
            # The common case, kept short: a plain layout (one memory and its tables,
            # nothing to link but functions, nothing to initialize; see runtime.layout)
            # after its first instance: one C call (a reservation and its image, or a
            # prepared pool slot, and the tables). The instance is live once _handles is
            # set. The module's images stay open until C has mapped them (Module._enter).
            self.module = module
            self._layout = layout
            # Every slot its close reads is set: reading an unset slot costs an exception
            # and a __getattr__ (_UNSET). _cells, and those only calls read (_calls,
            # _closing...), are set on first use; the memories-only first instance leaves
            # them all unset.
            self._interp_site = self._made = self._descs = self._views = None
            self._held = _NOTHING_HELD
            self._imported_funcs = imports.groups.funcs if imports else ()
            self._imported_globals = self._imported_memories = self._imported_tables = ()
            count = layout.table_count
            entries = self._table_entries = _new_tables(count) if count else None
            module._enter()
            try:
                handle = layout.allocation.open_one(layout, entries)
                if handle < 0:  # the same in steps says which failed (or succeeds: a pool collected)
                    handle = layout.allocation.begin(module, layout, entries)[0]
            finally:
                module._leave()
            self._handles = (handle,)
            return
        module._enter()
        try:
            self._begin(module, imports, layout or layout_of(module))
        finally:
            module._leave()

    def _begin(self, module, imports, layout):
        """The general path: everything but the one-call case (the module's images stay
        open throughout: the caller entered the module)."""
        # _handles stays unset until the allocation began: close() (and __del__, which
        # swallows the AttributeError) has nothing to release before that; None once closed.
        self.module = module
        self._layout = layout
        if layout.memories_only and not imports:
            alloc = layout.allocation or allocation_of(module, layout)
            self._handles = alloc.begin(module, layout)
            layout.set_fast(alloc)
            return
        env = module.env
        if isinstance(imports, ResolvedImports) and imports.env is env:
            groups = imports.groups  # grouped once, by the InstancePre
        elif imports is None and not env.initializers:
            groups = NO_IMPORTS
        else:
            groups = group_imports(env, lookup_imports(env, imports))
        self._imported_funcs = groups.funcs
        # (a view of a closed instance raises here)
        self._imported_globals = _imported_globals(imports, groups.globals) if groups.globals else ()
        self._imported_tables = groups.tables
        self._imported_memories = groups.memories
        self._held = _NOTHING_HELD
        self._interp_site = self._made = self._descs = self._views = None
        self._calls = 0
        self._closing = self._release_pending = False
        if env.tags:
            self.tags = list(groups.tags)
        if groups.crossing:  # externrefs cross between its store and these imports
            link_imports(self, groups.crossing)
        # Spec order: globals (and tags) first: the block is freed with its last holder
        # (see _open_block), nothing to release. (Else made on first use: _cells.)
        if not layout.lazy_block:
            self._open_block(layout)
        for func_type in layout.tags:
            self.tags.append(Tag(func_type))
        # Counted by the allocator from here (a pool may refuse: AllocationError); ended by
        # close() (or __del__, the backstop) once every memory and table is released.
        alloc = layout.allocation or allocation_of(module, layout)
        entries = self._table_entries = _new_tables(len(layout.tables)) if layout.tables else None
        self._handles = alloc.begin(module, layout, entries)
        try:
            memories, tables = self._imported_memories, self._imported_tables
            if groups.code_instances:  # what their code runs on, until this closes
                more_memories, more_tables = instance_resources(groups.code_instances)
                memories, tables = [*memories, *more_memories], [*tables, *more_tables]
            if memories or tables:
                self._hold(memories, tables)
            if layout.initializes:
                self._instantiate(layout)
        except BaseException:
            self.close()
            raise
        if not layout.fast:
            layout.set_fast(alloc)  # a plain layout's next instances: the one-call path (_init)

    def _init_in(self, store, module: Module, imports):
        """__init__ in ``store``: counted by its limits first (AllocationError, nothing
        counted), given back if the instantiation fails."""
        if not isinstance(store, Store):
            raise TypeError(f"store must be a runtime.Store, got {type(store).__name__}")
        if store.engine is not module.engine:
            raise ValueError("cross-`Engine` instantiation is not currently supported")
        store._admit(self, module)
        try:
            self._init(module, imports)
        except BaseException:
            store._release(self)
            raise

    def _lazy_cells(self):
        """The block's cells, made on first use (``layout.lazy_block``: what the block
        holds is the module's template until then); None for a module that defines no
        global, and once closed (or before the instance began)."""
        with _MAKE_LOCK:  # one block, and none once close() began
            try:
                return _CELLS.__get__(self)  # made meanwhile (or set None by close)
            except AttributeError:
                pass
            if getattr(self, "_handles", None) is None:
                return None
            layout = self._layout
            if layout.globals_template.types:
                self._open_block(layout)
            else:
                self._cells = None
            return self._cells

    @property
    def _passive_data(self) -> dict:
        """data index -> range of this instance's passive segments (not dropped)."""
        dropped = self._dropped_data
        return self._layout.passive_data if dropped is None else dropped

    def _global_bits(self, index: int):
        """The raw value of global ``index`` (imported ones first), as ``Global.bits``."""
        imported = self._imported_globals
        if index < len(imported):
            ty, cells, cell = imported[index]
            return cells.read(ty.content, cell)
        k = index - len(imported)
        return self._cells.read(self._layout.globals_template.types[k], k)

    def _func_ref(self, index: int, keep: bool = True) -> Func:
        """The Func of function ``index``: an import, or a wasm function's (made once and
        kept, so that every holder sees one object; ``keep`` False: one nobody else will
        see, the start function's, is not kept: no dict per instance for it)."""
        imported = self._imported_funcs
        if index < len(imported):
            return imported[index]
        funcs = self._funcs
        f = None if funcs is None else funcs.get(index)
        if f is None:
            if not 0 <= index < len(self.module.env.functions):
                raise IndexError(f"no function {index}")
            f = Func._wasm(self.module.env.type_of((ExternKind.FUNC, index)), self, index)
            if keep:
                if funcs is None:
                    funcs = vars(self).setdefault("_funcs", {})
                f = funcs.setdefault(index, f)  # two threads asking at once get one Func
        return f

    def _global(self, index: int) -> Global:
        """A view of global ``index`` (imported ones first): an imported global's view reads
        and writes the exporter's cell.

        Raises:
            ValueError: the instance is closed.
            IndexError: no such global.
        """
        if self._handles is None:
            raise ValueError("instance is closed")
        imported = self._imported_globals
        if 0 <= index < len(imported):
            ty, cells, cell = imported[index]
            return Global._view(ty, cells, cell, self)
        env = self.module.env
        if not len(imported) <= index < len(env.globals):
            raise IndexError(f"no global {index} ({len(env.globals)} globals)")
        return Global._view(env.globals[index].type, self._cells, index - len(imported), self)

    # -- public --------------------------------------------------------------------------
    @property
    def globals(self) -> "Sequence[Global]":
        """Every global, imported ones first, as a sequence of views made on access."""
        return _Globals(self)

    @property
    def store(self):
        """The :class:`runtime.Store` this instance lives in (a private one, made now, if
        it was made without)."""
        store = self._store
        if store is not None:
            return store
        with _MAKE_LOCK:
            store = self._store
            if store is not None:
                return store
            store = self._store = Store(self.module.engine)
        for table in self._views or ():
            if table is not None:
                table._store = store
        for memory in self._made or ():
            if memory is not None:
                memory._set_store(store)
        for desc in self._descs or ():
            if desc is not None:
                limit_growth(desc, store)
        return store

    @property
    def start_func(self) -> Optional[int]:
        """The start function's index (it ran at the end of instantiation), or None."""
        return self.module.env.start_func

    def passive_data(self, data_index: int) -> memoryview:
        """Bytes of a passive data segment (empty once dropped, or if it was active)."""
        r = self._passive_data.get(data_index)
        if r is None:
            if not 0 <= data_index < self.module.env.num_data_segments:
                raise IndexError(f"no data segment {data_index}")
            return memoryview(b"")
        return self.module.translation.passive_data.view(r)

    def data_drop(self, data_index: int):
        """data.drop: the segment becomes empty for this instance (passive_data, memory_init)."""
        if data_index in self._passive_data:
            kept = dict(self._passive_data)
            del kept[data_index]
            self._dropped_data = kept

    def memory_init(self, memory_index: int, addr: int, data_index: int, offset: int, n: int):
        """memory.init: copy ``n`` bytes from ``offset`` of this instance's passive data segment
        ``data_index`` to ``addr`` of memory ``memory_index`` (imported or defined). Traps
        (writing nothing) when either range is out of bounds; a dropped (or active)
        segment is empty, so only ``n == 0`` succeeds."""
        self.memory(memory_index)._init_bytes(addr, self.passive_data(data_index), offset, n)

    @property
    def exports(self) -> "Exports":
        """``exports[name]`` -> Func, Table, Memory, Global or Tag (made on first use)."""
        if self._exports is None:
            self._exports = Exports(self)
        return self._exports

    def __del__(self):  # the backstop (Owner's, minus a call when already closed)
        try:
            if self._handles is not None:
                self.close()
        except Exception:  # a half-built instance, or interpreter shutdown
            pass

    def close(self):
        """Release the memories and tables this instance defined (idempotent)."""
        site = self._interp_site
        if site is not None and (self._imported_tables or self._imported_globals) \
                and self._handles is not None:
            self._pin_stored_funcrefs(site)
        with _MAKE_LOCK:  # a memory(i) in progress finishes first, later ones raise
            handles = self._handles
            if handles is None:
                return
            self._handles = None
        store = self._store
        if store is not None:
            store._release(self)
        layout = self._layout
        if layout.fast and site is None and self._made is None and self._descs is None and self._views is None \
                and self._kept is None and self._held is _NOTHING_HELD:
            # A plain layout's instance that holds nothing and nobody looked into (no
            # call, no Memory or Table view, no funcref kept): its memory and tables go
            # in one C call. Views of its globals raise from now on; the block goes with
            # the last of them.
            self._cells = None
            layout.allocation.close_one(layout, handles[0], self._table_entries)
            return
        ended = False
        if self._interp_site is None:
            # The block goes with its last holder: views made earlier (they raise from now
            # on) and importers, whose cell pointers lead into it. With an interpreter
            # state, the block and the exporters' cells it points at stay with this object
            # (a call in flight, or one from an importer, reads them), and go with it.
            self._cells = None
            self._imported_globals = ()
        descs = self._memory_descs()  # (none is made from now on: _handles is None)
        try:
            # No view of its tables, no interpreter state (which binds them: _tables_to_bind),
            # nothing imported or kept: no call in flight waits for them; finish()
            # releases them. A call in flight that may store its funcrefs in an imported
            # global waits too (_release_after_calls).
            if self._held or self._kept is not None or self._tables_taken() \
                    or (site is not None and self._imported_globals):
                if self._release_now_or_after_calls():
                    self._release_held()
            if descs is not None:  # (each goes with its descriptor: now, or after the last use)
                alloc, made = layout.allocation, self._made
                ended = alloc.closing(layout, handles, descs)
                for k in range(len(handles) - 1, -1, -1):
                    memory = None if made is None else made[k]
                    if memory is not None:
                        memory.close()
                    elif descs[k] is not None:
                        alloc.close_described(layout, k, handles[k], descs[k])
        finally:
            layout.allocation.finish(layout, handles, descs, ended, self._table_entries)

    @property
    def closed(self) -> bool:
        return self._handles is None

    def __repr__(self):
        count = len(self._imported_memories) + self._layout.memory_count
        return f"<Instance of {self.module.env.name or 'module'}: {count} memories>"


def _imported_globals(imports, globals_) -> tuple:
    """(type, exporter's cells, cell index) of each imported global, each checked live now
    (a view of a closed instance raises); one tuple, shared by the instances of an
    InstancePre (``imports``) as long as the exporters' cells are the same."""
    cells = [ext._live_cells() for ext in globals_]
    resolved = imports if isinstance(imports, ResolvedImports) else None
    shared = None if resolved is None else resolved.global_cells
    if shared is None or any(c is not entry[1] for c, entry in zip(cells, shared)):
        shared = tuple((ext.ty, c, ext._index) for ext, c in zip(globals_, cells))
        if resolved is not None:
            resolved.global_cells = shared
    return shared


#: What Instance's slots read as before _begin set them (an instance of a memories-only
#: module never does).
_UNSET = {"_imported_funcs": (), "_imported_globals": (), "_imported_memories": (), "_imported_tables": (),
          "_held": _NOTHING_HELD, "_table_entries": None, "_interp_site": None, "_store": None,
          "_made": None, "_descs": None, "_views": None, "_calls": 0, "_closing": False,
          "_release_pending": False}


_CELLS = Instance._cells  # the slot's descriptor (reads it without __getattr__)
_new_tables = _ffi.new_instance_tables
