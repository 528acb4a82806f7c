"""The rules the decoder and :func:`~wasmenv.checks.check_translation` share: limits of
memories and tables, table initializers, tag and start types, constant expressions, value
and function types. Each raises :class:`Invalid`; the decoder turns it into a DecodeError
at the byte offset."""
from __future__ import annotations

import functools
from typing import List, Optional, Sequence

from ..constexpr import _ARITH, ConstExpr
from ..types import (ABSTRACT_HEAP_TYPES, WASM32_MAX_PAGES, WASM64_MAX_PAGES, FuncType, GlobalType,
                     RefType, ValType, is_defaultable, is_subtype)

U32 = 1 << 32
U64 = 1 << 64
#: Largest alignment accepted for data chunks (bytes).
MAX_ALIGN = 1 << 30
#: Nesting limit for value types inside value types (RefType -> FuncType -> RefType ...).
MAX_TYPE_DEPTH = 32


class Invalid(ValueError):
    """A broken invariant: ``message``, and ``at`` (a field path, or an op's position)."""

    def __init__(self, message: str, at=None):
        super().__init__(message, at)
        self.message = message
        self.at = at

    def __str__(self):
        return f"{self.at}: {self.message}" if isinstance(self.at, str) else self.message


# =====================================================================================
# Rules shared with the decoder
# =====================================================================================
def memory_limits(minimum: int, maximum: Optional[int], shared: bool, memory64: bool) -> None:
    """A memory type's limits: min <= max <= the index type's page cap; shared has a max."""
    cap = WASM64_MAX_PAGES if memory64 else WASM32_MAX_PAGES
    if maximum is not None and minimum > maximum:
        raise Invalid(f"size minimum must not be greater than maximum "
                      f"(maximum {maximum} out of range [{minimum}, {cap}])")
    if minimum > cap or (maximum is not None and maximum > cap):
        raise Invalid("memory size must be at most 2**48 pages" if memory64
                      else "memory size must be at most 65536 pages (4GiB)")
    if shared and maximum is None:
        raise Invalid("shared memory must have maximum size")


def table_limits(minimum: int, maximum: Optional[int], table64: bool) -> None:
    """A table type's limits: min <= max <= the index type's cap."""
    cap = U64 - 1 if table64 else U32 - 1
    if maximum is not None and minimum > maximum:
        raise Invalid(f"size minimum must not be greater than maximum "
                      f"(maximum {maximum} out of range [{minimum}, {cap}])")
    if minimum > cap or (maximum is not None and maximum > cap):
        raise Invalid(f"table size must be at most {cap:#x} entries")


def table_init(element, init: Optional[ConstExpr]) -> None:
    """A defined table without an initializer needs a defaultable (nullable) element type."""
    if init is None and not is_defaultable(element):
        raise Invalid("type mismatch: non-defaultable element type (a defined table of a "
                      "non-nullable type needs an initializer)")


def tag_type(ft: FuncType) -> None:
    if ft.results:
        raise Invalid("invalid exception type: non-empty tag result type")


def start_func_type(ft: FuncType) -> None:
    if ft.params or ft.results:
        raise Invalid("invalid start function type (the start function takes and returns nothing)")


_CONST_BITS = {"i32.const": 32, "i64.const": 64, "f32.const": 32, "f64.const": 64}
_CONST_TYPES = {"i32.const": ValType.I32, "i64.const": ValType.I64,
                "f32.const": ValType.F32, "f64.const": ValType.F64, "v128.const": ValType.V128}
_ARITH_TYPES = {name: ValType.I32 if name.startswith("i32") else ValType.I64 for name in _ARITH}


