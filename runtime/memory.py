"""Linear memories: mmap reservations with guard regions, and the wasm accessors.

Layout of one memory (DESIGN.md "Reservation")::

    [pre_guard][accessible R/W][PROT_NONE up to bound / reserve][offset guard]
    ^start     ^base           ^base + byte_len                  ^base + capacity

Static memories never move and grow with mprotect. Dynamic memories grow inside their
reserve, else move (new reservation, copy, old one released; a CoW image is dropped).

Every wasm load/store width has an accessor that runs in C. When the plan makes it safe
(32-bit index, Static, ``0xFFFFFFFF + offset + width <= bound + offset_guard``) the C code
does the access with no bounds check and a fault on the guard pages becomes
``Trap(MEMORY_OUT_OF_BOUNDS)``; otherwise it checks explicitly. Either way the trap and
the values are those of the wasm spec.

Accessor values: integer loads return Python ints, signed for the full-width and ``s``
variants (``load_i32`` -> [-2^31, 2^31), ``load_i64`` -> [-2^63, 2^63)) and non-negative
for ``u`` variants; integer stores accept either representation (i32 stores:
[-2^31, 2^32), i64 stores: [-2^63, 2^64)) and store the low bits. Float accessors use
Python floats like wasmtime-py does: f64 keeps every bit, but an f32 goes through a
C float <-> double conversion, which quiets a signalling NaN. ``load_f32_bits`` /
``store_f32_bits`` / ``load_f64_bits`` / ``store_f64_bits`` move the raw IEEE bits as
unsigned ints and round-trip every NaN payload.

Threads: the C accessors release the GIL (cffi API mode always does; holding it would
save ~40 ns of a ~190 ns call, measured, at the price of patching the generated module)
and keep their trap state per thread, so threads can access shared memories in
parallel. A *shared* memory never moves (a Dynamic one grows only inside its reserve)
and grows under a lock with an atomic length update, so accesses from other threads
during ``grow`` are safe. A non-shared memory belongs to
one thread at a time, as in Wasmtime: growing it (which may move it) while another
thread accesses it is not supported. ``close()`` must not race with accesses either.
"""
from __future__ import annotations

import threading
from typing import Optional, Tuple

from wasmenv import WASM_PAGE_SIZE, MemoryPlan, MemoryType

from . import _ffi
from ._owner import Owner
from .errors import AllocationError, WasmRuntimeError
from .traps import Trap, TrapCode

__all__ = ["Memory", "MemorySlot", "ReservedSlot", "Reservation"]

_U64_LIMIT = 1 << 64
_OOB = TrapCode.MEMORY_OUT_OF_BOUNDS


class Reservation(Owner):
    """Owner of one mapping ``[start, start + byte_len)``, reserved PROT_NONE with MAP_NORESERVE.

    ``close()`` unmaps it (idempotent); ``__del__`` does the same as a backstop (Owner).
    """

    __slots__ = ("start", "byte_len", "closed", "__weakref__")

    def __init__(self, byte_len: int):
        self.closed = True  # until the mapping exists
        self.start = _ffi.reserve(byte_len)
        self.byte_len = byte_len
        self.closed = False

    @classmethod
    def _adopt(cls, start: int, byte_len: int) -> "Reservation":
        """Own a mapping the C layer already made (see ``_ffi.reserve_memory``)."""
        self = cls.__new__(cls)
        self.start, self.byte_len, self.closed = start, byte_len, False
        return self

    @property
    def end(self) -> int:
        return self.start + self.byte_len

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _ffi.release(self.start, self.byte_len)

    def __repr__(self):
        return f"<Reservation [{self.start:#x}, {self.end:#x}){' closed' if self.closed else ''}>"


