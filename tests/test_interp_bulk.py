"""Bulk memory, multi-memory and memory64 in the interpreter against wasmtime-py:
memory.init/data.drop, memory.copy/fill within and across memories, loads and stores on a
memory other than 0 and on a 64-bit memory (checked accesses), with their traps."""
import pytest

from runtime import Engine
from tests.test_interp_tables import Both

pytestmark = pytest.mark.oracle

BULK = """(module
  (memory $a (export "a") 1) (memory $b (export "b") 2)
  (memory $c (export "c") i64 1)
  (data $p "hello, world")
  (data $q "xyz")
  (data (memory $b) (i32.const 65530) "tail!!")
  (func (export "init") (param i32 i32 i32) (memory.init $p (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init_b") (param i32 i32 i32) (memory.init $b $q (local.get 0) (local.get 1) (local.get 2)))
  (func (export "drop") (data.drop $p))
  (func (export "load_a") (param i32) (result i32) (i32.load8_u $a (local.get 0)))
  (func (export "load_b") (param i32) (result i32) (i32.load $b offset=2 (local.get 0)))
  (func (export "store_b") (param i32 i32) (i32.store16 $b (local.get 0) (local.get 1)))
  (func (export "copy_ab") (param i32 i32 i32) (memory.copy $a $b (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy_ba") (param i32 i32 i32) (memory.copy $b $a (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill_b") (param i32 i32 i32) (memory.fill $b (local.get 0) (local.get 1) (local.get 2)))
  (func (export "size_b") (result i32) (memory.size $b))
  (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0)))
  (func (export "load64") (param i64) (result i64) (i64.load $c offset=1 (local.get 0)))
  (func (export "store64") (param i64 i64) (i64.store $c (local.get 0) (local.get 1)))
  (func (export "fill64") (param i64 i32 i64) (memory.fill $c (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy64") (param i64 i64 i64) (memory.copy $c $c (local.get 0) (local.get 1) (local.get 2)))
  (func (export "size64") (result i64) (memory.size $c))
)"""


@pytest.mark.parametrize("signals", [True, False])
def test_bulk_and_multi_memory_against_wasmtime(signals):
    b = Both(BULK, engine=Engine(signals_based_traps=signals))
    for args in [(0, 0, 5), (100, 7, 5), (65530, 0, 6), (65535, 0, 2), (0, 10, 3), (0, 12, 0),
                 (0, 13, 0), (65536, 0, 0), (65537, 0, 0)]:
        b.same("init", *args)
    for k in (0, 100, 104, 65530, 65535, 65536):
        b.same("load_a", k)
    for args in [(0, 0, 3), (131069, 0, 3), (131070, 0, 3), (5, 3, 1)]:
        b.same("init_b", *args)
    for k in (0, 65528, 131068, 131070, -1):
        b.same("load_b", k)
    b.same("store_b", 131070, 0x4142), b.same("store_b", 131071, 1)
    b.same("copy_ab", 200, 65530, 6), b.same("copy_ab", 65534, 65530, 6)
    b.same("copy_ba", 10, 100, 5), b.same("copy_ba", 131072, 0, 1), b.same("copy_ba", 131072, 0, 0)
    b.same("fill_b", 20, 0x5A, 10), b.same("fill_b", 131071, 1, 2)
    b.same("drop"), b.same("init", 0, 0, 0), b.same("init", 0, 0, 1), b.same("drop")
    b.same("size_b"), b.same("grow_b", 1), b.same("size_b"), b.same("load_b", 131070)
    b.same("store64", 8, 0x1122334455667788), b.same("load64", 7), b.same("load64", 65527)
    b.same("load64", 65528), b.same("load64", -1), b.same("store64", 65529, 1)
    b.same("fill64", 16, 0xAB, 8), b.same("load64", 15), b.same("fill64", 65530, 1, 7)
    b.same("copy64", 32, 8, 16), b.same("load64", 31), b.same("copy64", 0, 65530, 7)
    b.same("size64")
    for name in ("a", "b", "c"):  # every byte of every memory, as wasmtime has it
        mine, other = b.inst.exports[name], b.wt_exports[name]
        assert mine.byte_len == other.data_len(b.store)
        assert mine.read(0, mine.byte_len) == bytes(other.read(b.store, 0, other.data_len(b.store)))
