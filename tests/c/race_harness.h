/*
 * What the deterministic race harnesses (pool_races.c, memory_races.c, table_races.c)
 * share: the test hook that pauses the first thread reaching the armed point until the
 * main thread says so (or wait_ms passed) and the FAIL report; for the pool harnesses
 * (the includer defines SLOTS, WPAGE and BOUND) a pool over SLOTS slots of BOUND bytes and
 * a plain memory spec.
 */
#ifndef WENV_RACE_HARNESS_H
#define WENV_RACE_HARNESS_H
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "wenv_pool.h"

static enum wenv_hook_point armed;
static int paused;
static sem_t first_paused, second_done;
static int wait_ms = 2000; /* how long the paused thread waits for second_done */

static void timed_wait(sem_t *sem, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(sem, &ts) != 0 && errno == EINTR)
        ;
}

void wenv_test_hook(enum wenv_hook_point point)
{
    if (point != __atomic_load_n(&armed, __ATOMIC_SEQ_CST) || __atomic_exchange_n(&paused, 1, __ATOMIC_SEQ_CST))
        return;
    sem_post(&first_paused);
    timed_wait(&second_done, wait_ms);
}

/* A harness's start: the hook's semaphores, and how long a paused thread waits. */
static void race_init(int paused_wait_ms)
{
    wait_ms = paused_wait_ms;
    sem_init(&first_paused, 0, 0);
    sem_init(&second_done, 0, 0);
}

static int fail(const char *what)
{
    printf("FAIL %s\n", what);
    return 1;
}

#ifdef SLOTS /* the pool harnesses */
/* SLOTS slots of BOUND bytes plus a guard page each, after a guard page. */
static wenv_pool *new_pool(char **resv)
{
    uint64_t stride = BOUND + WPAGE;
    *resv = mmap(NULL, WPAGE + SLOTS * stride, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (*resv == MAP_FAILED)
        return NULL;
    uint64_t chunk = (uint64_t)(uintptr_t)(*resv + WPAGE);
    return wenv_pool_new(SLOTS, SLOTS, &chunk, 1, stride, BOUND, 0, SLOTS, WENV_RESET_MADVISE);
}

static wenv_memory_spec plain_spec(uint64_t pages)
{
    wenv_memory_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.image_fd = -1;
    spec.accessible = pages * WPAGE;
    return spec;
}
#endif /* SLOTS */
#endif
