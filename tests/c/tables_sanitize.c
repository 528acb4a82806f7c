/*
 * Drives c_src/wenv_tables.c directly under AddressSanitizer/UBSan (tests/test_tables.py
 * builds and runs it): random open / write / grow / release sequences of instances'
 * tables, on demand and from a table pool, checking after every open that each table
 * has its size and maximum and reads only uninitialized elements (nothing of an earlier
 * tenant), that a released entry reads as an empty table, that a refused open leaves
 * nothing taken, and that the pool is freed (with every storage it kept) by whichever
 * comes last: Python letting go of it, or the last release (LeakSanitizer checks).
 * Usage: tables_sanitize ITERATIONS SEED; prints "ok <opens>" or exits non-zero.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wenv_tables.h"
#include "wenv_interp.h"
#include "sanitize_harness.h"

/* wenv_table.c resolves lazy elements through the interpreter: never reached here (no
 * entry gets a lazy array). */
wenv_funcref *wenv_vm_funcref(wenv_vm *vm, uint64_t index)
{
    abort();
}

#define INSTANCES 6
#define TABLES 3
#define MAX_ELEMS 40000u


typedef struct {
    int open;
    wenv_instance_table t[TABLES];
    wenv_table_spec specs[TABLES];
    int written[TABLES];
} inst;

/* Check entry `e` is a fresh table of `spec` (maximum capped by `cap`). */
static int check_fresh(const wenv_instance_table *e, const wenv_table_spec *spec, uint64_t cap)
{
    uint64_t maximum = spec->maximum < cap ? spec->maximum : cap;
    if (e->table.size != spec->size || e->table.maximum != maximum || e->table.elements == NULL
        || e->table.reserved < spec->size || e->table.lazy != NULL || e->table.vm != NULL)
        return 0;
    for (uint64_t k = 0; k < e->table.size; k++)
        if (e->table.elements[k] != WENV_ELEM_UNINIT)
            return 0;
    return 1;
}

static int check_empty(const wenv_instance_table *e)
{
    return e->table.elements == NULL && e->table.size == 0 && e->slot == -1;
}

/* Dirty a table the way its tenant may: write every element, sometimes grow and fill. */
static void dirty(wenv_instance_table *e)
{
    uint64_t *elements = e->table.size ? wenv_table_storage(&e->table) : NULL;  /* its first write maps it */
    if (e->table.size && (elements == NULL || !wenv_table_mapped(&e->table)))
        abort();
    for (uint64_t k = 0; k < e->table.size; k++)
        elements[k] = WENV_ELEM((uint64_t)0xA0 + 2 * k);
    if (rnd() % 3 == 0 && e->table.size < e->table.maximum) {
        uint64_t delta = 1 + rnd() % (e->table.maximum - e->table.size);
        wenv_table_grow(&e->table, delta, 0x1230);
    }
}

static long run(long iterations, int pooled)
{
    wenv_table_pool *tp = pooled ? wenv_table_pool_new(INSTANCES * TABLES, MAX_ELEMS) : NULL;
    uint64_t cap = pooled ? MAX_ELEMS : UINT64_MAX;
    inst insts[INSTANCES];
    long opens = 0;
    memset(insts, 0, sizeof insts);
    if (pooled && tp == NULL)
        return fail("wenv_table_pool_new", 0), -1;
    for (long i = 0; i < iterations; i++) {
        inst *in = &insts[rnd() % INSTANCES];
        uint32_t count = 1 + rnd() % TABLES;
        if (!in->open) {
            memset(in->t, 0, sizeof in->t);
            for (uint32_t k = 0; k < count; k++) {
                static const uint64_t sizes[] = {0, 1, 4, 100, 9403, 20000};
                in->specs[k].size = sizes[rnd() % 6];
                in->specs[k].maximum = rnd() % 2 ? MAX_ELEMS + 10000 : in->specs[k].size + rnd() % 50;
            }
            int64_t rc = wenv_tables_open(tp, in->specs, count, in->t);
            if (rc != 0) {
                if (!pooled || rc != WENV_POOL_NO_TABLE_SLOT)
                    return fail("wenv_tables_open refused", i), -1;
                for (uint32_t k = 0; k < count; k++)  /* all or nothing */
                    if (in->t[k].table.elements != NULL)
                        return fail("a refused open left a table open", i), -1;
                continue;
            }
            opens++;
            for (uint32_t k = 0; k < count; k++) {
                if (!check_fresh(&in->t[k], &in->specs[k], cap))
                    return fail("an opened table is not fresh", i), -1;
                if ((in->t[k].slot >= 0) != pooled)
                    return fail("slot", i), -1;
                if (!pooled && wenv_table_mapped(&in->t[k].table))  /* on the zero region until written */
                    return fail("a fresh table mapped storage of its own", i), -1;
                in->written[k] = rnd() % 2;
                if (in->written[k])
                    dirty(&in->t[k]);
                in->t[k].viewed = in->written[k] && rnd() % 2;  /* a view owns it */
            }
            in->open = (int)count;
        } else {
            uint32_t n = (uint32_t)in->open;
            for (uint32_t k = 0; k < n; k++)  /* the views first, as Instance.close */
                if (in->t[k].viewed)
                    wenv_table_release(tp, &in->t[k], 1);
            /* Unviewed ones written are released as written (never so from Python: it
             * needs a view to write), the rest in one call. */
            for (uint32_t k = 0; k < n; k++)
                if (!in->t[k].viewed && in->written[k])
                    wenv_table_release(tp, &in->t[k], 1);
            wenv_tables_close(tp, n, in->t);
            for (uint32_t k = 0; k < n; k++) {
                if (in->t[k].viewed)
                    continue;
                if (!check_empty(&in->t[k]))
                    return fail("a released entry is not empty", i), -1;
            }
            for (uint32_t k = 0; k < n; k++)
                wenv_table_release(tp, &in->t[k], 1);  /* again: nothing happens */
            in->open = 0;
        }
    }
    if (pooled) {
        uint64_t live = 0;
        for (int j = 0; j < INSTANCES; j++)
            if (insts[j].open)
                live += (uint64_t)insts[j].open;
        if (wenv_table_pool_live(tp) != live)
            return fail("live count", iterations), -1;
        /* Python lets go while tables are in use: the last release frees the pool. */
        wenv_table_pool_close(tp);
        wenv_table_pool_free(tp);
    }
    for (int j = 0; j < INSTANCES; j++)
        for (int k = 0; k < insts[j].open; k++)
            wenv_table_release(tp, &insts[j].t[k], 1);
    return opens;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 1000;
    rng_state = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    long total = 0;
    for (int pooled = 0; pooled < 2; pooled++) {
        long opens = run(iterations, pooled);
        if (opens < 0)
            return 1;
        total += opens;
    }
    printf("ok %ld\n", total);
    return 0;
}
