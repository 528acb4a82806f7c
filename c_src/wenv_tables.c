/*
 * wenv_tables.c — an instance's defined tables: opened and released together, in
 * reservations of their own or in a table pool's slots (wenv_tables.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wenv_mman.h"
#include "wenv_pool.h"
#include "wenv_tables.h"

struct wenv_table_pool {
    pthread_mutex_t lock;
    uint64_t max_elements;
    uint32_t slot_count, created, free_count;
    uint64_t live;
    int closed;
    int freed;              /* Python let go (wenv_table_pool_free): the last release destroys it */
    wenv_table *kept;       /* per slot: the storage it keeps between tenants (elements NULL: none) */
    uint8_t *in_use;
    uint32_t *free_list;    /* LIFO: a module instantiated in a loop gets its slot back */
};

wenv_table_pool *wenv_table_pool_new(uint32_t slot_count, uint64_t max_elements)
{
    wenv_table_pool *tp = calloc(1, sizeof *tp);
    if (tp == NULL)
        return NULL;
    uint32_t n = slot_count ? slot_count : 1;
    tp->kept = calloc(n, sizeof *tp->kept);
    tp->in_use = calloc(n, sizeof *tp->in_use);
    tp->free_list = calloc(n, sizeof *tp->free_list);
    if (tp->kept == NULL || tp->in_use == NULL || tp->free_list == NULL
        || pthread_mutex_init(&tp->lock, NULL) != 0) {
        free(tp->kept);
        free(tp->in_use);
        free(tp->free_list);
        free(tp);
        errno = ENOMEM;
        return NULL;
    }
    tp->slot_count = slot_count;
    tp->max_elements = max_elements;
    return tp;
}

void wenv_table_pool_close(wenv_table_pool *tp)
{
    pthread_mutex_lock(&tp->lock);
    tp->closed = 1;
    tp->free_count = 0;
    pthread_mutex_unlock(&tp->lock);
    for (uint32_t i = 0; i < tp->created; i++)  /* a slot in use keeps nothing here */
        wenv_table_close(&tp->kept[i]);
}

static void wenv_table_pool_destroy(wenv_table_pool *tp)
{
    for (uint32_t i = 0; i < tp->created; i++)
        wenv_table_close(&tp->kept[i]);
    pthread_mutex_destroy(&tp->lock);
    free(tp->kept);
    free(tp->in_use);
    free(tp->free_list);
    free(tp);
}

void wenv_table_pool_free(wenv_table_pool *tp)
{
    if (tp == NULL)
        return;
    pthread_mutex_lock(&tp->lock);
    tp->closed = tp->freed = 1;
    tp->free_count = 0;
    int last = tp->live == 0;
    pthread_mutex_unlock(&tp->lock);
    if (last)
        wenv_table_pool_destroy(tp);
}

uint64_t wenv_table_pool_live(wenv_table_pool *tp)
{
    pthread_mutex_lock(&tp->lock);
    uint64_t live = tp->live;
    pthread_mutex_unlock(&tp->lock);
    return live;
}

/* Under the lock: slot `index` is free again, keeping `t`'s storage unless tp is closed
 * (then 0: the caller releases it). */
static int wenv_slot_free_locked(wenv_table_pool *tp, uint32_t index, const wenv_table *t)
{
    tp->in_use[index] = 0;
    tp->live--;
    if (tp->closed)
        return 0;
    tp->kept[index] = *t;
    tp->free_list[tp->free_count++] = index;
    return 1;
}

/* A free slot for `spec` into the zeroed entry `e`: its kept storage, else a new one. */
static int64_t wenv_slot_take(wenv_table_pool *tp, const wenv_table_spec *spec, wenv_instance_table *e)
{
    uint64_t maximum = spec->maximum < tp->max_elements ? spec->maximum : tp->max_elements;
    uint32_t index;
    if (spec->size > maximum) {
        errno = ERANGE;
        return -1;
    }
    pthread_mutex_lock(&tp->lock);
    if (tp->closed) {
        pthread_mutex_unlock(&tp->lock);
        return WENV_POOL_CLOSED;
    }
    int64_t taken = wenv_slot_index_take(tp->free_list, &tp->free_count, &tp->created, tp->slot_count);
    if (taken < 0) {
        pthread_mutex_unlock(&tp->lock);
        return WENV_POOL_NO_TABLE_SLOT;
    }
    index = (uint32_t)taken;
    if (tp->in_use[index])
        abort(); /* a slot handed out twice: the pool's state is corrupt */
    tp->in_use[index] = 1;
    tp->live++;
    wenv_table kept = tp->kept[index];  /* the storage moves to the entry */
    memset(&tp->kept[index], 0, sizeof kept);
    pthread_mutex_unlock(&tp->lock);

    if (kept.elements != NULL && spec->size <= kept.reserved) {
        /* Zero where a tenant wrote it (wenv_table_release): its elements are uninitialized. */
        e->table = kept;
        e->table.size = spec->size;
        e->table.maximum = maximum;
        e->table.lazy = NULL;
        e->table.lazy_len = 0;
        e->table.vm = NULL;
    } else {
        wenv_table_close(&kept);
        if (wenv_table_open(&e->table, spec->size, maximum, 0) != 0) {
            int err = errno;
            memset(&e->table, 0, sizeof e->table);
            pthread_mutex_lock(&tp->lock);
            wenv_slot_free_locked(tp, index, &e->table);
            pthread_mutex_unlock(&tp->lock);
            errno = err;
            return -1;
        }
    }
    e->slot = index;
    return 0;
}

