"""The translator's fused forms of common sequences (one op for a constant operand, a
shifted or multiplied temporary, a bit-field chain, an address add, a load and its
branch): :class:`Fusions`, the part of runtime.translate.FunctionTranslator that peeks at
what it just emitted. The op names are those of c_src/wenv_interp_ops.h."""
from __future__ import annotations

from wasmenv.opcodes import PREFIXED, SINGLE

from ._translate_ops import unsupported

#: Proposals whose fixed-signature instructions the interpreter runs.
_RUN_PROPOSALS = ("mvp", "sign extension", "non-trapping float-to-int")
#: Numeric instructions: wasm name -> interpreter op name.
NUMERIC = {op.name: op.name.replace(".", "_") for op in list(SINGLE) + list(PREFIXED.values())
           if op is not None and op.rule == "simple" and op.proposal in _RUN_PROPOSALS
           and op.name != "nop"}

_INT_CMP = {f"{t}.{c}" for t in ("i32", "i64")
            for c in ("eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u")}
_INT_CONSTS = ("i32.const", "i64.const")
#: Second op -> (first op, fused op) of the chains FunctionTranslator.chain_imm fuses.
_CHAINS = {"i32_and": {"i32_shr_u_imm": "i32_shr_u_and_imm", "i32_add_imm": "i32_add_and_imm"},
           "i32_shl": {"i32_and_imm": "i32_and_shl_imm"}}
#: Raw loads a following br_if/if on the loaded value joins: ``<load>_br_if`` and
#: ``<load>_br_unless`` [addr, offset, value, disp] (c_src/wenv_interp_ops.h).
_LOAD_BRANCHES = ("i32_load", "i32_load8_u", "i32_load16_u")
_COMMUTATIVE = {f"{t}_{o}" for t in ("i32", "i64") for o in ("add", "mul", "and", "or", "xor")}
#: Binary op -> {inner op: fused op}: the inner op's result (a temporary) taken as the binary
#: op's second operand in one op [dst, a, x, y] computing a <bin> (x <inner> y): constant
#: shifts (``<bin>_<shift>_imm``, y the count) and a multiply-add (``i32_add_mul``)
#: (c_src/wenv_interp_ops.h, WENV_SHIFTED_OPS).
_INNER = {"i32_add": {"i32_shl_imm": "i32_add_shl_imm", "i32_shr_u_imm": "i32_add_shr_u_imm",
                      "i32_mul": "i32_add_mul"},
          "i32_sub": {"i32_shl_imm": "i32_sub_shl_imm"},
          "i32_xor": {"i32_shl_imm": "i32_xor_shl_imm", "i32_shr_u_imm": "i32_xor_shr_u_imm"},
          "i32_or": {"i32_shl_imm": "i32_or_shl_imm", "i32_shr_u_imm": "i32_or_shr_u_imm"},
          "i32_and": {"i32_shr_u_imm": "i32_and_shr_u_imm"}}
#: A compare with its operands swapped (a constant first operand fused as the second).
_MIRROR = {f"{t}.{a}": f"{t}.{b}" for t in ("i32", "i64")
           for a, b in (("eq", "eq"), ("ne", "ne"), ("lt_s", "gt_s"), ("gt_s", "lt_s"), ("lt_u", "gt_u"),
                        ("gt_u", "lt_u"), ("le_s", "ge_s"), ("ge_s", "le_s"), ("le_u", "ge_u"),
                        ("ge_u", "le_u"))}
_NEGATE = {"eq": "ne", "ne": "eq", "lt_s": "ge_s", "ge_s": "lt_s", "lt_u": "ge_u", "ge_u": "lt_u",
           "gt_s": "le_s", "le_s": "gt_s", "gt_u": "le_u", "le_u": "gt_u"}

_WIDTH = {0: 1, 1: 2, 2: 4, 3: 8}


class Fusions:
    """Emit an op, fused with the one just emitted where a fused form exists (a mixin of
    FunctionTranslator: ``st``, ``code``, ``positions``, ``last*``, ``emit``, ``truncate``)."""

    def numeric(self, op, num: str) -> None:
        st = self.st
        npops = len(op.sig[0])
        if npops == 2 and self.last_const is not None and self.fuse_const(op, num):
            return
        if npops == 2 and num in _INNER and self.fuse_inner(num):
            return
        operands = st[len(st) - npops:]
        del st[len(st) - npops:]
        lc = self.last_cmp
        dst = self.push()
        pos = self.emit(num, dst, *operands)
        self.produced(pos)
        self.last_const = None
        if num == "i32_eqz" and lc is not None and lc[1] in _LOAD_BRANCHES and lc[4] == operands[0] \
                and lc[5] == pos:  # a branch on it joins the load (and drops this eqz)
            self.last_cmp = (lc[0], lc[1] + ":eqz", lc[2], lc[3], dst, len(self.code), lc[4])
        elif op.name in _INT_CMP or op.name in ("i32.eqz", "i64.eqz"):
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

    def fuse_inner(self, num: str) -> bool:
        """An op of _INNER[num] into a temporary, then the binary op ``num`` taking it (as its
        second operand, or either for a commutative op): one fused op [dst, a, x, y]."""
        st, opn = self.st, self.opn
        n = len(st)
        inner = {opn[name]: fused for name, fused in _INNER[num].items()}
        for h in (n - 1, n - 2)[:2 if num in _COMMUTATIVE else 1]:
            made = self.just_made(h)
            if made is not None and made[1] in inner:
                break
        else:
            return False
        pos, op = made
        x, y, a = self.code[pos + 2], self.code[pos + 3], st[2 * n - 3 - h]  # a: the other operand
        self.truncate(pos)
        del st[-2:]
        dst = self.push()
        self.produced(self.emit(inner[op], dst, a, x, y))
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
        """``x >> s & m`` (a bit field), ``(x + k) & m`` (a wrapped difference) and ``(x & m) << s``
        (a scaled index): an ``_imm`` op on the temporary the ``_imm`` op just before produced,
        as one op [dst, x, imm1, imm2]."""
        code, first = self.code, pos - 4
        chains = _CHAINS[num]
        if first < self.label_pos or len(self.positions) < 2 or self.positions[-2] != first:
            return
        fused = next((f for prev, f in chains.items() if code[first] == self.opn[prev]), None)
        if fused is None or code[first + 1] != code[pos + 2] \
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
