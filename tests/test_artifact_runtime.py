"""Instances mapped from compiled artifacts: file-backed, shared across processes."""
import os
import pathlib
import subprocess
import sys

import psutil
import pytest
import wasmtime

import runtime
import wasmenv
from tests.artifact_samples import WAT_STATIC
from wasmenv import save_artifact

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    wasm = (ROOT / "examples" / "build" / "image_1mib.wasm").read_bytes()
    out = tmp_path_factory.mktemp("art") / "image_1mib"
    wasmenv.save_artifact(wasmenv.compile(wasm), out)
    return out


def image_maps(data_file):
    """(start, end, perms) of this process's mappings of ``data_file``."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith(str(data_file)):
                lo, hi = line.split()[0].split("-")
                out.append((int(lo, 16), int(hi, 16), line.split()[1]))
    return out


def test_image_mappings_are_backed_by_the_artifact_data_file(artifact):
    engine = runtime.Engine()
    module = runtime.Module(engine, artifact)
    data_file = module.translation.artifact.data_file
    with runtime.Instance(module) as a, runtime.Instance(module) as b:
        private = [m for m in image_maps(data_file) if m[2] == "rw-p"]
        for inst in (a, b):
            base = inst.memory(0).base_address
            assert (base, base + (1 << 20), "rw-p") in private
        # Copy-on-write: a write stays in its instance, the file is untouched.
        before = pathlib.Path(data_file).read_bytes()[:16]
        a.memory(0).write(0, b"\xff" * 16)
        assert b.memory(0).read(0, 16) == before
        assert pathlib.Path(data_file).read_bytes()[:16] == before
    assert not any(m[2] == "rw-p" for m in image_maps(data_file))


HOLDER = """
import sys, time, runtime
engine = runtime.Engine()
module = runtime.Module(engine, sys.argv[1])
instances = [runtime.Instance(module) for _ in range(500)]
for inst in instances:                       # read every image page: make them resident
    mem = inst.memory(0)
    for page in range(0, 1 << 20, 4096):
        mem.load_i32(page)
print("ready", flush=True)
sys.stdin.readline()
"""


def test_two_processes_share_image_pages(artifact):
    """500 instances in each of two processes: the image pages are the page cache's,
    shared: each process's Pss of the image mappings is half of one image's Rss, and
    nothing is private dirty (no process holds a copy until it writes)."""
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(artifact)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        data_file = str(next(pathlib.Path(artifact).rglob("data.ninja")))
        for p in procs:
            maps = [m for m in psutil.Process(p.pid).memory_maps(grouped=False)
                    if m.path == data_file and m.perms.startswith("rw")]
            assert len(maps) == 500
            rss = sum(m.rss for m in maps)
            pss = sum(m.pss for m in maps)
            dirty = sum(m.private_dirty for m in maps)
            assert rss == 500 * (1 << 20)
            assert dirty == 0
            # Every mapping shows the whole image resident (Rss), but the pages exist once,
            # in the page cache, mapped 1,000 times by two processes: each process's
            # proportional share of its 500 mappings is half of one image.
            image = 1 << 20
            assert 0.45 * image <= pss <= 0.55 * image, (pss, rss)
    finally:
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            p.wait(timeout=60)


def test_data_file_truncated_while_mapped_is_reported_as_a_fault_not_a_trap(tmp_path):
    """A page past the end of a truncated file raises SIGBUS: the runtime reports a
    WasmRuntimeError naming the fault, never a wasm Trap, and the process survives."""
    wasm = (ROOT / "examples" / "build" / "image_1mib.wasm").read_bytes()
    out = tmp_path / "art"
    wasmenv.save_artifact(wasmenv.compile(wasm), out)
    module = runtime.Module(runtime.Engine(), out)
    data_file = module.translation.artifact.data_file
    with runtime.Instance(module) as inst:
        mem = inst.memory(0)
        first = mem.load_i32(0)
        os.truncate(data_file, 4096)
        with pytest.raises(runtime.WasmRuntimeError, match="fault inside the accessible bytes") as info:
            mem.load_i32(512 * 1024)
        assert not isinstance(info.value, runtime.Trap)
        assert mem.load_i32(0) == first  # the page that is still in the file


# ---- a data file truncated while mapped: every path that reads it ----------------------

TRUNCATED_PRELUDE = """
import os, sys, tempfile, wasmtime, wasmenv, runtime
from wasmenv import Tunables
def artifact(wat, tunables=None, **engine_kw):
    tunables = tunables or Tunables()
    out = os.path.join(tempfile.mkdtemp(), "art")
    wasmenv.save_artifact(wasmenv.compile(wasmtime.wat2wasm(wat), tunables), out, tunables=tunables)
    module = runtime.Module(runtime.Engine(tunables, **engine_kw), out)
    return module, module.translation.artifact.data_file
