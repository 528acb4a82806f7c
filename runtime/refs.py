"""References as native cells: the Python side of c_src/wenv_table.h's encoding.

A reference cell is a u64: 0 is null; a funcref is the address of a 24-byte funcref record
(function index in its instance, canonical type id, that instance's block); an externref
is a key of an :class:`ExternRefs` registry (the object's ``id()``: nonzero and even).

Funcref records live in the instance block's funcrefs region (``wasmenv.vmoffsets``),
made on first use by C (``wenv_funcref_of``, from a lazy table read or from
:meth:`FuncRefs.cell`). A function without such a record (a host ``Func``, or a wasm
function of an instance that has no block) gets one here, kept with its Func in
``_RECORDS`` for the life of the process (its vmctx word is 0).

Lifetime of externrefs: an object stays in its registry, and so alive, from the first time
it becomes a cell (stored in a table, a global or passed to wasm) until the registry is
cleared. The registry belongs to the store the value was given to; until stores exist
(``runtime.Store``, a later step) every value goes to the process-wide :data:`EXTERNS`, which
keeps it for the life of the process. Native code (tables, wasm stacks, with the GIL
released) therefore never holds a key whose object is gone.
"""
from __future__ import annotations

import threading
import weakref
from typing import Dict, Optional

from wasmenv import FuncType
from wasmenv.types import ref_parts

from . import _ffi

__all__ = ["ExternRefs", "EXTERNS", "FuncRefs", "type_id", "is_func_heap", "cell_of", "value_of",
           "holder_of"]

_LOCK = threading.Lock()
_TYPE_IDS: Dict[FuncType, int] = {}


def type_id(ft: FuncType) -> int:
    """The canonical type id of ``ft`` (equal types, equal ids, across modules; >= 1)."""
    tid = _TYPE_IDS.get(ft)
    if tid is None:
        with _LOCK:
            tid = _TYPE_IDS.setdefault(ft, len(_TYPE_IDS) + 1)
    return tid


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

#: vmctx (block address) -> the FuncRefs of the instance owning that block. A FuncRefs (so
#: its block and instance) lives while its instance does, or a table holds its cells
#: (Table keeps the FuncRefs of every instance whose funcrefs it was given, and an
#: importer's FuncRefs in every table it imports): a cell never outlives its record.
_BLOCKS: "weakref.WeakValueDictionary[int, FuncRefs]" = weakref.WeakValueDictionary()
#: record address -> (Func, its record): funcrefs made here (see the module doc).
_RECORDS: Dict[int, tuple] = {}
_RECORD_OF: Dict[int, int] = {}  # id(Func) -> record address


class FuncRefs:
    """An instance's ``wenv_funcrefs``: how C finds (and makes) its funcref records."""

    __slots__ = ("c", "vmctx", "instance", "_keep", "__weakref__")

    def __init__(self, instance, block, vmoffsets, imported_funcs):
        env = instance.module.env
        anyfunc, types = _module_arrays(instance.module)
        imported = _ffi.new_u64s([cell_of_func(f) for f in imported_funcs])
        self.vmctx = _ffi.block_address(block)
        self.c = _ffi.new_funcrefs(self.vmctx, vmoffsets.start("funcrefs"), anyfunc, types,
                                   imported, len(imported_funcs), len(env.functions))
        self._keep = (block, anyfunc, types, imported)
        self.instance = instance
        _BLOCKS[self.vmctx] = self

    def cell(self, func_index: int) -> int:
        """The funcref cell of function ``func_index`` (record made on first use).

        Raises:
            IndexError: no such function, or it does not escape.
        """
        cell = _ffi.funcref_of(self.c, func_index)
        if cell == 0:
            raise IndexError(f"function {func_index} has no funcref (it does not escape)")
        return cell


def holder_of(value) -> Optional[FuncRefs]:
    """The FuncRefs whose block holds ``value``'s funcref record (a wasm Func's), else None:
    whatever stores the cell keeps it (and so the block) alive."""
    inst = getattr(value, "_instance", None)
    return None if inst is None else inst.__dict__.get("_refs")


_ARRAYS = weakref.WeakKeyDictionary()


def _module_arrays(module):
    """(anyfunc index per function, canonical type id per function) as C arrays, per module."""
    arrays = _ARRAYS.get(module)
    if arrays is None:
        env = module.env
        none = _ffi.LAZY_NONE
        anyfunc = _ffi.new_u32s([none if f.anyfunc is None else f.anyfunc for f in env.functions])
        types = _ffi.new_u64s([type_id(env.types[f.signature].func) for f in env.functions])
        arrays = _ARRAYS.setdefault(module, (anyfunc, types))
    return arrays


def is_func_heap(ty) -> bool:
    """Does reference type ``ty`` hold functions (funcref, (ref $t), nofunc)?"""
    heap = ref_parts(ty)[1]
    return heap in ("func", "nofunc") or isinstance(heap, FuncType)


def cell_of_func(func) -> int:
    """The funcref cell of a :class:`runtime.Func` (None: 0)."""
    if func is None:
        return 0
    inst = func._instance
    if inst is not None:
        refs = inst.__dict__.get("_refs")
        if refs is not None:
            try:
                return refs.cell(func._index)
            except IndexError:
                pass  # a function that does not escape: a record of its own below
    addr = _RECORD_OF.get(id(func))
    if addr is None:
        tid = type_id(func.ty)
        with _LOCK:
            addr = _RECORD_OF.get(id(func))
            if addr is None:
                index = func._index if func._index is not None else 0
                rec = _ffi.new_u64s([index, tid, 0])
                addr = _ffi.address_of(rec)
                _RECORDS[addr] = (func, rec)
                _RECORD_OF[id(func)] = addr
    return addr


def func_of_cell(cell: int):
    """The :class:`runtime.Func` of a funcref cell (0: None).

    A Func of a closed instance still comes back (calling it raises).
    """
    if cell == 0:
        return None
    func_index, _, vmctx = _ffi.funcref_record(cell)
    if vmctx == 0:
        return _RECORDS[cell][0]
    refs = _BLOCKS.get(vmctx)
    if refs is None:  # pragma: no cover - a holder keeps the FuncRefs (see _BLOCKS)
        raise ValueError("the function's instance is gone")
    return refs.instance._func_ref(func_index)


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
