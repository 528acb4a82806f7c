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
    t = table._native
    return _resident_bytes(int(runtime._ffi.address_of(t.elements)), t.reserved * 8)


def test_untouched_million_element_table_costs_no_resident_memory(engine):
    t = runtime.Table.new(engine, "funcref", ELEMENTS)
    assert t.size == ELEMENTS and _resident(t) == 0
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
        assert t.get(1).wasm_index == 1  # resolved and stored: one page
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
