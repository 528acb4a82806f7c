/*
 * The pool's race windows, driven deterministically (tests/test_wenv_pool.py builds this
 * with c_src/ and -DWENV_TEST_HOOKS, and once more under ThreadSanitizer).
 *
 * wenv_test_hook() pauses the first thread that reaches the armed hook point until a
 * second thread's call has returned (or a timeout passed: after a fix the second call
 * may have to wait for the first), so each scenario runs the second call inside the
 * first one's window every time.
 *
 * Usage: pool_races put|end|grow|stress; prints "ok ..." or "FAIL ..." (exit 1).
 *   put     two puts of the same slot: exactly one is refused (EINVAL) and the free list
 *           holds the slot once;
 *   end     ending more instances than are live is refused (EINVAL), never wraps;
 *   grow    slot_state during a grow reports the size the slot's pages are made R/W for;
 *   stale   a grow naming an earlier tenancy of its slot is refused (ESTALE) and opens
 *           no page of the slot's next tenant;
 *   stress  threads take/grow/put and read the slot state at once (for ThreadSanitizer).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wenv_mman.h"
#include "wenv_pool.h"

#define SLOTS 4
#define WPAGE 65536u
#define BOUND (8 * (uint64_t)WPAGE)

#include "race_harness.h"

/* Every slot can be taken exactly once more, and then none: the free list is sound. */
static int free_list_sound(wenv_pool *p)
{
    uint64_t st[5];
    wenv_pool_stats(p, st);
    if (st[0] || st[1] || st[4] || st[3] != st[2])
        return 0;
    wenv_memory_spec spec = plain_spec(1);
    int seen[SLOTS] = {0};
    for (int i = 0; i < SLOTS; i++) {
        int64_t s = wenv_pool_take(p, &spec, 1);
        if (s < 0 || s >= SLOTS || seen[s]++)
            return 0;
    }
    if (wenv_pool_take(p, &spec, 0) != WENV_POOL_NO_SLOT)
        return 0;
    for (uint32_t i = 0; i < SLOTS; i++)
        if (wenv_pool_put(p, i, 1) != 0)
            return 0;
    return 1;
}

struct call {
    wenv_pool *pool;
    uint32_t slot;
    int rc, err;
    uint64_t state[6];
};

static void *put_call(void *arg)
{
    struct call *c = arg;
    c->rc = wenv_pool_put(c->pool, c->slot, 1);
    c->err = errno;
    return NULL;
}

static void *grow_call(void *arg)
{
    struct call *c = arg;
    c->rc = wenv_pool_grow(c->pool, c->slot, wenv_pool_slot_tenancy(c->pool, c->slot), 3 * WPAGE);
    c->err = errno;
    return NULL;
}

/* The first call pauses in its window; the second runs there, then the first goes on. */
static void race(void *(*first)(void *), struct call *a, void *(*second)(void *), struct call *b,
                 enum wenv_hook_point point)
{
    pthread_t ta, tb;
    __atomic_store_n(&paused, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&armed, point, __ATOMIC_SEQ_CST);
    pthread_create(&ta, NULL, first, a);
    timed_wait(&first_paused, 5000);
    pthread_create(&tb, NULL, second, b);
    pthread_join(tb, NULL);
    sem_post(&second_done);
    pthread_join(ta, NULL);
    __atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
    while (sem_trywait(&second_done) == 0)
        ;
}

static int race_put(wenv_pool *p)
{
    wenv_memory_spec spec = plain_spec(1);
    int64_t slot = wenv_pool_take(p, &spec, 1);
    if (slot < 0)
        return fail("take");
    struct call a = {p, (uint32_t)slot, 0, 0, {0}}, b = a;
    race(put_call, &a, put_call, &b, WENV_HOOK_POOL_PUT_CHECKED);
    int refused = (a.rc == -1 && a.err == EINVAL) + (b.rc == -1 && b.err == EINVAL);
    if (refused != 1 || (a.rc != 0 && b.rc != 0)) {
        printf("FAIL put: rc %d/%d errno %d/%d (exactly one must be refused with EINVAL)\n", a.rc, b.rc,
               a.err, b.err);
        return 1;
    }
    if (!free_list_sound(p))
        return fail("put: the free list holds the slot twice or the counters are off");
    printf("ok put: first %d, second %d (errno %d)\n", a.rc, b.rc, b.err);
    return 0;
}

static void *end_call(void *arg)
{
    struct call *c = arg;
    c->rc = wenv_pool_end(c->pool);
    c->err = errno;
    return NULL;
}

static int race_end(wenv_pool *p)
{
    if (wenv_pool_begin(p) != 0)
        return fail("begin");
    struct call a = {p, 0, 0, 0, {0}}, b = a;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, end_call, &a);
    pthread_create(&tb, NULL, end_call, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    uint64_t st[5];
    wenv_pool_stats(p, st);
    int refused = (a.rc == -1 && a.err == EINVAL) + (b.rc == -1 && b.err == EINVAL);
    if (refused != 1 || st[0] != 0) {
        printf("FAIL end: rc %d/%d, live instances %llu (one end for one instance)\n", a.rc, b.rc,
               (unsigned long long)st[0]);
        return 1;
    }
    /* a put that would end an instance nobody counted is refused too, changing nothing */
    wenv_memory_spec spec = plain_spec(1);
    int64_t slot = wenv_pool_take(p, &spec, 0);
    errno = 0;
    if (slot < 0 || wenv_pool_put(p, (uint32_t)slot, 1) != -1 || errno != EINVAL)
        return fail("end: put ending an instance that is not live was accepted");
    wenv_pool_stats(p, st);
    if (st[0] != 0 || st[1] != 1 || wenv_pool_put(p, (uint32_t)slot, 0) != 0)
        return fail("end: the refused put changed the counters");
    if (!free_list_sound(p))
        return fail("end: the free list or the counters are off");
    printf("ok end\n");
    return 0;
}

