"""try_static_init, try_func_table_init and init_memory (DESIGN.md: Segmented -> Static, init_memory, Tables)."""
import pytest

from wasmenv import (ConstExpr, InitMemory, MemoryInitialization, MemoryInitializer, MemoryPlan,
                     MemoryType, Module, ModuleTranslation, StaticMemoryInitializer, TableInitialization,
                     TableInitializer, TablePlan, TableType, Tunables, ValType, MAX_FUNC_TABLE_SIZE)

PAGE = 4096
MIB = 1 << 20
T = Tunables()


def make(memories, segments, imported_memories=0):
    """A translation with ``memories`` (MemoryType list) and segments (mem, base, offset, bytes[, expr])."""
    module = Module(num_imported_memories=imported_memories)
    module.memory_plans = [MemoryPlan.for_memory(m, T) for m in memories]
    tr = ModuleTranslation(module)
    inits = []
    for seg in segments:
        mem, base, offset, data = seg[:4]
        expr = seg[4] if len(seg) > 4 else None
        inits.append(MemoryInitializer(mem, base, offset, tr.data.push(memoryview(data)), expr,
                                       memories[mem].memory64))
    module.memory_initialization = MemoryInitialization.Segmented(tuple(inits))
    return tr


def image_of(tr, index):
    init = tr.module.memory_initialization.map[index]
    return init, bytes(tr.data_view(init.data))


def test_simple_image_is_page_aligned_and_trimmed():
    tr = make([MemoryType(1)], [(0, None, 100, b"\0\0abc\0\0")])
    assert tr.try_static_init(PAGE)
    init, img = image_of(tr, 0)
    assert init.offset == 0 and len(img) == PAGE
    assert img[102:105] == b"abc" and img.count(0) == PAGE - 3
    assert tr.data_align == PAGE


def test_image_offset_rounds_down_to_page():
    tr = make([MemoryType(2)], [(0, None, 3 * PAGE + 5, b"x" * (PAGE + 1))])
    assert tr.try_static_init(PAGE)
    init, img = image_of(tr, 0)
    assert init.offset == 3 * PAGE and len(img) == 2 * PAGE
    assert img[5:5 + PAGE + 1] == b"x" * (PAGE + 1)
    assert init.data.start % PAGE == 0 and init.data.stop % PAGE == 0


def test_overlapping_segments_later_wins():
    tr = make([MemoryType(1)], [(0, None, 0, b"aaaa"), (0, None, 2, b"bb"), (0, None, 1, b"c")])
    assert tr.try_static_init(PAGE)
    _, img = image_of(tr, 0)
    assert img[:4] == b"acbb"


def test_all_zero_image_maps_nothing():
    tr = make([MemoryType(1)], [(0, None, 0, b"\0" * 5000)])
    assert tr.try_static_init(PAGE)
    assert tr.module.memory_initialization.map == (None,)


def test_memory_without_data_gets_none_and_chunks_stay_aligned():
    tr = make([MemoryType(1), MemoryType(1), MemoryType(1)], [(0, None, 1, b"a"), (2, None, 70000 - 65536, b"b")])
    assert tr.try_static_init(PAGE)
    m = tr.module.memory_initialization.map
    assert m[1] is None
    assert m[0].data.start == 0 and m[2].data.start == PAGE and m[2].offset == PAGE


def test_imported_memory_keeps_segmented():
    tr = make([MemoryType(1), MemoryType(1)], [(1, None, 0, b"a"), (0, None, 0, b"b")], imported_memories=1)
    assert not tr.try_static_init(PAGE)
    assert tr.module.memory_initialization.is_segmented()


def test_global_base_keeps_segmented():
    tr = make([MemoryType(1)], [(0, None, 0, b"a"), (0, 0, 0, b"b")])
    assert not tr.try_static_init(PAGE)


