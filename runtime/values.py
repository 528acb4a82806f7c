"""Conversions between Python values and wasm value bit patterns."""
from __future__ import annotations

import re
import struct

from wasmenv import FuncType, RefType, ValType
from wasmenv.types import ABSTRACT_HEAP_TYPES, ref_parts

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


_REF_TEXT = re.compile(r"\(\s*ref\s+(null\s+)?(\w+)\s*\)")
_SHORT_REFS = {"nullexnref": RefType(True, "noexn")}


def valtype(v):
    """Accept a :class:`wasmenv.ValType` or :class:`wasmenv.RefType`, a text name
    (``"i32"``, ``"funcref"``, ``"(ref func)"``, ``"(ref null extern)"``) or a wasmtime
    ValType. Typed references to concrete function types need a RefType object."""
    if isinstance(v, (ValType, RefType)):
        return v
    text = str(v).strip()
    try:
        return ValType(text)
    except ValueError:
        pass
    if text in _SHORT_REFS:
        return _SHORT_REFS[text]
    m = _REF_TEXT.fullmatch(text)
    if m and m.group(2) in ABSTRACT_HEAP_TYPES:
        return RefType.of(m.group(1) is not None, m.group(2))
    raise TypeError(f"not a value type: {v!r}")


def check_ref(ty, value) -> None:
    """Raise TypeError unless ``value`` is a valid Python value of reference type ``ty``.

    None is null (only for nullable types); function references (``funcref``,
    ``(ref func)``, ``(ref null? $t)``) hold :class:`runtime.Func` objects, and a concrete
    ``$t`` needs a Func of exactly that type; ``externref``/``exnref`` hold any object;
    ``noexn`` holds only null. Non-reference types are not checked here.
    """
    parts = ref_parts(ty)
    if parts is None:
        return
    nullable, heap = parts
    if value is None:
        if not nullable:
            raise TypeError(f"null is not a value of the non-nullable type {ty}")
        return
    if heap == "func" or isinstance(heap, FuncType):
        from .func import Func
        if not isinstance(value, Func):
            raise TypeError(f"a {ty} holds Func or None, got {type(value).__name__}")
        if isinstance(heap, FuncType) and value.ty != heap:
            raise TypeError(f"a {ty} needs a function of type {heap}, got one of type {value.ty}")
    elif heap == "noexn":
        raise TypeError(f"{ty} holds only null, got {type(value).__name__}")


def to_bits(ty: ValType, value):
    """Python value -> canonical storage (unsigned ints for numbers, raw bits for floats)."""
    if ty is ValType.I32:
        _check_int(value, 32)
        return value & MASK32
    if ty is ValType.I64:
        _check_int(value, 64)
        return value & MASK64
    if ty is ValType.F32:
        return struct.unpack("<I", struct.pack("<f", float(value)))[0]
    if ty is ValType.F64:
        return struct.unpack("<Q", struct.pack("<d", float(value)))[0]
    if ty is ValType.V128:
        if isinstance(value, (bytes, bytearray)) and len(value) == 16:
            return int.from_bytes(value, "little")
        _check_int(value, 128)
        return value & ((1 << 128) - 1)
    return value  # references are stored as objects (None = null)


def from_bits(ty: ValType, bits):
    """Canonical storage -> Python value (signed ints, floats, objects), like wasmtime-py."""
    if ty is ValType.I32:
        return bits - (1 << 32) if bits & (1 << 31) else bits
    if ty is ValType.I64:
        return bits - (1 << 64) if bits & (1 << 63) else bits
    if ty is ValType.F32:
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    if ty is ValType.F64:
        return struct.unpack("<d", struct.pack("<Q", bits))[0]
    return bits


def as_u64(ty: ValType, bits) -> int:
    """A global's value as the seed's ``get_global_as_u64`` (i32 zero-extended)."""
    if ty in (ValType.I32, ValType.I64):
        return bits
    raise TypeError(f"a {ty} global cannot be a segment base")


def _check_int(value, width):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int for i{width}, got {type(value).__name__}")
    if not -(1 << (width - 1)) <= value < (1 << width):
        raise ValueError(f"{value} does not fit in i{width}")
