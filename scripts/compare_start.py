#!/usr/bin/env python3
"""Real modules with a start function, instantiated in our runtime and in wasmtime-py with
the same host functions, compared byte for byte.

    .venv/bin/python scripts/compare_start.py [--module PATH ...] [--only KEY ...] [--all]
        [--repeat 5] [--no-pooling] [--no-expose] [--memory-base BYTES] [--cache DIR] [--json PATH]

Modules: every entry of scripts/real_modules.py's catalogue with a start function (fetched
into its cache on first use; ``--all``: every entry), plus any ``--module`` files. Each is
compared as :func:`expose_all` rewrites it: an export added for every defined memory,
table and global (v128 ones aside) it keeps internal, since a start function mostly
writes internal state (AssemblyScript's heap globals, Emscripten's relocated GOT globals);
``--no-expose`` compares the module as it is.
Imports: scripts/_dummy_imports.py in both runtimes: functions return zeros and record
each call (module, name, arguments as bits), memories and tables have the minimum asked
for, globals are zero except env::__memory_base (``--memory-base``, 1 MiB by default: see
:data:`GLOBAL_VALUES`).

After instantiation (the start function has run, or trapped) each side is reduced to a
:class:`State` and ours is compared with wasmtime-py's, ours on demand (the default Engine)
and twice on a one-slot PoolingAllocator (the second instance reuses the slot the first
wrote; ``--no-pooling``: on demand only):
  memories  every imported and exported memory: size and every byte (a mismatch names the
            first differing offset and the count);
  globals   every imported and exported global: type and value (floats as bits);
  tables    every imported and exported table: size and, per element, null or the type of
            the function it holds (wasmtime-py tells no function index);
  calls     the sequence of host calls;
  outcome   "ok", or the trap's code (and then the state of the imports, which a trap
            leaves written), or UnsupportedFeature naming the proposal (ours only:
            reported, never counted as a match); a module wasmtime-py cannot take
            (compile or import) is run by ours alone and reported "not compared".
Instantiation time: the first instantiation (ours translates the functions the start
function runs, once per Module; wasmtime's module is compiled beforehand) and the median of
``--repeat`` more from the same Module, each with fresh imports (and a fresh Store for
wasmtime-py). Exits 1 when any module mismatched.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from typing import NamedTuple, Optional, Tuple

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _dummy_imports import Unsupported, WasmtimeImports, arg_key, ours_linker, wasmtime_engine  # noqa: E402
from harness.wast import read_uleb  # noqa: E402

#: wasmtime-py's TrapCode names that differ from ours.
_WT_TRAP_NAMES = {"ATOMIC_WAIT_NON_SHARED_MEMORY": "ATOMIC_WAIT_NON_SHARED"}


class State(NamedTuple):
    """One runtime's view of an instantiation, in comparable form."""
    outcome: str                  # "ok" | "trap:CODE" | "unsupported:PROPOSAL" | "error:..."
    memories: Tuple = ()          # (where, size_bytes, data)
    globals: Tuple = ()           # (where, type, value key)
    tables: Tuple = ()            # (where, size, element keys)
    calls: Tuple = ()             # (module, name, args)
    detail: str = ""              # the UnsupportedFeature's message (not compared)


def _val_name(valtype) -> str:
    name = str(valtype)
    return "externref" if name == "anyref" else name  # wasmtime-py prints externref as anyref


def _func_key(params, results) -> tuple:
    return ("func", tuple(_val_name(p) for p in params), tuple(_val_name(r) for r in results))


def _value_key(content: str, value):
    from wasmenv import ValType
    if content in ("funcref", "externref"):
        return value is not None
    return arg_key(ValType(content), value)


# ---- exposing the internal state -----------------------------------------------------------

#: Where an export section goes: before the first of these sections (start, element,
#: data count, code, data), else at the end.
_AFTER_EXPORTS = (8, 9, 12, 10, 11)
_READABLE = ("i32", "i64", "f32", "f64", "funcref", "externref")  # wasmtime-py aborts on others
EXPOSED_PREFIX = "__compare_start."


