#!/usr/bin/env python3
"""Instantiate + release on real modules from the registries and on synthetic size series,
ours against wasmtime-py, pywasm3 and the C syscall floor, with the same dummy imports;
optionally RSS per live instance.

    .venv/bin/python scripts/bench_real.py [--module PATH ...] [--no-registry] [--no-synthetic]
        [--no-start] [-n 300] [--rounds 5] [--batch 5] [--quick] [--rss [N]] [--rss-guard BYTES]
        [--no-timing] [--json PATH]

Modules: every entry of scripts/real_modules.py's catalogue (fetched into its cache on
first use), plus any --module files, except entries the catalogue marks blocked (a
proposal one runtime cannot run yet: listed, left out). Those with a start function (it
runs at every instantiation, in every runtime) get a second table with geomeans of their
own, the same samples; --no-start leaves them out.
Imports: scripts/_dummy_imports.py, the same in every runtime (functions returning zeros,
zero globals, memories and tables of the minimum asked for).

One sample = --batch consecutive instantiate + release timed together, divided by the
batch; medians over -n samples taken in --rounds interleaved rounds (as
scripts/bench_instantiate.py does), every column of a module in the same run. Python's
cyclic GC stays on.
  floor       the C syscall floor of the module's geometry on demand (c_src/wenv_bench.c,
              scripts/_strategies.py's Floor): for each defined memory, the reservation
              our on-demand allocator makes for it (the same size and pre-guard) with its
              data image mapped copy-on-write from the module's image file as ours maps
              it (or its initial size mprotected R/W when there is no image), each
              defined table opened and closed as ours opens one (wenv_table_open: on the
              zero region, no syscall); then munmap of each. Imported memories and tables
              are not in it
              (they are made outside the timed region; see the fresh-imports note).
  ours        runtime.Linker(engine).instantiate_pre(module), timed: pre.instantiate().close()
              (the default Engine: on-demand allocator, images mapped copy-on-write)
  pfloor      the pooled floor: what reusing a slot must cost, as bench_instantiate.py's
              floor-pooling: each defined memory reset by madvise(MADV_DONTNEED) over its
              initial size + mprotect PROT_NONE of the wasm page above, each defined table
              by our pool's table reset (nothing for one never written, as here)
  ours-pool   the same on a PoolingAllocator sized for the module (4 slots; every defined
              memory's minimum and table's minimum fit), the same module again and again
  wasmtime    wasmtime-py Linker.instantiate_pre, memory_init_cow on, a fresh Store per
              instance, timed: Store(engine) + pre.instantiate(store) + dropping the store.
  pywasm3     wasm3 (scripts/_strategies.py's Wasm3): parse (a wasm3 module loads into one
              runtime only) + a runtime with a 64 KiB stack + load + link every imported
              function + dropping them; for a start module, the lookup of its first
              exported function too (wasm3 runs the start function there). "-" where
              wasm3 cannot: imports other than functions, a refused module (a note says why).
              pywasm3 0.5 never frees a loaded module or its runtime: its release frees
              nothing, and its samples run in forked children (their exit gives the memory
              back), at most as many as leave 1 GiB there (a note gives the count then).
Modules importing globals, memories or tables: these belong to a Store in wasmtime, so
each instance gets fresh ones in both runtimes (a shared imported memory would be
already resident for ours and fresh for wasmtime): wasmtime's store, its dummy imports and
its InstancePre, and our dummy imports and InstancePre, are made outside the timed region;
the timed release frees them (dropping the store; closing ours). A note gives what
freeing them alone costs each runtime.
Targets (issue 14): geomean ours/wasmtime <= 0.5x on demand and <= 0.25x pooled, no module
above 1.0x (wasmtime-py has no pooling allocator: the pooled figure is compared with the
same wasmtime figure). The summary names the modules whose floor is above the target
(floor > 0.5 x wasmtime on demand, pooled floor > 0.25 x wasmtime): no runtime that maps
memory this way reaches the target there.

Synthetic series (generated in memory; no memory; one imported function, as every real
module here has): 10 / 10,000 / 100,000 functions; a funcref table of 10 / 100,000 /
1,000,000 elements filled by one active segment; 0 / 1,000 / 10,000 constant i32 globals. Each row's time relative to its series'
smallest (target: within 1.25x) and, for globals, the marginal cost per global in ns.

--rss N: for every module, resident memory per live untouched instance: USS growth per
instance over N live instances, each (module, runtime) in a fresh process
(scripts/rss_per_instance.py's worker), N lowered where the instances would not fit in
--rss-budget bytes (estimated from a 50-instance probe). Both runtimes get the guard of
--rss-guard (default 32 MiB, wasmtime's default; ours is 2 GiB, and 2,000 of our default
8 GiB reservations would take 16 TiB of address space).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
import time
from typing import NamedTuple

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _dummy_imports import WasmtimeImports, has_store_bound, ours_linker, wasmtime_engine  # noqa: E402
from _strategies import GUARD_32MIB, Floor, Wasm3, batches, interleaved, pool_for  # noqa: E402

TARGET_ONDEMAND, TARGET_POOLED, TARGET_EACH, TARGET_SCALE = 0.5, 0.25, 1.0, 1.25
RUNNERS = ("ours", "ours-pool", "wasmtime")


class Case(NamedTuple):
    key: str
    wasm: bytes
    series: str = ""  # synthetic series name ("" for real modules)
    size: int = 0     # the synthetic series' size parameter


# ---- synthetic modules ---------------------------------------------------------------------

def synthetic_cases(scale=1.0):
    """The size series of issue 14's acceptance (WAT made here, wasmtime.wat2wasm), every
    size times ``scale`` (at least 1, 0 stays 0). Each module imports one function, as
    every real module in the catalogue does."""
    from wasmtime import wat2wasm

    def sizes(*ns):
        return [max(1, round(n * scale)) if n else 0 for n in ns]

    head = '(module (import "env" "f" (func))'
    out = []
    for n in sizes(10, 10_000, 100_000):
        out.append(Case(f"funcs-{n}", wat2wasm(head + " (func)" * n + ")"), "functions", n))
    for n in sizes(10, 100_000, 1_000_000):
        wat = f"{head} (func) (table {n} funcref) (elem (i32.const 0) func" + " 1" * n + "))"
        out.append(Case(f"table-{n}", wat2wasm(wat), "table elements", n))
    for n in sizes(0, 1_000, 10_000):
        wat = head + "".join(f" (global i32 (i32.const {k}))" for k in range(n)) + ")"
        out.append(Case(f"globals-{n}", wat2wasm(wat), "constant globals", n))
    return out


# ---- the measured things -------------------------------------------------------------------

class Ours:
    """Ours; for a module importing globals, memories or tables, each instance gets fresh
    ones (as each wasmtime store must): made and linked outside the timed region, closed
    inside it. ``drop_only`` times closing such imports with no instance."""

    def __init__(self, wasm, pooled, drop_only=False):
        import runtime
        self.allocator = pool_for(wasm) if pooled else None
        self.engine = runtime.Engine(allocator=self.allocator)
        self.host_engine = runtime.Engine()  # where the imported memories and tables come from
        self.module = runtime.Module(self.engine, wasm)
        self.drop_only = drop_only
        self.per_instance = has_store_bound(self.module.imports)
        linker, self.items = ours_linker(self.module, self.host_engine)
        self.pre = linker.instantiate_pre(self.module)

    def _prepare(self):
        linker, items = ours_linker(self.module, self.host_engine)
        return [None if self.drop_only else linker.instantiate_pre(self.module), items]

    @staticmethod
    def _cycle_fresh(ready):
        pre, items = ready
        if pre is not None:
            pre.instantiate().close()
        for item in items:
            item.close()

    def run(self, n, batch):
        if self.per_instance:
            return batches(n, batch, self._cycle_fresh, self._prepare)
        instantiate = self.pre.instantiate
        return batches(n, batch, lambda: instantiate().close())

    def close(self):
        self.module.close()
        for item in self.items:
            item.close()
        if self.allocator is not None:
            self.allocator.close()


class Wasmtime:
    """wasmtime-py, a fresh Store per instance; ``drop_only`` times dropping a store that
    holds only the module's store-bound dummy imports (no instance)."""

    def __init__(self, wasm, engine, module, drop_only=False):
        import wasmtime as wt
        import wasmenv
        self.Store, self.engine, self.module, self.drop_only = wt.Store, engine, module, drop_only
        self.imports = WasmtimeImports(engine, wasmenv.translate(wasm).module.imports())
        self.per_store = bool(self.imports.store_bound)
        self.pre = None if self.per_store else self.imports.new_linker().instantiate_pre(module)

    def _prepare(self):
        store = self.Store(self.engine)
        linker = self.imports.new_linker()
        items = self.imports.define_store_bound(linker, store)
        return [store, None if self.drop_only else linker.instantiate_pre(self.module), items]

    @staticmethod
    def _cycle_fresh(ready):
        if ready[1] is not None:
            ready[1].instantiate(ready[0])
        # the caller drops ``ready``: that frees the store, its instance and its imports

    def run(self, n, batch):
        if self.per_store:
            return batches(n, batch, self._cycle_fresh, self._prepare)
        Store, engine, pre = self.Store, self.engine, self.pre
        return batches(n, batch, lambda: pre.instantiate(Store(engine)))  # the store dies on return

    def close(self):
        pass


