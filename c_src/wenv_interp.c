/*
 * wenv_interp.c -- the interpreter: one function, computed-goto dispatch (direct
 * threading: each op word holds its handler's address), over frames of 8-byte cells.
 *
 * Handlers by family live in wenv_interp_num.inc, wenv_interp_mem.inc and
 * wenv_interp_call.inc (globals, calls, returns, tail calls), included into
 * the body of wenv_interp_loop. The op list is wenv_interp_ops.h (Python finds ops by
 * name). Guard-page faults of raw accesses reach wenv_interp_run through the fault
 * handler of wenv_traps.c, armed once per entry (wenv_trap_arm).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <setjmp.h>
#include <string.h>

#include "wenv.h"
#include "wenv_interp.h"
#include "wenv_traps.h"
#include "wenv_interp_ops.h"


typedef uint8_t wenv_i_u8 __attribute__((may_alias));
typedef int8_t wenv_i_s8 __attribute__((may_alias));
typedef uint16_t wenv_i_u16 __attribute__((aligned(1), may_alias));
typedef int16_t wenv_i_s16 __attribute__((aligned(1), may_alias));
typedef uint32_t wenv_i_u32 __attribute__((aligned(1), may_alias));
typedef int32_t wenv_i_s32 __attribute__((aligned(1), may_alias));
typedef uint64_t wenv_i_u64 __attribute__((aligned(1), may_alias));

static inline float wenv_f32(uint64_t cell) { uint32_t b = (uint32_t)cell; float f; memcpy(&f, &b, 4); return f; }
static inline double wenv_f64(uint64_t cell) { double d; memcpy(&d, &cell, 8); return d; }
static inline uint64_t wenv_f32_cell(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static inline uint64_t wenv_f64_cell(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }

typedef uint32_t T_I32;
typedef uint64_t T_I64;
typedef float T_F32;
typedef double T_F64;
#define GET_I32(x) ((uint32_t)(x))
#define GET_I64(x) ((uint64_t)(x))
#define GET_F32(x) wenv_f32(x)
#define GET_F64(x) wenv_f64(x)
#define PUT_I32(v) ((uint64_t)(uint32_t)(v))
#define PUT_I64(v) ((uint64_t)(v))
#define PUT_F32(v) wenv_f32_cell(v)
#define PUT_F64(v) wenv_f64_cell(v)

/* wasm min/max: NaN if either is NaN; -0 < +0. */
static inline float wenv_f32_min(float a, float b)
{
    if (a != a || b != b) return a + b;
    if (a == b) return wenv_f32((uint32_t)wenv_f32_cell(a) | (uint32_t)wenv_f32_cell(b));
    return a < b ? a : b;
}
static inline float wenv_f32_max(float a, float b)
{
    if (a != a || b != b) return a + b;
    if (a == b) return wenv_f32((uint32_t)wenv_f32_cell(a) & (uint32_t)wenv_f32_cell(b));
    return a > b ? a : b;
}
static inline double wenv_f64_min(double a, double b)
{
    if (a != a || b != b) return a + b;
    if (a == b) return wenv_f64(wenv_f64_cell(a) | wenv_f64_cell(b));
    return a < b ? a : b;
}
static inline double wenv_f64_max(double a, double b)
{
    if (a != a || b != b) return a + b;
    if (a == b) return wenv_f64(wenv_f64_cell(a) & wenv_f64_cell(b));
    return a > b ? a : b;
}

/* wenv_e_<name>(a, b): the expression of each integer binary op (WENV_INT_BINS). */
#define EXPR_FN(name, T, expr) \
    static inline T_##T wenv_e_##name(T_##T a, T_##T b) { return (T_##T)(expr); }
WENV_INT_BINS(EXPR_FN)

#define NAME_OF(name) #name,
#define NAME_OF_C(name) #name "_c",
#define NAME_OF_AA(name) #name "_aa",
#define NAME_OF_AT(name) #name "_at",
static const char *const wenv_op_names[] = {
    WENV_CTL_OPS(NAME_OF) WENV_NUM_OPS(NAME_OF) WENV_MEM_ACCESS_OPS(NAME_OF)
    WENV_MEM_ACCESS_OPS(NAME_OF_C) WENV_STORE_OPS(NAME_OF) WENV_TABLE_OPS(NAME_OF)
    WENV_MEM_ACCESS_OPS(NAME_OF_AA) WENV_MEM_ACCESS_OPS(NAME_OF_AT)
};
#define WENV_OP_COUNT ((int)(sizeof wenv_op_names / sizeof wenv_op_names[0]))

int wenv_interp_op_count(void) { return WENV_OP_COUNT; }

