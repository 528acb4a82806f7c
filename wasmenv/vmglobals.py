"""The defined-global region of an instance block: cell encoding and a per-module template.

A cell is 16 bytes (``REGIONS``' ``defined_globals`` stride), little-endian from byte 0:
i32/f32 in 4 bytes, i64/f64 in 8 (floats as their IEEE bits), v128 in all 16, a
reference in 8 (0 = null; in an instance, whatever the runtime stores for a non-null
reference, e.g. a funcref's address). The rest of the cell is zero.

:class:`GlobalsTemplate` evaluates constant initializers once per module. Globals whose
value differs between instances are listed in ``per_instance``: those that read an
imported global (directly or through an earlier such global) and those that make a
``ref.func`` value. In the template their cells hold 0, or, for a ``ref.func`` without
imports, the *marker* ``func_index + 1``, which the instance replaces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Tuple

from .constexpr import ConstExpr
from .types import ValType
from .vmoffsets import REGIONS

#: Bytes per defined-global cell (the layout rule's stride).
CELL_SIZE = next(r.stride for r in REGIONS if r.name == "defined_globals")
#: Bytes a number of each numeric type takes in its cell (a reference takes 8).
VALUE_BYTES = {ValType.I32: 4, ValType.F32: 4, ValType.I64: 8, ValType.F64: 8, ValType.V128: 16}
_ZERO_CELL = bytes(CELL_SIZE)


def func_marker(func_index: int) -> int:
    """The template's placeholder for ``ref.func func_index`` (never 0, which is null)."""
    return func_index + 1


def encode_cell(ty, value) -> bytes:
    """One cell holding ``value`` of value type ``ty``.

    Numbers as :meth:`ConstExpr.evaluate` gives them (unsigned ints, float bits, v128 as
    16 bytes or an int). References: None (null), ``("func", i)`` (the marker of
    ``ref.func i``) or an int stored as is.

    Raises:
        ValueError: the value does not fit the type.
    """
    width = VALUE_BYTES.get(ty)
    if width is None:  # a reference type
        if value is None:
            return _ZERO_CELL
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "func":
            value = func_marker(value[1])
        width = 8
    elif isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) != width:
            raise ValueError(f"a {ty} cell needs {width} bytes, got {len(value)}")
        return bytes(value) + bytes(CELL_SIZE - width)
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * width):
        raise ValueError(f"{value!r} is not an encodable {ty} value")
    return value.to_bytes(width, "little") + bytes(CELL_SIZE - width)


def decode_cell(ty, cell) -> object:
    """The value in ``cell``: unsigned ints and float bits for numbers, 16 bytes for v128,
    None for a null reference and the stored int otherwise."""
    if ty is ValType.V128:
        return bytes(cell[:16])
    value = int.from_bytes(bytes(cell[:VALUE_BYTES.get(ty, 8)]), "little")
    if VALUE_BYTES.get(ty) is None and value == 0:
        return None
    return value


class PerInstanceGlobal(NamedTuple):
    """A defined global evaluated at instantiation: its defined index, type and initializer."""

    defined_index: int
    content: object
    init: ConstExpr


class _Unknown(Exception):
    """A value that only an instance knows (an imported global's)."""


@dataclass(frozen=True)
class GlobalsTemplate:
    """The defined-global region of a module's instances, evaluated once per module.

    ``cells`` is the region's bytes (cell ``k`` at ``k * CELL_SIZE``); ``per_instance``
    the globals an instance computes itself, in definition order.
    """

    cells: bytes
    per_instance: Tuple[PerInstanceGlobal, ...]
    #: The value type of each defined global.
    types: Tuple[object, ...] = ()
    num_imported_globals: int = 0

    @classmethod
    def for_module(cls, module) -> "GlobalsTemplate":
        """The template of a :class:`wasmenv.Module`'s defined globals."""
        n_imp = module.num_imported_globals
        defined = module.globals[n_imp:]
        values = []          # per defined global: its value, or _UNKNOWN
        varies = set()       # defined indices whose value differs between instances
        per_instance = []
        cells = bytearray(CELL_SIZE * len(defined))

        def get(index):
            if index < n_imp or values[index - n_imp] is _UNKNOWN:
                raise _Unknown
            return values[index - n_imp]

        for k, g in enumerate(defined):
            reads = [imm for op, imm in g.init.ops if op == "global.get"]
            if any(op == "ref.func" for op, _ in g.init.ops) or any(
                    i < n_imp or i - n_imp in varies for i in reads):
                varies.add(k)
                per_instance.append(PerInstanceGlobal(k, g.type.content, g.init))
            try:
                value = g.init.evaluate(get)  # ref.func -> ("func", i): its marker
            except _Unknown:
                value = _UNKNOWN
            values.append(value)
            if value is not _UNKNOWN:
                cells[k * CELL_SIZE:(k + 1) * CELL_SIZE] = encode_cell(g.type.content, value)
        return cls(bytes(cells), tuple(per_instance), tuple(g.type.content for g in defined), n_imp)

    @property
    def num_defined_globals(self) -> int:
        return len(self.types)

    def cell(self, defined_index: int) -> memoryview:
        """The template's cell of defined global ``defined_index``."""
        if not 0 <= defined_index < self.num_defined_globals:
            raise IndexError(f"defined global {defined_index} out of range "
                             f"({self.num_defined_globals} defined)")
        return memoryview(self.cells)[defined_index * CELL_SIZE:(defined_index + 1) * CELL_SIZE]

    def instance_cells(self, imported_global: Callable[[int], object],
                       ref_func: Callable[[int], Optional[int]]) -> bytearray:
        """The region of one instance: the template with ``per_instance`` globals evaluated.

        Args:
            imported_global: value of imported global ``index`` (as :func:`decode_cell`
                gives values: unsigned ints, float bits, v128 bytes, None or an int ref).
            ref_func: what a cell stores for ``ref.func index`` in this instance (an int).
        """
        cells = bytearray(self.cells)
        n_imp, types = self.num_imported_globals, self.types

        def get(index):
            if index < n_imp:
                return imported_global(index)
            k = index - n_imp
            return decode_cell(types[k], cells[k * CELL_SIZE:(k + 1) * CELL_SIZE])

        def store(k, value):
            cells[k * CELL_SIZE:(k + 1) * CELL_SIZE] = encode_cell(types[k], value)

        self.evaluate_per_instance(get, ref_func, store)
        return cells

    def evaluate_per_instance(self, get_global: Callable[[int], object], ref_func: Callable[[int], object],
                              store: Callable[[int, object], None]) -> None:
        """Evaluate the ``per_instance`` globals in order: ``store(defined_index, value)``
        each before the next is evaluated (a later one may read it through ``get_global``,
        which takes indices of the whole global index space)."""
        for entry in self.per_instance:
            store(entry.defined_index, entry.init.evaluate(get_global, ref_func))


_UNKNOWN = object()
