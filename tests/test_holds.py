"""runtime/_holds.py: what an instance holds of others and when it gives it back. A
function whose instance closed first (imported, in a table or global, stored by Python or
by wasm code, passed as an argument) runs on that instance's own memories and tables,
never on released pages or a pool slot's next tenant; what is held goes back once the
last holder and the last call in flight are done (issue 13, item 5 across instances)."""
import gc

import pytest

import runtime
from runtime import Engine, Func, Instance, Module
from wasmenv import FuncType
from tests.helpers import make_pool, wat


# ---- 5, across instances: a function or global whose instance closed first -------------

EXPORTER = '''(module (memory (export "m") 1 4) (global $g (export "g") (mut i32) (i32.const 5))
  (type $r (func (result i32)))
  (table 2 funcref) (func $ten (result i32) i32.const 10) (elem (i32.const 1) $ten)
  (func (export "put") (param i32) (result i32)
    (i32.store (i32.const 0) (local.get 0))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.add (i32.add (i32.load (i32.const 0)) (global.get $g))
             (call_indirect (type $r) (i32.const 1)))))'''
IMPORTER = '''(module (import "e" "put" (func $put (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (call $put (local.get 0))))'''


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_an_imported_function_runs_on_its_closed_instance_memory_tables_and_globals(pooled):
    """The importer calls a function whose instance closed first: the function's memory
    (a pool slot, or a reservation unmapped under the call), table and global stay its
    own until the importer closes; the next tenant never sees the call's bytes."""
    pool = make_pool(max_instances=3) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    mod = Module(eng, wat(EXPORTER))
    exporter = Instance(mod)
    importer = Instance(Module(eng, wat(IMPORTER)), {("e", "put"): exporter.exports["put"]})
    assert importer.exports["run"](0x1000) == 0x1000 + 6 + 10
    exporter.close()  # first: its views raise, what its code uses stays
    with pytest.raises(ValueError, match="closed"):
        exporter.exports["put"](1)
    nxt = Instance(mod)  # pooled: the exporter's slot if it went back (LIFO)
    assert importer.exports["run"](0x7A6A5A4A) == 0x7A6A5A4A + 7 + 10
    assert nxt.exports["m"].read(0, 4) == b"\0\0\0\0"  # not the call's bytes
    assert nxt.exports["g"].value == 5
    if pool is None:
        importer.close()
        nxt.close()
        return
    assert pool.live_memories == 2
    importer.close()
    assert pool.live_memories == 1  # the exporter's slot went with its last user
    nxt.close()
    assert_released(pool)


def test_a_function_of_a_closed_instance_cannot_be_imported():
    exporter = Instance(Module(Engine(), wat(EXPORTER)))
    put = exporter.exports["put"]
    exporter.close()
    with pytest.raises(ValueError, match="closed"):
        Instance(Module(Engine(), wat(IMPORTER)), {("e", "put"): put})


def test_a_chain_of_imported_functions_keeps_every_instance_it_runs_on():
    """A imports B's function, which calls C's: C and B closed first, A's call still runs
    on C's memory and table (B's hold on them goes with B's close; A holds them too)."""
    eng = Engine()
    c = Instance(Module(eng, wat(EXPORTER)))
    b = Instance(Module(eng, wat(IMPORTER)), {("e", "put"): c.exports["put"]})
    a = Instance(Module(eng, wat(IMPORTER.replace('"e" "put"', '"b" "run"'))), {("b", "run"): b.exports["run"]})
    c.close()
    b.close()
    assert a.exports["run"](0x100) == 0x100 + 6 + 10
    a.close()


