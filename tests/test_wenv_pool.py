"""c_src/wenv_pool.c on its own, built from its C with test harnesses:

* tests/c/pool_sanitize.c, under AddressSanitizer and UBSan, drives the slot table with
  random take / grow / dirty / put sequences for every keep_resident case and checks
  each new tenant's bytes, double puts and the counters;
* tests/c/pool_races.c runs each race window of the pool deterministically (the C is
  built with -DWENV_TEST_HOOKS: a hook pauses the first thread inside the window while a
  second one calls in), and runs every call at once under ThreadSanitizer.
"""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_SRC = os.path.join(ROOT, "c_src")


#: The units a pool harness links (wenv_instance.c: the pool's one-call path).
POOL_UNITS = ("mman", "pool", "instance")


def build(tmp_path_factory, harness, *flags):
    """Build tests/c/HARNESS.c with the pool's C and ``flags``; the executable's path."""
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    assert cc, "a C compiler is needed (the runtime itself is built with one)"
    exe = str(tmp_path_factory.mktemp("pool") / harness)
    proc = subprocess.run([cc, "-O1", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                           "-Wno-unused-parameter", "-fno-omit-frame-pointer", *flags, f"-I{C_SRC}",
                           *(os.path.join(C_SRC, f"wenv_{unit}.c") for unit in POOL_UNITS),
                           os.path.join(ROOT, "tests", "c", f"{harness}.c"), "-o", exe, "-lpthread"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory, "pool_sanitize", "-fsanitize=address,undefined",
                 "-fno-sanitize-recover=undefined")


@pytest.fixture(scope="module")
def races(tmp_path_factory):
    return build(tmp_path_factory, "pool_races", "-DWENV_TEST_HOOKS")


@pytest.fixture(scope="module")
def races_tsan(tmp_path_factory):
    return build(tmp_path_factory, "pool_races", "-DWENV_TEST_HOOKS", "-fsanitize=thread")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slot_table_under_sanitizers(harness, seed):
    proc = subprocess.run([harness, "3000", str(seed)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ") and int(proc.stdout.split()[1]) > 3000  # about a third of 4 x 3000 steps
    assert "runtime error" not in proc.stderr  # UBSan findings


def run_race(exe, what):
    proc = subprocess.run([exe, what], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_two_puts_of_one_slot_inside_the_window_exactly_one_is_refused(races):
    """The second put runs while the first is paused right after its in-use check: one
    put returns 0, the other -1 with EINVAL, and the free list holds the slot once."""
    rc, out = run_race(races, "put")
    assert rc == 0 and out.startswith("ok put: first 0, second -1 (errno 22)"), out


def test_more_ends_than_instances_are_refused_and_never_wrap(races):
    rc, out = run_race(races, "end")
    assert rc == 0 and out.startswith("ok end"), out


def test_slot_state_during_a_grow_reports_the_grown_size(races):
    """slot_state called while a grow is paused after its mprotect must not report the
    old size for pages that are already R/W: it waits for the grow (the lock)."""
    rc, out = run_race(races, "grow")
    assert rc == 0 and out.startswith("ok grow"), out


def test_every_pool_call_at_once_under_thread_sanitizer(races_tsan):
    rc, out = run_race(races_tsan, "stress")
    assert "ThreadSanitizer" not in out, out
    assert rc == 0 and out.startswith("ok stress"), out
