"""Native table storage (c_src/wenv_table.c through runtime/table.py): untouched elements
cost no resident memory, lazy funcref init per instance, growth past the reservation,
externref cells kept alive by their registry (runtime/refs.py)."""
import ctypes
import gc

import pytest

import runtime
from runtime import refs
from tests.helpers import inst, wat

ELEMENTS = 1_000_000


_LIBC = ctypes.CDLL(None, use_errno=True)


def _resident_bytes(start: int, byte_len: int) -> int:
    """Resident bytes of the pages of [start, start + byte_len) (mincore: exact whatever
    mapping the range was merged into)."""
    page = runtime._ffi.PAGE_SIZE
    lo = start - start % page
    npages = -(-(start + byte_len - lo) // page)
    vec = (ctypes.c_ubyte * npages)()
    rc = _LIBC.mincore(ctypes.c_void_p(lo), ctypes.c_size_t(npages * page), vec)
    assert rc == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec) * page


def _resident(table) -> int:
    """Resident bytes of the table's own storage: 0 while it has none (it reads the
    process's read-only zero region, which every such table shares)."""
    t = table._native
    if not runtime._ffi.table_mapped(t):
        return 0
    return _resident_bytes(int(runtime._ffi.address_of(t.elements)), t.reserved * 8)


