"""Functions: host callables and references to a module's wasm functions, and the Caller a
host function may ask for."""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Optional

from wasmenv import FuncType

from .errors import WasmRuntimeError


class ExecutionUnsupported(WasmRuntimeError, NotImplementedError):
    """Something this runtime cannot execute yet."""


def _interp():
    """runtime.interp (imported on first use: the interpreter's code loads lazily)."""
    global _INTERP
    if _INTERP is None:
        from . import interp
        _INTERP = interp
    return _INTERP


_INTERP = None

# ---- canonical function type ids (what call_indirect and call_ref compare) ----------
_TYPE_IDS: dict = {}
_TYPE_LOCK = threading.Lock()


def type_id(ty: FuncType) -> int:
    """The canonical id of a function type: equal types have equal ids (process-wide, from 1)."""
    tid = _TYPE_IDS.get(ty)
    if tid is None:
        with _TYPE_LOCK:
            tid = _TYPE_IDS.setdefault(ty, len(_TYPE_IDS) + 1)
    return tid


# ---- host functions as C sees them ----------------------------------------------------
_HOST_IDS = itertools.count(1)
# host id (in its code) -> a weak reference to its Func (dropped by Func.__del__)
_HOSTS: dict = {}


_NATIVES_LOCK = threading.Lock()


def make_host_natives(funcs) -> None:
    """Give each host Func of ``funcs`` that has none its native side (C calls it through
    that), all of them in one allocation filled by one C call (a linked instance's fresh
    imports: ``_ffi.new_host_funcs``); the allocation lives as long as any of them."""
    with _NATIVES_LOCK:  # (two threads making one Func's: the first one's stays)
        todo = [f for f in funcs if f._native is None and f._callable is not None]
        if not todo:
            return
        from . import _ffi
        words = []
        for f in todo:
            ty = f.ty
            words += (next(_HOST_IDS), type_id(ty), len(ty.params) << 32 | len(ty.results))
        refs, keep = _ffi.new_host_funcs(words, len(todo))
        for k, (f, ref) in enumerate(zip(todo, refs)):
            host_id = words[3 * k]
            _HOSTS[host_id] = weakref.ref(f)
            f._native = (ref, keep, host_id)


def link_host_funcs(funcs) -> None:
    """Link time (runtime.InstancePre) for ``funcs`` (a linking.ImportedFuncs): their
    native side, and when every one is a host function, the vm import records their
    instances' interpreter states copy in one go (``funcs.records``)."""
    make_host_natives(funcs)
    if all(f._callable is not None for f in funcs):
        from . import _ffi
        funcs.records = _ffi.new_import_records([f._native[0] for f in funcs])


def host_func(host_id: int) -> "Func":
    """The host Func whose code carries ``host_id`` (KeyError once it is gone)."""
    func = _HOSTS[host_id]()
    if func is None:
        raise KeyError(host_id)
    return func


def func_from_ref(addr: int) -> "Func":
    """The Func of the funcref record at ``addr`` (a funcref cell's value, not 0)."""
    from . import _ffi
    ref = _ffi.funcref_at(addr)
    if ref.vmctx == _ffi.NULL:
        return host_func(ref.func.code[1])
    inst = _interp().instance_of_vm(ref.vmctx)
    return inst._func_ref(_ffi.func_offset(ref.func, ref.vmctx.funcs))


def code_instances(funcs, tables=(), globals_=()) -> tuple:
    """The instances whose code an importer of ``funcs``, ``tables`` and ``globals_`` may
    run: each wasm function's, each table's definer (its elements name its functions),
    each funcref global's instance (views of an instance's globals)."""
    out = [f._instance for f in funcs if f._instance is not None]
    for t in tables:
        definer = None if t._definer is None else t._definer()
        if definer is not None:
            out.append(definer)
    if globals_:
        from .refs import is_func_heap
        out.extend(g._owner for g in globals_ if g._owner is not None and g.ty.content.is_ref
                   and is_func_heap(g.ty.content))
    return tuple(out)


def instance_resources(instances) -> tuple:
    """(memories, tables) the code of ``instances`` may run on: every memory and table of
    each, and of the instances their imports come from (:func:`code_instances`), and so
    on (an importer holds them until it closes: runtime.Instance).

    Raises:
        ValueError: one of those instances is closed.
    """
    memories, tables, seen = [], [], set()
    todo = list(instances)
    while todo:
        inst = todo.pop()
        if id(inst) in seen:
            continue
        seen.add(id(inst))
        if inst.closed:
            raise ValueError("an imported function's instance is closed")
        memories.extend(inst.memories)
        tables.extend(inst.tables)
        todo.extend(code_instances(inst._imported_funcs, inst._imported_tables))
    return memories, tables