def expose_all(wasm: bytes) -> bytes:
    """``wasm`` with an export added for every defined memory, table and global it does not
    export yet (named ``__compare_start.memory.N`` etc.), so that a start function's writes
    to internal state can be compared; globals wasmtime-py cannot read (v128) stay hidden."""
    import wasmenv
    from wasmenv.encode import name, uleb
    m = wasmenv.translate(wasm).module
    exported = {(e.kind, e.index) for e in m.exports.values()}
    kinds = ((wasmenv.ExternKind.TABLE, 1, "table", range(m.num_imported_tables, len(m.table_plans)), None),
             (wasmenv.ExternKind.MEMORY, 2, "memory", range(m.num_imported_memories, len(m.memory_plans)), None),
             (wasmenv.ExternKind.GLOBAL, 3, "global", range(m.num_imported_globals, len(m.globals)),
              lambda i: _val_name(m.globals[i].type.content) in _READABLE))
    added = [name(f"{EXPOSED_PREFIX}{label}.{i}") + bytes([code]) + uleb(i)
             for kind, code, label, indices, readable in kinds for i in indices
             if (kind, i) not in exported and (readable is None or readable(i))]
    if not added:
        return wasm
    sections, pos = [], 8
    while pos < len(wasm):
        sid, size, body_at = wasm[pos], *read_uleb(wasm, pos + 1)
        sections.append((sid, wasm[pos:body_at + size], wasm[body_at:body_at + size]))
        pos = body_at + size
    out = [wasm[:8]]
    placed = False
    for sid, raw, body in sections:
        if sid == 7:
            count, at = read_uleb(body, 0)
            body = uleb(count + len(added)) + body[at:] + b"".join(added)
            raw, placed = bytes([7]) + uleb(len(body)) + body, True
        elif sid in _AFTER_EXPORTS and not placed:
            body_new = uleb(len(added)) + b"".join(added)
            out.append(bytes([7]) + uleb(len(body_new)) + body_new)
            placed = True
        out.append(raw)
    if not placed:
        body_new = uleb(len(added)) + b"".join(added)
        out.append(bytes([7]) + uleb(len(body_new)) + body_new)
    return b"".join(out)


# ---- ours ----------------------------------------------------------------------------------

def ours_state(module, shared=False, values=None) -> Tuple[State, float]:
    """Instantiate ``module`` (a ``runtime.Module``) in our runtime with recording dummies
    (``shared``: shared memories too; ``values``: imported globals' values, see
    :data:`GLOBAL_VALUES`): (its State, seconds the instantiation took)."""
    import runtime
    import wasmenv
    log = []
    linker, items = ours_linker(module, log=log, shared=shared, values=values)
    names = [f"import {imp.module}::{imp.name}" for imp in module.imports if not _is_func(imp.type)]
    instance, detail = None, ""
    t0 = time.perf_counter()
    try:
        instance = linker.instantiate(module)
        outcome = "ok"
    except runtime.Trap as exc:
        outcome = f"trap:{exc.code.name}"
    except wasmenv.UnsupportedFeature as exc:
        outcome, detail = f"unsupported:{exc.feature}", str(exc)
    seconds = time.perf_counter() - t0
    try:
        pairs = list(zip(names, items))
        if instance is not None:
            pairs += [(f"export {name}", instance.exports[name]) for name in instance.exports]
        return State(outcome, *_ours_items(pairs), tuple(log), detail), seconds
    finally:
        if instance is not None:
            instance.close()
        for item in items:
            item.close()


def _is_func(ty) -> bool:
    from wasmenv import FuncType
    return isinstance(ty, FuncType)


def _ours_items(pairs):
    import runtime
    mems, globs, tabs = [], [], []
    for where, ext in pairs:
        if isinstance(ext, runtime.Memory):
            size = ext.byte_len
            mems.append((where, size, ext.read(0, size) if size else b""))
        elif isinstance(ext, runtime.Global):
            content = _val_name(ext.ty.content)
            globs.append((where, content, _value_key(content, ext.value)))
        elif isinstance(ext, runtime.Table):
            tabs.append((where, ext.size, tuple(_ours_element(ext.get(i)) for i in range(ext.size))))
    return tuple(mems), tuple(globs), tuple(tabs)


def _ours_element(value):
    import runtime
    if value is None:
        return None
    if isinstance(value, runtime.Func):
        return _func_key(value.type.params, value.type.results)
    return "externref"


# ---- wasmtime-py ---------------------------------------------------------------------------

