/*
 * wenv_pool.c — memory slots of the pooling allocator: take, prepare, reset, put back.
 * The slot invariants are those of runtime/pooling.py's module docstring.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wenv_mman.h"
#include "wenv_pool.h"

typedef struct wenv_slot {
    uint64_t accessible;    /* bytes from the base that are R/W; PROT_NONE above */
    uint64_t image_key;     /* image mapped over [image_offset, + image_len), 0: none */
    uint64_t image_offset;
    uint64_t image_len;
    uint32_t tenancy;       /* counts takes: a grow names the tenancy it was started in */
    uint8_t in_use;
    uint8_t poisoned;       /* a reset step failed: wipe before anybody gets it */
} wenv_slot;

struct wenv_pool {
    pthread_mutex_t lock;
    uint64_t stride, bound_bytes, keep_bytes;
    uint32_t slot_count, slots_per_chunk, chunk_count, max_instances;
    uint64_t *chunk_bases;
    wenv_slot *slots;
    uint32_t *free_list;    /* LIFO: a module instantiated in a loop gets its slot back */
    uint32_t free_count, created;
    uint64_t live_instances, live_memories;
    int closed;
    int gone;               /* the reservation may be unmapped: a put only counts */
    uint32_t refs;          /* Python's reference + one per descriptor owning a slot */
    int reset_how;          /* WENV_RESET_* */
    uint32_t fail_mask;     /* WENV_FAIL_* (tests) */
};

static void wenv_pool_destroy(wenv_pool *p);

wenv_pool *wenv_pool_new(uint32_t slot_count, uint32_t slots_per_chunk, const uint64_t *chunk_bases,
                         uint32_t chunk_count, uint64_t stride, uint64_t bound_bytes,
                         uint64_t keep_bytes, uint32_t max_instances, int reset_how)
{
    if (slots_per_chunk == 0 || (slot_count && (uint64_t)chunk_count * slots_per_chunk < slot_count)
        || (reset_how != WENV_RESET_MADVISE && reset_how != WENV_RESET_REMAP)) {
        errno = EINVAL;
        return NULL;
    }
    wenv_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->chunk_bases = calloc(chunk_count ? chunk_count : 1, sizeof *p->chunk_bases);
    p->slots = calloc(slot_count ? slot_count : 1, sizeof *p->slots);
    p->free_list = calloc(slot_count ? slot_count : 1, sizeof *p->free_list);
    if (p->chunk_bases == NULL || p->slots == NULL || p->free_list == NULL) {
        wenv_pool_free(p);
        errno = ENOMEM;
        return NULL;
    }
    if (chunk_count)
        memcpy(p->chunk_bases, chunk_bases, chunk_count * sizeof *chunk_bases);
    pthread_mutex_init(&p->lock, NULL);
    p->stride = stride;
    p->bound_bytes = bound_bytes;
    p->keep_bytes = keep_bytes;
    p->slot_count = slot_count;
    p->slots_per_chunk = slots_per_chunk;
    p->chunk_count = chunk_count;
    p->max_instances = max_instances;
    p->reset_how = reset_how;
    p->refs = 1;
    return p;
}

