/*
 * The fault verdict under a concurrent grow, driven deterministically (tests/test_traps_threads.py
 * builds this with c_src/ and -DWENV_TEST_HOOKS): a raw load just past the end of a
 * Static memory faults, and the hook grows the memory over the faulting page (mprotect,
 * then the new length, as Memory.grow does on another thread) between the fault and
 * the verdict. The access was out of bounds when it was made: it must be a guard trap
 * (WENV_OOB_GUARD), not a "fault inside the accessible bytes" (WENV_FAULT).
 *
 * Usage: trap_races; prints "ok" or "FAIL ..." (exit 1).
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "wenv_memory.h"
#include "wenv_mman.h"
#include "wenv_traps.h"

#define WPAGE 65536u
#define BOUND ((uint64_t)1 << 32)

static wenv_memory mem;
static int grow_armed;

void wenv_test_hook(enum wenv_hook_point point)
{
    if (point != WENV_HOOK_FAULT_CAUGHT || !grow_armed)
        return;
    grow_armed = 0;
    uint64_t len = __atomic_load_n(&mem.byte_len, __ATOMIC_ACQUIRE);
    if (wenv_protect(mem.base + len, WPAGE, 1) == 0)
        wenv_memory_set_byte_len(&mem, len + WPAGE);
}

static int fail(const char *what)
{
    printf("FAIL %s\n", what);
    return 1;
}

int main(void)
{
    uint64_t start;
    if (wenv_reserve(BOUND + WPAGE, &start) != 0 || wenv_protect(start, WPAGE, 1) != 0)
        return fail("reserve");
    if (wenv_trap_handler_install() != 0)
        return fail("install");
    wenv_memory_init(&mem, start, WPAGE, BOUND, WPAGE, start, start + BOUND + WPAGE, WENV_MEM_STATIC,
                     BOUND / WPAGE);
    if (!wenv_access_is_raw(&mem, 0, 4))
        return fail("the load should rely on the guard pages");
    for (int round = 1; round <= 3; round++) {
        uint64_t end = mem.byte_len;
        grow_armed = 1;
        int64_t v = wenv_load_i32(&mem, end, 0);
        int st = wenv_last_status();
        if (grow_armed)
            return fail("the load past the end did not fault");
        if (v != INT64_MIN || st != WENV_OOB_GUARD) {
            printf("FAIL round %d: status %d for a load that was out of bounds when made "
                   "(want %d, WENV_OOB_GUARD)\n", round, st, WENV_OOB_GUARD);
            return 1;
        }
        if (mem.byte_len != end + WPAGE || wenv_load_i32(&mem, end, 0) != 0 || wenv_last_status() != WENV_OK)
            return fail("after the grow, the page is in bounds");
    }
    wenv_release(start, BOUND + WPAGE);
    printf("ok\n");
    return 0;
}
