"""Resident memory per live instance, per strategy, ours and wasmtime-py's side by side.

    python scripts/rss_per_instance.py MODULE.wasm [-n 100 1000 10000] [--strategy all]
        [--touch-pages K] [--call EXPORT [ARGS ...]] [--json] [--plot out/rss.png] [--quick]

Each (strategy, N) runs in a fresh child process: it keeps N instances alive and reports
the process's Rss/USS/Pss growth per instance (psutil; Python objects included), then the
same after every instance wrote one byte in each of K pages. With ``--call EXPORT ARGS``
(integers) every live instance first runs that export once (real work: our interpreter,
wasmtime's JIT), and the figures are taken after it: every instance must compute the same
result. For our strategies it also
reports the Rss of the instances' own reservations (runtime.usage, from the kernel's
per-mapping accounting). Imports get scripts/_dummy_imports.py's dummies (made once per
process, shared by the N instances, in both runtimes); a pool is sized for the module.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import subprocess
import sys
import time

from _strategies import ALL, OURS, ROOT, driver  # this folder is sys.path[0] when run as a script


def worker(path, strategy, n, touch_pages, guard_bytes, call=None):
    from runtime import usage
    wasm = pathlib.Path(path).read_bytes()
    d = driver(strategy, wasm, n, guard_bytes)
    d.release(d.instantiate())  # one-time costs (handler install, lazy imports) out of the way
    gc.collect()
    before = usage.process_usage()
    start = time.perf_counter()
    # (no progress bar here: importing tqdm and drawing it keep ~1.3 KiB per instance
    # resident at N = 2,000, counted as the instances')
    instances = [d.instantiate() for _ in range(n)]
    elapsed = time.perf_counter() - start
    call_us = call_result = None
    if call:
        export, args = call[0], [int(a, 0) for a in call[1:]]
        start = time.perf_counter()
        results = {repr(d.call(inst, export, args)) for inst in instances}
        call_us = (time.perf_counter() - start) / n * 1e6
        if len(results) != 1:
            raise SystemExit(f"{strategy}: {export}{tuple(args)} gave different results: {sorted(results)}")
        call_result = results.pop()
    gc.collect()
    live = usage.process_usage()
    # Our instances' own address ranges, gathered once, read before and after touching.
    own = [r for i in instances for r in usage.instance_ranges(i)] if strategy in OURS else None
    ranges = None if own is None else usage.usage_of_ranges([own])[0]
    for inst in instances:
        for page in range(touch_pages):
            d.touch(inst, page)
    touched = usage.process_usage()
    ranges_touched = None if own is None else usage.usage_of_ranges([own])[0]
    out = {
        "strategy": strategy, "n": n, "touch_pages": touch_pages,
        "instantiate_us": elapsed / n * 1e6, "call_us": call_us, "call_result": call_result,
        "rss": (live.rss - before.rss) / n, "uss": (live.uss - before.uss) / n,
        "pss": (live.pss - before.pss) / n,
        "touched_rss": (touched.rss - before.rss) / n, "touched_uss": (touched.uss - before.uss) / n,
        "range_rss": None if ranges is None else ranges.rss / n,
        "range_mappings": None if ranges is None else ranges.mappings / n,
        "range_anonymous": None if ranges is None else ranges.anonymous / n,
        "range_touched_anonymous": None if ranges_touched is None else ranges_touched.anonymous / n,
        "range_touched_rss": None if ranges_touched is None else ranges_touched.rss / n,
    }
    for inst in instances:
        d.release(inst)
    d.close()
    return out


def run_child(path, strategy, n, touch_pages, guard_bytes, call=None):
    cmd = [sys.executable, __file__, str(path), "--worker", strategy, str(n), str(touch_pages)]
    if guard_bytes is not None:
        cmd += ["--guard-bytes", str(guard_bytes)]
    if call:
        cmd += ["--call", *call]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"strategy": strategy, "n": n, "error": f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def kib(v):
    return "-" if v is None else f"{v / 1024:,.1f}"


def table(rows) -> str:
    head = ("strategy", "N", "Rss KiB/inst", "USS KiB/inst", "Pss KiB/inst", "own-range Rss",
            "maps/inst", "after-touch USS", "us/instantiate")
    calls = any(r.get("call_us") is not None for r in rows)
    if calls:
        head += ("us/call", "result")
    lines = ["  ".join(f"{h:>15}" for h in head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['strategy']:>15}  {r['n']:>15}  error: {r['error']}")
            continue
        maps = "-" if r["range_mappings"] is None else f"{r['range_mappings']:.1f}"
        cells = (r["strategy"], f"{r['n']:,}", kib(r["rss"]), kib(r["uss"]), kib(r["pss"]),
                 kib(r["range_rss"]), maps, kib(r["touched_uss"]), f"{r['instantiate_us']:.1f}")
        if calls:
            cells += ("-" if r["call_us"] is None else f"{r['call_us']:.1f}", str(r["call_result"]))
        lines.append("  ".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        pts = [(r["n"], r["uss"] / 1024) for r in rows if r["strategy"] == strategy and "error" not in r]
        if pts:
            ax.plot([p[0] for p in pts], [max(p[1], 0.01) for p in pts], marker="o", label=strategy,
                    linestyle="--" if strategy.startswith("wasmtime") else "-")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("live instances (N)")
    ax.set_ylabel("USS growth per instance (KiB)")
    ax.set_title("Resident memory per live instance")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("module")
    ap.add_argument("-n", type=int, nargs="+", default=None, help="live instance counts")
    ap.add_argument("--strategy", default="all", choices=ALL + ("all", "ours"))
    ap.add_argument("--touch-pages", type=int, default=4)
    ap.add_argument("--guard-bytes", type=int, default=None, help="static offset guard (both runtimes)")
    ap.add_argument("--call", nargs="+", metavar=("EXPORT", "ARGS"),
                    help="run EXPORT(ARGS...) once in every live instance before measuring")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", default=str(ROOT / "out" / "rss_per_instance.png"))
    ap.add_argument("--quick", action="store_true", help="small N, for smoke tests")
    ap.add_argument("--worker", nargs=3, metavar=("STRATEGY", "N", "K"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        strategy, n, k = args.worker
        print(json.dumps(worker(args.module, strategy, int(n), int(k), args.guard_bytes, args.call)))
        return 0
    ns = args.n or ([10, 50] if args.quick else [100, 1000, 10000])
    strategies = ALL if args.strategy == "all" else OURS if args.strategy == "ours" else (args.strategy,)
    rows = [run_child(args.module, s, n, args.touch_pages, args.guard_bytes, args.call)
            for s in strategies for n in ns]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows))
    answers = {r["call_result"] for r in rows if r.get("call_result") is not None}
    if len(answers) > 1:
        print(f"error: the runtimes disagree on {args.call}: {sorted(answers)}", file=sys.stderr)
        return 1
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {os.path.relpath(args.plot)}", file=sys.stderr if args.json else sys.stdout)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
