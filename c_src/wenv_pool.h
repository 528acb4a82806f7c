/*
 * wenv_pool: the memory-slot bookkeeping of runtime.PoolingAllocator, in C.
 *
 * Python reserves the pool (runtime/pooling.py: chunks of equal slots) and keeps the
 * policy that is not per-instance (limits checked once per module, tables, closing).
 * This file does what every instantiation and release does, in one call each way:
 * count the instance, pop a free slot, prepare it (wipe if poisoned, drop another
 * module's image, mprotect to the new size, map the image unless the slot holds it),
 * and on release reset it (memset keep_resident, decommit the rest) and push it back.
 * Bookkeeping is under one mutex; the syscalls run outside it, on a slot nobody else
 * holds. Failures are reported as -1 with errno (syscalls) or a WENV_POOL_* code.
 *
 * Everything between CDEF-BEGIN and CDEF-END is also the cffi cdef (c_src/build_native.py).
 */
#ifndef WENV_POOL_H
#define WENV_POOL_H
#include <stddef.h>
#include <stdint.h>
#include "wenv_native.h"
/* CDEF-BEGIN */

/* Negative results of wenv_pool_take / wenv_pool_begin besides -1 (errno). */
#define WENV_POOL_MAX_INSTANCES -2   /* max_instances instances are live */
#define WENV_POOL_NO_SLOT -3         /* every memory slot is in use */
#define WENV_POOL_CLOSED -4          /* wenv_pool_close was called */

/* Injected failures (tests): the named step fails with EIO while its bit is set. */
#define WENV_POOL_FAIL_DECOMMIT 1
#define WENV_POOL_FAIL_MAP_ANON 2
#define WENV_POOL_FAIL_PROTECT 4
#define WENV_POOL_FAIL_MAP_IMAGE 8

typedef struct wenv_pool wenv_pool;

/* A pool over slot_count slots: slot i is at chunk_bases[i / slots_per_chunk] +
 * (i % slots_per_chunk) * stride (the bases are copied). keep_bytes: page-rounded
 * keep_resident. NULL with errno on failure. */
wenv_pool *wenv_pool_new(uint32_t slot_count, uint32_t slots_per_chunk, const uint64_t *chunk_bases,
                         uint32_t chunk_count, uint64_t stride, uint64_t bound_bytes,
                         uint64_t keep_bytes, uint32_t max_instances);
void wenv_pool_free(wenv_pool *p);

/* Count one more live instance (no memory). 0 or a WENV_POOL_* code. */
int wenv_pool_begin(wenv_pool *p);
/* Take a slot prepared for spec (accessible, image); with count_instance, also count one
 * more live instance (all or nothing). The slot index, or -1 (errno: the slot is poisoned
 * and back on the free list, the instance is not counted) or a WENV_POOL_* code. */
int64_t wenv_pool_take(wenv_pool *p, const wenv_memory_spec *spec, int count_instance);
/* Reset slot and make it free (a failed reset wipes the slot, or poisons it for the next
 * take); with end_instance, also count one live instance less. Returns 1 when the pool
 * is closed and no slot or instance is live any more (the caller may unmap it), else 0;
 * -1 with EINVAL for a slot that is not in use (nothing is changed). */
int wenv_pool_put(wenv_pool *p, uint32_t slot, int end_instance);
/* Count one live instance less. Same return as wenv_pool_put. */
int wenv_pool_end(wenv_pool *p);
/* Make [accessible, new_bytes) of a slot in use R/W. 0 or -1 with errno. */
int wenv_pool_grow(wenv_pool *p, uint32_t slot, uint64_t new_bytes);
/* Refuse new instances. Returns 1 when no slot or instance is live (the caller may unmap). */
int wenv_pool_close(wenv_pool *p);

/* An instance's only memory in one call each way, for both allocators (one argument
 * less to convert than the calls above: this is the hot path). spec->pool NULL:
 * on-demand (wenv_memory_open; the handle is the reservation's start); otherwise
 * wenv_pool_take counting the instance (the handle is the slot). Returns the handle,
 * or < 0: -1 with errno, or a WENV_POOL_* code. */
int64_t wenv_instance_open(const wenv_memory_spec *spec);
/* Release what wenv_instance_open returned (ending the instance). On-demand: munmap,
 * 0 or -1 with errno; pool: wenv_pool_put's result. */
int wenv_instance_close(const wenv_memory_spec *spec, int64_t handle);

uint64_t wenv_pool_slot_base(const wenv_pool *p, uint32_t slot);
/* out: live_instances, live_memories, slots ever handed out, free slots, slots in use
 * found on the free list (must be 0). */
void wenv_pool_stats(wenv_pool *p, uint64_t out[5]);
/* out: in_use, poisoned, accessible, image_key, image_offset, image_len. -1 if no such slot. */
int wenv_pool_slot_state(wenv_pool *p, uint32_t slot, uint64_t out[6]);
void wenv_pool_inject_failures(wenv_pool *p, uint32_t mask);

/* CDEF-END */
#endif
