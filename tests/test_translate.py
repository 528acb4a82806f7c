"""runtime/translate.py: the slot code of validated bodies (fusion, branch targets, limits)."""
import pytest

from runtime import Engine, Instance, Module, PoolingAllocator, _ffi
from runtime.interp import module_code
from runtime.translate import translate_function
from tests.helpers import wat
from wasmenv import Tunables, UnsupportedFeature

NAMES = {n: name for name, n in _ffi.interp_op_numbers().items()}


def ops_of(text, func=0, engine=None):
    """(op names, Code) of function ``func`` of the WAT module ``text``."""
    module = Module(engine or Engine(), wat(text))
    instance = Instance(module)
    memories = instance.memories
    mc = module_code(module, memories[0]._desc if memories else None)
    instance.close()
    start, end = module.translation.code.bodies[func - mc.ctx.num_imported_funcs]
    code = translate_function(mc.ctx, func, module.translation.wasm, start, end,
                              _ffi.interp_op_numbers())
    return [NAMES[code.words[p]] for p in code.positions], code


def test_local_operands_need_no_copies():
    names, code = ops_of("(module (func (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))")
    assert names == ["i32_add", "copy", "return"]
    add = code.positions[0]
    assert list(code.words[add + 2:add + 4]) == [0, 1]  # the operands are the locals' slots


def test_result_written_straight_into_local_set():
    names, code = ops_of("""(module (func (param i32) (result i32)
      local.get 0 i32.const 1 i32.add local.set 0 local.get 0))""")
    assert names == ["i32_add_imm", "return"]  # const+add fused, dst is local 0
    assert list(code.words[1:4]) == [0, 0, 1]


def test_compare_and_branch_fused():
    names, _ = ops_of("""(module (func (param i32 i32)
      (loop (br_if 0 (i32.lt_s (local.get 0) (local.get 1))))))""")
    assert names == ["br_i32_lt_s", "return"]
    names, _ = ops_of("(module (func (param i64) (result i32) (if (result i32) (i64.eqz (local.get 0)) "
                      "(then (i32.const 1)) (else (i32.const 2)))))")
    assert names[0] == "br_i64_nez"  # to the else arm when the condition is false


def test_branch_displacements_and_br_table_stubs():
    names, code = ops_of("""(module (func (param i32) (result i32)
      (block (result i32) (block (result i32) (i32.const 5) (local.get 0) (br_table 0 1 1))
      (i32.const 6) (i32.add))))""")
    assert "br_table" in names
    pos = code.positions[names.index("br_table")]
    n = code.words[pos + 2]
    assert n == 2
    targets = [(pos + code.words[pos + 3 + k]) % (1 << 64) for k in range(n + 1)]
    assert all(t in code.positions for t in targets)  # every target is an instruction


def test_frame_size_counts_locals_stack_and_spills():
    _, code = ops_of("""(module (func (param i32) (result i32) (local i64 i64)
      (i32.add (i32.add (local.get 0) (i32.const 1)) (i32.add (local.get 0) (i32.const 2)))))""")
    assert code.nparams == 1 and code.nlocals == 2 and code.nresults == 1
    assert code.frame_cells >= 3 + 2


def test_raw_or_checked_per_access_from_the_plan():
    text = '(module (memory 1) (func (param i32) (result i32) (i32.load offset=65534 (local.get 0))))'
    assert ops_of(text)[0][0] == "i32_load"  # 4 GiB bound + 2 GiB guard: raw
    small = Engine(Tunables(static_memory_offset_guard_size=65536))
    assert ops_of(text, engine=small)[0][0] == "i32_load_c"  # 0xffffffff + 65534 + 4 > bound + guard
    assert ops_of(text, engine=Engine(signals_based_traps=False))[0][0] == "i32_load_c"
    # the real reservation decides: pool slots with a 64 KiB guard under default tunables
    with PoolingAllocator(2, 1, 16, 0, 0, guard_bytes=64 << 10) as pool:
        assert ops_of(text, engine=Engine(allocator=pool))[0][0] == "i32_load_c"
    assert ops_of(text.replace("(memory 1)", "(memory i64 1)").replace("param i32", "param i64"))[0][0] \
        == "i32_load_c"


