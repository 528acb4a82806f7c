"""Differential harness: instantiate the same module with the same imports in wasmtime-py
and in our runtime, and reduce each side to a comparable Outcome (:func:`compare_one`).

References in globals and tables are compared by identity where the side knows it (a
``RefLabels``): a funcref as the index of the function in the module's function space
(an imported host function as its import's index), an externref as which host object
(:data:`EXTERN_VALUES`); without one, as null or not.
"""
from __future__ import annotations

import hashlib
import math
from typing import NamedTuple, Optional, Tuple

import wasmtime as wt

import runtime
import wasmenv
from wasmenv import FuncType, GlobalType, MemoryType, TableType, TagType, ValType

from .corpus import SUPPORTED_SMITH_ARGS

#: wasm-smith options for modules both runtimes can be compared on.
SMITH_ARGS = dict(SUPPORTED_SMITH_ARGS, allow_start_export=False, export_everything=True,
                  max_memory32_bytes=16 << 20, max_memory64_bytes=16 << 20,
                  max_table_elements=10_000, simd_enabled=False,
                  # wasmtime-py aborts the process on exnref values: no exceptions here.
                  exceptions_enabled=False)
#: Value types whose values wasmtime-py can read without aborting the process.
READABLE = ("i32", "i64", "f32", "f64", "funcref", "externref")
#: Memories bigger than this are compared by size and a digest of their first pages only.
FULL_COMPARE_BYTES = 64 << 20


def wasmtime_engine(cow: bool = True, guard_bytes: Optional[int] = None,
                    reservation_bytes: Optional[int] = None, cache: bool = False) -> wt.Engine:
    """A wasmtime-py Engine with the proposals our decoder accepts turned on; ``cache``:
    wasmtime's own compilation cache (large modules compile once across runs)."""
    cfg = wt.Config()
    for feature in ("wasm_multi_memory", "wasm_memory64", "wasm_threads", "wasm_reference_types",
                    "wasm_bulk_memory", "wasm_multi_value", "wasm_exceptions"):
        setattr(cfg, feature, True)
    cfg.shared_memory = True
    cfg.memory_init_cow = cow
    if guard_bytes is not None:
        cfg.memory_guard_size = guard_bytes
    if reservation_bytes is not None:
        cfg.memory_reservation = reservation_bytes
    if cache:
        cfg.cache = True
    return wt.Engine(cfg)


class Outcome(NamedTuple):
    kind: str  # "ok" | "link" | "trap" | "invalid"
    detail: str = ""
    memories: Tuple = ()
    globals: Tuple = ()
    tables: Tuple = ()

    def comparable(self):
        return (self.kind, self.memories, self.globals, self.tables)


def _digest(size_bytes: int, data: bytes) -> tuple:
    return (size_bytes, hashlib.blake2b(data, digest_size=16).hexdigest())


class RefLabels:
    """Which reference a value is, on one side: functions by a side-specific key (``key``:
    the value -> a hashable identity) mapped to function indices; externrefs by
    :data:`EXTERN_VALUES`."""

    def __init__(self, key, funcs=None):
        self.key = key
        self.funcs = dict(funcs or {})

    def add(self, func, index: int) -> None:
        self.funcs.setdefault(self.key(func), index)

    def __call__(self, content: str, value):
        if value is None:
            return None
        if content == "funcref":
            return ("func", self.funcs.get(self.key(value), "unexported"))
        if content == "externref":
            return ("ext", _EXTERN_LABELS.get(id(value), "unknown"))
        return True


def _our_func_key(f):
    return ("host", id(f)) if f.is_host else ("wasm", id(f._instance), f.wasm_index)


def wt_func_key(f):
    """Which function a wasmtime-py Func is: its VMFuncRef's (array_call, vmctx). The
    record's address is no identity: an instance holds its own copy of each imported
    function's record (wasmtime 50: array_call at offset 0, vmctx at 24)."""
    import ctypes
    words = ctypes.cast(getattr(f._func, "__private"), ctypes.POINTER(ctypes.c_uint64))
    return (words[0], words[3])


#: The host objects imported externref globals and tables hold (the same on both sides).
EXTERN_VALUES = tuple(type("Extern", (), {"__repr__": lambda self, k=k: f"Extern{k}"})() for k in range(3))
_EXTERN_LABELS = {id(v): k for k, v in enumerate(EXTERN_VALUES)}


