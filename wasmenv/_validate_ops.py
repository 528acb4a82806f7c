"""Typing rules of the instructions that are not a fixed signature (control, calls,
variables, references, tables, bulk memory, SIMD lanes, atomics, exceptions).

Each handler is ``handler(v, op)``: ``v`` is the :class:`~wasmenv.validation.FunctionValidator`
(a :class:`~wasmenv.typestack.TypeStack` with a Reader ``v.r`` at the immediates), ``op``
the :class:`~wasmenv.opcodes.Op`. Handlers raise :class:`~wasmenv.typestack.Invalid`.
"""
from __future__ import annotations

from .errors import UnsupportedFeature
from .typestack import (BLOCK, CATCH, CATCH_ALL, ELSE, IF, LOOP, TRY, TRY_TABLE, Invalid,
                        check_results, check_types, is_ref_or_unknown, non_null)
from .types import FuncType, RefType, ValType, is_subtype, ref_parts

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXNREF = ValType.FUNCREF, ValType.EXNREF
_EMPTY = FuncType((), ())
_REF_EXN = RefType(False, "exn")  # what catch_ref / catch_all_ref push
#: Block types of one byte: 0x40 (empty) and the short value types.
SHORT_BLOCK = {0x40: _EMPTY, 0x7F: FuncType((), (I32,)), 0x7E: FuncType((), (I64,)),
                0x7D: FuncType((), (F32,)), 0x7C: FuncType((), (F64,)),
                0x7B: FuncType((), (V128,)), 0x70: FuncType((), (FUNCREF,)),
                0x6F: FuncType((), (ValType.EXTERNREF,)), 0x69: FuncType((), (EXNREF,)),
                0x74: FuncType((), (RefType(True, "noexn"),))}


def _index(v, space, what):
    """Read a u32 index into ``space`` (a list); error if out of bounds."""
    x = v.r.u32()
    if x >= len(space):
        raise Invalid(f"unknown {what} {x}: {what} index out of bounds")
    return x


# -- control ------------------------------------------------------------------------------------
def block_type(v) -> FuncType:
    r = v.r
    b = r.peek()
    t = SHORT_BLOCK.get(b)
    if t is not None:
        r.pos += 1
        return t
    if b == 0x63 or b == 0x64 or 0x40 <= b < 0x80:  # a value type (typed reference, GC, ...)
        from .decode_types import read_val_type
        return FuncType((), (read_val_type(r, v.ctx.types),))
    x = r.s33()
    if x < 0 or x >= len(v.ctx.types):
        raise Invalid(f"unknown type {x}: block type index out of bounds")
    return v.ctx.types[x]


def _open(v, kind):
    bt = block_type(v)
    v.pop_vals(bt.params)
    v.push_ctrl(kind, bt.params, bt.results)


def op_block(v, op):
    _open(v, BLOCK)


def op_loop(v, op):
    _open(v, LOOP)


def op_if(v, op):
    bt = block_type(v)
    v.pop(I32)
    v.pop_vals(bt.params)
    v.push_ctrl(IF, bt.params, bt.results)


def op_else(v, op):
    frame = v.ctrls[-1]
    if frame.kind != IF:
        raise Invalid("else found outside of an `if` block")
    v.pop_ctrl()
    v.push_ctrl(ELSE, frame.params, frame.results)


def op_end(v, op):
    frame = v.pop_ctrl()
    if frame.kind == IF:  # no else: the empty else branch must turn params into results
        check_types(frame.params, frame.results, "if without else")
    v.vals.extend(frame.results)


def op_br(v, op):
    v.pop_vals(v.label_types(v.r.u32()))
    v.unreachable()


def op_br_if(v, op):
    labels = v.label_types(v.r.u32())
    v.pop(I32)
    v.pop_vals(labels)
    v.vals.extend(labels)


def op_br_table(v, op):
    r = v.r
    n = r.count(1, "br_table targets")
    depths = [r.u32() for _ in range(n)]
    default = v.label_types(r.u32())
    v.pop(I32)
    arity = len(default)
    for depth in depths:
        labels = v.label_types(depth)
        if len(labels) != arity:
            raise Invalid("type mismatch: br_table target labels have different number of types")
        v.vals.extend(v.pop_vals(labels))
    v.pop_vals(default)
    v.unreachable()


def op_return(v, op):
    v.pop_vals(v.results)
    v.unreachable()


def op_unreachable(v, op):
    v.unreachable()


