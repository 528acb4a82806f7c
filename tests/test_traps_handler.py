"""The trap handler (SIGSEGV/SIGBUS): real faults still crash, chaining with faulthandler
in every order, a sent SIGSEGV, wasmtime in the same process, and trap loops that keep RSS,
fds and mappings flat."""
import psutil
import pytest

from runtime import _ffi
from runtime.memory import Memory
from runtime.traps import Trap
from tests.helpers import MIB, WASM_PAGE, engine, run_child


# ---- handler chaining: real faults still crash ----------------------------------------

CHILD_PRELUDE = """
import ctypes, faulthandler, sys
from types import SimpleNamespace
from runtime import Memory, OnDemandAllocator, Trap
from runtime.traps import install_trap_handler, trap_handler_on_top
from wasmenv import Tunables
eng = SimpleNamespace(tunables=Tunables(), allocator=OnDemandAllocator())
def trap_once(m):
    try:
        m.load_i32(1 << 20)
    except Trap as t:
        assert t.guard_fault
        print("trapped", flush=True)
def crash():
    print("crashing", flush=True)
    ctypes.string_at(1)
    print("survived", flush=True)
"""


def _assert_crashed(proc, traceback):
    assert "crashing" in proc.stdout, proc.stderr
    assert "survived" not in proc.stdout
    assert proc.returncode == -11, (proc.returncode, proc.stdout, proc.stderr)
    if traceback:
        assert proc.stderr.count("Fatal Python error: Segmentation fault") == 1, proc.stderr
        assert 'File "<string>"' in proc.stderr and "in crash" in proc.stderr, proc.stderr
    else:
        assert "Fatal Python error" not in proc.stderr


def test_real_crash_without_faulthandler():
    proc = run_child(CHILD_PRELUDE + """
m = Memory.new(eng, 1)
trap_once(m)
crash()
""")
    assert "trapped" in proc.stdout
    _assert_crashed(proc, traceback=False)


def test_faulthandler_enabled_before_our_handler():
    proc = run_child(CHILD_PRELUDE + """
faulthandler.enable()
m = Memory.new(eng, 1)
assert trap_handler_on_top()
trap_once(m)
crash()
""")
    assert "trapped" in proc.stdout
    _assert_crashed(proc, traceback=True)


def test_faulthandler_from_the_command_line():
    proc = run_child(CHILD_PRELUDE + """
assert faulthandler.is_enabled()
m = Memory.new(eng, 1)
trap_once(m)
crash()
""", env_extra={"PYTHONFAULTHANDLER": "1"})
    assert "trapped" in proc.stdout
    _assert_crashed(proc, traceback=True)


def test_faulthandler_enabled_after_our_handler():
    proc = run_child(CHILD_PRELUDE + """
m = Memory.new(eng, 1)
trap_once(m)
faulthandler.enable()
assert trap_handler_on_top()  # put back on top at once (it used to be left covered)
crash()
""")
    assert "trapped" in proc.stdout
    _assert_crashed(proc, traceback=True)


@pytest.mark.parametrize("how", ["install_trap_handler", "new_memory"])
def test_faulthandler_after_then_handler_put_back_on_top(how):
    """ours -> faulthandler -> ours again: traps work again, and a real crash still gets
    exactly one faulthandler traceback (no loop through the chain)."""
    proc = run_child(CHILD_PRELUDE + f"""
m = Memory.new(eng, 1)
faulthandler.enable()
if {how!r} == "install_trap_handler":
    install_trap_handler()
else:
    Memory.new(eng, 1)
assert trap_handler_on_top()
trap_once(m)
trap_once(m)
crash()
""")
    assert proc.stdout.count("trapped") == 2
    _assert_crashed(proc, traceback=True)


def test_faulthandler_disable_then_reinstall():
    proc = run_child(CHILD_PRELUDE + """
faulthandler.enable()
m = Memory.new(eng, 1)
faulthandler.disable()   # restores what it found (SIG_DFL): ours is put back on top at once
assert trap_handler_on_top()
install_trap_handler()
trap_once(m)
crash()
""")
    assert "trapped" in proc.stdout
    _assert_crashed(proc, traceback=False)


