"""Executing spec script actions through the runtime: arguments from the script's JSON,
results compared with its expectations (NaN patterns, references), traps mapped from the
spec's message text to a :class:`runtime.TrapCode`.

Written against the wasmtime-py-shaped API (``Store``, ``Func(store, ty, fn)``,
``Linker``) and detecting what the runtime has: whatever is missing surfaces as an
``UnsupportedFeature`` naming what it needs, which the runner counts by name.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Optional

import runtime
from runtime import TrapCode
from wasmenv import UnsupportedFeature, ValType

NUMERIC = {"i32": 32, "i64": 64, "f32": 32, "f64": 64}
_NUMERIC_TYPES = (ValType.I32, ValType.I64, ValType.F32, ValType.F64)

#: The spec's trap texts (a prefix of assert_trap's ``text``) that are not a TrapCode's
#: own value, and the code each means.
SPEC_TRAP_TEXTS: Dict[str, TrapCode] = {
    "undefined element": TrapCode.TABLE_OUT_OF_BOUNDS,
    "uninitialized": TrapCode.INDIRECT_CALL_TO_NULL,
    "null function reference": TrapCode.NULL_REFERENCE,
    "null reference": TrapCode.NULL_REFERENCE,
    "null function": TrapCode.NULL_REFERENCE,
    "expected shared memory": TrapCode.ATOMIC_WAIT_NON_SHARED,
    "out of bounds": TrapCode.MEMORY_OUT_OF_BOUNDS,
}


def expected_trap(text: str) -> Optional[TrapCode]:
    """The TrapCode an assert_trap/assert_exhaustion message means (None if unknown)."""
    text = text or ""
    for code in TrapCode:
        if text.startswith(code.value):
            return code
    for prefix, code in SPEC_TRAP_TEXTS.items():
        if text.startswith(prefix):
            return code
    return None


def trap_matches(code: TrapCode, text: str) -> bool:
    """True if a trap with ``code`` answers an assertion expecting ``text``."""
    want = expected_trap(text)
    if want is code:
        return True
    # "out of bounds table access" texts of the table instructions are table traps;
    # the spec writes "out of bounds memory access" only for memories
    return want is TrapCode.MEMORY_OUT_OF_BOUNDS and text.startswith("out of bounds") \
        and code is TrapCode.TABLE_OUT_OF_BOUNDS and "memory" not in text


class HostRef:
    """The externref the script writes ``(ref.extern N)``: one object per N and script."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def __repr__(self):
        return f"<ref.extern {self.n}>"


class Values:
    """Converts a script's JSON values (its ``args`` and ``expected``), per script."""

    def __init__(self):
        self._externs: Dict[int, HostRef] = {}

    def extern(self, n: int) -> HostRef:
        ref = self._externs.get(n)
        if ref is None:
            ref = self._externs[n] = HostRef(n)
        return ref

    def arg(self, arg: dict):
        """A script argument as a Python value (floats as their bit pattern int)."""
        ty, value = arg["type"], arg.get("value")
        if ty in NUMERIC:
            if isinstance(value, str) and value.startswith("nan"):
                raise ValueError(f"NaN pattern {value} as an argument")
            return int(value) & ((1 << NUMERIC[ty]) - 1)
        if ty == "v128":
            raise UnsupportedFeature("simd", detail="v128 arguments")
        if value == "null" or value is None:
            return None
        if ty == "externref":
            return self.extern(int(value))
        raise UnsupportedFeature("reference types", detail=f"a {ty} argument {value}")

    def matches(self, expected: dict, got) -> bool:
        """``got`` (a bit pattern for numbers, an object for references) is what the
        script expects (NaN patterns, ``ref.null``/``ref.func``/``ref.extern N``)."""
        ty, value = expected["type"], expected.get("value")
        if ty in NUMERIC:
            if not isinstance(got, int):
                return False
            width = NUMERIC[ty]
            if ty in ("i32", "i64"):
                return int(value) & ((1 << width) - 1) == got
            return float_matches(width, value, got)
        if ty == "v128":
            raise UnsupportedFeature("simd", detail="v128 results")
        if ty == "either":
            return any(self.matches(e, got) for e in expected["values"])
        if value == "null":
            return got is None
        if ty == "externref":
            return value is None and got is not None or got is self.extern(int(value))
        if ty == "funcref":
            return isinstance(got, runtime.Func)
        if ty in ("refnull",):
            return got is None
        return got is not None and value is None  # (ref.any), (ref.exn): any non-null


