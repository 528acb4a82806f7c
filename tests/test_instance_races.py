"""Lifetimes and races of instances, modules and their views (issue 13, items 1 to 5).

Each race runs deterministically: a stand-in for one internal call pauses the first
thread inside the window (an Event) while the test runs the competing call, then lets
it go on. The C side of item 5 (an access in flight while its memory closes) runs in
tests/c/memory_races.c, built with the C test hooks.
"""
import gc
import os
import threading

import pytest

import runtime
import runtime.instance as instance_mod
from runtime import Engine, Instance, Module, Trap, _ffi
from tests.helpers import WASM_PAGE, make_pool, wat

DATA_MODULE = '(module (memory (export "m") 1 4) (data (i32.const 0) "module-bytes"))'
TABLE_MODULE = '(module (memory (export "m") 1 4) (table (export "t") 2 funcref) (func $f (export "f")) ' \
               '(elem (i32.const 0) $f))'


class Pause:
    """Wrap ``fn`` so that its first call waits inside (``paused`` set) until ``go()``."""

    def __init__(self, fn):
        self.fn = fn
        self.paused = threading.Event()
        self._go = threading.Event()
        self._armed = True

    def __call__(self, *args):
        if self._armed:
            self._armed = False
            self.paused.set()
            self._go.wait(10)
        return self.fn(*args)

    def go(self):
        self._go.set()


def in_thread(fn):
    """Run ``fn`` in a thread; returns (thread, result dict with "value" or "error")."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # examined by the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


# ---- 1. Module.close() racing Instance(module) ----------------------------------------

@pytest.mark.parametrize("path", ["fast", "first"])
def test_module_closed_during_instantiation_keeps_its_image_until_it_finished(monkeypatch, tmp_path, path):
    """The image fd is read by C after the module was closed: it must still be the
    image's (not an unrelated file opened meanwhile, which gets the same number)."""
    mod = Module(Engine(), wat(DATA_MODULE))
    if path == "fast":
        Instance(mod).close()  # the one-call path from now on
        pause = Pause(instance_mod._open)
        monkeypatch.setattr(instance_mod, "_open", pause)
    else:
        pause = Pause(_ffi.memory_open)
        monkeypatch.setattr(_ffi, "memory_open", pause)
    other = tmp_path / "unrelated"
    other.write_bytes(b"X" * WASM_PAGE)
    t, out = in_thread(lambda: Instance(mod))
    assert pause.paused.wait(10)
    mod.close()
    fd = os.open(other, os.O_RDONLY)  # the lowest free number: the image's, if it was closed
    try:
        pause.go()
        t.join(10)
    finally:
        os.close(fd)
    assert "value" in out, out
    inst = out["value"]
    assert inst.exports["m"].read(0, 12) == b"module-bytes"
    inst.close()
    assert mod.images[0].closed  # closed once the instantiation using it finished
    with pytest.raises(ValueError, match="closed"):
        Instance(mod)


# ---- 2. the first inst.memory(0) racing inst.close() -----------------------------------

@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_first_memory_view_racing_close_is_never_live_over_a_released_slot(monkeypatch, pooled):
    pool = make_pool(max_instances=2) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    mod = Module(eng, wat(DATA_MODULE))
    Instance(mod).close()
    inst = Instance(mod)
    alloc = mod._instance_layout.allocation
    pause = Pause(type(alloc).memory)
    monkeypatch.setattr(type(alloc), "memory", lambda self, *args: pause(self, *args))
    t, out = in_thread(lambda: inst.memory(0))
    assert pause.paused.wait(10)
    closer, closed = in_thread(inst.close)
    closer.join(0.5)  # the close may wait for the view being made, not the other way round
    pause.go()
    t.join(10)
    closer.join(10)
    assert "error" not in closed, closed
    assert inst.closed
    view = out.get("value")
    if view is not None:  # made before the close: it was closed with the instance
        assert view.closed
        with pytest.raises(ValueError, match="closed"):
            view.write(0, b"stale")
    else:
        assert isinstance(out["error"], ValueError)
    nxt = Instance(mod)  # pooled: the same slot (LIFO)
    assert nxt.exports["m"].read(0, 12) == b"module-bytes"
    nxt.close()
    if pool is not None:
        assert pool.live_instances == pool.live_memories == 0
        pool.close()


# ---- 3. a view keeps what it views alive ----------------------------------------------

