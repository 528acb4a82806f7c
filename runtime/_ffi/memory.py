"""Memory descriptors, their lifetime, the accessors and data segment writes
(c_src/wenv_memory.h)."""
from __future__ import annotations

from .. import _ffi
from .wenv import ffi, lib

# wenv_memory.flags
MEM_STATIC = lib.WENV_MEM_STATIC
MEM_64 = lib.WENV_MEM_64
MEM_CLOSED = lib.WENV_MEM_CLOSED
#: The flags that say a memory's style (what raw code relies on); the others say its state.
MEM_STYLE = MEM_STATIC | MEM_64


# ---- memory descriptors --------------------------------------------------------------

def new_memory_desc():
    """A zeroed ``wenv_memory`` (freed with the returned cdata)."""
    return ffi.new("wenv_memory *")


memory_init = lib.wenv_memory_init            # (desc, base, byte_len, bound, guard, start, end, flags, max_pages)
memory_set_byte_len = lib.wenv_memory_set_byte_len
# memory.grow (c_src/wenv_memory.h): (desc, delta_pages) -> old pages, GROW_REFUSED (-1), or
# GROW_OWNER: its owner grows it, under the lock memory_grow_unlock gives back.
memory_grow = lib.wenv_memory_grow
memory_grow_unlock = lib.wenv_memory_grow_unlock
GROW_OWNER = lib.WENV_GROW_OWNER
#: A limit cell's value for no limit (wenv_memory.limit_bytes compares new byte lengths with it).
NO_LIMIT = (1 << 64) - 1


def new_limit_cell():
    """A store's memory_size limit as wenv_memory_grow reads it: a ``uint64_t[1]``
    (NO_LIMIT at first)."""
    return ffi.new("uint64_t[1]", [_ffi.NO_LIMIT])


# Lifetime (c_src/wenv_memory.h): close refuses later uses and releases the memory, now
# (the release's result) or in the last use in flight (RELEASE_DEFERRED).
RELEASE_DEFERRED = lib.WENV_RELEASE_DEFERRED
memory_close = lib.wenv_memory_close          # (desc) -> release result, RELEASE_DEFERRED or 0
memory_enter = lib.wenv_memory_enter          # (desc) -> 1: in use until memory_leave; 0: closed
memory_leave = lib.wenv_memory_leave          # (desc) -> the release's result if it ran here, else 0
memories_keep = lib.wenv_memories_keep        # (descs, n): another use of each, inside a use of them
access_is_raw = lib.wenv_access_is_raw        # (desc, offset, width) -> 0/1


def new_memory_array(descs):
    """A ``wenv_memory *[]`` of ``descs`` (never empty)."""
    return ffi.new("wenv_memory *[]", descs or [_ffi.NULL])


# ---- accessors -----------------------------------------------------------------------

#: C loads by result kind; each is (desc, addr, offset) -> value or sentinel.
LOAD = {
    "i32": lib.wenv_load_i32, "i64": lib.wenv_load_i64, "u64": lib.wenv_load_u64,
    "f32": lib.wenv_load_f32, "f64": lib.wenv_load_f64,
    "s8": lib.wenv_load_s8, "u8": lib.wenv_load_u8, "s16": lib.wenv_load_s16,
    "u16": lib.wenv_load_u16, "u32": lib.wenv_load_u32,
}
#: C stores by wasm op; each is (desc, addr, offset, value) -> status.
STORE = {
    "i32": lib.wenv_store_i32, "i32_8": lib.wenv_store_i32_8, "i32_16": lib.wenv_store_i32_16,
    "i64": lib.wenv_store_i64, "i64_8": lib.wenv_store_i64_8, "i64_16": lib.wenv_store_i64_16,
    "i64_32": lib.wenv_store_i64_32, "f32": lib.wenv_store_f32, "f64": lib.wenv_store_f64,
}
INT64_MIN = -(1 << 63)
U64_SENTINEL = 1 << 63


def read(desc, addr: int, byte_len: int):
    """(status, bytes) of [addr, addr + byte_len)."""
    if byte_len == 0:
        return lib.wenv_read(desc, addr, ffi.NULL, 0), b""
    buf = bytearray(byte_len)
    status = lib.wenv_read(desc, addr, ffi.from_buffer(buf), byte_len)
    return status, bytes(buf) if status == _ffi.OK else b""


def write(desc, addr: int, data) -> int:
    view = memoryview(data)
    if not view.contiguous:
        view = memoryview(view.tobytes())
    return lib.wenv_write(desc, addr, ffi.from_buffer(view), view.nbytes)


def init(desc, addr: int, src, src_offset: int, byte_len: int) -> int:
    view = memoryview(src)
    if not view.contiguous:
        view = memoryview(view.tobytes())
    return lib.wenv_init(desc, addr, ffi.from_buffer(view), view.nbytes, src_offset, byte_len)


def copy_out(desc, dst_addr: int, byte_len: int) -> int:
    """Copy the memory's first ``byte_len`` bytes to the raw address ``dst_addr`` (a moving
    grow's new reservation), under the fault guard; the status."""
    return lib.wenv_read(desc, 0, ffi.cast("char *", dst_addr), byte_len)


fill = lib.wenv_fill   # (desc, addr, value, byte_len) -> status
copy = lib.wenv_copy   # (desc, dst, src, byte_len) -> status


# ---- data segments -------------------------------------------------------------------

def new_data_writes(writes):
    """A ``wenv_data_write[]`` of ``(memory, start, bytes-like)`` writes (c_src/wenv_memory.h),
    and what keeps their bytes alive: ``(array, keep)``."""
    arr, keep = ffi.new("wenv_data_write[]", max(1, len(writes))), []
    for w, (memory, start, data) in zip(arr, writes):
        buf = ffi.from_buffer(data)
        keep.append(buf)
        w.memory, w.start, w.src, w.byte_len = memory, start, buf, len(buf)
        w.fd, w.file_offset = -1, 0
    return arr, keep

#: A data write maps its whole pages from a file when they span at least this (wenv_memory.h).
MAP_WRITE_BYTES = lib.WENV_MAP_WRITE_BYTES


def copy_data_writes(writes, n: int):
    """A copy of the first ``n`` entries of a ``wenv_data_write[]`` (to set starts in)."""
    out = ffi.new("wenv_data_write[]", max(1, n))
    ffi.memmove(out, writes, n * ffi.sizeof("wenv_data_write"))
    return out


def data_apply(mems, writes, n: int, fail: int = 0):
    """Apply ``writes[0..n)`` to ``mems`` (c_src/wenv_memory.h): ``(n, 0)``, or the index
    of the first write that failed and its accessor status. ``fail``: a WENV_FAIL_* mask
    for the mmaps of mapped writes (tests)."""
    status = ffi.new("int *")
    return lib.wenv_data_apply(mems, writes, n, fail, status), status[0]
