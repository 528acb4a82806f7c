"""Dummy imports for any module, the same in our runtime and in wasmtime-py.

Functions return zeros of their result types (deterministic: the same in both runtimes;
with a ``log`` list, each call appends ``(module, name, args)`` to it, args in
:func:`arg_key` form, so a start function's host calls can be compared), globals hold the
zero of their type, memories and tables have the minimum the import asks for (and its
maximum). What cannot be made the same way in both
runtimes (tags, shared memories, v128 or non-nullable reference globals) raises
:class:`Unsupported` naming the import.
"""
from __future__ import annotations

import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.oracle import wasmtime_engine  # noqa: E402,F401  (callers import it from here)
from wasmenv import FuncType, GlobalType, MemoryType, TableType, ValType  # noqa: E402

_ZERO = {ValType.I32: 0, ValType.I64: 0, ValType.F32: 0.0, ValType.F64: 0.0,
         ValType.FUNCREF: None, ValType.EXTERNREF: None}


class Unsupported(ValueError):
    """An import no dummy is made for (in both runtimes alike)."""


def zero(content, where: str = "value"):
    """The zero of value type ``content`` (None for the nullable references)."""
    try:
        return _ZERO[content]
    except (KeyError, TypeError):
        raise Unsupported(f"{where}: no dummy value of type {content}") from None


def arg_key(content, value):
    """A value of type ``content`` as both runtimes' host calls compare it: integers as
    unsigned bits, floats as their IEEE bits (NaN payloads kept), references as null or not."""
    if content is ValType.I32:
        return value & 0xFFFF_FFFF
    if content is ValType.I64:
        return value & 0xFFFF_FFFF_FFFF_FFFF
    if content is ValType.F32:
        return ("f32", struct.unpack("<I", struct.pack("<f", value))[0])
    if content is ValType.F64:
        return ("f64", struct.unpack("<Q", struct.pack("<d", value))[0])
    return ("ref", value is not None)


def _returning_zeros(ty: FuncType, where: str, log=None, name=None):
    results = tuple(zero(r, where) for r in ty.results)
    if not results:
        result = None
    elif len(results) == 1:
        result = results[0]
    else:
        result = list(results)
    if log is None:
        return lambda *args: result
    params = ty.params

    def recorded(*args):
        log.append((*name, tuple(arg_key(p, a) for p, a in zip(params, args))))
        return result
    return recorded


# ---- ours --------------------------------------------------------------------------------

def ours_linker(module, host_engine=None, log=None, shared=False, values=None):
    """A ``runtime.Linker`` for ``module.engine`` defining a dummy for every import, and the
    globals, memories and tables it made (the caller closes those).

    Memories and tables are made on ``host_engine`` (default: an on-demand Engine with the
    module's tunables), so a pooled module's pool holds only what its instances define.
    ``log``: a list each host call is appended to (see the module docstring). ``shared``:
    make shared memories too (wasmtime-py cannot import one, so by default neither side does).
    ``values``: {(module, name): value} for imported globals that hold a value other than zero.
    """
    import runtime
    engine = module.engine
    host = host_engine or runtime.Engine(engine.tunables)
    linker = runtime.Linker(engine)
    linker.allow_shadowing = True  # a name may be imported twice (esbuild's Go runtime does)
    items = []
    for imp in module.imports:
        where = f"import {imp.module}::{imp.name}"
        ty = imp.type
        if isinstance(ty, FuncType):
            linker.define_func(imp.module, imp.name, ty, _returning_zeros(ty, where, log, (imp.module, imp.name)))
            continue
        if isinstance(ty, GlobalType):
            value = (values or {}).get((imp.module, imp.name), zero(ty.content, where))
            item = runtime.Global.new(host, ty.content, value, mutable=ty.mutable)
        elif isinstance(ty, MemoryType):
            if ty.shared and not shared:
                raise Unsupported(f"{where}: shared memory")
            item = runtime.Memory.new(host, ty.minimum, ty.maximum, shared=ty.shared, memory64=ty.memory64)
        elif isinstance(ty, TableType):
            item = runtime.Table.new(host, ty.element, ty.minimum, ty.maximum, zero(ty.element, where),
                                     table64=ty.table64)
        else:
            raise Unsupported(f"{where}: {type(ty).__name__}")
        linker.define(None, imp.module, imp.name, item)
        items.append(item)
    return linker, items


