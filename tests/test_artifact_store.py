"""The data store (wasmenv/artifact/store.py): our reader against the pinned mmap-ninja."""
import configparser
import os
import pathlib
import random
import re
from importlib import metadata

import numpy as np
import pytest
from mmap_ninja import RaggedMmap

from tests.artifact_samples import MIB, PAGE, T
from tests.helpers import open_fd_count as fd_count
from wasmenv import (ArtifactError, MemoryInitialization, MemoryPlan, MemoryType, Module,
                     ModuleTranslation, StaticMemoryInitializer, load_artifact, save_artifact)
from wasmenv.artifact import store

ROOT = pathlib.Path(__file__).resolve().parent.parent


def pinned_version():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    for line in cfg["options"]["install_requires"].split("\n"):
        name, _, version = line.strip().partition("==")
        if name == "mmap-ninja":
            return version
    raise AssertionError("setup.cfg does not pin mmap-ninja (the loader reads its files itself)")


def test_the_installed_mmap_ninja_is_the_pinned_one():
    assert metadata.version("mmap-ninja") == pinned_version()


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in pathlib.Path(d).rglob("*") if p.is_file())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_our_reader_agrees_with_what_mmap_ninja_writes(tmp_path, seed):
    rng = random.Random(seed)
    items = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    d = str(tmp_path / "ragged")
    rm = RaggedMmap.from_lists(d, [np.frombuffer(b, np.uint8) for b in items[:25]], dtype=np.uint8)
    rm.extend([np.frombuffer(b, np.uint8) for b in items[25:]])  # what save does past a batch
    want_starts, want_ends = [int(x) for x in rm.starts], [int(x) for x in rm.ends]
    del rm
    # Every file mmap-ninja writes is one the reader checks, or one it knowingly ignores
    # (item shapes: with shapes_are_flat they repeat ends - starts). A new one is noticed.
    numpy_dir = ("data.ninja", "dtype.ninja", "order.ninja", "shape.ninja", "type.ninja")
    checked = ["data.ninja", "dtype.ninja", "order.ninja", "shape.ninja", "shapes_are_flat.ninja",
               "type.ninja", *(f"{sub}/{n}" for sub in ("starts", "ends") for n in numpy_dir)]
    ignored = [f"{sub}/{n}" for sub in ("shapes", "flattened_shapes") for n in numpy_dir]
    assert files_under(d) == sorted(checked + ignored)
    size = sum(map(len, items))
    with store.ArtifactDir(str(tmp_path)) as root:
        starts, ends = store.read_index(root, "ragged", size, len(items))
        assert (starts, ends) == (want_starts, want_ends)
        fd = store.open_data(root, f"ragged/{store.DATA_NAME}", size)
        mapping = store.map_readonly(fd, size)
        os.close(fd)
        try:
            assert [mapping[s:e] for s, e in zip(starts, ends)] == items
        finally:
            mapping.close()
        with pytest.raises(ArtifactError, match="metadata says"):
            store.read_index(root, "ragged", size, len(items) + 1)


# =====================================================================================
# An artifact directory someone else can write (issue 13, items 7, 8, 9 and 11)
# =====================================================================================
WAT = """(module
  (memory $m 2)
  (data (i32.const 100) "hello")
  (data (i32.const 70000) "world")
  (data "passive bytes")
  (export "memory" (memory $m)))"""


@pytest.fixture
def saved(tmp_path):
    import wasmtime

    import wasmenv
    return pathlib.Path(wasmenv.save_artifact(wasmenv.compile(wasmtime.wat2wasm(WAT)), tmp_path / "art"))


#: Every file the loader opens.
ARTIFACT_FILES = [
    "wasmenv-artifact.json", "data/data.ninja", "data/type.ninja", "data/shapes_are_flat.ninja",
    "data/dtype.ninja", "data/order.ninja", "data/shape.ninja",
    *(f"data/{sub}/{name}" for sub in ("starts", "ends")
      for name in ("data.ninja", "dtype.ninja", "order.ninja", "shape.ninja", "type.ninja")),
]

LOAD_AND_REPORT = """
import os, sys, wasmenv
fds = len(os.listdir("/proc/self/fd"))
try:
    wasmenv.load_artifact(sys.argv[1])
except wasmenv.ArtifactError as exc:
    print("ArtifactError:", exc)
else:
    print("loaded")
print("fds", len(os.listdir("/proc/self/fd")) - fds)
"""