def test_an_imported_global_of_a_closed_instance_stays_alive_and_shared():
    """Two importers of a mutable global whose instance closed first still share its cell."""
    eng = Engine()
    exporter = Instance(Module(eng, wat(EXPORTER)))
    g = exporter.exports["g"]
    user = wat('''(module (import "e" "g" (global $g (mut i32)))
      (func (export "get") (result i32) global.get $g)
      (func (export "set") (param i32) local.get 0 global.set $g))''')
    one, two = (Instance(Module(eng, user), {("e", "g"): g}) for _ in range(2))
    exporter.close()
    with pytest.raises(ValueError, match="closed"):
        _ = g.value
    one.exports["set"](41)
    assert two.exports["get"]() == 41 and two.globals[0].value == 41
    two.globals[0].value = 42
    assert one.exports["get"]() == 42
    one.close()
    assert two.exports["get"]() == 42
    two.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_host_made_memory_table_and_global_closed_during_a_call_stay_for_their_importer(pooled):
    """A host function closes the host-made memory, table and global the calling
    instance imports; the call goes on using all three, and so do later calls, until the
    importer closes (their views raise at once)."""
    from runtime import Func, Global, Memory, Table
    from wasmenv import FuncType, ValType
    pool = make_pool(max_instances=2) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    mem = Memory.new(eng, 1, 4)
    tab = Table.new(eng, "funcref", 4)
    glob = Global.new(eng, "i32", 9, mutable=True)
    seven = Func(FuncType([], [ValType.I32]), lambda: 7)
    tab.set(1, seven)

    box = {"m": mem, "t": tab, "g": glob}

    src = wat("""(module (import "h" "close" (func $close)) (import "h" "m" (memory 1 4))
      (import "h" "t" (table 4 funcref)) (import "h" "g" (global $g (mut i32)))
      (type $r (func (result i32)))
      (func (export "run") (param i32) (result i32)
        call $close
        (i32.store (i32.const 8) (local.get 0))
        (global.set $g (i32.add (global.get $g) (i32.const 1)))
        (i32.add (i32.add (i32.load (i32.const 8)) (global.get $g))
                 (call_indirect (type $r) (i32.const 1)))))""")
    imports = {("h", "close"): closing(box), ("h", "m"): mem,
               ("h", "t"): tab, ("h", "g"): glob}
    inst = Instance(Module(eng, src), imports)
    assert inst.exports["run"](0x100) == 0x100 + 10 + 7
    assert mem.closed and tab.closed
    for use in (lambda: mem.read(0, 1), lambda: tab.get(1)):
        with pytest.raises(ValueError, match="closed"):
            use()
    assert inst.exports["run"](0x200) == 0x200 + 11 + 7  # the next call too
    assert inst.memory(0) is mem  # a closed view stays closed, even through the importer
    assert inst.globals[0].value == 11
    inst.close()
    assert tab._shares == 0
    if pool is not None:
        assert pool.live_instances == pool.live_memories == 0
        pool.close()


def test_a_funcref_to_a_closed_instance_never_runs_on_the_next_tenant():
    """A table element set from Python names a function of an instance closed since: a
    call_indirect through it must run on that instance's own memory (held) or fail
    cleanly; never write the slot's next tenant."""
    pool = make_pool(max_instances=3)
    eng = Engine(allocator=pool)
    mod = Module(eng, wat(EXPORTER))
    exporter = Instance(mod)
    caller = Instance(Module(eng, wat('''(module (table (export "t") 1 funcref)
      (type $t (func (param i32) (result i32)))
      (func (export "via") (param i32) (result i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))''')))
    caller.exports["t"].set(0, exporter.exports["put"])
    exporter.close()
    nxt = Instance(mod)
    # The element keeps its instance's memory, table and global: the call runs there.
    assert caller.exports["via"](0x7A6A5A4A) == 0x7A6A5A4A + 6 + 10
    assert nxt.exports["m"].read(0, 4) == b"\0\0\0\0"
    caller.close()
    nxt.close()
    assert_released(pool)


KEEPER = '''(module (table (export "t") 1 funcref) (type $t (func (param i32) (result i32)))
  (func (export "keep") (param funcref) (table.set (i32.const 0) (local.get 0)))
  (func (export "via") (param i32) (result i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))'''


@pytest.mark.parametrize("how", ["closed", "collected"])
def test_a_funcref_passed_as_an_argument_keeps_its_instance_and_storage(how):
    """A funcref passed to wasm (which stores it in its table) keeps its instance's state
    and storage for the receiver: its instance closed first (pooled: the slot is not
    handed to the next tenant), or dropped and collected (the record was freed: the call
    read a reused record, "indirect call type mismatch")."""
    pool = make_pool(max_instances=3)
    eng = Engine(allocator=pool)
    mod = Module(eng, wat(EXPORTER))
    keeper = Instance(Module(eng, wat(KEEPER)))

    def pass_one():
        exporter = Instance(mod)
        keeper.exports["keep"](exporter.exports["put"])
        if how == "closed":
            exporter.close()
    pass_one()
    gc.collect()
    for _ in range(20):  # churn: reuse freed records and slots
        Instance(mod).close()
    gc.collect()
    nxt = Instance(mod)
    assert keeper.exports["via"](1) == 1 + 6 + 10
    assert nxt.exports["m"].read(0, 4) == b"\0\0\0\0"
    keeper.close()
    nxt.close()
    gc.collect()
    assert_released(pool)


