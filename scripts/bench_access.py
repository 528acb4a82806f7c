#!/usr/bin/env python3
"""Cost of wasm memory accessors and of guard-page traps, as a table of medians.

    .venv/bin/python scripts/bench_access.py [--repeat 15] [--number 20000]

Rows (per call, median over --repeat runs of --number calls):
  Memory accessors from Python (guard mode = Static 4 GiB + 2 GiB guard, no bounds
  check; check mode = memory64, explicit bounds check), a trapping access round trip
  (C fault -> handler -> siglongjmp -> Trap raised and caught in Python), next to plain
  Python reads of the same bytes (memoryview slice, ctypes), and the C floors measured
  in C: one accessor call, a fault -> siglongjmp round trip, and bare
  sigsetjmp/siglongjmp (savemask 0 and 1).
Targets: < 0.5 us per accessor call, < 10 us per trap.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import timeit
from types import SimpleNamespace

# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from runtime import _ffi  # noqa: E402
from runtime.allocator import OnDemandAllocator  # noqa: E402
from runtime.memory import Memory  # noqa: E402
from runtime.traps import Trap  # noqa: E402
from wasmenv import Tunables  # noqa: E402

ADDR = 4096


def median_ns(fn, number, repeat):
    timeit.timeit(fn, number=number)  # warm-up, untimed
    runs = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e9


def median_c(fn, repeat):
    return statistics.median(fn() for _ in range(repeat))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--number", type=int, default=20000)
    args = ap.parse_args(argv)
    n, r = args.number, args.repeat
    n_trap = max(n // 10, 100)

    eng = SimpleNamespace(tunables=Tunables(), allocator=OnDemandAllocator())
    guard_mem = Memory.new(eng, 1)
    check_mem = Memory.new(eng, 1, memory64=True)
    assert guard_mem._access_mode(0, 4) == "guard" and check_mem._access_mode(0, 4) == "check"
    guard_mem.store_i32(ADDR, -123456)
    oob = guard_mem.byte_len + 16

    view = memoryview((ctypes.c_char * guard_mem.byte_len).from_address(guard_mem.base_address)).cast("B")
    cint = ctypes.c_int32.from_address(guard_mem.base_address + ADDR)
    assert int.from_bytes(view[ADDR:ADDR + 4], "little", signed=True) == cint.value == -123456

    def trap_guard():
        try:
            guard_mem.load_i32(oob)
        except Trap:
            pass

    def trap_check():
        try:
            check_mem.load_i32(oob)
        except Trap:
            pass

    g_load, c_load, g_store = guard_mem.load_i32, check_mem.load_i32, guard_mem.store_i32
    rows = [
        ("accessor load_i32, guard mode (no bounds check)", median_ns(lambda: g_load(ADDR), n, r), 500),
        ("accessor load_i32, check mode (memory64)", median_ns(lambda: c_load(ADDR), n, r), 500),
        ("accessor store_i32, guard mode", median_ns(lambda: g_store(ADDR, 7), n, r), 500),
        ("accessor load_f64, guard mode", median_ns(lambda: guard_mem.load_f64(ADDR), n, r), 500),
        ("trap round trip, guard page fault (raise+catch)", median_ns(trap_guard, n_trap, r), 10_000),
        ("trap round trip, bounds check (raise+catch)", median_ns(trap_check, n_trap, r), 10_000),
        ("memoryview slice read view[a:a+4]", median_ns(lambda: view[ADDR:ADDR + 4], n, r), None),
        ("memoryview slice + int.from_bytes", median_ns(
            lambda: int.from_bytes(view[ADDR:ADDR + 4], "little", signed=True), n, r), None),
        ("ctypes c_int32.from_address(...).value", median_ns(
            lambda: ctypes.c_int32.from_address(guard_mem.base_address + ADDR).value, n, r), None),
        ("ctypes read of a prebuilt c_int32 (.value)", median_ns(lambda: cint.value, n, r), None),
        ("C: one accessor call (measured in C)", median_c(lambda: _ffi.bench_load_i32(n * 10), r), None),
        ("C: fault -> handler -> siglongjmp (in C)", median_c(lambda: _ffi.bench_trap_roundtrip(n_trap), r), None),
        ("C: sigsetjmp/siglongjmp, savemask=0", median_c(lambda: _ffi.bench_jmp_roundtrip(n * 10, 0), r), None),
        ("C: sigsetjmp/siglongjmp, savemask=1", median_c(lambda: _ffi.bench_jmp_roundtrip(n, 1), r), None),
    ]
    guard_mem.close()
    check_mem.close()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {sys.platform}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load avg {load:.2f}; medians of {r} runs")
    width = max(len(name) for name, _, _ in rows)
    print(f"{'what':<{width}}  {'per call':>10}  {'target':>9}  ok")
    print("-" * (width + 28))
    failed = False
    for name, ns, target in rows:
        verdict = ""
        if target is not None:
            verdict = "yes" if ns < target else "NO"
            failed |= ns >= target
        tgt = f"< {target / 1000:g} us" if target else ""
        print(f"{name:<{width}}  {ns / 1000:>7.3f} us  {tgt:>9}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
