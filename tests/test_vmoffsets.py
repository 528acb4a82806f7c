"""wasmenv.vmoffsets: the instance block layout (Wasmtime's VMOffsets)."""
import os

import pytest
import wasmtime

import wasmenv
from wasmenv import ExternKind
from wasmenv.vmoffsets import BLOCK_ALIGN, REGIONS, Location, VMOffsets, c_header

HERE = os.path.dirname(os.path.abspath(__file__))


def offsets_of(text):
    return VMOffsets.for_module(wasmenv.translate(wasmtime.wat2wasm(text)).module)


def check_layout(o: VMOffsets):
    """Regions in REGIONS order, each aligned, disjoint, and inside the total size."""
    prev_end = 0
    for region, n, start in zip(REGIONS, o.counts, o.starts):
        assert start % region.align == 0, region.name
        assert start >= prev_end, region.name            # documented order, no overlap
        assert start - prev_end < region.align, region.name  # no gap beyond alignment padding
        assert o.end(region.name) == start + n * region.stride
        prev_end = o.end(region.name)
        for i in range(n):
            off = o.entry(region.name, i)
            assert start <= off and off + region.stride <= o.end(region.name)
    assert o.size % BLOCK_ALIGN == 0
    assert prev_end <= o.size < prev_end + BLOCK_ALIGN


MIXED = """
(module
  (import "e" "f0" (func $f0))
  (import "e" "m0" (memory 1))
  (import "e" "t0" (table 1 funcref))
  (import "e" "g0" (global i32))
  (import "e" "f1" (func $f1 (param i32)))
  (import "e" "g1" (global i64))
  (memory 1) (memory 2) (memory 1 1 shared)
  (table 3 funcref) (table 1 externref)
  (global i32 (i32.const 1))
  (global $h (mut f64) (f64.const 2))
  (global funcref (ref.func $f2))
  (func $f2) (func $f3) (func $f4)
  (elem (i32.const 0) func $f4 $f1)
  (elem declare func $f3)
  (data (memory 1) (i32.const 0) "a")
  (data "passive")
  (export "f2" (func $f2)))
"""


def test_mixed_module_counts_and_regions():
    o = offsets_of(MIXED)
    check_layout(o)
    assert o.count("memory_definitions") == 3 and o.count("imported_memories") == 1
    assert o.count("table_definitions") == 2 and o.count("imported_tables") == 1
    assert o.count("defined_globals") == 3 and o.count("imported_globals") == 2
    assert o.count("imported_functions") == 2
    assert o.count("funcrefs") == 4  # $f2 (ref.func, export), $f4, $f1 (elem), $f3 (declare)
    assert o.count("dropped_data") == 2 and o.count("dropped_elems") == 2
    # Exact figures of the documented rule (8-aligned pointers, 16-aligned cells).
    assert o.start("memory_definitions") == 0
    assert o.start("imported_memories") == 48
    assert o.start("table_definitions") == 56
    assert o.start("imported_tables") == 88
    assert o.start("defined_globals") == 96
    assert o.start("imported_globals") == 144
    assert o.start("funcrefs") == 160
    assert o.start("imported_functions") == 256
    assert o.start("dropped_data") == 288 and o.start("dropped_elems") == 290
    assert o.size == 304


def test_global_cells_are_16_aligned_after_odd_pointer_regions():
    o = offsets_of('(module (import "e" "m" (memory 1)) (global i32 (i32.const 0)) '
                   '(global i64 (i64.const 0)))')
    check_layout(o)
    assert o.start("imported_memories") == 0 and o.end("imported_memories") == 8
    assert o.global_cell(0) == 16 and o.global_cell(1) == 32


def test_empty_module_is_an_empty_block():
    o = offsets_of("(module)")
    check_layout(o)
    assert o.counts == (0,) * len(REGIONS) and set(o.starts) == {0} and o.size == 0
    with pytest.raises(IndexError):
        o.memory_definition(0)
    with pytest.raises(IndexError):
        o.memory_location(0)
    with pytest.raises(IndexError):
        o.func_ref(0)


def test_imports_only():
    o = offsets_of('(module (import "a" "f" (func)) (import "a" "m" (memory 1)) '
                   '(import "a" "t" (table 1 funcref)) (import "a" "g" (global f32)))')
    check_layout(o)
    assert o.count("memory_definitions") == 0 and o.count("defined_globals") == 0
    assert o.memory_location(0) == Location(o.imported_memory(0), True) == Location(0, True)
    assert o.table_location(0) == Location(8, True)
    assert o.global_location(0) == Location(16, True)
    assert o.imported_function(0) == 24 and o.size == 48
    with pytest.raises(IndexError):
        o.memory_location(1)
    with pytest.raises(IndexError):
        o.func_ref(0)  # imported, not escaping


