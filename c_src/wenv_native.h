#ifndef WENV_NATIVE_H
#define WENV_NATIVE_H
#include <stddef.h>
#include <stdint.h>
/* CDEF-BEGIN */
long wenv_page_size(void);
/* CDEF-END */
#endif
