"""Reservations, protections and page resets (c_src/wenv_mman.h)."""
from __future__ import annotations

from .. import _ffi
from ..errors import AllocationError
from .wenv import _raise_errno, ffi, lib

PAGE_SIZE = lib.wenv_page_size()
_MAX_LEN = 1 << 64

#: How released pages are given back (c_src/wenv_mman.h): "madvise" (MADV_DONTNEED: image
#: pages revert to the file, which stays mapped) or "remap" (fresh anonymous pages).
RESETS = {"madvise": lib.WENV_RESET_MADVISE, "remap": lib.WENV_RESET_REMAP}
#: The platform's reset: "remap" on macOS (MADV_DONTNEED does not zero there).
DEFAULT_RESET = next(name for name, how in RESETS.items() if how == lib.wenv_reset_default())


def _check_len(what: str, byte_len: int):
    """A reservation's length: 0 (one PROT_NONE page, c_src/wenv_mman.h) up to 2^64 - 1."""
    if byte_len < 0:
        raise ValueError(f"{what}: byte_len must not be negative, got {byte_len}")
    if byte_len >= _MAX_LEN:
        raise AllocationError(f"{what}: {byte_len} bytes cannot be addressed", "address space")


def reserve(byte_len: int) -> int:
    """Reserve ``byte_len`` bytes PROT_NONE (MAP_NORESERVE); return the start address.
    0 bytes still get an address (one page, released by ``release(start, 0)``)."""
    _check_len("reserve", byte_len)
    out = ffi.new("uint64_t *")
    if lib.wenv_reserve(byte_len, out) != 0:
        _raise_errno(f"mmap reservation of {byte_len:#x} bytes")
    return out[0]


def reserve_memory(byte_len: int, pre_guard: int, accessible: int, image=None) -> int:
    """Reserve ``byte_len`` bytes, map ``image`` (a MemoryImage or None) at
    ``pre_guard + image.linear_offset`` and make ``accessible`` bytes after the pre-guard
    R/W, in one C call (all or nothing). Returns the reservation's start."""
    _check_len("reserve", byte_len)
    out = ffi.new("uint64_t *")
    if image is not None and image.byte_len:
        rc = lib.wenv_reserve_memory(byte_len, pre_guard, accessible, image.fd, image.file_offset,
                                     image.linear_offset, image.byte_len, out)
    else:
        rc = lib.wenv_reserve_memory(byte_len, pre_guard, accessible, -1, 0, 0, 0, out)
    if rc != 0:
        _raise_errno(f"mmap reservation of {byte_len:#x} bytes (with its image)")
    return out[0]


def release_failed(addr: int, byte_len: int):
    """Raise the domain error for a failed munmap of [addr, addr + byte_len) (errno still set)."""
    _raise_errno(f"munmap of {byte_len:#x} bytes at {addr:#x}")


def release(addr: int, byte_len: int) -> None:
    if lib.wenv_release(addr, byte_len) != 0:
        _ffi.release_failed(addr, byte_len)


def protect(addr: int, byte_len: int, writable: bool) -> None:
    """mprotect to PROT_READ|PROT_WRITE (``writable``) or PROT_NONE."""
    if lib.wenv_protect(addr, byte_len, 1 if writable else 0) != 0:
        what = "read/write" if writable else "none"
        _raise_errno(f"mprotect({what}) of {byte_len:#x} bytes at {addr:#x}")


def map_fd_fixed(addr: int, byte_len: int, fd: int, file_offset: int) -> None:
    """Map ``fd`` at ``file_offset`` over [addr, addr + byte_len): MAP_PRIVATE|MAP_FIXED, R/W (CoW)."""
    if lib.wenv_map_fd_fixed(addr, byte_len, fd, file_offset) != 0:
        _raise_errno(f"mmap of fd {fd} at file offset {file_offset:#x} ({byte_len:#x} bytes) at {addr:#x}")


def map_anon_fixed(addr: int, byte_len: int, writable: bool) -> None:
    """Replace [addr, addr + byte_len) by fresh zero pages (R/W or PROT_NONE)."""
    if lib.wenv_map_anon_fixed(addr, byte_len, 1 if writable else 0) != 0:
        _raise_errno(f"mmap of fresh pages ({byte_len:#x} bytes) at {addr:#x}")


def decommit(addr: int, byte_len: int) -> None:
    """Give back the pages of a R/W range.

    Linux: ``madvise(MADV_DONTNEED)``: anonymous pages read as zero afterwards, private
    file (image) pages revert to the file's contents. macOS: ``MADV_DONTNEED`` does not
    zero there, so fresh anonymous pages replace the range: everything reads as zero
    (re-map an image afterwards if its contents are wanted).
    """
    if lib.wenv_decommit(addr, byte_len, _ffi.RESETS[_ffi.DEFAULT_RESET]) != 0:
        _raise_errno(f"decommit of {byte_len:#x} bytes at {addr:#x}")
