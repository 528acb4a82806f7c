/*
 * wenv_native: the few things Python cannot do itself.
 *
 *   - address-space reservations (mmap/mprotect/madvise/munmap), reporting -1 + errno;
 *   - wasm memory accessors that run in C and turn a fault inside the accessed
 *     memory's reservation into a status code (guard-page traps);
 *   - the SIGSEGV/SIGBUS handler that makes that possible, chaining every other fault
 *     to whatever handler was installed before it.
 *
 * Everything between CDEF-BEGIN and CDEF-END is both real C and the cffi cdef
 * (c_src/build_native.py), so it must stay within what cffi's parser accepts.
 * Addresses and sizes cross the boundary as uint64_t so Python sees plain ints.
 */
#ifndef WENV_NATIVE_H
#define WENV_NATIVE_H
#include <stddef.h>
#include <stdint.h>
/* CDEF-BEGIN */

/* ---- status codes returned by accessors (0 = success) ---- */
#define WENV_OK 0
#define WENV_OOB 1          /* out of bounds, found by an explicit bounds check */
#define WENV_OOB_GUARD 2    /* out of bounds, found by a fault in the guard region */
#define WENV_FAULT 3        /* a fault inside the accessible bytes (e.g. SIGBUS: truncated backing file) */
#define WENV_BADARG 4       /* an argument outside its wasm type (e.g. a 33-bit address on a 32-bit memory) */
#define WENV_CLOSED 5       /* the memory was closed */

/* ---- wenv_memory.flags ---- */
#define WENV_MEM_STATIC 1   /* Static style: [base, base + bound + guard) never moves and faults past byte_len */
#define WENV_MEM_64 2       /* 64-bit index type */
#define WENV_MEM_CLOSED 4

/* What the accessors need to know about one linear memory. Owned by Python (ffi.new);
 * byte_len is read atomically by accessors and written through wenv_memory_set_byte_len. */
typedef struct wenv_memory {
    uint64_t base;          /* host address of wasm byte 0 */
    uint64_t byte_len;      /* accessible bytes: [base, base + byte_len) is R/W */
    uint64_t bound_bytes;   /* bytes after base reserved without moving (Static: the bound) */
    uint64_t guard_bytes;   /* PROT_NONE offset guard after bound_bytes */
    uint64_t resv_start;    /* whole reservation, guards included: a fault in here is ours */
    uint64_t resv_end;
    uint32_t flags;         /* WENV_MEM_* */
} wenv_memory;

long wenv_page_size(void);

/* ---- reservations: each returns 0, or -1 with errno set ---- */
int wenv_reserve(uint64_t byte_len, uint64_t *out_addr);    /* PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE */
/* reserve + map an image (fd < 0 or image_len 0: none) + mprotect the rest of `accessible`
 * R/W, all or nothing; *out_addr = the reservation's start. */
int wenv_reserve_memory(uint64_t byte_len, uint64_t pre_guard, uint64_t accessible, int fd,
                        uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                        uint64_t *out_addr);
int wenv_release(uint64_t addr, uint64_t byte_len);         /* munmap */
/* What instantiating one defined memory needs; computed once per module (runtime.instance)
 * and read by wenv_memory_open and the pool (wenv_pool.h). */
typedef struct wenv_memory_spec {
    uint64_t reserve_bytes;     /* on-demand: the whole reservation, guards included */
    uint64_t pre_guard;         /* on-demand: bytes before wasm byte 0 */
    uint64_t accessible;        /* the initial size in bytes: R/W from the start */
    int64_t image_fd;           /* < 0: no image */
    uint64_t image_file_offset;
    uint64_t image_offset;      /* where the image goes, from wasm byte 0 */
    uint64_t image_len;         /* 0: no image */
    uint64_t image_key;         /* the image's identity, never reused (a pool slot's affinity) */
    struct wenv_pool *pool;     /* wenv_instance_open/close: the pool, or NULL for on-demand */
} wenv_memory_spec;
/* wenv_reserve_memory for a spec: the reservation's start, or 0 with errno set. */
uint64_t wenv_memory_open(const wenv_memory_spec *spec);
int wenv_protect(uint64_t addr, uint64_t byte_len, int writable);   /* PROT_READ|PROT_WRITE or PROT_NONE */
int wenv_map_fd_fixed(uint64_t addr, uint64_t byte_len, int fd, uint64_t file_offset);  /* MAP_PRIVATE|MAP_FIXED, R/W */
int wenv_map_anon_fixed(uint64_t addr, uint64_t byte_len, int writable);  /* fresh zero pages over a range */
/* Give back the pages of a R/W range. Linux: madvise(MADV_DONTNEED) (anonymous pages
 * read as zero, private file pages revert to the file). macOS, where MADV_DONTNEED does
 * not zero: fresh anonymous R/W pages are mapped over the range (everything reads zero). */