def test_unsupported_instruction_named_with_offset():
    with pytest.raises(UnsupportedFeature) as info:
        ops_of("(module (tag $t) (func (result i32) (throw $t)))")
    assert info.value.feature == "exceptions" and "throw" in info.value.detail
    assert info.value.offset is not None and "function 0" in info.value.detail


def test_simd_memory_access_is_unsupported_simd():
    """A v128 load/store (a memarg instruction with a 16-byte width) names SIMD (it was a
    KeyError on its alignment)."""
    for body in ("(drop (v128.load (i32.const 0)))",
                 "(v128.store offset=4 (i32.const 0) (v128.const i64x2 0 0))"):
        with pytest.raises(UnsupportedFeature) as info:
            ops_of(f"(module (memory 1) (func {body}))")
        assert info.value.feature == "simd" and "v128" in info.value.detail


def test_unsupported_in_unreachable_code_is_skipped():
    names, _ = ops_of("(module (func (result i32) (return (i32.const 1)) (drop (table.size 0)) "
                      "(i32.const 2)) (table 1 funcref))")
    assert names == ["const", "return"]  # (no params or locals: the stack starts at slot 0)


def test_integer_constant_operand_folded_into_the_op():
    one = "(module (func (param i32) (result i32) {}))"
    assert ops_of(one.format("local.get 0 i32.const 7 i32.and"))[0][0] == "i32_and_imm"
    assert ops_of(one.format("i32.const 7 local.get 0 i32.xor"))[0][0] == "i32_xor_imm"  # commutative
    names, code = ops_of(one.format("i32.const 7 local.get 0 i32.sub"))  # 7 - x: not folded
    assert names[:2] == ["const", "i32_sub"]
    names, code = ops_of(one.format("i32.const 5 local.get 0 i32.lt_s"))  # 5 < x is x > 5
    assert names[0] == "i32_gt_s_imm" and list(code.words[2:4]) == [0, 5]
    names, _ = ops_of("(module (func (param i64) (result i64) local.get 0 i64.const -1 i64.shr_u))")
    assert names[0] == "i64_shr_u_imm"
    names, code = ops_of("""(module (func (param i32)
      (loop (br_if 0 (i32.ge_u (i32.const 9) (local.get 0))))))""")
    assert names == ["br_i32_le_u_imm", "return"]  # 9 >= x is x <= 9, fused with the branch
    assert list(code.words[1:3]) == [0, 9]


_IMM_BINS = ("add", "sub", "mul", "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr")
_IMM_CMPS = ("eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u")
_IMM_CONSTS = {"i32": (0, 1, -1, 7, 31, 33, -0x80000000), "i64": (0, 1, -1, 7, 63, 65, -0x8000000000000000)}


@pytest.mark.oracle
def test_folded_constants_agree_with_wasmtime():
    """Every integer binary op and compare with a constant as either operand, as a value
    and (compares) as the condition of br_if and if, against wasmtime-py."""
    import itertools

    from harness.execution import EDGE, ours, theirs, wasmtime_engine
    import wasmtime as wt
    from wasmenv import ValType

    funcs, calls = [], []
    for t, consts in _IMM_CONSTS.items():
        for k, c in enumerate(consts):
            for op in _IMM_BINS + _IMM_CMPS:
                res = "i32" if op in _IMM_CMPS else t
                for side, body in (("r", f"(local.get 0) ({t}.const {c})"), ("l", f"({t}.const {c}) (local.get 0)")):
                    name = f"{t}_{op}_{k}{side}"
                    funcs.append(f'(func (export "{name}") (param {t}) (result {res}) ({t}.{op} {body}))')
                    calls.append((name, t))
                    if op in _IMM_CMPS:
                        funcs.append(f'(func (export "br_{name}") (param {t}) (result i32) '
                                     f'(block (br_if 0 ({t}.{op} {body})) (return (i32.const 3))) (i32.const 4))')
                        funcs.append(f'(func (export "if_{name}") (param {t}) (result i32) (if (result i32) '
                                     f'({t}.{op} {body}) (then (i32.const 5)) (else (i32.const 6))))')
                        calls += [("br_" + name, t), ("if_" + name, t)]
    wasm = wat("(module " + "\n".join(funcs) + ")")
    inst = Instance(Module(Engine(), wasm))
    engine = wasmtime_engine()
    store = wt.Store(engine)
    exports = wt.Instance(store, wt.Module(engine, wasm), []).exports(store)
    names, _ = ops_of("(module " + "\n".join(funcs[:3]) + ")")
    assert names[0] == "i32_add_imm"  # the fused forms are what runs here
    for (name, t), x in itertools.product(calls, range(8)):
        arg = EDGE[ValType(t)][x]
        assert ours(inst.exports[name], (arg,), True) == theirs(store, exports[name], (arg,), True), (name, arg)


