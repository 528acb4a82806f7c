"""Engine: the tunables and the allocator shared by modules and instances."""
from __future__ import annotations

import threading
from typing import Optional, Tuple

from wasmenv import Tunables

#: Bytes a nested call counts for against max_wasm_stack (its frame record and the
#: cells every frame has): a frame with no cells still uses stack.
FRAME_BYTES = 64
#: Defaults to 8 MiB (2**20 value cells and 131,072 nested calls).
DEFAULT_MAX_WASM_STACK = 8 << 20
MAX_WASM_STACK = 1 << 30


class Engine:
    """Configuration shared by everything created from it.

    Args:
        tunables: memory layout knobs (default: Wasmtime 5's 64-bit defaults).
        allocator: where instance memories come from (default: an OnDemandAllocator).
        memory_init_cow: map static images copy-on-write (default). False copies each
            image into every instance at instantiation (the "copy" strategy).
        signals_based_traps: let wasm code rely on guard pages (raw accesses where the plan
            allows, Wasmtime's name). False checks every memory access explicitly.
        image_backing: what the images of modules made from bytes live in: "memfd" (a
            sealed memfd, Linux), "tempfile" (an unlinked temporary file, the macOS way)
            or None (the platform's choice). See ``runtime.image.BACKINGS``.
        consume_fuel: wasm code consumes the fuel of its store (``Store.set_fuel``; a
            store starts with none), charged at function entries and loop headers; out of
            fuel is ``Trap(OUT_OF_FUEL)``. Off: the code has no fuel checks at all.
        epoch_interruption: wasm code checks the engine's epoch against its store's
            deadline (``increment_epoch``, ``Store.set_epoch_deadline``) at function
            entries and loop headers: ``Trap(INTERRUPT)``. Off: no checks in the code.
        max_wasm_stack: bytes of wasm stack a call from Python may use (wasmtime's
            Config.max_wasm_stack): ``max_wasm_stack // 8`` value cells of 8 bytes and
            ``max_wasm_stack // FRAME_BYTES`` nested calls; past either a call traps
            with STACK_OVERFLOW.
        wasm_backtrace_max_frames: how many of the innermost frames a trap's backtrace
            keeps (wasmtime's Config.wasm_backtrace_max_frames, 20 by default, as there).

    Raises:
        ValueError: an unknown ``image_backing``, or one this platform does not have.
    """

    def __init__(self, tunables: Optional[Tunables] = None, allocator=None, *,
                 memory_init_cow: bool = True, signals_based_traps: bool = True,
                 image_backing: Optional[str] = None, consume_fuel: bool = False,
                 epoch_interruption: bool = False, max_wasm_stack: int = DEFAULT_MAX_WASM_STACK,
                 wasm_backtrace_max_frames: int = 20):
        from . import _ffi
        from .image import check_backing
        if not isinstance(max_wasm_stack, int) or not FRAME_BYTES <= max_wasm_stack <= MAX_WASM_STACK:
            raise ValueError(f"max_wasm_stack must be an int in [{FRAME_BYTES}, {MAX_WASM_STACK}] "
                             f"bytes, got {max_wasm_stack!r}")
        if not isinstance(wasm_backtrace_max_frames, int) or wasm_backtrace_max_frames < 1:
            raise ValueError(f"wasm_backtrace_max_frames must be a positive int, "
                             f"got {wasm_backtrace_max_frames!r}")
        self.wasm_backtrace_max_frames = wasm_backtrace_max_frames
        self.consume_fuel = bool(consume_fuel)
        self.epoch_interruption = bool(epoch_interruption)
        self.max_wasm_stack = max_wasm_stack
        self._stack_cells = max_wasm_stack // 8  # what a call from Python may use
        self._stack_frames = max_wasm_stack // FRAME_BYTES
        self._epoch = _ffi.new_epoch_cell()
        self._epoch_lock = threading.Lock()
        self.image_backing = check_backing(image_backing)
        self.memory_init_cow = bool(memory_init_cow)
        self.signals_based_traps = bool(signals_based_traps)
        if tunables is not None and not isinstance(tunables, Tunables):
            raise TypeError("tunables must be a wasmenv.Tunables")
        self.tunables = tunables if tunables is not None else Tunables()
        if allocator is None:
            from .allocator import OnDemandAllocator
            allocator = OnDemandAllocator()
        self.allocator = allocator

    def increment_epoch(self) -> None:
        """Advance the epoch by one (any thread, also while wasm runs)."""
        with self._epoch_lock:
            self._epoch[0] += 1

    @property
    def current_epoch(self) -> int:
        return self._epoch[0]

    @property
    def code_config(self) -> Tuple[bool, bool]:
        """What the translated code depends on besides the module: (fuel, epochs)."""
        return self.consume_fuel, self.epoch_interruption

    def __repr__(self):
        cow = "cow" if self.memory_init_cow else "copy"
        return f"<Engine {type(self.allocator).__name__} {cow} {self.tunables}>"
