"""Differential execution of whole modules against wasmtime-py: the same module, the same
imports (host functions, globals, memories, tables), the same calls with random arguments;
results, traps, host-call logs and the state afterwards (every exported or imported
memory's bytes, global value and table element) must agree (:func:`compare_module`).

References are compared by identity: a funcref by *which* function (an export's index in
its instance, or the k-th host function), an externref by which host object
(:class:`Ext`), null as null.
"""
from __future__ import annotations

import collections
import hashlib
import random
from typing import Dict, List, NamedTuple, Optional

import wasmtime as wt

import runtime
from wasmenv import FuncType, GlobalType, MemoryType, TableType, UnsupportedFeature, ValType

from .execution import EDGE, norm, random_arg
from .oracle import wt_func_key

#: wasm-smith options for modules whose code the interpreter runs (issue 15 item 7): MVP,
#: sign-extension, non-trapping float-to-int, multi-value, bulk memory, reference types,
#: multi-memory, memory64/table64, extended-const, tail calls, start functions, imports of
#: every kind; SIMD, threads, exceptions and GC off (typed function references come only
#: with smith's GC switch, and then with GC proper: harness/typed_refs.py makes those). NaNs canonicalized, loops and
#: recursion bounded (ensure_termination); every memory and table has a maximum: an
#: unbounded memory64 grown by 2 GiB per call from a recursion made the on-demand allocator
#: copy tens of GiB on its moving grows.
EXEC_SMITH_ARGS = dict(
    bulk_memory_enabled=True, reference_types_enabled=True, simd_enabled=False,
    relaxed_simd_enabled=False, exceptions_enabled=False, threads_enabled=False,
    tail_call_enabled=True, gc_enabled=False, custom_page_sizes_enabled=False,
    wide_arithmetic_enabled=False, compact_imports_enabled=False, custom_descriptors_enabled=False,
    shared_everything_threads_enabled=False, multi_value_enabled=True, memory64_enabled=True,
    saturating_float_to_int_enabled=True, sign_extension_ops_enabled=True,
    extended_const_enabled=True, max_memories=2, max_tables=3, max_imports=8,
    allow_start_export=True, export_everything=True, canonicalize_nans=True,
    ensure_termination=True, memory_max_size_required=True, table_max_size_required=True,
    min_funcs=3, max_memory32_bytes=1 << 20, max_memory64_bytes=1 << 20,
    max_table_elements=1000)
#: Random bytes per smith module (more than the corpus default: bigger modules, more code).
EXEC_SEED_BYTES = 4096
#: Fuel given to each side for the whole module (instantiation and every call): a bound,
#: not a comparison (the two runtimes charge differently); a side that runs out excludes
#: the module. Ours charges at calls and back-edges, wasmtime per instruction.
OUR_FUEL = 2_000_000
WASMTIME_FUEL = 50_000_000
_NUM = (ValType.I32, ValType.I64, ValType.F32, ValType.F64)
_REFS = (ValType.FUNCREF, ValType.EXTERNREF)


class Ext:
    """A host object passed as an externref (the same object to both runtimes)."""

    __slots__ = ("label",)

    def __init__(self, label: int):
        self.label = label

    def __repr__(self):
        return f"Ext({self.label})"


#: The externref values arguments, host results and imported globals are drawn from.
EXTS = tuple(Ext(k) for k in range(4))


def wasmtime_engine(typed_refs: bool = False) -> wt.Engine:
    """A wasmtime-py engine with the proposals of :data:`EXEC_SMITH_ARGS`, fuel on."""
    cfg = wt.Config()
    for feature in ("wasm_multi_memory", "wasm_memory64", "wasm_multi_value", "wasm_bulk_memory",
                    "wasm_reference_types", "wasm_tail_call"):
        setattr(cfg, feature, True)
    if typed_refs:
        cfg.wasm_function_references = True
    cfg.consume_fuel = True
    return wt.Engine(cfg)