def has_store_bound(module_imports) -> bool:
    """Whether a module imports a global, memory or table (not only functions)."""
    return any(not isinstance(imp.type, FuncType) for imp in module_imports)


# ---- wasmtime-py (engines: harness.oracle.wasmtime_engine, the one feature list) ----------


def _wt_valtype(wt, content, where):
    if not isinstance(content, ValType) or content in (ValType.V128, ValType.EXNREF):
        raise Unsupported(f"{where}: no wasmtime-py value type for {content}")
    return getattr(wt.ValType, content.value)()


def _wt_functype(wt, ty: FuncType, where):
    return wt.FuncType([_wt_valtype(wt, p, where) for p in ty.params],
                       [_wt_valtype(wt, r, where) for r in ty.results])


class WasmtimeImports:
    """Dummy imports of one module for wasmtime-py.

    Functions are store-independent (``Linker.define_func``); globals, memories and tables
    belong to a Store, so :meth:`define_store_bound` defines them in the given store.
    ``log``: a list each host call is appended to (see the module docstring); ``values``:
    as :func:`ours_linker`'s.
    """

    def __init__(self, engine, module_imports, log=None, values=None):
        import wasmtime as wt
        self.wt = wt
        self.engine = engine
        self.values = values or {}
        self.funcs, self.store_bound = [], []
        for imp in module_imports:
            where = f"import {imp.module}::{imp.name}"
            ty = imp.type
            if isinstance(ty, FuncType):
                self.funcs.append((imp.module, imp.name, _wt_functype(wt, ty, where),
                                   _returning_zeros(ty, where, log, (imp.module, imp.name))))
            elif isinstance(ty, (GlobalType, MemoryType, TableType)):
                if isinstance(ty, MemoryType) and ty.shared:
                    raise Unsupported(f"{where}: shared memory")
                if isinstance(ty, (GlobalType, TableType)):
                    content = ty.content if isinstance(ty, GlobalType) else ty.element
                    _wt_valtype(wt, content, where)
                    zero(content, where)
                self.store_bound.append((imp.module, imp.name, ty))
            else:
                raise Unsupported(f"{where}: {type(ty).__name__}")

    def _item(self, store, ty, value=None):
        wt = self.wt
        if isinstance(ty, GlobalType):
            valtype = _wt_valtype(wt, ty.content, "global")
            value = zero(ty.content) if value is None else value
            if ty.content is ValType.FUNCREF:
                value = wt.Val.funcref(None)
            elif ty.content is ValType.EXTERNREF:
                value = wt.Val.externref(None)
            return wt.Global(store, wt.GlobalType(valtype, ty.mutable), value)
        if isinstance(ty, MemoryType):
            return wt.Memory(store, wt.MemoryType(wt.Limits(ty.minimum, ty.maximum), is_64=ty.memory64))
        valtype = _wt_valtype(wt, ty.element, "table")
        return wt.Table(store, wt.TableType(valtype, wt.Limits(ty.minimum, ty.maximum)), None)

    def new_linker(self):
        """A Linker with the functions defined (and shadowing allowed for the rest)."""
        linker = self.wt.Linker(self.engine)
        linker.allow_shadowing = True
        for module, name, ty, fn in self.funcs:
            linker.define_func(module, name, ty, fn)
        return linker

    def define_store_bound(self, linker, store) -> list:
        """Make this module's globals, memories and tables in ``store`` and define them."""
        items = []
        for module, name, ty in self.store_bound:
            item = self._item(store, ty, self.values.get((module, name)))
            linker.define(store, module, name, item)
            items.append(item)
        return items
