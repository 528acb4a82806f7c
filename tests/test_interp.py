"""The interpreter (runtime/interp.py, c_src/wenv_interp.c) against wasmtime-py."""
import itertools
import math
import struct
import threading

import pytest
import wasmtime as wt

import runtime
from harness.execution import EDGE, norm, ours, theirs, wasmtime_engine
from runtime import Engine, Global, Instance, Module, Trap, TrapCode, _ffi
from runtime.translate import NUMERIC
from tests.helpers import make_pool, wat
from wasmenv import Tunables, UnsupportedFeature, ValType
from wasmenv.opcodes import BY_NAME

WT_ENGINE = wasmtime_engine()
#: Ops whose NaN results are bit-exact in wasm (sign and bit operations).
EXACT_NAN = {"abs", "neg", "copysign", "reinterpret_f32", "reinterpret_f64", "reinterpret_i32",
             "reinterpret_i64"}


class Both:
    """One module instantiated here and in wasmtime-py."""

    def __init__(self, text, engine=None, imports=None):
        self.wasm = wat(text)
        self.inst = Instance(Module(engine or Engine(), self.wasm), imports)
        self.store = wt.Store(WT_ENGINE)
        self.wt = wt.Instance(self.store, wt.Module(WT_ENGINE, self.wasm), [])
        self.wt_exports = self.wt.exports(self.store)

    def outcomes(self, name, *args, exact_nan=True):
        return (ours(self.inst.exports[name], args, exact_nan),
                theirs(self.store, self.wt_exports[name], args, exact_nan))

    def same(self, name, *args, exact_nan=True):
        a, b = self.outcomes(name, *args, exact_nan=exact_nan)
        assert a == b, f"{name}{args}: ours {a}, wasmtime {b}"
        return a

    def memory_same(self, name="mem"):
        mine = self.inst.exports[name]
        other = self.wt_exports[name]
        assert mine.byte_len == other.data_len(self.store)
        assert mine.read(0, mine.byte_len) == bytes(other.read(self.store, 0, other.data_len(self.store)))


# -- numeric semantics ---------------------------------------------------------------------
def _numeric_module():
    funcs = []
    for name in sorted(NUMERIC):
        pops, pushes = BY_NAME[name].sig
        params = " ".join(pops)
        gets = " ".join(f"local.get {i}" for i in range(len(pops)))
        funcs.append(f'(func (export "{name}") (param {params}) (result {pushes[0]}) {gets} {name})')
    return "(module " + "\n".join(funcs) + ")"


@pytest.fixture(scope="module")
def numeric():
    return Both(_numeric_module())


def test_every_numeric_op_has_a_handler():
    assert set(NUMERIC.values()) <= set(_ffi.interp_op_numbers())
    assert len(NUMERIC) == 123 + 5 + 8  # MVP numerics (0x45-0xbf), sign extension, saturating


@pytest.mark.parametrize("name", sorted(NUMERIC))
def test_numeric_op_agrees_with_wasmtime(numeric, name):
    pops, _ = BY_NAME[name].sig
    types = [ValType(t) for t in pops]
    exact = name.split(".", 1)[1] in EXACT_NAN
    for args in itertools.product(*[EDGE[t] for t in types]):
        numeric.same(name, *args, exact_nan=exact)


def test_traps_of_division_and_truncation(numeric):
    for name, args, code in [("i32.div_s", (1, 0), TrapCode.INTEGER_DIVISION_BY_ZERO),
                             ("i32.div_s", (-2 ** 31, -1), TrapCode.INTEGER_OVERFLOW),
                             ("i64.rem_u", (5, 0), TrapCode.INTEGER_DIVISION_BY_ZERO),
                             ("i32.trunc_f32_s", (math.nan,), TrapCode.BAD_CONVERSION_TO_INTEGER),
                             ("i32.trunc_f64_u", (-1.0,), TrapCode.INTEGER_OVERFLOW),
                             ("i64.trunc_f64_s", (9223372036854775808.0,), TrapCode.INTEGER_OVERFLOW)]:
        with pytest.raises(Trap) as info:
            numeric.inst.exports[name](*args)
        assert info.value.code is code
    assert numeric.inst.exports["i32.rem_s"](-2 ** 31, -1) == 0
    assert numeric.inst.exports["i64.trunc_f64_s"](-9223372036854775808.0) == -2 ** 63
    assert numeric.inst.exports["i32.trunc_sat_f32_u"](-5.0) == 0


