"""Native tables and their reference cells (c_src/wenv_table.h)."""
from __future__ import annotations

import errno
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


def _written(rc: int, what: str) -> bool:
    """True if a table write returned 0; False when it was out of bounds (nothing written).

    Raises:
        AllocationError: it was the table's first write and its storage could not be
            mapped (wenv_table_storage; nothing written).
    """
    if rc == 0:
        return True
    err = _ffi.errno_now()
    if err in (errno.ERANGE, errno.EINVAL):
        return False
    raise AllocationError(f"{what}: the table's storage could not be mapped: {os.strerror(err)}", "table") \
        from OSError(err, os.strerror(err))


#: (wenv_table *, lo, hi) -> 1 if an initialized element is a funcref cell in [lo, hi)
table_names_range = lib.wenv_table_names_range


def table_set(t, index: int, cell: int) -> bool:
    return _written(lib.wenv_table_set(t, index, cell), "table.set")


def table_fill(t, index: int, cell: int, n: int) -> bool:
    return _written(lib.wenv_table_fill(t, index, cell, n), "table.fill")


def table_init(t, d: int, cells, s: int, n: int) -> bool:
    """Write ``cells[s:s+n]`` (a list of cells) at ``d``; False (nothing written) when out of bounds."""
    buf = ffi.new("uint64_t[]", list(cells) or [0])
    return _written(lib.wenv_table_init(t, d, buf, len(cells), s, n), "table.init")


def table_init_funcs(t, d: int, vm, funcs, n: int) -> bool:
    """Write the funcref cells of functions ``funcs[0:n]`` (a uint32 array; LAZY_NONE:
    null) of ``vm`` at ``d``; False (nothing written) when out of bounds."""
    return _written(lib.wenv_table_init_funcs(t, d, vm, funcs, n), "element segment")


def table_mapped(t) -> bool:
    """Whether ``t`` has storage of its own (written since it opened; else it reads the
    process's zero region and costs no mapping)."""
    return bool(lib.wenv_table_mapped(t))


def table_inject_failures(steps) -> None:
    """Tests: a table's first write fails to map its storage while ``steps`` holds "map_anon"."""
    lib.wenv_table_inject_failures(lib.WENV_FAIL_MAP_ANON if "map_anon" in steps else 0)


def table_grow(t, delta: int, init_cell: int) -> int:
    """The old size, or -1 (past the maximum, or out of memory)."""
    return lib.wenv_table_grow(t, delta, init_cell)


def new_table_array(tables):
    """A ``wenv_table *[]`` of ``tables`` (never empty)."""
    return ffi.new("wenv_table *[]", tables or [_ffi.NULL])
