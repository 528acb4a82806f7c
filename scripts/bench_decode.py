"""Decode + compile timings for data-heavy modules (prints a table; not a test).

    .venv/bin/python scripts/bench_decode.py [--runs N] [--budget S] [--clock cpu|wall]

Modules are written directly as binary (no WAT): one memory, N active data segments
with constant ``i32.const`` offsets laid out back to back. Times are the median of runs
of ``wasmenv.translate`` (decode) and ``wasmenv.compile`` (decode + static image + table
folding), after one untimed call: at least ``--runs``, more for fast rows (as many as fit
in ``--budget`` seconds, at most 1,000), so that a millisecond row has as many samples as
the machine's noise needs. ``--clock cpu`` (the default) times this process's CPU time
(``time.process_time``: waiting for a core on a loaded machine is left out), ``wall`` the
wall clock. Targets: 32 MiB in 100,000 segments < 1 s compile, one 32 MiB segment < 50 ms
(zero-copy: the segment is a view of the input).

``$WASMENV_CHECKOUT``: import ``wasmenv`` from that checkout instead of this one, so that
``compare_builds.py --same-script`` times an older build with this very script.
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(os.environ.get("WASMENV_CHECKOUT") or pathlib.Path(__file__).resolve().parent.parent)
# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, str(ROOT))

from _timing import median_seconds  # noqa: E402  (this folder is sys.path[0] when run as a script)
import wasmenv  # noqa: E402
from wasmenv.encode import section, sleb, uleb  # noqa: E402

MIB = 1 << 20


def data_module(total_bytes: int, segments: int, fill: int = 0xA5) -> bytes:
    """A module with one memory and ``segments`` back-to-back active data segments."""
    pages = max(1, -(-total_bytes // 65536))
    memory = section(5, b"\x01" + b"\x00" + uleb(pages))
    size, extra = divmod(total_bytes, segments)
    payload = bytes([fill]) * (size + 1)
    parts = [uleb(segments)]
    offset = 0
    for i in range(segments):
        n = size + (1 if i < extra else 0)
        # i32.const takes a signed LEB: offsets >= 2^31 would be encoded negative.
        parts.append(b"\x00\x41" + sleb(offset if offset < 1 << 31 else offset - (1 << 32))
                     + b"\x0b" + uleb(n) + payload[:n])
        offset += n
    data = section(11, b"".join(parts))
    return b"\0asm\x01\0\0\0" + memory + data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per median, at least")
    ap.add_argument("--budget", type=float, default=0.5,
                    help="seconds of runs per median for the fast rows (default 0.5)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def median(fn):
        t0 = clock()
        fn()  # untimed: first-call costs, and the size of the run count
        once = max(clock() - t0, 1e-6)
        runs = max(args.runs, min(1000, math.ceil(args.budget / once)))
        return median_seconds(fn, runs, clock=clock)

    cases = [
        ("32 MiB in 100,000 segments", 32 * MIB, 100_000, 1.0),
        ("32 MiB in 1 segment", 32 * MIB, 1, 0.050),
        ("1 MiB in 1,000 segments", 1 * MIB, 1_000, None),
        ("1 MiB in 10,000 segments", 1 * MIB, 10_000, None),
        ("1 MiB in 100,000 segments", 1 * MIB, 100_000, None),
    ]
    header = f"{'module':<30}{'bytes':>12}{'decode ms':>12}{'compile ms':>12}{'us/segment':>12}" \
             f"{'target':>10}{'ok':>5}"
    print(f"wasmenv from {ROOT}; {args.clock} time, medians")
    print(header)
    print("-" * len(header))
    ok_all = True
    for label, total, segments, target in cases:
        wasm = data_module(total, segments)
        decode = median(lambda wasm=wasm: wasmenv.translate(wasm))
        compile_ = median(lambda wasm=wasm: wasmenv.compile(wasm))
        if segments == 1:  # zero-copy check: the segment is a view of the input buffer
            tr = wasmenv.translate(wasm)
            view = tr.data.chunks[0]
            assert isinstance(view, memoryview) and view.obj is wasm, "segment was copied"
        ok = target is None or compile_ < target
        ok_all &= ok
        print(f"{label:<30}{len(wasm):>12,}{decode * 1e3:>12.3f}{compile_ * 1e3:>12.3f}"
              f"{compile_ * 1e6 / segments:>12.2f}"
              f"{'' if target is None else f'{target * 1e3:.0f} ms':>10}"
              f"{'' if target is None else ('yes' if ok else 'NO'):>5}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
