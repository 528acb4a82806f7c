"""Table and reference instructions in the interpreter (c_src/wenv_interp_table.inc,
runtime/_translate_tables.py) against wasmtime-py: table.get/set/size/grow/fill/copy/init,
elem.drop, ref.null/is_null/func/as_non_null, br_on_null/br_on_non_null, typed select,
reference locals/params/results, call_indirect."""
import pytest
import wasmtime as wt

import runtime
from harness.execution import ours, theirs
from runtime import Engine, Instance, Module, Trap, TrapCode
from tests.helpers import wat

pytestmark = pytest.mark.oracle


def _wt_engine():
    cfg = wt.Config()
    cfg.wasm_reference_types = True
    cfg.wasm_function_references = True
    cfg.wasm_multi_memory = True
    cfg.wasm_memory64 = True
    cfg.wasm_bulk_memory = True
    return wt.Engine(cfg)


WT = _wt_engine()


class Both:
    """One module instantiated here and in wasmtime-py (no imports)."""

    def __init__(self, text, engine=None):
        self.wasm = wat(text)
        self.inst = Instance(Module(engine or Engine(), self.wasm))
        self.store = wt.Store(WT)
        self.wt = wt.Instance(self.store, wt.Module(WT, self.wasm), [])
        self.wt_exports = self.wt.exports(self.store)

    def same(self, name, *args):
        a = ours(self.inst.exports[name], args)
        b = theirs(self.store, self.wt_exports[name], args)
        assert a == b, f"{name}{args}: ours {a}, wasmtime {b}"
        return a


TABLE_OPS = """(module
  (type $v (func (result i32)))
  (table $t 4 10 funcref)
  (table $e 2 externref)
  (func $one (type $v) (i32.const 1)) (func $two (type $v) (i32.const 2))
  (func $three (type $v) (i32.const 3))
  (elem (table $t) (i32.const 0) func $one $two)
  (elem $p func $three $two $one)
  (elem $d declare func $three)
  (func (export "size") (result i32) (table.size $t))
  (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $v) (local.get 0)))
  (func (export "grow") (param i32) (result i32) (table.grow $t (ref.func $three) (local.get 0)))
  (func (export "grow_null") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
  (func (export "set3") (param i32) (table.set $t (local.get 0) (ref.func $three)))
  (func (export "set_null") (param i32) (table.set $t (local.get 0) (ref.null func)))
  (func (export "fill") (param i32 i32) (table.fill $t (local.get 0) (ref.func $two) (local.get 1)))
  (func (export "copy") (param i32 i32 i32) (table.copy $t $t (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32) (table.init $t $p (local.get 0) (local.get 1) (local.get 2)))
  (func (export "drop") (elem.drop $p))
  (func (export "init_active") (param i32) (table.init $t 0 (local.get 0) (i32.const 0) (i32.const 0)))
  (func (export "ext_set") (param i32 externref) (table.set $e (local.get 0) (local.get 1)))
  (func (export "ext_get") (param i32) (result externref) (table.get $e (local.get 0)))
  (func (export "get") (param i32) (result funcref) (table.get $t (local.get 0)))
  (func (export "ref_func_null") (result i32) (ref.is_null (ref.func $three)))
  (func (export "pick") (param i32) (result funcref)
    (select (result funcref) (ref.func $one) (ref.null func) (local.get 0)))
)"""


