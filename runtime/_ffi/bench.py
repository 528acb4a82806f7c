"""Benchmarks that run in C, on one clock (c_src/wenv_bench.h)."""
from __future__ import annotations

import os

from .wenv import ffi, lib

bench_trap_roundtrip = lib.wenv_bench_trap_roundtrip   # (iterations) -> ns per trap in C
bench_jmp_roundtrip = lib.wenv_bench_jmp_roundtrip     # (iterations, savemask) -> ns
bench_load_i32 = lib.wenv_bench_load_i32               # (iterations) -> ns per raw C call


def _samples(what: str, run, samples: int) -> list:
    """Ns per cycle of ``samples`` batches timed by ``run(out_ns)`` (a wenv_bench call).

    Raises:
        OSError: the C benchmark failed (its errno).
    """
    out = ffi.new("double[]", samples)
    if run(out) != 0:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return list(out)


def floor_ondemand(specs, memory_count: int, table_elems, n: int, batch: int) -> list:
    """On demand: ``specs`` (a layout's wenv_memory_spec array, its first ``memory_count``)
    and tables of ``table_elems`` elements each mapped and unmapped, ``n`` samples.

    Raises:
        OSError: a mapping failed (with its errno; nothing stays mapped).
    """
    elems = ffi.new("uint64_t[]", list(table_elems) or [0])
    return _samples("floor on demand", lambda out: lib.wenv_floor_ondemand(
        specs, memory_count, elems, len(table_elems), n, batch, out), n)


def floor_pooled(specs, memory_count: int, table_elems, n: int, batch: int) -> list:
    """Pooled: the reset of the same memories' slots and tables, ``n`` samples.

    Raises:
        OSError: a mapping or a reset failed (with its errno; nothing stays mapped).
    """
    elems = ffi.new("uint64_t[]", list(table_elems) or [0])
    return _samples("floor pooled", lambda out: lib.wenv_floor_pooled(
        specs, memory_count, elems, len(table_elems), n, batch, out), n)


def floor_copy(spec, image: bytes, n: int, batch: int) -> list:
    """On demand with the image copied: one memory (``spec``) and its image bytes, ``n`` samples.

    Raises:
        OSError: a mapping failed (with its errno; nothing stays mapped).
    """
    return _samples("floor copy", lambda out: lib.wenv_floor_copy(spec, image, n, batch, out), n)


def bench_instance_cycle(specs, samples: int, batch: int) -> list:
    """wenv_bench_instance_cycle's samples: instance_open + instance_close of ``specs``."""
    return _samples("C cycle", lambda out: lib.wenv_bench_instance_cycle(specs, samples, batch, out),
                    samples)
