#!/usr/bin/env python3
"""Artifact load time vs compile time, by size of the module's data image.

For each size (MiB of non-zero data in one active segment, so the module gets one static
image of that size) it builds the wasm bytes, then reports medians of:

  compile 1seg   wasmenv.compile of a one-segment module (the image can alias the input)
  compile 64K    wasmenv.compile of the same data in 64 KiB segments (image built by copying)
  save           save_artifact(translation, dir)         (once)
  load           load_artifact(dir)                      (in this process, warm page cache)
  load (fresh)   load_artifact(dir) in a new process     (timed after imports)
  verify         load_artifact(dir, verify=True)         (hashes the data file)

and, when the runtime has ``Module.from_artifact`` (runtime/module.py), the time to get a
first Instance in a fresh process: from the artifact vs from the wasm bytes.

A second table does the same by size of the code section (MiB of function bodies of
``--body-bytes`` each, so the function count grows with it): save, load (in process and
fresh), and ``Module.from_artifact`` (which validates every body) next to ``Module()`` of
the wasm bytes (same validation, plus decoding).

Usage: .venv/bin/python scripts/bench_artifact.py [--sizes 1,16,64,256] [--repeat 15]
           [--code-sizes 1,4] [--body-bytes 300]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _timing import median_seconds  # noqa: E402  (this folder is sys.path[0] when run as a script)
import wasmenv  # noqa: E402
from wasmenv import load_artifact, save_artifact  # noqa: E402
from wasmenv.encode import section, sleb, uleb  # noqa: E402

MIB = 1 << 20


def wasm_with_image(n_bytes: int, segment: int = 0, gap: int = 64) -> bytes:
    """A module with one memory holding ``n_bytes`` of non-zero data from address 0.

    ``segment`` 0: one active segment (the decoder may then use the input bytes as the
    image, zero-copy). Otherwise segments of ``segment`` bytes separated by ``gap`` zero
    bytes, so that compile has to build (copy) the image, as for a typical linker output.
    """
    pattern = bytes(range(1, 256))
    data = (pattern * (n_bytes // len(pattern) + 1))[:n_bytes]
    segments = []
    if segment == 0:
        segments.append((0, data))
    else:
        for i, start in enumerate(range(0, n_bytes, segment)):
            segments.append((start + i * gap, data[start:start + segment]))
    top = segments[-1][0] + len(segments[-1][1])
    pages = top // 65536 + 1
    memory = uleb(1) + b"\x00" + uleb(pages)
    body = bytearray(uleb(len(segments)))
    for addr, chunk in segments:
        body += b"\x00\x41" + sleb(addr) + b"\x0b" + uleb(len(chunk)) + chunk
    export = uleb(1) + uleb(6) + b"memory" + b"\x02" + uleb(0)
    return (b"\0asm\x01\0\0\0" + section(5, memory) + section(7, export)
            + section(11, bytes(body)))


def wasm_with_code(n_bytes: int, body_bytes: int = 300) -> bytes:
    """A module of functions ``() -> ()`` whose bodies (``i32.const 0; drop``, repeated) are
    about ``body_bytes`` each and total about ``n_bytes``."""
    funcs = max(n_bytes // body_bytes, 1)
    body = b"\x00" + b"\x41\x00\x1a" * max((body_bytes - 2) // 3, 0) + b"\x0b"
    code = uleb(funcs) + (uleb(len(body)) + body) * funcs
    return (b"\0asm\x01\0\0\0" + section(1, b"\x01\x60\x00\x00")
            + section(3, uleb(funcs) + b"\x00" * funcs) + section(10, code))


FRESH_LOAD = r"""
import sys, time
sys.path.insert(0, {root!r})
import wasmenv
t0 = time.perf_counter()
tr = wasmenv.load_artifact({path!r})
print(time.perf_counter() - t0)
"""

FRESH_INSTANTIATE = r"""
import sys, time
sys.path.insert(0, {root!r})
import wasmenv
from runtime.engine import Engine
from runtime.module import Module
from runtime.instance import Instance
engine = Engine()
source = {source!r}
t0 = time.perf_counter()
if {artifact!r}:
    module = Module.from_artifact(engine, source)
else:
    with open(source, "rb") as f:
        module = Module(engine, f.read())
