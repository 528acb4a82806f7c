"""cffi (API mode) builder for runtime._native: the C in c_src/ compiled at install time.

The cdef is the CDEF-BEGIN/END block of every header below, in order.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
#: (header, source), one concept each (c_src/wenv.h says which), in cdef order: a header's
#: block may use the types of the blocks before it. wenv_interp runs translated function bodies.
UNITS = [("wenv.h", None), ("wenv_mman.h", "wenv_mman.c"), ("wenv_memory.h", "wenv_memory.c"),
         ("wenv_traps.h", "wenv_traps.c"), ("wenv_instance.h", "wenv_instance.c"),
         ("wenv_pool.h", "wenv_pool.c"), ("wenv_bench.h", "wenv_bench.c"),
         ("wenv_vmoffsets.h", "wenv_vmctx.c"), ("wenv_table.h", "wenv_table.c"),
         ("wenv_tables.h", "wenv_tables.c"), ("wenv_interp.h", "wenv_interp.c")]
#: Warnings are errors: the C is built with -Wall -Wextra -Werror everywhere it is built.
CFLAGS = ["-O2", "-std=gnu11", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]


def _cdef_block(header):
    with open(os.path.join(HERE, header)) as f:
        return f.read().split("/* CDEF-END */")[0].split("/* CDEF-BEGIN */")[1]


ffibuilder = FFI()
ffibuilder.cdef("".join(_cdef_block(header) for header, _ in UNITS))
ffibuilder.set_source(
    "runtime._native",
    "".join(f'#include "{header}"\n' for header, _ in UNITS),
    sources=[os.path.join("c_src", source) for _, source in UNITS if source],
    include_dirs=[HERE],
    extra_compile_args=CFLAGS,
    extra_link_args=["-pthread"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
