"""c_src/wenv_interp.c on its own, under AddressSanitizer and UBSan: the translator's real
output for a numeric module and a control/memory module is replayed by
tests/c/interp_sanitize.c over a malloc'd memory (explicit checks), and every call must
end with the status and results the runtime gave."""
import itertools
import os
import random
import subprocess

import pytest

from runtime import Engine, Instance, Module, Trap, TrapCode, _ffi
from runtime.interp import call_bits, module_code
from runtime.translate import translate_function
from harness.execution import EDGE
from tests.charness import build
from tests.helpers import wat
from tests.test_interp import CONTROL, _numeric_module
from wasmenv import ValType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_SRC = os.path.join(ROOT, "c_src")
STATUS = {TrapCode.UNREACHABLE: _ffi.I_UNREACHABLE, TrapCode.INTEGER_DIVISION_BY_ZERO: _ffi.I_DIV_ZERO,
          TrapCode.INTEGER_OVERFLOW: _ffi.I_INT_OVERFLOW, TrapCode.BAD_CONVERSION_TO_INTEGER: _ffi.I_BAD_CONV,
          TrapCode.MEMORY_OUT_OF_BOUNDS: _ffi.I_OOB}
MEMORY = """(module (memory 1)
  (func (export "fill") (param $n i32) (local $i i32)
    (loop $l (i32.store8 (local.get $i) (i32.mul (local.get $i) (i32.const 13)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n)))))
  (func (export "sum") (param $p i32) (param $n i32) (result i64) (local $s i64)
    (block $d (loop $l (br_if $d (i32.eqz (local.get $n)))
      (local.set $s (i64.add (local.get $s) (i64.load16_s (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 2)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $l))) (local.get $s))
  (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "peek") (param i32) (result f64) (f64.load offset=3 (local.get 0))))"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory.mktemp("interp"), "interp_sanitize", ("mman", "memory", "traps", "table", "interp"),
                 "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", libs=("-lpthread", "-lm"))


def _dump(text, calls, path):
    """Write the module's unlinked code and ``calls`` (name, args) with the runtime's outcomes."""
    module = Module(Engine(signals_based_traps=False), wat(text))
    inst = Instance(module)
    mems = inst.memories
    mc = module_code(module, mems[0]._desc if mems else None)
    out = [len(mc.ctx.func_types)]
    buf, bodies = module.translation.wasm, module.translation.code.bodies
    for i, (start, end) in enumerate(bodies):
        code = translate_function(mc.ctx, i, buf, start, end, _ffi.interp_op_numbers())
        out += [code.nparams, code.nresults, code.nlocals, code.frame_cells, len(code.words),
                *code.words, len(code.positions), *code.positions]
    # the instance block (its global cells, in place), as 8-byte words
    block = b"" if inst._cells is None else bytes(inst._cells._buffer())
    block += b"\0" * (-len(block) % 8)
    out += [len(block) // 8, *memoryview(block).cast("Q")]
    out.append(mems[0].byte_len if mems else 0)
    out.append(len(calls))
    for name, args in calls:
        f = inst.exports[name]
        cells = [a & (0xFFFFFFFF if t in (ValType.I32, ValType.F32) else 0xFFFFFFFFFFFFFFFF)
                 for t, a in zip(f.ty.params, args)]
        try:
            stack = call_bits(inst, f.wasm_index, cells)
            status, results = _ffi.I_DONE, [stack[k] for k in range(len(f.ty.results))]
        except Trap as trap:
            status, results = STATUS[trap.code], []
        out += [f.wasm_index, len(cells), *cells, status, len(results), *results]
    path.write_text(" ".join(str(v) for v in out))
    inst.close()


def _bits(t, v):
    from runtime.values import to_bits
    return to_bits(t, v)


def test_numeric_code_under_sanitizers(harness, tmp_path):
    from wasmenv.opcodes import BY_NAME
    from runtime.translate import NUMERIC
    calls = []
    for name in sorted(NUMERIC):
        types = [ValType(t) for t in BY_NAME[name].sig[0]]
        for args in itertools.islice(itertools.product(*[EDGE[t] for t in types]), 60):
            calls.append((name, [_bits(t, a) for t, a in zip(types, args)]))
    path = tmp_path / "numeric.txt"
    _dump(_numeric_module(), calls, path)
    proc = subprocess.run([harness, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout == f"ok {len(calls)} calls, 0 bad\n", proc.stdout + proc.stderr
    assert "runtime error" not in proc.stderr


def test_control_and_memory_code_under_sanitizers(harness, tmp_path):
    rng = random.Random(5)
    calls = [("fib", [15]), ("fact", [20]), ("even", [301]), ("table", [2]), ("multi", [3, 4]),
             ("block_params", [4]), ("loop_params", [9]), ("br_out", [3]), ("unreachable", [1]),
             ("global", [7]), ("dead", [1]), ("ret_swap", [1, 2])]
    path = tmp_path / "control.txt"
    _dump(CONTROL, calls, path)
    mem_calls = [("fill", [60000]), ("sum", [0, 30000]), ("copy", [100, 0, 5000]), ("sum", [65530, 10]),
                 ("copy", [65000, 0, 1000])]
    mem_calls += [("peek", [rng.choice([0, 65524, 65525, 65533, 2 ** 32 - 1])]) for _ in range(20)]
    mpath = tmp_path / "memory.txt"
    _dump(MEMORY, mem_calls, mpath)
    for p, n in ((path, len(calls)), (mpath, len(mem_calls))):
        proc = subprocess.run([harness, str(p)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and proc.stdout == f"ok {n} calls, 0 bad\n", proc.stdout + proc.stderr
        assert "runtime error" not in proc.stderr
