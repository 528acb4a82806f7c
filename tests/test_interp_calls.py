"""The interpreter's calls (runtime/interp.py): host functions, Caller, exceptions,
re-entrancy, calls across instances over the callee's globals and memory, tail calls,
call_ref, start functions; each against wasmtime-py where it has an answer."""
import gc
import os

import pytest
import wasmtime as wt

from runtime import Caller, Engine, Func, Instance, Linker, Module, Table, Trap, TrapCode
from tests.helpers import maps_and_fds, run_child, wat
from wasmenv import FuncType, ValType

I32, I64 = ValType.I32, ValType.I64
pytestmark = pytest.mark.oracle


def _wt_type(ft: FuncType) -> wt.FuncType:
    names = {I32: wt.ValType.i32(), I64: wt.ValType.i64(), ValType.F32: wt.ValType.f32(),
             ValType.F64: wt.ValType.f64()}
    return wt.FuncType([names[t] for t in ft.params], [names[t] for t in ft.results])


def _wt_instance(text, hosts):
    """A wasmtime-py instance of ``text`` whose imports are ``hosts``: (FuncType, fn, access_caller)."""
    store = wt.Store(wt.Engine())
    module = wt.Module(store.engine, wat(text))
    imports = [wt.Func(store, _wt_type(ft), fn, access_caller=ac) for ft, fn, ac in hosts]
    return store, wt.Instance(store, module, imports)


def _ours(text, hosts, engine=None):
    return Instance(Module(engine or Engine(), wat(text)),
                    [Func(ft, fn, access_caller=ac) for ft, fn, ac in hosts])


HOSTS_WAT = """(module
  (import "h" "add" (func $add (param i32 i64) (result i64)))
  (import "h" "pair" (func $pair (param i32) (result i32 i32)))
  (import "h" "log" (func $log (param i32)))
  (func (export "run") (param i32) (result i64)
    (call $log (local.get 0))
    (i64.add (call $add (local.get 0) (i64.const 1000))
             (i64.extend_i32_u (i32.sub (call $pair (local.get 0)))))))"""


def _hosts(log):
    return [(FuncType((I32, I64), (I64,)), lambda a, b: a * 3 + b, False),
            (FuncType((I32,), (I32, I32)), lambda a: (a + 10, a), False),
            (FuncType((I32,), ()), log.append, False)]


def test_host_imports_with_results_agree_with_wasmtime():
    ours_log, their_log = [], []
    ours = _ours(HOSTS_WAT, _hosts(ours_log))
    store, theirs = _wt_instance(HOSTS_WAT, _hosts(their_log))
    for x in (0, 5, -7, 2**31 - 1):
        assert ours.exports["run"](x) == theirs.exports(store)["run"](store, x)
    assert ours_log == their_log == [0, 5, -7, 2**31 - 1]


def test_host_result_of_the_wrong_type_raises_type_error():
    hosts = _hosts([])
    hosts[0] = (hosts[0][0], lambda a, b: "no", False)
    with pytest.raises(TypeError):
        _ours(HOSTS_WAT, hosts).exports["run"](1)


def test_host_function_without_results_returning_a_value_raises_type_error():
    """wasmtime-py refuses it too ("callback produced results when it shouldn't")."""
    hosts = _hosts([])
    hosts[2] = (hosts[2][0], lambda a: "unexpected", False)
    with pytest.raises(TypeError, match="must return None"):
        _ours(HOSTS_WAT, hosts).exports["run"](1)
    store = wt.Store()
    with pytest.raises(wt.WasmtimeError, match="produced results"):
        wt.Func(store, wt.FuncType([], []), lambda: "unexpected")(store)
    with pytest.raises(TypeError, match="must return None"):
        Func(Engine(), FuncType((), ()), lambda: "unexpected")()


CALL_ONE = """(module (import "h" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1))))"""


def test_host_exception_reaches_the_caller_unchanged():
    err = KeyError("from the host")

    def boom(x):
        raise err

    inst = _ours(CALL_ONE, [(FuncType((I32,), (I32,)), boom, False)])
    with pytest.raises(KeyError) as info:
        inst.exports["run"](1)
    assert info.value is err
    assert inst.exports["run"] is not None  # the instance is still usable afterwards
    store, theirs = _wt_instance(CALL_ONE, [(FuncType((I32,), (I32,)), boom, False)])
    with pytest.raises(KeyError) as info:
        theirs.exports(store)["run"](store, 1)
    assert info.value is err


