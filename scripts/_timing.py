"""The one timing loop of the benchmark scripts that time a call directly."""
from __future__ import annotations

import statistics
import time


def median_seconds(fn, runs: int, *args, warmup: bool = False, clock=time.perf_counter) -> float:
    """Median time of ``runs`` calls of ``fn(*args)``; ``warmup``: one untimed call first.

    ``clock``: wall time by default; ``time.process_time`` counts this process's CPU time
    only (the time it waits for a core on a loaded machine left out)."""
    if warmup:
        fn(*args)
    times = []
    for _ in range(runs):
        t0 = clock()
        fn(*args)
        times.append(clock() - t0)
    return statistics.median(times)


def interleaved_median_seconds(fns: dict, runs: int) -> dict:
    """{name: median wall time of one ``fn()``} over ``runs`` rounds, each round calling every
    fn once in turn (drift in the machine's load hits all of them alike)."""
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
