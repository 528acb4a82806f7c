"""Command line: ``python -m wasmenv inspect FILE.wasm [--json]``."""
from __future__ import annotations

import argparse
import json
import sys

from . import compile as compile_module
from .errors import WasmEnvError
from .report import render_text, summarize


def _inspect(args) -> int:
    with open(args.file, "rb") as f:
        data = f.read()
    summary = summarize(compile_module(data))
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(render_text(summary))
    return 0


def _compile(args) -> int:
    from .artifact import save_artifact
    with open(args.file, "rb") as f:
        data = f.read()
    out = save_artifact(compile_module(data), args.output, overwrite=args.force)
    print(f"wasmenv: wrote artifact {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wasmenv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="decode a module and show its plans and initializers")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="stable JSON instead of tables")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("compile", help="compile a module to an artifact directory (mapped zero-copy "
                                       "by load_artifact)")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="artifact directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing artifact at OUTPUT")
    p.set_defaults(run=_compile)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (WasmEnvError, OSError) as exc:
        print(f"wasmenv: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
