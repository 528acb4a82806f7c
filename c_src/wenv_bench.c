/*
 * wenv_bench.c — syscall floors for scripts/bench_instantiate.py (see wenv_bench.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wenv_mman.h"
#include "wenv_bench.h"

#define WENV_WASM_PAGE 65536u

static double wenv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static char *wenv_bench_reserve(uint64_t len)
{
    void *p = mmap(NULL, (size_t)len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : (char *)p;
}

/* mprotect R/W [base, base + accessible) except [image_offset, image_offset + image_len). */
static int wenv_protect_rest(char *base, uint64_t accessible, uint64_t image_offset, uint64_t image_len)
{
    if (image_len == 0)
        return accessible ? mprotect(base, (size_t)accessible, PROT_READ | PROT_WRITE) : 0;
    if (image_offset > 0 && mprotect(base, (size_t)image_offset, PROT_READ | PROT_WRITE) != 0)
        return -1;
    uint64_t end = image_offset + image_len;
    if (end < accessible && mprotect(base + end, (size_t)(accessible - end), PROT_READ | PROT_WRITE) != 0)
        return -1;
    return 0;
}

/* One on-demand CoW cycle: reserve, map the image, mprotect the rest, unmap. */
static int floor_cow_once(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible, int fd,
                          uint64_t file_offset, uint64_t image_offset, uint64_t image_len)
{
    char *start = wenv_bench_reserve(reserve_len);
    if (start == NULL)
        return -1;
    char *base = start + pre_guard;
    if ((image_len && mmap(base + image_offset, (size_t)image_len, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_FIXED, fd, (off_t)file_offset) == MAP_FAILED)
        || wenv_protect_rest(base, accessible, image_offset, image_len) != 0) {
        int err = errno;
        munmap(start, (size_t)reserve_len);
        errno = err;
        return -1;
    }
    return munmap(start, (size_t)reserve_len);
}

/* One on-demand copy cycle: reserve, mprotect, memcpy the image, unmap. */
static int floor_copy_once(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible,
                           const char *image, uint64_t image_offset, uint64_t image_len)
{
    char *start = wenv_bench_reserve(reserve_len);
    if (start == NULL)
        return -1;
    char *base = start + pre_guard;
    if (accessible && mprotect(base, (size_t)accessible, PROT_READ | PROT_WRITE) != 0) {
        int err = errno;
        munmap(start, (size_t)reserve_len);
        errno = err;
        return -1;
    }
    memcpy(base + image_offset, image, (size_t)image_len);
    __asm__ __volatile__("" ::: "memory"); /* the copy must happen before the unmap */
    return munmap(start, (size_t)reserve_len);
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

static int floor_pool_once(char *base, uint64_t accessible)
{
    if (accessible && madvise(base, (size_t)accessible, MADV_DONTNEED) != 0)
        return -1;
    return mprotect(base + accessible, WENV_WASM_PAGE, PROT_NONE);
}

static int floor_pool_timed(char *base, uint64_t accessible, long samples, long batch, double *out_ns)
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
    char *base = wenv_bench_reserve(slot_len);
    if (base == NULL)
        return -1;
    int rc = -1;
    if (accessible && mprotect(base, (size_t)accessible, PROT_READ | PROT_WRITE) != 0)
        goto out;
    if (image_len && mmap(base + image_offset, (size_t)image_len, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_FIXED, fd, (off_t)file_offset) == MAP_FAILED)
        goto out;
    rc = floor_pool_timed(base, accessible, samples, batch, out_ns);
out:;
    int err = errno;
    munmap(base, (size_t)slot_len);
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