def op_nop(v, op):  # pragma: no cover - nop is a simple signature in the table
    pass


def op_drop(v, op):
    v.pop_any()


def op_select(v, op):
    v.pop(I32)
    t1 = v.pop_any()
    t2 = v.pop_any()
    if (t1 is not None and ref_parts(t1) is not None) or (t2 is not None and ref_parts(t2) is not None):
        raise Invalid("type mismatch: select without a type annotation needs numeric or vector operands")
    if t1 is not None and t2 is not None and t1 is not t2:
        raise Invalid(f"type mismatch: select operands {t1} and {t2} differ")
    v.vals.append(t2 if t1 is None else t1)


def op_select_t(v, op):
    from .decode_types import read_val_type
    r = v.r
    n = r.u32()
    if n != 1:
        raise Invalid("invalid result arity: select takes exactly one type")
    t = read_val_type(r, v.ctx.types)
    v.pop(I32)
    v.pop(t)
    v.pop(t)
    v.vals.append(t)


# -- calls --------------------------------------------------------------------------------------
def _call(v, ft, tail):
    v.pop_vals(ft.params)
    if tail:
        check_results(ft.results, v.results)
        v.unreachable()
    else:
        v.vals.extend(ft.results)


def _type_at(v):
    return v.ctx.types[_index(v, v.ctx.types, "type")]


def _indirect(v, tail):
    ft = _type_at(v)
    table = v.ctx.tables[_index(v, v.ctx.tables, "table")]
    if not is_subtype(table.element, FUNCREF):
        raise Invalid("type mismatch: indirect calls must go through a table with type <= funcref")
    v.pop(I64 if table.table64 else I32)
    _call(v, ft, tail)


def op_call(v, op):
    _call(v, v.ctx.funcs[_index(v, v.ctx.funcs, "function")], False)


def op_return_call(v, op):
    _call(v, v.ctx.funcs[_index(v, v.ctx.funcs, "function")], True)


def op_call_indirect(v, op):
    _indirect(v, False)


def op_return_call_indirect(v, op):
    _indirect(v, True)


def op_call_ref(v, op):
    ft = _type_at(v)
    v.pop(RefType(True, ft))
    _call(v, ft, False)


def op_return_call_ref(v, op):
    ft = _type_at(v)
    v.pop(RefType(True, ft))
    _call(v, ft, True)


# -- variables ----------------------------------------------------------------------------------
def op_global_get(v, op):
    v.vals.append(v.ctx.globals[_index(v, v.ctx.globals, "global")].content)


def op_global_set(v, op):
    g = v.ctx.globals[_index(v, v.ctx.globals, "global")]
    if not g.mutable:
        raise Invalid("global is immutable: cannot modify it with `global.set`")
    v.pop(g.content)


def op_const(v, op):
    r = v.r
    if op.imm == "i32":
        r.s32()
        v.vals.append(I32)
    elif op.imm == "i64":
        r.s64()
        v.vals.append(I64)
    elif op.imm == "f32":
        r.skip(4)
        v.vals.append(F32)
    elif op.imm == "f64":
        r.skip(8)
        v.vals.append(F64)
    else:
        r.skip(16)
        v.vals.append(V128)


# -- memories -----------------------------------------------------------------------------------
def _memory(v):
    return v.ctx.memories[_index(v, v.ctx.memories, "memory")]


def read_memarg(v, natural, exact=False):
    """Read a memarg (align flags, optional memory index, offset); returns the memory."""
    r = v.r
    flags = r.u32()
    memories = v.ctx.memories
    if flags & 0x40:
        flags ^= 0x40
        index = r.u32()
    else:
        index = 0
    if flags >= 0x40:
        raise Invalid("malformed memop flags: alignment too large")
    if index >= len(memories):
        raise Invalid(f"unknown memory {index}: memory index out of bounds")
    memory = memories[index]
    offset = r.u64()
    if not memory.memory64 and offset > 0xFFFFFFFF:
        raise Invalid("offset out of range: must be <= 2**32 for a 32-bit memory")
    if exact:
        if flags != natural:
            raise Invalid("alignment must be equal to natural")
    elif flags > natural:
        raise Invalid("alignment must not be larger than natural")
    return memory


def memarg(v, op, natural, sig32, sig64):
    """Loads and stores: read the memarg; the signature for the memory's address type."""
    return sig64 if read_memarg(v, natural).memory64 else sig32


def _at(memory):
    return I64 if memory.memory64 else I32


