/*
 * wenv_vmctx.c — the instance block as C sees it: offsets come from Python
 * (wasmenv/vmoffsets.py fills a wenv_vmoffsets per module; the strides are generated
 * into wenv_vmoffsets.h). Nothing here decides where anything lives.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wenv_vmoffsets.h"

static const uint64_t wenv_vmctx_strides[WENV_VMCTX_REGIONS] = WENV_VMCTX_STRIDES;

int64_t wenv_vmctx_entry(const wenv_vmoffsets *o, uint32_t region, uint64_t index)
{
    if (region >= WENV_VMCTX_REGIONS || index >= o->count[region]) {
        errno = EINVAL;
        return -1;
    }
    return (int64_t)(o->start[region] + index * wenv_vmctx_strides[region]);
}

/* calloc: glibc leaves a fresh mmapped chunk untouched, but clears heap memory it reuses
 * (its top padding included), so every byte asked for may become resident: callers ask
 * only for the regions they use (runtime/layout.py). */
_Static_assert(_Alignof(max_align_t) >= WENV_VMCTX_BLOCK_ALIGN, "malloc must align blocks");

void *wenv_vmctx_alloc(uint64_t size)
{
    uint64_t rounded = (size + WENV_VMCTX_BLOCK_ALIGN - 1) & ~(uint64_t)(WENV_VMCTX_BLOCK_ALIGN - 1);
    if (rounded == 0)
        rounded = WENV_VMCTX_BLOCK_ALIGN;
    if (rounded < size || rounded > SIZE_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    void *block = calloc(1, (size_t)rounded);
    if (block == NULL)
        errno = ENOMEM;
    return block;
}

void wenv_vmctx_free(void *block)
{
    free(block);
}
