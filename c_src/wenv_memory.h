/*
 * wenv_memory: the descriptor of one linear memory and the wasm accessors, which run in
 * C and turn a fault inside the accessed memory's reservation into a status code
 * (guard-page traps, wenv_traps.c).
 */
#ifndef WENV_MEMORY_H
#define WENV_MEMORY_H
#include "wenv.h"
/* CDEF-BEGIN */

/* ---- wenv_memory.flags ---- */
#define WENV_MEM_STATIC 1   /* Static style: [base, base + bound + guard) never moves and faults past byte_len */
#define WENV_MEM_64 2       /* 64-bit index type */
#define WENV_MEM_CLOSED 4
#define WENV_MEM_MAPPABLE 8 /* whole pages a data segment overwrites may be mapped from a file
                               instead (copy-on-write): the pages are this memory's alone and go
                               back by unmapping the whole reservation (wenv_memory_own_reservation
                               of a memory that is not shared); never a pool slot, whose reset
                               would revert such pages to the file instead of zeroing them */

/* wenv_memory_close's result when the release waits for the accesses in flight. */
#define WENV_RELEASE_DEFERRED 2

/* What the accessors need to know about one linear memory. Owned by Python (ffi.new);
 * byte_len is read atomically by accessors and written through wenv_memory_set_byte_len.
 *
 * Lifetime: every use enters the memory before its checks and leaves after its last
 * byte. Calls, grows and holds count themselves in `users` (wenv_memory_enter); an
 * accessor marks its thread's hazard record with the memory instead (no atomic
 * read-modify-write: wenv_memory.c, "accessors' marks"), except its first on a thread
 * or a memory, which counts and sets `marked`. wenv_memory_close refuses every later
 * entry and runs `release` (which gives the bytes back: a pool slot, a reservation)
 * once: at once, or in the last use in flight when it leaves. An owner that sets no
 * release gives the bytes back itself (after wenv_memory_close, with no use in flight). */
typedef struct wenv_memory {
    uint64_t base;          /* host address of wasm byte 0 */
    uint64_t byte_len;      /* accessible bytes: [base, base + byte_len) is R/W */
    uint64_t bound_bytes;   /* bytes after base reserved without moving (Static: the bound) */
    uint64_t guard_bytes;   /* PROT_NONE offset guard after bound_bytes */
    uint64_t resv_start;    /* whole reservation, guards included: a fault in here is ours */
    uint64_t resv_end;
    uint32_t flags;         /* WENV_MEM_* */
    uint64_t users;         /* accesses in flight, plus the closed and released bits */
    int (*release)(struct wenv_memory *m);  /* run once after close (NULL: none) */
    void *release_ctx;      /* its arguments (set by wenv_memory_own_*, wenv_instance.h) */
    uint64_t release_arg;
    /* [errno] make [old, new) of its own bytes R/W (set with release; NULL: its owner grows it) */
    int (*make_accessible)(struct wenv_memory *m, uint64_t old_byte_len, uint64_t new_byte_len);
    uint32_t marked;        /* accessors mark themselves (close must look for their marks) */
    uint64_t max_pages;     /* the effective maximum: a grow past it is refused */
    const uint64_t *limit_bytes; /* its store's memory_size limit (read at each grow), or NULL */
    uint32_t grow_lock;     /* held by a grow (wenv_memory_grow) */
} wenv_memory;

/* Describe where the memory is (again, after a moving grow); the lifetime fields are
 * left as they are: a descriptor starts zeroed (open, unused, no release). */
void wenv_memory_init(wenv_memory *m, uint64_t base, uint64_t byte_len, uint64_t bound_bytes,
                      uint64_t guard_bytes, uint64_t resv_start, uint64_t resv_end, uint32_t flags,
                      uint64_t max_pages);
void wenv_memory_set_byte_len(wenv_memory *m, uint64_t byte_len);

/* memory.grow's results besides the old size in pages. */
#define WENV_GROW_REFUSED -1    /* past max_pages or *limit_bytes, or the OS refused the pages */
#define WENV_GROW_OWNER -2      /* its owner grows it: the new bytes are past bound_bytes (a
                                   move), its bytes are not the descriptor's own, or it is
                                   closed; the grow lock stays held (wenv_memory_grow_unlock) */
/* memory.grow by `delta_pages`, the caller inside the memory (entered): the one rule for
 * every grow (the interpreter's memory.grow, runtime.Memory.grow). In place within
 * bound_bytes when the descriptor owns its bytes (make_accessible, set by
 * wenv_memory_own_*: an mprotect, or the pool slot's grow), then byte_len; the old size
 * in pages, or a WENV_GROW_* result. */
int64_t wenv_memory_grow(wenv_memory *m, uint64_t delta_pages);
void wenv_memory_grow_unlock(wenv_memory *m);
/* Refuse every later access and release the memory: the release's result if it ran now,
 * WENV_RELEASE_DEFERRED if accesses are in flight (the last one runs it), 0 if the
 * memory was closed already (or has no release). */
