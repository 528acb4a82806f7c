"""The translator's control and variable instructions (runtime/translate.py): blocks,
branches with their value moves, calls, globals, memory size/grow/fill/copy.

Each handler is ``handler(t, op)``: ``t`` is the FunctionTranslator (its Reader at the
immediates), ``op`` the :class:`wasmenv.opcodes.Op`.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple

from wasmenv import FuncType, UnsupportedFeature, ValType
from wasmenv.types import ref_parts

__all__ = ["CONTROL", "Frame", "BLOCK", "LOOP", "IF", "FUNC", "NUMERIC_TYPES", "check_types",
           "unsupported"]

NUMERIC_TYPES = (ValType.I32, ValType.I64, ValType.F32, ValType.F64)
BLOCK, LOOP, IF, FUNC = range(4)


class Frame:
    __slots__ = ("kind", "height", "nparams", "nresults", "fixups", "start", "else_fix",
                 "spill", "dead", "has_else")

    def __init__(self, kind, height, nparams, nresults, start=0):
        self.kind, self.height, self.nparams, self.nresults = kind, height, nparams, nresults
        self.fixups: List[Tuple[int, int]] = []  # (displacement word, op position)
        self.start = start
        self.else_fix = None
        self.spill = None
        self.dead = False
        self.has_else = False

    @property
    def arity(self):
        return self.nparams if self.kind == LOOP else self.nresults


def unsupported(proposal, detail):
    return UnsupportedFeature(proposal, detail=detail)


def check_types(types, what):
    """Raise UnsupportedFeature unless every type is numeric or a function or extern
    reference (one 8-byte cell each, c_src/wenv_table.h)."""
    for t in types:
        if t not in NUMERIC_TYPES and not is_cell_ref(t):
            parts = ref_parts(t)
            proposal = "simd" if t is ValType.V128 else (
                "exceptions" if parts is not None else "reference types")
            raise unsupported(proposal, f"{what} of type {t}")


def is_cell_ref(t) -> bool:
    """A reference type the interpreter holds in a cell: func, extern, their bottoms, $t."""
    parts = ref_parts(t)
    return parts is not None and (parts[1] in ("func", "extern", "nofunc", "noextern")
                                  or isinstance(parts[1], FuncType))


def _block(t, op) -> None:
    nparams, nresults = t.block_type()
    t.materialize_all()
    kind = LOOP if op.name == "loop" else BLOCK
    frame = Frame(kind, len(t.st) - nparams, nparams, nresults)
    if kind == LOOP:
        frame.start = t.label()
        t.bound_check()  # every iteration passes the loop header: fuel and epoch
    t.ctrls.append(frame)


def _if(t, op) -> None:
    nparams, nresults = t.block_type()
    cond = t.pop()
    fused = t.take_cond(cond)
    t.materialize_all()
    frame = Frame(IF, len(t.st) - nparams, nparams, nresults)
    if nparams:  # the else arm needs the parameters the then arm may overwrite
        frame.spill = t.nspill
        t.nspill += nparams
        for i in range(nparams):
            t.emit("copy", 0, t.home(frame.height + i))
            t.spill_slot(len(t.code) - 2, frame.spill + i)
    name, operands = t.cond_branch(fused, cond, False)
    pos = t.emit(name, *operands, 0)
    frame.else_fix = (len(t.code) - 1, pos)
    t.label()
    t.ctrls.append(frame)


def _fallthrough(t, frame: Frame) -> None:
    """The end of a reachable arm: its results into their homes."""
    for i in range(frame.nresults):
        t.materialize(frame.height + i)


def _else(t, op) -> None:
    frame = t.ctrls[-1]
    if not frame.dead:
        _fallthrough(t, frame)
        pos = t.emit("br", 0)
        frame.fixups.append((len(t.code) - 1, pos))
    word, pos = frame.else_fix
    t.patch(word, pos, t.label())
    frame.else_fix = None
    frame.has_else = True
    frame.dead = False
    del t.st[frame.height:]
    for i in range(frame.nparams):
        t.emit("copy", t.home(frame.height + i), 0)
        t.spill_slot(len(t.code) - 1, frame.spill + i)
        t.push()


def _end(t, op) -> None:
    frame = t.ctrls.pop()
    if frame.kind == FUNC:
        if not frame.dead:
            t.exit_to(frame)
        return
    if not frame.dead:
        _fallthrough(t, frame)
    here = t.label()
    for word, pos in frame.fixups:
        t.patch(word, pos, here)
    if frame.else_fix is not None:  # an if without else: its params are its results
        t.patch(*frame.else_fix, here)
    del t.st[frame.height:]
    for _ in range(frame.nresults):
        t.push()
    if frame.kind == LOOP:
        t.fuel_region()  # the code after a loop is not charged with each iteration


def _unreachable_after(t) -> None:
    frame = t.ctrls[-1]
    frame.dead = True
    del t.st[frame.height:]


def _br(t, op) -> None:
    t.exit_to(t.ctrls[-1 - t.r.u32()])
    _unreachable_after(t)


def _br_if(t, op) -> None:
    target = t.ctrls[-1 - t.r.u32()]
    cond = t.pop()
    fused = t.take_cond(cond)
    moves = t.moves_to(target)
    if not moves and target.kind != FUNC:
        name, operands = t.cond_branch(fused, cond, True)
        if name in ("br_if", "br_unless"):
            copied = t.take_copy()
            if copied is not None:  # the copy just before runs first: [dst, src, cond, disp]
                name, operands = "copy_" + name, copied + operands
        t.branch(target, name, *operands)
        t.label()
        return
    name, operands = t.cond_branch(fused, cond, False)
    pos = t.emit(name, *operands, 0)
    word = len(t.code) - 1
    t.exit_to(target)
    t.patch(word, pos, t.label())


def _br_table(t, op) -> None:
    r = t.r
    depths = [r.u32() for _ in range(r.u32() + 1)]
    index = t.pop()
    pos = t.emit("br_table", index, len(depths) - 1, *([0] * len(depths)))
    first = pos + 3
    stubs = []
    for k, depth in enumerate(depths):
        target = t.ctrls[-1 - depth]
        if not t.moves_to(target) and target.kind != FUNC:
            if target.kind == LOOP:
                t.patch(first + k, pos, target.start)
            else:
                target.fixups.append((first + k, pos))
        else:
            stubs.append((k, target))
    for k, target in stubs:
        t.patch(first + k, pos, t.label())
        t.exit_to(target)
    t.label()
    _unreachable_after(t)


def _return(t, op) -> None:
    t.exit_to(t.ctrls[0])
    _unreachable_after(t)


def _unreachable(t, op) -> None:
    t.emit("unreachable")
    t.label()
    _unreachable_after(t)


def _nop(t, op) -> None:
    pass


def _drop(t, op) -> None:
    t.pop()


def _select(t, op) -> None:
    if op.imm == "valtypes":
        for _ in range(t.r.u32()):
            check_types([t.read_valtype()], "select")
    c, b, a = t.pop(), t.pop(), t.pop()
    dst = t.push()
    t.produced(t.emit("select", dst, a, b, c))
    t.last_cmp = None


def _global_get(t, op) -> None:
    g = t.r.u32()
    check_types([t.ctx.global_types[g]], "global.get of a global")
    offset, indirect = t.ctx.global_locations[g]
    dst = t.push()
    t.produced(t.emit("global_get_imp" if indirect else "global_get", dst, offset))
    t.last_cmp = None


def _global_set(t, op) -> None:
    g = t.r.u32()
    check_types([t.ctx.global_types[g]], "global.set of a global")
    offset, indirect = t.ctx.global_locations[g]
    t.emit("global_set_imp" if indirect else "global_set", offset, t.pop())
    t.last = t.last_cmp = None


def _call_args(t, ft, extra: int = 0) -> int:
    """Materialize the arguments of a call of type ``ft`` (under ``extra`` more operands,
    e.g. a funcref) and pop them; returns the slot of the first one."""
    check_types(ft.params, "a callee parameter")
    check_types(ft.results, "a callee result")
    n = len(ft.params)
    top = len(t.st) - extra
    for i in range(top - n, top):
        t.materialize(i)
    return t.home(top - n)


def _after_call(t, ft, n_popped: int) -> None:
    del t.st[len(t.st) - n_popped:]
    for _ in ft.results:
        t.push()
    t.label()  # (results are in their homes; nothing to fuse across a call)


def _call(t, op) -> None:
    f = t.r.u32()
    ft = t.ctx.func_types[f]
    argbase = _call_args(t, ft)
    imported = f < t.ctx.num_imported_funcs
    tail = op.name == "return_call"
    name = ("return_call" if tail else "call") + ("_import" if imported else "")
    t.emit(name, f, argbase)
    if tail:
        t.label()
        _unreachable_after(t)
    else:
        _after_call(t, ft, len(ft.params))


def _call_ref(t, op) -> None:
    ft = t.ctx.types[t.r.u32()]
    ref = t.st[-1]
    argbase = _call_args(t, ft, 1)
    tail = op.name == "return_call_ref"
    t.emit("return_call_ref" if tail else "call_ref", ref, argbase)
    if tail:
        t.label()
        _unreachable_after(t)
    else:
        _after_call(t, ft, len(ft.params) + 1)


def _ref_func(t, op) -> None:
    f = t.r.u32()
    dst = t.push()
    t.produced(t.emit("ref_func", dst, f))
    t.last_cmp = None


def _memory_size(t, op) -> None:
    mem = t.r.u32()
    dst = t.push()
    t.produced(t.emit("memory_size", dst, mem))


def stack_op(name: str, nimm: int, npop: int, result: bool) -> Callable:
    """A handler for an instruction that reads ``nimm`` u32 immediates (memory or table
    indices), pops ``npop`` operands and emits ``[op, (dst), operands in stack order,
    immediates]`` (memory/table grow, fill and copy)."""
    def handler(t, op) -> None:
        imms = [t.r.u32() for _ in range(nimm)]
        st = t.st
        operands = st[len(st) - npop:]
        del st[len(st) - npop:]
        dst = (t.push(),) if result else ()
        t.emit(name, *dst, *operands, *imms)
        t.last = None
    return handler


CONTROL: Dict[str, Callable] = {
    "block": _block, "loop": _block, "if": _if, "else": _else, "end": _end, "br": _br,
    "br_if": _br_if, "br_table": _br_table, "return": _return, "unreachable": _unreachable,
    "nop": _nop, "drop": _drop, "select": _select, "global.get": _global_get,
    "global.set": _global_set, "call": _call, "return_call": _call, "call_ref": _call_ref,
    "return_call_ref": _call_ref, "ref.func": _ref_func, "memory.size": _memory_size,
    "memory.grow": stack_op("memory_grow", 1, 1, True),
    "memory.fill": stack_op("memory_fill", 1, 3, False),
    "memory.copy": stack_op("memory_copy", 2, 3, False),
}
