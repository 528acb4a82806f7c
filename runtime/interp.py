"""Running wasm functions: per-module interpreter code (translated lazily, shared by every
instance) and the bridge that calls a function of an instance from Python.

Each instance gets a ``wenv_vm`` (c_src/wenv_interp.h) when first needed: a call, a
funcref cell of one of its functions (a ref.func initializer, an element segment, a lazy
table element), an importer linking to it. It is one allocation, which points at the
instance block (globals, references included, are read and written in place, in their
cells) and holds its memories' descriptors and its tables (pointers), its imported
functions (each a funcref: a host function's, or the exporting instance's) and its
funcref records: the one record of each function, whoever asks (ref.func, a lazy table
element, an import, Python; runtime/refs.py). Nothing else is made per instance for it
but the small :class:`_Site` and its registry entry.
A call into another instance switches to that instance's state in C. The interpreter exits
to Python to translate a function, to move a memory that grows past its reserve (an
in-place memory.grow runs in C: wenv_memory_grow), to grow a table, to run a bulk segment
instruction and to call a host function (then resumes where it stopped); a host
function may call into wasm again on the same thread: the nested call runs on the value
and frame stacks above the outer one's.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import List, NamedTuple

from wasmenv import UnsupportedFeature, ValType

from . import _ffi
from .func import host_func, make_host_natives, type_id
from .layout import layout_of
from .linking import shares_links
from ._translate_tables import BULK
from ._views import _MAKE_LOCK
from .refs import ExternRefs, cell_of, holder_of, is_func_heap, value_of
from .backtrace import function_names, register_code
from .engine import DEFAULT_MAX_WASM_STACK, FRAME_BYTES
from .translate import translate_function
from .traps import Trap, TrapCode
from .values import check_ref, from_bits, to_bits

__all__ = ["ModuleCode", "module_code", "call", "call_bits", "STACK_CELLS", "MAX_FRAMES"]

#: The value stack of one thread (8-byte cells) and the deepest wasm call chain at the
#: default ``Engine.max_wasm_stack``; past either a call traps with STACK_OVERFLOW. A
#: thread's stacks grow to the largest engine limit it runs under.
STACK_CELLS = DEFAULT_MAX_WASM_STACK // 8
MAX_FRAMES = DEFAULT_MAX_WASM_STACK // FRAME_BYTES

_TRAPS = {
    _ffi.I_UNREACHABLE: TrapCode.UNREACHABLE,
    _ffi.I_DIV_ZERO: TrapCode.INTEGER_DIVISION_BY_ZERO,
    _ffi.I_INT_OVERFLOW: TrapCode.INTEGER_OVERFLOW,
    _ffi.I_BAD_CONV: TrapCode.BAD_CONVERSION_TO_INTEGER,
    _ffi.I_STACK_OVERFLOW: TrapCode.STACK_OVERFLOW,
    _ffi.I_TABLE_OOB: TrapCode.TABLE_OUT_OF_BOUNDS,
    _ffi.I_NULL_REF: TrapCode.NULL_REFERENCE,
    _ffi.I_INDIRECT_NULL: TrapCode.INDIRECT_CALL_TO_NULL,
    _ffi.I_BAD_SIG: TrapCode.BAD_SIGNATURE,
    _ffi.I_OUT_OF_FUEL: TrapCode.OUT_OF_FUEL,
    _ffi.I_INTERRUPT: TrapCode.INTERRUPT,
}
_MODULE_LOCK = threading.Lock()


class _Context:
    """What translating a module's bodies needs (built once per module).

    Raw (unchecked) accesses follow the accessors' rule in C (``wenv_access_is_raw``) on
    the descriptor of memory 0 of the first instance called: its real reservation, pool
    slots included. Every later call checks that its memory 0 has that geometry.
    """

    def __init__(self, module, signals_based_traps: bool, mem0_desc):
        env = module.env
        # The engine's config is part of the code: fuel and epoch checks are emitted only
        # when it has them (a module belongs to one engine: one translation each).
        self.fuel, self.epoch = module.engine.code_config
        self.bounded = self.fuel or self.epoch
        self.types = [t.func for t in env.types]
        self.func_types = [self.types[f.signature] for f in env.functions]
        self.global_types = [g.type.content for g in env.globals]
        self.num_imported_funcs = env.num_imported_funcs
        offsets = layout_of(module).vmoffsets
        #: per global: (byte offset in the block, True if that holds a pointer to the cell)
        self.global_locations = [offsets.global_location(i) for i in range(len(env.globals))]
        self._mem0 = None
        self.geometry = None
        if signals_based_traps and env.memory_plans and env.num_imported_memories == 0 \
                and mem0_desc is not None and geometry(mem0_desc)[0] == _ffi.MEM_STATIC:
            self._mem0 = _ffi.new_memory_desc()  # a copy: the instance's may be closed later
            self._mem0.flags = _ffi.MEM_STATIC
            self._mem0.bound_bytes = mem0_desc.bound_bytes
            self._mem0.guard_bytes = mem0_desc.guard_bytes
            self.geometry = geometry(mem0_desc)

    def raw_access(self, memory: int, offset: int, width: int) -> bool:
        """Raw iff memory 0 is 32-bit static and ``0xFFFFFFFF + offset + width <= bound + guard``."""
        return memory == 0 and self._mem0 is not None and \
            _ffi.access_is_raw(self._mem0, offset, width) == 1


def geometry(desc):
    """What raw code relies on in a memory: its style and its bytes of bound plus guard."""
    return desc.flags & _ffi.MEM_STYLE, desc.bound_bytes + desc.guard_bytes


class ModuleCode:
    """The interpreter code of one module: a ``wenv_func`` per function, translated on
    first call (thread-safe), shared by every instance."""

    def __init__(self, module, mem0_desc=None):
        translation = module.translation
        if translation.code is None or (translation.code.bodies and translation.wasm is None):
            raise UnsupportedFeature("execution", detail="this module does not carry its code section")
        self.module = module
        self.ctx = _Context(module, module.engine.signals_based_traps, mem0_desc)
        self._bodies = translation.code.bodies
        self._wasm = translation.wasm
        self.module_offset = translation.code.module_offset  # of the code buffer's offset 0
        self._names = None
        self.funcs = _ffi.new_interp_funcs(len(self.ctx.func_types))
        env = module.env
        self.anyfunc_of = _ffi.new_u32s(_ffi.ANYFUNC_NONE if f.anyfunc is None else f.anyfunc
                                        for f in env.functions)
        self.type_ids = _ffi.new_u64s(type_id(t) for t in self.ctx.func_types)
        self._keep: List[object] = []
        #: (weak references to the imports, the vm of their links) of the instances made
        #: last: interp._shared_links
        self.links = None
        # Every instance's wenv_vm has this shape (its links unless shared: _make_site)
        layout = layout_of(module)
        nfuncrefs = layout.vmoffsets.count("funcrefs")
        self.shares_links = shares_links(env)
        counts = ((0, 0, 0) if self.shares_links
                  else (len(env.memory_plans), len(env.table_plans), env.num_imported_funcs))
        self.vm_shape = _ffi.vm_shape(*counts, nfuncrefs, layout.funcrefs_made_at_once)
        # ... and holds these alike (_ffi.vm_open)
        self.vm_module, arrays = _ffi.new_vm_module(
            *counts, self.funcs, self.anyfunc_of, self.type_ids, env.num_imported_funcs,
            [] if self.shares_links else [(spec.lazy, spec.lazy_len) for spec in layout.tables],
            len(env.table_plans) - len(layout.tables))
        self._keep.append(arrays)
        self._failed = {}
        self._lock = threading.Lock()

    def ensure(self, func_index: int) -> None:
        """Translate ``func_index`` unless done. Raises UnsupportedFeature (every time)."""
        if self.funcs[func_index].code != _ffi.NULL:
            return
        with self._lock:
            if self.funcs[func_index].code != _ffi.NULL:
                return
            exc = self._failed.get(func_index)
            if exc is None:
                try:
                    self._translate(func_index)
                    return
                except UnsupportedFeature as e:
                    exc = self._failed[func_index] = e
            raise UnsupportedFeature(exc.feature, exc.offset, exc.section, exc.detail)

    def _translate(self, func_index: int) -> None:
        ctx = self.ctx
        start, end = self._bodies[func_index - ctx.num_imported_funcs]
        code = translate_function(ctx, func_index, self._wasm, start, end, _ffi.interp_op_numbers())
        words = _ffi.interp_publish(self.funcs, func_index, code)
        register_code(_ffi.code_address(words), len(code.words), self, func_index, start,
                      code.positions, code.offsets)
        self._keep.append(words)

    def func_name(self, func_index: int):
        """The function's name from the module's name section, or None."""
        if self._names is None:
            self._names = function_names(self._wasm if self.module_offset == 0 else None)
        return self._names.get(func_index)


def module_code(module, mem0_desc=None) -> ModuleCode:
    """The module's ModuleCode (made on first use; ``mem0_desc``: see _Context)."""
    mc = getattr(module, "_code", None)
    if mc is None:
        with _MODULE_LOCK:
            mc = getattr(module, "_code", None)
            if mc is None:
                mc = module._code = ModuleCode(module, mem0_desc)
    return mc


