"""Differential fuzzing of execution against wasmtime-py (opt-in; a small run is in tests).

    python scripts/fuzz_exec.py --count 10000 [--seed 1] [--chunk 500] [--allocator both]

``wasm-tools smith`` modules with code (harness.execution.EXEC_SMITH_ARGS: NaNs
canonicalized, termination ensured, everything exported, features restricted to what the
interpreter executes) are instantiated in both runtimes; every function export is called
with random arguments and the results, traps (TrapCode) and the state afterwards
(memory bytes, exported globals) are compared, on the on-demand and on the pooling
allocator. Modules left out (a stack overflow or fuel on either side, an
UnsupportedFeature) are counted separately, by reason. Disagreeing modules are saved
under build/fuzz-exec/. Ends with ``N passed, N failed`` (modules); exit status 1 on any
disagreement.
"""
import argparse
import collections
import json
import pathlib
import random
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
from harness.corpus import smith_modules  # noqa: E402
from harness.execution import EXEC_SMITH_ARGS, compare_module, make_engine, wasmtime_engine  # noqa: E402


def run(count: int, seed: int, chunk: int, allocators, out_dir: pathlib.Path, log=None):
    """Compare ``count`` modules (chunks of ``chunk`` seeds ``seed``, ``seed + 1``, ...)
    on every allocator; returns a Counter of modules by outcome and calls."""
    wt_engine = wasmtime_engine()
    engines = {a: make_engine(a) for a in allocators}
    counts = collections.Counter()
    done = 0
    k = 0
    while done < count:
        n = min(chunk, count - done)
        modules = smith_modules(n, seed=seed + k, **EXEC_SMITH_ARGS)
        for i, wasm in enumerate(modules):
            for alloc, engine in engines.items():
                rng = random.Random(f"{seed + k}:{i}:{alloc}")
                try:
                    report = compare_module(wasm, engine, wt_engine, rng)
                except runtime.WasmRuntimeError as exc:  # pragma: no cover - reported
                    report = None
                    why = f"runtime error {exc}"
                counts["calls"] += report.calls if report else 0
                if report is None or report.disagreements:
                    counts["failed"] += 1
                    out_dir.mkdir(parents=True, exist_ok=True)
                    path = out_dir / f"seed{seed + k}-{i:05d}-{alloc}.wasm"
                    path.write_bytes(wasm)
                    lines = report.disagreements if report else [why]
                    print(f"DISAGREE {path}:\n  " + "\n  ".join(lines[:5]), file=sys.stderr)
                elif report.excluded:
                    counts[f"excluded: {report.excluded}"] += 1
                else:
                    counts["passed"] += 1
        done += n
        k += 1
        if log:
            print(f"{done} modules: {dict(counts)}", file=log, flush=True)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="modules (each run on every allocator)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=500, help="modules per smith seed")
    ap.add_argument("--allocator", choices=("ondemand", "pooling", "both"), default="both")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args(argv)
    allocators = ("ondemand", "pooling") if args.allocator == "both" else (args.allocator,)
    t0 = time.perf_counter()
    counts = run(args.count, args.seed, args.chunk, allocators, ROOT / "build" / "fuzz-exec",
                 log=sys.stderr)
    took = time.perf_counter() - t0
    runs = args.count * len(allocators)
    excluded = sum(v for k, v in counts.items() if k.startswith("excluded"))
    if args.json:
        print(json.dumps({"modules": args.count, "allocators": allocators, "seconds": took,
                          **counts}, indent=1))
    print(f"{args.count} modules x {len(allocators)} allocators ({', '.join(allocators)}), "
          f"seed {args.seed}, in {took:.0f} s: {counts['calls']} calls")
    for key in sorted(k for k in counts if k.startswith("excluded")):
        print(f"  {key}: {counts[key]}")
    print(f"excluded {excluded} of {runs} runs ({100 * excluded / max(runs, 1):.2f}%)")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
