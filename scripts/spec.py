"""Run every .wast in a directory (subdirectories included) through the runtime, every
command executed, and print a per-file table.

    python scripts/spec.py [../shared/wasm-testsuite] [--only NAME ...] [--json] [--checked]

The directory defaults to the suite the tests use (``shared/wasm-testsuite`` beside the
clone, or ``$WASMENV_SPEC_DIR``); NAME is a file stem (``binary``) or a path in the suite
(``core/binary``, ``legacy/throw``). Each command is passed, failed, or unsupported by a
proposal or feature (the ``UnsupportedFeature.feature`` that answered it; such an answer
is never a pass); quoted-text assert_malformed modules no converter encodes are "text
format". The table lists per file passed / failed / unsupported (by feature); it ends with
the totals per feature and ``N passed, N failed, N unsupported``. ``--checked`` runs with
``Engine(signals_based_traps=False)``. Exit status 1 on any failure.
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
from harness.wast import FileResult, WastRunner  # noqa: E402


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
                    help="do not classify modules by the execution proposals they use")
    ap.add_argument("--checked", action="store_true",
                    help="Engine(signals_based_traps=False): every memory access checked")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every unsupported command")
    args = ap.parse_args(argv)
    files = spec_wast_files(pathlib.Path(args.directory))
    if args.only:
        files = [f for f in files if f.stem in args.only or spec_name(f, args.directory) in args.only]
    if not files:
        only = f" named {' '.join(args.only)}" if args.only else ""
        print(f"no .wast files{only} in {args.directory}", file=sys.stderr)
        return 2
    engine = runtime.Engine(signals_based_traps=not args.checked)
    runner = WastRunner(engine, None if args.no_proposals else execution_proposals)
    results = [runner.run_file(converted(f), spec_name(f, args.directory)) for f in _progress(files)]
    total = FileResult("TOTAL")
    for r in results:
        for k, v in r.counts.items():
            total.counts[k] += v
        for k, v in r.unsupported_by.items():
            total.unsupported_by[k] = total.unsupported_by.get(k, 0) + v
        for k, v in r.superseded_by.items():
            total.superseded_by[k] = total.superseded_by.get(k, 0) + v
    if args.json:
        print(json.dumps({"total": _summary(total), "files": {r.name: {
            **_summary(r), "failures": r.failures, "unsupported_commands": r.unsupported,
            "superseded_commands": r.superseded}
            for r in results}}, indent=1))
        return 1 if total.counts["failed"] else 0
    width = max(18, *(len(r.name) + 1 for r in results))
    head = ["file", "passed", "failed", "unsupported", "text-format", "superseded", "by feature"]
    print(f"{head[0]:<{width}}" + "".join(f"{h:>12}" for h in head[1:-1]) + f"  {head[-1]}")
    for r in results + [total]:
        c = r.counts
        cells = (c["passed"], c["failed"], c["unsupported"], c["text_format"], c["superseded"])
        print(f"{r.name:<{width}}" + "".join(f"{n:>12}" for n in cells) + f"  {_by_feature(r)}")
    for r in results:
        for failure in r.failures:
            print("FAIL", failure)
        for what in r.superseded:
            print("SUPERSEDED", what)
    if args.verbose:
        for r in results:
            for what in r.unsupported:
                print("UNSUPPORTED", what)
    print(f"unsupported, by proposal or feature: {_by_feature(total) or 'none'}")
    superseded = ", ".join(f"{p} {n}" for p, n in sorted(total.superseded_by.items()))
    print(f"not answered otherwise: {total.counts['superseded']} superseded (asserted invalid by "
          f"a proposal's older spec, valid with a merged proposal: {superseded or 'none'}), "
          f"{total.counts['text_format']} text format, {total.counts['needs_execution']} other")
    print(f"{total.counts['passed']} passed, {total.counts['failed']} failed, "
          f"{total.counts['unsupported']} unsupported")
    return 1 if total.counts["failed"] else 0


def _by_feature(result) -> str:
    return ", ".join(f"{p} {n}" for p, n in sorted(result.unsupported_by.items(),
                                                   key=lambda kv: (-kv[1], kv[0])))


def _summary(result) -> dict:
    return {"counts": result.counts, "unsupported_by": result.unsupported_by,
            "superseded_by": result.superseded_by}


if __name__ == "__main__":
    sys.exit(main())