class _ThreadStack(threading.local):
    """A thread's value and frame stacks, and how much of them calls in flight use (a host
    function's nested call starts above its caller's frame)."""

    stack = None
    frames = None
    cells = 0     # the stacks' lengths
    nframes = 0
    cells_used = 0
    frames_used = 0
    host_depth = 0  # host calls in flight (each a wasm -> Python -> wasm nesting)


_THREAD = _ThreadStack()
#: Python frames a wasm -> host call leaves free: a deeper call raises RecursionError
#: before the host function runs, so that a finalizer the garbage collector runs at the
#: deepest point (an Instance's backstop close()) still has frames to run in.
HEADROOM_FRAMES = 100
#: Host calls in flight on a thread below which the headroom is not tried (each nesting
#: costs more than 4 Python frames, and CPython's default limit is 1000).
_PROBE_FROM_DEPTH = 32
_IDS = itertools.count(1)
#: wenv_vm.id -> the _Site of that vm: a weak reference to its instance (what C reports
#: back: a host call's caller, a funcref's owner), dropped when the instance goes
_SITES = {}


def _stacks(t, cells: int, nframes: int):
    """This thread's value and frame stacks, at least ``cells`` and ``nframes`` long (a
    call in flight keeps the smaller ones it had alive)."""
    if t.cells < cells or t.nframes < nframes:
        t.cells, t.nframes = max(cells, t.cells), max(nframes, t.nframes)
        t.stack, t.frames = _ffi.new_interp_stacks(t.cells, t.nframes)
    return t.stack, t.frames


