/*
 * wenv_interp: the interpreter of translated function bodies (runtime/translate.py).
 *
 * Code is an array of 64-bit words: an instruction is its op word (the op number as
 * the translator writes it, replaced by its handler's address by wenv_interp_link),
 * then its operands: frame-slot indices (8-byte cells relative to the frame pointer),
 * immediates, and branch displacements in words from the op word. C trusts only code
 * produced by the translator from validated wasm.
 *
 * A call runs without C recursion: wasm-to-wasm calls push a wenv_frame. Code runs over
 * the instance state of its own instance (a wenv_vm): a call into another instance (an
 * imported wasm function, a funcref of another instance) switches to the callee's, and
 * the return restores the caller's. When the interpreter needs Python (a callee not yet
 * translated, a host function, a memory.grow that moves the memory) it saves its state in the wenv_call and
 * returns an exit status; wenv_interp_run() resumes it.
 */
#ifndef WENV_INTERP_H
#define WENV_INTERP_H
#include <stdint.h>
#include "wenv_memory.h"
#include "wenv_table.h"
#include "wenv_tables.h"
/* CDEF-BEGIN */

/* ---- wenv_call.status ---- */
#define WENV_I_DONE 0
#define WENV_I_UNREACHABLE 1
#define WENV_I_DIV_ZERO 2
#define WENV_I_INT_OVERFLOW 3
#define WENV_I_BAD_CONV 4
#define WENV_I_OOB 5            /* out of bounds, found by an explicit check */
#define WENV_I_OOB_GUARD 6      /* out of bounds, found by a guard-page fault */
#define WENV_I_STACK_OVERFLOW 7
#define WENV_I_FAULT 8          /* a fault inside the accessible bytes */
#define WENV_I_OUT_OF_FUEL 9    /* the store's fuel went below zero (wenv_interp_ctl.inc) */
#define WENV_I_INTERRUPT 10     /* the engine's epoch reached the store's deadline */
#define WENV_I_TABLE_OOB 11
#define WENV_I_NULL_REF 12      /* call_ref of a null function reference, ref.as_non_null of null */
#define WENV_I_INDIRECT_NULL 13 /* call_indirect of a null element */
#define WENV_I_BAD_SIG 14       /* call_indirect: the element's type is not the expected one */
#define WENV_I_NO_MEMORY 15     /* a table's first write could not map its storage (not a trap) */
#define WENV_I_EXIT_TRANSLATE 100   /* function exit_arg0 of exit_vm to translate; resume re-runs the call */
#define WENV_I_EXIT_GROW 101        /* memory exit_arg0 grows by exit_arg1 pages; result into *exit_dst */
#define WENV_I_EXIT_HOST 102        /* host function exit_arg0: its arguments at fp[0..), results
                                     * into fp[0..); exit_arg1: cells in use up to its frame's end */
#define WENV_I_EXIT_TABLE_GROW 103  /* table exit_arg0 of vm grows by exit_arg1 elements of cell *exit_dst; result into *exit_dst */
#define WENV_I_EXIT_BULK 104        /* Python runs the instruction at exit_ip over vm (table.init,
                                       elem.drop, memory.init, data.drop); resume continues after it */

typedef struct wenv_func {
    uint64_t *code;             /* linked code; NULL until translated */
    uint32_t nparams;
    uint32_t nresults;
    uint32_t nlocals;           /* declared locals after the parameters (zeroed at entry) */
    uint32_t frame_cells;       /* cells the frame needs from its first parameter */
} wenv_func;

struct wenv_vm;

/* A function reference (VMOffsets' funcrefs region, 24 B): the value of a funcref cell is
 * its address (0: null). A host function's has vmctx NULL: it runs in its caller's instance. */
typedef struct wenv_funcref {
    wenv_func *func;            /* NULL: not made yet (wenv_vm_funcref makes it) */
    uint64_t type_id;           /* the canonical id of its function type */
    struct wenv_vm *vmctx;
} wenv_funcref;

/* A host function's native side in one allocation (runtime/_ffi/interp.py new_host_funcs; several in one array):
 * its funcref, its wenv_func, and that function's code [host_call, host id, frame cells,
 * return] (ops linked: the handlers' addresses). */
typedef struct wenv_host_native {
    wenv_funcref ref;
    wenv_func fn;
    uint64_t code[4];
} wenv_host_native;
/* Fill in h[0..n) for n host functions, from words: for each, its host id, the canonical
 * id of its type, and nparams << 32 | nresults. */
void wenv_host_natives_init(wenv_host_native *h, uint64_t n, const uint64_t *words);

/* An imported function (VMOffsets' imported_functions region, 16 B). */
typedef struct wenv_import {
    wenv_funcref *callee;
    struct wenv_vm *vmctx;      /* the callee's instance (NULL: a host function) */
} wenv_import;

/* What code of one instance runs over; owned by Python (runtime/interp.py), one per
 * instance, made when first needed (a call, a funcref of it, an importer linking to it):
 * one allocation, whose tail holds the arrays mems, tables, imports and funcrefs point
 * into (runtime/interp.py lays them out). */
