"""cffi (API mode) builder for runtime._native: the C in c_src/ compiled at install time.

The cdef is the CDEF-BEGIN/END block of every header below, in order.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
#: (header, source): wenv_native is the runtime, wenv_pool the pooling allocator's slots;
#: wenv_bench holds benchmark floors.
UNITS = [("wenv_native.h", "wenv_native.c"), ("wenv_pool.h", "wenv_pool.c"), ("wenv_bench.h", "wenv_bench.c")]


def _cdef_block(header):
    with open(os.path.join(HERE, header)) as f:
        return f.read().split("/* CDEF-END */")[0].split("/* CDEF-BEGIN */")[1]


ffibuilder = FFI()
ffibuilder.cdef("".join(_cdef_block(header) for header, _ in UNITS))
ffibuilder.set_source(
    "runtime._native",
    "".join(f'#include "{header}"\n' for header, _ in UNITS),
    sources=[os.path.join("c_src", source) for _, source in UNITS],
    include_dirs=[HERE],
    extra_compile_args=["-O2", "-std=gnu11", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