void wenv_table_release(wenv_table_pool *tp, wenv_instance_table *e, int written)
{
    if (e->slot < 0) {  /* its own reservation (idempotent: elements NULL once released) */
        wenv_table_close(&e->table);
        return;
    }
    uint32_t index = (uint32_t)e->slot;
    wenv_table t = e->table;
    memset(&e->table, 0, sizeof e->table);  /* an empty table from now on */
    e->slot = -1;
    /* Zeroed for the next tenant (wenv_pool_table_reset: memset, or decommit when large);
     * if that fails, the storage is released instead of kept. */
    int keep = !written || wenv_pool_table_reset(&t, 0, t.maximum, 0) == 0;
    pthread_mutex_lock(&tp->lock);
    if (!keep) {
        wenv_table empty;
        memset(&empty, 0, sizeof empty);
        wenv_slot_free_locked(tp, index, &empty);
    } else {
        keep = wenv_slot_free_locked(tp, index, &t);
    }
    int last = tp->freed && tp->live == 0;
    pthread_mutex_unlock(&tp->lock);
    if (!keep)
        wenv_table_close(&t);
    if (last)
        wenv_table_pool_destroy(tp);
}

int64_t wenv_tables_open(wenv_table_pool *tp, const wenv_table_spec *specs, uint32_t count,
                         wenv_instance_table *tables)
{
    for (uint32_t i = 0; i < count; i++) {
        int64_t rc = 0;
        tables[i].slot = -1;
        if (tp != NULL)
            rc = wenv_slot_take(tp, &specs[i], &tables[i]);
        else if (wenv_table_open(&tables[i].table, specs[i].size, specs[i].maximum, 0) != 0)
            rc = -1;
        if (rc != 0) {
            int err = errno;
            while (i-- > 0)
                wenv_table_release(tp, &tables[i], 0);
            errno = err;
            return rc;
        }
    }
    return 0;
}

void wenv_tables_close(wenv_table_pool *tp, uint32_t count, wenv_instance_table *tables)
{
    for (uint32_t i = count; i-- > 0;)
        if (!tables[i].viewed)
            wenv_table_release(tp, &tables[i], 0);
}

int64_t wenv_instance_open_tables(const wenv_memory_spec *spec, wenv_table_pool *tp,
                                  const wenv_table_spec *specs, uint32_t count,
                                  wenv_instance_table *tables)
{
    int64_t handle = wenv_instance_open(spec);
    if (handle < 0 || count == 0)
        return handle;
    int64_t rc = wenv_tables_open(tp, specs, count, tables);
    if (rc != 0) {
        int err = errno;
        wenv_instance_close(spec, handle);
        errno = err;
        return rc;
    }
    return handle;
}

int wenv_instance_close_tables(const wenv_memory_spec *spec, int64_t handle, wenv_table_pool *tp,
                               uint32_t count, wenv_instance_table *tables)
{
    wenv_tables_close(tp, count, tables);
    return wenv_instance_close(spec, handle);
}

/* Zeroing up to this many bytes of a table slot's elements is cheaper than a syscall. */
#define WENV_POOL_TABLE_MEMSET_BYTES ((uint64_t)64 << 10)

int wenv_pool_table_reset(struct wenv_table *t, uint64_t size, uint64_t maximum, uint64_t init_cell)
{
    if (size > t->reserved || size > maximum || t->elements == NULL) {
        errno = ERANGE;
        return -1;
    }
    uint64_t used = t->size * 8;  /* a table never shrinks: nothing past its size was written */
    if (wenv_table_mapped(t)) {   /* (still on the zero region: nothing was written) */
        if (used <= WENV_POOL_TABLE_MEMSET_BYTES) {
            memset(t->elements, 0, (size_t)used);
        } else {
            uint64_t page = (uint64_t)wenv_page_size();
            if (wenv_decommit((uint64_t)(uintptr_t)t->elements, (used + page - 1) / page * page,
                              wenv_reset_default()) != 0)
                return -1;
        }
    }
    t->size = size;
    t->maximum = maximum;
    t->lazy = NULL;
    t->lazy_len = 0;
    t->vm = NULL;
    return init_cell ? wenv_table_fill(t, 0, init_cell, size) : 0;
}
