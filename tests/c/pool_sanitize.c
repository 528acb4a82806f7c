/*
 * Drives c_src/wenv_pool.c directly under AddressSanitizer/UBSan (tests/test_wenv_pool.py
 * builds and runs it): random take/write/grow/put sequences on a real pool, checking
 * after every take that the slot reads exactly its image and zeros, that a slot is never
 * handed out twice, and that the counters come back to zero.
 * Every keep_resident case is run (0, below, at and above an image).
 * Usage: pool_sanitize ITERATIONS SEED; prints "ok <takes>" or exits non-zero.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wenv_instance.h"
#include "wenv_memory.h"
#include "wenv_mman.h"
#include "wenv_pool.h"
#include "sanitize_harness.h"

#define SLOTS 4
#define PAGES 8
#define WPAGE 65536u


/* One pool with keep_resident = keep over fresh address space: returns the number of
 * takes, or -1 after printing what failed. */
static long run_keep(int fd, const char *image, long keep, long iterations)
{
    uint64_t bound = PAGES * WPAGE, guard = WPAGE, stride = bound + guard;
    char *resv = mmap(NULL, guard + SLOTS * stride, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (resv == MAP_FAILED)
        return fail("reserve", 0), -1;
    uint64_t chunk = (uint64_t)(uintptr_t)(resv + guard);
    wenv_pool *pool = wenv_pool_new(SLOTS, SLOTS, &chunk, 1, stride, bound, (uint64_t)keep, SLOTS, WENV_RESET_MADVISE);
    if (pool == NULL)
        return fail("wenv_pool_new", 0), -1;

    /* specs: no image (1 page); image A at 0 (2 pages); image B at 2 pages (3 pages);
     * A and B at 1 page (4 pages). */
    wenv_memory_spec specs[4];
    memset(specs, 0, sizeof specs);
    for (int k = 0; k < 4; k++) {
        specs[k].image_fd = -1;
        specs[k].accessible = (uint64_t)(1 + k) * WPAGE;
    }
    specs[1].image_fd = fd; specs[1].image_len = 8192; specs[1].image_key = 1;
    specs[2].image_fd = fd; specs[2].image_file_offset = 8192; specs[2].image_offset = 2 * WPAGE;
    specs[2].image_len = 8192; specs[2].image_key = 2;
    specs[3].image_fd = fd; specs[3].image_len = 16384; specs[3].image_offset = WPAGE; specs[3].image_key = 3;

    static char expect[4][4 * WPAGE]; /* what a new tenant of each spec must read */
    memset(expect, 0, sizeof expect);
    for (int k = 0; k < 4; k++)
        if (specs[k].image_len)
            memcpy(expect[k] + specs[k].image_offset, image + specs[k].image_file_offset, specs[k].image_len);

    int64_t held[SLOTS];
    uint64_t size_of[SLOTS];
    int live = 0;
    long takes = 0;
    for (long i = 0; i < iterations; i++) {
        unsigned long r = rnd();
        if (r % 3 && live < SLOTS) { /* take: the slot must read exactly its image and zeros */
            int k = (int)(rnd() % 4);
            const wenv_memory_spec *spec = &specs[k];
            int64_t slot = wenv_pool_take(pool, spec, 1);
            if (slot < 0)
                return fail("take refused below the limit", i), -1;
            for (int j = 0; j < live; j++)
                if (held[j] == slot)
                    return fail("slot handed out twice", i), -1;
            const char *base = (const char *)(uintptr_t)wenv_pool_slot_base(pool, (uint32_t)slot);
            if (memcmp(base, expect[k], spec->accessible) != 0)
                return fail("a new tenant sees another tenant's byte", i), -1;
            held[live] = slot;
            size_of[live] = spec->accessible;
            live++;
            takes++;
        } else if (live && r % 2) { /* maybe grow, then dirty every accessible byte */
            int j = (int)(rnd() % live);
            uint64_t grow_to = size_of[j] + (rnd() % 3) * WPAGE;
            if (grow_to <= bound && wenv_pool_grow(pool, (uint32_t)held[j], wenv_pool_slot_tenancy(pool, (uint32_t)held[j]), grow_to) == 0)
                size_of[j] = grow_to;
            memset((char *)(uintptr_t)wenv_pool_slot_base(pool, (uint32_t)held[j]), 0xFE, size_of[j]);
        } else if (live) { /* put, and a second put must be refused */
            int j = (int)(rnd() % live);
            if (wenv_pool_put(pool, (uint32_t)held[j], 1) != 0)
                return fail("put", i), -1;
            if (wenv_pool_put(pool, (uint32_t)held[j], 0) != -1)
                return fail("a second put was accepted", i), -1;
            held[j] = held[live - 1];
            size_of[j] = size_of[live - 1];
            live--;
        }
    }
    while (live)
        if (wenv_pool_put(pool, (uint32_t)held[--live], 1) != 0)
            return fail("final put", iterations), -1;
    /* A descriptor that owns its slot twice (an instance's close owns it again to end the
     * instance with it) holds one reference to the pool: wenv_pool_free below frees the
     * pool (LeakSanitizer reports it otherwise). */
    int64_t owned = wenv_pool_take(pool, &specs[0], 1);
    if (owned < 0)
        return fail("take for a descriptor", 0), -1;
    wenv_memory m;
    memset(&m, 0, sizeof m);
    uint64_t base = wenv_pool_slot_base(pool, (uint32_t)owned);
    wenv_memory_init(&m, base, WPAGE, bound, guard, base, base + stride, WENV_MEM_STATIC, bound / WPAGE);
    wenv_memory_own_pool_slot(&m, pool, (uint32_t)owned, 0);
    wenv_memory_own_pool_slot(&m, pool, (uint32_t)owned, 1);
    if (wenv_memory_close(&m) != 0)
        return fail("close of a descriptor owning its slot", 0), -1;
    uint64_t stats[5];
    wenv_pool_stats(pool, stats);
    if (stats[0] || stats[1] || stats[4] || stats[3] != stats[2])
        return fail("counters did not come back", iterations), -1;
    if (wenv_pool_close(pool) != 1)
        return fail("close of an unused pool", iterations), -1;
    wenv_pool_free(pool);
    munmap(resv, guard + SLOTS * stride);
    return takes;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    rng_state = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    long page = sysconf(_SC_PAGESIZE);

    /* the images' file: [0, 8 KiB) of 'A', [8 KiB, 16 KiB) of 'B' */
    char path[] = "/tmp/wenv-pool-sanitize-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return fail("mkstemp", 0);
    unlink(path);
    static char image[16384];
    memset(image, 'A', 8192);
    memset(image + 8192, 'B', 8192);
    if (write(fd, image, sizeof image) != (ssize_t)sizeof image)
        return fail("write", 0);

    long keeps[] = {0, 10000, (long)WPAGE, 3 * (long)WPAGE + 5};
    long takes = 0;
    for (int k = 0; k < 4; k++) {
        long n = run_keep(fd, image, (keeps[k] + page - 1) / page * page, iterations);
        if (n < 0)
            return 1;
        takes += n;
    }
    close(fd);
    printf("ok %ld\n", takes);
    return 0;
}
