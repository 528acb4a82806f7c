"""Instantiation in spec order: globals, memories, segments, traps, the one-call path
(imports: test_linking.py; tables: test_table.py; exports: test_exports.py; Memory objects,
Table views and what the interpreter state binds without them: test_views.py)."""
import gc

import pytest

import runtime
from runtime import (Engine, Func, Global, Instance, Memory, Module, PoolingAllocator, Table,
                     Trap, TrapCode)
from tests.helpers import ONE_MEMORY, inst, maps_and_fds, wat
from wasmenv import FuncType, ValType


def test_segmented_init_reads_imported_globals(engine):
    base = Global.new(engine, "i32", 100)
    i = inst(engine, """(module
      (import "env" "base" (global $b i32))
      (memory (export "m") 1)
      (data (global.get $b) "abc")
      (data (offset (i32.add (global.get $b) (i32.const 10))) "xyz"))""", {("env", "base"): base})
    assert i.module.env.memory_initialization.is_segmented()
    assert i.exports["m"].read(100, 3) == b"abc"
    assert i.exports["m"].read(110, 3) == b"xyz"


def test_imported_memory_receives_data_and_trap_keeps_earlier_writes(engine):
    mem = Memory.new(engine, 1)
    text = """(module (import "env" "mem" (memory 1))
      (data (i32.const 0) "first") (data (i32.const 65535) "xx") (data (i32.const 8) "never"))"""
    with pytest.raises(Trap) as info:
        inst(engine, text, {("env", "mem"): mem})
    assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS
    assert mem.read(0, 5) == b"first"
    assert mem.read(8, 5) == b"\0" * 5
    mem.close()


def test_element_segment_trap_skips_data(engine):
    mem = Memory.new(engine, 1)
    table = Table.new(engine, "funcref", 2)
    text = """(module (import "env" "mem" (memory 1)) (import "env" "t" (table 2 funcref))
      (func $f) (elem (i32.const 0) $f) (elem (i32.const 1) $f $f) (data (i32.const 0) "data"))"""
    with pytest.raises(Trap) as info:
        inst(engine, text, {("env", "mem"): mem, ("env", "t"): table})
    assert info.value.code == TrapCode.TABLE_OUT_OF_BOUNDS
    assert table.get(0) is not None and table.get(1) is None
    assert mem.read(0, 4) == b"\0" * 4


def test_failed_instantiation_leaves_nothing(engine):
    text = """(module (memory 1) (memory 2) (data (memory 1) (i32.const 0) "ok")
      (data (memory 0) (i32.const 70000) "oob") (table 1 funcref))"""
    module = Module(engine, wat(text))
    # Warm up (lazy imports, signal handler installation) before counting.
    with pytest.raises(Trap):
        Instance(module)
    before = maps_and_fds(collect=True)
    for _ in range(20):
        with pytest.raises(Trap):
            Instance(module)
    assert maps_and_fds(collect=True) == before


def test_failed_allocation_leaves_nothing(engine):
    tunables = engine.tunables.replace(static_memory_offset_guard_size=1 << 46)
    allocator = None
    if isinstance(engine.allocator, PoolingAllocator):  # reserved (and refused) at first use
        allocator = PoolingAllocator(64, 8, 160, 8, 100_000)
    huge = Engine(tunables, allocator=allocator)
    module = Module(huge, wat("(module (memory 1) (memory 1) (memory 1) (memory 1) (memory 1))"))
    with pytest.raises(runtime.AllocationError):
        Instance(module)
    before = maps_and_fds(collect=True)
    with pytest.raises(runtime.AllocationError):
        Instance(module)
    assert maps_and_fds(collect=True) == before


def test_start_func_runs_at_instantiation(engine):
    i = inst(engine, """(module (global (export "g") (mut i32) (i32.const 0))
      (func $s (global.set 0 (i32.const 7))) (start $s))""")
    assert i.start_func == 0 and i.exports["g"].value == 7
    with pytest.raises(Trap):
        inst(engine, """(module (func $s unreachable) (start $s))""")


def test_passive_data_memory_init_and_drop(engine):
    i = inst(engine, """(module (memory (export "m") 1)
      (data $p "passive") (data (i32.const 0) "active"))""")
    m = i.exports["m"]
    i.memory_init(0, 100, 0, 1, 3)
    assert m.read(100, 3) == b"ass"
    assert bytes(i.passive_data(1)) == b""  # active segments are dropped
    i.data_drop(0)
    with pytest.raises(Trap):
        i.memory_init(0, 0, 0, 0, 1)
    i.memory_init(0, 0, 0, 0, 0)  # n=0 from a dropped segment is fine


