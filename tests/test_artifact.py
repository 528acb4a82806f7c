"""Compiled artifacts: save_artifact / load_artifact / compile CLI (wasmenv/artifact.py)."""
import json
import mmap
import os
import re
import struct

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wasmenv
from wasmenv import (ArtifactError, ConstExpr, ElementSegment, EntityIndex, ExternKind, FuncType,
                     FunctionType, Global, GlobalType, Initializer, InitMemory, MemoryInitialization,
                     MemoryInitializer, MemoryPlan, MemoryStyle, MemoryType, Module, ModuleTranslation,
                     ModuleType, StaticMemoryInitializer, TableInitialization, TableInitializer,
                     RefType, TablePlan, TableType, TagType, Tunables, ValType, load_artifact,
                     save_artifact)
from tests.helpers import open_fd_count as fd_count
from wasmenv import artifact as A
from wasmenv.cli import main as cli_main

PAGE = 4096
MIB = 1 << 20
T = Tunables()
I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF


# -- helpers -------------------------------------------------------------------------------
def meta_path(path):
    return os.path.join(path, A.METADATA_FILE)


def read_doc(path):
    with open(meta_path(path), encoding="utf-8") as f:
        return json.load(f)


def write_doc(path, doc, reseal=True):
    if reseal:
        doc["checksum"] = A.metadata_checksum(doc)
    with open(meta_path(path), "w", encoding="utf-8") as f:
        json.dump(doc, f)


def assert_same(tr, loaded):
    assert loaded.module == tr.module
    assert loaded.data_align == tr.data_align
    assert [bytes(c) for c in loaded.data.chunks] == [bytes(c) for c in tr.data.chunks]
    assert [bytes(c) for c in loaded.passive_data.chunks] == [bytes(c) for c in tr.passive_data.chunks]
    assert loaded.data.byte_len == tr.data.byte_len
    assert loaded.passive_data.byte_len == tr.passive_data.byte_len
    # exports keep their order
    assert list(loaded.module.exports) == list(tr.module.exports)
    for k in tr.module.passive_data_map:
        assert bytes(loaded.passive_data_view(k)) == bytes(tr.passive_data_view(k))


def assert_zero_copy(loaded):
    info = loaded.artifact
    for store in (loaded.data, loaded.passive_data):
        for c in store.chunks:
            assert isinstance(c, memoryview)
            if len(c):
                assert c.readonly
                assert c.obj is info.mapping  # a view of the read-only mmap, not a copy


def roundtrip(tr, path, **kw):
    out = save_artifact(tr, path, **kw)
    loaded = load_artifact(out)
    assert_same(tr, loaded)
    assert_zero_copy(loaded)
    A.validate_translation(loaded, loaded.tunables)
    return loaded


def compile_wat(text, tunables=None):
    return wasmenv.compile(wasmtime.wat2wasm(text), tunables)


def chunk_file_bytes(info, offset, n):
    with open(info.data_file, "rb") as f:
        f.seek(offset)
        return f.read(n)


