"""runtime/layout.py: DataPlan's mapped data writes (large active segments whose whole pages
are mapped copy-on-write from a file of the module's instead of copied), checked from
outside: the memory's bytes, /proc/self/maps, the files, a pool slot's next tenant."""
import gc
import os

import pytest

from runtime import Engine, Global, Instance, Memory, Module, PoolingAllocator, Trap, _ffi
from wasmenv import ValType
from runtime.layout import DataPlan, layout_of
from tests.helpers import open_fd_count, parse_maps, wat

pytestmark = pytest.mark.skipif(not _ffi.IS_LINUX, reason="reads /proc/self/maps")

PAGE = _ffi.PAGE_SIZE
SEGMENT = bytes((i * 7 + 3) % 251 + 1 for i in range(200_000))  # no zero byte: every page differs from zeros


def _escape(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def _side_module(segment=SEGMENT, pages=8, shared=False, tail=""):
    """Imports a memory and a base (as an Emscripten side module does); one large
    segment at the base, a small one after it."""
    mem = f"(memory {pages} {pages} shared)" if shared else f"(memory {pages})"
    return wat(f"""(module (import "e" "m" {mem}) (import "e" "base" (global i32))
      (data (global.get 0) "{_escape(segment)}")
      (data (i32.const 0) "hd") {tail})""")


def _file_pages(mem: Memory) -> int:
    """Bytes of ``mem``'s reservation mapped from a data file (``wenv-data`` memfds or
    temporary files)."""
    lo, hi = mem.reservation_range
    return sum(min(e, hi) - max(s, lo) for s, e, _, _, path in parse_maps()
               if s < hi and e > lo and "wenv-data" in path)


def _expected(pages, base, segment=SEGMENT):
    want = bytearray(pages * 65536)
    want[base:base + len(segment)] = segment
    want[0:2] = b"hd"
    return bytes(want)


def _instantiate(engine, data, base, pages=8, shared=False):
    mem = Memory.new(engine, pages, pages, shared=shared) if shared else Memory.new(engine, pages)
    glob = Global.new(engine, ValType.I32, base)
    module = Module(engine, data)
    return module, Instance(module, [mem, glob]), mem


@pytest.mark.parametrize("backing", ["memfd", "tempfile"])
@pytest.mark.parametrize("base", [0, 1, PAGE - 1, 3 * PAGE + 17, 5 * PAGE])
def test_a_large_segment_is_mapped_into_an_imported_memory_and_reads_the_same(base, backing):
    engine = Engine(image_backing=backing)
    module, inst, mem = _instantiate(engine, _side_module(), base)
    try:
        assert mem.read(0, mem.byte_len) == _expected(8, base)
        # its whole pages come from the file: the first and last partial pages are copied
        first, last = -(-base // PAGE) * PAGE, (base + len(SEGMENT)) // PAGE * PAGE
        assert _file_pages(mem) == last - first
    finally:
        inst.close()
        mem.close()
        module.close()


@pytest.mark.oracle
def test_mapped_segment_bytes_match_wasmtime():
    import wasmtime as wt
    base = 2 * PAGE + 5
    data = _side_module()
    store = wt.Store()
    wmem = wt.Memory(store, wt.MemoryType(wt.Limits(8, None)))
    wglob = wt.Global(store, wt.GlobalType(wt.ValType.i32(), False), wt.Val.i32(base))
    wt.Instance(store, wt.Module(store.engine, data), [wmem, wglob])
    module, inst, mem = _instantiate(Engine(), data, base)
    try:
        assert _file_pages(mem) > 0
        assert mem.read(0, mem.byte_len) == bytes(wmem.read(store, 0, 8 * 65536))
    finally:
        inst.close()
        mem.close()


def test_writes_after_mapping_stay_in_their_memory_and_grow_keeps_the_bytes():
    """Copy-on-write: an instance writing its mapped pages changes neither the file nor
    the next instance's memory; a grow (in place) keeps every byte."""
    engine = Engine()
    data = _side_module()
    module, inst, mem = _instantiate(engine, data, 0)
    mem.write(PAGE * 4, b"\x00" * PAGE)
    assert mem.grow(2) == 8
    module2, inst2, mem2 = _instantiate(engine, data, 0)
    try:
        assert mem2.read(0, mem2.byte_len) == _expected(8, 0)
        want = bytearray(_expected(10, 0))
        want[PAGE * 4:PAGE * 5] = bytes(PAGE)
        assert mem.read(0, mem.byte_len) == bytes(want)
    finally:
        for x in (inst, inst2, mem, mem2):
            x.close()


def test_one_file_per_remainder_at_most_four_and_module_close_closes_them():
    engine = Engine()
    data = _side_module()
    module = Module(engine, data)
    gc.collect()  # (earlier tests' garbage modules close their files when collected)
    fds = open_fd_count()
    for base in (0, PAGE, 1, 2, 3, 4, 5):  # remainders 0 (twice), 1..5
        mem, glob = Memory.new(engine, 8), Global.new(engine, ValType.I32, base)
        inst = Instance(module, [mem, glob])
        assert mem.read(0, mem.byte_len) == _expected(8, base)
        mapped = _file_pages(mem)
        assert (mapped > 0) == (base in (0, PAGE, 1, 2, 3)), base  # 4 and 5: copied
        inst.close()
        mem.close()
    assert len(module._data_images) == DataPlan.MAX_REMAINDERS == 4
    assert open_fd_count() == fds + 4
    module.close()
    assert all(image.closed for image in module._data_images)
    assert open_fd_count() == fds


def test_shared_memories_and_cow_off_copy():
    """A shared memory is not the importer's alone, and memory_init_cow=False asks for
    copies: both copy (a pool slot: the next test)."""
    base = 0
    # a shared imported memory
    module, inst, mem = _instantiate(Engine(), _side_module(shared=True), base, shared=True)
    assert mem.read(0, mem.byte_len) == _expected(8, base) and _file_pages(mem) == 0
    inst.close()
    mem.close()
    # copy-on-write off
    module, inst, mem = _instantiate(Engine(memory_init_cow=False), _side_module(), base)
    assert mem.read(0, mem.byte_len) == _expected(8, base) and _file_pages(mem) == 0
    assert not layout_of(module).data_plan.mapped
    inst.close()
    mem.close()


def test_a_pool_slot_memory_is_copied_into_and_its_next_tenant_sees_zeros():
    definer = wat(f"""(module (import "e" "base" (global i32)) (memory (export "m") 8)
      (data (global.get 0) "{_escape(SEGMENT)}"))""")
    plain = wat('(module (memory (export "m") 8))')
    with PoolingAllocator(max_instances=1, max_memories_per_instance=1, max_memory_pages=16,
                          max_tables_per_instance=0, max_table_elements=0) as pool:
        engine = Engine(allocator=pool)
        host = Engine()
        module = Module(engine, definer)
        inst = Instance(module, [Global.new(host, ValType.I32, PAGE)])
        mem = inst.exports["m"]
        assert mem.read(PAGE, len(SEGMENT)) == SEGMENT
        assert _file_pages(mem) == 0
        inst.close()
        nxt = Instance(Module(engine, plain), [])
        assert nxt.exports["m"].read(0, 8 * 65536) == bytes(8 * 65536)
        nxt.close()
        gc.collect()


def test_an_on_demand_defined_memory_is_mapped_into():
    definer = wat(f"""(module (import "e" "base" (global i32)) (memory (export "m") 8)
      (data (global.get 0) "{_escape(SEGMENT)}"))""")
    engine = Engine()
    inst = Instance(Module(engine, definer), [Global.new(engine, ValType.I32, 100)])
    mem = inst.exports["m"]
    assert mem.read(100, len(SEGMENT)) == SEGMENT and mem.read(0, 100) == bytes(100)
    assert _file_pages(mem) > 0
    inst.close()


@pytest.mark.parametrize("fail", ["map_image", "map_image+map_anon"])
def test_a_failed_mapping_falls_back_to_copying(fail):
    """The mmap of a mapped write fails (injected): the pages are copied, the bytes the same;
    when even the fresh zero pages cannot be mapped there, the copy still lands (the old
    pages were never unmapped)."""
    engine = Engine()
    data = _side_module()
    module = Module(engine, data)
    mem, glob = Memory.new(engine, 8), Global.new(engine, ValType.I32, 0)
    layout = layout_of(module)
    mask = 0
    for step in fail.split("+"):
        mask |= _ffi.POOL_FAIL[step]
    layout.data_plan.fail = mask
    inst = Instance(module, [mem, glob])
    assert mem.read(0, mem.byte_len) == _expected(8, 0)
    assert _file_pages(mem) == 0
    inst.close()
    mem.close()


def test_a_segment_that_does_not_fit_traps_with_the_earlier_ones_written():
    """The mapped segment is written (mapped) before a later one traps; the imported
    memory keeps it, as the spec says."""
    engine = Engine()
    data = _side_module(tail='(data (i32.const 524287) "xy")')
    mem, glob = Memory.new(engine, 8), Global.new(engine, ValType.I32, 0)
    module = Module(engine, data)
    with pytest.raises(Trap):
        Instance(module, [mem, glob])
    assert mem.read(0, mem.byte_len) == _expected(8, 0)
    assert _file_pages(mem) > 0
    mem.close()


def test_the_files_are_the_segments_bytes_at_their_remainder():
    engine = Engine()
    module, inst, mem = _instantiate(engine, _side_module(), 3 * PAGE + 17)
    try:
        (image,) = module._data_images
        raw = os.pread(image.fd, image.byte_len, 0)
        assert raw[17:17 + len(SEGMENT)] == SEGMENT and raw[:17] == bytes(17)
        assert image.byte_len % PAGE == 0 and image.sealed
    finally:
        inst.close()
        mem.close()


def test_a_data_file_that_could_not_be_made_is_tried_again_later(monkeypatch):
    """No data file could be made (out of file descriptors, say): the instance copies, the
    instances of the next RETRY_SECONDS copy without trying again, the first one after
    that tries again and maps."""
    from runtime.errors import AllocationError
    from runtime.image import MemoryImage
    engine = Engine()
    module = Module(engine, _side_module())
    real, calls = MemoryImage.holding, []

    def holding(*args, **kw):
        calls.append(args[1])
        if len(calls) == 1:
            raise AllocationError("injected: no file descriptors", "file descriptors")
        return real(*args, **kw)

    monkeypatch.setattr(MemoryImage, "holding", holding)
    monkeypatch.setattr(DataPlan, "RETRY_SECONDS", 3600.0)

    def instantiate():
        mem, glob = Memory.new(engine, 8), Global.new(engine, ValType.I32, 0)
        inst = Instance(module, [mem, glob])
        assert mem.read(0, mem.byte_len) == _expected(8, 0)
        mapped = _file_pages(mem)
        inst.close()
        mem.close()
        return mapped

    assert instantiate() == 0 and instantiate() == 0 and calls == [0]  # not tried again yet
    plan = layout_of(module).data_plan
    key = next(iter(plan._files))
    plan._files[key] = 0.0  # the retry time has come
    assert instantiate() > 0 and calls == [0, 0]
    assert instantiate() > 0 and calls == [0, 0]  # made once
    module.close()
