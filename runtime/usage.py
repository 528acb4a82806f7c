"""Resident-memory accounting: per process (psutil) and per instance (its address ranges).

Per-instance figures come from the kernel's per-mapping accounting (``/proc/self/smaps``
on Linux) restricted to the instance's reservations, read through psutil's
``memory_maps(grouped=False)``, which exposes each mapping's address range with its Rss,
Pss, Private_Dirty and Shared_Clean. One read serves any number of instances.
"""
from __future__ import annotations

import bisect
from typing import Iterable, List, NamedTuple, Sequence, Tuple

import psutil

Range = Tuple[int, int]


class ProcessUsage(NamedTuple):
    """Whole-process figures in bytes (psutil's memory_full_info)."""

    rss: int
    uss: int
    pss: int


class RangeUsage(NamedTuple):
    """Resident memory of the mappings inside some address ranges, in bytes.

    ``anonymous`` is the true copy-on-write cost: pages this process wrote (or zero-filled
    pages it touched). Image pages read through a memfd mapping are page-cache pages and
    count as "dirty" in smaps (shmem pages always do) without being copies; read
    ``anonymous`` for "how much did this instance copy"."""

    rss: int = 0
    pss: int = 0
    private_dirty: int = 0
    shared_clean: int = 0
    anonymous: int = 0
    mappings: int = 0

    def __add__(self, other):
        return RangeUsage(*(a + b for a, b in zip(self, other)))


def process_usage() -> ProcessUsage:
    info = psutil.Process().memory_full_info()
    return ProcessUsage(info.rss, info.uss, getattr(info, "pss", info.uss))


def _read_maps():
    """(start, end, rss, pss, private_dirty, shared_clean, anonymous) per mapping, by start."""
    rows = []
    for m in psutil.Process().memory_maps(grouped=False):
        lo, hi = m.addr.split("-")
        rows.append((int(lo, 16), int(hi, 16), m.rss, getattr(m, "pss", m.rss),
                     getattr(m, "private_dirty", 0), getattr(m, "shared_clean", 0),
                     getattr(m, "anonymous", 0)))
    rows.sort()
    return rows


def usage_of_ranges(groups: Sequence[Iterable[Range]]) -> List[RangeUsage]:
    """One RangeUsage per group of ``(start, end)`` ranges, from a single read of the maps.

    A mapping counts toward a group when it lies inside one of the group's ranges (the
    runtime's reservations are whole mappings, split only by its own mprotect/mmap calls).
    """
    rows = _read_maps()
    starts = [r[0] for r in rows]
    out = []
    for group in groups:
        total = RangeUsage()
        for start, end in group:
            i = bisect.bisect_left(starts, start)
            while i < len(rows) and rows[i][1] <= end:
                _, _, rss, pss, pd, sc, anon = rows[i]
                total = total + RangeUsage(rss, pss, pd, sc, anon, 1)
                i += 1
        out.append(total)
    return out


def instance_ranges(instance) -> List[Range]:
    """Address ranges (guards included) of the memories an instance defined."""
    return instance.reservation_ranges()


def instance_usage(instance) -> RangeUsage:
    """Resident memory of one instance's own memories."""
    return usage_of_ranges([instance_ranges(instance)])[0]


def instances_usage(instances) -> List[RangeUsage]:
    """RangeUsage per instance, from one read of the process's mappings."""
    return usage_of_ranges([instance_ranges(i) for i in instances])
