"""VMOffsets: where each piece of an instance's state lives in its native block.

A pure computation from a decoded :class:`~wasmenv.Module` (Wasmtime's ``VMOffsets``),
done once per module. The block is a sequence of regions, in this order::

    memory definitions      16 B each (base u64, byte_len u64), one per defined memory
    imported memories        8 B each: pointer to the exporter's memory definition
    table definitions       16 B each (elements pointer u64, size u64), one per defined table
    imported tables          8 B each: pointer to the exporter's table definition
    defined globals         16 B cells, 16-aligned, one per defined global (see vmglobals)
    imported globals         8 B each: pointer to the exporter's cell
    funcrefs                24 B each (func u64, type id u64, vmctx u64), one per escaping
                            function, indexed by its anyfunc index
    imported functions      16 B each (callee u64: its funcref, vmctx u64: its instance)
    dropped data flags       1 B per data segment (0 = live, 1 = dropped)
    dropped elem flags       1 B per element segment

Each region starts at the previous one's end rounded up to its alignment (8, or 16 for
globals; 1 for flags); the total size is rounded up to 16 so blocks pack in an array.

Every defined memory has its definition here, shared ones included (importers point at
the definer's, which outlives them). A definition's two fields are the first two of
``c_src``'s ``wenv_memory``, so an imported-memory pointer may also point at a host
memory's descriptor. Tags have no entry (they are identities, not state).

The C side is given these numbers (``c_fields()``, the ``wenv_vmoffsets`` struct) and
the record strides and field offsets (``c_header()``, generated into
``c_src/wenv_vmoffsets.h``): the rule exists only here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple


class Region(NamedTuple):
    """One region of the block: its name, bytes per entry, alignment of its start, and the
    byte offset of each field inside an entry."""

    name: str
    stride: int
    align: int
    fields: Tuple[Tuple[str, int], ...] = ()


#: The regions, in block order (the one copy of the layout rule).
REGIONS: Tuple[Region, ...] = (
    Region("memory_definitions", 16, 8, (("base", 0), ("byte_len", 8))),
    Region("imported_memories", 8, 8, (("definition", 0),)),
    Region("table_definitions", 16, 8, (("elements", 0), ("size", 8))),
    Region("imported_tables", 8, 8, (("definition", 0),)),
    Region("defined_globals", 16, 16, (("value", 0),)),
    Region("imported_globals", 8, 8, (("cell", 0),)),
    Region("funcrefs", 24, 8, (("func", 0), ("type_id", 8), ("vmctx", 16))),
    Region("imported_functions", 16, 8, (("callee", 0), ("vmctx", 8))),
    Region("dropped_data", 1, 1, (("flag", 0),)),
    Region("dropped_elems", 1, 1, (("flag", 0),)),
)
#: Alignment of the whole block (its size is a multiple of this).
BLOCK_ALIGN = 16
_REGION_INDEX = {r.name: i for i, r in enumerate(REGIONS)}


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class Location(NamedTuple):
    """Where a memory, table or global of an index space is reached from the block: the
    byte ``offset`` of its definition (or cell), or of a pointer to it when ``indirect``."""

    offset: int
    indirect: bool


@dataclass(frozen=True)
class VMOffsets:
    """The block layout of one module: entry counts, region starts and total size.

    ``counts``/``starts`` are in :data:`REGIONS` order (``count(name)``, ``start(name)``
    and ``end(name)`` read them by region name). Per-index
    accessors take an index into the region (a *defined* index for definitions and
    cells, an *import* index for imports, the anyfunc index for funcrefs) and raise
    IndexError outside it; ``*_location`` and ``func_ref`` take indices of
    the module's index spaces (imports first).
    """

    counts: Tuple[int, ...]
    starts: Tuple[int, ...]
    size: int
    #: Anyfunc index of each function of the index space (None: it does not escape).
    anyfunc_of: Tuple[Optional[int], ...] = ()

    @classmethod
    def for_module(cls, module) -> "VMOffsets":
        """The layout of ``module`` (a :class:`wasmenv.Module`)."""
        m = module
        counts = {
            "memory_definitions": len(m.memory_plans) - m.num_imported_memories,
            "imported_memories": m.num_imported_memories,
            "table_definitions": len(m.table_plans) - m.num_imported_tables,
            "imported_tables": m.num_imported_tables,
            "defined_globals": len(m.globals) - m.num_imported_globals,
            "imported_globals": m.num_imported_globals,
            "funcrefs": m.num_escaped_funcs,
            "imported_functions": m.num_imported_funcs,
            "dropped_data": m.num_data_segments,
            "dropped_elems": m.num_elem_segments,
        }
        return cls.from_counts(counts, tuple(f.anyfunc for f in m.functions))

    @classmethod
    def from_counts(cls, counts: dict, anyfunc_of: Tuple[Optional[int], ...] = ()) -> "VMOffsets":
        """The layout for ``counts`` (region name -> entries; missing names count 0).

        Raises:
            ValueError: an unknown region name or a negative count.
        """
        unknown = set(counts) - set(_REGION_INDEX)
        if unknown:
            raise ValueError(f"unknown block regions: {', '.join(sorted(unknown))}")
        pos, starts, ordered = 0, [], []
        for region in REGIONS:
            n = counts.get(region.name, 0)
            if n < 0:
                raise ValueError(f"negative count {n} for {region.name}")
            pos = _align(pos, region.align)
            starts.append(pos)
            ordered.append(n)
            pos += n * region.stride
        return cls(tuple(ordered), tuple(starts), _align(pos, BLOCK_ALIGN), tuple(anyfunc_of))

    # -- regions -------------------------------------------------------------------------
    def count(self, region: str) -> int:
        return self.counts[_index(region)]

    def start(self, region: str) -> int:
        return self.starts[_index(region)]

    def end(self, region: str) -> int:
        i = _index(region)
        return self.starts[i] + self.counts[i] * REGIONS[i].stride

    def entry(self, region: str, index: int) -> int:
        """Byte offset of entry ``index`` of ``region``.

        Raises:
            IndexError: ``index`` is outside the region.
        """
        i = _index(region)
        n = self.counts[i]
        if not 0 <= index < n:
            raise IndexError(f"{region}: index {index} out of range ({n} entries)")
        return self.starts[i] + index * REGIONS[i].stride

    def memory_definition(self, defined_index: int) -> int:
        return self.entry("memory_definitions", defined_index)

    def imported_memory(self, import_index: int) -> int:
        return self.entry("imported_memories", import_index)

    def table_definition(self, defined_index: int) -> int:
        return self.entry("table_definitions", defined_index)

    def imported_table(self, import_index: int) -> int:
        return self.entry("imported_tables", import_index)

    def global_cell(self, defined_index: int) -> int:
        return self.entry("defined_globals", defined_index)

    def imported_global(self, import_index: int) -> int:
        return self.entry("imported_globals", import_index)

    def funcref(self, anyfunc_index: int) -> int:
        return self.entry("funcrefs", anyfunc_index)

    def imported_function(self, import_index: int) -> int:
        return self.entry("imported_functions", import_index)

    def data_dropped(self, data_index: int) -> int:
        return self.entry("dropped_data", data_index)

    def elem_dropped(self, elem_index: int) -> int:
        return self.entry("dropped_elems", elem_index)

    # -- index spaces (imports first) ----------------------------------------------------
    def memory_location(self, index: int) -> Location:
        """Where memory ``index`` of the module's memory index space is reached."""
        return self._locate(index, "imported_memories", "memory_definitions")

    def table_location(self, index: int) -> Location:
        return self._locate(index, "imported_tables", "table_definitions")

    def global_location(self, index: int) -> Location:
        return self._locate(index, "imported_globals", "defined_globals")

    def func_ref(self, func_index: int) -> int:
        """Offset of the funcref of function ``func_index`` (imported or defined).

        Raises:
            IndexError: no such function, or it does not escape (it has no funcref).
        """
        if not 0 <= func_index < len(self.anyfunc_of):
            raise IndexError(f"function {func_index} out of range ({len(self.anyfunc_of)} functions)")
        anyfunc = self.anyfunc_of[func_index]
        if anyfunc is None:
            raise IndexError(f"function {func_index} does not escape: it has no funcref")
        return self.funcref(anyfunc)

    def _locate(self, index: int, imported: str, defined: str) -> Location:
        num_imported = self.count(imported)
        if 0 <= index < num_imported:
            return Location(self.entry(imported, index), True)
        if index < 0:
            raise IndexError(f"index {index} is negative")
        return Location(self.entry(defined, index - num_imported), False)

    # -- the C side ------------------------------------------------------------------------
    def c_fields(self) -> dict:
        """Field name -> value of the ``wenv_vmoffsets`` struct (see :func:`c_header`)."""
        return {"count": list(self.counts), "start": list(self.starts), "size": self.size}


