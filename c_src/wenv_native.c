/*
 * wenv_native.c — reservations, wasm memory accessors and the guard-page fault handler.
 *
 * Policy lives in Python (runtime/_ffi.py and above); this file reports facts:
 * reservation calls return -1 with errno, accessors return a status code.
 *
 * How a guard-page trap works
 * ---------------------------
 * An accessor that relies on the guard pages (wenv_locate() says when that is safe)
 * records, in thread-local storage, the memory it is about to touch and a pointer to
 * a sigjmp_buf on its own stack, then does one plain load or store. If that faults,
 * wenv_on_fault() sees a fault address inside that memory's reservation while the
 * jump buffer is armed and siglongjmp()s back into the accessor, which unblocks the
 * signal and returns WENV_OOB_GUARD. Any other fault is passed on to the handler that
 * was installed before ours (see wenv_chain()), so a real crash still crashes and
 * Python's faulthandler still prints its traceback.
 *
 * The jump buffer pointer is an ordinary thread-local store; at -O2 the compiler is
 * free to sink it past the memory access unless told otherwise. Every guarded access is
 * therefore a volatile access fenced by compiler barriers on both sides, and the
 * thread-local fields are volatile.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wenv_mman.h"
#include "wenv_native.h"

#define WENV_BARRIER() __asm__ __volatile__("" ::: "memory")
#define WENV_LIKELY(x) __builtin_expect(!!(x), 1)
#define WENV_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Unaligned, alias-safe views of memory for single-instruction loads and stores. */
typedef uint8_t wenv_u8u;
typedef uint16_t wenv_u16u __attribute__((aligned(1), may_alias));
typedef uint32_t wenv_u32u __attribute__((aligned(1), may_alias));
typedef uint64_t wenv_u64u __attribute__((aligned(1), may_alias));

long wenv_page_size(void) { return sysconf(_SC_PAGESIZE); }

/* ------------------------------------------------------------------------------------
 * Reservations
 * ---------------------------------------------------------------------------------- */

