/*
 * A table grown (and so moved to a larger reservation) while another thread reads it
 * (issue 13 item 5, issue 15: wasm's call_indirect and table.get read through
 * wenv_table_elem, as wenv_table_get does), driven deterministically:
 * tests/test_table_races.py builds this with c_src/ and -DWENV_TEST_HOOKS (and once
 * more under ThreadSanitizer).
 *
 * Usage: table_races move|stress; prints "ok ..." or "FAIL ..." (exit 1).
 *   move    a read paused after it loaded the table's storage pointer while the main
 *           thread grows the table past its reservation: the read finishes on storage
 *           that is still mapped and still holds the element;
 *   stress  threads read while the main thread grows the table again and again (for
 *           ThreadSanitizer): every read sees the element it was set to;
 *   first   threads make the first writes of a fresh table (on the zero region) at once,
 *           again and again: one storage wins, every write lands in it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wenv_interp.h"
#include "wenv_table.h"

#include "race_harness.h"

/* The tables here are never lazy: nothing resolves through an instance. */
wenv_funcref *wenv_vm_funcref(wenv_vm *vm, uint64_t index)
{
    return NULL;
}

#define CELL 0x5a5a5a50u  /* an element's reference cell (even) */

struct read_call {
    wenv_table *t;
    uint64_t index, cell;
    int rc;
};

static void *read_call(void *arg)
{
    struct read_call *c = arg;
    c->rc = wenv_table_get(c->t, c->index, &c->cell);
    return NULL;
}

static int race_move(void)
{
    wenv_table t;
    memset(&t, 0, sizeof t);
    if (wenv_table_open(&t, 4, (uint64_t)1 << 24, 0) != 0)
        return fail("move: open");
    wenv_table_set(&t, 2, CELL);
    uint64_t reserved = t.reserved;
    uint64_t *before = t.elements;
    struct read_call c = {&t, 2, 0, -1};
    pthread_t th;
    __atomic_store_n(&armed, WENV_HOOK_TABLE_STORAGE_LOADED, __ATOMIC_SEQ_CST);
    pthread_create(&th, NULL, read_call, &c);
    timed_wait(&first_paused, 5000);
    int64_t old = wenv_table_grow(&t, reserved, 0);  /* past the reservation: it moves */
    sem_post(&second_done);
    pthread_join(th, NULL);
    if (old != 4 || t.elements == before)
        return fail("move: the grow did not move the table");
    if (c.rc != 0 || c.cell != CELL) {
        printf("FAIL move: the read in flight got %#llx (rc %d), not the element\n",
               (unsigned long long)c.cell, c.rc);
        return 1;
    }
    uint64_t cell = 0;
    if (wenv_table_get(&t, 2, &cell) != 0 || cell != CELL)
        return fail("move: the element did not move with the table");
    wenv_table_close(&t);
    printf("ok move: the read in flight finished on the old storage\n");
    return 0;
}

#define STRESS_THREADS 3
#define STRESS_GROWS 6

static wenv_table stress_table;
static int stress_done;
static uint64_t stress_reads;

static void *stress_read(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stress_done, __ATOMIC_ACQUIRE)) {
        uint64_t cell = 0;
        if (wenv_table_get(&stress_table, 2, &cell) != 0 || cell != CELL) {
            printf("FAIL stress: a read got %#llx\n", (unsigned long long)cell);
            exit(1);
        }
        __atomic_add_fetch(&stress_reads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int stress(void)
{
    if (wenv_table_open(&stress_table, 4, (uint64_t)1 << 30, 0) != 0)
        return fail("stress: open");
    wenv_table_set(&stress_table, 2, CELL);
    pthread_t th[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_create(&th[i], NULL, stress_read, NULL);
    int moves = 0;
    for (int g = 0; g < STRESS_GROWS; g++) {
        uint64_t *before = __atomic_load_n(&stress_table.elements, __ATOMIC_ACQUIRE);
        /* one element past the reservation: a move (the table doubles, 4 MiB at the end) */
        if (wenv_table_grow(&stress_table, stress_table.reserved - stress_table.size + 1, 0) < 0)
            return fail("stress: grow");
        moves += __atomic_load_n(&stress_table.elements, __ATOMIC_ACQUIRE) != before;
    }
    __atomic_store_n(&stress_done, 1, __ATOMIC_RELEASE);
    if (moves != STRESS_GROWS)
        return fail("stress: a grow did not move the table");
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(th[i], NULL);
    wenv_table_close(&stress_table);
    printf("ok stress: %d moves, %llu reads\n", moves, (unsigned long long)stress_reads);
    return 0;
}

#define FIRST_THREADS 4
#define FIRST_EACH 16
#define FIRST_ROUNDS 200

static wenv_table first_table;

static void *first_write(void *arg)
{
    uint64_t k0 = (uint64_t)(uintptr_t)arg * FIRST_EACH;
    for (uint64_t k = k0; k < k0 + FIRST_EACH; k++)
        if (wenv_table_set(&first_table, k, CELL + 8 * k) != 0) {
            printf("FAIL first: a write failed (errno %d)\n", errno);
            exit(1);
        }
    return NULL;
}

static int first_writes(void)
{
    for (int r = 0; r < FIRST_ROUNDS; r++) {
        if (wenv_table_open(&first_table, FIRST_THREADS * FIRST_EACH, (uint64_t)1 << 20, 0) != 0)
            return fail("first: open");
        if (wenv_table_mapped(&first_table))
            return fail("first: a fresh table has storage of its own");
        pthread_t th[FIRST_THREADS];
        for (int i = 0; i < FIRST_THREADS; i++)
            pthread_create(&th[i], NULL, first_write, (void *)(uintptr_t)i);
        for (int i = 0; i < FIRST_THREADS; i++)
            pthread_join(th[i], NULL);
        if (!wenv_table_mapped(&first_table))
            return fail("first: written, yet on the zero region");
        for (uint64_t k = 0; k < FIRST_THREADS * FIRST_EACH; k++) {
            uint64_t cell = 0;
            if (wenv_table_get(&first_table, k, &cell) != 0 || cell != CELL + 8 * k) {
                printf("FAIL first: element %llu lost (%#llx)\n", (unsigned long long)k,
                       (unsigned long long)cell);
                return 1;
            }
        }
        wenv_table_close(&first_table);
    }
    printf("ok first: %d rounds of %d threads\n", FIRST_ROUNDS, FIRST_THREADS);
    return 0;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    race_init(5000);
    if (!strcmp(what, "move"))
        return race_move();
    if (!strcmp(what, "stress"))
        return stress();
    if (!strcmp(what, "first"))
        return first_writes();
    return fail("usage: table_races move|stress|first");
}
