"""Run every .wast in a directory (subdirectories included) against the runtime and print
a per-file table.

    python scripts/spec.py [../shared/wasm-testsuite] [--only NAME ...] [--json]

The directory defaults to the suite the tests use (``shared/wasm-testsuite`` beside the
clone, or ``$WASMENV_SPEC_DIR``); NAME is a file stem (``binary``) or a path in the suite
(``core/binary``, ``legacy/throw``). Ends with ``N passed, N failed, N needs-execution``;
needs-execution counts everything the runtime cannot answer, broken down on the lines
above it (unsupported, per proposal: modules the decoder declines with an explicit
UnsupportedFeature; the rest need code to run or function bodies to be validated; the
table breaks it down per file). Exit status 1 on any failure.
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
from harness.corpus import SPEC_DIR, convert_wast, spec_name, spec_wast_files  # noqa: E402
from harness.proposals import execution_proposals  # noqa: E402
from harness.wast import CATEGORIES, FileResult, WastRunner  # noqa: E402


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
    ap.add_argument("directory", nargs="?", default=str(SPEC_DIR))
    ap.add_argument("--only", nargs="*", help="file stems or paths in the suite to run")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--no-proposals", action="store_true",
                    help="do not break needs-execution down by the proposals modules use")
    args = ap.parse_args(argv)
    files = spec_wast_files(pathlib.Path(args.directory))
    if args.only:
        files = [f for f in files if f.stem in args.only or spec_name(f, args.directory) in args.only]
    if not files:
        only = f" named {' '.join(args.only)}" if args.only else ""
        print(f"no .wast files{only} in {args.directory}", file=sys.stderr)
        return 2
    engine = runtime.Engine()
    runner = WastRunner(engine, None if args.no_proposals else execution_proposals)
    results = [runner.run_file(converted(f), spec_name(f, args.directory)) for f in _progress(files)]
    total = FileResult("TOTAL")
    for r in results:
        for k, v in r.counts.items():
            total.counts[k] += v
        for k, v in r.unsupported_by.items():
            total.unsupported_by[k] = total.unsupported_by.get(k, 0) + v
        for k, v in r.execution_by.items():
            total.execution_by[k] = total.execution_by.get(k, 0) + v
    width = max(18, *(len(r.name) + 1 for r in results))
    if args.json:
        print(json.dumps({r.name: {"counts": r.counts, "failures": r.failures,
                                   "unsupported": r.unsupported,
                                   "unsupported_by": r.unsupported_by,
                                   "execution_by": r.execution_by} for r in results}, indent=1))
    else:
        head = ["file", "passed", "failed", "unsupported", "needs-exec", "needs-code-valid",
                "text-format"]
        print(f"{head[0]:<{width}}" + "".join(f"{h:>17}" for h in head[1:]))
        for r in results + [total]:
            print(f"{r.name:<{width}}" + "".join(f"{r.counts[c]:>17}" for c in CATEGORIES))
        for r in results:
            for failure in r.failures:
                print("FAIL", failure)
        for r in results:
            for what in r.unsupported:
                print("UNSUPPORTED", what)
    unanswered = (total.counts["needs_execution"] + total.counts["needs_code_validation"]
                  + total.counts["text_format"] + total.counts["unsupported"])
    by_proposal = ", ".join(f"{n} {p}" for p, n in sorted(total.unsupported_by.items(),
                                                         key=lambda kv: (-kv[1], kv[0])))
    print(f"unsupported, by proposal: {by_proposal or 'none'}")
    if not args.no_proposals:
        uses = ", ".join(f"{n} {p or 'none of them'}" for p, n in sorted(
            total.execution_by.items(), key=lambda kv: (-kv[1], kv[0])))
        print(f"needs execution, by the proposals their module uses (simd, threads, exceptions: "
              f"not executed by the interpreter either): {uses or 'none'}")
    print(f"not answered: {total.counts['needs_execution']} need execution, "
          f"{total.counts['needs_code_validation']} need code validation, "
          f"{total.counts['text_format']} text format, {total.counts['unsupported']} unsupported")
    print(f"{total.counts['passed']} passed, {total.counts['failed']} failed, {unanswered} needs-execution")
    return 1 if total.counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