void wenv_pool_ref(wenv_pool *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void wenv_pool_unref(wenv_pool *p)
{
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        wenv_pool_destroy(p);
}

void wenv_pool_forget_reservation(wenv_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->gone = 1;
    pthread_mutex_unlock(&p->lock);
}

void wenv_pool_free(wenv_pool *p)
{
    if (p == NULL)
        return;
    wenv_pool_forget_reservation(p);
    wenv_pool_unref(p);
}

static void wenv_pool_destroy(wenv_pool *p)
{
    if (p->slots != NULL && p->free_list != NULL && p->chunk_bases != NULL)
        pthread_mutex_destroy(&p->lock);
    free(p->chunk_bases);
    free(p->slots);
    free(p->free_list);
    free(p);
}

uint64_t wenv_pool_slot_base(const wenv_pool *p, uint32_t slot)
{
    return p->chunk_bases[slot / p->slots_per_chunk] + (uint64_t)(slot % p->slots_per_chunk) * p->stride;
}

/* This pool's injected failures (WENV_FAIL_*), for the wenv_mm_* wrappers. */
static uint32_t wenv_fail(const wenv_pool *p) { return __atomic_load_n(&p->fail_mask, __ATOMIC_RELAXED); }

/* ---- prepare (take) and reset (put) ------------------------------------------------ */

static int wenv_wipe(wenv_pool *p, wenv_slot *s, uint64_t base)
{
    /* The whole slot body becomes fresh PROT_NONE anonymous memory. */
    s->image_key = 0;
    s->accessible = 0;
    return p->bound_bytes ? wenv_mm_map_anon(base, p->bound_bytes, 0, wenv_fail(p)) : 0;
}

static int wenv_prepare(wenv_pool *p, wenv_slot *s, uint64_t base, const wenv_memory_spec *spec)
{
    if (s->poisoned) {
        if (wenv_wipe(p, s, base) != 0)
            return -1;
        s->poisoned = 0;
    }
    uint64_t want = spec->image_fd >= 0 && spec->image_len ? spec->image_key : 0;
    if (s->image_key != 0 && s->image_key != want) {
        /* another module's image (inside [0, accessible)): replaced by zeros, R/W */
        if (wenv_mm_map_anon(base + s->image_offset, s->image_len, 1, wenv_fail(p)) != 0)
            return -1;
        s->image_key = 0;
    }
    uint64_t min = spec->accessible;
    if (s->accessible < min) {
        if (wenv_mm_protect(base + s->accessible, min - s->accessible, 1, wenv_fail(p)) != 0)
            return -1;
    } else if (s->accessible > min) {
        if (wenv_mm_protect(base + min, s->accessible - min, 0, wenv_fail(p)) != 0)
            return -1;
    }
    s->accessible = min;
    if (want && s->image_key == 0) {
        if (wenv_mm_map_file(base + spec->image_offset, spec->image_len, (int)spec->image_fd,
                             spec->image_file_offset, wenv_fail(p)) != 0)
            return -1;
        s->image_key = want;
        s->image_offset = spec->image_offset;
        s->image_len = spec->image_len;
    }
    return 0;
}

static int wenv_reset(wenv_pool *p, wenv_slot *s, uint64_t base)
{
    uint64_t accessible = s->accessible;
    if (accessible == 0)
        return 0;
    uint64_t keep = p->keep_bytes < accessible ? p->keep_bytes : accessible;
    if (keep == 0) { /* the image lies inside [0, accessible): one call */
        if (wenv_mm_decommit(base, accessible, p->reset_how, wenv_fail(p)) != 0)
            return -1;
    } else {
        /* memset [0, keep) outside the image [a, b); decommit [a, b) and [keep, accessible) */
        uint64_t a = keep, b = keep; /* no image: an empty range that splits nothing */
        if (s->image_key) {
            a = s->image_offset;
            b = a + s->image_len;
        }
        if (a > 0)
            memset((void *)(uintptr_t)base, 0, (size_t)(a < keep ? a : keep));
        if (b < keep)
            memset((void *)(uintptr_t)(base + b), 0, (size_t)(keep - b));
        if (a <= keep && keep <= b) {
            if (wenv_mm_decommit(base + a, accessible - a, p->reset_how, wenv_fail(p)) != 0)
                return -1;
        } else {
            if (b < keep && wenv_mm_decommit(base + a, b - a, p->reset_how, wenv_fail(p)) != 0)
                return -1;
            if (wenv_mm_decommit(base + keep, accessible - keep, p->reset_how, wenv_fail(p)) != 0)
                return -1;
        }
    }
    if (p->reset_how == WENV_RESET_REMAP)
        s->image_key = 0; /* fresh anonymous zeros replaced the image */
    return 0;
}

/* ---- bookkeeping ------------------------------------------------------------------- */

int wenv_pool_begin(wenv_pool *p)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->closed)
        rc = WENV_POOL_CLOSED;
    else if (p->live_instances >= p->max_instances)
        rc = WENV_POOL_MAX_INSTANCES;
    else
        p->live_instances++;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Under the lock: the slot goes back; 1 if the pool is closed and now unused (no slot,
 * no instance). */
