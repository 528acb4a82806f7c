"""What an artifact adds to the model's invariants: the chunk layout in the data file.

The module itself is checked by :mod:`wasmenv.checks` (the decoder's rules); here: chunk
entries against the store, the store's own index against the entries, and static images
against this host's page size.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from ..checks import MAX_ALIGN, Chunks, is_pow2
from ..init import MemoryInitialization
from .codec import ChunkEntry, StoreInfo, fail
from .store import STORE_KIND

__all__ = ["store_info", "chunk_layout", "file_alignment", "index_agrees"]


def store_info(store: Optional[StoreInfo]):
    """``(file_size, items)`` of the store (0, 0 without one)."""
    if store is None:
        return 0, 0
    if store.kind != STORE_KIND:
        fail("store.kind", f"expected {STORE_KIND!r}, got {store.kind!r}")
    if store.file_size < 1:
        fail("store.file_size", f"{store.file_size} out of range [1, ...]")
    if not 1 <= store.items <= store.file_size:
        fail("store.items", f"{store.items} out of range [1, {store.file_size}]")
    if len(store.blake2b) != 64:
        fail("store.blake2b", "expected 64 hex digits")
    return store.file_size, store.items


def _entries(data, passive, code):
    """``(where, group, entry)`` of every chunk, in file order (the code blob last)."""
    for where, entries in (("data_chunks", data), ("passive_chunks", passive)):
        for i, e in enumerate(entries):
            yield f"{where}[{i}]", where, e
    if code is not None:
        yield "code.chunk", "code", code


def chunk_layout(data: Sequence[ChunkEntry], passive: Sequence[ChunkEntry], file_size: int,
                 items: int, padded: bool, code: Optional[ChunkEntry] = None) -> None:
    """Chunks (then the code blob) lie in the data file in order, without overlap; items
    strictly increase.

    The store holds exactly the chunks' items, plus (``padded``: the data chunks are
    aligned) at most one padding item before each data chunk: so its item count and its
    size are known from the metadata alone, before any store file is read.
    """
    end, last_item = 0, -1
    for w, where, (length, offset, item) in _entries(data, passive, code):
        if offset > file_size:
            fail(f"{w}.offset", f"{offset} out of range [0, {file_size}]")
        if item is not None and item >= max(items, 1):
            fail(f"{w}.item", f"{item} out of range [0, {max(items - 1, 0)}]")
        if (item is None) != (length == 0):
            fail(w, "a chunk has an item exactly when it is not empty")
        if item is not None and items == 0:
            fail(f"{w}.item", "the artifact has no store")
        if offset + length > file_size:
            fail(w, f"[{offset}, {offset + length}) is outside the {file_size}-byte data file")
        if offset < end:
            fail(f"{w}.offset", f"{offset} overlaps the previous chunk (ends at {end})")
        if item is not None:
            if item <= last_item:
                fail(f"{w}.item", "items must be in increasing order")
            gap = item - last_item - 1
            if gap > (1 if padded and where == "data_chunks" else 0):
                fail(f"{w}.item", f"{item} skips {gap} items (only one padding item may "
                     f"precede an aligned data chunk)")
            last_item = item
        end = offset + length
    if items != last_item + 1:
        fail("store.items", f"{items} but the chunks use {last_item + 1} items")
    if items and end != file_size:
        fail("store.file_size", f"{file_size} but the last chunk ends at {end} (bytes outside "
             f"every chunk)")


def file_alignment(module, data_align: Optional[int], file_align: int,
                   data: Sequence[ChunkEntry], page: int) -> None:
    """Static images start at file offsets this host can map (multiples of its pages)."""
    if not is_pow2(file_align) or file_align > MAX_ALIGN:
        fail("file_align", f"must be a power of two <= {MAX_ALIGN}")
    mi = module.memory_initialization
    if not isinstance(mi, MemoryInitialization.Static) or all(e is None for e in mi.map):
        return
    if data_align % page or file_align % page or file_align < data_align:
        fail("data_align", f"images aligned to {data_align} bytes (file: {file_align}) "
             f"cannot be mapped with {page}-byte host pages: recompile on this host")
    chunks = Chunks([e.length for e in data])
    for k, init in enumerate(mi.map):
        if init is None:
            continue
        ci = chunks.index_of(init.data)
        off = data[ci].offset + (init.data.start - chunks.starts[ci])
        if off % file_align:
            fail(f"data_chunks[{ci}].offset", f"image of memory {k} at file offset {off} "
                 f"is not aligned to {file_align}")


def index_agrees(starts: List[int], ends: List[int], file_size: int,
                 data: Sequence[ChunkEntry], passive: Sequence[ChunkEntry],
                 code: Optional[ChunkEntry] = None) -> None:
    """mmap-ninja's item bounds cover the data file and match every chunk entry."""
    pos = 0
    for k, (start, end) in enumerate(zip(starts, ends)):
        if start != pos or end <= start:
            fail("mmap-ninja index", f"item {k} is [{start}, {end}), expected to start at {pos} "
                 f"and be non-empty")
        pos = end
    if pos != file_size:
        fail("mmap-ninja index", f"covers {pos} bytes, the data file has {file_size}")
    for w, _, (length, offset, item) in _entries(data, passive, code):
        if item is not None and (starts[item] != offset or ends[item] != offset + length):
            fail(w, f"[{offset}, {offset + length}) but mmap-ninja item {item} "
                 f"is [{starts[item]}, {ends[item]})")