def load_in_subprocesses(paths, timeout_s=60):
    """Load each artifact in its own process; per path, its output, or "hang" past the timeout."""
    import subprocess
    import sys
    import time
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_AND_REPORT, str(p)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p in paths]
    deadline = time.monotonic() + timeout_s
    out = []
    for proc in procs:
        try:
            out.append(proc.communicate(timeout=max(0.1, deadline - time.monotonic()))[0])
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out.append("hang")
    return out


def copy_artifact(src, dst):
    import shutil
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_a_fifo_in_place_of_any_file_is_refused_without_hanging(saved, tmp_path):
    paths = []
    for k, rel in enumerate(ARTIFACT_FILES):
        art = copy_artifact(saved, tmp_path / f"fifo{k}")
        os.unlink(art / rel)
        os.mkfifo(art / rel)
        paths.append(art)
    results = load_in_subprocesses(paths)
    for rel, out in zip(ARTIFACT_FILES, results):
        assert out != "hang", f"a FIFO at {rel} hangs the loader"
        assert "ArtifactError:" in out and "not a regular file" in out, (rel, out)
        assert "fds 0" in out, (rel, out)


def test_a_symlinked_artifact_directory_still_loads(saved, tmp_path):
    import wasmenv
    os.symlink(saved, tmp_path / "link")
    assert wasmenv.load_artifact(tmp_path / "link").artifact.data_file is not None


def assert_refused(path, match):
    import gc

    import wasmenv
    gc.collect()  # what earlier tests dropped closes its fds now, not during the count
    fds = fd_count()
    with pytest.raises(ArtifactError, match=match):
        wasmenv.load_artifact(path)
    assert fd_count() == fds


def test_symlinks_inside_an_artifact_are_refused(saved, tmp_path):
    import runtime
    outside = tmp_path / "outside"
    outside.mkdir()
    for k, rel in enumerate(ARTIFACT_FILES + ["data", "data/starts"]):
        art = copy_artifact(saved, tmp_path / f"link{k}")
        target = outside / f"{k}"
        os.rename(art / rel, target)  # the same bytes, somewhere else
        os.symlink(target, art / rel)
        assert_refused(art, "symbolic link")
    # What the issue saw: the instance's memory mapped from a file outside the artifact.
    art = tmp_path / "link1"  # data/data.ninja is the link
    with pytest.raises(ArtifactError, match="symbolic link"):
        runtime.Module(runtime.Engine(), art)
    # Swapped after load: the runtime maps the file that was checked, or refuses.
    import wasmenv
    tr = wasmenv.load_artifact(saved)
    data = saved / "data" / "data.ninja"
    os.rename(data, outside / "swapped")
    os.symlink(outside / "swapped", data)
    fds = fd_count()
    with pytest.raises(ArtifactError, match="symbolic link"):
        tr.artifact.open_data_file()
    os.unlink(data)
    (outside / "copy").write_bytes((outside / "swapped").read_bytes())
    os.rename(outside / "copy", data)  # same bytes, another file
    with pytest.raises(ArtifactError, match="replaced since the artifact was loaded"):
        tr.artifact.open_data_file()
    assert fd_count() == fds