static int wenv_range_ok(uint64_t addr, uint64_t byte_len)
{
    if (byte_len == 0 || byte_len > (uint64_t)SIZE_MAX || addr > UINTPTR_MAX - byte_len) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

int wenv_reserve(uint64_t byte_len, uint64_t *out_addr)
{
    if (!wenv_range_ok(0, byte_len))
        return -1;
    void *p = mmap(NULL, (size_t)byte_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    *out_addr = (uint64_t)(uintptr_t)p;
    return 0;
}

int wenv_reserve_memory(uint64_t byte_len, uint64_t pre_guard, uint64_t accessible, int fd,
                        uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                        uint64_t *out_addr)
{
    /* One call for an on-demand memory: reserve PROT_NONE, map the image (its mmap makes
     * its own range R/W), mprotect the rest of the accessible bytes. All or nothing. */
    if (!wenv_range_ok(0, byte_len) || pre_guard > byte_len || accessible > byte_len - pre_guard
        || image_offset > accessible || image_len > accessible - image_offset) {
        errno = EINVAL;
        return -1;
    }
    char *start = mmap(NULL, (size_t)byte_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (start == MAP_FAILED)
        return -1;
    char *base = start + pre_guard;
    uint64_t lo = 0, hi = 0;
    if (image_len) {
        lo = image_offset;
        hi = image_offset + image_len;
        if (mmap(base + lo, (size_t)image_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
                 (off_t)file_offset) == MAP_FAILED)
            goto fail;
    }
    if (lo > 0 && mprotect(base, (size_t)lo, PROT_READ | PROT_WRITE) != 0)
        goto fail;
    if (accessible > hi && mprotect(base + hi, (size_t)(accessible - hi), PROT_READ | PROT_WRITE) != 0)
        goto fail;
    *out_addr = (uint64_t)(uintptr_t)start;
    return 0;
fail:
    {
        int err = errno;
        munmap(start, (size_t)byte_len);
        errno = err;
        return -1;
    }
}

uint64_t wenv_memory_open(const wenv_memory_spec *spec)
{
    uint64_t start = 0;
    int has_image = spec->image_fd >= 0 && spec->image_len > 0;
    if (wenv_reserve_memory(spec->reserve_bytes, spec->pre_guard, spec->accessible,
                            has_image ? (int)spec->image_fd : -1, spec->image_file_offset,
                            has_image ? spec->image_offset : 0, has_image ? spec->image_len : 0,
                            &start) != 0)
        return 0;
    return start;
}

int wenv_release(uint64_t addr, uint64_t byte_len)
{
    if (!wenv_range_ok(addr, byte_len))
        return -1;
    return munmap((void *)(uintptr_t)addr, (size_t)byte_len);
}

int wenv_protect(uint64_t addr, uint64_t byte_len, int writable)
{
    if (!wenv_range_ok(addr, byte_len))
        return -1;
    return mprotect((void *)(uintptr_t)addr, (size_t)byte_len, writable ? PROT_READ | PROT_WRITE : PROT_NONE);
}

int wenv_map_fd_fixed(uint64_t addr, uint64_t byte_len, int fd, uint64_t file_offset)
{
    if (!wenv_range_ok(addr, byte_len))
        return -1;
    void *p = mmap((void *)(uintptr_t)addr, (size_t)byte_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                   fd, (off_t)file_offset);
    return p == MAP_FAILED ? -1 : 0;
}

int wenv_map_anon_fixed(uint64_t addr, uint64_t byte_len, int writable)
{
    if (!wenv_range_ok(addr, byte_len))
        return -1;
    void *p = mmap((void *)(uintptr_t)addr, (size_t)byte_len, writable ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -1 : 0;
}

int wenv_decommit(uint64_t addr, uint64_t byte_len)
{
    if (!wenv_range_ok(addr, byte_len))
        return -1;
#ifdef __APPLE__
    /* MADV_DONTNEED only marks the pages reusable on macOS; their contents survive. */
    return wenv_map_anon_fixed(addr, byte_len, 1);
#else
    return madvise((void *)(uintptr_t)addr, (size_t)byte_len, MADV_DONTNEED);
#endif
}

void wenv_copy_raw(uint64_t dst_addr, uint64_t src_addr, uint64_t byte_len)
{
    memmove((void *)(uintptr_t)dst_addr, (const void *)(uintptr_t)src_addr, (size_t)byte_len);
}

/* ------------------------------------------------------------------------------------
 * Memory descriptors
 * ---------------------------------------------------------------------------------- */

void wenv_memory_init(wenv_memory *m, uint64_t base, uint64_t byte_len, uint64_t bound_bytes,
                      uint64_t guard_bytes, uint64_t resv_start, uint64_t resv_end, uint32_t flags)
{
    m->base = base;
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

void wenv_memory_close(wenv_memory *m)
{
    __atomic_store_n(&m->byte_len, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&m->flags, WENV_MEM_CLOSED, __ATOMIC_RELEASE);
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
 * Per-thread state and the fault handler
 * ---------------------------------------------------------------------------------- */

struct wenv_thread {
    sigjmp_buf *volatile jmp;       /* armed while a guarded access runs */
    wenv_memory *volatile mem;      /* the memory being accessed */
    volatile uint64_t fault_addr;
    volatile int fault_sig;
    int status;                     /* of the last accessor call */
    int ready;                      /* alternate signal stack checked/installed */
    /* handler chaining: which delivery we are passing on, from how deep a frame */
    siginfo_t *volatile chain_info;
    volatile uintptr_t chain_sp;
    volatile int chain_depth;
};

#ifdef __APPLE__
/* Mach-O thread-locals are resolved through tlv_get_addr; the first touch of a thread
 * happens in wenv_thread_prepare(), never first in the signal handler for our faults. */
#define WENV_TLS __thread
#else
/* initial-exec: a fixed offset from the thread pointer, no __tls_get_addr (which may
 * allocate) when the handler runs on a thread that never used an accessor. */
#define WENV_TLS __thread __attribute__((tls_model("initial-exec")))
#endif
static WENV_TLS struct wenv_thread wenv_self;

#define WENV_NSIG 2
#define WENV_MAX_PREV 32
static const int wenv_signals[WENV_NSIG] = {SIGSEGV, SIGBUS};
/* Handlers found under ours, one per (re)installation: prev[i][n-1] is the newest. Our
 * handler may appear in a chain more than once (installed, covered by another handler
 * that chains to it, then put back on top); a nested call for the same delivery moves
 * one step down this history instead of looping. */
static struct sigaction wenv_prev[WENV_NSIG][WENV_MAX_PREV];
static volatile int wenv_nprev[WENV_NSIG];
static volatile int wenv_ever_installed;
/* Set once a handler we chained a real fault to has returned. Fatal handlers (Python's
 * faulthandler) end by restoring their predecessor and raise()ing the signal again; a
 * sent signal arriving after that gets the default action so the chain cannot cycle. */
static volatile int wenv_chain_returned[WENV_NSIG];
static pthread_mutex_t wenv_install_lock = PTHREAD_MUTEX_INITIALIZER;

static void wenv_on_fault(int sig, siginfo_t *info, void *uctx);

static int wenv_signal_slot(int sig)
{
    for (int i = 0; i < WENV_NSIG; i++)
        if (wenv_signals[i] == sig)
            return i;
    return -1;
}

static int wenv_is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == wenv_on_fault;
}

static void wenv_default_action(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* The signal is blocked while we run: it stays pending and is delivered, with the
     * default action, as soon as the handler returns (a real fault would also re-fault). */
    raise(sig);
}

static void wenv_chain(int sig, siginfo_t *info, void *uctx)
{
    struct wenv_thread *t = &wenv_self;
    int slot = wenv_signal_slot(sig);
    char marker;
    uintptr_t sp = (uintptr_t)&marker;
    int depth = 0;
    if (t->chain_info == info && sp < t->chain_sp)
        depth = t->chain_depth + 1; /* called again, from deeper, for the delivery we passed on */
    int idx = slot < 0 ? -1 : wenv_nprev[slot] - 1 - depth;
    int sent = info == NULL || info->si_code <= 0; /* kill/raise/sigqueue, not a fault */
    const struct sigaction *p = idx >= 0 ? &wenv_prev[slot][idx] : NULL;
    if (p && sent && wenv_chain_returned[slot])
        p = NULL;
    if (p && !(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_IGN)
        return; /* a real fault re-executes and the kernel forces the default action */
    if (p == NULL || wenv_is_ours(p) || (!(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_DFL)) {
        wenv_default_action(sig);
        return;
    }
    siginfo_t *saved_info = t->chain_info;
    uintptr_t saved_sp = t->chain_sp;
    int saved_depth = t->chain_depth;
    t->chain_info = info;
    t->chain_sp = sp;
    t->chain_depth = depth;
    if (p->sa_flags & SA_SIGINFO)
        p->sa_sigaction(sig, info, uctx);
    else
        p->sa_handler(sig);
    t->chain_info = saved_info;
    t->chain_sp = saved_sp;
    t->chain_depth = saved_depth;
    if (!sent)
        wenv_chain_returned[slot] = 1;
}

static void wenv_on_fault(int sig, siginfo_t *info, void *uctx)
{
    int saved_errno = errno;
    struct wenv_thread *t = &wenv_self;
    sigjmp_buf *jb = t->jmp;
    if (jb != NULL && info != NULL && info->si_code > 0) {
        wenv_memory *m = t->mem;
        uint64_t a = (uint64_t)(uintptr_t)info->si_addr;
        if (m != NULL && a >= m->resv_start && a < m->resv_end) {
            t->jmp = NULL;
            t->fault_addr = a;
            t->fault_sig = sig;
            siglongjmp(*jb, 1); /* mask not restored: wenv_after_fault() unblocks sig */
        }
    }
    wenv_chain(sig, info, uctx);
    errno = saved_errno;
}

int wenv_trap_handler_install(void)
{
    int rc = 0;
    pthread_mutex_lock(&wenv_install_lock);
    for (int i = 0; i < WENV_NSIG; i++) {
        struct sigaction cur;
        if (sigaction(wenv_signals[i], NULL, &cur) != 0) {
            rc = -1;
            break;
        }
        if (wenv_is_ours(&cur))
            continue;
        int n = wenv_nprev[i];
        if (n == WENV_MAX_PREV)
            n--; /* history full: the newest link is the one that matters most */
        wenv_prev[i][n] = cur;
        __atomic_store_n(&wenv_nprev[i], n + 1, __ATOMIC_SEQ_CST);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = wenv_on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(wenv_signals[i], &sa, NULL) != 0) {
            __atomic_store_n(&wenv_nprev[i], n, __ATOMIC_SEQ_CST);
            rc = -1;
            break;
        }
        wenv_ever_installed = 1;
    }
    pthread_mutex_unlock(&wenv_install_lock);
    return rc;
}

int wenv_trap_handler_on_top(void)
{
    if (!wenv_ever_installed)
        return -1;
    for (int i = 0; i < WENV_NSIG; i++) {
        struct sigaction cur;
        if (sigaction(wenv_signals[i], NULL, &cur) != 0 || !wenv_is_ours(&cur))
            return 0;
    }
    return 1;
}

/* ---- alternate signal stacks: one per thread that uses an accessor ---- */

#define WENV_ALTSTACK_LEN (64 * 1024)
static pthread_key_t wenv_stack_key;
static pthread_once_t wenv_stack_once = PTHREAD_ONCE_INIT;

static void wenv_stack_free(void *sp)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == sp && !(cur.ss_flags & SS_ONSTACK)) {
        stack_t off;
        memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, NULL);
    }
    long page = sysconf(_SC_PAGESIZE);
    munmap((char *)sp - page, WENV_ALTSTACK_LEN + (size_t)page);
}

static void wenv_stack_key_create(void) { pthread_key_create(&wenv_stack_key, wenv_stack_free); }

static void wenv_thread_prepare(struct wenv_thread *t)
{
    t->ready = 1;
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0)
        return;
    if (!(cur.ss_flags & SS_DISABLE))
        return; /* the thread already has one (e.g. faulthandler's, on the main thread) */
    pthread_once(&wenv_stack_once, wenv_stack_key_create);
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, WENV_ALTSTACK_LEN + (size_t)page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return; /* no alternate stack: the handler runs on the thread's own stack */
    mprotect(mem, (size_t)page, PROT_NONE); /* guard page under the stack */
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = mem + page;
    ss.ss_size = WENV_ALTSTACK_LEN;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, WENV_ALTSTACK_LEN + (size_t)page);
        return;
    }
    pthread_setspecific(wenv_stack_key, ss.ss_sp);
}

