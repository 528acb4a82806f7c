"""Traps: Trap/TrapCode, and the traps of the memory accessors: the boundary matrix against
a pure-Python model of wasm semantics (tests/accessor_model.py) and against wasmtime-py.

Elsewhere: the signal handler (chaining with faulthandler, real crashes, wasmtime in the
same process, trap loops that must not leak), test_traps_handler.py; traps under threads
and concurrent grows, test_traps_threads.py.
"""
import math
import os
import pickle
import random
import struct

import pytest

from runtime import _ffi
from runtime.errors import WasmRuntimeError
from runtime.image import MemoryImage
from runtime.memory import Memory
from runtime.traps import Trap, TrapCode
from tests.accessor_model import (GUARDS, LOADS, OFFSETS32, OFFSETS64, STORES, STYLES, U32, U64,
                                  Model, addresses, make_memory, same_value)
from tests.helpers import GIB, WASM_PAGE, engine
from wasmenv import MemoryPlan, MemoryType


# ---- Trap / TrapCode ------------------------------------------------------------------

def test_trap_codes_and_spec_texts():
    for name in ("MEMORY_OUT_OF_BOUNDS", "TABLE_OUT_OF_BOUNDS", "INDIRECT_CALL_TO_NULL", "BAD_SIGNATURE",
                 "INTEGER_OVERFLOW", "INTEGER_DIVISION_BY_ZERO", "BAD_CONVERSION_TO_INTEGER", "UNREACHABLE",
                 "STACK_OVERFLOW", "HEAP_MISALIGNED", "OUT_OF_FUEL"):
        assert isinstance(TrapCode[name], TrapCode)
    assert TrapCode.MEMORY_OUT_OF_BOUNDS.message == "out of bounds memory access"
    assert str(TrapCode.INTEGER_DIVISION_BY_ZERO) == "integer divide by zero"
    assert len({c.value for c in TrapCode}) == len(TrapCode)


def test_trap_fields_message_and_pickle():
    t = Trap(TrapCode.UNREACHABLE)
    assert str(t) == "unreachable" and t.address is None and not t.guard_fault
    t = Trap(TrapCode.TABLE_OUT_OF_BOUNDS, "element segment out of bounds")
    assert str(t) == "element segment out of bounds" and t.message == str(t)
    t = Trap(TrapCode.MEMORY_OUT_OF_BOUNDS, address=0x10000, guard_fault=True)
    assert "0x10000" in str(t) and "out of bounds memory access" in str(t)
    for trap in (t, Trap(TrapCode.OUT_OF_FUEL, "x", address=3)):
        back = pickle.loads(pickle.dumps(trap))
        assert type(back) is Trap
        assert (back.code, back.message, back.address, back.guard_fault) == \
            (trap.code, trap.message, trap.address, trap.guard_fault)
    assert not isinstance(t, WasmRuntimeError)
    with pytest.raises(TypeError):
        Trap("out of bounds memory access")


def test_memory_trap_message_names_the_access_and_memory():
    with Memory.new(engine(), 1) as m:
        with pytest.raises(Trap) as info:
            m.load_i64(WASM_PAGE - 4, 2)
        t = info.value
        assert t.code is TrapCode.MEMORY_OUT_OF_BOUNDS and t.address == WASM_PAGE - 2 and t.guard_fault
        for piece in ("load_i64", "8 bytes", "0xfffe", "offset 0x2", "0x10000 bytes", "guard page"):
            assert piece in str(t), str(t)
        back = pickle.loads(pickle.dumps(t))
        assert back.message == t.message and back.address == t.address


# ---- the boundary matrix against the model (tests/accessor_model.py) ------------------

def run_matrix(mem, model, memory64):
    problems = []
    offsets = OFFSETS64 if memory64 else OFFSETS32
    rnd = random.Random(1)
    for method, (width, _) in LOADS.items():
        for offset in offsets:
            for addr in addresses(model.mem.byte_len, width, offset, memory64):
                p = model.check(method, addr, offset)
                if p:
                    problems.append((method, hex(addr), hex(offset), p))
    for method, (width, _, values) in STORES.items():
        for offset in offsets:
            for addr in addresses(model.mem.byte_len, width, offset, memory64):
                p = model.check(method, addr, offset, rnd.choice(values))
                if p:
                    problems.append((method, hex(addr), hex(offset), p))
    return problems


