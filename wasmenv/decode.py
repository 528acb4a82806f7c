"""The binary decoder: a WebAssembly module (bytes) -> :class:`ModuleTranslation`.

Sections are decoded in one pass over a zero-copy :class:`~wasmenv.reader.Reader`; code
bodies are bounds-checked and skipped. Module-level validation follows what Wasmtime 50
(wasmparser) accepts with bulk memory, reference types, multi-value, multi-memory,
memory64/table64, threads, extended-const, SIMD value types, exception tags and typed
function references enabled (GC off: ``(ref null? $t)`` of function types, ``(ref func)``,
``(ref extern)``, ``(ref null? exn)``, ``nullexnref``, tables with initializer expressions),
and with its default GC setting for constant expressions (``global.get`` of any earlier
immutable global). Other proposals raise :class:`UnsupportedFeature`; GC types (rec/sub/
struct/array, any/eq/i31/none/nofunc/noextern heap types, self-referential function
types) raise it with ``feature == "gc"``.

Every malformed or invalid input raises :class:`DecodeError` (offset and section set).
"""
from __future__ import annotations

import gc
from dataclasses import replace

from . import checks
from .checks import Invalid
from .constexpr import MASK32, MASK64, ConstExpr
from .decode_segments import SegmentSections
from .decode_types import (_KIND_NAMES, I32, I64, read_heap_type, read_ref_type,
                           read_val_type)
from .errors import DecodeError, UnsupportedFeature
from .init import MemoryInitialization, TableInitialization
from .limits import (MAX_EXPORTS, MAX_FUNCTION_PARAMS, MAX_FUNCTION_RETURNS, MAX_FUNCTIONS, MAX_GLOBALS,
                     MAX_IMPORTS, MAX_MEMORIES, MAX_TABLES, MAX_TAGS, MAX_TYPE_SIZE, MAX_TYPES)
from .module import FunctionType, Global, Initializer, Module, ModuleType
from .plans import MemoryPlan, TablePlan
from .reader import Reader, as_byte_view
from .translation import CodeSection, ModuleTranslation
from .tunables import Tunables
from .types import (EntityIndex, ExternKind, FuncType, GlobalType, MemoryType, TableType, TagType)

__all__ = ["decode_module", "SECTION_NAMES"]


#: Inputs at least this large are decoded with the cyclic garbage collector paused.
_GC_PAUSE_THRESHOLD = 1 << 20

SECTION_NAMES = {
    0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
    6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
    12: "data count", 13: "tag",
}
#: Section id -> position in the required order (tag sits between memory and global).
_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}



