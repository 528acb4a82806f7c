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

__all__ = ["STORE_KIND", "DATA_NAME", "write_store", "read_index", "map_readonly", "hash_file",
           "read_small"]

STORE_KIND = "mmap_ninja.RaggedMmap[uint8]"
#: The data file's name inside the store directory (mmap-ninja's name).
DATA_NAME = "data.ninja"
#: mmap-ninja items written per batch are grouped up to this many bytes.
_BATCH_BYTES = 64 << 20


def write_store(store_dir: str, data: List[memoryview], passive: List[memoryview],
                align: Optional[int]):
    """Write every chunk (plus padding items) as a RaggedMmap.

    Chunks of ``data`` start at multiples of ``align`` (None: no alignment): a zero-filled
    padding item is written before a chunk that would not. Empty chunks are not stored.

    Returns:
        ``(store, data_entries, passive_entries)``: a :class:`StoreInfo` (None when there
        are no bytes at all) and one :class:`ChunkEntry` per chunk.
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
    if not items:
        return None, data_entries, passive_entries
    starts, ends = _write_ragged(store_dir, items)
    path = os.path.join(store_dir, DATA_NAME)
    size = os.path.getsize(path)
    if size != pos or len(starts) != len(items) or ends[-1] != pos:  # pragma: no cover
        raise ArtifactError(f"mmap-ninja wrote {size} bytes / {len(starts)} items, "
                            f"expected {pos} / {len(items)}")
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return StoreInfo(STORE_KIND, pos, len(items), digest.hexdigest()), data_entries, passive_entries


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


def read_small(path: str, limit: int) -> bytes:
    """The whole of regular file ``path``, refused past ``limit`` bytes."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{path}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ArtifactError(f"{path}: unexpectedly large ({st.st_size} bytes)")
    return data


def _expect_file(path: str, content: bytes, what: str):
    try:
        got = read_small(path, max(64, len(content)))
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {path}") from None
    if got != content:
        raise ArtifactError(f"store file {path} ({what}) is {got[:32]!r}, expected {content!r}")


def _file_size(path: str) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path}: not a regular file")
    return st.st_size


def _check_numpy_dir(d: str, dtype: str, shape: Tuple[int, ...], itemsize: int,
                     kind: Optional[bytes]):
    """Check an mmap-ninja numpy directory's data size and side files."""
    want = itemsize
    for n in shape:
        want *= n
    got = _file_size(os.path.join(d, DATA_NAME))
    if got != want:
        raise ArtifactError(f"store file {os.path.join(d, DATA_NAME)} has {got} bytes, "
                            f"the metadata says {want} (truncated or replaced?)")
    _expect_file(os.path.join(d, "dtype.ninja"), dtype.encode(), "dtype")
    _expect_file(os.path.join(d, "order.ninja"), b"C", "order")
    _expect_file(os.path.join(d, "shape.ninja"), b"".join(struct.pack("<Q", n) for n in shape), "shape")
    if kind is not None:
        _expect_file(os.path.join(d, "type.ninja"), kind, "type")


def _read_int64s(path: str, n: int) -> List[int]:
    raw = read_small(path, 8 * n)
    if len(raw) != 8 * n:
        raise ArtifactError(f"{path}: {len(raw)} bytes, expected {8 * n}")
    return list(struct.unpack(f"<{n}q", raw))


def read_index(store_dir: str, file_size: int, items: int) -> Tuple[List[int], List[int]]:
    """Check every file of the store, then return its items' ``(starts, ends)``.

    Raises:
        ArtifactError: a file is missing, not a regular file, of the wrong size or content.
    """
    _expect_file(os.path.join(store_dir, "type.ninja"), b"ragged", "type")
    _expect_file(os.path.join(store_dir, "shapes_are_flat.ninja"), struct.pack("<i", 1),
                 "shapes_are_flat")
    _check_numpy_dir(store_dir, "uint8", (file_size,), 1, None)  # type: ragged
    starts_dir = os.path.join(store_dir, "starts")
    ends_dir = os.path.join(store_dir, "ends")
    _check_numpy_dir(starts_dir, "int64", (items,), 8, b"numpy")
    _check_numpy_dir(ends_dir, "int64", (items,), 8, b"numpy")
    starts = _read_int64s(os.path.join(starts_dir, DATA_NAME), items)
    ends = _read_int64s(os.path.join(ends_dir, DATA_NAME), items)
    return starts, ends


def hash_file(path: str) -> str:
    """blake2b-256 hex digest of a file's bytes."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def map_readonly(path: str, size: int) -> mmap.mmap:
    """Map the data file read-only (what mmap-ninja's ``np_open_existing(mode="r")`` does).

    The size is checked again on the opened descriptor, which is closed before returning
    (the mapping keeps its own duplicate, as numpy's does).
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise ArtifactError(f"data file {path} changed while loading ({st.st_size} bytes, "
                                f"expected {size})")
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