# -- a hand-built translation using every field ------------------------------------------------
def rich_module(static=True):
    types = [ModuleType(FuncType((), ())), ModuleType(FuncType((I32, I64), (F32,))),
             ModuleType(FuncType((V128, FUNCREF, EXTERNREF), ()))]
    m = Module(name="rich \u00fcn\u00efcode \U0001F600")
    m.types = types
    m.initializers = [
        Initializer.Import("env", "f", EntityIndex(ExternKind.FUNC, 0)),
        Initializer.Import("env", "t", EntityIndex(ExternKind.TABLE, 0)),
        Initializer.Import("env", "mem", EntityIndex(ExternKind.MEMORY, 0)),
        Initializer.Import("env", "g", EntityIndex(ExternKind.GLOBAL, 0)),
        Initializer.Import("env", "", EntityIndex(ExternKind.GLOBAL, 1)),
        Initializer.Import("\u00e9", "tag", EntityIndex(ExternKind.TAG, 0)),
    ]
    m.num_imported_funcs = m.num_imported_tables = m.num_imported_memories = m.num_imported_tags = 1
    m.num_imported_globals = 2
    m.functions = [FunctionType(1), FunctionType(0, 0), FunctionType(0, 1), FunctionType(2)]
    m.num_escaped_funcs = 2
    m.table_plans = [TablePlan.for_table(t, T) for t in (
        TableType(EXTERNREF, 1), TableType(FUNCREF, 10, 20), TableType(FUNCREF, 5, None, table64=True))]
    m.memory_plans = [MemoryPlan.for_memory(t, T) for t in (
        MemoryType(1), MemoryType(2, 10), MemoryType(1, None, memory64=True),
        MemoryType(1, 4, shared=True))]
    assert isinstance(m.memory_plans[1].style, MemoryStyle.Static)
    assert isinstance(m.memory_plans[2].style, MemoryStyle.Dynamic)
    m.globals = [
        Global(GlobalType(I32)), Global(GlobalType(I64)),
        Global(GlobalType(I32, True), ConstExpr((("global.get", 0), ("i32.const", 5), ("i32.add", None)))),
        Global(GlobalType(F32), ConstExpr((("f32.const", 0x3F800000),))),
        Global(GlobalType(F64), ConstExpr((("f64.const", 0x3FF0000000000000),))),
        Global(GlobalType(V128), ConstExpr((("v128.const", bytes(range(16))),))),
        Global(GlobalType(FUNCREF), ConstExpr((("ref.func", 1),))),
        Global(GlobalType(EXTERNREF), ConstExpr((("ref.null", EXTERNREF),))),
        Global(GlobalType(I64), ConstExpr((("i64.const", (1 << 64) - 1), ("global.get", 1),
                                           ("i64.mul", None)))),
    ]
    m.tags = [TagType(2, types[2].func), TagType(2, types[2].func)]
    m.exports = {"z": EntityIndex(ExternKind.FUNC, 2), "a": EntityIndex(ExternKind.MEMORY, 1),
                 "m": EntityIndex(ExternKind.GLOBAL, 3), "t": EntityIndex(ExternKind.TABLE, 1),
                 "tag": EntityIndex(ExternKind.TAG, 1), "": EntityIndex(ExternKind.FUNC, 0)}
    m.start_func = 1
    m.table_initialization = TableInitialization.FuncTable(
        (None, (None, 1, 2, None), None),
        (TableInitializer(1, 0, 3, (1,)),
         TableInitializer(2, None, 0, (ConstExpr((("ref.func", 2),)), None, 1),
                          ConstExpr((("i64.const", 1), ("i64.const", 1), ("i64.add", None))), True),
         TableInitializer(0, None, 0, (None, ConstExpr((("ref.null", EXTERNREF),))))))
    m.passive_elements = {3: ElementSegment("passive", FUNCREF, (1, None, ConstExpr((("ref.func", 2),)))),
                          4: ElementSegment("passive", EXTERNREF, (None,))}
    m.dropped_elements = (0, 1, 2, 5)
    m.num_elem_segments = 6
    tr = ModuleTranslation(m)
    if static:
        img1 = bytearray(PAGE)
        img1[10:15] = b"hello"
        img2 = bytearray(2 * PAGE)
        img2[-3:] = b"end"
        r1 = tr.data.push(img1)
        r2 = tr.data.push(memoryview(bytes(img2)))
        m.memory_initialization = MemoryInitialization.Static(
            (None, StaticMemoryInitializer(0, r1), StaticMemoryInitializer(0x4000, r2), None))
        tr.data_align = PAGE
    else:
        r1 = tr.data.push(b"abc")
        r0 = tr.data.push(b"")
        r2 = tr.data.push(bytearray(b"0123456789"))
        m.memory_initialization = MemoryInitialization.Segmented((
            MemoryInitializer(0, 0, 16, r1),                          # imported memory, global base
            MemoryInitializer(2, 1, 8, r2, None, True),               # memory64, i64 global base
            MemoryInitializer(1, None, 0, r2, ConstExpr((("global.get", 0), ("i32.const", 4),
                                                         ("i32.add", None)))),
            MemoryInitializer(1, None, 2 * 65536, r0),                # empty, at the very end
            MemoryInitializer(3, None, 0xFFFF_FFFF, range(1, 3)),     # out of bounds: still data
        ))
    p1 = tr.passive_data.push(b"hello")
    p2 = tr.passive_data.push(b"")
    p3 = tr.passive_data.push(b"world!")
    m.passive_data_map = {1: p1, 2: p2, 3: p3}
    m.num_data_segments = 6
    return tr


# =====================================================================================
# Round trips
# =====================================================================================
@pytest.mark.parametrize("static", [True, False])
def test_roundtrip_hand_built(tmp_path, static):
    tr = rich_module(static)
    A.validate_translation(tr, T)
    loaded = roundtrip(tr, tmp_path / "a")
    info = loaded.artifact
    assert info.directory == str(tmp_path / "a")
    assert info.data_file == str(tmp_path / "a" / "data" / "data.ninja")
    assert len(info.data_offsets) == len(tr.data.chunks)
    assert len(info.passive_offsets) == len(tr.passive_data.chunks)
    assert loaded.tunables == T and info.tunables == T
    assert loaded.wasm is None
    # every stored chunk is at its recorded offset in the data file
    for offsets, chunks in ((info.data_offsets, loaded.data.chunks),
                            (info.passive_offsets, loaded.passive_data.chunks)):
        for off, c in zip(offsets, chunks):
            assert chunk_file_bytes(info, off, len(c)) == bytes(c)
    # the ConstExpr immediates come back with their Python types
    g = loaded.module.globals
    assert g[5].init.ops[0][1] == bytes(range(16)) and type(g[5].init.ops[0][1]) is bytes
    assert g[7].init.ops[0][1] is EXTERNREF
    # re-saving a loaded translation gives an equal artifact
    again = roundtrip(loaded, tmp_path / "b")
    assert read_doc(tmp_path / "a") == read_doc(tmp_path / "b")
    assert again.module == tr.module