def wasmtime_state(wasm: bytes, wt_engine, wt_module=None, values=None) -> Tuple[State, float]:
    """Instantiate ``wasm`` in wasmtime-py with the same recording dummies: (its State,
    seconds the instantiation took, the Store made included)."""
    import wasmtime as wt
    import wasmenv
    imports = wasmenv.translate(wasm).module.imports()
    module = wt_module or wt.Module(wt_engine, wasm)
    log = []
    dummies = WasmtimeImports(wt_engine, imports, log=log, values=values)
    linker = dummies.new_linker()
    t0 = time.perf_counter()
    store = wt.Store(wt_engine)
    items = dummies.define_store_bound(linker, store)
    instance = None
    try:
        instance = linker.instantiate(store, module)
        outcome = "ok"
    except wt.Trap as exc:
        code = exc.trap_code.name if exc.trap_code is not None else "UNKNOWN"
        outcome = f"trap:{_WT_TRAP_NAMES.get(code, code)}"
    except wt.WasmtimeError as exc:
        outcome = "error:" + str(exc).splitlines()[0]
    seconds = time.perf_counter() - t0
    pairs = [(f"import {m}::{n}", item) for (m, n, _), item in zip(dummies.store_bound, items)]
    if instance is not None:
        pairs += [(f"export {name}", ext) for name, ext in instance.exports(store).items()]
    return State(outcome, *_wt_items(store, pairs), tuple(log)), seconds


def _wt_items(store, pairs):
    import wasmtime as wt
    mems, globs, tabs = [], [], []
    for where, ext in pairs:
        if isinstance(ext, wt.Memory):
            size = ext.data_len(store)
            mems.append((where, size, bytes(ext.read(store, 0, size)) if size else b""))
        elif isinstance(ext, wt.Global):
            content = _val_name(ext.type(store).content)
            value = ext.value(store)
            value = value.value if isinstance(value, wt.Val) else value
            globs.append((where, content, _value_key(content, value)))
        elif isinstance(ext, wt.Table):
            size = ext.size(store)
            tabs.append((where, size, tuple(_wt_element(store, ext.get(store, i)) for i in range(size))))
    return tuple(mems), tuple(globs), tuple(tabs)


def _wt_element(store, value):
    import wasmtime as wt
    value = value.value if isinstance(value, wt.Val) else value
    if value is None:
        return None
    if isinstance(value, wt.Func):
        ty = value.type(store)
        return _func_key(ty.params, ty.results)
    return "externref"


# ---- comparison ----------------------------------------------------------------------------

def differences(ours: State, theirs: State) -> list:
    """What differs between two States, one line each (empty: byte-identical)."""
    out = []
    if ours.outcome != theirs.outcome:
        out.append(f"outcome: ours {ours.outcome}, wasmtime {theirs.outcome}")
    out += _differ_by_name("memory", ours.memories, theirs.memories, _memory_difference)
    out += _differ_by_name("global", ours.globals, theirs.globals,
                           lambda a, b: None if a == b else f"ours {a[1:]}, wasmtime {b[1:]}")
    out += _differ_by_name("table", ours.tables, theirs.tables, _table_difference)
    if ours.calls != theirs.calls:
        n = next((i for i, (a, b) in enumerate(zip(ours.calls, theirs.calls)) if a != b),
                 min(len(ours.calls), len(theirs.calls)))
        out.append(f"host calls: {len(ours.calls)} ours, {len(theirs.calls)} wasmtime; first difference at "
                   f"call {n}: ours {ours.calls[n:n + 1]}, wasmtime {theirs.calls[n:n + 1]}")
    return out


def _differ_by_name(kind, ours, theirs, compare):
    ours_by, theirs_by = {e[0]: e for e in ours}, {e[0]: e for e in theirs}
    out = []
    for where in sorted(set(ours_by) | set(theirs_by)):
        if where not in ours_by or where not in theirs_by:
            side = "ours" if where in ours_by else "wasmtime"
            out.append(f"{kind} {where}: only in {side}")
            continue
        diff = compare(ours_by[where], theirs_by[where])
        if diff:
            out.append(f"{kind} {where}: {diff}")
    return out


def _memory_difference(a, b) -> Optional[str]:
    (_, size_a, data_a), (_, size_b, data_b) = a, b
    if size_a != size_b:
        return f"size {size_a:,} ours, {size_b:,} wasmtime"
    if data_a == data_b:
        return None
    differing = [i for i in range(size_a) if data_a[i] != data_b[i]] if size_a <= (64 << 20) else []
    first = differing[0] if differing else next(i for i in range(size_a) if data_a[i] != data_b[i])
    return (f"{len(differing) or '?':,} bytes differ, first at {first:#x}: ours {data_a[first:first + 16].hex()}, "
            f"wasmtime {data_b[first:first + 16].hex()}")


