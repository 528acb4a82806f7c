"""The decoder's segment sections: element, data count, code (bounds-checked and
skipped, bodies recorded) and data (with its fast path for the common segment shape)."""
from __future__ import annotations

import textwrap

from .constexpr import MASK32, ConstExpr
from .decode_types import _REF_FUNC, FUNCREF, I32, I64, read_ref_type
from .init import MemoryInitializer, TableInitializer
from .limits import MAX_DATA_SEGMENTS, MAX_ELEMENT_SEGMENTS, MAX_FUNCTION_SIZE, MAX_TABLE_ENTRIES
from .module import ElementSegment
from .reader import Reader, byte_vec_source, generate, leb128_source
from .types import is_subtype


class SegmentSections:
    """The segment sections of :class:`wasmenv.decode._Decoder` (a mixin: it reads and
    writes the decoder's state)."""

    def element_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(2, "element segments")
        self.check_max(r, 0, n, MAX_ELEMENT_SEGMENTS, "element segments", pos)
        nfuncs = len(self.func_types)
        escaped = self.escaped
        for elem_index in range(n):
            seg_pos = r.pos
            flags = r.u32()
            if flags > 7:
                raise r.error(f"malformed elements segment kind (flags {flags})", seg_pos)
            active = not flags & 0x01
            table_index = 0
            offset_expr = None
            table = None
            if active:
                if flags & 0x02:
                    p = r.pos
                    table_index = r.u32()
                else:
                    p = seg_pos
                if table_index >= len(self.tables):
                    raise r.error(f"unknown table {table_index}: table index out of bounds", p)
                table = self.tables[table_index]
                offset_expr = self.read_const_expr(r, I64 if table.table64 else I32)
            exprs = bool(flags & 0x04)
            if flags & 0x03:
                if exprs:
                    element = read_ref_type(r, self.types)
                else:
                    p = r.pos
                    kind = r.u8()
                    if kind != 0x00:
                        raise r.error(f"malformed element kind {kind:#04x}: only the function "
                                      f"external type is supported in elem segment", p)
                    element = FUNCREF
            else:
                element = FUNCREF
            # Function-index segments have type (ref func) for validation (their items are
            # never null); the model keeps recording them as funcref segments.
            if table is not None:
                te = table.element
                seg_type = element if exprs else _REF_FUNC
                if not (te is FUNCREF if not exprs else element is te) \
                        and not is_subtype(seg_type, te):
                    raise r.error(f"type mismatch: invalid element type `{seg_type}` for table "
                                  f"type `{te}`", seg_pos)
            self.elem_types.append(element if exprs else _REF_FUNC)
            p = r.pos
            count = r.count(1, "elements")
            if count > MAX_TABLE_ENTRIES:
                raise r.error("number of elements is out of bounds", p)
            if exprs:
                items = []
                for _ in range(count):
                    e = self.read_const_expr(r, element)
                    ops = e.ops
                    if len(ops) == 1:
                        op, imm = ops[0]
                        if op == "ref.func":
                            items.append(imm)
                            continue
                        if op == "ref.null":
                            items.append(None)
                            continue
                    items.append(e)
                items = tuple(items)
            else:
                u32 = r.u32
                lst = []
                append = lst.append
                for _ in range(count):
                    p = r.pos
                    f = u32()
                    if f >= nfuncs:
                        raise r.error(f"unknown function {f}: func index out of bounds", p)
                    if f not in escaped:
                        escaped[f] = len(escaped)
                    append(f)
                items = tuple(lst)
            if active:
                base, offset, expr = _split_offset(offset_expr)
                self.table_inits.append(TableInitializer(table_index, base, offset, items, expr,
                                                         table.table64))
                self.dropped_elements.append(elem_index)
            elif flags & 0x02:  # declarative
                self.dropped_elements.append(elem_index)
            else:
                self.passive_elements[elem_index] = ElementSegment("passive", element, items)
        self.module.num_elem_segments = n
        self.end_of_section(r)

    def data_count_section(self, r: Reader) -> None:
        pos = r.pos
        count = r.u32()
        if count > MAX_DATA_SEGMENTS:
            raise r.error("data count section specifies too many data segments", pos)
        if not r.eof():
            raise r.error("unexpected content in the data count section")
        self.data_count = count

    def code_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(1, "function bodies")
        defined = self.num_defined_funcs or 0
        if n != defined:
            raise r.error(f"function and code section have inconsistent lengths "
                          f"({defined} functions, {n} bodies)", pos)
        u32 = r.u32
        bodies = []
        for _ in range(n):
            p = r.pos
            size = u32()
            if size > r.end - r.pos:
                raise r.error(f"function body size {size} out of bounds (unexpected end)", p)
            if size > MAX_FUNCTION_SIZE:
                raise r.error(f"function body size count exceeds limit of {MAX_FUNCTION_SIZE}", p)
            bodies.append((r.pos, r.pos + size))
            r.pos += size
        self.code_bodies = tuple(bodies)
        self.code_count = n
        self.end_of_section(r)

    def data_section(self, r: Reader) -> None:
        pos = r.pos
        n = r.count(2, "data segments")
        self.check_max(r, 0, n, MAX_DATA_SEGMENTS, "data segments", pos)
        self.data_seen = n
        if self.data_count is not None and self.data_count != n:
            raise r.error(f"data count and data section have inconsistent lengths "
                          f"(data count {self.data_count}, {n} segments)", pos)
        memories = self.memories
        nmem = len(memories)
        push = self.translation.data.push
        append = self.memory_inits.append
        passive_map = self.passive_data_map
        passive_push = self.translation.passive_data.push
        read_expr = self.read_const_expr
        MI = MemoryInitializer
        fast = nmem > 0 and not memories[0].memory64
        data_index = 0
        while data_index < n:
            if fast:
                read = _read_common_segments(r, n - data_index, push, append)
                if read:
                    data_index += read
                    continue
            # General path: one segment of any other shape.
            seg_pos = r.pos
            flags = r.u32()
            if flags == 1:
                passive_map[data_index] = passive_push(r.byte_vec())
                data_index += 1
                continue
            if flags == 0:
                memory_index = 0
                p = seg_pos
            elif flags == 2:
                p = r.pos
                memory_index = r.u32()
            else:
                raise r.error(f"malformed data segment kind (flags {flags})", seg_pos)
            if memory_index >= nmem:
                raise r.error(f"unknown memory {memory_index}: memory index out of bounds", p)
            mem64 = memories[memory_index].memory64
            expr = read_expr(r, I64 if mem64 else I32)
            base, offset, expr = _split_offset(expr)
            append(MI(memory_index, base, offset, push(r.byte_vec()), expr, mem64))
            data_index += 1
        self.end_of_section(r)


