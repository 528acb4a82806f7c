"""A table moved by a grow while another thread reads it (issue 13 item 5, issue 15), in C:
tests/c/table_races.c builds c_src/ with -DWENV_TEST_HOOKS, pauses a read after it loaded
the table's storage pointer while the main thread grows the table past its reservation,
then lets the read finish. The interpreter's table.get and call_indirect read elements
through the same wenv_table_elem."""
import pytest

from tests.charness import build, run

UNITS = ("mman", "table")


@pytest.fixture(scope="module")
def races(tmp_path_factory):
    return build(tmp_path_factory.mktemp("table"), "table_races", UNITS, "-DWENV_TEST_HOOKS")


@pytest.fixture(scope="module")
def races_tsan(tmp_path_factory):
    return build(tmp_path_factory.mktemp("table"), "table_races", UNITS, "-DWENV_TEST_HOOKS",
                 "-fsanitize=thread")


def test_a_read_in_flight_while_a_grow_moves_the_table_reads_live_storage(races):
    rc, out = run(races, "move")
    assert rc == 0 and out.startswith("ok move"), (rc, out)


def test_reads_racing_moving_grows_see_their_element_under_thread_sanitizer(races_tsan):
    rc, out = run(races_tsan, "stress")
    assert "ThreadSanitizer" not in out, out
    assert rc == 0 and out.startswith("ok stress"), (rc, out)


@pytest.mark.parametrize("build_name", ["races", "races_tsan"])
def test_racing_first_writes_of_a_fresh_table_all_land_in_one_storage(build_name, request):
    """A table opens on the zero region; threads writing it first at once map storage
    each, one wins (the others unmap theirs) and every write is in the winner."""
    rc, out = run(request.getfixturevalue(build_name), "first")
    assert "ThreadSanitizer" not in out, out
    assert rc == 0 and out.startswith("ok first"), (rc, out)
