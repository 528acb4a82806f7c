"""Typed function references (Wasm 3.0, no GC) at module level: the RefType model and
subtyping, decoding of every form, and the spec runner's "unsupported" (GC only) category.
Their runtime side: import matching in test_linking.py, table initializers and non-null
checks in test_table.py, typed values and globals in test_values.py."""
import json
import pickle

import pytest

import wasmenv
from harness.wast import WastRunner, is_unsupported
from wasmenv import (ConstExpr, DecodeError, FuncType, GlobalType, RefType, TableType,
                     UnsupportedFeature, ValType, is_subtype)
from wasmenv.report import describe_type, render_text, summarize
from wasmenv.types import is_defaultable

from tests.helpers import (EXNREF, EXTERNREF, FUNCREF, I32, I64, NULL_T0, NULL_T1, NULLEXN, REF_EXN,
                           REF_EXTERN, REF_FUNC, REF_T0, REF_T1, T0, T1, decode, rejects, wat)
from wasmenv.encode import module, section, vec


# -- the model --------------------------------------------------------------------------------
def test_reftype_normalization_and_text():
    assert RefType.of(True, "func") is FUNCREF
    assert RefType.of(True, "extern") is EXTERNREF
    assert RefType.of(True, "exn") is EXNREF
    assert RefType.of(False, "func") == REF_FUNC
    assert RefType.of(True, T0) == NULL_T0
    for heap in ("func", "extern", "exn"):
        with pytest.raises(ValueError, match="use RefType.of"):
            RefType(True, heap)
    with pytest.raises(ValueError, match="unknown heap type"):
        RefType(False, "any")
    with pytest.raises(TypeError):
        RefType(False, 3)
    with pytest.raises(TypeError):
        RefType(1, "func")
    assert str(REF_FUNC) == "(ref func)" and str(NULLEXN) == "(ref null noexn)"
    assert str(NULL_T1) == f"(ref null {T1})"
    assert REF_T0.is_ref and FUNCREF.is_ref and not I32.is_ref
    # Structural: the same function type from two modules is the same heap type.
    assert RefType(False, FuncType((), ())) == REF_T0 and hash(RefType(False, FuncType((), ()))) == hash(REF_T0)
    assert pickle.loads(pickle.dumps(NULL_T1)) == NULL_T1


SUB = [
    (REF_T0, FUNCREF, True), (REF_T0, REF_FUNC, True), (REF_T0, NULL_T0, True),
    (NULL_T0, FUNCREF, True), (NULL_T0, REF_FUNC, False), (NULL_T0, REF_T0, False),
    (REF_FUNC, FUNCREF, True), (FUNCREF, REF_FUNC, False), (REF_FUNC, REF_T0, False),
    (FUNCREF, NULL_T0, False), (REF_T0, REF_T1, False), (NULL_T0, NULL_T1, False),
    (REF_EXTERN, EXTERNREF, True), (EXTERNREF, REF_EXTERN, False), (REF_EXTERN, FUNCREF, False),
    (REF_FUNC, EXTERNREF, False), (REF_EXN, EXNREF, True), (NULLEXN, EXNREF, True),
    (EXNREF, NULLEXN, False), (NULLEXN, FUNCREF, False), (REF_T0, REF_T0, True),
    (I32, I32, True), (I32, I64, False), (I32, FUNCREF, False), (FUNCREF, I32, False),
    (ValType.V128, ValType.V128, True),
]


@pytest.mark.parametrize("a,b,expected", SUB, ids=[f"{a}<:{b}" for a, b, _ in SUB])
def test_subtyping(a, b, expected):
    assert is_subtype(a, b) is expected


def test_defaultable():
    assert is_defaultable(I32) and is_defaultable(FUNCREF) and is_defaultable(NULL_T0)
    assert is_defaultable(NULLEXN)
    assert not is_defaultable(REF_FUNC) and not is_defaultable(REF_T0) and not is_defaultable(REF_EXN)


# -- decoding -----------------------------------------------------------------------------------
def test_decode_typed_globals_and_escapes():
    m = decode(wat("""(module (type $t (func)) (type $u (func (param i32)))
        (func $f (type $t)) (func $g (type $u))
        (global (export "a") (ref null $t) (ref.null $t))
        (global (export "b") (ref $u) (ref.func $g))
        (global (export "c") (ref func) (ref.func $f))
        (global (export "d") (mut (ref null func)) (ref.null func))
        (global (export "e") (ref null exn) (ref.null noexn))
        (global (export "f") nullexnref (ref.null noexn)))"""))
    types = [ty for _, _, ty in m.exported()]
    assert types == [GlobalType(NULL_T0), GlobalType(REF_T1), GlobalType(REF_FUNC),
                     GlobalType(FUNCREF, True), GlobalType(EXNREF), GlobalType(NULLEXN)]
    assert m.globals[0].init.ops == (("ref.null", NULL_T0),)
    assert m.globals[4].init.ops == (("ref.null", NULLEXN),)
    assert m.globals[1].init.func_ref() == 1
    assert m.escaped_functions() == [1, 0]


