"""Guard pages from wasm code (issue 15): the trap matrix driven by loads and stores in
wasm, against wasmtime-py configured alike, and the proof that a raw access really runs
unchecked in the built extension.

The matrix: every load and store width (``i64.load8_s`` ...) x boundary addresses x memarg
offsets x memory style (static 4 GiB, static 4 pages, dynamic, pool slots of 4 GiB and of
4 pages) x offset-guard size x before/after ``memory.grow`` x memory32/64 x
``signals_based_traps``, in two code forms
(``op (local.get)`` and the translator's fused ``op (i32.add (local.get) (i32.const))``).
Each access must give wasmtime's result or trap code, and a store that traps must write
nothing. On our side it must also trap at its wasm address, by the path the plan says:
a raw access (``0xFFFFFFFF + offset + width <= bound + guard``, 32-bit static, signals on)
through the fault handler (``Trap.guard_fault``, and this thread's count of faults caught
moves by one), every other access through the explicit check (the count stays).

The default suite runs 22 of the 80 configurations: 20 that cover every pair of dimension
values (``PAIRWISE``) and those of ``MOST_RAW`` they lack; ``-m slow`` runs the other 58.
"""
import ctypes
import itertools
import random

import pytest
import wasmtime as wt

from runtime import Engine, Instance, Module, PoolingAllocator, Trap, TrapCode, _ffi
from tests.accessor_model import GUARDS, OFFSETS32, OFFSETS64, U32, U64, addresses
from tests.helpers import GIB, WASM_PAGE, wat
from wasmenv import Tunables

pytestmark = pytest.mark.oracle

#: op -> (width in bytes, value type the test passes or gets: floats as their bits)
LOADS = {"i32.load": (4, "i32"), "i64.load": (8, "i64"), "f32.load": (4, "i32"), "f64.load": (8, "i64"),
         "i32.load8_s": (1, "i32"), "i32.load8_u": (1, "i32"), "i32.load16_s": (2, "i32"),
         "i32.load16_u": (2, "i32"), "i64.load8_s": (1, "i64"), "i64.load8_u": (1, "i64"),
         "i64.load16_s": (2, "i64"), "i64.load16_u": (2, "i64"), "i64.load32_s": (4, "i64"),
         "i64.load32_u": (4, "i64")}
STORES = {"i32.store": (4, "i32"), "i64.store": (8, "i64"), "f32.store": (4, "i32"), "f64.store": (8, "i64"),
          "i32.store8": (1, "i32"), "i32.store16": (2, "i32"), "i64.store8": (1, "i64"),
          "i64.store16": (2, "i64"), "i64.store32": (4, "i64")}
#: static memories with a 4 GiB and a 4-page bound, a dynamic one, and memories in the slot
#: of a PoolingAllocator (4 GiB and 4 pages), in the slot's second tenancy.
STYLES = ["static4g", "static_small", "dynamic", "pooled4g", "pooled_small"]
#: The "ai" form adds this to the address in wasm (i32.add, wrapping) before the access.
AI_IMM = 16
#: Bytes at the end of memory compared after every trapping store.
TAIL = 16


def _bits_in(op, t):
    """The access, its value passed or returned as bits (f32/f64 through reinterpret)."""
    if op == "f32.load":
        return f"({op} {{memarg}} {{addr}}) i32.reinterpret_f32"
    if op == "f64.load":
        return f"({op} {{memarg}} {{addr}}) i64.reinterpret_f64"
    if op == "f32.store":
        return f"({op} {{memarg}} {{addr}} (f32.reinterpret_i32 (local.get 1)))"
    if op == "f64.store":
        return f"({op} {{memarg}} {{addr}} (f64.reinterpret_i64 (local.get 1)))"
    return f"({op} {{memarg}} {{addr}}{'' if op in LOADS else ' (local.get 1)'})"


def forms(memory64):
    """Code forms of the address operand: plain, and (memory32) the fused add-immediate."""
    return ["plain"] if memory64 else ["plain", "ai"]


def offsets(config, width):
    """The memarg offsets tried for an access of ``width`` bytes: the usual ones and, for a
    static memory, the largest offset the raw rule allows and the next one (where raw
    turns into checked)."""
    found = list(OFFSETS64 if config.memory64 else OFFSETS32)
    if config.bound is not None:
        edge = config.bound + config.guard - 0xFFFF_FFFF - width
        found += [o for o in (edge, edge + 1) if 0 <= o < U32 and o not in found]
    return found