static __attribute__((noinline)) int wenv_after_fault(void)
{
    struct wenv_thread *t = &wenv_self;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, t->fault_sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    wenv_memory *m = t->mem;
    uint64_t a = t->fault_addr;
    uint64_t len = __atomic_load_n(&m->byte_len, __ATOMIC_ACQUIRE);
    if (a >= m->base && a - m->base < len)
        return WENV_FAULT;
    return WENV_OOB_GUARD;
}

/* For the interpreter (wenv_interp.c): arm the handler once per entry into wasm, for
 * faults inside `m`'s reservation; wenv_trap_after_fault() after the siglongjmp. */
void wenv_trap_arm(sigjmp_buf *jb, wenv_memory *m)
{
    struct wenv_thread *t = &wenv_self;
    if (WENV_UNLIKELY(!t->ready))
        wenv_thread_prepare(t);
    t->mem = m;
    WENV_BARRIER();
    t->jmp = m != NULL ? jb : NULL;
    WENV_BARRIER();
}
void wenv_trap_disarm(void) { WENV_BARRIER(); wenv_self.jmp = NULL; WENV_BARRIER(); }
int wenv_trap_after_fault(void) { return wenv_after_fault(); }

int wenv_last_status(void) { return wenv_self.status; }
uint64_t wenv_last_fault_address(void) { return wenv_self.fault_addr; }
int wenv_last_fault_signal(void) { return wenv_self.fault_sig; }