int wenv_decommit(uint64_t addr, uint64_t byte_len);
void wenv_copy_raw(uint64_t dst_addr, uint64_t src_addr, uint64_t byte_len);  /* memmove, no checks */

/* ---- memory descriptors ---- */
void wenv_memory_init(wenv_memory *m, uint64_t base, uint64_t byte_len, uint64_t bound_bytes,
                      uint64_t guard_bytes, uint64_t resv_start, uint64_t resv_end, uint32_t flags);
void wenv_memory_set_byte_len(wenv_memory *m, uint64_t byte_len);
void wenv_memory_close(wenv_memory *m);
/* 1 when an access of `width` bytes at static `offset` relies on the guard pages (no bounds check). */
int wenv_access_is_raw(const wenv_memory *m, uint64_t offset, uint32_t width);

/* ---- the fault handler ---- */
/* Install (or put back on top) the SIGSEGV/SIGBUS handler. 0, or -1 with errno. */
int wenv_trap_handler_install(void);
/* 1 if our handler is the one installed for both signals, 0 if displaced, -1 if never installed. */
int wenv_trap_handler_on_top(void);
/* Status of the last accessor call on this thread that returned its trap sentinel. */
int wenv_last_status(void);
uint64_t wenv_last_fault_address(void);   /* host si_addr of the last caught fault on this thread */
int wenv_last_fault_signal(void);

/* ---- accessors: loads return the value, or a sentinel with wenv_last_status() != 0 ----
 * Sentinels: INT64_MIN for integer loads (unambiguous for widths < 64), a NaN for float
 * loads, 1 << 63 for wenv_load_u64. Stores return a status. */
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

/* i32 stores accept values in [-2^31, 2^32); i64 stores any int64 (Python maps [2^63, 2^64)). */
int wenv_store_i32(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i32_8(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i32_16(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64_8(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64_16(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_i64_32(wenv_memory *m, uint64_t addr, uint64_t offset, int64_t value);
int wenv_store_f32(wenv_memory *m, uint64_t addr, uint64_t offset, double value);
int wenv_store_f64(wenv_memory *m, uint64_t addr, uint64_t offset, double value);

/* Bulk operations: bounds checked before anything is written (bulk-memory semantics). */
int wenv_read(wenv_memory *m, uint64_t addr, char *dst, uint64_t byte_len);
int wenv_write(wenv_memory *m, uint64_t addr, const char *src, uint64_t byte_len);
int wenv_fill(wenv_memory *m, uint64_t addr, int64_t value, uint64_t byte_len);
int wenv_copy(wenv_memory *m, uint64_t dst, uint64_t src, uint64_t byte_len);
int wenv_init(wenv_memory *m, uint64_t addr, const char *src, uint64_t src_len,
              uint64_t src_offset, uint64_t byte_len);

/* ---- benchmarks (nanoseconds per iteration) ---- */
double wenv_bench_trap_roundtrip(long iterations);     /* guard fault -> handler -> siglongjmp -> status */
double wenv_bench_jmp_roundtrip(long iterations, int savemask);  /* sigsetjmp + siglongjmp, no signal */
double wenv_bench_load_i32(long iterations);           /* one non-trapping raw accessor call */

/* CDEF-END */
/* The interpreter's use of the fault handler (C only; see wenv_native.c). */
#include <setjmp.h>
void wenv_trap_arm(sigjmp_buf *jb, wenv_memory *m);
void wenv_trap_disarm(void);
int wenv_trap_after_fault(void);
#endif
