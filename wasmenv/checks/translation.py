"""A whole :class:`ModuleTranslation` built by anyone else (an artifact's metadata, a
hand-built one): every field's type, range and cross-reference, with the field's path in
the error. Applies the shared rules of :mod:`wasmenv.checks.rules` to each part."""
from __future__ import annotations

import bisect
import itertools
import operator
from typing import Optional, Sequence

from ..constexpr import ConstExpr
from ..init import (MemoryInitialization, MemoryInitializer, StaticMemoryInitializer,
                    TableInitialization, TableInitializer)
from ..module import ElementSegment, FunctionType, Global, Initializer, Module, ModuleType
from ..plans import MemoryPlan, MemoryStyle, TablePlan, TableStyle
from ..translation import MAX_FUNC_TABLE_SIZE, CodeSection, ModuleTranslation
from ..tunables import Tunables
from ..types import (WASM_PAGE_SIZE, EntityIndex, ExternKind, GlobalType, MemoryType, RefType,
                     TableType, TagType, ValType, is_defaultable, is_subtype)
from .rules import (MAX_ALIGN, U32, U64, Invalid, const_expr, func_type, is_pow2, memory_limits,
                    start_func_type, table_init, table_limits, tag_type, value_type)


# =====================================================================================
# A whole translation
# =====================================================================================
class Chunks:
    """Chunk boundaries of a data store, for range checks."""

    def __init__(self, lengths: Sequence[int]):
        self.starts = []
        total = 0
        for n in lengths:
            self.starts.append(total)
            total += n
        self.lengths = list(lengths)
        self.total = total

    def index_of(self, r: range) -> Optional[int]:
        """The chunk holding non-empty ``r``, else None (or for empty ``r``)."""
        if len(r) == 0:
            return None
        i = bisect.bisect_right(self.starts, r.start) - 1
        return i if i >= 0 and r.stop - self.starts[i] <= self.lengths[i] else None


def check_translation(translation: ModuleTranslation, tunables: Optional[Tunables] = None) -> None:
    """Check every invariant of ``translation`` (plans against ``tunables`` unless None).

    Raises:
        Invalid: the first inconsistency; ``at`` is the field's path.
    """
    if not isinstance(translation, ModuleTranslation):
        raise Invalid(f"not a ModuleTranslation: {type(translation).__name__}")
    data_lengths = [_chunk_len(c, f"data.chunks[{i}]") for i, c in enumerate(translation.data.chunks)]
    passive_lengths = [_chunk_len(c, f"passive_data.chunks[{i}]")
                       for i, c in enumerate(translation.passive_data.chunks)]
    code = translation.code
    code_byte_len = None
    if code is not None:
        _is(code, CodeSection, "code")
        if code.buffer is None:
            if code.bodies:
                raise Invalid("function bodies but no bytes", "code.buffer")
            code_byte_len = 0
        else:
            code_byte_len = _chunk_len(code.buffer, "code.buffer")
    check_module(translation.module, translation.data_align, data_lengths, passive_lengths, tunables,
                 code, code_byte_len)


def check_module(module: Module, data_align: Optional[int], data_lengths: Sequence[int],
                 passive_lengths: Sequence[int], tunables: Optional[Tunables] = None,
                 code: Optional[CodeSection] = None, code_byte_len: Optional[int] = None) -> None:
    """:func:`check_translation` of a module whose stores have chunks of these lengths, and
    whose code section (if not None) has ``code_byte_len`` bytes (the artifact loader checks
    the model against the chunk layout before mapping)."""
    _Checker(module, data_align, Chunks(data_lengths), Chunks(passive_lengths), tunables,
             code, code_byte_len).run()


def _chunk_len(chunk, where) -> int:
    try:
        return memoryview(chunk).nbytes
    except TypeError:
        raise Invalid("not a bytes-like object", where) from None


def _tname(v) -> str:
    return "null" if v is None else type(v).__name__


