"""Memory and table initializers, and the spec's data-segment application rule."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

from .constexpr import MASK32, ConstExpr
from .types import WASM_PAGE_SIZE

U64_MAX = (1 << 64) - 1
#: ``object.__setattr__``, read once (a class attribute read is a dictionary lookup per call).
_object_setattr = object.__setattr__


@dataclass(frozen=True, init=False)
class MemoryInitializer:
    """An active data segment: write ``data`` (a range of the translation's data) at base+offset.

    ``base`` is a global index or None; ``offset`` an unsigned byte offset (i32 offsets
    zero-extended). ``expr`` holds an extended-const offset that is neither a constant nor a
    lone ``global.get``: it is evaluated at run time (base/offset are then None/0).
    """

    memory_index: int
    base: Optional[int]
    offset: int
    data: range
    expr: Optional[ConstExpr] = None
    memory64: bool = False

    def __init__(self, memory_index: int, base: Optional[int], offset: int, data: range,
                 expr: Optional[ConstExpr] = None, memory64: bool = False):
        # One is made per data segment (100,000 in a large module): the fields are stored
        # in one step, as unpickling does, instead of one object.__setattr__ per field as
        # in the generated frozen __init__ (half the time; attribute reads stay as fast).
        _object_setattr(self, "__dict__", {
            "memory_index": memory_index, "base": base, "offset": offset, "data": data,
            "expr": expr, "memory64": memory64})

    def start(self, get_global_as_u64) -> Optional[int]:
        """Resolve the start address with a global-reading callback; None on overflow."""
        if self.expr is not None:
            value = self.expr.evaluate(get_global_as_u64)
            return value if self.memory64 else value & MASK32
        base = get_global_as_u64(self.base) if self.base is not None else 0
        start = base + self.offset
        return start if start <= U64_MAX else None


@dataclass(frozen=True)
class StaticMemoryInitializer:
    """Bytes ``data`` (a range of the translation's data) to place at byte ``offset``."""

    offset: int
    data: range


class InitMemory:
    """Who is applying initializers: ``InitMemory.CompileTime`` or ``InitMemory.Runtime``."""

    __slots__ = ()


@dataclass(frozen=True)
class _CompileTime(InitMemory):
    """At compile time: memories are at their minimum, globals are unknown."""

    module: object


@dataclass(frozen=True)
class _Runtime(InitMemory):
    """At instantiation: callbacks read the instance's memory sizes and globals."""

    memory_size_in_pages: Callable[[int], int]
    get_global_as_u64: Callable[[int], int]


InitMemory.CompileTime = _CompileTime
InitMemory.Runtime = _Runtime

WriteFn = Callable[[int, StaticMemoryInitializer], bool]


class MemoryInitialization:
    """How memories are initialized: ``.Segmented`` (list) or ``.Static`` (one image per memory)."""

    __slots__ = ()

    def is_segmented(self) -> bool:
        return isinstance(self, _Segmented)

    def init_memory(self, state: InitMemory, write: WriteFn) -> bool:
        """Apply initializers in order through ``write(memory_index, init)``.

        Returns False at the first initializer that cannot be applied: a global base at
        compile time, an overflowing or out-of-bounds range, or ``write`` returning False.
        """
        return init_memory(self, state, write)


@dataclass(frozen=True)
class _Segmented(MemoryInitialization):
    initializers: Tuple[MemoryInitializer, ...] = ()


@dataclass(frozen=True)
class _Static(MemoryInitialization):
    """``map[i]`` is the image of defined-or-imported memory ``i`` (None: all zeros)."""

    map: Tuple[Optional[StaticMemoryInitializer], ...] = ()


MemoryInitialization.Segmented = _Segmented
MemoryInitialization.Static = _Static


def init_memory(initialization: MemoryInitialization, state: InitMemory, write: WriteFn) -> bool:
    """See :meth:`MemoryInitialization.init_memory`."""
    if isinstance(initialization, _Static):
        for index, init in enumerate(initialization.map):
            if init is not None and not write(index, init):
                return False
        return True
    return apply_segments(initialization.initializers, state,
                          lambda index, start, data: write(index, StaticMemoryInitializer(start, data)))


def apply_segments(initializers, state: InitMemory,
                   write: Callable[[int, int, range], bool]) -> bool:
    """The Segmented rule of :func:`init_memory`: ``write(memory_index, start, data)`` per
    initializer, in order (the only copy of the rule; the static-init dry run uses it too,
    through :func:`compile_time_writes`). Each initializer is resolved after the previous
    one is written.

    Returns False at the first initializer that cannot be applied: a global base at
    compile time, an overflowing or out-of-bounds range, or ``write`` returning False.
    """
    return _apply_segments(initializers, state, write, None)


def compile_time_writes(initializers, module) -> Optional[List[List[Tuple[int, range]]]]:
    """The writes :func:`apply_segments` makes at compile time (``InitMemory.CompileTime``),
    collected rather than made: per memory of ``module``, the ``(start, data)`` of each
    write of at least one byte, in order (a write of none changes no byte); None where
    apply_segments returns False. No callback per segment: the static-init dry run."""
    per_memory = [[] for _ in module.memory_plans]
    ok = _apply_segments(initializers, _CompileTime(module), None, per_memory)
    return per_memory if ok else None


def _apply_segments(initializers, state: InitMemory, write, per_memory) -> bool:
    """:func:`apply_segments`, whose writes go to ``write`` or, when ``per_memory`` is not
    None, are appended to its lists (empty writes left out)."""
    compile_time = isinstance(state, _CompileTime)
    if compile_time:
        minimum_bytes = [plan.memory.minimum * WASM_PAGE_SIZE for plan in state.module.memory_plans]
    else:
        get_global_as_u64 = state.get_global_as_u64
        memory_size_in_pages = state.memory_size_in_pages
    collect = None if per_memory is None else [writes.append for writes in per_memory]
    for init in initializers:
        index = init.memory_index
        if compile_time:
            if init.base is not None or init.expr is not None:
                return False
            start = init.offset
            size_bytes = minimum_bytes[index]
        else:
            start = init.start(get_global_as_u64)
            if start is None:
                return False
            size_bytes = memory_size_in_pages(index) * WASM_PAGE_SIZE
        data = init.data
        end = start + len(data)
        # A memory64 size near 2^48 pages overflows u64 bytes: any u64 end fits then.
        if end > U64_MAX or (size_bytes <= U64_MAX and end > size_bytes):
            return False
        if collect is not None:
            if data:
                collect[index]((start, data))
        elif not write(index, start, data):
            return False
    return True


@dataclass(frozen=True)
class TableInitializer:
    """An active element segment: ``elements`` go to table ``table_index`` at base+offset.

    Each element is a function index (int), None (null), or a :class:`ConstExpr` to be
    evaluated at run time (e.g. ``global.get``). ``expr`` as for :class:`MemoryInitializer`.
    """

    table_index: int
    base: Optional[int]
    offset: int
    elements: Tuple[Union[int, None, ConstExpr], ...]
    expr: Optional[ConstExpr] = None
    table64: bool = False

    @property
    def is_foldable_items(self) -> bool:
        return not any(isinstance(e, ConstExpr) for e in self.elements)

    def start(self, get_global_as_u64) -> int:
        if self.expr is not None:
            value = self.expr.evaluate(get_global_as_u64)
            return value if self.table64 else value & MASK32
        base = get_global_as_u64(self.base) if self.base is not None else 0
        return base + self.offset


class TableInitialization:
    """``.Segments`` (all eager) or ``.FuncTable`` (per-table arrays plus eager leftovers)."""

    __slots__ = ()


@dataclass(frozen=True)
class _Segments(TableInitialization):
    segments: Tuple[TableInitializer, ...] = ()


@dataclass(frozen=True)
class _FuncTable(TableInitialization):
    """``tables[i]``: initial function index (or None = null) of each element of table i,
    up to the highest folded element (elements past the end are null); None when nothing
    was folded into table i. ``segments`` are the leftovers, applied eagerly after."""

    tables: Tuple[Optional[Tuple[Optional[int], ...]], ...]
    segments: Tuple[TableInitializer, ...] = ()


TableInitialization.Segments = _Segments
TableInitialization.FuncTable = _FuncTable
