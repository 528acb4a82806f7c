"""Wasm backtraces of traps (Trap.frames, Trap.trace; runtime/backtrace.py) against
wasmtime-py's frames: function indices and names, module names, and the offsets, which
agree by definition (the trapping instruction, the call in flight)."""
import pickle

import pytest
import wasmtime as wt

from runtime import Engine, Instance, Module, Trap, TrapCode
from runtime.backtrace import FrameInfo, function_names
from tests.helpers import wat

CHAIN = wat('''(module $m (memory 1)
  (func $inner (param i32) (result i32) local.get 0 i32.const 0 i32.div_u)
  (func $middle (param i32) (result i32) i32.const 1 drop local.get 0 call $inner)
  (func $outer (export "div") (param i32) (result i32) local.get 0 call $middle)
  (func (export "unreachable") nop unreachable)
  (func $load (export "load") (param i32) (result i32) local.get 0 i32.load offset=8)
  (func (export "via_load") (param i32) (result i32) local.get 0 call $load)
  (func $rec (export "rec") (param i32) (result i32) local.get 0 call $rec))''')
DOWN = wat('''(module $m
  (func $down (export "down") (param i32) (result i32)
    local.get 0 i32.eqz if unreachable end
    local.get 0 i32.const 1 i32.sub call $down))''')
ANONYMOUS = wat('''(module (func (export "f") (param i32) (result i32)
  local.get 0 i32.const 0 i32.rem_s))''')


def frames_of(frames):
    return [(f.func_index, f.func_name, f.module_name, f.func_offset, f.module_offset)
            for f in frames]


def both(wasm, name, args, engine=None):
    """(our Trap, wasmtime's Trap) of calling export ``name``."""
    inst = Instance(Module(engine or Engine(), wasm))
    with pytest.raises(Trap) as ours:
        inst.exports[name](*args)
    store = wt.Store(wt.Engine())
    func = wt.Instance(store, wt.Module(store.engine, wasm), []).exports(store)[name]
    with pytest.raises(wt.Trap) as theirs:
        func(store, *args)
    return ours.value, theirs.value


def wasmtime_trace(trap):
    """The backtrace lines of a wasmtime trap's message."""
    lines = trap.message.split("wasm backtrace:\n")[1].split("\n\n")[0].splitlines()
    return [line for line in lines if line.strip()]


@pytest.mark.oracle
@pytest.mark.parametrize("wasm,name,args", [
    (CHAIN, "div", (7,)), (CHAIN, "unreachable", ()), (CHAIN, "via_load", (65530,)),
    (CHAIN, "load", (0xFFFFFFF0,)), (ANONYMOUS, "f", (3,))])
@pytest.mark.parametrize("signals", [True, False])
def test_frames_and_trace_as_wasmtime(wasm, name, args, signals):
    ours, theirs = both(wasm, name, args, Engine(signals_based_traps=signals))
    assert ours.code.name == theirs.trap_code.name
    assert frames_of(ours.frames) == frames_of(theirs.frames)
    assert ours.trace == wasmtime_trace(theirs)


@pytest.mark.oracle
def test_guard_fault_and_explicit_check_report_the_same_frames():
    raw, _ = both(CHAIN, "via_load", (70000,), Engine())
    checked, theirs = both(CHAIN, "via_load", (70000,), Engine(signals_based_traps=False))
    assert raw.guard_fault and not checked.guard_fault
    assert frames_of(raw.frames) == frames_of(checked.frames) == frames_of(theirs.frames)
    assert [f.func_name for f in raw.frames] == ["load", None]


@pytest.mark.oracle
def test_stack_overflow_frames_are_the_recursion():
    ours, theirs = both(CHAIN, "rec", (1,))
    assert ours.code is TrapCode.STACK_OVERFLOW
    assert {f.func_name for f in ours.frames} == {f.func_name for f in theirs.frames} == {"rec"}
    # every frame is the call in flight, where wasmtime's outer frames are
    assert ours.frames[0].module_offset == theirs.frames[1].module_offset
    assert len(ours.frames) == len(theirs.frames) == 20  # wasm_backtrace_max_frames


