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
from ._translate_tables import TABLES

CONTROL = {**CONTROL, **TABLES}

__all__ = ["Code", "FunctionTranslator", "translate_function", "NUMERIC"]

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
_VALTYPE_BYTES = {0x7F: ValType.I32, 0x7E: ValType.I64, 0x7D: ValType.F32, 0x7C: ValType.F64}
#: Proposals whose fixed-signature instructions the interpreter runs.
_RUN_PROPOSALS = ("mvp", "sign extension", "non-trapping float-to-int")
#: Numeric instructions: wasm name -> interpreter op name.
NUMERIC = {op.name: op.name.replace(".", "_") for op in list(SINGLE) + list(PREFIXED.values())
           if op is not None and op.rule == "simple" and op.proposal in _RUN_PROPOSALS
           and op.name != "nop"}
#: Reference type bytes whose values are cells: funcref, externref, (ref null? ht).
#: (The heap type of (ref ht) is validated; any reference this runtime runs fits a cell.)
_REF_BYTES = (0x70, 0x6F, 0x63, 0x64)
_WIDTH = {0: 1, 1: 2, 2: 4, 3: 8}
_INT_CMP = {f"{t}.{c}" for t in ("i32", "i64")
            for c in ("eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u")}
_INT_CONSTS = ("i32.const", "i64.const")
#: Second op -> (first op, fused op) of the chains FunctionTranslator.chain_imm fuses.
_CHAINS = {"i32_and": ("i32_shr_u_imm", "i32_shr_u_and_imm"), "i32_shl": ("i32_and_imm", "i32_and_shl_imm")}
#: Raw loads a following br_if/if on the loaded value joins: ``<load>_br_if`` and
#: ``<load>_br_unless`` [addr, offset, value, disp] (c_src/wenv_interp_ops.h).
_LOAD_BRANCHES = ("i32_load", "i32_load8_u", "i32_load16_u")
_COMMUTATIVE = {f"{t}_{o}" for t in ("i32", "i64") for o in ("add", "mul", "and", "or", "xor")}
#: Binary op -> the constant shifts whose result (a temporary) it may take as its second
#: operand in one op, ``<bin>_<shift>_imm`` (c_src/wenv_interp_ops.h, WENV_SHIFTED_OPS).
_SHIFTED = {"i32_add": ("i32_shl_imm", "i32_shr_u_imm"), "i32_sub": ("i32_shl_imm",),
            "i32_xor": ("i32_shl_imm", "i32_shr_u_imm"), "i32_or": ("i32_shl_imm", "i32_shr_u_imm"),
            "i32_and": ("i32_shr_u_imm",)}
#: A compare with its operands swapped (a constant first operand fused as the second).
_MIRROR = {f"{t}.{a}": f"{t}.{b}" for t in ("i32", "i64")
           for a, b in (("eq", "eq"), ("ne", "ne"), ("lt_s", "gt_s"), ("gt_s", "lt_s"), ("lt_u", "gt_u"),
                        ("gt_u", "lt_u"), ("le_s", "ge_s"), ("ge_s", "le_s"), ("le_u", "ge_u"),
                        ("ge_u", "le_u"))}
_NEGATE = {"eq": "ne", "ne": "eq", "lt_s": "ge_s", "ge_s": "lt_s", "lt_u": "ge_u", "ge_u": "lt_u",
           "gt_s": "le_s", "le_s": "gt_s", "gt_u": "le_u", "le_u": "gt_u"}


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


