"""Shared fixtures. Helper functions and constants are in tests/helpers.py.

The harness the tests share with the scripts (wast runner, corpora, wasmtime-py oracle)
is the package ``scripts/harness``: this file puts ``scripts/`` on ``sys.path`` so that
test modules ``import harness``.
"""
import gc
import sys
from pathlib import Path

import pytest

from runtime import Engine, PoolingAllocator
from tests.helpers import POOL_DEFAULTS, make_pool

SCRIPTS = str(Path(__file__).resolve().parent.parent / "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)


@pytest.fixture(scope="module", params=["on-demand", "pooling"])
def engine(request):
    """Every test runs with the default allocator and with a pool (lazily reserved with
    the engine's default tunables; host memories stay on-demand)."""
    if request.param == "on-demand":
        yield Engine()
        return
    pool = PoolingAllocator(max_instances=64, max_memories_per_instance=8, max_memory_pages=160,
                            max_tables_per_instance=8, max_table_elements=100_000)
    yield Engine(allocator=pool)
    gc.collect()
    pool.close()


# -- pools (test_pooling*.py); helpers in tests/helpers.py
@pytest.fixture(params=["madvise", "remap"])
def reset(request, monkeypatch):
    """Run an isolation test with each pool reset (MADV_DONTNEED, and the macOS way:
    fresh anonymous pages): make_pool() and the ``pool`` fixture use it."""
    monkeypatch.setitem(POOL_DEFAULTS, "reset", request.param)
    return request.param


@pytest.fixture
def pool(request):
    if "reset" in request.fixturenames:
        request.getfixturevalue("reset")  # before the pool is made
    with make_pool() as p:
        yield p
