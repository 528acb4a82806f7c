"""c_src/wenv_pool.c on its own, built from its C with test harnesses:

* tests/c/pool_sanitize.c, under AddressSanitizer and UBSan, drives the slot table with
  random take / grow / dirty / put sequences for every keep_resident case and checks
  each new tenant's bytes, double puts and the counters, and that a descriptor owning a
  slot twice holds one reference to the pool (LeakSanitizer: freed);
* tests/c/pool_races.c runs each race window of the pool deterministically (the C is
  built with -DWENV_TEST_HOOKS: a hook pauses the first thread inside the window while a
  second one calls in), and runs every call at once under ThreadSanitizer.
"""
import pytest

from tests.charness import build, run

#: The units a pool harness links (wenv_instance.c: the pool's one-call path and a
#: descriptor owning a slot; wenv_memory.c, wenv_traps.c: that descriptor's close).
POOL_UNITS = ("mman", "pool", "instance", "memory", "traps")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pool"), "pool_sanitize", POOL_UNITS, "-fsanitize=address,undefined",
                 "-fno-sanitize-recover=undefined")


@pytest.fixture(scope="module")
def races(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pool"), "pool_races", POOL_UNITS, "-DWENV_TEST_HOOKS")


@pytest.fixture(scope="module")
def races_tsan(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pool"), "pool_races", POOL_UNITS, "-DWENV_TEST_HOOKS",
                 "-fsanitize=thread")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_slot_table_under_sanitizers(harness, seed):
    rc, out = run(harness, "3000", str(seed))
    assert rc == 0, out
    assert out.startswith("ok ") and int(out.split()[1]) > 3000  # about a third of 4 x 3000 steps
    assert "runtime error" not in out  # UBSan findings


def test_two_puts_of_one_slot_inside_the_window_exactly_one_is_refused(races):
    """The second put runs while the first is paused right after its in-use check: one
    put returns 0, the other -1 with EINVAL, and the free list holds the slot once."""
    rc, out = run(races, "put")
    assert rc == 0 and out.startswith("ok put: first 0, second -1 (errno 22)"), out


def test_more_ends_than_instances_are_refused_and_never_wrap(races):
    rc, out = run(races, "end")
    assert rc == 0 and out.startswith("ok end"), out


def test_slot_state_during_a_grow_reports_the_grown_size(races):
    """slot_state called while a grow is paused after its mprotect must not report the
    old size for pages that are already R/W: it waits for the grow (the lock)."""
    rc, out = run(races, "grow")
    assert rc == 0 and out.startswith("ok grow"), out


def test_a_grow_of_an_earlier_tenancy_is_refused(races):
    """A grow that names the tenancy its slot had before a put and a take (a grow in flight
    while its instance closed) returns -1 with ESTALE and leaves the next tenant's pages
    as they were (issue 13 item 4)."""
    rc, out = run(races, "stale")
    assert rc == 0 and out.startswith("ok stale"), out


def test_every_pool_call_at_once_under_thread_sanitizer(races_tsan):
    rc, out = run(races_tsan, "stress")
    assert "ThreadSanitizer" not in out, out
    assert rc == 0 and out.startswith("ok stress"), out