def test_many_cover_and_reinstall_cycles():
    """More re-installations than the handler history holds (32): still works."""
    proc = run_child(CHILD_PRELUDE + """
m = Memory.new(eng, 1)
for _ in range(40):
    faulthandler.enable()      # covers ours, which is put back on top at once
    assert trap_handler_on_top()
    install_trap_handler()     # ours on top again
    trap_once(m)
    faulthandler.disable()     # restores what it covered (ours)
    assert trap_handler_on_top()
faulthandler.enable()
install_trap_handler()
crash()
""")
    assert proc.stdout.count("trapped") == 40
    _assert_crashed(proc, traceback=True)


def test_sent_sigsegv_is_not_swallowed():
    proc = run_child(CHILD_PRELUDE + """
import os, signal
m = Memory.new(eng, 1)
trap_once(m)
print("crashing", flush=True)
os.kill(os.getpid(), signal.SIGSEGV)
print("survived", flush=True)
""")
    assert proc.returncode == -11 and "survived" not in proc.stdout


def test_wasmtime_in_the_same_process():
    """wasmtime installs its own handlers: with it on top (chaining to us) and with us
    put back on top (chaining to it), both kinds of trap work and real crashes crash."""
    proc = run_child(CHILD_PRELUDE + """
import wasmtime
faulthandler.enable()
m = Memory.new(eng, 1)
store = wasmtime.Store()
wat = '(module (memory (export "mem") 1) (func (export "ld") (param i32) (result i32) local.get 0 i32.load))'
ld = wasmtime.Instance(store, wasmtime.Module(store.engine, wat), []).exports(store)["ld"]
def wasm_trap():
    try:
        ld(store, 1 << 20)
    except wasmtime.Trap:
        print("wasm trapped", flush=True)
wasm_trap()
trap_once(m)                 # wasmtime's handler on top, chaining to ours
Memory.new(eng, 1)           # ours back on top, chaining to wasmtime's
assert trap_handler_on_top()
trap_once(m)
wasm_trap()
wasm_trap()
trap_once(m)
crash()
""")
    assert proc.stdout.count("trapped") == 6 and proc.stdout.count("wasm trapped") == 3, proc.stdout
    _assert_crashed(proc, traceback=True)


# ---- our handler stays installed whatever faulthandler does -----------------------------

def _faulthandler_orders():
    """Every sequence of up to 3 faulthandler.enable (E) / disable (D) calls with the
    first memory made (M) anywhere before the last of them."""
    import itertools
    out = []
    for n in range(1, 4):
        for ops in itertools.product("ED", repeat=n):
            for at in range(n):
                out.append("".join(ops[:at]) + "M" + "".join(ops[at:]))
    return out


FAULTHANDLER_ORDER_CHILD = CHILD_PRELUDE + """
m = None
for op in sys.argv[1]:
    if op == "M":
        m = Memory.new(eng, 1)
    elif op == "E":
        faulthandler.enable()
    else:
        faulthandler.disable()
    if m is not None:
        trap_once(m)
print("faulthandler", faulthandler.is_enabled(), flush=True)
crash()
"""


@pytest.mark.parametrize("order", _faulthandler_orders())
def test_every_order_of_faulthandler_enable_and_disable(order):
    """After each step a guard-page access still traps (our handler was kept on top,
    nobody called install_trap_handler), and a real crash still crashes: with exactly
    one faulthandler traceback if it is enabled at the end, none if not, never a hang."""
    proc = run_child(FAULTHANDLER_ORDER_CHILD, order, timeout=30)
    traps = len(order) - order.index("M")
    assert proc.stdout.count("trapped") == traps, (proc.returncode, proc.stdout, proc.stderr)
    enabled = "faulthandler True" in proc.stdout
    assert enabled == order.replace("M", "").endswith("E"), proc.stdout
    _assert_crashed(proc, traceback=enabled)


# ---- faults during wasm execution outside the accessed reservation still crash ---------