def test_a_huge_item_count_with_sparse_index_files_is_refused_before_reading(saved):
    import json
    import struct
    import subprocess
    import sys

    from wasmenv.artifact import METADATA_FILE, metadata_checksum
    items = 1 << 23  # 64 MiB per index file, all holes
    file_size = 1 << 36  # a sparse data file big enough for that many items
    meta = saved / METADATA_FILE
    doc = json.loads(meta.read_text())
    doc["store"]["items"] = items
    doc["store"]["file_size"] = file_size
    doc["checksum"] = metadata_checksum(doc)
    meta.write_text(json.dumps(doc))
    os.truncate(saved / "data" / "data.ninja", file_size)
    (saved / "data" / "shape.ninja").write_bytes(struct.pack("<Q", file_size))
    for sub in ("starts", "ends"):
        os.truncate(saved / "data" / sub / "data.ninja", 8 * items)
        (saved / "data" / sub / "shape.ninja").write_bytes(struct.pack("<Q", items))
    code = ("import os, sys, tracemalloc, wasmenv\ntracemalloc.start()\n"
            "fds = len(os.listdir('/proc/self/fd'))\n"
            "try:\n    wasmenv.load_artifact(sys.argv[1])\n"
            "except wasmenv.ArtifactError as exc:\n    print('ArtifactError:', exc)\n"
            "print('fds', len(os.listdir('/proc/self/fd')) - fds)\n"
            "print('peak', tracemalloc.get_traced_memory()[1])")
    out = subprocess.run([sys.executable, "-c", code, str(saved)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120).stdout
    assert "ArtifactError:" in out and "store.items" in out and "fds 0" in out, out
    peak = int(out.split("peak")[1])
    assert peak < 8 << 20, f"{peak} bytes allocated to reject the artifact"


def test_a_data_file_others_can_write_is_refused(saved):
    data = saved / "data" / "data.ninja"
    for mode in (0o666, 0o664, 0o646):
        os.chmod(data, mode)
        assert_refused(saved, "writable by others")
    os.chmod(data, 0o644)
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(data, 12345, -1)
        assert_refused(saved, "owned by uid 12345")
        os.chown(data, 0, -1)
    import wasmenv
    assert wasmenv.load_artifact(saved).artifact.data_file == str(data)


def test_save_makes_the_data_file_writable_by_its_owner_only(tmp_path):
    import wasmtime

    import wasmenv
    old = os.umask(0o000)
    try:
        path = wasmenv.save_artifact(wasmenv.compile(wasmtime.wat2wasm(WAT)), tmp_path / "a")
    finally:
        os.umask(old)
    assert os.stat(os.path.join(path, "data", "data.ninja")).st_mode & 0o777 == 0o644
    wasmenv.load_artifact(path)


def test_the_owner_rewriting_a_mapped_data_file_changes_live_instances(saved):
    """Documented (README, load_artifact): MAP_PRIVATE does not snapshot the file, so a data
    file must not be modified in place while mapped; a writer other than its owner is refused."""
    import runtime
    engine = runtime.Engine()
    with runtime.Module(engine, saved) as module, runtime.Instance(module) as inst:
        mem = inst.memory(0)
        assert mem.read(100, 5) == b"hello"
        data = saved / "data" / "data.ninja"
        raw = bytearray(data.read_bytes())
        at = raw.index(b"hello")
        with open(data, "r+b") as f:  # in place, same inode
            f.seek(at)
            f.write(b"HELLO")
        assert mem.read(100, 5) == b"HELLO"  # an untouched copy-on-write page follows the file
        mem.write(70000, b"W")  # a written page is private from then on
        with open(data, "r+b") as f:
            f.seek(raw.index(b"world"))
            f.write(b"XXXXX")
        assert mem.read(70000, 5) == b"World"


# =====================================================================================
# Load does not read the image bytes
# =====================================================================================
def big_static(n):
    m = Module()
    m.memory_plans = [MemoryPlan.for_memory(MemoryType(n // 65536 + 1), T)]
    tr = ModuleTranslation(m)
    r = tr.data.push(b"\x5a" * n)
    m.memory_initialization = MemoryInitialization.Static((StaticMemoryInitializer(0, r),))
    tr.data_align = PAGE
    return tr


def smaps_rss_kib(path):
    """Sum of Rss over this process's mappings of ``path`` (kB), from /proc/self/smaps."""
    total = 0
    current = False
    with open("/proc/self/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                current = line.rstrip("\n").endswith(" " + path)
            elif current and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def read_chars():
    import psutil
    return psutil.Process().io_counters().read_chars


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_load_does_not_read_image_bytes(tmp_path):
    import psutil
    try:
        psutil.Process().io_counters()
    except (AttributeError, psutil.Error):
        pytest.skip("no per-process io counters")
    paths = {}
    for mib in (1, 64):
        paths[mib] = save_artifact(big_static(mib * MIB), tmp_path / f"a{mib}")
    load_artifact(paths[1])  # warm up imports
    cost = {}
    for mib in (1, 64):
        before = read_chars()
        tr = load_artifact(paths[mib])
        cost[mib] = read_chars() - before
        data_file = tr.artifact.data_file
        # mapped, but not one page of it is resident in this process yet
        assert smaps_rss_kib(data_file) == 0
        assert len(tr.data.chunks[0]) == mib * MIB
        assert tr.data.chunks[0][mib * MIB - 1] == 0x5A  # touch one byte...
        assert smaps_rss_kib(data_file) > 0  # ...and the measurement sees it
        del tr
    # read() traffic is metadata and index files only: independent of the data size
    assert cost[64] < cost[1] + 64 * 1024, cost
    assert cost[64] < 1 * MIB, cost
    # verify=True does read everything (the counter would see it)
    before = read_chars()
    load_artifact(paths[64], verify=True)
    assert read_chars() - before >= 64 * MIB
