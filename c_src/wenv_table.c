/*
 * wenv_table.c — table storage (one mmap'd reservation of 64-bit elements, R/W zero pages,
 * grown in place up to it, else moved to a larger one; until its first write, the process's
 * read-only zero region) and the lazy funcref resolution of wenv_table.h's encoding.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wenv_mman.h"
#include "wenv_table.h"
#include "wenv_interp.h"

/* A new reservation holds at least this many elements (512 KiB of address space). */
#define WENV_TABLE_MIN_RESERVE 65536u
#define WENV_TABLE_MAX_ELEMS ((uint64_t)1 << 40)  /* 8 TiB of elements: address space's end */

static uint64_t wenv_table_bytes(uint64_t elems)
{
    uint64_t page = (uint64_t)wenv_page_size();
    uint64_t bytes = elems * 8;
    return (bytes + page - 1) / page * page;
}

static uint64_t wenv_table_reserve_for(uint64_t size, uint64_t maximum)
{
    uint64_t want = size < WENV_TABLE_MIN_RESERVE / 2 ? WENV_TABLE_MIN_RESERVE : size * 2;
    if (want > maximum)
        want = maximum;
    if (want < size)
        want = size;
    return want ? want : 1;
}

/* A reservation of `reserved` elements, all R/W zero pages in one mmap (a page costs
 * nothing until written; every access is bounds-checked against the size in software,
 * so the elements past it need no PROT_NONE). */
static int wenv_table_map(uint64_t reserved, uint64_t *addr)
{
    if (reserved > WENV_TABLE_MAX_ELEMS) {
        errno = ENOMEM;
        return -1;
    }
    return wenv_map_zeros(wenv_table_bytes(reserved), addr);
}

/* A table opens on the process's one read-only zero region (this much address space,
 * mapped on first use and never unmapped): opening it makes no syscall, every element
 * reads as uninitialized, and the first write maps its own storage (wenv_table_storage).
 * One that does not fit the region, or starts filled with a non-null value, is mapped at
 * once. */
#define WENV_TABLE_ZEROS_BYTES ((uint64_t)1 << 30)

uint64_t *wenv_table_zero_region;   /* NULL until made */
static uint32_t wenv_table_fail;    /* injected failures of a first write's mapping (tests) */

void wenv_table_inject_failures(uint32_t mask)
{
    __atomic_store_n(&wenv_table_fail, mask, __ATOMIC_RELAXED);
}

/* The zero region, made now if not yet (NULL: it could not be). */
static uint64_t *wenv_table_zeros(void)
{
    uint64_t *z = __atomic_load_n(&wenv_table_zero_region, __ATOMIC_ACQUIRE), addr;
    if (WENV_LIKELY(z != NULL))
        return z;
    if (wenv_map_read_zeros(WENV_TABLE_ZEROS_BYTES, &addr) != 0)
        return NULL;
    if (!__atomic_compare_exchange_n(&wenv_table_zero_region, &z, (uint64_t *)(uintptr_t)addr, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        (void)wenv_release(addr, WENV_TABLE_ZEROS_BYTES);  /* another thread made it first */
        return z;
    }
    return (uint64_t *)(uintptr_t)addr;
}

static int wenv_on_zeros(const uint64_t *elements)
{
    return elements != NULL && elements == __atomic_load_n(&wenv_table_zero_region, __ATOMIC_ACQUIRE);
}

int wenv_table_mapped(wenv_table *t)
{
    uint64_t *e = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE);
    return e != NULL && !wenv_on_zeros(e);
}

uint64_t *wenv_table_materialize(wenv_table *t)
{
    uint64_t *zeros = __atomic_load_n(&wenv_table_zero_region, __ATOMIC_ACQUIRE);
    uint64_t *e = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE), addr;
    if (e == NULL || e != zeros)
        return e;  /* its own storage already (or closed: no write gets here, it is out of bounds) */
    uint64_t reserved = t->reserved;
    if (__atomic_load_n(&wenv_table_fail, __ATOMIC_RELAXED) & WENV_FAIL_MAP_ANON) {
        errno = ENOMEM;
        return NULL;
    }
    if (wenv_table_map(reserved, &addr) != 0)
        return NULL;
    /* Another thread may have mapped it (or a grow moved it) meanwhile: its storage wins. */
    if (!__atomic_compare_exchange_n(&t->elements, &e, (uint64_t *)(uintptr_t)addr, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        (void)wenv_release(addr, wenv_table_bytes(reserved));
        return e;
    }
    return (uint64_t *)(uintptr_t)addr;
}