def _global_key(content: str, value, labels=None):
    if content in ("f32", "f64"):
        return ("nan",) if isinstance(value, float) and math.isnan(value) else float(value)
    if content in ("funcref", "externref", "exnref"):
        return labels(content, value) if labels is not None else value is not None
    if content == "v128":
        return int(value) if isinstance(value, int) else None
    return int(value)


# -- import recipes: plain data describing one host value per import -----------------------
def func_exports_of(wasm: bytes):
    """Export name -> function index, for the function exports of ``wasm``."""
    from wasmenv import ExternKind
    exports = wasmenv.translate(wasm).module.exports
    return {name: idx.index for name, idx in exports.items() if idx.kind is ExternKind.FUNC}


def recipes_for(wasm: bytes):
    """One recipe per import, derived from our decoder's view of the module's import types."""
    tr = wasmenv.translate(wasm)
    out = []
    for k, imp in enumerate(tr.module.imports()):
        out.append((imp.module, imp.name, imp.type, k))
    return out


def _global_value(content: ValType, k: int):
    if content in (ValType.I32, ValType.I64):
        return 8 * k
    if content in (ValType.F32, ValType.F64):
        return float(k) + 0.5
    if content is ValType.EXTERNREF:
        return EXTERN_VALUES[k % len(EXTERN_VALUES)]
    return None


class Unexpressible(Exception):
    """wasmtime-py's API cannot build a host value of this type (v128, exnref)."""


def _wt_valtype(v: ValType):
    if not isinstance(v, ValType):  # a wasmenv.RefType: wasmtime-py 50 aborts on typed refs
        raise Unexpressible(f"wasmtime-py has no typed reference types ({v})")
    make = {ValType.I32: wt.ValType.i32, ValType.I64: wt.ValType.i64, ValType.F32: wt.ValType.f32,
            ValType.F64: wt.ValType.f64, ValType.FUNCREF: wt.ValType.funcref,
            ValType.EXTERNREF: wt.ValType.externref}.get(v)
    if make is None:
        raise Unexpressible(f"wasmtime-py has no host {v} values")
    return make()


def _wt_val(v: ValType, value):
    if v is ValType.I32:
        return wt.Val.i32(value)
    if v is ValType.I64:
        return wt.Val.i64(value)
    if v is ValType.F32:
        return wt.Val.f32(value)
    if v is ValType.F64:
        return wt.Val.f64(value)
    if v is ValType.FUNCREF:
        return wt.Val.funcref(None)
    return wt.Val.externref(value)


def _table_init(ty: TableType, k: int):
    return EXTERN_VALUES[k % len(EXTERN_VALUES)] if ty.element is ValType.EXTERNREF else None


def wasmtime_externs(store, recipes):
    """Build wasmtime host objects for ``recipes``; raises Unsupported for what it cannot make."""
    out = []
    for _mod, _field, ty, k in recipes:
        if isinstance(ty, FuncType):
            ft = wt.FuncType([_wt_valtype(p) for p in ty.params], [_wt_valtype(r) for r in ty.results])
            out.append(wt.Func(store, ft, lambda *a: None))
        elif isinstance(ty, GlobalType):
            gt = wt.GlobalType(_wt_valtype(ty.content), ty.mutable)
            out.append(wt.Global(store, gt, _wt_val(ty.content, _global_value(ty.content, k))))
        elif isinstance(ty, MemoryType):
            lim = wt.Limits(ty.minimum, ty.maximum)
            mt = wt.MemoryType(lim, is_64=ty.memory64, shared=ty.shared)
            if ty.shared:  # wasmtime-py 50 cannot pass a SharedMemory as an import (TypeError)
                raise Unexpressible("wasmtime-py cannot import shared memories")
            out.append(wt.Memory(store, mt))
        elif isinstance(ty, TableType):
            if ty.table64:  # wasmtime-py 50's TableType has no 64-bit index flag
                raise Unexpressible("wasmtime-py cannot make 64-bit tables")
            tt = wt.TableType(_wt_valtype(ty.element), wt.Limits(ty.minimum, ty.maximum))
            out.append(wt.Table(store, tt, _table_init(ty, k)))
        elif isinstance(ty, TagType):
            ft = ty.func_type
            wft = wt.FuncType([_wt_valtype(p) for p in ft.params], [])
            out.append(wt.Tag(store, wt.TagType(wft)))
    return out