class _Decoder(SegmentSections):
    """State of one decode: the module's index spaces as they are built up."""

    def __init__(self, data, tunables: Tunables):
        self.view = as_byte_view(data)
        self.tunables = tunables
        self.module = Module()
        self.translation = ModuleTranslation(self.module, wasm=self.view)
        self.types = []            # FuncType per type index
        self.func_types = []       # type index per function index (imports first)
        self.tables = []           # TableType
        self.memories = []         # MemoryType
        self.globals = []          # GlobalType
        self.global_inits = []     # ConstExpr or None (imports)
        self.tags = []             # TagType
        self.escaped = {}          # func index -> anyfunc index, in first-escape order
        self.exports = {}
        self.type_size = 1
        self.num_defined_funcs = None  # function section count (None: absent)
        self.code_count = None
        self.code_bodies = ()      # (start, end) of each defined function's body
        self.elem_types = []       # reference type of each element segment (validation)
        self.data_count = None
        self.data_seen = None
        self.table_inits = []
        self.memory_inits = []
        self.dropped_elements = []
        self.passive_elements = {}
        self.passive_data_map = {}

    # -- helpers ----------------------------------------------------------------------------
    def escape(self, func_index: int) -> None:
        escaped = self.escaped
        if func_index not in escaped:
            escaped[func_index] = len(escaped)

    def add_type_size(self, size: int, r: Reader, pos: int) -> None:
        self.type_size += size
        if self.type_size >= MAX_TYPE_SIZE:
            raise r.error(f"effective type size exceeds the limit of {MAX_TYPE_SIZE}", pos)

    def func_type_at(self, r: Reader, index: int, pos: int) -> FuncType:
        if index >= len(self.types):
            raise r.error(f"unknown type {index}: type index out of bounds", pos)
        return self.types[index]

    def check_func_index(self, r: Reader, index: int, pos: int) -> None:
        if index >= len(self.func_types):
            raise r.error(f"unknown function {index}: func index out of bounds", pos)

    @staticmethod
    def check_max(r: Reader, current: int, added: int, limit: int, what: str, pos: int) -> None:
        if current + added > limit:
            if limit == 1:
                raise r.error(f"multiple {what}", pos)
            raise r.error(f"{what} count exceeds limit of {limit}", pos)

    # -- entity types ---------------------------------------------------------------------------
    def read_table_type(self, r: Reader) -> TableType:
        element = read_ref_type(r, self.types)
        pos = r.pos
        flags = r.u8()
        if flags & ~0x07:
            raise r.error(f"malformed limits flags {flags:#04x}", pos)
        if flags & 0x02:
            raise UnsupportedFeature("shared-everything threads", pos, r.section, "shared table")
        table64 = bool(flags & 0x04)
        minimum = r.u64()
        maximum = r.u64() if flags & 0x01 else None
        _check(r, pos, checks.table_limits, minimum, maximum, table64)
        return TableType(element, minimum, maximum, table64)

    def read_memory_type(self, r: Reader) -> MemoryType:
        pos = r.pos
        flags = r.u8()
        if flags & ~0x0F:
            raise r.error(f"malformed limits flags {flags:#04x}", pos)
        if flags & 0x08:
            raise UnsupportedFeature("custom page sizes", pos, r.section)
        shared = bool(flags & 0x02)
        memory64 = bool(flags & 0x04)
        minimum = r.u64()
        maximum = r.u64() if flags & 0x01 else None
        _check(r, pos, checks.memory_limits, minimum, maximum, shared, memory64)
        return MemoryType(minimum, maximum, shared, memory64)

    def read_global_type(self, r: Reader) -> GlobalType:
        content = read_val_type(r, self.types)
        pos = r.pos
        flags = r.u8()
        if flags > 0x03:
            raise r.error(f"malformed mutability {flags:#04x}", pos)
        if flags & 0x02:
            raise UnsupportedFeature("shared-everything threads", pos, r.section, "shared global")
        return GlobalType(content, bool(flags & 0x01))

    def read_tag_type(self, r: Reader) -> TagType:
        pos = r.pos
        attribute = r.u8()
        if attribute != 0:
            raise r.error(f"invalid tag attributes {attribute:#04x}", pos)
        pos = r.pos
        index = r.u32()
        ft = self.func_type_at(r, index, pos)
        _check(r, pos, checks.tag_type, ft)
        return TagType(index, ft)

    # -- constant expressions -----------------------------------------------------------------
    def read_const_expr(self, r: Reader, expected, num_globals: int = None):
        """Decode and type-check a constant expression producing a subtype of ``expected``.

        ``num_globals`` bounds ``global.get`` (globals declared so far). Returns a
        :class:`ConstExpr`. ``ref.func`` marks the function as escaping.
        """
        if num_globals is None:
            num_globals = len(self.globals)
        start = r.pos
        ops = []
        positions = []
        while True:
            pos = r.pos
            op = r.u8()
            if op == 0x0B:  # end
                break
            positions.append(pos)
            if op == 0x41:
                ops.append(("i32.const", r.s32() & MASK32))
            elif op == 0x42:
                ops.append(("i64.const", r.s64() & MASK64))
            elif op == 0x23:
                ops.append(("global.get", r.u32()))
            elif op in _ARITH_OPS:
                ops.append((_ARITH_OPS[op][0], None))
            elif op == 0x43:
                ops.append(("f32.const", int.from_bytes(r.bytes(4), "little")))
            elif op == 0x44:
                ops.append(("f64.const", int.from_bytes(r.bytes(8), "little")))
            elif op == 0xD0:
                ops.append(("ref.null", read_heap_type(r, self.types)))
            elif op == 0xD2:
                index = r.u32()
                self.check_func_index(r, index, pos)
                self.escape(index)
                ops.append(("ref.func", index))
            elif op == 0xFD:
                sub = r.u32()
                if sub != 12:
                    raise r.error(f"constant expression required: non-constant operator "
                                  f"0xfd {sub}", pos)
                ops.append(("v128.const", bytes(r.bytes(16))))
            elif op == 0xFB:
                raise UnsupportedFeature("gc", pos, r.section, "GC instruction in a constant expression")
            else:
                raise r.error(f"constant expression required: non-constant operator {op:#04x}", pos)
        ops = tuple(ops)
        try:
            checks.const_expr(ops, expected, self.globals, num_globals, self.func_types, self.types)
        except Invalid as exc:
            raise r.error(exc.message, start if exc.at is None else positions[exc.at]) from None
        return ConstExpr(ops)

    # -- sections -------------------------------------------------------------------------------
    def type_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(2, "types")
        self.check_max(r, len(self.types), n, MAX_TYPES, "types", pos)
        types = self.types
        for _ in range(n):
            pos = r.pos
            form = r.u8()
            if form != 0x60:
                if form in (0x4E, 0x50, 0x4F, 0x5F, 0x5E):
                    raise UnsupportedFeature("gc", pos, r.section,
                                             f"type form {form:#04x} (rec/sub/struct/array)")
                if form == 0x5D:
                    raise UnsupportedFeature("stack switching", pos, r.section, "continuation type")
                if form == 0x65:
                    raise UnsupportedFeature("shared-everything threads", pos, r.section, "shared type")
                if form in (0x4C, 0x4D):
                    raise UnsupportedFeature("custom descriptors", pos, r.section)
                raise r.error(f"invalid leading byte {form:#04x} for type definition", pos)
            p = r.pos
            np_ = r.count(1, "params")
            if np_ > MAX_FUNCTION_PARAMS:
                raise r.error("function params size is out of bounds", p)
            params = tuple(read_val_type(r, types, True) for _ in range(np_))
            p = r.pos
            nr = r.count(1, "results")
            if nr > MAX_FUNCTION_RETURNS:
                raise r.error("function returns size is out of bounds", p)
            results = tuple(read_val_type(r, types, True) for _ in range(nr))
            types.append(FuncType(params, results))
        self.end_of_section(r)

    def import_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(4, "imports")
        self.check_max(r, 0, n, MAX_IMPORTS, "imports", pos)
        module = self.module
        inits = module.initializers
        for _ in range(n):
            pos = r.pos
            mod_name = r.name()
            field = r.name()
            kpos = r.pos
            kind = r.u8()
            if field == "" and kind in (0x7E, 0x7F):
                raise UnsupportedFeature("compact imports", kpos, r.section)
            if kind == 0x00:
                p = r.pos
                index = r.u32()
                ft = self.func_type_at(r, index, p)
                entity = EntityIndex(ExternKind.FUNC, len(self.func_types))
                self.func_types.append(index)
                module.num_imported_funcs += 1
                self.check_max(r, len(self.func_types), 0, MAX_FUNCTIONS, "functions", pos)
                self.add_type_size(2 + len(ft.params) + len(ft.results), r, pos)
            elif kind == 0x01:
                t = self.read_table_type(r)
                entity = EntityIndex(ExternKind.TABLE, len(self.tables))
                self.tables.append(t)
                module.num_imported_tables += 1
                self.check_max(r, len(self.tables), 0, MAX_TABLES, "tables", pos)
                self.add_type_size(1, r, pos)
            elif kind == 0x02:
                t = self.read_memory_type(r)
                entity = EntityIndex(ExternKind.MEMORY, len(self.memories))
                self.memories.append(t)
                module.num_imported_memories += 1
                self.check_max(r, len(self.memories), 0, MAX_MEMORIES, "memories", pos)
                self.add_type_size(1, r, pos)
            elif kind == 0x03:
                t = self.read_global_type(r)
                entity = EntityIndex(ExternKind.GLOBAL, len(self.globals))
                self.globals.append(t)
                self.global_inits.append(None)
                module.num_imported_globals += 1
                self.check_max(r, len(self.globals), 0, MAX_GLOBALS, "globals", pos)
                self.add_type_size(1, r, pos)
            elif kind == 0x04:
                t = self.read_tag_type(r)
                entity = EntityIndex(ExternKind.TAG, len(self.tags))
                self.tags.append(t)
                module.num_imported_tags += 1
                self.check_max(r, len(self.tags), 0, MAX_TAGS, "tags", pos)
                ft = t.func_type
                self.add_type_size(2 + len(ft.params) + len(ft.results), r, pos)
            elif kind == 0x20:
                raise UnsupportedFeature("custom descriptors", kpos, r.section, "exact function import")
            else:
                raise r.error(f"malformed import kind {kind:#04x}", kpos)
            inits.append(Initializer.Import(mod_name, field, entity))
        self.end_of_section(r)

    def function_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(1, "functions")
        self.check_max(r, len(self.func_types), n, MAX_FUNCTIONS, "functions", pos)
        func_types = self.func_types
        ntypes = len(self.types)
        u32 = r.u32
        for _ in range(n):
            p = r.pos
            index = u32()
            if index >= ntypes:
                raise r.error(f"unknown type {index}: type index out of bounds", p)
            func_types.append(index)
        self.num_defined_funcs = n
        self.end_of_section(r)

    def table_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(3, "tables")
        self.check_max(r, len(self.tables), n, MAX_TABLES, "tables", pos)
        for _ in range(n):
            p = r.pos
            if r.peek() == 0x40:  # 0x40 0x00 tabletype expr: a table with an initializer
                r.u8()
                if r.u8() != 0x00:
                    raise r.error("invalid table encoding", p)
                t = self.read_table_type(r)
                t = replace(t, init=self.read_const_expr(r, t.element))
            else:
                t = self.read_table_type(r)
                _check(r, p, checks.table_init, t.element, None)
            self.tables.append(t)
        self.end_of_section(r)

    def memory_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(2, "memories")
        self.check_max(r, len(self.memories), n, MAX_MEMORIES, "memories", pos)
        for _ in range(n):
            self.memories.append(self.read_memory_type(r))
        self.end_of_section(r)

    def tag_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(2, "tags")
        self.check_max(r, len(self.tags), n, MAX_TAGS, "tags", pos)
        for _ in range(n):
            self.tags.append(self.read_tag_type(r))
        self.end_of_section(r)

    def global_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(3, "globals")
        self.check_max(r, len(self.globals), n, MAX_GLOBALS, "globals", pos)
        for _ in range(n):
            t = self.read_global_type(r)
            init = self.read_const_expr(r, t.content, len(self.globals))
            self.globals.append(t)
            self.global_inits.append(init)
        self.end_of_section(r)

    def export_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(3, "exports")
        self.check_max(r, len(self.exports), n, MAX_EXPORTS, "exports", pos)
        exports = self.exports
        spaces = {0: self.func_types, 1: self.tables, 2: self.memories, 3: self.globals,
                  4: self.tags}
        for _ in range(n):
            pos = r.pos
            name = r.name()
            kpos = r.pos
            kind = r.u8()
            space = spaces.get(kind)
            if space is None:
                if kind == 0x20:
                    raise r.error("Exact type is not allowed in the exports", kpos)
                raise r.error(f"malformed export kind {kind:#04x}", kpos)
            index = r.u32()
            if index >= len(space):
                what = _KIND_NAMES[kind]
                raise r.error(f"unknown {what} {index}: exported {what} index out of bounds", kpos)
            if kind == 0:
                self.escape(index)
                ft = self.types[self.func_types[index]]
                size = 2 + len(ft.params) + len(ft.results)
            elif kind == 4:
                ft = self.tags[index].func_type
                size = 2 + len(ft.params) + len(ft.results)
            else:
                size = 1
            self.add_type_size(size, r, pos)
            if name in exports:
                raise r.error(f"duplicate export name `{name}` already defined", pos)
            exports[name] = EntityIndex(ExternKind(kind), index)
        self.end_of_section(r)

    def start_section(self, r: Reader) -> None:
        pos = r.pos
        index = r.u32()
        self.check_func_index(r, index, pos)
        _check(r, pos, checks.start_func_type, self.types[self.func_types[index]])
        if not r.eof():
            raise r.error("unexpected content in the start section")
        self.module.start_func = index

    def custom_section(self, r: Reader) -> None:
        name = r.name()
        if name == "name":
            try:
                self.name_section(r)
            except DecodeError:
                pass  # Wasmtime ignores a malformed name section

    def name_section(self, r: Reader) -> None:
        while not r.eof():
            sub_id = r.u8()
            size = r.u32()
            sub = r.sub(size)
            if sub_id == 0:
                name = sub.name()
                if not sub.eof():
                    raise sub.error("trailing bytes in the module name subsection")
                self.module.name = name

    @staticmethod
    def end_of_section(r: Reader) -> None:
        if r.pos != r.end:
            raise r.error("section size mismatch: unexpected data at the end of the section")

    # -- driver ---------------------------------------------------------------------------------
    def run(self) -> ModuleTranslation:
        view = self.view
        total = len(view)
        if total < 4 or view[:4] != b"\0asm":
            raise DecodeError("magic header not detected", 0)
        if total < 8:
            raise DecodeError("unexpected end: incomplete version", 4)
        num = view[4] | view[5] << 8
        layer = view[6] | view[7] << 8
        if layer == 1:
            raise UnsupportedFeature("component model", 4, None,
                                     f"a component (layer 1, version {num:#x}), not a core module")
        if num != 1 or layer != 0:
            raise DecodeError(f"unknown binary version: {num | layer << 16:#010x}", 4)
        r = Reader(view, 8, total)
        last_order = 0
        last_id = None
        handlers = {
            1: self.type_section, 2: self.import_section, 3: self.function_section,
            4: self.table_section, 5: self.memory_section, 6: self.global_section,
            7: self.export_section, 8: self.start_section, 9: self.element_section,
            10: self.code_section, 11: self.data_section, 12: self.data_count_section,
            13: self.tag_section,
        }
        while r.pos < total:
            id_pos = r.pos
            sid = r.u8()
            if sid not in SECTION_NAMES:
                raise DecodeError(f"malformed section id {sid}", id_pos)
            sname = SECTION_NAMES[sid]
            r.section = sname
            size_pos = r.pos
            size = r.u32()
            if size > total - r.pos:
                raise DecodeError(f"section size mismatch: {sname} section of {size} bytes "
                                  f"goes past the end of the module (unexpected end)",
                                  size_pos, sname)
            body = Reader(view, r.pos, r.pos + size, sname)
            r.pos += size
            r.section = None
            if sid == 0:
                self.custom_section(body)
                continue
            order = _ORDER[sid]
            if order <= last_order:
                if sid == last_id:
                    raise DecodeError(f"duplicate {sname} section (unexpected content after "
                                      f"last section)", id_pos, sname)
                raise DecodeError(f"section out of order: {sname} section after "
                                  f"{SECTION_NAMES[last_id]} section (unexpected content after "
                                  f"last section)", id_pos, sname)
            last_order = order
            last_id = sid
            handlers[sid](body)
        return self.finish(total)

    def finish(self, offset: int) -> ModuleTranslation:
        defined = self.num_defined_funcs or 0
        if defined and self.code_count is None:
            raise DecodeError("function and code section have inconsistent lengths "
                              "(function section has non-zero count but code section is absent)",
                              offset)
        if self.data_count and self.data_seen is None:
            raise DecodeError("data count and data section have inconsistent lengths "
                              "(data count is non-zero but data section is absent)", offset)
        module = self.module
        tunables = self.tunables
        escaped = self.escaped
        module.types = [ModuleType(t) for t in self.types]
        module.functions = [FunctionType(sig, escaped.get(i))
                            for i, sig in enumerate(self.func_types)]
        module.num_escaped_funcs = len(escaped)
        module.table_plans = [TablePlan.for_table(t, tunables) for t in self.tables]
        module.memory_plans = [MemoryPlan.for_memory(m, tunables) for m in self.memories]
        module.globals = [Global(t, init) for t, init in zip(self.globals, self.global_inits, strict=True)]
        module.tags = list(self.tags)
        module.exports = self.exports
        module.passive_elements = self.passive_elements
        module.dropped_elements = tuple(self.dropped_elements)
        module.passive_data_map = self.passive_data_map
        module.num_data_segments = self.data_seen or 0
        module.memory_initialization = MemoryInitialization.Segmented(tuple(self.memory_inits))
        module.table_initialization = TableInitialization.Segments(tuple(self.table_inits))
        self.translation.code = CodeSection(self.code_bodies, tuple(self.elem_types), self.data_count,
                                            self.view)
        return self.translation