/* [errno] *out = where a write of n elements of t goes: its storage, mapped first if t
 * is on the zero region; a write of nothing maps nothing (*out NULL). -1: ENOMEM. */
static int wenv_table_writing(wenv_table *t, uint64_t n, uint64_t **out)
{
    *out = n ? wenv_table_storage(t) : NULL;
    return n && *out == NULL ? -1 : 0;
}

/* [errno] Elements [from, from + n) are WENV_ELEM(cell). */
static int wenv_table_fill_raw(wenv_table *t, uint64_t from, uint64_t n, uint64_t cell)
{
    uint64_t e = WENV_ELEM(cell), *elements;
    if (wenv_table_writing(t, n, &elements) != 0)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        elements[from + i] = e;
    return 0;
}

int wenv_table_open(wenv_table *t, uint64_t size, uint64_t maximum, uint64_t init_cell)
{
    if (size > maximum) {
        errno = EINVAL;
        return -1;
    }
    uint64_t reserved = wenv_table_reserve_for(size, maximum), addr;
    uint64_t *zeros = NULL;
    if (!init_cell && reserved <= WENV_TABLE_MAX_ELEMS && wenv_table_bytes(reserved) <= WENV_TABLE_ZEROS_BYTES)
        zeros = wenv_table_zeros();
    if (zeros != NULL)
        addr = (uint64_t)(uintptr_t)zeros;
    else if (wenv_table_map(reserved, &addr) != 0)
        return -1;
    t->elements = (uint64_t *)(uintptr_t)addr;
    t->size = size;
    t->maximum = maximum;
    t->reserved = reserved;
    t->retired = NULL;
    if (init_cell)
        (void)wenv_table_fill_raw(t, 0, size, init_cell);  /* (mapped above: cannot fail) */
    return 0;
}

/* A reservation a moving grow left (wenv_table.retired: a list, newest first). */
struct wenv_table_retired {
    uint64_t addr, bytes;
    struct wenv_table_retired *next;
};

void wenv_table_close(wenv_table *t)
{
    if (t->elements != NULL && !wenv_on_zeros(t->elements))
        wenv_release((uint64_t)(uintptr_t)t->elements, wenv_table_bytes(t->reserved));
    for (struct wenv_table_retired *r = t->retired, *next; r != NULL; r = next) {
        next = r->next;
        wenv_release(r->addr, r->bytes);
        free(r);
    }
    t->retired = NULL;
    t->elements = NULL;
    t->size = t->reserved = 0;
}

int64_t wenv_table_grow(wenv_table *t, uint64_t delta, uint64_t init_cell)
{
    uint64_t old = t->size, new_size;
    if (__builtin_add_overflow(old, delta, &new_size) || new_size > t->maximum) {
        errno = ERANGE;
        return -1;
    }
    if (new_size > t->reserved) {  /* move to a larger reservation */
        uint64_t reserved = wenv_table_reserve_for(new_size, t->maximum), addr;
        struct wenv_table_retired *r = malloc(sizeof *r);
        if (r == NULL) {
            errno = ENOMEM;
            return -1;
        }
        if (wenv_table_map(reserved, &addr) != 0) {
            free(r);
            return -1;
        }
        /* A first write on another thread may map the old storage meanwhile: copied again
         * from there (the zero region needs no copy: the new pages read as zeros too). */
        uint64_t *from = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE);
        do {
            if (!wenv_on_zeros(from))
                memcpy((void *)(uintptr_t)addr, from, old * 8);
        } while (!__atomic_compare_exchange_n(&t->elements, &from, (uint64_t *)(uintptr_t)addr, 0,
                                              __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
        uint64_t old_bytes = wenv_table_bytes(t->reserved);
        t->reserved = reserved;
        if (wenv_on_zeros(from)) {
            free(r);  /* nothing to retire */
        } else {
            r->addr = (uint64_t)(uintptr_t)from;
            r->bytes = old_bytes;
            r->next = t->retired;
            t->retired = r;
        }
    }
    /* Elements past the old size were never written: uninitialized reads null there
     * (the lazy array never reaches past a table's minimum). */
    if (init_cell && wenv_table_fill_raw(t, old, delta, init_cell) != 0)
        return -1;  /* ENOMEM: the storage could not be mapped (the size stays) */
    __atomic_store_n(&t->size, new_size, __ATOMIC_RELEASE);
    return (int64_t)old;
}

uint64_t wenv_table_resolve(wenv_table *t, uint64_t index)
{
    /* Null there: nothing to store (a read leaves the page untouched). */
    if (t->lazy == NULL || index >= t->lazy_len || t->lazy[index] == WENV_LAZY_NONE)
        return 0;
    uint64_t cell = (uint64_t)(uintptr_t)wenv_vm_funcref(t->vm, t->lazy[index]);
    uint64_t expected = WENV_ELEM_UNINIT, *elements = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE);
    if (wenv_on_zeros(elements))
        return cell;  /* a table never written: nothing stored (the next read resolves it alike) */
    /* Another thread may have written the element meanwhile: its value wins. */
    if (!__atomic_compare_exchange_n(&elements[index], &expected, WENV_ELEM(cell), 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return WENV_ELEM_CELL(expected);
    return cell;
}

int wenv_table_get(wenv_table *t, uint64_t index, uint64_t *cell)
{
    if (!wenv_table_in_bounds(t, index, 1)) {
        errno = ERANGE;
        return -1;
    }
    *cell = wenv_table_elem(t, index);
    return 0;
}

int wenv_table_names_range(wenv_table *t, uint64_t lo, uint64_t hi)
{
    const uint64_t *elements = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE);
    if (elements == __atomic_load_n(&wenv_table_zero_region, __ATOMIC_ACQUIRE))
        return 0;
    uint64_t n = __atomic_load_n(&t->size, __ATOMIC_ACQUIRE);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t e = __atomic_load_n(&elements[i], __ATOMIC_RELAXED);
        if ((e & WENV_ELEM_TAG) && (e & ~(uint64_t)WENV_ELEM_TAG) >= lo && (e & ~(uint64_t)WENV_ELEM_TAG) < hi)
            return 1;
    }
    return 0;
}

