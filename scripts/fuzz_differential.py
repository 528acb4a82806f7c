"""Differential fuzzing against wasmtime-py with wasm-tools smith modules (opt-in).

    python scripts/fuzz_differential.py --count 2000 --seed 7 [--pooling]

Each module is instantiated by both runtimes with the same generated imports; outcome
(ok / link error / trap), memory bytes, global values and table null patterns must
agree. Disagreeing modules are saved under build/fuzz-diff/ for a regression test.
Prints counts per category and exits 1 on any disagreement.
"""
import argparse
import collections
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
from harness import oracle  # noqa: E402
from harness.corpus import smith_modules  # noqa: E402
from harness.oracle import SMITH_ARGS, compare_one  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pooling", action="store_true", help="use the pooling allocator")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    modules = smith_modules(args.count, seed=args.seed, **SMITH_ARGS)
    if args.pooling:
        engine = runtime.Engine(allocator=runtime.PoolingAllocator(
            max_instances=64, max_memories_per_instance=8, max_memory_pages=512,
            max_tables_per_instance=8, max_table_elements=20_000))
    else:
        engine = runtime.Engine()
    wt_engine = oracle.wasmtime_engine()
    counts = collections.Counter()
    out = ROOT / "build" / "fuzz-diff"
    for k, wasm in enumerate(modules):
        category, ours, theirs = compare_one(wt_engine, engine, wasm)
        counts[category] += 1
        if category == "DISAGREE":
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"seed{args.seed}-{k:05d}.wasm"
            path.write_bytes(wasm)
            print(f"DISAGREE {path}: ours={ours} theirs={theirs}", file=sys.stderr)
    took = time.perf_counter() - t0
    print(f"{args.count} modules (seed {args.seed}) in {took:.1f} s: " +
          ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 1 if counts["DISAGREE"] else 0


if __name__ == "__main__":
    sys.exit(main())