def test_close_releases_and_context_manager(engine):
    module = Module(engine, wat('(module (memory (export "m") 1) (data (i32.const 0) "x"))'))
    Instance(module).close()  # warm up (a pool slot keeps this module's layout once used)
    module_maps = maps_and_fds(collect=True)
    with Instance(module) as i:
        assert i.exports["m"].read(0, 1) == b"x"
    assert maps_and_fds(collect=True) == module_maps


def test_copy_strategy_writes_image_eagerly():
    cow_engine, copy_engine = Engine(), Engine(memory_init_cow=False)
    text = '(module (memory (export "m") 2) (data (i32.const 70000) "image bytes"))'
    cow, copy = Module(cow_engine, wat(text)), Module(copy_engine, wat(text))
    assert cow.images[0] is not None and copy.images[0] is None
    with Instance(cow) as a, Instance(copy) as b:
        assert a.exports["m"].read(0, 131072) == b.exports["m"].read(0, 131072)
        assert b.exports["m"].read(70000, 11) == b"image bytes"


def test_dropped_instance_with_self_referencing_table_is_collected(engine):
    """A table holding the instance's own functions makes a reference cycle; the
    instance's finalizer must not be part of it, or dropped instances never release
    their memories."""
    import weakref
    module = Module(engine, wat("""(module (memory (export "m") 1) (table (export "t") 2 funcref)
      (func $f (export "f")) (elem (i32.const 0) $f))"""))
    i = Instance(module)
    i.exports["t"].set(1, i.exports["f"])
    assert i.exports["t"].get(0) is i.exports["f"]
    ref, base = weakref.ref(i), i.exports["m"].base_address
    del i
    gc.collect()
    assert ref() is None
    if isinstance(engine.allocator, PoolingAllocator):
        assert engine.allocator.live_instances == 0  # its slots are back in the pool
    else:
        with open("/proc/self/maps") as f:
            assert not [line for line in f if line.startswith(f"{base:x}-")]  # unmapped


def test_memory_init_from_passive_segments(engine):
    i = inst(engine, """(module (memory (export "m") 1)
      (data $p "passive") (data (i32.const 0) "active"))""")
    m = i.exports["m"]
    i.memory_init(0, 200, 0, 2, 4)
    assert m.read(200, 4) == b"ssiv"
    with pytest.raises(Trap) as info:
        i.memory_init(0, 65535, 0, 0, 2)  # destination out of bounds: nothing written
    assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS and m.read(65535, 1) == b"\0"
    with pytest.raises(Trap):
        i.memory_init(0, 0, 0, 5, 3)      # source range past the segment's 7 bytes
    with pytest.raises(Trap):
        i.memory_init(0, 0, 1, 0, 1)      # active segments are dropped after instantiation
    i.memory_init(0, 0, 1, 0, 0)
    i.data_drop(0)
    with pytest.raises(Trap):
        i.memory_init(0, 0, 0, 0, 1)      # trapping after data.drop
    i.memory_init(0, 0, 0, 0, 0)


def test_memory_init_reads_the_calling_instance_segment(engine):
    """memory.init on an imported memory reads the importing instance's segment; the
    memory itself carries no segments (Memory has no init)."""
    host = Memory.new(engine, 1)
    a = inst(engine, '(module (import "env" "m" (memory 1)) (data "seg"))', {("env", "m"): host})
    b = inst(engine, '(module (import "env" "m" (memory 1)) (data "other"))', {("env", "m"): host})
    a.memory_init(0, 10, 0, 0, 3)
    b.memory_init(0, 20, 0, 0, 5)
    assert host.read(10, 3) == b"seg" and host.read(20, 5) == b"other"
    b.data_drop(0)
    a.memory_init(0, 30, 0, 0, 3)  # b's drop leaves a's segment
    assert host.read(30, 3) == b"seg"
    assert not hasattr(host, "init")
    host.close()


@pytest.mark.parametrize("shared", [False, True])
def test_imported_memory_traps_the_same_from_every_instance(engine, shared):
    host = Memory.new(engine, 1, 4, shared=shared)
    kind = "(memory 1 4 shared)" if shared else "(memory 1 4)"
    text = f'(module (import "env" "m" {kind}) (export "mem" (memory 0)))'
    a = inst(engine, text, {("env", "m"): host})
    b = inst(engine, text, {("env", "m"): host})
    for mem in (a.exports["mem"], b.exports["mem"], host):
        with pytest.raises(Trap) as info:
            mem.load_i32(65534)
        assert info.value.code == TrapCode.MEMORY_OUT_OF_BOUNDS
    assert a.exports["mem"].grow(1) == 1
    b.exports["mem"].store_i32(65536 + 100, 7)       # in bounds for everyone after the grow
    assert host.load_i32(65536 + 100) == 7
    for mem in (a.exports["mem"], b.exports["mem"]):
        with pytest.raises(Trap):
            mem.store_i64(2 * 65536 - 4, 1)
    host.close()