class _Results(NamedTuple):
    """A nested call's results: a pointer into stacks that ``owners`` keeps alive."""

    cells: object
    owners: tuple

    def __getitem__(self, i):
        return self.cells[i]


class _Site(weakref.ref):
    """An instance's interpreter state (made when first needed) and what keeps it valid:
    its ``wenv_vm`` (one allocation: c_src/wenv_interp.h) points into the instance block
    and at its memories' descriptors and tables, which the instance keeps (its block as
    long as the instance object lives: a call in flight holds it). It is also the
    instance's entry in the registry of vms, a weak reference to it (instance_of_vm). The
    registry holds it, so it holds no Python object but native blocks: a table would lead
    back to the instance, its ModuleCode would keep the module alive one collection longer
    than the instance (its instance's module keeps the code its vm points into)."""

    __slots__ = ("vm", "bad_layout", "links")

    def __new__(cls, instance, *state):
        return super().__new__(cls, instance, _forget)

    def __init__(self, instance, vm, bad_layout, links):
        super().__init__(instance, _forget)
        self.vm = vm          # the wenv_vm (its funcref records, and its links unless shared, in its tail)
        self.bad_layout = bad_layout  # memory 0 has another geometry than the module's code was made for
        self.links = links    # the vm whose link arrays this one shares (_shared_links), or None


