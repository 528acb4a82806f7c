"""Differential execution against wasmtime-py on wasm-smith modules restricted to what the
interpreter runs: every export called with random arguments; results, traps, memories and
globals must agree (harness/execution.py)."""
import collections
import random

import pytest

from harness.corpus import smith_modules
from harness.execution import EXEC_SMITH_ARGS, compare_module, make_engine, wasmtime_engine

pytestmark = pytest.mark.oracle

SMITH_COUNT = 200
#: The slow variant (``scripts/test -m slow``).
SLOW_COUNT = 2000


@pytest.fixture(scope="module")
def corpus():
    return smith_modules(SMITH_COUNT, seed=15, **EXEC_SMITH_ARGS)


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


@pytest.mark.slow
def test_many_smith_modules_agree_with_wasmtime():
    check_corpus(smith_modules(SLOW_COUNT, seed=16, **EXEC_SMITH_ARGS), "ondemand")
