"""Store (runtime/store.py): fuel, epoch interruption, max_wasm_stack and limits, against
wasmtime-py where it defines the behaviour."""
import threading

import pytest
import wasmtime as wt

from runtime import (AllocationError, Engine, Instance, Linker, Module, Store, StoreError,
                     Trap, TrapCode, _ffi)
from runtime.interp import module_code
from runtime.translate import translate_function
from tests.helpers import wat

PROGRAM = wat('''(module
  (func $add1 (export "add1") (param i32) (result i32) local.get 0 i32.const 1 i32.add)
  (func (export "twice") (param i32) (result i32) local.get 0 call $add1 call $add1)
  (func (export "spin") (loop br 0))
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (loop $l
      local.get $i i32.const 1 i32.add local.set $i
      local.get $i local.get $n i32.lt_u br_if $l)
    local.get $i)
  (func $rec (export "rec") (param i32) (result i32)
    local.get 0 i32.eqz
    if (result i32) i32.const 0
    else local.get 0 i32.const 1 i32.sub call $rec i32.const 1 i32.add end))''')


def instance(engine, store=None):
    return Instance(Module(engine, PROGRAM), store=store)


# -- the store of an instance ---------------------------------------------------------------

def test_instance_without_a_store_gets_a_private_one():
    engine = Engine()
    a, b = instance(engine), instance(engine)
    assert isinstance(a.store, Store) and a.store is a.store
    assert a.store is not b.store and a.store.engine is engine
    assert a.exports["add1"](1) == 2


def test_instance_linker_and_instance_pre_take_a_store():
    engine = Engine()
    store = Store(engine)
    module = Module(engine, PROGRAM)
    linker = Linker(engine)
    made = [Instance(module, store=store), linker.instantiate(store, module),
            linker.instantiate_pre(module).instantiate(store)]
    assert all(i.store is store for i in made)
    assert linker.instantiate(module).store is not store  # wasmtime-less shape: private store


def test_closing_a_store_closes_its_live_instances_only():
    """wasmtime-py's Store.close(): what lives in the store is gone; other stores' instances
    are untouched; later use raises a clear error, never touches freed memory."""
    engine = Engine()
    module = Module(engine, wat('(module (memory (export "m") 1) (func (export "f") (result i32) i32.const 7))'))
    store, other = Store(engine), Store(engine)
    a, b = Instance(module, store=store), Instance(module, store=store)
    c = Instance(module, store=other)
    memory, f = a.exports["m"], a.exports["f"]
    b.close()  # closed before the store: fine
    store.close()
    assert a.closed and b.closed and store.closed and not c.closed
    with pytest.raises(ValueError, match="closed"):
        f()
    with pytest.raises(ValueError, match="closed"):
        memory.read(0, 1)
    assert c.exports["f"]() == 7
    assert store.limits is not None and "closed" in repr(store)
    store.close()  # idempotent


def test_a_closed_store_refuses_new_instances_and_counts_nothing():
    engine = Engine()
    module = Module(engine, PROGRAM)
    store = Store(engine)
    store.close()
    with pytest.raises(ValueError, match="store is closed"):
        Instance(module, store=store)
    with pytest.raises(ValueError, match="store is closed"):
        Linker(engine).instantiate_pre(module).instantiate(store)
    assert store._instances == 0 and store._admitted == {}


def test_store_as_a_context_manager_releases_its_externrefs():
    import gc
    import weakref
    engine = Engine()
    module = Module(engine, wat('(module (global (export "g") (mut externref) (ref.null extern)))'))

    class Payload:
        pass

    payload = Payload()
    alive = weakref.ref(payload)
    with Store(engine) as store:
        inst = Instance(module, store=store)
        inst.exports["g"].value = payload
        del payload
        gc.collect()
        assert alive() is not None  # held by the store's registry
    assert inst.closed
    gc.collect()
    assert alive() is None


def test_store_of_another_engine_or_not_a_store_is_refused():
    module = Module(Engine(), PROGRAM)
    with pytest.raises(ValueError, match="cross-`Engine`"):
        Instance(module, store=Store(Engine()))
    with pytest.raises(TypeError, match="runtime.Store"):
        Instance(module, store=object())
    with pytest.raises(TypeError):
        Store("engine")
    assert isinstance(Store().engine, Engine)


