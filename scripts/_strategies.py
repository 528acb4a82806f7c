"""Instantiation strategies shared by the measurement scripts (ours and wasmtime-py's)."""
from __future__ import annotations

import gc
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OURS = ("cow", "copy", "pooling")
THEIRS = ("wasmtime-cow", "wasmtime-copy")
ALL = OURS + THEIRS
GUARD_32MIB = 32 << 20


def interleaved(runners: dict, n: int, rounds: int, warmup: int, batch: int) -> dict:
    """Samples per runner (``run(count, batch)`` -> a list), after ``warmup`` untimed-count
    calls each, taken in ``rounds`` interleaved rounds so drift hits every runner alike."""
    samples = {name: [] for name in runners}
    for r in runners.values():
        r.run(warmup, 1)  # one-time costs (handler install, pool reservation, caches)
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for name, r in runners.items():
            gc.collect()
            samples[name] += r.run(per_round, batch)
    return samples


def batches(n, batch, cycle, prepare=None):
    """``n`` samples: the time of ``batch`` calls of ``cycle()`` divided by ``batch``; with
    ``prepare``, each call is ``cycle(prepare())`` with the preparation made untimed
    beforehand and dropped (timed) right after its call."""
    clock, inner, out = time.perf_counter_ns, range(batch), []
    for _ in range(n):
        if prepare is None:
            t0 = clock()
            for _ in inner:
                cycle()
        else:
            ready = [prepare() for _ in inner]
            t0 = clock()
            for i in inner:
                cycle(ready[i])
                ready[i] = None
        out.append((clock() - t0) / batch)
    return out


