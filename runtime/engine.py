"""Engine: the tunables and the allocator shared by modules and instances."""
from __future__ import annotations

from typing import Optional

from wasmenv import Tunables


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

    Raises:
        ValueError: an unknown ``image_backing``, or one this platform does not have.
    """

    def __init__(self, tunables: Optional[Tunables] = None, allocator=None, *,
                 memory_init_cow: bool = True, signals_based_traps: bool = True,
                 image_backing: Optional[str] = None):
        from .image import check_backing
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

    def __repr__(self):
        cow = "cow" if self.memory_init_cow else "copy"
        return f"<Engine {type(self.allocator).__name__} {cow} {self.tunables}>"