def test_extended_const_with_global_keeps_segmented():
    expr = ConstExpr((("global.get", 0), ("i32.const", 8), ("i32.add", None)))
    tr = make([MemoryType(1)], [(0, None, 0, b"b", expr)])
    assert not tr.try_static_init(PAGE)


def test_out_of_bounds_of_minimum_keeps_segmented():
    tr = make([MemoryType(1)], [(0, None, 65536 - 1, b"ab")])
    assert not tr.try_static_init(PAGE)
    tr = make([MemoryType(1)], [(0, None, 65536 - 2, b"ab")])
    assert tr.try_static_init(PAGE)


def test_empty_segment_exactly_at_end_is_in_bounds_past_end_is_not():
    assert make([MemoryType(1)], [(0, None, 65536, b"")]).try_static_init(PAGE)
    assert not make([MemoryType(1)], [(0, None, 65537, b"")]).try_static_init(PAGE)


def test_offset_plus_len_overflow_keeps_segmented():
    tr = make([MemoryType(1, memory64=True)], [(0, None, (1 << 64) - 1, b"ab")])
    assert not tr.try_static_init(PAGE)


def test_i32_offset_above_2_31_is_zero_extended_not_sign_extended():
    # 0x8000_0000 is 2 GiB: out of bounds of a 1-page memory. Sign extension would make
    # it 0xFFFF_FFFF_8000_0000 and the add would overflow instead; either way it must not
    # be placed at a wrapped low address. With a 32769-page memory it is in bounds.
    tr = make([MemoryType(32769)], [(0, None, 0x8000_0000, b"z")])
    assert tr.try_static_init(PAGE)
    init, img = image_of(tr, 0)
    assert init.offset == 0x8000_0000 and img[0] == ord("z")


def test_memory64_minimum_near_2_48_pages_skips_overflowing_bound_check():
    # 2^48 pages * 65536 = 2^64 bytes: overflows u64, so no end check applies.
    mem = MemoryType(1 << 48, memory64=True)
    ok = []
    tr = make([mem], [(0, None, (1 << 64) - 16, b"abcd")])
    assert tr.module.memory_initialization.init_memory(
        InitMemory.CompileTime(tr.module), lambda m, i: ok.append(i.offset) or True)
    assert ok == [(1 << 64) - 16]
    # One page less fits in u64 and is checked.
    tr = make([MemoryType((1 << 48) - 1, memory64=True)], [(0, None, (1 << 64) - 16, b"abcd")])
    assert not tr.module.memory_initialization.init_memory(InitMemory.CompileTime(tr.module), lambda m, i: True)


@pytest.mark.parametrize("memories,segments,imported", [
    ([MemoryType(1)], [(0, None, 0, b"a"), (0, None, 65535, b"b")], 0),           # fits
    ([MemoryType(1)], [(0, None, 65535, b"ab")], 0),                                # past the minimum
    ([MemoryType(1)], [(0, None, 65536, b"")], 0),                                  # empty at the end
    ([MemoryType(1)], [(0, None, 0, b"a"), (0, 0, 0, b"b")], 0),                     # global base
    ([MemoryType(1, memory64=True)], [(0, None, (1 << 64) - 1, b"ab")], 0),         # u64 overflow
    ([MemoryType(1 << 48, memory64=True)], [(0, None, (1 << 64) - 16, b"abcd")], 0),
    ([MemoryType(1), MemoryType(1)], [(1, None, 0, b"a")], 0),
    ([MemoryType(1), MemoryType(1)], [(1, None, 0, b"a")], 1),                       # defined memory
    ([MemoryType(1), MemoryType(1)], [(1, None, 0, b"a"), (0, None, 0, b"b")], 1),   # imported one
])
def test_static_init_dry_run_is_init_memory_at_compile_time(memories, segments, imported):
    # try_static_init goes Static exactly when the compile-time init_memory applies every
    # segment and none targets an imported memory (the data here is always dense).
    probe = make(memories, segments, imported)
    applies = probe.module.memory_initialization.init_memory(
        InitMemory.CompileTime(probe.module), lambda memory_index, init: memory_index >= imported)
    tr = make(memories, segments, imported)
    assert tr.try_static_init(PAGE) == applies
    assert tr.module.memory_initialization.is_segmented() != applies


