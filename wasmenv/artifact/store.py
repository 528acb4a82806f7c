"""The data store: an mmap-ninja ``RaggedMmap`` of uint8 items, written and read back.

Writing goes through mmap-ninja's public API (it needs numpy). Reading does not: loading
must not import numpy (hundreds of milliseconds in a fresh process, against ~1 ms for a
whole load), so this module reads the files mmap-ninja writes itself, for the version
pinned in setup.cfg (``tests/test_artifact_store.py`` checks that the two agree):

    data/data.ninja                 every item back to back, no header
    data/{dtype,order,shape,type,shapes_are_flat}.ninja
    data/{starts,ends}/data.ninja   int64 little-endian item bounds (+ the same side files)
    data/{shapes,flattened_shapes}/ item shapes: not read (with shapes_are_flat = 1 they
                                    repeat ends - starts)
"""
from __future__ import annotations

import hashlib
import mmap
import os
import stat
import struct
from typing import List, Optional, Tuple

from ..errors import ArtifactError
from .codec import ChunkEntry, StoreInfo

__all__ = ["STORE_KIND", "DATA_NAME", "ArtifactDir", "write_store", "read_index", "open_data",
           "map_readonly", "hash_fd"]

STORE_KIND = "mmap_ninja.RaggedMmap[uint8]"
#: The data file's name inside the store directory (mmap-ninja's name).
DATA_NAME = "data.ninja"
#: mmap-ninja items written per batch are grouped up to this many bytes.
_BATCH_BYTES = 64 << 20


def write_store(store_dir: str, data: List[memoryview], passive: List[memoryview],
                align: Optional[int], code: Optional[memoryview] = None):
    """Write every chunk (plus padding items), then the code blob, as a RaggedMmap.

    Chunks of ``data`` start at multiples of ``align`` (None: no alignment): a zero-filled
    padding item is written before a chunk that would not. Empty chunks are not stored.

    Returns:
        ``(store, data_entries, passive_entries, code_entry)``: a :class:`StoreInfo` (None
        when there are no bytes at all), one :class:`ChunkEntry` per chunk, and the code
        blob's (None when ``code`` is None).
    """
    items = []
    pos = 0
    digest = hashlib.blake2b(digest_size=32)

    def add(buf) -> None:
        nonlocal pos
        items.append(buf)
        digest.update(buf)
        pos += len(buf)

    def entries(chunks, aligned):
        out = []
        for c in chunks:
            n = len(c)
            if n == 0:
                out.append(ChunkEntry(0, pos, None))
                continue
            if aligned and pos % align:
                add(bytes(-pos % align))  # a padding item: zeros up to the next aligned offset
            out.append(ChunkEntry(n, pos, len(items)))
            add(c)
        return out

    data_entries = entries(data, align is not None)
    passive_entries = entries(passive, False)
    code_entry = None if code is None else entries([code], False)[0]
    if not items:
        return None, data_entries, passive_entries, code_entry
    starts, ends = _write_ragged(store_dir, items)
    path = os.path.join(store_dir, DATA_NAME)
    size = os.path.getsize(path)
    if size != pos or len(starts) != len(items) or ends[-1] != pos:  # pragma: no cover
        raise ArtifactError(f"mmap-ninja wrote {size} bytes / {len(starts)} items, "
                            f"expected {pos} / {len(items)}")
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return (StoreInfo(STORE_KIND, pos, len(items), digest.hexdigest()), data_entries, passive_entries,
            code_entry)