def test_trap_raised_by_a_host_is_a_trap():
    def trap(x):
        raise Trap(TrapCode.UNREACHABLE)

    inst = _ours(CALL_ONE, [(FuncType((I32,), (I32,)), trap, False)])
    with pytest.raises(Trap) as info:
        inst.exports["run"](1)
    assert info.value.code is TrapCode.UNREACHABLE


CALLER_WAT = """(module (import "h" "poke" (func $poke (param i32)))
  (memory (export "memory") 1)
  (func (export "run") (param i32) (result i32)
    (i32.store (i32.const 16) (i32.const 0x01020304))
    (call $poke (local.get 0))
    (i32.load (i32.const 32))))"""


def test_caller_reaches_the_calling_instance_memory():
    kept = []

    def poke_ours(caller, n):
        assert isinstance(caller, Caller)
        mem = caller.get("memory")
        mem.write(32, bytes(mem.read(16, 4))[::-1] + bytes([n]))
        kept.append(caller)

    def poke_theirs(caller, n):
        mem = caller["memory"]
        data = mem.read(caller, 16, 20)
        mem.write(caller, data[::-1] + bytes([n]), 32)

    ft = FuncType((I32,), ())
    ours = _ours(CALLER_WAT, [(ft, poke_ours, True)])
    store, theirs = _wt_instance(CALLER_WAT, [(ft, poke_theirs, True)])
    assert ours.exports["run"](9) == theirs.exports(store)["run"](store, 9) == 0x04030201
    assert bytes(ours.exports["memory"].read(0, 64)) == \
        bytes(theirs.exports(store)["memory"].read(store, 0, 64))
    with pytest.raises(ValueError, match="no longer valid"):
        kept[0].get("memory")  # the host call returned


def test_linker_define_func_with_access_caller():
    linker = Linker(Engine())
    seen = []
    linker.define_func("h", "poke", FuncType((I32,), ()),
                       lambda caller, n: seen.append(caller["memory"].read(16, 4)), access_caller=True)
    inst = linker.instantiate(Module(linker.engine, wat(CALLER_WAT)))
    inst.exports["run"](1)
    assert bytes(seen[0]) == bytes.fromhex("04030201")


REENTER_WAT = """(module (import "h" "down" (func $down (param i32) (result i32)))
  (func $f (export "f") (param i32) (result i32) (local i32 i32)
    (local.set 1 (i32.mul (local.get 0) (i32.const 10)))
    (local.set 2 (i32.add (local.get 0) (i32.const 7)))
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 1))
      (else (i32.add (i32.add (local.get 1) (local.get 2))
                     (call $down (i32.sub (local.get 0) (i32.const 1))))))))"""


def test_reentrancy_host_wasm_host_wasm_keeps_the_outer_stacks():
    box = {}
    ft = FuncType((I32,), (I32,))
    ours = _ours(REENTER_WAT, [(ft, lambda x: box["ours"](x) * 2 % 1000, False)])
    box["ours"] = ours.exports["f"]
    store, theirs = _wt_instance(REENTER_WAT, [(ft, lambda x: box["theirs"](store, x) * 2 % 1000, False)])
    box["theirs"] = theirs.exports(store)["f"]
    for n in (0, 1, 4, 30):
        assert ours.exports["f"](n) == box["theirs"](store, n)


EXPORTER = """(module (memory (export "mem") 1)
  (global $g (export "g") (mut i32) (i32.const 5))
  (func (export "bump") (param i32) (result i32)
    (global.set $g (i32.add (global.get $g) (local.get 0)))
    (i32.store (i32.mul (global.get $g) (i32.const 4)) (global.get $g))
    (global.get $g)))"""
IMPORTER = """(module (import "a" "bump" (func $bump (param i32) (result i32)))
  (import "a" "g" (global $g (mut i32)))
  (memory (export "mine") 1)
  (func (export "twice") (param i32) (result i32)
    (i32.store (i32.const 0) (call $bump (local.get 0)))
    (drop (call $bump (local.get 0)))
    (global.set $g (i32.add (global.get $g) (i32.const 100)))
    (global.get $g)))"""


