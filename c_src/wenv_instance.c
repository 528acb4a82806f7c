/*
 * wenv_instance.c — open and release an instance's memories from their specs.
 */
#include "wenv_instance.h"
#include "wenv_mman.h"
#include "wenv_pool.h"

uint64_t wenv_memory_open(const wenv_memory_spec *spec)
{
    uint64_t start = 0;
    int has_image = spec->image_fd >= 0 && spec->image_len > 0;
    if (wenv_reserve_memory(spec->reserve_bytes, spec->pre_guard, spec->accessible,
                            has_image ? (int)spec->image_fd : -1, spec->image_file_offset,
                            has_image ? spec->image_offset : 0, has_image ? spec->image_len : 0,
                            &start) != 0)
        return 0;
    return start;
}

int64_t wenv_instance_open(const wenv_memory_spec *spec)
{
    if (spec->pool == NULL) {
        uint64_t start = wenv_memory_open(spec);
        return start ? (int64_t)start : -1;
    }
    return wenv_pool_take(spec->pool, spec, 1);
}

int wenv_instance_close(const wenv_memory_spec *spec, int64_t handle)
{
    if (spec->pool == NULL)
        return wenv_release((uint64_t)handle, spec->reserve_bytes);
    return wenv_pool_put_clean(spec->pool, (uint32_t)handle, 1);
}

static int wenv_release_reservation(wenv_memory *m)
{
    return wenv_release(m->resv_start, m->resv_end - m->resv_start);
}

static int wenv_release_pool_slot(wenv_memory *m)
{
    struct wenv_pool *pool = m->release_ctx;
    int rc = wenv_pool_put(pool, (uint32_t)m->release_arg, (int)(m->release_arg >> 32));
    wenv_pool_unref(pool); /* the reference wenv_memory_own_pool_slot took */
    return rc;
}

static int wenv_grow_reservation(wenv_memory *m, uint64_t old_byte_len, uint64_t new_byte_len)
{
    return wenv_protect(m->base + old_byte_len, new_byte_len - old_byte_len, 1);
}

static int wenv_grow_pool_slot(wenv_memory *m, uint64_t old_byte_len, uint64_t new_byte_len)
{
    (void)old_byte_len;
    return wenv_pool_grow_held(m->release_ctx, (uint32_t)m->release_arg, new_byte_len);
}

void wenv_memory_own_reservation(wenv_memory *m, int mappable)
{
    m->release = wenv_release_reservation;
    m->make_accessible = wenv_grow_reservation;
    if (mappable)
        __atomic_or_fetch(&m->flags, WENV_MEM_MAPPABLE, __ATOMIC_RELEASE);
    else
        __atomic_and_fetch(&m->flags, ~(uint32_t)WENV_MEM_MAPPABLE, __ATOMIC_RELEASE);
}

void wenv_memory_own_pool_slot(wenv_memory *m, struct wenv_pool *pool, uint32_t slot, int end_instance)
{
    /* One reference per descriptor: owning the slot again (to end the instance with it)
     * keeps the one its first owning took, which its release gives back. */
    if (!(m->release == wenv_release_pool_slot && m->release_ctx == pool))
        wenv_pool_ref(pool);
    m->release_ctx = pool;
    m->release_arg = slot | (uint64_t)(end_instance != 0) << 32;
    m->release = wenv_release_pool_slot;
    m->make_accessible = wenv_grow_pool_slot;
}