def test_many_entities():
    n = 1000
    text = ("(module " + " ".join(f'(import "i" "g{k}" (global i64))' for k in range(n))
            + " ".join(f"(global i32 (i32.const {k}))" for k in range(n))
            + " ".join("(func)" for _ in range(n))
            + "(table 1 funcref) (elem declare func " + " ".join(str(k) for k in range(n)) + ")"
            + "".join(f'(data "{k}")' for k in range(n)) + ")")
    o = offsets_of(text)
    check_layout(o)
    assert o.count("defined_globals") == n and o.count("funcrefs") == n
    cells = [o.global_cell(k) for k in range(n)]
    assert cells == list(range(cells[0], cells[0] + 16 * n, 16))
    assert len({o.data_dropped(k) for k in range(n)}) == n
    assert o.size == o.end("dropped_elems") + (-o.end("dropped_elems") % 16)


def test_from_counts_every_combination_is_disjoint_and_aligned():
    for mask in range(1 << len(REGIONS)):
        counts = {r.name: (k % 3) + 1 for k, r in enumerate(REGIONS) if mask >> k & 1}
        o = VMOffsets.from_counts(counts)
        check_layout(o)
        spans = sorted((o.start(r.name), o.end(r.name)) for r in REGIONS if o.count(r.name))
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_from_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown block regions: nope"):
        VMOffsets.from_counts({"nope": 1})
    with pytest.raises(ValueError, match="negative"):
        VMOffsets.from_counts({"funcrefs": -1})
    with pytest.raises(KeyError):
        VMOffsets.from_counts({}).count("nope")


def test_index_spaces_agree_with_the_module():
    m = wasmenv.translate(wasmtime.wat2wasm(MIXED)).module
    o = VMOffsets.for_module(m)
    for index in range(len(m.memory_plans)):
        loc = o.memory_location(index)
        if m.is_imported_memory(index):
            assert loc == (o.imported_memory(index), True)
        else:
            assert loc == (o.memory_definition(m.defined_memory_index(index)), False)
            assert m.memory_index(m.defined_memory_index(index)) == index
    for index in range(len(m.table_plans)):
        defined = m.defined_table_index(index)
        assert o.table_location(index) == ((o.imported_table(index), True) if defined is None
                                  else (o.table_definition(defined), False))
    for index in range(len(m.globals)):
        defined = m.defined_global_index(index)
        assert o.global_location(index) == ((o.imported_global(index), True) if defined is None
                                    else (o.global_cell(defined), False))
    escaping = m.escaped_functions()
    assert len(escaping) == o.count("funcrefs")
    for anyfunc, func in enumerate(escaping):
        assert o.func_ref(func) == o.funcref(anyfunc)
    # $f1 (import 1) escapes through the elem segment; $f0 (import 0) does not.
    assert o.func_ref(1) == o.funcref(m.functions[1].anyfunc)
    with pytest.raises(IndexError, match="does not escape"):
        o.func_ref(0)
    with pytest.raises(IndexError):
        o.func_ref(len(m.functions))
    with pytest.raises(IndexError):
        o.global_location(-1)
    kinds = {imp.index.kind for imp in m.initializers}
    assert kinds == {ExternKind.FUNC, ExternKind.MEMORY, ExternKind.TABLE, ExternKind.GLOBAL}


def test_generated_c_header_is_current():
    with open(os.path.join(HERE, "..", "c_src", "wenv_vmoffsets.h")) as f:
        assert f.read() == c_header(), "regenerate: python -m wasmenv.vmoffsets > c_src/wenv_vmoffsets.h"


@pytest.mark.parametrize("text", ["(module)", MIXED, '(module (import "a" "g" (global i32)) '
                                  '(global i64 (i64.const 0)) (data "x"))'])
def test_c_side_reads_the_offsets_it_is_given(text):
    """C computes each entry from the struct Python filled and the generated strides: it
    agrees with every Python accessor and refuses what is outside a region."""
    from runtime import _ffi
    o = offsets_of(text)
    c = _ffi.new_vmoffsets(o)
    assert c.size == o.size
    for k, region in enumerate(REGIONS):
        assert getattr(_ffi.lib, f"WENV_VMCTX_{region.name.upper()}") == k
        for i in range(o.count(region.name)):
            assert _ffi.vmctx_entry(c, k, i) == o.entry(region.name, i)
        assert _ffi.vmctx_entry(c, k, o.count(region.name)) == -1
    assert _ffi.vmctx_entry(c, len(REGIONS), 0) == -1
    assert _ffi.ffi.sizeof("wenv_vmoffsets") == 8 * (2 * len(REGIONS) + 1)


def test_memory_definition_fields_are_those_of_wenv_memory():
    """An imported-memory pointer may point at a host memory's wenv_memory descriptor."""
    from runtime import _ffi
    fields = dict(REGIONS[0].fields)
    assert REGIONS[0].name == "memory_definitions"
    assert _ffi.ffi.offsetof("wenv_memory", "base") == fields["base"]
    assert _ffi.ffi.offsetof("wenv_memory", "byte_len") == fields["byte_len"]
    assert _ffi.ffi.sizeof("uint64_t") * 2 == REGIONS[0].stride