@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
@pytest.mark.parametrize("kind", ["memory", "table"])
def test_a_view_keeps_its_instance_alive(pooled, kind):
    pool = make_pool(max_instances=1) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    mod = Module(eng, wat(TABLE_MODULE))
    inst = Instance(mod)
    view = inst.exports["m" if kind == "memory" else "t"]
    del inst
    gc.collect()  # an instance is a reference cycle: collected here if nothing holds it
    assert not view.closed
    if kind == "memory":
        view.fill(0, 0x5A, 64)
        assert view.read(0, 64) == b"\x5a" * 64
    else:
        assert view.get(0) is not None
    if pool is not None:
        assert pool.live_instances == 1  # still its slot: no next tenant can get it
    del view
    gc.collect()
    if pool is not None:
        assert pool.live_instances == pool.live_memories == 0
        pool.close()


@pytest.mark.parametrize("kind", ["global", "func"])
def test_global_and_func_views_keep_their_instance_alive(kind):
    mod = Module(Engine(), wat('(module (global (export "g") (mut i32) (i32.const 7)) '
                               '(func (export "f") (result i32) (i32.const 42)))'))
    inst = Instance(mod)
    view = inst.exports["g" if kind == "global" else "f"]
    del inst
    gc.collect()
    assert (view.value if kind == "global" else view()) == (7 if kind == "global" else 42)


# ---- 4. a pooled grow in flight while the instance closes ------------------------------

def check_fresh_tenant(inst):
    """A new tenant: its own image, one page R/W and nothing past it."""
    m = inst.exports["m"]
    assert m.size_pages == 1 and m.read(0, 12) == b"module-bytes"
    assert m._state.slot.state["accessible"] == WASM_PAGE  # nothing past its size is R/W
    with pytest.raises(Trap):
        m.load_i32(WASM_PAGE)  # still traps: the page past its end is PROT_NONE


def test_pooled_grow_in_flight_while_its_instance_closes_acts_on_its_own_tenancy(monkeypatch):
    """The grow completes on the slot it started in, which goes back to the pool only once
    the grow has left (item 5): the next tenant gets another slot, and the slot's tenant
    after that finds it reset (the C check of the tenancy: tests/test_wenv_pool.py)."""
    pool = make_pool(max_instances=2)
    mod = Module(Engine(allocator=pool), wat(DATA_MODULE))
    inst = Instance(mod)
    mem = inst.exports["m"]
    stale_slot = mem._state.slot.index
    pause = Pause(_ffi.pool_grow)
    monkeypatch.setattr(_ffi, "pool_grow", pause)
    t, out = in_thread(lambda: mem.grow(2))
    assert pause.paused.wait(10)
    inst.close()
    assert inst.closed and mem.closed  # at once, with the grow in flight
    nxt = Instance(mod)
    assert nxt.exports["m"]._state.slot.index != stale_slot  # that one is still in use
    assert pool.live_memories == 2
    pause.go()
    t.join(10)
    assert out.get("value") in (1, -1), out
    check_fresh_tenant(nxt)
    assert pool.live_memories == 1  # the grow left: its slot went back
    third = Instance(mod)
    assert third.exports["m"]._state.slot.index == stale_slot
    check_fresh_tenant(third)
    third.close()
    nxt.close()
    assert pool.live_instances == pool.live_memories == 0
    with pytest.raises(ValueError, match="closed"):
        mem.grow(1)
    pool.close()



# ---- 5. close() returns at once; what is in flight finishes on its own tenancy ---------

GROW_AND_TAG = '''(module (memory (export "m") 1 4) (data (i32.const 0) "module-bytes")
  (func (export "grow_and_tag") (param i32) (result i32)
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 65536) (local.get 0))
    (i32.load (i32.const 65536))))'''


def test_wasm_call_in_flight_while_its_instance_closes_finishes_on_its_own_memory(monkeypatch):
    pool = make_pool(max_instances=2)
    mod = Module(Engine(allocator=pool), wat(GROW_AND_TAG))
    inst = Instance(mod)
    f = inst.exports["grow_and_tag"]
    own_slot = inst.memory(0)._state.slot.index
    pause = Pause(_ffi.pool_grow)
    monkeypatch.setattr(_ffi, "pool_grow", pause)
    t, out = in_thread(lambda: f(0x7A6A5A4A))
    assert pause.paused.wait(10)  # inside the call's memory.grow
    inst.close()
    assert inst.closed
    nxt = Instance(mod)
    assert nxt.memory(0)._state.slot.index != own_slot  # the call still holds its slot
    pause.go()
    t.join(10)
    assert out == {"value": 0x7A6A5A4A}  # it completed, on its own memory
    assert nxt.memory(0).read(0, 12) == b"module-bytes" and nxt.memory(0).size_pages == 1
    assert pool.live_memories == 1  # the call left: its slot went back
    with pytest.raises(ValueError, match="closed"):
        f(1)
    nxt.close()
    assert pool.live_instances == pool.live_memories == 0
    pool.close()