def _int(v, where, lo=0, hi=None):
    if type(v) is not int:
        raise Invalid(f"expected an integer, got {_tname(v)}", where)
    if v < lo or (hi is not None and v > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise Invalid(f"{v} out of range {bound}", where)


def _str(v, where, optional=False):
    if v is None and optional:
        return
    if type(v) is not str:
        raise Invalid(f"expected a string, got {_tname(v)}", where)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("string is not valid UTF-8 (lone surrogate)", where) from None


def _is(v, cls, where, what=None):
    """``v`` is exactly a ``cls`` (bool, tuple, a model class)."""
    if type(v) is not cls:
        raise Invalid(f"expected {what or cls.__name__}, got {v!r}", where)


def _at(where, fn, *args):
    """Run a shared rule, reporting a failure at field ``where``."""
    try:
        fn(*args)
    except Invalid as exc:
        raise Invalid(exc.message, where) from None


class _Checker:
    """One pass over a module, section by section, in the decoder's order."""

    def __init__(self, module, data_align, data: Chunks, passive: Chunks, tunables,
                 code=None, code_byte_len=None):
        self.m = module
        self.data_align = data_align
        self.data = data
        self.passive = passive
        self.tunables = tunables
        self.code_section = code
        self.code_byte_len = code_byte_len

    def run(self):
        m = self.m
        if not isinstance(m, Module):
            raise Invalid(f"expected a Module, got {_tname(m)}", "module")
        if self.data_align is not None and not (is_pow2(self.data_align) and self.data_align <= MAX_ALIGN):
            raise Invalid(f"must be null or a power of two <= {MAX_ALIGN}, got {self.data_align!r}",
                          "data_align")
        _str(m.name, "module.name", optional=True)
        for fld in ("num_imported_funcs", "num_imported_tables", "num_imported_memories",
                    "num_imported_globals", "num_imported_tags", "num_escaped_funcs",
                    "num_data_segments", "num_elem_segments"):
            _int(getattr(m, fld), f"module.{fld}")
        for fld in ("types", "functions", "table_plans", "memory_plans", "globals", "tags",
                    "initializers"):
            if type(getattr(m, fld)) is not list:
                raise Invalid(f"expected a list, got {_tname(getattr(m, fld))}", f"module.{fld}")
        for kind, fld in _IMPORT_COUNTS:
            space = _space(m, kind)
            if getattr(m, fld) > space:
                raise Invalid(f"{getattr(m, fld)} imports but only {space} entries", f"module.{fld}")
        for section in (self.types, self.functions, self.tables, self.memories, self.globals,
                        self.tags, self.imports, self.exports, self.memory_initialization,
                        self.table_initialization, self.element_and_data_segments):
            section()
        if self.code_section is not None:
            self.code()

    # -- helpers --------------------------------------------------------------------------
    def expr(self, e, expected, where, num_globals=None):
        if type(e) is not ConstExpr or type(e.ops) is not tuple or not e.ops:
            raise Invalid(f"expected a non-empty constant expression, got {e!r}", where)
        try:
            const_expr(e.ops, expected, self.global_types,
                       len(self.global_types) if num_globals is None else num_globals,
                       self.func_sigs, self.func_types)
        except Invalid as exc:
            raise Invalid(exc.message, where if exc.at is None else f"{where}[{exc.at}]") from None

    def items(self, items, element, where):
        """Element items: function indices (checked per signature), None, or expressions."""
        _is(items, tuple, where, "a tuple")
        nfuncs = len(self.func_sigs)
        sigs = set()
        nullable = is_defaultable(element)
        for j, v in enumerate(items):
            if v is None:
                if not nullable:
                    raise Invalid(f"null item in a {element} segment", f"{where}[{j}]")
                continue
            if type(v) is int:
                if not 0 <= v < nfuncs:
                    raise Invalid(f"function {v} out of range ({nfuncs} functions)", f"{where}[{j}]")
                sigs.add(self.func_sigs[v])
            else:
                self.expr(v, element, f"{where}[{j}]")
        for sig in sigs:
            if not is_subtype(RefType(False, self.func_types[sig]), element):
                raise Invalid(f"function index in a {element} segment: type mismatch: invalid "
                              f"element type `(ref {self.func_types[sig]})`", where)

    def base_global(self, g, want, where):
        if g is None:
            return
        _int(g, where)
        if g >= len(self.global_types):
            raise Invalid(f"global {g} out of range ({len(self.global_types)} globals)", where)
        gt = self.global_types[g]
        if gt.content is not want or gt.mutable:
            raise Invalid(f"base global {g} must be an immutable {want}", where)

    def range_(self, r, chunks: Chunks, where):
        if type(r) is not range or r.step != 1:
            raise Invalid(f"expected a range with step 1, got {r!r}", where)
        if not 0 <= r.start <= r.stop <= chunks.total:
            raise Invalid(f"range [{r.start}, {r.stop}) outside the {chunks.total} bytes of its store",
                          where)
        if len(r) and chunks.index_of(r) is None:
            raise Invalid(f"range [{r.start}, {r.stop}) spans more than one data chunk", where)

    # -- sections -------------------------------------------------------------------------
    def types(self):
        for i, t in enumerate(self.m.types):
            w = f"module.types[{i}]"
            _is(t, ModuleType, w, "a ModuleType(FuncType)")
            _at(w, func_type, t.func)
        self.func_types = [t.func for t in self.m.types]

    def functions(self):
        m = self.m
        ntypes = len(self.func_types)
        anyfuncs = set()
        for i, f in enumerate(m.functions):
            # Inline: the common, trivially valid case (thousands of functions); anything
            # else, every error included, goes to the rule below.
            if type(f) is not FunctionType or type(f.signature) is not int \
                    or not 0 <= f.signature < ntypes or f.anyfunc is not None:
                self.function(i, f, ntypes, anyfuncs)
        if len(anyfuncs) != m.num_escaped_funcs:
            raise Invalid(f"{m.num_escaped_funcs} but {len(anyfuncs)} functions escape (anyfunc "
                          f"indices must be dense)", "module.num_escaped_funcs")
        self.func_sigs = [f.signature for f in m.functions]

    def function(self, i, f, ntypes, anyfuncs):
        """The rule of function ``i``: a FunctionType of a known type, escaping with an
        anyfunc index of its own (added to ``anyfuncs``) or not at all."""
        w = f"module.functions[{i}]"
        _is(f, FunctionType, w)
        _int(f.signature, f"{w}.signature", 0, ntypes - 1 if ntypes else -1)
        if f.anyfunc is not None:
            _int(f.anyfunc, f"{w}.anyfunc", 0, self.m.num_escaped_funcs - 1)
            if f.anyfunc in anyfuncs:
                raise Invalid(f"anyfunc index {f.anyfunc} used twice", f"{w}.anyfunc")
            anyfuncs.add(f.anyfunc)

    def tables(self):
        for i, p in enumerate(self.m.table_plans):
            w = f"module.table_plans[{i}]"
            if type(p) is not TablePlan or type(p.table) is not TableType:
                raise Invalid(f"expected a TablePlan(TableType), got {p!r}", w)
            t = p.table
            _at(f"{w}.element", value_type, t.element, True)
            _is(t.table64, bool, f"{w}.table64", "true/false")
            _int(t.minimum, f"{w}.minimum")
            if t.maximum is not None:
                _int(t.maximum, f"{w}.maximum")
            _at(w, table_limits, t.minimum, t.maximum, t.table64)
            if p.style is not TableStyle.CallerChecksSignature:
                raise Invalid(f"unknown table style {p.style!r}", f"{w}.style")

    def memories(self):
        for i, p in enumerate(self.m.memory_plans):
            w = f"module.memory_plans[{i}]"
            if type(p) is not MemoryPlan or type(p.memory) is not MemoryType:
                raise Invalid(f"expected a MemoryPlan(MemoryType), got {p!r}", w)
            mt = p.memory
            _is(mt.shared, bool, f"{w}.shared", "true/false")
            _is(mt.memory64, bool, f"{w}.memory64", "true/false")
            _int(mt.minimum, f"{w}.minimum")
            if mt.maximum is not None:
                _int(mt.maximum, f"{w}.maximum")
            _at(w, memory_limits, mt.minimum, mt.maximum, mt.shared, mt.memory64)
            if type(p.style) is MemoryStyle.Static:
                _int(p.style.bound_pages, f"{w}.style.bound_pages")
            elif type(p.style) is MemoryStyle.Dynamic:
                _int(p.style.reserve_bytes, f"{w}.style.reserve_bytes")
            else:
                raise Invalid(f"unknown memory style {p.style!r}", f"{w}.style")
            _int(p.pre_guard_size, f"{w}.pre_guard_size")
            _int(p.offset_guard_size, f"{w}.offset_guard_size")
            if self.tunables is not None:
                want = MemoryPlan.for_memory(mt, self.tunables)
                if p != want:
                    raise Invalid(f"plan {p} is not what the tunables give ({want})", w)

    def globals(self):
        m = self.m
        for i, g in enumerate(m.globals):
            w = f"module.globals[{i}]"
            if type(g) is not Global or type(g.type) is not GlobalType:
                raise Invalid(f"expected a Global(GlobalType), got {g!r}", w)
            _at(f"{w}.type", value_type, g.type.content)
            _is(g.type.mutable, bool, f"{w}.mutable", "true/false")
        self.global_types = [g.type for g in m.globals]
        for i, g in enumerate(m.globals):
            w = f"module.globals[{i}].init"
            if i < m.num_imported_globals:
                if g.init is not None:
                    raise Invalid("an imported global has no initializer", w)
            else:
                self.expr(g.init, g.type.content, w, num_globals=i)
        for i, p in enumerate(m.table_plans):
            w = f"module.table_plans[{i}].init"
            init = p.table.init
            if i < m.num_imported_tables:
                if init is not None:
                    raise Invalid("an imported table has no initializer", w)
                continue
            _at(w, table_init, p.table.element, init)
            if init is not None:  # the table section precedes the globals: imports only
                self.expr(init, p.table.element, w, num_globals=m.num_imported_globals)

    def tags(self):
        ntypes = len(self.func_types)
        for i, t in enumerate(self.m.tags):
            w = f"module.tags[{i}]"
            _is(t, TagType, w)
            _int(t.type_index, f"{w}.type_index", 0, ntypes - 1 if ntypes else -1)
            if t.func_type != self.func_types[t.type_index]:
                raise Invalid("differs from the type it names", f"{w}.func_type")
            _at(f"{w}.func_type", tag_type, t.func_type)

    def imports(self):
        m = self.m
        counts = {k: 0 for k in ExternKind}
        for i, imp in enumerate(m.initializers):
            w = f"module.initializers[{i}]"
            _is(imp, Initializer.Import, w, "Initializer.Import")
            _str(imp.name, f"{w}.name")
            _str(imp.field, f"{w}.field")
            _entity(imp.index, f"{w}.index")
            kind, index = imp.index
            if index != counts[kind]:
                raise Invalid(f"imported {kind} {index} out of order (expected {counts[kind]})",
                              f"{w}.index")
            counts[kind] += 1
        for kind, fld in _IMPORT_COUNTS:
            if counts[kind] != getattr(m, fld):
                raise Invalid(f"{getattr(m, fld)} but {counts[kind]} {kind} imports", f"module.{fld}")

    def exports(self):
        m = self.m
        spaces = {kind: _space(m, kind) for kind in ExternKind}
        if type(m.exports) is not dict:
            raise Invalid(f"expected a dict, got {_tname(m.exports)}", "module.exports")
        for name, index in m.exports.items():
            w = f"module.exports[{name!r}]"
            _str(name, w)
            _entity(index, w)
            if index.index >= spaces[index.kind]:
                raise Invalid(f"{index.kind} {index.index} out of range ({spaces[index.kind]})", w)
        if m.start_func is not None:
            _int(m.start_func, "module.start_func", 0, len(m.functions) - 1)
            _at("module.start_func", start_func_type, self.func_types[m.functions[m.start_func].signature])

    def memory_initialization(self):
        m = self.m
        mi = m.memory_initialization
        nmem = len(m.memory_plans)
        if type(mi) is MemoryInitialization.Segmented:
            _is(mi.initializers, tuple, "module.memory_initialization.initializers", "a tuple")
            for k, init in enumerate(mi.initializers):
                w = f"module.memory_initialization.initializers[{k}]"
                _is(init, MemoryInitializer, w)
                _int(init.memory_index, f"{w}.memory_index", 0, nmem - 1)
                mem64 = m.memory_plans[init.memory_index].memory.memory64
                _is(init.memory64, bool, f"{w}.memory64", "true/false")
                if init.memory64 is not mem64:
                    raise Invalid("differs from the memory's index type", f"{w}.memory64")
                want = ValType.I64 if mem64 else ValType.I32
                self.base_global(init.base, want, f"{w}.base")
                _int(init.offset, f"{w}.offset", 0, (U64 if mem64 else U32) - 1)
                if init.expr is not None:
                    if init.base is not None or init.offset != 0:
                        raise Invalid("an initializer with an expression has no base and offset 0", w)
                    self.expr(init.expr, want, f"{w}.expr")
                self.range_(init.data, self.data, f"{w}.data")
        elif type(mi) is MemoryInitialization.Static:
            if type(mi.map) is not tuple or len(mi.map) != nmem:
                raise Invalid(f"expected a tuple of {nmem} entries", "module.memory_initialization.map")
            for k, init in enumerate(mi.map):
                if init is not None:
                    self.image(k, init, f"module.memory_initialization.map[{k}]")
        else:
            raise Invalid(f"unknown kind {mi!r}", "module.memory_initialization")

    def image(self, k, init, w):
        align = self.data_align
        _is(init, StaticMemoryInitializer, w, "a StaticMemoryInitializer or None")
        if k < self.m.num_imported_memories:
            raise Invalid("an imported memory has no static image", w)
        if align is None:
            raise Invalid("a Static initialization needs data_align", "data_align")
        _int(init.offset, f"{w}.offset")
        self.range_(init.data, self.data, f"{w}.data")
        n = len(init.data)
        if n == 0:
            raise Invalid("an image is never empty (None means no image)", f"{w}.data")
        if init.offset % align or n % align:
            raise Invalid(f"image at {init.offset} of {n} bytes is not aligned to {align}", w)
        limit = self.m.memory_plans[k].memory.minimum * WASM_PAGE_SIZE
        if init.offset + n > limit:
            raise Invalid(f"image [{init.offset}, {init.offset + n}) exceeds the memory's minimum "
                          f"size ({limit} bytes)", w)
        ci = self.data.index_of(init.data)
        if (init.data.start - self.data.starts[ci]) % align:
            raise Invalid("image does not start at an aligned position of its chunk", f"{w}.data")

    def table_initialization(self):
        m = self.m
        ti = m.table_initialization
        ntab = len(m.table_plans)
        if type(ti) is TableInitialization.FuncTable:
            if type(ti.tables) is not tuple or len(ti.tables) != ntab:
                raise Invalid(f"expected a tuple of {ntab} entries", "module.table_initialization.tables")
            nf = len(self.func_sigs)
            for k, arr in enumerate(ti.tables):
                w = f"module.table_initialization.tables[{k}]"
                if arr is None:
                    continue
                _is(arr, tuple, w, "a tuple or None")
                t = m.table_plans[k].table
                if k < m.num_imported_tables or t.element is not ValType.FUNCREF:
                    raise Invalid("only defined funcref tables are folded", w)
                if len(arr) > min(t.minimum, MAX_FUNC_TABLE_SIZE):
                    raise Invalid(f"{len(arr)} elements exceed the table minimum {t.minimum} "
                                  f"(or {MAX_FUNC_TABLE_SIZE})", w)
                for j, f in enumerate(arr):
                    if f is not None and (type(f) is not int or not 0 <= f < nf):
                        raise Invalid(f"expected a function index < {nf} or None, got {f!r}",
                                      f"{w}[{j}]")
        elif type(ti) is not TableInitialization.Segments:
            raise Invalid(f"unknown kind {ti!r}", "module.table_initialization")
        _is(ti.segments, tuple, "module.table_initialization.segments", "a tuple")
        for k, seg in enumerate(ti.segments):
            w = f"module.table_initialization.segments[{k}]"
            _is(seg, TableInitializer, w)
            _int(seg.table_index, f"{w}.table_index", 0, ntab - 1)
            t = m.table_plans[seg.table_index].table
            _is(seg.table64, bool, f"{w}.table64", "true/false")
            if seg.table64 is not t.table64:
                raise Invalid("differs from the table's index type", f"{w}.table64")
            want = ValType.I64 if t.table64 else ValType.I32
            self.base_global(seg.base, want, f"{w}.base")
            _int(seg.offset, f"{w}.offset", 0, (U64 if t.table64 else U32) - 1)
            if seg.expr is not None:
                if seg.base is not None or seg.offset != 0:
                    raise Invalid("a segment with an expression has no base and offset 0", w)
                self.expr(seg.expr, want, f"{w}.expr")
            self.items(seg.elements, t.element, f"{w}.elements")

    def element_and_data_segments(self):
        m = self.m
        if type(m.passive_elements) is not dict:
            raise Invalid("expected a dict", "module.passive_elements")
        for idx, seg in m.passive_elements.items():
            w = f"module.passive_elements[{idx!r}]"
            _int(idx, w, 0, m.num_elem_segments - 1)
            _is(seg, ElementSegment, w)
            if seg.mode not in ("passive", "declarative"):
                raise Invalid(f"unknown mode {seg.mode!r}", f"{w}.mode")
            _at(f"{w}.element", value_type, seg.element, True)
            self.items(seg.items, seg.element, f"{w}.items")
        _is(m.dropped_elements, tuple, "module.dropped_elements", "a tuple")
        prev = -1
        for j, idx in enumerate(m.dropped_elements):
            w = f"module.dropped_elements[{j}]"
            _int(idx, w, prev + 1, m.num_elem_segments - 1)
            if idx in m.passive_elements:
                raise Invalid(f"element segment {idx} is both passive and dropped", w)
            prev = idx
        if type(m.passive_data_map) is not dict:
            raise Invalid("expected a dict", "module.passive_data_map")
        for idx, r in m.passive_data_map.items():
            w = f"module.passive_data_map[{idx!r}]"
            _int(idx, w, 0, m.num_data_segments - 1)
            self.range_(r, self.passive, w)

    def code(self):
        """One body per defined function, in order, within the code's bytes; one reference
        type per element segment (that a passive segment's items have); the data count."""
        m, code, byte_len = self.m, self.code_section, self.code_byte_len
        _is(code.bodies, tuple, "code.bodies", "a tuple")
        first = m.num_imported_funcs
        defined = len(m.functions) - first
        if len(code.bodies) != defined:
            raise Invalid(f"{len(code.bodies)} bodies for {defined} defined functions", "code.bodies")
        if not _in_order(code.bodies, byte_len):  # then find the first bad body, slowly
            end = 0
            for i, body in enumerate(code.bodies):
                if type(body) is not tuple or len(body) != 2:
                    raise Invalid(f"expected (start, end), got {body!r}", f"code.bodies[{i}]")
                start, stop = body
                if not (type(start) is int and type(stop) is int
                        and end <= start <= stop <= byte_len):
                    raise Invalid(f"body of function {first + i} at [{start}, {stop}) is outside "
                                  f"the {byte_len} bytes of code or overlaps the previous body "
                                  f"(which ends at {end})", f"code.bodies[{i}]")
                end = stop
        _is(code.elem_types, tuple, "code.elem_types", "a tuple")
        if len(code.elem_types) != m.num_elem_segments:
            raise Invalid(f"{len(code.elem_types)} types for {m.num_elem_segments} element segments",
                          "code.elem_types")
        for k, t in enumerate(code.elem_types):
            w = f"code.elem_types[{k}]"
            _at(w, value_type, t, True)
            seg = m.passive_elements.get(k)
            if seg is not None:
                try:
                    self.items(seg.items, t, w)
                except Invalid as exc:
                    raise Invalid(f"{t} does not fit the items of element segment {k}: "
                                  f"{exc.message}", w) from None
        if code.data_count is not None:
            _int(code.data_count, "code.data_count", m.num_data_segments, m.num_data_segments)
        _int(code.module_offset, "code.module_offset", 0, U64 - 1)


def _in_order(bodies, byte_len: int) -> bool:
    """``bodies`` are ``(start, end)`` int pairs with ``0 <= s0 <= e0 <= s1 <= ... <= byte_len``
    (one pass in C: there may be 100,000 of them)."""
    if not bodies:
        return True
    if set(map(type, bodies)) != {tuple} or set(map(len, bodies)) != {2}:
        return False
    flat = list(itertools.chain.from_iterable(bodies))
    return (set(map(type, flat)) == {int} and flat[0] >= 0 and flat[-1] <= byte_len
            and all(map(operator.le, flat, itertools.islice(flat, 1, None))))


_IMPORT_COUNTS = ((ExternKind.FUNC, "num_imported_funcs"), (ExternKind.TABLE, "num_imported_tables"),
                  (ExternKind.MEMORY, "num_imported_memories"),
                  (ExternKind.GLOBAL, "num_imported_globals"), (ExternKind.TAG, "num_imported_tags"))
_SPACES = {ExternKind.FUNC: "functions", ExternKind.TABLE: "table_plans",
           ExternKind.MEMORY: "memory_plans", ExternKind.GLOBAL: "globals", ExternKind.TAG: "tags"}


def _space(m: Module, kind: ExternKind) -> int:
    """The size of index space ``kind`` (imports included)."""
    return len(getattr(m, _SPACES[kind]))


def _entity(index, where):
    if type(index) is not EntityIndex or not isinstance(index.kind, ExternKind):
        raise Invalid(f"expected an EntityIndex, got {index!r}", where)
    _int(index.index, where)