def make_engine(allocator: str) -> runtime.Engine:
    """An engine with fuel on the on-demand allocator, or on a pool ("pooling": a 64 KiB
    guard, so accesses with large offsets are checked explicitly)."""
    if allocator == "pooling":
        pool = runtime.PoolingAllocator(ROUNDS, 8, 65536, 8, 1000, guard_bytes=64 << 10)
        return runtime.Engine(allocator=pool, consume_fuel=True)
    if allocator != "ondemand":
        raise ValueError(f"unknown allocator {allocator!r}")
    return runtime.Engine(consume_fuel=True)


class Report(NamedTuple):
    calls: int
    disagreements: List[str]
    excluded: Optional[str]  # why this module was left out (fuel, ...), or None
    seen: Dict[str, int] = {}  # what was compared: traps by code, host calls, references


class Excluded(Exception):
    """The module is left out of the comparison (the reason is the message)."""


# -- one side's view of values -----------------------------------------------------------------
class Side:
    """What one runtime needs to label references: its host functions (import index ->
    label) and a function's identity -> label for the instance's exports."""

    def __init__(self):
        self.func_labels: Dict[object, str] = {}
        self.log: List[tuple] = []
        self.host_funcs: List[object] = []  # this side's host functions, in import order
        self.seen = collections.Counter()   # what the comparison met (for the summary)

    def func_key(self, f):  # pragma: no cover - per side
        raise NotImplementedError

    def label(self, ty, value):
        """A comparable form of ``value`` of type ``ty``."""
        if ty in _NUM:
            return norm(value)
        if isinstance(value, wt.Val):
            value = value.value
        if value is None:
            return None
        if ty is ValType.EXTERNREF:
            self.seen["externrefs"] += 1
            return ("ext", value.label) if isinstance(value, Ext) else ("object", type(value).__name__)
        key = self.func_key(value)
        self.seen["function references"] += 1
        return ("func", self.func_labels.get(key, f"unknown {key}"))

    def labelled_log(self) -> List[tuple]:
        """The host calls: (import index, labelled arguments) each."""
        return [(k, tuple(("func", self.func_labels.get(a.key, f"unknown {a.key}"))
                          if isinstance(a, _FuncKey) else a for a in args)) for k, args in self.log]

    def labels(self, types, values):
        if len(types) == 1:
            values = (values,)
        elif not types:
            values = ()
        return tuple(self.label(t, v) for t, v in zip(types, values))


def _unwrap(value):
    return value.value if isinstance(value, wt.Val) else value


class _FuncKey(NamedTuple):
    """A function argument in the host-call log, by its side's key (labelled at the end)."""
    key: object


class Ours(Side):
    def func_key(self, f):
        return ("host", id(f)) if f.is_host else (id(f._instance), f.wasm_index)


class Theirs(Side):
    def func_key(self, f):
        return wt_func_key(f)


def _host_fn(k: int, ty: FuncType, side: Side):
    """Import ``k``'s host callable: logs its arguments (a function by its key, labelled at
    the end when every function has its label: a start function may call it before; a
    wasmtime-py Func argument is valid only during the call), returns values made from
    ``k`` and the number of host calls so far (the same on both sides while they agree)."""
    def fn(*args):
        side.log.append((k, tuple(_FuncKey(side.func_key(_unwrap(a))) if t is ValType.FUNCREF and _unwrap(a) is not None
                                  else side.label(t, a) for t, a in zip(ty.params, args))))
        n = len(side.log)
        out = [_host_result(t, k, n, side.host_funcs) for t in ty.results]
        return out[0] if len(out) == 1 else (tuple(out) if out else None)
    return fn


def _host_result(t, k: int, n: int, funcs):
    if t is ValType.I32:
        return ((k * 7919 + n * 31) & 0xFFFFFFFF) - (1 << 31)
    if t is ValType.I64:
        return (k << 40) - n
    if t in (ValType.F32, ValType.F64):
        return float(n) + k / 4
    if t is ValType.EXTERNREF:
        return EXTS[(k + n) % len(EXTS)]
    return _pick_func(funcs, k + n)