def our_externs(engine, recipes):
    """Our host objects for ``recipes``, in import order (duplicate names are legal)."""
    out = []
    for _mod, _field, ty, k in recipes:
        if isinstance(ty, FuncType):
            ext = runtime.Func(ty, lambda *a: None)
        elif isinstance(ty, GlobalType):
            ext = runtime.Global.new(engine, ty.content, _global_value(ty.content, k), mutable=ty.mutable)
        elif isinstance(ty, MemoryType):
            ext = runtime.Memory.new(engine, ty.minimum, ty.maximum, shared=ty.shared, memory64=ty.memory64)
        elif isinstance(ty, TableType):
            ext = runtime.Table.new(engine, ty.element, ty.minimum, ty.maximum, _table_init(ty, k),
                                    table64=ty.table64)
        else:
            ext = runtime.Tag(ty.func_type)
        out.append(ext)
    return out


# -- outcomes ------------------------------------------------------------------------------
def wasmtime_outcome(engine: wt.Engine, wasm: bytes, recipes, func_exports=None) -> Outcome:
    """wasmtime-py's outcome; ``func_exports`` (export name -> function index) lets it
    name the functions references point to."""
    store = wt.Store(engine)
    try:
        module = wt.Module(engine, wasm)
    except wt.WasmtimeError as exc:
        return Outcome("invalid", str(exc).splitlines()[0])
    externs = wasmtime_externs(store, recipes)
    labels = RefLabels(wt_func_key)
    funcs = [e for e in externs if isinstance(e, wt.Func)]
    for index, f in enumerate(funcs):
        labels.add(f, index)
    try:
        instance = wt.Instance(store, module, externs)
    except wt.Trap as exc:
        return _wt_state(store, None, externs, "trap", str(exc), labels, func_exports)
    except wt.WasmtimeError as exc:
        text = str(exc)
        kind = "link" if "import" in text else "trap"
        return Outcome(kind, text.splitlines()[0])
    return _wt_state(store, instance, externs, "ok", "", labels, func_exports)


def _wt_state(store, instance, externs, kind, detail, labels=None, func_exports=None):
    items = [(None, e) for e in externs]
    if instance is not None:
        exports = instance.exports(store)
        for name, index in (func_exports or {}).items():
            labels.add(exports[name], index)
        items += list(exports.items())
    return Outcome(kind, detail, *_wt_state_items(store, items, labels))


def _wt_state_items(store, items, labels=None):
    """(memories, globals, tables) of wasmtime externs, in the order given."""
    mems, globs, tabs = [], [], []
    for _, ext in items:
        if isinstance(ext, (wt.Memory, wt.SharedMemory)):
            size = ext.data_len(store) if isinstance(ext, wt.Memory) else ext.data_len()
            n = min(size, FULL_COMPARE_BYTES)
            if isinstance(ext, wt.Memory):
                data = bytes(ext.read(store, 0, n)) if n else b""
            else:
                import ctypes
                data = ctypes.string_at(ext.data_ptr(), n) if n else b""
            mems.append(_digest(size, data))
        elif isinstance(ext, wt.Global):
            content = _wt_name(ext.type(store).content)
            # wasmtime's C API aborts the process reading other kinds (exnref, v128).
            globs.append(_global_key(content, _unwrap(ext.value(store)), labels)
                         if content in READABLE else content)
        elif isinstance(ext, wt.Table):
            element = _wt_name(ext.type(store).element)
            if element not in READABLE:
                tabs.append(element)
                continue
            size = ext.size(store)
            tabs.append((size, tuple(_table_key(element, _unwrap(ext.get(store, i)), labels)
                                     for i in range(min(size, 4096)))))
    return tuple(mems), tuple(globs), tuple(tabs)


def _table_key(element: str, value, labels):
    return labels(element, value) if labels is not None else value is not None


def _wt_name(valtype) -> str:
    name = str(valtype)
    return "externref" if name == "anyref" else name  # wasmtime-py prints externref as anyref


def _unwrap(value):
    """wasmtime-py hands back reference values (null included) wrapped in a Val."""
    return value.value if isinstance(value, wt.Val) else value


