"""Globals: a typed, optionally mutable value."""
from __future__ import annotations

from wasmenv import GlobalType

from .values import as_u64, check_ref, from_bits, to_bits, valtype


class Global:
    """A wasm global. ``value`` reads and (if mutable) writes it as a Python value."""

    __slots__ = ("ty", "_bits", "__weakref__")

    def __init__(self, ty: GlobalType, bits):
        self.ty = ty
        self._bits = bits

    @classmethod
    def new(cls, engine, content, value, *, mutable: bool = False) -> "Global":
        """A host global of type ``content`` (``"i32"``, ``ValType.F64``, a RefType, ...).

        Reference values: None (null, nullable types only), a Func for function
        references (of exactly ``$t`` for ``(ref null? $t)``), any object for externref.
        """
        ty = GlobalType(valtype(content), bool(mutable))
        check_ref(ty.content, value)
        return cls(ty, to_bits(ty.content, value))

    @property
    def value(self):
        return from_bits(self.ty.content, self._bits)

    @value.setter
    def value(self, new):
        if not self.ty.mutable:
            raise AttributeError("global is immutable")
        check_ref(self.ty.content, new)
        self._bits = to_bits(self.ty.content, new)

    @property
    def bits(self):
        """The raw value: unsigned ints, float bit patterns, or the reference object."""
        return self._bits

    def as_u64(self) -> int:
        return as_u64(self.ty.content, self._bits)

    def close(self):
        """Globals hold no native resource; present for a uniform API."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        mut = "mut " if self.ty.mutable else ""
        return f"<Global {mut}{self.ty.content} = {self.value!r}>"