def _optional(make, runners, skipped, name, zeros=None):
    """Add the runner ``make()`` as ``name`` once a first cycle ran; else say why not. A
    floor with nothing to map goes to ``zeros`` instead (its figure is 0, not timed)."""
    try:
        runner = make()
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        skipped[name] = f"{type(exc).__name__}: {exc}"
        return
    if getattr(runner, "empty", False):
        runner.close()
        zeros.append(name)
        return
    runners[name] = runner
    try:
        runner.run(1, 1)
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        del runners[name]
        runner.close()
        skipped[name] = f"{type(exc).__name__}: {exc}"


def measure(case, wt_engine, n, rounds, warmup, batch, with_pool=True, full=True, start=False):
    """Median us per instantiate + release for each runner (None: not run, with why);
    ``full``: the C floors and pywasm3 too (``start``: pywasm3 runs the start function)."""
    import wasmtime as wt
    runners, skipped, zeros = {}, {}, []
    try:
        runners["ours"] = ours = Ours(case.wasm, False)
        if full:  # the floors take the layout of ours' module (a default Engine's)
            _optional(lambda: Floor("floor-cow", case.wasm, module=ours.module), runners, skipped, "floor", zeros)
        if with_pool:
            _optional(lambda: Ours(case.wasm, True), runners, skipped, "ours-pool")
            if full:
                _optional(lambda: Floor("floor-pooling", case.wasm, module=ours.module), runners, skipped,
                          "floor-pool", zeros)
        if runners["ours"].per_instance:
            runners["ours-drop"] = Ours(case.wasm, False, drop_only=True)
        module = wt.Module(wt_engine, case.wasm)
        runners["wasmtime"] = Wasmtime(case.wasm, wt_engine, module)
        if runners["wasmtime"].per_store:
            runners["wasmtime-drop"] = Wasmtime(case.wasm, wt_engine, module, drop_only=True)
        if full:
            _optional(lambda: Wasm3(case.wasm, start, module=ours.module), runners, skipped, "pywasm3")
        samples = interleaved(runners, n, rounds, warmup, batch)
    finally:
        for r in runners.values():
            r.close()
    rows = {name: statistics.median(s) / 1e3 for name, s in samples.items()}
    rows.update({name: 0.0 for name in zeros})
    notes = ["no defined memory (tables open on the zero region): nothing to map, floor 0"] if zeros else []
    w3 = runners.get("pywasm3")
    if w3 is not None and w3.capped:
        notes.append(f"pywasm3 leaves {w3.leak_bytes / 2**20:.1f} MiB per instance: {len(samples['pywasm3'])} "
                     f"samples (its forked children's {w3.budget_bytes / 2**30:g} GiB cap)")
    return rows, skipped, notes