# -- fuel -------------------------------------------------------------------------------------

@pytest.mark.oracle
def test_fuel_errors_without_consume_fuel_as_wasmtime():
    store = Store(Engine())
    wt_store = wt.Store(wt.Engine())
    for ours, theirs in ((lambda: store.set_fuel(5), lambda: wt_store.set_fuel(5)),
                         (store.get_fuel, wt_store.get_fuel)):
        with pytest.raises(wt.WasmtimeError) as them:
            theirs()
        with pytest.raises(StoreError) as us:
            ours()
        assert str(us.value) == str(them.value)


def wt_fuel_instance():
    config = wt.Config()
    config.consume_fuel = True
    engine = wt.Engine(config)
    store = wt.Store(engine)
    return store, wt.Instance(store, wt.Module(engine, PROGRAM), []).exports(store)


@pytest.mark.oracle
@pytest.mark.parametrize("name,args,exact", [
    ("add1", (1,), True), ("twice", (5,), True), ("count", (1,), True), ("count", (10,), True),
    ("count", (1000,), True), ("rec", (0,), False), ("rec", (7,), False)])
def test_fuel_consumed_as_wasmtime_on_straight_code_and_loops(name, args, exact):
    """Exactly wasmtime's cost where a region (entry or loop header to the next check)
    has no forward branch; with if/else both arms are charged ahead, never less."""
    store = Store(Engine(consume_fuel=True))
    assert store.get_fuel() == 0  # a store starts with none, as wasmtime's
    inst = instance(store.engine, store)
    wt_store, wt_exports = wt_fuel_instance()
    store.set_fuel(100_000)
    wt_store.set_fuel(100_000)
    assert inst.exports[name](*args) == wt_exports[name](wt_store, *args)
    ours, theirs = 100_000 - store.get_fuel(), 100_000 - wt_store.get_fuel()
    assert ours == theirs if exact else ours > theirs


def test_out_of_fuel_traps_and_leaves_none():
    store = Store(Engine(consume_fuel=True))
    inst = instance(store.engine, store)
    with pytest.raises(Trap) as exc:
        inst.exports["add1"](1)  # no fuel set
    assert exc.value.code is TrapCode.OUT_OF_FUEL
    store.set_fuel(10_000)
    with pytest.raises(Trap) as exc:
        inst.exports["spin"]()
    assert exc.value.code is TrapCode.OUT_OF_FUEL and store.get_fuel() == 0
    store.set_fuel(4)
    assert inst.exports["add1"](1) == 2 and store.get_fuel() == 0
    with pytest.raises(Trap):
        inst.exports["add1"](1)


def test_fuel_is_the_store_of_the_function_called():
    engine = Engine(consume_fuel=True)
    a, b = Store(engine), Store(engine)
    ia, ib = instance(engine, a), instance(engine, b)
    a.set_fuel(100)
    b.set_fuel(100)
    ia.exports["add1"](1)
    assert (a.get_fuel(), b.get_fuel()) == (96, 100)
    ib.exports["count"](3)
    assert a.get_fuel() == 96 and b.get_fuel() < 100


