/*
 * wenv_traps.c — the guard-page fault handler, its chaining, and per-thread state
 * (see wenv_traps.h for how a trap works).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "wenv_mman.h"
#include "wenv_traps.h"

WENV_TLS struct wenv_thread wenv_self;

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
        if ((m != NULL && a >= m->resv_start && a < m->resv_end) || a - t->src_lo < t->src_len) {
            t->jmp = NULL;
            t->fault_addr = a;
            t->fault_sig = sig;
            t->faults_caught++;
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

/* The function a handler entry runs (SA_SIGINFO or not), as an integer: its identity. */
static uint64_t wenv_handler_id(const struct sigaction *sa)
{
    if (sa->sa_flags & SA_SIGINFO)
        return (uint64_t)(uintptr_t)sa->sa_sigaction;
    return (uint64_t)(uintptr_t)sa->sa_handler;
}

uint64_t wenv_signal_handler_id(int sig)
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0)
        return 0;
    return wenv_handler_id(&cur);
}

int wenv_trap_handler_forget(uint64_t handler_id)
{
    int removed = 0;
    pthread_mutex_lock(&wenv_install_lock);
    for (int i = 0; i < WENV_NSIG; i++) {
        int n = wenv_nprev[i], kept = 0;
        for (int k = 0; k < n; k++) {
            if (wenv_handler_id(&wenv_prev[i][k]) == handler_id) {
                removed++;
                continue;
            }
            if (kept != k)
                wenv_prev[i][kept] = wenv_prev[i][k];
            kept++;
        }
        __atomic_store_n(&wenv_nprev[i], kept, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&wenv_install_lock);
    return removed;
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
    long page = wenv_page_size();
    wenv_release((uint64_t)(uintptr_t)sp - (uint64_t)page, WENV_ALTSTACK_LEN + (uint64_t)page);
}

static void wenv_stack_key_create(void) { pthread_key_create(&wenv_stack_key, wenv_stack_free); }

void wenv_thread_prepare(struct wenv_thread *t)
{
    t->ready = 1;
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0)
        return;
    if (!(cur.ss_flags & SS_DISABLE))
        return; /* the thread already has one (e.g. faulthandler's, on the main thread) */
    pthread_once(&wenv_stack_once, wenv_stack_key_create);
    uint64_t page = (uint64_t)wenv_page_size(), mem;
    /* A PROT_NONE page under the stack catches an overflow. No alternate stack if this
     * fails: the handler then runs on the thread's own stack. */
    if (wenv_reserve(WENV_ALTSTACK_LEN + page, &mem) != 0)
        return;
    if (wenv_protect(mem + page, WENV_ALTSTACK_LEN, 1) != 0) {
        wenv_release(mem, WENV_ALTSTACK_LEN + page);
        return;
    }
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = (void *)(uintptr_t)(mem + page);
    ss.ss_size = WENV_ALTSTACK_LEN;
    if (sigaltstack(&ss, NULL) != 0) {
        wenv_release(mem, WENV_ALTSTACK_LEN + page);
        return;
    }
    pthread_setspecific(wenv_stack_key, ss.ss_sp);
}

__attribute__((noinline)) int wenv_after_fault(void)
{
    struct wenv_thread *t = &wenv_self;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, t->fault_sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    WENV_HOOK(WENV_HOOK_FAULT_CAUGHT);
    wenv_memory *m = t->mem;
    uint64_t a = t->fault_addr;
    uint64_t len = t->len_at_access; /* never re-read: a shared memory may have grown since */
    int in_src = a - t->src_lo < t->src_len;
    t->src_len = 0;
    if (in_src)
        return WENV_SRC_FAULT;
    if (a >= m->base && a - m->base < len)
        return WENV_FAULT;
    return WENV_OOB_GUARD;
}

void wenv_trap_arm(sigjmp_buf *jb, wenv_memory *m)
{
    struct wenv_thread *t = &wenv_self;
    if (WENV_UNLIKELY(!t->ready))
        wenv_thread_prepare(t);
    t->mem = m;
    if (m != NULL)
        t->len_at_access = __atomic_load_n(&m->byte_len, __ATOMIC_ACQUIRE);
    WENV_BARRIER();
    t->jmp = m != NULL ? jb : NULL;
    WENV_BARRIER();
}

void wenv_trap_disarm(void)
{
    WENV_BARRIER();
    wenv_self.jmp = NULL;
    WENV_BARRIER();
}

/* ---- the C stack left to an entry into wasm ---- */

#if defined(__APPLE__)
/* <pthread.h> on Darwin has them; declared here too (the same signatures) so that the
 * branch type-checks against any POSIX headers (tests/test_native.py). */
void *pthread_get_stackaddr_np(pthread_t);
size_t pthread_get_stacksize_np(pthread_t);
#endif

/* The lowest address of this thread's stack (0: unknown). */
static uintptr_t wenv_stack_low(size_t *size)
{
#if defined(__APPLE__)
    pthread_t self = pthread_self();
    *size = pthread_get_stacksize_np(self);
    return (uintptr_t)pthread_get_stackaddr_np(self) - *size;
#elif defined(__GLIBC__) || defined(__linux__)
    pthread_attr_t attr;
    void *addr = NULL;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 0;
    if (pthread_attr_getstack(&attr, &addr, size) != 0)
        addr = NULL;
    pthread_attr_destroy(&attr);
    return (uintptr_t)addr;
#else
    *size = 0;
    return 0;
#endif
}

__attribute__((noinline)) int wenv_c_stack_exhausted(void)
{
    struct wenv_thread *t = &wenv_self;
    if (WENV_UNLIKELY(!t->c_stack_known)) {
        size_t size = 0;
        uintptr_t low = wenv_stack_low(&size);
        size_t reserve = size / 4 < WENV_C_STACK_RESERVE ? size / 4 : WENV_C_STACK_RESERVE;
        t->c_stack_low = low;
        t->c_stack_limit = low ? low + reserve : 0;
        t->c_stack_known = 1;
    }
    char marker;
    uintptr_t sp = (uintptr_t)&marker;
    /* below the thread's stack: running on a stack of someone else's (a coroutine
     * library's, say) whose bounds we do not know: no verdict */
    return sp < t->c_stack_limit && sp >= t->c_stack_low;
}

int wenv_last_status(void) { return wenv_self.status; }
uint64_t wenv_last_fault_address(void) { return wenv_self.fault_addr; }
int wenv_last_fault_signal(void) { return wenv_self.fault_sig; }
uint64_t wenv_thread_faults_caught(void) { return wenv_self.faults_caught; }
