"""Function-body validation throughput and Module() startup, next to wasmtime-py (prints a
table; not a test).

    .venv/bin/python scripts/bench_validate.py [--runs N] MODULE.wasm [MODULE.wasm ...]

Real modules are not committed: fetch one from a registry, e.g. ``npm pack sql.js`` or
``npm pack @sqlite.org/sqlite-wasm`` and pass the ``.wasm`` inside. Per module, medians of
``--runs`` runs of:

* ``validate``: ``wasmenv.validate`` of an already decoded translation, in ns per byte of
  the code section, next to ``wasmtime.Module.validate(engine, bytes)`` (which decodes and
  validates the whole module; wasmtime's default features);
* ``Module()``: ``runtime.Module(engine, bytes)`` (decode, validate, images) next to
  ``wasmtime.Module(engine, bytes)`` (decode, validate, compile with Cranelift), and
  their ratio (the target: within 2x).

``--clock wall`` (the default) times wall time; ``--clock cpu`` this process's CPU time, all
threads (``time.process_time``), which leaves out the wait for a core on a loaded machine:
fair for both validations (one thread each), while wasmtime's ``Module()`` compiles on
several threads, whose CPU time adds up (its wall time is what a user waits).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import median_seconds  # noqa: E402  (this folder is sys.path[0] when run as a script)
import runtime  # noqa: E402
import wasmenv  # noqa: E402


def code_section_bytes(translation) -> int:
    bodies = translation.code.bodies
    return bodies[-1][1] - bodies[0][0] if bodies else 0


def make_and_close(engine, wasm) -> None:
    runtime.Module(engine, wasm).close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+", type=pathlib.Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    import wasmtime
    wt_engine = wasmtime.Engine()
    engine = runtime.Engine()
    print(f"{args.clock} time, medians of {args.runs} runs")
    print(f"{'module':28} {'bytes':>9} {'code':>9} {'ours ns/B':>10} {'wt ns/B':>8} "
          f"{'ours Module()':>14} {'wt Module()':>12} {'ratio':>6}")
    for path in args.modules:
        wasm = path.read_bytes()
        translation = wasmenv.translate(wasm)
        code = code_section_bytes(translation)
        ours_v = median_seconds(wasmenv.validate, args.runs, translation, clock=clock)
        wt_v = median_seconds(wasmtime.Module.validate, args.runs, wt_engine, wasm, clock=clock)
        ours_m = median_seconds(make_and_close, args.runs, engine, wasm, clock=clock)
        wt_m = median_seconds(wasmtime.Module, max(1, args.runs // 2), wt_engine, wasm, clock=clock)
        print(f"{path.name[:28]:28} {len(wasm):9d} {code:9d} {ours_v * 1e9 / code:10.0f} "
              f"{wt_v * 1e9 / code:8.1f} {ours_m * 1e3:11.1f} ms {wt_m * 1e3:9.1f} ms "
              f"{ours_m / wt_m:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