def test_fuel_of_one_store_is_shared_by_threads():
    store = Store(Engine(consume_fuel=True))
    inst = instance(store.engine, store)
    store.set_fuel(1_000_000)
    inst.exports["count"](1000)
    per_call = 1_000_000 - store.get_fuel()
    store.set_fuel(1_000_000)
    threads = [threading.Thread(target=lambda: [inst.exports["count"](1000) for _ in range(25)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_fuel() == 1_000_000 - 100 * per_call


def op_names(engine, func_index):
    module = Module(engine, PROGRAM)
    mc = module_code(module)
    start, end = mc._bodies[func_index]
    opnums = _ffi.interp_op_numbers()
    names = {v: k for k, v in opnums.items()}
    code = translate_function(mc.ctx, func_index, mc._wasm, start, end, opnums)
    return [names[code.words[p]] for p in code.positions]


def test_code_has_checks_only_for_engines_that_need_them():
    count = 3
    plain = op_names(Engine(), count)
    assert "fuel" not in plain and "epoch" not in plain
    fuel = op_names(Engine(consume_fuel=True), count)
    assert fuel.count("fuel") == 3 and fuel[0] == "fuel" and "epoch" not in fuel  # entry, loop, after
    epoch = op_names(Engine(epoch_interruption=True), count)
    assert epoch.count("epoch") == 2 and epoch[0] == "epoch" and "fuel" not in epoch
    assert len(plain) == len(epoch) - 2 == len(fuel) - 3


# -- epochs -----------------------------------------------------------------------------------

def test_epoch_deadline_interrupts_an_infinite_loop_from_another_thread():
    engine = Engine(epoch_interruption=True)
    store = Store(engine)
    inst = instance(engine, store)
    store.set_epoch_deadline(1)
    started = threading.Event()

    def tick():
        started.wait()
        engine.increment_epoch()

    ticker = threading.Thread(target=tick)
    ticker.start()
    started.set()
    with pytest.raises(Trap) as exc:
        inst.exports["spin"]()
    ticker.join()
    assert exc.value.code is TrapCode.INTERRUPT and str(exc.value) == "interrupt"
    with pytest.raises(Trap):  # the deadline has passed: the next call traps at entry
        inst.exports["add1"](1)
    store.set_epoch_deadline(3)
    assert inst.exports["count"](1000) == 1000


def test_one_increment_interrupts_every_thread_of_the_store():
    engine = Engine(epoch_interruption=True)
    store = Store(engine)
    inst = instance(engine, store)
    other = instance(engine, Store(engine))  # another store: its own deadline
    store.set_epoch_deadline(1)
    other.store.set_epoch_deadline(1000)
    codes, running = [], threading.Barrier(4)

    def spin():
        running.wait()
        try:
            inst.exports["spin"]()
        except Trap as trap:
            codes.append(trap.code)

    threads = [threading.Thread(target=spin) for _ in range(3)]
    for t in threads:
        t.start()
    running.wait()
    engine.increment_epoch()
    for t in threads:
        t.join()
    assert codes == [TrapCode.INTERRUPT] * 3
    assert other.exports["count"](10) == 10


@pytest.mark.oracle
def test_default_deadline_traps_at_once_as_wasmtime():
    config = wt.Config()
    config.epoch_interruption = True
    wt_engine = wt.Engine(config)
    wt_store = wt.Store(wt_engine)
    wt_add1 = wt.Instance(wt_store, wt.Module(wt_engine, PROGRAM), []).exports(wt_store)["add1"]
    with pytest.raises(wt.Trap) as them:
        wt_add1(wt_store, 1)
    inst = instance(Engine(epoch_interruption=True))
    with pytest.raises(Trap) as us:
        inst.exports["add1"](1)
    assert them.value.trap_code.name == us.value.code.name == "INTERRUPT"


def test_epoch_without_epoch_interruption_does_nothing():
    engine = Engine()
    inst = instance(engine, Store(engine))
    inst.store.set_epoch_deadline(0)
    engine.increment_epoch()
    assert inst.exports["count"](100) == 100 and engine.current_epoch == 1


# -- max_wasm_stack ---------------------------------------------------------------------------

def test_recursion_a_million_deep_is_a_clean_stack_overflow():
    inst = instance(Engine())
    with pytest.raises(Trap) as exc:
        inst.exports["rec"](1_000_000)
    assert exc.value.code is TrapCode.STACK_OVERFLOW
    assert inst.exports["rec"](50_000) == 50_000  # deep but allowed, and the instance works


def test_max_wasm_stack_bounds_the_call_chain():
    small = instance(Engine(max_wasm_stack=64 * 1024))
    assert small.exports["rec"](100) == 100
    with pytest.raises(Trap) as exc:
        small.exports["rec"](5000)
    assert exc.value.code is TrapCode.STACK_OVERFLOW
    big = instance(Engine(max_wasm_stack=64 << 20))
    results = []  # on a thread of its own: its big stacks go with it
    worker = threading.Thread(target=lambda: results.append(big.exports["rec"](600_000)))
    worker.start()
    worker.join()
    assert results == [600_000]  # past the default's reach
    for bad in (0, 63, 1 << 31, "1MiB"):
        with pytest.raises(ValueError):
            Engine(max_wasm_stack=bad)


# -- limits -----------------------------------------------------------------------------------

GROWER = wat('''(module (memory (export "m") 1) (table (export "t") 1 funcref)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))''')


@pytest.mark.oracle
def test_memory_size_limit_bounds_grow_from_wasm_as_wasmtime():
    store = Store(Engine())
    store.set_limits(memory_size=3 * 65536)
    inst = Instance(Module(store.engine, GROWER), store=store)
    wt_store = wt.Store(wt.Engine())
    wt_store.set_limits(memory_size=3 * 65536)
    wt_grow = wt.Instance(wt_store, wt.Module(wt_store.engine, GROWER), []).exports(wt_store)["grow"]
    for delta in (1, 5, 1, 1, 0):
        assert inst.exports["grow"](delta) == wt_grow(wt_store, delta)
    assert inst.exports["m"].size_pages == 3


def test_grow_from_python_past_a_limit_returns_minus_one():
    store = Store(Engine())
    store.set_limits(memory_size=2 * 65536, table_elements=4)
    inst = Instance(Module(store.engine, GROWER), store=store)
    memory, table = inst.exports["m"], inst.exports["t"]
    assert memory.grow(2) == -1 and memory.grow(1) == 1 and memory.size_pages == 2
    assert table.grow(4) == -1 and table.grow(3) == 1 and table.size == 4
    store.set_limits()  # unlimited again
    assert memory.grow(1) == 2 and table.grow(1) == 4


def test_limits_of_a_private_store_bound_its_instance():
    inst = Instance(Module(Engine(), GROWER))
    memory = inst.exports["m"]
    inst.store.set_limits(memory_size=65536)
    assert memory.grow(1) == -1 and inst.exports["grow"](1) == -1


@pytest.mark.parametrize("private", [True, False])
def test_limits_set_after_wasm_grew_without_a_memory_view_bound_its_next_grows(private):
    """wasm's memory.grow runs in C on the memory's descriptor (no Memory is made): the
    limits of its store, its own or a private one made afterwards, are read at each grow."""
    store = None if private else Store(Engine())
    inst = Instance(Module(store.engine if store else Engine(), GROWER), store=store)
    grow = inst.exports["grow"]
    assert grow(1) == 1  # its interpreter state and memory descriptor exist from here
    assert inst._made is None  # no Memory view made for the grow
    (inst.store if private else store).set_limits(memory_size=3 * 65536)
    assert grow(2) == -1 and grow(1) == 2 and grow(1) == -1
    (inst.store if private else store).set_limits()
    assert grow(1) == 3 and inst.exports["m"].size_pages == 4


def test_instantiation_past_a_limit_is_an_allocation_error_with_nothing_counted():
    store = Store(Engine())
    store.set_limits(instances=2, memories=2, tables=1)
    module = Module(store.engine, GROWER)
    a = Instance(module, store=store)
    with pytest.raises(AllocationError, match="table count too high"):
        Instance(module, store=store)
    b = Instance(Module(store.engine, wat("(module (memory 1))")), store=store)
    with pytest.raises(AllocationError, match="instance count too high"):
        Instance(Module(store.engine, wat("(module)")), store=store)
    a.close()  # gives its share back
    c = Instance(module, store=store)
    assert c.exports["grow"](1) == 1
    b.close()
    c.close()
    store.set_limits(memory_size=65536, table_elements=1)
    with pytest.raises(AllocationError, match="memory minimum size"):
        Instance(Module(store.engine, wat("(module (memory 2))")), store=store)
    with pytest.raises(AllocationError, match="table minimum size"):
        Instance(Module(store.engine, wat("(module (table 2 funcref))")), store=store)
    assert store._instances == store._memories == store._tables == 0


def test_a_failed_instantiation_gives_its_share_back():
    store = Store(Engine())
    store.set_limits(instances=1)
    bad = Module(store.engine, wat('(module (memory 1) (data (i32.const 70000) "x"))'))
    for _ in range(3):
        with pytest.raises(Trap):
            Instance(bad, store=store)
    Instance(Module(store.engine, GROWER), store=store).close()


# ---- externrefs belong to their store (issue 15; wasmtime-py's externrefs too) ----------

EXTERN_IDENTITY = wat('''(module (table $t (export "t") 2 externref) (global $g (export "g") (mut externref) (ref.null extern))
  (func (export "id") (param externref) (result externref) local.get 0)
  (func (export "keep") (param externref) (table.set $t (i32.const 0) (local.get 0)) (global.set $g (local.get 0)))
  (func (export "kept") (result externref externref) (table.get $t (i32.const 0)) (global.get $g)))''')


class _Obj:
    """A fresh object (weakref-able) per externref."""


def _rss_bytes() -> int:
    import os
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_externrefs_passed_through_a_dropped_store_are_collectable_and_rss_stays_flat():
    """100,000 fresh objects through an export per round: once the store (and its
    instance) is dropped, every one is collectable, and RSS stays flat from round to round."""
    import gc
    import weakref
    eng = Engine()
    mod = Module(eng, EXTERN_IDENTITY)
    rss = []
    for _ in range(3):  # (the first round is a warm-up: the allocator's arenas settle)
        store = Store(eng)
        f = Instance(mod, store=store).exports["id"]
        refs = []
        for _ in range(100_000):
            obj = _Obj()
            refs.append(weakref.ref(obj))
            assert f(obj) is obj
        del f, store, obj
        gc.collect()
        assert sum(r() is not None for r in refs) == 0
        del refs
        rss.append(_rss_bytes())
    assert rss[2] - rss[1] < 4 << 20, rss  # (each round kept ~12 MiB before)


@pytest.mark.parametrize("owner", ["store", "host table", "host global"])
def test_externrefs_stay_alive_while_their_owner_lives_and_go_with_it(owner):
    """Held only in a table, a global or by wasm (the Python references dropped), an
    externref stays alive and the same object while its owner lives; then it goes."""
    import gc
    import weakref
    from runtime import Global, Table
    eng = Engine()
    obj = _Obj()
    ref = weakref.ref(obj)
    if owner == "store":
        holder = Store(eng)
        inst = Instance(Module(eng, EXTERN_IDENTITY), store=holder)
        inst.exports["keep"](obj)
        del obj
        gc.collect()
        assert inst.exports["kept"]() == (ref(), ref()) and ref() is not None
        del inst
    elif owner == "host table":
        holder = Table.new(eng, "externref", 2)
        holder.set(1, obj)
        del obj
        gc.collect()
        assert holder.get(1) is ref() and ref() is not None
    else:
        holder = Global.new(eng, "externref", obj, mutable=True)
        del obj
        gc.collect()
        assert holder.value is ref() and ref() is not None
    del holder
    gc.collect()
    assert ref() is None


def test_an_externref_wasm_moves_into_a_host_table_lives_as_long_as_that_table():
    """A store's externref stored by wasm into an imported host table outlives the store:
    the importing store's registry and the table's are linked (each lives as long as the
    other), so the table never holds a key whose object is gone."""
    import gc
    import weakref
    from runtime import Table
    eng = Engine()
    table = Table.new(eng, "externref", 2)
    mod = Module(eng, wat('''(module (import "h" "t" (table 2 externref))
      (func (export "put") (param externref) (table.set 0 (i32.const 1) (local.get 0))))'''))
    store = Store(eng)
    obj = _Obj()
    ref = weakref.ref(obj)
    Instance(mod, {("h", "t"): table}, store=store).exports["put"](obj)
    del obj, store
    gc.collect()
    assert table.get(1) is ref() and ref() is not None
    del table
    gc.collect()
    assert ref() is None


def test_a_host_function_result_belongs_to_the_calling_instance_store():
    import gc
    import weakref
    from runtime import Func
    from wasmenv import FuncType, ValType
    eng = Engine()
    made = []

    def make():
        made.append(weakref.ref(obj := _Obj()))
        return obj
    mod = Module(eng, wat('''(module (import "h" "make" (func $make (result externref)))
      (table 1 externref)
      (func (export "run") (table.set 0 (i32.const 0) (call $make)))
      (func (export "get") (result externref) (table.get 0 (i32.const 0))))'''))
    store = Store(eng)
    inst = Instance(mod, {("h", "make"): Func(FuncType([], [ValType.EXTERNREF]), make)}, store=store)
    inst.exports["run"]()
    gc.collect()
    assert inst.exports["get"]() is made[0]() is not None
    del inst, store
    gc.collect()
    assert made[0]() is None
