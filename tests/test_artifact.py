"""Compiled artifacts, the API: save_artifact / load_artifact round trips (hand-built and
real modules, images and their alignment, tunables, destinations, typed references) and the
compile CLI (wasmenv/artifact/__init__.py).

The sample modules and metadata helpers are in tests/artifact_samples.py. Elsewhere: bad
and randomly edited artifacts, test_artifact_corruption.py; the metadata codec,
test_artifact_codec.py; the data store (and that load reads no image bytes),
test_artifact_store.py; instances from artifacts, test_artifact_runtime.py.
"""
import json
import mmap
import os

import pytest
import wasmtime

import wasmenv
from wasmenv import (ArtifactError, ConstExpr, ElementSegment, EntityIndex, ExternKind, FuncType,
                     FunctionType, Global, GlobalType, MemoryInitialization, MemoryPlan, MemoryType,
                     Module, ModuleTranslation, ModuleType, RefType, StaticMemoryInitializer,
                     TableInitialization, TableInitializer, TablePlan, TableType, Tunables,
                     load_artifact, save_artifact)
from tests.artifact_samples import (EXTERNREF, FUNCREF, I32, MIB, PAGE, T, WAT_MEMORY64, WAT_MULTI,
                                    WAT_NO_DATA, WAT_SEGMENTED_GLOBAL, WAT_SHARED, WAT_SPARSE,
                                    WAT_STATIC, WAT_TABLES, assert_bad, compile_wat, meta_path,
                                    read_doc, rich_module, write_doc)
from tests.helpers import open_fd_count as fd_count
from wasmenv import artifact as A
from wasmenv.cli import main as cli_main


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


def chunk_file_bytes(info, offset, n):
    with open(info.data_file, "rb") as f:
        f.seek(offset)
        return f.read(n)


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


@pytest.mark.parametrize("functions,escaped,match", [
    ([FunctionType(0), "f"], 0, r"module\.functions\[1\]: expected FunctionType"),
    ([FunctionType(0), FunctionType(1)], 0, r"module\.functions\[1\]\.signature: 1 out of range \[0, 0\]"),
    ([FunctionType(True)], 0, r"module\.functions\[0\]\.signature: expected an integer, got bool"),
    ([FunctionType(0, 0), FunctionType(0, 0)], 2, r"module\.functions\[1\]\.anyfunc: anyfunc index 0 used twice"),
    ([FunctionType(0, 1)], 2, r"module\.num_escaped_funcs: 2 but 1 functions escape"),
    ([FunctionType(0)] * 1000 + [FunctionType(0, 3)], 1, r"module\.functions\[1000\]\.anyfunc: 3 out of range"),
])
def test_function_rule_names_the_bad_entry(functions, escaped, match):
    """Each function entry is checked (the many plain ones inline, the rest by the full rule)
    and a bad one is named by its path."""
    m = Module()
    m.types = [ModuleType(FuncType((), ()))]
    m.functions = list(functions)
    m.num_escaped_funcs = escaped
    with pytest.raises(ArtifactError, match=match):
        A.validate_translation(ModuleTranslation(m))
    m.functions = [FunctionType(0)] * 1000 + [FunctionType(0, 0)]
    m.num_escaped_funcs = 1
    A.validate_translation(ModuleTranslation(m))  # the plain and escaping ones, all valid
