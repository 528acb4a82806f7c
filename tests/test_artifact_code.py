"""Artifacts keep the code section (wasmenv/artifact, runtime/module.py): bodies come back
byte-identical and zero-copy, and ``runtime.Module`` validates them exactly as a .wasm's."""
import gc
import json
import os
import pathlib
import pickle

import psutil
import pytest
import wasmtime

import runtime
import wasmenv
from harness.corpus import SUPPORTED_SMITH_ARGS, smith_modules, wasm_tools
from harness.wast import read_uleb
from tests.helpers import open_fd_count, section_spans, wat
from wasmenv import ArtifactError, DecodeError, UnsupportedFeature, load_artifact, save_artifact
from wasmenv import artifact as A
from wasmenv.encode import section, uleb

ROOT = pathlib.Path(__file__).resolve().parent.parent
MIB = 1 << 20

# Function 1 is `i32.const 1; drop` then `end`: its byte 1 (after the locals count) is an
# instruction, which the tamper tests replace.
WAT_CODE = """(module
  (import "env" "f" (func $imported))
  (memory 1) (data (i32.const 8) "data")
  (table 2 funcref) (elem (i32.const 0) $a) (elem funcref (ref.func $b)) (elem func $a)
  (func $a (export "a") (result i32) (i32.const 7))
  (func $b (i32.const 1) (drop))
  (func $c (param i32) (result i32) (local i64) (i32.add (local.get 0) (i32.const 3)))
  (func $d (memory.init 1 (i32.const 0) (i32.const 0) (i32.const 0)) (data.drop 1))
  (data "passive"))"""


# -- helpers -------------------------------------------------------------------------------
def code_bodies(wasm: bytes):
    """``(start, end)`` in ``wasm`` of every body of its code section (an independent walk)."""
    spans = [s for s in section_spans(wasm) if s[0] == 10]
    if not spans:
        return []
    _, start, end = spans[0]
    _, pos = read_uleb(wasm, start + 1)  # the section size
    count, pos = read_uleb(wasm, pos)
    out = []
    for _ in range(count):
        size, pos = read_uleb(wasm, pos)
        out.append((pos, pos + size))
        pos += size
    assert pos == end
    return out


def read_doc(path):
    return json.loads((pathlib.Path(path) / A.METADATA_FILE).read_text(encoding="utf-8"))


def write_doc(path, doc):
    doc["checksum"] = A.metadata_checksum(doc)
    (pathlib.Path(path) / A.METADATA_FILE).write_text(json.dumps(doc), encoding="utf-8")


def data_file(path):
    return pathlib.Path(path) / A.DATA_FILE


def mapped(path) -> bool:
    """True if this process maps the artifact's data file."""
    name = str(data_file(path))
    with open("/proc/self/maps") as f:
        return any(line.rstrip("\n").endswith(" " + name) for line in f)


def assert_same_code(wasm: bytes, loaded):
    """Every body of ``loaded`` is the .wasm's, byte for byte, and a view of the mapping."""
    bodies = code_bodies(wasm)
    code = loaded.code
    assert code is not None and len(code.bodies) == len(bodies)
    for i, (start, end) in enumerate(bodies):
        body = code.body(i)
        assert bytes(body) == wasm[start:end], i
        assert body.obj is loaded.artifact.mapping  # zero-copy: a view of the mapped file
        assert code.module_offset + code.bodies[i][0] == start  # where it was in the .wasm
    if bodies:
        assert code.buffer.obj is loaded.artifact.mapping
        info = loaded.artifact
        with open(info.data_file, "rb") as f:
            f.seek(info.code_offset)
            assert f.read(len(code.buffer)) == bytes(code.buffer)
    original = wasmenv.compile(wasm).code
    assert (code.elem_types, code.data_count) == (original.elem_types, original.data_count)


def engine():
    return runtime.Engine()


@pytest.fixture
def saved(tmp_path):
    wasm = wat(WAT_CODE)
    return wasm, save_artifact(wasmenv.compile(wasm), tmp_path / "art")


def tamper_code(path, wasm, func, at, byte):
    """Set byte ``at`` of defined function ``func``'s body, in the artifact's code blob and
    in a copy of the .wasm; return the tampered .wasm."""
    doc = read_doc(path)
    code = doc["code"]
    rel = code["bodies"][2 * func] + at
    raw = bytearray(data_file(path).read_bytes())
    raw[code["chunk"]["offset"] + rel] = byte
    data_file(path).write_bytes(bytes(raw))
    bad = bytearray(wasm)
    bad[code["module_offset"] + rel] = byte
    return bytes(bad)


