"""InstanceLayout: what instantiating a module needs that does not depend on the instance.

Computed once per Module (cached as ``Module._instance_layout``) by :func:`layout_of`:
the instance block's layout (``wasmenv.vmoffsets``) and the defined globals' template
(``wasmenv.vmglobals``: constant initializers evaluated here, once), tags, tables with
their initializers, defined memories with their plans and images (validated once here),
the C specs allocators open memories and tables from, element segments, the data to copy when
an image is not mapped, passive data segments, export names; and, once the first instance began, the allocation its engine's allocator
serves instances of this module with, and whether they take the one-call path
(``fast``: one memory and its tables, nothing to link but functions, nothing to initialize).
"""
from __future__ import annotations

import threading
import time
from typing import NamedTuple, Optional

from wasmenv import WASM_PAGE_SIZE, TableInitialization
from wasmenv.vmglobals import GlobalsTemplate
from wasmenv.vmoffsets import VMOffsets

from . import _ffi
from .allocator import begin_instance
from .errors import AllocationError
from .memory import Memory
from .module import Module
from .table import TableSpec

_U64_MAX = (1 << 64) - 1

__all__ = ["InstanceLayout", "DataPlan", "ElementWrite", "layout_of", "allocation_of"]


class ElementWrite(NamedTuple):
    """An element segment as instances write it (an eager one, a
    ``wasmenv.TableInitializer``, at instantiation; a passive one by table.init): when its
    items are all function indices or null and one at least is a defined function,
    ``funcs`` holds them as a C array (null: ``_ffi.LAZY_NONE``; written by one
    C call over the instance's interpreter state, ``Table._write_funcs``) and ``imported``
    the distinct imported functions among them (what the table then holds); else
    ``funcs`` is None: items evaluated one by one (imports and nulls alone need no
    interpreter state: an Emscripten side module's segment of imports makes none)."""

    segment: object
    funcs: Optional[object]
    imported: tuple

    @classmethod
    def of(cls, segment, num_imported_funcs: int, items=None) -> "ElementWrite":
        """``items``: the segment's (default: an active one's ``elements``)."""
        items = segment.elements if items is None else items
        if not all(e is None or type(e) is int for e in items) \
                or all(e is None or e < num_imported_funcs for e in items):
            return cls(segment, None, ())
        funcs = _ffi.new_u32s(_ffi.LAZY_NONE if e is None else e for e in items)
        imported = tuple(sorted({e for e in items if e is not None and e < num_imported_funcs}))
        return cls(segment, funcs, imported)


