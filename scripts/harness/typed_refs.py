"""Random modules exercising typed function references (call_ref, return_call_ref,
ref.as_non_null, br_on_null, br_on_non_null, non-nullable locals, typed tables and
globals), for the differential run: wasm-smith emits them only with its GC switch on,
and then almost every module uses GC proper.

The modules keep typed references inside: exports take and return i32 (wasmtime-py 50
aborts on typed references at its boundary), and ``probe`` exports call what a typed
table or global holds, so their contents are compared through calls.
"""
from __future__ import annotations

import random

#: Functions of each type; function k of type $u returns (k * 1000 + its arithmetic).
FUNCS = 6
TABLE_SIZE = 8
#: Calls of the $u functions per export call (recursion through references is common):
#: past it they return -9 at once.
CALL_BUDGET = 64
_BINOPS = ("i32.add", "i32.sub", "i32.mul", "i32.xor", "i32.and", "i32.or", "i32.shl",
           "i32.shr_s", "i32.rotl")


class _Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def ref(self, nullable_ok: bool = True) -> str:
        """An expression of type (ref null $u) (or (ref $u) when not ``nullable_ok``)."""
        r = self.rng.randrange(5 if nullable_ok else 2)
        if r == 0:
            return f"(ref.func $u{self.rng.randrange(FUNCS)})"
        if r == 1:
            return "(local.get $nn)"
        if r == 2:
            return f"(table.get $tu (i32.and {self.i32(1)} (i32.const {TABLE_SIZE - 1})))"
        if r == 3:
            return f"(global.get $g{self.rng.randrange(2)})"
        return "(ref.null $u)"

    def i32(self, depth: int) -> str:
        """An i32 expression using $a, $b (the function's parameters)."""
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return rng.choice(["(local.get $a)", "(local.get $b)",
                               f"(i32.const {rng.choice([0, 1, -1, 7, 1000, 0x7FFFFFFF])})"])
        r = rng.randrange(8)
        d = depth - 1
        if r == 0:
            return f"({rng.choice(_BINOPS)} {self.i32(d)} {self.i32(d)})"
        if r == 1:  # call_ref through any reference (null: a trap)
            return f"(call_ref $u {self.i32(d)} {self.ref()})"
        if r == 2:  # ref.as_non_null then call
            return f"(call_ref $u {self.i32(d)} (ref.as_non_null {self.ref()}))"
        if r == 3:  # br_on_non_null: a null takes the other way out
            return (f"(block $n (result i32) (call_ref $u {self.i32(d)} "
                    f"(block $k (result (ref $u)) (br_on_non_null $k {self.ref()}) (br $n (i32.const -3)))))")
        if r == 4:  # br_on_null carrying a value: the call gets it as its argument
            return f"(block $n (result i32) (call_ref $u (br_on_null $n (i32.const -7) {self.ref()})))"
        if r == 5:  # a table write then a read
            return (f"(block (result i32) (table.set $tu (i32.and {self.i32(d)} (i32.const {TABLE_SIZE - 1})) "
                    f"{self.ref()}) {self.i32(d)})")
        if r == 6:  # a global write
            return f"(block (result i32) (global.set $g{rng.randrange(2)} {self.ref()}) {self.i32(d)})"
        return f"(select {self.i32(d)} {self.i32(d)} (ref.is_null {self.ref()}))"

    def func(self, k: int) -> str:
        """Function $u{k}: (param $a i32) (result i32); it may only call lower functions
        directly (depth bound), and calls others through references at depth 0."""
        body = self.i32(2) if k else "(i32.add (local.get $a) (i32.const 1))"
        tail = ""
        if k and self.rng.random() < 0.3:  # a tail call through a non-null reference
            tail = ("(if (i32.lt_u (local.get $a) (i32.const 3)) (then (return_call_ref $u "
                    "(i32.add (local.get $a) (i32.const 1)) (local.get $nn))))")
        return (f"(func $u{k} (type $u) (param $a i32) (result i32) (local $b i32) (local $nn (ref $u))\n"
                f"  (if (i32.eqz (global.get $budget)) (then (return (i32.const -9))))\n"
                f"  (global.set $budget (i32.sub (global.get $budget) (i32.const 1)))\n"
                f"  (local.set $b (i32.const {k * 1000})) (local.set $nn (ref.func $u{max(0, k - 1)}))\n"
                f"  {tail} (i32.add (local.get $b) {body}))")


def typed_refs_wat(seed: int) -> str:
    """A module (WAT) of :data:`FUNCS` functions of one type calling each other through
    typed references, a typed table and globals, exports ``run0``.. and ``probe``."""
    rng = random.Random(f"typed-refs:{seed}")
    gen = _Gen(rng)
    funcs = "\n".join(gen.func(k) for k in range(FUNCS))
    elems = " ".join(f"$u{rng.randrange(FUNCS)}" for _ in range(rng.randrange(TABLE_SIZE + 1)))
    runs = "\n".join(
        f"(func (export \"run{j}\") (param $a i32) (param $b i32) (result i32) (local $nn (ref $u))\n"
        f"  (global.set $budget (i32.const {CALL_BUDGET}))\n"
        f"  (local.set $nn (ref.func $u{rng.randrange(FUNCS)})) {gen.i32(3)})" for j in range(3))
    return f"""(module
  (type $u (func (param i32) (result i32)))
  (table $tu (export "tu") {TABLE_SIZE} (ref null $u))
  (elem (table $tu) (i32.const 0) (ref null $u) {' '.join(f'(ref.func {e})' for e in elems.split())})
  (global $g0 (mut (ref null $u)) (ref.func $u{rng.randrange(FUNCS)}))
  (global $g1 (mut (ref null $u)) (ref.null $u))
  (global $budget (mut i32) (i32.const {CALL_BUDGET}))
  (elem declare func {' '.join(f'$u{k}' for k in range(FUNCS))})
{funcs}
{runs}
  (func (export "probe") (param $i i32) (result i32)
    (block $n (result i32)
      (call_ref $u (br_on_null $n (i32.const -1) (table.get $tu (i32.and (local.get $i) (i32.const {TABLE_SIZE - 1})))))))
  (func (export "probe_global") (param $i i32) (result i32)
    (block $n (result i32)
      (call_ref $u (br_on_null $n (i32.const -1)
        (if (result (ref null $u)) (local.get $i) (then (global.get $g1)) (else (global.get $g0))))))))
"""


def typed_refs_modules(n: int, seed: int = 0):
    """``n`` binary modules: :func:`typed_refs_wat` of seeds ``seed``, ``seed + 1``, ..."""
    import wasmtime
    return [bytes(wasmtime.wat2wasm(typed_refs_wat(seed + i))) for i in range(n)]
