"""Stress (opt-in: ``pytest -m stress tests/test_stress.py -s``): 8 threads randomly
instantiate, grow, access, fill, call into and close instances and modules, and drop
views and instances, on a pooled engine with max_instances=4, for at least 100,000
operations (issue 13's acceptance).

Tenants are shared by all threads: any thread may close one while another is inside an
access, a grow or a wasm call on it. Each tenant keeps a shadow of what its memory must
hold (its image, then every byte it wrote: its own tag); every read, through the
accessors or a wasm export, is compared with it. A use after close raises ValueError
(counted, not an error). At the end: 0 foreign bytes, 0 errors, pool statistics zero.
"""
import gc
import random
import threading
import time

import pytest

from runtime import AllocationError, Engine, Instance, Module
from tests.helpers import WASM_PAGE, make_pool, wat

THREADS = 8
TOTAL_OPS = 100_000  # operations done, not counting instantiations refused at max_instances
MAX_PAGES = 4

#: A module per image; ``tag(value, addr)`` stores value at addr and loads it back.
MODULE = '''(module (memory (export "m") {pages} {max_pages}) (data (i32.const {at}) "{payload}")
  (func (export "tag") (param i32 i32) (result i32)
    (i32.store (local.get 1) (local.get 0))
    (i32.load (local.get 1)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))'''
IMAGES = [(1, 0, "image-one"), (2, 70000, "image-two-" * 20), (1, 4096, "three"), (3, 0, "")]


def _module(engine, k):
    pages, at, payload = IMAGES[k]
    mod = Module(engine, wat(MODULE.format(pages=pages, max_pages=MAX_PAGES, at=at, payload=payload)))
    image = bytearray(pages * WASM_PAGE)
    image[at:at + len(payload)] = payload.encode()
    return mod, image


class Tenant:
    """One live instance, its views, and the shadow of its memory."""

    def __init__(self, inst, image: bytearray, tag: int):
        self.inst = inst
        self.mem = inst.exports["m"]
        self.tag_func = inst.exports["tag"]
        self.load_func = inst.exports["load"]
        self.shadow = bytearray(image)
        self.tag = tag
        self.lock = threading.Lock()  # writers and the shadow; close() does not take it


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = 0
        self.foreign_bytes = 0
        self.refused = 0      # an instantiation refused at max_instances
        self.closed_uses = 0  # a use after close: ValueError, as the rule says
        self.calls = 0
        self.errors = []

    def add(self, **counts):
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


def _differing(data: bytes, expected) -> int:
    if data == expected:
        return 0
    return sum(a != b for a, b in zip(data, expected)) + abs(len(data) - len(expected))


