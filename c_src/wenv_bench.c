/*
 * wenv_bench.c — accessor, trap and syscall floors (see wenv_bench.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>

#include "wenv_bench.h"
#include "wenv_memory.h"
#include "wenv_mman.h"
#include "wenv_traps.h"

#define WENV_WASM_PAGE 65536u

static double wenv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One on-demand CoW cycle: reserve, map the image, mprotect the rest, unmap. */
static int floor_cow_once(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible, int fd,
                          uint64_t file_offset, uint64_t image_offset, uint64_t image_len)
{
    uint64_t start;
    if (wenv_reserve_memory(reserve_len, pre_guard, accessible, fd, file_offset, image_offset, image_len,
                            &start) != 0)
        return -1;
    return wenv_release(start, reserve_len);
}

/* One on-demand copy cycle: reserve, mprotect, memcpy the image, unmap. */
static int floor_copy_once(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible,
                           const char *image, uint64_t image_offset, uint64_t image_len)
{
    uint64_t start;
    if (wenv_reserve_memory(reserve_len, pre_guard, accessible, -1, 0, 0, 0, &start) != 0)
        return -1;
    memcpy((char *)(uintptr_t)(start + pre_guard + image_offset), image, (size_t)image_len);
    WENV_BARRIER(); /* the copy must happen before the unmap */
    return wenv_release(start, reserve_len);
}

/* Time `samples` samples of `batch` calls of ONCE each (mean ns per call). */
#define WENV_TIMED(ONCE)                                                  \
    for (long s = 0; s < samples; s++) {                                  \
        double t0 = wenv_now_ns();                                        \
        for (long b = 0; b < batch; b++)                                  \
            if ((ONCE) != 0)                                              \
                return -1;                                                \
        out_ns[s] = (wenv_now_ns() - t0) / (double)batch;                 \
    }

static int wenv_batch_ok(long batch)
{
    if (batch < 1) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

int wenv_floor_cow(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible, int fd,
                   uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                   long samples, long batch, double *out_ns)
{
    if (!wenv_batch_ok(batch))
        return -1;
    WENV_TIMED(floor_cow_once(reserve_len, pre_guard, accessible, fd, file_offset, image_offset, image_len));
    return 0;
}

int wenv_floor_copy(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible,
                    const char *image, uint64_t image_offset, uint64_t image_len,
                    long samples, long batch, double *out_ns)
{
    if (!wenv_batch_ok(batch))
        return -1;
    WENV_TIMED(floor_copy_once(reserve_len, pre_guard, accessible, image, image_offset, image_len));
    return 0;
}

static int floor_pool_once(uint64_t base, uint64_t accessible)
{
    if (wenv_decommit(base, accessible, WENV_RESET_MADVISE) != 0)
        return -1;
    return wenv_protect(base + accessible, WENV_WASM_PAGE, 0);
}

static int floor_pool_timed(uint64_t base, uint64_t accessible, long samples, long batch, double *out_ns)
{
    WENV_TIMED(floor_pool_once(base, accessible));
    return 0;
}

int wenv_floor_pool(uint64_t slot_len, uint64_t accessible, int fd, uint64_t file_offset,
                    uint64_t image_offset, uint64_t image_len, long samples, long batch, double *out_ns)
{
    if (!wenv_batch_ok(batch))
        return -1;
    if (accessible + WENV_WASM_PAGE > slot_len) {
        errno = EINVAL;
        return -1;
    }
    uint64_t base;
    if (wenv_reserve_memory(slot_len, 0, accessible, fd, file_offset, image_offset, image_len, &base) != 0)
        return -1;
    int rc = floor_pool_timed(base, accessible, samples, batch, out_ns);
    int err = errno;
    wenv_release(base, slot_len);
    errno = err;
    return rc;
}

static int instance_cycle_once(const wenv_memory_spec *spec)
{
    int64_t handle = wenv_instance_open(spec);
    if (handle < 0)
        return -1;
    return wenv_instance_close(spec, handle) < 0 ? -1 : 0;
}

int wenv_bench_instance_cycle(const wenv_memory_spec *spec, long samples, long batch, double *out_ns)
{
    if (!wenv_batch_ok(batch))
        return -1;
    WENV_TIMED(instance_cycle_once(spec));
    return 0;
}

/* ---- accessors and traps (scripts/bench_access.py) ---- */

/* A Static 4 GiB + 64 KiB reservation with one accessible wasm page: raw accesses. */
static int wenv_bench_memory(wenv_memory *m)
{
    const uint64_t bound = (uint64_t)1 << 32, guard = 65536;
    uint64_t start;
    if (wenv_reserve(bound + guard, &start) != 0)
        return -1;
    if (wenv_protect(start, 65536, 1) != 0) {
        wenv_release(start, bound + guard);
        return -1;
    }
    memset(m, 0, sizeof *m); /* open, nobody in it, no release (wenv_memory.h) */
    wenv_memory_init(m, start, 65536, bound, guard, start, start + bound + guard, WENV_MEM_STATIC);
    return 0;
}

double wenv_bench_trap_roundtrip(long iterations)
{
    wenv_memory m;
    if (iterations <= 0 || wenv_trap_handler_install() != 0 || wenv_bench_memory(&m) != 0)
        return -1.0;
    long caught = 0;
    double t0 = wenv_now_ns();
    for (long i = 0; i < iterations; i++) {
        (void)wenv_load_i32(&m, 1u << 20, 0);
        caught += wenv_last_status() == WENV_OOB_GUARD;
    }
    double t1 = wenv_now_ns();
    wenv_release(m.resv_start, m.resv_end - m.resv_start);
    return caught == iterations ? (t1 - t0) / (double)iterations : -1.0;
}

double wenv_bench_jmp_roundtrip(long iterations, int savemask)
{
    if (iterations <= 0)
        return -1.0;
    static sigjmp_buf jb;
    volatile long i = 0;
    double t0 = wenv_now_ns();
    for (i = 0; i < iterations; i++) {
        if (sigsetjmp(jb, savemask) == 0) {
            WENV_BARRIER();
            siglongjmp(jb, 1);
        }
    }
    double t1 = wenv_now_ns();
    return (t1 - t0) / (double)iterations;
}

double wenv_bench_load_i32(long iterations)
{
    wenv_memory m;
    if (iterations <= 0 || wenv_trap_handler_install() != 0 || wenv_bench_memory(&m) != 0)
        return -1.0;
    int64_t sum = 0;
    double t0 = wenv_now_ns();
    for (long i = 0; i < iterations; i++)
        sum += wenv_load_i32(&m, (uint64_t)(i & 0xfff) * 4, 0);
    double t1 = wenv_now_ns();
    wenv_release(m.resv_start, m.resv_end - m.resv_start);
    return sum == 0 ? (t1 - t0) / (double)iterations : -1.0;
}
