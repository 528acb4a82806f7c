"""Instantiation strategies shared by the measurement scripts (ours and wasmtime-py's)."""
from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OURS = ("cow", "copy", "pooling")
THEIRS = ("wasmtime-cow", "wasmtime-copy")
ALL = OURS + THEIRS
GUARD_32MIB = 32 << 20


def our_engine(strategy: str, max_instances: int = 1000, max_pages: int = 160, guard_bytes=None):
    """An Engine for ``strategy``; ``guard_bytes`` overrides the static offset guard."""
    import runtime
    import wasmenv
    tunables = wasmenv.Tunables()
    if guard_bytes is not None:
        tunables = tunables.replace(static_memory_offset_guard_size=guard_bytes)
    if strategy == "cow":
        return runtime.Engine(tunables)
    if strategy == "copy":
        return runtime.Engine(tunables, memory_init_cow=False)
    if strategy == "pooling":
        pool = runtime.PoolingAllocator(max_instances=max_instances, max_memories_per_instance=1,
                                        max_memory_pages=max_pages, max_tables_per_instance=1,
                                        max_table_elements=10_000)
        return runtime.Engine(tunables, allocator=pool)
    raise ValueError(f"unknown strategy {strategy!r}")


class Ours:
    """Instantiate/release/touch with our runtime."""

    def __init__(self, strategy, wasm: bytes, n: int, guard_bytes=None):
        import runtime
        self.runtime = runtime
        self.engine = our_engine(strategy, max_instances=max(n, 1), guard_bytes=guard_bytes)
        self.module = runtime.Module(self.engine, wasm)

    def instantiate(self):
        return self.runtime.Instance(self.module)

    def touch(self, inst, page: int):
        inst.memory(0).write(page * 4096, b"\x01")

    def release(self, inst):
        inst.close()

    def close(self):
        self.module.close()
        close = getattr(self.engine.allocator, "close", None)
        if close:
            close()


class Theirs:
    """The same with wasmtime-py (one Store, like one process of ours)."""

    def __init__(self, strategy, wasm: bytes, n: int, guard_bytes=None):
        import wasmtime as wt
        self.wt = wt
        cfg = wt.Config()
        cfg.memory_init_cow = strategy == "wasmtime-cow"
        for feature in ("wasm_multi_memory", "wasm_memory64", "wasm_threads"):
            setattr(cfg, feature, True)
        if guard_bytes is not None:
            cfg.memory_guard_size = guard_bytes
        self.engine = wt.Engine(cfg)
        self.store = wt.Store(self.engine)
        # A Store allows 10,000 instances/memories by default: lift that for N = 10,000+.
        big = 10 * max(n, 1000)
        self.store.set_limits(instances=big, tables=big, memories=big)
        self.module = wt.Module(self.engine, wasm)

    def instantiate(self):
        inst = self.wt.Instance(self.store, self.module, [])
        return inst

    def _memory(self, inst):
        for ext in inst.exports(self.store).values():
            if isinstance(ext, self.wt.Memory):
                return ext
        raise ValueError("module exports no memory")

    def touch(self, inst, page: int):
        self._memory(inst).write(self.store, b"\x01", page * 4096)

    def release(self, inst):
        pass  # wasmtime frees instances with their Store

    def close(self):
        pass


def driver(strategy, wasm, n, guard_bytes=None):
    cls = Ours if strategy in OURS else Theirs
    return cls(strategy, wasm, n, guard_bytes)
