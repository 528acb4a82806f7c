/*
 * c_src/wenv_interp.c under AddressSanitizer and UBSan: replays translated code that
 * tests/test_interp_sanitize.py wrote (the translator's real output, unlinked), over a
 * malloc'd memory with explicit checks (no guard pages under ASan), and compares every
 * call's status and results with what the runtime returned for the same calls.
 *
 * Input (whitespace-separated integers): nfuncs, then per function nparams nresults
 * nlocals frame_cells ncode code... npositions positions...; nwords, the instance block's words;
 * memory_bytes; ncalls, then per call: func nargs args... status nresults results...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wenv_interp.h"

static uint64_t next(FILE *f)
{
    unsigned long long v;
    if (fscanf(f, "%llu", &v) != 1) {
        fprintf(stderr, "bad input\n");
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "r");
    if (!f) return 2;
    uint64_t nfuncs = next(f);
    wenv_func *funcs = calloc(nfuncs + 1, sizeof *funcs);
    for (uint64_t i = 0; i < nfuncs; i++) {
        funcs[i].nparams = next(f);
        funcs[i].nresults = next(f);
        funcs[i].nlocals = next(f);
        funcs[i].frame_cells = next(f);
        uint64_t ncode = next(f);
        uint64_t *code = malloc((ncode + 1) * 8);
        for (uint64_t k = 0; k < ncode; k++) code[k] = next(f);
        uint64_t npos = next(f);
        uint32_t *pos = malloc((npos + 1) * 4);
        for (uint64_t k = 0; k < npos; k++) pos[k] = next(f);
        if (ncode && wenv_interp_link(code, ncode, pos, npos) != 0) return 3;
        funcs[i].code = ncode ? code : NULL;
        free(pos);
    }
    uint64_t nwords = next(f);
    uint64_t *block = calloc(nwords + 2, 8);
    for (uint64_t i = 0; i < nwords; i++) block[i] = next(f);
    uint64_t mem_bytes = next(f);
    uint8_t *mem = calloc(mem_bytes + 1, 1);
    wenv_memory m = {0};
    wenv_memory_init(&m, (uint64_t)(uintptr_t)mem, mem_bytes, mem_bytes, 0, (uint64_t)(uintptr_t)mem,
                     (uint64_t)(uintptr_t)mem + mem_bytes, 0, mem_bytes / 65536);
    wenv_memory *mems[1] = {&m};
    /* Made as the runtime makes a vm: zeroed with its tail, filled by wenv_vm_open. */
    wenv_vm_module shape = {0};
    shape.funcs = funcs;
    shape.nmems = mem_bytes ? 1 : 0;
    wenv_vm *vmp = calloc(1, sizeof *vmp + 8 * (shape.nmems + 1));
    wenv_vm_open(vmp, &shape, (uint8_t *)block, 1, mems, NULL, 0, NULL, NULL);
    if (vmp->nmems != shape.nmems || (shape.nmems && vmp->mems[0] != &m) || vmp->funcs != funcs) return 4;
    wenv_vm vm = *vmp;  /* (its mems point into vmp's tail, which stays allocated) */
    enum { CELLS = 1 << 16, FRAMES = 1 << 12 };
    uint64_t *stack = malloc(CELLS * 8);
    wenv_frame *frames = malloc(FRAMES * sizeof *frames);
    uint64_t ncalls = next(f), bad = 0;
    for (uint64_t i = 0; i < ncalls; i++) {
        wenv_call c;
        memset(&c, 0, sizeof c);
        c.vm = &vm;
        c.stack = stack;
        c.stack_cells = CELLS;
        c.frames = frames;
        c.max_frames = FRAMES;
        c.entry = next(f);
        uint64_t nargs = next(f);
        for (uint64_t k = 0; k < nargs; k++) stack[k] = next(f);
        int want = (int)next(f);
        int st = wenv_interp_run(&c);
        uint64_t nres = next(f);
        for (uint64_t k = 0; k < nres; k++) {
            uint64_t r = next(f);
            if (st == WENV_I_DONE && stack[k] != r) bad++;
        }
        if (st != want) {
            fprintf(stderr, "call %llu: status %d, expected %d\n", (unsigned long long)i, st, want);
            bad++;
        }
    }
    for (uint64_t i = 0; i < nfuncs; i++)
        free(funcs[i].code);
    free(vmp);
    free(funcs);
    free(block);
    free(mem);
    free(stack);
    free(frames);
    fclose(f);
    printf("ok %llu calls, %llu bad\n", (unsigned long long)ncalls, (unsigned long long)bad);
    return bad != 0;
}