def test_cross_instance_calls_run_over_the_callee_globals_and_memory(engine):
    a = Instance(Module(engine, wat(EXPORTER)))
    b = Instance(Module(engine, wat(IMPORTER)), [a.exports["bump"], a.exports["g"]])
    store = wt.Store(wt.Engine())
    ta = wt.Instance(store, wt.Module(store.engine, wat(EXPORTER)), [])
    te = ta.exports(store)
    tb = wt.Instance(store, wt.Module(store.engine, wat(IMPORTER)), [te["bump"], te["g"]])
    for x in (1, 3):
        assert b.exports["twice"](x) == tb.exports(store)["twice"](store, x)
        assert a.exports["g"].value == te["g"].value(store)  # wasm's writes, read from Python
    assert bytes(a.exports["mem"].read(0, 1024)) == bytes(te["mem"].read(store, 0, 1024))
    assert bytes(b.exports["mine"].read(0, 16)) == bytes(tb.exports(store)["mine"].read(store, 0, 16))
    a.exports["g"].value = 1000  # and Python's writes are what the next call reads
    assert a.exports["bump"](1) == 1001


def test_two_calls_see_each_other_global_writes():
    inst = Instance(Module(Engine(), wat(EXPORTER)))
    assert [inst.exports["bump"](1) for _ in range(3)] == [6, 7, 8]


TAIL_WAT = """(module
  (func $count (export "count") (param i64 i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0)) (then (local.get 1))
      (else (return_call $count (i64.sub (local.get 0) (i64.const 1))
                                (i64.add (local.get 1) (i64.const 2))))))
  (type $t (func (param i64 i64) (result i64)))
  (elem declare func $viaref)
  (func $viaref (export "viaref") (param i64 i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0)) (then (local.get 1))
      (else (return_call_ref $t (i64.sub (local.get 0) (i64.const 1))
                                (i64.add (local.get 1) (i64.const 1)) (ref.func $viaref))))))"""


def test_tail_recursion_a_million_deep_runs_in_constant_frames():
    inst = Instance(Module(Engine(), wat(TAIL_WAT)))
    assert inst.exports["count"](1_000_000, 0) == 2_000_000
    assert inst.exports["viaref"](1_000_000, 5) == 1_000_005
    cfg = wt.Config()
    cfg.wasm_tail_call = True
    cfg.wasm_function_references = True
    store = wt.Store(wt.Engine(cfg))
    theirs = wt.Instance(store, wt.Module(store.engine, wat(TAIL_WAT)), []).exports(store)
    assert theirs["count"](store, 1000, 7) == inst.exports["count"](1000, 7)


def test_plain_recursion_a_million_deep_is_a_stack_overflow_not_a_crash():
    inst = Instance(Module(Engine(), wat("""(module
      (func $r (export "r") (param i64) (result i64)
        (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 0))
          (else (i64.add (i64.const 1) (call $r (i64.sub (local.get 0) (i64.const 1))))))))""")))
    with pytest.raises(Trap) as info:
        inst.exports["r"](1_000_000)
    assert info.value.code is TrapCode.STACK_OVERFLOW


CALL_REF_WAT = """(module
  (type $t (func (param i32) (result i32)))
  (import "h" "twice" (func $twice (type $t)))
  (elem declare func $inc $twice)
  (func $inc (export "inc") (type $t) (i32.add (local.get 0) (i32.const 1)))
  (func (export "apply") (param funcref i32) (result i32)
    (call_ref $t (local.get 1) (ref.cast (ref null $t) (local.get 0))))
  (func (export "pick") (param i32) (result funcref)
    (if (result funcref) (local.get 0) (then (ref.func $inc)) (else (ref.func $twice)))))"""


def test_call_ref_of_wasm_host_and_null_references():
    ft = FuncType((I32,), (I32,))
    inst = _ours(CALL_REF_WAT.replace("(ref.cast (ref null $t) (local.get 0))", "(local.get 0)")
                 .replace("(param funcref i32)", "(param (ref null $t) i32)"),
                 [(ft, lambda x: 2 * x, False)])
    inc, twice = inst.exports["pick"](1), inst.exports["pick"](0)
    assert inc is inst.exports["inc"]
    assert twice.type == ft
    assert inst.exports["apply"](inc, 41) == 42
    assert inst.exports["apply"](twice, 21) == 42
    with pytest.raises(Trap) as info:
        inst.exports["apply"](None, 1)
    assert info.value.code is TrapCode.NULL_REFERENCE