class Func:
    """A function reference: a host callable, or function ``index`` of an instance.

    ``Func(store, ty, fn, access_caller=False)`` (wasmtime-py's shape; ``Func(ty, fn)``
    too): with ``access_caller`` the callable gets a :class:`Caller` first.
    """

    __slots__ = ("ty", "_callable", "_instance", "_index", "_access_caller", "_native",
                 "__weakref__")

    def __init__(self, *args, access_caller: bool = False):
        if len(args) == 3:
            args = args[1:]  # (store, ty, fn)
        if len(args) != 2:
            raise TypeError("Func(store, ty, fn) or Func(ty, fn)")
        ty, fn = args
        if not isinstance(ty, FuncType):
            raise TypeError(f"Func needs a wasmenv.FuncType, got {type(ty).__name__}")
        if not callable(fn):
            raise TypeError("Func needs a callable")
        self.ty = ty
        self._callable = fn
        self._instance = None
        self._index = None
        self._access_caller = bool(access_caller)
        self._native = None

    @classmethod
    def _wasm(cls, ty: FuncType, instance, index: int) -> "Func":
        f = cls.__new__(cls)
        f.ty, f._callable, f._instance, f._index = ty, None, instance, index
        f._access_caller, f._native = False, None
        return f

    @property
    def type(self) -> FuncType:
        """The function's type (wasmtime-py's name)."""
        return self.ty

    @property
    def is_host(self) -> bool:
        return self._callable is not None

    @property
    def wasm_index(self) -> Optional[int]:
        """The function index inside its defining instance (None for host functions)."""
        return self._index

    def _native_ref(self):
        """(its ``wenv_funcref *``, the ``wenv_vm *`` it runs in or None for a host function)."""
        if self._callable is not None:
            native = self._native
            if native is None:
                make_host_natives((self,))
                native = self._native
            return native[0], None
        from . import _ffi
        site = _interp().site_of(self._instance)
        return _ffi.vm_funcref(site.vm, self._index), site.vm

    def __del__(self):
        native = getattr(self, "_native", None)  # (None: a Func whose __init__ raised)
        if native is not None and self._callable is not None:
            _HOSTS.pop(native[2], None)

    def __call__(self, *args):
        """Call the function: a host callable directly, wasm code in the interpreter.

        Arguments and results: i32/i64 as ints, f32/f64 as floats (NaN payloads kept as
        far as a Python float keeps them), funcref as a Func or None, externref as any
        object or None; several results come back as a tuple.

        Raises:
            TypeError: wrong number or types of arguments (nothing ran).
            Trap: the wasm code trapped (or a host function it called raised one).
            UnsupportedFeature: the function (or one it calls) uses an instruction the
                interpreter does not run yet.
            Whatever a host function it called raised, unchanged.
        """
        if self._callable is None:
            return _interp().call(self._instance, self._index, self.ty, args)
        if self._access_caller:
            raise ExecutionUnsupported("a host function taking a Caller can only be called from wasm")
        # As wasm would call it: arguments and results converted to the type's values (an
        # f32 rounded, an i32 wrapped), TypeError for a wrong arity or type.
        interp = _interp()
        ty = self.ty
        from .refs import ExternRefs
        externs = ExternRefs()  # the externrefs' cells live only as long as this call
        cells = interp.check_args(ty, args, externs)
        out = self._callable(*[interp.from_cell(t, c) for t, c in zip(ty.params, cells)])
        return interp.results_of(ty, interp.host_result_cells(ty, out, externs))

    def __repr__(self):
        kind = "host" if self._callable is not None else f"wasm #{self._index}"
        return f"<Func {kind} {self.ty}>"


class Caller:
    """What a host function defined with ``access_caller=True`` gets first: the calling
    instance's exports, while the host call lasts (``caller.get(name)``, ``caller[name]``)."""

    __slots__ = ("_instance",)

    def __init__(self, instance):
        self._instance = instance

    def _live(self):
        inst = self._instance
        if inst is None:
            raise ValueError("this Caller is no longer valid: its host call has returned")
        return inst

    def get(self, name: str):
        """The calling instance's export ``name`` (None if it has none)."""
        exports = self._live().exports
        return exports[name] if name in exports else None

    def __getitem__(self, name: str):
        item = self.get(name)
        if item is None:
            raise KeyError(name)
        return item