def test_nan_payloads_kept_through_calls():
    b = Both("""(module (func (export "id") (param f64) (result f64) local.get 0)
      (func (export "bits") (param i64) (result f64) local.get 0 f64.reinterpret_i64))""")
    payload = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    out = b.inst.exports["id"](payload)
    assert struct.pack("<d", out) == struct.pack("<d", payload)
    b.same("bits", 0x7FF0_0000_0000_0001)


_INT_CMPS = [f"{t}.{c}" for t in ("i32", "i64") for c in
             "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u".split()]


def test_fused_compare_and_branch():
    funcs = []
    for k, name in enumerate(_INT_CMPS + ["i32.eqz", "i64.eqz"]):
        t = name.split(".")[0]
        params = f"(param {t} {t})"
        operands = "(local.get 0)" if name.endswith("eqz") else "(local.get 0) (local.get 1)"
        funcs.append(f"""(func (export "br{k}") {params} (result i32)
          (block (br_if 0 ({name} {operands})) (return (i32.const 0))) (i32.const 1))
          (func (export "if{k}") {params} (result i32)
          (if (result i32) ({name} {operands}) (then (i32.const 7)) (else (i32.const 9))))""")
    b = Both("(module " + "\n".join(funcs) + ")")
    for k, name in enumerate(_INT_CMPS + ["i32.eqz", "i64.eqz"]):
        values = EDGE[ValType(name.split(".")[0])]
        for x, y in itertools.product(values[:7], repeat=2):
            b.same(f"br{k}", x, y)
            b.same(f"if{k}", x, y)


# -- control flow, calls, globals --------------------------------------------------------------
CONTROL = """(module
  (global $g (mut i64) (i64.const 10))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2)) (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $fact (export "fact") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
  (func $even (export "even") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 1)) (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
  (func $odd (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0)) (else (call $even (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "table") (param i32) (result i32)
    (block $d (result i32) (block $c (result i32) (block $b (result i32) (block $a (result i32)
      (i32.const 100) (local.get 0) (br_table $a $b $c $d))
      (i32.add (i32.const 1)) (return)) (i32.add (i32.const 2)) (return)) (i32.add (i32.const 3))))
  (func (export "multi") (param i32 i64) (result i64 i32 f32)
    (local.get 1) (local.get 0) (f32.const 1.5))
  (func $swap (param i32 i32) (result i32 i32) (local.get 1) (local.get 0))
  (func (export "swap_sub") (param i32 i32) (result i32) (call $swap (local.get 0) (local.get 1)) (i32.sub))
  (func (export "block_params") (param i32) (result i32)
    (local.get 0) (i32.const 5)
    (block (param i32 i32) (result i32) (i32.mul))
    (local.get 0)
    (if (param i32 i32) (result i32) (i32.gt_s (local.get 0) (i32.const 3))
      (then (i32.sub)) (else (i32.add))))
  (func (export "loop_params") (param i32) (result i32)
    (i32.const 0) (local.get 0)
    (loop $l (param i32 i32) (result i32)
      (local.set 0) (i32.add (local.get 0)) (local.get 0) (i32.const 1) (i32.sub) (local.tee 0)
      (br_if $l (i32.ne (local.get 0) (i32.const 0))) (drop)))
  (func (export "select") (param i32 f64 f64) (result f64)
    (select (local.get 1) (local.get 2) (local.get 0)))
  (func (export "tee_swap") (param i32 i32) (result i32)
    (local.get 0) (local.get 1) (local.set 0) (local.set 1) (i32.sub (local.get 0) (local.get 1)))
  (func (export "ret_swap") (param i32 i32) (result i32 i32)
    (local.get 1) (local.get 0) (return))
  (func (export "br_out") (param i32) (result i32)
    (block $out (result i32) (loop $l
      (br_if $out (i32.ge_u (local.get 0) (i32.const 50)) (local.get 0))
      (local.set 0 (i32.add (local.get 0) (i32.const 7))) (br $l)) (i32.const -1)))
  (func (export "unreachable") (param i32) (result i32)
    (if (local.get 0) (then (unreachable))) (i32.const 3))
  (func (export "global") (param i64) (result i64)
    (global.set $g (i64.add (global.get $g) (local.get 0))) (global.get $g))
  (func (export "dead") (param i32) (result i32)
    (block (result i32) (br 0 (local.get 0)) (i32.const 1) (i32.add) (drop) (loop (br 0)) (i32.const 9))))
"""