def ratios(rows) -> dict:
    """The ratios the report and its targets use, from one module's median rows."""
    ours, pool, theirs = rows.get("ours"), rows.get("ours-pool"), rows.get("wasmtime")
    floor, pool_floor = rows.get("floor"), rows.get("floor-pool")
    return {"ours_over_wt": _ratio(ours, theirs), "pool_over_wt": _ratio(pool, theirs),
            "ours_over_floor": _ratio(ours, floor), "wt_over_floor": _ratio(theirs, floor),
            "floor_over_wt": _ratio(floor, theirs), "pool_floor_over_wt": _ratio(pool_floor, theirs),
            "pool_over_pool_floor": _ratio(pool, pool_floor)}


# ---- the report ----------------------------------------------------------------------------

def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def _verdict(value, target):
    if value is None:
        return "-"
    return f"{value:.2f}x (<= {target:g}x {'ok' if value <= target else 'MISSED'})"


def _below(results, over, target) -> str:
    """The modules whose floor ratio ``over`` exceeds ``target`` (the floor, in words)."""
    keys = [f"{key} ({r[over]:.2f}x)" for key, r in results.items() if r[over] is not None and r[over] > target]
    return ", ".join(keys) or "none"


def real_table(results, facts) -> str:
    width = max([17] + [len(key) + 1 for key in results])
    head = (f"{'module':<{width}}{'functions':>10}{'globals':>8}{'table':>7}  {'imports':<36}{'floor us':>9}"
            f"{'ours us':>9}{'pfloor us':>10}{'pooled us':>10}{'wasmtime us':>12}{'pywasm3 us':>11}"
            f"{'ours/floor':>11}{'wt/floor':>9}{'ours/wt':>8}{'pool/wt':>8}")
    lines = [head, "-" * len(head)]
    for key, r in results.items():
        f, rows = facts[key], r["rows"]
        imports = ", ".join(f"{n} {k}" for k, n in sorted(f["imports"].items())) or "-"
        lines.append(f"{key:<{width}}{f['functions']:>10,}{f['globals']:>8,}{f['table_elements']:>7,}  "
                     f"{imports:<36}" + "".join(f"{_fmt(rows.get(name), '.1f'):>{w}}" for name, w in (
                         ("floor", 9), ("ours", 9), ("floor-pool", 10), ("ours-pool", 10), ("wasmtime", 12),
                         ("pywasm3", 11)))
                     + "".join(f"{_fmt(r[name], '.2f'):>{w}}" for name, w in (
                         ("ours_over_floor", 11), ("wt_over_floor", 9), ("ours_over_wt", 8), ("pool_over_wt", 8))))

    def gm(name):
        return geomean([r[name] for r in results.values()])

    def worst(name):
        return max((r[name] for r in results.values() if r[name]), default=None)

    lines.append("-" * len(head))
    lines.append(f"geomean ours/wasmtime   {_verdict(gm('ours_over_wt'), TARGET_ONDEMAND)}")
    lines.append(f"geomean pooled/wasmtime {_verdict(gm('pool_over_wt'), TARGET_POOLED)}")
    lines.append(f"worst module on demand  {_verdict(worst('ours_over_wt'), TARGET_EACH)}")
    lines.append(f"worst module pooled     {_verdict(worst('pool_over_wt'), TARGET_EACH)}")
    lines.append(f"geomean floor/wasmtime  {_fmt(gm('floor_over_wt'), '.2f')}x on demand, "
                 f"{_fmt(gm('pool_floor_over_wt'), '.2f')}x pooled (the syscalls alone: no runtime mapping memory "
                 f"this way goes below); ours/floor {_fmt(gm('ours_over_floor'), '.2f')}x, "
                 f"wasmtime/floor {_fmt(gm('wt_over_floor'), '.2f')}x, pooled/pooled floor "
                 f"{_fmt(gm('pool_over_pool_floor'), '.2f')}x")
    lines.append(f"on-demand target below the floor (floor > {TARGET_ONDEMAND:g} x wasmtime; floor/wasmtime): "
                 f"{_below(results, 'floor_over_wt', TARGET_ONDEMAND)}")
    lines.append(f"pooled target below the pooled floor (pooled floor > {TARGET_POOLED:g} x wasmtime): "
                 f"{_below(results, 'pool_floor_over_wt', TARGET_POOLED)}")
    why = {}  # reason -> modules
    for key, r in results.items():
        lines += [f"note: {key}: {note}" for note in r["notes"]]
        for name, reason in r["skipped"].items():
            why.setdefault((name, reason), []).append(key)
        drop, ours_drop = r["rows"].get("wasmtime-drop"), r["rows"].get("ours-drop")
        if drop is not None:
            lines.append(f"note: {key}: fresh imported globals/memories/tables per instance in both; "
                         f"freeing them alone (no instance) is {_fmt(ours_drop, '.1f')} us of ours, "
                         f"{drop:.1f} us of wasmtime's")
    for (name, reason), keys in why.items():
        lines.append(f"note: no {name} row for {', '.join(keys)}: {reason}")
    return "\n".join(lines)


