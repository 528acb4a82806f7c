"""PoolingAllocator under threads: concurrent instantiate / write / grow / release, with
as many instances as threads and with fewer (refusals). Nothing is handed out twice, and
every tenant sees only its image."""
import threading
import time

import pytest

from runtime import AllocationError, Engine, Instance, Module
from tests.helpers import MODULES, WASM_PAGE, expected, make_pool, module_text, wat


# ---- threads --------------------------------------------------------------------------

def _hammer(seconds, threads=8, max_instances=8):
    with make_pool(max_instances=max_instances, max_memory_pages=8) as pool:
        eng = Engine(allocator=pool)
        mods = {name: Module(eng, wat(module_text(pages, data, max_pages=8)))
                for name, (pages, data) in MODULES.items() if pages <= 4}
        names = sorted(mods)
        lock = threading.Lock()
        live = {}
        handed = [0]
        refused = [0]
        errors = []
        deadline = time.monotonic() + seconds

        def work(tid):
            k = tid
            try:
                while time.monotonic() < deadline:
                    name = names[k % len(names)]
                    k += 1
                    try:
                        inst = Instance(mods[name])
                    except AllocationError as exc:
                        assert exc.limit == "max_instances"
                        with lock:
                            refused[0] += 1
                        # Back off as a real caller would: a thread spinning on refusals
                        # holds the GIL that the holders need after each C call.
                        time.sleep(0.0005)
                        continue
                    mem, table = inst.exports["m"], inst.exports["t"]
                    key = mem.reservation_range
                    with lock:
                        assert key not in live, f"slot {key} handed out twice at once"
                        live[key] = tid
                        handed[0] += 1
                    assert mem.read(0, mem.byte_len) == expected(name, mem.byte_len)
                    assert table.get(tid % table.size) is None
                    mem.fill(0, tid + 1, mem.byte_len)
                    if mem.grow(1) != -1:
                        assert mem.read(mem.byte_len - WASM_PAGE, WASM_PAGE) == bytes(WASM_PAGE)
                        mem.fill(mem.byte_len - WASM_PAGE, tid + 1, WASM_PAGE)
                    table.fill(0, inst.exports["f"], table.size)
                    with lock:
                        del live[key]
                    inst.close()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        assert handed[0] > 100
        assert pool.live_instances == pool.live_memories == pool.live_tables == 0
        live_instances, live_memories, created, free, in_use_but_free = pool._core.stats()
        assert in_use_but_free == 0
        assert free == created <= max_instances
        return handed[0], refused[0]


def test_threads_instantiate_and_release_concurrently():
    handed, refused = _hammer(3.0)
    assert refused == 0


def test_threads_contend_for_fewer_instances_than_threads():
    handed, refused = _hammer(1.5, threads=8, max_instances=3)
    assert refused > 0


@pytest.mark.slow
def test_threads_instantiate_and_release_concurrently_long():
    _hammer(10.0)