def our_outcome(engine, wasm: bytes, recipes) -> Outcome:
    try:
        module = runtime.Module(engine, wasm)
    except wasmenv.DecodeError as exc:
        return Outcome("invalid", str(exc))
    externs = our_externs(engine, recipes)
    labels = RefLabels(_our_func_key)
    for index, f in enumerate(e for e in externs if isinstance(e, runtime.Func)):
        labels.add(f, index)
    try:
        instance = runtime.Instance(module, externs)
    except runtime.Trap as exc:
        return _our_state(None, externs, "trap", str(exc), labels)
    except runtime.LinkError as exc:
        return Outcome("link", str(exc))
    except runtime.AllocationError as exc:
        if exc.limit and exc.limit.startswith("max_"):  # a pooling limit, not a wasm outcome
            return Outcome("pool-limit", str(exc))
        raise
    try:
        first = _our_state(instance, externs, "ok", "", labels)
    finally:
        instance.close()
    again = _again(module, externs)
    if again is not None:
        # Again, from the same Module: a plain layout (runtime.layout) now takes the
        # one-call path (and a pool hands back the slot just reset): the state must not
        # change.
        with again:
            second = _our_state(again, externs, "ok", "", labels)
        if second.comparable() != first.comparable():
            return Outcome("second-instance-differs", f"{first} != {second}")
    return first


def _again(module, externs):
    """A second instance of ``module`` with the same imports, the way a plain layout's
    instances take the one-call path: none, or only host functions linked once
    (an InstancePre); None when the imports are anything else (or named twice)."""
    if not externs:
        return runtime.Instance(module)
    names = [(imp.module, imp.name) for imp in module.imports]
    if len(set(names)) != len(names) or not all(isinstance(e, runtime.Func) and e.is_host for e in externs):
        return None
    linker = runtime.Linker(module.engine)
    for (mod, name), ext in zip(names, externs):
        linker.define(None, mod, name, ext)
    return linker.instantiate_pre(module).instantiate()


def _our_state(instance, externs, kind, detail, labels=None):
    items = [(None, e) for e in externs]
    if instance is not None:
        items += [(name, instance.exports[name]) for name in instance.exports]
        if labels is not None:
            labels = RefLabels(labels.key, labels.funcs)
            for _, ext in items:
                if isinstance(ext, runtime.Func) and not ext.is_host:
                    labels.add(ext, ext.wasm_index)
    return Outcome(kind, detail, *_our_state_items(items, labels))


def _our_state_items(items, labels=None):
    """(memories, globals, tables) of our externs, in the order given."""
    mems, globs, tabs = [], [], []
    for _, ext in items:
        if isinstance(ext, runtime.Memory):
            size = ext.byte_len
            n = min(size, FULL_COMPARE_BYTES)
            mems.append(_digest(size, ext.read(0, n) if n else b""))
        elif isinstance(ext, runtime.Global):
            content = str(ext.ty.content)
            globs.append(_global_key(content, ext.value, labels) if content in READABLE else content)
        elif isinstance(ext, runtime.Table):
            element = str(ext.ty.element)
            if element not in READABLE:
                tabs.append(element)
                continue
            size = ext.size
            tabs.append((size, tuple(_table_key(element, ext.get(i), labels) for i in range(min(size, 4096)))))
    return tuple(mems), tuple(globs), tuple(tabs)


def compare_one(wt_engine, engine, wasm):
    """Instantiate ``wasm`` in both runtimes with the same imports: (category, ours, theirs),
    category being the outcome kind both agree on, or "DISAGREE"."""
    try:
        recipes = recipes_for(wasm)
    except Exception as exc:  # our decoder rejected it: wasmtime must too
        theirs = wasmtime_outcome(wt_engine, wasm, [])
        return ("rejected-both" if theirs.kind == "invalid" else "DISAGREE"), str(exc), theirs
    try:
        theirs = wasmtime_outcome(wt_engine, wasm, recipes, func_exports_of(wasm))
    except Unexpressible:
        return "oracle-cannot-import", None, None
    ours = our_outcome(engine, wasm, recipes)
    if ours.kind == "pool-limit":
        return "pool-limit", ours, theirs
    if ours.comparable() == theirs.comparable():
        return ours.kind, ours, theirs
    return "DISAGREE", ours, theirs