def _sig(v, op, at):
    pops, pushes = op.sig
    names = {"at": at, "i32": I32, "i64": I64, "f32": F32, "f64": F64, "v128": V128}
    v.pop_vals([names[n] for n in pops])
    v.vals.extend(names[n] for n in pushes)


def op_memarg_lane(v, op):
    at = _at(read_memarg(v, op.align))
    _lane(v, op.lanes)
    _sig(v, op, at)


def op_atomic(v, op):
    _sig(v, op, _at(read_memarg(v, op.align, exact=True)))


def op_atomic_fence(v, op):
    if v.r.u8() != 0:
        raise Invalid("malformed atomic.fence: nonzero flags byte")


def op_memory(v, op):  # memory.size / memory.grow
    _sig(v, op, _at(_memory(v)))


def _need_data_count(v):
    if v.ctx.data_count is None:
        raise Invalid("data count section required")
    x = v.r.u32()
    if x >= v.ctx.data_count:
        raise Invalid(f"unknown data segment {x}: data index out of bounds")


def op_memory_init(v, op):
    _need_data_count(v)
    at = _at(_memory(v))
    v.pop_vals((at, I32, I32))


def op_data_drop(v, op):
    _need_data_count(v)


def op_memory_copy(v, op):
    dst = _at(_memory(v))
    src = _at(_memory(v))
    v.pop_vals((dst, src, I32 if I32 in (dst, src) else I64))


def op_memory_fill(v, op):
    at = _at(_memory(v))
    v.pop_vals((at, I32, at))


# -- tables -------------------------------------------------------------------------------------
def _table(v):
    return v.ctx.tables[_index(v, v.ctx.tables, "table")]


def _table_at(t):
    return I64 if t.table64 else I32


def op_table_get(v, op):
    t = _table(v)
    v.pop(_table_at(t))
    v.vals.append(t.element)


def op_table_set(v, op):
    t = _table(v)
    v.pop_vals((_table_at(t), t.element))


def op_table_size(v, op):
    v.vals.append(_table_at(_table(v)))


def op_table_grow(v, op):
    t = _table(v)
    at = _table_at(t)
    v.pop_vals((t.element, at))
    v.vals.append(at)


def op_table_fill(v, op):
    t = _table(v)
    at = _table_at(t)
    v.pop_vals((at, t.element, at))


def op_table_copy(v, op):
    dst = _table(v)
    src = _table(v)
    if not is_subtype(src.element, dst.element):
        raise Invalid(f"type mismatch: table.copy from {src.element} to {dst.element}")
    a, b = _table_at(dst), _table_at(src)
    v.pop_vals((a, b, I32 if I32 in (a, b) else I64))


def op_table_init(v, op):
    elem = v.ctx.elem_types[_index(v, v.ctx.elem_types, "elem segment")]
    t = _table(v)
    if not is_subtype(elem, t.element):
        raise Invalid(f"type mismatch: table.init of {elem} elements into a {t.element} table")
    v.pop_vals((_table_at(t), I32, I32))


def op_elem_drop(v, op):
    _index(v, v.ctx.elem_types, "elem segment")


# -- references ---------------------------------------------------------------------------------
def op_ref_null(v, op):
    from .decode_types import read_heap_type
    v.vals.append(read_heap_type(v.r, v.ctx.types))


def op_ref_is_null(v, op):
    v.pop_ref()
    v.vals.append(I32)


def op_ref_func(v, op):
    x = _index(v, v.ctx.funcs, "function")
    if x not in v.ctx.refs:
        raise Invalid(f"undeclared function reference {x}")
    v.vals.append(RefType(False, v.ctx.funcs[x]))


def op_ref_as_non_null(v, op):
    v.vals.append(non_null(v.pop_ref()))


def op_br_on_null(v, op):
    labels = v.label_types(v.r.u32())
    t = v.pop_ref()
    v.pop_vals(labels)
    v.vals.extend(labels)
    v.vals.append(non_null(t))


def op_br_on_non_null(v, op):
    labels = v.label_types(v.r.u32())
    if not labels or not is_ref_or_unknown(labels[-1]):
        raise Invalid("type mismatch: br_on_non_null target does not end with a reference type")
    t = v.pop_ref()
    v.vals.append(non_null(t))
    v.pop_vals(labels)
    v.vals.extend(labels[:-1])


def op_gc(v, op):
    raise UnsupportedFeature("gc", detail=f"instruction {op.name}")