def test_a_host_table_element_keeps_its_instance_storage_until_the_table_closes():
    pool = make_pool(max_instances=3)
    eng = Engine(allocator=pool)
    mod = Module(eng, wat(EXPORTER))
    host = runtime.Table.new(eng, "funcref", 1)
    user = Instance(Module(eng, wat('''(module (import "h" "t" (table 1 funcref))
      (type $t (func (param i32) (result i32)))
      (func (export "via") (param i32) (result i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))''')),
                    {("h", "t"): host})
    exporter = Instance(mod)
    host.set(0, exporter.exports["put"])
    exporter.close()
    assert pool.live_memories == 1  # held by the host table's element
    assert user.exports["via"](2) == 2 + 6 + 10
    user.close()
    host.close()
    assert_released(pool)


#: The callee of the tests below: it stores into and loads from its own memory's last
#: word, so a run on released pages faults and a run on a reused slot writes its tenant.
PUT = """(module (memory (export "m") 1)
  (func (export "put") (param i32) (result i32)
    (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0))))"""


def engine_and_pool(pooled):
    """An engine on demand, or on a pool of 4 instances (and that pool)."""
    pool = make_pool(max_instances=4) if pooled else None
    return (Engine(allocator=pool) if pooled else Engine()), pool


def closing(box) -> Func:
    """A host function () -> () closing what ``box`` holds, in the order it was put there."""
    def close_all():
        for x in list(box.values()):
            x.close()
    return Func(FuncType([], []), close_all)


def assert_released(pool, instances=True) -> None:
    """Everything went back to the pool (if any), which is then closed."""
    if pool is not None:
        assert pool.live_memories == 0
        if instances:
            assert pool.live_instances == 0
        pool.close()


