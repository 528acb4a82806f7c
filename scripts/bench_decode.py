"""Decode + compile timings for data-heavy modules (prints a table; not a test).

    .venv/bin/python scripts/bench_decode.py [--runs N]

Modules are written directly as binary (no WAT): one memory, N active data segments
with constant ``i32.const`` offsets laid out back to back. Times are the median of
``--runs`` runs of ``wasmenv.translate`` (decode) and ``wasmenv.compile`` (decode +
static image + table folding). Targets: 32 MiB in 100,000 segments < 1 s compile,
one 32 MiB segment < 50 ms (zero-copy: the segment is a view of the input).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
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
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    cases = [
        ("32 MiB in 100,000 segments", 32 * MIB, 100_000, 1.0),
        ("32 MiB in 1 segment", 32 * MIB, 1, 0.050),
        ("1 MiB in 1,000 segments", 1 * MIB, 1_000, None),
        ("1 MiB in 10,000 segments", 1 * MIB, 10_000, None),
        ("1 MiB in 100,000 segments", 1 * MIB, 100_000, None),
    ]
    header = f"{'module':<30}{'bytes':>12}{'decode ms':>12}{'compile ms':>12}{'us/segment':>12}" \
             f"{'target':>10}{'ok':>5}"
    print(header)
    print("-" * len(header))
    ok_all = True
    for label, total, segments, target in cases:
        wasm = data_module(total, segments)
        decode = median_seconds(lambda wasm=wasm: wasmenv.translate(wasm), args.runs)
        compile_ = median_seconds(lambda wasm=wasm: wasmenv.compile(wasm), args.runs)
        if segments == 1:  # zero-copy check: the segment is a view of the input buffer
            tr = wasmenv.translate(wasm)
            view = tr.data.chunks[0]
            assert isinstance(view, memoryview) and view.obj is wasm, "segment was copied"
        ok = target is None or compile_ < target
        ok_all &= ok
        print(f"{label:<30}{len(wasm):>12,}{decode * 1e3:>12.1f}{compile_ * 1e3:>12.1f}"
              f"{compile_ * 1e6 / segments:>12.2f}"
              f"{'' if target is None else f'{target * 1e3:.0f} ms':>10}"
              f"{'' if target is None else ('yes' if ok else 'NO'):>5}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
