"""The instruction set, defined once: every opcode's name, encoding, immediates, stack
signature (or the rule that types it) and proposal.

Each :class:`Op` is one instruction. ``prefix`` is None for single-byte opcodes, else the
prefix byte (0xFC misc, 0xFD SIMD, 0xFE atomics) followed by ``code`` as a u32 LEB128.
``imm`` names the immediates (see :data:`IMMEDIATES`). ``sig`` is ``(pops, pushes)`` of
value-type names for instructions with a fixed signature, where ``"at"`` is the address
type (i32, or i64 for memory64/table64) of the memory or table the instruction names;
instructions whose typing depends on the context (control, locals, calls, references, ...)
have ``sig = None`` and ``rule`` names how the validator types them. ``align`` is the
natural alignment (log2 of the access width) of memory instructions. The validator
(:mod:`wasmenv.validation`) is driven by this table; a translation pass reuses it.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

__all__ = ["Op", "OPS", "BY_NAME", "SINGLE", "PREFIXED", "IMMEDIATES", "GC_PREFIX"]

#: Immediate kinds and what they encode.
IMMEDIATES = {
    "none": "no immediate",
    "blocktype": "block type (0x40, a value type, or an s33 type index)",
    "label": "u32 label depth",
    "br_table": "vector of u32 label depths, then the default depth",
    "func": "u32 function index",
    "type": "u32 type index",
    "type_table": "u32 type index, then u32 table index",
    "local": "u32 local index",
    "global": "u32 global index",
    "table": "u32 table index",
    "table_table": "u32 destination table, u32 source table",
    "elem_table": "u32 element segment, u32 table",
    "elem": "u32 element segment index",
    "memory": "u32 memory index",
    "memory_memory": "u32 destination memory, u32 source memory",
    "data_memory": "u32 data segment, u32 memory",
    "data": "u32 data segment index",
    "memarg": "u32 alignment flags (bit 6: a u32 memory index follows), u64 offset",
    "memarg_lane": "memarg, then a lane index byte",
    "lane": "a lane index byte",
    "shuffle": "16 lane index bytes, each < 32",
    "i32": "s32 LEB128", "i64": "s64 LEB128", "f32": "4 bytes", "f64": "8 bytes",
    "v128": "16 bytes",
    "heaptype": "heap type",
    "valtypes": "vector of value types (select t*)",
    "tag": "u32 tag index",
    "try_table": "block type, vector of catch clauses",
    "zero": "a zero byte (atomic.fence)",
}


class Op(NamedTuple):
    """One instruction of the table."""

    name: str
    prefix: Optional[int]
    code: int
    imm: str
    sig: Optional[Tuple[Tuple[str, ...], Tuple[str, ...]]]
    rule: str
    proposal: str
    align: Optional[int] = None
    lanes: Optional[int] = None  # lane count of lane immediates


OPS = []


def _sig(text):
    if text is None:
        return None
    pops, pushes = text.split("->")
    return tuple(pops.split()), tuple(pushes.split())


def _op(name, prefix, code, imm="none", sig=None, rule=None, proposal="mvp", align=None,
        lanes=None):
    OPS.append(Op(name, prefix, code, imm, _sig(sig), rule or ("simple" if sig is not None else name),
                  proposal, align, lanes))


# -- control ----------------------------------------------------------------------------------
for _code, _name, _imm, _proposal in [
        (0x00, "unreachable", "none", "mvp"), (0x02, "block", "blocktype", "mvp"),
        (0x03, "loop", "blocktype", "mvp"), (0x04, "if", "blocktype", "mvp"),
        (0x05, "else", "none", "mvp"), (0x06, "try", "blocktype", "legacy exceptions"),
        (0x07, "catch", "tag", "legacy exceptions"), (0x08, "throw", "tag", "exceptions"),
        (0x09, "rethrow", "label", "legacy exceptions"), (0x0A, "throw_ref", "none", "exceptions"),
        (0x0B, "end", "none", "mvp"), (0x0C, "br", "label", "mvp"), (0x0D, "br_if", "label", "mvp"),
        (0x0E, "br_table", "br_table", "mvp"), (0x0F, "return", "none", "mvp"),
        (0x10, "call", "func", "mvp"), (0x11, "call_indirect", "type_table", "mvp"),
        (0x12, "return_call", "func", "tail calls"),
        (0x13, "return_call_indirect", "type_table", "tail calls"),
        (0x14, "call_ref", "type", "function references"),
        (0x15, "return_call_ref", "type", "tail calls"),
        (0x18, "delegate", "label", "legacy exceptions"),
        (0x19, "catch_all", "none", "legacy exceptions"),
        (0x1A, "drop", "none", "mvp"), (0x1B, "select", "none", "mvp"),
        (0x1C, "select_t", "valtypes", "reference types"),
        (0x1F, "try_table", "try_table", "exceptions"),
        (0x20, "local.get", "local", "mvp"), (0x21, "local.set", "local", "mvp"),
        (0x22, "local.tee", "local", "mvp"), (0x23, "global.get", "global", "mvp"),
        (0x24, "global.set", "global", "mvp"),
        (0x25, "table.get", "table", "reference types"), (0x26, "table.set", "table", "reference types"),
        (0xD0, "ref.null", "heaptype", "reference types"), (0xD1, "ref.is_null", "none", "reference types"),
        (0xD2, "ref.func", "func", "reference types"),
        (0xD4, "ref.as_non_null", "none", "function references"),
        (0xD5, "br_on_null", "label", "function references"),
        (0xD6, "br_on_non_null", "label", "function references")]:
    _op(_name if _name != "select_t" else "select", None, _code, _imm, None,
        rule=_name, proposal=_proposal)
_op("nop", None, 0x01, sig="->")
_op("ref.eq", None, 0xD3, rule="gc", proposal="gc")

# -- memory -----------------------------------------------------------------------------------
for _code, _name, _t, _align in [
        (0x28, "i32.load", "i32", 2), (0x29, "i64.load", "i64", 3), (0x2A, "f32.load", "f32", 2),
        (0x2B, "f64.load", "f64", 3), (0x2C, "i32.load8_s", "i32", 0), (0x2D, "i32.load8_u", "i32", 0),
        (0x2E, "i32.load16_s", "i32", 1), (0x2F, "i32.load16_u", "i32", 1),
        (0x30, "i64.load8_s", "i64", 0), (0x31, "i64.load8_u", "i64", 0),
        (0x32, "i64.load16_s", "i64", 1), (0x33, "i64.load16_u", "i64", 1),
        (0x34, "i64.load32_s", "i64", 2), (0x35, "i64.load32_u", "i64", 2)]:
    _op(_name, None, _code, "memarg", f"at -> {_t}", "memarg", align=_align)
for _code, _name, _t, _align in [
        (0x36, "i32.store", "i32", 2), (0x37, "i64.store", "i64", 3), (0x38, "f32.store", "f32", 2),
        (0x39, "f64.store", "f64", 3), (0x3A, "i32.store8", "i32", 0), (0x3B, "i32.store16", "i32", 1),
        (0x3C, "i64.store8", "i64", 0), (0x3D, "i64.store16", "i64", 1), (0x3E, "i64.store32", "i64", 2)]:
    _op(_name, None, _code, "memarg", f"at {_t} ->", "memarg", align=_align)
_op("memory.size", None, 0x3F, "memory", "-> at", "memory")
_op("memory.grow", None, 0x40, "memory", "at -> at", "memory")

# -- numeric (MVP, sign extension) -------------------------------------------------------------
_op("i32.const", None, 0x41, "i32", "-> i32", "i32.const")
_op("i64.const", None, 0x42, "i64", "-> i64", "i64.const")
_op("f32.const", None, 0x43, "f32", "-> f32", "f32.const")
_op("f64.const", None, 0x44, "f64", "-> f64", "f64.const")


def _numeric(start, t, names, sig, proposal="mvp"):
    for i, n in enumerate(names.split()):
        _op(f"{t}.{n}", None, start + i, sig=sig.replace("T", t), proposal=proposal)


_CMP_I = "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u"
_CMP_F = "eq ne lt gt le ge"
_BIN_I = "add sub mul div_s div_u rem_s rem_u and or xor shl shr_s shr_u rotl rotr"
_UN_F = "abs neg ceil floor trunc nearest sqrt"
_BIN_F = "add sub mul div min max copysign"
_op("i32.eqz", None, 0x45, sig="i32 -> i32")
_numeric(0x46, "i32", _CMP_I, "T T -> i32")
_op("i64.eqz", None, 0x50, sig="i64 -> i32")
_numeric(0x51, "i64", _CMP_I, "T T -> i32")
_numeric(0x5B, "f32", _CMP_F, "T T -> i32")
_numeric(0x61, "f64", _CMP_F, "T T -> i32")
_numeric(0x67, "i32", "clz ctz popcnt", "T -> T")
_numeric(0x6A, "i32", _BIN_I, "T T -> T")
_numeric(0x79, "i64", "clz ctz popcnt", "T -> T")
_numeric(0x7C, "i64", _BIN_I, "T T -> T")
_numeric(0x8B, "f32", _UN_F, "T -> T")
_numeric(0x92, "f32", _BIN_F, "T T -> T")
_numeric(0x99, "f64", _UN_F, "T -> T")
_numeric(0xA0, "f64", _BIN_F, "T T -> T")
for _code, _name in enumerate(
        "i32.wrap_i64:i64:i32 i32.trunc_f32_s:f32:i32 i32.trunc_f32_u:f32:i32 "
        "i32.trunc_f64_s:f64:i32 i32.trunc_f64_u:f64:i32 i64.extend_i32_s:i32:i64 "
        "i64.extend_i32_u:i32:i64 i64.trunc_f32_s:f32:i64 i64.trunc_f32_u:f32:i64 "
        "i64.trunc_f64_s:f64:i64 i64.trunc_f64_u:f64:i64 f32.convert_i32_s:i32:f32 "
        "f32.convert_i32_u:i32:f32 f32.convert_i64_s:i64:f32 f32.convert_i64_u:i64:f32 "
        "f32.demote_f64:f64:f32 f64.convert_i32_s:i32:f64 f64.convert_i32_u:i32:f64 "
        "f64.convert_i64_s:i64:f64 f64.convert_i64_u:i64:f64 f64.promote_f32:f32:f64 "
        "i32.reinterpret_f32:f32:i32 i64.reinterpret_f64:f64:i64 f32.reinterpret_i32:i32:f32 "
        "f64.reinterpret_i64:i64:f64".split(), 0xA7):
    _n, _a, _b = _name.split(":")
    _op(_n, None, _code, sig=f"{_a} -> {_b}")
_numeric(0xC0, "i32", "extend8_s extend16_s", "T -> T", "sign extension")
_numeric(0xC2, "i64", "extend8_s extend16_s extend32_s", "T -> T", "sign extension")

# -- 0xFC: saturating truncation, bulk memory, tables -------------------------------------------
for _code, _name in enumerate("i32.trunc_sat_f32_s:f32:i32 i32.trunc_sat_f32_u:f32:i32 "
                              "i32.trunc_sat_f64_s:f64:i32 i32.trunc_sat_f64_u:f64:i32 "
                              "i64.trunc_sat_f32_s:f32:i64 i64.trunc_sat_f32_u:f32:i64 "
                              "i64.trunc_sat_f64_s:f64:i64 i64.trunc_sat_f64_u:f64:i64".split()):
    _n, _a, _b = _name.split(":")
    _op(_n, 0xFC, _code, sig=f"{_a} -> {_b}", proposal="non-trapping float-to-int")
for _code, _name, _imm in [
        (8, "memory.init", "data_memory"), (9, "data.drop", "data"), (10, "memory.copy", "memory_memory"),
        (11, "memory.fill", "memory"), (12, "table.init", "elem_table"), (13, "elem.drop", "elem"),
        (14, "table.copy", "table_table"), (15, "table.grow", "table"), (16, "table.size", "table"),
        (17, "table.fill", "table")]:
    _op(_name, 0xFC, _code, _imm, proposal="bulk memory" if _code < 12 or _code in (12, 13, 14)
        else "reference types")

# -- 0xFD: SIMD ------------------------------------------------------------------------------------
_SIMD = "simd"
for _code, _name, _align, _sig_text in [
        (0, "v128.load", 4, "at -> v128"), (1, "v128.load8x8_s", 3, "at -> v128"),
        (2, "v128.load8x8_u", 3, "at -> v128"), (3, "v128.load16x4_s", 3, "at -> v128"),
        (4, "v128.load16x4_u", 3, "at -> v128"), (5, "v128.load32x2_s", 3, "at -> v128"),
        (6, "v128.load32x2_u", 3, "at -> v128"), (7, "v128.load8_splat", 0, "at -> v128"),
        (8, "v128.load16_splat", 1, "at -> v128"), (9, "v128.load32_splat", 2, "at -> v128"),
        (10, "v128.load64_splat", 3, "at -> v128"), (11, "v128.store", 4, "at v128 ->"),
        (92, "v128.load32_zero", 2, "at -> v128"), (93, "v128.load64_zero", 3, "at -> v128")]:
    _op(_name, 0xFD, _code, "memarg", _sig_text, "memarg", _SIMD, _align)
for _code, _name, _align in [(84, "v128.load8_lane", 0), (85, "v128.load16_lane", 1),
                             (86, "v128.load32_lane", 2), (87, "v128.load64_lane", 3)]:
    _op(_name, 0xFD, _code, "memarg_lane", "at v128 -> v128", "memarg_lane", _SIMD, _align,
        16 >> _align)
for _code, _name, _align in [(88, "v128.store8_lane", 0), (89, "v128.store16_lane", 1),
                             (90, "v128.store32_lane", 2), (91, "v128.store64_lane", 3)]:
    _op(_name, 0xFD, _code, "memarg_lane", "at v128 ->", "memarg_lane", _SIMD, _align, 16 >> _align)
_op("v128.const", 0xFD, 12, "v128", "-> v128", "v128.const", _SIMD)
_op("i8x16.shuffle", 0xFD, 13, "shuffle", "v128 v128 -> v128", "shuffle", _SIMD)
for _code, _shape, _t, _lanes in [(21, "i8x16", "i32", 16), (24, "i16x8", "i32", 8),
                                  (27, "i32x4", "i32", 4), (29, "i64x2", "i64", 2),
                                  (31, "f32x4", "f32", 4), (33, "f64x2", "f64", 2)]:
    _signed = _shape in ("i8x16", "i16x8")
    for _suffix in (("_s", "_u") if _signed else ("",)):
        _op(f"{_shape}.extract_lane{_suffix}", 0xFD, _code, "lane", f"v128 -> {_t}", "lane",
            _SIMD, lanes=_lanes)
        _code += 1
    _op(f"{_shape}.replace_lane", 0xFD, _code, "lane", f"v128 {_t} -> v128", "lane", _SIMD,
        lanes=_lanes)
for _code, _shape, _t in [(15, "i8x16", "i32"), (16, "i16x8", "i32"), (17, "i32x4", "i32"),
                          (18, "i64x2", "i64"), (19, "f32x4", "f32"), (20, "f64x2", "f64")]:
    _op(f"{_shape}.splat", 0xFD, _code, sig=f"{_t} -> v128", proposal=_SIMD)
_V1, _V2, _V3 = "v128 -> v128", "v128 v128 -> v128", "v128 v128 v128 -> v128"
_VT, _VS = "v128 -> i32", "v128 i32 -> v128"
_SIMD_SIMPLE = {
    14: ("i8x16.swizzle", _V2), 77: ("v128.not", _V1), 78: ("v128.and", _V2),
    79: ("v128.andnot", _V2), 80: ("v128.or", _V2), 81: ("v128.xor", _V2),
    82: ("v128.bitselect", _V3), 83: ("v128.any_true", _VT),
    94: ("f32x4.demote_f64x2_zero", _V1), 95: ("f64x2.promote_low_f32x4", _V1),
    96: ("i8x16.abs", _V1), 97: ("i8x16.neg", _V1), 98: ("i8x16.popcnt", _V1),
    99: ("i8x16.all_true", _VT), 100: ("i8x16.bitmask", _VT),
    101: ("i8x16.narrow_i16x8_s", _V2), 102: ("i8x16.narrow_i16x8_u", _V2),
    103: ("f32x4.ceil", _V1), 104: ("f32x4.floor", _V1), 105: ("f32x4.trunc", _V1),
    106: ("f32x4.nearest", _V1), 107: ("i8x16.shl", _VS), 108: ("i8x16.shr_s", _VS),
    109: ("i8x16.shr_u", _VS), 110: ("i8x16.add", _V2), 111: ("i8x16.add_sat_s", _V2),
    112: ("i8x16.add_sat_u", _V2), 113: ("i8x16.sub", _V2), 114: ("i8x16.sub_sat_s", _V2),
    115: ("i8x16.sub_sat_u", _V2), 116: ("f64x2.ceil", _V1), 117: ("f64x2.floor", _V1),
    118: ("i8x16.min_s", _V2), 119: ("i8x16.min_u", _V2), 120: ("i8x16.max_s", _V2),
    121: ("i8x16.max_u", _V2), 122: ("f64x2.trunc", _V1), 123: ("i8x16.avgr_u", _V2),
    124: ("i16x8.extadd_pairwise_i8x16_s", _V1), 125: ("i16x8.extadd_pairwise_i8x16_u", _V1),
    126: ("i32x4.extadd_pairwise_i16x8_s", _V1), 127: ("i32x4.extadd_pairwise_i16x8_u", _V1),
    128: ("i16x8.abs", _V1), 129: ("i16x8.neg", _V1), 130: ("i16x8.q15mulr_sat_s", _V2),
    131: ("i16x8.all_true", _VT), 132: ("i16x8.bitmask", _VT),
    133: ("i16x8.narrow_i32x4_s", _V2), 134: ("i16x8.narrow_i32x4_u", _V2),
    135: ("i16x8.extend_low_i8x16_s", _V1), 136: ("i16x8.extend_high_i8x16_s", _V1),
    137: ("i16x8.extend_low_i8x16_u", _V1), 138: ("i16x8.extend_high_i8x16_u", _V1),
    139: ("i16x8.shl", _VS), 140: ("i16x8.shr_s", _VS), 141: ("i16x8.shr_u", _VS),
    142: ("i16x8.add", _V2), 143: ("i16x8.add_sat_s", _V2), 144: ("i16x8.add_sat_u", _V2),
    145: ("i16x8.sub", _V2), 146: ("i16x8.sub_sat_s", _V2), 147: ("i16x8.sub_sat_u", _V2),
    148: ("f64x2.nearest", _V1), 149: ("i16x8.mul", _V2), 150: ("i16x8.min_s", _V2),
    151: ("i16x8.min_u", _V2), 152: ("i16x8.max_s", _V2), 153: ("i16x8.max_u", _V2),
    155: ("i16x8.avgr_u", _V2), 156: ("i16x8.extmul_low_i8x16_s", _V2),
    157: ("i16x8.extmul_high_i8x16_s", _V2), 158: ("i16x8.extmul_low_i8x16_u", _V2),
    159: ("i16x8.extmul_high_i8x16_u", _V2), 160: ("i32x4.abs", _V1), 161: ("i32x4.neg", _V1),
    163: ("i32x4.all_true", _VT), 164: ("i32x4.bitmask", _VT),
    167: ("i32x4.extend_low_i16x8_s", _V1), 168: ("i32x4.extend_high_i16x8_s", _V1),
    169: ("i32x4.extend_low_i16x8_u", _V1), 170: ("i32x4.extend_high_i16x8_u", _V1),
    171: ("i32x4.shl", _VS), 172: ("i32x4.shr_s", _VS), 173: ("i32x4.shr_u", _VS),
    174: ("i32x4.add", _V2), 177: ("i32x4.sub", _V2), 181: ("i32x4.mul", _V2),
    182: ("i32x4.min_s", _V2), 183: ("i32x4.min_u", _V2), 184: ("i32x4.max_s", _V2),
    185: ("i32x4.max_u", _V2), 186: ("i32x4.dot_i16x8_s", _V2),
    188: ("i32x4.extmul_low_i16x8_s", _V2), 189: ("i32x4.extmul_high_i16x8_s", _V2),
    190: ("i32x4.extmul_low_i16x8_u", _V2), 191: ("i32x4.extmul_high_i16x8_u", _V2),
    192: ("i64x2.abs", _V1), 193: ("i64x2.neg", _V1), 195: ("i64x2.all_true", _VT),
    196: ("i64x2.bitmask", _VT), 199: ("i64x2.extend_low_i32x4_s", _V1),
    200: ("i64x2.extend_high_i32x4_s", _V1), 201: ("i64x2.extend_low_i32x4_u", _V1),
    202: ("i64x2.extend_high_i32x4_u", _V1), 203: ("i64x2.shl", _VS), 204: ("i64x2.shr_s", _VS),
    205: ("i64x2.shr_u", _VS), 206: ("i64x2.add", _V2), 209: ("i64x2.sub", _V2),
    213: ("i64x2.mul", _V2), 220: ("i64x2.extmul_low_i32x4_s", _V2),
    221: ("i64x2.extmul_high_i32x4_s", _V2), 222: ("i64x2.extmul_low_i32x4_u", _V2),
    223: ("i64x2.extmul_high_i32x4_u", _V2), 224: ("f32x4.abs", _V1), 225: ("f32x4.neg", _V1),
    227: ("f32x4.sqrt", _V1), 236: ("f64x2.abs", _V1), 237: ("f64x2.neg", _V1),
    239: ("f64x2.sqrt", _V1), 248: ("i32x4.trunc_sat_f32x4_s", _V1),
    249: ("i32x4.trunc_sat_f32x4_u", _V1), 250: ("f32x4.convert_i32x4_s", _V1),
    251: ("f32x4.convert_i32x4_u", _V1), 252: ("i32x4.trunc_sat_f64x2_s_zero", _V1),
    253: ("i32x4.trunc_sat_f64x2_u_zero", _V1), 254: ("f64x2.convert_low_i32x4_s", _V1),
    255: ("f64x2.convert_low_i32x4_u", _V1),
}
for _base, _shape, _names in [(35, "i8x16", _CMP_I), (45, "i16x8", _CMP_I), (55, "i32x4", _CMP_I),
                              (65, "f32x4", _CMP_F), (71, "f64x2", _CMP_F),
                              (214, "i64x2", "eq ne lt_s gt_s le_s ge_s"),
                              (228, "f32x4", "add sub mul div min max pmin pmax"),
                              (240, "f64x2", "add sub mul div min max pmin pmax")]:
    for _i, _n in enumerate(_names.split()):
        _SIMD_SIMPLE[_base + _i] = (f"{_shape}.{_n}", _V2)
for _code in sorted(_SIMD_SIMPLE):
    _op(_SIMD_SIMPLE[_code][0], 0xFD, _code, sig=_SIMD_SIMPLE[_code][1], proposal=_SIMD)
for _code, _name, _sig_text in [
        (0x100, "i8x16.relaxed_swizzle", _V2), (0x101, "i32x4.relaxed_trunc_f32x4_s", _V1),
        (0x102, "i32x4.relaxed_trunc_f32x4_u", _V1), (0x103, "i32x4.relaxed_trunc_f64x2_s_zero", _V1),
        (0x104, "i32x4.relaxed_trunc_f64x2_u_zero", _V1), (0x105, "f32x4.relaxed_madd", _V3),
        (0x106, "f32x4.relaxed_nmadd", _V3), (0x107, "f64x2.relaxed_madd", _V3),
        (0x108, "f64x2.relaxed_nmadd", _V3), (0x109, "i8x16.relaxed_laneselect", _V3),
        (0x10A, "i16x8.relaxed_laneselect", _V3), (0x10B, "i32x4.relaxed_laneselect", _V3),
        (0x10C, "i64x2.relaxed_laneselect", _V3), (0x10D, "f32x4.relaxed_min", _V2),
        (0x10E, "f32x4.relaxed_max", _V2), (0x10F, "f64x2.relaxed_min", _V2),
        (0x110, "f64x2.relaxed_max", _V2), (0x111, "i16x8.relaxed_q15mulr_s", _V2),
        (0x112, "i16x8.relaxed_dot_i8x16_i7x16_s", _V2),
        (0x113, "i32x4.relaxed_dot_i8x16_i7x16_add_s", _V3)]:
    _op(_name, 0xFD, _code, sig=_sig_text, proposal="relaxed simd")

# -- 0xFE: threads (atomics; alignment must be exactly natural) ---------------------------------
_THREADS = "threads"
_op("memory.atomic.notify", 0xFE, 0x00, "memarg", "at i32 -> i32", "atomic", _THREADS, 2)
_op("memory.atomic.wait32", 0xFE, 0x01, "memarg", "at i32 i64 -> i32", "atomic", _THREADS, 2)
_op("memory.atomic.wait64", 0xFE, 0x02, "memarg", "at i64 i64 -> i32", "atomic", _THREADS, 3)
_op("atomic.fence", 0xFE, 0x03, "zero", "->", "atomic.fence", _THREADS)
_ATOMIC_WIDTHS = [("i32", "", 2), ("i64", "", 3), ("i32", "8", 0), ("i32", "16", 1),
                  ("i64", "8", 0), ("i64", "16", 1), ("i64", "32", 2)]
for _i, (_t, _w, _align) in enumerate(_ATOMIC_WIDTHS):
    _suffix = f"{_w}_u" if _w else ""
    _op(f"{_t}.atomic.load{_suffix}", 0xFE, 0x10 + _i, "memarg", f"at -> {_t}", "atomic", _THREADS, _align)
    _op(f"{_t}.atomic.store{_w}", 0xFE, 0x17 + _i, "memarg", f"at {_t} ->", "atomic", _THREADS, _align)
for _k, _rmw in enumerate("add sub and or xor xchg cmpxchg".split()):
    for _i, (_t, _w, _align) in enumerate(_ATOMIC_WIDTHS):
        _name = f"{_t}.atomic.rmw{_w}.{_rmw}" + ("_u" if _w else "")
        _sig_text = f"at {_t} {_t} -> {_t}" if _rmw == "cmpxchg" else f"at {_t} -> {_t}"
        _op(_name, 0xFE, 0x1E + 7 * _k + _i, "memarg", _sig_text, "atomic", _THREADS, _align)

#: Prefix byte of the GC proposal's instructions (struct/array/i31/casts): UnsupportedFeature.
GC_PREFIX = 0xFB

BY_NAME: Dict[str, Op] = {}
#: Single-byte opcode -> Op (None where undefined).
SINGLE = [None] * 256
#: (prefix, code) -> Op.
PREFIXED: Dict[Tuple[int, int], Op] = {}
for _o in OPS:
    BY_NAME.setdefault(_o.name, _o)
    if _o.prefix is None:
        assert SINGLE[_o.code] is None, _o
        SINGLE[_o.code] = _o
    else:
        assert (_o.prefix, _o.code) not in PREFIXED, _o
        PREFIXED[(_o.prefix, _o.code)] = _o