class InstanceLayout:
    """What instantiating a module needs that does not depend on the instance, computed
    once per Module (``Module._instance_layout``): the block layout, the globals template,
    tags, tables (with the C specs their allocator opens them from) and memories with their
    plans and images, element segments, the data to copy when an image is not mapped,
    passive data segments, export names."""

    __slots__ = ("vmoffsets", "block_bytes", "globals_start", "globals_template", "tags", "tables",
                 "table_specs", "table_inits", "memories", "element_segments", "segmented",
                 "copies", "passive_data", "passive_elements", "export_names", "memory_count",
                 "reserve_bytes", "specs", "memories_only", "initializes", "allocation", "fast", "data_plan",
                 "counts_calls", "lazy_block", "plain", "links", "table_count",
                 "funcrefs_made_at_once")

    def __init__(self, module: Module):
        env = module.env
        self.vmoffsets = offsets = VMOffsets.for_module(env)
        # The block is allocated through the last region instances fill so far (imported
        # globals' cell pointers): the regions after it (funcrefs, imported functions,
        # dropped flags) are not used yet, and zeroing them costs resident memory (the C
        # heap clears reused pages: 189 KB of funcrefs for a module like yosys). Offsets
        # are VMOffsets' either way; the size grows to ``offsets.size`` as they move in.
        self.block_bytes = offsets.end("imported_globals")
        self.globals_start = offsets.start("defined_globals")
        self.globals_template = GlobalsTemplate.for_module(env)
        self.tags = tuple(t.func_type for t in env.tags[env.num_imported_tags:])
        tinit = env.table_initialization
        lazy = tinit.tables if isinstance(tinit, TableInitialization.FuncTable) else ()
        #: An instance counts its calls in flight (runtime/_holds.py), whose end what it
        #: keeps waits for, when it has a table, or references can cross into it: a
        #: function signature or a global of a reference type (a funcref it keeps: _keep).
        self.counts_calls = bool(env.table_plans) or any(
            getattr(v, "is_ref", False) for t in env.types for v in (*t.func.params, *t.func.results)) \
            or any(getattr(g.type.content, "is_ref", False) for g in env.globals)
        self.tables = tuple(TableSpec.of(env.table_plans[i], lazy[i] if i < len(lazy) else None)
                            for i in range(env.num_imported_tables, len(env.table_plans)))
        # The C specs allocators open the defined tables from (wenv_tables.h), together.
        self.table_specs = _ffi.new_table_specs([(spec.plan.table.minimum, spec.limit) for spec in self.tables])
        self.table_inits = tuple((k, spec.plan.table.init, spec.plan.table.minimum)  # (defined index, expr, size)
                                 for k, spec in enumerate(self.tables) if spec.plan.table.init is not None)
        images = module.images
        self.memories = tuple((env.memory_plans[i], images[i])
                              for i in range(env.num_imported_memories, len(env.memory_plans)))
        self.element_segments = tuple(ElementWrite.of(seg, env.num_imported_funcs) for seg in tinit.segments)
        #: The funcref records instantiation makes (the defined functions its eager
        #: segments name): how the interpreter state is allocated (_ffi.new_vm_state).
        self.funcrefs_made_at_once = len({e for w in self.element_segments if w.funcs is not None
                                          for e in w.segment.elements
                                          if type(e) is int and e >= env.num_imported_funcs})
        minit = env.memory_initialization
        self.segmented = minit if minit.is_segmented() else None
        data = module.translation.data
        self.data_plan = DataPlan(minit.initializers, data, module) if self.segmented else None
        self.copies = () if self.segmented else tuple(
            (index, static.offset, data.view(static.data))
            for index, static in enumerate(minit.map) if static is not None and images[index] is None)
        self.passive_data = env.passive_data_map
        # Passive element segments (table.init) whose items are function indices or null.
        passive = ((k, ElementWrite.of(seg, env.num_imported_funcs, seg.items))
                   for k, seg in env.passive_elements.items() if seg.mode == "passive")
        self.passive_elements = {k: w for k, w in passive if w.funcs is not None}
        self.export_names = tuple(env.exports)
        # Per defined memory: validated once here, and the C spec allocators open it from.
        self.memory_count = len(self.memories)
        for plan, image in self.memories:
            Memory.check_plan(plan, image)
        self.reserve_bytes = tuple(plan.reservation_bytes() for plan, _ in self.memories)
        self.specs = _ffi.new_memory_specs(max(1, self.memory_count))
        for spec, (plan, image), total in zip(self.specs, self.memories, self.reserve_bytes):
            # Sizes of 2^64 or more (memory64) become 2^64 - 1: _ffi.memory_open refuses them.
            spec.reserve_bytes = min(total, _U64_MAX)
            spec.pre_guard = plan.pre_guard_size
            spec.accessible = min(plan.memory.minimum * WASM_PAGE_SIZE, _U64_MAX)
            spec.image_fd = -1
            if image is not None and image.byte_len:
                spec.image_fd = image.fd
                spec.image_file_offset = image.file_offset
                spec.image_offset = image.linear_offset
                spec.image_len = image.byte_len
                spec.image_key = image.key
        self.allocation = None  # the engine allocator's begin_instance(module), once it accepted it
        self.fast = False       # plain, and specs[0].pool is set: the one-call path
        # Anything for Instance._instantiate to do (after the allocator opened memories and tables)?
        self.initializes = bool(self.globals_template.per_instance or self.table_inits or self.element_segments
                                or self.segmented or self.copies or env.start_func is not None)
        self.memories_only = not (env.initializers or env.globals or self.tags or env.table_plans
                                  or self.element_segments or self.segmented or self.copies
                                 or env.start_func is not None)
        #: The block holds nothing but the template until something reads it (a call, a
        #: global's view, an importer): Instance._cells makes it then. It is made at
        #: instantiation when the instance writes into it (imported globals' cell
        #: pointers) or runs anything there (initializers, segments, a start function,
        #: which mostly need it).
        self.lazy_block = not (env.num_imported_globals or self.initializes)
        #: Nothing per instance but its memory and tables opened (one C call each way) and
        #: its imported functions kept: one memory, nothing to initialize, nothing
        #: imported but functions (imports that hold or cross nothing: ResolvedImports.plain).
        self.plain = (self.memory_count == 1 and not self.initializes and not self.tags
                      and len(env.initializers) == env.num_imported_funcs)  # (so its block is lazy)
        self.links = bool(env.initializers)  # anything to import
        self.table_count = len(self.tables)  # (read by the one-call open: Allocation.open_one)

    def set_fast(self, allocation) -> None:
        """After a first instance of a plain layout: its instances take the one-call path
        (Instance._init) if ``allocation`` has one (a fast_context: NULL or a pool)."""
        context = allocation.fast_context(self)
        if context is not None and self.plain:
            self.specs[0].pool = context
            self.fast = True