class Wasm3:
    """pywasm3 (wasm3), run like the other runners: one cycle parses the module (a wasm3
    Module loads into one runtime only, which owns it), makes a runtime with a
    ``stack_bytes`` stack (64 KiB: wasm3's own default), loads the module into it, links
    every imported function to a dummy returning zeros (as scripts/_dummy_imports.py's),
    with ``start`` looks up the first exported function (wasm3 runs a start function
    there, not at load), and drops it all. ``module``: the runtime.Module of ``wasm`` whose
    imports and exports it links and looks up (default: one made here).

    pywasm3 0.5 never frees a module it loaded, nor its runtime (their memory stays: the
    release frees nothing), so every :meth:`run` takes its samples in a forked child,
    whose exit gives the memory back, and at most as many as leave ``budget_bytes`` of
    resident memory in it (``leak_bytes``: what one instance leaves, measured first;
    ``capped``: how many samples that cap has refused so far).

    Raises:
        Unsupported: an import other than a function (wasm3 links functions only), a
            function type wasm3 has no signature for, or ``start`` without an exported function.
        RuntimeError: wasm3 refused the module (its message).
    """

    SIG = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}

    def __init__(self, wasm: bytes, start: bool = False, stack_bytes: int = 1 << 16, module=None,
                 budget_bytes: int = 1 << 30):
        import wasm3
        import runtime
        from _dummy_imports import Unsupported, zero
        from wasmenv import FuncType
        own = module is None
        module = runtime.Module(runtime.Engine(), wasm) if own else module
        try:
            imports, exports = list(module.imports), list(module.exports)
        finally:
            if own:
                module.close()
        self.links = []
        for imp in imports:
            where = f"import {imp.module}::{imp.name}"
            ty = imp.type
            if not isinstance(ty, FuncType):
                raise Unsupported(f"{where}: pywasm3 links functions only, not a {type(ty).__name__}")
            try:
                sig = (self.SIG[ty.results[0].value] if ty.results else "v") + \
                    "(" + "".join(self.SIG[p.value] for p in ty.params) + ")"
            except (KeyError, AttributeError):
                raise Unsupported(f"{where}: no wasm3 signature for {ty}") from None
            if len(ty.results) > 1:
                raise Unsupported(f"{where}: wasm3 host functions return one value at most")
            result = zero(ty.results[0], where) if ty.results else None
            self.links.append((imp.module, imp.name, sig, lambda *args, r=result: r))
        self.export = None
        if start:
            self.export = next((e.name for e in exports if isinstance(e.type, FuncType)), None)
            if self.export is None:
                raise Unsupported("no exported function: wasm3 runs a start function only on a lookup")
        self.env, self.wasm, self.stack_bytes = wasm3.Environment(), bytes(wasm), stack_bytes
        self.budget_bytes, self.capped = budget_bytes, 0
        self.leak_bytes = self._in_child(self._leak)  # wasm3's own refusal, if any, here

    def _leak(self) -> int:
        page = os.sysconf("SC_PAGESIZE")

        def resident():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        self._cycle()  # its one-time costs
        before = resident()
        self._cycle()
        return max(resident() - before, page)

    @staticmethod
    def _in_child(work):
        """``work()``'s result (JSON-able), computed in a forked child.

        Raises:
            RuntimeError: ``work`` raised in the child (its type and message).
        """
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                os.close(r)
                try:
                    text = json.dumps({"ok": work()})
                except BaseException as exc:  # noqa: BLE001 (handed to the parent)
                    text, code = json.dumps({"error": str(exc), "type": type(exc).__name__}), 1
                with os.fdopen(w, "w") as f:
                    f.write(text)
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            text = f.read()
        os.waitpid(pid, 0)
        answer = json.loads(text) if text else {"error": "the child died (no answer)"}
        if "error" in answer:
            kind = answer.get("type", "RuntimeError")
            raise RuntimeError(answer["error"] if kind == "RuntimeError" else f"{kind}: {answer['error']}")
        return answer["ok"]

    def _cycle(self):
        env = self.env
        rt = env.new_runtime(self.stack_bytes)
        mod = env.parse_module(self.wasm)
        rt.load(mod)
        for module, name, sig, fn in self.links:
            mod.link_function(module, name, sig, fn)
        if self.export is not None:
            rt.find_function(self.export)

    def run(self, n, batch):
        allowed = max(1, self.budget_bytes // self.leak_bytes - 1) // batch  # one warm cycle first
        self.capped += max(0, n - max(1, allowed))
        n = min(n, max(1, allowed))

        def warm_then_time():
            self._cycle()  # the child's first touches of the parent's pages (copy-on-write faults)
            return batches(n, batch, self._cycle)
        return self._in_child(warm_then_time)

    def close(self):
        pass


class Floor:
    """The C syscall floors (c_src/wenv_bench.h) of ``wasm``'s geometry, taken from our own
    layout (runtime/layout.py: the reservation, pre-guard, initial size and image each
    defined memory gets from the default Engine; each defined table's minimum), run like
    the other runners (``run(n, batch)`` -> samples in ns; ``close()``). ``kind``:
    floor-cow (on demand: every memory reserved with its image mapped copy-on-write, every
    table opened as the runtime opens one (on the zero region: no syscall), all released), floor-pooling (a slot of each reused: the reset
    alone) or floor-copy (the first memory, its image copied). ``first_memory_only``: the
    first defined memory and no table (scripts/bench_instantiate.py's one-memory floors).
    ``module``: the runtime.Module of ``wasm`` on a default Engine to take the layout of
    (the caller keeps and closes it; default: one made here, closed by :meth:`close`).

    Raises:
        SystemExit: floor-copy or ``first_memory_only`` for a module defining no memory.
    """

    def __init__(self, kind, wasm: bytes, first_memory_only: bool = False, module=None):
        import runtime
        from runtime import _ffi
        from runtime.layout import layout_of
        self.ffi, self.kind = _ffi, kind
        self.own = module is None
        self.module = runtime.Module(runtime.Engine(), wasm) if self.own else module
        layout = layout_of(self.module)
        self.specs, self.memory_count = layout.specs, layout.memory_count
        self.table_elems = [spec.plan.table.minimum for spec in layout.tables]
        if first_memory_only or kind == "floor-copy":
            if self.memory_count == 0:
                self.close()
                raise SystemExit("the module defines no memory: nothing to instantiate")
            self.memory_count, self.table_elems = 1, []
        #: nothing to map (no defined memory; tables open on the zero region): the floor is 0
        self.empty = self.memory_count == 0
        image = layout.memories[0][1] if layout.memories else None
        self.image_bytes = image.read() if kind == "floor-copy" and image is not None else b""

    def run(self, n, batch):
        f = self.ffi
        if self.kind == "floor-cow":
            return f.floor_ondemand(self.specs, self.memory_count, self.table_elems, n, batch)
        if self.kind == "floor-pooling":
            return f.floor_pooled(self.specs, self.memory_count, self.table_elems, n, batch)
        return f.floor_copy(self.specs, self.image_bytes, n, batch)

    def close(self):
        if self.own:
            self.module.close()


def pool_for(wasm: bytes, max_instances: int = 4, max_pages: int = 160, max_elements: int = 10_000):
    """A PoolingAllocator that ``wasm``'s defined memories and tables fit: ``max_pages`` and
    ``max_elements`` (one memory, one table) raised to the module's largest minimum."""
    import runtime
    import wasmenv
    env = wasmenv.compile(wasm).module
    memories = env.memory_plans[env.num_imported_memories:]
    tables = env.table_plans[env.num_imported_tables:]
    pages = max([max_pages] + [p.memory.minimum for p in memories])
    elements = max([max_elements] + [p.table.minimum for p in tables])
    return runtime.PoolingAllocator(max_instances=max_instances, max_memories_per_instance=max(1, len(memories)),
                                    max_memory_pages=pages, max_tables_per_instance=max(1, len(tables)),
                                    max_table_elements=elements)


def our_engine(strategy: str, max_instances: int = 1000, max_pages: int = 160, guard_bytes=None, wasm=None):
    """An Engine for ``strategy``; ``guard_bytes`` overrides the static offset guard; a pool
    is sized for ``wasm`` when given (see :func:`pool_for`)."""
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
        if wasm is not None:
            pool = pool_for(wasm, max_instances, max_pages)
        else:
            pool = runtime.PoolingAllocator(max_instances=max_instances, max_memories_per_instance=1,
                                            max_memory_pages=max_pages, max_tables_per_instance=1,
                                            max_table_elements=10_000)
        return runtime.Engine(tunables, allocator=pool)
    raise ValueError(f"unknown strategy {strategy!r}")


class Ours:
    """Instantiate/release/touch with our runtime (imports: scripts/_dummy_imports)."""

    def __init__(self, strategy, wasm: bytes, n: int, guard_bytes=None):
        import runtime
        from _dummy_imports import ours_linker
        self.runtime = runtime
        self.engine = our_engine(strategy, max_instances=max(n, 1), guard_bytes=guard_bytes, wasm=wasm)
        self.module = runtime.Module(self.engine, wasm)
        linker, self.imports = ours_linker(self.module)
        self.pre = linker.instantiate_pre(self.module)

    def instantiate(self):
        return self.pre.instantiate()

    def touch(self, inst, page: int):
        inst.memory(0).write(page * 4096, b"\x01")

    def call(self, inst, export: str, args):
        return inst.exports[export](*args)

    def release(self, inst):
        inst.close()

    def close(self):
        self.module.close()
        for item in self.imports:
            item.close()
        close = getattr(self.engine.allocator, "close", None)
        if close:
            close()


class Theirs:
    """The same with wasmtime-py (one Store, like one process of ours; the same dummy imports)."""

    def __init__(self, strategy, wasm: bytes, n: int, guard_bytes=None):
        import wasmtime as wt
        import wasmenv
        from _dummy_imports import WasmtimeImports, wasmtime_engine
        self.wt = wt
        self.engine = wasmtime_engine(strategy == "wasmtime-cow", guard_bytes, cache=True)
        self.store = wt.Store(self.engine)
        # A Store allows 10,000 instances/memories by default: lift that for N = 10,000+.
        big = 10 * max(n, 1000)
        self.store.set_limits(instances=big, tables=big, memories=big)
        self.module = wt.Module(self.engine, wasm)
        imports = WasmtimeImports(self.engine, wasmenv.translate(wasm).module.imports())
        linker = imports.new_linker()
        self.imports = imports.define_store_bound(linker, self.store)
        self.pre = linker.instantiate_pre(self.module)

    def instantiate(self):
        return self.pre.instantiate(self.store)

    def _memory(self, inst):
        """Memory 0, as ours touches: the first imported memory, else the first exported."""
        for ext in [*self.imports, *inst.exports(self.store).values()]:
            if isinstance(ext, self.wt.Memory):
                return ext
        raise ValueError("module has no memory it imports or exports")

    def touch(self, inst, page: int):
        self._memory(inst).write(self.store, b"\x01", page * 4096)

    def call(self, inst, export: str, args):
        return inst.exports(self.store)[export](self.store, *args)

    def release(self, inst):
        pass  # wasmtime frees instances with their Store

    def close(self):
        pass


def driver(strategy, wasm, n, guard_bytes=None):
    cls = Ours if strategy in OURS else Theirs
    return cls(strategy, wasm, n, guard_bytes)