def test_decode_types_resolve_earlier_types_structurally():
    m = decode(wat("""(module (type $a (func (param i32)))
        (type $b (func (param (ref $a)) (result (ref null $a) (ref extern) (ref null exn))))
        (import "m" "f" (func (type $b))))"""))
    b = FuncType((REF_T1,), (NULL_T1, REF_EXTERN, EXNREF))
    assert m.types[1].func == b
    assert list(m.imports()) == [("m", "f", b)]


def test_decode_typed_imports():
    m = decode(wat("""(module (type $t (func))
        (import "m" "g" (global (ref $t)))
        (import "m" "h" (global (mut (ref null func))))
        (import "m" "t" (table 2 5 (ref null $t)))
        (import "m" "u" (table 1 (ref func))))"""))
    assert [ty for _, _, ty in m.imports()] == [
        GlobalType(REF_T0), GlobalType(FUNCREF, True), TableType(NULL_T0, 2, 5),
        TableType(REF_FUNC, 1)]


def test_decode_table_initializers():
    m = decode(wat("""(module (import "m" "g" (global $imp (ref func)))
        (func $f) (func $g)
        (table $a 3 (ref func) (ref.func $g))
        (table $b 2 funcref (global.get $imp))
        (table $c 1 funcref))"""))
    a, b, c = (p.table for p in m.table_plans)
    assert a.element == REF_FUNC and a.init == ConstExpr((("ref.func", 1),))
    assert b.element is FUNCREF and b.init.global_base() == 0
    assert c.init is None
    assert m.escaped_functions() == [1]  # ref.func in a table initializer escapes


def test_decode_table_initializer_binary_form():
    # 0x40 0x00 (ref func) min 1, init (ref.func 0); the spec's elem.wast bytes.
    body = (section(1, vec([b"\x60\x00\x00"])) + section(3, vec([b"\x00"]))
            + section(4, vec([b"\x40\x00\x64\x70\x00\x01\xd2\x00\x0b"]))
            + section(10, vec([b"\x02\x00\x0b"])))
    t = decode(module(body)).table_plans[0].table
    assert t == TableType(REF_FUNC, 1, init=ConstExpr((("ref.func", 0),)))


@pytest.mark.parametrize("text,match", [
    ("(module (table 1 (ref func)))", "non-defaultable element type"),
    ("(module (type $t (func)) (table 1 (ref $t)))", "non-defaultable element type"),
    ("(module (table 1 (ref func) (ref.null func)))", "type mismatch"),
    ("(module (table 1 funcref (ref.null extern)))", "type mismatch"),
    ("(module (type $t (func)) (type $u (func (param i32))) (func $f (type $t))"
     " (table 1 (ref null $u) (ref.func $f)))", "type mismatch"),
    ("(module (global $g funcref (ref.null func)) (table 1 funcref (global.get $g)))",
     "unknown global 0"),
    ("(module (type $t (func)) (type $u (func (param i32))) (func $f (type $t))"
     " (global (ref $u) (ref.func $f)))", "type mismatch"),
    ("(module (global (ref func) (ref.null func)))", "type mismatch"),
    ("(module (type $t (func)) (global externref (ref.null $t)))", "type mismatch"),
    ("(module (global (ref null noexn) (ref.null exn)))", "type mismatch"),
    ("(module (global (ref null 3) (ref.null 3)))", "unknown type 3"),
    ("(module (type $t (func (param (ref $u)))) (type $u (func)))", "unknown type 1"),
    ("(module (import \"a\" \"g\" (global $g externref)) (global (ref extern) (global.get $g)))",
     "type mismatch"),
])
def test_decode_invalid(text, match):
    e = rejects(wat(text), match)
    assert not isinstance(e, UnsupportedFeature)


def test_decode_element_segments():
    m = decode(wat("""(module (type $t (func)) (func $f (type $t)) (func $h (param i32))
        (table $tt 4 (ref null $t))
        (table $tf 4 (ref func) (ref.func $f))
        (elem (table $tt) (i32.const 0) (ref $t) (ref.func $f))
        (elem (table $tt) (i32.const 1) (ref null $t) (ref.null $t) (ref.func $f))
        (elem (table $tf) (i32.const 0) func $f $h)
        (elem (table $tf) (i32.const 2) (ref func) (ref.func $h))
        (elem $p (ref null $t) (ref.func $f) (ref.null $t))
        (elem declare (ref $t) (ref.func $f)))"""))
    segs = m.table_initialization.segments
    assert [(s.table_index, s.offset, s.elements) for s in segs] == [
        (0, 0, (0,)), (0, 1, (None, 0)), (1, 0, (0, 1)), (1, 2, (1,))]
    (idx, passive), = m.passive_elements.items()
    assert idx == 4 and passive.element == NULL_T0 and passive.items == (0, None)
    assert 5 in m.dropped_elements


