"""Memory and table plans: how each memory/table of a module will be laid out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

from .tunables import Tunables
from .types import WASM_PAGE_SIZE, MemoryType, TableType


class MemoryStyle:
    """How a linear memory is implemented: ``MemoryStyle.Static`` or ``MemoryStyle.Dynamic``."""

    __slots__ = ()

    @staticmethod
    def for_memory(memory: MemoryType, tunables: Tunables) -> Tuple["MemoryStyleT", int]:
        """Choose a style and the offset-guard size (bytes) for ``memory``."""
        absolute_max = memory.absolute_max_pages
        if tunables.static_memory_bound_is_maximum:
            cap = min(tunables.static_memory_bound, absolute_max)
        else:
            cap = absolute_max
        declared = memory.maximum if memory.maximum is not None else absolute_max
        maximum = min(declared, cap)
        if memory.minimum <= maximum <= tunables.static_memory_bound:
            return (_Static(tunables.static_memory_bound), tunables.static_memory_offset_guard_size)
        return (_Dynamic(tunables.dynamic_memory_growth_reserve), tunables.dynamic_memory_offset_guard_size)


@dataclass(frozen=True)
class _Static(MemoryStyle):
    """Address space for ``bound_pages`` wasm pages is reserved up front; never moves."""

    bound_pages: int

    @property
    def bound_bytes(self) -> int:
        return self.bound_pages * WASM_PAGE_SIZE

    def __str__(self):
        return f"static(bound={self.bound_pages} pages)"


@dataclass(frozen=True)
class _Dynamic(MemoryStyle):
    """Reserve ``reserve_bytes`` beyond the current size; may move when that runs out."""

    reserve_bytes: int

    def __str__(self):
        return f"dynamic(reserve={self.reserve_bytes} bytes)"


MemoryStyle.Static = _Static
MemoryStyle.Dynamic = _Dynamic
MemoryStyleT = Union[_Static, _Dynamic]


@dataclass(frozen=True)
class MemoryPlan:
    """A memory type plus the chosen style and guard sizes (bytes)."""

    memory: MemoryType
    style: MemoryStyleT
    pre_guard_size: int
    offset_guard_size: int

    @classmethod
    def for_memory(cls, memory: MemoryType, tunables: Tunables) -> "MemoryPlan":
        style, offset_guard = MemoryStyle.for_memory(memory, tunables)
        pre_guard = offset_guard if tunables.guard_before_linear_memory else 0
        return cls(memory, style, pre_guard, offset_guard)

    @property
    def is_static(self) -> bool:
        return isinstance(self.style, _Static)

    @property
    def effective_maximum_pages(self) -> int:
        """Declared maximum, or the index type's absolute maximum."""
        m = self.memory
        return m.maximum if m.maximum is not None else m.absolute_max_pages

    def reservation_bytes(self, size_pages=None) -> int:
        """Total bytes reserved for a memory of ``size_pages`` (default: minimum).

        Static: pre-guard + bound + offset guard. Dynamic: pre-guard + size + growth
        reserve + offset guard (Wasmtime's layout).
        """
        if size_pages is None:
            size_pages = self.memory.minimum
        if isinstance(self.style, _Static):
            body = self.style.bound_bytes
        else:
            body = size_pages * WASM_PAGE_SIZE + self.style.reserve_bytes
        return self.pre_guard_size + body + self.offset_guard_size


class TableStyle:
    """How a table is implemented (one style: signatures checked by the caller)."""

    __slots__ = ()

    @staticmethod
    def for_table(table: TableType, tunables: Tunables) -> "TableStyle":
        return TableStyle.CallerChecksSignature


class _CallerChecksSignature(TableStyle):
    __slots__ = ()

    def __repr__(self):
        return "TableStyle.CallerChecksSignature"

    def __str__(self):
        return "caller-checks-signature"

    def __reduce__(self):
        return (getattr, (TableStyle, "CallerChecksSignature"))


TableStyle.CallerChecksSignature = _CallerChecksSignature()


@dataclass(frozen=True)
class TablePlan:
    """A table type plus the chosen style."""

    table: TableType
    style: TableStyle

    @classmethod
    def for_table(cls, table: TableType, tunables: Tunables) -> "TablePlan":
        return cls(table, TableStyle.for_table(table, tunables))