_ACCESSES = ("i32.load", "i64.load", "f32.load", "f64.load", "i32.load8_s", "i32.load8_u", "i32.load16_s",
             "i32.load16_u", "i64.load8_s", "i64.load8_u", "i64.load16_s", "i64.load16_u", "i64.load32_s",
             "i64.load32_u", "i32.store", "i64.store", "f32.store", "f64.store", "i32.store8", "i32.store16",
             "i64.store8", "i64.store16", "i64.store32")


def _address_add_module():
    funcs = []
    for k, name in enumerate(_ACCESSES):
        t = name.split(".")[0]
        addr = "(i32.add (local.get 0) (i32.const 65530))"
        if ".load" in name:
            funcs.append(f'(func (export "f{k}") (param i32) (result {t}) ({name} offset=3 {addr}))')
        else:
            funcs.append(f'(func (export "f{k}") (param i32) (local {t}) (local.set 1 ({t}.const 0x7c))'
                         f' ({name} offset=3 {addr} (local.get 1)))')
    return ("(module (memory (export \"mem\") 2) (data (i32.const 65520) \"abcdefghijklmnopqrstuvwxyz0123456789\")\n"
            + "\n".join(funcs) + ")")


def test_address_computed_by_a_constant_add_fuses_with_a_raw_access():
    text = _address_add_module()
    names, _ = ops_of(text, 0)
    assert names[0] == "i32_load_ai"
    names, _ = ops_of(text, 14, engine=Engine(signals_based_traps=False))
    assert "i32_add_imm" in names and "i32_store_c" in names  # checked accesses keep the add


@pytest.mark.oracle
@pytest.mark.parametrize("signals", [True, False])
def test_fused_address_add_agrees_with_wasmtime(signals):
    """Every width through i32.add(x, 65530) + offset 3: in bounds, at the end, wrapping
    around 2**32 (the add wraps, the offset does not), and out of bounds (the trap address
    is the wasm effective address)."""
    from harness.execution import ours, theirs, wasmtime_engine
    import wasmtime as wt
    from runtime import Trap, TrapCode

    wasm = wat(_address_add_module())
    inst = Instance(Module(Engine(signals_based_traps=signals), wasm))
    engine = wasmtime_engine()
    store = wt.Store(engine)
    exports = wt.Instance(store, wt.Module(engine, wasm), []).exports(store)
    for k, name in enumerate(_ACCESSES):
        for x in (-65530, -65533, 0, 1, 65536 - 65533 - 8 + 65536, 65536, 131072 - 65533, -1, -65535):
            x &= 0xFFFFFFFF
            got = ours(inst.exports[f"f{k}"], (x,), True)
            assert got == theirs(store, exports[f"f{k}"], (x,), True), (name, x)
        mine, other = inst.exports["mem"], exports["mem"]
        assert mine.read(0, mine.byte_len) == bytes(other.read(store, 0, other.data_len(store)))
    with pytest.raises(Trap) as info:
        inst.exports["f0"](131072 - 65533 - 3)  # a + imm + 3 = 0x1FFFD: a 4-byte load past the end
    assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS and info.value.address == 0x1FFFD
    assert info.value.guard_fault == signals


