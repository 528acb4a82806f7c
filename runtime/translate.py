"""Translation of validated function bodies into the interpreter's code (c_src/wenv_interp.h).

A pass over code that :func:`wasmenv.validate` accepted: it relies on validation (stack
heights, label arities and index bounds are not checked again) and reads the instruction
table (:mod:`wasmenv.opcodes`) for signatures and immediates, so it is not a second copy
of the typing rules.

The code is register/slot form: every operand is a frame slot (an 8-byte cell). A frame is
``[parameters][locals][operand stack][spill]``; the operand at stack height ``h`` lives in
slot ``nlocals + h`` (its *home*). ``local.get`` emits nothing: the stack entry refers to the
local's slot until something must be materialized (a ``local.set`` of that local, a block
boundary, a call argument). Fused forms: any binary op on locals (``local.get; local.get;
i32.add`` is one op), an op's result written straight into the local a following
``local.set``/``local.tee`` names, an integer constant operand of an integer binary op or
compare folded into it (``i32.const 7; i32.and`` as ``i32_and_imm``), and an integer compare
(or ``eqz``) followed by ``br_if``/``if`` as one compare-and-branch (``br_i32_lt_u``, with an
immediate ``br_i32_lt_u_imm``).
"""
from __future__ import annotations

import struct
from array import array
from typing import Dict, List, NamedTuple, Tuple

from wasmenv import UnsupportedFeature, ValType
from wasmenv.opcodes import PREFIXED, SINGLE
from wasmenv.decode_types import read_val_type
from wasmenv.reader import Reader

from ._translate_ops import (CONTROL, FUNC, LOOP, Frame, check_types,
                             unsupported)
from ._translate_fuse import _INT_CONSTS, _LOAD_BRANCHES, _NEGATE, NUMERIC, Fusions
from ._translate_tables import TABLES

CONTROL = {**CONTROL, **TABLES}

__all__ = ["Code", "FunctionTranslator", "translate_function", "NUMERIC"]

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
_VALTYPE_BYTES = {0x7F: ValType.I32, 0x7E: ValType.I64, 0x7D: ValType.F32, 0x7C: ValType.F64}
#: Reference type bytes whose values are cells: funcref, externref, (ref null? ht).
#: (The heap type of (ref ht) is validated; any reference this runtime runs fits a cell.)
_REF_BYTES = (0x70, 0x6F, 0x63, 0x64)
#: Wasmtime's fuel cost of an operator: 1, except these (structure and no-ops) cost 0.
_FUEL_COST = {name: 0 for name in ("nop", "drop", "block", "loop", "unreachable", "return",
                                   "else", "end")}


class Code(NamedTuple):
    """One translated function: code words (op numbers at ``positions``, not yet linked)."""

    words: array
    positions: array
    nparams: int
    nresults: int
    nlocals: int
    frame_cells: int
    #: The wasm offset (in the code buffer) of the instruction each op of ``positions``
    #: was emitted for: traps and return addresses map back through it (backtraces).
    offsets: array = None


