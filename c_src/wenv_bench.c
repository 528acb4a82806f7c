/*
 * wenv_bench.c — accessor, trap and syscall floors (see wenv_bench.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wenv_bench.h"
#include "wenv_memory.h"
#include "wenv_mman.h"
#include "wenv_pool.h"
#include "wenv_table.h"
#include "wenv_tables.h"
#include "wenv_traps.h"


static double wenv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
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

/* ---- a module's geometry (wenv_floor_ondemand, wenv_floor_pooled) ---- */

typedef struct floor_module {
    const wenv_memory_spec *memories;
    long memory_count;
    const uint64_t *table_elems;
    long table_count;
    uint64_t *addr;         /* [memory_count]: the reservations (or pool slots) made */
    wenv_table *tables;     /* [table_count]: the tables opened */
} floor_module;

/* [errno] Check the geometry and allocate the bookkeeping (the caller frees it). */
static int floor_module_init(floor_module *m, const wenv_memory_spec *memories, long memory_count,
                             const uint64_t *table_elems, long table_count, long batch)
{
    if (!wenv_batch_ok(batch))
        return -1;
    if (memory_count < 0 || table_count < 0) {
        errno = EINVAL;
        return -1;
    }
    for (long j = 0; j < table_count; j++)
        if (table_elems[j] > ((uint64_t)1 << 48)) {  /* more than any mapping can hold */
            errno = ENOMEM;
            return -1;
        }
    m->memories = memories;
    m->memory_count = memory_count;
    m->table_elems = table_elems;
    m->table_count = table_count;
    m->addr = calloc((size_t)memory_count + 1, sizeof *m->addr);
    m->tables = calloc((size_t)table_count + 1, sizeof *m->tables);
    if (m->addr == NULL || m->tables == NULL) {
        free(m->addr);
        free(m->tables);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static void floor_module_free(floor_module *m)
{
    int err = errno;
    free(m->addr);
    free(m->tables);
    errno = err;
}

/* [errno] munmap the first `memories` memories' reservations and close the first `tables`
 * tables (wenv_table_close: the table's rule, whatever storage it has). */
static int floor_unmap(floor_module *m, long memories, long tables)
{
    int rc = 0;
    for (long i = 0; i < memories; i++)
        rc |= wenv_release(m->addr[i], m->memories[i].reserve_bytes);
    for (long j = 0; j < tables; j++)
        wenv_table_close(&m->tables[j]);
    return rc ? -1 : 0;
}

/* Each memory reserved with its image, each table opened as the runtime opens one
 * (wenv_table_open: on the zero region, no syscall, while it fits), then all released. */
static int floor_ondemand_once(floor_module *m)
{
    long i = 0, j = 0;
    for (; i < m->memory_count; i++)
        if ((m->addr[i] = wenv_memory_open(&m->memories[i])) == 0)
            goto fail;
    for (; j < m->table_count; j++)
        if (wenv_table_open(&m->tables[j], m->table_elems[j], m->table_elems[j], 0) != 0)
            goto fail;
    return floor_unmap(m, i, j);
fail:
    {
        int err = errno;
        floor_unmap(m, i, j);
        errno = err;
        return -1;
    }
}

static int floor_ondemand_timed(floor_module *m, long samples, long batch, double *out_ns)
{
    WENV_TIMED(floor_ondemand_once(m));
    return 0;
}

int wenv_floor_ondemand(const wenv_memory_spec *memories, long memory_count, const uint64_t *table_elems,
                        long table_count, long samples, long batch, double *out_ns)
{
    floor_module m;
    if (floor_module_init(&m, memories, memory_count, table_elems, table_count, batch) != 0)
        return -1;
    int rc = floor_ondemand_timed(&m, samples, batch, out_ns);
    floor_module_free(&m);
    return rc;
}

/* A pool slot of a memory: its initial size and the wasm page above it. */
static uint64_t floor_slot_bytes(const wenv_memory_spec *spec) { return spec->accessible + WENV_WASM_PAGE; }

/* [errno] Release the first `memories` slots and `tables` tables of the pooled floor. */
static int floor_pool_release(floor_module *m, long memories, long tables)
{
    int rc = 0;
    for (long i = 0; i < memories; i++)
        rc |= wenv_release(m->addr[i], floor_slot_bytes(&m->memories[i]));
    for (long j = 0; j < tables; j++)
        wenv_table_close(&m->tables[j]);
    return rc ? -1 : 0;
}

/* [errno] The pooled floor's slots and tables, made once (released on failure). */
static int floor_pool_prepare(floor_module *m)
{
    long i = 0, j = 0;
    for (; i < m->memory_count; i++) {
        const wenv_memory_spec *spec = &m->memories[i];
        int image = spec->image_fd >= 0 && spec->image_len > 0;
        if (spec->accessible > UINT64_MAX - WENV_WASM_PAGE) {
            errno = ENOMEM;
            goto fail;
        }
        if (wenv_reserve_memory(floor_slot_bytes(spec), 0, spec->accessible, image ? (int)spec->image_fd : -1,
                                spec->image_file_offset, image ? spec->image_offset : 0,
                                image ? spec->image_len : 0, &m->addr[i]) != 0)
            goto fail;
    }
    for (; j < m->table_count; j++)
        if (wenv_table_open(&m->tables[j], m->table_elems[j], m->table_elems[j], 0) != 0)
            goto fail;
    return 0;
fail:
    {
        int err = errno;
        floor_pool_release(m, i, j);
        errno = err;
        return -1;
    }
}

static int floor_pooled_once(floor_module *m)
{
    for (long i = 0; i < m->memory_count; i++) {
        uint64_t base = m->addr[i], accessible = m->memories[i].accessible;
        if (wenv_decommit(base, accessible, wenv_reset_default()) != 0
            || wenv_protect(base + accessible, WENV_WASM_PAGE, 0) != 0)
            return -1;
    }
    for (long j = 0; j < m->table_count; j++)
        if (wenv_pool_table_reset(&m->tables[j], m->table_elems[j], m->table_elems[j], 0) != 0)
            return -1;
    return 0;
}

static int floor_pooled_timed(floor_module *m, long samples, long batch, double *out_ns)
{
    WENV_TIMED(floor_pooled_once(m));
    return 0;
}

int wenv_floor_pooled(const wenv_memory_spec *memories, long memory_count, const uint64_t *table_elems,
                      long table_count, long samples, long batch, double *out_ns)
{
    floor_module m;
    if (floor_module_init(&m, memories, memory_count, table_elems, table_count, batch) != 0)
        return -1;
    int rc = floor_pool_prepare(&m);
    if (rc == 0) {
        rc = floor_pooled_timed(&m, samples, batch, out_ns);
        int err = errno;
        floor_pool_release(&m, m.memory_count, m.table_count);
        errno = err;
    }
    floor_module_free(&m);
    return rc;
}

/* ---- on demand + copy (one memory) ---- */

static int floor_copy_once(const wenv_memory_spec *spec, const char *image)
{
    uint64_t start;
    if (wenv_reserve_memory(spec->reserve_bytes, spec->pre_guard, spec->accessible, -1, 0, 0, 0, &start) != 0)
        return -1;
    memcpy((char *)(uintptr_t)(start + spec->pre_guard + spec->image_offset), image, (size_t)spec->image_len);
    WENV_BARRIER(); /* the copy must happen before the unmap */
    return wenv_release(start, spec->reserve_bytes);
}

int wenv_floor_copy(const wenv_memory_spec *memory, const char *image, long samples, long batch,
                    double *out_ns)
{
    if (!wenv_batch_ok(batch))
        return -1;
    if (memory->image_offset > memory->accessible || memory->image_len > memory->accessible - memory->image_offset) {
        errno = EINVAL;
        return -1;
    }
    WENV_TIMED(floor_copy_once(memory, image));
    return 0;
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
    wenv_memory_init(m, start, 65536, bound, guard, start, start + bound + guard, WENV_MEM_STATIC,
                     bound / WENV_WASM_PAGE);
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