def test_metadata_is_versioned_readable_json(tmp_path):
    save_artifact(rich_module(), tmp_path / "a")
    text = open(meta_path(tmp_path / "a"), encoding="utf-8").read()
    doc = json.loads(text)
    assert doc["format"] == "wasmenv-artifact" and doc["version"] == A.FORMAT_VERSION == 2
    assert doc["checksum"] == A.metadata_checksum(doc)
    assert doc["store"]["kind"].startswith("mmap_ninja")
    assert "\U0001F600" in text  # names stay readable
    assert text.count("\n") > 50  # indented, not one line
    names = [e["name"] for e in doc["module"]["exports"]]
    assert names == ["z", "a", "m", "t", "tag", ""]


WAT_TABLES_SMALL = """(module (func $f) (table 2 funcref) (elem (i32.const 0) func $f)
  (global funcref (ref.func $f)) (elem funcref (item ref.func $f)))"""


@pytest.mark.parametrize("make", [lambda: rich_module(True), lambda: rich_module(False),
                                  lambda: compile_wat(WAT_TABLES_SMALL)])
def test_metadata_decodes_and_encodes_back_to_the_same_document(tmp_path, make):
    path = save_artifact(make(), tmp_path / "a")
    doc = read_doc(path)
    meta = A.codec.decode(json.loads(json.dumps(doc)))
    assert A.codec.encode(meta) == doc
    assert meta.module == make().module


def test_store_is_an_mmap_ninja_ragged_mmap(tmp_path):
    from mmap_ninja import RaggedMmap
    tr = rich_module()
    loaded = roundtrip(tr, tmp_path / "a")
    doc = read_doc(tmp_path / "a")
    rm = RaggedMmap(str(tmp_path / "a" / "data"))
    assert len(rm) == doc["store"]["items"]
    for entries, chunks in ((doc["data_chunks"], loaded.data.chunks),
                            (doc["passive_chunks"], loaded.passive_data.chunks)):
        for e, c in zip(entries, chunks):
            if e["item"] is not None:
                assert bytes(rm[e["item"]]) == bytes(c)
    del rm


WAT_STATIC = """(module
  (memory $m 2)
  (data (i32.const 100) "hello")
  (data (i32.const 70000) "world")
  (data "passive bytes")
  (data "")
  (export "memory" (memory $m)))"""

WAT_SEGMENTED_GLOBAL = """(module
  (import "env" "base" (global $b i32))
  (global $g i32 (i32.add (global.get $b) (i32.const 1)))
  (memory 1)
  (data (i32.const 0) "x")
  (data (global.get $b) "abc")
  (data (i32.add (global.get $b) (i32.const 4)) "ext")
  (data "pass"))"""

WAT_TABLES = """(module
  (type $t (func))
  (global $gb (import "e" "gb") i32)
  (func $f) (func $g (export "g"))
  (table $x 10 funcref)
  (table $y 2 externref)
  (elem (table $x) (i32.const 0) func $f $g)
  (elem (table $x) (global.get $gb) func $f)
  (elem (table $x) (i32.const 5) funcref (ref.func $g) (ref.null func))
  (elem (table $y) (i32.const 0) externref (ref.null extern))
  (elem declare func $f)
  (elem funcref (item ref.func $g))
  (global funcref (ref.func $g))
  (global v128 (v128.const i32x4 1 2 3 4))
  (global f32 (f32.const 1.5))
  (global f64 (f64.const -2))
  (start $f))"""

WAT_MEMORY64 = """(module
  (memory i64 3)
  (data (i64.const 8) "m64")
  (data (i64.const 131072) "far"))"""

WAT_SHARED = """(module
  (memory 1 2 shared)
  (data (i32.const 0) "s")
  (tag $e (param i32))
  (export "e" (tag $e)))"""

WAT_MULTI = """(module
  (memory $a 1)
  (memory $b 1)
  (memory $c 2)
  (data (memory $b) (i32.const 5) "b")
  (data (memory $c) (i32.const 65536) "cc"))"""

WAT_SPARSE = """(module
  (memory 1024)
  (data (i32.const 0) "first")
  (data (i32.const 33554432) "far away"))"""

WAT_NO_DATA = """(module (memory 1) (func (export "f")))"""


@pytest.mark.parametrize("name,text,kind", [
    ("static", WAT_STATIC, "static"),
    ("segmented_global_base", WAT_SEGMENTED_GLOBAL, "segmented"),
    ("tables", WAT_TABLES, None),
    ("memory64", WAT_MEMORY64, "static"),
    ("shared", WAT_SHARED, "static"),
    ("multi_memory", WAT_MULTI, "static"),
    ("sparse", WAT_SPARSE, "segmented"),
    ("no_data", WAT_NO_DATA, None),
])
def test_roundtrip_real_modules(tmp_path, name, text, kind):
    tr = compile_wat(text)
    mi = tr.module.memory_initialization
    if kind == "static":
        assert isinstance(mi, MemoryInitialization.Static) and any(mi.map)
    elif kind == "segmented":
        assert mi.is_segmented()
    loaded = roundtrip(tr, tmp_path / name)
    assert_image_locations(loaded)