def _check(r: Reader, pos: int, rule, *args) -> None:
    """Apply a rule of :mod:`wasmenv.checks`; a broken one is a DecodeError at ``pos``."""
    try:
        rule(*args)
    except Invalid as exc:
        raise r.error(exc.message, pos) from None


_ARITH_OPS = {
    0x6A: ("i32.add", I32), 0x6B: ("i32.sub", I32), 0x6C: ("i32.mul", I32),
    0x7C: ("i64.add", I64), 0x7D: ("i64.sub", I64), 0x7E: ("i64.mul", I64),
}


def decode_module(data, tunables: Tunables = None) -> ModuleTranslation:
    """Decode a binary module into a :class:`ModuleTranslation` (Segmented initializers).

    ``data`` may be bytes, bytearray, memoryview or mmap; data segment bytes in the result
    are zero-copy views of it.

    Raises:
        DecodeError: malformed, or invalid at module level (``offset``/``section`` say where).
        UnsupportedFeature: the module uses a proposal wasmenv does not decode.
        TypeError: ``data`` is not a bytes-like object.
    """
    decoder = _Decoder(data, tunables if tunables is not None else Tunables())
    # Decoding allocates many small acyclic objects (one initializer, range and view per
    # segment); the cyclic GC would repeatedly traverse them for nothing (~25% of the time
    # for 100,000 segments). Pause it for large inputs and restore the previous state.
    if len(decoder.view) < _GC_PAUSE_THRESHOLD or not gc.isenabled():
        return decoder.run()
    gc.disable()
    try:
        return decoder.run()
    finally:
        gc.enable()