def _split_offset(expr: ConstExpr):
    """(base, offset, expr) for a segment offset: constant, lone global.get, or kept expr."""
    ops = expr.ops
    if len(ops) == 1:
        op, imm = ops[0]
        if op == "global.get":
            return imm, 0, None
        return None, imm, None  # i32.const / i64.const, already unsigned
    if not any(op == "global.get" for op, _ in ops):
        return None, expr.evaluate(_no_global), None
    return None, 0, expr


def _no_global(index):  # pragma: no cover - only called for expressions without globals
    raise AssertionError("constant expression unexpectedly reads a global")


# The data section's fast path: a run of segments of the common shape (flags 0, so memory
# 0, 32-bit; offset `i32.const N; end`; the bytes), read with the reader's own LEB128 and
# byte vector rules (inline: their source is the reader's template) in one call. Another
# shape ends the run at its first byte, for the general path; an error is the one the
# general path raises for these bytes, at the same offset.
_read_common_segments = generate(__name__, "generated fast path", f"""\
def _read_common_segments(self, limit, push, append):
    '''Read the run of at most ``limit`` common-shape data segments at the cursor of reader
    ``self``, which moves past them: each one's bytes go to ``push`` (a data store's, which
    returns their range), its MemoryInitializer to ``append``. Returns how many it read.'''
    buf = self.buf
    pos = self.pos
    end = self.end
    read = 0
    for read in range(limit):  # a for loop: CPython 3.11 specializes code at its jumps back
        segment = pos
        if pos + 1 >= end or buf[pos] != 0x00 or buf[pos + 1] != 0x41:
            break
        pos += 2
{textwrap.indent(leb128_source("offset", 32, signed=True), " " * 8)}\
        if pos >= end or buf[pos] != 0x0B:
            pos = segment
            break
        pos += 1
{textwrap.indent(byte_vec_source("view"), " " * 8)}\
        if offset < 0:
            offset += {MASK32 + 1:#x}  # i32 offsets are unsigned
        append(MemoryInitializer(0, None, offset, push(view)))
    else:
        read = limit
    self.pos = pos
    return read
""", MemoryInitializer=MemoryInitializer)["_read_common_segments"]