def _run(pool, seed):
    eng = Engine(allocator=pool)
    modules_lock = threading.Lock()
    modules = [_module(eng, k) for k in range(len(IMAGES))]
    tenants_lock = threading.Lock()
    tenants = []
    stats = Stats()
    tags = iter(range(1, 1 << 30))
    tags_lock = threading.Lock()

    def pick(rng):
        with tenants_lock:
            return rng.choice(tenants) if tenants else None

    def op_instantiate(rng):
        with modules_lock:
            k = rng.randrange(len(modules))
            mod, image = modules[k]
        try:
            inst = Instance(mod)
        except AllocationError as exc:
            assert exc.limit == "max_instances"
            stats.add(refused=1)
            time.sleep(0.0002)
            return False
        except ValueError:  # the module was closed by another thread meanwhile
            stats.add(closed_uses=1)
            return
        mem = inst.exports["m"]
        stats.add(foreign_bytes=_differing(mem.read(0, mem.byte_len), image))  # a clean tenant
        del mem
        with tags_lock:
            tag = next(tags)
        t = Tenant(inst, image, tag)
        with tenants_lock:
            tenants.append(t)

    def op_close(rng, drop=False):
        with tenants_lock:
            if not tenants:
                return
            t = tenants.pop(rng.randrange(len(tenants)))
        if drop:  # dropped without close: the backstop releases it, at a collection
            del t
            gc.collect()
            return
        t.inst.close()

    def op_write(rng, t):
        with t.lock:
            size = len(t.shadow)
            addr = rng.randrange(0, size - 4, 4)
            value = (t.tag * 2654435761 + addr) & 0xFFFFFFFF
            if rng.random() < 0.5:
                t.mem.store_i32(addr, value)
            else:
                assert t.tag_func(value - (1 << 32) if value >= 1 << 31 else value, addr) & 0xFFFFFFFF == value
                stats.add(calls=1)
            t.shadow[addr:addr + 4] = value.to_bytes(4, "little")

    def op_fill(rng, t):
        with t.lock:
            size = len(t.shadow)
            addr = rng.randrange(size)
            n = min(rng.randrange(1, 8192), size - addr)
            byte = t.tag & 0xFF or 1
            t.mem.fill(addr, byte, n)
            t.shadow[addr:addr + n] = bytes([byte]) * n

    def op_read(rng, t):
        # Under the tenant's lock (writers hold it), but a close from another thread may
        # come in the middle: the read completes on the tenant's memory, or raises.
        shadow = t.shadow
        with t.lock:
            size = len(shadow)
            addr = rng.randrange(size)
            n = min(rng.randrange(1, 16384), size - addr)
            expected = bytes(shadow[addr:addr + n])
            if rng.random() < 0.3:
                a4 = addr & ~3
                if a4 + 4 <= size:
                    got = t.load_func(a4) & 0xFFFFFFFF
                    stats.add(calls=1, foreign_bytes=_differing(got.to_bytes(4, "little"),
                                                                bytes(shadow[a4:a4 + 4])))
            stats.add(foreign_bytes=_differing(t.mem.read(addr, n), expected))

    def op_grow(rng, t):
        with t.lock:
            old = len(t.shadow)
            if t.mem.grow(1) != -1:
                t.shadow += bytes(WASM_PAGE)
                stats.add(foreign_bytes=_differing(t.mem.read(old, WASM_PAGE), bytes(WASM_PAGE)))

    def op_drop_views(rng, t):
        with t.lock:
            t.mem = t.inst.exports["m"]  # the old view dropped, a new one made
            t.tag_func = t.inst.exports["tag"]

    def op_close_module(rng):
        with modules_lock:
            k = rng.randrange(len(modules))
            old, _ = modules[k]
            modules[k] = _module(eng, k)
        old.close()  # its live instances go on; instantiations in progress finish

    def work(tid):
        rng = random.Random(seed * 1000 + tid)
        try:
            while stats.ops < TOTAL_OPS:
                r = rng.random()
                try:
                    done = True
                    if r < 0.10:
                        if len(tenants) < 4 or rng.random() < 0.05:  # refusals too, sometimes
                            done = op_instantiate(rng) is not False
                        else:
                            op_close(rng)
                    elif r < 0.16:
                        op_close(rng)
                    elif r < 0.17:
                        op_close(rng, drop=True)
                    elif r < 0.172:
                        op_close_module(rng)
                    else:
                        t = pick(rng)
                        if t is None:
                            done = op_instantiate(rng) is not False
                        elif r < 0.40:
                            op_write(rng, t)
                        elif r < 0.50:
                            op_fill(rng, t)
                        elif r < 0.90:
                            op_read(rng, t)
                        elif r < 0.95:
                            op_grow(rng, t)
                        else:
                            op_drop_views(rng, t)
                except ValueError as exc:  # a use after close (another thread closed it)
                    assert "closed" in str(exc), exc
                    stats.add(closed_uses=1)
                if done:
                    stats.add(ops=1)
        except BaseException as exc:  # reported by the main thread
            stats.errors.append(exc)

    start = time.monotonic()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.monotonic() - start
    for t in tenants:
        t.inst.close()
    tenants.clear()
    for mod, _ in modules:
        mod.close()
    gc.collect()
    return stats, seconds


@pytest.mark.stress
@pytest.mark.parametrize("seed", [1])
def test_eight_threads_share_a_pool_of_four_instances(seed):
    with make_pool(max_instances=4, max_memory_pages=MAX_PAGES) as pool:
        stats, seconds = _run(pool, seed)
        if stats.errors:
            raise stats.errors[0]
        live = pool._core.stats()
        print(f"\nstress: {stats.ops} operations (besides the refused ones) in {seconds:.1f} s on {THREADS} threads; "
              f"{stats.foreign_bytes} foreign bytes; {stats.calls} wasm calls; "
              f"{stats.refused} instantiations refused at max_instances; "
              f"{stats.closed_uses} uses after close refused; pool (instances, memories, "
              f"slots used, free, bad) = {live}")
        assert stats.ops >= 100_000
        assert stats.foreign_bytes == 0
        assert live[0] == live[1] == live[4] == 0 and live[2] == live[3]
        assert pool.live_tables == 0