/* Run STMT with the jump buffer armed; if it faults inside the memory's reservation,
 * return ON_FAULT(status) from the enclosing function. Must be expanded directly in
 * the accessor (a function calling sigsetjmp cannot be inlined). The fault path reads
 * only thread-local state, never a local modified after sigsetjmp. */
#define WENV_GUARDED(M, STMT, ON_FAULT)                                             \
    do {                                                                            \
        struct wenv_thread *t_ = &wenv_self;                                        \
        if (WENV_UNLIKELY(!t_->ready))                                              \
            wenv_thread_prepare(t_);                                                \
        sigjmp_buf jb_;                                                             \
        if (sigsetjmp(jb_, 0))                                                      \
            return ON_FAULT(wenv_after_fault());                                    \
        t_->mem = (M);                                                              \
        WENV_BARRIER();                                                             \
        t_->jmp = &jb_;                                                             \
        WENV_BARRIER();                                                             \
        STMT;                                                                       \
        WENV_BARRIER();                                                             \
        t_->jmp = NULL;                                                             \
        WENV_BARRIER();                                                             \
    } while (0)

#define WENV_STATUS(st) (st)

/* ------------------------------------------------------------------------------------
 * Accessors
 * ---------------------------------------------------------------------------------- */

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
    RET wenv_load_##NAME(wenv_memory *m, uint64_t addr, uint64_t offset)            \
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
    int wenv_store_##NAME(wenv_memory *m, uint64_t addr, uint64_t offset, VT value) \
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

