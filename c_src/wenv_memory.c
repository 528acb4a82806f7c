/*
 * wenv_memory.c — memory descriptors and the wasm accessors (see wenv_memory.h).
 *
 * Each accessor validates the access (wenv_locate: explicit bounds check, or none when
 * the guard pages catch every out-of-bounds address) and runs the access itself inside
 * WENV_GUARDED (wenv_traps.h), which turns a fault in the memory's reservation into a
 * status code.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#ifdef __linux__
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "wenv_memory.h"
#include "wenv_mman.h"
#include "wenv_traps.h"

/* Unaligned, alias-safe views of memory for single-instruction loads and stores. */
typedef uint8_t wenv_u8u;
typedef uint16_t wenv_u16u __attribute__((aligned(1), may_alias));
typedef uint32_t wenv_u32u __attribute__((aligned(1), may_alias));
typedef uint64_t wenv_u64u __attribute__((aligned(1), may_alias));

/* ------------------------------------------------------------------------------------
 * Descriptors
 * ---------------------------------------------------------------------------------- */

void wenv_memory_init(wenv_memory *m, uint64_t base, uint64_t byte_len, uint64_t bound_bytes,
                      uint64_t guard_bytes, uint64_t resv_start, uint64_t resv_end, uint32_t flags,
                      uint64_t max_pages)
{
    m->base = base;
    m->max_pages = max_pages;
    m->bound_bytes = bound_bytes;
    m->guard_bytes = guard_bytes;
    m->resv_start = resv_start;
    m->resv_end = resv_end;
    m->flags = flags;
    __atomic_store_n(&m->byte_len, byte_len, __ATOMIC_RELEASE);
}

void wenv_memory_set_byte_len(wenv_memory *m, uint64_t byte_len)
{
    __atomic_store_n(&m->byte_len, byte_len, __ATOMIC_RELEASE);
}

/* ---- growth ---- */

