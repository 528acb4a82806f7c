/*
 * wenv_pool: the memory-slot bookkeeping of runtime.PoolingAllocator, in C.
 *
 * Python reserves the pool (runtime/_pool_core.py: chunks of equal slots) and keeps the
 * policy that is not per-instance (limits checked once per module, tables, closing).
 * This file does what every instantiation and release does, in one call each way:
 * count the instance, pop a free slot, prepare it (wipe if poisoned, drop another
 * module's image, mprotect to the new size, map the image unless the slot holds it),
 * and on release reset it (memset keep_resident, decommit the rest) and push it back.
 * Bookkeeping and slot state are under one mutex: take and put claim a slot under it,
 * run their syscalls outside it on a copy of the state of the slot they hold, and write
 * the state back under it; a grow holds it across its mprotect. Return conventions: wenv.h.
 */
#ifndef WENV_POOL_H
#define WENV_POOL_H
#include "wenv.h"
#include "wenv_instance.h"

/* CDEF-BEGIN */

/* The negative codes of a pool's [handle] results, besides -1 (errno). */
#define WENV_POOL_MAX_INSTANCES -2   /* max_instances instances are live */
#define WENV_POOL_NO_SLOT -3         /* every memory slot is in use */
#define WENV_POOL_CLOSED -4          /* wenv_pool_close was called */

typedef struct wenv_pool wenv_pool;

/* [addr] A pool over slot_count slots: slot i is at chunk_bases[i / slots_per_chunk] +
 * (i % slots_per_chunk) * stride (the bases are copied). keep_bytes: page-rounded
 * keep_resident; reset_how: how released pages are given back (WENV_RESET_*). */
wenv_pool *wenv_pool_new(uint32_t slot_count, uint32_t slots_per_chunk, const uint64_t *chunk_bases,
                         uint32_t chunk_count, uint64_t stride, uint64_t bound_bytes,
                         uint64_t keep_bytes, uint32_t max_instances, int reset_how);
/* Drop Python's reference (after wenv_pool_forget_reservation); the pool is freed when
 * the last descriptor owning one of its slots has put it back (wenv_pool_ref). */
void wenv_pool_free(wenv_pool *p);
/* A descriptor that will put a slot back holds the pool: one reference each. */
void wenv_pool_ref(wenv_pool *p);
void wenv_pool_unref(wenv_pool *p);
/* The reservation may be unmapped from now on: later puts only count, never touch it. */
void wenv_pool_forget_reservation(wenv_pool *p);

/* [handle] Count one more live instance (no memory): 0 or a WENV_POOL_* code. */
int wenv_pool_begin(wenv_pool *p);
/* [handle] Take a slot prepared for spec (accessible, image); with count_instance, also
 * count one more live instance (all or nothing). The slot index; on -1 the slot is
 * poisoned and back on the free list, and the instance is not counted. */
int64_t wenv_pool_take(wenv_pool *p, const wenv_memory_spec *spec, int count_instance);
/* [unused] Reset slot and make it free (a failed reset wipes the slot, or poisons it for
 * the next take); with end_instance, also count one live instance less. EINVAL: the
 * slot is not in use (or no instance is live, with end_instance). */
int wenv_pool_put(wenv_pool *p, uint32_t slot, int end_instance);
/* [unused] wenv_pool_put of a slot nothing wrote since its take (its holder never made
 * its memory reachable: no descriptor, no interpreter state, no data written), so its
 * pages are as the take left them (an image, zeros): nothing to reset. */
int wenv_pool_put_clean(wenv_pool *p, uint32_t slot, int end_instance);
/* [unused] Count one live instance less. EINVAL: no instance is live. */
int wenv_pool_end(wenv_pool *p);
/* The slot's tenancy: a number that changes with every take (a slot's holder reads it
 * once, while it holds the slot). */
uint32_t wenv_pool_slot_tenancy(wenv_pool *p, uint32_t slot);
/* [errno] Make [accessible, new_bytes) of a slot in use R/W, if it is still in the
 * tenancy `tenancy` (ESTALE: it was released, and maybe taken again, since). */
int wenv_pool_grow(wenv_pool *p, uint32_t slot, uint32_t tenancy, uint64_t new_bytes);
/* [errno] wenv_pool_grow for the slot's owner in its current tenancy (a descriptor that
 * owns the slot: wenv_memory_own_pool_slot). */
int wenv_pool_grow_held(wenv_pool *p, uint32_t slot, uint64_t new_bytes);
/* [unused] Refuse new instances (never -1). */
int wenv_pool_close(wenv_pool *p);

uint64_t wenv_pool_slot_base(const wenv_pool *p, uint32_t slot);
/* out: live_instances, live_memories, slots ever handed out, free slots, slots in use
 * found on the free list (must be 0). */
void wenv_pool_stats(wenv_pool *p, uint64_t out[5]);
/* [errno] out: in_use, poisoned, accessible, image_key, image_offset, image_len (EINVAL: no such slot). */
int wenv_pool_slot_state(wenv_pool *p, uint32_t slot, uint64_t out[6]);
/* Tests: this pool's syscalls fail as `mask` (WENV_FAIL_*, wenv_mman.h) says. */
void wenv_pool_inject_failures(wenv_pool *p, uint32_t mask);

/* CDEF-END */

/* The index a pool hands out next, under its lock (memory slots, wenv_pool.c; table slots,
 * wenv_tables.c): the last one given back (LIFO: a module instantiated in a loop gets its
 * slot back), else the first never used; -1 when all `slot_count` are taken. */
static inline int64_t wenv_slot_index_take(const uint32_t *free_list, uint32_t *free_count, uint32_t *created,
                                           uint32_t slot_count)
{
    if (*free_count)
        return free_list[--*free_count];
    if (*created < slot_count)
        return (*created)++;
    return -1;
}
#endif