static int wenv_put_locked(wenv_pool *p, uint32_t index, int end_instance)
{
    p->slots[index].in_use = 0;
    p->live_memories--;
    if (end_instance)
        p->live_instances--;
    if (!p->closed)
        p->free_list[p->free_count++] = index;
    return p->closed && p->live_memories == 0 && p->live_instances == 0;
}

int64_t wenv_pool_take(wenv_pool *p, const wenv_memory_spec *spec, int count_instance)
{
    uint32_t index;
    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        return WENV_POOL_CLOSED;
    }
    if (count_instance && p->live_instances >= p->max_instances) {
        pthread_mutex_unlock(&p->lock);
        return WENV_POOL_MAX_INSTANCES;
    }
    int64_t taken = wenv_slot_index_take(p->free_list, &p->free_count, &p->created, p->slot_count);
    if (taken < 0) {
        pthread_mutex_unlock(&p->lock);
        return WENV_POOL_NO_SLOT;
    }
    index = (uint32_t)taken;
    wenv_slot *s = &p->slots[index];
    if (s->in_use)
        abort(); /* a slot handed out twice: the pool's state is corrupt */
    s->in_use = 1;
    s->tenancy++;
    p->live_memories++;
    if (count_instance)
        p->live_instances++;
    wenv_slot before = *s, st = *s;
    pthread_mutex_unlock(&p->lock);

    /* Prepared on a copy, outside the lock; the slot's state is written under it. */
    if (wenv_prepare(p, &st, wenv_pool_slot_base(p, index), spec) != 0) {
        int err = errno;
        st.poisoned = 1;
        pthread_mutex_lock(&p->lock);
        *s = st;
        wenv_put_locked(p, index, count_instance);
        pthread_mutex_unlock(&p->lock);
        errno = err;
        return -1;
    }
    if (memcmp(&before, &st, sizeof st) != 0) { /* the same module again changes nothing */
        pthread_mutex_lock(&p->lock);
        *s = st;
        pthread_mutex_unlock(&p->lock);
    }
    return index;
}

static int wenv_pool_put_in(wenv_pool *p, uint32_t index, int end_instance, int clean);

int wenv_pool_put(wenv_pool *p, uint32_t index, int end_instance)
{
    return wenv_pool_put_in(p, index, end_instance, 0);
}

int wenv_pool_put_clean(wenv_pool *p, uint32_t index, int end_instance)
{
    return wenv_pool_put_in(p, index, end_instance, 1);
}

