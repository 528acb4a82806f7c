"""Exception tags (identity objects; exceptions are not thrown without code execution)."""
from __future__ import annotations

from wasmenv import FuncType


class Tag:
    """A tag of function type ``ty`` (its params are the exception payload)."""

    __slots__ = ("ty", "__weakref__")

    def __init__(self, ty: FuncType):
        if not isinstance(ty, FuncType) or ty.results:
            raise TypeError("a tag type is a FuncType with no results")
        self.ty = ty

    @classmethod
    def new(cls, engine, ty: FuncType) -> "Tag":
        return cls(ty)

    def __repr__(self):
        return f"<Tag {self.ty}>"