const char *wenv_interp_op_name(int op)
{
    return op >= 0 && op < WENV_OP_COUNT ? wenv_op_names[op] : NULL;
}

/* The loop. With c == NULL it returns nothing and stores its handler table in *labels_out. */
static __attribute__((noinline)) int wenv_interp_loop(wenv_call *c, const void *const **labels_out)
{
#define LABEL_OF(name) &&L_##name,
#define LABEL_OF_C(name) &&L_##name##_c,
#define LABEL_OF_AA(name) &&L_##name##_aa,
#define LABEL_OF_AT(name) &&L_##name##_at,
    static const void *const labels[] = {
        WENV_CTL_OPS(LABEL_OF) WENV_NUM_OPS(LABEL_OF) WENV_MEM_ACCESS_OPS(LABEL_OF)
        WENV_MEM_ACCESS_OPS(LABEL_OF_C) WENV_STORE_OPS(LABEL_OF) WENV_TABLE_OPS(LABEL_OF)
        WENV_MEM_ACCESS_OPS(LABEL_OF_AA) WENV_MEM_ACCESS_OPS(LABEL_OF_AT)
    };
    _Static_assert(sizeof labels / sizeof labels[0] == sizeof wenv_op_names / sizeof wenv_op_names[0],
                   "one handler per op name");
    if (c == NULL) {
        *labels_out = labels;
        return 0;
    }
    wenv_vm *vm = c->vm;
    wenv_func *funcs = vm->funcs;
    wenv_memory *const *mems = vm->mems;
    uint8_t *mbase0 = vm->nmems ? (uint8_t *)(uintptr_t)mems[0]->base : NULL;
    uint8_t *gb = vm->block;
    uint64_t *const stack_end = c->stack + c->stack_cells;
    wenv_frame *const frames = c->frames;
    const uint32_t max_frames = c->max_frames;
    uint64_t *ip = c->ip, *fp = c->fp;
    uint32_t depth = c->depth;
    int status;

#define S(i) fp[ip[i]]
#define NEXT() goto *(const void *)(uintptr_t)ip[0]
#define TRAP(code) do { status = (code); goto trap; } while (0)
#define EXIT(code) do { status = (code); goto out; } while (0)
#define DISP(i) ((int64_t)ip[i])

    if (ip == NULL) { /* start: the entry's arguments are at stack[0..nparams) */
        wenv_func *fn = &funcs[c->entry];
        uint64_t *code = __atomic_load_n(&fn->code, __ATOMIC_ACQUIRE);
        if (code == NULL || fn->frame_cells > c->stack_cells) {
            status = code == NULL ? WENV_I_EXIT_TRANSLATE : WENV_I_STACK_OVERFLOW;
            c->exit_arg0 = c->entry;
            c->exit_vm = vm;
            c->status = status;
            return status;
        }
        fp = c->stack;
        memset(fp + fn->nparams, 0, (size_t)fn->nlocals * 8);
        ip = code;
        depth = 0;
        c->fp = fp;
        c->depth = 0;
    }
    NEXT();

    L_unreachable: TRAP(WENV_I_UNREACHABLE);
    L_br: ip += DISP(1); NEXT();
    L_br_if: if ((uint32_t)S(1)) { ip += DISP(2); NEXT(); } ip += 3; NEXT();
    L_br_unless: if (!(uint32_t)S(1)) { ip += DISP(2); NEXT(); } ip += 3; NEXT();
    /* A copy, then br_if/br_unless: [op, dst, src, cond, disp] */
    L_copy_br_if: S(1) = S(2); if ((uint32_t)S(3)) { ip += DISP(4); NEXT(); } ip += 5; NEXT();
    L_copy_br_unless: S(1) = S(2); if (!(uint32_t)S(3)) { ip += DISP(4); NEXT(); } ip += 5; NEXT();
    /* [op, index, n, disp_0 .. disp_{n-1}, disp_default] */
    L_br_table: {
        uint64_t i = (uint32_t)S(1), n = ip[2];
        ip += DISP(3 + (i < n ? i : n));
        NEXT();
    }
    L_copy: S(1) = S(2); ip += 3; NEXT();
    L_const: S(1) = ip[2]; ip += 3; NEXT();
    /* Branch-free: select's condition is data (a crc bit), a jump on it mispredicts. */
    L_select: {
        uint64_t m = (uint64_t)0 - (uint64_t)((uint32_t)S(4) != 0);
        S(1) = (S(2) & m) | (S(3) & ~m); ip += 5; NEXT();
    }
#include "wenv_interp_call.inc"
#define BR_CMP(name, T, expr) \
    L_br_##name: { T a = (T)S(1); T b = (T)S(2); if (expr) { ip += DISP(3); NEXT(); } ip += 4; NEXT(); }
    BR_CMP(i32_eq, uint32_t, a == b) BR_CMP(i32_ne, uint32_t, a != b)
    BR_CMP(i32_lt_s, int32_t, a < b) BR_CMP(i32_lt_u, uint32_t, a < b)
    BR_CMP(i32_gt_s, int32_t, a > b) BR_CMP(i32_gt_u, uint32_t, a > b)
    BR_CMP(i32_le_s, int32_t, a <= b) BR_CMP(i32_le_u, uint32_t, a <= b)
    BR_CMP(i32_ge_s, int32_t, a >= b) BR_CMP(i32_ge_u, uint32_t, a >= b)
    BR_CMP(i64_eq, uint64_t, a == b) BR_CMP(i64_ne, uint64_t, a != b)
    BR_CMP(i64_lt_s, int64_t, a < b) BR_CMP(i64_lt_u, uint64_t, a < b)
    BR_CMP(i64_gt_s, int64_t, a > b) BR_CMP(i64_gt_u, uint64_t, a > b)
    BR_CMP(i64_le_s, int64_t, a <= b) BR_CMP(i64_le_u, uint64_t, a <= b)
    BR_CMP(i64_ge_s, int64_t, a >= b) BR_CMP(i64_ge_u, uint64_t, a >= b)
    L_br_i64_eqz: if (S(1) == 0) { ip += DISP(2); NEXT(); } ip += 3; NEXT();
    L_br_i64_nez: if (S(1) != 0) { ip += DISP(2); NEXT(); } ip += 3; NEXT();

#include "wenv_interp_num.inc"
#include "wenv_interp_mem.inc"
#include "wenv_interp_ctl.inc"
#include "wenv_interp_table.inc"

trap:
out:
    c->ip = ip;
    c->fp = fp;
    c->depth = depth;
    c->status = status;
    return status;
}