# ---- the one-call path and Memory objects made on first use ----------------------------


def test_one_memory_module_takes_the_one_call_path_after_its_first_instance(engine):
    module = Module(engine, wat(ONE_MEMORY))
    first = Instance(module)
    layout = module._instance_layout
    assert layout.fast and layout.memories_only and layout.memory_count == 1
    second = Instance(module)  # opened by one C call
    for i in (first, second):
        m = i.exports["m"]
        assert m.read(0, 4) == b"head" and m.read(70000, 4) == b"late" and m.size_pages == 2
    assert first.memory(0).base_address != second.memory(0).base_address
    first.close()
    second.close()
    spec = layout.specs[0]
    pooled = isinstance(engine.allocator, PoolingAllocator)
    assert (spec.pool != runtime._ffi.NULL) == pooled  # which allocator the one call goes to
    assert spec.image_len == module.images[0].byte_len and spec.accessible == 2 * 65536


def test_instances_of_a_closed_module_are_refused_on_the_one_call_path(engine):
    module = Module(engine, wat(ONE_MEMORY))
    Instance(module).close()
    assert module._instance_layout.fast
    module.close()
    with pytest.raises(ValueError, match="module is closed"):
        Instance(module)


def test_passing_imports_to_a_module_without_imports_takes_the_general_path(engine):
    module = Module(engine, wat(ONE_MEMORY))
    Instance(module).close()
    with Instance(module, {}) as i, Instance(module, []) as j:
        assert i.exports["m"].read(0, 4) == j.exports["m"].read(0, 4) == b"head"


# A plain layout (runtime.layout): one memory, tables, constant globals, functions as its
# only imports, nothing initialized per instance: the one-call path with its tables.
PLAIN = """(module (import "env" "h" (func $h (param i32) (result i32)))
  (memory (export "m") 1) (data (i32.const 16) "plain")
  (global $g (export "g") (mut i32) (i32.const 5)) (global (export "k") i64 (i64.const -3))
  (table $t (export "t") 3 funcref) (elem (i32.const 1) $f)
  (func $f (export "f") (result i32) (call $h (global.get $g)))
  (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1))))
  (func (export "via_table") (result i32) (call_indirect $t (result i32) (i32.const 1))))"""


def _plain_pre(engine, seen):
    linker = runtime.Linker(engine)
    linker.define_func("env", "h", FuncType((ValType.I32,), (ValType.I32,)), lambda x: seen.append(x) or x * 10)
    module = Module(engine, wat(PLAIN))
    return module, linker.instantiate_pre(module)


def test_a_plain_module_takes_the_one_call_path_with_its_tables_globals_and_imports(engine):
    seen = []
    module, pre = _plain_pre(engine, seen)
    first = pre.instantiate()
    layout = module._instance_layout
    assert layout.plain and layout.fast and not layout.memories_only and layout.table_count == 1
    second, third = pre.instantiate(), pre.instantiate()  # each opened by one C call
    with pytest.raises(AttributeError):
        runtime.instance._CELLS.__get__(third)  # nobody looked: no block was made
    assert third.exports["k"].value == -3 and third.exports["g"].value == 5  # the template's values
    for i in (first, second):
        assert i.exports["m"].read(16, 5) == b"plain"
        assert i.exports["t"].get(0) is None and i.exports["t"].get(1) is not None
        assert i.exports["f"]() == 50 and i.exports["via_table"]() == 50
    second.exports["bump"]()
    second.exports["g"].value = second.exports["g"].value + 10  # a write from Python goes to its cell
    assert second.exports["f"]() == 160 and first.exports["f"]() == 50  # each its own block
    assert seen == [5, 5, 5, 5, 16, 5]
    g, k = second.exports["g"], third.exports["k"]
    for i in (first, second, third):
        i.close()
    for view in (g, k):
        with pytest.raises(ValueError, match="closed"):
            _ = view.value


