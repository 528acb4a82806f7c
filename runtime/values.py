"""Conversions between Python values and wasm value bit patterns."""
from __future__ import annotations

import math
import struct

from wasmenv import ValType

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


def valtype(v) -> ValType:
    """Accept a :class:`wasmenv.ValType`, its text name (``"i32"``) or a wasmtime ValType."""
    if isinstance(v, ValType):
        return v
    try:
        return ValType(str(v))
    except ValueError:
        raise TypeError(f"not a value type: {v!r}") from None


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


def same_float_bits(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
