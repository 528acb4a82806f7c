/*
 * A memory closed while an access is in flight on it (issue 13 item 5), driven
 * deterministically: tests/test_memory_races.py builds this with c_src/ and
 * -DWENV_TEST_HOOKS (and once more under ThreadSanitizer).
 *
 * wenv_test_hook() pauses the first thread that reaches the armed hook point (an access
 * that has entered its memory) until the main thread has closed that memory and taken
 * the pool's next slot for a new tenant.
 *
 * Usage: memory_races close|close-marked|stress; prints "ok ..." or "FAIL ..." (exit 1).
 *   close   a fill paused inside a pooled memory while it is closed: the next tenant
 *           never sees its bytes, and the slot is given back when the fill has finished
 *           (the fill counted in `users`: its thread's first access);
 *   close-marked  the same, the fill marked in its thread's hazard record instead (its
 *           thread's second access: wenv_memory.c, "accessors' marks");
 *   stress  threads access memories while they are closed and reopened (for
 *           ThreadSanitizer): each slot goes back exactly once per tenancy, and every
 *           access after a close is refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wenv_instance.h"
#include "wenv_memory.h"
#include "wenv_mman.h"
#include "wenv_pool.h"
#include "wenv_traps.h"

#define SLOTS 2
#define WPAGE 65536u
#define BOUND (8 * (uint64_t)WPAGE)
#define STRIDE (BOUND + WPAGE)

/* How a memory over a pool slot is owned and closed: the descriptor releases the slot
 * (wenv_memory_own_pool_slot), when the last access in flight has left. */
#define OWN_SLOT(m, p, slot) wenv_memory_own_pool_slot((m), (p), (uint32_t)(slot), 1)
#define CLOSE_MEMORY(m, p, slot) wenv_memory_close(m)

#include "race_harness.h"

/* A tenant: a slot taken for one page, and the memory descriptor over it. */
static int64_t open_tenant(wenv_pool *p, wenv_memory *m)
{
    wenv_memory_spec spec = plain_spec(1);
    int64_t slot = wenv_pool_take(p, &spec, 1);
    if (slot < 0)
        return slot;
    uint64_t base = wenv_pool_slot_base(p, (uint32_t)slot);
    memset(m, 0, sizeof *m);
    wenv_memory_init(m, base, WPAGE, BOUND, WPAGE, base, base + STRIDE, WENV_MEM_STATIC, BOUND / WPAGE);
    OWN_SLOT(m, p, slot);
    return slot;
}

static int zero_bytes(wenv_memory *m)
{
    static char buf[WPAGE];
    if (wenv_read(m, 0, buf, WPAGE) != WENV_OK)
        return 0;
    for (unsigned i = 0; i < WPAGE; i++)
        if (buf[i])
            return 0;
    return 1;
}

struct fill_call {
    wenv_memory *m;
    int warm;  /* an access first: the fill then marks itself instead of counting */
    int status;
};

static void *fill_call(void *arg)
{
    struct fill_call *c = arg;
    if (c->warm) {
        if (wenv_load_i32(c->m, 0, 0) != 0)
            c->status = -2;
        __atomic_store_n(&armed, WENV_HOOK_ACCESS_ENTERED, __ATOMIC_SEQ_CST);
    }
    c->status = wenv_fill(c->m, 0, 0xAA, WPAGE);
    return NULL;
}

#define USERS_COUNT(m) (__atomic_load_n(&(m)->users, __ATOMIC_SEQ_CST) & ~((uint64_t)3 << 62))

/* warm: the fill is the thread's second access, marked in its hazard record (the first
 * counted itself in `users`); else its first, counted. */