def _pick_func(funcs, i: int):
    """Host function ``i`` (cyclically), or null one time in three (or if there is none)."""
    return None if not funcs or i % 3 == 2 else funcs[i % len(funcs)]


def _global_init(t, k: int):
    if t in (ValType.I32, ValType.I64):
        return 8 * k + 1
    if t in (ValType.F32, ValType.F64):
        return float(k) + 0.5
    if t is ValType.EXTERNREF:
        return EXTS[k % len(EXTS)]
    return None


def _check_expressible(t) -> None:
    if t not in _NUM and t not in _REFS:
        raise Excluded(f"oracle cannot express {t}")


def _wt_type(t):
    return {ValType.I32: wt.ValType.i32, ValType.I64: wt.ValType.i64, ValType.F32: wt.ValType.f32,
            ValType.F64: wt.ValType.f64, ValType.FUNCREF: wt.ValType.funcref,
            ValType.EXTERNREF: wt.ValType.externref}[t]()


def _wt_val(t, value):
    return {ValType.I32: wt.Val.i32, ValType.I64: wt.Val.i64, ValType.F32: wt.Val.f32,
            ValType.F64: wt.Val.f64, ValType.FUNCREF: wt.Val.funcref,
            ValType.EXTERNREF: wt.Val.externref}[t](value)


def make_imports(module, engine, store, wt_store, ours: Ours, theirs: Theirs):
    """The same host objects for both runtimes, in import order: (ours, wasmtime's).
    Host functions come first: imported funcref tables and globals hold them (then
    call_indirect and call_ref reach them, of the right type or not), externref ones hold
    :data:`EXTS`. Raises Excluded for what wasmtime-py cannot make."""
    for k, imp in enumerate(module.imports):
        ty = imp.type
        if isinstance(ty, FuncType):
            for t in ty.params + ty.results:
                _check_expressible(t)
            ours_f = runtime.Func(store, ty, _host_fn(k, ty, ours))
            wt_f = wt.Func(wt_store, wt.FuncType([_wt_type(t) for t in ty.params],
                                                 [_wt_type(t) for t in ty.results]),
                           _host_fn(k, ty, theirs))
            ours.func_labels[ours.func_key(ours_f)] = f"host{k}"
            theirs.func_labels[theirs.func_key(wt_f)] = f"host{k}"
            ours.host_funcs.append(ours_f)
            theirs.host_funcs.append(wt_f)
    mine, other = [], []
    funcs = iter(zip(ours.host_funcs, theirs.host_funcs))
    for k, imp in enumerate(module.imports):
        ty = imp.type
        if isinstance(ty, FuncType):
            ours_f, wt_f = next(funcs)
            mine.append(ours_f)
            other.append(wt_f)
        elif isinstance(ty, GlobalType):
            _check_expressible(ty.content)
            value = _global_init(ty.content, k)
            mine.append(runtime.Global.new(engine, ty.content, value or _pick_func(ours.host_funcs, k),
                                           mutable=ty.mutable))
            other.append(wt.Global(wt_store, wt.GlobalType(_wt_type(ty.content), ty.mutable),
                                   _wt_val(ty.content, value or _pick_func(theirs.host_funcs, k))))
        elif isinstance(ty, MemoryType):
            if ty.shared:
                raise Excluded("oracle cannot import shared memories")
            mine.append(runtime.Memory.new(engine, ty.minimum, ty.maximum, memory64=ty.memory64))
            other.append(wt.Memory(wt_store, wt.MemoryType(wt.Limits(ty.minimum, ty.maximum),
                                                           is_64=ty.memory64)))
        elif isinstance(ty, TableType):
            _check_expressible(ty.element)
            table = runtime.Table.new(engine, ty.element, ty.minimum, ty.maximum, table64=ty.table64)
            if ty.table64:  # wasmtime-py 50's TableType has no 64-bit index flag: a module's
                wt_table = _wt_table64(wt_store, ty)
            else:
                wt_table = wt.Table(wt_store, wt.TableType(_wt_type(ty.element),
                                                           wt.Limits(ty.minimum, ty.maximum)), None)
            for i in range(ty.minimum):
                if ty.element is ValType.EXTERNREF:
                    value = wt_value = EXTS[(k + i) % len(EXTS)]
                else:
                    value, wt_value = _pick_func(ours.host_funcs, k + i), _pick_func(theirs.host_funcs, k + i)
                table.set(i, value)
                wt_table.set(wt_store, i, wt_value)
            mine.append(table)
            other.append(wt_table)
        else:
            raise Excluded(f"oracle cannot import {type(ty).__name__}")
    return mine, other


