"""c_src/wenv_tables.c on its own (an instance's defined tables, opened and released
together, on demand or from a table pool), built from its C with a harness under
AddressSanitizer and UBSan: tests/c/tables_sanitize.c. Through the runtime: the table
tests of tests/test_instance.py, tests/test_pooling.py, tests/test_pooling_isolation.py."""
import pytest

from tests.charness import build, run

#: The units a tables harness links (wenv_table.c: storage; wenv_pool.c: its reset).
TABLES_UNITS = ("mman", "pool", "instance", "table", "tables")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build(tmp_path_factory.mktemp("tables"), "tables_sanitize", TABLES_UNITS,
                 "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_instance_tables_under_sanitizers(harness, seed):
    rc, out = run(harness, "2000", str(seed))
    assert rc == 0, out
    assert out.startswith("ok ") and int(out.split()[1]) > 1000  # about half of 2 x 2000 steps
    assert "runtime error" not in out  # UBSan findings