def test_real_module_details(tmp_path):
    tr = compile_wat(WAT_TABLES)
    ti = tr.module.table_initialization
    assert isinstance(ti, TableInitialization.FuncTable)
    assert ti.tables[0] is not None and len(ti.segments) >= 2  # folded + leftovers
    assert tr.module.passive_elements and tr.module.start_func is not None
    loaded = roundtrip(tr, tmp_path / "t")
    assert loaded.module.table_initialization == ti

    tr = compile_wat(WAT_STATIC)
    loaded = roundtrip(tr, tmp_path / "s")
    assert bytes(loaded.passive_data_view(2)) == b"passive bytes"
    assert bytes(loaded.passive_data_view(3)) == b""
    loc = A.image_file_location(loaded, 0)
    img = loaded.module.memory_initialization.map[0]
    assert chunk_file_bytes(loaded.artifact, loc[1], loc[2])[100:105] == b"hello"
    assert bytes(loaded.data_view(img.data)) == bytes(tr.data_view(tr.module.memory_initialization.map[0].data))


def assert_image_locations(loaded):
    mi = loaded.module.memory_initialization
    for k in range(len(loaded.module.memory_plans)):
        loc = A.image_file_location(loaded, k)
        entry = mi.map[k] if isinstance(mi, MemoryInitialization.Static) else None
        if entry is None:
            assert loc is None
            continue
        path, off, n = loc
        assert path == loaded.artifact.data_file
        assert off % PAGE == 0 and off % wasmenv.host_page_size() == 0
        assert n == len(entry.data) and n % wasmenv.host_page_size() == 0
        # What the runtime will do: map the image privately, straight from the file.
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), n, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ, offset=off)
        try:
            assert m[:] == bytes(loaded.data_view(entry.data))
        finally:
            m.close()


def test_every_image_offset_is_page_aligned_with_padding(tmp_path):
    """Non-image chunks before images force padding items; every image stays aligned."""
    m = Module()
    m.memory_plans = [MemoryPlan.for_memory(MemoryType(4), T) for _ in range(3)]
    tr = ModuleTranslation(m)
    tr.data.push(b"odd")                        # 3 bytes, not an image
    r1 = tr.data.push(b"\x01" * PAGE)
    tr.data.push(b"")                           # empty chunk
    tr.data.push(b"xyzzy" * 7)                  # more unaligned bytes
    r2 = tr.data.push(b"\x02" * (3 * PAGE))
    m.memory_initialization = MemoryInitialization.Static(
        (StaticMemoryInitializer(PAGE, r1), None, StaticMemoryInitializer(0, r2)))
    tr.data_align = PAGE
    loaded = roundtrip(tr, tmp_path / "a")
    doc = read_doc(tmp_path / "a")
    assert doc["store"]["items"] > len([c for c in tr.data.chunks if len(c)])  # padding items
    assert loaded.artifact.data_offsets[1] == PAGE
    assert_image_locations(loaded)


def test_bigger_host_pages_at_save_align_images_to_them(tmp_path, monkeypatch):
    tr = compile_wat(WAT_MULTI)
    monkeypatch.setattr(A, "_host_page_size", lambda: 16384)
    save_artifact(tr, tmp_path / "a")
    doc = read_doc(tmp_path / "a")
    assert doc["file_align"] == 16384 and doc["data_align"] == PAGE
    assert all(e["offset"] % 16384 == 0 for e in doc["data_chunks"])
    with pytest.raises(ArtifactError, match="recompile on this host"):
        load_artifact(tmp_path / "a")  # 4 KiB-aligned images cannot map with 16 KiB pages
    monkeypatch.undo()
    loaded = load_artifact(tmp_path / "a")
    assert_same(tr, loaded)
    assert_image_locations(loaded)


def test_images_for_smaller_pages_are_refused_on_bigger_page_host(tmp_path, monkeypatch):
    save_artifact(compile_wat(WAT_STATIC), tmp_path / "a")
    monkeypatch.setattr(A, "_host_page_size", lambda: 16384)
    with pytest.raises(ArtifactError, match="cannot be mapped with 16384-byte host pages"):
        load_artifact(tmp_path / "a")


def test_no_data_bytes_means_no_store(tmp_path):
    m = Module()
    tr = ModuleTranslation(m)
    tr.passive_data.push(b"")
    m.passive_data_map = {0: range(0, 0)}
    m.num_data_segments = 1
    loaded = roundtrip(tr, tmp_path / "a")
    assert loaded.artifact.data_file is None
    assert not os.path.exists(tmp_path / "a" / "data")
    assert read_doc(tmp_path / "a")["store"] is None


def test_image_file_location_none_cases(tmp_path):
    tr = compile_wat(WAT_MULTI)
    assert A.image_file_location(tr, 1) is None  # not loaded from an artifact
    loaded = roundtrip(tr, tmp_path / "a")
    assert A.image_file_location(loaded, 0) is None  # memory $a has no data
    assert A.image_file_location(loaded, 1) is not None
    with pytest.raises(IndexError):
        A.image_file_location(loaded, 3)
    seg = roundtrip(compile_wat(WAT_SEGMENTED_GLOBAL), tmp_path / "b")
    assert A.image_file_location(seg, 0) is None  # Segmented
    # data_location works for any non-empty range of the data store
    init = seg.module.memory_initialization.initializers[1]
    path, off, n = seg.artifact.data_location(init.data)
    assert chunk_file_bytes(seg.artifact, off, n) == b"abc"
    # replacing the data after loading invalidates the file locations
    loaded.data = type(loaded.data)()
    assert A.image_file_location(loaded, 1) is None


