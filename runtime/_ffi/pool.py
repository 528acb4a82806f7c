"""Pool slots (c_src/wenv_pool.h)."""
from __future__ import annotations

from .. import _ffi
from .mman import DEFAULT_RESET
from .wenv import _raise_errno, ffi, lib

POOL_MAX_INSTANCES = lib.WENV_POOL_MAX_INSTANCES
POOL_NO_SLOT = lib.WENV_POOL_NO_SLOT
POOL_CLOSED = lib.WENV_POOL_CLOSED
#: Step name -> WENV_FAIL_* bit (c_src/wenv_mman.h), for pool_inject_failures (tests).
POOL_FAIL = {"decommit": lib.WENV_FAIL_DECOMMIT, "map_anon": lib.WENV_FAIL_MAP_ANON,
             "protect": lib.WENV_FAIL_PROTECT, "map_image": lib.WENV_FAIL_MAP_FILE}


def pool_new(slot_count: int, slots_per_chunk: int, chunk_bases, stride: int, bound_bytes: int,
             keep_bytes: int, max_instances: int, reset: str = DEFAULT_RESET):
    """The C side of a pool; its owner frees it with :func:`pool_free`."""
    bases = ffi.new("uint64_t[]", list(chunk_bases) or [0])
    pool = lib.wenv_pool_new(slot_count, slots_per_chunk, bases, len(chunk_bases), stride, bound_bytes,
                             keep_bytes, max_instances, _ffi.RESETS[reset])
    if pool == ffi.NULL:
        _raise_errno("creating the pool's slot table")
    return pool


pool_free = lib.wenv_pool_free
pool_forget_reservation = lib.wenv_pool_forget_reservation  # (pool): later puts only count
pool_begin = lib.wenv_pool_begin      # (pool) -> 0 or POOL_* code
pool_take = lib.wenv_pool_take        # (pool, spec, count_instance) -> slot, -1 (errno) or POOL_* code
pool_put = lib.wenv_pool_put          # (pool, slot, end_instance) -> 1 if closed and unused, -1 refused
pool_put_clean = lib.wenv_pool_put_clean  # (pool, slot, end_instance): pool_put of a slot nothing wrote
pool_end = lib.wenv_pool_end          # (pool) -> 1 if closed and unused, -1 if no instance is live
pool_close = lib.wenv_pool_close      # (pool) -> 1 if unused
pool_slot_base = lib.wenv_pool_slot_base


def pool_failed(what: str, err: int = None):
    """Raise the domain error for a -1 from a pool call (``err``: its errno_now())."""
    _raise_errno(what, err)


pool_slot_tenancy = lib.wenv_pool_slot_tenancy  # (pool, slot) -> the slot's current tenancy


def pool_grow(pool, slot: int, tenancy: int, new_bytes: int) -> None:
    """Make a slot R/W up to ``new_bytes`` if it is still in ``tenancy`` (else ESTALE)."""
    if lib.wenv_pool_grow(pool, slot, tenancy, new_bytes) != 0:
        _raise_errno(f"mprotect(read/write) growing pool slot {slot} to {new_bytes:#x} bytes")


def pool_stats(pool) -> tuple:
    """(live_instances, live_memories, slots ever used, free slots, in-use slots on the free list)."""
    out = ffi.new("uint64_t[5]")
    lib.wenv_pool_stats(pool, out)
    return tuple(out)


def pool_slot_state(pool, slot: int) -> dict:
    out = ffi.new("uint64_t[6]")
    if lib.wenv_pool_slot_state(pool, slot, out) != 0:
        raise IndexError(f"no pool slot {slot}")
    keys = ("in_use", "poisoned", "accessible", "image_key", "image_offset", "image_len")
    return {key: out[i] for i, key in enumerate(keys)}


def pool_inject_failures(pool, steps) -> None:
    """Make the named pool steps (POOL_FAIL keys) fail with EIO until called with ()."""
    mask = 0
    for step in steps:
        mask |= _ffi.POOL_FAIL[step]
    lib.wenv_pool_inject_failures(pool, mask)