def test_untouched_million_element_table_costs_no_resident_memory(engine):
    t = runtime.Table.new(engine, "funcref", ELEMENTS)
    # No storage of its own until written (no mapping made: it reads the zero region).
    assert t.size == ELEMENTS and not runtime._ffi.table_mapped(t._native)
    assert t.get(ELEMENTS - 1) is None and not runtime._ffi.table_mapped(t._native)
    t.set(ELEMENTS // 2, None)
    # One written element: one page, nowhere near the 8 MB the elements span.
    assert _resident(t) == runtime._ffi.PAGE_SIZE
    # (Reads map the shared zero page, which mincore counts: not asserted after them.)
    assert t.get(ELEMENTS - 1) is None and t.get(0) is None and t.get(ELEMENTS // 2) is None
    t.close()


def test_lazy_module_table_stays_untouched_until_read(engine):
    n = 100_000  # the pooling fixture's max_table_elements
    m = runtime.Module(engine, wat(f"""(module (table (export "t") {n} funcref)
        (func $a) (func $b) (elem (i32.const 0) $a $b))"""))
    with runtime.Instance(m) as i:
        t = i.exports["t"]
        assert _resident(t) == 0  # lazily initialized: nothing written at instantiation
        assert t.get(1).wasm_index == 1  # resolved; a table never written stores nothing
        assert _resident(t) == 0 and not runtime._ffi.table_mapped(t._native)
        t.set(3, None)  # its first write maps its storage: one page
        assert _resident(t) == runtime._ffi.PAGE_SIZE
        assert t.get(1).wasm_index == 1 and t.get(0).wasm_index == 0  # resolved and stored
        assert _resident(t) == runtime._ffi.PAGE_SIZE


def test_lazy_init_is_per_instance(engine):
    m = runtime.Module(engine, wat("""(module (table (export "t") 4 funcref)
        (func $a) (func $b) (elem (i32.const 1) $b $a))"""))
    with runtime.Instance(m) as i1, runtime.Instance(m) as i2:
        f1, f2 = i1.exports["t"].get(1), i2.exports["t"].get(1)
        assert f1.wasm_index == f2.wasm_index == 1
        assert f1._instance is i1 and f2._instance is i2
        # Each instance's own funcref record (in its own block), stable once made.
        c1 = refs.cell_of_func(f1)
        assert c1 != refs.cell_of_func(f2) and c1 == refs.cell_of_func(i1.exports["t"].get(1))
        assert i1.exports["t"].get(0) is None


def test_grow_past_the_reservation_keeps_elements(engine):
    t = runtime.Table.new(engine, "externref", 1)
    obj = object()
    t.set(0, obj)
    assert t.grow(200_000, "x") == 1  # past the first reservation: moved
    assert t.get(0) is obj and t.get(1) == "x" and t.get(200_000) == "x"
    assert t.grow(1) == 200_001 and t.get(200_001) is None
    bounded = runtime.Table.new(engine, "externref", 1, 3)
    assert bounded.grow(3) == -1 and bounded.grow(2) == 1 and bounded.size == 3


def test_grow_limit_hook(engine):
    t = runtime.Table.new(engine, "funcref", 2)
    asked = []
    t.grow_limit = lambda old, new: asked.append((old, new)) or new <= 5
    assert t.grow(3) == 2 and t.grow(1) == -1 and t.size == 5
    assert asked == [(2, 5), (5, 6)]


def test_externref_kept_alive_by_the_registry(engine):
    t = runtime.Table.new(engine, "externref", 2)
    t.set(1, [1, 2, 3])
    gc.collect()
    assert t.get(1) == [1, 2, 3] and t.get(0) is None


def test_out_of_bounds_and_closed(engine):
    t = runtime.Table.new(engine, "funcref", 2)
    with pytest.raises(runtime.Trap) as info:
        t.fill(1, None, 2)
    assert info.value.code == runtime.TrapCode.TABLE_OUT_OF_BOUNDS
    t.close()
    with pytest.raises(ValueError, match="closed"):
        t.get(0)
    t.close()


def test_table_of_a_failed_instantiation_keeps_its_funcrefs(engine):
    table = runtime.Table.new(engine, "funcref", 1)
    with pytest.raises(runtime.Trap):
        inst(engine, """(module (import "env" "t" (table 1 funcref)) (func $f)
          (elem (i32.const 0) $f) (elem (i32.const 1) $f))""", {("env", "t"): table})
    gc.collect()
    f = table.get(0)
    assert f.wasm_index == 0 and f._instance.closed


def test_funcref_records_of_an_untouched_instance_stay_non_resident(engine):
    """8,000 escaping functions: 192 KB of funcref records in the vm's region, made on first
    use; the block is fresh zero pages (c_src/wenv_vmctx.c), so only the page a record
    was written to (and the block's first page) become resident."""
    n = 8000
    funcs = " ".join(f"(func $f{i} (result i32) (i32.const {i}))" for i in range(n))
    elems = " ".join(f"$f{i}" for i in range(n))
    m = runtime.Module(engine, wat(f'(module (table (export "t") {n} funcref) {funcs} '
                                   f'(elem (i32.const 0) {elems}))'))
    with runtime.Instance(m) as i:
        page = runtime._ffi.PAGE_SIZE
        records = runtime._ffi.address(runtime.interp.site_of(i).vm.funcrefs)

        def resident():
            return _resident_bytes(records, n * 24)
        assert resident() <= page  # (the page the region starts in may hold the globals)
        assert i.exports["t"].get(n - 1).wasm_index == n - 1
        assert page <= resident() <= 2 * page


_TABLE_WRITES = """(module
  (table $t (export "t") 1000 funcref)
  (func $a (result i32) (i32.const 7))
  (elem (i32.const 0) $a $a)
  (func (export "set") (param i32) (table.set $t (local.get 0) (ref.func $a)))
  (func (export "call") (param i32) (result i32) (call_indirect $t (result i32) (local.get 0))))"""


def test_an_instances_table_maps_nothing_until_its_first_write():
    # On demand (a pool's table slot keeps the storage an earlier tenant mapped, zeroed)
    with runtime.Instance(runtime.Module(runtime.Engine(), wat(_TABLE_WRITES))) as i:
        t = i.exports["t"]
        # Instantiated and called through (lazily resolved): still no storage of its own.
        assert i.exports["call"](1) == 7 and not runtime._ffi.table_mapped(t._native)
        i.exports["set"](500)  # wasm's table.set: the first write maps it
        assert runtime._ffi.table_mapped(t._native)
        assert i.exports["call"](500) == 7 and i.exports["call"](0) == 7
        assert t.get(2) is None and t.get(1).wasm_index == 0


@pytest.fixture
def first_write_fails():
    runtime._ffi.table_inject_failures({"map_anon"})
    yield
    runtime._ffi.table_inject_failures(())


def test_a_first_write_that_cannot_map_storage_raises_and_writes_nothing(first_write_fails):
    with runtime.Instance(runtime.Module(runtime.Engine(), wat(_TABLE_WRITES))) as i:
        t = i.exports["t"]
        # From wasm: not a trap, an AllocationError; from Python alike.
        with pytest.raises(runtime.AllocationError, match="table"):
            i.exports["set"](5)
        with pytest.raises(runtime.AllocationError, match="table"):
            t.set(5, None)
        with pytest.raises(runtime.AllocationError, match="table"):
            t.fill(3, None, 2)
        assert not runtime._ffi.table_mapped(t._native)
        # Nothing written: the lazy elements still read as the module's functions.
        assert t.get(5) is None and t.get(1).wasm_index == 0 and i.exports["call"](0) == 7
        runtime._ffi.table_inject_failures(())
        i.exports["set"](5)  # the same write once the mapping can be had
        assert i.exports["call"](5) == 7 and runtime._ffi.table_mapped(t._native)


def test_a_table_filled_with_a_value_at_creation_maps_its_storage_at_once(engine):
    obj = object()
    t = runtime.Table.new(engine, "externref", 10, None, obj)
    assert runtime._ffi.table_mapped(t._native) and t.get(9) is obj
    t.close()
