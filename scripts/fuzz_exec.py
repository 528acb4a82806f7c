"""Differential fuzzing of execution against wasmtime-py (opt-in; a small run is in tests).

    python scripts/fuzz_exec.py --count 10000 [--seed 1] [--chunk 500] [--allocator both]
    python scripts/fuzz_exec.py --typed-refs --count 2000   # harness/typed_refs.py modules

``wasm-tools smith`` modules with code (harness.differential.EXEC_SMITH_ARGS: what the
interpreter executes, imports of every kind, NaNs canonicalized, termination ensured,
everything exported) are instantiated in both runtimes with the same host functions,
globals, memories and tables; every function export is called with random arguments and
the results, traps (TrapCode), host-call logs and the state afterwards (bytes of every
memory, global values, table elements by identity: null, which function, which
externref) are compared, on the on-demand and on the pooling allocator. Fuel only bounds
the run: modules where either side ran out (or overflowed its stack, or met an
UnsupportedFeature) are excluded and counted, by reason. ``--typed-refs`` runs modules of
harness/typed_refs.py instead (call_ref, return_call_ref, br_on_null/br_on_non_null,
ref.as_non_null, non-nullable locals, typed tables and globals; smith emits those only
with GC proper, which we do not run). Disagreeing modules are saved under
build/fuzz-exec/. Ends with ``N passed, N failed`` (runs); exit status 1 on any
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

from harness.corpus import smith_modules  # noqa: E402
from harness.differential import (EXEC_SEED_BYTES, EXEC_SMITH_ARGS, compare_module,  # noqa: E402
                                  make_engine, wasmtime_engine)
from harness.typed_refs import typed_refs_modules  # noqa: E402


def run(count: int, seed: int, chunk: int, allocators, out_dir: pathlib.Path, log=None,
        typed_refs: bool = False):
    """Compare ``count`` modules (chunks of ``chunk`` seeds ``seed``, ``seed + 1``, ...)
    on every allocator; returns a Counter of runs by outcome, and calls."""
    wt_engine = wasmtime_engine(typed_refs=typed_refs)
    engines = {a: make_engine(a) for a in allocators}
    counts = collections.Counter()
    done = 0
    k = 0
    while done < count:
        n = min(chunk, count - done)
        if typed_refs:
            modules = typed_refs_modules(n, seed=seed * 1_000_000 + done)
        else:
            modules = smith_modules(n, seed=seed + k, seed_bytes=EXEC_SEED_BYTES, **EXEC_SMITH_ARGS)
        for i, wasm in enumerate(modules):
            for alloc, engine in engines.items():
                rng = random.Random(f"{seed + k}:{i}:{alloc}")
                try:
                    # typed_refs modules have no smith termination budget: one instance
                    report = compare_module(wasm, engine, wt_engine, rng, rounds=1 if typed_refs else None)
                except Exception as exc:  # pragma: no cover - reported as a disagreement
                    report = None
                    why = f"{type(exc).__name__}: {exc}"
                counts["calls"] += report.calls if report else 0
                for what, n_seen in (report.seen if report else {}).items():
                    counts[f"seen: {what}"] += n_seen
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
            brief = {k: v for k, v in counts.items() if not k.startswith("seen: ")}
            print(f"{done} modules: {brief}", file=log, flush=True)
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="modules (each run on every allocator)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=500, help="modules per smith seed")
    ap.add_argument("--allocator", choices=("ondemand", "pooling", "both"), default="both")
    ap.add_argument("--typed-refs", action="store_true",
                    help="typed function reference modules (harness/typed_refs.py) instead of smith's")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args(argv)
    allocators = ("ondemand", "pooling") if args.allocator == "both" else (args.allocator,)
    t0 = time.perf_counter()
    counts = run(args.count, args.seed, args.chunk, allocators, ROOT / "build" / "fuzz-exec",
                 log=sys.stderr, typed_refs=args.typed_refs)
    took = time.perf_counter() - t0
    runs = args.count * len(allocators)
    excluded = sum(v for k, v in counts.items() if k.startswith("excluded"))
    if args.json:
        print(json.dumps({"modules": args.count, "allocators": allocators, "seconds": took,
                          **counts}, indent=1))
    print(f"{args.count} modules x {len(allocators)} allocators ({', '.join(allocators)}), "
          f"seed {args.seed}{', typed refs' if args.typed_refs else ''}, in {took:.0f} s: "
          f"{counts['calls']} calls")
    print("compared: " + ", ".join(f"{k[6:]} {counts[k]}" for k in sorted(counts) if k.startswith("seen: ")))
    for key in sorted(k for k in counts if k.startswith("excluded")):
        print(f"  {key}: {counts[key]}")
    print(f"excluded {excluded} of {runs} runs ({100 * excluded / max(runs, 1):.2f}%)")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