def test_table_ops_against_wasmtime():
    from runtime.layout import layout_of
    b = Both(TABLE_OPS)
    # table.init of $p (function indices) writes in one C call (Table._write_funcs)
    assert set(layout_of(b.inst.module).passive_elements) == {1}
    for k in range(5):
        b.same("is_null", k)
        b.same("call", k)  # 0, 1 run; 2, 3 null; 4 out of bounds
    b.same("size")
    b.same("ref_func_null")
    for k in (0, 1):
        assert b.same("is_null", k).value == 0
    b.same("set3", 2), b.same("call", 2), b.same("set3", 4)
    b.same("set_null", 0), b.same("call", 0)
    b.same("fill", 1, 2), b.same("call", 1), b.same("call", 2), b.same("fill", 3, 2)
    b.same("fill", 4, 0)
    b.same("copy", 0, 1, 3), [b.same("call", k) for k in range(4)]
    b.same("copy", 1, 0, 4)
    b.same("init", 0, 0, 3), [b.same("call", k) for k in range(4)]
    b.same("init", 2, 1, 3)
    b.same("init_active", 0), b.same("init_active", 4)
    b.same("drop"), b.same("init", 0, 0, 0), b.same("init", 0, 0, 1)
    b.same("grow", 2), b.same("call", 5), b.same("grow_null", 1), b.same("call", 6)
    b.same("grow", 10), b.same("size")
    b.same("ext_get", 0), b.same("ext_set", 2, None)
    b.same("pick", 0)


def test_results_are_the_instances_references():
    b = Both(TABLE_OPS)
    e = b.inst.exports
    obj = {"any": "object"}
    e["ext_set"](1, obj)
    assert e["ext_get"](1) is obj and e["ext_get"](0) is None
    f = e["get"](0)
    assert f.wasm_index == 0 and f is b.inst.exports["get"](0) and f() == 1
    assert e["pick"](1)() == 1 and e["pick"](0) is None
    assert e["get"](2) is None


def test_call_indirect_traps():
    b = Both("""(module (type $v (func (result i32))) (type $w (func (param i32) (result i32)))
      (table 3 funcref) (func $f (type $v) (i32.const 7)) (func $g (type $w) (local.get 0))
      (elem (i32.const 0) $f $g)
      (func (export "v") (param i32) (result i32) (call_indirect (type $v) (local.get 0)))
      (func (export "w") (param i32 i32) (result i32)
        (call_indirect (type $w) (local.get 1) (local.get 0))))""")
    assert b.same("v", 0).value == 7
    assert b.same("v", 1).value == "BAD_SIGNATURE"
    assert b.same("v", 2).value == "INDIRECT_CALL_TO_NULL"
    assert b.same("v", 3).value == "TABLE_OUT_OF_BOUNDS"
    assert b.same("w", 1, 42).value == 42


def test_call_indirect_resolves_per_instance():
    """Two instances of one module: each call_indirect runs its own instance's function
    (over its own global), the lazily initialized element resolved in each."""
    m = Module(Engine(), wat("""(module (type $v (func (result i32))) (global $g (mut i32) (i32.const 0))
      (table 2 funcref) (func $get (type $v) (global.get $g))
      (func (export "set") (param i32) (global.set $g (local.get 0)))
      (elem (i32.const 1) $get)
      (func (export "call") (result i32) (call_indirect (type $v) (i32.const 1))))"""))
    a, b = Instance(m), Instance(m)
    a.exports["set"](5)
    b.exports["set"](9)
    assert (a.exports["call"](), b.exports["call"]()) == (5, 9)


def test_typed_function_references():
    b = Both("""(module (type $v (func (result i32))) (func $f (type $v) (i32.const 3))
      (elem declare func $f)
      (func (export "as_non_null") (param i32) (result i32)
        (ref.is_null (ref.as_non_null (select (result funcref) (ref.func $f) (ref.null func) (local.get 0)))))
      (func (export "on_null") (param i32) (result i32)
        (block $b
          (drop (br_on_null $b (select (result funcref) (ref.func $f) (ref.null func) (local.get 0))))
          (return (i32.const 10)))
        (i32.const 20))
      (func (export "on_non_null") (param i32) (result i32)
        (block $b (result funcref)
          (br_on_non_null $b (select (result funcref) (ref.func $f) (ref.null func) (local.get 0)))
          (return (i32.const -1)))
        (ref.is_null))
      (func (export "local") (result i32) (local $r (ref null $v)) (ref.is_null (local.get $r))))""")
    assert b.same("as_non_null", 1).value == 0
    assert b.same("as_non_null", 0).value == "NULL_REFERENCE"
    assert (b.same("on_null", 0).value, b.same("on_null", 1).value) == (20, 10)
    assert (b.same("on_non_null", 0).value, b.same("on_non_null", 1).value) == (-1, 0)
    b.same("local")


