"""References as native cells: the Python side of c_src/wenv_table.h's encoding.

A reference cell is a u64: 0 is null; a funcref is the address of a ``wenv_funcref``
(c_src/wenv_interp.h: function, canonical type id, its instance's ``wenv_vm``; NULL vmctx
for a host function), the same record whoever makes it (``wenv_vm_funcref`` for ref.func,
a lazy table element, an import; ``Func._native_ref`` from Python); an externref is the
object's ``id()`` (nonzero and even), a key of the process-wide resolution map.

Lifetime of externrefs (wasmtime-py's externrefs belong to their Store): an object
becomes a cell in an owner's :class:`ExternRefs` registry (a Store's, for its instances'
calls, tables and globals; a host-made table's or global's own), and stays alive, and
resolvable from its key by anyone, while one registry holding it lives. A registry is
released when its owner is collected (a store: once every instance, table and memory of
it is gone too, since they hold it). Native code (tables, globals, wasm stacks, with the
GIL released) therefore never holds a key whose object is gone, as long as the registry
that made the key lives: wasm can move a cell from one owner's table to another's only
through an import, so an instance's registry is linked to those of what it imports
(:func:`link_imports`), and linked registries live as long as each other.
:data:`EXTERNS` is the registry of values no owner was named for: it never releases.
"""
from __future__ import annotations

import threading
from typing import Dict, NamedTuple, Optional

from wasmenv import FuncType
from wasmenv.types import ref_parts

from . import _ffi
from .func import Func, func_from_ref, type_id

__all__ = ["ExternRefs", "EXTERNS", "type_id", "is_func_heap", "cell_of", "value_of", "holder_of",
           "link_imports", "FuncAt"]

_OBJECTS: Dict[int, object] = {}  # key -> the object, while some registry holds it
_HOLDERS: Dict[int, int] = {}     # key -> how many registries hold it
_LOCK = threading.Lock()          # both maps, and each registry's keys


class ExternRefs:
    """An owner's externref values: each stays alive (and its key resolvable) until this
    registry is released, when it is collected (or :meth:`release`)."""

    __slots__ = ("_keys", "_links", "__weakref__")

    def __init__(self):
        self._keys = set()
        self._links = None  # registries that live as long as this one (link)

    def cell(self, value) -> int:
        """The cell of ``value`` (0 for None), which this registry now holds."""
        if value is None:
            return 0
        key = id(value)
        if key in self._keys:  # (held here: value, alive, is the object of that key)
            return key
        with _LOCK:
            keys = self._keys
            if key not in keys:
                held = _HOLDERS.get(key)
                if held is None:
                    _OBJECTS[key] = value
                    _HOLDERS[key] = 1
                else:
                    _HOLDERS[key] = held + 1
                keys.add(key)
        return key

    def link(self, other: "ExternRefs") -> None:
        """``self`` and ``other`` live as long as each other (cells cross between them)."""
        if other is self:
            return
        # (Nothing is made under _LOCK: making an object may run a collection, whose
        # finalizers release registries, which takes _LOCK.)
        mine, theirs = set(), set()
        with _LOCK:
            if self._links is None:
                self._links = mine
            if other._links is None:
                other._links = theirs
            self._links.add(other)
            other._links.add(self)

    def release(self) -> None:
        """Stop holding every value (idempotent); one no other registry holds can go."""
        dropped, empty = [], set()  # (made before _LOCK, as in link)
        with _LOCK:
            keys, self._keys = self._keys, empty
            for key in keys:
                held = _HOLDERS[key] - 1
                if held:
                    _HOLDERS[key] = held
                else:
                    del _HOLDERS[key]
                    dropped.append(_OBJECTS.pop(key))
        del dropped  # outside the lock: a finalizer may pass externrefs again

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown
            pass

    def __len__(self):
        return len(self._keys)


#: The registry of values no owner was named for (it never releases).
EXTERNS = ExternRefs()


def extern_of(cell: int):
    """The object of externref cell ``cell`` (0: None)."""
    return None if cell == 0 else _OBJECTS[cell]


def crosses_registries(ext) -> bool:
    """Whether cells may cross between an importer's store and import ``ext``: a table
    or global of externrefs, or a wasm function (of another instance's store)."""
    from .globals import Global
    from .table import Table
    if isinstance(ext, Table):
        return not is_func_heap(ext.ty.element)
    if isinstance(ext, Global):
        return ext.ty.content.is_ref and not is_func_heap(ext.ty.content)
    return isinstance(ext, Func) and ext._instance is not None


def link_imports(instance, imports) -> None:
    """Link the registry of ``instance``'s store with that of each import cells may
    cross from or to (:func:`crosses_registries`)."""
    externs = None
    for ext in imports:
        if not crosses_registries(ext):
            continue
        other = ext._instance.store._externs if isinstance(ext, Func) else ext._registry()
        if other is not None:
            if externs is None:
                externs = instance.store._externs
            externs.link(other)


class FuncAt(NamedTuple):
    """Defined function ``index`` of ``instance`` as a reference value, without a Func:
    what element segments write (runtime.Instance._element). Its cell names the record
    ``wenv_vm_funcref`` makes in the instance's interpreter state (made when the cell is
    first asked for, after whoever stores it holds the instance: :func:`holder_of`)."""

    instance: object
    index: int


def holder_of(value):
    """What keeps ``value``'s funcref record alive (a wasm Func's or a FuncAt's instance,
    whose interpreter state holds it; a host Func itself), else None: whatever stores the
    cell keeps it."""
    if type(value) is FuncAt:
        return value.instance
    if not isinstance(value, Func):
        return None
    return value if value._instance is None else value._instance


def is_func_heap(ty) -> bool:
    """Does reference type ``ty`` hold functions (funcref, (ref $t), nofunc)?"""
    heap = ref_parts(ty)[1]
    return heap in ("func", "nofunc") or isinstance(heap, FuncType)


def cell_of_func(func) -> int:
    """The funcref cell of a :class:`runtime.Func` or a :class:`FuncAt` (None: 0)."""
    if func is None:
        return 0
    if type(func) is FuncAt:
        from .interp import site_of
        return _ffi.address(_ffi.vm_funcref(site_of(func.instance).vm, func.index))
    return _ffi.address(func._native_ref()[0])


def func_of_cell(cell: int):
    """The :class:`runtime.Func` of a funcref cell (0: None)."""
    return None if cell == 0 else func_from_ref(cell)


def cell_of(ty, value, externs: Optional[ExternRefs] = None) -> int:
    """The cell of Python reference ``value`` (checked by the caller) of type ``ty``; an
    externref is held by ``externs`` (its owner's registry; None: :data:`EXTERNS`)."""
    if is_func_heap(ty):
        return cell_of_func(value)
    return (EXTERNS if externs is None else externs).cell(value)


def value_of(ty, cell: int):
    """The Python value of reference cell ``cell`` of type ``ty`` (None for null)."""
    if is_func_heap(ty):
        return func_of_cell(cell)
    return extern_of(cell)
