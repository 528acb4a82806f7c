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

import runtime.memory
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
    # (Allocation.open_one's call: the one-call path's, and the first instance's begin())
    pause = Pause(_ffi.instance_open_tables)
    monkeypatch.setattr(_ffi, "instance_open_tables", pause)
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
    pause = Pause(runtime.memory._grow)  # (wenv_memory_grow, entered: in flight)
    monkeypatch.setattr(runtime.memory, "_grow", pause)
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

GROW_AND_TAG = '''(module (import "host" "wait" (func $wait))
  (memory (export "m") 1 4) (data (i32.const 0) "module-bytes")
  (func (export "grow_and_tag") (param i32) (result i32)
    (drop (memory.grow (i32.const 1)))
    (call $wait)
    (i32.store (i32.const 65536) (local.get 0))
    (i32.load (i32.const 65536))))'''


def test_wasm_call_in_flight_while_its_instance_closes_finishes_on_its_own_memory():
    pool = make_pool(max_instances=2)
    mod = Module(Engine(allocator=pool), wat(GROW_AND_TAG))
    pause = Pause(lambda: None)  # (a host function the call waits in, after its grow)
    imports = {("host", "wait"): pause}
    inst = Instance(mod, imports)
    f = inst.exports["grow_and_tag"]
    own_slot = inst.memory(0)._state.slot.index
    t, out = in_thread(lambda: f(0x7A6A5A4A))
    assert pause.paused.wait(10)  # inside the call, its memory grown
    inst.close()
    assert inst.closed
    nxt = Instance(mod, imports)
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
