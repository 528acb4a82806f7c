"""ModuleTranslation: a Module plus its data bytes, and the compile-time optimizations."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Tuple, Union

from .init import (MemoryInitialization, StaticMemoryInitializer, TableInitialization,
                   compile_time_writes)
from .module import Module
from .tunables import Tunables
from .types import ValType

Chunk = Union[memoryview, bytes, bytearray]

#: Largest table folded into a FuncTable array (elements); bigger stays eager.
MAX_FUNC_TABLE_SIZE = 1024 * 1024
#: Default threshold under which a sparse image is still built (bytes).
MAX_IMAGE_SIZE_ALWAYS_ALLOWED = 16 << 20


_ZERO_PAGES = {}


def _nonzero(view: memoryview) -> bool:
    zeros = _ZERO_PAGES.get(len(view))
    if zeros is None:
        zeros = _ZERO_PAGES[len(view)] = bytes(len(view)) if len(view) <= 1 << 16 else None
    return view != (zeros if zeros is not None else bytes(len(view)))


class _DataStore:
    """Chunks addressed by ranges into their concatenation (each range within one chunk)."""

    def __init__(self):
        self.chunks: List[Chunk] = []
        self._starts: List[int] = []
        self._index = {}  # chunk start -> chunk number (ranges usually start a chunk)
        self.byte_len = 0

    def push(self, chunk: Chunk) -> range:
        start = self.byte_len
        self._index[start] = len(self.chunks)
        self.chunks.append(chunk)
        self._starts.append(start)
        self.byte_len = end = start + len(chunk)
        return range(start, end)

    def view(self, r: range) -> memoryview:
        """Zero-copy view of the bytes of ``r``."""
        if not r:
            return memoryview(b"")
        i = self._index.get(r.start)
        if i is None:
            i = bisect.bisect_right(self._starts, r.start) - 1
        base = self._starts[i]
        chunk = memoryview(self.chunks[i])
        if r.stop - base > len(chunk):
            raise IndexError(f"range {r} spans more than one data chunk")
        return chunk[r.start - base:r.stop - base]


class CodeSection(NamedTuple):
    """Where the function bodies are, and what validating them needs beyond the Module.

    ``buffer`` holds the bodies: the input module itself for a decoded translation, the
    artifact's code blob (a view of its mapped data file) for a loaded one.
    """

    #: ``(start, end)`` offsets in ``buffer`` of each defined function's body (locals and
    #: code, after the size), in function order.
    bodies: Tuple[Tuple[int, int], ...] = ()
    #: Reference type of each element segment, by segment index.
    elem_types: Tuple[object, ...] = ()
    #: The data count section's value; None when the section is absent.
    data_count: Optional[int] = None
    #: The bytes ``bodies`` index (a zero-copy memoryview); None: not available.
    buffer: Optional[memoryview] = None
    #: Byte offset in the original module of ``buffer[0]`` (0 for a decoded module): error
    #: and code offsets are reported as ``module_offset`` + offset in ``buffer``.
    module_offset: int = 0

    def body(self, index: int) -> memoryview:
        """Zero-copy view of the body of defined function ``index`` (locals and code)."""
        start, end = self.bodies[index]
        return self.buffer[start:end]


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
    #: The code section as decoded (None when the bodies are not available, e.g. an
    #: artifact that does not keep them).
    code: Optional[CodeSection] = None
    #: The tunables the plans were computed with, when known (set by ``load_artifact``).
    tunables: Optional[Tunables] = None
    #: Where ``data`` and ``passive_data`` live on disk (a ``wasmenv.artifact.ArtifactInfo``)
    #: when loaded from an artifact, else None.
    artifact: Optional[object] = None

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
        per_memory = self._dry_run()
        if per_memory is None:
            return False
        for segs in per_memory:
            if not segs:
                continue
            data_size = sum(len(r) for _, r in segs)
            span = max(o + len(r) for o, r in segs) - min(o for o, _ in segs)
            if span < 2 * data_size or span < max_image_size_always_allowed:
                continue
            return False  # one sparse memory keeps the whole module Segmented

        images = _DataStore()
        static_map = []
        for segs in per_memory:
            image = self._build_image(segs, page_size) if segs else None
            if image is None:
                static_map.append(None)  # no data, or all zeros: nothing to map
            else:
                offset, chunk = image
                static_map.append(StaticMemoryInitializer(offset, images.push(chunk)))
        self.data = images
        self.data_align = page_size
        module.memory_initialization = MemoryInitialization.Static(tuple(static_map))
        return True

    def _dry_run(self):
        """Compile-time application of every segment (init_memory's rule, through
        :func:`compile_time_writes`): per memory, the non-empty ``(offset, data range)`` in
        order, or None if static init is impossible (imported memory, global base, overflow
        or out of bounds of the minimum)."""
        module = self.module
        initializers = module.memory_initialization.initializers
        imported = module.num_imported_memories
        # An imported memory gets no image: a segment for one, even an empty one (it still
        # bounds-checks the memory at instantiation), keeps the module Segmented.
        if imported and any(init.memory_index < imported for init in initializers):
            return None
        return compile_time_writes(initializers, module)

    def _build_image(self, segs, page_size):
        """``(offset, chunk)`` of the page-aligned image of ``segs`` (later segments win),
        trimmed to the pages holding non-zero bytes; None if it is all zeros."""
        if len(segs) == 1:
            offset, r = segs[0]
            view = self.data.view(r)
            if offset % page_size == 0 and len(view) % page_size == 0 and \
                    _nonzero(view[:page_size]) and _nonzero(view[-page_size:]):
                return offset, view  # already an aligned, trimmed image: zero-copy
        base = min(o for o, _ in segs) // page_size * page_size
        top = -(-max(o + len(r) for o, r in segs) // page_size) * page_size
        image = bytearray(top - base)
        view_of = self.data.view
        for offset, r in segs:
            at = offset - base
            image[at:at + len(r)] = view_of(r)
        view = memoryview(image)
        pages = len(image) // page_size
        first = next((p for p in range(pages) if _nonzero(view[p * page_size:(p + 1) * page_size])), None)
        if first is None:
            return None
        last = next(p for p in range(pages - 1, first - 1, -1)
                    if _nonzero(view[p * page_size:(p + 1) * page_size]))
        if first == 0 and last == pages - 1:
            return base, image
        return base + first * page_size, view[first * page_size:(last + 1) * page_size]

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
            # A FuncTable array cannot tell "unset" from an explicit null: tables whose
            # initializer is not null keep their segments eager.
            non_null_init = plan.init is not None and not plan.init.is_null()
            if (module.is_imported_table(seg.table_index) or plan.element is not ValType.FUNCREF
                    or non_null_init or seg.base is not None or seg.expr is not None
                    or not seg.is_foldable_items):
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