def synthetic_table(results) -> str:
    head = (f"{'module':<16}{'ours us':>9}  {'x smallest':>24}{'wasmtime us':>13}{'x smallest':>12}"
            f"{'ours/wt':>9}")
    lines = [head, "-" * len(head)]
    series = {}
    for key, r in results.items():
        series.setdefault(r["series"], []).append((key, r))
    marginal = {}
    for name, members in series.items():
        smallest = members[0][1]["rows"]
        for key, r in members:
            ours, theirs = r["rows"].get("ours"), r["rows"].get("wasmtime")
            rel = _ratio(ours, smallest.get("ours"))
            rel_wt = _ratio(theirs, smallest.get("wasmtime"))
            # (globals: the target is the marginal cost per global, below; the ratio is shown)
            verdict = _verdict(rel, TARGET_SCALE) if name != "constant globals" else _fmt(rel, ".2f") + "x"
            lines.append(f"{key:<16}{_fmt(ours, '.1f'):>9}  {verdict:>24}"
                         f"{_fmt(theirs, '.1f'):>13}{_fmt(rel_wt, '.2f') + 'x':>12}{_fmt(_ratio(ours, theirs), '.2f'):>9}")
        if name == "constant globals":
            (_, small), (_, large) = members[0], members[-1]
            count = large["size"] - small["size"]
            marginal = {side: (large["rows"][side] - small["rows"][side]) * 1e3 / count
                        for side in ("ours", "wasmtime")}
    if marginal:
        ok = "ok" if marginal["ours"] <= marginal["wasmtime"] else "MISSED"
        lines.append(f"marginal cost per constant global (0 -> {large['size']:,}): ours {marginal['ours']:.1f} ns, "
                     f"wasmtime {marginal['wasmtime']:.1f} ns (target: ours <= wasmtime's: {ok})")
    return "\n".join(lines), marginal


