"""MemoryImage: the initial contents of a linear memory, as a file every instance maps CoW.

One image is created per module memory (from the Static initialization bytes) and
shared by all instances of the module: each maps it ``MAP_PRIVATE|MAP_FIXED`` over
``[linear_offset, linear_offset + byte_len)`` of its accessible bytes, so pages stay
shared until an instance writes them.

Backing file: a sealed memfd on Linux (``memfd_create`` + ``F_ADD_SEALS`` write, grow,
shrink and seal seals: nobody can change the bytes under the mappings), an unlinked
temporary file elsewhere (macOS has no memfd), or an existing file at a page-aligned
offset (compiled artifacts map their data section with no copy). The first two are
selectable at run time (``backing=``, ``Engine(image_backing=...)``), so that the macOS
way runs on Linux too.
"""
from __future__ import annotations

import errno
import itertools
import os
import sys
import tempfile
import threading
from typing import Optional

from . import _ffi
from ._owner import Owner
from .errors import AllocationError

__all__ = ["MemoryImage", "BACKINGS", "check_backing"]

_SEALS = 0
if sys.platform.startswith("linux"):
    import fcntl
    _SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


_KEYS = itertools.count(1)
_CLOSE_LOCK = threading.Lock()  # MemoryImage.close: the fd is closed once, even by racing threads


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _allocation_error(what: str, exc: OSError) -> AllocationError:
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        limit = "file descriptors"
    elif exc.errno in (errno.ENOMEM, errno.ENOSPC, errno.EFBIG):
        limit = "memory"
    else:
        limit = None
    return AllocationError(f"{what}: {exc.strerror}", limit)


#: What a MemoryImage made from bytes can live in: a sealed memfd (Linux), or an
#: unlinked temporary file (the only way on macOS).
BACKINGS = ("memfd", "tempfile")


def _memfd_available() -> bool:
    return bool(_SEALS) and hasattr(os, "memfd_create")


def check_backing(backing: Optional[str]) -> Optional[str]:
    """``backing`` if this platform has it (None: the platform's choice, a memfd where
    there is one, falling back to a temporary file if the kernel refuses it).

    Raises:
        ValueError: not one of BACKINGS, or "memfd" where there is none.
    """
    if backing is None:
        return None
    if backing not in BACKINGS:
        raise ValueError(f"image backing must be one of {BACKINGS} or None, got {backing!r}")
    if backing == "memfd" and not _memfd_available():
        raise ValueError("image backing 'memfd' needs memfd_create with sealing (Linux)")
    return backing


def _new_file(name: str, backing: Optional[str] = None):
    """A fresh, empty, close-on-exec file descriptor: (fd, sealable, source)."""
    if backing != "tempfile" and _memfd_available():
        try:
            return os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING), True, "memfd"
        except OSError as exc:
            if backing == "memfd" or exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                raise _allocation_error("memfd_create", exc) from exc
    try:
        fd, path = tempfile.mkstemp(prefix=f"{name}-")  # non-inheritable (PEP 446)
    except OSError as exc:
        raise _allocation_error("temporary image file", exc) from exc
    os.unlink(path)
    return fd, False, "tempfile"


def _write_all(fd: int, view: memoryview, file_offset: int):
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], file_offset + done)


