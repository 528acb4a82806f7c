"""Native tables and their reference cells (c_src/wenv_table.h)."""
from __future__ import annotations

import os

from .. import _ffi
from ..errors import AllocationError
from .wenv import ffi, lib

LAZY_NONE = lib.WENV_LAZY_NONE


def address_of(cdata) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def table_open(size: int, maximum: int, init_cell: int):
    """A new native table (an owning ``wenv_table *``; close it with table_close).

    Raises:
        AllocationError: its reservation could not be made.
    """
    t = ffi.new("wenv_table *")
    if lib.wenv_table_open(t, size, maximum, init_cell) != 0:
        err = _ffi.errno_now()
        raise AllocationError(f"table of {size} elements: {os.strerror(err)}", "table") \
            from OSError(err, os.strerror(err))
    return t


def table_bind(t, lazy, lazy_len: int, vm) -> None:
    """Uninitialized elements of ``t`` read as ``lazy``'s functions of ``vm`` (a ``wenv_vm *``;
    the arrays stay the caller's to keep alive)."""
    t.lazy, t.lazy_len, t.vm = lazy, lazy_len, vm


table_close = lib.wenv_table_close
_cell_out = ffi.new_allocator(should_clear_after_alloc=False)


def table_get(t, index: int):
    """The cell at ``index``, or None when out of bounds."""
    out = _cell_out("uint64_t *")
    if lib.wenv_table_get(t, index, out) != 0:
        return None
    return out[0]


def table_set(t, index: int, cell: int) -> bool:
    return lib.wenv_table_set(t, index, cell) == 0


def table_fill(t, index: int, cell: int, n: int) -> bool:
    return lib.wenv_table_fill(t, index, cell, n) == 0


def table_init(t, d: int, cells, s: int, n: int) -> bool:
    """Write ``cells[s:s+n]`` (a list of cells) at ``d``; False (nothing written) when out of bounds."""
    buf = ffi.new("uint64_t[]", list(cells) or [0])
    return lib.wenv_table_init(t, d, buf, len(cells), s, n) == 0


def table_init_funcs(t, d: int, vm, funcs, n: int) -> bool:
    """Write the funcref cells of functions ``funcs[0:n]`` (a uint32 array; LAZY_NONE:
    null) of ``vm`` at ``d``; False (nothing written) when out of bounds."""
    return lib.wenv_table_init_funcs(t, d, vm, funcs, n) == 0


def table_grow(t, delta: int, init_cell: int) -> int:
    """The old size, or -1 (past the maximum, or out of memory)."""
    return lib.wenv_table_grow(t, delta, init_cell)


def new_table_array(tables):
    """A ``wenv_table *[]`` of ``tables`` (never empty)."""
    return ffi.new("wenv_table *[]", tables or [_ffi.NULL])
