"""The ``spectest`` host module every WebAssembly spec test imports from."""
from __future__ import annotations

from runtime import Global, Memory, Table
from wasmenv import FuncType, ValType

from .invoke import host_func

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

_PRINTS = {
    "print": (),
    "print_i32": (I32,),
    "print_i64": (I64,),
    "print_f32": (F32,),
    "print_f64": (F64,),
    "print_i32_f32": (I32, F32),
    "print_f64_f64": (F64, F64),
}


def spectest_externs(engine, store=None) -> dict:
    """Fresh spectest externs, keyed by field name (the caller owns the memories); the
    print functions are host functions (of ``store``, when the runtime has stores)."""
    out = {name: host_func(store, FuncType(params, ()), lambda *args: None)
           for name, params in _PRINTS.items()}
    out.update(
        global_i32=Global.new(engine, I32, 666),
        global_i64=Global.new(engine, I64, 666),
        global_f32=Global.new(engine, F32, 666.6),
        global_f64=Global.new(engine, F64, 666.6),
        table=Table.new(engine, ValType.FUNCREF, 10, 20),
        table64=Table.new(engine, ValType.FUNCREF, 10, 20, table64=True),
        memory=Memory.new(engine, 1, 2),
        shared_memory=Memory.new(engine, 1, 2, shared=True),
    )
    return out
