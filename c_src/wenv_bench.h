/*
 * wenv_bench: every benchmark that runs in C, on one clock (CLOCK_MONOTONIC).
 *
 * Accessor and trap floors (scripts/bench_access.py) return [bench] nanoseconds per
 * iteration. Instantiation floors (scripts/bench_instantiate.py, scripts/bench_real.py)
 * run the syscalls one instantiation + release of a strategy needs, with nothing else, samples x batch
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

/* The syscall floors of one module's geometry: its defined memories as our layout's
 * specs (runtime/layout.py: the reservation, pre-guard, initial size and image ours
 * uses) and its defined tables' initial element counts.
 * On demand: per memory, wenv_memory_open (mmap reserve PROT_NONE + mmap the image
 * MAP_PRIVATE|MAP_FIXED + mprotect R/W the rest of the initial size); per table,
 * wenv_table_open as the runtime opens one (no syscall while it fits the zero region: its
 * storage is mapped on its first write); then munmap of each, wenv_table_close. */
int wenv_floor_ondemand(const wenv_memory_spec *memories, long memory_count, const uint64_t *table_elems,
                        long table_count, long samples, long batch, double *out_ns);

/* Pooled, the same module reused: per memory a slot (its initial size + one wasm page,
 * the image mapped) and per table its storage (wenv_table_open), prepared once; each
 * iteration resets every memory with madvise(MADV_DONTNEED) over its initial size +
 * mprotect PROT_NONE of the wasm page above, and every table with wenv_pool_table_reset
 * (nothing for a table never written; else memset up to 64 KiB of elements, else madvise). */
int wenv_floor_pooled(const wenv_memory_spec *memories, long memory_count, const uint64_t *table_elems,
                      long table_count, long samples, long batch, double *out_ns);

/* On-demand + copy, one memory: reserve + mprotect R/W its initial size + memcpy the
 * image bytes (image_len of them, at the spec's image_offset) + munmap. */
int wenv_floor_copy(const wenv_memory_spec *memory, const char *image, long samples, long batch,
                    double *out_ns);

/* Our cycle without Python: wenv_instance_open + wenv_instance_close of spec (the C
 * that Instance(module).close() runs for a one-memory module), timed like the floors. */
int wenv_bench_instance_cycle(const wenv_memory_spec *spec, long samples, long batch, double *out_ns);

/* CDEF-END */
#endif
