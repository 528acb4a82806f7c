"""Smoke tests for the measurement scripts (quick runs in a subprocess)."""
import json
import os
import re
import subprocess
import sys

import pytest

from harness.corpus import SPEC_DIR
from tests.helpers import mapped_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_ROWS = ("cow", "copy", "pooling", "cow-c", "pooling-c", "floor-cow", "floor-copy", "floor-pooling",
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
    assert "pooling vs our on-demand (cow):" in out


def test_bench_instantiate_json():
    data = json.loads(run_script("scripts/bench_instantiate.py", "--quick", "--json"))
    assert set(data["rows"]) == set(BENCH_ROWS)
    for row in data["rows"].values():
        assert 0 < row["p10_us"] <= row["median_us"] <= row["p90_us"]
    assert set(data["comparison"]) == {"cow", "copy", "pooling"}
    assert data["comparison"]["cow"]["ours_over_floor"] > 0
    pool = data["comparison"]["pooling"]
    assert pool["ours_over_ondemand"] == pytest.approx(pool["ours_us"] / data["rows"]["cow"]["median_us"])
    assert data["wasmtime_store"] == "per instance"


IMAGE = os.path.join(ROOT, "examples", "build", "image_1mib.wasm")


def test_rss_per_instance_quick_against_independent_figures(tmp_path):
    """The copy strategy's per-instance cost must be the image (1 MiB, a number that
    does not come from our accounting), CoW's own range must hold nothing, and the
    script's figures must agree with psutil's process totals it is derived from."""
    plot = tmp_path / "rss.png"
    rows = json.loads(run_script("scripts/rss_per_instance.py", IMAGE, "--quick", "--json",
                                 "--strategy", "all", "--plot", str(plot)))
    by = {(r["strategy"], r["n"]): r for r in rows}
    assert {s for s, _ in by} == {"cow", "copy", "pooling", "wasmtime-cow", "wasmtime-copy"}
    for r in by.values():
        assert "error" not in r, r
    copy = by[("copy", 50)]
    assert (1 << 20) <= copy["range_anonymous"] <= (1 << 20) + 64 * 1024
    assert 0.9 * (1 << 20) <= copy["uss"] <= 1.2 * (1 << 20)
    for strategy in ("cow", "pooling"):
        r = by[(strategy, 50)]
        assert r["range_anonymous"] == 0
        assert r["uss"] < 64 * 1024
    assert plot.exists() and plot.stat().st_size > 10_000


def test_scale_small_run_reaches_its_max_with_two_mappings_per_pooled_memory():
    out = json.loads(run_script("scripts/scale.py", "--configs", "pooling:64k", "cow:64k",
                                "--max", "300", "--json"))
    pool, cow = out
    assert pool["instances"] == 300 and pool["maps_per_memory"] <= 2.0
    assert cow["instances"] == 300


def test_spec_script_on_one_file():
    out = run_script("scripts/spec.py", str(SPEC_DIR), "--only", "data", "memory_grow")
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["core/data", "core/memory_grow"], out
    last = out.strip().splitlines()[-1]
    passed, failed, unsupported = (int(w) for w in last.split()[::2])
    assert last == f"{passed} passed, 0 failed, {unsupported} unsupported", out
    assert passed > 100 and failed == 0


def test_main_job_quick():
    out = run_script("scripts/main_job.py", "--quick")
    assert "Trap(MEMORY_OUT_OF_BOUNDS)" in out
    assert "inspect examples/build/hello.wasm" in out
    assert "plot written to" in out
    # execution next to wasmtime-py: one checksum over the image, the same on both sides
    ours = re.search(r"ours \(interpreter\)\s+checksum\(0, 1048576\) = (0x[0-9a-f]+)", out)
    theirs = re.search(r"wasmtime-py \(JIT\)\s+checksum\(0, 1048576\) = (0x[0-9a-f]+)", out)
    assert ours and theirs and ours.group(1) == theirs.group(1), out
    assert "same result" in out
    # the trap raised by wasm code, at the address the code used, from the guard page
    assert "load(0x20000) -> Trap(MEMORY_OUT_OF_BOUNDS) at wasm address 0x20000 (guard-page fault)" in out
    assert "load(0xfffffffc) -> Trap(MEMORY_OUT_OF_BOUNDS) at wasm address 0xfffffffc" in out
    assert "wasmtime-py: Trap:" in out and "out of bounds memory access" in out
    # the backtrace: the same frame (code offset of the load) as wasmtime-py's
    ours_frames = re.findall(r"backtrace 0: (0x[0-9a-f]+ - hello!<wasm function 2>)", out)
    assert len(ours_frames) == 2, out
    assert f"| 0:     {ours_frames[0]} |" in out
    # RSS after work: the table has the call's columns, every row the same answer
    table = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in
             ("cow", "copy", "pooling", "wasmtime-cow", "wasmtime-copy")]
    assert len(table) == 10 and len({cells[-1] for cells in table}) == 1, out
    assert int(ours.group(1), 16) == int(table[0][-1])