def _write_ragged(store_dir: str, items: list) -> Tuple[List[int], List[int]]:
    """``RaggedMmap.from_lists`` + ``extend`` in batches; the items' (starts, ends)."""
    import numpy as np
    from mmap_ninja import RaggedMmap

    rm = None
    batch: list = []
    size = 0

    def flush():
        nonlocal rm, batch, size
        arrays = [np.frombuffer(b, dtype=np.uint8) for b in batch]
        if rm is None:
            rm = RaggedMmap.from_lists(store_dir, arrays, dtype=np.uint8)
        else:
            rm.extend(arrays)
        batch, size = [], 0

    for buf in items:
        if batch and size + len(buf) > _BATCH_BYTES:
            flush()
        batch.append(buf)
        size += len(buf)
    flush()
    starts = [int(x) for x in rm.starts]
    ends = [int(x) for x in rm.ends]
    del rm  # drop mmap-ninja's read-write maps (and their file descriptors)
    return starts, ends


class ArtifactDir:
    """An opened artifact directory: its files are opened relative to it (``dir_fd``).

    Every file is opened with ``O_NONBLOCK`` (a FIFO does not block the open) and checked
    with ``fstat`` on the descriptor, so what is checked is what is read or mapped. No
    symbolic link inside the directory is followed (``O_NOFOLLOW`` on every component): a
    link could make the artifact's memory images the bytes of any file the loader can read.
    """

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        self.dirs = {}  # subdirectory path -> its descriptor, opened once (closed by close())

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs = {}
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def where(self, rel: str) -> str:
        return os.path.join(self.path, rel)

    def open(self, rel: str) -> Tuple[int, os.stat_result]:
        """``(fd, stat)`` of regular file ``rel``; the caller closes ``fd``.

        Raises:
            FileNotFoundError: ``rel`` (or a directory on its way) does not exist.
            ArtifactError: it is not a regular file.
        """
        *dirs, name = rel.split("/")
        parent = self.fd
        for k, d in enumerate(dirs):
            sub = "/".join(dirs[:k + 1])
            if sub not in self.dirs:
                self.dirs[sub] = self._open_at(d, _O_DIR, parent, sub)
            parent = self.dirs[sub]
        fd = self._open_at(name, _O_FILE, parent, rel)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(f"{self.where(rel)}: not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _open_at(self, name: str, flags: int, dir_fd: int, rel: str) -> int:
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            try:
                is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                is_link = False
            if is_link:
                raise ArtifactError(f"{self.where(rel)} is a symbolic link (refused inside an "
                                    f"artifact: it could point anywhere)") from None
            raise

    def read(self, rel: str, limit: int) -> bytes:
        """The whole of regular file ``rel``, refused past ``limit`` bytes (before reading)."""
        fd, st = self.open(rel)
        try:
            if st.st_size > limit:
                raise ArtifactError(f"{self.where(rel)}: unexpectedly large ({st.st_size} bytes)")
            return _read_all(fd, st.st_size, limit)
        finally:
            os.close(fd)

    def size(self, rel: str) -> int:
        fd, st = self.open(rel)
        os.close(fd)
        return st.st_size


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIR = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC


def _read_all(fd: int, size: int, limit: int) -> bytes:
    """Read ``fd`` to its end, at most ``limit`` bytes (a file may grow after fstat)."""
    parts = []
    total = 0
    while True:
        block = os.read(fd, min(max(size - total, 0) + 1, limit + 1 - total, 1 << 24))
        if not block:
            return b"".join(parts)
        parts.append(block)
        total += len(block)
        if total > limit:
            raise ArtifactError(f"file grew past {limit} bytes while being read")


def _expect_file(d: ArtifactDir, rel: str, content: bytes, what: str):
    try:
        got = d.read(rel, max(64, len(content)))
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {d.where(rel)}") from None
    if got != content:
        raise ArtifactError(f"store file {d.where(rel)} ({what}) is {got[:32]!r}, expected {content!r}")


def _check_numpy_dir(d: ArtifactDir, sub: str, dtype: str, count: int, itemsize: int,
                     kind: Optional[bytes]):
    """Check an mmap-ninja numpy directory's data size (before anything is read) and side files."""
    rel = f"{sub}/{DATA_NAME}"
    try:
        got = d.size(rel)
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {d.where(rel)}") from None
    if got != itemsize * count:
        raise ArtifactError(f"store file {d.where(rel)} has {got} bytes, the metadata says "
                            f"{itemsize * count} (truncated or replaced?)")
    _expect_file(d, f"{sub}/dtype.ninja", dtype.encode(), "dtype")
    _expect_file(d, f"{sub}/order.ninja", b"C", "order")
    _expect_file(d, f"{sub}/shape.ninja", struct.pack("<Q", count), "shape")
    if kind is not None:
        _expect_file(d, f"{sub}/type.ninja", kind, "type")


def _read_int64s(d: ArtifactDir, rel: str, n: int) -> List[int]:
    try:
        raw = d.read(rel, 8 * n)
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {d.where(rel)}") from None
    if len(raw) != 8 * n:
        raise ArtifactError(f"{d.where(rel)}: {len(raw)} bytes, expected {8 * n}")
    return list(struct.unpack(f"<{n}q", raw))


def read_index(d: ArtifactDir, store_dir: str, file_size: int, items: int) -> Tuple[List[int], List[int]]:
    """Check every file of the store ``store_dir`` of ``d``, then return ``(starts, ends)``.

    Raises:
        ArtifactError: a file is missing, not a regular file, of the wrong size or content.
    """
    _expect_file(d, f"{store_dir}/type.ninja", b"ragged", "type")
    _expect_file(d, f"{store_dir}/shapes_are_flat.ninja", struct.pack("<i", 1), "shapes_are_flat")
    _check_numpy_dir(d, store_dir, "uint8", file_size, 1, None)  # type: ragged
    _check_numpy_dir(d, f"{store_dir}/starts", "int64", items, 8, b"numpy")
    _check_numpy_dir(d, f"{store_dir}/ends", "int64", items, 8, b"numpy")
    starts = _read_int64s(d, f"{store_dir}/starts/{DATA_NAME}", items)
    ends = _read_int64s(d, f"{store_dir}/ends/{DATA_NAME}", items)
    return starts, ends


def open_data(d: ArtifactDir, rel: str, size: int) -> int:
    """The data file's descriptor, checked: a regular file of ``size`` bytes that only this
    user (or root) can write.

    Pages of a ``MAP_PRIVATE`` mapping that no instance wrote still follow the file, so
    whoever can write it could change live instances' memory: such a file is refused.
    """
    try:
        fd, st = d.open(rel)
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {d.where(rel)}") from None
    try:
        if st.st_size != size:
            raise ArtifactError(f"store file {d.where(rel)} has {st.st_size} bytes, the metadata "
                                f"says {size} (truncated or replaced?)")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ArtifactError(f"data file {d.where(rel)} is writable by others (mode "
                                f"{stat.S_IMODE(st.st_mode):#o}): its bytes could change under "
                                f"mapped memory; chmod go-w it (or recompile)")
        if st.st_uid not in (os.geteuid(), 0):
            raise ArtifactError(f"data file {d.where(rel)} is owned by uid {st.st_uid}, not by "
                                f"this user or root: its owner could change mapped memory")
    except BaseException:
        os.close(fd)
        raise
    return fd


def seal_modes(directory: str) -> None:
    """Files of a freshly written artifact: 0o644, directories 0o755, whatever the umask."""
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    os.chmod(directory, 0o755)


def hash_fd(fd: int) -> str:
    """blake2b-256 hex digest of a file's bytes."""
    h = hashlib.blake2b(digest_size=32)
    offset = 0
    while True:
        block = os.pread(fd, 1 << 20, offset)
        if not block:
            return h.hexdigest()
        h.update(block)
        offset += len(block)


def map_readonly(fd: int, size: int) -> mmap.mmap:
    """Map the data file read-only (what mmap-ninja's ``np_open_existing(mode="r")`` does);
    the mapping keeps its own duplicate of ``fd``, as numpy's does."""
    return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
