#!/usr/bin/env python3
"""Run one benchmark script on two builds in the same run and print new/old ratios.

    .venv/bin/python scripts/compare_builds.py --old ../base [--rounds 3] -- \
        scripts/bench_access.py --repeat 9

``--old`` is another checkout of this project with its own ``.venv`` (for example a
``git worktree`` of an earlier commit, bootstrapped with ``scripts/test --co``). The
script is run alternately with each checkout's interpreter, from that checkout, for
``--rounds`` rounds (old then new, then new then old, ...: drift in the machine's load hits
both alike), so both builds see the same machine load. Every output row whose label (its
first cell) appears in both outputs is matched, and each number in it is compared: the
table shows the median over rounds of old and of new, and new/old as the median of the
rounds' ratios (each round's old and new ran back to back), with their spread (lowest and
highest). Columns are named from the header row above the first dashed line when the
counts agree, else numbered in the order the numbers appear.

``--same-script`` runs this checkout's script for both builds (the same timing code and
precision), each with ``$WASMENV_CHECKOUT`` set to its checkout; the script must read that
variable to import its packages from there (``bench_decode.py`` does).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
CELL = re.compile(r"\s{2,}|\|")


def run(checkout: pathlib.Path, script_args, same_script: bool = False) -> str:
    """Output of the benchmark run from ``checkout`` with its own interpreter (``same_script``:
    this checkout's script, told to import from ``checkout`` by $WASMENV_CHECKOUT)."""
    python = checkout / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run scripts/test --co -q in {checkout} first")
    env = None
    if same_script:
        script_args = [str(ROOT / script_args[0]), *script_args[1:]]
        env = {**os.environ, "WASMENV_CHECKOUT": str(checkout)}
    done = subprocess.run([str(python), *script_args], cwd=checkout, capture_output=True,
                          text=True, check=False, env=env)
    if done.returncode not in (0, 1):  # 1: a benchmark that printed a missed target
        raise SystemExit(f"{checkout}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return done.stdout


def rows(output: str) -> dict:
    """label -> [(cell index, number)] of that row: cells are split at "|" or two spaces,
    the first cell is the label, every later cell contributes its first number."""
    table = {}
    for line in output.splitlines():
        cells = [c.strip() for c in CELL.split(line) if c.strip()]
        found = [(i, NUMBER.search(c)) for i, c in enumerate(cells[1:])]
        numbers = [(i, float(n.group().replace(",", ""))) for i, n in found if n is not None]
        if len(cells) < 2 or not numbers or cells[0] in table or cells[0].startswith("-"):
            continue
        table[cells[0]] = numbers
    return table


def column_names(output: str) -> list:
    """The cells of the header row (the line above the first dashed line), label cell dropped."""
    lines = output.splitlines()
    for i in range(1, len(lines)):
        if lines[i].startswith("---"):
            return [c.strip() for c in CELL.split(lines[i - 1]) if c.strip()][1:]
    return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=pathlib.Path, required=True, help="the other checkout")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--same-script", action="store_true",
                    help="run this checkout's script for both builds (see above)")
    ap.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...]")
    args = ap.parse_args(argv)
    script = [a for a in args.script if a != "--"] if args.script[:1] == ["--"] else args.script
    if not script:
        ap.error("give the benchmark script after --")
    if args.same_script and "WASMENV_CHECKOUT" not in (ROOT / script[0]).read_text():
        ap.error(f"{script[0]} does not read $WASMENV_CHECKOUT: --same-script would time this "
                 f"build twice")
    samples = {"old": [], "new": []}
    names = []
    checkouts = {"old": args.old.resolve(), "new": ROOT}
    for i in range(args.rounds):
        for build in ("old", "new") if i % 2 == 0 else ("new", "old"):
            output = run(checkouts[build], script, args.same_script)
            samples[build].append(rows(output))
            if build == "new":
                names = names or column_names(output)
    labels = [label for label in samples["new"][0] if all(label in s for s in samples["old"] + samples["new"])]
    print(f"{' '.join(script)}: {args.rounds} rounds, old = {args.old}, new = {ROOT}")
    header = f"{'row':<40}{'column':>16}{'old':>15}{'new':>15}{'new/old':>9}{'spread':>13}"
    print(header)
    print("-" * len(header))
    for label in labels:
        width = min(len(s[label]) for s in samples["old"] + samples["new"])
        for col in range(width):
            olds = [s[label][col][1] for s in samples["old"]]
            news = [s[label][col][1] for s in samples["new"]]
            ratios = [n / o for o, n in zip(olds, news, strict=True) if o]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""
            cell = samples["new"][0][label][col][0]
            name = names[cell] if cell < len(names) else str(cell)
            print(f"{label[:40]:<40}{name[:15]:>16}{statistics.median(olds):>15,.3f}"
                  f"{statistics.median(news):>15,.3f}{ratio:>9}{spread:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
