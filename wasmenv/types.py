"""WebAssembly types: values, functions, memories, tables, globals, tags, entity indices."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Optional, Tuple, Union

if TYPE_CHECKING:  # pragma: no cover
    from .constexpr import ConstExpr

WASM_PAGE_SIZE = 65536
#: Largest page count of a 32-bit memory (4 GiB) and of a 64-bit one (2^64 bytes).
WASM32_MAX_PAGES = 1 << 16
WASM64_MAX_PAGES = 1 << 48


class ValType(enum.Enum):
    """A value type; the value is its text-format name."""

    I32 = "i32"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    V128 = "v128"
    FUNCREF = "funcref"
    EXTERNREF = "externref"
    EXNREF = "exnref"

    @property
    def is_ref(self) -> bool:
        return self in (ValType.FUNCREF, ValType.EXTERNREF, ValType.EXNREF)

    def __str__(self):
        return self.value

    # Members are singletons compared by identity (Enum's __eq__): the identity hash agrees
    # with it, and is C where Enum's hashes the member's name in Python (value types key
    # every type lookup: FuncType hashes, canonical type ids).
    __hash__ = object.__hash__


class ExternKind(enum.Enum):
    """The kind of an import or export (binary encoding as value)."""

    FUNC = 0
    TABLE = 1
    MEMORY = 2
    GLOBAL = 3
    TAG = 4

    def __str__(self):
        return self.name.lower()


@dataclass(frozen=True)
class FuncType:
    """A function signature (value types may be :class:`RefType`)."""

    params: Tuple["ValRefType", ...]
    results: Tuple["ValRefType", ...]

    def __post_init__(self):
        # Lists given by a user (FuncType([ValType.I32], [])) compare and hash as tuples,
        # and value types named by their text ("i32") as the ValType of that name.
        for name in ("params", "results"):
            types = getattr(self, name)
            if type(types) is not tuple or any(type(t) is str for t in types):
                object.__setattr__(self, name, tuple(ValType(t) if type(t) is str else t for t in types))

    def __str__(self):
        p = " ".join(map(str, self.params))
        r = " ".join(map(str, self.results))
        return f"(func (param {p}) (result {r}))"


#: Abstract heap types a :class:`RefType` may name (the GC proposal's any/eq/i31/struct/
#: array/none/nofunc/noextern are not modelled: the decoder reports them as "gc").
ABSTRACT_HEAP_TYPES = ("func", "extern", "exn", "noexn")
#: Nullable abstract references that are plain :class:`ValType` members.
_NULLABLE_VALTYPES = {"func": ValType.FUNCREF, "extern": ValType.EXTERNREF, "exn": ValType.EXNREF}
_VALTYPE_HEAPS = {v: k for k, v in _NULLABLE_VALTYPES.items()}
#: Bottom heap type -> the top of its hierarchy.
_BOTTOMS = {"noexn": "exn"}


@dataclass(frozen=True)
class RefType:
    """A typed reference of the function-references proposal: ``(ref null? heap)``.

    ``heap`` is an abstract heap type (``"func"``, ``"extern"``, ``"exn"``, ``"noexn"``)
    or a concrete function type, resolved to the :class:`FuncType` itself so that equality
    across modules is structural (Wasm's type canonicalization, without rec groups).

    ``(ref null func)``, ``(ref null extern)`` and ``(ref null exn)`` are *not* RefTypes:
    they are ``ValType.FUNCREF`` / ``EXTERNREF`` / ``EXNREF``, so one type has one
    representation. Constructing them here raises ValueError; :meth:`of` normalizes.
    """

    nullable: bool
    heap: Union[str, FuncType]

    def __post_init__(self):
        if not isinstance(self.nullable, bool):
            raise TypeError(f"RefType.nullable must be a bool, got {self.nullable!r}")
        if isinstance(self.heap, str):
            if self.heap not in ABSTRACT_HEAP_TYPES:
                raise ValueError(f"unknown heap type {self.heap!r} (expected one of "
                                 f"{', '.join(ABSTRACT_HEAP_TYPES)} or a FuncType)")
            if self.nullable and self.heap in _NULLABLE_VALTYPES:
                raise ValueError(f"(ref null {self.heap}) is ValType.{_NULLABLE_VALTYPES[self.heap].name}; "
                                 f"use RefType.of() to normalize")
        elif not isinstance(self.heap, FuncType):
            raise TypeError(f"RefType.heap must be an abstract heap type name or a FuncType, "
                            f"got {type(self.heap).__name__}")

    @staticmethod
    def of(nullable: bool, heap) -> "ValRefType":
        """``(ref null? heap)`` in its one representation (a ValType when there is one)."""
        if nullable and isinstance(heap, str) and heap in _NULLABLE_VALTYPES:
            return _NULLABLE_VALTYPES[heap]
        return RefType(bool(nullable), heap)

    @property
    def is_ref(self) -> bool:
        return True

    def __str__(self):
        null = "null " if self.nullable else ""
        return f"(ref {null}{self.heap})"


#: Any value type: a :class:`ValType` or a typed :class:`RefType`.
ValRefType = Union[ValType, RefType]


def ref_parts(t) -> Optional[Tuple[bool, Union[str, FuncType]]]:
    """``(nullable, heap)`` of a reference type, None for numeric and vector types."""
    if isinstance(t, RefType):
        return t.nullable, t.heap
    heap = _VALTYPE_HEAPS.get(t)
    return None if heap is None else (True, heap)


def is_heap_subtype(a, b) -> bool:
    """Heap-type subtyping without GC: a concrete function type <: func; noexn <: exn (and
    <: itself); otherwise only equal heap types (function types compare structurally)."""
    if a == b:
        return True
    if isinstance(b, FuncType):
        return False  # no declared subtypes among function types without GC
    if b in _BOTTOMS:
        return False
    if a in _BOTTOMS:
        return _BOTTOMS[a] == b
    return isinstance(a, FuncType) and b == "func"


def is_subtype(a, b) -> bool:
    """Value-type subtyping ``a <: b``.

    Numeric and vector types only match themselves. A reference ``(ref null? ha)`` is a
    subtype of ``(ref null? hb)`` iff nullability does not widen (non-null <: nullable)
    and ``ha`` is a heap subtype of ``hb`` (see :func:`is_heap_subtype`).
    """
    if a == b:
        return True
    pa = ref_parts(a)
    pb = ref_parts(b)
    if pa is None or pb is None:
        return False
    if pa[0] and not pb[0]:
        return False
    return is_heap_subtype(pa[1], pb[1])


def is_defaultable(t) -> bool:
    """True if the type has a default value (numbers, vectors, nullable references)."""
    parts = ref_parts(t)
    return parts is None or parts[0]



@dataclass(frozen=True)
class MemoryType:
    """A linear memory's limits, in wasm pages."""

    minimum: int
    maximum: Optional[int] = None
    shared: bool = False
    memory64: bool = False

    @property
    def absolute_max_pages(self) -> int:
        return WASM64_MAX_PAGES if self.memory64 else WASM32_MAX_PAGES


@dataclass(frozen=True)
class TableType:
    """A table's element type and limits, in elements.

    ``init`` is the table's initializer expression (function references' ``0x40 0x00``
    table encoding): every element starts as its value. None means null (and is required
    for nullable element types; a defined non-nullable table always has one).
    """

    element: "ValRefType"
    minimum: int
    maximum: Optional[int] = None
    table64: bool = False
    init: Optional["ConstExpr"] = None


@dataclass(frozen=True)
class GlobalType:
    """A global's value type and mutability."""

    content: "ValRefType"
    mutable: bool = False


@dataclass(frozen=True)
class TagType:
    """An exception tag: its function type (params are the payload)."""

    type_index: int
    func_type: FuncType


EntityType = Union[FuncType, TableType, MemoryType, GlobalType, TagType]


class ImportType(NamedTuple):
    """One import: the module and field it names and the type it needs (wasmtime-py's
    ``ImportType``; a tuple too, ``(module, name, type)``)."""

    module: str
    name: str
    type: EntityType


class ExportType(NamedTuple):
    """One export: its name and the exported entity's type (wasmtime-py's ``ExportType``)."""

    name: str
    type: EntityType


class EntityIndex(NamedTuple):
    """An index into one of the module's index spaces."""

    kind: ExternKind
    index: int
