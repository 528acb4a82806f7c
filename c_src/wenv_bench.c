/*
 * wenv_bench.c — syscall floors for scripts/bench_instantiate.py (see wenv_bench.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wenv_bench.h"

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

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

int wenv_floor_cow(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible, int fd,
                   uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                   long iterations, double *out_ns)
{
    for (long i = 0; i < iterations; i++) {
        double t0 = wenv_now_ns();
        char *start = wenv_bench_reserve(reserve_len);
        if (start == NULL)
            return -1;
        char *base = start + pre_guard;
        if (image_len && mmap(base + image_offset, (size_t)image_len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_FIXED, fd, (off_t)file_offset) == MAP_FAILED) {
            int err = errno;
            munmap(start, (size_t)reserve_len);
            errno = err;
            return -1;
        }
        if (wenv_protect_rest(base, accessible, image_offset, image_len) != 0) {
            int err = errno;
            munmap(start, (size_t)reserve_len);
            errno = err;
            return -1;
        }
        if (munmap(start, (size_t)reserve_len) != 0)
            return -1;
        out_ns[i] = wenv_now_ns() - t0;
    }
    return 0;
}

int wenv_floor_copy(uint64_t reserve_len, uint64_t pre_guard, uint64_t accessible,
                    const char *image, uint64_t image_offset, uint64_t image_len,
                    long iterations, double *out_ns)
{
    for (long i = 0; i < iterations; i++) {
        double t0 = wenv_now_ns();
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
        if (munmap(start, (size_t)reserve_len) != 0)
            return -1;
        out_ns[i] = wenv_now_ns() - t0;
    }
    return 0;
}

int wenv_floor_pool(uint64_t slot_len, uint64_t accessible, int fd, uint64_t file_offset,
                    uint64_t image_offset, uint64_t image_len, long iterations, double *out_ns)
{
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
    for (long i = 0; i < iterations; i++) {
        double t0 = wenv_now_ns();
        if (accessible && madvise(base, (size_t)accessible, MADV_DONTNEED) != 0)
            goto out;
        if (mprotect(base + accessible, WENV_WASM_PAGE, PROT_NONE) != 0)
            goto out;
        out_ns[i] = wenv_now_ns() - t0;
    }
    rc = 0;
out:;
    int err = errno;
    munmap(base, (size_t)slot_len);
    errno = err;
    return rc;
}

int wenv_bench_pool_cycle(const wenv_memory_spec *spec, long iterations, double *out_ns)
{
    for (long i = 0; i < iterations; i++) {
        double t0 = wenv_now_ns();
        int64_t slot = wenv_instance_open(spec);
        if (slot < 0)
            return -1;
        wenv_instance_close(spec, slot);
        out_ns[i] = wenv_now_ns() - t0;
    }
    return 0;
}
