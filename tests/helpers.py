"""Helpers shared by the tests (plain functions and constants; fixtures are in conftest.py)."""
import wasmtime

from runtime import Func, Instance, Module
from wasmenv import FuncType, RefType, ValType

# -- modules ------------------------------------------------------------------------------


def wat(text: str) -> bytes:
    """Assemble WAT text to a binary module (wasmtime.wat2wasm)."""
    return bytes(wasmtime.wat2wasm(text))


def inst(engine, text, imports=None):
    """An Instance of the WAT module ``text``."""
    return Instance(Module(engine, wat(text)), imports)


# -- typed references -----------------------------------------------------------------------
I32, I64 = ValType.I32, ValType.I64
FUNCREF, EXTERNREF, EXNREF = ValType.FUNCREF, ValType.EXTERNREF, ValType.EXNREF
T0 = FuncType((), ())                 # (func)
T1 = FuncType((I32,), ())             # (func (param i32))
REF_T0, NULL_T0 = RefType(False, T0), RefType(True, T0)
REF_T1, NULL_T1 = RefType(False, T1), RefType(True, T1)
REF_FUNC, REF_EXTERN, REF_EXN = RefType(False, "func"), RefType(False, "extern"), RefType(False, "exn")
NULLEXN = RefType(True, "noexn")


def host(ft=T0):
    """A host function of type ``ft`` that does nothing."""
    return Func(ft, lambda *a: None)