# -- density rule at its thresholds ---------------------------------------------------
def two_segments(span, each=1):
    return make([MemoryType(16384)], [(0, None, 0, b"a" * each), (0, None, span - each, b"b" * each)])


def test_span_just_below_always_allowed_is_static():
    assert two_segments(16 * MIB - 1).try_static_init(PAGE)


def test_span_equal_to_always_allowed_and_sparse_is_segmented():
    assert not two_segments(16 * MIB).try_static_init(PAGE)


def test_dense_rule_strictly_less_than_twice_the_data():
    # span 32 MiB, data 16 MiB + 2: span < 2 * data -> static.
    each = 8 * MIB + 1
    assert two_segments(32 * MIB, each=each).try_static_init(PAGE)
    # data exactly half the span: span == 2 * data is not < : segmented.
    assert not two_segments(32 * MIB, each=8 * MIB).try_static_init(PAGE)


def test_threshold_is_configurable():
    assert two_segments(2 * MIB).try_static_init(PAGE, 4 * MIB)
    assert not two_segments(2 * MIB).try_static_init(PAGE, 2 * MIB)


def test_one_sparse_memory_keeps_whole_module_segmented():
    tr = make([MemoryType(1), MemoryType(16384)],
              [(0, None, 0, b"a"), (1, None, 0, b"a"), (1, None, 64 * MIB, b"b")])
    assert not tr.try_static_init(PAGE)
    assert tr.module.memory_initialization.is_segmented()


def test_static_init_is_idempotent_and_init_memory_passes_images_through():
    tr = make([MemoryType(1)], [(0, None, 10, b"abc")])
    assert tr.try_static_init(PAGE)
    assert not tr.try_static_init(PAGE)
    seen = []
    assert tr.module.memory_initialization.init_memory(
        InitMemory.Runtime(lambda m: 0, lambda g: 0), lambda m, i: seen.append((m, i)) or True)
    assert seen == [(0, StaticMemoryInitializer(0, range(0, PAGE)))]


# -- init_memory at run time -----------------------------------------------------------
def test_runtime_global_base_and_stop_at_first_failure():
    tr = make([MemoryType(1)], [(0, 0, 16, b"ab"), (0, 1, 0, b"cd"), (0, None, 0, b"ef")])
    globals_ = {0: 100, 1: 65535}
    writes = []
    ok = tr.module.memory_initialization.init_memory(
        InitMemory.Runtime(lambda m: 1, globals_.__getitem__), lambda m, i: writes.append(i.offset) or True)
    assert not ok and writes == [116]


def test_runtime_resolves_each_segment_after_writing_the_previous_one():
    tr = make([MemoryType(1)], [(0, 0, 16, b"ab"), (0, 1, 0, b"cd"), (0, None, 0, b"ef")])
    events = []

    def global_value(index):
        events.append(("global", index))
        return {0: 100, 1: 65535}[index]

    def size_pages(memory_index):
        events.append(("size", memory_index))
        return 1

    ok = tr.module.memory_initialization.init_memory(
        InitMemory.Runtime(size_pages, global_value), lambda m, i: events.append(("write", i.offset)) or True)
    assert not ok
    assert events == [("global", 0), ("size", 0), ("write", 116), ("global", 1), ("size", 0)]


def test_runtime_uses_current_size_not_minimum():
    tr = make([MemoryType(1)], [(0, None, 65536, b"ab")])
    writes = []
    assert tr.module.memory_initialization.init_memory(
        InitMemory.Runtime(lambda m: 2, lambda g: 0), lambda m, i: writes.append(i.offset) or True)
    assert writes == [65536]