def test_traps_report_table_codes():
    b = Both(TABLE_OPS)
    with pytest.raises(Trap) as info:
        b.inst.exports["is_null"](4)
    assert info.value.code is TrapCode.TABLE_OUT_OF_BOUNDS


CROSS_A = """(module
  (global $g (mut i32) (i32.const 100))
  (func $f (export "f") (param i32) (result i32)
    (global.set $g (i32.add (global.get $g) (local.get 0))) (global.get $g))
  (table (export "ta") 2 funcref) (elem (i32.const 0) $f))"""

CROSS_B = """(module
  (type $s (func (param i32) (result i32))) (type $v (func (result i32)))
  (import "env" "h" (func $h (param i32) (result i32)))
  (import "a" "f" (func $af (param i32) (result i32)))
  (import "a" "ta" (table $ta 2 funcref))
  (table $t 4 funcref) (elem (table $t) (i32.const 0) func $h $af)
  (func (export "call") (param i32 i32) (result i32) (call_indirect $t (type $s) (local.get 1) (local.get 0)))
  (func (export "call_a") (param i32 i32) (result i32) (call_indirect $ta (type $s) (local.get 1) (local.get 0)))
  (func (export "tail") (param i32 i32) (result i32) (return_call_indirect $t (type $s) (local.get 1) (local.get 0)))
  (func (export "bad") (result i32) (call_indirect $t (type $v) (i32.const 1)))
  (func (export "rf") (result funcref) (ref.func $af)))"""


def test_call_indirect_of_a_host_function_and_another_instance_as_wasmtime():
    """A table holding an imported host function and another instance's function (lazy
    elements of the importer), and the other instance's own table: each runs in its own
    instance (its global), null/out of bounds/bad signature trap as in wasmtime-py."""
    cfg = wt.Config()
    cfg.wasm_reference_types = True
    cfg.wasm_tail_call = True
    wt_engine = wt.Engine(cfg)
    store = wt.Store(wt_engine)
    wa = wt.Instance(store, wt.Module(wt_engine, wat(CROSS_A)), [])
    wa_exports = wa.exports(store)
    wt_host = wt.Func(store, wt.FuncType([wt.ValType.i32()], [wt.ValType.i32()]), lambda x: x * 2)
    wb = wt.Instance(store, wt.Module(wt_engine, wat(CROSS_B)),
                     [wt_host, wa_exports["f"], wa_exports["ta"]]).exports(store)

    a = Instance(Module(Engine(), wat(CROSS_A)))
    mb = Module(Engine(), wat(CROSS_B))
    host = runtime.Func(mb.imports[0].type, lambda x: x * 2)
    b = Instance(mb, [host, a.exports["f"], a.exports["ta"]])
    cases = [("call", 0, 21), ("call", 1, 5), ("call", 1, 7), ("tail", 0, 4), ("tail", 1, 1),
             ("call_a", 0, 3), ("call", 2, 0), ("call", 4, 0), ("call_a", 1, 0), ("bad",)]
    results = []
    for name, *args in cases:
        ours_ = ours(b.exports[name], tuple(args))
        theirs_ = theirs(store, wb[name], tuple(args))
        assert ours_ == theirs_, f"{name}{args}: ours {ours_}, wasmtime {theirs_}"
        results.append(ours_)
    assert [r.value for r in results[:6]] == [42, 105, 112, 8, 113, 116]
    assert [r.kind for r in results[6:]] == ["trap"] * 4
    assert a.exports["f"](0) == wa_exports["f"](store, 0) == 100 + 5 + 7 + 1 + 3
    # The element, ref.func and the import are one record: the same Func comes back.
    cell = runtime.refs.cell_of_func
    assert cell(a.exports["f"]) == cell(b.tables[1].get(1)) == cell(a.exports["ta"].get(0)) \
        == cell(b.exports["rf"]()) != 0
    assert b.tables[1].get(0) is host
    with pytest.raises(Trap) as info:
        b.exports["call"](2, 0)
    assert info.value.code is TrapCode.INDIRECT_CALL_TO_NULL
    with pytest.raises(Trap) as info:
        b.exports["bad"]()
    assert info.value.code is TrapCode.BAD_SIGNATURE


