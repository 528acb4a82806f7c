"""Engine: the tunables and the allocator shared by modules and instances."""
from __future__ import annotations

from typing import Optional

from wasmenv import Tunables


class Engine:
    """Configuration shared by everything created from it.

    Args:
        tunables: memory layout knobs (default: Wasmtime 5's 64-bit defaults).
        allocator: where instance memories come from (default: an OnDemandAllocator).
    """

    def __init__(self, tunables: Optional[Tunables] = None, allocator=None):
        if tunables is not None and not isinstance(tunables, Tunables):
            raise TypeError("tunables must be a wasmenv.Tunables")
        self.tunables = tunables if tunables is not None else Tunables()
        if allocator is None:
            from .allocator import OnDemandAllocator
            allocator = OnDemandAllocator()
        self.allocator = allocator

    def __repr__(self):
        return f"<Engine {type(self.allocator).__name__} {self.tunables}>"