class MemorySlot:
    """Where a :class:`Memory`'s bytes live; the interface allocators implement.

    A slot is an address range with the layout above, already prepared for a plan, a
    size and an optional image (accessible prefix R/W, image mapped). The Memory that
    receives it owns it and calls :meth:`release` exactly once. A pooling allocator
    returns its slots to the pool there; :class:`ReservedSlot` unmaps its reservation.

    Contract the guard-page accessors rely on (Static plans): every byte of
    ``[base_address + byte_len, base_address + capacity_bytes + guard_bytes)`` lies inside
    ``reservation_range`` and faults on access.
    """

    #: Host address of wasm byte 0.
    base_address: int
    #: (start, end) of the whole range, guards included.
    reservation_range: Tuple[int, int]
    #: Bytes after ``base_address`` that can become accessible without moving.
    capacity_bytes: int
    #: PROT_NONE bytes after the capacity (the offset guard).
    guard_bytes: int

    def make_accessible(self, old_byte_len: int, new_byte_len: int) -> None:
        """Make ``[old_byte_len, new_byte_len)`` (relative to the base) R/W."""
        raise NotImplementedError

    def relocated(self, byte_len: int) -> Optional["MemorySlot"]:
        """A new, empty slot of the same kind whose first ``byte_len`` bytes are R/W, or
        None when this kind of slot cannot move (the Memory then refuses to grow)."""
        return None

    def release(self) -> None:
        raise NotImplementedError


