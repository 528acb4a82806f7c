/* What the random-walk harnesses run under ASan/UBSan share (tests/c/pool_sanitize.c,
 * tables_sanitize.c): a seeded generator and the failure report. */
#ifndef WENV_SANITIZE_HARNESS_H
#define WENV_SANITIZE_HARNESS_H
#include <stdio.h>

static unsigned long rng_state;
static unsigned long rnd(void)
{
    rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
    return rng_state >> 33;
}

static int fail(const char *what, long i)
{
    fprintf(stderr, "FAIL at step %ld: %s\n", i, what);
    return 1;
}
#endif