@pytest.mark.parametrize("memory64", [False, True], ids=["m32", "m64"])
@pytest.mark.parametrize("guard", GUARDS, ids=["g0", "g64k", "g32m", "g2g"])
@pytest.mark.parametrize("style", STYLES)
def test_boundary_matrix_against_model(style, guard, memory64):
    with make_memory(style, guard, memory64) as mem:
        rnd = random.Random(guard ^ len(style))
        mem.write(0, rnd.randbytes(mem.byte_len))
        model = Model(mem)
        problems = run_matrix(mem, model, memory64)
        base = mem.base_address
        assert mem.grow(2) == 1  # dynamic: moves (reserve is one page)
        if style == "dynamic":
            assert mem.base_address != base
        model.sync_size()
        assert mem.read(0, WASM_PAGE) == bytes(model.bytes[:WASM_PAGE])
        problems += run_matrix(mem, model, memory64)
        assert problems == [], problems[:20]


@pytest.mark.parametrize("memory64", [False, True], ids=["m32", "m64"])
@pytest.mark.parametrize("guard", GUARDS, ids=["g0", "g64k", "g32m", "g2g"])
@pytest.mark.parametrize("pool_pages", [4, 65536], ids=["slot4p", "slot4g"])
def test_boundary_matrix_pooled_after_reuse(pool_pages, guard, memory64):
    """The same matrix on a memory in a PoolingAllocator slot, in the slot's second
    tenancy (the first filled it and grew to its maximum): the slot's bound and guard
    decide the access mode, and every out-of-bounds access traps."""
    import wasmtime

    import runtime
    pool = runtime.PoolingAllocator(1, 1, pool_pages, 0, 0, guard_bytes=guard)
    with pool:
        eng = runtime.Engine(allocator=pool)
        index = "i64 " if memory64 else ""
        module = runtime.Module(eng, wasmtime.wat2wasm(f'(module (memory (export "m") {index}1 3))'))
        with runtime.Instance(module) as first:
            m = first.exports["m"]
            assert m.grow(2) == 1
            m.fill(0, 0xFE, m.byte_len)
        with runtime.Instance(module) as inst:
            mem = inst.exports["m"]
            assert mem.read(0, mem.byte_len) == bytes(mem.byte_len)
            rnd = random.Random(guard ^ pool_pages)
            mem.write(0, rnd.randbytes(mem.byte_len))
            model = Model(mem, bound=pool_pages * WASM_PAGE, guard=pool.guard_bytes)
            if pool_pages == 65536 and guard == 2 * GIB and not memory64:
                assert mem._access_mode(0, 4) == "guard"
            problems = run_matrix(mem, model, memory64)
            assert mem.grow(2) == 1
            model.sync_size()
            problems += run_matrix(mem, model, memory64)
            assert problems == [], problems[:20]


def test_matrix_exercises_the_guard_path():
    """The matrix is not vacuous: with a 2 GiB guard every 32-bit static access is raw,
    and its out-of-bounds ones are caught by a real fault."""
    with make_memory("static4g", 2 * GIB, False) as mem:
        for offset in OFFSETS32[:-2]:
            assert mem._access_mode(offset, 8) == "guard"
        assert mem._access_mode(U32 - 1, 8) == "check"
        with pytest.raises(Trap) as info:
            mem.load_i64(U32 - 1, 65536)
        assert info.value.guard_fault and info.value.address == U32 - 1 + 65536
        assert _ffi.last_fault_address() >= mem.base_address + mem.byte_len