def matrix_module(config):
    """WAT of a module with one export per (op, offset, form), ``grow`` and ``mem``."""
    memory64 = config.memory64
    at = "i64" if memory64 else "i32"
    limits = "1" if config.style == "dynamic" else "1 3"  # dynamic: no maximum, growing moves it
    funcs = []
    for op, (width, t) in itertools.chain(LOADS.items(), STORES.items()):
        body = _bits_in(op, t)
        for off in offsets(config, width):
            for form in forms(memory64):
                addr = "(local.get 0)" if form == "plain" else f"(i32.add (local.get 0) (i32.const {AI_IMM}))"
                sig = f"(param {at}) (result {t})" if op in LOADS else f"(param {at} {t})"
                funcs.append(f'(func (export "{op}/{off}/{form}") {sig} '
                             + body.format(memarg=f"offset={off}", addr=addr) + ")")
    funcs.append(f'(func (export "grow") (param {at}) (result {at}) (memory.grow (local.get 0)))')
    pattern = "".join(f"\\{b:02x}" for b in random.Random(7).randbytes(64))
    return (f'(module (memory (export "mem") {at} {limits})\n'
            f'(data ({at}.const {WASM_PAGE - 64}) "{pattern}") (data ({at}.const 0) "{pattern}")\n'
            + "\n".join(funcs) + ")")


class Config:
    """One cell of the configuration matrix: our engine and wasmtime's, set alike."""

    pool = None

    def __init__(self, style, guard, memory64, signals):
        self.style, self.guard, self.memory64, self.signals = style, guard, memory64, signals
        cfg = wt.Config()
        cfg.wasm_memory64 = True
        cfg.signals_based_traps = signals
        cfg.memory_guard_size = guard
        if style == "static4g":
            self.bound = 4 * GIB
            tunables = Tunables(static_memory_offset_guard_size=guard)
            cfg.memory_reservation, cfg.memory_may_move = self.bound, False
        elif style == "static_small":
            self.bound = 4 * WASM_PAGE
            tunables = Tunables(static_memory_bound=4, static_memory_offset_guard_size=guard)
            cfg.memory_reservation, cfg.memory_may_move = self.bound, False
        elif style.startswith("pooled"):  # the slot decides: its bound and the pool's guard
            pages = 65536 if style == "pooled4g" else 4
            self.bound = pages * WASM_PAGE
            self.pool = PoolingAllocator(1, 1, pages, 0, 0, guard_bytes=guard)
            tunables = None
            cfg.memory_reservation, cfg.memory_may_move = self.bound, False
        else:  # a one-page growth reserve: the grow by two pages moves the memory
            self.bound = None
            tunables = Tunables(static_memory_bound=4, dynamic_memory_offset_guard_size=guard,
                                dynamic_memory_growth_reserve=WASM_PAGE)
            cfg.memory_reservation, cfg.memory_may_move = 0, True
            cfg.memory_reservation_for_growth = WASM_PAGE
        cfg.memory_init_cow = True
        self.engine = Engine(tunables, self.pool, signals_based_traps=signals)
        self.wt_engine = wt.Engine(cfg)

    def raw(self, offset, width):
        """Whether the plan lets the access go unchecked (DESIGN.md, "Execution")."""
        return (self.signals and self.bound is not None and not self.memory64
                and 0xFFFF_FFFF + offset + width <= self.bound + self.guard)

    def __repr__(self):
        return (f"{self.style}/g{self.guard:#x}/{'m64' if self.memory64 else 'm32'}/"
                f"{'signals' if self.signals else 'checks'}")


def _signed(v, t):
    bits = 32 if t == "i32" else 64
    v %= 1 << bits
    return v - (1 << bits) if v >> (bits - 1) else v