def test_func_call_checks_arity_and_types_before_running():
    inst = Instance(Module(Engine(), wat(EXPORTER)))
    bump = inst.exports["bump"]
    assert bump.type == FuncType((I32,), (I32,))
    for bad in ((), (1, 2), ("x",), (1.5,), (2**32,)):
        with pytest.raises((TypeError, ValueError)):
            bump(*bad)
    assert inst.exports["g"].value == 5  # nothing ran


def test_externref_and_multi_value_round_trip():
    inst = Instance(Module(Engine(), wat("""(module
      (func (export "swap") (param externref i64 f64) (result f64 i64 externref)
        (local.get 2) (local.get 1) (local.get 0)))""")))
    obj = object()
    nan = float("nan")
    out = inst.exports["swap"](obj, -5, 2.5)
    assert out == (2.5, -5, obj) and out[2] is obj
    assert inst.exports["swap"](None, 0, nan)[2] is None


START_WAT = """(module (import "h" "seed" (func $seed (param i32) (result i32)))
  (memory (export "mem") 1)
  (global $g (mut i32) (i32.const 3))
  (func $start (local $i i32)
    (loop $l
      (i32.store8 (local.get $i) (call $seed (i32.add (local.get $i) (global.get $g))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 300)))))
  (start $start))"""


def test_start_function_memory_effects_match_wasmtime(engine):
    ft = FuncType((I32,), (I32,))
    fn = (ft, lambda x: (x * 37) & 0xFF, False)
    ours = _ours(START_WAT, [fn], engine)
    store, theirs = _wt_instance(START_WAT, [fn])
    assert bytes(ours.exports["mem"].read(0, 65536)) == \
        bytes(theirs.exports(store)["mem"].read(store, 0, 65536))


def test_trapping_start_releases_everything(engine):
    text = """(module (memory 1) (data (i32.const 0) "x") (func $s unreachable) (start $s))"""
    module = Module(engine, wat(text))
    before = maps_and_fds(collect=True)
    stats = getattr(engine.allocator, "stats", None)
    stats_before = stats() if callable(stats) else None
    for _ in range(3):
        with pytest.raises(Trap) as info:
            Instance(module)
        assert info.value.code is TrapCode.UNREACHABLE
    gc.collect()
    assert maps_and_fds(collect=True) == before
    if stats_before is not None:
        assert stats() == stats_before


def test_a_fault_inside_a_host_call_is_not_a_wasm_trap():
    """Inside a host call the thread is not executing wasm: a fault in the calling
    instance's guard pages there crashes, as any fault outside wasm does."""
    proc = run_child("""
        import ctypes
        from runtime import Engine, Func, Instance, Module
        from wasmenv import FuncType
        from tests.helpers import wat
        inst = Instance(Module(Engine(), wat('''(module (import "h" "f" (func $f))
          (memory (export "mem") 1)
          (func (export "run") (result i32) (call $f) (i32.load (i32.const 70000))))''')),
          [Func(FuncType((), ()), lambda: print("host", flush=True) or
                ctypes.string_at(inst.exports["mem"]._desc.base + 65536 + 4096, 1))])
        try:
            inst.exports["run"]()
        except Exception as e:
            print("caught", type(e).__name__, flush=True)
        """)
    assert "host" in proc.stdout
    assert "caught" not in proc.stdout
    assert proc.returncode != 0