class ReservedSlot(MemorySlot):
    """On-demand slot: one reservation of ``plan.reservation_bytes(size_pages)`` per memory."""

    __slots__ = ("plan", "_reservation", "base_address", "capacity_bytes", "guard_bytes")

    def __init__(self, plan: MemoryPlan, size_pages: int, image=None):
        total = plan.reservation_bytes(size_pages)
        # One C call: reserve, map the image (R/W by its own mmap), mprotect the rest of
        # the accessible bytes; all or nothing.
        start = _ffi.reserve_memory(total, plan.pre_guard_size, size_pages * WASM_PAGE_SIZE, image)
        self._set(plan, start, total)

    @classmethod
    def _adopt(cls, plan: MemoryPlan, size_pages: int, start: int) -> "ReservedSlot":
        """Own a reservation ``_ffi.memory_open`` made for ``plan`` and ``size_pages``."""
        self = cls.__new__(cls)
        self._set(plan, start, plan.reservation_bytes(size_pages))
        return self

    def _set(self, plan, start, total):
        self.plan = plan
        self._reservation = Reservation._adopt(start, total)
        self.base_address = start + plan.pre_guard_size
        # Static: the bound; Dynamic: size + growth reserve (MemoryPlan.reservation_bytes)
        self.capacity_bytes = total - plan.pre_guard_size - plan.offset_guard_size
        self.guard_bytes = plan.offset_guard_size

    @property
    def reservation_range(self) -> Tuple[int, int]:
        return (self._reservation.start, self._reservation.end)

    def make_accessible(self, old_byte_len: int, new_byte_len: int) -> None:
        if new_byte_len > self.capacity_bytes:
            raise ValueError("growth past the slot's capacity")
        if new_byte_len > old_byte_len:
            _ffi.protect(self.base_address + old_byte_len, new_byte_len - old_byte_len, True)

    def relocated(self, byte_len: int) -> Optional["ReservedSlot"]:
        if self.plan.is_static:
            return None
        return ReservedSlot(self.plan, byte_len // WASM_PAGE_SIZE)

    def release(self) -> None:
        self._reservation.close()


class _State:
    """The C descriptor and the current slot; closed once (by close() or __del__)."""

    __slots__ = ("desc", "slot", "closed")

    def __init__(self, desc, slot):
        self.desc = desc
        self.slot = slot
        self.closed = False

    def close(self):
        if self.closed:
            return
        self.closed = True
        _ffi.memory_close(self.desc)
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()


def _i64_from_u64(value):
    if isinstance(value, int) and (1 << 63) <= value < _U64_LIMIT:
        return value - _U64_LIMIT
    return value


class Memory(Owner):
    """A WebAssembly linear memory backed by an mmap reservation with guard regions.

    Create with :meth:`Memory.new`, or let an allocator do it
    (``engine.allocator.allocate_memory(plan, image)``). The internal constructor takes a
    :class:`wasmenv.MemoryPlan`, an optional :class:`~runtime.image.MemoryImage` mapped
    copy-on-write at its ``linear_offset``, and ``slot_factory(plan, size_pages, image) ->
    MemorySlot`` (default :class:`ReservedSlot`), called once the plan is validated; the
    Memory owns the slot it returns.

    One owner of the native resources: :meth:`close`, context manager, finalizer.

    Raises (construction):
        AllocationError: the reservation failed; ``limit`` is "address space" or
            "vm.max_map_count". Nothing is left mapped.
        ValueError: the plan's memory type is invalid, or the image does not fit.
    """

    __slots__ = ("_plan", "_state", "_desc", "_lock", "_size_pages", "_max_pages",
                 "_image", "_passive_map", "_passive_store", "__weakref__")

    def __init__(self, plan: MemoryPlan, image=None, *, slot_factory=None):
        max_pages = self.check_plan(plan, image)
        _ffi.install_trap_handler()  # idempotent; puts ours back on top if covered
        slot = (slot_factory or ReservedSlot)(plan, plan.memory.minimum, image)
        self._take(plan, image, slot, max_pages)

    @staticmethod
    def check_plan(plan: MemoryPlan, image=None) -> int:
        """Validate a plan (and the image it would map); return the effective maximum pages.

        Raises:
            ValueError: the memory type is invalid, exceeds a Static bound, or the image
                is closed or does not fit the minimum size.
        """
        ty = plan.memory
        absolute = ty.absolute_max_pages
        if ty.minimum < 0 or ty.minimum > absolute:
            raise ValueError(f"memory minimum {ty.minimum} pages is out of range (max {absolute})")
        if ty.maximum is not None and not ty.minimum <= ty.maximum <= absolute:
            raise ValueError(f"memory maximum {ty.maximum} pages is out of range [{ty.minimum}, {absolute}]")
        if ty.shared and ty.maximum is None:
            raise ValueError("a shared memory needs a maximum")
        max_pages = plan.effective_maximum_pages
        if plan.is_static:
            max_pages = min(max_pages, plan.style.bound_pages)
            if ty.minimum > max_pages:
                raise ValueError(f"memory minimum {ty.minimum} pages exceeds the static bound")
        byte_len = ty.minimum * WASM_PAGE_SIZE
        if image is not None:
            if image.closed:
                raise ValueError("the MemoryImage is closed")
            if image.linear_offset + image.byte_len > byte_len:
                raise ValueError(f"image [{image.linear_offset:#x}, {image.linear_offset + image.byte_len:#x}) "
                                 f"does not fit in the memory's {byte_len:#x} bytes")
        return max_pages

    @classmethod
    def _adopt(cls, plan: MemoryPlan, image, slot: MemorySlot, max_pages: int) -> "Memory":
        """A Memory owning ``slot``, already prepared for ``plan`` (size: the minimum) and
        ``image``; ``max_pages`` from :meth:`check_plan`. An allocator's fast path: the
        instance layout validated the plan once per module."""
        self = cls.__new__(cls)
        self._take(plan, image, slot, max_pages)
        return self

    def _take(self, plan, image, slot, max_pages):
        try:
            self._plan = plan
            self._size_pages = plan.memory.minimum
            self._max_pages = max_pages
            self._image = image if image is not None and image.byte_len else None
            self._lock = threading.Lock()
            self._desc = _ffi.new_memory_desc()
            self._describe(slot, plan.memory.minimum * WASM_PAGE_SIZE)
        except BaseException:
            slot.release()
            raise
        self._state = _State(self._desc, slot)
        # The defining instance's passive data segments (set by Instance), for init().
        self._passive_map = self._passive_store = None

    def _describe(self, slot: MemorySlot, byte_len: int):
        flags = (_ffi.MEM_STATIC if self._plan.is_static else 0) | (_ffi.MEM_64 if self._plan.memory.memory64 else 0)
        start, end = slot.reservation_range
        _ffi.memory_init(self._desc, slot.base_address, byte_len, slot.capacity_bytes, slot.guard_bytes,
                         start, end, flags)

    @classmethod
    def new(cls, engine, minimum: int, maximum: Optional[int] = None, *, shared: bool = False,
            memory64: bool = False) -> "Memory":
        """A memory of ``minimum`` pages laid out by ``engine.tunables``, from ``engine.allocator``.

        ``engine`` is anything with ``.tunables`` (wasmenv.Tunables) and ``.allocator``.
        """
        ty = MemoryType(minimum, maximum, shared, memory64)
        return engine.allocator.allocate_memory(MemoryPlan.for_memory(ty, engine.tunables))

    # ---- description -----------------------------------------------------------------

    @property
    def ty(self) -> MemoryType:
        return self._plan.memory

    @property
    def plan(self) -> MemoryPlan:
        return self._plan

    @property
    def shared(self) -> bool:
        return self._plan.memory.shared

    @property
    def size_pages(self) -> int:
        return self._size_pages

    @property
    def byte_len(self) -> int:
        return self._size_pages * WASM_PAGE_SIZE

    @property
    def maximum_pages(self) -> int:
        """The effective maximum: declared (or the index type's), capped at a Static bound."""
        return self._max_pages

    @property
    def image(self):
        """The MemoryImage mapped CoW into this memory, or None (none, or dropped by a move)."""
        return self._image

    def _slot(self) -> MemorySlot:
        slot = self._state.slot
        if slot is None:
            raise ValueError("memory is closed")
        return slot

    @property
    def base_address(self) -> int:
        """Host address of wasm byte 0 (changes when a Dynamic memory moves)."""
        return self._slot().base_address

    @property
    def reservation_range(self) -> Tuple[int, int]:
        """(start, end) host addresses of the whole reservation, guards included."""
        return self._slot().reservation_range

    @property
    def closed(self) -> bool:
        return self._state.closed

    def _access_mode(self, offset: int, width: int) -> str:
        """"guard" if an access of ``width`` bytes at static ``offset`` relies on the guard
        pages (no bounds check), else "check"."""
        return "guard" if _ffi.access_is_raw(self._desc, offset, width) else "check"

    # ---- growth ----------------------------------------------------------------------

    def grow(self, delta_pages: int) -> int:
        """Grow by ``delta_pages``; return the old size in pages, or -1 when the effective
        maximum would be exceeded or the OS refuses (wasm ``memory.grow`` semantics).

        Raises:
            WasmRuntimeError: a moving grow could not read the old bytes (an image file
                truncated under the memory); the memory is left as it was.
        """
        if not isinstance(delta_pages, int) or delta_pages < 0:
            raise ValueError(f"delta_pages must be a non-negative int, got {delta_pages!r}")
        with self._lock:
            slot = self._slot()
            old_pages = self._size_pages
            new_pages = old_pages + delta_pages
            if delta_pages == 0:
                return old_pages
            if new_pages > self._max_pages or new_pages * WASM_PAGE_SIZE >= _U64_LIMIT:
                return -1
            old_len, new_len = old_pages * WASM_PAGE_SIZE, new_pages * WASM_PAGE_SIZE
            fault = _ffi.OK
            try:
                if new_len <= slot.capacity_bytes:
                    slot.make_accessible(old_len, new_len)
                elif self.shared:
                    return -1  # other threads may be inside it: a shared memory never moves
                else:
                    new_slot = slot.relocated(new_len)
                    if new_slot is None:
                        return -1
                    fault = _ffi.copy_out(self._desc, new_slot.base_address, old_len)
                    if fault:  # the old bytes could not be read (a truncated image file)
                        new_slot.release()
                    else:
                        self._state.slot = new_slot
                        self._describe(new_slot, old_len)
                        self._image = None  # the copy is private; the old mapping goes with the old slot
            except (AllocationError, WasmRuntimeError):
                return -1
            if fault:
                raise self._error(fault, "memory.grow (moving)", 1, _ffi.last_fault_address() - slot.base_address)
            _ffi.memory_set_byte_len(self._desc, new_len)
            self._size_pages = new_pages
            if self._state.slot is not slot:
                slot.release()
            return old_pages

    # ---- bulk access -----------------------------------------------------------------

    def _error(self, status: int, op: str, width: int, addr: int, offset: int = 0) -> Exception:
        """The exception for a failed access (a Trap for out of bounds)."""
        if status == _ffi.OOB or status == _ffi.OOB_GUARD:
            return Trap(_OOB, address=addr + offset, guard_fault=status == _ffi.OOB_GUARD,
                        _context=(op, width, addr, offset, self._size_pages * WASM_PAGE_SIZE))
        if status == _ffi.CLOSED:
            return ValueError("memory is closed")
        if status == _ffi.BADARG:
            return ValueError(f"{op}: an argument is outside its wasm type's range "
                              f"(addr {addr:#x}, offset {offset:#x})")
        if status == _ffi.SRC_FAULT:
            return WasmRuntimeError(
                f"{op} at wasm address {addr + offset:#x}: memory fault reading the source bytes "
                f"(host address {_ffi.last_fault_address():#x}; was a data file truncated?)")
        if status == _ffi.FAULT:
            return WasmRuntimeError(
                f"{op} at wasm address {addr + offset:#x}: memory fault inside the accessible bytes "
                f"(host address {_ffi.last_fault_address():#x}; was an image file truncated?)")
        return WasmRuntimeError(f"{op}: unexpected accessor status {status}")

    @staticmethod
    def _check_nonneg(**values):
        for name, value in values.items():
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at ``addr``; Trap(MEMORY_OUT_OF_BOUNDS) if any is out of bounds."""
        self._check_nonneg(addr=addr, n=n)
        if addr + n > self._size_pages * WASM_PAGE_SIZE:  # before allocating n bytes
            raise self._error(_ffi.OOB if self._state.slot is not None else _ffi.CLOSED, "read", n, addr)
        status, data = _ffi.read(self._desc, addr, n)
        if status:
            raise self._error(status, "read", n, addr)
        return data

    def write(self, addr: int, data) -> None:
        """Write a bytes-like ``data`` at ``addr``; nothing is written if it does not fit."""
        self._check_nonneg(addr=addr)
        status = _ffi.write(self._desc, addr, data)
        if status:
            raise self._error(status, "write", memoryview(data).nbytes, addr)

    def fill(self, addr: int, value: int, n: int) -> None:
        """memory.fill: ``n`` bytes of ``value & 0xff`` at ``addr`` (checked before writing)."""
        self._check_nonneg(addr=addr, n=n)
        status = _ffi.fill(self._desc, addr, value, n)
        if status:
            raise self._error(status, "fill", n, addr)

    def copy(self, dst: int, src: int, n: int) -> None:
        """memory.copy: memmove semantics; trap before writing if either range is out of bounds."""
        self._check_nonneg(dst=dst, src=src, n=n)
        status = _ffi.copy(self._desc, dst, src, n)
        if status:
            raise self._error(status, "copy", n, dst if dst + n > self.byte_len else src)

    def init(self, addr: int, data_index: int, offset: int, n: int, *, instance=None) -> None:
        """memory.init: copy ``n`` bytes from ``offset`` of passive data segment
        ``data_index`` to ``addr``. Traps (writing nothing) when either range is out of
        bounds; a dropped (or active) segment is empty, so only ``n == 0`` succeeds.

        The segment is the defining instance's, or ``instance``'s (required for a memory
        made with :meth:`new` and imported by instances).
        """
        if instance is not None:
            src = instance.passive_data(data_index)
        elif self._passive_map is None:
            raise ValueError("this memory was not defined by an instance: pass instance= "
                             "to say whose data segments to use")
        else:
            r = self._passive_map.get(data_index)
            src = memoryview(b"") if r is None else self._passive_store.view(r)
        self._init_bytes(addr, src, offset, n)

    def _init_bytes(self, addr: int, src, src_offset: int, n: int) -> None:
        """memory.init: copy ``src[src_offset:src_offset + n]`` to ``addr``; trap (writing
        nothing) if ``src_offset + n > len(src)`` or ``addr + n > byte_len``."""
        self._check_nonneg(addr=addr, src_offset=src_offset, n=n)
        status = _ffi.init(self._desc, addr, src, src_offset, n)
        if status:
            raise self._error(status, "memory.init", n, addr)

    # ---- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Release the reservation (idempotent). Accessors then raise ValueError."""
        self._state.close()

    def __repr__(self):
        if self.closed:
            return "<Memory closed>"
        kind = "static" if self._plan.is_static else "dynamic"
        return (f"<Memory {kind} {self._size_pages} pages (max {self._max_pages})"
                f"{' shared' if self.shared else ''}{' i64' if self.ty.memory64 else ''} "
                f"at {self.base_address:#x}>")


# ---- accessors ------------------------------------------------------------------------
# Generated once per op; each is a thin wrapper over one C call. Loads return the value
# or a sentinel (then the thread's status says whether it trapped); stores return a status.

def _int_load(op, cfn, width, sentinel=_ffi.INT64_MIN):
    """A load returning an int; ``sentinel`` is the C function's maybe-trapped value."""
    last_status = _ffi.last_status

    def load(self, addr, offset=0):
        value = cfn(self._desc, addr, offset)
        if value == sentinel:
            status = last_status()
            if status:
                raise self._error(status, op, width, addr, offset)
        return value
    return load


def _float_load(op, cfn, width):
    last_status = _ffi.last_status

    def load(self, addr, offset=0):
        value = cfn(self._desc, addr, offset)
        if value != value:  # NaN: the sentinel, or a NaN in memory
            status = last_status()
            if status:
                raise self._error(status, op, width, addr, offset)
        return value
    return load


def _store(op, cfn, width):
    def store(self, addr, value, offset=0):
        status = cfn(self._desc, addr, offset, value)
        if status:
            raise self._error(status, op, width, addr, offset)
    return store


def _store_i64(op, cfn, width):
    def store(self, addr, value, offset=0):
        try:
            status = cfn(self._desc, addr, offset, value)
        except OverflowError:  # an unsigned i64 in [2^63, 2^64), or a bad addr/offset
            status = cfn(self._desc, addr, offset, _i64_from_u64(value))
        if status:
            raise self._error(status, op, width, addr, offset)
    return store


def _u64_load(op, cfn, width):
    return _int_load(op, cfn, width, sentinel=_ffi.U64_SENTINEL)


_LOADS = [
    # (method, C kind, width, maker)
    ("load_i32", "i32", 4, _int_load), ("load_i64", "i64", 8, _int_load),
    ("load_f32", "f32", 4, _float_load), ("load_f64", "f64", 8, _float_load),
    ("load_i32_8s", "s8", 1, _int_load), ("load_i32_8u", "u8", 1, _int_load),
    ("load_i32_16s", "s16", 2, _int_load), ("load_i32_16u", "u16", 2, _int_load),
    ("load_i64_8s", "s8", 1, _int_load), ("load_i64_8u", "u8", 1, _int_load),
    ("load_i64_16s", "s16", 2, _int_load), ("load_i64_16u", "u16", 2, _int_load),
    ("load_i64_32s", "i32", 4, _int_load), ("load_i64_32u", "u32", 4, _int_load),
    ("load_f32_bits", "u32", 4, _int_load), ("load_f64_bits", "u64", 8, _u64_load),
]
_STORES = [
    ("store_i32", "i32", 4, _store), ("store_i64", "i64", 8, _store_i64),
    ("store_f32", "f32", 4, _store), ("store_f64", "f64", 8, _store),
    ("store_i32_8", "i32_8", 1, _store), ("store_i32_16", "i32_16", 2, _store),
    ("store_i64_8", "i64_8", 1, _store_i64), ("store_i64_16", "i64_16", 2, _store_i64),
    ("store_i64_32", "i64_32", 4, _store_i64),
    ("store_f32_bits", "i32", 4, _store), ("store_f64_bits", "i64", 8, _store_i64),
]


def _install_accessors():
    for name, kind, width, make in _LOADS:
        fn = make(name, _ffi.LOAD[kind], width)
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = (f"{width}-byte load at ``addr + offset``; Trap(MEMORY_OUT_OF_BOUNDS) if out of "
                      f"bounds (signature: ``(addr, offset=0)``).")
        setattr(Memory, name, fn)
    for name, kind, width, make in _STORES:
        fn = make(name, _ffi.STORE[kind], width)
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = (f"{width}-byte store of ``value`` at ``addr + offset``; Trap(MEMORY_OUT_OF_BOUNDS), "
                      f"with memory unchanged, if out of bounds (signature: ``(addr, value, offset=0)``).")
        setattr(Memory, name, fn)


_install_accessors()
ACCESSOR_WIDTHS = {name: width for name, _, width, _ in _LOADS + _STORES}
