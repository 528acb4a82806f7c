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


def bench_floor_cow(reserve_len: int, pre_guard: int, accessible: int, fd: int, file_offset: int,
                    image_offset: int, image_len: int, samples: int, batch: int) -> list:
    """wenv_floor_cow's samples: on-demand memory with a CoW image, in bare syscalls."""
    return _samples("floor-cow", lambda out: lib.wenv_floor_cow(
        reserve_len, pre_guard, accessible, fd, file_offset, image_offset, image_len, samples, batch,
        out), samples)


def bench_floor_copy(reserve_len: int, pre_guard: int, accessible: int, image: bytes, image_offset: int,
                     image_len: int, samples: int, batch: int) -> list:
    """wenv_floor_copy's samples: on-demand memory with its image copied in, in bare syscalls."""
    return _samples("floor-copy", lambda out: lib.wenv_floor_copy(
        reserve_len, pre_guard, accessible, image, image_offset, image_len, samples, batch, out), samples)


def bench_floor_pool(slot_len: int, accessible: int, fd: int, file_offset: int, image_offset: int,
                     image_len: int, samples: int, batch: int) -> list:
    """wenv_floor_pool's samples: one reused pool slot reset per cycle, in bare syscalls."""
    return _samples("floor-pooling", lambda out: lib.wenv_floor_pool(
        slot_len, accessible, fd, file_offset, image_offset, image_len, samples, batch, out), samples)


def bench_instance_cycle(specs, samples: int, batch: int) -> list:
    """wenv_bench_instance_cycle's samples: instance_open + instance_close of ``specs``."""
    return _samples("C cycle", lambda out: lib.wenv_bench_instance_cycle(specs, samples, batch, out),
                    samples)
