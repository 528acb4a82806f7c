"""Functions: host callables and references to a module's wasm functions."""
from __future__ import annotations

from typing import Callable, Optional

from wasmenv import FuncType

from .errors import WasmRuntimeError


class ExecutionUnsupported(WasmRuntimeError, NotImplementedError):
    """Something this runtime cannot execute yet (e.g. a Caller for host functions)."""


def _wasm_call():
    """runtime.interp.call (imported on first use: the interpreter's code loads lazily)."""
    global _CALL
    if _CALL is None:
        from .interp import call
        _CALL = call
    return _CALL


_CALL = None


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
        """Call the function: a host callable directly, wasm code in the interpreter.

        Wasm functions take and return i32/i64 as ints, f32/f64 as floats (NaN payloads as
        far as a Python float keeps them); several results come back as a tuple.

        Raises:
            TypeError: wrong number or types of arguments (nothing ran).
            Trap: the wasm code trapped.
            UnsupportedFeature: the function (or one it calls) uses an instruction the
                interpreter does not run yet.

        This step runs each call over a copy of the instance's numeric globals, written
        back to their cells when the call ends (trap or not): two threads calling into one
        instance at once do not see each other's global writes.
        """
        if self._callable is None:
            return _wasm_call()(self._instance, self._index, self.ty, args)
        return self._callable(*args)

    def __repr__(self):
        kind = "host" if self._callable is not None else f"wasm #{self._index}"
        return f"<Func {kind} {self.ty}>"