class Pair:
    """The matrix module instantiated in both runtimes under one Config."""

    def __init__(self, config):
        self.config = config
        wasm = wat(matrix_module(config))
        module = Module(config.engine, wasm)
        if config.pool is not None:  # a first tenant grows the slot to 3 pages and dirties it
            with Instance(module) as first:
                assert first.exports["grow"](2) == 1
                first.exports["mem"].fill(0, 0xFE, 3 * WASM_PAGE)
        self.inst = Instance(module)
        self.mem = self.inst.exports["mem"]
        self.store = wt.Store(config.wt_engine)
        wt_inst = wt.Instance(self.store, wt.Module(config.wt_engine, wasm), [])
        self.wt_exports = wt_inst.exports(self.store)
        self.wt_mem = self.wt_exports["mem"]
        self.at = "i64" if config.memory64 else "i32"

    def byte_len(self):
        n = self.mem.byte_len
        assert n == self.wt_mem.data_len(self.store)
        return n

    def ours_tail(self, n):
        return self.mem.read(n - TAIL, TAIL)

    def theirs_tail(self, n):
        return bytes(self.wt_mem.read(self.store, n - TAIL, n))

    def access(self, op, off, form, addr, value, byte_len):
        """Run one access on both sides; a list of what went wrong (empty: agreed)."""
        width, t = LOADS[op] if op in LOADS else STORES[op]
        store = op in STORES
        ea = addr + off
        arg = (addr - AI_IMM) % U32 if form == "ai" else addr
        args = (_signed(arg, self.at),) + ((_signed(value, t),) if store else ())
        name = f"{op}/{off}/{form}"
        where = f"{self.config!r} {name}({addr:#x}) len {byte_len:#x}"
        problems = []
        caught = _ffi.thread_faults_caught()
        try:
            ours = ("ok", self.inst.exports[name](*args))
        except Trap as trap:
            ours = ("trap", trap.code.name)
            raw = self.config.raw(off, width)
            # (a memory64 address + offset past 2**64 is reported saturated, as 2**64 - 1)
            if trap.address != min(ea, U64 - 1):
                problems.append(f"{where}: trap address {trap.address:#x}, want {ea:#x}")
            if trap.guard_fault is not raw:
                problems.append(f"{where}: guard_fault {trap.guard_fault}, the plan says raw={raw}")
            if _ffi.thread_faults_caught() - caught != int(raw):
                problems.append(f"{where}: {_ffi.thread_faults_caught() - caught} faults caught, raw={raw}")
        else:
            if _ffi.thread_faults_caught() != caught:
                problems.append(f"{where}: a fault was caught and no trap raised")
        try:
            theirs = ("ok", self.wt_exports[name](self.store, *args))
        except wt.Trap as trap:
            theirs = ("trap", trap.trap_code.name if trap.trap_code is not None else str(trap))
        want = ("trap", TrapCode.MEMORY_OUT_OF_BOUNDS.name) if ea + width > byte_len else ours
        if ours != theirs or ours[0] != want[0]:
            problems.append(f"{where}: ours {ours}, wasmtime {theirs}, in bounds {want[0] == 'ok'}")
        if store and ours[0] == "trap" and self.ours_tail(byte_len) != self.theirs_tail(byte_len):
            problems.append(f"{where}: memory tails differ after a trapping store")
        return problems

    def run_phase(self, rng):
        """Every store, then every load, at every boundary address and offset."""
        byte_len = self.byte_len()
        problems, calls = [], 0
        for op in itertools.chain(STORES, LOADS):
            width = (LOADS[op] if op in LOADS else STORES[op])[0]
            for off in offsets(self.config, width):
                for form in forms(self.config.memory64):
                    for addr in addresses(byte_len, width, off, self.config.memory64):
                        problems += self.access(op, off, form, addr, rng.getrandbits(8 * width), byte_len)
                        calls += 1
        mine = self.mem.read(0, byte_len)
        if mine != bytes(self.wt_mem.read(self.store, 0, byte_len)):
            problems.append(f"{self.config!r}: memories differ after the phase at len {byte_len:#x}")
        return problems, calls


def run_config(config):
    """Both phases (before and after growing by two pages); (problems, calls)."""
    pair = Pair(config)
    assert pair.mem.plan.is_static == (config.bound is not None), config
    rng = random.Random(repr(config))
    problems, calls = pair.run_phase(rng)
    base = pair.mem.base_address
    assert pair.inst.exports["grow"](2) == 1 and pair.wt_exports["grow"](pair.store, 2) == 1
    if config.style == "dynamic":
        assert pair.mem.base_address != base  # the grow moved it: the accesses run on the new base
    more, more_calls = pair.run_phase(rng)
    pair.inst.close()
    if config.pool is not None:
        config.pool.close()
    return problems + more, calls + more_calls