def refused(path, cls, match=None, via=None):
    """``runtime.Module`` (or ``via``) on artifact ``path`` raises ``cls``, leaving no fd and
    no mapping behind while the error is alive; return the error."""
    make = via or (lambda: runtime.Module(engine(), path))
    gc.collect()  # earlier tests' garbage must not close its fds in the middle of the count
    fds = open_fd_count()
    with pytest.raises(cls, match=match) as info:
        make()
    assert open_fd_count() == fds
    assert not mapped(path)
    return info.value


# =====================================================================================
# Round trips: every body byte-identical, zero-copy
# =====================================================================================
EXAMPLES = sorted((ROOT / "examples").glob("*.wat"))
assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_keep_every_body(tmp_path, example):
    wasm = bytes(wasmtime.wat2wasm(example.read_text()))
    loaded = load_artifact(save_artifact(wasmenv.compile(wasm), tmp_path / "a"))
    assert_same_code(wasm, loaded)
    wasmenv.validate(loaded)
    with runtime.Module(engine(), tmp_path / "a") as module:
        assert module.translation.code.bodies == loaded.code.bodies


def test_hand_written_module_keeps_bodies_elem_types_and_data_count(tmp_path, saved):
    wasm, path = saved
    loaded = load_artifact(path)
    assert_same_code(wasm, loaded)
    assert loaded.code.data_count == 2 and len(loaded.code.elem_types) == 3
    assert loaded.code.elem_types[2] == wasmenv.RefType(False, "func")  # `elem func $a`
    assert loaded.wasm is None
    # re-saving a loaded translation gives the same artifact, bytes included
    again = save_artifact(loaded, tmp_path / "again")
    assert read_doc(again) == read_doc(path)
    assert data_file(again).read_bytes() == data_file(path).read_bytes()
    assert_same_code(wasm, load_artifact(again))


@pytest.fixture(scope="module")
def smith_corpus():
    if not wasm_tools():
        pytest.fail("wasm-tools is needed (it is installed in the venv by scripts/test)")
    return smith_modules(24, seed=11, seed_bytes=8192, min_funcs=2, **SUPPORTED_SMITH_ARGS)


def test_smith_modules_keep_every_body(tmp_path, smith_corpus):
    with_code = 0
    for k, wasm in enumerate(smith_corpus):
        tr = wasmenv.compile(wasm)
        wasmenv.validate(tr)
        loaded = load_artifact(save_artifact(tr, tmp_path / f"s{k}"))
        assert_same_code(wasm, loaded)
        wasmenv.validate(loaded)
        with_code += len(loaded.code.bodies) > 0
    assert with_code >= 10, with_code


def test_a_module_without_functions_has_an_empty_code_section(tmp_path):
    loaded = load_artifact(save_artifact(wasmenv.compile(wat("(module (memory 1))")), tmp_path / "a"))
    assert loaded.code.bodies == () and len(loaded.code.buffer) == 0
    assert loaded.artifact.data_file is None  # no bytes at all: no store
    wasmenv.validate(loaded)
    runtime.Module(engine(), tmp_path / "a").close()


# =====================================================================================
# Code from an artifact is validated at Module(), exactly like a .wasm's
# =====================================================================================
@pytest.mark.parametrize("byte,cls,match", [
    (0x6A, DecodeError, "function 2: type mismatch"),      # i32.add on an empty stack
    (0xFF, DecodeError, "function 2: illegal opcode 0xff"),
    (0xFB, UnsupportedFeature, "gc"),                       # a GC prefix
])
def test_a_tampered_body_is_refused_at_module_like_the_wasm(saved, byte, cls, match):
    wasm, path = saved
    bad_wasm = tamper_code(path, wasm, 1, 1, byte)  # defined function 1 = function index 2
    with pytest.raises(cls, match=match) as expected:
        runtime.Module(engine(), bad_wasm)
    loaded = load_artifact(path)  # loading reads no code: it succeeds...
    with pytest.raises(cls, match=match):
        wasmenv.validate(loaded)  # ...and validation finds what it would in the .wasm
    del loaded
    for via in (None, lambda: runtime.Module.from_artifact(engine(), path)):
        err = refused(path, cls, match, via)
        # the same error as for the .wasm: the offset is where the byte is in the .wasm
        assert str(err) == str(expected.value)
        assert err.offset == expected.value.offset
        assert type(pickle.loads(pickle.dumps(err))) is cls
    if cls is UnsupportedFeature:
        assert err.feature == "gc"
    with pytest.raises(ArtifactError, match="verify=True"):
        load_artifact(path, verify=True)  # the data file's hash does see the change


