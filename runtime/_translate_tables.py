"""The translator's table, reference and bulk-segment instructions (runtime/translate.py
registers them into its CONTROL dispatch): table.get/set/size/grow/fill/copy, ref.null,
ref.is_null, ref.func, ref.as_non_null, br_on_null, br_on_non_null, call_indirect, and
table.init, elem.drop, memory.init, data.drop (run by Python through a ``bulk_exit``:
:data:`BULK` names them; runtime/interp.py runs them).

Handlers are ``handler(t, op)`` as in runtime/_translate_ops.py. References are cells
(c_src/wenv_table.h): null is 0, so ``ref.is_null`` is ``i64.eqz`` of the cell.
"""
from __future__ import annotations

from typing import Callable, Dict

from ._translate_ops import FUNC, _after_call, _call_args, _unreachable_after, stack_op
from .func import type_id

__all__ = ["TABLES", "BULK"]

#: bulk_exit kinds: [op, length, kind, operand slots..., immediates...].
BULK = {"table.init": 0, "elem.drop": 1, "memory.init": 2, "data.drop": 3}


def _table_get(t, op) -> None:
    table = t.r.u32()
    index = t.pop()
    dst = t.push()
    t.produced(t.emit("table_get", dst, index, table))
    t.last_cmp = None


def _table_set(t, op) -> None:
    table = t.r.u32()
    value, index = t.pop(), t.pop()
    t.emit("table_set", index, value, table)
    t.last = None


def _table_size(t, op) -> None:
    table = t.r.u32()
    dst = t.push()
    t.produced(t.emit("table_size", dst, table))


def _bulk(t, op) -> None:
    """table.init/memory.init ([d, s, n] then segment, table/memory), elem.drop/data.drop."""
    name = op.name
    r = t.r
    if name in ("table.init", "memory.init"):
        seg, target = r.u32(), r.u32()
        n, s, d = t.pop(), t.pop(), t.pop()
        words = (d, s, n, seg, target)
    else:
        words = (r.u32(),)
    t.emit("bulk_exit", 3 + len(words), BULK[name], *words)
    t.label()  # Python ran code here: nothing to fuse across it


def _ref_null(t, op) -> None:
    t.r.s33()
    dst = t.push()
    t.produced(t.emit("const", dst, 0))
    t.last_cmp = None


def _ref_is_null(t, op) -> None:
    a = t.pop()
    dst = t.push()
    pos = t.emit("i64_eqz", dst, a)
    t.produced(pos)
    t.last_cmp = (pos, "i64.eqz", a, None, dst, len(t.code), None)


def _ref_as_non_null(t, op) -> None:
    t.emit("ref_as_non_null", t.st[-1])
    t.last = t.last_cmp = None


def _br_on_null(t, op) -> None:
    """Branch (dropping the null) when null; else the reference stays."""
    target = t.ctrls[-1 - t.r.u32()]
    v = t.pop()
    _branch_when(t, target, "br_i64_eqz", "br_i64_nez", v)
    t.push_ref(v)


def _br_on_non_null(t, op) -> None:
    """Branch with the reference when not null; else drop it."""
    target = t.ctrls[-1 - t.r.u32()]
    v = t.st[-1]
    _branch_when(t, target, "br_i64_nez", "br_i64_eqz", v)
    t.pop()


def _branch_when(t, target, taken: str, not_taken: str, v: int) -> None:
    moves = t.moves_to(target)
    if not moves and target.kind != FUNC:
        t.branch(target, taken, v)
        t.label()
        return
    pos = t.emit(not_taken, v, 0)
    word = len(t.code) - 1
    t.exit_to(target)
    t.patch(word, pos, t.label())


def _call_indirect(t, op) -> None:
    """call_indirect / return_call_indirect: [op, 0, first argument slot, index slot,
    table, canonical type id] (C resolves the element and runs it as call_ref does)."""
    r = t.r
    ft = t.ctx.types[r.u32()]
    table = r.u32()
    index = t.st[-1]
    argbase = _call_args(t, ft, 1)
    tail = op.name == "return_call_indirect"
    t.emit("return_call_indirect" if tail else "call_indirect", 0, argbase, index, table, type_id(ft))
    if tail:
        t.label()
        _unreachable_after(t)
    else:
        _after_call(t, ft, len(ft.params) + 1)


TABLES: Dict[str, Callable] = {
    "table.get": _table_get, "table.set": _table_set, "table.size": _table_size,
    "table.grow": stack_op("table_grow", 1, 2, True),
    "table.fill": stack_op("table_fill", 1, 3, False),
    "table.copy": stack_op("table_copy", 2, 3, False),
    "table.init": _bulk, "elem.drop": _bulk, "memory.init": _bulk, "data.drop": _bulk,
    "ref.null": _ref_null, "ref.is_null": _ref_is_null,
    "ref.as_non_null": _ref_as_non_null, "br_on_null": _br_on_null,
    "br_on_non_null": _br_on_non_null, "call_indirect": _call_indirect,
    "return_call_indirect": _call_indirect,
}