def test_two_constant_adds_in_a_row_run_as_one_op_in_order():
    text = """(module (func (export "f") (param i32 i32) (result i32)
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (local.set 1 (i32.add (local.get 0) (i32.const -4)))  ;; reads the first one's result
      (i32.mul (local.get 0) (local.get 1))))"""
    names, code = ops_of(text)
    assert names[0] == "i32_add_imm2"
    assert list(code.words[1:7]) == [0, 0, 1, 1, 0, (1 << 32) - 4]
    inst = Instance(Module(Engine(), wat(text)))
    assert inst.exports["f"](6, 100) == 7 * 3
    assert inst.exports["f"](-1, 0) == 0
    # the second add a branch target (a loop's first instruction): not paired
    names, _ = ops_of("""(module (func (param i32 i32)
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (loop (local.set 1 (i32.add (local.get 1) (i32.const 4)))
        (br_if 0 (i32.lt_u (local.get 1) (i32.const 99))))))""")
    assert names[:2] == ["i32_add_imm", "i32_add_imm"]


@pytest.mark.oracle
def test_bit_field_and_scaled_index_chains_fuse_and_agree_with_wasmtime():
    from harness.execution import ours, theirs, wasmtime_engine
    import wasmtime as wt

    text = """(module
      (func (export "field") (param i32) (result i32) (i32.and (i32.shr_u (local.get 0) (i32.const 37)) (i32.const 0x3ff)))
      (func (export "index") (param i32) (result i32) (i32.shl (i32.and (local.get 0) (i32.const 255)) (i32.const 34)))
      (func (export "teed") (param i32) (result i32) (local i32)
        (i32.and (local.tee 1 (i32.shr_u (local.get 0) (i32.const 3))) (i32.const 7)) (local.get 1) (i32.add)))"""
    assert ops_of(text, 0)[0][0] == "i32_shr_u_and_imm"
    assert ops_of(text, 1)[0][0] == "i32_and_shl_imm"
    assert ops_of(text, 2)[0][:2] == ["i32_shr_u_imm", "i32_and_imm"]  # the first result is kept in a local
    wasm = wat(text)
    inst = Instance(Module(Engine(), wasm))
    engine = wasmtime_engine()
    store = wt.Store(engine)
    exports = wt.Instance(store, wt.Module(engine, wasm), []).exports(store)
    for name in ("field", "index", "teed"):
        for x in (0, 1, 0x1234_5678, -1, -0x8000_0000, 0x7FFF_FFFF, 0xABCDEF):
            assert ours(inst.exports[name], (x,), True) == theirs(store, exports[name], (x,), True), (name, x)


def _fused_address_module():
    """Every access width through an i32.add of two values ("_aa") and through a table
    index ((x & 255) << 2 plus a constant: "_at"), each with offset 3."""
    funcs = []
    for k, name in enumerate(_ACCESSES):
        t = name.split(".")[0]
        for form, addr in (("aa", "(i32.add (local.get 0) (local.get 1))"),
                           ("at", "(i32.add (i32.shl (i32.and (local.get 0) (i32.const 255)) (i32.const 2))"
                                  " (i32.const 65280))")):
            if ".load" in name:
                funcs.append(f'(func (export "{form}{k}") (param i32 i32) (result {t}) ({name} offset=3 {addr}))')
            else:
                funcs.append(f'(func (export "{form}{k}") (param i32 i32) (local {t}) (local.set 2 ({t}.const 0x7c))'
                             f' ({name} offset=3 {addr} (local.get 2)))')
    return ("(module (memory (export \"mem\") 2) (data (i32.const 65520) \"abcdefghijklmnopqrstuvwxyz0123456789\")\n"
            + "\n".join(funcs) + ")")


def test_address_of_two_values_or_a_table_index_fuses_with_a_raw_access():
    text = _fused_address_module()
    assert ops_of(text, 0)[0][0] == "i32_load_aa"
    names, code = ops_of(text, 1)
    assert names[0] == "i32_load_at"
    assert list(code.words[4:8]) == [0, 255, 2, 65280]  # x, mask, shift, imm
    assert ops_of(text, 2 * 14 + 1)[0][:2] == ["const", "i32_store_at"]
    checked = ops_of(text, 1, engine=Engine(signals_based_traps=False))[0]
    assert checked[:3] == ["i32_and_shl_imm", "i32_add_imm", "i32_load_c"]  # checked accesses keep the adds