def test_argument_ranges():
    with Memory.new(engine(), 1) as m:
        with pytest.raises(ValueError):
            m.load_i32(U32)  # not an i32 address
        with pytest.raises(ValueError):
            m.load_i32(0, U32)  # offset not a u32
        with pytest.raises(ValueError):
            m.store_i32(0, U32)  # value not an i32
        with pytest.raises(ValueError):
            m.store_i32(0, -(1 << 31) - 1)
        with pytest.raises(ValueError, match="outside its wasm type's range"):  # was cffi's
            m.store_i64(0, U64)                                                 # OverflowError
        with pytest.raises(ValueError, match="outside its wasm type's range"):  # (issue 13 item 15)
            m.load_i32(-1)
        m.store_i32(0, (1 << 31) + 5)
        assert m.load_i32(0) == -(1 << 31) + 5
    with Memory.new(engine(), 1, memory64=True) as m:
        with pytest.raises(Trap):
            m.load_i32(U64 - 1, 1)  # addr + offset overflows u64: a trap, not wrap-around
        with pytest.raises(Trap):
            m.load_i32(U32)


def test_nan_payloads():
    with Memory.new(engine(), 1) as m:
        m.store_f64_bits(0, 0x7FF0_0000_0000_0001)  # signalling NaN
        assert m.load_f64_bits(0) == 0x7FF0_0000_0000_0001
        v = m.load_f64(0)
        assert math.isnan(v) and struct.pack("<d", v) == struct.pack("<Q", 0x7FF0_0000_0000_0001)
        m.store_f64(8, v)
        assert m.load_f64_bits(8) == 0x7FF0_0000_0000_0001  # f64 keeps every bit
        m.store_f32_bits(16, 0x7FA0_0001)
        assert m.load_f32_bits(16) == 0x7FA0_0001
        assert math.isnan(m.load_f32(16))  # through a Python float: quieted (documented)
        m.store_i64(24, -(1 << 63))  # the i64 sentinel value is also a legal value
        assert m.load_i64(24) == -(1 << 63)
        m.store_f64_bits(32, 1 << 63)
        assert m.load_f64_bits(32) == 1 << 63


def test_fault_inside_the_accessible_bytes_is_not_an_out_of_bounds_trap(tmp_path):
    """SIGBUS on a mapped image whose file was truncated under it: a WasmRuntimeError,
    not a Trap, and the process survives."""
    page = _ffi.PAGE_SIZE
    path = tmp_path / "img"
    path.write_bytes(b"\x01" * (4 * page))
    eng = engine()
    plan = MemoryPlan.for_memory(MemoryType(1), eng.tunables)
    with MemoryImage.from_file(path, 0, 4 * page) as img, eng.allocator.allocate_memory(plan, img) as m:
        assert m.load_i32_8u(0) == 1
        os.truncate(path, page)
        with pytest.raises(WasmRuntimeError) as info:
            m.load_i32(2 * page)
        assert "inside the accessible bytes" in str(info.value)
        assert _ffi.last_fault_signal() == 7  # SIGBUS
        with pytest.raises(WasmRuntimeError):
            m.read(0, 4 * page)
        assert m.load_i32_8u(0) == 1


# ---- the wasmtime-py oracle -----------------------------------------------------------

WASM_LOADS = {  # our method -> (wasm instruction(s), result type)
    "load_i32": ("i32.load", "i32"), "load_i64": ("i64.load", "i64"),
    "load_f32": ("f32.load", "f32"), "load_f64": ("f64.load", "f64"),
    "load_i32_8s": ("i32.load8_s", "i32"), "load_i32_8u": ("i32.load8_u", "i32"),
    "load_i32_16s": ("i32.load16_s", "i32"), "load_i32_16u": ("i32.load16_u", "i32"),
    "load_i64_8s": ("i64.load8_s", "i64"), "load_i64_8u": ("i64.load8_u", "i64"),
    "load_i64_16s": ("i64.load16_s", "i64"), "load_i64_16u": ("i64.load16_u", "i64"),
    "load_i64_32s": ("i64.load32_s", "i64"), "load_i64_32u": ("i64.load32_u", "i64"),
    "load_f32_bits": ("f32.load", "i32", "i32.reinterpret_f32"),
    "load_f64_bits": ("f64.load", "i64", "i64.reinterpret_f64"),
}
WASM_STORES = {
    "store_i32": ("i32.store", "i32"), "store_i64": ("i64.store", "i64"),
    "store_f32": ("f32.store", "f32"), "store_f64": ("f64.store", "f64"),
    "store_i32_8": ("i32.store8", "i32"), "store_i32_16": ("i32.store16", "i32"),
    "store_i64_8": ("i64.store8", "i64"), "store_i64_16": ("i64.store16", "i64"),
    "store_i64_32": ("i64.store32", "i64"),
}


