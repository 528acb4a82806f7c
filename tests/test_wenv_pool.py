"""c_src/wenv_pool.c on its own, under AddressSanitizer and UBSan: tests/c/pool_sanitize.c
drives the slot table with random take / grow / dirty / put sequences for every
keep_resident case and checks each new tenant's bytes, double puts and the counters."""
import os
import subprocess

import pytest

from tests.helpers import build_sanitized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_SRC = os.path.join(ROOT, "c_src")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("pool") / "pool_sanitize")
    return build_sanitized(exe, [os.path.join(C_SRC, "wenv_pool.c"), os.path.join(C_SRC, "wenv_native.c"),
                                 os.path.join(ROOT, "tests", "c", "pool_sanitize.c")])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slot_table_under_sanitizers(harness, seed):
    proc = subprocess.run([harness, "3000", str(seed)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ") and int(proc.stdout.split()[1]) > 3000  # about a third of 4 x 3000 steps
    assert "runtime error" not in proc.stderr  # UBSan findings