def test_validation_offsets_are_module_offsets(saved):
    """The docstring's promise: offset = code.module_offset + offset in the code blob."""
    wasm, path = saved
    tamper_code(path, wasm, 2, 3, 0x6A)  # function $c: its first instruction, past its locals
    loaded = load_artifact(path)
    with pytest.raises(DecodeError) as info:
        wasmenv.validate(loaded)
    rel = read_doc(path)["code"]["bodies"][4] + 3
    assert info.value.offset == loaded.code.module_offset + rel
    assert "function 3:" in str(info.value)


# =====================================================================================
# Bad code metadata and blobs: ArtifactError at load, nothing left open
# =====================================================================================
def assert_bad(path, match):
    err = refused(path, ArtifactError, match, lambda: load_artifact(path))
    assert str(err)


def edit(path, fn):
    doc = read_doc(path)
    fn(doc["code"])
    write_doc(path, doc)


@pytest.mark.parametrize("change,match", [
    (lambda c: c["bodies"].__setitem__(-1, c["chunk"]["length"] + 1),
     r"code\.bodies\[3\]: body of function 4 at \[\d+, \d+\) is outside the \d+ bytes of code"),
    (lambda c: c["bodies"].__setitem__(2, c["bodies"][1] - 1), r"code\.bodies\[1\].*overlaps"),
    (lambda c: c["bodies"].__setitem__(0, c["bodies"][1] + 1), r"code\.bodies\[0\]"),
    (lambda c: c.__setitem__("bodies", c["bodies"][:-2]), "3 bodies for 4 defined functions"),
    (lambda c: c["bodies"].append(5), "pairs of integers"),
    (lambda c: c["bodies"].__setitem__(0, -1), r"code\.bodies\[0\]: expected an integer"),
    (lambda c: c["chunk"].__setitem__("length", c["chunk"]["length"] - 1), "code.chunk|outside"),
    (lambda c: c["chunk"].__setitem__("offset", c["chunk"]["offset"] + 1), "code.chunk|outside"),
    (lambda c: c.__setitem__("data_count", 3), r"code\.data_count: 3 out of range \[2, 2\]"),
    (lambda c: c.__setitem__("elem_types", c["elem_types"][:2]), "2 types for 3 element segments"),
    (lambda c: c["elem_types"].__setitem__(1, "externref"),
     r"code\.elem_types\[1\]: externref does not fit the items of element segment 1"),
    (lambda c: c["elem_types"].__setitem__(0, "i32"), r"code\.elem_types\[0\]: expected a reference"),
    (lambda c: c.pop("module_offset"), "missing module_offset"),
])
def test_edited_code_metadata_is_an_artifact_error(saved, change, match):
    _, path = saved
    edit(path, change)
    assert_bad(path, match)


def test_an_artifact_with_only_code_truncated_is_refused(tmp_path):
    """Code is the last item of the data file: truncating the file cuts a body."""
    wasm = wat('(module (func (export "f") (result i32) (i32.const 42)))')
    path = save_artifact(wasmenv.compile(wasm), tmp_path / "a")
    size = data_file(path).stat().st_size
    start, end = code_bodies(wasm)[0]
    assert size == end - start  # the data file is the one body
    os.truncate(data_file(path), size - 1)
    assert_bad(path, r"data\.ninja has \d+ bytes, the metadata says \d+")
    os.truncate(data_file(path), 0)
    assert_bad(path, "truncated")
    refused(path, ArtifactError, "truncated")


def test_the_code_blob_obeys_the_data_file_rules(saved):
    """The code lives in the data file: a symbolic link or a file others can write is refused."""
    _, path = saved
    os.chmod(data_file(path), 0o666)
    assert_bad(path, "writable by others")
    os.chmod(data_file(path), 0o644)
    target = data_file(path).with_name("real.ninja")
    os.rename(data_file(path), target)
    os.symlink(target, data_file(path))
    assert_bad(path, "symbolic link")


