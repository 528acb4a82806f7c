"""Bad artifacts: truncated, edited, resealed, foreign or missing files, and random metadata
edits; each is a clear ArtifactError before anything is mapped, with no fd leaked (or a
translation that passes the same validation)."""
import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wasmenv
from wasmenv import ArtifactError, InitMemory, MemoryInitialization, load_artifact, save_artifact
from tests.artifact_samples import (PAGE, WAT_MULTI, WAT_TABLES, assert_bad, compile_wat, meta_path,
                                    read_doc, rich_module, write_doc)
from tests.helpers import open_fd_count as fd_count
from wasmenv import artifact as A


# =====================================================================================
# Bad artifacts: a clear ArtifactError before anything is mapped, and no fd leaked
# =====================================================================================
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "art"
    save_artifact(rich_module(), path)
    return path


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
    (lambda d: d["module"]["functions"][2].__setitem__(1, "x"),
     r"module\.functions\[2\]\[1\]: expected an integer, got str"),
    (lambda d: d["module"]["functions"][3].__setitem__(0, True),
     r"module\.functions\[3\]\[0\]: expected an integer, got bool"),
    (lambda d: d["module"]["functions"][1].__setitem__(0, -1),
     r"module\.functions\[1\]\[0\]: -1 out of range"),
    (lambda d: d["module"]["functions"][0].append(0), r"module\.functions\[0\]: expected a list of 2"),
    (lambda d: d["module"]["dropped_elements"].append(1 << 64), r"dropped_elements\[\d+\]: \d+ out of range"),
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