def test_table_grow_from_wasm_obeys_the_store_limit_as_wasmtime():
    text = wat("""(module (table (export "t") 1 funcref)
      (func (export "grow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))""")
    store = runtime.Store(Engine())
    store.set_limits(table_elements=4)
    inst = Instance(Module(store.engine, text), store=store)
    wt_store = wt.Store(WT)
    wt_store.set_limits(table_elements=4)
    wt_grow = wt.Instance(wt_store, wt.Module(WT, text), []).exports(wt_store)["grow"]
    for delta in (1, 5, 2, 1, 0):
        assert inst.exports["grow"](delta) == wt_grow(wt_store, delta)
    assert inst.exports["t"].size == 4


def test_table64_against_wasmtime():
    b = Both("""(module (table $t i64 2 10 funcref) (func $f (result i32) (i32.const 9))
      (elem (table $t) (i64.const 1) func $f)
      (func (export "size") (result i64) (table.size $t))
      (func (export "grow") (param i64) (result i64) (table.grow $t (ref.null func) (local.get 0)))
      (func (export "is_null") (param i64) (result i32) (ref.is_null (table.get $t (local.get 0))))
      (func (export "fill") (param i64 i64) (table.fill $t (local.get 0) (ref.func $f) (local.get 1)))
      (func (export "call") (param i64) (result i32) (call_indirect $t (result i32) (local.get 0))))""")
    for k in (0, 1, 2, -1, 1 << 32):
        b.same("is_null", k)
        b.same("call", k)
    b.same("grow", 3), b.same("size"), b.same("fill", 2, 3), b.same("call", 4), b.same("fill", 4, 2)
    b.same("grow", 20), b.same("grow", 1 << 40), b.same("size")


def test_reference_globals_in_wasm_code():
    b = Both("""(module (type $v (func (result i32))) (func $f (type $v) (i32.const 4))
      (global $g (mut funcref) (ref.null func)) (global $e (mut externref) (ref.null extern))
      (global $k funcref (ref.func $f))
      (table 1 funcref)
      (func (export "set") (global.set $g (global.get $k)))
      (func (export "is_null") (result i32) (ref.is_null (global.get $g)))
      (func (export "call") (result i32) (table.set (i32.const 0) (global.get $g))
        (call_indirect (type $v) (i32.const 0)))
      (func (export "ext") (param externref) (result externref) (global.get $e) (global.set $e (local.get 0)))
      (export "g" (global $g)))""")
    assert b.same("is_null").value == 1
    assert b.same("call").value == "INDIRECT_CALL_TO_NULL"
    b.same("set")
    assert b.same("is_null").value == 0 and b.same("call").value == 4
    e = b.inst.exports
    assert e["g"].value.wasm_index == 0  # the write-back: a Func again
    obj = object()
    assert e["ext"](obj) is None and e["ext"]("next") is obj


def test_copy_and_overlap_of_uninitialized_elements():
    """table.copy before any read: each uninitialized source resolves to its own index's
    function, in either overlap direction."""
    for args in [(1, 0, 3), (0, 1, 3), (2, 0, 2)]:
        b = Both(TABLE_OPS.replace("$one $two)", "$one $two $three $one)"))
        b.same("copy", *args)
        for k in range(4):
            b.same("call", k)