def wat_module(memory64, minimum, maximum, offsets):
    idx = "i64" if memory64 else "i32"
    limits = f"{minimum} {maximum}" if maximum is not None else f"{minimum}"
    out = [f'(module (memory (export "mem") {idx} {limits})']
    for name, spec in WASM_LOADS.items():
        instr, rtype = spec[0], spec[1]
        post = f" {spec[2]}" if len(spec) > 2 else ""
        for off in offsets:
            out.append(f'(func (export "{name}@{off}") (param {idx}) (result {rtype}) '
                       f'local.get 0 {instr} offset={off}{post})')
    for name, (instr, vtype) in WASM_STORES.items():
        for off in offsets:
            out.append(f'(func (export "{name}@{off}") (param {idx} {vtype}) '
                       f'local.get 0 local.get 1 {instr} offset={off})')
    out.append(")")
    return "\n".join(out)


ORACLE_CASES = [(style, guard, m64) for style in ("static4g", "dynamic") for guard in GUARDS
                for m64 in (False, True)]


@pytest.mark.oracle
@pytest.mark.parametrize("style,guard,memory64", ORACLE_CASES,
                         ids=[f"{s}-g{g >> 10}k-{'m64' if m else 'm32'}" for s, g, m in ORACLE_CASES])
def test_boundary_matrix_against_wasmtime(style, guard, memory64):
    import wasmtime
    ours = make_memory(style, guard, memory64)
    plan = ours.plan
    offsets = OFFSETS64 if memory64 else OFFSETS32
    cfg = wasmtime.Config()
    cfg.wasm_memory64 = True
    if plan.is_static:
        cfg.memory_reservation = plan.style.bound_bytes
        cfg.memory_reservation_for_growth = 0
    else:
        cfg.memory_reservation = 0
        cfg.memory_reservation_for_growth = plan.style.reserve_bytes
    cfg.memory_guard_size = guard
    cfg.guard_before_linear_memory = plan.pre_guard_size > 0
    wengine = wasmtime.Engine(cfg)
    store = wasmtime.Store(wengine)
    ty = plan.memory
    module = wasmtime.Module(wengine, wat_module(memory64, ty.minimum, ty.maximum, offsets))
    exports = wasmtime.Instance(store, module, []).exports(store)
    wmem = exports["mem"]
    rnd = random.Random(7 + guard)
    disagreements = []

    def compare_round():
        size = ours.byte_len
        assert wmem.data_len(store) == size
        assert wmem.read(store, 0, size) == ours.read(0, size)
        for method, (width, _) in LOADS.items():
            for off in offsets:
                fn = exports[f"{method}@{off}"]
                for addr in addresses(size, width, off, memory64):
                    theirs = _call(fn, store, addr)
                    try:
                        mine = getattr(ours, method)(addr, off)
                    except Trap as t:
                        mine = ("trap", t.code.value)
                    if method.endswith("_bits") and isinstance(theirs, int):
                        theirs %= 1 << (8 * width)
                    if not (theirs == mine or same_value(theirs, mine)):
                        disagreements.append((method, off, addr, theirs, mine))
        for method, (width, _, values) in STORES.items():
            if method not in WASM_STORES:
                continue
            for off in offsets:
                fn = exports[f"{method}@{off}"]
                for addr in addresses(size, width, off, memory64):
                    value = rnd.choice(values)
                    wvalue = value if isinstance(value, float) else _wrap(value, WASM_STORES[method][1])
                    theirs = _call(fn, store, addr, wvalue)
                    try:
                        getattr(ours, method)(addr, value, off)
                        mine = None
                    except Trap as t:
                        mine = ("trap", t.code.value)
                    if theirs != mine:
                        disagreements.append((method, off, addr, theirs, mine))
        if wmem.read(store, 0, size) != ours.read(0, size):
            disagreements.append("memory contents differ after the stores")

    with ours:
        data = rnd.randbytes(ours.byte_len)
        ours.write(0, data)
        wmem.write(store, data, 0)
        compare_round()
        assert ours.grow(2) == wmem.grow(store, 2) == 1
        compare_round()
    assert disagreements == [], disagreements[:20]


