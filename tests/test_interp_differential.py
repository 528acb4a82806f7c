"""Differential execution against wasmtime-py on wasm-smith modules with what the
interpreter runs, imports of every kind included: every export called with random
arguments; results, traps, host calls, memories, globals and tables must agree
(harness/differential.py). Below: the disagreements the fuzzer found, as regressions."""
import collections
import random

import pytest

import runtime
from harness.corpus import smith_modules
from harness.differential import (EXEC_SEED_BYTES, EXEC_SMITH_ARGS, EXTS, Ours, Theirs, compare_module, make_engine,
                                  our_state, their_state, wasmtime_engine)
from tests.helpers import wat
from wasmenv import FuncType, TableType, ValType

pytestmark = pytest.mark.oracle

SMITH_COUNT = 200
#: The slow variant (``scripts/test -m slow``).
SLOW_COUNT = 2000


@pytest.fixture(scope="module")
def corpus():
    return smith_modules(SMITH_COUNT, seed=15, seed_bytes=EXEC_SEED_BYTES, **EXEC_SMITH_ARGS)


def check_corpus(corpus, allocator):
    engine = make_engine(allocator)
    wt_engine = wasmtime_engine()
    rng = random.Random(allocator)
    counts = collections.Counter()
    bad = []
    for k, wasm in enumerate(corpus):
        report = compare_module(wasm, engine, wt_engine, rng)
        counts["calls"] += report.calls
        counts["excluded"] += report.excluded is not None
        bad.extend(f"module {k}: {d}" for d in report.disagreements)
    print(dict(counts))
    assert not bad, "\n".join(bad[:20])
    assert counts["calls"] >= len(corpus)  # the corpus really exercises code
    assert counts["excluded"] <= len(corpus) // 20


@pytest.mark.parametrize("allocator", ["ondemand", "pooling"])
def test_smith_exports_agree_with_wasmtime(corpus, allocator):
    check_corpus(corpus, allocator)


def test_the_corpus_has_imports_tables_and_reference_code(corpus):
    """The widened corpus really has what the comparison is about."""
    engine = runtime.Engine()
    kinds = collections.Counter()
    for wasm in corpus:
        module = runtime.Module(engine, wasm)
        kinds.update({type(i.type).__name__ for i in module.imports})
        kinds["table export"] += any(isinstance(e.type, TableType) for e in module.exports)
    assert min(kinds[k] for k in ("FuncType", "GlobalType", "MemoryType", "TableType")) >= 5, kinds
    assert kinds["table export"] >= 20, kinds


@pytest.mark.slow
def test_many_smith_modules_agree_with_wasmtime():
    check_corpus(smith_modules(SLOW_COUNT, seed=16, seed_bytes=EXEC_SEED_BYTES, **EXEC_SMITH_ARGS), "ondemand")


def _agree(text: str, calls):
    """Run ``calls`` (export name, args) in both runtimes: outcomes and state agree."""
    wasm = wat(text)
    report = compare_module(wasm, make_engine("ondemand"), wasmtime_engine(), random.Random(0),
                            calls_per_export=0)
    assert report.disagreements == [] and report.excluded is None
    engine = runtime.Engine()
    import wasmtime as wt
    wt_engine = wasmtime_engine()
    store = wt.Store(wt_engine)
    store.set_fuel(10**6)
    wt_inst = wt.Instance(store, wt.Module(wt_engine, wasm), [])
    with runtime.Instance(runtime.Module(engine, wasm)) as inst:
        for name, args in calls:
            assert inst.exports[name](*args) == wt_inst.exports(store)[name](store, *args)


def test_fused_ref_is_null_condition():
    """Found by the fuzzer: ``ref.is_null`` feeding ``if`` (fused into the branch) crashed
    the translator (IndexError in take_cond: the compare record lacked its immediate)."""
    _agree('''(module (func (export "f") (param externref) (result i32)
                 (if (result i32) (ref.is_null (local.get 0)) (then (i32.const 1)) (else (i32.const 2))))
               (func (export "g") (param funcref) (result i32)
                 (block (br_if 0 (ref.is_null (local.get 0))) (return (i32.const 7))) (i32.const 9)))''',
           [("f", [None]), ("f", [EXTS[1]]), ("g", [None])])


def test_host_function_called_from_python_converts_as_wasmtime():
    """Found by the fuzzer: a re-exported host function called from Python got the
    argument unconverted (a double where an f32 was due); wasmtime rounds it to f32 and
    wraps integers, and so do we now, both ways."""
    import wasmtime as wt
    seen, wt_seen = [], []
    ty = FuncType([ValType.F32, ValType.I32], [ValType.F32])
    ours_f = runtime.Func(ty, lambda x, i: seen.append((x, i)) or x * 3)
    store = wt.Store(wasmtime_engine())
    store.set_fuel(10**6)
    wt_f = wt.Func(store, wt.FuncType([wt.ValType.f32(), wt.ValType.i32()], [wt.ValType.f32()]),
                   lambda x, i: wt_seen.append((x, i)) or x * 3)
    assert ours_f(0.1, 0xFFFFFFFF) == wt_f(store, 0.1, 0xFFFFFFFF)
    assert seen == wt_seen and seen[0][1] == -1
    with pytest.raises(TypeError):
        ours_f(0.1)


def test_state_labels_references_by_identity():
    """The comparison tells functions and externrefs apart (not only null / non-null)."""
    import wasmtime as wt
    text = '''(module (table (export "t") 3 funcref) (elem (i32.const 0) func $a $b)
                (table (export "x") 2 externref)
                (func $a (export "a")) (func $b (export "b"))
                (func (export "swap") (table.set 0 (i32.const 1) (ref.func $a)))
                (func (export "put") (param externref) (table.set 1 (i32.const 0) (local.get 0))))'''
    wasm = wat(text)
    engine = runtime.Engine()
    with runtime.Instance(runtime.Module(engine, wasm)) as inst:
        mine = Ours()
        for name in ("a", "b"):
            mine.func_labels[mine.func_key(inst.exports[name])] = name
        before = our_state([("t", inst.exports["t"])], mine)
        inst.exports["swap"]()
        inst.exports["put"](EXTS[2])
        after = our_state([("t", inst.exports["t"]), ("x", inst.exports["x"])], mine)
    assert before["t"] == ("table", 3, (("func", "a"), ("func", "b"), None))
    assert after["t"] == ("table", 3, (("func", "a"), ("func", "a"), None))
    assert after["x"] == ("table", 2, (("ext", 2), None))
    wt_engine = wasmtime_engine()
    store = wt.Store(wt_engine)
    store.set_fuel(10**6)
    wt_inst = wt.Instance(store, wt.Module(wt_engine, wasm), [])
    ex = wt_inst.exports(store)
    other = Theirs()
    for name in ("a", "b"):
        other.func_labels[other.func_key(ex[name])] = name
    ex["swap"](store)
    ex["put"](store, EXTS[2])
    types = {"t": TableType(ValType.FUNCREF, 3, None),
             "x": TableType(ValType.EXTERNREF, 2, None)}
    assert their_state([("t", ex["t"]), ("x", ex["x"])], store, types, other) == after
