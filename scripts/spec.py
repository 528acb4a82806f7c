"""Run every .wast in a directory against the runtime and print a per-file table.

    python scripts/spec.py ../shared/spec-testsuite [--only NAME ...] [--json]

Ends with ``N passed, N failed, N needs-execution``; needs-execution counts everything
the runtime cannot answer, broken down on the line above it (unsupported: modules
using GC types, which the decoder declines with an explicit error; the rest need code
to run or function bodies to be validated; the table breaks it down per file).
Exit status 1 on any failure.
"""
import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, str(ROOT))

import runtime  # noqa: E402
from harness.corpus import convert_wast  # noqa: E402  (the one converter, cached)
from harness.wast import CATEGORIES, WastRunner  # noqa: E402


def converted(wast: pathlib.Path) -> str:
    """The JSON script of ``wast`` (converted once, cached under build/spec-cache)."""
    return str(convert_wast(wast) / f"{wast.stem}.json")


def _progress(files):
    """A tqdm bar on stderr when there is more than one file (a full run takes ~40 s)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return files
    return tqdm(files, desc="wast files", unit="file", file=sys.stderr, leave=False,
                disable=len(files) < 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory")
    ap.add_argument("--only", nargs="*", help="file stems to run")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    args = ap.parse_args(argv)
    files = sorted(pathlib.Path(args.directory).glob("*.wast"))
    if args.only:
        files = [f for f in files if f.stem in args.only]
    if not files:
        only = f" named {' '.join(args.only)}" if args.only else ""
        print(f"no .wast files{only} in {args.directory}", file=sys.stderr)
        return 2
    engine = runtime.Engine()
    results = [WastRunner(engine).run_file(converted(f)) for f in _progress(files)]
    total = dict.fromkeys(CATEGORIES, 0)
    for r in results:
        for k, v in r.counts.items():
            total[k] += v
    if args.json:
        print(json.dumps({r.name: {"counts": r.counts, "failures": r.failures,
                                   "unsupported": r.unsupported} for r in results}, indent=1))
    else:
        head = ["file", "passed", "failed", "unsupported", "needs-exec", "needs-code-valid",
                "text-format"]
        print(f"{head[0]:<18}" + "".join(f"{h:>17}" for h in head[1:]))
        for r in results + [type(results[0])("TOTAL", total)] if results else results:
            print(f"{r.name:<18}" + "".join(f"{r.counts[c]:>17}" for c in CATEGORIES))
        for r in results:
            for failure in r.failures:
                print("FAIL", failure)
        for r in results:
            for what in r.unsupported:
                print("UNSUPPORTED", what)
    unanswered = (total["needs_execution"] + total["needs_code_validation"] + total["text_format"]
                  + total["unsupported"])
    print(f"not answered: {total['needs_execution']} need execution, {total['needs_code_validation']} "
          f"need code validation, {total['text_format']} text format, {total['unsupported']} "
          f"unsupported proposal (gc)")
    print(f"{total['passed']} passed, {total['failed']} failed, {unanswered} needs-execution")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
