"""WebAssembly types: values, functions, memories, tables, globals, tags, entity indices."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple, Union

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
    """A function signature."""

    params: Tuple[ValType, ...]
    results: Tuple[ValType, ...]

    def __str__(self):
        p = " ".join(map(str, self.params))
        r = " ".join(map(str, self.results))
        return f"(func (param {p}) (result {r}))"


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
    """A table's element type and limits, in elements."""

    element: ValType
    minimum: int
    maximum: Optional[int] = None
    table64: bool = False


@dataclass(frozen=True)
class GlobalType:
    """A global's value type and mutability."""

    content: ValType
    mutable: bool = False


@dataclass(frozen=True)
class TagType:
    """An exception tag: its function type (params are the payload)."""

    type_index: int
    func_type: FuncType


EntityType = Union[FuncType, TableType, MemoryType, GlobalType, TagType]


class EntityIndex(NamedTuple):
    """An index into one of the module's index spaces."""

    kind: ExternKind
    index: int
