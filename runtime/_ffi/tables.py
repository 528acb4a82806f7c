"""An instance's defined tables (c_src/wenv_tables.h): opened and released together, on
demand or from a table pool's slots, with the instance's only memory in one call."""
from __future__ import annotations

import errno as _errno
import os

from ..errors import AllocationError
from .wenv import _raise_errno, ffi, lib

POOL_NO_TABLE_SLOT = lib.WENV_POOL_NO_TABLE_SLOT


def new_table_specs(specs):
    """A ``wenv_table_spec[]`` of ``(size, maximum)`` pairs (never empty)."""
    return ffi.new("wenv_table_spec[]", [{"size": s, "maximum": m} for s, m in specs] or 1)


_new_tables = ffi.new_allocator()


def new_instance_tables(count: int):
    """A zeroed ``wenv_instance_table[count]``: an instance's defined tables."""
    return _new_tables("wenv_instance_table[]", count)


def instance_table(tables, index: int):
    """The ``wenv_table *`` of entry ``index`` of a ``wenv_instance_table[]``."""
    return ffi.cast("wenv_table *", tables + index)


def table_pool_new(slot_count: int, max_elements: int):
    """The C side of a pool's table slots; its owner frees it with ``table_pool_free``."""
    tp = lib.wenv_table_pool_new(slot_count, max_elements)
    if tp == ffi.NULL:
        _raise_errno("creating the pool's table slots")
    return tp


def tables_open_failed(what: str, err: int):
    """Raise the domain error for a -1 of wenv_tables_open (``err``: its errno)."""
    if err == _errno.ERANGE:
        raise AllocationError(f"{what}: a table's minimum exceeds the pool's max_table_elements",
                              "max_table_elements")
    raise AllocationError(f"{what}: {os.strerror(err)}", "table") from OSError(err, os.strerror(err))


table_pool_close = lib.wenv_table_pool_close
table_pool_free = lib.wenv_table_pool_free
table_pool_live = lib.wenv_table_pool_live
tables_open = lib.wenv_tables_open      # (tp, specs, count, tables) -> 0 or < 0 (errno, POOL_*)
tables_close = lib.wenv_tables_close    # (tp, count, tables): the entries no view holds
table_release = lib.wenv_table_release  # (tp, entry, written): one entry, at most once
instance_open_tables = lib.wenv_instance_open_tables    # (spec, tp, specs, count, tables) -> handle
instance_close_tables = lib.wenv_instance_close_tables  # (spec, handle, tp, count, tables) -> as instance_close