@pytest.mark.oracle
@pytest.mark.parametrize("depth", [3, 100])
def test_deep_trap_frames_as_wasmtime(depth):
    """The innermost 20 frames, as wasmtime's; the trapping frame's offset is the
    ``unreachable`` itself (Cranelift reports the ``if`` it folded it into)."""
    ours, theirs = both(DOWN, "down", (depth,))
    assert frames_of(ours.frames)[1:] == frames_of(theirs.frames)[1:]
    assert ours.frames[0][:3] == (0, "down", "m") == tuple(frames_of(theirs.frames)[0][:3])
    unreachable = DOWN.index(b"\x04\x40\x00") + 2
    assert ours.frames[0].module_offset == unreachable == theirs.frames[0].module_offset + 2


def test_backtrace_max_frames_keeps_the_innermost():
    wasm = DOWN
    for limit, depth in ((20, 5), (20, 100), (1, 100), (1000, 500), (200_000, 100_000)):
        inst = Instance(Module(Engine(wasm_backtrace_max_frames=limit), wasm))
        with pytest.raises(Trap) as exc:
            inst.exports["down"](depth)
        frames = exc.value.frames
        assert len(frames) == min(limit, depth + 1)
        assert all(f.func_name == "down" for f in frames)
        assert frames[0].func_offset < frames[-1].func_offset or len(frames) == 1  # unreachable, then calls
    with pytest.raises(ValueError):
        Engine(wasm_backtrace_max_frames=0)


def test_out_of_fuel_and_interrupt_point_at_the_loop():
    wasm = wat('(module $spin (func $spin (export "spin") nop (loop br 0)))')
    for engine in (Engine(consume_fuel=True), Engine(epoch_interruption=True)):
        inst = Instance(Module(engine, wasm))
        if engine.consume_fuel:
            inst.store.set_fuel(1000)
        else:
            inst.store.set_epoch_deadline(0)
        with pytest.raises(Trap) as exc:
            inst.exports["spin"]()
        frame, = exc.value.frames
        body_start = wasm.index(b"\x01\x03\x40") - 1  # locals count, then nop; loop
        assert (frame.func_name, frame.module_name) == ("spin", "spin")
        if engine.consume_fuel:
            assert frame.module_offset == body_start + 2  # the loop's header
        else:
            assert frame.module_offset in (body_start, body_start + 2)  # entry or loop


def test_traps_outside_wasm_code_have_no_frames():
    wasm = wat('(module (memory 1) (data (i32.const 70000) "x"))')
    with pytest.raises(Trap) as exc:
        Instance(Module(Engine(), wasm))
    assert exc.value.frames == [] and exc.value.trace == []
    assert Trap(TrapCode.UNREACHABLE).frames == []


def test_frames_outlive_the_instance_and_module():
    inst = Instance(Module(Engine(), CHAIN))
    with pytest.raises(Trap) as exc:
        inst.exports["div"](1)
    trap = exc.value
    trap.__traceback__ = None  # (its frames' locals would keep the instance)
    del exc
    inst.close()
    del inst
    import gc
    gc.collect()
    assert [f.func_name for f in trap.frames] == ["inner", "middle", "outer"]


def test_frames_survive_pickle():
    ours, _ = both(CHAIN, "div", (1,))
    again = pickle.loads(pickle.dumps(ours))
    assert again.frames == ours.frames and isinstance(again.frames[0], FrameInfo)
    assert again.trace == ours.trace and again.code is ours.code


def test_function_names_reads_the_name_section_and_ignores_the_rest():
    assert function_names(CHAIN) == {0: "inner", 1: "middle", 2: "outer", 4: "load", 6: "rec"}
    assert function_names(ANONYMOUS) == {}
    assert function_names(CHAIN[:-3]) == {}  # truncated: malformed, names nothing
    assert function_names(b"junk") == {} and function_names(None) == {}


@pytest.mark.parametrize("per_thread", [2_500, pytest.param(12_500, marks=pytest.mark.slow)])
def test_traps_with_frames_from_8_threads_leak_nothing(per_thread):
    """Guard-fault and unreachable traps, frames read each time: open fds unchanged and
    resident memory within 2 MiB after warm-up (issue 15, robustness: 100,000 with -m slow)."""
    import threading

    from tests.helpers import open_fd_count
    inst = Instance(Module(Engine(), CHAIN))
    via_load, unreachable = inst.exports["via_load"], inst.exports["unreachable"]

    def work(n):
        for k in range(n):
            try:
                via_load(1 << 20) if k & 1 else unreachable()
            except Trap as trap:
                assert trap.frames[0].func_name == ("load" if k & 1 else None)

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    work(5000)
    fds, before = open_fd_count(), rss()
    threads = [threading.Thread(target=work, args=(per_thread,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert open_fd_count() == fds
    assert rss() - before < 2 << 20