def test_tunables_are_stored_and_checked(tmp_path):
    small = Tunables(static_memory_bound=512, static_memory_offset_guard_size=32 * MIB)
    tr = compile_wat(WAT_STATIC, small)
    with pytest.raises(ArtifactError, match="not what the tunables give"):
        save_artifact(tr, tmp_path / "x")  # default tunables do not match its plans
    assert not os.path.exists(tmp_path / "x")
    save_artifact(tr, tmp_path / "a", tunables=small)
    assert load_artifact(tmp_path / "a").tunables == small
    assert load_artifact(tmp_path / "a", small).module == tr.module
    fds = fd_count()
    with pytest.raises(ArtifactError, match="other tunables: static_memory_bound=512"):
        load_artifact(tmp_path / "a", Tunables())
    assert fd_count() == fds
    # a loaded translation remembers its tunables when saved again
    roundtrip(load_artifact(tmp_path / "a", small), tmp_path / "b")
    assert read_doc(tmp_path / "b")["tunables"]["static_memory_bound"] == 512


def test_save_refuses_inconsistent_translation(tmp_path):
    tr = rich_module()
    tr.module.memory_initialization = MemoryInitialization.Static(
        (None, StaticMemoryInitializer(0, range(0, 3 * PAGE)), None, None))  # spans two chunks
    with pytest.raises(ArtifactError, match="cannot save artifact: .*spans more than one"):
        save_artifact(tr, tmp_path / "a")
    tr = rich_module()
    tr.module.exports["bad"] = EntityIndex(ExternKind.FUNC, 99)
    with pytest.raises(ArtifactError, match=r"exports\['bad'\]"):
        save_artifact(tr, tmp_path / "a")
    assert os.listdir(tmp_path) == []  # no temporary directory left behind


def test_save_destination_rules(tmp_path):
    tr = compile_wat(WAT_STATIC)
    (tmp_path / "empty").mkdir()
    save_artifact(tr, tmp_path / "empty")  # an empty directory is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        save_artifact(tr, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    with pytest.raises(ArtifactError, match="existing artifact"):
        save_artifact(tr, tmp_path / "empty")
    old = load_artifact(tmp_path / "empty")
    old_bytes = bytes(old.data.chunks[0])
    tr2 = compile_wat(WAT_STATIC.replace("hello", "HELLO"))
    save_artifact(tr2, tmp_path / "empty", overwrite=True)
    # the old mapping is untouched (the file was replaced, not rewritten)
    assert bytes(old.data.chunks[0]) == old_bytes
    assert b"HELLO" in bytes(load_artifact(tmp_path / "empty").data.chunks[0])
    assert sorted(os.listdir(tmp_path)) == ["empty", "other"]


def test_cli_compile(tmp_path, capsys):
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(WAT_STATIC))
    out = tmp_path / "out"
    assert cli_main(["compile", str(wasm), "-o", str(out)]) == 0
    assert "wrote artifact" in capsys.readouterr().out
    assert_same(wasmenv.compile(wasm.read_bytes()), load_artifact(out))
    assert cli_main(["compile", str(wasm), "-o", str(out)]) == 1
    assert "existing artifact" in capsys.readouterr().err
    assert cli_main(["compile", str(wasm), "-o", str(out), "--force"]) == 0
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x05")
    assert cli_main(["compile", str(bad), "-o", str(tmp_path / "o2")]) == 1
    assert not (tmp_path / "o2").exists()


def test_typed_references_roundtrip(tmp_path):
    """Function-references types (RefType, table initializers)."""
    ft0 = FuncType((), ())
    ft1 = FuncType((RefType(False, ft0), FUNCREF), (RefType(False, "extern"),))
    ref0 = RefType(False, ft0)
    m = Module()
    m.types = [ModuleType(ft0), ModuleType(ft1)]
    m.functions = [FunctionType(0, 0), FunctionType(1)]
    m.num_escaped_funcs = 1
    m.globals = [Global(GlobalType(ref0), ConstExpr((("ref.func", 0),))),
                 Global(GlobalType(RefType(True, ft0)), ConstExpr((("ref.null", RefType(True, ft0)),))),
                 Global(GlobalType(FUNCREF), ConstExpr((("global.get", 0),)))]
    m.table_plans = [TablePlan.for_table(TableType(ref0, 4, init=ConstExpr((("ref.func", 0),))), T)]
    m.table_initialization = TableInitialization.Segments(
        (TableInitializer(0, None, 1, (0, ConstExpr((("global.get", 0),)))),))
    m.passive_elements = {1: ElementSegment("passive", ref0, (0,))}
    m.dropped_elements = (0,)
    m.num_elem_segments = 2
    tr = ModuleTranslation(m)
    loaded = roundtrip(tr, tmp_path / "a")
    assert loaded.module.types[1].func.params[0] == ref0
    doc = read_doc(tmp_path / "a")
    assert doc["module"]["globals"][0]["type"] == {"ref": {"params": [], "results": []}, "nullable": False}
    # (ref null func) has one spelling, "funcref": the other one is refused
    doc["module"]["globals"][2]["type"] = {"ref": "func", "nullable": True}
    write_doc(tmp_path / "a", doc)
    assert_bad(tmp_path / "a", "ValType|normalize")
    # a function of the wrong type in a typed segment
    m.types.append(ModuleType(FuncType((I32,), ())))
    m.functions.append(FunctionType(2, 1))
    m.num_escaped_funcs = 2
    m.passive_elements = {1: ElementSegment("passive", ref0, (2,))}
    with pytest.raises(ArtifactError, match="function index in a"):
        save_artifact(tr, tmp_path / "b")


