"""ModuleTranslation: a Module plus its data bytes, and the compile-time optimizations."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import List, Optional, Union

from .init import (InitMemory, MemoryInitialization, StaticMemoryInitializer,
                   TableInitialization)
from .module import Module
from .types import ValType

Chunk = Union[memoryview, bytes, bytearray]

#: Largest table folded into a FuncTable array (elements); bigger stays eager.
MAX_FUNC_TABLE_SIZE = 1024 * 1024
#: Default threshold under which a sparse image is still built (bytes).
MAX_IMAGE_SIZE_ALWAYS_ALLOWED = 16 << 20


class _DataStore:
    """Chunks addressed by ranges into their concatenation (each range within one chunk)."""

    def __init__(self):
        self.chunks: List[Chunk] = []
        self._starts: List[int] = []
        self.byte_len = 0

    def push(self, chunk: Chunk) -> range:
        start = self.byte_len
        self.chunks.append(chunk)
        self._starts.append(start)
        self.byte_len += len(chunk)
        return range(start, self.byte_len)

    def view(self, r: range) -> memoryview:
        """Zero-copy view of the bytes of ``r``."""
        if len(r) == 0:
            return memoryview(b"")
        i = bisect.bisect_right(self._starts, r.start) - 1
        base = self._starts[i]
        chunk = memoryview(self.chunks[i])
        if r.stop - base > len(chunk):
            raise IndexError(f"range {r} spans more than one data chunk")
        return chunk[r.start - base:r.stop - base]

    def clear(self):
        self.__init__()


@dataclass
class ModuleTranslation:
    """The result of decoding: the module and the bytes its initializers refer to.

    ``data`` holds active data segments (Segmented) or page-aligned images (Static);
    ``passive_data`` the passive segments. Views into the input are zero-copy.
    """

    module: Module
    wasm: Optional[memoryview] = None
    data: _DataStore = field(default_factory=_DataStore)
    passive_data: _DataStore = field(default_factory=_DataStore)
    #: Alignment of every chunk start in ``data`` once static init succeeded.
    data_align: Optional[int] = None

    def data_view(self, r: range) -> memoryview:
        return self.data.view(r)

    def passive_data_view(self, data_index: int) -> Optional[memoryview]:
        """Bytes of passive segment ``data_index``, or None if it is not passive."""
        r = self.module.passive_data_map.get(data_index)
        return None if r is None else self.passive_data.view(r)

    # -- memory: Segmented -> Static ------------------------------------------------------
    def try_static_init(self, page_size: int,
                        max_image_size_always_allowed: int = MAX_IMAGE_SIZE_ALWAYS_ALLOWED) -> bool:
        """Turn Segmented init into one page-aligned image per memory if that is safe and dense.

        Returns True if the module now has Static initialization.
        """
        module = self.module
        if not module.memory_initialization.is_segmented():
            return False
        if page_size <= 0 or page_size & (page_size - 1):
            raise ValueError(f"page_size must be a power of two, got {page_size}")
        n = len(module.memory_plans)
        data_size = [0] * n
        min_addr = [None] * n
        max_addr = [0] * n
        segments = [[] for _ in range(n)]

        def dry_run(memory_index, init: StaticMemoryInitializer) -> bool:
            if module.defined_memory_index(memory_index) is None:
                return False
            length = len(init.data)
            if length:
                data_size[memory_index] += length
                lo = min_addr[memory_index]
                min_addr[memory_index] = init.offset if lo is None else min(lo, init.offset)
                max_addr[memory_index] = max(max_addr[memory_index], init.offset + length)
                segments[memory_index].append(init)
            return True

        if not module.memory_initialization.init_memory(InitMemory.CompileTime(module), dry_run):
            return False
        for i in range(n):
            if data_size[i] == 0:
                continue
            span = max_addr[i] - min_addr[i]
            if span < 2 * data_size[i] or span < max_image_size_always_allowed:
                continue
            return False  # one sparse memory keeps the whole module Segmented

        images = _DataStore()
        static_map = []
        for i in range(n):
            if not segments[i]:
                static_map.append(None)
                continue
            base = min_addr[i]
            image = bytearray(max_addr[i] - base)
            for init in segments[i]:  # in order: later segments win
                off = init.offset - base
                image[off:off + len(init.data)] = self.data.view(init.data)
            last = len(image.rstrip(b"\0"))
            first = len(image) - len(image.lstrip(b"\0")) if last else 0
            if last == 0:
                static_map.append(None)  # all zeros: nothing to map
                continue
            start = base + first
            front = start % page_size
            start -= front
            length = front + (last - first)
            back = -length % page_size
            if front == 0 and back == 0 and first == 0 and last == len(image):
                padded = image
            else:
                padded = bytearray(front) + image[first:last] + bytearray(back)
            static_map.append(StaticMemoryInitializer(start, images.push(padded)))
        self.data = images
        self.data_align = page_size
        module.memory_initialization = MemoryInitialization.Static(tuple(static_map))
        return True

    # -- tables: Segments -> FuncTable ----------------------------------------------------
    def try_func_table_init(self) -> bool:
        """Fold leading constant in-bounds funcref segments into per-table arrays.

        The first segment that cannot be folded, and every later one, stays a leftover
        applied eagerly in order. Returns True if the initialization changed kind.
        """
        module = self.module
        init = module.table_initialization
        if not isinstance(init, TableInitialization.Segments):
            return False
        tables: List[Optional[list]] = [None] * len(module.table_plans)
        segments = list(init.segments)
        folded = 0
        for seg in segments:
            plan = module.table_plans[seg.table_index].table
            if (module.is_imported_table(seg.table_index) or plan.element is not ValType.FUNCREF
                    or seg.base is not None or seg.expr is not None or not seg.is_foldable_items):
                break
            top = seg.offset + len(seg.elements)
            if top > plan.minimum or top > MAX_FUNC_TABLE_SIZE:
                break
            arr = tables[seg.table_index]
            if arr is None:
                arr = tables[seg.table_index] = []
            if len(arr) < top:  # sized to the highest folded element, not the table minimum
                arr.extend([None] * (top - len(arr)))
            arr[seg.offset:top] = seg.elements
            folded += 1
        module.table_initialization = TableInitialization.FuncTable(
            tuple(None if t is None else tuple(t) for t in tables), tuple(segments[folded:]))
        return True