class FunctionTranslator:
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
        (or eqz) or a raw load (_LOAD_BRANCHES), drop that op and return (name, operands);
        else None. A load's branch keeps the load's wasm offset (the one that can trap)."""
        lc = self.last_cmp
        if lc is None or lc[5] != len(self.code) or lc[4] != cond:
            return None
        if lc[1] in _LOAD_BRANCHES:
            self.op_offset = self.offsets[-1]
        self.truncate(lc[0])
        self.last = self.last_cmp = None
        return lc[1], lc[2], lc[3], lc[6]

    @staticmethod
    def cond_branch(fused, cond, when_true: bool):
        """(op name, operands) of a branch taken when the condition is ``when_true``."""
        if fused is None:
            return ("br_if" if when_true else "br_unless"), (cond,)
        name, a, b, imm = fused
        if name in _LOAD_BRANCHES:  # [addr, offset, value]: the value is still written
            return f"{name}_{'br_if' if when_true else 'br_unless'}", (a, b, cond)
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

    def numeric(self, op, num: str) -> None:
        st = self.st
        npops = len(op.sig[0])
        if npops == 2 and self.last_const is not None and self.fuse_const(op, num):
            return
        if npops == 2 and num in _SHIFTED and self.fuse_shifted(num):
            return
        operands = st[len(st) - npops:]
        del st[len(st) - npops:]
        dst = self.push()
        pos = self.emit(num, dst, *operands)
        self.produced(pos)
        self.last_const = None
        if op.name in _INT_CMP or op.name in ("i32.eqz", "i64.eqz"):
            a = operands[0]
            b = operands[1] if len(operands) > 1 else None
            self.last_cmp = (pos, op.name, a, b, dst, len(self.code), None)
        else:
            self.last_cmp = None

    def fuse_const(self, op, num: str) -> bool:
        """``<const>; <binop or compare>`` (the constant just emitted, as either operand of a
        commutative op or a compare, mirrored) as one ``<op>_imm`` on the other operand."""
        pos, value, slot, after = self.last_const
        st = self.st
        if after != len(self.code) or num + "_imm" not in self.opn:
            return False
        name = op.name
        if st[-1] == slot:
            a = st[-2]
        elif st[-2] == slot and (num in _COMMUTATIVE or name in _MIRROR):
            a = st[-1]
            name = _MIRROR.get(name, name)
            num = NUMERIC[name]
        else:
            return False
        self.truncate(pos)
        del st[-2:]
        dst = self.push()
        pos = self.emit(num + "_imm", dst, a, value)
        self.produced(pos)
        if num == "i32_add":
            self.pair_add_imm(pos)
        elif num in _CHAINS:
            self.chain_imm(pos, num)
        self.last_const = None
        self.last_cmp = (pos, name, a, None, dst, len(self.code), value) if name in _INT_CMP else None
        return True

    def just_made(self, h: int):
        """(position, op number) of the op just emitted if it wrote the stack temporary at
        height ``h`` (its home, not a local; not a branch target since); else None."""
        last, code = self.last, self.code
        home = self.home(h)
        if last is None or last[1] != len(code) or code[last[0]] != home or self.st[h] != home:
            return None
        pos = last[0] - 1
        if pos < self.label_pos or not self.positions or self.positions[-1] != pos \
                or (self.spills and self.spills[-1][0] >= pos):
            return None
        return pos, code[pos]

    def fuse_shifted(self, num: str) -> bool:
        """``<shift>_imm`` into a temporary, then a binary op taking it (as its second operand,
        or either for a commutative op): one ``<bin>_<shift>_imm`` [dst, a, x, k]."""
        st, opn = self.st, self.opn
        n = len(st)
        shifts = {opn[name]: name for name in _SHIFTED[num]}
        for h in (n - 1, n - 2)[:2 if num in _COMMUTATIVE else 1]:
            made = self.just_made(h)
            if made is not None and made[1] in shifts:
                break
        else:
            return False
        pos, shift = made
        x, k, a = self.code[pos + 2], self.code[pos + 3], st[2 * n - 3 - h]  # a: the other operand
        self.truncate(pos)
        del st[-2:]
        dst = self.push()
        self.produced(self.emit(f"{num}_{shifts[shift][4:-4]}_imm", dst, a, x, k))
        self.last_cmp = self.last_const = None
        return True

    def pair_add_imm(self, pos: int) -> None:
        """Two ``i32_add_imm`` in a row (``i++; p += 4``), the second not a branch target, as
        one ``i32_add_imm2`` (run in order: the second may read the first's result)."""
        code, first = self.code, pos - 4
        if first < self.label_pos or len(self.positions) < 2 or self.positions[-2] != first \
                or code[first] != self.opn["i32_add_imm"] or (self.spills and self.spills[-1][0] >= first):
            return
        operands = code[first + 1:first + 4] + code[pos + 1:pos + 4]
        self.truncate(pos)
        self.truncate(first)
        new = self.emit("i32_add_imm2", *operands)
        self.last = (new + 4, len(code))  # the second result, for a following local.set

    def chain_imm(self, pos: int, num: str) -> None:
        """``x >> s & m`` (a bit field) and ``(x & m) << s`` (a scaled index): an ``_imm`` op
        on the temporary the ``_imm`` op just before produced, as one op [dst, x, imm1, imm2]."""
        code, first = self.code, pos - 4
        prev, fused = _CHAINS[num]
        if first < self.label_pos or len(self.positions) < 2 or self.positions[-2] != first \
                or code[first] != self.opn[prev] or code[first + 1] != code[pos + 2] \
                or code[pos + 2] != code[pos + 1] or (self.spills and self.spills[-1][0] >= first):
            return  # (the temporary is the second op's own dst: nothing else reads it)
        dst, x, imm1, imm2 = code[pos + 1], code[first + 2], code[first + 3], code[pos + 3]
        self.truncate(pos)
        self.truncate(first)
        self.produced(self.emit(fused, dst, x, imm1, imm2))

    def memory_access(self, op) -> None:
        if op.proposal != "mvp":  # SIMD loads and stores
            raise unsupported(op.proposal, op.name)
        mem, offset = self.memarg(op)
        width = _WIDTH[op.align]
        raw = self.ctx.raw_access(mem, offset, width)
        name = op.name.replace(".", "_") + ("" if raw else "_c")
        extra = () if raw else (mem,)
        st = self.st
        fused = self.address_add(len(st) - (1 if op.sig[1] else 2)) if raw else None
        suffix, extra = fused or ("", extra)
        if op.sig[1]:  # a load
            addr = st.pop()
            dst = self.push()
            pos = self.emit(name + suffix, addr, offset, dst, *extra)
            self.last = (pos + 3, len(self.code))  # [op, addr, offset, dst, ...]
            if raw and not suffix and name in _LOAD_BRANCHES:
                self.last_cmp = (pos, name, addr, offset, dst, len(self.code), None)
                self.last_const = None
                return
        else:
            value = st.pop()
            addr = st.pop()
            self.emit(name + suffix, addr, offset, value, *extra)
            self.last = None
        self.last_cmp = self.last_const = None

    def address_add(self, h: int):
        """If the op just emitted computes the access's address into the stack temporary at
        height ``h``, drop it and return (suffix, operands) of the access's fused form:
        "_ai" (an ``i32_add_imm``: a, imm), "_aa" (an ``i32_add``: a, b), "_at" (an
        ``i32_add_imm`` of a temporary the ``i32_and_shl_imm`` just before made: x, mask,
        shift, imm); else None."""
        made = self.just_made(h)
        opn = self.opn
        if made is None or made[1] not in (opn["i32_add_imm"], opn["i32_add"]):
            return None
        pos, name = made
        code = self.code
        a, b = code[pos + 2], code[pos + 3]
        self.truncate(pos)
        self.last = None
        if name == opn["i32_add"]:
            return "_aa", (a, b)
        first = pos - 5  # [i32_and_shl_imm, dst, x, mask, shift]
        if a == self.home(h) and first >= self.label_pos and self.positions and self.positions[-1] == first \
                and code[first] == opn["i32_and_shl_imm"] and code[first + 1] == a \
                and not (self.spills and self.spills[-1][0] >= first):
            x, mask, shift = code[first + 2:first + 5]
            self.truncate(first)
            return "_at", (x, mask, shift, b)
        return "_ai", (a, b)


def translate_function(ctx, func_index: int, buf, start: int, end: int,
                       opnums: Dict[str, int]) -> Code:
    """Translate the validated body ``buf[start:end]`` of function ``func_index``.

    Raises:
        UnsupportedFeature: the body uses an instruction or type the interpreter does not
            run yet (named, with the proposal).
    """
    return FunctionTranslator(ctx, func_index, buf, start, end, opnums).run()

