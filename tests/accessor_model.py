"""A pure-Python model of wasm memory accesses, shared by the trap tests: the accessors'
widths and encodings (LOADS, STORES), ``Model`` (an access traps iff addr + offset + width >
size), the boundary addresses and offsets to try, and the memory styles to try them on."""
import math
import struct

from runtime.memory import Memory
from runtime.traps import Trap, TrapCode
from tests.helpers import GIB, KIB, MIB, WASM_PAGE, engine

U32, U64 = 1 << 32, 1 << 64


def _signed(n):
    return lambda b: int.from_bytes(b, "little", signed=True)


def _unsigned(b):
    return int.from_bytes(b, "little")


LOADS = {  # method -> (width, decode)
    "load_i32": (4, _signed(4)), "load_i64": (8, _signed(8)),
    "load_f32": (4, lambda b: struct.unpack("<f", b)[0]), "load_f64": (8, lambda b: struct.unpack("<d", b)[0]),
    "load_i32_8s": (1, _signed(1)), "load_i32_8u": (1, _unsigned),
    "load_i32_16s": (2, _signed(2)), "load_i32_16u": (2, _unsigned),
    "load_i64_8s": (1, _signed(1)), "load_i64_8u": (1, _unsigned),
    "load_i64_16s": (2, _signed(2)), "load_i64_16u": (2, _unsigned),
    "load_i64_32s": (4, _signed(4)), "load_i64_32u": (4, _unsigned),
    "load_f32_bits": (4, _unsigned), "load_f64_bits": (8, _unsigned),
}


def _int_bytes(width):
    return lambda v: (v % (1 << (8 * width))).to_bytes(width, "little")


STORES = {  # method -> (width, encode, sample values)
    "store_i32": (4, _int_bytes(4), [-0x12345678, 0xFEDCBA98, 7]),
    "store_i64": (8, _int_bytes(8), [-(1 << 63), (1 << 64) - 3, 0x0123456789ABCDEF]),
    "store_f32": (4, lambda v: struct.pack("<f", v), [1.5, -3.25e10, math.inf]),
    "store_f64": (8, lambda v: struct.pack("<d", v), [-0.0, 2.0 ** -1074, math.pi]),
    "store_i32_8": (1, _int_bytes(1), [-1, 0x1FE, 0x7F]),
    "store_i32_16": (2, _int_bytes(2), [-2, 0xFFFF_ABCD, 0x1234]),
    "store_i64_8": (1, _int_bytes(1), [-(1 << 62), 0xAB, (1 << 64) - 1]),
    "store_i64_16": (2, _int_bytes(2), [-3, 0xFFFF_FFFF_0000_BEEF, 0x7FFF]),
    "store_i64_32": (4, _int_bytes(4), [-(1 << 40), 0xFFFF_FFFF, 0x8000_0000]),
    "store_f32_bits": (4, _int_bytes(4), [0x7FA0_0001, 0xFF80_0000, 0x3F80_0000]),  # a signalling NaN
    "store_f64_bits": (8, _int_bytes(8), [0x7FF0_0000_0000_0001, 0xFFF8_0000_DEAD_BEEF, 1]),
}


def same_value(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


class Model:
    """Wasm semantics for one memory: an access traps iff addr + offset + width > size."""

    def __init__(self, mem, bound=None, guard=None):
        """``bound``/``guard``: the memory's slot when it is not laid out by its plan (a
        pooling allocator's slot); default: the plan's."""
        self.mem = mem
        plan = mem.plan
        self.memory64 = plan.memory.memory64
        self.bound = bound if bound is not None else plan.style.bound_bytes if plan.is_static else None
        self.guard = guard if guard is not None else plan.offset_guard_size
        self.bytes = bytearray(mem.read(0, mem.byte_len))

    def sync_size(self):
        self.bytes.extend(bytes(self.mem.byte_len - len(self.bytes)))

    def raw(self, offset, width):
        return (self.bound is not None and not self.memory64
                and 0xFFFF_FFFF + offset + width <= self.bound + self.guard)

    def check(self, method, addr, offset, value=None):
        """Run one access on the memory and on the model; return a disagreement or None."""
        mem = self.mem
        store = method.startswith("store")
        width = STORES[method][0] if store else LOADS[method][0]
        mode = mem._access_mode(offset, width)
        if mode != ("guard" if self.raw(offset, width) else "check"):
            return f"mode {mode} for offset {offset:#x} width {width}"
        ea = addr + offset
        in_bounds = ea + width <= len(self.bytes)
        tail = bytes(self.bytes[-8:])
        try:
            if store:
                getattr(mem, method)(addr, value, offset)
            else:
                got = getattr(mem, method)(addr, offset)
        except Trap as t:
            if in_bounds:
                return f"unexpected trap {t}"
            if t.code is not TrapCode.MEMORY_OUT_OF_BOUNDS or t.address != ea:
                return f"wrong trap {t!r}"
            if t.guard_fault != (mode == "guard"):
                return f"trap detected by {'guard' if t.guard_fault else 'check'} in {mode} mode"
            if mem.read(len(self.bytes) - 8, 8) != tail:
                return "a trapping store changed memory"
            return None
        if not in_bounds:
            return "no trap"
        if store:
            want = STORES[method][1](value)
            self.bytes[ea:ea + width] = want
            if mem.read(ea, width) != want:
                return f"stored {mem.read(ea, width).hex()} want {want.hex()}"
            return None
        want = LOADS[method][1](bytes(self.bytes[ea:ea + width]))
        if not same_value(got, want):
            return f"loaded {got!r} want {want!r}"
        return None


OFFSETS32 = [0, 1, 65535, 65536, 1 << 31, U32 - 1]
OFFSETS64 = OFFSETS32 + [1 << 32, U64 - 1]


def addresses(size, width, offset, memory64):
    limit = U64 if memory64 else U32
    cands = {0, size - width - 1, size - width, size - width + 1, size - 1, size, size + 1,
             U32 - width, U32 - 1}
    for k in (-1, 0, 1):
        cands.add(size - offset - width + k)  # effective address right at the edge
    if memory64:
        cands |= {U32, U32 + 1, 1 << 63, U64 - width, U64 - 1}
    return sorted(a for a in cands if 0 <= a < limit)


GUARDS = [0, 64 * KIB, 32 * MIB, 2 * GIB]
STYLES = ["static4g", "static_small", "dynamic"]


def make_memory(style, guard, memory64):
    if style == "static4g":
        eng = engine(static_memory_offset_guard_size=guard)
        ty = (1, 3)
    elif style == "static_small":
        eng = engine(static_memory_bound=4, static_memory_offset_guard_size=guard)
        ty = (1, 3)
    else:  # reserve of one page: growing by two moves the memory
        eng = engine(static_memory_bound=4, dynamic_memory_offset_guard_size=guard,
                     dynamic_memory_growth_reserve=WASM_PAGE)
        ty = (1, None)
    mem = Memory.new(eng, *ty, memory64=memory64)
    if not memory64:
        assert mem.plan.is_static == style.startswith("static")
    assert mem.plan.offset_guard_size == guard
    return mem