def test_a_plain_instance_nobody_looked_into_leaves_nothing_behind(engine):
    linker = runtime.Linker(engine)
    linker.define_func("env", "h", FuncType((ValType.I32,), (ValType.I32,)), lambda x: x)
    module = Module(engine, wat(PLAIN))
    pre = linker.instantiate_pre(module)
    pre.instantiate().close()  # the one-call path from now on

    def cycle():
        for _ in range(50):
            pre.instantiate().close()
        for _ in range(50):
            pre.instantiate().exports["g"]  # dropped unclosed (its block made): the backstop

    cycle()  # (a pool keeps the table slots it opened, for their next tenants)
    before = maps_and_fds(collect=True)
    cycle()
    assert maps_and_fds(collect=True) == before
    if isinstance(engine.allocator, PoolingAllocator):
        assert (engine.allocator.live_instances, engine.allocator.live_memories) == (0, 0)


@pytest.mark.parametrize("text, plain", [
    ('(module (memory 1) (table 2 funcref) (global (mut i64) (i64.const 1)) (func) (elem (i32.const 0) 0))', True),
    ('(module (import "e" "f" (func)) (memory 1))', True),
    ('(module (memory 1) (memory 1))', False),                             # two memories
    ('(module (import "e" "g" (global i32)) (memory 1))', False),          # a block to write per instance
    ('(module (import "e" "m" (memory 1)) (memory 1))', False),            # an imported memory
    ('(module (memory 1) (func) (start 0))', False),                       # a start function
    ('(module (global $b i32 (i32.const 8)) (memory 1) (data (i32.const 0) "x") (table 1 funcref)'
     ' (elem (global.get $b) func 0) (func))', False),                     # an eager element segment
    ('(module (memory 1) (tag))', False),                                  # a tag per instance
])
def test_which_layouts_are_plain(text, plain):
    """Plain (the one-call path): one memory and its tables, nothing imported but
    functions, nothing to write into the block or initialize per instance."""
    from runtime.layout import layout_of
    engine = Engine()
    layout = layout_of(Module(engine, wat(text)))
    assert layout.plain is plain
    assert layout.lazy_block or not plain


def test_imports_that_hold_something_take_the_general_path(engine):
    """A function of another instance (its code runs on that instance's memory) is no
    plain import: the importer holds the exporter's memory, which stays allocated after
    the exporter closes, until the importer does."""
    from tests.helpers import layout
    exporter = inst(engine, """(module (memory (export "m") 1)
      (func (export "peek") (result i32) (i32.load8_u (i32.const 0))))""")
    linker = runtime.Linker(engine)
    linker.define_instance(None, "env", exporter)
    module = Module(engine, wat("""(module (import "env" "peek" (func $p (result i32)))
      (memory 1) (func (export "run") (result i32) (call $p)))"""))
    pre = linker.instantiate_pre(module)
    pre.instantiate().close()
    assert module._instance_layout.fast and not pre._imports.plain
    importer = pre.instantiate()
    (start, end), = exporter.reservation_ranges()
    pool = engine.allocator if isinstance(engine.allocator, PoolingAllocator) else None
    exporter.close()

    def held():  # (a pool also counts the importer's own memory while it lives)
        if pool is not None:
            return pool.live_memories == (2 if not importer.closed else 1)
        return any(perms == "rw-p" for _, _, perms in layout(start, end))

    assert held()  # the importer's code may still run on it
    importer.close()
    assert not held()


DATA_INTO_IMPORT = """(module (import "e" "m" (memory 1)) (import "e" "g" (global i32))
  (data (i32.const 0) "ab") (data (global.get 0) "cd") (data (i32.const 65534) "xy")
  %s)"""


@pytest.mark.oracle
@pytest.mark.parametrize("base, last", [(100, ""), (70000, ""), (200, '(data (i32.const 65535) "xyz")')])
def test_data_segments_into_an_imported_memory_match_wasmtime(base, last):
    """Active segments go to an imported memory in order, in one C call: a global base read
    per instance, and the first segment that does not fit traps with the earlier ones
    written (the imported memory keeps them), as wasmtime-py does."""
    import wasmtime as wt
    text = DATA_INTO_IMPORT % last
    store = wt.Store()
    wmem = wt.Memory(store, wt.MemoryType(wt.Limits(1, None)))
    wglob = wt.Global(store, wt.GlobalType(wt.ValType.i32(), False), wt.Val.i32(base))
    try:
        wt.Instance(store, wt.Module(store.engine, wat(text)), [wmem, wglob])
        want_trap = False
    except wt.Trap:
        want_trap = True
    want = bytes(wmem.read(store, 0, 65536))
    engine = Engine()
    mem = Memory.new(engine, 1)
    glob = Global.new(engine, ValType.I32, base)
    module = Module(engine, wat(text))
    if want_trap:
        with pytest.raises(Trap):
            Instance(module, [mem, glob])
    else:
        Instance(module, [mem, glob]).close()
    assert mem.read(0, 65536) == want
    assert want[0:2] == b"ab" and (want_trap or want[65534:] == b"xy")