instance = Instance(module)
print(time.perf_counter() - t0)
"""


def fresh(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def has_from_artifact() -> bool:
    try:
        from runtime.module import Module
    except Exception:  # noqa: BLE001 - the runtime may not be built
        return False
    return hasattr(Module, "from_artifact")


def ms(x: float) -> str:
    return f"{x * 1e3:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,16,64,256", help="MiB of image data, comma-separated")
    ap.add_argument("--repeat", type=int, default=15, help="runs per median (in-process load)")
    ap.add_argument("--fresh", type=int, default=5, help="processes per fresh-process median")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--code-sizes", default="1,4",
                    help="MiB of function bodies, comma-separated (empty: skip)")
    ap.add_argument("--body-bytes", type=int, default=300, help="bytes per function body")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = args.dir or tempfile.mkdtemp(prefix="bench_artifact.")
    os.makedirs(work, exist_ok=True)
    instantiate = has_from_artifact()
    rows = []
    code_rows = []
    try:
        for mib in [float(s) for s in args.code_sizes.split(",") if s]:
            code_rows.append(code_row(mib, args, work))
            print(f"  {mib} MiB of code done", file=sys.stderr)
        for mib in sizes:
            one = wasm_with_image(mib * MIB)
            wasm = wasm_with_image(mib * MIB, segment=64 * 1024)
            wasm_path = os.path.join(work, f"m{mib}.wasm")
            with open(wasm_path, "wb") as f:
                f.write(wasm)
            compile_repeat = max(3, min(args.repeat, 64 // mib if mib else args.repeat))
            t_compile_one = median_seconds(lambda one=one: wasmenv.compile(one), compile_repeat)
            t_compile = median_seconds(lambda wasm=wasm: wasmenv.compile(wasm), compile_repeat)
            del one
            tr = wasmenv.compile(wasm)
            mi = tr.module.memory_initialization
            assert not mi.is_segmented() and len(mi.map[0].data) >= mib * MIB, "expected one image"
            out = os.path.join(work, f"a{mib}")
            t0 = time.perf_counter()
            save_artifact(tr, out, overwrite=True)
            t_save = time.perf_counter() - t0
            del tr
            load_artifact(out)  # warm up
            t_load = median_seconds(lambda out=out: load_artifact(out), args.repeat)
            t_fresh = fresh(FRESH_LOAD.format(root=root, path=out), args.fresh)
            t_verify = median_seconds(lambda out=out: load_artifact(out, verify=True), 3)
            row = [mib, t_compile_one, t_compile, t_save, t_load, t_fresh, t_verify]
            if instantiate:
                row.append(fresh(FRESH_INSTANTIATE.format(root=root, source=out, artifact=True), args.fresh))
                row.append(fresh(FRESH_INSTANTIATE.format(root=root, source=wasm_path, artifact=False),
                                 args.fresh))
            rows.append(row)
            print(f"  {mib} MiB done", file=sys.stderr)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)

    head = ["image MiB", "compile 1seg", "compile 64K", "save", "load", "load fresh", "verify"]
    if instantiate:
        head += ["inst artifact", "inst wasm"]
    print(f"medians in ms; python {sys.version.split()[0]}, page {wasmenv.host_page_size()}, "
          f"in-process repeat {args.repeat}, fresh processes {args.fresh}")
    print("compile 1seg: wasmenv.compile of a one-segment module; compile 64K: of the same data "
          "in 64 KiB segments (the artifact's source); load fresh: in a new process, after "
          "'import wasmenv'")
    print(" | ".join(f"{h:>13}" for h in head))
    for row in rows:
        print(" | ".join([f"{row[0]:>13}"] + [f"{ms(x):>13}" for x in row[1:]]))
    if not instantiate:
        print("(instantiate-from-artifact column skipped: runtime.module.Module.from_artifact "
              "does not exist yet)")
    if code_rows:
        print()
        print(f"by code size ({args.body_bytes}-byte bodies); Module columns: in process, once "
              f"(they validate every body)")
        head = ["code MiB", "functions", "artifact MiB", "save", "load", "load fresh",
                "Module(art)", "Module(wasm)"]
        print(" | ".join(f"{h:>12}" for h in head))
        for row in code_rows:
            cells = [f"{row[0]:>12g}", f"{row[1]:>12}", f"{row[2] / MIB:>12.2f}"]
            cells += [f"{ms(x) if x is not None else '-':>12}" for x in row[3:]]
            print(" | ".join(cells))
    return 0


def code_row(mib: float, args, work: str) -> list:
    """[code MiB, functions, bytes on disk, save, load, load fresh, Module(art), Module(wasm)]."""
    wasm = wasm_with_code(int(mib * MIB), args.body_bytes)
    tr = wasmenv.compile(wasm)
    funcs = len(tr.module.functions)
    out = os.path.join(work, f"code{mib:g}")
    t0 = time.perf_counter()
    save_artifact(tr, out, overwrite=True)
    t_save = time.perf_counter() - t0
    del tr
    disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    load_artifact(out)  # warm up
    t_load = median_seconds(lambda: load_artifact(out), args.repeat)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t_fresh = fresh(FRESH_LOAD.format(root=root, path=out), args.fresh)
    t_art = t_wasm = None
    if has_from_artifact():
        from runtime.engine import Engine
        from runtime.module import Module
        engine = Engine()
        t0 = time.perf_counter()
        Module.from_artifact(engine, out).close()
        t_art = time.perf_counter() - t0
        t0 = time.perf_counter()
        Module(engine, wasm).close()
        t_wasm = time.perf_counter() - t0
    return [mib, funcs, disk, t_save, t_load, t_fresh, t_art, t_wasm]


if __name__ == "__main__":
    sys.exit(main())
