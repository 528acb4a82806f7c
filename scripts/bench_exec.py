#!/usr/bin/env python3
"""Execution speed: our interpreter next to pywasm3 (wasm3) and wasmtime-py (JIT), one table.

    .venv/bin/python scripts/bench_exec.py [--repeat 5] [--coremark DIR] [--quick]
        [--no-install] [--json OUT.json] [--only ROW[,ROW...]]

Rows (median wall time over --repeat rounds, each round timing one call in every runtime in
turn, after one untimed warm-up call that also gives the answer compared with wasmtime-py's;
a disagreement stops the script):
  WAT kernels   fib (recursive calls), sum8 (i64.load8_u loop), copy32 (i32 load/store
                copy, then a sum)
  C kernels     scripts/bench_exec_kernels.c built to wasm32 with Debian's clang-19 and
                lld-19 now (installed with apt-get when missing and run as root, unless
                --no-install): sieve, matmul, crc32 (memory-heavy), qsort (recursive,
                memory), cfib (calls). Without the toolchain these rows are skipped with
                the reason printed.
  overhead      export-call: an empty export called from Python (us per call);
                host-call: a wasm loop calling a Python host function (us per call)
  CoreMark      --coremark DIR (an eembc/coremark checkout, never committed here): built
                with our port layer (scripts/coremark/), timed around the export
                coremark_run(N); its CRC lines are checked; iterations/s
A runtime that cannot run a row (e.g. an instruction our interpreter does not run yet)
gets a dash and the reason under the table. "vs" columns: ours' speed relative to theirs
(time theirs / time ours; above 1x ours is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, NamedTuple, Optional

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import wasmtime  # noqa: E402

from _timing import interleaved_median_seconds  # noqa: E402  (this folder is sys.path[0] when run as a script)
import runtime  # noqa: E402
from wasmenv import FuncType, ValType  # noqa: E402

WAT = """(module
  (import "env" "h" (func $h (param i32) (result i32)))
  (memory (export "memory") 80)
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2)) (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "init") (param $n i32) (local $i i32)
    (block $d (loop $l (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (local.get $i) (i32.mul (local.get $i) (i32.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))))
  (func (export "sum8") (param $n i32) (result i64) (local $i i32) (local $s i64)
    (block $d (loop $l (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $s (i64.add (local.get $s) (i64.load8_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))
    (local.get $s))
  (func (export "copy32") (param $n i32) (result i32) (local $i i32) (local $s i32)
    (block $d (loop $l (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store offset=2097152 (local.get $i) (i32.load (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l)))
    (local.set $i (i32.const 0))
    (block $d (loop $l (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $s (i32.add (local.get $s) (i32.load offset=2097152 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l)))
    (local.get $s))
  (func (export "hostloop") (param $n i32) (result i32) (local $i i32) (local $s i32)
    (block $d (loop $l (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $s (i32.add (local.get $s) (call $h (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))
    (local.get $s))
  (func (export "noop")))
"""

KERNELS_C = HERE / "bench_exec_kernels.c"
PORT_DIR = HERE / "coremark"
COREMARK_SOURCES = ("core_list_join.c", "core_main.c", "core_matrix.c", "core_state.c", "core_util.c")
#: What CoreMark's 2K performance run (seeds 0, 0, 0x66) must print, whatever the count.
COREMARK_CRCS = {"seedcrc": "0xe9f5", "[0]crclist": "0xe714", "[0]crcmatrix": "0x1fd7",
                 "[0]crcstate": "0x8e3a"}
CFLAGS = ("--target=wasm32", "-O2", "-ffreestanding", "-nostdlib", "-mcpu=mvp", "-Wl,--no-entry")
RUNTIMES = ("ours", "pywasm3", "wasmtime-py")


def host_h(x):
    """The host function of the host-call row: (i32) -> i32."""
    return (x + 1) & 0xFFFFFFFF


# -- runtimes: instantiate(wasm) -> (export getter, memory reader) -------------------------------
class Inst(NamedTuple):
    fn: Callable[[str], Callable]
    read: Callable[[int, int], bytes]


def ours(wasm: bytes) -> Inst:
    module = runtime.Module(runtime.Engine(), wasm)
    imports = {}
    for imp in module.imports:  # only the WAT module imports: env.h
        imports[(imp.module, imp.name)] = runtime.Func(FuncType((ValType.I32,), (ValType.I32,)), host_h)
    inst = runtime.Instance(module, imports)
    return Inst(lambda name: inst.exports[name], lambda addr, n: inst.exports["memory"].read(addr, n))


def theirs(wasm: bytes) -> Inst:
    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, wasm)
    i32 = wasmtime.ValType.i32()
    imports = [wasmtime.Func(store, wasmtime.FuncType([i32], [i32]), host_h) for _ in module.imports]
    inst = wasmtime.Instance(store, module, imports)
    exports = inst.exports(store)
    return Inst(lambda name: (lambda *args, f=exports[name]: f(store, *args)),
                lambda addr, n: bytes(exports["memory"].read(store, addr, addr + n)))


def wasm3(wasm: bytes) -> Inst:
    import wasm3 as w3  # ImportError: pywasm3 missing (the scripts extra installs it)
    env = w3.Environment()
    rt = env.new_runtime(1 << 20)
    mod = env.parse_module(wasm)
    rt.load(mod)
    if b"\x03env\x01h" in wasm:
        mod.link_function("env", "h", "i(i)", host_h)
    return Inst(rt.find_function, lambda addr, n: bytes(rt.get_memory(0)[addr:addr + n]))


MAKERS = {"ours": ours, "pywasm3": wasm3, "wasmtime-py": theirs}


# -- rows -------------------------------------------------------------------------------------
class Row(NamedTuple):
    name: str
    module: str            # key into the built modules
    export: str
    args: tuple
    unit: str              # "ms" per call, "us" per operation, "it/s"
    per: int = 1           # operations per call (us rows), iterations per call (it/s)
    python_loop: bool = False  # the operations are Python calls (export-call overhead)


def rows_for(args) -> List[Row]:
    n = args.mib << 20
    rows = [Row("fib", "wat", "fib", (args.fib,), "ms"), Row("sum8", "wat", "sum8", (n,), "ms"),
            Row("copy32", "wat", "copy32", (n // 2,), "ms")]
    s = args.c_scale
    rows += [Row("sieve", "c", "sieve", (int((1 << 21) * s),), "ms"),
             Row("matmul", "c", "matmul", (max(8, min(128, int(128 * s ** (1 / 3)))),), "ms"),
             Row("crc32", "c", "crc32", (int((1 << 20) * s),), "ms"),
             Row("qsort", "c", "qsort", (int((1 << 17) * s),), "ms"),
             Row("cfib", "c", "cfib", (args.fib - 2,), "ms")]
    rows += [Row("export-call", "wat", "noop", (), "us", 1000, True),
             Row("host-call", "wat", "hostloop", (args.host_calls,), "us", args.host_calls)]
    if args.coremark:
        rows.append(Row("coremark", "coremark", "coremark_run", (args.coremark_iterations,), "it/s",
                        args.coremark_iterations))
    return rows


# -- building C ---------------------------------------------------------------------------------
def toolchain(install: bool):
    """(clang path, None) or (None, the reason there is none)."""
    def found():
        clang = shutil.which("clang-19")
        return clang if clang and shutil.which("wasm-ld-19") else None
    if found():
        return found(), None
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench_exec: installing clang-19 and lld-19 with apt-get ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "clang-19", "lld-19"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if found():
            return found(), None
        return None, "clang-19/lld-19 missing and apt-get could not install them"
    return None, "clang-19/lld-19 not found (apt-get install clang-19 lld-19)"


def build_c(clang: str, sources, out: pathlib.Path, *flags) -> bytes:
    cmd = [clang, *CFLAGS, *flags, "-o", str(out), *map(str, sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr}")
    return out.read_bytes()


def build_coremark(clang: str, checkout: pathlib.Path, tmp: pathlib.Path) -> bytes:
    """CoreMark's sources from ``checkout`` with our port layer, to wasm32 in ``tmp``."""
    missing = [s for s in COREMARK_SOURCES + ("coremark.h",) if not (checkout / s).exists()]
    if missing:
        raise FileNotFoundError(f"{checkout} is not a CoreMark checkout (no {', '.join(missing)})")
    sources = [checkout / s for s in COREMARK_SOURCES] + [PORT_DIR / "core_portme.c"]
    return build_c(clang, sources, tmp / "coremark.wasm", f"-I{PORT_DIR}", f"-I{checkout}",
                   "-DITERATIONS=0", "-DTOTAL_DATA_SIZE=2000", "-Dmain=coremark_main",
                   '-DFLAGS_STR="-O2"')


def coremark_check(inst: Inst, written: int) -> str:
    """CoreMark's output after a run; raises ValueError if its CRC lines are wrong."""
    text = inst.read(inst.fn("coremark_output")(), written).decode("latin-1")
    fields = dict(re.findall(r"^(\S+)\s*: (\S+)$", text, re.M))
    wrong = {k: fields.get(k) for k, v in COREMARK_CRCS.items() if fields.get(k) != v}
    if wrong or re.search(r"ERROR! (list|matrix|state) crc", text):
        raise ValueError(f"CoreMark output is wrong ({wrong}):\n{text}")
    return fields["[0]crcfinal"]


# -- measuring ----------------------------------------------------------------------------------
def answer(inst: Inst, row: Row):
    f = inst.fn(row.export)
    if row.python_loop:
        return f()
    result = f(*row.args)
    return coremark_check(inst, result) if row.module == "coremark" else result


def timed_call(inst: Inst, row: Row):
    """A no-argument callable doing one timed unit of ``row`` (a loop of Python calls for
    the export-call row)."""
    f = inst.fn(row.export)
    if row.python_loop:
        return lambda: [f() for _ in range(row.per)]
    return lambda: f(*row.args)


def run(args) -> dict:
    """{"rows": {row: {runtime: seconds}}, "answers", "notes": [...], ...} for every row."""
    notes: List[str] = []
    modules: Dict[str, bytes] = {"wat": bytes(wasmtime.wat2wasm(WAT))}
    rows = rows_for(args)
    skipped = set()
    with tempfile.TemporaryDirectory(prefix="bench_exec_") as tmpdir:
        clang, why = toolchain(not args.no_install)
        if clang is None:
            skipped.add("c")
            notes.append(f"C kernels skipped: {why}")
        else:
            modules["c"] = build_c(clang, [KERNELS_C], pathlib.Path(tmpdir) / "kernels.wasm")
        if args.coremark:
            if clang is None:
                skipped.add("coremark")
                notes.append(f"CoreMark skipped: {why}")
            else:
                modules["coremark"] = build_coremark(clang, pathlib.Path(args.coremark), pathlib.Path(tmpdir))
    rows = [r for r in rows if r.module not in skipped and (not args.only or r.name in args.only)]
    answers: Dict[str, Dict[str, object]] = {r.name: {} for r in rows}
    calls: Dict[str, Dict[str, Callable]] = {r.name: {} for r in rows}
    for rname, make in MAKERS.items():
        instances: Dict[str, Optional[Inst]] = {}
        for key, wasm in modules.items():
            try:
                instances[key] = make(wasm)
            except Exception as exc:  # a missing runtime, or a module it cannot load
                instances[key] = None
                notes.append(f"{rname}: {key} module: {type(exc).__name__}: {exc}")
        if instances["wat"] is not None:
            instances["wat"].fn("init")(args.mib << 20)  # the bytes sum8 and copy32 read
        for row in rows:
            inst = instances[row.module]
            if inst is None:
                continue
            try:
                answers[row.name][rname] = answer(inst, row)  # the warm-up call
            except Exception as exc:
                notes.append(f"{rname}: {row.name}: {type(exc).__name__}: {exc}")
                continue
            calls[row.name][rname] = timed_call(inst, row)
    times: Dict[str, Dict[str, float]] = {}
    for row in rows:
        runs = args.repeat if row.unit != "it/s" else min(args.repeat, 3)
        medians = interleaved_median_seconds(calls[row.name], runs)
        times[row.name] = {rname: t / row.per for rname, t in medians.items()}
    for row in rows:
        ref = answers[row.name].get("wasmtime-py")
        for rname, got in answers[row.name].items():
            if got != ref:
                raise SystemExit(f"{row.name}: {rname} computed {got!r}, wasmtime-py {ref!r}")
    return {"rows": times, "answers": {k: {r: str(v) for r, v in a.items()} for k, a in answers.items()},
            "units": {r.name: r.unit for r in rows}, "notes": notes}


def cell(seconds: Optional[float], unit: str) -> str:
    if seconds is None:
        return "-"
    if unit == "it/s":
        return f"{1 / seconds:.1f}"
    return f"{seconds * (1e3 if unit == 'ms' else 1e6):.3f}"


def speed(rows, name, other) -> str:
    ours_s, theirs_s = rows[name].get("ours"), rows[name].get(other)
    return "-" if ours_s is None or theirs_s is None else f"{theirs_s / ours_s:.2f}x"


def table(result, args) -> str:
    lines = [f"bench_exec: median of {args.repeat} (CoreMark: of {min(args.repeat, 3)}); fib({args.fib}), "
             f"sum8/copy32 over {args.mib} MiB, C sizes x{args.c_scale:g}",
             f"{'row':<12} {'unit':<5} {'ours':>11} {'pywasm3':>11} {'wasmtime-py':>12} "
             f"{'vs pywasm3':>10} {'vs wasmtime':>11}"]
    rows = result["rows"]
    for name, per in rows.items():
        unit = result["units"][name]
        cells = [cell(per.get(r), unit) for r in RUNTIMES]
        lines.append(f"{name:<12} {unit:<5} {cells[0]:>11} {cells[1]:>11} {cells[2]:>12} "
                     f"{speed(rows, name, 'pywasm3'):>10} {speed(rows, name, 'wasmtime-py'):>11}")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fib", type=int, default=27)
    ap.add_argument("--mib", type=int, default=4)
    ap.add_argument("--c-scale", type=float, default=1.0, help="C kernels' problem sizes, scaled")
    ap.add_argument("--host-calls", type=int, default=20000)
    ap.add_argument("--coremark", metavar="DIR", help="an eembc/coremark checkout")
    ap.add_argument("--coremark-iterations", type=int, default=1000)
    ap.add_argument("--no-install", action="store_true", help="never apt-get the C toolchain")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    ap.add_argument("--only", metavar="ROWS", type=lambda s: set(s.split(",")),
                    help="run only these rows (comma-separated names, e.g. crc32,coremark)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat, args.fib, args.mib, args.c_scale = 1, 15, 1, 0.02
        args.host_calls, args.coremark_iterations = 200, 5
    result = run(args)
    print(table(result, args))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
