/*
 * wenv_bench: every benchmark that runs in C, on one clock (CLOCK_MONOTONIC).
 *
 * Accessor and trap floors (scripts/bench_access.py) return [bench] nanoseconds per
 * iteration. Instantiation floors (scripts/bench_instantiate.py) run the syscalls one
 * instantiation + release of a strategy needs, with nothing else, samples x batch
 * times, and write the mean nanoseconds per iteration of each batch to
 * out_ns[0..samples); they return [errno] (the mappings made so far are released).
 */
#ifndef WENV_BENCH_H
#define WENV_BENCH_H
#include "wenv.h"
#include "wenv_instance.h"
/* CDEF-BEGIN */

double wenv_bench_trap_roundtrip(long iterations);     /* guard fault -> handler -> siglongjmp -> status */
double wenv_bench_jmp_roundtrip(long iterations, int savemask);  /* sigsetjmp + siglongjmp, no signal */
double wenv_bench_load_i32(long iterations);           /* one non-trapping raw accessor call */

/* On-demand + CoW image: mmap reserve PROT_NONE (reserve_len) + mmap the image
 * MAP_PRIVATE|MAP_FIXED from fd at base + image_offset + mprotect R/W the rest of
 * [base, base + accessible) + munmap. base = start + pre_guard. */
int wenv_floor_cow(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible, int fd,
                   uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                   long samples, long batch, double *out_ns);

/* On-demand + copy: reserve + mprotect R/W [base, base + accessible) + memcpy the image
 * bytes to base + image_offset + munmap. */
int wenv_floor_copy(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible,
                    const char *image, uint64_t image_offset, uint64_t image_len,
                    long samples, long batch, double *out_ns);

/* Pooling, same module reused: one slot prepared once (accessible R/W, image mapped);
 * each iteration resets it with madvise(MADV_DONTNEED) over [base, base + accessible)
 * and re-protects the wasm page above it (mprotect PROT_NONE). */
int wenv_floor_pool(uint64_t slot_len, uint64_t accessible, int fd, uint64_t file_offset,
                    uint64_t image_offset, uint64_t image_len, long samples, long batch, double *out_ns);

/* Our cycle without Python: wenv_instance_open + wenv_instance_close of spec (the C
 * that Instance(module).close() runs for a one-memory module), timed like the floors. */
int wenv_bench_instance_cycle(const wenv_memory_spec *spec, long samples, long batch, double *out_ns);

/* CDEF-END */
#endif
