"""Per-instance resident memory (runtime.usage), checked against the kernel's own rollup."""
import gc
import pathlib
import tracemalloc

import pytest

import runtime
from runtime import usage

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = 4096
KIB = 1024


@pytest.fixture(scope="module")
def image_wasm():
    path = ROOT / "examples" / "build" / "image_1mib.wasm"
    if not path.exists():
        import subprocess
        import sys
        subprocess.run([sys.executable, str(ROOT / "scripts" / "build_examples.py")], check=True)
    return path.read_bytes()


def smaps_rollup_rss() -> int:
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1]) * KIB
    raise AssertionError("no Rss in smaps_rollup")


def test_thousand_cow_instances_cost_under_16_kib_each(image_wasm):
    engine = runtime.Engine()
    module = runtime.Module(engine, image_wasm)
    # The image covers the memory's whole initial size (17 pages): one mapping per memory.
    assert module.images[0] is not None and module.images[0].byte_len == 17 * 65536
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    instances = [runtime.Instance(module) for _ in range(1000)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    python_bytes = sum(s.size_diff for s in after.compare_to(before, "filename"))
    try:
        per = usage.instances_usage(instances)
        rss = sum(u.rss for u in per)
        per_instance = (rss + python_bytes) / len(instances)
        assert per_instance < 16 * KIB, (rss, python_bytes)
        assert all(u.private_dirty == 0 and u.anonymous == 0 for u in per)
        # The bytes are really there, shared with the image.
        assert instances[-1].memory(0).read(0, 16) == module.translation.data_view(
            module.env.memory_initialization.map[0].data)[:16].tobytes()
    finally:
        for i in instances:
            i.close()


def test_writing_one_byte_costs_one_page(image_wasm):
    engine = runtime.Engine()
    module = runtime.Module(engine, image_wasm)
    with runtime.Instance(module) as inst:
        before = usage.instance_usage(inst)
        inst.memory(0).write(5000, b"\x01")
        after = usage.instance_usage(inst)
        assert after.anonymous - before.anonymous == PAGE  # exactly one copied page
        assert after.private_dirty - before.private_dirty == PAGE
        assert after.rss - before.rss <= PAGE


def test_copy_path_costs_the_image_per_instance(image_wasm):
    engine = runtime.Engine(memory_init_cow=False)
    module = runtime.Module(engine, image_wasm)
    instances = [runtime.Instance(module) for _ in range(20)]
    try:
        per = usage.instances_usage(instances)
        for u in per:
            assert (1 << 20) <= u.private_dirty <= (1 << 20) + 16 * PAGE
            assert (1 << 20) <= u.anonymous <= (1 << 20) + 16 * PAGE
    finally:
        for i in instances:
            i.close()


def test_instance_usage_agrees_with_smaps_rollup(image_wasm):
    """An independent reading: the process Rss delta (smaps_rollup) covers our per-instance sum."""
    engine = runtime.Engine(memory_init_cow=False)
    module = runtime.Module(engine, image_wasm)
    gc.collect()
    base = smaps_rollup_rss()
    instances = [runtime.Instance(module) for _ in range(32)]
    try:
        ours = sum(u.rss for u in usage.instances_usage(instances))
        delta = smaps_rollup_rss() - base
        assert ours >= 32 << 20
        # Everything we count is process Rss; the rest of the delta is Python objects.
        assert ours <= delta + 64 * PAGE
        assert delta - ours < 4 << 20
    finally:
        for i in instances:
            i.close()


def test_process_usage_fields():
    u = usage.process_usage()
    assert u.rss > 0 and 0 < u.uss <= u.rss and u.pss > 0
