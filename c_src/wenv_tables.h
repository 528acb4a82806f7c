/*
 * wenv_tables — an instance's defined tables, opened and released together from their
 * specs (computed once per module by runtime/layout.py): each in a reservation of its own
 * (on demand), or in a table slot of a table pool (runtime.PoolingAllocator's table
 * slots: a slot keeps its storage between tenants, zeroed where its last tenant may have
 * written, so a tenancy costs no syscall). With wenv_instance_open/close, one C call
 * opens an instance's only memory and its tables, and one releases them.
 *
 * An instance's tables are an array of wenv_instance_table entries the instance owns (a
 * pointer to an entry is its wenv_table *): released entries read as empty tables
 * (elements NULL, size 0), so a stale pointer never reaches another tenant's elements.
 * Return conventions: wenv.h.
 */
#ifndef WENV_TABLES_H
#define WENV_TABLES_H
#include "wenv.h"
#include "wenv_instance.h"
#include "wenv_table.h"
/* CDEF-BEGIN */

/* One defined table of a module. */
typedef struct wenv_table_spec {
    uint64_t size;       /* elements at instantiation (the type's minimum) */
    uint64_t maximum;    /* grow never passes it (a table pool caps it further) */
} wenv_table_spec;

/* One defined table of an instance. */
typedef struct wenv_instance_table {
    wenv_table table;    /* first: an entry's address is its wenv_table * */
    int64_t slot;        /* its table pool slot, or -1 (a reservation of its own, or released) */
    int64_t viewed;      /* nonzero: a Table view releases it (wenv_table_release), not
                            wenv_tables_close; the view may have written it */
} wenv_instance_table;

typedef struct wenv_table_pool wenv_table_pool;

/* wenv_tables_open's code (besides -1 and wenv_pool.h's): every table slot is in use. */
#define WENV_POOL_NO_TABLE_SLOT -5

/* [addr] A pool of slot_count table slots; its tables grow to at most max_elements. */
wenv_table_pool *wenv_table_pool_new(uint32_t slot_count, uint64_t max_elements);
/* Refuse new tables and release the free slots' storage (later releases release theirs). */
void wenv_table_pool_close(wenv_table_pool *tp);
/* Python lets go of the pool (closing it): it is freed, with every storage it keeps, now
 * or by the release of the last table in use (finalizers run in any order). */
void wenv_table_pool_free(wenv_table_pool *tp);
/* Table slots in use. */
uint64_t wenv_table_pool_live(wenv_table_pool *tp);

/* [handle] Open count tables into the zeroed entries tables[0, count), all or nothing,
 * their elements uninitialized: tp NULL, each a reservation of its own (wenv_table_open);
 * else each in a free slot of tp. 0; -1 (errno: ENOMEM; ERANGE: a size past the pool's
 * max_elements); WENV_POOL_NO_TABLE_SLOT or WENV_POOL_CLOSED (tp was closed). */
int64_t wenv_tables_open(wenv_table_pool *tp, const wenv_table_spec *specs, uint32_t count,
                         wenv_instance_table *tables);
/* Release one entry (nothing if it was released already, so at most once): its own
 * reservation is unmapped; a slot's storage is zeroed where the tenant may have written
 * (with `written`; else only what opening it wrote: nothing) and kept for the next
 * tenant, or released if tp was closed. The entry then reads as an empty table. */
void wenv_table_release(wenv_table_pool *tp, wenv_instance_table *t, int written);
/* wenv_table_release(t, 0) of every entry of tables[0, count) no view holds. */
void wenv_tables_close(wenv_table_pool *tp, uint32_t count, wenv_instance_table *tables);

/* [handle] wenv_instance_open(spec), then wenv_tables_open: all or nothing. */
int64_t wenv_instance_open_tables(const wenv_memory_spec *spec, wenv_table_pool *tp,
                                  const wenv_table_spec *specs, uint32_t count,
                                  wenv_instance_table *tables);
/* wenv_tables_close, then wenv_instance_close(spec, handle) (its result). */
int wenv_instance_close_tables(const wenv_memory_spec *spec, int64_t handle, wenv_table_pool *tp,
                               uint32_t count, wenv_instance_table *tables);

/* [errno] A pool table slot keeps its table's storage between tenants (wenv_tables.h;
 * its release zeroes it with this and size 0): make `t` (open, its last tenant gone) a
 * new table of `size` elements, each WENV_ELEM(init_cell) if
 * init_cell is not null (else uninitialized), growing to at most `maximum`. The elements
 * the last tenant had are zeroed first (nothing on the zero region; memset when small,
 * else their pages decommitted), the lazy array and its instance unbound. ERANGE: size is
 * past the storage's accessible elements or past `maximum` (nothing changed: the caller
 * closes and reopens it); ENOMEM: init_cell's elements could not be mapped. */
int wenv_pool_table_reset(wenv_table *t, uint64_t size, uint64_t maximum, uint64_t init_cell);

/* CDEF-END */
#endif