def float_matches(width: int, value: str, bits: int) -> bool:
    exp_mask = (0xFF << 23) if width == 32 else (0x7FF << 52)
    frac = (1 << (23 if width == 32 else 52)) - 1
    is_nan = (bits & exp_mask) == exp_mask and bits & frac
    if value in ("nan:canonical", "nan:arithmetic"):
        if not is_nan:
            return False
        quiet = 1 << (22 if width == 32 else 51)
        return bool(bits & quiet) if value == "nan:arithmetic" else (bits & frac) == quiet
    return int(value) == bits


def _to_cell(ty, value):
    """A Python result as the script compares it (floats by bits, refs as objects)."""
    from runtime.values import to_bits
    if ty in _NUMERIC_TYPES:
        return to_bits(ty, value)
    return value


def call(func, args: List) -> List:
    """Call ``func`` with script-converted ``args``; returns its results as cells.
    Numeric wasm functions go through the interpreter's bit-level entry (NaN payloads
    exact); others through ``Func.__call__``. Raises Trap / UnsupportedFeature."""
    ty = func.ty
    if len(args) != len(ty.params):
        raise TypeError(f"expected {len(ty.params)} arguments, got {len(args)}")
    numeric = all(t in _NUMERIC_TYPES for t in ty.params + ty.results)
    bits_entry = _bits_entry()
    if numeric and not func.is_host and bits_entry is not None \
            and getattr(func, "_instance", None) is not None:
        stack = bits_entry(func._instance, func.wasm_index, args)
        return [stack[i] for i in range(len(ty.results))]
    from runtime.values import from_bits
    py_args = [from_bits(t, a) if t in _NUMERIC_TYPES else a for t, a in zip(ty.params, args)]
    out = func(*py_args)
    results = ty.results
    if len(results) == 1:
        out = (out,)
    elif not results:
        out = ()
    return [_to_cell(t, v) for t, v in zip(results, out)]


@functools.lru_cache(maxsize=None)
def _bits_entry():
    try:
        from runtime.interp import call_bits
    except ImportError:  # pragma: no cover - the interpreter's entry moved
        return None
    return call_bits


# -- what the runtime has ----------------------------------------------------------------------
def new_store(engine):
    """A ``runtime.Store`` for ``engine`` if the runtime has stores, else None."""
    store_cls = getattr(runtime, "Store", None)
    return store_cls(engine) if store_cls is not None else None


def host_func(store, ty, fn):
    """A host function: ``Func(store, ty, fn)`` (wasmtime-py's form) or ``Func(ty, fn)``."""
    if store is not None:
        try:
            return runtime.Func(store, ty, fn)
        except TypeError:
            pass
    return runtime.Func(ty, fn)


#: (module (global (export "g") (mut i32) (i32.const 0))
#:         (func $s i32.const 7 global.set 0) (start $s))
_START_PROBE = bytes.fromhex(
    "0061736d01000000010401600000030201000606017f0141000b070501016703000801000a0801060041"
    "0724000b")


@functools.lru_cache(maxsize=None)
def runtime_runs_start() -> bool:
    """True if instantiating runs the start function (probed once, on a tiny module whose
    start sets an exported global)."""
    engine = runtime.Engine()
    inst = runtime.Instance(runtime.Module(engine, _START_PROBE))
    try:
        return inst.exports["g"].value == 7
    finally:
        inst.close()


def run_start(inst) -> None:
    """Run ``inst``'s start function unless the runtime did (Trap, UnsupportedFeature)."""
    if inst.start_func is None or runtime_runs_start():
        return
    _bits_entry()(inst, inst.start_func, [])