def _wt_table64(wt_store, ty: TableType):
    """A host 64-bit table for wasmtime-py (whose API cannot make one): a module's export."""
    limits = f"{ty.minimum} {ty.maximum}" if ty.maximum is not None else str(ty.minimum)
    element = "funcref" if ty.element is ValType.FUNCREF else "externref"
    module = wt.Module(wt_store.engine, f'(module (table (export "t") i64 {limits} {element}))')
    return wt.Instance(wt_store, module, []).exports(wt_store)["t"]


# -- state ------------------------------------------------------------------------------------
def _digest(data: bytes) -> tuple:
    return (len(data), hashlib.blake2b(data, digest_size=12).hexdigest())


def our_state(items, side: Ours) -> Dict[str, object]:
    """name -> comparable state of each memory, global and table in ``items`` (name, extern)."""
    out = {}
    for name, ext in items:
        if isinstance(ext, runtime.Memory):
            out[name] = ("memory", _digest(ext.read(0, ext.byte_len)))
        elif isinstance(ext, runtime.Global):
            t = ext.ty.content
            out[name] = ("global", side.label(t, ext.value) if t in _NUM + _REFS else str(t))
        elif isinstance(ext, runtime.Table):
            t = ext.ty.element
            if t not in _REFS:
                out[name] = ("table", str(t))
            else:
                out[name] = ("table", ext.size, tuple(side.label(t, ext.get(i)) for i in range(ext.size)))
    return out


def their_state(items, store, types, side: Theirs) -> Dict[str, object]:
    """As :func:`our_state` for wasmtime-py externs; ``types``: name -> our type (read
    from our decoder: wasmtime-py 50 aborts the process reading typed references)."""
    out = {}
    for name, ext in items:
        ty = types[name]
        if isinstance(ext, wt.Memory):
            out[name] = ("memory", _digest(bytes(ext.read(store, 0, ext.data_len(store)))))
        elif isinstance(ext, wt.Global):
            t = ty.content
            out[name] = ("global", side.label(t, ext.value(store)) if t in _NUM + _REFS else str(t))
        elif isinstance(ext, wt.Table):
            t = ty.element
            if t not in _REFS:
                out[name] = ("table", str(t))
            else:
                size = ext.size(store)
                out[name] = ("table", size, tuple(side.label(t, ext.get(store, i)) for i in range(size)))
    return out


def _state_diff(mine: dict, other: dict) -> List[str]:
    bad = []
    for name in mine:
        if mine[name] != other.get(name):
            a, b = mine[name], other.get(name)
            if a[0] == "table" and b is not None and len(a) == 3 and len(b) == 3 and a[1] == b[1]:
                first = next(i for i, (x, y) in enumerate(zip(a[2], b[2])) if x != y)
                bad.append(f"{name}: table element {first}: ours {a[2][first]}, wasmtime {b[2][first]}")
            else:
                bad.append(f"{name}: ours {str(a)[:200]}, wasmtime {str(b)[:200]}")
    return bad


# -- calls ------------------------------------------------------------------------------------
class Outcome(NamedTuple):
    kind: str      # "ok" | "trap"
    value: object  # the labelled results, or the trap code's name