# =====================================================================================
# Bad artifacts: a clear ArtifactError before anything is mapped, and no fd leaked
# =====================================================================================
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "art"
    save_artifact(rich_module(), path)
    return path


def assert_bad(path, match, **kw):
    fds = fd_count()
    with pytest.raises(ArtifactError, match=match):
        load_artifact(path, **kw)
    assert fd_count() == fds


def test_truncated_data_file(saved):
    data = saved / "data" / "data.ninja"
    size = data.stat().st_size
    os.truncate(data, size - 1)
    assert_bad(saved, r"data\.ninja has \d+ bytes, the metadata says \d+")
    os.truncate(data, 0)
    assert_bad(saved, "truncated")
    with open(data, "wb") as f:
        f.write(b"\0" * (size + 1))
    assert_bad(saved, "the metadata says")


def test_edited_metadata_fails_checksum(saved):
    doc = read_doc(saved)
    doc["module"]["memory_initialization"]["map"][1]["offset"] = PAGE
    write_doc(saved, doc, reseal=False)
    assert_bad(saved, "checksum mismatch")
    doc = read_doc(saved)
    doc["checksum"] = A.metadata_checksum(doc)
    write_doc(saved, doc, reseal=False)
    load_artifact(saved)  # the unedited document loads again
    text = open(meta_path(saved), encoding="utf-8").read()
    open(meta_path(saved), "w", encoding="utf-8").write(text.replace("rich", "poor"))
    assert_bad(saved, "checksum mismatch")


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["module"]["memory_initialization"]["map"][2].__setitem__("offset", 100),
     "not aligned to 4096"),
    (lambda d: d["data_chunks"][1].__setitem__("offset", 4097), "outside|overlaps|item"),
    (lambda d: d["module"]["exports"][0].__setitem__("index", 9), r"exports\['z'\]: func 9"),
    (lambda d: d["module"]["globals"][2]["init"][0].__setitem__(1, 7), "global.get 7"),
    (lambda d: d["module"]["globals"][5]["init"][0].__setitem__(1, "00"), "v128.const"),
    (lambda d: d["module"]["memories"][1].__setitem__("offset_guard_size", 4096),
     "not what the tunables give"),
    (lambda d: d["module"]["memories"][1].__setitem__("minimum", 11), r"out of range \[11"),
    (lambda d: d["module"]["table_initialization"]["tables"][1].append(99), "function index"),
    (lambda d: d["module"]["passive_data"][0].__setitem__("data", [0, 99]), "outside"),
    (lambda d: d["module"].__setitem__("functions", [[0, None]] * 4), "num_escaped_funcs"),
    (lambda d: d["module"].pop("tags"), "missing tags"),
    (lambda d: d["module"].__setitem__("surprise", 1), "unknown surprise"),
    (lambda d: d["tunables"].__setitem__("guard_before_linear_memory", 1), "true/false"),
    (lambda d: d["tunables"].__setitem__("dynamic_memory_growth_reserve", 5), "multiple of 4096"),
    (lambda d: d["store"].__setitem__("file_size", d["store"]["file_size"] + 1), "outside|metadata says"),
    (lambda d: d["store"].__setitem__("kind", "pickle"), "store.kind"),
    (lambda d: d.__setitem__("data_align", 3000), "power of two"),
])
def test_edited_and_resealed_metadata_is_validated(saved, edit, match):
    doc = read_doc(saved)
    edit(doc)
    write_doc(saved, doc)
    assert_bad(saved, match)


def test_other_format_or_version(saved):
    doc = read_doc(saved)
    doc["version"] = 3
    write_doc(saved, doc)
    assert_bad(saved, "format version 3, this wasmenv reads version 2 only")
    doc["version"] = True
    write_doc(saved, doc)
    assert_bad(saved, "format version True")
    doc["version"] = 2
    doc["format"] = "wasmtime-cwasm"
    write_doc(saved, doc)
    assert_bad(saved, "not a wasmenv artifact")


@pytest.mark.parametrize("rel", [
    A.METADATA_FILE, "data/data.ninja", "data/starts/data.ninja", "data/ends/data.ninja",
    "data/dtype.ninja", "data/shape.ninja", "data/ends/shape.ninja", "data/type.ninja", "data",
])
def test_missing_file(saved, rel):
    import shutil
    p = saved / rel
    shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert_bad(saved, "missing|not a wasmenv artifact")


def test_store_side_files_edited(saved):
    (saved / "data" / "dtype.ninja").write_bytes(b"int64")
    assert_bad(saved, "dtype")


def test_mmap_ninja_index_disagrees(saved):
    starts = saved / "data" / "starts" / "data.ninja"
    raw = bytearray(starts.read_bytes())
    raw[8:16] = struct.pack("<q", 1)
    starts.write_bytes(bytes(raw))
    assert_bad(saved, "mmap-ninja index")


