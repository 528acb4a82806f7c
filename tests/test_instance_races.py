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

import runtime.instance as instance_mod
from runtime import Engine, Instance, Module, _ffi
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

def test_stale_pooled_grow_never_opens_pages_of_the_next_tenant(monkeypatch):
    pool = make_pool(max_instances=1)
    mod = Module(Engine(allocator=pool), wat(DATA_MODULE))
    inst = Instance(mod)
    mem = inst.exports["m"]
    pause = Pause(_ffi.pool_grow)
    monkeypatch.setattr(_ffi, "pool_grow", pause)
    t, out = in_thread(lambda: mem.grow(2))
    assert pause.paused.wait(10)
    inst.close()
    nxt = Instance(mod)  # the only slot: the one the stale grow holds the index of
    pause.go()
    t.join(10)
    assert out.get("value", -1) == -1 or isinstance(out.get("error"), ValueError), out
    m2 = nxt.exports["m"]
    assert m2.size_pages == 1
    slot = m2._state.slot
    assert slot.state["accessible"] == WASM_PAGE  # nothing past its size became R/W
    from runtime import Trap
    with pytest.raises(Trap):
        m2.load_i32(WASM_PAGE)  # still traps: the page past its end is PROT_NONE
    nxt.close()
    assert pool.live_instances == pool.live_memories == 0
    pool.close()

