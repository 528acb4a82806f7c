"""The extension's objects and the conventions of c_src/wenv.h: accessor status codes, and
errno turned into domain errors (``raise AllocationError(...) from OSError(errno, ...)``)."""
from __future__ import annotations

import errno as _errno
import os
import sys

from .. import _ffi, _native
from ..errors import AllocationError, WasmRuntimeError

IS_LINUX = sys.platform.startswith("linux")
IS_MACOS = sys.platform == "darwin"
ffi, lib = _native.ffi, _native.lib
#: The built extension's file (what the tests of the -O2 build inspect).
EXTENSION_FILE = _native.__file__
NULL = ffi.NULL

# Accessor status codes (c_src/wenv.h, which also documents every return convention).
OK = lib.WENV_OK
OOB = lib.WENV_OOB
OOB_GUARD = lib.WENV_OOB_GUARD
FAULT = lib.WENV_FAULT
BADARG = lib.WENV_BADARG
CLOSED = lib.WENV_CLOSED
SRC_FAULT = lib.WENV_SRC_FAULT

#: An ENOMEM is blamed on vm.max_map_count when the process is this close to it.
MAP_COUNT_MARGIN = 16


# ---- errno -> domain errors ----------------------------------------------------------

def mapping_count() -> int:
    """Number of mappings (VMAs) of this process, or -1 where /proc is not available.

    Reads through one small buffer: near vm.max_map_count a large allocation would need
    a new mapping itself and fail.
    """
    count = 0
    buf = bytearray(16384)
    try:
        with open("/proc/self/maps", "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    return count
                count += buf.count(b"\n", 0, n)
    except OSError:
        return -1


def max_map_count() -> int:
    """The kernel's per-process mapping limit (``vm.max_map_count``), or -1 if unknown."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def enomem_limit() -> str:
    """Which limit an ENOMEM from mmap/mprotect/munmap most likely hit."""
    limit = _ffi.max_map_count()
    try:
        if limit > 0 and _ffi.mapping_count() >= limit - _ffi.MAP_COUNT_MARGIN:
            return "vm.max_map_count"
    except MemoryError:  # even malloc could not map memory: out of mappings
        return "vm.max_map_count"
    return "address space"


def errno_now() -> int:
    """errno of this thread's last cffi call. Read it right after the failing call: any
    Python code in between may run a collection, whose finalizers make C calls too."""
    return ffi.errno


def _raise_errno(what: str, err: int = None):
    """Raise the domain error for a failed C call (``err``: its errno; default: read now):
    AllocationError naming the limit hit for ENOMEM, else WasmRuntimeError."""
    if err is None:
        err = ffi.errno
    cause = OSError(err, f"{what}: {os.strerror(err)}")
    if err == _errno.ENOMEM:
        limit = _ffi.enomem_limit()
        raise AllocationError(f"{what} failed: {os.strerror(err)}", limit) from cause
    raise WasmRuntimeError(f"{what} failed: {os.strerror(err)}") from cause