@pytest.fixture(scope="module")
def control():
    return Both(CONTROL)


@pytest.mark.parametrize("name,argsets", [
    ("fib", [(0,), (1,), (2,), (20,)]), ("fact", [(0,), (5,), (20,), (25,)]),
    ("even", [(0,), (7,), (1000,)]), ("table", [(0,), (1,), (2,), (3,), (4,), (-1,)]),
    ("multi", [(3, -4), (-1, 2 ** 63 - 1)]), ("swap_sub", [(10, 3)]),
    ("block_params", [(2,), (4,), (-9,)]), ("loop_params", [(5,), (1,)]),
    ("select", [(0, 1.0, 2.0), (1, 1.0, 2.0), (5, -0.0, math.nan)]),
    ("tee_swap", [(1, 5)]), ("ret_swap", [(1, 2)]), ("br_out", [(0,), (49,), (50,), (-5,)]),
    ("unreachable", [(0,), (1,)]), ("global", [(1,), (-100,)]), ("dead", [(4,)]),
])
def test_control_flow_agrees_with_wasmtime(control, name, argsets):
    for args in argsets:
        control.same(name, *args)


def test_results_and_global_writes_visible_in_python(control):
    exports = control.inst.exports
    assert exports["fib"](20) == 6765
    assert exports["multi"](3, -4) == (-4, 3, 1.5)
    before = control.inst.globals[0].value
    assert exports["global"](5) == before + 5
    assert control.inst.globals[0].value == before + 5


def test_imported_global_written_by_wasm():
    g = Global.new(Engine(), "i32", 41, mutable=True)
    i = Instance(Module(Engine(), wat("""(module (import "env" "g" (global $g (mut i32)))
      (func (export "inc") (global.set $g (i32.add (global.get $g) (i32.const 1)))))""")), [g])
    i.exports["inc"]()
    assert g.value == 42


def test_arguments_checked_before_running(control):
    f = control.inst.exports["global"]
    before = control.inst.globals[0].value
    with pytest.raises(TypeError):
        f()
    with pytest.raises(TypeError):
        f(1, 2)
    with pytest.raises(TypeError):
        f("1")
    assert control.inst.globals[0].value == before


def test_deep_recursion_is_a_clean_stack_overflow():
    i = Instance(Module(Engine(), wat("""(module
      (func $down (export "down") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1))))))))""")))
    with pytest.raises(Trap) as info:
        i.exports["down"](1_000_000)
    assert info.value.code is TrapCode.STACK_OVERFLOW
    assert i.exports["down"](10_000) == 10_000  # the thread's stacks are usable again


# -- memory ------------------------------------------------------------------------------------
_LOADS = ["i32.load", "i64.load", "f32.load", "f64.load", "i32.load8_s", "i32.load8_u",
          "i32.load16_s", "i32.load16_u", "i64.load8_s", "i64.load8_u", "i64.load16_s",
          "i64.load16_u", "i64.load32_s", "i64.load32_u"]
_STORES = ["i32.store", "i64.store", "f32.store", "f64.store", "i32.store8", "i32.store16",
           "i64.store8", "i64.store16", "i64.store32"]
OFFSETS = [0, 1, 65535]