wenv_funcref *wenv_vm_funcref(wenv_vm *vm, uint64_t index)
{
    if (index < vm->num_imported_funcs)
        return vm->imports[index].callee;
    uint32_t k = vm->anyfunc_of[index];
    if (k == UINT32_MAX)
        return NULL;
    wenv_funcref *r = &vm->funcrefs[k];
    if (__atomic_load_n(&r->func, __ATOMIC_ACQUIRE) == NULL) {
        /* Two threads making it at once write the same values. */
        r->type_id = vm->type_ids[index];
        r->vmctx = vm;
        __atomic_store_n(&r->func, &vm->funcs[index], __ATOMIC_RELEASE);
    }
    return r;
}

static const void *const *wenv_labels(void)
{
    static const void *const *labels;
    if (labels == NULL)
        wenv_interp_loop(NULL, &labels);
    return labels;
}

int wenv_interp_link(uint64_t *code, uint64_t code_len, const uint32_t *positions, uint64_t n)
{
    const void *const *labels = wenv_labels();
    for (uint64_t i = 0; i < n; i++) {
        uint32_t pos = positions[i];
        if (pos >= code_len || code[pos] >= (uint64_t)WENV_OP_COUNT) {
            errno = EINVAL;
            return -1;
        }
    }
    for (uint64_t i = 0; i < n; i++)
        code[positions[i]] = (uint64_t)(uintptr_t)labels[code[positions[i]]];
    return 0;
}

void wenv_vm_layout(wenv_vm *vm, uint32_t nmems, uint32_t ntables, uint32_t nimports)
{
    uint64_t *tail = vm->tail;
    vm->mems = (wenv_memory **)tail;
    vm->tables = (wenv_table **)(tail + nmems);
    vm->imports = (wenv_import *)(tail + nmems + ntables);
    vm->funcrefs = (wenv_funcref *)(vm->imports + nimports);
}

void wenv_vm_open(wenv_vm *vm, const wenv_vm_module *m, uint8_t *block, uint64_t id,
                  wenv_memory **mems, wenv_table **tables, uint32_t ngiven,
                  wenv_instance_table *entries, const wenv_import *records)
{
    wenv_vm_layout(vm, m->nmems, m->ntables, m->nimports);
    vm->block = block;
    vm->funcs = m->funcs;
    vm->num_imported_funcs = m->num_imported_funcs;
    vm->anyfunc_of = m->anyfunc_of;
    vm->type_ids = m->type_ids;
    vm->id = id;
    for (uint32_t i = 0; i < m->nmems; i++)
        vm->mems[i] = mems[i];
    vm->nmems = m->nmems;
    for (uint32_t i = 0; i < m->ntables; i++) {
        wenv_table *t = i < ngiven ? tables[i] : NULL;
        if (t == NULL && entries != NULL && i >= m->first_defined) {
            uint32_t k = i - m->first_defined;
            wenv_instance_table *e = &entries[k];
            if (m->lazy[k] != NULL) {
                e->table.lazy = m->lazy[k];
                e->table.lazy_len = m->lazy_len[k];
                e->table.vm = vm;
            }
            e->viewed = 1;
            t = &e->table;
        }
        vm->tables[i] = t;
    }
    vm->ntables = m->ntables;
    if (records != NULL && m->nimports)
        memcpy(vm->imports, records, (size_t)m->nimports * sizeof *records);
}