def test_rss_per_instance_call_runs_work_in_every_instance():
    """--call: each live instance runs the export; the copy strategy still costs the
    image, CoW/pooling only the page checksum writes (not the 1 MiB it reads)."""
    rows = json.loads(run_script("scripts/rss_per_instance.py", IMAGE, "-n", "30", "--json", "--plot", "",
                                 "--strategy", "all", "--call", "checksum", "0", str(1 << 20)))
    import wasmtime
    store = wasmtime.Store()
    inst = wasmtime.Instance(store, wasmtime.Module.from_file(store.engine, IMAGE), [])
    expected = inst.exports(store)["checksum"](store, 0, 1 << 20)
    by = {r["strategy"]: r for r in rows}
    for r in rows:
        assert "error" not in r, r
        assert r["call_result"] == repr(expected) and r["call_us"] > 0
    assert by["copy"]["uss"] >= 0.9 * (1 << 20)
    for strategy in ("cow", "pooling"):
        assert by[strategy]["range_anonymous"] <= 8 * 4096  # the written result page, not the image
        assert by[strategy]["uss"] < 128 * 1024


def test_bench_validate_prints_a_row_per_module(tmp_path):
    pytest.importorskip("wasmtime")
    from tests.helpers import wat
    path = tmp_path / "loop.wasm"
    path.write_bytes(wat("""(module (memory 1) (func (export "f") (param i32) (result i32)
        (loop $l (br_if $l (i32.load (local.get 0)))) (i32.add (local.get 0) (i32.const 1))))"""))
    out = run_script("scripts/bench_validate.py", "--runs", "1", str(path))
    header, row = out.strip().splitlines()
    assert "ns/B" in header and "ratio" in header
    cells = row.split()
    assert cells[0] == "loop.wasm" and int(cells[1]) == path.stat().st_size
    assert float(cells[3]) > 0 and float(cells[-1]) > 0, out