def _table_difference(a, b) -> Optional[str]:
    (_, size_a, elems_a), (_, size_b, elems_b) = a, b
    if size_a != size_b:
        return f"size {size_a} ours, {size_b} wasmtime"
    bad = [i for i in range(size_a) if elems_a[i] != elems_b[i]]
    if not bad:
        return None
    i = bad[0]
    return f"{len(bad)} elements differ, first [{i}]: ours {elems_a[i]}, wasmtime {elems_b[i]}"


# ---- driver --------------------------------------------------------------------------------

class Row(NamedTuple):
    key: str
    byte_len: int
    functions: int
    start: Optional[int]
    verdict: str        # "match" | "MISMATCH" | "unsupported: PROPOSAL" | "not compared" (see details)
    outcome: str        # the outcome both had (or ours)
    memory_bytes: int   # bytes compared
    globals: int        # globals compared
    unseen_memories: int  # defined memories not exported (wasmtime-py cannot read them)
    calls: int          # host calls compared
    ours_first_ms: Optional[float] = None
    ours_ms: Optional[float] = None
    wt_first_ms: Optional[float] = None
    wt_ms: Optional[float] = None
    details: Tuple = ()


#: Imported globals given a value other than zero: Emscripten's dynamic-linking modules (the
#: tree-sitter builds) place their data at env::__memory_base and their start function
#: relocates pointers by it; at 0 the relocation would add nothing.
GLOBAL_VALUES = {("env", "__memory_base"): 1 << 20}


def compare_module(key: str, wasm: bytes, wt_engine, repeat: int = 5, pooling: bool = True,
                   expose: bool = True, values=None) -> Row:
    """Instantiate ``wasm`` on both sides, compare (ours on demand and, with ``pooling``, twice
    on a one-slot pool), and time further instantiations (on demand). ``expose``: compare
    :func:`expose_all`'s module (every memory, table and global exported); ``values``:
    imported globals' values (default :data:`GLOBAL_VALUES`)."""
    import wasmtime as wt
    import wasmenv
    import runtime
    values = GLOBAL_VALUES if values is None else values
    m = wasmenv.translate(wasm).module
    facts = dict(key=key, byte_len=len(wasm), functions=len(m.functions), start=m.start_func)
    if expose:
        wasm = expose_all(wasm)
        m = wasmenv.translate(wasm).module
    exported = {e.index for e in m.exports.values() if e.kind is wasmenv.ExternKind.MEMORY}
    facts["unseen_memories"] = sum(i not in exported for i in range(m.num_imported_memories, len(m.memory_plans)))
    module = runtime.Module(runtime.Engine(), wasm)
    try:
        wt_module = wt.Module(wt_engine, wasm)
        theirs, wt_first = wasmtime_state(wasm, wt_engine, wt_module, values)
        ours, ours_first = ours_state(module, values=values)
    except (Unsupported, wt.WasmtimeError) as exc:  # what wasmtime-py cannot take: ours alone, reported
        exc = str(exc).splitlines()[-1].strip()
        try:
            alone, seconds = ours_state(module, shared=True, values=values)
        finally:
            module.close()
        return Row(**facts, verdict="not compared", outcome=alone.outcome, memory_bytes=0, globals=0,
                   calls=len(alone.calls), ours_first_ms=seconds * 1e3,
                   details=(f"wasmtime-py cannot take it: {exc}",) + ((alone.detail,) if alone.detail else ()))
    diffs = differences(ours, theirs)
    if pooling and not ours.outcome.startswith("unsupported:"):
        diffs += _pooled_differences(wasm, theirs, values)
    if ours.outcome.startswith("unsupported:"):  # what ours could not run is all there is to say
        verdict, diffs = "unsupported: " + ours.outcome.split(":", 1)[1], [ours.detail]
    else:
        verdict = "MISMATCH" if diffs else "match"
    mem_bytes = sum(size for _, size, _ in ours.memories)
    ours_times = [ours_state(module, values=values)[1] for _ in range(repeat)]
    module.close()
    wt_times = [wasmtime_state(wasm, wt_engine, wt_module, values)[1] for _ in range(repeat)]
    median = statistics.median
    return Row(**facts, verdict=verdict, outcome=ours.outcome, memory_bytes=mem_bytes, globals=len(ours.globals),
               calls=len(ours.calls),
               ours_first_ms=ours_first * 1e3, ours_ms=median(ours_times) * 1e3 if ours_times else None,
               wt_first_ms=wt_first * 1e3, wt_ms=median(wt_times) * 1e3 if wt_times else None,
               details=tuple(diffs))


