/*
 * wenv_vmctx.c — the instance block as C sees it: offsets come from Python
 * (wasmenv/vmoffsets.py fills a wenv_vmoffsets per module; the strides are generated
 * into wenv_vmoffsets.h). Nothing here decides where anything lives.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wenv_mman.h"

#include "wenv_vmoffsets.h"
#include "wenv_instance.h"

static const uint64_t wenv_vmctx_strides[WENV_VMCTX_REGIONS] = WENV_VMCTX_STRIDES;

int64_t wenv_vmctx_entry(const wenv_vmoffsets *o, uint32_t region, uint64_t index)
{
    if (region >= WENV_VMCTX_REGIONS || index >= o->count[region]) {
        errno = EINVAL;
        return -1;
    }
    return (int64_t)(o->start[region] + index * wenv_vmctx_strides[region]);
}

/* Blocks of up to a page come from calloc. glibc leaves a fresh mmapped chunk untouched
 * but clears heap memory it reuses, and its mmap threshold rises as large chunks are
 * freed: a larger block (an instance state's funcref records, made on first use: 531 of
 * them, 12.4 KiB, for QuickJS, of which its start function makes a few) would become
 * resident when calloc clears it. Blocks of more than a page are therefore mapped
 * directly (one mmap, one munmap): fresh zero pages, resident only once written. A
 * 16-byte header before the block records how it was made (its mapped length, 0 for
 * calloc). */
#define WENV_VMCTX_HEADER 16
_Static_assert(_Alignof(max_align_t) >= WENV_VMCTX_BLOCK_ALIGN, "malloc must align blocks");
_Static_assert(WENV_VMCTX_HEADER % WENV_VMCTX_BLOCK_ALIGN == 0, "the header keeps blocks aligned");

static void *wenv_vmctx_alloc_in(uint64_t size, int may_map);

void *wenv_vmctx_alloc(uint64_t size)
{
    return wenv_vmctx_alloc_in(size, 1);
}

/* A block written at once (the instance block: its globals template is copied in) gains
 * nothing from fresh zero pages: calloc whatever its size, whose memory glibc reuses once
 * its mmap threshold has risen past the size (no pages to fault in per instance). */
void *wenv_vmctx_alloc_written(uint64_t size)
{
    return wenv_vmctx_alloc_in(size, 0);
}

static void *wenv_vmctx_alloc_in(uint64_t size, int may_map)
{
    uint64_t rounded = (size + WENV_VMCTX_BLOCK_ALIGN - 1) & ~(uint64_t)(WENV_VMCTX_BLOCK_ALIGN - 1);
    if (rounded == 0)
        rounded = WENV_VMCTX_BLOCK_ALIGN;
    if (rounded < size || rounded > SIZE_MAX - WENV_VMCTX_HEADER - (uint64_t)wenv_page_size()) {
        errno = ENOMEM;
        return NULL;
    }
    uint64_t total = rounded + WENV_VMCTX_HEADER;
    uint8_t *base;
    uint64_t mapped = 0;
    uint64_t page = (uint64_t)wenv_page_size();
    if (may_map && total > page) {
        uint64_t addr = 0;
        mapped = (total + page - 1) / page * page;
        if (wenv_map_zeros(mapped, &addr) != 0) {
            errno = ENOMEM;
            return NULL;
        }
        base = (uint8_t *)(uintptr_t)addr;
    } else {
        base = calloc(1, (size_t)total);
        if (base == NULL) {
            errno = ENOMEM;
            return NULL;
        }
    }
    memcpy(base, &mapped, sizeof mapped);
    return base + WENV_VMCTX_HEADER;
}

void wenv_vmctx_free(void *block)
{
    if (block == NULL)
        return;
    uint8_t *base = (uint8_t *)block - WENV_VMCTX_HEADER;
    uint64_t mapped;
    memcpy(&mapped, base, sizeof mapped);
    if (mapped)
        wenv_release((uint64_t)(uintptr_t)base, mapped);
    else
        free(base);
}