def test_bench_real_prints_a_row_per_module_and_per_synthetic_size(tmp_path):
    """bench_real.py on bundled modules (no registry): a row per module with every column
    (the C floors, ours, wasmtime-py, pywasm3), the geomean/target/floor lines, the
    fresh-imports note for the module importing a memory, table and globals (and why
    pywasm3 has no row for it), a start module in a table of its own, the synthetic
    series and the RSS table."""
    import wasmtime
    side = tmp_path / "side_module.wasm"
    side.write_bytes(wasmtime.wat2wasm(open(os.path.join(ROOT, "examples", "side_module.wat")).read()))
    data = tmp_path / "data_page.wasm"
    data.write_bytes(wasmtime.wat2wasm(
        '(module (import "env" "f" (func (param i32) (result i64))) (memory 1) (global (mut f64) (f64.const 1))'
        ' (table 3 funcref) (elem (i32.const 0) func 0) (data (i32.const 0) "bench"))'))
    starts = tmp_path / "starts.wasm"
    starts.write_bytes(wasmtime.wat2wasm(
        '(module (import "env" "f" (func (param i32))) (memory 2) (table 10000 funcref)'
        ' (func $s (call 0 (i32.const 7)) (i32.store (i32.const 0) (i32.const 7))) (start $s) (func (export "g")))'))
    report = tmp_path / "report.json"
    out = run_script("scripts/bench_real.py", "--no-registry", "--module", str(side), "--module", str(data),
                     "--module", str(starts), "--quick", "--synthetic-scale", "0.001", "--rss", "20",
                     "--json", str(report))
    heads = [line.split() for line in out.splitlines() if line.startswith("module ") and "floor us" in line]
    assert len(heads) == 2, out  # the modules without a start function, then those with one
    for head in heads:
        assert head[5:] == ["floor", "us", "ours", "us", "pfloor", "us", "pooled", "us", "wasmtime", "us",
                            "pywasm3", "us", "ours/floor", "wt/floor", "ours/wt", "pool/wt"], out
    rows = {}  # first word -> every line starting with it (timing tables first, RSS table last)
    for line in out.splitlines():
        if line.split():
            rows.setdefault(line.split()[0], []).append(line)
    assert len(rows["side_module"]) == len(rows["data_page"]) == len(rows["starts"]) == 2, out
    rows = {key: lines[0] for key, lines in rows.items()}
    assert "2 global, 1 memory, 1 table" in rows["side_module"] and "1 func" in rows["data_page"]
    assert out.index(rows["data_page"]) < out.index("modules with a start function") < out.index(rows["starts"])
    for key in ("data_page", "starts"):  # the ten timing and ratio columns, every one a number
        cells = rows[key].split()[-10:]
        assert all(float(c) > 0 for c in cells), rows[key]
    side_cells = rows["side_module"].split()[-10:]  # it defines no memory and no table: floors of 0
    assert side_cells[0] == side_cells[2] == "0.0" and side_cells[5:8] == ["-", "-", "-"], side_cells
    assert all(float(side_cells[i]) > 0 for i in (1, 3, 4, 8, 9)), side_cells
    assert "note: side_module: no defined memory (tables open on the zero region): nothing to map, floor 0" in out
    assert "note: no pywasm3 row for side_module: Unsupported:" in out and "links functions only" in out
    assert [line.startswith("geomean ours/wasmtime") and "<= 0.5x" in line
            for line in out.splitlines()].count(True) == 2, out
    assert [line.startswith("geomean pooled/wasmtime") and "<= 0.25x" in line
            for line in out.splitlines()].count(True) == 2, out
    assert [line.startswith("on-demand target below the floor") for line in out.splitlines()].count(True) == 2
    assert "note: side_module: fresh imported globals/memories/tables per instance in both" in out
    for key in ("funcs-1", "funcs-10", "funcs-100", "table-1", "table-100", "table-1000",
                "globals-0", "globals-1", "globals-10"):
        assert key in rows and "x smallest" not in rows[key], out
    assert "marginal cost per constant global (0 -> 10)" in out
    result = json.loads(report.read_text())
    for key, table in (("side_module", "real"), ("data_page", "real"), ("starts", "real_start")):
        timings = result[table][key]["rows"]
        assert all(timings[name] > 0 for name in ("ours", "ours-pool", "wasmtime")), timings
        assert result[table][key]["ours_over_wt"] == pytest.approx(timings["ours"] / timings["wasmtime"])
        if key != "side_module":
            assert timings["floor"] > 0 and timings["floor-pool"] > 0, timings
            assert result[table][key]["ours_over_floor"] == pytest.approx(timings["ours"] / timings["floor"])
        assert {r["n"] for r in result["rss"][key].values()} == {20}
        assert all("error" not in r for r in result["rss"][key].values())
    assert result["real"]["data_page"]["rows"]["pywasm3"] > 0 and result["real_start"]["starts"]["rows"]["pywasm3"] > 0
    assert "pywasm3" in result["real"]["side_module"]["skipped"]
    assert "ours-drop" in result["real"]["side_module"]["rows"]
    assert "ours-drop" not in result["real"]["data_page"]["rows"]
    assert set(result["synthetic"]) >= {"funcs-100", "table-1000", "globals-10"}