def _forget(site) -> None:
    """The instance of ``site`` is gone: so is its registry entry (and with it the site)."""
    try:
        _SITES.pop(site.vm.id, None)
    except Exception:  # interpreter shutdown (module globals gone)
        pass


def site_of(instance) -> _Site:
    """The instance's interpreter state, made on first use (and its exporters' with it)."""
    site = getattr(instance, "_interp_site", None)  # (not __dict__: that would make it a dict)
    if site is not None:
        return site
    with _SITE_LOCK:
        site = getattr(instance, "_interp_site", None)
        if site is None:
            site = _make_site(instance)
            instance._interp_site = site
    return site


_SITE_LOCK = threading.RLock()  # (re-entered: an importer's site makes its exporters')


def _make_site(instance) -> _Site:
    # Its own memories' descriptors without Memory objects (made when someone asks: a
    # grow, a bulk op, a view); imported ones through theirs.
    memories = instance._imported_memories
    descs = [m._desc for m in memories] + [instance._memory_desc(k) for k in range(instance._layout.memory_count)]
    mc = module_code(instance.module, descs[0] if descs else None)
    # (checked at each call: an instance's state is made at instantiation when it has funcrefs)
    bad_layout = mc.ctx.geometry is not None and geometry(descs[0]) != mc.ctx.geometry
    imported = instance._imported_funcs
    imported_tables = instance._imported_tables
    vm = _ffi.new_vm_state(mc.vm_shape)
    vm_id = next(_IDS)
    cells = instance._cells
    block = _ffi.NULL if cells is None else cells.block
    # Only imported memories and tables (an Emscripten side module): the links are the
    # imports', the same for every instance linked to the same ones.
    links = None
    if mc.shares_links:
        links = getattr(imported, "links", None) or _shared_links(mc, memories, imported_tables, imported)
        _ffi.vm_open(vm, mc.vm_module, block, vm_id, (), ())
        vm.mems, vm.nmems, vm.imports = links.mems, links.nmems, links.imports
        vm.tables, vm.ntables = links.tables, links.ntables
    for table in imported_tables:
        # Its code may store our funcrefs there (kept alive; what they run on is this
        # instance's, held by its importers' imports or _keep).
        table._hold(instance, storage=False)
    if links is None:
        # Its own tables bound to this state without views (the instance releases them
        # after its last call: C marks their entries); imported ones through theirs.
        tables = [t._native for t in imported_tables]
        records = getattr(imported, "records", None)  # (host functions only, linked by an InstancePre)
        with _MAKE_LOCK:  # (a view made meanwhile: one owner per entry)
            entries = instance._tables_to_bind(vm, tables)
            _ffi.vm_open(vm, mc.vm_module, block, vm_id, descs, tables, entries,
                         _ffi.NULL if records is None else records)
        if records is None:
            _set_imports(vm, imported)
    site = _SITES[vm_id] = _Site(instance, vm, bad_layout, links)
    return site


def _set_imports(vm, imported) -> None:
    """``vm``'s import records, one by one (imports an InstancePre did not make records of)."""
    make_host_natives(imported)
    for i, f in enumerate(imported):
        ref, owner = f._native_ref()
        _ffi.set_import(vm, i, ref, owner)


def pre_link(module, imports) -> None:
    """At link time (runtime.InstancePre): the links every instance of ``module`` made
    from ``imports`` (a ResolvedImports, all memories and tables imported: shares_links)
    shares, kept with its imported functions (linking.ImportedFuncs, which those instances
    keep); none while an import is closed (instantiation says so)."""
    g = imports.groups
    if any(m.closed for m in g.memories):
        return
    try:
        g.funcs.links = _new_links(list(g.memories), list(g.tables), list(g.funcs))
    except ValueError:  # a closed table
        pass


def _new_links(memories, tables, imported):
    """A vm holding only links (memory, table and import arrays) to these objects."""
    links = _ffi.new_vm_state(_ffi.vm_shape(len(memories), len(tables), len(imported), 0))
    shape, _ = _ffi.new_vm_module(len(memories), len(tables), len(imported))
    records = getattr(imported, "records", None)
    _ffi.vm_open(links, shape, _ffi.NULL, 0, [m._desc for m in memories], [t._native for t in tables],
                 _ffi.NULL, _ffi.NULL if records is None else records)
    if records is None:
        _set_imports(links, imported)
    return links