/* Held by one grow at a time (a move's copy can take long: waiters sleep). */
static void wenv_grow_lock(wenv_memory *m)
{
    for (unsigned spins = 0; __atomic_exchange_n(&m->grow_lock, 1, __ATOMIC_ACQUIRE); spins++) {
        if (spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
}

void wenv_memory_grow_unlock(wenv_memory *m)
{
    __atomic_store_n(&m->grow_lock, 0, __ATOMIC_RELEASE);
}

int64_t wenv_memory_grow(wenv_memory *m, uint64_t delta_pages)
{
    wenv_grow_lock(m);
    uint64_t old_len = __atomic_load_n(&m->byte_len, __ATOMIC_ACQUIRE);
    uint64_t old_pages = old_len / WENV_WASM_PAGE;
    if (delta_pages == 0) {
        wenv_memory_grow_unlock(m);
        return (int64_t)old_pages;
    }
    /* (below 2^48 pages: the byte length stays below 2^64) */
    uint64_t new_pages = old_pages + delta_pages;
    const uint64_t *limit = __atomic_load_n(&m->limit_bytes, __ATOMIC_ACQUIRE);
    if (delta_pages > m->max_pages || new_pages > m->max_pages || new_pages >= ((uint64_t)1 << 48)
        || (limit != NULL && new_pages * WENV_WASM_PAGE > __atomic_load_n(limit, __ATOMIC_ACQUIRE))) {
        wenv_memory_grow_unlock(m);
        return WENV_GROW_REFUSED;
    }
    uint64_t new_len = new_pages * WENV_WASM_PAGE;
    if (new_len > m->bound_bytes || (__atomic_load_n(&m->flags, __ATOMIC_ACQUIRE) & WENV_MEM_CLOSED))
        return WENV_GROW_OWNER;
    if (m->make_accessible == NULL)
        return WENV_GROW_OWNER; /* (not its own bytes: the owner knows how) */
    int rc = m->make_accessible(m, old_len, new_len);
    if (rc == 0)
        __atomic_store_n(&m->byte_len, new_len, __ATOMIC_RELEASE);
    wenv_memory_grow_unlock(m);
    return rc == 0 ? (int64_t)old_pages : WENV_GROW_REFUSED;
}

/* ---- lifetime: users = accesses in flight | CLOSED | RELEASED ---- */

#define WENV_USERS_CLOSED ((uint64_t)1 << 63)
#define WENV_USERS_RELEASED ((uint64_t)1 << 62)

/* Closed and unused: the one caller whose compare-exchange marks it released runs the
 * release (a late enter that found it closed leaves without finding CLOSED alone). */
static int wenv_release_once(wenv_memory *m)
{
    uint64_t expected = WENV_USERS_CLOSED;
    if (!__atomic_compare_exchange_n(&m->users, &expected, WENV_USERS_CLOSED | WENV_USERS_RELEASED, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;
    return m->release != NULL ? m->release(m) : 0;
}

/* ---- accessors' marks (asymmetric: the cost is on close, not on every access) ----
 *
 * Two atomic read-modify-writes per accessor call (enter, leave) cost ~45 ns here. An
 * accessor instead stores the memory in its thread's hazard record (a plain store),
 * reads `users` and, if not closed, runs; it clears the record after its last byte.
 * wenv_memory_close sets CLOSED, then runs a process-wide barrier
 * (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every thread of the process passes a
 * full fence) and looks at every record: an accessor whose mark it does not see will see
 * CLOSED, and refuse (the classic Dekker pairing, with the fence moved to the closer).
 * Without membarrier (macOS, an old kernel) the accessor fences itself. A memory no
 * accessor marked (`marked` 0) is closed without the barrier: its first accessor call
 * on each thread, and the first on the memory, count in `users` instead and set it.
 * Whoever leaves last (a counted use, or a marked access that finds CLOSED after
 * clearing its mark) runs the release, once (wenv_release_once's compare-exchange). */

/* A full fence (ThreadSanitizer has none: a seq_cst exchange there). */
#if defined(__SANITIZE_THREAD__)
static int wenv_fence_word;
#define WENV_FULL_FENCE() ((void)__atomic_exchange_n(&wenv_fence_word, 0, __ATOMIC_SEQ_CST))
#else
#define WENV_FULL_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

typedef struct wenv_hazard {
    wenv_memory *memory;        /* the memory this thread's accessor is inside, or NULL */
    int in_use;                 /* claimed by a live thread (records are reused, never freed) */
    struct wenv_hazard *next;
} wenv_hazard;

static wenv_hazard *wenv_hazards;
static WENV_TLS wenv_hazard *wenv_my_hazard;
static pthread_key_t wenv_hazard_key;
static pthread_once_t wenv_hazard_once = PTHREAD_ONCE_INIT;
static int wenv_asymmetric;     /* membarrier registered: accessors need no fence */

static void wenv_hazard_exit(void *h)
{
    __atomic_store_n(&((wenv_hazard *)h)->in_use, 0, __ATOMIC_RELEASE);
}

static void wenv_hazard_setup(void)
{
    if (pthread_key_create(&wenv_hazard_key, wenv_hazard_exit) != 0)
        wenv_hazard_key = (pthread_key_t)-1;
#ifdef __linux__
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        __atomic_store_n(&wenv_asymmetric, 1, __ATOMIC_RELEASE);
#endif
}

/* This thread's record (NULL if none could be made: its accessors keep counting). */
static wenv_hazard *wenv_hazard_claim(void)
{
    pthread_once(&wenv_hazard_once, wenv_hazard_setup);
    if (wenv_hazard_key == (pthread_key_t)-1)
        return NULL;
    wenv_hazard *h;
    for (h = __atomic_load_n(&wenv_hazards, __ATOMIC_ACQUIRE); h != NULL; h = h->next) {
        int free_ = 0;
        if (__atomic_compare_exchange_n(&h->in_use, &free_, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            break;
    }
    if (h == NULL) {
        h = calloc(1, sizeof *h);
        if (h == NULL)
            return NULL;
        h->in_use = 1;
        h->next = __atomic_load_n(&wenv_hazards, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&wenv_hazards, &h->next, h, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            ;
    }
    if (pthread_setspecific(wenv_hazard_key, h) != 0) {
        __atomic_store_n(&h->in_use, 0, __ATOMIC_RELEASE);
        return NULL;
    }
    wenv_my_hazard = h;
    return h;
}

/* Every thread of the process passes a full fence (the closer's half of the pairing). A
 * forked child inherits the flag, not the registration: register again, then retry. */
static void wenv_process_barrier(void)
{
#ifdef __linux__
    if (!__atomic_load_n(&wenv_asymmetric, __ATOMIC_ACQUIRE))
        return;  /* accessors fence themselves */
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return;
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
        && syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return;
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)  /* slow (a grace period), sound */
        return;
    abort();  /* accessors in flight rely on a barrier: no sound way on */
#endif
}

/* Is an accessor of some thread marked inside `m`? (After a full fence or barrier.) */
static int wenv_marked_inside(const wenv_memory *m)
{
    for (wenv_hazard *h = __atomic_load_n(&wenv_hazards, __ATOMIC_ACQUIRE); h != NULL; h = h->next)
        if (__atomic_load_n(&h->memory, __ATOMIC_ACQUIRE) == m)
            return 1;
    return 0;
}

/* A closed memory's use ended: release it unless another is still in flight. */
static int wenv_try_release(wenv_memory *m)
{
    WENV_FULL_FENCE();
    if (__atomic_load_n(&m->marked, __ATOMIC_ACQUIRE) && wenv_marked_inside(m))
        return 0;  /* that accessor releases it when it leaves */
    return wenv_release_once(m);
}

int wenv_memory_leave(wenv_memory *m)
{
    uint64_t users = __atomic_sub_fetch(&m->users, 1, __ATOMIC_ACQ_REL);
    return WENV_UNLIKELY(users == WENV_USERS_CLOSED) ? wenv_try_release(m) : 0;
}

#define WENV_COUNTED 1  /* wenv_access_enter's results besides 0 (closed) */
#define WENV_MARKED 2

static __attribute__((noinline)) int wenv_access_enter_slow(wenv_memory *m)
{
    if (!wenv_memory_enter(m))
        return 0;
    if ((wenv_my_hazard != NULL || wenv_hazard_claim() != NULL)
        && !__atomic_load_n(&m->marked, __ATOMIC_RELAXED))
        __atomic_store_n(&m->marked, 1, __ATOMIC_SEQ_CST);  /* while counted: close sees it */
    return WENV_COUNTED;
}

/* An accessor's entry: WENV_MARKED or WENV_COUNTED (pass it to wenv_access_leave), 0 if closed. */
static inline int wenv_access_enter(wenv_memory *m)
{
    wenv_hazard *h = wenv_my_hazard;
    if (WENV_UNLIKELY(h == NULL || !__atomic_load_n(&m->marked, __ATOMIC_ACQUIRE)))
        return wenv_access_enter_slow(m);
    __atomic_store_n(&h->memory, m, __ATOMIC_RELAXED);
    if (WENV_UNLIKELY(!__atomic_load_n(&wenv_asymmetric, __ATOMIC_RELAXED)))
        WENV_FULL_FENCE();
    WENV_BARRIER();
    if (WENV_LIKELY(!(__atomic_load_n(&m->users, __ATOMIC_SEQ_CST) & WENV_USERS_CLOSED)))
        return WENV_MARKED;
    __atomic_store_n(&h->memory, NULL, __ATOMIC_RELEASE);
    wenv_try_release(m);  /* its close may have seen the mark and left the release to it */
    return 0;
}

static inline void wenv_access_leave(wenv_memory *m, int how)
{
    if (WENV_UNLIKELY(how != WENV_MARKED)) {
        wenv_memory_leave(m);
        return;
    }
    __atomic_store_n(&wenv_my_hazard->memory, NULL, __ATOMIC_RELEASE);
    if (WENV_UNLIKELY(!__atomic_load_n(&wenv_asymmetric, __ATOMIC_RELAXED)))
        WENV_FULL_FENCE();
    WENV_BARRIER();
    if (WENV_UNLIKELY(__atomic_load_n(&m->users, __ATOMIC_SEQ_CST) & WENV_USERS_CLOSED))
        wenv_try_release(m);
}

int wenv_memory_enter(wenv_memory *m)
{
    uint64_t users = __atomic_add_fetch(&m->users, 1, __ATOMIC_ACQ_REL);
    if (WENV_LIKELY(!(users & WENV_USERS_CLOSED)))
        return 1;
    wenv_memory_leave(m);
    return 0;
}

void wenv_memories_keep(wenv_memory *const *ms, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        __atomic_add_fetch(&ms[i]->users, 1, __ATOMIC_ACQ_REL);
}

uint32_t wenv_memories_enter(wenv_memory *const *ms, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!wenv_memory_enter(ms[i])) {
            wenv_memories_leave(ms, i);
            return i;
        }
    }
    return n;
}

void wenv_memories_leave(wenv_memory *const *ms, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;)
        wenv_memory_leave(ms[i]);
}

int wenv_memory_close(wenv_memory *m)
{
    /* byte_len stays: an access in flight completes on this memory, still allocated
     * (a later check of the flags refuses it cleanly instead). */
    __atomic_store_n(&m->flags, WENV_MEM_CLOSED, __ATOMIC_RELEASE);
    uint64_t before = __atomic_fetch_or(&m->users, WENV_USERS_CLOSED, __ATOMIC_SEQ_CST);
    if (before & WENV_USERS_CLOSED)
        return 0;
    if (__atomic_load_n(&m->marked, __ATOMIC_SEQ_CST)) {
        wenv_process_barrier();
        if (wenv_marked_inside(m))
            return WENV_RELEASE_DEFERRED;  /* the last accessor to leave releases it */
    }
    if (before != 0)
        return WENV_RELEASE_DEFERRED;
    return wenv_release_once(m);
}

static inline int wenv_raw_ok(uint32_t flags, const wenv_memory *m, uint64_t offset, uint32_t width)
{
    /* Raw iff every 32-bit address plus this offset and width stays inside bound + guard. */
    if ((flags & (WENV_MEM_STATIC | WENV_MEM_64)) != WENV_MEM_STATIC)
        return 0;
    uint64_t span;
    if (__builtin_add_overflow(m->bound_bytes, m->guard_bytes, &span))
        span = UINT64_MAX;
    return (uint64_t)UINT32_MAX + offset + width <= span; /* offset < 2^32: no overflow */
}

int wenv_access_is_raw(const wenv_memory *m, uint64_t offset, uint32_t width)
{
    uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
    if (flags & WENV_MEM_CLOSED || (!(flags & WENV_MEM_64) && offset > UINT32_MAX))
        return 0;
    return wenv_raw_ok(flags, m, offset, width);
}

/* Validate an access and compute its effective address; WENV_OK means go ahead (either
 * because it is in bounds or because the guard pages catch it). */
static inline int wenv_locate(const wenv_memory *m, uint64_t addr, uint64_t offset, uint32_t width, uint64_t *ea)
{
    uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
    if (WENV_UNLIKELY(flags & WENV_MEM_CLOSED))
        return WENV_CLOSED;
    if (!(flags & WENV_MEM_64)) {
        if (WENV_UNLIKELY(addr > UINT32_MAX || offset > UINT32_MAX))
            return WENV_BADARG;
        *ea = addr + offset;
        if (wenv_raw_ok(flags, m, offset, width))
            return WENV_OK;
    } else if (__builtin_add_overflow(addr, offset, ea)) {
        return WENV_OOB;
    }
    uint64_t len = __atomic_load_n(&m->byte_len, __ATOMIC_ACQUIRE);
    if (*ea > len || len - *ea < width)
        return WENV_OOB;
    return WENV_OK;
}

/* Bounds check for bulk operations: [addr, addr + n) within byte_len. */
static inline int wenv_locate_range(const wenv_memory *m, uint64_t addr, uint64_t n)
{
    uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
    if (WENV_UNLIKELY(flags & WENV_MEM_CLOSED))
        return WENV_CLOSED;
    uint64_t len = __atomic_load_n(&m->byte_len, __ATOMIC_ACQUIRE);
    if (addr > len || len - addr < n)
        return WENV_OOB;
    return WENV_OK;
}

/* ------------------------------------------------------------------------------------
 * Accessors
 * ---------------------------------------------------------------------------------- */

#define WENV_STATUS(st) (st)

static inline double wenv_f32_to_double(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return (double)f;
}

static inline double wenv_f64_from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline uint32_t wenv_f32_bits(double value)
{
    float f = (float)value;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static inline uint64_t wenv_f64_bits(double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

#define WENV_NAN_SENTINEL (__builtin_nan(""))

#define WENV_LOAD(NAME, RET, UT, WIDTH, SENTINEL, CONVERT)                          \
    static inline RET wenv_fault_##NAME(int st)                                     \
    {                                                                               \
        wenv_self.status = st;                                                      \
        return SENTINEL;                                                            \
    }                                                                               \
    static RET wenv_load_in_##NAME(wenv_memory *m, uint64_t addr, uint64_t offset)  \
    {                                                                               \
        uint64_t ea;                                                                \
        int st = wenv_locate(m, addr, offset, WIDTH, &ea);                          \
        if (WENV_UNLIKELY(st != WENV_OK))                                           \
            return wenv_fault_##NAME(st);                                           \
        const volatile UT *p = (const volatile UT *)(uintptr_t)(m->base + ea);      \
        UT v;                                                                       \
        WENV_GUARDED(m, v = *p, wenv_fault_##NAME);                                 \
        wenv_self.status = WENV_OK;                                                 \
        return CONVERT(v);                                                          \
    }                                                                               \
    RET wenv_load_##NAME(wenv_memory *m, uint64_t addr, uint64_t offset)            \
    {                                                                               \
        int how = wenv_access_enter(m);                                             \
        if (WENV_UNLIKELY(!how))                                                    \
            return wenv_fault_##NAME(WENV_CLOSED);                                  \
        WENV_HOOK(WENV_HOOK_ACCESS_ENTERED);                                        \
        RET value = wenv_load_in_##NAME(m, addr, offset);                           \
        wenv_access_leave(m, how);                                                  \
        return value;                                                               \
    }

#define WENV_AS_I64(v) ((int64_t)(v))
#define WENV_AS_S8(v) ((int64_t)(int8_t)(v))
#define WENV_AS_S16(v) ((int64_t)(int16_t)(v))
#define WENV_AS_S32(v) ((int64_t)(int32_t)(v))
#define WENV_AS_U64(v) ((uint64_t)(v))

WENV_LOAD(i32, int64_t, wenv_u32u, 4, INT64_MIN, WENV_AS_S32)
WENV_LOAD(i64, int64_t, wenv_u64u, 8, INT64_MIN, WENV_AS_I64)
WENV_LOAD(u64, uint64_t, wenv_u64u, 8, ((uint64_t)1 << 63), WENV_AS_U64)
WENV_LOAD(f32, double, wenv_u32u, 4, WENV_NAN_SENTINEL, wenv_f32_to_double)
WENV_LOAD(f64, double, wenv_u64u, 8, WENV_NAN_SENTINEL, wenv_f64_from_bits)
WENV_LOAD(s8, int64_t, wenv_u8u, 1, INT64_MIN, WENV_AS_S8)
WENV_LOAD(u8, int64_t, wenv_u8u, 1, INT64_MIN, WENV_AS_I64)
WENV_LOAD(s16, int64_t, wenv_u16u, 2, INT64_MIN, WENV_AS_S16)
WENV_LOAD(u16, int64_t, wenv_u16u, 2, INT64_MIN, WENV_AS_I64)
WENV_LOAD(u32, int64_t, wenv_u32u, 4, INT64_MIN, WENV_AS_I64)

#define WENV_STORE(NAME, VT, UT, WIDTH, VALID, BITS)                                \
    static int wenv_store_in_##NAME(wenv_memory *m, uint64_t addr, uint64_t offset, \
                                    VT value)                                       \
    {                                                                               \
        if (WENV_UNLIKELY(!(VALID)))                                                \
            return WENV_BADARG;                                                     \
        UT bits = (UT)(BITS);                                                       \
        uint64_t ea;                                                                \
        int st = wenv_locate(m, addr, offset, WIDTH, &ea);                          \
        if (WENV_UNLIKELY(st != WENV_OK))                                           \
            return st;                                                              \
        volatile UT *p = (volatile UT *)(uintptr_t)(m->base + ea);                  \
        WENV_GUARDED(m, *p = bits, WENV_STATUS);                                    \
        return WENV_OK;                                                             \
    }                                                                               \
    int wenv_store_##NAME(wenv_memory *m, uint64_t addr, uint64_t offset, VT value) \
    {                                                                               \
        int how = wenv_access_enter(m);                                             \
        if (WENV_UNLIKELY(!how))                                                    \
            return WENV_CLOSED;                                                     \
        WENV_HOOK(WENV_HOOK_ACCESS_ENTERED);                                        \
        int st = wenv_store_in_##NAME(m, addr, offset, value);                      \
        wenv_access_leave(m, how);                                                  \
        return st;                                                                  \
    }

#define WENV_I32_VALUE (value >= INT32_MIN && value <= (int64_t)UINT32_MAX)

WENV_STORE(i32, int64_t, wenv_u32u, 4, WENV_I32_VALUE, value)
WENV_STORE(i32_8, int64_t, wenv_u8u, 1, WENV_I32_VALUE, value)
WENV_STORE(i32_16, int64_t, wenv_u16u, 2, WENV_I32_VALUE, value)
WENV_STORE(i64, int64_t, wenv_u64u, 8, 1, value)
WENV_STORE(i64_8, int64_t, wenv_u8u, 1, 1, value)
WENV_STORE(i64_16, int64_t, wenv_u16u, 2, 1, value)
WENV_STORE(i64_32, int64_t, wenv_u32u, 4, 1, value)
WENV_STORE(f32, double, wenv_u32u, 4, 1, wenv_f32_bits(value))
WENV_STORE(f64, double, wenv_u64u, 8, 1, wenv_f64_bits(value))

/* ---- bulk operations ---- */

static int wenv_read_in(wenv_memory *m, uint64_t addr, char *dst, uint64_t byte_len)
{
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memcpy(dst, (const void *)(uintptr_t)(m->base + addr), (size_t)byte_len), WENV_STATUS);
    return WENV_OK;
}

/* A write of at least this many bytes faults its pages in first, in one call (wenv_prefault):
 * copying a data segment into fresh pages is otherwise bound by one page fault per page. */
#define WENV_PREFAULT_BYTES ((uint64_t)64 << 10)

/* `prefault`: 0 where the caller faulted the pages in already (wenv_data_apply's runs). */
static int wenv_write_in(wenv_memory *m, uint64_t addr, const char *src, uint64_t byte_len, int prefault)
{
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    if (prefault && byte_len >= WENV_PREFAULT_BYTES)
        (void)wenv_prefault(m->base + addr, byte_len);
    WENV_GUARDED_FROM(m, src, byte_len, memcpy((void *)(uintptr_t)(m->base + addr), src, (size_t)byte_len),
                      WENV_STATUS);
    return WENV_OK;
}

static int wenv_fill_in(wenv_memory *m, uint64_t addr, int64_t value, uint64_t byte_len)
{
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memset((void *)(uintptr_t)(m->base + addr), (int)(value & 0xff), (size_t)byte_len),
                 WENV_STATUS);
    return WENV_OK;
}

static int wenv_copy_in(wenv_memory *m, uint64_t dst, uint64_t src, uint64_t byte_len)
{
    int st = wenv_locate_range(m, dst, byte_len);
    if (st == WENV_OK)
        st = wenv_locate_range(m, src, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memmove((void *)(uintptr_t)(m->base + dst), (const void *)(uintptr_t)(m->base + src),
                            (size_t)byte_len), WENV_STATUS);
    return WENV_OK;
}

static int wenv_init_in(wenv_memory *m, uint64_t addr, const char *src, uint64_t src_len,
                        uint64_t src_offset, uint64_t byte_len)
{
    if (src_offset > src_len || src_len - src_offset < byte_len) {
        uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
        return flags & WENV_MEM_CLOSED ? WENV_CLOSED : WENV_OOB;
    }
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED_FROM(m, src + src_offset, byte_len,
                      memcpy((void *)(uintptr_t)(m->base + addr), src + src_offset, (size_t)byte_len), WENV_STATUS);
    return WENV_OK;
}

/* The bulk operations inside enter/leave: the memory stays allocated until they finished. */
#define WENV_ENTERED(CALL)                                                          \
    do {                                                                            \
        int how_ = wenv_access_enter(m);                                            \
        if (WENV_UNLIKELY(!how_))                                                   \
            return WENV_CLOSED;                                                     \
        WENV_HOOK(WENV_HOOK_ACCESS_ENTERED);                                        \
        int st_ = CALL;                                                             \
        wenv_access_leave(m, how_);                                                 \
        return st_;                                                                 \
    } while (0)

int wenv_read(wenv_memory *m, uint64_t addr, char *dst, uint64_t byte_len)
{
    WENV_ENTERED(wenv_read_in(m, addr, dst, byte_len));
}

int wenv_write(wenv_memory *m, uint64_t addr, const char *src, uint64_t byte_len)
{
    WENV_ENTERED(wenv_write_in(m, addr, src, byte_len, 1));
}

int wenv_fill(wenv_memory *m, uint64_t addr, int64_t value, uint64_t byte_len)
{
    WENV_ENTERED(wenv_fill_in(m, addr, value, byte_len));
}

int wenv_copy(wenv_memory *m, uint64_t dst, uint64_t src, uint64_t byte_len)
{
    WENV_ENTERED(wenv_copy_in(m, dst, src, byte_len));
}

int wenv_init(wenv_memory *m, uint64_t addr, const char *src, uint64_t src_len, uint64_t src_offset,
              uint64_t byte_len)
{
    WENV_ENTERED(wenv_init_in(m, addr, src, src_len, src_offset, byte_len));
}

/* [start, start + byte_len) of m holds src's bytes (its range checked): the whole pages
 * [lo, hi) inside it mapped from w's file when wenv_data_write's rule allows, the rest
 * copied (faulted in by the caller's run). A failed mmap may have unmapped [lo, hi) (Linux
 * unmaps before it maps): fresh zero pages go there, and the whole range is copied. */
static int wenv_write_mapped_in(wenv_memory *m, const wenv_data_write *w, uint32_t fail)
{
    uint64_t page = (uint64_t)wenv_page_size(), start = w->start, end = start + w->byte_len;
    uint64_t lo = (start + page - 1) / page * page, hi = end / page * page;
    uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
    int st = wenv_locate_range(m, start, w->byte_len);
    if (st != WENV_OK || w->fd < 0 || !(flags & WENV_MEM_MAPPABLE) || (w->file_offset - start) % page != 0
        || hi < lo || hi - lo < WENV_MAP_WRITE_BYTES)
        return st != WENV_OK ? st : wenv_write_in(m, start, w->src, w->byte_len, 0);
    uint64_t at = w->file_offset + (lo - start);
    if (wenv_mm_map_file(m->base + lo, hi - lo, (int)w->fd, at, fail) != 0) {
        (void)wenv_mm_map_anon(m->base + lo, hi - lo, 1, fail);  /* (if it fails too: the copy faults) */
        return wenv_write_in(m, start, w->src, w->byte_len, 1);
    }
    if ((st = wenv_write_in(m, start, w->src, lo - start, 0)) != WENV_OK)
        return st;
    return wenv_write_in(m, hi, w->src + (hi - start), end - hi, 0);
}

/* A run of writes to one memory that this many bytes span faults its pages in first, in one
 * call (wenv_prefault): a module's many small segments otherwise fault a page at a time. */
#define WENV_PREFAULT_RUN_BYTES ((uint64_t)16 << 10)

static uint64_t wenv_end_of(const wenv_data_write *w)
{
    uint64_t end;
    return __builtin_add_overflow(w->start, w->byte_len, &end) ? UINT64_MAX : end;
}

/* writes[i..j) (returned) are a run: the same memory, none with a file, each starting at most
 * a page past the run so far; their span, clipped to the accessible bytes, is faulted in
 * when it is large enough (m entered by the caller). */
static uint64_t wenv_prefault_run(wenv_memory *m, const wenv_data_write *writes, uint64_t i, uint64_t n)
{
    uint64_t page = (uint64_t)wenv_page_size(), lo = writes[i].start, hi = wenv_end_of(&writes[i]), j = i + 1;
    if (writes[i].fd >= 0)
        return j;
    while (j < n && writes[j].memory == writes[i].memory && writes[j].fd < 0 && writes[j].start >= lo
           && writes[j].start <= (hi > UINT64_MAX - page ? UINT64_MAX : hi + page)) {
        uint64_t end = wenv_end_of(&writes[j]);
        hi = end > hi ? end : hi;
        j++;
    }
    uint64_t byte_len = __atomic_load_n(&m->byte_len, __ATOMIC_ACQUIRE);
    hi = hi < byte_len ? hi : byte_len;
    if (hi > lo && hi - lo >= WENV_PREFAULT_RUN_BYTES)
        (void)wenv_prefault(m->base + lo, hi - lo);
    return j;
}

/* writes[i] to m (entered), the run it begins faulted in first (*run_end: where that run ends). */
static int wenv_data_write_in(wenv_memory *m, const wenv_data_write *writes, uint64_t i, uint64_t n,
                              uint64_t *run_end, uint32_t fail)
{
    if (i >= *run_end)
        *run_end = wenv_prefault_run(m, writes, i, n);
    return wenv_write_mapped_in(m, &writes[i], fail);
}

static int wenv_data_write_entered(wenv_memory *m, const wenv_data_write *writes, uint64_t i, uint64_t n,
                                   uint64_t *run_end, uint32_t fail)
{
    WENV_ENTERED(wenv_data_write_in(m, writes, i, n, run_end, fail));
}

uint64_t wenv_data_apply(wenv_memory *const *mems, const wenv_data_write *writes, uint64_t n,
                         uint32_t fail, int *status)
{
    uint64_t run_end = 0;
    for (uint64_t i = 0; i < n; i++)
        if ((*status = wenv_data_write_entered(mems[writes[i].memory], writes, i, n, &run_end, fail)) != 0)
            return i;
    return n;
}
