/*
 * wenv_table — native wasm tables: 64-bit elements in an mmap'd reservation, and the
 * one encoding rule of references in cells and in table elements.
 *
 * A reference *cell* (a wasm stack slot, a global, an argument) is a uint64_t:
 *   0                      null;
 *   a funcref              the address of its wenv_funcref (wenv_interp.h: function, canonical
 *                          type id, its instance's wenv_vm or NULL for a host function);
 *   an externref           a key of the store's registry (runtime/refs.py), even.
 * Every non-null cell has its low bit clear.
 *
 * A table *element* is WENV_ELEM(cell) (the low bit set) once initialized, and
 * WENV_ELEM_UNINIT (0) before: a 0 element reads as the function the module's
 * precomputed array (wenv_table.lazy) names for its index, resolved by
 * wenv_vm_funcref to the defining instance's funcref record and stored on first read
 * (from C and from Python alike: both read through wenv_table_get / wenv_table_elem);
 * beyond the array, or for a NONE entry, as null. Untouched elements are zero pages:
 * a table costs no resident memory until written, and no syscall either: it opens on the
 * process's read-only zero region and maps its own storage on its first write
 * (wenv_table_storage; wenv_table.c).
 */
#ifndef WENV_TABLE_H
#define WENV_TABLE_H
#include <stdint.h>
#include "wenv.h"
/* CDEF-BEGIN */

#define WENV_ELEM_UNINIT 0
#define WENV_ELEM_TAG 1
#define WENV_LAZY_NONE 4294967295   /* a lazy array's "null here" (UINT32_MAX) */

struct wenv_vm;   /* the instance state (wenv_interp.h): its funcref records */

/* A table. Its first two fields are a table definition of the instance block
 * (elements pointer, size in elements). */
typedef struct wenv_table {
    uint64_t *elements;
    uint64_t size;
    uint64_t maximum;           /* grow never passes it (the type's maximum, a pool's cap) */
    uint64_t reserved;          /* elements the reservation holds, all R/W (>= size) */
    const uint32_t *lazy;       /* the module's function index per element, or NULL */
    uint64_t lazy_len;
    struct wenv_vm *vm;         /* the defining instance: resolves `lazy` (wenv_vm_funcref; NULL when lazy is) */
    void *retired;              /* storage left by moving grows: reads in flight may still be in it (wenv_table_close releases it) */
} wenv_table;

/* [errno] Open `t` with `size` elements, each WENV_ELEM(init_cell) if init_cell is not
 * null (its storage mapped now), else uninitialized (on the zero region while it fits).
 * ENOMEM; EINVAL if size > maximum. The writes below fail with ERANGE out of bounds, and
 * with ENOMEM (nothing written) when a first write cannot map the table's storage. */
int wenv_table_open(wenv_table *t, uint64_t size, uint64_t maximum, uint64_t init_cell);
/* Release the reservation, and those moving grows left (idempotent; no read in flight). */
void wenv_table_close(wenv_table *t);
/* The old size, or -1: past the maximum (errno ERANGE) or out of memory (ENOMEM). A grow
 * past the reservation moves the elements to a larger one; the old one stays mapped, as
 * it was, until wenv_table_close: a read in flight on another thread (it loaded the
 * storage pointer before the move) still finds its element there. A write in flight
 * there is lost (a data race on a table, as on a non-shared memory: the program's). */
int64_t wenv_table_grow(wenv_table *t, uint64_t delta, uint64_t init_cell);
/* [errno] *cell = the element at `index` (resolved). ERANGE: out of bounds. */
int wenv_table_get(wenv_table *t, uint64_t index, uint64_t *cell);
/* 1 if an initialized element of `t` is a funcref cell in [lo, hi) (an instance's
 * funcref records: wasm code stored one of its functions there), else 0. Lazy elements
 * never name an importer's records; a table on the zero region holds none. */
int wenv_table_names_range(wenv_table *t, uint64_t lo, uint64_t hi);
/* [errno] ERANGE: out of bounds (nothing written). */
int wenv_table_set(wenv_table *t, uint64_t index, uint64_t cell);
int wenv_table_fill(wenv_table *t, uint64_t index, uint64_t cell, uint64_t n);
/* [errno] table.copy, overlapping ranges allowed (sources resolved first). */
int wenv_table_copy(wenv_table *dst, uint64_t d, wenv_table *src, uint64_t s, uint64_t n);
/* [errno] table.init / an element segment: cells[s .. s+n) of a segment of seg_len cells. */
int wenv_table_init(wenv_table *t, uint64_t d, const uint64_t *cells, uint64_t seg_len,
                    uint64_t s, uint64_t n);
/* [errno] An element segment of function indices: elements [d, d+n) get the funcref
 * cells of functions funcs[0..n) of vm (WENV_LAZY_NONE: null), made now where not yet.
 * ERANGE: out of bounds; EINVAL: a function with no funcref (nothing written either way). */
int wenv_table_init_funcs(wenv_table *t, uint64_t d, struct wenv_vm *vm, const uint32_t *funcs, uint64_t n);
/* 1 if `t` has storage of its own (written since it opened), 0 on the zero region or closed. */
int wenv_table_mapped(wenv_table *t);
/* Tests: a first write's mapping fails (ENOMEM) while `mask` holds WENV_FAIL_MAP_ANON. */
void wenv_table_inject_failures(uint32_t mask);

/* CDEF-END */

#define WENV_ELEM(cell) ((cell) | WENV_ELEM_TAG)
#define WENV_ELEM_CELL(e) ((e) & ~(uint64_t)WENV_ELEM_TAG)

WENV_INTERNAL uint64_t wenv_table_resolve(wenv_table *t, uint64_t index);
WENV_INTERNAL extern uint64_t *wenv_table_zero_region;
/* [errno] t's storage, mapped now if t is on the zero region (NULL: it could not be). */
WENV_INTERNAL uint64_t *wenv_table_materialize(wenv_table *t);

/* [errno] Where a write to t goes: its storage, mapped on the first write (NULL: ENOMEM). */
static inline uint64_t *wenv_table_storage(wenv_table *t)
{
    uint64_t *e = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE);
    if (WENV_LIKELY(e != __atomic_load_n(&wenv_table_zero_region, __ATOMIC_ACQUIRE)))
        return e;
    return wenv_table_materialize(t);
}

/* The cell at an in-bounds `index` (the interpreter's table.get). */
static inline uint64_t wenv_table_elem(wenv_table *t, uint64_t index)
{
    uint64_t *elements = __atomic_load_n(&t->elements, __ATOMIC_ACQUIRE);
    WENV_HOOK(WENV_HOOK_TABLE_STORAGE_LOADED);
    uint64_t e = __atomic_load_n(&elements[index], __ATOMIC_ACQUIRE);
    return WENV_LIKELY(e != WENV_ELEM_UNINIT) ? WENV_ELEM_CELL(e) : wenv_table_resolve(t, index);
}

/* Is [index, index + n) inside the table? */
static inline int wenv_table_in_bounds(const wenv_table *t, uint64_t index, uint64_t n)
{
    uint64_t size = __atomic_load_n(&t->size, __ATOMIC_ACQUIRE);
    return index <= size && size - index >= n;
}
#endif