@pytest.mark.parametrize("text", [
    # func-index segments have type (ref func): not a subtype of (ref null $t)
    "(module (type $t (func)) (func $f (type $t)) (table 1 (ref null $t)) (elem (i32.const 0) $f))",
    "(module (type $t (func)) (func $f (type $t)) (table 1 (ref null $t))"
    " (elem (table 0) (i32.const 0) funcref (ref.func $f)))",
    "(module (func $f) (table 1 (ref func) (ref.func $f)) (elem (i32.const 0) funcref (ref.func $f)))",
    "(module (type $t (func)) (elem (ref $t) (ref.null $t)))",
    "(module (type $t (func)) (func $f (param i32)) (elem (ref null $t) (ref.func $f)))",
])
def test_decode_element_type_mismatch(text):
    rejects(wat(text), "type mismatch")


def test_decode_heap_type_encodings():
    types = section(1, vec([b"\x60\x00\x00"] * 65))
    # type index 64 needs a two-byte s33 (0xC0 0x00)
    m = decode(module(types, section(6, vec([b"\x63\xc0\x00\x00\xd0\xc0\x00\x0b"]))))
    assert m.globals[0].type.content == NULL_T0
    rejects(module(types, section(6, vec([b"\x63\xc1\x00\x00\xd0\xc1\x00\x0b"]))), "unknown type 65")
    # a multi-byte *negative* s33 is not a heap type
    rejects(module(types, section(6, vec([b"\x63\xf0\x7f\x00\xd0\x70\x0b"]))), "invalid heap type")
    rejects(module(section(6, vec([b"\x63\x40\x00\xd0\x70\x0b"]))), "invalid heap type")
    rejects(module(section(6, vec([b"\x63"]))), "unexpected end")


@pytest.mark.parametrize("text,detail", [
    ("(module (type $t (func (param (ref $t)))))", "refers to itself"),
    ("(module (global (ref null nofunc) (ref.null nofunc)))", "nullfuncref"),
    ("(module (global (ref null noextern) (ref.null noextern)))", "nullexternref"),
    ("(module (global (ref null any) (ref.null any)))", "anyref"),
    ("(module (global (ref null eq) (ref.null eq)))", "eqref"),
    ("(module (global funcref (ref.null nofunc)))", "heap type nofunc"),
    ("(module (type (struct)))", "rec/sub/struct/array"),
])
def test_gc_forms_are_unsupported_gc(text, detail):
    e = rejects(wat(text), cls=UnsupportedFeature)
    assert e.feature == "gc" and detail in str(e)
    assert is_unsupported(e)


def test_only_gc_counts_as_unsupported():
    assert not is_unsupported(UnsupportedFeature("custom page sizes"))
    assert not is_unsupported(UnsupportedFeature("stack switching"))
    assert not is_unsupported(DecodeError("type mismatch"))
    assert is_unsupported(UnsupportedFeature("gc"))


def test_compile_and_report_with_typed_refs():
    tr = wasmenv.compile(wat("""(module (type $t (func))
        (import "m" "g" (global (ref null $t))) (func $f (type $t))
        (table 2 (ref func) (ref.func $f)))"""))
    s = summarize(tr)
    assert s["imports"][0]["type"] == {"kind": "global", "content": f"(ref null {T0})", "mutable": False}
    assert s["tables"][0]["element"] == "(ref func)" and s["tables"][0]["init"] == "ref.func 0"
    assert "init ref.func 0" in render_text(s)
    assert describe_type(TableType(FUNCREF, 1))["init"] is None
    json.dumps(s)


# -- the spec runner's "unsupported" category ---------------------------------------------------
def test_wast_runner_unsupported_is_gc_only(tmp_path, engine):
    files = {
        "gc.wasm": wat("(module (type (struct)) (global (export \"x\") i32 (i32.const 0)))"),
        "gc_invalid.wasm": wat("(module (type (struct)) (global i32 (i64.const 0)))"),
        "pages.wasm": module(section(5, vec([b"\x08\x01\x00"]))),  # custom page sizes
        "ok.wasm": wat("(module (func $f) (table 1 (ref func) (ref.func $f)))"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    commands = [
        {"type": "module", "line": 1, "name": "$G", "filename": "gc.wasm"},
        {"type": "register", "line": 2, "name": "$G", "as": "G"},
        {"type": "assert_return", "line": 3,
         "action": {"type": "get", "module": "$G", "field": "x"},
         "expected": [{"type": "i32", "value": "0"}]},
        {"type": "assert_invalid", "line": 4, "filename": "gc_invalid.wasm",
         "text": "type mismatch", "module_type": "binary"},
        {"type": "module", "line": 5, "filename": "pages.wasm"},
        {"type": "module", "line": 6, "filename": "ok.wasm"},
    ]
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"source_filename": "s.wast", "commands": commands}))
    result = WastRunner(engine).run_file(str(script))
    assert result.counts["unsupported"] == 4
    assert result.counts["failed"] == 1 and "custom page sizes" in result.failures[0]
    assert result.counts["passed"] == 1
    assert all(":5:" not in u for u in result.unsupported)
