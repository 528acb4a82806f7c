"""Smoke tests for the measurement scripts (quick runs in a subprocess)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_ROWS = ("cow", "copy", "pooling", "floor-cow", "floor-copy", "floor-pooling",
              "wasmtime-cow", "wasmtime-copy")


def run_script(*args, timeout=600):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_bench_instantiate_quick_prints_a_row_per_strategy():
    out = run_script("scripts/bench_instantiate.py", "--quick")
    first_words = [line.split()[0] for line in out.splitlines() if line.strip()]
    for name in BENCH_ROWS:
        assert name in first_words, out
    # the comparison table: one row per strategy of ours, with both ratios and the targets
    compare = {line.split()[0]: line for line in out.splitlines()
               if line.split()[:1] and line.split()[0] in ("cow", "copy", "pooling")
               and "floor-" in line}
    assert set(compare) == {"cow", "copy", "pooling"}, out
    assert "<= 1.5x" in compare["cow"] and "<= 0.5x" in compare["cow"]
    assert "<= 2x" in compare["pooling"]


def test_bench_instantiate_json():
    data = json.loads(run_script("scripts/bench_instantiate.py", "--quick", "--json"))
    assert set(data["rows"]) == set(BENCH_ROWS)
    for row in data["rows"].values():
        assert 0 < row["p10_us"] <= row["median_us"] <= row["p90_us"]
    assert set(data["comparison"]) == {"cow", "copy", "pooling"}
    assert data["comparison"]["cow"]["ours_over_floor"] > 0
    assert data["wasmtime_store"] == "per instance"
