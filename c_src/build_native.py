"""cffi (API mode) builder for runtime._native: the C in c_src/ compiled at install time."""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(HERE, "wenv_native.h")) as f:
    ffibuilder.cdef(f.read().split("/* CDEF-END */")[0].split("/* CDEF-BEGIN */")[1])
ffibuilder.set_source(
    "runtime._native",
    '#include "wenv_native.h"',
    sources=[os.path.join("c_src", "wenv_native.c")],
    include_dirs=[HERE],
    extra_compile_args=["-O2", "-std=gnu11", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
