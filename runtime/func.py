"""Functions: host callables and references to a module's wasm functions."""
from __future__ import annotations

from typing import Callable, Optional

from wasmenv import FuncType

from .errors import WasmRuntimeError


class ExecutionUnsupported(WasmRuntimeError, NotImplementedError):
    """Calling a wasm-defined function: this runtime does not execute wasm code."""


class Func:
    """A function reference: a host callable, or function ``index`` of an instance."""

    __slots__ = ("ty", "_callable", "_instance", "_index", "__weakref__")

    def __init__(self, ty: FuncType, fn: Callable):
        if not isinstance(ty, FuncType):
            raise TypeError(f"Func needs a wasmenv.FuncType, got {type(ty).__name__}")
        if not callable(fn):
            raise TypeError("Func needs a callable")
        self.ty = ty
        self._callable = fn
        self._instance = None
        self._index = None

    @classmethod
    def _wasm(cls, ty: FuncType, instance, index: int) -> "Func":
        f = cls.__new__(cls)
        f.ty, f._callable, f._instance, f._index = ty, None, instance, index
        return f

    @property
    def is_host(self) -> bool:
        return self._callable is not None

    @property
    def wasm_index(self) -> Optional[int]:
        """The function index inside its defining instance (None for host functions)."""
        return self._index

    def __call__(self, *args):
        if self._callable is None:
            raise ExecutionUnsupported(
                f"function {self._index} is wasm code; this runtime lays out and initializes "
                "instances but does not execute wasm")
        return self._callable(*args)

    def __repr__(self):
        kind = "host" if self._callable is not None else f"wasm #{self._index}"
        return f"<Func {kind} {self.ty}>"
