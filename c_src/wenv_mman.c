/*
 * wenv_mman.c — the syscall wrappers (see wenv_mman.h). Platform differences live here
 * and nowhere else: macOS spells MAP_ANONYMOUS MAP_ANON, has no MAP_NORESERVE, and its
 * MADV_DONTNEED does not zero (so its default reset maps fresh pages instead).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wenv_mman.h"

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

#define WENV_PROT(writable) ((writable) ? PROT_READ | PROT_WRITE : PROT_NONE)

long wenv_page_size(void) { return sysconf(_SC_PAGESIZE); }

int wenv_reset_default(void)
{
#ifdef __APPLE__
    return WENV_RESET_REMAP;   /* MADV_DONTNEED only marks the pages reusable there */
#else
    return WENV_RESET_MADVISE;
#endif
}

/* A non-empty range that a size_t and a pointer can hold; else EINVAL. */
static int wenv_range_ok(uint64_t addr, uint64_t byte_len)
{
    if (byte_len == 0 || byte_len > (uint64_t)SIZE_MAX || addr > UINTPTR_MAX - byte_len) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

/* 1 (errno EIO) when `bit` is injected. */
static int wenv_injected(uint32_t fail, uint32_t bit)
{
    if (WENV_UNLIKELY(fail & bit)) {
        errno = EIO;
        return 1;
    }
    return 0;
}

static void *wenv_ptr(uint64_t addr) { return (void *)(uintptr_t)addr; }

/* What a reservation of byte_len bytes maps: at least one page, so that a memory with
 * nothing to reserve still has an address of its own (and nothing else there). */
static uint64_t wenv_span(uint64_t byte_len) { return byte_len ? byte_len : (uint64_t)wenv_page_size(); }

static int wenv_map_new(uint64_t byte_len, int prot, uint64_t *out_addr)
{
    byte_len = wenv_span(byte_len);
    if (!wenv_range_ok(0, byte_len))
        return -1;
    void *p = mmap(NULL, (size_t)byte_len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    *out_addr = (uint64_t)(uintptr_t)p;
    return 0;
}

int wenv_reserve(uint64_t byte_len, uint64_t *out_addr)
{
    return wenv_map_new(byte_len, PROT_NONE, out_addr);
}

int wenv_map_zeros(uint64_t byte_len, uint64_t *out_addr)
{
    return wenv_map_new(byte_len, PROT_READ | PROT_WRITE, out_addr);
}

int wenv_map_read_zeros(uint64_t byte_len, uint64_t *out_addr)
{
    return wenv_map_new(byte_len, PROT_READ, out_addr);
}

int wenv_release(uint64_t addr, uint64_t byte_len)
{
    byte_len = wenv_span(byte_len);
    if (!wenv_range_ok(addr, byte_len))
        return -1;
    return munmap(wenv_ptr(addr), (size_t)byte_len);
}

int wenv_mm_protect(uint64_t addr, uint64_t byte_len, int writable, uint32_t fail)
{
    if (wenv_injected(fail, WENV_FAIL_PROTECT) || !wenv_range_ok(addr, byte_len))
        return -1;
    return mprotect(wenv_ptr(addr), (size_t)byte_len, WENV_PROT(writable));
}

int wenv_mm_map_anon(uint64_t addr, uint64_t byte_len, int writable, uint32_t fail)
{
    if (wenv_injected(fail, WENV_FAIL_MAP_ANON) || !wenv_range_ok(addr, byte_len))
        return -1;
    void *p = mmap(wenv_ptr(addr), (size_t)byte_len, WENV_PROT(writable),
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -1 : 0;
}

int wenv_mm_map_file(uint64_t addr, uint64_t byte_len, int fd, uint64_t file_offset, uint32_t fail)
{
    if (wenv_injected(fail, WENV_FAIL_MAP_FILE) || !wenv_range_ok(addr, byte_len))
        return -1;
    void *p = mmap(wenv_ptr(addr), (size_t)byte_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
                   (off_t)file_offset);
    return p == MAP_FAILED ? -1 : 0;
}

int wenv_mm_decommit(uint64_t addr, uint64_t byte_len, int how, uint32_t fail)
{
    if (byte_len == 0)
        return 0;
    if (wenv_injected(fail, WENV_FAIL_DECOMMIT))
        return -1;
    if (how == WENV_RESET_REMAP)
        return wenv_mm_map_anon(addr, byte_len, 1, 0);
    if (how != WENV_RESET_MADVISE) {
        errno = EINVAL;
        return -1;
    }
    if (!wenv_range_ok(addr, byte_len))
        return -1;
    return madvise(wenv_ptr(addr), (size_t)byte_len, MADV_DONTNEED);
}

int wenv_protect(uint64_t addr, uint64_t byte_len, int writable) { return wenv_mm_protect(addr, byte_len, writable, 0); }

int wenv_map_fd_fixed(uint64_t addr, uint64_t byte_len, int fd, uint64_t file_offset)
{
    return wenv_mm_map_file(addr, byte_len, fd, file_offset, 0);
}

int wenv_map_anon_fixed(uint64_t addr, uint64_t byte_len, int writable) { return wenv_mm_map_anon(addr, byte_len, writable, 0); }

int wenv_decommit(uint64_t addr, uint64_t byte_len, int how) { return wenv_mm_decommit(addr, byte_len, how, 0); }

int wenv_prefault(uint64_t addr, uint64_t byte_len)
{
#ifdef MADV_POPULATE_WRITE
    uint64_t page = (uint64_t)wenv_page_size(), lo = addr / page * page, hi;
    if (byte_len == 0)
        return 0;
    if (__builtin_add_overflow(addr, byte_len, &hi) || !wenv_range_ok(lo, hi - lo))
        return -1;
    return madvise(wenv_ptr(lo), (size_t)(hi - lo), MADV_POPULATE_WRITE);
#else
    (void)addr;
    (void)byte_len;
    errno = ENOSYS;  /* (macOS; Linux before 5.14 gives EINVAL) */
    return -1;
#endif
}

int wenv_reserve_memory(uint64_t byte_len, uint64_t pre_guard, uint64_t accessible, int fd,
                        uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                        uint64_t *out_addr)
{
    /* One call for an on-demand memory: reserve PROT_NONE, map the image (its mmap makes
     * its own range R/W), mprotect the rest of the accessible bytes. All or nothing. */
    if (!wenv_range_ok(0, wenv_span(byte_len)) || pre_guard > byte_len || accessible > byte_len - pre_guard
        || image_offset > accessible || image_len > accessible - image_offset) {
        errno = EINVAL;
        return -1;
    }
    uint64_t start;
    if (wenv_reserve(byte_len, &start) != 0)
        return -1;
    uint64_t base = start + pre_guard, lo = 0, hi = 0;
    if (fd >= 0 && image_len) {
        lo = image_offset;
        hi = image_offset + image_len;
        if (wenv_mm_map_file(base + lo, image_len, fd, file_offset, 0) != 0)
            goto fail;
    }
    if (lo > 0 && wenv_mm_protect(base, lo, 1, 0) != 0)
        goto fail;
    if (accessible > hi && wenv_mm_protect(base + hi, accessible - hi, 1, 0) != 0)
        goto fail;
    *out_addr = start;
    return 0;
fail:
    {
        int err = errno;
        wenv_release(start, byte_len);
        errno = err;
        return -1;
    }
}
