"""scripts/compare_builds.py: both builds run in one call, rows matched, paired ratios."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "compare_builds.py"

#: A "benchmark" printing the number its checkout's VALUE file holds, and the checkout it ran
#: for: $WASMENV_CHECKOUT when set (--same-script), else the folder the script lives in.
BENCH = '''\
import os, pathlib, sys
root = pathlib.Path(os.environ.get("WASMENV_CHECKOUT") or pathlib.Path(__file__).resolve().parent.parent)
print("row      ms")
print("-----------")
print(f"case     {(root / 'VALUE').read_text().strip()}")
'''


def checkout(path: pathlib.Path, value: str, bench: str = BENCH) -> pathlib.Path:
    (path / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, path / ".venv" / "bin" / "python")
    (path / "scripts").mkdir()
    (path / "scripts" / "bench.py").write_text(bench)
    (path / "VALUE").write_text(value)
    return path


def test_same_script_rows_matched_and_ratio_is_the_median_of_paired_rounds(tmp_path):
    """--same-script runs the new checkout's script for the old build too (the old one's own
    script would print 999), told by $WASMENV_CHECKOUT which checkout it measures: the old
    build's number is its own VALUE, and new/old is the rounds' paired ratio."""
    old = checkout(tmp_path / "old", "10", bench="print('case     999')\n")
    new = checkout(tmp_path / "new", "20")
    new_script = new / "scripts" / "compare_builds.py"
    new_script.write_text(SCRIPT.read_text())
    done = subprocess.run([sys.executable, str(new_script), "--old", str(old), "--rounds", "3",
                           "--same-script", "--", "scripts/bench.py"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("case"))
    assert line.split()[-4:] == ["10.000", "20.000", "2.00", "2.00-2.00"], line


def test_same_script_refuses_a_script_that_ignores_the_checkout(tmp_path):
    """A script that does not read $WASMENV_CHECKOUT would time the new build twice."""
    old = checkout(tmp_path / "old", "10")
    new = checkout(tmp_path / "new", "20", bench="print('case     1')\n")
    new_script = new / "scripts" / "compare_builds.py"
    new_script.write_text(SCRIPT.read_text())
    done = subprocess.run([sys.executable, str(new_script), "--old", str(old), "--same-script",
                           "--", "scripts/bench.py"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "does not read $WASMENV_CHECKOUT" in done.stderr
