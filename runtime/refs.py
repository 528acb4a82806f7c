"""References as native cells: the Python side of c_src/wenv_table.h's encoding.

A reference cell is a u64: 0 is null; a funcref is the address of a ``wenv_funcref``
(c_src/wenv_interp.h: function, canonical type id, its instance's ``wenv_vm``; NULL vmctx
for a host function), the same record whoever makes it (``wenv_vm_funcref`` for ref.func,
a lazy table element, an import; ``Func._native_ref`` from Python); an externref is a key
of an :class:`ExternRefs` registry (the object's ``id()``: nonzero and even).

Lifetime of externrefs: an object stays in its registry, and so alive, from the first time
it becomes a cell (stored in a table, a global or passed to wasm) until the registry is
cleared. Every value goes to the process-wide :data:`EXTERNS` (the only registry), which
keeps it for the life of the process. Native code (tables, wasm stacks, with the GIL
released) therefore never holds a key whose object is gone.
"""
from __future__ import annotations

from typing import Dict, Optional

from wasmenv import FuncType
from wasmenv.types import ref_parts

from . import _ffi
from .func import Func, func_from_ref, type_id

__all__ = ["ExternRefs", "EXTERNS", "type_id", "is_func_heap", "cell_of", "value_of", "holder_of"]

class ExternRefs:
    """A registry of externref values: cell <-> object, keeping each object alive."""

    __slots__ = ("_objects",)

    def __init__(self):
        self._objects: Dict[int, object] = {}

    def cell(self, value) -> int:
        if value is None:
            return 0
        key = id(value)
        self._objects.setdefault(key, value)
        return key

    def value(self, cell: int):
        return None if cell == 0 else self._objects[cell]

    def __len__(self):
        return len(self._objects)


#: The registry every externref goes to until stores own theirs (see the module doc).
EXTERNS = ExternRefs()

def holder_of(value):
    """What keeps ``value``'s funcref record alive (a wasm Func's instance, whose
    interpreter state holds it; a host Func itself), else None: whatever stores the cell
    keeps it."""
    if not isinstance(value, Func):
        return None
    return value if value._instance is None else value._instance


def is_func_heap(ty) -> bool:
    """Does reference type ``ty`` hold functions (funcref, (ref $t), nofunc)?"""
    heap = ref_parts(ty)[1]
    return heap in ("func", "nofunc") or isinstance(heap, FuncType)


def cell_of_func(func) -> int:
    """The funcref cell of a :class:`runtime.Func` (None: 0)."""
    if func is None:
        return 0
    return _ffi.address(func._native_ref()[0])


def func_of_cell(cell: int):
    """The :class:`runtime.Func` of a funcref cell (0: None)."""
    return None if cell == 0 else func_from_ref(cell)


def cell_of(ty, value, externs: Optional[ExternRefs] = None) -> int:
    """The cell of Python reference ``value`` (checked by the caller) of type ``ty``."""
    if is_func_heap(ty):
        return cell_of_func(value)
    return (externs or EXTERNS).cell(value)


def value_of(ty, cell: int, externs: Optional[ExternRefs] = None):
    """The Python value of reference cell ``cell`` of type ``ty`` (None for null)."""
    if is_func_heap(ty):
        return func_of_cell(cell)
    return (externs or EXTERNS).value(cell)