SIDE_MODULE = """(module
  (import "env" "memory" (memory 1)) (import "env" "__indirect_function_table" (table 2 funcref))
  (import "env" "__table_base" (global $base i32)) (import "env" "twice" (func $twice (param i32) (result i32)))
  (type $v (func (param i32) (result i32)))
  (func $load (export "load") (type $v) (i32.load (local.get 0)))
  (func $store (type $v) (i32.store (local.get 0) (i32.const 7)) (call $twice (local.get 0)))
  (elem (global.get $base) $twice $load $store))"""
SIDE_CALLER = """(module (import "env" "__indirect_function_table" (table 2 funcref))
  (type $v (func (param i32) (result i32)))
  (func (export "call") (param i32 i32) (result i32) (call_indirect (type $v) (local.get 1) (local.get 0))))"""


def test_element_segment_into_an_imported_table_as_wasmtime():
    """An Emscripten side module's shape: its segment writes an imported host function and
    its own functions into the imported table (no Func objects: refs.FuncAt); another
    module calls them through it, as in wasmtime-py, also once the side instance is gone
    (the table keeps it, and the memory its code runs on)."""
    store = wt.Store(WT)
    wt_mem = wt.Memory(store, wt.MemoryType(wt.Limits(1, None)))
    wt_table = wt.Table(store, wt.TableType(wt.ValType.funcref(), wt.Limits(4, None)), None)
    wt_base = wt.Global(store, wt.GlobalType(wt.ValType.i32(), False), 1)
    wt_twice = wt.Func(store, wt.FuncType([wt.ValType.i32()], [wt.ValType.i32()]), lambda x: 2 * x)
    wt.Instance(store, wt.Module(WT, wat(SIDE_MODULE)), [wt_mem, wt_table, wt_base, wt_twice])
    wt_call = wt.Instance(store, wt.Module(WT, wat(SIDE_CALLER)), [wt_table]).exports(store)["call"]

    engine = Engine()
    memory, table = runtime.Memory.new(engine, 1), runtime.Table.new(engine, "funcref", 4)
    base = runtime.Global.new(engine, "i32", 1)
    side = Module(engine, wat(SIDE_MODULE))
    twice = runtime.Func(side.imports[3].type, lambda x: 2 * x)
    Instance(side, [memory, table, base, twice])
    call = Instance(Module(engine, wat(SIDE_CALLER)), [table]).exports["call"]
    import gc
    gc.collect()  # the side instance: only the table's elements name it now
    cases = [(1, 21), (3, 64), (2, 64), (0, 0), (2, 70000)]
    results = [ours(call, args) for args in cases]
    assert results == [theirs(store, wt_call, args) for args in cases]
    assert [r.value for r in results[:3]] == [42, 128, 7]
    assert [r.value for r in results[3:]] == ["INDIRECT_CALL_TO_NULL", "MEMORY_OUT_OF_BOUNDS"]
    assert table.get(1) is twice and table.get(2).wasm_index == 1 and table.get(2)(64) == 7


def test_side_module_instances_share_links_only_with_the_same_imports():
    """Instances of a module defining no memory or table, linked to the very same imports,
    share one array of memories, tables and imported functions (runtime/interp.py); an
    instance linked to other objects gets its own, and each calls its own imports."""
    engine = Engine()
    side = Module(engine, wat(SIDE_MODULE))
    caller = Module(engine, wat(SIDE_CALLER))
    memory, base = runtime.Memory.new(engine, 1), runtime.Global.new(engine, "i32", 1)
    ty = side.imports[3].type
    runs = []
    for factor in (2, 2, 3):
        if factor == 3 or not runs:
            table = runtime.Table.new(engine, "funcref", 4)
            host = runtime.Func(ty, lambda x, k=factor: k * x)
        instance = Instance(side, [memory, table, base, host])
        call = Instance(caller, [table]).exports["call"]
        runs.append((instance, call(1, 21), call(3, 64)))
    vms = [runtime.interp.site_of(inst).vm for inst, _, _ in runs]
    assert vms[0].imports == vms[1].imports != vms[2].imports
    assert vms[0].funcrefs != vms[1].funcrefs
    assert [r[1:] for r in runs] == [(42, 128), (42, 128), (63, 192)]
