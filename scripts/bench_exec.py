#!/usr/bin/env python3
"""Execution speed: our interpreter next to pywasm3 (wasm3) and wasmtime-py (JIT), as a table.

    .venv/bin/python scripts/bench_exec.py [--repeat 5] [--fib 27] [--mib 4]

Kernels (WAT below), one call each, median wall time over --repeat calls after a warm-up:
  fib       recursive fib(--fib): call-heavy
  sum8      sum of every byte of --mib MiB (i64.load8_u loop): memory-heavy
  copy32    copy --mib/2 MiB with an i32.load/i32.store loop, then sum it with i32 loads
  noop      an empty export called from Python (per-call overhead, in microseconds)
pywasm3 comes from PyPI (``pywasm3``, the scripts extra); a missing runtime gets a dash.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import wasmtime  # noqa: E402

from _timing import median_seconds  # noqa: E402  (this folder is sys.path[0] when run as a script)
import runtime  # noqa: E402

WAT = """(module
  (memory (export "mem") 80)
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
  (func (export "noop")))
"""


def ours(wasm):
    inst = runtime.Instance(runtime.Module(runtime.Engine(), wasm))
    return lambda name: inst.exports[name]


def theirs(wasm):
    store = wasmtime.Store()
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), [])
    exports = inst.exports(store)
    return lambda name: (lambda *args, f=exports[name]: f(store, *args))


def wasm3(wasm):
    try:
        import wasm3 as w3
    except ImportError:
        return None
    env = w3.Environment()
    rt = env.new_runtime(1 << 20)
    rt.load(env.parse_module(wasm))
    return lambda name: rt.find_function(name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fib", type=int, default=27)
    ap.add_argument("--mib", type=int, default=4)
    args = ap.parse_args(argv)
    wasm = bytes(wasmtime.wat2wasm(WAT))
    n = args.mib << 20
    runtimes = {"ours": ours(wasm), "pywasm3": wasm3(wasm), "wasmtime-py": theirs(wasm)}
    kernels = [("fib", "fib", (args.fib,), "ms"), ("sum8", "sum8", (n,), "ms"),
               ("copy32", "copy32", (n // 2,), "ms"), ("noop", "noop", (), "us")]
    results = {}
    for rname, get in runtimes.items():
        if get is None:
            continue
        get("init")(n)
        for kname, export, kargs, _ in kernels:
            f = get(export)
            if kname == "noop":
                results[rname, kname] = median_seconds(lambda f=f: [f() for _ in range(1000)], args.repeat, warmup=True) / 1000
            else:
                results[rname, kname] = median_seconds(f, args.repeat, *kargs, warmup=True)
        answers = {k: get(e)(*a) for k, e, a, _ in kernels[:3]}
        results[rname, "answers"] = answers
    reference = results["wasmtime-py", "answers"]
    for rname in runtimes:
        if (rname, "answers") in results and results[rname, "answers"] != reference:
            raise SystemExit(f"{rname} computed {results[rname, 'answers']}, wasmtime-py {reference}")
    print(f"bench_exec: fib({args.fib}), sum8/copy32 over {args.mib} MiB; median of {args.repeat}")
    print(f"{'kernel':<8} {'unit':<4} {'ours':>10} {'pywasm3':>10} {'wasmtime-py':>12} {'ours/wasm3':>10}")
    for kname, _, _, unit in kernels:
        scale = 1e3 if unit == "ms" else 1e6
        cells = []
        for rname in runtimes:
            v = results.get((rname, kname))
            cells.append("-" if v is None else f"{v * scale:.2f}")
        ratio = "-"
        if ("pywasm3", kname) in results:
            ratio = f"{results['ours', kname] / results['pywasm3', kname]:.2f}x"
        print(f"{kname:<8} {unit:<4} {cells[0]:>10} {cells[1]:>10} {cells[2]:>12} {ratio:>10}")


if __name__ == "__main__":
    main()