def test_an_instance_and_its_module_go_in_one_collection_after_calls():
    """The interpreter state of an instance (runtime/interp.py's registry entry, reachable
    from the registry while the instance lives) keeps nothing Python alive: a dropped
    instance in a reference cycle and its module are both freed by one collection."""
    import weakref
    module = Module(Engine(), wat("""(module (memory (export "mem") 1)
      (func (export "f") (result i32) (i32.const 7)))"""))
    instance = Instance(module)
    assert instance.exports["f"]() == 7
    instance.exports["mem"].write(0, b"x")  # a Memory view: a cycle with its instance
    refs = weakref.ref(instance), weakref.ref(module)
    del instance, module
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_an_instances_host_imports_get_their_native_side_together_and_give_it_back():
    """Linking an instance makes the native side of all its host imports at once (one
    allocation they share); each keeps working through call_ref/tables after the others
    are gone, and a Func that is gone leaves no registry entry behind."""
    from runtime.func import _HOSTS
    log = []
    before = len(_HOSTS)
    inst = _ours(HOSTS_WAT, _hosts(log))
    assert inst.exports["run"](5) == 3 * 5 + 1000 + 10 and log == [5]
    natives = [f._native for f in inst._imported_funcs]
    assert len(natives) == 3 and len({id(n[1]) for n in natives}) == 1  # one allocation
    assert len({n[2] for n in natives}) == 3 and len(_HOSTS) == before + 3
    fresh = Func(FuncType((), (I32,)), lambda: 42)
    ref, vm = fresh._native_ref()  # alone: its own allocation
    assert vm is None and fresh._native[1] is not natives[0][1]
    inst.close()
    del inst, natives, ref
    gc.collect()
    assert len(_HOSTS) == before + 1
    del fresh
    gc.collect()
    assert len(_HOSTS) == before


def test_a_func_refused_by_its_constructor_leaves_nothing_for_its_finalizer():
    """Func(ty, not_callable) raises TypeError; collecting the half-built object raises
    nothing more (an unraisable exception in __del__ fails the test: pytest.ini)."""
    with pytest.raises(TypeError, match="callable"):
        Func(FuncType((), ()), 3)
    with pytest.raises(TypeError, match="FuncType"):
        Func("not a type", lambda: None)
    gc.collect()


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads /proc/self/smaps")
def test_funcref_records_nobody_made_cost_no_resident_memory():
    """An instance state larger than a page (here 2,000 escaping functions: 47 KiB of
    funcref records) is its own mapping of fresh zero pages: a call that makes one record
    leaves the others non-resident (calloc would clear them all)."""
    import psutil
    from runtime import _ffi
    from runtime.interp import site_of
    n = 2000
    text = ("(module (memory 1) (table 1 funcref) (elem declare func"
            + "".join(f" {k}" for k in range(n)) + ")"
            + " (func (result i32) (i32.const 5))" * n
            + " (func (export \"run\") (result i32) (call_indirect (result i32) (i32.const 0)))"
            + " (func (export \"set\") (table.set (i32.const 0) (ref.func 7))))")
    i = Instance(Module(Engine(), wat(text)))
    i.exports["set"]()
    assert i.exports["run"]() == 5
    vm = _ffi.address(site_of(i).vm)
    maps = [m for m in psutil.Process().memory_maps(grouped=False)
            if int(m.addr.split("-")[0], 16) <= vm < int(m.addr.split("-")[1], 16)]
    lo, hi = (int(x, 16) for x in maps[0].addr.split("-"))
    assert hi - lo >= n * 24 and maps[0].rss <= 2 * _ffi.PAGE_SIZE  # the head and one record's page
    i.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads /proc/self/smaps")
def test_an_instance_state_whose_records_are_made_at_once_is_one_heap_allocation():
    """When instantiation makes the funcref records anyway (an eager segment into an
    imported table names the functions), a mapping of their own would only round them
    up to whole pages: the state is one heap allocation."""
    import psutil
    from runtime import _ffi
    from runtime.interp import site_of
    from runtime.layout import layout_of
    n = 200
    text = ('(module (import "h" "t" (table 200 funcref)) (memory 1)'
            ' (elem (table 0) (i32.const 0) func' + "".join(f" {k}" for k in range(n)) + ")"
            + " (func (result i32) (i32.const 5))" * n + ")")
    engine = Engine()
    table = Table.new(engine, "funcref", 200)
    module = Module(engine, wat(text))
    i = Instance(module, {("h", "t"): table})
    assert layout_of(module).funcrefs_made_at_once == n and table.get(7) is not None
    vm = _ffi.address(site_of(i).vm)
    (mapping,) = [m for m in psutil.Process().memory_maps(grouped=False)
                  if int(m.addr.split("-")[0], 16) <= vm < int(m.addr.split("-")[1], 16)]
    lo, hi = (int(x, 16) for x in mapping.addr.split("-"))
    assert hi - lo > 64 * _ffi.PAGE_SIZE  # the heap (or an arena of it), not the state's own pages
    i.close()
    table.close()