def _access_module(memory="(memory (export \"mem\") 1 4)", at="i32"):
    funcs = []
    for name in _LOADS + _STORES:
        t = name.split(".")[0]
        for off in OFFSETS:
            if name in _LOADS:
                funcs.append(f'(func (export "{name}@{off}") (param {at}) (result {t}) '
                             f'(local.get 0) ({name} offset={off}))')
            else:
                funcs.append(f'(func (export "{name}@{off}") (param {at} {t}) '
                             f'(local.get 0) (local.get 1) ({name} offset={off}))')
    funcs.append(f'(func (export "grow") (param {at}) (result {at}) (memory.grow (local.get 0)))')
    data = '(data (i32.const 65000) "\\01\\82\\03\\84\\05\\86\\07\\88\\09\\8a\\0b\\8c\\0d\\8e\\0f\\90")' \
        if at == "i32" else '(data (i64.const 65000) "\\01\\82\\03\\84\\05\\86\\07\\88")'
    return f"(module {memory} {data}\n" + "\n".join(funcs) + ")"


MEMORY_KINDS = {
    # name: (tunables, memory decl, address type, raw expected)
    "static": (None, '(memory (export "mem") 1 4)', "i32", True),
    "static-small-guard": (Tunables(static_memory_offset_guard_size=65536), '(memory (export "mem") 1 4)', "i32", True),
    "dynamic": (Tunables(static_memory_bound=2), '(memory (export "mem") 1 4)', "i32", False),
    "memory64": (None, '(memory (export "mem") i64 1 4)', "i64", False),
}


@pytest.fixture(scope="module", params=sorted(MEMORY_KINDS))
def access(request):
    tunables, decl, at, raw = MEMORY_KINDS[request.param]
    b = Both(_access_module(decl, at), Engine(tunables))
    b.raw, b.small_guard = raw, request.param == "static-small-guard"
    return b


def _boundary_addresses(byte_len):
    return sorted({0, 1, 64999, byte_len - 9, byte_len - 8, byte_len - 5, byte_len - 4, byte_len - 3,
                   byte_len - 2, byte_len - 1, byte_len, byte_len + 1, 2 ** 32 - 1})


def test_every_width_at_boundary_addresses(access):
    for grow in (0, 1):
        if grow:
            access.same("grow", 1)
        byte_len = access.inst.exports["mem"].byte_len
        for name in _LOADS + _STORES:
            t = ValType(name.split(".")[0])
            for off in OFFSETS:
                for addr in _boundary_addresses(byte_len):
                    args = (addr,) if name in _LOADS else (addr, EDGE[t][(addr + off) % len(EDGE[t])])
                    a, _ = access.outcomes(f"{name}@{off}", *args)
                    access.same(f"{name}@{off}", *args)
                    if a.kind == "trap":
                        assert a.value == "MEMORY_OUT_OF_BOUNDS"
        access.memory_same()


def test_raw_accesses_take_the_guard_page_path(access):
    """Raw accesses (static 32-bit memory, enough guard) trap through the signal handler;
    checked ones through the explicit check (guard_fault False), with the wasm address."""
    byte_len = access.inst.exports["mem"].byte_len
    for name, off in [("i32.load", 0), ("i64.store", 65535), ("i32.load8_u", 1)]:
        f = access.inst.exports[f"{name}@{off}"]
        addr = byte_len - 1
        before = _ffi.last_fault_address()
        with pytest.raises(Trap) as info:
            f(addr) if name in _LOADS else f(addr, 7)
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
        assert info.value.address == addr + off
        mem = access.inst.exports["mem"]
        width = {"i32.load": 4, "i64.store": 8, "i32.load8_u": 1}[name]
        raw = mem._access_mode(off, width) == "guard"  # the accessors' rule (C), not the translator's
        assert raw is (access.raw and not (name == "i64.store" and access.small_guard))
        assert info.value.guard_fault is raw
        if raw:
            assert mem.base_address <= _ffi.last_fault_address() <= mem.base_address + addr + off + 8
        else:
            assert _ffi.last_fault_address() == before


def test_signals_based_traps_off_checks_everything():
    b = Both(_access_module(), Engine(signals_based_traps=False))
    with pytest.raises(Trap) as info:
        b.inst.exports["i32.load@0"](2 ** 32 - 1)
    assert info.value.guard_fault is False and info.value.address == 2 ** 32 - 1
    assert b.inst.exports["i32.load@0"](65000) & 0xFFFFFFFF == 0x84038201


