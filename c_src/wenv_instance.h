/*
 * wenv_instance: what instantiating one defined memory needs (a spec, computed once per
 * module by runtime/layout.py), and an instance's only memory opened and released in
 * one C call each way, for both allocators.
 */
#ifndef WENV_INSTANCE_H
#define WENV_INSTANCE_H
#include "wenv.h"
#include "wenv_memory.h"
/* CDEF-BEGIN */

/* Read by wenv_memory_open, wenv_instance_open/close and the pool (wenv_pool.h). */
typedef struct wenv_memory_spec {
    uint64_t reserve_bytes;     /* on-demand: the whole reservation, guards included */
    uint64_t pre_guard;         /* on-demand: bytes before wasm byte 0 */
    uint64_t accessible;        /* the initial size in bytes: R/W from the start */
    int64_t image_fd;           /* < 0: no image */
    uint64_t image_file_offset;
    uint64_t image_offset;      /* where the image goes, from wasm byte 0 */
    uint64_t image_len;         /* 0: no image */
    uint64_t image_key;         /* the image's identity, never reused (a pool slot's affinity) */
    struct wenv_pool *pool;     /* wenv_instance_open/close: the pool, or NULL for on-demand */
} wenv_memory_spec;

/* [addr] wenv_reserve_memory for a spec: the reservation's start. */
uint64_t wenv_memory_open(const wenv_memory_spec *spec);

/* [handle] An instance's only memory (one argument less to convert than the pool calls:
 * this is the hot path). spec->pool NULL: on-demand (wenv_memory_open; the handle is the
 * reservation's start); otherwise wenv_pool_take counting the instance (the handle is
 * the slot). */
int64_t wenv_instance_open(const wenv_memory_spec *spec);
/* Release what wenv_instance_open returned (ending the instance), its memory never made
 * reachable (no descriptor, no interpreter state, no data written: nothing wrote it).
 * On-demand: [errno] munmap; pool: wenv_pool_put_clean's [unused] result. */
int wenv_instance_close(const wenv_memory_spec *spec, int64_t handle);

/* Who releases a memory after wenv_memory_close (wenv_memory.h): the descriptor itself,
 * once the last access in flight left. A reservation: munmap of [resv_start, resv_end)
 * as the descriptor says then (`mappable`: a memory that is not shared; it becomes
 * WENV_MEM_MAPPABLE); a pool slot: wenv_pool_put (with end_instance). */
void wenv_memory_own_reservation(wenv_memory *m, int mappable);
void wenv_memory_own_pool_slot(wenv_memory *m, struct wenv_pool *pool, uint32_t slot, int end_instance);
/* (Called again on a descriptor that owns its slot already: only end_instance changes.) */

/* wenv_vmctx_alloc (wenv_vmoffsets.h) for a block the caller writes right away (the
 * instance block: its globals template is copied in): always calloc (wenv_vmctx.c). */
void *wenv_vmctx_alloc_written(uint64_t size);

/* CDEF-END */
#endif
