/*
 * wenv_traps: the SIGSEGV/SIGBUS handler that turns a fault inside the accessed memory's
 * reservation into a status code, chaining every other fault to whatever handler was
 * installed before it; and the per-thread state it works with.
 *
 * How a guard-page trap works
 * ---------------------------
 * An accessor that may fault (wenv_memory.c) runs its one load, store or copy inside
 * WENV_GUARDED below: it records, in thread-local storage, the memory it is about to
 * touch and a pointer to a sigjmp_buf on its own stack, then does the access. If that
 * faults, wenv_on_fault() sees a fault address inside that memory's reservation while
 * the jump buffer is armed and siglongjmp()s back into the accessor, which unblocks the
 * signal and returns WENV_OOB_GUARD. Any other fault is passed on to the handler that
 * was installed before ours (see wenv_chain()), so a real crash still crashes and
 * Python's faulthandler still prints its traceback.
 *
 * The jump buffer pointer is an ordinary thread-local store; at -O2 the compiler is
 * free to sink it past the memory access unless told otherwise. Every guarded access is
 * therefore a volatile access fenced by compiler barriers on both sides, and the
 * thread-local fields are volatile.
 */
#ifndef WENV_TRAPS_H
#define WENV_TRAPS_H
#include "wenv.h"
#include "wenv_memory.h"
/* CDEF-BEGIN */

/* [errno] Install (or put back on top) the SIGSEGV/SIGBUS handler. */
int wenv_trap_handler_install(void);
/* 1 if our handler is the one installed for both signals, 0 if displaced, -1 if never installed. */
int wenv_trap_handler_on_top(void);
/* The handler installed for sig (its function, as an integer; 0: SIG_DFL or unknown). */
uint64_t wenv_signal_handler_id(int sig);
/* Drop every handler running handler_id from the ones ours chains to (its owner removed
 * it: Python's faulthandler.disable()); the number of entries dropped. */
int wenv_trap_handler_forget(uint64_t handler_id);
/* Status of the last accessor call on this thread that returned its trap sentinel. */
int wenv_last_status(void);
uint64_t wenv_last_fault_address(void);   /* host si_addr of the last caught fault on this thread */
int wenv_last_fault_signal(void);
/* Faults this thread's handler turned into traps (siglongjmp back to an armed access or
 * interpreter entry), since the thread started: the signal path, counted where it is taken. */
uint64_t wenv_thread_faults_caught(void);

/* CDEF-END */

#include <setjmp.h>
#include <signal.h>

struct wenv_thread {
    sigjmp_buf *volatile jmp;       /* armed while a guarded access runs */
    wenv_memory *volatile mem;      /* the memory being accessed */
    volatile uint64_t len_at_access;  /* its byte_len when the access began (the fault verdict) */
    volatile uint64_t src_lo, src_len;  /* bytes a guarded copy reads from (0 bytes: none) */
    volatile uint64_t fault_addr;
    volatile int fault_sig;
    volatile uint64_t faults_caught;  /* faults turned into traps on this thread */
    uintptr_t c_stack_low;          /* the thread's stack: its lowest address (0: unknown) */
    uintptr_t c_stack_limit;        /* lowest sp an entry into wasm may start at (0: unknown) */
    int c_stack_known;              /* c_stack_limit computed */
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
extern WENV_TLS WENV_INTERNAL struct wenv_thread wenv_self;

/* First guarded access of a thread: give it an alternate signal stack. */
WENV_INTERNAL void wenv_thread_prepare(struct wenv_thread *t);
/* After the siglongjmp of a caught fault: unblock the signal, return the verdict. */
WENV_INTERNAL int wenv_after_fault(void);
/* The interpreter (wenv_interp.c): arm the handler once per entry into wasm, for faults
 * inside `m`'s reservation (judged against its byte_len now: between entry and exit only
 * wasm code runs on this thread, and memory.grow leaves the interpreter); disarm at exit. */
WENV_INTERNAL void wenv_trap_arm(sigjmp_buf *jb, wenv_memory *m);
WENV_INTERNAL void wenv_trap_disarm(void);
/* 1 if this thread's C stack is too low for another entry into wasm (wasm -> host -> wasm
 * recursion): fewer than WENV_C_STACK_RESERVE bytes (a quarter of a smaller stack) left
 * under the caller's frame. The interpreter then traps with STACK_OVERFLOW instead of
 * overflowing the C stack. 0 where the thread's stack bounds are unknown, and when
 * running below them (on a stack that is not the thread's own). */
WENV_INTERNAL int wenv_c_stack_exhausted(void);
#define WENV_C_STACK_RESERVE (256 * 1024)

/* Run STMT with the jump buffer armed; if it faults inside the memory's reservation
 * (or inside [SRC, SRC + SRC_LEN), the bytes a copy reads from: a view of a data file,
 * say), return ON_FAULT(status) from the enclosing function. Must be expanded directly
 * in the accessor (a function calling sigsetjmp cannot be inlined). The fault path
 * reads only thread-local state, never a local modified after sigsetjmp. The length is
 * read before the access: a fault is judged against the length in force when the
 * access was made, whatever a concurrent grow of a shared memory did since. */
#define WENV_GUARDED_FROM(M, SRC, SRC_LEN, STMT, ON_FAULT)                          \
    do {                                                                            \
        struct wenv_thread *t_ = &wenv_self;                                        \
        if (WENV_UNLIKELY(!t_->ready))                                              \
            wenv_thread_prepare(t_);                                                \
        sigjmp_buf jb_;                                                             \
        if (sigsetjmp(jb_, 0))                                                      \
            return ON_FAULT(wenv_after_fault());                                    \
        t_->mem = (M);                                                              \
        t_->len_at_access = __atomic_load_n(&(M)->byte_len, __ATOMIC_ACQUIRE);      \
        if (SRC_LEN) {                                                              \
            t_->src_lo = (uint64_t)(uintptr_t)(SRC);                                \
            t_->src_len = (SRC_LEN);                                                \
        }                                                                           \
        WENV_BARRIER();                                                             \
        t_->jmp = &jb_;                                                             \
        WENV_BARRIER();                                                             \
        STMT;                                                                       \
        WENV_BARRIER();                                                             \
        t_->jmp = NULL;                                                             \
        WENV_BARRIER();                                                             \
        if (SRC_LEN)                                                                \
            t_->src_len = 0;                                                        \
    } while (0)

/* The same, for accesses that read nothing but the memory. */
#define WENV_GUARDED(M, STMT, ON_FAULT) WENV_GUARDED_FROM(M, 0, 0, STMT, ON_FAULT)

#endif
