"""Execution against wasmtime-py: random arguments, comparable results and traps of one
call on each side (whole modules: :mod:`harness.differential`), and the spec scripts'
invoke commands run in the interpreter.

Values are compared as bit patterns (a float by its IEEE bits), except that two NaNs agree
when ``exact_nan`` is False (wasm lets arithmetic produce any NaN).
"""
from __future__ import annotations

import math
import random
import struct
from typing import List, NamedTuple

import wasmtime as wt

import runtime
from wasmenv import ValType

#: Edge values per type that random arguments are drawn from (with random bits).
EDGE = {
    ValType.I32: [0, 1, -1, 2, 31, 32, 33, 0x7FFFFFFF, -0x80000000, 0xFFFF, 65536, 65535, -65536],
    ValType.I64: [0, 1, -1, 63, 64, 0x7FFFFFFFFFFFFFFF, -0x8000000000000000, 0xFFFFFFFF, 1 << 32],
    ValType.F32: [0.0, -0.0, 1.0, -1.5, 0.5, math.inf, -math.inf, math.nan, 2147483648.0,
                  -2147483904.0, 4294967296.0, 3.4e38, 1e-45],
    ValType.F64: [0.0, -0.0, 1.0, -1.5, 0.5, math.inf, -math.inf, math.nan, 2147483648.0,
                  -2147483649.0, 4294967296.0, 9223372036854775808.0, -9223372036854777856.0,
                  18446744073709551616.0, 1.7e308, 5e-324],
}
def random_arg(rng: random.Random, t: ValType):
    if rng.random() < 0.6:
        return rng.choice(EDGE[t])
    if t is ValType.I32:
        return rng.randrange(-(1 << 31), 1 << 31)
    if t is ValType.I64:
        return rng.randrange(-(1 << 63), 1 << 63)
    bits = rng.getrandbits(32 if t is ValType.F32 else 64)
    if t is ValType.F32:
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


#: Spec texts that name a trap another way (as Wasmtime's wast runner accepts them): an
#: out-of-bounds call_indirect index is an "undefined element" there.
_SPEC_ALIASES = {"undefined element": ("out of bounds table access", "uninitialized element")}


def norm(value, exact_nan: bool = True):
    """A comparable form of a result (ints as is, floats by bits, tuples element-wise)."""
    if isinstance(value, (list, tuple)):
        return tuple(norm(v, exact_nan) for v in value)
    if isinstance(value, float):
        if value != value and not exact_nan:
            return "nan"
        return ("f", struct.pack("<d", value))
    return value


class Outcome(NamedTuple):
    kind: str      # "ok" | "trap"
    value: object  # the normalized result, or the trap code's name


def ours(func, args, exact_nan=True) -> Outcome:
    try:
        return Outcome("ok", norm(func(*args), exact_nan))
    except runtime.Trap as t:
        return Outcome("trap", t.code.name)


def theirs(store, func, args, exact_nan=True) -> Outcome:
    try:
        return Outcome("ok", norm(func(store, *args), exact_nan))
    except wt.Trap as t:
        return Outcome("trap", t.trap_code.name if t.trap_code is not None else str(t))


def wasmtime_engine() -> wt.Engine:
    cfg = wt.Config()
    cfg.wasm_multi_memory = True
    cfg.wasm_memory64 = True
    cfg.wasm_multi_value = True
    cfg.wasm_bulk_memory = True
    return wt.Engine(cfg)


# -- spec scripts: invoke actions run in the interpreter ------------------------------------------
def _arg_bits(arg: dict) -> int:
    value = arg["value"]
    if arg["type"] in ("f32", "f64") and value.startswith("nan"):  # pragma: no cover - not as args
        raise ValueError(f"NaN pattern {value} as an argument")
    return int(value) & (0xFFFFFFFF if arg["type"] in ("i32", "f32") else 0xFFFFFFFFFFFFFFFF)


def _unsigned(expected: dict) -> dict:
    """An expected i32/i64 value as the unsigned bit pattern a cell holds."""
    if expected["type"] in ("i32", "i64") and "value" in expected:
        return {**expected, "value": str(_arg_bits(expected))}
    return expected


def run_spec_commands(records, engine) -> dict:
    """Run the module and invoke commands of converted spec scripts (``corpus.WastCommand``)
    with every function body in the interpreter. Returns counts and the failures:
    ``passed`` / ``failed`` / ``unsupported`` (UnsupportedFeature, or a module we cannot
    instantiate without host code) / ``skipped`` (commands that are not invoke actions).
    """
    from runtime.interp import call_bits
    from wasmenv import UnsupportedFeature

    from .spectest import spectest_externs
    from .invoke import Values
    _value_matches = Values().matches
    counts = dict.fromkeys(("passed", "failed", "unsupported", "skipped"), 0)
    failures: List[str] = []
    current = None
    named = {}
    owned = []
    spectest = spectest_externs(engine)
    try:
        for cmd in records:
            raw = cmd.raw
            if cmd.type == "module":
                current = None
                if cmd.wasm is None:
                    counts["skipped"] += 1
                    continue
                try:
                    module = runtime.Module(engine, cmd.wasm)
                    imports = {(i.module, i.name): spectest[i.name] for i in module.imports
                               if i.module == "spectest" and i.name in spectest}
                    current = runtime.Instance(module, imports)
                except Exception:  # linking to other modules: not this harness's business
                    counts["unsupported"] += 1
                    continue
                owned.append(current)
                if cmd.name:
                    named[cmd.name] = current
                continue
            if cmd.type not in ("assert_return", "assert_trap", "action", "assert_exhaustion") \
                    or raw["action"]["type"] != "invoke":
                counts["skipped"] += 1
                continue
            action = raw["action"]
            inst = named.get(action.get("module")) if action.get("module") else current
            if inst is None:
                counts["unsupported"] += 1
                continue
            func = inst.exports[action["field"]]
            if any(v["type"] not in ("i32", "i64", "f32", "f64")
                   for v in action["args"] + raw.get("expected", [])):
                counts["unsupported"] += 1  # references cross the boundary in a later step
                continue
            where = f"{cmd.where} {action['field']}"
            try:
                stack = call_bits(inst, func.wasm_index, [_arg_bits(a) for a in action["args"]])
                results = [stack[i] for i in range(len(func.ty.results))]
            except UnsupportedFeature:
                counts["unsupported"] += 1
                continue
            except runtime.Trap as trap:
                want = cmd.text or ""
                if cmd.type in ("assert_trap", "assert_exhaustion") and (
                        want.startswith(trap.code.value) or trap.code.value in _SPEC_ALIASES.get(want, ())):
                    counts["passed"] += 1
                else:
                    counts["failed"] += 1
                    failures.append(f"{where}: trapped {trap.code.value!r}, expected {cmd.type} {want!r}")
                continue
            if cmd.type in ("assert_trap", "assert_exhaustion"):
                counts["failed"] += 1
                failures.append(f"{where}: returned {results}, expected a trap {cmd.text!r}")
            elif cmd.type == "assert_return" and not (
                    len(results) == len(raw["expected"])
                    and all(_value_matches(_unsigned(e), b) for e, b in zip(raw["expected"], results))):
                counts["failed"] += 1
                failures.append(f"{where}{[a['value'] for a in action['args']]}: got {results}, "
                                f"expected {raw['expected']}")
            else:
                counts["passed"] += 1
    finally:
        for inst in owned:
            inst.close()
    return {"counts": counts, "failures": failures}
