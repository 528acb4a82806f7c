"""The one timing loop of the benchmark scripts that time a call directly."""
from __future__ import annotations

import statistics
import time


def median_seconds(fn, runs: int, *args, warmup: bool = False) -> float:
    """Median wall time of ``runs`` calls of ``fn(*args)``; ``warmup``: one untimed call first."""
    if warmup:
        fn(*args)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