int wenv_table_set(wenv_table *t, uint64_t index, uint64_t cell)
{
    if (!wenv_table_in_bounds(t, index, 1)) {
        errno = ERANGE;
        return -1;
    }
    uint64_t *elements = wenv_table_storage(t);
    if (elements == NULL)
        return -1;
    __atomic_store_n(&elements[index], WENV_ELEM(cell), __ATOMIC_RELEASE);
    return 0;
}

int wenv_table_fill(wenv_table *t, uint64_t index, uint64_t cell, uint64_t n)
{
    if (!wenv_table_in_bounds(t, index, n)) {
        errno = ERANGE;
        return -1;
    }
    return wenv_table_fill_raw(t, index, n, cell);
}

int wenv_table_copy(wenv_table *dst, uint64_t d, wenv_table *src, uint64_t s, uint64_t n)
{
    if (!wenv_table_in_bounds(dst, d, n) || !wenv_table_in_bounds(src, s, n)) {
        errno = ERANGE;
        return -1;
    }
    uint64_t *out;
    if (wenv_table_writing(dst, n, &out) != 0)
        return -1;
    /* Resolved element by element (an uninitialized source means its own index's
     * function, not the destination's), in the direction overlap needs. */
    if (dst == src && d > s) {
        for (uint64_t i = n; i-- > 0;)
            out[d + i] = WENV_ELEM(wenv_table_elem(src, s + i));
    } else {
        for (uint64_t i = 0; i < n; i++)
            out[d + i] = WENV_ELEM(wenv_table_elem(src, s + i));
    }
    return 0;
}

int wenv_table_init_funcs(wenv_table *t, uint64_t d, struct wenv_vm *vm, const uint32_t *funcs, uint64_t n)
{
    if (!wenv_table_in_bounds(t, d, n)) {
        errno = ERANGE;
        return -1;
    }
    /* Every funcref first (made now where not yet): a function without one writes nothing. */
    for (uint64_t i = 0; i < n; i++) {
        if (funcs[i] != WENV_LAZY_NONE && wenv_vm_funcref(vm, funcs[i]) == NULL) {
            errno = EINVAL;
            return -1;
        }
    }
    uint64_t *out;
    if (wenv_table_writing(t, n, &out) != 0)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t cell = funcs[i] == WENV_LAZY_NONE ? 0 : (uint64_t)(uintptr_t)wenv_vm_funcref(vm, funcs[i]);
        out[d + i] = WENV_ELEM(cell);
    }
    return 0;
}

int wenv_table_init(wenv_table *t, uint64_t d, const uint64_t *cells, uint64_t seg_len,
                    uint64_t s, uint64_t n)
{
    if (!wenv_table_in_bounds(t, d, n) || s > seg_len || seg_len - s < n) {
        errno = ERANGE;
        return -1;
    }
    uint64_t *out;
    if (wenv_table_writing(t, n, &out) != 0)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        out[d + i] = WENV_ELEM(cells[s + i]);
    return 0;
}