def _pooled_differences(wasm: bytes, theirs: State, values) -> list:
    """Differences from wasmtime-py's State of two instances in turn on a one-slot pool
    (the second reuses the slot the first wrote and released), each line prefixed."""
    import runtime
    from _strategies import pool_for
    module = runtime.Module(runtime.Engine(allocator=pool_for(wasm, max_instances=1)), wasm)
    try:
        out = []
        for label in ("pooling", "pooling, slot reused"):
            out += [f"{label}: {d}" for d in differences(ours_state(module, values=values)[0], theirs)]
        return out
    finally:
        module.close()


def _ms(v) -> str:
    return "-" if v is None else f"{v:,.2f}"


def table(rows) -> str:
    head = (f"{'module':<17}{'bytes':>12}{'funcs':>7}{'start':>7}  {'verdict':<19}{'outcome':<18}"
            f"{'memory bytes':>14}{'globals':>8}{'calls':>7}{'ours ms':>18}{'wasmtime ms':>18}")
    lines = [head, f"{'first / median':>{len(head) - 18}}{'first / median':>18}", "-" * len(head)]
    for r in rows:
        lines.append(f"{r.key:<17}{r.byte_len:>12,}{r.functions:>7,}{'-' if r.start is None else r.start:>7}  "
                     f"{r.verdict:<19}{r.outcome:<18}{r.memory_bytes:>14,}{r.globals:>8,}{r.calls:>7,}"
                     f"{_ms(r.ours_first_ms) + ' / ' + _ms(r.ours_ms):>18}"
                     f"{_ms(r.wt_first_ms) + ' / ' + _ms(r.wt_ms):>18}")
        if r.unseen_memories:
            lines.append(f"    {r.unseen_memories} defined memories not exported: not compared")
        for d in r.details[:8]:
            lines.append(f"    {d}")
    matched = sum(r.verdict == "match" for r in rows)
    lines.append(f"{matched} of {len(rows)} byte-identical (memories, globals, tables, host calls, outcome)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", default=[], help="also compare this .wasm (repeatable)")
    ap.add_argument("--only", action="append", default=[], help="only these catalogue keys (repeatable)")
    ap.add_argument("--all", action="store_true", help="every catalogue entry, with a start function or not")
    ap.add_argument("--repeat", type=int, default=5, help="timed instantiations after the compared one")
    ap.add_argument("--no-pooling", action="store_true", help="compare ours on demand only")
    ap.add_argument("--no-expose", action="store_true",
                    help="compare the module as it is (only what it imports and exports)")
    ap.add_argument("--memory-base", type=int, default=GLOBAL_VALUES[("env", "__memory_base")],
                    help="env::__memory_base for the modules importing it (default 1 MiB)")
    ap.add_argument("--cache", help="real_modules.py's cache directory")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    import real_modules
    cases = []
    for entry in real_modules.CATALOGUE:
        if args.only and entry.key not in args.only:
            continue
        path = real_modules.fetch(entry, args.cache)
        if args.all or args.only or real_modules.describe(path)["start"] is not None:
            cases.append((entry.key, path))
    cases += [(pathlib.Path(p).stem, pathlib.Path(p)) for p in args.module]
    wt_engine = wasmtime_engine(cow=True, cache=True)
    from wasmtime import wat2wasm
    compare_module("warm-up", wat2wasm("(module (memory 1) (func (i32.store (i32.const 0) (i32.const 1))) (start 0))"),
                   wt_engine, repeat=1)  # one-time costs of each runtime out of the first row's timings
    rows = []
    for key, path in cases:
        rows.append(compare_module(key, path.read_bytes(), wt_engine, args.repeat, not args.no_pooling,
                                   not args.no_expose, {("env", "__memory_base"): args.memory_base}))
        print(f"  compared {key}: {rows[-1].verdict}", file=sys.stderr)
    print(table(rows))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps([r._asdict() for r in rows], indent=1) + "\n")
    return 1 if any(r.verdict == "MISMATCH" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