def _shared_links(mc, memories, tables, imported):
    """A vm holding only links (memory, table and import arrays) to ``memories``,
    ``tables`` and ``imported`` (all imports), shared by the instances of ``mc``'s module
    linked to these very objects: the last such set of each module is kept, by weak
    references (its instances hold the objects themselves)."""
    key = (*memories, *tables, *imported)
    cached = mc.links
    if cached is not None and len(cached[0]) == len(key) and all(r() is x for r, x in zip(cached[0], key)):
        return cached[1]
    links = _new_links(memories, tables, imported)
    mc.links = (tuple(weakref.ref(x) for x in key), links)
    return links


def instance_of_vm(vm):
    """The instance of a ``wenv_vm *`` (C hands it back in exits and funcrefs); KeyError
    once that instance is gone."""
    instance = _SITES[vm.id]()
    if instance is None:
        raise KeyError(vm.id)
    return instance


_NUMERIC = (ValType.I32, ValType.I64, ValType.F32, ValType.F64)


def to_cell(ty, value, instance=None) -> int:
    """A Python value of wasm type ``ty`` as an 8-byte cell (TypeError/ValueError if it is
    not one); an externref is held by ``instance``'s store (runtime/refs.py), or by
    ``instance`` itself when it is an ExternRefs registry (None: EXTERNS)."""
    if ty in _NUMERIC:
        return to_bits(ty, value)
    return ref_to_cell(ty, value, instance)


def from_cell(ty, cell: int):
    if ty in _NUMERIC:
        return from_bits(ty, cell)
    return ref_from_cell(ty, cell)


def ref_to_cell(ty, value, instance=None) -> int:
    if not getattr(ty, "is_ref", False):
        raise UnsupportedFeature("simd", detail=f"a {ty} value")
    check_ref(ty, value)
    # (runtime/refs.py: the one encoding; externrefs belong to the store)
    externs = instance
    if instance is not None and not isinstance(instance, ExternRefs):
        if value is None:
            externs = None
        elif is_func_heap(ty):
            externs = None
            holder = holder_of(value)
            if holder is not None:  # the cell's record, and what it runs on, live as long
                instance._keep(holder)
        else:
            externs = instance.store._externs
    return cell_of(ty, value, externs)


def ref_from_cell(ty, cell: int):
    return value_of(ty, cell)


def check_args(ty, args, instance=None) -> list:
    """The cells of ``args`` for a call of type ``ty`` into ``instance``; TypeError (arity,
    types) before anything runs."""
    params = ty.params
    if len(args) != len(params):
        raise TypeError(f"expected {len(params)} arguments, got {len(args)}")
    return [to_cell(t, a, instance) for t, a in zip(params, args)]


def results_of(ty, cells):
    """None, a value, or a tuple (multi-value) from the result cells."""
    results = ty.results
    if len(results) == 1:
        return from_cell(results[0], cells[0])
    return tuple(from_cell(t, cells[i]) for i, t in enumerate(results)) if results else None


def call(instance, func_index: int, ty, args):
    """Call function ``func_index`` of ``instance`` with Python ``args``; returns None, a
    value, or a tuple (multi-value). Raises TypeError (arity/type) before anything runs,
    ``Trap``, ``UnsupportedFeature``, or what a host function raised."""
    cells = check_args(ty, args, instance)
    return results_of(ty, call_bits(instance, func_index, cells))


def call_bits(instance, func_index: int, cells):
    """:func:`call` on raw cells (already checked); returns a pointer into the thread's
    value stack whose first cells are the results (valid until the next call at this
    depth on this thread)."""
    if instance.closed:
        raise ValueError("instance is closed")
    site = site_of(instance)
    if site.bad_layout:
        from .errors import WasmRuntimeError
        raise WasmRuntimeError("memory 0 of this instance has another layout than the one its "
                               "module's code was translated for (raw accesses need its guard)")
    mc = module_code(instance.module)
    mc.ensure(func_index)
    instance._enter()  # its memories stay allocated until _leave, even if it closes meanwhile
    try:
        return _call_entered(instance, site, mc, func_index, cells)
    finally:
        instance._leave()


