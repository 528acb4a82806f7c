"""Constant expressions (global initializers, segment offsets, element items)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from .types import ValType

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1

#: Binary arithmetic allowed by extended-const: op name -> (mask, function).
_ARITH = {
    "i32.add": (MASK32, lambda a, b: a + b),
    "i32.sub": (MASK32, lambda a, b: a - b),
    "i32.mul": (MASK32, lambda a, b: a * b),
    "i64.add": (MASK64, lambda a, b: a + b),
    "i64.sub": (MASK64, lambda a, b: a - b),
    "i64.mul": (MASK64, lambda a, b: a * b),
}


@dataclass(frozen=True)
class ConstExpr:
    """A validated constant expression as a tuple of ``(opname, immediate)`` ops.

    Immediates: ``i32.const``/``i64.const`` hold the *unsigned* bit pattern;
    ``f32.const``/``f64.const`` the raw bits; ``v128.const`` 16 bytes; ``ref.null`` a
    :class:`ValType`; ``ref.func`` and ``global.get`` an index; arithmetic ops ``None``.
    """

    ops: Tuple[Tuple[str, object], ...]

    def constant(self) -> Optional[int]:
        """The integer value if the expression uses no global, else None."""
        if any(op == "global.get" for op, _ in self.ops):
            return None
        if not all(op in ("i32.const", "i64.const") or op in _ARITH for op, _ in self.ops):
            return None
        return self.evaluate(lambda i: 0)

    def global_base(self) -> Optional[int]:
        """The global index if the expression is exactly one ``global.get``."""
        if len(self.ops) == 1 and self.ops[0][0] == "global.get":
            return self.ops[0][1]
        return None

    def func_ref(self) -> Optional[int]:
        """The function index if the expression is exactly one ``ref.func``."""
        if len(self.ops) == 1 and self.ops[0][0] == "ref.func":
            return self.ops[0][1]
        return None

    def is_null(self) -> bool:
        return len(self.ops) == 1 and self.ops[0][0] == "ref.null"

    def evaluate(self, get_global: Callable[[int], object],
                 ref_func: Callable[[int], object] = lambda i: ("func", i)):
        """Evaluate with ``get_global(index)`` and ``ref_func(index)`` callbacks.

        Integers come out unsigned (i32 in [0, 2^32)); floats as raw bits; refs as
        whatever ``ref_func`` returns, or None for ``ref.null``.
        """
        stack = []
        for op, imm in self.ops:
            if op in ("i32.const", "i64.const", "f32.const", "f64.const", "v128.const"):
                stack.append(imm)
            elif op == "global.get":
                stack.append(get_global(imm))
            elif op == "ref.null":
                stack.append(None)
            elif op == "ref.func":
                stack.append(ref_func(imm))
            else:
                mask, fn = _ARITH[op]
                b = stack.pop()
                a = stack.pop()
                stack.append(fn(a, b) & mask)
        if len(stack) != 1:
            raise ValueError(f"constant expression leaves {len(stack)} values")
        return stack[0]

    def __str__(self):
        parts = []
        for op, imm in self.ops:
            if imm is None:
                parts.append(op)
            elif isinstance(imm, ValType):
                parts.append(f"{op} {imm}")
            elif isinstance(imm, (bytes, bytearray)):
                parts.append(f"{op} 0x{bytes(imm).hex()}")
            else:
                parts.append(f"{op} {imm}")
        return "; ".join(parts)