@pytest.mark.oracle
@pytest.mark.parametrize("signals", [True, False])
def test_fused_address_of_two_values_or_a_table_index_agrees_with_wasmtime(signals):
    """In bounds, at the end, wrapping around 2**32, out of bounds (the trap address is the
    wasm effective address, for the guard-page path as for the explicit check)."""
    from harness.execution import ours, theirs, wasmtime_engine
    import wasmtime as wt
    from runtime import Trap, TrapCode

    wasm = wat(_fused_address_module())
    inst = Instance(Module(Engine(signals_based_traps=signals), wasm))
    engine = wasmtime_engine()
    store = wt.Store(engine)
    exports = wt.Instance(store, wt.Module(engine, wasm), []).exports(store)
    cases = [(65520, 0), (65500, 20), (-1, 65528), (0x7FFF_FFFF, 0x8000_FF00), (65536, 65525),
             (131072, -3), (0, 131070), (-8, 7), (1, 2)]
    for k, name in enumerate(_ACCESSES):
        for form in ("aa", "at"):
            for x, y in cases + [(b, 0) for b in (0, 3, 60, 255, 256 + 61, -1, 0x1234_5600 + 200)]:
                args = (x & 0xFFFFFFFF, y & 0xFFFFFFFF)
                got = ours(inst.exports[f"{form}{k}"], args, True)
                assert got == theirs(store, exports[f"{form}{k}"], args, True), (form, name, args)
        mine, other = inst.exports["mem"], exports["mem"]
        assert mine.read(0, mine.byte_len) == bytes(other.read(store, 0, other.data_len(store)))
    with pytest.raises(Trap) as info:
        inst.exports["aa0"](131072, -3 & 0xFFFFFFFF)  # 0x1FFFD + 3: a 4-byte load past the end
    assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS and info.value.address == 0x20000
    assert info.value.guard_fault == signals


@pytest.mark.oracle
def test_binary_op_on_a_shifted_temporary_fuses_and_agrees_with_wasmtime():
    from harness.execution import ours, theirs, wasmtime_engine
    import wasmtime as wt

    forms = [("add", "shl", False), ("add", "shr_u", True), ("sub", "shl", False), ("xor", "shl", True),
             ("xor", "shr_u", False), ("or", "shl", False), ("or", "shr_u", True), ("and", "shr_u", False)]
    funcs = []
    for bin_, sh, shifted_first in forms:
        shifted = f"(i32.{sh} (local.get 1) (i32.const 37))"  # 37: the count is taken mod 32
        ops = f"{shifted} (local.get 0)" if shifted_first else f"(local.get 0) {shifted}"
        funcs.append(f'(func (export "{bin_}_{sh}") (param i32 i32) (result i32) (i32.{bin_} {ops}))')
    funcs.append('(func (export "sub_first") (param i32 i32) (result i32)'
                 ' (i32.sub (i32.shl (local.get 1) (i32.const 3)) (local.get 0)))')  # not commutative
    funcs.append('(func (export "teed") (param i32 i32) (result i32) (local i32)'
                 ' (i32.xor (local.get 0) (local.tee 2 (i32.shr_u (local.get 1) (i32.const 8))))'
                 ' (local.get 2) (i32.add))')  # the shifted value is kept in a local
    text = "(module " + "\n".join(funcs) + ")"
    for k, (bin_, sh, _) in enumerate(forms):
        assert ops_of(text, k)[0][0] == f"i32_{bin_}_{sh}_imm"
    assert ops_of(text, len(forms))[0][:2] == ["i32_shl_imm", "i32_sub"]
    assert ops_of(text, len(forms) + 1)[0][:2] == ["i32_shr_u_imm", "i32_xor"]
    wasm = wat(text)
    inst = Instance(Module(Engine(), wasm))
    engine = wasmtime_engine()
    store = wt.Store(engine)
    exports = wt.Instance(store, wt.Module(engine, wasm), []).exports(store)
    values = (0, 1, 0x1234_5678, -1, -0x8000_0000, 0x7FFF_FFFF, 0xABCDEF)
    for name in [f"{b}_{s}" for b, s, _ in forms] + ["sub_first", "teed"]:
        for x in values:
            for y in values:
                args = (x & 0xFFFFFFFF, y & 0xFFFFFFFF)
                assert ours(inst.exports[name], args, True) == theirs(store, exports[name], args, True), (name, args)


