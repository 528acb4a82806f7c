#!/usr/bin/env python3
"""Instantiate + release cost per strategy, next to its C syscall floor and wasmtime-py.

    .venv/bin/python scripts/bench_instantiate.py [MODULE.wasm] [-n 2000] [--rounds 10]
        [--batch 10] [--quick] [--json [PATH]] [--no-wasmtime]

MODULE defaults to examples/build/image_1mib.wasm (built with scripts/build_examples.py
if missing). One sample = --batch consecutive ``Instance(module).close()`` timed
together, divided by the batch (the same for every row, the C floors included: at the
one-microsecond scale, a clock read per call would cost Python ~0.1 us and C ~0.02 us of
pure timing; --batch 1 times every call alone). Rows give the median and spread
(p10/p90) in microseconds per instantiation over -n samples, taken in --rounds
interleaved rounds so drift hits every strategy alike. Python's cyclic GC stays on (its
cost is part of the Python path).

Ours:
  cow      on-demand allocator, image mapped copy-on-write (the default Engine)
  copy     Engine(memory_init_cow=False): the image is copied into every instance
  pooling  PoolingAllocator (160-page slots or the module's largest minimum), the same
           module instantiated again (its slot keeps the image); also shown against cow
Our C alone (c_src/wenv_bench.c: wenv_instance_open + wenv_instance_close, the C that
one Instance(module).close() runs for a one-memory module, with no Python around it):
  cow-c / pooling-c
C floors (the same run, c_src/wenv_bench.c through scripts/_strategies.Floor, with the
geometry our layout gives the module's first memory; scripts/bench_real.py runs the same
floors over every defined memory and table):
  floor-cow      mmap reserve PROT_NONE + mmap image MAP_PRIVATE|MAP_FIXED from the same
                 memfd + mprotect the rest of the accessible part + munmap
  floor-copy     reserve + mprotect + memcpy the image + munmap
  floor-pooling  madvise(MADV_DONTNEED) reset of the accessible part + mprotect
wasmtime-py (a fresh wasmtime.Store per instance, dropped to release it: wasmtime frees
instances with their Store; no pooling in wasmtime-py, so pooling is compared with
wasmtime-cow):
  wasmtime-cow / wasmtime-copy   Config.memory_init_cow on / off

Targets: cow <= 1.5 x floor-cow and <= 0.5 x wasmtime-cow; pooling <= 2 x floor-pooling.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

from _strategies import ROOT, Floor, interleaved, our_engine, pool_for  # this folder is sys.path[0] when run as a script

DEFAULT_MODULE = ROOT / "examples" / "build" / "image_1mib.wasm"
OURS = ("cow", "copy", "pooling")
FLOORS = {"cow": "floor-cow", "copy": "floor-copy", "pooling": "floor-pooling"}
THEIRS = {"cow": "wasmtime-cow", "copy": "wasmtime-copy", "pooling": "wasmtime-cow"}
#: strategy -> (max ours/floor, max ours/wasmtime); None: no target
TARGETS = {"cow": (1.5, 0.5), "copy": (None, None), "pooling": (2.0, None)}


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summary(samples_ns):
    s = sorted(samples_ns)
    return {"median_us": statistics.median(s) / 1e3, "p10_us": percentile(s, 0.10) / 1e3,
            "p90_us": percentile(s, 0.90) / 1e3, "samples": len(s)}


# ---- the measured things -----------------------------------------------------------------

class OurStrategy:
    def __init__(self, strategy, wasm):
        import runtime
        self.runtime = runtime
        if strategy == "pooling":
            self.engine = runtime.Engine(allocator=pool_for(wasm))
        else:
            self.engine = our_engine(strategy)
        self.module = runtime.Module(self.engine, wasm)

    def run(self, n, batch):
        Instance = self.runtime.Instance
        module = self.module
        clock = time.perf_counter_ns
        out = []
        if batch == 1:  # no inner loop: its setup would be timed too
            for _ in range(n):
                t0 = clock()
                Instance(module).close()
                out.append(clock() - t0)
            return out
        inner = range(batch)
        for _ in range(n):
            t0 = clock()
            for _ in inner:
                Instance(module).close()
            out.append((clock() - t0) / batch)
        return out

    def close(self):
        self.module.close()
        self.engine.allocator.close()


class WasmtimeStrategy:
    def __init__(self, strategy, wasm):
        import wasmtime as wt
        self.wt = wt
        cfg = wt.Config()
        cfg.memory_init_cow = strategy == "wasmtime-cow"
        for feature in ("wasm_multi_memory", "wasm_memory64", "wasm_threads"):
            setattr(cfg, feature, True)
        self.engine = wt.Engine(cfg)
        self.module = wt.Module(self.engine, wasm)

    def run(self, n, batch):
        Store, Instance = self.wt.Store, self.wt.Instance
        engine, module = self.engine, self.module
        clock = time.perf_counter_ns
        inner = range(batch)
        out = []
        for _ in range(n):
            t0 = clock()
            for _ in inner:
                store = Store(engine)
                inst = Instance(store, module, [])
                del inst, store  # frees the instance and its memory
            out.append((clock() - t0) / batch)
        return out

    def close(self):
        pass


class OurC(OurStrategy):
    """Our instantiation's C part alone: the module's one-call spec, driven from C."""

    def __init__(self, strategy, wasm):
        super().__init__(strategy[:-2], wasm)
        self.ffi = self.runtime._ffi
        self.runtime.Instance(self.module).close()  # sets up the module's one-call spec
        self.layout = self.module._instance_layout
        if not self.layout.fast:
            raise SystemExit(f"{strategy}: the module is not a one-memory module: no C cycle to time")

    def run(self, n, batch):
        return self.ffi.bench_instance_cycle(self.layout.specs, n, batch)


def takes_one_call_path(wasm, path) -> bool:
    """Whether instances of the module take the one-call path (one memory, nothing else
    to link or initialize): only then is there a C cycle of ours to time alone."""
    import runtime
    module = runtime.Module(runtime.Engine(), wasm)
    try:
        runtime.Instance(module).close()
    except runtime.LinkError as exc:
        raise SystemExit(f"{path.name}: {exc}; this benchmark instantiates without imports") from None
    return module._instance_layout.fast


def make(name, wasm):
    if name in OURS:
        return OurStrategy(name, wasm)
    if name.endswith("-c"):
        return OurC(name, wasm)
    if name.startswith("floor-"):
        return Floor(name, wasm, first_memory_only=True)
    return WasmtimeStrategy(name, wasm)


# ---- the report --------------------------------------------------------------------------

def measure(wasm, names, n, rounds, warmup, batch=1):
    runners = {name: make(name, wasm) for name in names}
    try:
        samples = interleaved(runners, n, rounds, warmup, batch)
    finally:
        for r in runners.values():
            r.close()
    return {name: summary(s) for name, s in samples.items()}


def compare(rows):
    out = {}
    for strategy in OURS:
        if strategy not in rows:
            continue
        ours = rows[strategy]["median_us"]
        floor = rows.get(FLOORS[strategy], {}).get("median_us")
        theirs_name = THEIRS[strategy]
        theirs = rows.get(theirs_name, {}).get("median_us")
        floor_target, theirs_target = TARGETS[strategy]
        c = {"ours_us": ours, "floor": FLOORS[strategy], "floor_us": floor,
             "ours_over_floor": ours / floor if floor else None, "floor_target": floor_target,
             "wasmtime": theirs_name, "wasmtime_us": theirs,
             "ours_over_wasmtime": ours / theirs if theirs else None, "wasmtime_target": theirs_target}
        c["floor_ok"] = None if floor_target is None or c["ours_over_floor"] is None else \
            c["ours_over_floor"] <= floor_target
        c["wasmtime_ok"] = None if theirs_target is None or c["ours_over_wasmtime"] is None else \
            c["ours_over_wasmtime"] <= theirs_target
        if strategy == "pooling" and "cow" in rows:  # the pool against our own on-demand path
            c["ondemand_us"] = rows["cow"]["median_us"]
            c["ours_over_ondemand"] = ours / c["ondemand_us"]
        out[strategy] = c
    return out


def _fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def _verdict(ratio, target, ok):
    if ratio is None:
        return "-"
    if target is None:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x (<= {target:g}x {'ok' if ok else 'MISSED'})"


def print_table(path, rows, comparison, n, defined_memories=1, batch=1):
    print(f"instantiate + release, {path.name}: median and p10/p90 over {n} samples of {batch} "
          f"(us per instantiation)")
    print(f"{'strategy':<15} {'median':>9} {'p10':>9} {'p90':>9}")
    for name, r in rows.items():
        print(f"{name:<15} {r['median_us']:>9.1f} {r['p10_us']:>9.1f} {r['p90_us']:>9.1f}")
    print()
    head = (f"{'ours':<8} {'median':>8}  {'C floor':<22} {'ours/floor':<26} {'wasmtime-py':<22} "
            f"{'ours/wasmtime':<26}")
    print(head)
    for strategy, c in comparison.items():
        floor = f"{_fmt(c['floor_us']):>8} {c['floor']}"
        theirs = f"{_fmt(c['wasmtime_us']):>8} {c['wasmtime']}"
        print(f"{strategy:<8} {c['ours_us']:>8.1f}  {floor:<22} "
              f"{_verdict(c['ours_over_floor'], c['floor_target'], c['floor_ok']):<26} {theirs:<22} "
              f"{_verdict(c['ours_over_wasmtime'], c['wasmtime_target'], c['wasmtime_ok']):<26}")
    pool = comparison.get("pooling", {})
    if pool.get("ours_over_ondemand") is not None:
        print(f"pooling vs our on-demand (cow): {pool['ours_us']:.1f} / {pool['ondemand_us']:.1f} us = "
              f"{pool['ours_over_ondemand']:.2f}x")
    print("wasmtime-py: a Store per instance; pooling is compared with wasmtime-cow (wasmtime-py "
          "has no pooling allocator)")
    if defined_memories != 1:
        print(f"note: the module defines {defined_memories} memories; the C floors cover the first only")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("module", nargs="?", default=str(DEFAULT_MODULE))
    ap.add_argument("-n", "--iterations", type=int, default=2000, help="samples per row")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    ap.add_argument("--batch", type=int, default=10, help="instantiations timed together per sample")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 samples, 2 rounds")
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="write the results as JSON to PATH ('-' or no PATH: stdout, no table)")
    ap.add_argument("--no-wasmtime", action="store_true", help="skip the wasmtime-py rows")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations, args.rounds, args.warmup, args.batch = 40, 2, 5, 2
    path = pathlib.Path(args.module)
    if not path.exists() and path.resolve() == DEFAULT_MODULE.resolve():
        import build_examples
        build_examples.main()
    wasm = path.read_bytes()

    if args.batch < 1:
        ap.error("--batch must be at least 1")
    one_call = takes_one_call_path(wasm, path)
    names = list(OURS) + (["cow-c", "pooling-c"] if one_call else []) + \
        ["floor-cow", "floor-copy", "floor-pooling"]
    if not args.no_wasmtime:
        names += ["wasmtime-cow", "wasmtime-copy"]
    rows = measure(wasm, names, args.iterations, args.rounds, args.warmup, args.batch)
    comparison = compare(rows)
    import wasmenv
    env = wasmenv.compile(wasm).module
    defined_memories = len(env.memory_plans) - env.num_imported_memories
    result = {"module": str(path), "iterations": args.iterations, "rounds": args.rounds, "batch": args.batch,
              "defined_memories": defined_memories,
              "unit": "us", "wasmtime_store": "per instance", "rows": rows, "comparison": comparison}
    if args.json is not None:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
            return 0
        pathlib.Path(args.json).write_text(text + "\n")
    print_table(path, rows, comparison, args.iterations, defined_memories, args.batch)
    if not one_call:
        print("no cow-c / pooling-c rows: this module does not take the one-call path "
              "(it has imports, globals, tables, segments to apply or other than one memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