@pytest.mark.parametrize("with_table", [False, True], ids=["memory-only", "and-a-table"])
@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_an_importer_closed_during_its_call_keeps_the_imported_memory_until_the_call_returns(pooled, with_table):
    """A host function closes the imported (host-made) memory and then the importer itself
    mid-call: the call goes on storing to and loading from that memory, which is released
    only when the call returns (with or without a table to count the call)."""
    from runtime import Memory
    eng, pool = engine_and_pool(pooled)
    mem = Memory.new(eng, 1, 4)
    box = {"m": mem}
    table = "(table 1 funcref)" if with_table else ""
    src = wat(f"""(module (import "h" "close" (func $close)) (import "h" "m" (memory 1 4)) {table}
      (func (export "run") (param i32) (result i32)
        call $close
        (i32.store (i32.const 0xFFF0) (local.get 0))
        (i32.load (i32.const 0xFFF0))))""")
    inst = box["i"] = Instance(Module(eng, src), {("h", "close"): closing(box),
                                                 ("h", "m"): mem})
    assert inst.exports["run"](0x5A5A) == 0x5A5A
    assert inst.closed and mem.closed
    if pool is not None:
        assert pool.live_instances == pool.live_memories == 0  # released after the call
        pool.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_function_kept_by_an_instance_closed_during_its_call_runs_on_its_own_memory(pooled):
    """A global of the caller holds another instance's function (set from Python: the
    caller keeps that instance's memory); a host function closes both mid-call; the
    call then goes through the table to that function, which must still run on its own
    memory, released only after the call."""
    eng, pool = engine_and_pool(pooled)
    a = Instance(Module(eng, wat(PUT)))
    box = {"a": a}
    b = box["b"] = Instance(Module(eng, wat("""(module (import "h" "close" (func $close))
      (type $t (func (param i32) (result i32))) (table 1 funcref)
      (global (export "g") (mut funcref) (ref.null func))
      (func (export "run") (param i32) (result i32)
        (table.set (i32.const 0) (global.get 0))
        call $close
        (call_indirect (type $t) (local.get 0) (i32.const 0))))""")),
        {("h", "close"): closing(box)})
    b.exports["g"].value = a.exports["put"]
    assert b.exports["run"](0x1234) == 0x1234
    assert a.closed and b.closed
    assert_released(pool)


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_host_global_holding_a_closed_instances_function_keeps_its_memory(pooled):
    """A host global holds another instance's function (set at Global.new and from
    Python); that instance closes; an importer calls the function through the global: it
    runs on its own memory, never on the slot's next tenant, which stays released only
    once the global lets go."""
    from runtime import Global
    eng, pool = engine_and_pool(pooled)
    mod = Module(eng, wat(PUT))
    a = Instance(mod)
    g = Global.new(eng, "funcref", a.exports["put"], mutable=True)
    b = Instance(Module(eng, wat("""(module (import "h" "g" (global $g (mut funcref)))
      (type $t (func (param i32) (result i32))) (table 1 funcref)
      (func (export "run") (param i32) (result i32)
        (table.set (i32.const 0) (global.get $g))
        (call_indirect (type $t) (local.get 0) (i32.const 0))))""")), {("h", "g"): g})
    a.close()
    nxt = Instance(mod)  # pooled: a's slot, had it gone back
    assert b.exports["run"](0x1234) == 0x1234
    assert nxt.exports["m"].read(0xFFF0, 4) == bytes(4)
    other = Instance(mod)
    g.value = other.exports["put"]  # a's memory is let go; other's is held now
    other.close()
    assert b.exports["run"](0x77) == 0x77
    g.value = None
    b.close()
    nxt.close()
    assert_released(pool, instances=False)


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_function_stored_by_wasm_in_an_imported_table_keeps_its_memory_after_close(pooled):
    """An instance's code stores one of its functions in an imported (host) table
    (table.set: no Python sees it), then the instance closes and is garbage; a call
    through that element from another importer runs on the closed instance's own memory,
    never on the slot's next tenant; it goes once the table lets go."""
    from runtime import Table
    eng, pool = engine_and_pool(pooled)
    t = Table.new(eng, "funcref", 2)
    mod = Module(eng, wat("""(module (import "h" "t" (table 2 funcref)) (memory (export "m") 1)
      (func $put (param i32) (result i32)
        (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0)))
      (elem declare func $put)
      (func (export "install") (table.set (i32.const 0) (ref.func $put))))"""))
    b = Instance(mod, {("h", "t"): t})
    b.exports["install"]()
    b.close()
    del b
    gc.collect()
    nxt = Instance(mod, {("h", "t"): Table.new(eng, "funcref", 2)})  # pooled: b's slot, had it gone
    c = Instance(Module(eng, wat("""(module (import "h" "t" (table 2 funcref))
      (type $t (func (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))""")),
        {("h", "t"): t})
    assert c.exports["run"](0x1234) == 0x1234
    assert nxt.exports["m"].read(0xFFF0, 4) == bytes(4)
    c.close()
    nxt.close()
    t.close()
    assert_released(pool, instances=False)  # the table let b's memory go


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_function_stored_by_wasm_in_an_imported_global_keeps_its_memory_after_close(pooled):
    """The same through an imported (host) funcref global: global.set of one of its
    functions, the instance closed and garbage; a call through the global from another
    importer runs on the closed instance's own memory; it goes once Python writes the
    global."""
    from runtime import Global
    eng, pool = engine_and_pool(pooled)
    g = Global.new(eng, "funcref", None, mutable=True)
    mod = Module(eng, wat("""(module (import "h" "g" (global $g (mut funcref))) (memory (export "m") 1)
      (func $put (param i32) (result i32)
        (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0)))
      (elem declare func $put)
      (func (export "install") (global.set $g (ref.func $put))))"""))
    b = Instance(mod, {("h", "g"): g})
    b.exports["install"]()
    b.close()
    del b
    gc.collect()
    nxt = Instance(mod, {("h", "g"): Global.new(eng, "funcref", None, mutable=True)})
    c = Instance(Module(eng, wat("""(module (import "h" "g" (global $g (mut funcref)))
      (type $t (func (param i32) (result i32))) (table 1 funcref)
      (func (export "run") (param i32) (result i32)
        (table.set (i32.const 0) (global.get $g))
        (call_indirect (type $t) (local.get 0) (i32.const 0))))""")), {("h", "g"): g})
    assert c.exports["run"](0x1234) == 0x1234
    assert nxt.exports["m"].read(0xFFF0, 4) == bytes(4)
    c.close()
    nxt.close()
    g.value = None  # lets the closed instance's memory go
    assert_released(pool, instances=False)


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_an_importer_of_a_closed_instances_table_runs_its_functions_on_their_memory(pooled):
    """An importer of an instance's table (as a side module imports its main module's
    __indirect_function_table) calls through it after that instance closed and is
    garbage: the element's function runs on its own instance's memory (held until the
    importer closes), never on the slot's next tenant."""
    eng, pool = engine_and_pool(pooled)
    mod = Module(eng, wat("""(module (memory (export "m") 1) (table (export "t") 2 funcref)
      (func $put (param i32) (result i32)
        (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0)))
      (elem (i32.const 0) $put))"""))
    b = Instance(mod)
    d = Instance(Module(eng, wat("""(module (import "b" "t" (table 2 funcref))
      (type $t (func (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))""")),
        {("b", "t"): b.exports["t"]})
    b.close()
    del b
    gc.collect()
    nxt = Instance(mod)
    assert d.exports["run"](0x1234) == 0x1234
    assert nxt.exports["m"].read(0xFFF0, 4) == bytes(4)
    d.close()
    nxt.close()
    assert_released(pool, instances=False)