def test_runtime_extended_const_wraps_i32():
    expr = ConstExpr((("global.get", 0), ("i32.const", 0xFFFF_FFF0), ("i32.add", None)))
    tr = make([MemoryType(1)], [(0, None, 0, b"ab", expr)])
    writes = []
    assert tr.module.memory_initialization.init_memory(
        InitMemory.Runtime(lambda m: 1, lambda g: 0x20), lambda m, i: writes.append(i.offset) or True)
    assert writes == [0x10]


def test_write_callback_false_stops():
    tr = make([MemoryType(1)], [(0, None, 0, b"a"), (0, None, 1, b"b")])
    calls = []
    assert not tr.module.memory_initialization.init_memory(
        InitMemory.CompileTime(tr.module), lambda m, i: calls.append(i) and False)
    assert len(calls) == 1


# -- tables ----------------------------------------------------------------------------
def table_tr(tables, segments, imported_tables=0):
    module = Module(num_imported_tables=imported_tables)
    module.table_plans = [TablePlan.for_table(t, T) for t in tables]
    module.table_initialization = TableInitialization.Segments(tuple(segments))
    return ModuleTranslation(module)


FT = ValType.FUNCREF


def test_func_table_folds_in_order_later_wins():
    tr = table_tr([TableType(FT, 10)], [TableInitializer(0, None, 0, (1, 2, 3)),
                                         TableInitializer(0, None, 1, (7, None))])
    assert tr.try_func_table_init()
    init = tr.module.table_initialization
    assert init.tables == ((1, 7, None),) and init.segments == ()


def test_leftovers_start_at_first_unfoldable_segment():
    segs = [TableInitializer(0, None, 0, (1,)), TableInitializer(0, 0, 0, (2,)),  # global base
            TableInitializer(0, None, 2, (3,))]  # foldable, but after: must stay a leftover
    tr = table_tr([TableType(FT, 10)], segs)
    tr.try_func_table_init()
    init = tr.module.table_initialization
    assert init.tables == ((1,),) and init.segments == tuple(segs[1:])


@pytest.mark.parametrize("seg,table", [
    (TableInitializer(0, None, 9, (1, 2)), TableType(FT, 10)),          # out of bounds of minimum
    (TableInitializer(0, None, 0, (1,)), TableType(ValType.EXTERNREF, 10)),  # not funcref
    (TableInitializer(0, None, 0, (ConstExpr((("global.get", 0),)),)), TableType(FT, 10)),
])
def test_unfoldable_segments(seg, table):
    tr = table_tr([table], [seg])
    tr.try_func_table_init()
    assert tr.module.table_initialization.segments == (seg,)
    assert tr.module.table_initialization.tables == (None,)


def test_imported_table_is_leftover():
    seg = TableInitializer(0, None, 0, (1,))
    tr = table_tr([TableType(FT, 10), TableType(FT, 10)], [seg], imported_tables=1)
    tr.try_func_table_init()
    assert tr.module.table_initialization.segments == (seg,)


def test_func_table_cap_1048576_elements():
    big = TableType(FT, MAX_FUNC_TABLE_SIZE + 10)
    ok = TableInitializer(0, None, MAX_FUNC_TABLE_SIZE - 1, (5,))
    too_far = TableInitializer(0, None, MAX_FUNC_TABLE_SIZE, (6,))
    tr = table_tr([big], [ok, too_far])
    tr.try_func_table_init()
    init = tr.module.table_initialization
    assert len(init.tables[0]) == MAX_FUNC_TABLE_SIZE and init.tables[0][-1] == 5
    assert init.segments == (too_far,)


def test_huge_table_minimum_does_not_allocate_minimum_sized_array():
    tr = table_tr([TableType(FT, 10_000_000)], [TableInitializer(0, None, 3, (1,))])
    tr.try_func_table_init()
    assert tr.module.table_initialization.tables == ((None, None, None, 1),)