def _call_entered(instance, site, mc, func_index: int, cells):
    engine = instance.module.engine
    max_cells, max_frames = engine._stack_cells, engine._stack_frames
    t = _THREAD
    used, fused = t.cells_used, t.frames_used
    # A nested call (from a host function) runs above the frames of the calls in flight.
    stack, frames = _stacks(t, used + max_cells, fused + max_frames)
    owners = stack, frames  # (a nested call may replace the thread's stacks: these stay alive)
    if used:
        stack, frames = stack + used, frames + fused
    for i, v in enumerate(cells):
        stack[i] = v
    c = _ffi.new_interp_call()
    c.vm, c.stack, c.stack_cells, c.frames = site.vm, stack, max_cells, frames
    c.max_frames, c.entry = max_frames, func_index
    if mc.ctx.bounded:  # code with fuel/epoch checks: under the store of the function called
        store = instance.store
        _ffi.set_call_bounds(c, store._fuel, engine._epoch, store._deadline)
    run = _ffi.interp_run
    while True:
        status = run(c)
        if status == _ffi.I_DONE:
            return stack if not used else _Results(stack, owners)
        if status == _ffi.I_EXIT_HOST:
            _host_call(c, t, used, fused)
        elif status == _ffi.I_EXIT_TRANSLATE:
            module_code(instance_of_vm(c.exit_vm).module).ensure(c.exit_arg0)
        elif status == _ffi.I_EXIT_GROW:
            _grow(c, instance_of_vm(c.vm))
        elif status == _ffi.I_EXIT_TABLE_GROW:
            table = instance_of_vm(c.vm)._table(c.exit_arg0)
            mask = 0xFFFFFFFFFFFFFFFF if table.ty.table64 else 0xFFFFFFFF
            c.exit_dst[0] = table._grow_cell(c.exit_arg1 & mask, c.exit_dst[0]) & mask
        elif status == _ffi.I_EXIT_BULK:
            _bulk(instance_of_vm(c.vm), c)
        else:
            raise _trap(c, status, frames, engine.wasm_backtrace_max_frames, mc)


def _host_call(c, t, used: int, fused: int) -> None:
    """Run the host function the interpreter exited for: its arguments from the frame, its
    results into it (type-checked). What the function raises propagates unchanged."""
    f = host_func(c.exit_arg0)
    ty = f.ty
    fp = c.fp
    args = [from_cell(p, fp[i]) for i, p in enumerate(ty.params)]
    depth = t.host_depth
    if depth >= _PROBE_FROM_DEPTH:
        _check_headroom()
    t.cells_used, t.frames_used = used + c.exit_arg1, fused + c.depth + 1
    t.host_depth = depth + 1
    caller = None
    try:
        if f._access_caller:
            from .func import Caller
            caller = Caller(instance_of_vm(c.vm))
            out = f._callable(caller, *args)
        else:
            out = f._callable(*args)
    finally:
        t.cells_used, t.frames_used = used, fused
        t.host_depth = depth
        if caller is not None:
            caller._instance = None
    owner = None if all(r in _NUMERIC for r in ty.results) else instance_of_vm(c.vm)
    for i, v in enumerate(host_result_cells(ty, out, owner)):
        fp[i] = v


def _recurse(k: int) -> int:
    return k and _recurse(k - 1)


def _check_headroom() -> None:
    """RecursionError unless HEADROOM_FRAMES more Python calls fit. Tried, not counted:
    CPython's limit also counts C-level calls (3.11), which no frame walk sees."""
    try:
        _recurse(HEADROOM_FRAMES)
    except RecursionError:
        raise RecursionError(f"maximum recursion depth exceeded in a wasm -> host call (the "
                             f"last {HEADROOM_FRAMES} Python frames are kept for finalizers)"
                             ) from None


