"""The spec's validation algorithm (Appendix "Validation Algorithm"): an operand stack of
value types with an Unknown type, and control frames with an unreachable flag and the
height of the local-initialization stack.

:class:`TypeStack` holds the two stacks and their operations (push/pop with subtyping,
control frames, labels). The function-body walk (:mod:`wasmenv.validation`) and a later
translation pass share it. ``None`` is the spec's Unknown type: it matches any type.
Errors raise :class:`Invalid` (message only); the walk adds the function and offset.
"""
from __future__ import annotations

from .types import RefType, is_subtype, ref_parts

__all__ = ["Invalid", "Frame", "TypeStack", "UNKNOWN", "BLOCK", "LOOP", "IF", "ELSE", "TRY",
           "CATCH", "CATCH_ALL", "TRY_TABLE", "FUNC", "type_name"]

#: The spec's Unknown value type (produced by pops from an unreachable stack).
UNKNOWN = None

#: Control frame kinds.
BLOCK, LOOP, IF, ELSE, TRY, CATCH, CATCH_ALL, TRY_TABLE, FUNC = range(9)
_KIND_NAMES = ("block", "loop", "if", "else", "try", "catch", "catch_all", "try_table", "func")


class Invalid(Exception):
    """Internal: a validation failure; the walk turns it into a DecodeError with the offset."""


def type_name(t) -> str:
    return "unknown" if t is None else str(t)


def _names(types) -> str:
    return "[" + " ".join(type_name(t) for t in types) + "]"


def matches(actual, expect) -> bool:
    """``actual <: expect``, where Unknown (None) matches anything."""
    return actual is expect or actual is None or expect is None or is_subtype(actual, expect)


def is_ref_or_unknown(t) -> bool:
    return t is None or ref_parts(t) is not None


def non_null(t):
    """``(ref ht)`` for a reference type ``(ref null? ht)``; Unknown stays Unknown."""
    if t is None:
        return None
    return RefType.of(False, ref_parts(t)[1])


class Frame:
    """A control frame: kind, block type, operand-stack height, unreachable flag and the
    height of the local-initialization stack at entry."""

    __slots__ = ("kind", "params", "results", "height", "unreachable", "init_height")

    def __init__(self, kind, params, results, height, init_height):
        self.kind = kind
        self.params = params
        self.results = results
        self.height = height
        self.unreachable = False
        self.init_height = init_height

    @property
    def label_types(self):
        return self.params if self.kind == LOOP else self.results

    def __repr__(self):
        return (f"<Frame {_KIND_NAMES[self.kind]} {_names(self.params)} -> {_names(self.results)} "
                f"height={self.height}{' unreachable' if self.unreachable else ''}>")


class TypeStack:
    """Operand and control stacks of one function body.

    ``inited`` is None when every local is defaultable; otherwise a bytearray (1 = set)
    with ``inits`` the locals set since function entry, in order (reset at block ends).
    """

    __slots__ = ("vals", "ctrls", "inited", "inits")

    def __init__(self, inited=None):
        self.vals = []
        self.ctrls = []
        self.inited = inited
        self.inits = []

    # -- operands ------------------------------------------------------------------------
    def push(self, t) -> None:
        self.vals.append(t)

    def pop_any(self):
        """Pop one operand of any type (Unknown from an unreachable, empty frame)."""
        vals = self.vals
        frame = self.ctrls[-1]
        if len(vals) == frame.height:
            if frame.unreachable:
                return None
            raise Invalid("type mismatch: expected a value but nothing on stack")
        return vals.pop()

    def pop(self, expect):
        """Pop one operand that must match ``expect``; returns the actual type."""
        vals = self.vals
        frame = self.ctrls[-1]
        if len(vals) == frame.height:
            if frame.unreachable:
                return None
            raise Invalid(f"type mismatch: expected {type_name(expect)} but nothing on stack")
        actual = vals.pop()
        if actual is not expect and not matches(actual, expect):
            raise Invalid(f"type mismatch: expected {type_name(expect)}, found {type_name(actual)}")
        return actual

    def pop_vals(self, types) -> list:
        """Pop operands matching ``types`` (the last one on top); returns them in order."""
        popped = [self.pop(t) for t in reversed(types)]
        popped.reverse()
        return popped

    def pop_ref(self):
        """Pop a reference (or Unknown); error for a numeric or vector operand."""
        t = self.pop_any()
        if t is not None and ref_parts(t) is None:
            raise Invalid(f"type mismatch: expected a reference, found {t}")
        return t

    # -- control -------------------------------------------------------------------------
    def push_ctrl(self, kind, params, results, entry=None) -> Frame:
        """Open a frame; its operands start as ``params`` (or ``entry`` if given)."""
        frame = Frame(kind, params, results, len(self.vals), len(self.inits))
        self.ctrls.append(frame)
        self.vals.extend(params if entry is None else entry)
        return frame

    def pop_ctrl(self) -> Frame:
        """Close the innermost frame: its results must be exactly what is on its stack."""
        frame = self.ctrls[-1]
        self.pop_vals(frame.results)
        if len(self.vals) != frame.height:
            raise Invalid(f"type mismatch: values remaining on stack at end of "
                          f"{_KIND_NAMES[frame.kind]}")
        self.ctrls.pop()
        inits = self.inits
        if len(inits) > frame.init_height:
            inited = self.inited
            for index in inits[frame.init_height:]:
                inited[index] = 0
            del inits[frame.init_height:]
        return frame

    def frame_at(self, depth: int) -> Frame:
        ctrls = self.ctrls
        if depth >= len(ctrls):
            raise Invalid(f"unknown label {depth}: branch depth too large")
        return ctrls[-1 - depth]

    def label_types(self, depth: int):
        return self.frame_at(depth).label_types

    def unreachable(self) -> None:
        frame = self.ctrls[-1]
        del self.vals[frame.height:]
        frame.unreachable = True

    def set_local(self, index: int) -> None:
        inited = self.inited
        if inited is not None and not inited[index]:
            inited[index] = 1
            self.inits.append(index)


def _all_match(actual, expect) -> bool:
    return len(actual) == len(expect) and all(
        matches(a, b) for a, b in zip(actual, expect, strict=True))


def check_results(callee, caller) -> None:
    """Tail calls: the callee's results must match the caller's."""
    if not _all_match(callee, caller):
        raise Invalid(f"type mismatch: current function requires result type {_names(caller)} "
                      f"but callee returns {_names(callee)}")


def check_types(actual, expect, what) -> None:
    """Each of ``actual`` matches ``expect`` (same length)."""
    if not _all_match(actual, expect):
        raise Invalid(f"type mismatch: {what}: {_names(actual)} does not match {_names(expect)}")
