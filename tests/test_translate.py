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
        ops_of("(module (func (result i32) (return_call 0)))")
    assert info.value.feature == "tail calls" and "return_call" in info.value.detail
    assert info.value.offset is not None and "function 0" in info.value.detail


def test_unsupported_in_unreachable_code_is_skipped():
    names, _ = ops_of("(module (func (result i32) (return (i32.const 1)) (drop (table.size 0)) "
                      "(i32.const 2)) (table 1 funcref))")
    assert names == ["const", "return"]  # (no params or locals: the stack starts at slot 0)