class DataPlan:
    """A module's active data segments (Segmented initialization) as one C array of writes,
    applied in order by one C call per instance (``_ffi.data_apply``): starts that are
    constants are resolved here, once; ``per_instance`` lists the ``(index, initializer)``
    whose start reads a global (``MemoryInitializer.start``, the one rule), resolved per
    instance into a copy of the array.

    Large segments (the ``MAX_MAPPED`` largest of at least ``_ffi.MAP_WRITE_BYTES`` and a
    page) also get a file holding their bytes (a MemoryImage, owned by the module), so that
    C maps their whole pages copy-on-write instead of copying them, into memories whose
    pages are their own (``WENV_MEM_MAPPABLE``): the bytes read the same either way. A
    start read from a global may fall anywhere in a page, and a page can only be mapped
    from a file offset that agrees with it modulo the page: one file per such remainder,
    made on first use, at most ``MAX_REMAINDERS`` per segment (the others copy)."""

    MAX_MAPPED = 4       # each mapped write splits the memory's mapping in up to three
    MAX_REMAINDERS = 4
    RETRY_SECONDS = 1.0  # after a data file could not be made

    __slots__ = ("writes", "count", "per_instance", "memories", "mapped", "_keep", "_views",
                 "_module", "_files", "_lock", "fail")

    def __init__(self, initializers, data, module):
        entries, per_instance = [], []
        for i, init in enumerate(initializers):
            constant = init.base is None and init.expr is None
            entries.append((init.memory_index, init.start(None) if constant else 0, data.view(init.data)))
            if not constant:
                per_instance.append((i, init))
        self.writes, self._keep = _ffi.new_data_writes(entries)
        self.count = len(entries)
        self.per_instance = tuple(per_instance)
        self.memories = frozenset(init.memory_index for init in initializers)
        self._views = [view for _, _, view in entries]
        self._module, self._files, self._lock = module, {}, threading.Lock()
        self.fail = 0  # a WENV_FAIL_* mask for the mapped writes' mmaps (tests)
        big = sorted(((len(view), i) for i, view in enumerate(self._views)
                      if len(view) >= _ffi.MAP_WRITE_BYTES + _ffi.PAGE_SIZE), reverse=True)
        self.mapped = frozenset(i for _, i in big[:self.MAX_MAPPED]) if module.engine.memory_init_cow else frozenset()
        dynamic = {i for i, _ in per_instance}
        for i in self.mapped - dynamic:
            self.map_from_file(self.writes, i, entries[i][1])

    def map_from_file(self, writes, i: int, start: int) -> None:
        """Let ``writes[i]`` (segment ``i``, starting at ``start``) map its pages from the
        segment's file for ``start``'s remainder (made now if need be), or leave it a copy."""
        r = start % _ffi.PAGE_SIZE
        key = (i, r)
        entry = self._files.get(key)
        if _to_make(entry):
            with self._lock:
                entry = self._files.get(key)
                if _to_make(entry):
                    entry = self._files[key] = self._new_file(i, r)
        if _is_file(entry):
            writes[i].file_offset, writes[i].fd = r, entry.fd

    def _new_file(self, i, r):
        """The file of segment ``i`` for remainder ``r``; False when the segment has
        ``MAX_REMAINDERS`` already; when no file could be made (out of file descriptors,
        say), the monotonic time after which the next instantiation tries again
        (``RETRY_SECONDS`` on): the writes copy meanwhile."""
        from .image import MemoryImage
        if sum(1 for (j, _), e in self._files.items() if j == i and _is_file(e)) >= self.MAX_REMAINDERS:
            return False
        module = self._module
        try:
            image = MemoryImage.holding(self._views[i], r, backing=getattr(module.engine, "image_backing", None))
        except AllocationError:
            return time.monotonic() + self.RETRY_SECONDS
        module._data_images.append(image)
        return image


# DataPlan._files entries: a MemoryImage; False (copy: too many remainders); a float, the
# monotonic time from which a file that could not be made is tried again.
def _is_file(entry) -> bool:
    return entry is not None and entry is not False and type(entry) is not float


def _to_make(entry) -> bool:
    return entry is None or type(entry) is float and time.monotonic() >= entry


def allocation_of(module: Module, layout: InstanceLayout):
    """What the engine's allocator gives instances of ``module`` (asked once per module:
    a pooling allocator checks the module against its limits there, and may refuse)."""
    alloc = begin_instance(module.engine.allocator, module)
    context = alloc.fast_context(layout)
    if context is not None:  # the spec's pool: an instance's only memory opens in one call
        layout.specs[0].pool = context
    layout.allocation = alloc
    return alloc


def layout_of(module: Module) -> InstanceLayout:
    layout = module._instance_layout
    if layout is None:
        layout = module._instance_layout = InstanceLayout(module)
    return layout