def rss_rows(path, key, n, guard, budget, probe=50):
    """USS growth per live untouched instance, ours (on demand and pooled) and wasmtime."""
    import rss_per_instance
    out = {}
    for strategy in ("cow", "pooling", "wasmtime-cow"):
        first = rss_per_instance.run_child(path, strategy, min(n, probe), 0, guard)
        count = n
        if "error" not in first and n > probe:
            per = max(first["uss"], first["rss"], 1)
            count = max(probe, min(n, int(budget // per)))
            r = rss_per_instance.run_child(path, strategy, count, 0, guard)
        else:
            r = first
        out[strategy] = r
    return out


def rss_table(rss) -> str:
    head = (f"{'module':<13}{'N ours':>8}{'ours KiB':>10}{'N pool':>8}{'pooled KiB':>11}{'N wt':>7}"
            f"{'wasmtime KiB':>13}{'ours/wt':>9}{'pool/wt':>9}")
    lines = [head, "-" * len(head)]

    def cell(r):
        return ("error", "-") if "error" in r else (f"{r['n']:,}", f"{r['uss'] / 1024:,.2f}")

    for key, rows in rss.items():
        (n1, k1), (n2, k2), (n3, k3) = (cell(rows[s]) for s in ("cow", "pooling", "wasmtime-cow"))
        theirs = rows["wasmtime-cow"].get("uss")
        ratios = [_fmt(_ratio(rows[s].get("uss"), theirs), ".2f") for s in ("cow", "pooling")]
        lines.append(f"{key:<13}{n1:>8}{k1:>10}{n2:>8}{k2:>11}{n3:>7}{k3:>13}{ratios[0]:>9}{ratios[1]:>9}")
    lines.append("target (issue 14): ours <= wasmtime-py's, module by module (ratio <= 1.00)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", default=[], help="also benchmark this .wasm (repeatable)")
    ap.add_argument("--no-registry", action="store_true", help="leave out scripts/real_modules.py's catalogue")
    ap.add_argument("--no-start", action="store_true", help="leave out the modules with a start function")
    ap.add_argument("--no-synthetic", action="store_true", help="leave out the synthetic size series")
    ap.add_argument("--synthetic-scale", type=float, default=1.0, help="multiply the synthetic sizes (smoke tests)")
    ap.add_argument("--cache", help="real_modules.py's cache directory")
    ap.add_argument("-n", "--iterations", type=int, default=300, help="samples per row")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 samples of 2, 2 rounds")
    ap.add_argument("--no-timing", action="store_true", help="leave out the instantiate timings (with --rss)")
    ap.add_argument("--rss", type=int, nargs="?", const=2000, default=None, metavar="N",
                    help="also measure USS per live instance over N instances (default 2,000)")
    ap.add_argument("--rss-guard", type=int, default=GUARD_32MIB, help="offset guard for --rss (both runtimes)")
    ap.add_argument("--rss-budget", type=int, default=8 << 30, help="resident bytes N instances may take")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.iterations, args.rounds, args.batch, args.warmup = 6, 2, 2, 1
    import real_modules

    paths, facts, left_out = {}, {}, []
    entries = [] if args.no_registry else real_modules.CATALOGUE
    for entry in entries:
        if entry.blocked:
            left_out.append(f"{entry.key} ({entry.blocked})")
            continue
        path = real_modules.fetch(entry, args.cache)
        facts[entry.key] = real_modules.describe(path)
        paths[entry.key] = path
    for name in args.module:
        path = pathlib.Path(name)
        facts[path.stem] = real_modules.describe(path)
        paths[path.stem] = path
    starts = {key for key in paths if facts[key]["start"] is not None}
    for key in sorted(starts) if args.no_start else ():
        left_out.append(f"{key} (start function: --no-start)")
        del paths[key]

    wt_engine = wasmtime_engine(cow=True, cache=True)
    cases = [Case(key, path.read_bytes()) for key, path in paths.items()]
    results, results_start = {}, {}
    started = time.time()
    for case in [] if args.no_timing else cases:
        start = case.key in starts
        rows, skipped, notes = measure(case, wt_engine, args.iterations, args.rounds, args.warmup, args.batch,
                                       start=start)
        (results_start if start else results)[case.key] = {"rows": rows, "skipped": skipped, "notes": notes,
                                                          **ratios(rows)}
        print(f"  measured {case.key}", file=sys.stderr)
    synthetic = {}
    if not args.no_synthetic and not args.no_timing:
        for case in synthetic_cases(args.synthetic_scale):
            rows, _, _ = measure(case, wt_engine, args.iterations, args.rounds, args.warmup, args.batch,
                              with_pool=False, full=False)
            synthetic[case.key] = {"rows": rows, "series": case.series, "size": case.size}
            print(f"  measured {case.key}", file=sys.stderr)

    head = (f"median us over {args.iterations} samples of {args.batch} ({args.rounds} interleaved rounds); "
            "dummy imports alike in every runtime\nfloor / pfloor: the C syscall floor of the module's memories "
            "and tables, on demand / pooled; pywasm3: parse + load (it cannot reuse a parsed module) and no "
            "release (it frees nothing)")
    if results:
        print(f"instantiate + release, modules without a start function: {head}")
        print(real_table(results, facts))
    if results_start:
        print()
        print(f"instantiate + release, modules with a start function (it runs at every instantiation, in every "
              f"runtime): {head}")
        print(real_table(results_start, facts))
    if left_out:
        print(f"left out: {', '.join(left_out)}")
    marginal = {}
    if synthetic:
        print()
        print("synthetic size series (no memory, one imported function; target: functions and tables within "
              "1.25x of the series' smallest, globals by their marginal cost)")
        text, marginal = synthetic_table(synthetic)
        print(text)
    rss = {}
    if args.rss:
        for key, path in paths.items():
            rss[key] = rss_rows(path, key, args.rss, args.rss_guard, args.rss_budget)
            print(f"  rss {key}", file=sys.stderr)
        print()
        print(f"USS growth per live untouched instance (KiB), N = {args.rss:,} or as many as fit in "
              f"{args.rss_budget / 2**30:g} GiB, a fresh process each; offset guard {args.rss_guard:,} bytes in "
              f"both runtimes; wasmtime: one Store")
        print(rss_table(rss))
    print(f"({time.time() - started:.0f} s)", file=sys.stderr)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"iterations": args.iterations, "rounds": args.rounds, "batch": args.batch, "unit": "us",
             "facts": facts, "left_out": left_out, "real": results, "real_start": results_start,
             "synthetic": synthetic,
             "marginal_ns_per_global": marginal, "rss": rss}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