def _index(region: str) -> int:
    try:
        return _REGION_INDEX[region]
    except KeyError:
        raise KeyError(f"no block region {region!r}") from None


def c_header() -> str:
    """The text of ``c_src/wenv_vmoffsets.h``: region numbers, strides and field offsets
    as constants, and the ``wenv_vmoffsets`` struct a module's layout fills."""
    lines = [
        "/* Generated by wasmenv/vmoffsets.py (python -m wasmenv.vmoffsets); do not edit. */",
        "/* The instance block's layout rule lives in Python; C gets the constants below and,",
        " * per module, a wenv_vmoffsets filled from VMOffsets.c_fields(). */",
        "#ifndef WENV_VMOFFSETS_H",
        "#define WENV_VMOFFSETS_H",
        "#include <stdint.h>",
        "/* CDEF-BEGIN */",
    ]
    for i, region in enumerate(REGIONS):
        up = region.name.upper()
        lines.append(f"#define WENV_VMCTX_{up} {i}")
        lines.append(f"#define WENV_VMCTX_{up}_STRIDE {region.stride}")
        for field_name, offset in region.fields:
            lines.append(f"#define WENV_VMCTX_{up}_{field_name.upper()} {offset}")
    lines.append(f"#define WENV_VMCTX_REGIONS {len(REGIONS)}")
    lines.append(f"#define WENV_VMCTX_BLOCK_ALIGN {BLOCK_ALIGN}")
    lines.append("/* A module's block layout: entries and start offset of each region (indexed by")
    lines.append(" * WENV_VMCTX_<REGION>), and the total size in bytes. */")
    lines.append("typedef struct wenv_vmoffsets {")
    lines.append(f"    uint64_t count[{len(REGIONS)}];")
    lines.append(f"    uint64_t start[{len(REGIONS)}];")
    lines.append("    uint64_t size;")
    lines.append("} wenv_vmoffsets;")
    lines.append("/* Byte offset of entry `index` of `region` (c_src/wenv_vmctx.c), or -1 with errno")
    lines.append(" * EINVAL: no such region, or index >= the region's count. */")
    lines.append("int64_t wenv_vmctx_entry(const wenv_vmoffsets *o, uint32_t region, uint64_t index);")
    lines.append("/* A zeroed block of `size` bytes (rounded up to WENV_VMCTX_BLOCK_ALIGN), aligned to")
    lines.append(" * WENV_VMCTX_BLOCK_ALIGN, or NULL with errno ENOMEM; wenv_vmctx_free releases it. */")
    lines.append("void *wenv_vmctx_alloc(uint64_t size);")
    lines.append("void wenv_vmctx_free(void *block);")
    lines.append("/* CDEF-END */")
    strides = ", ".join(str(r.stride) for r in REGIONS)
    lines.append(f"#define WENV_VMCTX_STRIDES {{{strides}}}  /* per region, in region order */")
    lines += ["#endif", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # regenerate the C header: python -m wasmenv.vmoffsets > c_src/wenv_vmoffsets.h
    import sys
    sys.stdout.write(c_header())