def test_a_closed_instances_function_stored_in_a_host_global_raises_and_changes_nothing(engine):
    """Storing a function whose instance is closed into a host global (Global.new, or
    set from Python) is refused with a clear error; the global keeps its value."""
    from runtime import Global
    mod = Module(engine, wat('(module (func (export "f") (result i32) i32.const 1))'))
    live, gone = Instance(mod), Instance(mod)
    f_live, f_gone = live.exports["f"], gone.exports["f"]
    gone.close()
    g = Global.new(engine, "funcref", f_live, mutable=True)
    with pytest.raises(ValueError, match="closed"):
        g.value = f_gone
    assert g.value is not None and g.value() == 1
    with pytest.raises(ValueError, match="closed"):
        Global.new(engine, "funcref", f_gone)
    live.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_funcref_argument_of_an_instance_without_tables_runs_on_its_memory_after_both_close(pooled):
    """A caller with no table and no held import gets another instance's function as an
    argument (kept: _keep); a host function closes both mid-call; the call_ref that
    follows runs on the callee's own memory, released after the call."""
    eng, pool = engine_and_pool(pooled)
    a = Instance(Module(eng, wat(PUT)))
    box = {"a": a}
    b = box["b"] = Instance(Module(eng, wat("""(module (import "h" "close" (func $close))
      (type $t (func (param i32) (result i32)))
      (func (export "run") (param (ref null $t)) (param i32) (result i32)
        call $close
        (call_ref $t (local.get 1) (local.get 0))))""")),
        {("h", "close"): closing(box)})
    assert b.exports["run"](a.exports["put"], 0x1234) == 0x1234
    assert a.closed and b.closed
    assert_released(pool)


STORE_AFTER_CLOSE = {
    "table": ('(import "h" "t" (table 2 funcref))', "(table.set (i32.const 0) (ref.func $put))"),
    "global": ('(import "h" "t" (global $g (mut funcref)))', "(global.set $g (ref.func $put))"),
}


@pytest.mark.parametrize("via", sorted(STORE_AFTER_CLOSE))
@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_function_stored_by_wasm_after_its_instance_closed_mid_call_keeps_its_memory(pooled, via):
    """A host function closes the instance during its call, and the call then stores one
    of its functions in an imported table or global (close() had looked already, no
    Python sees the store): that element keeps the closed instance's memory, tables and
    imports once the call returns; a call through it from another importer runs on that
    memory, never on the slot's next tenant; all of it goes once the table or global lets
    go."""
    from runtime import Global, Table

    def holder():
        return Table.new(eng, "funcref", 2) if via == "table" else Global.new(eng, "funcref", None, mutable=True)
    eng, pool = engine_and_pool(pooled)
    imp, store = STORE_AFTER_CLOSE[via]
    mod = Module(eng, wat(f"""(module (import "h" "close" (func $close)) {imp} (memory (export "m") 1)
      (func $put (param i32) (result i32)
        (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0)))
      (elem declare func $put)
      (func (export "install") call $close {store}))"""))
    t, box = holder(), {}
    b = box["b"] = Instance(mod, {("h", "close"): closing(box), ("h", "t"): t})
    b.exports["install"]()
    assert b.closed
    del b, box
    gc.collect()
    nxt = Instance(mod, {("h", "close"): Func(FuncType([], []), lambda: None), ("h", "t"): holder()})
    nxt.exports["m"].write(0xFFF0, b"\x63" * 4)  # pooled: b's slot, had it gone back
    get = "(table.get (i32.const 0))" if via == "table" else "(global.get $g)"
    c = Instance(Module(eng, wat(f"""(module {imp} (table $own 1 funcref)
      (type $t (func (param i32) (result i32)))
      (func (export "run") (param i32) (result i32)
        (table.set $own (i32.const 0) {get})
        (call_indirect $own (type $t) (local.get 0) (i32.const 0))))""")), {("h", "t"): t})
    assert c.exports["run"](0x1234) == 0x1234
    assert nxt.exports["m"].read(0xFFF0, 4) == b"\x63" * 4
    if pool is not None:
        assert pool.live_memories == 2  # b's (kept by the element) and nxt's
    c.close()
    nxt.close()
    if via == "table":
        t.close()
    else:
        t.value = None  # lets the closed instance's storage go
    assert_released(pool, instances=False)