ALL = [(s, g, m, sig) for s in STYLES for g in GUARDS for m in (False, True) for sig in (True, False)]
#: Every style x guard, memory64 and signals rotating so that every pair of values of any
#: two dimensions appears (12 of the 48).
PAIRWISE = [(s, g, bool((gi % 2) ^ (si % 2)), bool(not ((gi // 2) ^ (si % 2))))
            for si, s in enumerate(STYLES) for gi, g in enumerate(GUARDS)]
#: Plus the cells where raw accesses are the most (32-bit static, signals on, a 2 GiB guard:
#: Wasmtime's default on 64-bit hosts, the same in a pool slot, and under 4-page bounds).
MOST_RAW = [(s, 2 * GIB, False, True) for s in STYLES if s != "dynamic"]
DEFAULT = PAIRWISE + [c for c in MOST_RAW if c not in PAIRWISE]


def _ids(cells):
    return [f"{s}-g{g:#x}-{'m64' if m else 'm32'}-{'sig' if sig else 'chk'}" for s, g, m, sig in cells]


def test_pairwise_covers_every_pair_of_values():
    assert len(ALL) == 5 * 4 * 2 * 2
    for i, j in itertools.combinations(range(4), 2):
        want = {(c[i], c[j]) for c in ALL}
        assert {(c[i], c[j]) for c in PAIRWISE} == want, (i, j)
    assert len(set(DEFAULT)) == len(DEFAULT) and set(MOST_RAW) <= set(DEFAULT) <= set(ALL)


@pytest.mark.parametrize("cell", DEFAULT, ids=_ids(DEFAULT))
def test_trap_matrix_from_wasm_code(cell):
    config = Config(*cell)
    caught = _ffi.thread_faults_caught()
    problems, calls = run_config(config)
    assert problems == [], "\n".join(problems[:20])
    assert calls > 2000
    if config.raw(0, 8):  # the guard path was really taken, not only the checks
        assert _ffi.thread_faults_caught() - caught > 100
        assert any(config.raw(o, 8) and not config.raw(o + 1, 8) for o in offsets(config, 8))


@pytest.mark.slow
@pytest.mark.parametrize("cell", [c for c in ALL if c not in DEFAULT],
                         ids=_ids([c for c in ALL if c not in DEFAULT]))
def test_trap_matrix_from_wasm_code_full(cell):
    problems, calls = run_config(Config(*cell))
    assert problems == [], "\n".join(problems[:20])


# ---- a raw access is really unchecked -----------------------------------------------------

RAW_PROBE = """(module (memory (export "mem") 1 3)
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1))))"""
_PROT_NONE, _PROT_READ, _PROT_WRITE = 0, 1, 2


def _mprotect(addr, length, prot):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(addr, length, prot) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")


@pytest.mark.parametrize("signals", [True, False], ids=["signals", "checks"])
def test_raw_access_is_unchecked_in_the_built_extension(signals):
    """With signals_based_traps the translated load has no bounds check at all: the trap
    past the end comes from the fault handler (this thread's count of caught faults moves
    by one), and once the page past the end is made readable behind the runtime's back
    the same load *succeeds*, reading bytes outside the memory. Without signals the
    explicit check traps whatever the page protection is, and no fault is taken."""
    inst = Instance(Module(Engine(signals_based_traps=signals), wat(RAW_PROBE)))
    mem, load, store = inst.exports["mem"], inst.exports["load"], inst.exports["store"]
    end = mem.byte_len
    caught = _ffi.thread_faults_caught()
    assert load(end - 4) == 0 and _ffi.thread_faults_caught() == caught  # in bounds: no fault
    with pytest.raises(Trap) as info:
        load(end)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS and info.value.address == end
    assert info.value.guard_fault is signals
    assert _ffi.thread_faults_caught() - caught == int(signals)
    if signals:
        assert mem.base_address + end <= _ffi.last_fault_address() < mem.base_address + end + 4
    page = _ffi.PAGE_SIZE
    _mprotect(mem.base_address + end, page, _PROT_READ | _PROT_WRITE)
    try:
        ctypes.memmove(mem.base_address + end, b"\x78\x56\x34\x12", 4)
        caught = _ffi.thread_faults_caught()
        if signals:
            assert load(end) == 0x12345678  # read past the bound: nothing checked it
            store(end, 7)
            assert ctypes.string_at(mem.base_address + end, 4) == b"\x07\0\0\0"
        else:
            for call in (lambda: load(end), lambda: store(end, 7)):
                with pytest.raises(Trap) as info:
                    call()
                assert info.value.guard_fault is False and info.value.address == end
            assert ctypes.string_at(mem.base_address + end, 4) == b"\x78\x56\x34\x12"
        assert _ffi.thread_faults_caught() == caught
    finally:
        ctypes.memset(mem.base_address + end, 0, page)
        _mprotect(mem.base_address + end, page, _PROT_NONE)
    with pytest.raises(Trap) as info:
        load(end)
    assert info.value.guard_fault is signals
    assert mem.grow(1) == 1 and load(end) == 0  # grown over the page: accessible and zero


# ---- raw accesses after switching instances -------------------------------------------------

LOADER = """(module (memory (export "mem") 1 3) (data (i32.const 0) "\\2a")
  (func $load (export "load") (param i32) (result i32) (i32.load (local.get 0))))"""
CALLER = """(module (import "b" "load" (func $bload (param i32) (result i32)))
  (import "h" "host" (func $host (param i32)))
  (memory (export "mem") 2 3) (data (i32.const 0) "\\07")
  (func $via_b (export "via_b") (param i32) (result i32) (call $bload (local.get 0)))
  (func (export "b_then_own") (param i32 i32) (result i32)
    (drop (call $bload (local.get 0))) (i32.load (local.get 1)))
  (func (export "host_then_own") (param i32 i32) (result i32)
    (call $host (local.get 0)) (i32.load (local.get 1))))"""


@pytest.mark.parametrize("signals", [True, False], ids=["signals", "checks"])
def test_raw_faults_are_judged_against_the_running_instances_memory(signals):
    """A call into another instance's wasm (an imported function: no exit from the
    interpreter) and a host call that runs another instance's code both move the handler
    to the callee's memory and back: each access traps in its own memory, through the
    path the plan says, as in wasmtime."""
    from runtime import Func
    from wasmenv import FuncType, ValType
    engine = Engine(signals_based_traps=signals)
    b = Instance(Module(engine, wat(LOADER)))

    def host(addr):
        with pytest.raises(Trap) as info:
            b.exports["load"](addr)
        assert info.value.guard_fault is signals
        with pytest.raises(Trap) as info:  # an accessor's own guarded access, in between
            a.exports["mem"].load_i32(3 * WASM_PAGE)
        assert info.value.guard_fault
    a = Instance(Module(engine, wat(CALLER)),
                 [b.exports["load"], Func(FuncType((ValType.I32,), ()), host)])
    store = wt.Store(wt.Engine())
    wt_b = wt.Instance(store, wt.Module(store.engine, wat(LOADER)), [])
    wt_host = wt.Func(store, wt.FuncType([wt.ValType.i32()], []), lambda addr: None)
    wt_a = wt.Instance(store, wt.Module(store.engine, wat(CALLER)),
                       [wt_b.exports(store)["load"], wt_host]).exports(store)

    def both(name, *args):
        caught = _ffi.thread_faults_caught()
        try:
            ours = ("ok", a.exports[name](*args))
        except Trap as trap:
            ours = ("trap", trap.code.name, trap.address, trap.guard_fault,
                    _ffi.thread_faults_caught() - caught, [f.func_name for f in trap.frames])
        try:
            theirs = ("ok", wt_a[name](store, *args))
        except wt.Trap as trap:
            theirs = ("trap", trap.trap_code.name)
        assert ours[:2] == theirs, (name, args, ours, theirs)
        return ours
    oob = ("trap", "MEMORY_OUT_OF_BOUNDS")
    assert both("via_b", 0) == ("ok", 42)
    # in bounds of the caller's 2 pages, not of the callee's 1: the callee's memory decides
    assert both("via_b", 70000) == oob + (70000, signals, int(signals), ["load", "via_b"])
    assert both("b_then_own", 0, 0) == ("ok", 7)
    assert both("b_then_own", 0, 2 * WASM_PAGE) == oob + (2 * WASM_PAGE, signals, int(signals), [None])
    assert both("b_then_own", 70000, 0)[:3] == oob + (70000,)
    assert both("host_then_own", 70000, 70000) == ("ok", 0)  # the host call's trap stayed there
    # (faults: the host call's trap in the callee, its accessor's, then the caller's own)
    assert both("host_then_own", 70000, 2 * WASM_PAGE) == oob + (2 * WASM_PAGE, signals, 1 + 2 * signals, [None])
