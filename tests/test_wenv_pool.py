"""c_src/wenv_pool.c on its own, under AddressSanitizer and UBSan: tests/c/pool_sanitize.c
drives the slot table with random take / grow / dirty / put sequences for every
keep_resident case and checks each new tenant's bytes, double puts and the counters."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_SRC = os.path.join(ROOT, "c_src")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    assert cc, "a C compiler is needed (the runtime itself is built with one)"
    exe = str(tmp_path_factory.mktemp("pool") / "pool_sanitize")
    subprocess.run([cc, "-O1", "-g", "-std=gnu11", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", f"-I{C_SRC}",
                    *(os.path.join(C_SRC, f"wenv_{unit}.c") for unit in ("mman", "pool", "instance")),
                    os.path.join(ROOT, "tests", "c", "pool_sanitize.c"), "-o", exe, "-lpthread"],
                   check=True, capture_output=True, text=True)
    return exe


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slot_table_under_sanitizers(harness, seed):
    proc = subprocess.run([harness, "3000", str(seed)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ") and int(proc.stdout.split()[1]) > 3000  # about a third of 4 x 3000 steps
    assert "runtime error" not in proc.stderr  # UBSan findings