int wenv_read(wenv_memory *m, uint64_t addr, char *dst, uint64_t byte_len)
{
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memcpy(dst, (const void *)(uintptr_t)(m->base + addr), (size_t)byte_len), WENV_STATUS);
    return WENV_OK;
}

int wenv_write(wenv_memory *m, uint64_t addr, const char *src, uint64_t byte_len)
{
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memcpy((void *)(uintptr_t)(m->base + addr), src, (size_t)byte_len), WENV_STATUS);
    return WENV_OK;
}

int wenv_fill(wenv_memory *m, uint64_t addr, int64_t value, uint64_t byte_len)
{
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memset((void *)(uintptr_t)(m->base + addr), (int)(value & 0xff), (size_t)byte_len),
                 WENV_STATUS);
    return WENV_OK;
}

int wenv_copy(wenv_memory *m, uint64_t dst, uint64_t src, uint64_t byte_len)
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

int wenv_init(wenv_memory *m, uint64_t addr, const char *src, uint64_t src_len, uint64_t src_offset,
              uint64_t byte_len)
{
    if (src_offset > src_len || src_len - src_offset < byte_len) {
        uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
        return flags & WENV_MEM_CLOSED ? WENV_CLOSED : WENV_OOB;
    }
    int st = wenv_locate_range(m, addr, byte_len);
    if (st != WENV_OK || byte_len == 0)
        return st;
    WENV_GUARDED(m, memcpy((void *)(uintptr_t)(m->base + addr), src + src_offset, (size_t)byte_len), WENV_STATUS);
    return WENV_OK;
}

/* ------------------------------------------------------------------------------------
 * Benchmarks
 * ---------------------------------------------------------------------------------- */

static double wenv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A Static 4 GiB + 64 KiB reservation with one accessible wasm page: raw accesses. */
static int wenv_bench_memory(wenv_memory *m)
{
    const uint64_t bound = (uint64_t)1 << 32, guard = 65536;
    uint64_t start;
    if (wenv_reserve(bound + guard, &start) != 0)
        return -1;
    if (wenv_protect(start, 65536, 1) != 0) {
        wenv_release(start, bound + guard);
        return -1;
    }
    wenv_memory_init(m, start, 65536, bound, guard, start, start + bound + guard, WENV_MEM_STATIC);
    return 0;
}

double wenv_bench_trap_roundtrip(long iterations)
{
    wenv_memory m;
    if (iterations <= 0 || wenv_trap_handler_install() != 0 || wenv_bench_memory(&m) != 0)
        return -1.0;
    long caught = 0;
    double t0 = wenv_now_ns();
    for (long i = 0; i < iterations; i++) {
        (void)wenv_load_i32(&m, 1u << 20, 0);
        caught += wenv_self.status == WENV_OOB_GUARD;
    }
    double t1 = wenv_now_ns();
    wenv_release(m.resv_start, m.resv_end - m.resv_start);
    return caught == iterations ? (t1 - t0) / (double)iterations : -1.0;
}

double wenv_bench_jmp_roundtrip(long iterations, int savemask)
{
    if (iterations <= 0)
        return -1.0;
    static sigjmp_buf jb;
    volatile long i = 0;
    double t0 = wenv_now_ns();
    for (i = 0; i < iterations; i++) {
        if (sigsetjmp(jb, savemask) == 0) {
            WENV_BARRIER();
            siglongjmp(jb, 1);
        }
    }
    double t1 = wenv_now_ns();
    return (t1 - t0) / (double)iterations;
}

double wenv_bench_load_i32(long iterations)
{
    wenv_memory m;
    if (iterations <= 0 || wenv_trap_handler_install() != 0 || wenv_bench_memory(&m) != 0)
        return -1.0;
    int64_t sum = 0;
    double t0 = wenv_now_ns();
    for (long i = 0; i < iterations; i++)
        sum += wenv_load_i32(&m, (uint64_t)(i & 0xfff) * 4, 0);
    double t1 = wenv_now_ns();
    wenv_release(m.resv_start, m.resv_end - m.resv_start);
    return sum == 0 ? (t1 - t0) / (double)iterations : -1.0;
}