# -- SIMD ---------------------------------------------------------------------------------------
def _lane(v, lanes):
    x = v.r.u8()
    if x >= lanes:
        raise Invalid(f"invalid lane index {x} (must be < {lanes})")


def op_lane(v, op):
    _lane(v, op.lanes)
    _sig(v, op, None)


def op_shuffle(v, op):
    for _ in range(16):
        _lane(v, 32)
    v.pop_vals((V128, V128))
    v.vals.append(V128)


# -- exceptions ---------------------------------------------------------------------------------
def _tag(v):
    return v.ctx.tags[_index(v, v.ctx.tags, "tag")]


def op_throw(v, op):
    v.pop_vals(_tag(v).params)
    v.unreachable()


def op_throw_ref(v, op):
    v.pop(EXNREF)
    v.unreachable()


def op_try_table(v, op):
    r = v.r
    bt = block_type(v)
    n = r.count(2, "catch clauses")
    for _ in range(n):
        kind = r.u8()
        if kind > 3:
            raise Invalid(f"invalid catch kind {kind:#04x}")
        payload = list(_tag(v).params) if kind < 2 else []
        if kind & 1:
            payload.append(_REF_EXN)
        labels = v.label_types(r.u32())
        check_types(payload, labels, "catch clause payload vs its label")
    v.pop_vals(bt.params)
    v.push_ctrl(TRY_TABLE, bt.params, bt.results)


def op_try(v, op):
    _open(v, TRY)


def op_catch(v, op):
    frame = v.ctrls[-1]
    if frame.kind not in (TRY, CATCH):
        raise Invalid("catch found outside of a `try` block")
    params = _tag(v).params
    v.pop_ctrl()
    v.push_ctrl(CATCH, frame.params, frame.results, entry=params)


def op_catch_all(v, op):
    frame = v.ctrls[-1]
    if frame.kind not in (TRY, CATCH):
        raise Invalid("catch_all found outside of a `try` block")
    v.pop_ctrl()
    v.push_ctrl(CATCH_ALL, frame.params, frame.results, entry=())


def op_delegate(v, op):
    frame = v.ctrls[-1]
    if frame.kind != TRY:
        raise Invalid("delegate found outside of a `try` block")
    depth = v.r.u32()
    v.pop_ctrl()
    v.frame_at(depth)
    v.vals.extend(frame.results)


def op_rethrow(v, op):
    if v.frame_at(v.r.u32()).kind not in (CATCH, CATCH_ALL):
        raise Invalid("invalid rethrow label: target was not a `catch` block")
    v.unreachable()


HANDLERS = {
    "unreachable": op_unreachable, "nop": op_nop, "block": op_block, "loop": op_loop,
    "if": op_if, "else": op_else, "end": op_end, "br": op_br, "br_if": op_br_if,
    "br_table": op_br_table, "return": op_return, "drop": op_drop, "select": op_select,
    "select_t": op_select_t, "call": op_call, "call_indirect": op_call_indirect,
    "return_call": op_return_call, "return_call_indirect": op_return_call_indirect,
    "call_ref": op_call_ref, "return_call_ref": op_return_call_ref,
    "global.get": op_global_get, "global.set": op_global_set,
    "i32.const": op_const, "i64.const": op_const, "f32.const": op_const, "f64.const": op_const, "v128.const": op_const,
    "memarg_lane": op_memarg_lane, "atomic": op_atomic, "atomic.fence": op_atomic_fence,
    "memory": op_memory, "memory.init": op_memory_init, "data.drop": op_data_drop,
    "memory.copy": op_memory_copy, "memory.fill": op_memory_fill,
    "table.get": op_table_get, "table.set": op_table_set, "table.size": op_table_size,
    "table.grow": op_table_grow, "table.fill": op_table_fill, "table.copy": op_table_copy,
    "table.init": op_table_init, "elem.drop": op_elem_drop,
    "ref.null": op_ref_null, "ref.is_null": op_ref_is_null, "ref.func": op_ref_func,
    "ref.as_non_null": op_ref_as_non_null, "br_on_null": op_br_on_null,
    "br_on_non_null": op_br_on_non_null, "gc": op_gc, "lane": op_lane, "shuffle": op_shuffle,
    "throw": op_throw, "throw_ref": op_throw_ref, "try_table": op_try_table, "try": op_try,
    "catch": op_catch, "catch_all": op_catch_all, "delegate": op_delegate, "rethrow": op_rethrow,
}