def const_expr(ops, expected, global_types: Sequence[GlobalType], num_globals: int,
               func_sigs: Sequence[int], types: Sequence[FuncType]) -> None:
    """Type-check the ops of a constant expression producing a subtype of ``expected``.

    ``global_types[:num_globals]`` are visible to ``global.get``; ``func_sigs[f]`` is the
    type index of function ``f`` (``ref.func f`` has type ``(ref $sig)``).

    Raises:
        Invalid: ``at`` is the index of the offending op (None: the expression as a whole).
    """
    stack: List[object] = []
    for k, item in enumerate(ops):
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str:
            raise Invalid(f"malformed op {item!r}", k)
        op, imm = item
        t = _CONST_TYPES.get(op)
        if t is not None:
            if op == "v128.const":
                if type(imm) is not bytes or len(imm) != 16:
                    raise Invalid("v128.const needs 16 bytes", k)
            elif type(imm) is not int or not 0 <= imm < 1 << _CONST_BITS[op]:
                raise Invalid(f"{op} immediate {imm!r} is not a {_CONST_BITS[op]}-bit pattern", k)
            stack.append(t)
        elif op == "global.get":
            if type(imm) is not int or not 0 <= imm < num_globals:
                raise Invalid(f"unknown global {imm}: global index out of bounds "
                              f"(global.get {imm}: only {num_globals} globals are visible here)", k)
            gt = global_types[imm]
            if gt.mutable:
                raise Invalid("constant expression required: global.get of mutable global", k)
            stack.append(gt.content)
        elif op == "ref.func":
            if type(imm) is not int or not 0 <= imm < len(func_sigs):
                raise Invalid(f"unknown function {imm}: func index out of bounds", k)
            stack.append(_func_ref(types[func_sigs[imm]]))
        elif op == "ref.null":
            try:
                value_type(imm, ref=True)
            except Invalid as exc:
                raise Invalid(exc.message, k) from None
            if type(imm) is RefType and not imm.nullable:
                raise Invalid("ref.null of a non-nullable type", k)
            stack.append(imm)
        elif op in _ARITH:
            t = _ARITH_TYPES[op]
            if imm is not None:
                raise Invalid(f"{op} takes no immediate", k)
            if len(stack) < 2 or stack[-1] is not t or stack[-2] is not t:
                found = ", ".join(str(s) for s in stack[-2:]) or "nothing"
                raise Invalid(f"type mismatch: {op} expected two {t} operands, found {found}", k)
            stack.pop()
        else:
            raise Invalid(f"unknown constant operator {op!r}", k)
    if len(stack) != 1 or (stack[0] is not expected and not _subtype(stack[0], expected)):
        found = " ".join(str(s) for s in stack) or "nothing"
        raise Invalid(f"type mismatch: constant expression must produce [{expected}], "
                      f"found [{found}]")


#: ``(ref $ft)`` and ``a <: b``, memoized: element segments repeat them per item.
_func_ref = functools.lru_cache(maxsize=1024)(lambda ft: RefType(False, ft))
_subtype = functools.lru_cache(maxsize=1024)(is_subtype)


def value_type(v, ref: bool = False, depth: int = 0) -> None:
    """A ValType, or a RefType whose heap is an abstract heap type or a FuncType."""
    if isinstance(v, ValType):
        if ref and not v.is_ref:
            raise Invalid(f"expected a reference type, got {v}")
        return
    if type(v) is not RefType:
        raise Invalid(f"expected a value type, got {v!r}")
    if depth >= MAX_TYPE_DEPTH:
        raise Invalid("value types nested too deeply")
    if type(v.nullable) is not bool:
        raise Invalid("RefType.nullable must be a bool")
    if isinstance(v.heap, str):
        if v.heap not in ABSTRACT_HEAP_TYPES:
            raise Invalid(f"unknown heap type {v.heap!r}")
    else:
        func_type(v.heap, depth + 1)


def func_type(ft, depth: int = 0) -> None:
    if type(ft) is not FuncType:
        raise Invalid(f"expected a FuncType, got {ft!r}")
    for part in (ft.params, ft.results):
        if type(part) is not tuple:
            raise Invalid("params and results must be tuples")
        for v in part:
            value_type(v, depth=depth)


def is_pow2(v) -> bool:
    return type(v) is int and v > 0 and v & (v - 1) == 0