class FunctionTranslator(Fusions):
    """Translates one validated body. ``ctx`` gives the module facts (see runtime.interp)."""

    def __init__(self, ctx, func_index: int, buf, start: int, end: int, opnums: Dict[str, int]):
        self.ctx = ctx
        self.func_index = func_index
        self.r = Reader(buf, start, end, "code")
        self.opn = opnums
        ft = ctx.func_types[func_index]
        check_types(ft.params, "a parameter")
        check_types(ft.results, "a result")
        self.nparams, self.nresults = len(ft.params), len(ft.results)
        self.code: List[int] = []
        self.positions: List[int] = []
        self.st: List[int] = []
        self.max_h = 0
        self.spills: List[Tuple[int, int]] = []  # (word, spill index): patched at the end
        self.nspill = 0
        self.last = None       # (dst word, code length after) of the last value-producing op
        self.last_cmp = None   # (op position, name, a, b, result slot, code length after, imm)
        self.last_const = None  # (op position, value, slot, code length after) of an i32.const
        self.skip = 0  # depth of blocks opened inside unreachable code
        self.label_pos = 0  # the last branch target
        self.offsets: List[int] = []  # per op position: the wasm offset it was emitted for
        self.op_offset = start
        self.fuel_word = None  # the cost word of the last fuel op (patched at the next one)
        self.fuel_cost = 0

    # -- emission ----------------------------------------------------------------------------
    def emit(self, name: str, *operands) -> int:
        code = self.code
        pos = len(code)
        self.positions.append(pos)
        self.offsets.append(self.op_offset)
        code.append(self.opn[name])
        code.extend(operands)
        return pos

    def truncate(self, pos: int) -> None:
        del self.code[pos:]
        if self.positions and self.positions[-1] == pos:
            self.positions.pop()
            self.offsets.pop()

    def produced(self, pos: int) -> None:
        """The op at ``pos`` wrote its result to the slot in word pos + 1 (then nothing else)."""
        self.last = (pos + 1, len(self.code))

    def label(self) -> int:
        """Here is a branch target: nothing before it may be fused with what follows."""
        self.last = self.last_cmp = self.last_const = None
        self.label_pos = len(self.code)
        return len(self.code)

    def patch(self, word: int, op_pos: int, target: int) -> None:
        self.code[word] = (target - op_pos) & MASK64

    # -- store bounds (c_src/wenv_interp_ctl.inc) ------------------------------------------------
    def bound_check(self) -> None:
        """A check point (function entry, loop header): fuel and epoch ops, if the engine
        has them. Fuel is charged ahead for the code up to the next check point."""
        if self.ctx.fuel:
            self.fuel_region()
        if self.ctx.epoch:
            self.emit("epoch")

    def fuel_region(self) -> None:
        """Close the fuel region open so far and open one here (a no-op without fuel)."""
        if not self.ctx.fuel:
            return
        if self.fuel_word is not None:
            self.code[self.fuel_word] = self.fuel_cost
        self.fuel_cost = 0
        self.fuel_word = self.emit("fuel", 0) + 1

    # -- the operand stack ---------------------------------------------------------------------
    def home(self, h: int) -> int:
        return self.base + h

    def push(self) -> int:
        st = self.st
        slot = self.base + len(st)
        st.append(slot)
        if len(st) > self.max_h:
            self.max_h = len(st)
        return slot

    def push_ref(self, slot: int) -> None:
        self.st.append(slot)
        if len(self.st) > self.max_h:
            self.max_h = len(self.st)

    def pop(self) -> int:
        return self.st.pop()

    def materialize(self, i: int) -> None:
        src, home = self.st[i], self.base + i
        if src != home:
            self.emit("copy", home, src)
            self.st[i] = home

    def materialize_all(self) -> None:
        for i in range(len(self.st)):
            self.materialize(i)

    def spill_slot(self, word: int, k: int) -> None:
        self.spills.append((word, k))

    def moves_to(self, frame: Frame) -> List[Tuple[int, int]]:
        """(dst, src) copies that put the branch values where ``frame``'s label expects them,
        in a safe order; the model (``st``) is not changed (the path may be conditional)."""
        n = frame.arity
        srcs = self.st[len(self.st) - n:] if n else []
        moves = []
        if frame.kind == FUNC:
            # results go to slots 0..n-1 in order: first save the lazy locals that an
            # earlier copy would overwrite before they are read
            first = len(self.st) - n
            for i, s in enumerate(srcs):
                if s < i:
                    moves.append((self.home(first + i), s))
                    srcs[i] = self.home(first + i)
            return moves + [(i, s) for i, s in enumerate(srcs) if s != i]
        return [(self.home(frame.height + i), s) for i, s in enumerate(srcs)
                if s != self.home(frame.height + i)]

    def exit_to(self, frame: Frame) -> None:
        """Unconditionally leave to ``frame``'s label: copies, then return or br."""
        for dst, src in self.moves_to(frame):
            self.emit("copy", dst, src)
        if frame.kind == FUNC:
            self.emit("return")
        else:
            self.branch(frame, "br")
        self.label()

    def branch(self, frame: Frame, name: str, *operands) -> None:
        """Emit a branch op whose last word is the displacement to ``frame``'s label."""
        pos = self.emit(name, *operands, 0)
        word = len(self.code) - 1
        if frame.kind == LOOP:
            self.patch(word, pos, frame.start)
        else:
            frame.fixups.append((word, pos))

    # -- fusion ---------------------------------------------------------------------------------
    def take_cond(self, cond: int):
        """If ``cond`` is the result of the op just emitted and that op is an integer compare
        (or eqz) or a raw load (_LOAD_BRANCHES, or its i32.eqz), drop it and return (name, operands);
        else None. A load's branch keeps the load's wasm offset (the one that can trap)."""
        lc = self.last_cmp
        if lc is None or lc[5] != len(self.code) or lc[4] != cond:
            return None
        if lc[1].split(":")[0] in _LOAD_BRANCHES:
            if any(s != self.home(i) for i, s in enumerate(self.st)):
                return None  # an if's materialization would run between the load and its branch
                # (copying a local the load writes, or over a temporary it reads): not joined
            k = self.positions.index(lc[0], len(self.positions) - 2)
            self.op_offset = self.offsets[k]
            del self.positions[k + 1:], self.offsets[k + 1:]  # the eqz after the load, if any
        self.truncate(lc[0])
        self.last = self.last_cmp = None
        return lc[1], lc[2], lc[3], lc[6]

    def take_copy(self):
        """If the op just emitted is a ``copy`` (not a branch target since, no spill slot
        patched into it), drop it and return its (dst, src); else None."""
        code, pos = self.code, len(self.code) - 3
        if pos < self.label_pos or not self.positions or self.positions[-1] != pos \
                or code[pos] != self.opn["copy"] or (self.spills and self.spills[-1][0] >= pos):
            return None
        dst, src = code[pos + 1], code[pos + 2]
        self.truncate(pos)
        self.last = self.last_cmp = None
        return dst, src

    @staticmethod
    def cond_branch(fused, cond, when_true: bool):
        """(op name, operands) of a branch taken when the condition is ``when_true``."""
        if fused is None:
            return ("br_if" if when_true else "br_unless"), (cond,)
        name, a, b, imm = fused
        if name in _LOAD_BRANCHES:  # [addr, offset, value]: the value is still written
            return f"{name}_{'br_if' if when_true else 'br_unless'}", (a, b, cond)
        if name.endswith(":eqz"):  # the load's value (imm: its slot) zero
            return f"{name[:-4]}_{'br_unless' if when_true else 'br_if'}", (a, b, imm)
        if name == "i32.eqz":
            return ("br_unless" if when_true else "br_if"), (a,)
        if name == "i64.eqz":
            return ("br_i64_eqz" if when_true else "br_i64_nez"), (a,)
        t, c = name.split(".")
        c = c if when_true else _NEGATE[c]
        if imm is not None:
            return f"br_{t}_{c}_imm", (a, imm)
        return f"br_{t}_{c}", (a, b)

    # -- the walk -------------------------------------------------------------------------------
    def run(self) -> Code:
        r = self.r
        ctx = self.ctx
        local_types = list(ctx.func_types[self.func_index].params)
        for _ in range(r.u32()):
            n = r.u32()
            t = self.read_valtype()
            local_types.extend([t] * n)
        check_types(local_types[self.nparams:], "a local")
        self.nlocals_total = len(local_types)
        self.base = len(local_types)
        ctrls = [Frame(FUNC, 0, 0, self.nresults)]
        self.ctrls = ctrls
        self.bound_check()
        self.fuel_cost = 1  # wasmtime charges a call 1 besides its operators
        fuel = ctx.fuel
        while ctrls:
            op_pos = self.op_offset = r.pos
            b = r.u8()
            if b >= 0xFC and b <= 0xFE:
                op = PREFIXED.get((b, r.u32()))
            else:
                op = SINGLE[b]
            if op is None:  # pragma: no cover - validated code has only known opcodes
                raise unsupported("unknown", f"opcode {b:#x} at offset {op_pos}")
            if ctrls[-1].dead:
                self.skip_dead(op)
                continue
            if fuel:  # counted before step: a loop's header opens the next region
                self.fuel_cost += _FUEL_COST.get(op.name, 1)
            try:
                self.step(op)
            except UnsupportedFeature as exc:
                raise UnsupportedFeature(exc.feature, op_pos, "code",
                                         f"function {self.func_index}: {exc.detail}") from None
        if self.fuel_word is not None:
            self.code[self.fuel_word] = self.fuel_cost
        for word, k in self.spills:
            self.code[word] = self.base + self.max_h + k
        frame_cells = max(self.base + self.max_h + self.nspill, self.nresults, 1)
        return Code(array("Q", self.code), array("I", self.positions), self.nparams,
                    self.nresults, self.nlocals_total - self.nparams, frame_cells,
                    array("I", self.offsets))

    def read_valtype(self):
        t = read_val_type(self.r, self.ctx.types)
        check_types([t], f"function {self.func_index}: a local")
        return t

    def block_type(self) -> Tuple[int, int]:
        r = self.r
        b = r.peek()
        if b == 0x40:
            r.pos += 1
            return 0, 0
        if b in _VALTYPE_BYTES or b in (0x70, 0x6F):
            r.pos += 1
            return 0, 1
        if b in (0x63, 0x64):
            r.pos += 1
            r.s33()
            return 0, 1
        if 0x40 <= b < 0x80:  # another value type (v128, references)
            check_types([self.read_valtype()], "a block result")
            return 0, 1
        ft = self.ctx.types[r.s33()]
        check_types(ft.params, "a block parameter")
        check_types(ft.results, "a block result")
        return len(ft.params), len(ft.results)

    def skip_dead(self, op) -> None:
        """Unreachable code: keep only the block structure (to find this frame's else/end)."""
        name = op.name
        if name in ("block", "loop", "if"):
            self.skip_immediates(op)
            self.skip += 1
            return
        if name == "end" or name == "else":
            if self.skip == 0:  # this frame's own else/end
                self.step(op)
            elif name == "end":
                self.skip -= 1
            return
        if op.proposal in ("exceptions", "legacy exceptions"):
            raise unsupported(op.proposal, op.name)
        self.skip_immediates(op)

    def skip_immediates(self, op) -> None:
        r = self.r
        imm = op.imm
        if imm == "none":
            return
        if imm == "blocktype":
            b = r.peek()
            if b == 0x40 or b in _VALTYPE_BYTES or b == 0x7B:
                r.pos += 1
            elif b in (0x63, 0x64):
                r.pos += 1
                r.s33()
            elif 0x40 <= b < 0x80:
                r.pos += 1
            else:
                r.s33()
        elif imm == "br_table":
            for _ in range(r.u32() + 1):
                r.u32()
        elif imm in ("memarg", "memarg_lane"):
            if r.u32() & 0x40:
                r.u32()
            r.u64()
            if imm == "memarg_lane":
                r.u8()
        elif imm == "i32":
            r.s32()
        elif imm == "i64":
            r.s64()
        elif imm == "f32":
            r.pos += 4
        elif imm == "f64":
            r.pos += 8
        elif imm == "v128" or imm == "shuffle":
            r.pos += 16
        elif imm in ("lane", "zero"):
            r.u8()
        elif imm == "valtypes":
            for _ in range(r.u32()):
                b = r.u8()
                if b in (0x63, 0x64):
                    r.s33()
        elif imm == "heaptype":
            r.s33()
        elif imm in ("type_table", "table_table", "elem_table", "memory_memory", "data_memory"):
            r.u32()
            r.u32()
        else:  # one u32 index
            r.u32()

    def memarg(self, op):
        r = self.r
        flags = r.u32()
        mem = r.u32() if flags & 0x40 else 0
        offset = r.u64()
        return mem, offset

    def step(self, op) -> None:  # noqa: C901 - one dispatch over the instruction families
        name = op.name
        st = self.st
        r = self.r
        num = NUMERIC.get(name)
        if num is not None:
            if num not in self.opn:  # pragma: no cover - the C op list covers NUMERIC
                raise unsupported(op.proposal, name)
            self.numeric(op, num)
            return
        rule = op.rule
        if rule == "local.get":
            self.push_ref(r.u32())  # emits nothing: a constant just before may still fuse
            return
        if rule in ("local.set", "local.tee"):
            x = r.u32()
            v = st[-1]
            for i in range(len(st) - 1):
                if st[i] == x:
                    self.materialize(i)
            last, lc = self.last, self.last_cmp
            if v == x:
                pass
            elif last is not None and last[1] == len(self.code) and self.code[last[0]] == v \
                    and v == self.home(len(st) - 1):
                self.code[last[0]] = x
                if lc is not None and lc[1] in _LOAD_BRANCHES and lc[5] == len(self.code):
                    # the load writes x: a branch on x (tee'd, or got again) may still join it
                    self.last_cmp = lc[:4] + (x,) + lc[5:]
                    self.last = self.last_const = None
                    if rule == "local.set":
                        st.pop()
                    else:
                        st[-1] = x
                    return
            else:
                self.emit("copy", x, v)
            self.last = self.last_cmp = self.last_const = None
            if rule == "local.set":
                st.pop()
            else:
                st[-1] = x
            return
        if name in ("i32.const", "i64.const", "f32.const", "f64.const"):
            if name == "i32.const":
                value = r.s32() & MASK32
            elif name == "i64.const":
                value = r.s64() & MASK64
            elif name == "f32.const":
                value = struct.unpack_from("<I", r.bytes(4))[0]
            else:
                value = struct.unpack_from("<Q", r.bytes(8))[0]
            dst = self.push()
            pos = self.emit("const", dst, value)
            self.produced(pos)
            self.last_const = (pos, value, dst, len(self.code)) if name in _INT_CONSTS else None
            return
        if rule == "memarg":
            self.memory_access(op)
            return
        handler = CONTROL.get(name)
        if handler is None:  # named by its proposal; an MVP instruction by its own name
            raise unsupported(op.proposal if op.proposal != "mvp" else name, name)
        self.last_const = None
        handler(self, op)


def translate_function(ctx, func_index: int, buf, start: int, end: int,
                       opnums: Dict[str, int]) -> Code:
    """Translate the validated body ``buf[start:end]`` of function ``func_index``.

    Raises:
        UnsupportedFeature: the body uses an instruction or type the interpreter does not
            run yet (named, with the proposal).
    """
    return FunctionTranslator(ctx, func_index, buf, start, end, opnums).run()

