"""The decoded module: index spaces, imports, exports, plans and initializers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from .constexpr import ConstExpr
from .init import MemoryInitialization, TableInitialization
from .plans import MemoryPlan, TablePlan
from .types import EntityIndex, EntityType, ExternKind, FuncType, GlobalType, ImportType, TagType


@dataclass(frozen=True)
class ModuleType:
    """An entry of the type section; only function types exist in this model."""

    func: FuncType

    def unwrap_function(self) -> FuncType:
        return self.func


@dataclass(frozen=True)
class FunctionType:
    """A function's signature (type index) and its anyfunc index if it escapes."""

    signature: int
    anyfunc: Optional[int] = None

    def is_escaping(self) -> bool:
        return self.anyfunc is not None


@dataclass(frozen=True)
class Global:
    """A global's type and, for a defined global, its initializer."""

    type: GlobalType
    init: Optional[ConstExpr] = None


class Initializer:
    """Instantiation steps; the only one is ``Initializer.Import``."""

    __slots__ = ()


@dataclass(frozen=True)
class _Import(Initializer):
    """An import of ``name``.``field`` placed at ``index``."""

    name: str
    field: str
    index: EntityIndex


Initializer.Import = _Import


@dataclass(frozen=True)
class ElementSegment:
    """A passive or declarative element segment (active ones become TableInitializers)."""

    mode: str  # "passive" | "declarative"
    element: object  # ValType of the items
    items: Tuple[object, ...]  # int func index, None, or ConstExpr


@dataclass
class Module:
    """A module's metadata, excluding code bodies and data bytes."""

    name: Optional[str] = None
    initializers: List[_Import] = field(default_factory=list)
    exports: Dict[str, EntityIndex] = field(default_factory=dict)
    start_func: Optional[int] = None
    table_initialization: TableInitialization = field(default_factory=TableInitialization.Segments)
    memory_initialization: MemoryInitialization = field(default_factory=MemoryInitialization.Segmented)
    #: Element segment index -> its items, for passive segments.
    passive_elements: Dict[int, ElementSegment] = field(default_factory=dict)
    #: Element segment indices that are active or declarative (dropped at instantiation).
    dropped_elements: Tuple[int, ...] = ()
    #: Data segment index -> range into the translation's concatenated passive data.
    passive_data_map: Dict[int, range] = field(default_factory=dict)
    num_data_segments: int = 0
    num_elem_segments: int = 0
    types: List[ModuleType] = field(default_factory=list)
    num_imported_funcs: int = 0
    num_imported_tables: int = 0
    num_imported_memories: int = 0
    num_imported_globals: int = 0
    num_imported_tags: int = 0
    num_escaped_funcs: int = 0
    functions: List[FunctionType] = field(default_factory=list)
    table_plans: List[TablePlan] = field(default_factory=list)
    memory_plans: List[MemoryPlan] = field(default_factory=list)
    globals: List[Global] = field(default_factory=list)
    tags: List[TagType] = field(default_factory=list)

    # -- index-space conversions (imports come first in every space) --------------------
    def func_index(self, defined: int) -> int:
        return self.num_imported_funcs + defined

    def defined_func_index(self, index: int) -> Optional[int]:
        return None if index < self.num_imported_funcs else index - self.num_imported_funcs

    def is_imported_function(self, index: int) -> bool:
        return index < self.num_imported_funcs

    def table_index(self, defined: int) -> int:
        return self.num_imported_tables + defined

    def defined_table_index(self, index: int) -> Optional[int]:
        return None if index < self.num_imported_tables else index - self.num_imported_tables

    def is_imported_table(self, index: int) -> bool:
        return index < self.num_imported_tables

    def memory_index(self, defined: int) -> int:
        return self.num_imported_memories + defined

    def defined_memory_index(self, index: int) -> Optional[int]:
        return None if index < self.num_imported_memories else index - self.num_imported_memories

    def is_imported_memory(self, index: int) -> bool:
        return index < self.num_imported_memories

    def global_index(self, defined: int) -> int:
        return self.num_imported_globals + defined

    def defined_global_index(self, index: int) -> Optional[int]:
        return None if index < self.num_imported_globals else index - self.num_imported_globals

    def is_imported_global(self, index: int) -> bool:
        return index < self.num_imported_globals

    def owned_memory_index(self, defined: int) -> int:
        """Count the non-shared defined memories before defined memory ``defined``.

        Raises:
            ValueError: the memory is out of range or shared (shared memories are not owned).
        """
        num_defined = len(self.memory_plans) - self.num_imported_memories
        if not 0 <= defined < num_defined:
            raise ValueError(f"defined memory {defined} out of range ({num_defined} defined)")
        plans = self.memory_plans[self.num_imported_memories:]
        if plans[defined].memory.shared:
            raise ValueError(f"defined memory {defined} is shared and has no owned index")
        return sum(1 for p in plans[:defined] if not p.memory.shared)

    # -- types ---------------------------------------------------------------------------
    def imports(self) -> Iterator[ImportType]:
        """Yield an :class:`ImportType` (``.module``, ``.name``, ``.type``) for every import,
        in declaration order."""
        for imp in self.initializers:
            yield ImportType(imp.name, imp.field, self.type_of(imp.index))

    def type_of(self, index: EntityIndex) -> EntityType:
        kind, i = index
        if kind is ExternKind.FUNC:
            return self.types[self.functions[i].signature].func
        if kind is ExternKind.TABLE:
            return self.table_plans[i].table
        if kind is ExternKind.MEMORY:
            return self.memory_plans[i].memory
        if kind is ExternKind.GLOBAL:
            return self.globals[i].type
        return self.tags[i]

    def exported(self) -> Iterator[Tuple[str, EntityIndex, EntityType]]:
        """Yield ``(name, index, type)`` for every export, in declaration order."""
        for name, index in self.exports.items():
            yield name, index, self.type_of(index)

    def escaped_functions(self) -> List[int]:
        """Function indices that escape, ordered by anyfunc index."""
        pairs = [(f.anyfunc, i) for i, f in enumerate(self.functions) if f.anyfunc is not None]
        return [i for _, i in sorted(pairs)]