class MemoryImage(Owner):
    """An initialization image: ``byte_len`` bytes of file ``fd`` at ``file_offset``, to be
    mapped at ``linear_offset`` of a linear memory. All three are host-page aligned.

    Owns its file descriptor: ``close()``, context manager, and ``__del__`` as backstop
    (Owner). Mappings made from it stay valid after ``close()`` (they hold their own
    reference).
    """

    __slots__ = ("_fd", "file_offset", "byte_len", "linear_offset", "sealed", "source",
                 "key", "__weakref__")

    def __init__(self, fd: int, file_offset: int, byte_len: int, linear_offset: int, *,
                 sealed: bool = False, source: str = "fd"):
        """Take ownership of ``fd`` (closed by :meth:`close`). Prefer the ``from_*`` constructors."""
        self._fd = -1  # owned only once the arguments are valid (the caller closes it otherwise)
        page = _ffi.PAGE_SIZE
        for name, value in (("file_offset", file_offset), ("byte_len", byte_len),
                            ("linear_offset", linear_offset)):
            if not isinstance(value, int) or value < 0 or value % page:
                raise ValueError(f"MemoryImage.{name} must be a non-negative multiple of {page}, got {value!r}")
        self.file_offset = file_offset
        self.byte_len = byte_len
        self.linear_offset = linear_offset
        self.sealed = sealed
        self.source = source
        self.key = next(_KEYS)  # identity for a pool slot's image affinity (never reused)
        self._fd = fd  # owned from here

    @classmethod
    def from_bytes(cls, data, linear_offset: int = 0, *, name: str = "wenv-image",
                   cover_byte_len: Optional[int] = None, backing: Optional[str] = None) -> "MemoryImage":
        """An image holding ``data`` (zero-padded to whole pages) for ``linear_offset``.

        With ``cover_byte_len``, the image instead covers linear bytes
        ``[0, cover_byte_len)`` with ``data`` at ``linear_offset`` inside it: the file is
        sparse (holes cost nothing until read; a read hole becomes one shared page-cache
        page per module), and the memory's whole accessible part is then one mapping
        instead of three (image, zero pages around it), which is what lets ~30,000
        memories fit under vm.max_map_count.

        ``backing``: "memfd", "tempfile" or None (the platform's choice; see BACKINGS).

        Raises:
            AllocationError: no file could be created or filled (limit: file descriptors, memory).
            ValueError: ``linear_offset`` is not page-aligned, ``data`` does not fit the
                cover, or ``backing`` is unknown or not available here.
        """
        backing = check_backing(backing)
        if not isinstance(linear_offset, int) or linear_offset < 0 or linear_offset % _ffi.PAGE_SIZE:
            raise ValueError(f"linear_offset must be a non-negative multiple of {_ffi.PAGE_SIZE}")
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" \
            else data
        byte_len = _round_up(len(view), _ffi.PAGE_SIZE)
        data_at = 0
        if cover_byte_len is not None:
            cover = _round_up(cover_byte_len, _ffi.PAGE_SIZE)
            if linear_offset + byte_len > cover:
                raise ValueError(f"image [{linear_offset:#x}, +{byte_len:#x}) does not fit a cover of {cover:#x}")
            data_at, linear_offset, byte_len = linear_offset, 0, cover
        return cls._filled(view, data_at, byte_len, linear_offset, name, backing)

    @classmethod
    def holding(cls, data, data_offset: int, *, name: str = "wenv-data",
                backing: Optional[str] = None) -> "MemoryImage":
        """An image whose file holds ``data`` at byte ``data_offset`` (any offset; the
        file is zero-padded to whole pages), for mapping the whole pages of a write of
        ``data`` to an address congruent to ``data_offset`` (the image's ``byte_len``
        covers the file; ``linear_offset`` is 0: such an image has no address of its own).

        Raises:
            AllocationError, ValueError: as :meth:`from_bytes`.
        """
        backing = check_backing(backing)
        view = memoryview(data).cast("B")
        if not isinstance(data_offset, int) or data_offset < 0:
            raise ValueError(f"data_offset must be a non-negative int, got {data_offset!r}")
        return cls._filled(view, data_offset, _round_up(data_offset + len(view), _ffi.PAGE_SIZE), 0,
                           name, backing)

    @classmethod
    def _filled(cls, view, data_at, byte_len, linear_offset, name, backing) -> "MemoryImage":
        """A new file of ``byte_len`` bytes with ``view`` at ``data_at``, sealed where it can be."""
        fd, sealable, source = _new_file(name, backing)
        try:
            try:
                os.ftruncate(fd, byte_len)
                _write_all(fd, view, data_at)
                if sealable:
                    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            except OSError as exc:
                raise _allocation_error("filling the image file", exc) from exc
            return cls(fd, 0, byte_len, linear_offset, sealed=sealable, source=source)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def from_file(cls, path, file_offset: int, byte_len: int, linear_offset: int = 0) -> "MemoryImage":
        """An image of ``byte_len`` bytes of an existing file at ``file_offset`` (no copy).

        The file is opened read-only; mappings are private, so instances never write it.
        It must not shrink while mapped (a page past its end would fault with SIGBUS).

        Raises:
            ValueError: an offset or length is not page-aligned, or the file is too short.
            OSError: the file cannot be opened.
        """
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return cls.from_fd(fd, file_offset, byte_len, linear_offset, name=path)

    @classmethod
    def from_fd(cls, fd: int, file_offset: int, byte_len: int, linear_offset: int = 0,
                name=None) -> "MemoryImage":
        """:meth:`from_file` of an open read-only descriptor, which the image then owns
        (closed here if this raises)."""
        path = name if name is not None else f"fd {fd}"
        try:
            size = os.fstat(fd).st_size
            if file_offset + byte_len > size:
                raise ValueError(f"{path}: image [{file_offset:#x}, {file_offset + byte_len:#x}) "
                                 f"extends past the end of the file ({size:#x} bytes)")
            return cls(fd, file_offset, byte_len, linear_offset, source="file")
        except BaseException:
            os.close(fd)
            raise

    @property
    def fd(self) -> int:
        fd = self._fd
        if fd < 0:
            raise ValueError("MemoryImage is closed")
        return fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def read(self) -> bytes:
        """The image bytes (a copy, from the file)."""
        out = bytearray()
        while len(out) < self.byte_len:
            chunk = os.pread(self.fd, self.byte_len - len(out), self.file_offset + len(out))
            if not chunk:
                raise ValueError("image file is shorter than the image")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        """Close the file descriptor (idempotent); mappings made from it stay."""
        with _CLOSE_LOCK:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __repr__(self):
        state = "closed" if self.closed else f"fd={self._fd}"
        return (f"<MemoryImage {self.source} {state} file_offset={self.file_offset:#x} "
                f"byte_len={self.byte_len:#x} linear_offset={self.linear_offset:#x}>")