def test_every_use_after_close_raises_a_clear_error():
    mod = Module(Engine(), wat('(module (memory (export "m") 1 4) (global (export "g") (mut i32) (i32.const 7)) '
                               '(table (export "t") 1 funcref) (func (export "f") (result i32) (i32.const 1)))'))
    inst = Instance(mod)
    mem, g, tab, f = (inst.exports[n] for n in ("m", "g", "t", "f"))
    inst.close()
    for use in (lambda: mem.read(0, 1), lambda: mem.write(0, b"x"), lambda: mem.load_i32(0),
                lambda: mem.store_i32(0, 1), lambda: mem.fill(0, 1, 1), lambda: mem.grow(1),
                lambda: g.value, lambda: tab.get(0), f, lambda: inst.memory(0),
                lambda: inst.exports["m"]):
        with pytest.raises(ValueError, match="closed"):
            use()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_an_imported_memory_stays_allocated_until_its_importer_closes(pooled):
    pool = make_pool(max_instances=2) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    exporter = Instance(Module(eng, wat(DATA_MODULE)))
    mem = exporter.exports["m"]
    start, end = mem.reservation_range
    importer = Instance(Module(eng, wat('(module (import "e" "m" (memory 1 4)) '
                                        '(func (export "peek") (result i32) (i32.load8_u (i32.const 0))))')),
                        {("e", "m"): mem})
    exporter.close()  # first: its views raise from now on, the pages stay
    with pytest.raises(ValueError, match="closed"):
        mem.read(0, 1)
    assert importer.exports["peek"]() == ord("m")  # and its code still runs on them
    if pool is not None:
        assert pool.live_memories == 1
    else:
        from tests.helpers import parse_maps
        assert any(s <= start < e for s, e, *_ in parse_maps())  # still mapped
    importer.close()
    if pool is not None:
        assert pool.live_instances == pool.live_memories == 0
        pool.close()
    else:
        from tests.helpers import parse_maps
        assert not any(s < end and start < e for s, e, *_ in parse_maps())  # unmapped now


def test_an_imported_table_stays_allocated_until_its_importer_closes():
    """The importer's code keeps running on an imported table whose definer closed first
    (its storage freed under the importer's call_indirect would crash the process)."""
    eng = Engine()
    exporter = Instance(Module(eng, wat('(module (table (export "t") 4 funcref))')))
    tab = exporter.exports["t"]
    importer = Instance(Module(eng, wat("""(module (import "e" "t" (table 4 funcref))
      (type $r (func (result i32)))
      (func $seven (result i32) i32.const 7) (elem (i32.const 2) $seven)
      (func (export "via") (param i32) (result i32) local.get 0 call_indirect (type $r)))""")),
                        {("e", "t"): tab})
    assert importer.exports["via"](2) == 7
    exporter.close()  # first: its views raise from now on, the storage stays
    with pytest.raises(ValueError, match="closed"):
        tab.get(2)
    assert importer.exports["via"](2) == 7
    with pytest.raises(Trap):
        importer.exports["via"](1)  # a null element: still a wasm trap, not a crash
    importer.close()
    assert tab._shares == 0  # freed with its last holder


