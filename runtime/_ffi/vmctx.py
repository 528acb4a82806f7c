"""The instance block: its layout (wasmenv.vmoffsets, c_src/wenv_vmoffsets.h) and the
native blocks instance blocks and global cells live in (c_src/wenv_vmctx.c)."""
from __future__ import annotations

from ..errors import AllocationError
from .wenv import ffi, lib


def new_vmoffsets(offsets):
    """A ``wenv_vmoffsets`` filled from a :class:`wasmenv.vmoffsets.VMOffsets`."""
    return ffi.new("wenv_vmoffsets *", offsets.c_fields())


vmctx_entry = lib.wenv_vmctx_entry   # (vmoffsets, region, index) -> byte offset, or -1 (EINVAL)


# Instance blocks and global cells live on the C heap (wenv_vmctx_alloc: zeroed, 16-aligned),
# not in Python's allocator; cffi frees one when its owning cdata is garbage.
_new_block = ffi.new_allocator(alloc=lib.wenv_vmctx_alloc, free=lib.wenv_vmctx_free,
                               should_clear_after_alloc=False)


def new_block(byte_len: int):
    """A zeroed native block of ``byte_len`` bytes (an owning ``uint8_t[]`` cdata, freed
    when it is garbage: whoever holds it keeps the bytes alive).

    Raises:
        AllocationError: the C heap could not provide it.
    """
    return _block(_new_block, byte_len)


def _block(allocator, byte_len: int):
    """A ``uint8_t[byte_len]`` from the cffi ``allocator``; AllocationError if none."""
    try:
        return allocator("uint8_t[]", byte_len)
    except MemoryError as exc:
        raise AllocationError(f"instance block of {byte_len} bytes: out of memory", "heap") from exc


def alloc_written_block(byte_len: int):
    """A native block for one written right away (an instance block: its globals template
    is copied in): calloc whatever its size (no fresh pages to fault in). A bare
    ``uint8_t *`` that nothing frees but :func:`free_block` (its one owner:
    runtime.globals.BlockCells).

    Raises:
        AllocationError: the C heap could not provide it.
    """
    block = lib.wenv_vmctx_alloc_written(byte_len)
    if block == ffi.NULL:
        raise AllocationError(f"instance block of {byte_len} bytes: out of memory", "heap")
    return ffi.cast("uint8_t *", block)


free_block = lib.wenv_vmctx_free   # (a block from alloc_written_block), once


def block_address(block) -> int:
    """The address of a block's first byte."""
    return int(ffi.cast("uintptr_t", block))


def block_buffer(block, byte_len=None):
    """A writable memoryview of a whole block (an owning block: kept alive by it; a bare
    pointer: its first ``byte_len`` bytes, alive as long as its owner)."""
    return memoryview(ffi.buffer(block) if byte_len is None else ffi.buffer(block, byte_len))


copy_into = ffi.memmove   # (block + offset, bytes, byte_len)


def store_u64s(block, offset: int, values) -> None:
    """Write ``values`` as consecutive u64s at ``offset`` of ``block``."""
    ffi.cast("uint64_t *", block + offset)[0:len(values)] = values