def host_result_cells(ty, out, owner=None) -> list:
    """The result cells of what a host function of type ``ty`` returned (TypeError if it
    is not ``ty``'s results: one value, or a tuple or list of them); externrefs are held
    by the store of ``owner`` (the calling instance; None: runtime/refs.py's EXTERNS)."""
    results = ty.results
    if not results:
        if out is not None:  # wasmtime-py: "callback produced results when it shouldn't"
            raise TypeError(f"host function of type {ty} must return None, got {out!r}")
        return []
    if len(results) == 1:
        out = (out,)
    elif not isinstance(out, (tuple, list)) or len(out) != len(results):
        raise TypeError(f"host function must return {len(results)} values, got {out!r}")
    return [to_cell(r, v, owner) for r, v in zip(results, out)]


def _grow(c, instance) -> None:
    memory = instance.memory(c.exit_arg0)  # (a defined one's made now, adopting its descriptor)
    memory64 = memory.plan.memory.memory64
    delta = c.exit_arg1 if memory64 else c.exit_arg1 & 0xFFFFFFFF
    old = memory.grow(delta)
    c.exit_dst[0] = old & (0xFFFFFFFFFFFFFFFF if memory64 else 0xFFFFFFFF)


def _trap(c, status, frames, max_frames, mc) -> Exception:
    code = _TRAPS.get(status)
    if code is not None:
        trap = Trap(code)
    elif status in (_ffi.I_OOB, _ffi.I_OOB_GUARD):
        trap = Trap(TrapCode.MEMORY_OUT_OF_BOUNDS, address=c.trap_addr,
                    guard_fault=status == _ffi.I_OOB_GUARD)
    else:
        trap = None
    if trap is not None:  # raw addresses now; FrameInfo records when someone reads them
        trap._ips = (_ffi.pointer_address(c.ip),  # mc: its code stays mapped until read
                     _ffi.frame_return_ips(frames, c.depth, max_frames - 1), mc)
        return trap
    from .errors import WasmRuntimeError
    if status == _ffi.I_NO_MEMORY:
        from .errors import AllocationError
        return AllocationError("a table's first write could not map its storage", "table")
    if status == _ffi.I_FAULT:
        return WasmRuntimeError(f"memory fault inside the accessible bytes at wasm address "
                                f"{c.trap_addr:#x} (was an image file truncated?)")
    return WasmRuntimeError(f"interpreter: unexpected status {status}")  # pragma: no cover


def _bulk(instance, c) -> None:
    """Run the bulk_exit at ``c.exit_ip`` (runtime/_translate_tables.BULK): table.init,
    elem.drop, memory.init, data.drop on this instance's segments."""
    ip, fp = c.exit_ip, c.fp
    kind = ip[2]
    if kind == BULK["data.drop"]:
        instance.data_drop(ip[3])
        return
    if kind == BULK["elem.drop"]:
        vars(instance).setdefault("_dropped_elems", set()).add(ip[3])
        return
    d, s, n, seg, target = fp[ip[3]], fp[ip[4]], fp[ip[5]], ip[6], ip[7]
    if kind == BULK["memory.init"]:
        memory = instance.memory(target)
        if not memory.ty.memory64:
            d &= 0xFFFFFFFF
        instance.memory_init(target, d, seg, s & 0xFFFFFFFF, n & 0xFFFFFFFF)
        return
    table = instance.tables[target]
    if not table.ty.table64:
        d &= 0xFFFFFFFF
    s, n = s & 0xFFFFFFFF, n & 0xFFFFFFFF
    segment = instance.module.env.passive_elements.get(seg)
    dropped = vars(instance).get("_dropped_elems", ())
    items = () if segment is None or segment.mode != "passive" or seg in dropped else segment.items
    if s + n > len(items) or d + n > table.size:
        raise Trap(TrapCode.TABLE_OUT_OF_BOUNDS)
    write = layout_of(instance.module).passive_elements.get(seg) if items else None
    if write is not None and table._funcs:
        table._write_funcs(d, instance, write, s, n)
    else:
        table._write_elements(d, [instance._element(e) for e in items[s:s + n]])

