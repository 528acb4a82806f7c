"""Memory specs and an instance's memory opened and closed in one C call each way
(c_src/wenv_instance.h)."""
from __future__ import annotations

from .. import _ffi
from ..errors import AllocationError
from .mman import _MAX_LEN
from .wenv import _raise_errno, ffi, lib


def new_memory_specs(count: int):
    """A zeroed ``wenv_memory_spec[count]`` (what instantiating each defined memory needs)."""
    return ffi.new("wenv_memory_spec[]", count)


def memory_open(spec) -> int:
    """Reserve a memory as ``spec`` says (one C call, all or nothing); its start address."""
    start = lib.wenv_memory_open(spec)
    if start == 0:
        _ffi.memory_open_failed(spec)
    return start


def memory_open_failed(spec, err: int = None):
    """Raise the domain error for a failed wenv_memory_open / wenv_instance_open of
    ``spec`` (``err``: its errno_now(); default: read now)."""
    if spec[0].reserve_bytes == _MAX_LEN - 1:  # the layout's mark for 2^64 bytes or more
        raise AllocationError("reserve: the memory needs 2^64 bytes or more: it cannot be addressed",
                              "address space")
    _raise_errno(f"mmap reservation of {spec[0].reserve_bytes:#x} bytes (with its image)", err)


instance_open = lib.wenv_instance_open    # (spec) -> handle, or < 0 (spec.pool: NULL or a pool)
instance_close = lib.wenv_instance_close  # (spec, handle) -> 0, -1 (errno) or 1 (pool unused)
memory_own_reservation = lib.wenv_memory_own_reservation  # (desc, mappable): C unmaps it after close
memory_own_pool_slot = lib.wenv_memory_own_pool_slot      # (desc, pool, slot, end_instance)
