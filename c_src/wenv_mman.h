/* <sys/mman.h> plus the flags some platforms spell differently or lack
 * (macOS: MAP_ANON, no MAP_NORESERVE). Internal to c_src/, not part of the cdef. */
#ifndef WENV_MMAN_H
#define WENV_MMAN_H
#include <sys/mman.h>

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

#endif
