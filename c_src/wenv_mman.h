/*
 * wenv_mman: the only syscall wrappers of c_src/ (mmap, mprotect, madvise, munmap), and
 * the failure injection tests drive them with.
 */
#ifndef WENV_MMAN_H
#define WENV_MMAN_H
#include "wenv.h"
/* CDEF-BEGIN */

/* Injected failures (tests): a wrapper given a mask holding its bit fails with EIO. */
#define WENV_FAIL_DECOMMIT 1
#define WENV_FAIL_MAP_ANON 2
#define WENV_FAIL_PROTECT 4
#define WENV_FAIL_MAP_FILE 8

/* How pages are given back (wenv_decommit; a pool's reset). */
#define WENV_RESET_MADVISE 0   /* madvise(MADV_DONTNEED): anonymous pages read as zero, private
                                  file pages revert to the file (Linux; macOS does not zero) */
#define WENV_RESET_REMAP 1     /* fresh anonymous R/W pages mapped over the range: everything
                                  reads as zero, an image mapping is gone (the macOS way) */
int wenv_reset_default(void);  /* WENV_RESET_REMAP on macOS, WENV_RESET_MADVISE elsewhere */

long wenv_page_size(void);

/* A reservation of 0 bytes (a memory with no bytes, growth reserve or guards) maps one
 * PROT_NONE page, so that it has an address of its own; releasing 0 bytes unmaps it. */
int wenv_reserve(uint64_t byte_len, uint64_t *out_addr);    /* [errno] PROT_NONE, MAP_NORESERVE */
int wenv_map_zeros(uint64_t byte_len, uint64_t *out_addr);  /* [errno] R/W zero pages, MAP_NORESERVE */
int wenv_map_read_zeros(uint64_t byte_len, uint64_t *out_addr);  /* [errno] read-only zero pages, MAP_NORESERVE */
/* [errno] Reserve byte_len bytes, map an image (fd < 0 or image_len 0: none) at
 * start + pre_guard + image_offset and make the rest of the `accessible` bytes after the
 * pre-guard R/W, all or nothing; *out_addr = the reservation's start. */
int wenv_reserve_memory(uint64_t byte_len, uint64_t pre_guard, uint64_t accessible, int fd,
                        uint64_t file_offset, uint64_t image_offset, uint64_t image_len,
                        uint64_t *out_addr);
int wenv_release(uint64_t addr, uint64_t byte_len);         /* [errno] munmap */
int wenv_protect(uint64_t addr, uint64_t byte_len, int writable);   /* [errno] R/W or PROT_NONE */
int wenv_map_fd_fixed(uint64_t addr, uint64_t byte_len, int fd, uint64_t file_offset);  /* [errno] MAP_PRIVATE|MAP_FIXED, R/W */
int wenv_map_anon_fixed(uint64_t addr, uint64_t byte_len, int writable);  /* [errno] fresh zero pages */
/* [errno] Give back the pages of a R/W range, `how` a WENV_RESET_* (0 bytes: nothing to do). */
int wenv_decommit(uint64_t addr, uint64_t byte_len, int how);
/* [errno] Fault in, writable, the pages of [addr, addr + byte_len) of a R/W range before a
 * large write (MADV_POPULATE_WRITE: one call instead of a fault per page); only a speed-up:
 * callers ignore a failure (ENOSYS/EINVAL where the kernel has no such advice). */
int wenv_prefault(uint64_t addr, uint64_t byte_len);

/* CDEF-END */

/* The same wrappers for c_src/ itself, with `fail` a WENV_FAIL_* mask (0: no injection). */
WENV_INTERNAL int wenv_mm_protect(uint64_t addr, uint64_t byte_len, int writable, uint32_t fail);
WENV_INTERNAL int wenv_mm_map_anon(uint64_t addr, uint64_t byte_len, int writable, uint32_t fail);
WENV_INTERNAL int wenv_mm_map_file(uint64_t addr, uint64_t byte_len, int fd, uint64_t file_offset,
                                   uint32_t fail);
WENV_INTERNAL int wenv_mm_decommit(uint64_t addr, uint64_t byte_len, int how, uint32_t fail);

#endif