WASM_CHILD = """
import faulthandler, sys
from runtime import Engine, Instance, Module, Trap
from runtime import _ffi
from tests.helpers import wat
signals, target, traceback = sys.argv[1] == "signals", sys.argv[2], sys.argv[3] == "faulthandler"
if traceback:
    faulthandler.enable()
PROBE = wat('''(module (memory (export "mem") 1 3)
  (func $inner (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load") (param i32) (result i32) (call $inner (local.get 0))))''')
inst = Instance(Module(Engine(signals_based_traps=signals), PROBE))
other = Instance(Module(Engine(), PROBE))
mem, load = inst.exports["mem"], inst.exports["load"]
try:
    load(1 << 20)                     # the handler is installed and traps work
except Trap as t:
    assert t.guard_fault is signals
    print("trapped", flush=True)
# A wild base (what a runtime bug would look like): the wasm access now lands
# outside the reservation of the memory it accesses.
if target == "unmapped":
    wild = 4096                       # below mmap_min_addr: never mapped
else:                                 # a live reservation, but another memory's guard page
    om = other.exports["mem"]
    wild = om.base_address + om.byte_len
mem._desc.base = wild
print("crashing", flush=True)
try:
    load(0)
except BaseException as e:
    print("caught", type(e).__name__, e, flush=True)
print("survived", flush=True)
"""


@pytest.mark.parametrize("traceback", [False, True], ids=["plain", "faulthandler"])
@pytest.mark.parametrize("target", ["unmapped", "other_reservation"])
@pytest.mark.parametrize("signals", [True, False], ids=["signals", "checks"])
def test_fault_outside_the_reservation_during_wasm_execution_crashes(signals, target, traceback):
    """The handler is armed while wasm runs, yet a fault outside the reservation of the
    memory that code accesses (unmapped, or inside another live memory's guard pages) is
    never a Trap: the process dies of SIGSEGV, through faulthandler when it is enabled."""
    proc = run_child(WASM_CHILD, "signals" if signals else "checks", target,
                     "faulthandler" if traceback else "plain")
    assert "trapped" in proc.stdout, proc.stderr
    assert "caught" not in proc.stdout, proc.stdout
    if not traceback:
        _assert_crashed(proc, traceback=False)
        return
    assert "crashing" in proc.stdout and "survived" not in proc.stdout
    assert proc.returncode == -11, (proc.returncode, proc.stderr)
    assert proc.stderr.count("Fatal Python error: Segmentation fault") == 1, proc.stderr
    assert 'File "<string>"' in proc.stderr, proc.stderr


# ---- trap loops do not leak -----------------------------------------------------------

def _trap_loop(count):
    with Memory.new(engine(), 1) as guard_mem, Memory.new(engine(), 1, memory64=True) as checked_mem:
        proc = psutil.Process()
        for m in (guard_mem, checked_mem):
            for i in range(2000):
                try:
                    m.load_i32(WASM_PAGE + i)
                except Trap:
                    pass
        rss0, fds0, maps0 = proc.memory_info().rss, proc.num_fds(), _ffi.mapping_count()
        trapped = 0
        load = guard_mem.load_i32
        for i in range(count):
            try:
                load(WASM_PAGE + (i & 0xFFFF))
            except Trap:
                trapped += 1
        for i in range(count // 10):
            try:
                checked_mem.load_i64(WASM_PAGE + i)
            except Trap:
                trapped += 1
        rss1, fds1, maps1 = proc.memory_info().rss, proc.num_fds(), _ffi.mapping_count()
        assert trapped == count + count // 10
        assert fds1 == fds0 and maps1 == maps0
        assert rss1 - rss0 < 4 * MIB, (rss0, rss1)
        assert guard_mem.load_i32(0) == 0  # still healthy
        return rss1 - rss0


def test_100k_trapping_accesses_keep_rss_and_fds_flat():
    _trap_loop(100_000)


@pytest.mark.slow
def test_1m_trapping_accesses_keep_rss_and_fds_flat():
    _trap_loop(1_000_000)