BULK = """(module (memory (export "mem") 1 3)
  (data (i32.const 100) "abcdefghij")
  (func (export "sum") (param $p i32) (param $n i32) (result i64) (local $s i64)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $s (i64.add (local.get $s) (i64.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $s))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "size") (result i32) (memory.size))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"""


def test_loops_bulk_memory_and_grow_agree_with_wasmtime():
    b = Both(BULK)
    for name, args in [("sum", (100, 10)), ("fill", (5, 0x1FF, 300)), ("sum", (0, 65536)),
                       ("copy", (50, 100, 10)), ("copy", (103, 100, 10)), ("copy", (0, 65530, 10)),
                       ("fill", (65530, 1, 7)), ("fill", (65536, 1, 0)), ("fill", (65537, 1, 0)),
                       ("size", ()), ("grow", (1,)), ("size", ()), ("fill", (65536, 9, 65536)),
                       ("sum", (65530, 100)), ("grow", (5,)), ("grow", (1,)), ("size", ())]:
        b.same(name, *args)
    b.memory_same()
    assert b.inst.exports["mem"].size_pages == 3  # memory.grow from wasm is the Memory's grow


GROW_SEQUENCE = [("size", ()), ("grow", (0,)), ("grow", (1,)), ("fill", (65536, 3, 65536)),
                 ("sum", (65530, 20)), ("grow", (0x7FFFFFFF,)), ("grow", (0xFFFFFFFF,)), ("grow", (6,)),
                 ("grow", (5,)), ("size", ()), ("fill", (7 * 65536, 4, 65536)), ("grow", (1,)),
                 ("sum", (7 * 65536 - 5, 10)), ("size", ())]


@pytest.mark.oracle
@pytest.mark.parametrize("pooled", [False, True])
def test_grow_from_wasm_runs_in_c_on_the_descriptor_and_agrees_with_wasmtime(pooled):
    """memory.grow from wasm grows in place in C (no exit, no Memory made), on demand and in
    a pool slot; a Memory made afterwards sees the size, the bytes and the maximum."""
    engine = Engine(allocator=make_pool(max_instances=2)) if pooled else None
    b = Both(BULK.replace('(memory (export "mem") 1 3)', '(memory (export "mem") 1 8)'), engine)
    exits = []
    real = _ffi.interp_run

    def counting(c):
        status = real(c)
        exits.append(status)
        return status
    b.inst.exports["size"]()  # (its interpreter state made first)
    try:
        _ffi.interp_run = counting
        for name, args in GROW_SEQUENCE:
            b.same(name, *args)
    finally:
        _ffi.interp_run = real
    assert set(exits) == {_ffi.I_DONE}  # never exited to Python to grow
    assert b.inst._made is None
    mem = b.inst.exports["mem"]
    assert mem.size_pages == 8 and mem.maximum_pages == 8
    b.memory_same()
    b.inst.close()
    with Instance(b.inst.module) as nxt:  # (pooled: the same slot) nothing of the grown pages is left
        assert nxt.exports["size"]() == 1 and nxt.exports["grow"](7) == 1
        assert nxt.exports["sum"](65536, 7 * 65536) == 0


def test_grow_from_wasm_and_from_python_at_once_lose_no_page():
    """wenv_memory_grow's lock serializes the interpreter's grows and Memory.grow: every old
    size returned is distinct and the final size is their sum."""
    inst = Instance(Module(Engine(), wat(BULK.replace('(memory (export "mem") 1 3)', '(memory (export "mem") 1 2000)'))))
    grow, mem = inst.exports["grow"], inst.exports["mem"]
    seen, n = [], 400
    t = threading.Thread(target=lambda: seen.extend(grow(1) for _ in range(n)))
    t.start()
    mine = [mem.grow(1) for _ in range(n)]
    t.join(30)
    olds = seen + mine
    assert sorted(olds) == list(range(1, 2 * n + 1))
    assert mem.size_pages == 1 + 2 * n
    mem.store_i32(mem.byte_len - 4, 7)
    assert mem.load_i32(mem.byte_len - 4) == 7
    inst.close()