_LOAD_WALK = """(module (memory (export "mem") 1)
  (data (i32.const 16) "\\20\\00\\00\\00\\01\\02\\00\\00\\30\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\03")
  ;; a list at 16 -> 32 -> 48 -> 0: the nodes visited
  (func (export "walk") (param i32) (result i32) (local i32)
    (block (loop (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br_if 1 (i32.eqz (local.get 0)))
      (br_if 0 (local.tee 0 (i32.load (local.get 0))))))
    (local.get 1))
  ;; bytes up to the first zero: if on a loaded byte
  (func (export "strlen") (param i32) (result i32) (local i32)
    (block (loop
      (if (i32.load8_u (local.get 0)) (then) (else (br 2)))
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (local.set 1 (i32.add (local.get 1) (i32.const 1))) (br 0)))
    (local.get 1))
  (func (export "halves") (param i32) (result i32)
    (block (result i32) (i32.const 7) (br_if 0 (i32.load16_u offset=2 (local.get 0))) (drop) (i32.const 9))))"""


def test_a_raw_load_and_a_branch_on_its_value_run_as_one_op():
    assert "i32_load_br_if" in ops_of(_LOAD_WALK, 0)[0]
    assert "i32_load8_u_br_unless" in ops_of(_LOAD_WALK, 1)[0]
    assert "i32_load16_u_br_if" in ops_of(_LOAD_WALK, 2)[0]
    checked = ops_of(_LOAD_WALK, 0, engine=Engine(signals_based_traps=False))[0]
    assert "i32_load_c" in checked and "br_if" in checked


@pytest.mark.oracle
@pytest.mark.parametrize("signals", [True, False])
def test_load_and_branch_agrees_with_wasmtime_with_its_traps_and_frames(signals):
    from harness.execution import ours, theirs, wasmtime_engine
    import wasmtime as wt
    from runtime import Trap
    from tests.test_traps_backtrace import frames_of

    wasm = wat(_LOAD_WALK)
    inst = Instance(Module(Engine(signals_based_traps=signals), wasm))
    engine = wasmtime_engine()
    store = wt.Store(engine)
    exports = wt.Instance(store, wt.Module(engine, wasm), []).exports(store)
    for name, args in (("walk", 16), ("walk", 32), ("walk", 0), ("walk", 17), ("walk", 65533), ("walk", -4),
                       ("strlen", 16), ("strlen", 20), ("strlen", 40), ("strlen", 65535),
                       ("halves", 16), ("halves", 18), ("halves", 65533), ("halves", 65534)):
        args = (args & 0xFFFFFFFF,)
        assert ours(inst.exports[name], args, True) == theirs(store, exports[name], args, True), (name, args)
    with pytest.raises(Trap) as info:
        inst.exports["walk"](65533)
    with pytest.raises(wt.Trap) as other:
        exports["walk"](store, 65533)
    assert frames_of(info.value.frames) == frames_of(other.value.frames)  # the load's offset
    assert info.value.guard_fault == signals and info.value.address == 65533


def test_ref_is_null_then_br_if_translates():
    text = """(module (func (export "f") (param externref) (result i32)
      (block (br_if 0 (ref.is_null (local.get 0))) (return (i32.const 1))) (i32.const 7)))"""
    assert ops_of(text)[0][0] == "br_i64_eqz"
    inst = Instance(Module(Engine(), wat(text)))
    assert inst.exports["f"](None) == 7
    assert inst.exports["f"](object()) == 1


def test_a_load_set_into_a_local_then_branched_on_joins_the_branch():
    names, _ = ops_of("""(module (memory 1) (func (param i32) (result i32) (local i32)
      (block (local.set 1 (i32.load8_u (local.get 0))) (br_if 0 (local.get 1)) (local.set 1 (i32.const 5)))
      (local.get 1)))""")
    assert names[0] == "i32_load8_u_br_if"