typedef struct wenv_vm {
    uint8_t *block;             /* the instance block: global cells at VMOffsets' offsets */
    wenv_func *funcs;           /* the module's functions, by function index (shared) */
    wenv_memory **mems;         /* every memory, imported ones first */
    uint32_t nmems;
    uint32_t num_imported_funcs;
    uint64_t id;                /* Python's key of the instance */
    wenv_import *imports;       /* per imported function */
    wenv_funcref *funcrefs;     /* per anyfunc index, made on first use */
    const uint32_t *anyfunc_of; /* per function index: its anyfunc index (UINT32_MAX: none) */
    const uint64_t *type_ids;   /* per function index: canonical type id */
    wenv_table **tables;        /* every table, imported ones first (wenv_interp_table.inc) */
    uint32_t ntables;
    uint64_t tail[];            /* the arrays above point here (when Python made the vm) */
} wenv_vm;

/* Point vm's mems, tables, imports and funcrefs at arrays of nmems, ntables and nimports
 * entries in its tail, in that order, funcrefs last (runtime/_ffi/interp.py sized it). */
void wenv_vm_layout(wenv_vm *vm, uint32_t nmems, uint32_t ntables, uint32_t nimports);

/* What every vm of one module holds alike (runtime/interp.py's ModuleCode makes it and
 * keeps what it points at): its tail's counts and the module's arrays. */
typedef struct wenv_vm_module {
    wenv_func *funcs;           /* NULL in a vm of links only */
    const uint32_t *anyfunc_of;
    const uint64_t *type_ids;
    uint32_t num_imported_funcs;
    uint32_t nmems;             /* the tail's arrays (wenv_vm_layout): memories, */
    uint32_t ntables;           /* tables, */
    uint32_t nimports;          /* imported functions */
    const uint32_t **lazy;      /* per defined table (the last ntables - first_defined): its lazy array, or NULL */
    uint64_t *lazy_len;
    uint32_t first_defined;     /* the index of the first defined table (after the imported ones) */
} wenv_vm_module;

/* Fill vm (zeroed, its tail sized for m) in one call: laid out, m's fields, block and id;
 * mems[0, m->nmems); each table i from tables[i] (i < ngiven), or where that is missing or
 * NULL (entries not NULL) the defined table's entry entries[i - m->first_defined], bound
 * to vm (its lazy array) and marked viewed (the instance gives it back after its last
 * call, a later view adopts it bound); the import records copied from records (NULL:
 * left zero for the caller). */
void wenv_vm_open(wenv_vm *vm, const wenv_vm_module *m, uint8_t *block, uint64_t id,
                  wenv_memory **mems, wenv_table **tables, uint32_t ngiven,
                  wenv_instance_table *entries, const wenv_import *records);
/* wenv_memories_enter / leave (wenv_memory.h) for vm's memories [first, first + n): a
 * call's bridge enters the memories its instance defines (no pointer kept per instance). */
uint32_t wenv_vm_memories_enter(const wenv_vm *vm, uint32_t first, uint32_t n);
void wenv_vm_memories_leave(const wenv_vm *vm, uint32_t first, uint32_t n);
/* wenv_memories_keep (wenv_memory.h) for vm's memories [first, first + n). */
void wenv_vm_memories_keep(const wenv_vm *vm, uint32_t first, uint32_t n);

typedef struct wenv_frame {
    uint64_t *ret_ip;
    uint64_t *fp;
    wenv_vm *vm;                /* the caller's instance */
} wenv_frame;

/* One call from Python into wasm; owned by Python (ffi.new). */
typedef struct wenv_call {
    wenv_vm *vm;                /* the instance running now (at start: the entry's) */
    uint64_t *stack;            /* the value stack: the entry's arguments, then its results */
    uint64_t stack_cells;
    wenv_frame *frames;
    uint32_t max_frames;
    uint32_t entry;             /* the function called (a defined function of vm) */
    /* saved state (exits) */
    uint64_t *ip;               /* NULL: not started */
    uint64_t *fp;
    uint32_t depth;
    int status;
    uint64_t trap_addr;         /* memory traps: the wasm address */
    uint64_t exit_arg0;
    uint64_t exit_arg1;
    uint64_t *exit_dst;
    wenv_vm *exit_vm;           /* EXIT_TRANSLATE: the callee's instance */
    uint64_t *trap_ip;          /* the raw access in flight (for the guard-fault path) */
    uint64_t faults;            /* guard-page faults taken by this call */
    void *jb;                   /* (internal) the fault handler's jump buffer while running */
    /* the store's bounds (wenv_interp_ctl.inc); read only by code translated with them */
    int64_t *fuel;              /* the store's fuel, shared by its calls (atomic) */
    const uint64_t *epoch;      /* the engine's epoch counter (another thread advances it) */
    const uint64_t *epoch_deadline; /* the store's deadline: trap once *epoch >= it */
    uint64_t *exit_ip;          /* WENV_I_EXIT_BULK: the instruction Python runs */
} wenv_call;

int wenv_interp_op_count(void);
const char *wenv_interp_op_name(int op);
/* Replace the op number at each of `n` positions of `code` by its handler. 0, or -1 (EINVAL). */
int wenv_interp_link(uint64_t *code, uint64_t code_len, const uint32_t *positions, uint64_t n);
/* The funcref of function `index` of vm (an import's callee, or the record of a defined
 * escaping function, made now if it was not); NULL if the function has none. */
wenv_funcref *wenv_vm_funcref(wenv_vm *vm, uint64_t index);
/* Run (or resume) the call; returns and sets c->status. */
int wenv_interp_run(wenv_call *c);

/* CDEF-END */
#endif