def _trap_name(exc: wt.Trap) -> str:
    return exc.trap_code.name if exc.trap_code is not None else str(exc).splitlines()[0]


def _random_args(rng: random.Random, params, our_funcs, their_funcs):
    """(ours, wasmtime's) arguments: numbers from EDGE and random bits; references null,
    a host object, or one of the instance's functions (the same one on both sides)."""
    mine, other = [], []
    for t in params:
        if t in _NUM:
            v = random_arg(rng, t)
            mine.append(v)
            other.append(v)
        elif t is ValType.EXTERNREF:
            v = rng.choice((None,) + EXTS)
            mine.append(v)
            other.append(v)
        else:
            k = rng.randrange(len(our_funcs) + 1)
            mine.append(our_funcs[k - 1] if k else None)
            other.append(their_funcs[k - 1] if k else None)
    return mine, other


def compare_module(wasm: bytes, engine, wt_engine, rng: random.Random, calls_per_export: int = 3,
                   rounds: int = None) -> Report:
    """Instantiate ``wasm`` in both runtimes with the same imports (``rounds`` instances,
    default :data:`ROUNDS`, each calling a share of the exports), call every function
    export with random arguments, and compare the outcomes, host-call logs and the state
    of every exported and imported memory, global and table."""
    try:
        module = runtime.Module(engine, wasm)
    except UnsupportedFeature as exc:
        return Report(0, [], f"unsupported by {exc.feature}")
    store = runtime.Store(engine)
    store.set_fuel(OUR_FUEL)
    wt_store = wt.Store(wt_engine)
    wt_store.set_fuel(WASMTIME_FUEL)
    ours, theirs = Ours(), Theirs()
    try:
        imports, wt_imports = make_imports(module, engine, store, wt_store, ours, theirs)
    except Excluded as exc:
        return Report(0, [], str(exc))
    import_items = [(f"import {k} {i.module}.{i.name}", e) for k, (i, e) in enumerate(zip(module.imports, imports))]
    wt_import_items = [(n, e) for (n, _), e in zip(import_items, wt_imports)]
    types = {n: i.type for (n, _), i in zip(import_items, module.imports)}
    types.update({e.name: e.type for e in module.exports})
    try:
        return _compare(module, imports, wt_imports, store, wt_store, ours, theirs, import_items,
                        wt_import_items, types, wasm, wt_engine, rng, calls_per_export,
                        ROUNDS if rounds is None else rounds)
    except Excluded as exc:
        return Report(0, [], str(exc))
    finally:
        for ext in imports:
            close = getattr(ext, "close", None)
            if close is not None:
                close()


#: Instances made of each module, one after another over the same imports (all live until
#: the end): smith's ensure_termination budget is per instance, so each gets a share of
#: the exports to call while it still runs.
ROUNDS = 4