uint32_t wenv_vm_memories_enter(const wenv_vm *vm, uint32_t first, uint32_t n)
{
    return wenv_memories_enter(vm->mems + first, n);
}

void wenv_vm_memories_leave(const wenv_vm *vm, uint32_t first, uint32_t n)
{
    wenv_memories_leave(vm->mems + first, n);
}

void wenv_vm_memories_keep(const wenv_vm *vm, uint32_t first, uint32_t n)
{
    wenv_memories_keep(vm->mems + first, n);
}

static int wenv_op_number(const char *name)
{
    for (int op = 0; op < WENV_OP_COUNT; op++)
        if (strcmp(wenv_op_names[op], name) == 0)
            return op;
    return -1; /* (not reached: both names below are ops) */
}

void wenv_host_natives_init(wenv_host_native *h, uint64_t n, const uint64_t *words)
{
    static int host_call = -1, ret = -1; /* found once (threads racing here find the same) */
    if (__atomic_load_n(&host_call, __ATOMIC_ACQUIRE) < 0) {
        __atomic_store_n(&ret, wenv_op_number("return"), __ATOMIC_RELAXED);
        __atomic_store_n(&host_call, wenv_op_number("host_call"), __ATOMIC_RELEASE);
    }
    const void *const *labels = wenv_labels();
    for (uint64_t i = 0; i < n; i++, h++, words += 3) {
        uint32_t nparams = (uint32_t)(words[2] >> 32), nresults = (uint32_t)words[2];
        uint32_t cells = nparams > nresults ? nparams : nresults;
        cells = cells ? cells : 1;
        h->code[0] = (uint64_t)(uintptr_t)labels[host_call];
        h->code[1] = words[0];
        h->code[2] = cells;
        h->code[3] = (uint64_t)(uintptr_t)labels[__atomic_load_n(&ret, __ATOMIC_RELAXED)];
        h->fn.code = h->code;
        h->fn.nparams = nparams;
        h->fn.nresults = nresults;
        h->fn.nlocals = 0;
        h->fn.frame_cells = cells;
        h->ref.func = &h->fn;
        h->ref.type_id = words[1];
        h->ref.vmctx = NULL;
    }
}

/* A call whose entry's code has no fuel or epoch checks may still reach code that has
 * (another engine's instance, imported): it runs unbounded, never through NULL. */
static int64_t wenv_no_fuel = INT64_MAX;
static const uint64_t wenv_no_epoch = 0, wenv_no_deadline = UINT64_MAX;

int wenv_interp_run(wenv_call *c)
{
    if (WENV_UNLIKELY(c->fuel == NULL))
        c->fuel = &wenv_no_fuel;
    if (WENV_UNLIKELY(c->epoch == NULL)) {
        c->epoch = &wenv_no_epoch;
        c->epoch_deadline = &wenv_no_deadline;
    }
    if (WENV_UNLIKELY(c->ip == NULL && wenv_c_stack_exhausted()))
        return c->status = WENV_I_STACK_OVERFLOW; /* host -> wasm re-entered too deep for C */
    wenv_call *volatile call = c;
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0)) {
        /* A raw access faulted in memory 0's reservation: recompute its wasm address
         * from the instruction in flight ([op, addr, offset, ...]) and the frame. */
        wenv_call *cc = call;
        int st = wenv_after_fault();
        uint64_t *tip = cc->trap_ip;
        cc->trap_addr = (uint64_t)(uint32_t)cc->fp[tip[1]] + tip[2];
        cc->faults++;
        cc->ip = tip;
        cc->status = st == WENV_FAULT ? WENV_I_FAULT : WENV_I_OOB_GUARD;
        return cc->status;
    }
    c->jb = &jb;
    wenv_trap_arm(&jb, c->vm->nmems ? c->vm->mems[0] : NULL);
    int st = wenv_interp_loop(c, NULL);
    wenv_trap_disarm();
    c->jb = NULL;
    return st;
}