def _wrap(value, vtype):
    bits = 32 if vtype == "i32" else 64
    value %= 1 << bits
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _call(fn, store, *args):
    import wasmtime
    try:
        return fn(store, *args)
    except wasmtime.Trap as t:
        assert t.trap_code == wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS, t
        return ("trap", TrapCode.MEMORY_OUT_OF_BOUNDS.value)


# ---- call stack exhausted: a Trap, never a crash ------------------------------------------

RECURSE = """(module
  (func $down (export "down") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1)))))))
  (func $forever (export "forever") (call $forever)))"""


def _in_thread(fn, stack_bytes=None):
    """Run ``fn`` in a new thread (its interpreter stacks go with it); its result."""
    import threading
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            out["error"] = e
    old = threading.stack_size(stack_bytes) if stack_bytes else None
    try:
        t = threading.Thread(target=run)
        t.start()
    finally:
        if stack_bytes:
            threading.stack_size(old)
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _overflow(f, *args):
    with pytest.raises(Trap) as info:
        f(*args)
    assert info.value.code is TrapCode.STACK_OVERFLOW
    assert {fr.func_name for fr in info.value.frames} <= {"down", "forever"} and info.value.frames
    return info.value


@pytest.mark.oracle
def test_recursion_a_million_deep_is_a_clean_stack_overflow():
    """At the default max_wasm_stack, as in wasmtime-py (same trap code); the instance and
    the thread's stacks are usable afterwards."""
    import wasmtime as wt

    from runtime import Engine, Instance, Module
    from tests.helpers import wat
    inst = Instance(Module(Engine(), wat(RECURSE)))
    _overflow(inst.exports["down"], 1_000_000)
    _overflow(inst.exports["forever"])
    store = wt.Store(wt.Engine())
    theirs = wt.Instance(store, wt.Module(store.engine, wat(RECURSE)), []).exports(store)["down"]
    with pytest.raises(wt.Trap) as info:
        theirs(store, 1_000_000)
    assert info.value.trap_code is wt.TrapCode.STACK_OVERFLOW
    assert inst.exports["down"](10_000) == theirs(store, 10_000) == 10_000


def test_recursion_with_max_wasm_stack_raised():
    """A 256 MiB wasm stack runs the million-deep recursion to its end; ten million deep
    and unbounded recursion still end in a clean STACK_OVERFLOW (in a thread of their
    own: the thread's interpreter stacks are freed with it)."""
    from runtime import Engine, Instance, Module
    from tests.helpers import wat
    inst = Instance(Module(Engine(max_wasm_stack=256 << 20), wat(RECURSE)))

    def run():
        assert inst.exports["down"](1_000_000) == 1_000_000
        _overflow(inst.exports["down"], 10_000_000)
        _overflow(inst.exports["forever"])
        return inst.exports["down"](1_000_000)
    assert _in_thread(run) == 1_000_000


def test_recursion_on_a_thread_with_a_small_c_stack():
    """wasm-to-wasm calls never recurse in C: a million-deep recursion on a thread whose
    C stack is 256 KiB ends in the same clean trap."""
    from runtime import Engine, Instance, Module
    from tests.helpers import wat
    inst = Instance(Module(Engine(max_wasm_stack=256 << 20), wat(RECURSE)))
    assert _in_thread(lambda: inst.exports["down"](1_000_000), stack_bytes=256 << 10) == 1_000_000
    _in_thread(lambda: _overflow(inst.exports["forever"]), stack_bytes=256 << 10)