def expect_fault(what):
    try:
        what()
    except runtime.Trap as t:
        print("trap", t, flush=True)
    except runtime.WasmRuntimeError as e:
        print("WasmRuntimeError:", e, flush=True)
    else:
        print("no error", flush=True)
PAGE = "x" * 70000
"""

TRUNCATED_PATHS = {
    # a memory64 memory grown past its (zero) reserve moves: the copy reads its image
    "moving_memory64_grow": """
module, data = artifact('(module (memory (export "m") i64 2 4) (data (i64.const 0) "' + PAGE + '"))',
                        Tunables(static_memory_bound=1, dynamic_memory_growth_reserve=0))
assert module.images[0] is not None and not module.env.memory_plans[0].is_static
inst = runtime.Instance(module)
mem = inst.memory(0)
os.truncate(data, 0)
expect_fault(lambda: mem.grow(1))
""",
    # copy-on-write off: the image bytes are copied from the data file at instantiation
    "copy_strategy_instantiation": """
module, data = artifact('(module (memory (export "m") 2) (data (i32.const 0) "' + PAGE + '"))',
                        memory_init_cow=False)
os.truncate(data, 0)
expect_fault(lambda: runtime.Instance(module))
""",
    # a sparse memory stays Segmented: each segment is copied from the data file
    "segmented_data_copy": """
module, data = artifact('(module (memory (export "m") 512) (data (i32.const 0) "' + PAGE + '")'
                        ' (data (i32.const 0x1FFFF00) "tail"))')
assert module.env.memory_initialization.is_segmented()
os.truncate(data, 0)
expect_fault(lambda: runtime.Instance(module))
""",
    # memory.init copies from a passive segment, a view of the data file
    "memory_init_from_passive": """
module, data = artifact('(module (memory (export "m") 2) (data "' + PAGE + '"))')
inst = runtime.Instance(module)
os.truncate(data, 0)
expect_fault(lambda: inst.memory_init(0, 0, 0, 0, 60000))
""",
}


@pytest.mark.parametrize("path", sorted(TRUNCATED_PATHS))
def test_data_file_truncated_while_mapped_is_a_runtime_error_on_every_path(path):
    """A data file truncated under a live module: every read of its bytes (not only an
    accessor's) runs under the fault guard and becomes the WasmRuntimeError the README
    promises, never a SIGBUS that kills the process, nor a Trap."""
    from tests.test_native import run_child
    proc = run_child(TRUNCATED_PRELUDE + TRUNCATED_PATHS[path])
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.startswith("WasmRuntimeError:"), proc.stdout
    assert "truncated" in proc.stdout, proc.stdout


# =====================================================================================
# End to end with the runtime (images mapped from the artifact's data file)
# =====================================================================================
def _runtime():
    from runtime.engine import Engine
    from runtime.instance import Instance
    from runtime.module import Module as RtModule
    return Engine, Instance, RtModule


def test_runtime_instantiates_from_artifact(tmp_path):
    Engine, Instance, RtModule = _runtime()
    wasm = wasmtime.wat2wasm(WAT_STATIC)
    save_artifact(wasmenv.compile(wasm), tmp_path / "a")
    engine = Engine()
    with RtModule.from_artifact(engine, tmp_path / "a") as module:
        with Instance(module) as inst:
            mem = inst.memory(0)
            assert mem.read(100, 5) == b"hello" and mem.read(70000, 5) == b"world"
            mem.write(100, b"HELLO")  # private copy-on-write: the file does not change
            assert mem.read(100, 5) == b"HELLO"
            assert bytes(inst.passive_data(2)) == b"passive bytes"
    assert b"hello" in (tmp_path / "a" / "data" / "data.ninja").read_bytes()
    assert b"HELLO" not in (tmp_path / "a" / "data" / "data.ninja").read_bytes()
