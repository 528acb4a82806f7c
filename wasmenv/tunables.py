"""Tunables: how memories are reserved (Wasmtime 5 defaults for 64-bit hosts)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class Tunables:
    """Knobs that decide memory styles and guard sizes.

    ``static_memory_bound`` is in wasm pages; every other size is in bytes.
    """

    static_memory_bound: int = 0x1_0000
    static_memory_offset_guard_size: int = 2 * GIB
    dynamic_memory_offset_guard_size: int = 0x1_0000
    dynamic_memory_growth_reserve: int = 2 * GIB
    guard_before_linear_memory: bool = True
    static_memory_bound_is_maximum: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"Tunables.{f.name} must be a non-negative int, got {value!r}")
        for name in ("static_memory_offset_guard_size", "dynamic_memory_offset_guard_size",
                     "dynamic_memory_growth_reserve"):
            if getattr(self, name) % 4096:
                raise ValueError(f"Tunables.{name} must be a multiple of 4096 bytes")

    def replace(self, **changes) -> "Tunables":
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