@pytest.mark.parametrize("kind", ["floor-cow", "floor-pooling"])
def test_floor_of_every_memory_and_table_and_a_failing_one_leaves_no_mapping(kind):
    """The C floors (scripts/_strategies.Floor) take every defined memory and table: a
    second memory that cannot be reserved fails the run with ENOMEM after the first was
    mapped, and nothing stays mapped; a batch of 0 is EINVAL; a module that can be mapped
    gives n positive samples."""
    import errno
    import wasmtime
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from _strategies import Floor
    huge = wasmtime.wat2wasm('(module (memory 1) (table 100 funcref) (memory i64 4294967296) (data (i32.const 0) "x"))')
    floor = Floor(kind, huge)
    try:
        assert floor.memory_count == 2 and floor.table_elems == [100] and not floor.empty
        before = mapped_bytes()
        with pytest.raises(OSError) as err:
            floor.run(3, 1)
        assert err.value.errno == errno.ENOMEM and mapped_bytes() == before
    finally:
        floor.close()
    floor = Floor(kind, wasmtime.wat2wasm('(module (memory 1) (table 100 funcref) (data (i32.const 0) "x"))'))
    try:
        with pytest.raises(OSError) as err:
            floor.run(3, 0)
        assert err.value.errno == errno.EINVAL
        samples = floor.run(5, 2)
        assert len(samples) == 5 and min(samples) > 0
    finally:
        floor.close()


def test_bench_exec_quick_rows_answers_and_notes(tmp_path):
    """Every row of ours, pywasm3 and wasmtime-py in one run; the script itself stops on a
    result that differs from wasmtime-py's. C rows need clang-19/lld-19: without them the
    table says why they are missing (never a silent gap)."""
    import shutil
    report = tmp_path / "exec.json"
    out = run_script("scripts/bench_exec.py", "--quick", "--no-install", "--json", str(report))
    lines = out.strip().splitlines()
    assert "pywasm3" in lines[1] and "wasmtime-py" in lines[1] and "vs pywasm3" in lines[1]
    data = json.loads(report.read_text())
    times = data["rows"]
    have_c = bool(shutil.which("clang-19") and shutil.which("wasm-ld-19"))
    expected = {"fib", "sum8", "copy32", "export-call", "host-call"}
    if have_c:
        expected |= {"sieve", "matmul", "crc32", "qsort", "cfib"}
    else:
        assert any(n.startswith("C kernels skipped: clang-19") for n in data["notes"]), data["notes"]
    assert set(times) == expected
    printed = {line.split()[0] for line in lines[2:] if not line.startswith("note:")}
    assert printed == expected
    for name in expected - {"host-call"}:
        assert times[name]["ours"] > 0 and times[name]["wasmtime-py"] > 0, (name, times[name])
        assert data["answers"][name]["ours"] == data["answers"][name]["wasmtime-py"]
    if "ours" not in times["host-call"]:  # host calls not run by our interpreter yet: said so
        assert any(n.startswith("ours: host-call: UnsupportedFeature") for n in data["notes"])


@pytest.mark.skipif(not os.environ.get("COREMARK_DIR"), reason="COREMARK_DIR (an eembc/coremark checkout) not set")
def test_bench_exec_coremark_crcs_checked_on_every_runtime(tmp_path):
    report = tmp_path / "exec.json"
    run_script("scripts/bench_exec.py", "--quick", "--no-install", "--coremark", os.environ["COREMARK_DIR"],
               "--json", str(report))
    data = json.loads(report.read_text())
    assert set(data["rows"]["coremark"]) >= {"ours", "wasmtime-py"}
    assert data["answers"]["coremark"]["ours"] == data["answers"]["coremark"]["wasmtime-py"]
