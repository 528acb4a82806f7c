"""scripts/fuzz_exec.py: a small deterministic differential run against wasmtime-py (50
smith modules on both allocators, and 20 typed function reference modules; results, traps,
host calls, memories, globals and tables agree).
The long run is the script itself (``python scripts/fuzz_exec.py --count 10000``)."""
import pytest

import fuzz_exec

pytestmark = pytest.mark.oracle


def test_fifty_modules_agree_on_both_allocators(tmp_path):
    counts = fuzz_exec.run(50, seed=4242, chunk=50, allocators=("ondemand", "pooling"),
                           out_dir=tmp_path)
    excluded = sum(v for k, v in counts.items() if k.startswith("excluded"))
    assert counts["failed"] == 0 and not list(tmp_path.iterdir())
    assert counts["passed"] + excluded == 100 and excluded <= 5
    assert counts["calls"] >= 100  # the modules really run code
    # ... and the comparison meets what it is about
    for what in ("host calls", "function references", "externrefs", "trap TABLE_OUT_OF_BOUNDS",
                 "trap MEMORY_OUT_OF_BOUNDS", "returned"):
        assert counts[f"seen: {what}"] > 0, what


def test_typed_function_reference_modules_agree(tmp_path):
    """harness/typed_refs.py modules (call_ref, br_on_null, ... smith has them only with GC)."""
    counts = fuzz_exec.run(20, seed=7, chunk=20, allocators=("ondemand", "pooling"), out_dir=tmp_path,
                           typed_refs=True)
    assert counts["failed"] == 0 and counts["passed"] == 40
    assert counts["seen: returned"] > 100 and counts["seen: trap NULL_REFERENCE"] > 0


def test_a_disagreement_is_saved_and_counted(tmp_path, monkeypatch):
    """The script's bookkeeping: a module the comparison finds a disagreement in is
    written out and counted failed (here a comparison that always disagrees)."""
    from harness.differential import Report
    monkeypatch.setattr(fuzz_exec, "compare_module", lambda *a: Report(1, ["f(): ours 1, wasmtime 2"], None))
    counts = fuzz_exec.run(2, seed=4242, chunk=2, allocators=("ondemand",), out_dir=tmp_path)
    assert counts["failed"] == 2 and counts["passed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed4242-00000-ondemand.wasm",
                                                          "seed4242-00001-ondemand.wasm"]