static int wenv_pool_put_in(wenv_pool *p, uint32_t index, int end_instance, int clean)
{
    /* Only the holder of a slot puts it back, once: anything else is a caller's bug,
     * refused (under the lock) before it can corrupt the free list. The slot is claimed
     * at once: from here on nobody can put, grow or take it until it is free again. */
    pthread_mutex_lock(&p->lock);
    if (index >= p->created || !p->slots[index].in_use || (end_instance && p->live_instances == 0)) {
        pthread_mutex_unlock(&p->lock);
        errno = EINVAL;
        return -1;
    }
    wenv_slot *s = &p->slots[index];
    s->in_use = 0;
    wenv_slot st = *s;
    int gone = p->gone;
    pthread_mutex_unlock(&p->lock);

    WENV_HOOK(WENV_HOOK_POOL_PUT_CHECKED);
    uint64_t base = wenv_pool_slot_base(p, index);
    /* Never touch a reservation that may be unmapped (and its addresses reused); a clean
     * slot is as its take left it: nothing to reset. */
    if (!gone && !clean && wenv_reset(p, &st, base) != 0 && wenv_wipe(p, &st, base) != 0)
        st.poisoned = 1; /* wiped again before anybody gets it */
    pthread_mutex_lock(&p->lock);
    *s = st;
    int rc = wenv_put_locked(p, index, end_instance);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int wenv_pool_end(wenv_pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->live_instances == 0) {
        pthread_mutex_unlock(&p->lock);
        errno = EINVAL;
        return -1;
    }
    p->live_instances--;
    int rc = p->closed && p->live_memories == 0 && p->live_instances == 0;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

uint32_t wenv_pool_slot_tenancy(wenv_pool *p, uint32_t index)
{
    pthread_mutex_lock(&p->lock);
    uint32_t tenancy = index < p->slot_count ? p->slots[index].tenancy : 0;
    pthread_mutex_unlock(&p->lock);
    return tenancy;
}

static int pool_grow(wenv_pool *p, uint32_t index, int check_tenancy, uint32_t tenancy, uint64_t new_bytes)
{
    /* Under the lock, mprotect included: the slot's state never says less than what is
     * R/W, and a put waits for a grow in flight (grows are rare; takes and puts of other
     * slots wait one mprotect at most). */
    int rc = 0, err = 0;
    pthread_mutex_lock(&p->lock);
    wenv_slot *s = &p->slots[index < p->slot_count ? index : 0];
    if (index >= p->created || !s->in_use || new_bytes > p->bound_bytes) {
        rc = -1; /* only the holder of a slot grows it, within the bound */
        err = EINVAL;
    } else if (check_tenancy && s->tenancy != tenancy) {
        rc = -1; /* started in an earlier tenancy (its memory was released since) */
        err = ESTALE;
    } else if (new_bytes > s->accessible) {
        if (wenv_mm_protect(wenv_pool_slot_base(p, index) + s->accessible, new_bytes - s->accessible, 1,
                            wenv_fail(p)) != 0) {
            rc = -1;
            err = errno;
        } else {
            WENV_HOOK(WENV_HOOK_POOL_GROW_PROTECTED);
            s->accessible = new_bytes;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (rc)
        errno = err;
    return rc;
}

int wenv_pool_grow(wenv_pool *p, uint32_t index, uint32_t tenancy, uint64_t new_bytes)
{
    return pool_grow(p, index, 1, tenancy, new_bytes);
}

int wenv_pool_grow_held(wenv_pool *p, uint32_t index, uint64_t new_bytes)
{
    return pool_grow(p, index, 0, 0, new_bytes);
}

int wenv_pool_close(wenv_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    p->free_count = 0;
    int rc = p->live_memories == 0 && p->live_instances == 0;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void wenv_pool_stats(wenv_pool *p, uint64_t out[5])
{
    pthread_mutex_lock(&p->lock);
    out[0] = p->live_instances;
    out[1] = p->live_memories;
    out[2] = p->created;
    out[3] = p->free_count;
    uint64_t bad = 0;
    for (uint32_t i = 0; i < p->free_count; i++)
        bad += p->slots[p->free_list[i]].in_use;
    out[4] = bad;
    pthread_mutex_unlock(&p->lock);
}

int wenv_pool_slot_state(wenv_pool *p, uint32_t index, uint64_t out[6])
{
    if (index >= p->slot_count) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    const wenv_slot *s = &p->slots[index];
    out[0] = s->in_use;
    out[1] = s->poisoned;
    out[2] = s->accessible;
    out[3] = s->image_key;
    out[4] = s->image_offset;
    out[5] = s->image_len;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void wenv_pool_inject_failures(wenv_pool *p, uint32_t mask)
{
    __atomic_store_n(&p->fail_mask, mask, __ATOMIC_RELAXED);
}