def test_recursion_through_a_host_function_is_pythons_recursion_error():
    """wasm -> host -> wasm -> ... unbounded: Python's RecursionError reaches the caller
    unchanged, and everything works afterwards."""
    from runtime import Engine, Func, Instance, Module
    from tests.helpers import wat
    from wasmenv import FuncType, ValType
    text = """(module (import "h" "f" (func $f (param i32) (result i32)))
      (func (export "down") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $f (i32.sub (local.get 0) (i32.const 1))))))))"""
    inst = None

    def host(n):
        return inst.exports["down"](n)
    inst = Instance(Module(Engine(), wat(text)), [Func(FuncType((ValType.I32,), (ValType.I32,)), host)])
    with pytest.raises(RecursionError):
        inst.exports["down"](1_000_000)
    assert inst.exports["down"](100) == 100


def test_finalizers_run_at_the_deepest_wasm_host_recursion():
    """The garbage collector may run finalizers at the deepest point of a wasm -> host ->
    wasm recursion: a wasm -> host call leaves them Python frames (interp.HEADROOM_FRAMES),
    so an Instance's backstop close() runs there instead of failing as "unraisable"."""
    import gc
    import sys
    from runtime import Engine, Func, Instance, Module
    from tests.helpers import wat
    from wasmenv import FuncType, ValType
    text = """(module (import "h" "f" (func $f (param i32) (result i32)))
      (memory 1)
      (func (export "down") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $f (i32.sub (local.get 0) (i32.const 1))))))))"""
    module = Module(Engine(), wat(text))
    seen, ran, unraisable, pending, inst = [], [], [], [], None

    def needs_frames(k):  # a finalizer that is itself a few calls deep
        return 0 if k == 0 else 1 + needs_frames(k - 1)

    class Garbage:
        def __del__(self):
            ran.append((needs_frames(20), seen[-1]))

    def host(n):
        seen.append(n)
        if n == deepest:
            pending.clear()
            gc.collect()  # the garbage's finalizers run here, at the deepest point
        return inst.exports["down"](n)

    host_func = Func(FuncType((ValType.I32,), (ValType.I32,)), host)
    inst = Instance(module, [host_func])
    deepest = -1
    with pytest.raises(RecursionError):
        inst.exports["down"](1_000_000)
    deepest, hook = min(seen), sys.unraisablehook
    g = Garbage()
    g.cycle, g.instance = g, Instance(module, [host_func])
    g.instance.memory(0).write(0, b"x")
    pending.append(g)
    del g
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(RecursionError):
            inst.exports["down"](1_000_000)
    finally:
        sys.unraisablehook = hook
    assert ran == [(20, deepest)] and not unraisable, (ran, [u.exc_value for u in unraisable])


REENTER_CHILD = """
import sys, threading
from runtime import Engine, Func, Instance, Module, Trap, TrapCode
from tests.helpers import wat
from wasmenv import FuncType, ValType
inst = None
def host(n):
    return inst.exports["down"](n)
inst = Instance(Module(Engine(), wat('''(module (import "h" "f" (func $f (param i32) (result i32)))
  (func (export "down") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $f (i32.sub (local.get 0) (i32.const 1))))))))''')),
  [Func(FuncType((ValType.I32,), (ValType.I32,)), host)])
sys.setrecursionlimit(10 ** 7)   # Python's own limit out of the way: only the C stack is left
def run(label):
    try:
        inst.exports["down"](1_000_000)
    except Trap as t:
        assert t.code is TrapCode.STACK_OVERFLOW, t
        assert inst.exports["down"](50) == 50
        print(label, "trapped", flush=True)
run("main")
for size in (256 << 10, 16 << 20):
    threading.stack_size(size)
    t = threading.Thread(target=run, args=(size,))
    t.start()
    t.join()
print("done", flush=True)
"""


def test_host_reentry_past_the_c_stack_is_a_stack_overflow_trap():
    """wasm -> host -> wasm -> ... with Python's recursion limit raised: each entry into
    wasm checks the C stack left (WENV_C_STACK_RESERVE), so the recursion ends in
    Trap(STACK_OVERFLOW), as in wasmtime-py, on the main thread and on threads with small
    and large stacks, where it used to overflow the C stack (SIGSEGV)."""
    from tests.helpers import run_child
    proc = run_child(REENTER_CHILD)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert proc.stdout.split() == ["main", "trapped", str(256 << 10), "trapped", str(16 << 20), "trapped",
                                   "done"]
