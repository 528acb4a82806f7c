"""Reading value, reference and heap types from a binary module (the decoder and the
body validator share these readers)."""
from __future__ import annotations

from .errors import UnsupportedFeature
from .reader import Reader
from .types import RefType, ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF, EXNREF = ValType.FUNCREF, ValType.EXTERNREF, ValType.EXNREF

_NUM_TYPES = {0x7F: I32, 0x7E: I64, 0x7D: F32, 0x7C: F64, 0x7B: V128}
#: Short reference types (``funcref`` = ``(ref null func)``, ...).
_REF_TYPES = {0x70: FUNCREF, 0x6F: EXTERNREF, 0x69: EXNREF, 0x74: RefType(True, "noexn")}
_VAL_TYPES = {**_NUM_TYPES, **_REF_TYPES}
#: Abstract heap types of function references + exception handling (single s33 bytes).
_ABSTRACT_HEAP = {0x70: "func", 0x6F: "extern", 0x69: "exn", 0x74: "noexn"}
#: Abstract heap types of the GC proposal (their short reference types: ``anyref``, ...).
_GC_HEAP = {0x6E: "any", 0x6D: "eq", 0x6C: "i31", 0x6B: "struct", 0x6A: "array",
            0x71: "none", 0x72: "noextern", 0x73: "nofunc"}
_CONT_HEAP = {0x68: "cont", 0x75: "nocont"}
#: Type-index prefix of reference value types: nullable ``(ref null ht)``, ``(ref ht)``.
_REF_NULL, _REF = 0x63, 0x64

_KIND_NAMES = {0: "function", 1: "table", 2: "memory", 3: "global", 4: "tag"}
_REF_FUNC = RefType(False, "func")


def _unsupported_heap_byte(r: Reader, byte: int, pos: int, short: bool):
    """Raise UnsupportedFeature if ``byte`` starts a heap type (or, with ``short``, a short
    reference type such as ``anyref``) of a proposal wasmenv does not decode."""
    if byte in _GC_HEAP:
        what = f"{_GC_HEAP[byte]}ref" if short else f"heap type {_GC_HEAP[byte]}"
        if short and byte >= 0x71:
            what = {0x71: "nullref", 0x72: "nullexternref", 0x73: "nullfuncref"}[byte]
        raise UnsupportedFeature("gc", pos, r.section, what)
    if byte in _CONT_HEAP:
        what = f"{_CONT_HEAP[byte]}ref" if short else f"heap type {_CONT_HEAP[byte]}"
        if short and byte == 0x75:
            what = "nullcontref"
        raise UnsupportedFeature("stack switching", pos, r.section, what)
    if byte == 0x65:
        raise UnsupportedFeature("shared-everything threads", pos, r.section, "shared reference type")
    if byte == 0x62:
        raise UnsupportedFeature("custom descriptors", pos, r.section, "exact reference type")


def read_heap_type_of(r: Reader, types=(), defining: bool = False):
    """A heap type: an abstract name (``"func"``, ``"extern"``, ``"exn"``, ``"noexn"``) or
    the :class:`FuncType` of a type index (``types`` are those defined so far).

    ``defining``: inside the type section, where index ``len(types)`` is the type being
    defined -- a self-reference needs GC's recursion groups.
    """
    pos = r.pos
    byte = r.peek()
    heap = _ABSTRACT_HEAP.get(byte)
    if heap is not None:
        r.pos += 1
        return heap
    _unsupported_heap_byte(r, byte, pos, short=False)
    value = r.s33()
    if value < 0:
        raise r.error(f"invalid heap type {byte:#04x} (invalid indexed ref heap type)", pos)
    if value >= len(types):
        if defining and value == len(types):
            raise UnsupportedFeature("gc", pos, r.section,
                                     f"type {value} refers to itself (recursive types need GC)")
        raise r.error(f"unknown type {value}: type index out of bounds", pos)
    return types[value]


def read_val_type(r: Reader, types=(), defining: bool = False):
    """A value type: a :class:`ValType`, or a :class:`RefType` for typed references."""
    pos = r.pos
    byte = r.u8()
    t = _VAL_TYPES.get(byte)
    if t is not None:
        return t
    if byte == _REF_NULL or byte == _REF:
        return RefType.of(byte == _REF_NULL, read_heap_type_of(r, types, defining))
    _unsupported_heap_byte(r, byte, pos, short=True)
    raise r.error(f"invalid value type {byte:#04x}", pos)


def read_ref_type(r: Reader, types=()):
    pos = r.pos
    byte = r.u8()
    t = _REF_TYPES.get(byte)
    if t is not None:
        return t
    if byte == _REF_NULL or byte == _REF:
        return RefType.of(byte == _REF_NULL, read_heap_type_of(r, types))
    _unsupported_heap_byte(r, byte, pos, short=True)
    raise r.error(f"malformed reference type {byte:#04x}", pos)


def read_heap_type(r: Reader, types=()):
    """The heap type of ``ref.null``, as the nullable reference type it produces."""
    return RefType.of(True, read_heap_type_of(r, types))
