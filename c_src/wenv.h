/*
 * wenv.h — what every unit of c_src/ shares: the return conventions, the accessor
 * status codes, and a few compiler helpers.
 *
 * The units, one concept each (c_src/build_native.py lists them):
 *   wenv_mman      the only syscall wrappers (mmap/mprotect/madvise/munmap), with the
 *                  failure injection tests use;
 *   wenv_memory    memory descriptors and the wasm accessors;
 *   wenv_traps     the SIGSEGV/SIGBUS handler and the per-thread trap state;
 *   wenv_instance  what instantiating one memory needs (specs; wenv_instance_open/close);
 *   wenv_pool      the pooling allocator's slots;
 *   wenv_tables    an instance's defined tables, opened and released together (on
 *                  demand, or from a table pool's slots), with its memory in one call;
 *   wenv_bench     every benchmark, with one clock.
 *
 * Return conventions. C reports facts, Python (the runtime/_ffi package) decides what they mean.
 * Every declaration says which of these it follows:
 *
 *   [errno]   int: 0 on success, -1 with errno set.
 *   [addr]    a uint64_t address or a pointer: nonzero on success, 0 / NULL with errno set.
 *   [status]  int: a WENV_* status code below, WENV_OK (0) on success.
 *   [load]    the loaded value, or the load's sentinel; a sentinel is a failure only
 *             when wenv_last_status() (same thread) is not WENV_OK.
 *   [handle]  int64_t: >= 0 a handle (a pool slot index or a reservation's start);
 *             -1 with errno set; or a negative WENV_POOL_* code (< -1).
 *   [unused]  int: 1 when the pool is closed and nothing in it is live any more (the
 *             caller may unmap it), else 0; -1 with errno set (EINVAL: a caller's bug,
 *             refused before anything changed).
 *   [bench]   double: nanoseconds per iteration, or -1.0 on failure.
 *
 * Everything between CDEF-BEGIN and CDEF-END in a header is both real C and the cffi
 * cdef, so it stays within what cffi's parser accepts. Addresses and sizes cross the
 * boundary as uint64_t so Python sees plain ints.
 */
#ifndef WENV_H
#define WENV_H
#include <stddef.h>
#include <stdint.h>
/* CDEF-BEGIN */

/* ---- [status] codes (0 = success) ---- */
#define WENV_OK 0
#define WENV_OOB 1          /* out of bounds, found by an explicit bounds check */
#define WENV_OOB_GUARD 2    /* out of bounds, found by a fault in the guard region */
#define WENV_FAULT 3        /* a fault inside the accessible bytes (e.g. SIGBUS: a truncated
                               image file mapped there) */
#define WENV_BADARG 4       /* an argument outside its wasm type (e.g. a 33-bit address on a 32-bit memory) */
#define WENV_CLOSED 5       /* the memory was closed */
#define WENV_SRC_FAULT 6    /* a fault reading the source bytes of a write or memory.init (e.g.
                               SIGBUS: a truncated data file they are a view of) */

/* CDEF-END */

/* ---- internal to c_src/ ---- */
#define WENV_WASM_PAGE 65536u
#define WENV_BARRIER() __asm__ __volatile__("" ::: "memory")
#define WENV_LIKELY(x) __builtin_expect(!!(x), 1)
#define WENV_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Shared between units of the one extension, never exported (no PLT on the hot path). */
#define WENV_INTERNAL __attribute__((visibility("hidden")))

/* Test hooks: the C harnesses in tests/c/ build c_src/ with -DWENV_TEST_HOOKS and define
 * wenv_test_hook(), which may pause the calling thread at a race window; the extension
 * itself compiles every hook to nothing. */
enum wenv_hook_point {
    WENV_HOOK_POOL_PUT_CHECKED = 1,   /* wenv_pool_put: the slot was found in use (and claimed) */
    WENV_HOOK_POOL_GROW_PROTECTED,    /* wenv_pool_grow: the new pages are R/W */
    WENV_HOOK_FAULT_CAUGHT,           /* a guarded access faulted, before the verdict */
    WENV_HOOK_ACCESS_ENTERED,         /* an accessor passed its checks, before the access */
    WENV_HOOK_TABLE_STORAGE_LOADED,   /* a table read has its storage pointer, before the element */
};
#ifdef WENV_TEST_HOOKS
void wenv_test_hook(enum wenv_hook_point point);
#define WENV_HOOK(point) wenv_test_hook(point)
#else
#define WENV_HOOK(point) ((void)0)
#endif

#endif