def test_format_version_1_is_refused(saved):
    _, path = saved
    doc = read_doc(path)
    doc["version"] = 1
    del doc["code"]
    write_doc(path, doc)
    assert_bad(path, r"format version 1, this wasmenv reads version 2 only \(version 1 artifacts "
                     r"do not keep the function bodies.*recompile the module\)")
    refused(path, ArtifactError, "format version 1")


def test_an_artifact_saved_without_code_loads_but_cannot_make_a_module(tmp_path):
    tr = wasmenv.compile(wat(WAT_CODE))
    tr.code = None  # e.g. a hand-built translation
    path = save_artifact(tr, tmp_path / "a")
    assert read_doc(path)["code"] is None
    loaded = load_artifact(path)
    assert loaded.code is None and loaded.artifact.code_offset is None
    with pytest.raises(ValueError, match="does not carry its code section"):
        wasmenv.validate(loaded)
    del loaded
    refused(path, ArtifactError, "no code section .*cannot run; recompile it from the .wasm")
    # without defined functions there is nothing to run: such a module loads
    tr = wasmenv.compile(wat("(module (memory 1) (data (i32.const 0) \"x\"))"))
    tr.code = None
    runtime.Module(engine(), save_artifact(tr, tmp_path / "b")).close()


def test_saving_checks_the_code_section(tmp_path):
    tr = wasmenv.compile(wat(WAT_CODE))
    tr.code = tr.code._replace(bodies=tr.code.bodies[:-1])
    with pytest.raises(ArtifactError, match="cannot save artifact: code.bodies: 3 bodies for 4"):
        save_artifact(tr, tmp_path / "a")
    assert not os.path.exists(tmp_path / "a")


# =====================================================================================
# Loading reads no code; Module() does
# =====================================================================================
def wasm_with_code(byte_len: int, funcs: int = 64) -> bytes:
    """A module with ``funcs`` functions whose bodies total about ``byte_len`` bytes."""
    per = max(byte_len // funcs, 4)
    body = b"\x00" + b"\x41\x00\x1a" * ((per - 2) // 3) + b"\x0b"  # i32.const 0; drop; ...
    code = uleb(funcs) + (uleb(len(body)) + body) * funcs
    return (b"\0asm\x01\0\0\0" + section(1, b"\x01\x60\x00\x00")
            + section(3, uleb(funcs) + b"\x00" * funcs) + section(10, code))


def rss_kib(path):
    """Rss (kB) of this process's mappings of ``path``."""
    return sum(m.rss for m in psutil.Process().memory_maps(grouped=False) if m.path == path) // 1024


def test_load_does_not_read_the_code(tmp_path):
    paths = {}
    for mib in (1, 16):
        paths[mib] = save_artifact(wasmenv.compile(wasm_with_code(mib * MIB)), tmp_path / f"a{mib}")
    load_artifact(paths[1])  # warm up
    cost = {}
    proc = psutil.Process()
    for mib in (1, 16):
        before = proc.io_counters().read_chars
        tr = load_artifact(paths[mib])
        cost[mib] = proc.io_counters().read_chars - before
        assert len(tr.code.buffer) >= mib * MIB - 64 * 64
        assert rss_kib(tr.artifact.data_file) == 0  # mapped, not one page resident yet
        del tr
    assert cost[16] < cost[1] + 64 * 1024, cost  # metadata and index files only
    # validation at Module() is what reads the bodies
    with runtime.Module(engine(), paths[1]) as module:
        assert rss_kib(module.translation.artifact.data_file) >= 1024 - 8


def test_a_null_item_needs_a_nullable_segment_type():
    """Code is validated against the segment types: a (ref func) segment must hold no null
    (``table.init`` would copy it into a non-nullable table)."""
    m = wasmenv.Module()
    m.num_elem_segments = 1
    non_null = wasmenv.RefType(False, "func")
    m.passive_elements = {0: wasmenv.ElementSegment("passive", non_null, (None,))}
    tr = wasmenv.ModuleTranslation(m)
    with pytest.raises(ArtifactError, match=r"passive_elements\[0\]\.items\[0\]: null item in a "
                                            r"\(ref func\) segment"):
        A.validate_translation(tr)
    m.passive_elements = {0: wasmenv.ElementSegment("passive", wasmenv.ValType.FUNCREF, (None,))}
    A.validate_translation(tr)
    tr.code = wasmenv.CodeSection((), (non_null,), None, memoryview(b""))
    with pytest.raises(ArtifactError, match=r"code\.elem_types\[0\]: \(ref func\) does not fit "
                                            r"the items of element segment 0: null item"):
        A.validate_translation(tr)