static void *state_call(void *arg)
{
    struct call *c = arg;
    c->rc = wenv_pool_slot_state(c->pool, c->slot, c->state);
    return NULL;
}

static int stale_grow(wenv_pool *p)
{
    wenv_memory_spec spec = plain_spec(1);
    int64_t slot = wenv_pool_take(p, &spec, 1);
    if (slot < 0)
        return fail("take");
    uint32_t tenancy = wenv_pool_slot_tenancy(p, (uint32_t)slot);
    if (wenv_pool_put(p, (uint32_t)slot, 1) != 0 || wenv_pool_take(p, &spec, 1) != slot)
        return fail("stale: the slot was not taken again (LIFO)");
    errno = 0;
    int rc = wenv_pool_grow(p, (uint32_t)slot, tenancy, 3 * WPAGE);
    int err = errno;
    uint64_t state[6];
    wenv_pool_slot_state(p, (uint32_t)slot, state);
    if (rc != -1 || err != ESTALE || state[2] != WPAGE) {
        printf("FAIL stale: grow of an earlier tenancy returned %d (errno %d), next tenant accessible %#llx\n",
               rc, err, (unsigned long long)state[2]);
        return 1;
    }
    if (wenv_pool_grow(p, (uint32_t)slot, wenv_pool_slot_tenancy(p, (uint32_t)slot), 2 * WPAGE) != 0)
        return fail("stale: a grow of the current tenancy failed");
    if (wenv_pool_put(p, (uint32_t)slot, 1) != 0 || !free_list_sound(p))
        return fail("stale: the free list or the counters are off");
    printf("ok stale\n");
    return 0;
}

static int race_grow(wenv_pool *p)
{
    wenv_memory_spec spec = plain_spec(1);
    int64_t slot = wenv_pool_take(p, &spec, 1);
    if (slot < 0)
        return fail("take");
    struct call a = {p, (uint32_t)slot, 0, 0, {0}}, b = a;
    wait_ms = 300; /* after the fix slot_state waits for the grow: do not wait long for it */
    race(grow_call, &a, state_call, &b, WENV_HOOK_POOL_GROW_PROTECTED);
    if (a.rc != 0 || b.rc != 0)
        return fail("grow: a call failed");
    if (b.state[2] != 3 * WPAGE) {
        printf("FAIL grow: slot_state saw accessible %#llx while the pages up to %#x were R/W\n",
               (unsigned long long)b.state[2], 3 * WPAGE);
        return 1;
    }
    if (wenv_pool_put(p, (uint32_t)slot, 1) != 0 || !free_list_sound(p))
        return fail("grow: the free list or the counters are off");
    printf("ok grow\n");
    return 0;
}

/* ---- stress (ThreadSanitizer): every pool call at once ---- */

static void *stress_worker(void *arg)
{
    wenv_pool *p = arg;
    wenv_memory_spec spec = plain_spec(1);
    for (int i = 0; i < 2000; i++) {
        int64_t slot = wenv_pool_take(p, &spec, 1);
        if (slot < 0)
            continue;
        wenv_pool_grow(p, (uint32_t)slot, wenv_pool_slot_tenancy(p, (uint32_t)slot), (uint64_t)(1 + i % 3) * WPAGE);
        wenv_pool_put(p, (uint32_t)slot, 1);
    }
    return NULL;
}

static void *stress_reader(void *arg)
{
    wenv_pool *p = arg;
    uint64_t out[6], st[5];
    for (int i = 0; i < 4000; i++) {
        wenv_pool_slot_state(p, (uint32_t)(i % SLOTS), out);
        wenv_pool_stats(p, st);
    }
    return NULL;
}

static int stress(wenv_pool *p)
{
    pthread_t t[4];
    pthread_create(&t[0], NULL, stress_worker, p);
    pthread_create(&t[1], NULL, stress_worker, p);
    pthread_create(&t[2], NULL, stress_reader, p);
    pthread_create(&t[3], NULL, stress_reader, p);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    uint64_t st[5];
    wenv_pool_stats(p, st);
    if (st[0] || st[1] || st[4])
        return fail("stress: counters did not come back");
    printf("ok stress\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    race_init(2000);
    char *resv;
    wenv_pool *p = new_pool(&resv);
    if (p == NULL)
        return fail("wenv_pool_new");
    int rc;
    if (!strcmp(what, "put"))
        rc = race_put(p);
    else if (!strcmp(what, "end"))
        rc = race_end(p);
    else if (!strcmp(what, "grow"))
        rc = race_grow(p);
    else if (!strcmp(what, "stale"))
        rc = stale_grow(p);
    else if (!strcmp(what, "stress"))
        rc = stress(p);
    else
        return fail("usage: pool_races put|end|grow|stale|stress");
    wenv_pool_close(p);
    wenv_pool_free(p);
    munmap(resv, WPAGE + SLOTS * (BOUND + WPAGE));
    return rc;
}