def test_not_an_artifact(tmp_path):
    assert_bad(tmp_path / "nope", "does not exist")
    (tmp_path / "empty").mkdir()
    assert_bad(tmp_path / "empty", "not a wasmenv artifact")
    (tmp_path / "file").write_bytes(b"\0asm")
    assert_bad(tmp_path / "file", "not a directory")
    from mmap_ninja import RaggedMmap
    import numpy as np
    RaggedMmap.from_lists(str(tmp_path / "ragged"), [np.zeros(3, np.uint8)])
    assert_bad(tmp_path / "ragged", "not a wasmenv artifact")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / A.METADATA_FILE).mkdir()
    assert_bad(tmp_path / "d", "not a regular file|cannot read")


@pytest.mark.parametrize("content,match", [
    (b"\xff\xfe not utf-8", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"[]", "not a wasmenv artifact"),
    (b"null", "not a wasmenv artifact"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON|maximum recursion"),
    (b'{"format": "wasmenv-artifact", "format": "x"}', "duplicate key"),
    (b'{"format": "wasmenv-artifact", "version": NaN}', "NaN is not allowed"),
    (b'{"format": "wasmenv-artifact", "version": 2, "checksum": 5}', "checksum mismatch"),
    (b'{"format": "wasmenv-artifact", "version": 2, "x": "\\ud800"}', "cannot be checksummed"),
])
def test_metadata_garbage(saved, content, match):
    with open(meta_path(saved), "wb") as f:
        f.write(content)
    assert_bad(saved, match)


def test_verify_reads_and_checks_the_data(saved):
    data = saved / "data" / "data.ninja"
    raw = bytearray(data.read_bytes())
    raw[12] ^= 0xFF
    data.write_bytes(bytes(raw))
    loaded = load_artifact(saved)  # not read: the flip goes unnoticed without verify
    assert bytes(loaded.data.chunks[0][12:13]) != b"l"
    del loaded
    assert_bad(saved, "verify=True", verify=True)


def test_load_in_fresh_process_does_not_import_numpy(saved):
    import subprocess
    import sys
    code = ("import sys, wasmenv; tr = wasmenv.load_artifact(sys.argv[1]); "
            "assert bytes(tr.passive_data_view(1)) == b'hello'; "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(saved)], check=True,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_load_rejects_non_tunables(saved):
    with pytest.raises(TypeError):
        load_artifact(saved, tunables={"static_memory_bound": 1})


# =====================================================================================
# Random metadata edits: ArtifactError, or a translation that passes the same validation
# =====================================================================================
def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


_REPLACEMENTS = [None, True, False, 0, 1, -1, 2, 3, 7, 4095, 4096, 4097, 65536, (1 << 32) - 1,
                 1 << 32, (1 << 48), (1 << 64) - 1, 1 << 64, 1 << 70, 1.5, "", "x", "i32", "funcref",
                 "func", "static", "dynamic", "segmented", "func_table", "passive", "global.get",
                 "ref.func", "i32.add", [], {}, [0, 0], [0, 4096], ["i32.const", 0], [None],
                 {"expr": [["i32.const", 1]]}, {"kind": "static", "bound_pages": 1}]


_replacement = st.sampled_from(_REPLACEMENTS).map(lambda v: json.loads(json.dumps(v)))


@st.composite
def mutations(draw, doc):
    doc = json.loads(json.dumps(doc))
    # format/version/checksum edits are covered above; spend the examples on the rest
    paths = [p for p in _paths(doc) if p and p[0] not in ("format", "version", "checksum")]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        try:
            parent = _get(doc, path[:-1])
            key = path[-1]
            value = parent[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
        if not isinstance(parent, (dict, list)):
            continue
        action = draw(st.sampled_from(["replace", "nudge", "delete", "duplicate", "add_key"]))
        if action == "replace":
            parent[key] = draw(_replacement | st.integers(-(1 << 66), 1 << 66))
        elif action == "nudge" and type(value) is int:
            parent[key] = value + draw(st.sampled_from([-4096, -2, -1, 1, 2, 4096, 1 << 32]))
        elif action == "delete":
            del parent[key]
        elif action == "duplicate" and isinstance(value, list) and value:
            value.append(json.loads(json.dumps(value[draw(st.integers(0, len(value) - 1))])))
        elif action == "add_key" and isinstance(value, dict):
            value[draw(st.sampled_from(["extra", "kind", "items", "offset"]))] = draw(_replacement)
        else:
            parent[key] = draw(_replacement)
    return doc


def exercise(tr):
    """What a runtime does with a loaded translation: none of it may raise."""
    A.validate_translation(tr, tr.tunables)
    m = tr.module
    for store in (tr.data, tr.passive_data):
        for c in store.chunks:
            len(c)
    mi = m.memory_initialization
    inits = mi.map if isinstance(mi, MemoryInitialization.Static) else mi.initializers
    for init in inits:
        if init is not None:
            tr.data_view(init.data)
    for k in m.passive_data_map:
        tr.passive_data_view(k)
    mi.init_memory(InitMemory.CompileTime(m), lambda i, init: True)
    mi.init_memory(InitMemory.Runtime(lambda i: m.memory_plans[i].memory.minimum, lambda g: 0),
                   lambda i, init: True)
    for g in m.globals:
        if g.init is not None:
            g.init.evaluate(lambda i: 0)
    for k in range(len(m.memory_plans)):
        A.image_file_location(tr, k)
    list(m.imports())
    list(m.exported())
    if tr.code is not None:  # bodies lie within the code blob; validating may only refuse them
        for i, (start, end) in enumerate(tr.code.bodies):
            assert len(tr.code.body(i)) == end - start
        try:
            wasmenv.validate(tr)
        except wasmenv.DecodeError:
            pass


@pytest.fixture(scope="module")
def fuzz_artifacts(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    out = []
    for name, tr in (("rich_static", rich_module(True)), ("rich_segmented", rich_module(False)),
                     ("tables", compile_wat(WAT_TABLES)), ("multi", compile_wat(WAT_MULTI))):
        path = save_artifact(tr, base / name)
        out.append((path, read_doc(path)))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_metadata_edits_never_raise_anything_else(fuzz_artifacts, data):
    index = data.draw(st.integers(0, len(fuzz_artifacts) - 1))
    path, doc = fuzz_artifacts[index]
    mutated = data.draw(mutations(doc))
    reseal = data.draw(st.sampled_from([True, True, True, False]))
    A._BACKSTOP = False  # surface any exception that is not an ArtifactError
    try:
        write_doc(path, mutated, reseal=reseal)
        fds = fd_count()
        try:
            tr = load_artifact(path)
        except ArtifactError as exc:
            assert str(exc)
            assert fd_count() == fds
        else:
            exercise(tr)
            del tr
    finally:
        A._BACKSTOP = True
        write_doc(path, json.loads(json.dumps(doc)), reseal=False)


def test_backstop_is_on_by_default():
    assert A._BACKSTOP is True


# =====================================================================================
# Load does not read the image bytes
# =====================================================================================
def big_static(n):
    m = Module()
    m.memory_plans = [MemoryPlan.for_memory(MemoryType(n // 65536 + 1), T)]
    tr = ModuleTranslation(m)
    r = tr.data.push(b"\x5a" * n)
    m.memory_initialization = MemoryInitialization.Static((StaticMemoryInitializer(0, r),))
    tr.data_align = PAGE
    return tr


def smaps_rss_kib(path):
    """Sum of Rss over this process's mappings of ``path`` (kB), from /proc/self/smaps."""
    total = 0
    current = False
    with open("/proc/self/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                current = line.rstrip("\n").endswith(" " + path)
            elif current and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def read_chars():
    import psutil
    return psutil.Process().io_counters().read_chars


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_load_does_not_read_image_bytes(tmp_path):
    import psutil
    try:
        psutil.Process().io_counters()
    except (AttributeError, psutil.Error):
        pytest.skip("no per-process io counters")
    paths = {}
    for mib in (1, 64):
        paths[mib] = save_artifact(big_static(mib * MIB), tmp_path / f"a{mib}")
    load_artifact(paths[1])  # warm up imports
    cost = {}
    for mib in (1, 64):
        before = read_chars()
        tr = load_artifact(paths[mib])
        cost[mib] = read_chars() - before
        data_file = tr.artifact.data_file
        # mapped, but not one page of it is resident in this process yet
        assert smaps_rss_kib(data_file) == 0
        assert len(tr.data.chunks[0]) == mib * MIB
        assert tr.data.chunks[0][mib * MIB - 1] == 0x5A  # touch one byte...
        assert smaps_rss_kib(data_file) > 0  # ...and the measurement sees it
        del tr
    # read() traffic is metadata and index files only: independent of the data size
    assert cost[64] < cost[1] + 64 * 1024, cost
    assert cost[64] < 1 * MIB, cost
    # verify=True does read everything (the counter would see it)
    before = read_chars()
    load_artifact(paths[64], verify=True)
    assert read_chars() - before >= 64 * MIB


# =====================================================================================
# End to end with the runtime (images mapped from the artifact's data file)
# =====================================================================================
def _runtime():
    from runtime.engine import Engine
    from runtime.instance import Instance
    from runtime.module import Module as RtModule
    return Engine, Instance, RtModule


def test_runtime_instantiates_from_artifact(tmp_path):
    Engine, Instance, RtModule = _runtime()
    wasm = wasmtime.wat2wasm(WAT_STATIC)
    save_artifact(wasmenv.compile(wasm), tmp_path / "a")
    engine = Engine()
    with RtModule.from_artifact(engine, tmp_path / "a") as module:
        with Instance(module) as inst:
            mem = inst.memory(0)
            assert mem.read(100, 5) == b"hello" and mem.read(70000, 5) == b"world"
            mem.write(100, b"HELLO")  # private copy-on-write: the file does not change
            assert mem.read(100, 5) == b"HELLO"
            assert bytes(inst.passive_data(2)) == b"passive bytes"
    assert b"hello" in (tmp_path / "a" / "data" / "data.ninja").read_bytes()
    assert b"HELLO" not in (tmp_path / "a" / "data" / "data.ninja").read_bytes()