def _python_allocations_per_instance(pre, n=50):
    """(blocks, bytes) that each of ``n`` more live instances of ``pre`` holds, by
    tracemalloc (the difference between 10 and 10 + n live instances: nothing one-time)."""
    import tracemalloc
    live = [None] * (n + 10)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        for k in range(10):
            live[k] = pre.instantiate()
        before = tracemalloc.take_snapshot()
        for k in range(10, n + 10):
            live[k] = pre.instantiate()
        mine = [tracemalloc.Filter(False, tracemalloc.__file__)]  # not the snapshots' own
        diff = tracemalloc.take_snapshot().filter_traces(mine).compare_to(before.filter_traces(mine), "filename")
    finally:
        tracemalloc.stop()
        gc.enable()
        for instance in live:
            if instance is not None:
                instance.close()
    return sum(d.count_diff for d in diff) / n, sum(d.size_diff for d in diff) / n


@pytest.mark.parametrize("small, large", [
    ("(func)" * 10, "(func)" * 100_000),
    ("(table 10 funcref) (func $f) (elem (i32.const 0) $f)",
     "(table 1000000 funcref) (func $f) (elem (i32.const 0) $f)"),
    ("", "(global i32 (i32.const 7))" * 10_000),
], ids=["functions", "table-elements", "constant-globals"])
def test_instantiation_allocates_nothing_per_function_global_or_element(small, large):
    """Issue 14: the Python objects an instance makes do not depend on how many functions,
    constant globals or table elements its module has (tracemalloc, per live instance)."""
    engine = Engine()
    linker = runtime.Linker(engine)
    linker.define_func("e", "f", FuncType((), ()), lambda: None)
    per = []
    for body in (small, large):
        module = Module(engine, wat(f'(module (import "e" "f" (func)) {body})'))
        per.append(_python_allocations_per_instance(linker.instantiate_pre(module)))
    (small_blocks, small_bytes), (large_blocks, large_bytes) = per
    # A little noise: CPython's free lists serve some objects untraced, and the Instance's
    # __dict__ layout varies (shared keys); one object per function, global or element
    # would add thousands of blocks per instance.
    assert abs(small_blocks - large_blocks) <= 0.5
    assert abs(small_bytes - large_bytes) <= 0.1 * small_bytes


def test_element_segments_into_an_imported_table_allocate_nothing_per_element():
    """Issue 14 (Emscripten side modules): an active segment writing K of the instance's
    functions into an imported table makes no Python object per element (no Func: the
    cells name the instance's funcref records), and none lives after instantiation."""
    engine = Engine()
    per = []
    # (the first: what the first call imports and makes, once; both sizes' interpreter
    # state is larger than a page, so it comes from the same allocator: runtime/_ffi.py)
    for k in (200, 200, 1000):
        table = Table.new(engine, "funcref", 1000)  # (its holds grow alike for each k)
        linker = runtime.Linker(engine)
        linker.define(None, "e", "t", table)
        funcs = "".join(f"(func $f{i} (result i32) (i32.const {i}))" for i in range(k))
        elems = " ".join(f"$f{i}" for i in range(k))
        module = Module(engine, wat(f'(module (import "e" "t" (table 1 funcref)) {funcs} '
                                    f'(elem (i32.const 0) {elems}))'))
        pre = linker.instantiate_pre(module)
        per.append(_python_allocations_per_instance(pre, n=200))
        live = pre.instantiate()
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, Func) and o._instance is live]
        assert table.get(k - 1).wasm_index == k - 1 and table.get(k - 1)() == k - 1
        live.close()
        table.close()
    _, (few_blocks, few_bytes), (many_blocks, many_bytes) = per
    assert abs(few_blocks - many_blocks) <= 0.5
    assert abs(few_bytes - many_bytes) <= 0.1 * few_bytes


def test_the_start_function_runs_without_a_func_kept_for_it(engine):
    """The start function's Func is made for the call only (no dict per instance for it);
    asked for afterwards (an export), it is made then, once."""
    i = inst(engine, """(module (memory 1) (global $n (export "n") (mut i32) (i32.const 0))
      (func $s (export "s") (global.set $n (i32.add (global.get $n) (i32.const 1)))) (start $s))""")
    assert i.exports["n"].value == 1 and i._funcs is None
    s = i.exports["s"]
    s()
    assert i.exports["s"] is s and i.exports["n"].value == 2
    i.close()