def _compare(module, imports, wt_imports, store, wt_store, ours, theirs, import_items,
             wt_import_items, types, wasm, wt_engine, rng, calls_per_export, rounds) -> Report:
    wt_module = wt.Module(wt_engine, wasm)
    callable_exports = [e.name for e in module.exports if isinstance(e.type, FuncType)]
    rounds = max(1, min(rounds, len(callable_exports)))
    live = []
    bad: List[str] = []
    n = 0
    state_items, wt_state_items = list(import_items), list(wt_import_items)
    try:
        for r in range(rounds):
            wt_inst = our_inst = None
            wt_trap = our_trap = None
            try:
                wt_inst = wt.Instance(wt_store, wt_module, wt_imports)
            except wt.Trap as exc:  # a segment out of bounds, a trapping start
                wt_trap = _trap_name(exc)
            try:
                our_inst = runtime.Instance(module, imports, store=store)
                live.append(our_inst)
            except UnsupportedFeature as exc:
                raise Excluded(f"unsupported by {exc.feature}") from exc
            except runtime.Trap as exc:
                our_trap = exc.code.name
            if "OUT_OF_FUEL" in (wt_trap, our_trap):
                raise Excluded("fuel")
            if "STACK_OVERFLOW" in (wt_trap, our_trap):
                raise Excluded("stack overflow")
            if wt_trap != our_trap:
                bad.append(f"instantiation {r}: ours {our_trap or 'ok'}, wasmtime {wt_trap or 'ok'}")
                break
            if our_trap:
                ours.seen[f"instantiation trap {our_trap}"] += 1
                continue
            wt_exports = wt_inst.exports(wt_store)
            export_items = [(f"r{r} {e.name}", our_inst.exports[e.name]) for e in module.exports]
            wt_export_items = [(f"r{r} {e.name}", wt_exports[e.name]) for e in module.exports]
            types.update({f"r{r} {e.name}": e.type for e in module.exports})
            funcs = [(name, ext, wt_ext) for (name, ext), (_, wt_ext) in zip(export_items, wt_export_items)
                     if isinstance(ext, runtime.Func)]
            for name, ext, wt_ext in funcs:
                label = ours.func_labels.get(ours.func_key(ext)) or name
                ours.func_labels.setdefault(ours.func_key(ext), label)
                theirs.func_labels.setdefault(theirs.func_key(wt_ext), label)
            mine = [f for _, f, _ in funcs]
            their_funcs = [f for _, _, f in funcs]
            n += _call_exports(funcs[r::rounds], mine, their_funcs, wt_store, ours, theirs, rng,
                               calls_per_export, bad)
            state_items += export_items
            wt_state_items += wt_export_items
        our_log, their_log = ours.labelled_log(), theirs.labelled_log()
        if our_log != their_log:
            first = next((i for i, (a, b) in enumerate(zip(our_log, their_log)) if a != b),
                         min(len(our_log), len(their_log)))
            bad.append(f"host calls: {len(our_log)} vs {len(their_log)}, first difference at {first}: "
                       f"ours {our_log[first:first + 1]}, wasmtime {their_log[first:first + 1]}")
        mine_state = our_state(state_items, ours)
        other_state = their_state(wt_state_items, wt_store, types, theirs)
        bad.extend(_state_diff(mine_state, other_state))
        ours.seen["host calls"] += len(ours.log)
        ours.seen["instances"] += len(live)
        return Report(n, bad, None, dict(ours.seen))
    finally:
        for inst in live:
            inst.close()


def _call_exports(funcs, our_funcs, their_funcs, wt_store, ours, theirs, rng, calls_per_export, bad) -> int:
    n = 0
    for name, ext, wt_ext in funcs:
        ty = ext.ty
        if any(t not in _NUM + _REFS for t in ty.params + ty.results):
            continue  # typed references: wasmtime-py 50 aborts on them at the boundary
        for _ in range(calls_per_export):
            args, wt_args = _random_args(rng, ty.params, our_funcs, their_funcs)
            try:
                a = Outcome("ok", ours.labels(ty.results, ext(*args)))
            except runtime.Trap as exc:
                a = Outcome("trap", exc.code.name)
            except UnsupportedFeature as exc:  # smith should not generate it: counted
                raise Excluded(f"unsupported by {exc.feature}") from exc
            try:
                b = Outcome("ok", theirs.labels(ty.results, wt_ext(wt_store, *wt_args)))
            except wt.Trap as exc:
                b = Outcome("trap", _trap_name(exc))
            n += 1
            if "OUT_OF_FUEL" in (a.value, b.value):
                raise Excluded("fuel")
            if "STACK_OVERFLOW" in (a.value, b.value):
                raise Excluded("stack overflow")
            ours.seen[f"trap {a.value}" if a.kind == "trap" else "returned"] += 1
            if a != b:
                shown = tuple(ours.label(t, v) for t, v in zip(ty.params, args))
                bad.append(f"{name}{shown}: ours {a}, wasmtime {b}")
    return n


__all__ = ["EXEC_SMITH_ARGS", "EXEC_SEED_BYTES", "EDGE", "Ext", "Report", "compare_module",
           "make_engine", "wasmtime_engine"]