def test_a_call_in_flight_while_its_instance_closes_keeps_its_tables():
    """A host function closes the instance mid-call; the call goes on to a call_indirect
    through the instance's own table, which must still be there (released after it)."""
    from runtime import Func
    from wasmenv import FuncType
    box = {}
    src = wat("""(module (import "h" "close" (func $close))
      (type $r (func (result i32)))
      (table 4 funcref) (func $seven (result i32) i32.const 7) (elem (i32.const 2) $seven)
      (func (export "run") (result i32) call $close i32.const 2 call_indirect (type $r)))""")
    inst = Instance(Module(Engine(), src), {("h", "close"): Func(FuncType([], []), lambda: box["i"].close())})
    box["i"] = inst
    table = inst.tables[0]
    assert inst.exports["run"]() == 7  # finished on its own table, closed meanwhile
    assert inst.closed and table.closed and table._shares == 0  # given back after the call
    with pytest.raises(ValueError, match="closed"):
        inst.exports["run"]()


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
    assert pool.live_instances == pool.live_memories == 0
    pool.close()


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

    def close_them():
        for view in (mem, tab, glob):
            view.close()

    src = wat("""(module (import "h" "close" (func $close)) (import "h" "m" (memory 1 4))
      (import "h" "t" (table 4 funcref)) (import "h" "g" (global $g (mut i32)))
      (type $r (func (result i32)))
      (func (export "run") (param i32) (result i32)
        call $close
        (i32.store (i32.const 8) (local.get 0))
        (global.set $g (i32.add (global.get $g) (i32.const 1)))
        (i32.add (i32.add (i32.load (i32.const 8)) (global.get $g))
                 (call_indirect (type $r) (i32.const 1)))))""")
    imports = {("h", "close"): Func(FuncType([], []), close_them), ("h", "m"): mem,
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
    assert pool.live_instances == pool.live_memories == 0
    pool.close()


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
    assert pool.live_instances == pool.live_memories == 0
    pool.close()


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
    assert pool.live_instances == pool.live_memories == 0
    pool.close()


@pytest.mark.parametrize("with_table", [False, True], ids=["memory-only", "and-a-table"])
@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_an_importer_closed_during_its_call_keeps_the_imported_memory_until_the_call_returns(pooled, with_table):
    """A host function closes the imported (host-made) memory and then the importer itself
    mid-call: the call goes on storing to and loading from that memory, which is released
    only when the call returns (with or without a table to count the call)."""
    from runtime import Func, Memory
    from wasmenv import FuncType
    pool = make_pool(max_instances=2) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    mem = Memory.new(eng, 1, 4)
    box = {}

    def close_them():
        mem.close()
        box["i"].close()

    table = "(table 1 funcref)" if with_table else ""
    src = wat(f"""(module (import "h" "close" (func $close)) (import "h" "m" (memory 1 4)) {table}
      (func (export "run") (param i32) (result i32)
        call $close
        (i32.store (i32.const 0xFFF0) (local.get 0))
        (i32.load (i32.const 0xFFF0))))""")
    inst = box["i"] = Instance(Module(eng, src), {("h", "close"): Func(FuncType([], []), close_them),
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
    from runtime import Func
    from wasmenv import FuncType
    pool = make_pool(max_instances=3) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    a = Instance(Module(eng, wat("""(module (memory 1)
      (func (export "put") (param i32) (result i32)
        (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0))))""")))
    box = {}

    def close_them():
        a.close()
        box["b"].close()

    b = box["b"] = Instance(Module(eng, wat("""(module (import "h" "close" (func $close))
      (type $t (func (param i32) (result i32))) (table 1 funcref)
      (global (export "g") (mut funcref) (ref.null func))
      (func (export "run") (param i32) (result i32)
        (table.set (i32.const 0) (global.get 0))
        call $close
        (call_indirect (type $t) (local.get 0) (i32.const 0))))""")),
        {("h", "close"): Func(FuncType([], []), close_them)})
    b.exports["g"].value = a.exports["put"]
    assert b.exports["run"](0x1234) == 0x1234
    assert a.closed and b.closed
    if pool is not None:
        assert pool.live_instances == pool.live_memories == 0
        pool.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_host_global_holding_a_closed_instances_function_keeps_its_memory(pooled):
    """A host global holds another instance's function (set at Global.new and from
    Python); that instance closes; an importer calls the function through the global: it
    runs on its own memory, never on the slot's next tenant, which stays released only
    once the global lets go."""
    from runtime import Global
    pool = make_pool(max_instances=4) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
    mod = Module(eng, wat("""(module (memory (export "m") 1)
      (func (export "put") (param i32) (result i32)
        (i32.store (i32.const 0xFFF0) (local.get 0)) (i32.load (i32.const 0xFFF0))))"""))
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
    if pool is not None:
        assert pool.live_memories == 0
        pool.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_function_stored_by_wasm_in_an_imported_table_keeps_its_memory_after_close(pooled):
    """An instance's code stores one of its functions in an imported (host) table
    (table.set: no Python sees it), then the instance closes and is garbage; a call
    through that element from another importer runs on the closed instance's own memory,
    never on the slot's next tenant; it goes once the table lets go."""
    from runtime import Table
    pool = make_pool(max_instances=4) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
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
    if pool is not None:
        assert pool.live_memories == 0  # the table let b's memory go
        pool.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_a_function_stored_by_wasm_in_an_imported_global_keeps_its_memory_after_close(pooled):
    """The same through an imported (host) funcref global: global.set of one of its
    functions, the instance closed and garbage; a call through the global from another
    importer runs on the closed instance's own memory; it goes once Python writes the
    global."""
    from runtime import Global
    pool = make_pool(max_instances=4) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
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
    if pool is not None:
        assert pool.live_memories == 0
        pool.close()


@pytest.mark.parametrize("pooled", [False, True], ids=["on-demand", "pooled"])
def test_an_importer_of_a_closed_instances_table_runs_its_functions_on_their_memory(pooled):
    """An importer of an instance's table (as a side module imports its main module's
    __indirect_function_table) calls through it after that instance closed and is
    garbage: the element's function runs on its own instance's memory (held until the
    importer closes), never on the slot's next tenant."""
    pool = make_pool(max_instances=4) if pooled else None
    eng = Engine(allocator=pool) if pooled else Engine()
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
    if pool is not None:
        assert pool.live_memories == 0
        pool.close()