def test_grow_of_a_dynamic_memory_that_moves():
    b = Both(BULK, Engine(Tunables(static_memory_bound=1, dynamic_memory_growth_reserve=0)))
    b.same("fill", 0, 7, 65536)
    b.same("grow", 2)
    b.same("fill", 65536 * 2, 9, 65536)
    b.same("sum", 65530, 200)
    b.memory_same()


# -- lazy translation, unsupported features ------------------------------------------------------
def test_translation_is_lazy_and_shared_by_instances():
    module = Module(Engine(), wat(CONTROL))
    a, b = Instance(module), Instance(module)
    assert a.exports["fib"](10) == 55
    code = module._code
    fib = a.exports["fib"].wasm_index
    assert code.funcs[fib].code != _ffi.NULL
    assert code.funcs[a.exports["fact"].wasm_index].code == _ffi.NULL  # never called
    assert b.exports["fib"](11) == 89 and module._code is code


def test_first_call_from_two_threads():
    module = Module(Engine(), wat(CONTROL))
    inst = Instance(module)
    results, errors = [], []

    def run():
        try:
            results.append(inst.exports["even"](5001))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [0] * 4


@pytest.mark.parametrize("body,feature", [
    ("(drop (i32x4.extract_lane 0 (v128.const i32x4 1 2 3 4))) (i32.const 0)", "simd"),
    ("(drop (ref.is_null (global.get $r))) (i32.const 0)", "exceptions"),
])
def test_unsupported_instructions_raise_when_first_called(body, feature):
    module = Module(Engine(), wat(f"""(module (type $t (func (param i32) (result i32)))
      (import "env" "host" (func $host (param i32) (result i32)))
      (table 1 funcref) (memory 1) (global $r exnref (ref.null exn))
      (func (export "f") (result i32) {body})
      (func (export "ok") (result i32) (i32.const 5)))"""))
    inst = Instance(module, [runtime.Func(module.imports[0].type, lambda x: x)])
    assert inst.exports["ok"]() == 5
    for _ in range(2):
        with pytest.raises(UnsupportedFeature) as info:
            inst.exports["f"]()
        assert info.value.feature == feature
    assert inst.exports["ok"]() == 5


def test_closed_instance_refuses_calls(control):
    i = Instance(Module(Engine(), wat(CONTROL)))
    f = i.exports["fib"]
    i.close()
    with pytest.raises(ValueError):
        f(3)


def test_outcome_normalization():
    assert norm(math.nan, exact_nan=False) == "nan" and norm((1, 2.0)) == (1, ("f", struct.pack("<d", 2.0)))


def test_calls_from_threads_run_in_parallel_without_the_gil():
    b = Both(BULK)
    sum8 = b.inst.exports["sum"]
    b.inst.exports["fill"](0, 3, 65536)
    results, errors = [], []

    def run():
        try:
            for _ in range(60):
                results.append(sum8(0, 65536))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [3 * 65536] * 180


def _spin_rate(until) -> float:
    """Iterations per second of a Python loop running until ``until()``."""
    import time
    n, t0 = 0, time.perf_counter()
    while not until():
        n += 1
    return n / (time.perf_counter() - t0)


def test_a_long_call_releases_the_gil():
    """While one thread runs a long wasm loop, this thread keeps running Python at a good
    part of its own speed (were the GIL held, it would stall for the whole call)."""
    inst = Instance(Module(Engine(), wat("""(module (func (export "spin") (param i32) (result i32)
      (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))) (local.get 0)))""")))
    spin = inst.exports["spin"]
    spin(1000)  # translated before timing
    timer = threading.Event()
    threading.Timer(0.2, timer.set).start()
    alone = _spin_rate(timer.is_set)
    started, done = threading.Event(), threading.Event()

    def run():
        started.set()
        spin(300_000_000)
        done.set()
    t = threading.Thread(target=run)
    t.start()
    started.wait()
    during = _spin_rate(done.is_set)
    t.join()
    assert during > alone / 5, (alone, during)