int wenv_memory_close(wenv_memory *m);
/* 1: a use of the memory begins (it stays allocated until wenv_memory_leave); 0: closed
 * (nothing to leave). */
int wenv_memory_enter(wenv_memory *m);
/* The use ends: the release's result if this was the last use of a closed memory (its
 * release ran here), else 0. */
int wenv_memory_leave(wenv_memory *m);
/* wenv_memory_enter for each of ms[0..n): n, or the index of a closed one (the ones
 * entered before it left again). */
uint32_t wenv_memories_enter(wenv_memory *const *ms, uint32_t n);
void wenv_memories_leave(wenv_memory *const *ms, uint32_t n);
/* Another use of each of ms[0..n), which the caller is inside (its own use keeps each
 * from being released): each stays allocated until a wenv_memory_leave of this use, even
 * if it is closed already. */
void wenv_memories_keep(wenv_memory *const *ms, uint32_t n);
/* 1 when an access of `width` bytes at static `offset` relies on the guard pages (no bounds check). */
int wenv_access_is_raw(const wenv_memory *m, uint64_t offset, uint32_t width);

/* ---- [load] accessors. Sentinels: INT64_MIN for integer loads (unambiguous for widths
 * < 64), a NaN for float loads, 1 << 63 for wenv_load_u64. ---- */
int64_t wenv_load_i32(wenv_memory *m, uint64_t addr, uint64_t offset);
int64_t wenv_load_i64(wenv_memory *m, uint64_t addr, uint64_t offset);
uint64_t wenv_load_u64(wenv_memory *m, uint64_t addr, uint64_t offset);
double wenv_load_f32(wenv_memory *m, uint64_t addr, uint64_t offset);
double wenv_load_f64(wenv_memory *m, uint64_t addr, uint64_t offset);
int64_t wenv_load_s8(wenv_memory *m, uint64_t addr, uint64_t offset);
int64_t wenv_load_u8(wenv_memory *m, uint64_t addr, uint64_t offset);
int64_t wenv_load_s16(wenv_memory *m, uint64_t addr, uint64_t offset);
int64_t wenv_load_u16(wenv_memory *m, uint64_t addr, uint64_t offset);
int64_t wenv_load_u32(wenv_memory *m, uint64_t addr, uint64_t offset);

/* ---- [status] stores. i32 stores accept values in [-2^31, 2^32); i64 stores any int64
 * (Python maps [2^63, 2^64)). ---- */
int wenv_store_i32(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i32_8(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i32_16(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64_8(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64_16(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64_32(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_f32(wenv_memory *m, uint64_t addr, uint64_t offset, double value);
int wenv_store_f64(wenv_memory *m, uint64_t addr, uint64_t offset, double value);

/* ---- [status] bulk operations: bounds checked before anything is written (bulk-memory
 * semantics). A fault reading `src` (a view of a truncated file, say) is WENV_SRC_FAULT;
 * wenv_read also serves to copy a memory out to a raw address (a moving grow). ---- */
int wenv_read(wenv_memory *m, uint64_t addr, char *dst, uint64_t byte_len);
int wenv_write(wenv_memory *m, uint64_t addr, const char *src, uint64_t byte_len);
int wenv_fill(wenv_memory *m, uint64_t addr, int64_t value, uint64_t byte_len);
int wenv_copy(wenv_memory *m, uint64_t dst, uint64_t src, uint64_t byte_len);
int wenv_init(wenv_memory *m, uint64_t addr, const char *src, uint64_t src_len,
              uint64_t src_offset, uint64_t byte_len);

/* One active data segment's write (runtime/layout.py: its start resolved, per module when
 * constant, per instance when it reads a global). */
typedef struct wenv_data_write {
    uint64_t start;             /* the wasm address of its first byte */
    const char *src;            /* its bytes (the module's data, kept alive by Python) */
    uint64_t byte_len;
    uint32_t memory;            /* index into the memory array */
    int64_t fd;                 /* a file holding the same bytes (runtime/layout.py's DataPlan makes it), or -1 */
    uint64_t file_offset;       /* where byte 0 of src is in that file */
} wenv_data_write;

/* A write's whole pages are mapped from its file (one mmap instead of a fault per page
 * and a copy) when the memory is WENV_MEM_MAPPABLE, the file offset and the address agree
 * modulo the host page, and they span at least this many bytes; the bytes before and
 * after them are copied. Either way the memory reads the same. */
#define WENV_MAP_WRITE_BYTES 32768

/* Apply writes[0..n) in order, each as wenv_write to mems[writes[i].memory] would (bounds
 * checked first, even for 0 bytes; whole pages mapped from the write's file where
 * WENV_MAP_WRITE_BYTES says so, copied if that mmap fails): n, or the index of the first
 * that failed, with the accessor status in *status (the earlier ones stay written, as
 * the spec says). `fail`: a WENV_FAIL_* mask for the mmaps (tests; 0: none). */
uint64_t wenv_data_apply(wenv_memory *const *mems, const wenv_data_write *writes, uint64_t n,
                         uint32_t fail, int *status);

/* CDEF-END */
#endif
