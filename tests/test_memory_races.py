"""A memory closed while an access is in flight on it (issue 13 item 5), in C:
tests/c/memory_races.c builds c_src/ with -DWENV_TEST_HOOKS, pauses an accessor after
its checks while the memory is closed and the pool's next tenant takes a slot, then lets
the access finish. The Python side of the rule is in tests/test_instance_races.py."""
import pytest

from tests.charness import build, run

#: The units the harness links: the accessors, their fault guard, the pool.
UNITS = ("mman", "memory", "traps", "pool", "instance")


@pytest.fixture(scope="module")
def races(tmp_path_factory):
    return build(tmp_path_factory.mktemp("memory"), "memory_races", UNITS, "-DWENV_TEST_HOOKS")


@pytest.fixture(scope="module")
def races_tsan(tmp_path_factory):
    return build(tmp_path_factory.mktemp("memory"), "memory_races", UNITS, "-DWENV_TEST_HOOKS",
                 "-fsanitize=thread")


@pytest.mark.parametrize("entry", ["close", "close-marked"], ids=["counted", "marked"])
def test_close_during_an_access_never_hands_its_slot_to_the_next_tenant_early(races, entry):
    """Counted: the thread's first access (an atomic count in the descriptor); marked: a
    later one (its thread's hazard record, found by close after a membarrier)."""
    rc, out = run(races, entry)
    assert rc == 0 and out.startswith("ok close"), out


def test_accesses_racing_closes_release_each_slot_once_under_thread_sanitizer(races_tsan):
    """Four threads access each tenant's memory while the main thread closes it and opens
    the next: every access after a close is refused, each slot goes back once."""
    rc, out = run(races_tsan, "stress")
    assert "ThreadSanitizer" not in out, out
    assert rc == 0 and out.startswith("ok stress"), out