static int race_close(wenv_pool *p, int warm)
{
    wenv_memory a, b;
    int64_t slot_a = open_tenant(p, &a);
    if (slot_a < 0)
        return fail("close: take");
    struct fill_call c = {&a, warm, -1};
    pthread_t t;
    if (!warm)
        __atomic_store_n(&armed, WENV_HOOK_ACCESS_ENTERED, __ATOMIC_SEQ_CST);
    pthread_create(&t, NULL, fill_call, &c);
    timed_wait(&first_paused, 5000);
    if (USERS_COUNT(&a) != (warm ? 0u : 1u) || !__atomic_load_n(&a.marked, __ATOMIC_SEQ_CST))
        return printf("FAIL close: the fill in flight did not enter as expected: %llu users, marked %u\n", (unsigned long long)USERS_COUNT(&a), a.marked), 1;
    CLOSE_MEMORY(&a, p, slot_a);         /* returns at once: the fill is still in flight */
    int64_t slot_b = open_tenant(p, &b); /* the next tenant */
    int clean_before = slot_b >= 0 && zero_bytes(&b);
    sem_post(&second_done);
    pthread_join(t, NULL);
    if (slot_b < 0)
        return fail("close: the next tenant got no slot");
    if (slot_b == slot_a)
        return fail("close: the slot went back to the pool while an access was in flight on it");
    if (!clean_before || !zero_bytes(&b)) {
        printf("FAIL close: the next tenant (slot %lld) saw bytes written through the closed memory "
               "(slot %lld)\n", (long long)slot_b, (long long)slot_a);
        return 1;
    }
    uint64_t st[5];
    wenv_pool_stats(p, st);
    if (st[1] != 1) /* the closed memory's slot went back once its fill finished */
        return fail("close: the closed memory's slot was not given back after its fill");
    if (wenv_fill(&a, 0, 0xBB, 1) != WENV_CLOSED)
        return fail("close: an access after close was not refused");
    CLOSE_MEMORY(&b, p, slot_b);
    wenv_pool_stats(p, st);
    if (st[0] || st[1])
        return fail("close: the pool is not empty at the end");
    printf("ok close: fill status %d (%s), next tenant in slot %lld, clean\n", c.status,
           warm ? "marked" : "counted", (long long)slot_b);
    return 0;
}

#define STRESS_THREADS 4
#define STRESS_ROUNDS 400

/* Round r's memory is a tenant opened by the main thread (opened > r) and closed once
 * the next round's is open; the threads access each round's memory until it is refused. */
static wenv_memory stress_mems[STRESS_ROUNDS];
static int stress_opened;
static uint64_t stress_refused;

static void *stress_access(void *arg)
{
    uint64_t own = (uint64_t)(uintptr_t)arg * 1024; /* each thread's bytes: no wasm-level race */
    for (int r = 0; r < STRESS_ROUNDS; r++) {
        while (__atomic_load_n(&stress_opened, __ATOMIC_ACQUIRE) <= r)
            sched_yield();
        wenv_memory *m = &stress_mems[r];
        for (int i = 0;; i++) {
            int st = wenv_fill(m, own + (uint64_t)(i % 16) * 64, r & 0xff, 64);
            if (st == WENV_OK && wenv_load_i32(m, own, 0) == INT64_MIN)
                st = wenv_last_status();
            if (st == WENV_CLOSED) {
                __atomic_add_fetch(&stress_refused, 1, __ATOMIC_RELAXED);
                break;
            }
            if (st != WENV_OK) {
                printf("FAIL stress: status %d on an open memory\n", st);
                exit(1);
            }
        }
    }
    return NULL;
}

static int stress(wenv_pool *p)
{
    if (open_tenant(p, &stress_mems[0]) < 0)
        return fail("stress: take");
    __atomic_store_n(&stress_opened, 1, __ATOMIC_RELEASE);
    pthread_t t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_create(&t[i], NULL, stress_access, (void *)(uintptr_t)i);
    for (int r = 0; r < STRESS_ROUNDS; r++) {
        if (r + 1 < STRESS_ROUNDS) {
            int64_t next; /* a slot frees once the accesses to round r - 1's memory left */
            while ((next = open_tenant(p, &stress_mems[r + 1])) == WENV_POOL_NO_SLOT
                   || next == WENV_POOL_MAX_INSTANCES)
                sched_yield();
            if (next < 0)
                return fail("stress: take");
            __atomic_store_n(&stress_opened, r + 2, __ATOMIC_RELEASE);
        }
        usleep(20);
        wenv_memory_close(&stress_mems[r]);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(t[i], NULL);
    uint64_t st[5];
    wenv_pool_stats(p, st);
    if (st[0] || st[1] || st[4] || st[3] != st[2])
        return fail("stress: the pool is not empty at the end (a slot released twice or never)");
    printf("ok stress: %d tenancies, %llu accesses refused after a close\n", STRESS_ROUNDS,
           (unsigned long long)stress_refused);
    return 0;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    race_init(5000);
    if (wenv_trap_handler_install() != 0)
        return fail("wenv_trap_handler_install");
    char *resv;
    wenv_pool *p = new_pool(&resv);
    if (p == NULL)
        return fail("wenv_pool_new");
    int rc;
    if (!strcmp(what, "close"))
        rc = race_close(p, 0);
    else if (!strcmp(what, "close-marked"))
        rc = race_close(p, 1);
    else if (!strcmp(what, "stress"))
        rc = stress(p);
    else
        return fail("usage: memory_races close|close-marked|stress");
    wenv_pool_close(p);
    wenv_pool_free(p);
    munmap(resv, WPAGE + SLOTS * STRIDE);
    return rc;
}
