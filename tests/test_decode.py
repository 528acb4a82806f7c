"""Unit tests of the binary decoder (wasmenv.decode) and the Reader (wasmenv.reader)."""
import dataclasses
import inspect
import mmap
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wasmenv
from wasmenv import (ConstExpr, DecodeError, ElementSegment, EntityIndex, ExternKind, FuncType,
                     GlobalType, MemoryInitializer, MemoryStyle, MemoryType, TableInitializer,
                     TableType, TagType, Tunables, UnsupportedFeature, ValType)
from wasmenv.reader import Reader

from tests.helpers import decode, rejects, wat
from wasmenv.encode import module, name, section, sleb, uleb, vec

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF, EXNREF = ValType.FUNCREF, ValType.EXTERNREF, ValType.EXNREF
FUNC, TABLE, MEMORY, GLOBAL, TAG = (ExternKind.FUNC, ExternKind.TABLE, ExternKind.MEMORY,
                                    ExternKind.GLOBAL, ExternKind.TAG)


# Handy binary fragments -------------------------------------------------------------------
TYPE_VOID = section(1, vec([b"\x60\x00\x00"]))              # type 0: [] -> []
FUNC1 = section(3, vec([uleb(0)]))                          # one function of type 0
CODE1 = section(10, vec([b"\x02\x00\x0b"]))                 # its body: no locals, end
MEM1 = section(5, vec([b"\x00\x01"]))                       # memory 0: min 1
TABLE_FUNC = section(4, vec([b"\x70\x00\x0a"]))             # table 0: funcref min 10


def i32c(v):
    return b"\x41" + sleb(v) + b"\x0b"


def i64c(v):
    return b"\x42" + sleb(v) + b"\x0b"


def data_active(offset_expr, payload, memory=None):
    if memory is None:
        return b"\x00" + offset_expr + uleb(len(payload)) + payload
    return b"\x02" + uleb(memory) + offset_expr + uleb(len(payload)) + payload


# -- header ----------------------------------------------------------------------------------
def test_minimal_module():
    m = decode(b"\0asm\x01\0\0\0")
    assert m.types == [] and m.functions == [] and m.exports == {} and m.initializers == []
    assert m.memory_initialization.is_segmented()
    assert m.memory_initialization.initializers == ()
    assert m.table_initialization.segments == ()
    assert m.name is None and m.start_func is None


@pytest.mark.parametrize("data,match", [
    (b"", "magic header"),
    (b"\0as", "magic header"),
    (b"\0asn\x01\0\0\0", "magic header"),
    (b"\0asm", "unexpected end"),
    (b"\0asm\x01\0\0", "unexpected end"),
    (b"\0asm\x02\0\0\0", "unknown binary version"),
    (b"\0asm\x01\0\x02\0", "unknown binary version"),
])
def test_bad_header(data, match):
    e = rejects(data, match)
    assert e.offset is not None


def test_component_is_unsupported():
    e = rejects(b"\0asm\x0d\0\x01\0", cls=UnsupportedFeature)
    assert e.feature == "component model"
    assert isinstance(e, DecodeError)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_input_types(kind):
    w = wat('(module (memory 1) (data (i32.const 5) "hi"))')
    tr = wasmenv.translate(kind(w))
    init, = tr.module.memory_initialization.initializers
    assert bytes(tr.data_view(init.data)) == b"hi" and init.offset == 5


def test_mmap_input(tmp_path):
    w = wat('(module (memory 1) (data (i32.const 7) "mapped"))')
    path = tmp_path / "m.wasm"
    path.write_bytes(w)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        tr = wasmenv.translate(mm)
        init, = tr.module.memory_initialization.initializers
        view = tr.data_view(init.data)
        assert bytes(view) == b"mapped" and view.obj is mm
        del view, init, tr
        import gc
        gc.collect()  # release exports so the mmap can close


def test_non_buffer_input_is_type_error():
    with pytest.raises(TypeError):
        wasmenv.translate("(module)")


# -- sections: order, ids, sizes -----------------------------------------------------------
def test_section_out_of_order():
    e = rejects(module(MEM1, TYPE_VOID), "out of order")
    assert e.section == "type" and e.offset == 8 + len(MEM1)


def test_duplicate_section():
    rejects(module(MEM1, MEM1), "duplicate memory section")


def test_tag_section_between_memory_and_global():
    tag = section(13, vec([b"\x00\x00"]))
    glob = section(6, vec([b"\x7f\x00" + i32c(1)]))
    m = decode(module(TYPE_VOID, MEM1, tag, glob))
    assert len(m.tags) == 1 and len(m.globals) == 1
    rejects(module(TYPE_VOID, MEM1, glob, tag), "out of order")
    rejects(module(TYPE_VOID, tag, MEM1), "out of order")


def test_data_count_sits_between_element_and_code():
    dc = section(12, uleb(0))
    decode(module(TYPE_VOID, FUNC1, dc, CODE1))
    rejects(module(TYPE_VOID, FUNC1, CODE1, dc), "out of order")


def test_custom_sections_anywhere():
    custom = section(0, name("anything") + b"\xff\xfe")
    m = decode(module(custom, TYPE_VOID, custom, FUNC1, custom, CODE1, custom))
    assert len(m.functions) == 1


def test_unknown_section_id():
    rejects(module(section(14, b"")), "malformed section id")
    rejects(module(b"\x80\x00"), "malformed section id")


def test_section_size_past_end():
    e = rejects(module(b"\x01\x05\x01\x60"), "unexpected end")
    assert e.offset == 9


def test_section_size_mismatch_trailing_bytes():
    rejects(module(section(5, vec([b"\x00\x01"]) + b"\x00")), "section size mismatch")


def test_section_content_short():
    # memory section claims one entry but its body ends inside it
    rejects(module(section(5, b"\x01\x01\x05")), "unexpected end")


def test_custom_section_name_must_be_utf8():
    rejects(module(section(0, b"\x02\xc3\x28")), "malformed UTF-8")
    rejects(module(section(0, b"\x05ab")), "length out of bounds")


# -- types -----------------------------------------------------------------------------------
def test_types_multi_value_and_all_valtypes():
    m = decode(wat("""(module
      (type (func (param i32 i64 f32 f64 v128 funcref externref) (result i32 i64 f64)))
      (type (func (result exnref))))"""))
    assert m.types[0].func == FuncType((I32, I64, F32, F64, V128, FUNCREF, EXTERNREF),
                                       (I32, I64, F64))
    assert m.types[1].unwrap_function() == FuncType((), (EXNREF,))


@pytest.mark.parametrize("form,feature", [
    (b"\x4e\x00", "gc"), (b"\x50\x00\x60\x00\x00", "gc"), (b"\x4f\x00\x60\x00\x00", "gc"),
    (b"\x5f\x00", "gc"), (b"\x5e\x7f\x00", "gc"), (b"\x5d\x00", "stack switching"),
])
def test_gc_type_forms_unsupported(form, feature):
    e = rejects(module(section(1, vec([form]))), cls=UnsupportedFeature)
    assert e.feature == feature and e.section == "type"


@pytest.mark.parametrize("vt,feature", [
    (b"\x63\x00", "gc"),  # type 0 referring to itself: needs GC's recursion groups
    (b"\x64\x73", "gc"), (b"\x63\x72", "gc"), (b"\x63\x6e", "gc"),  # nofunc, noextern, any
    (b"\x6e", "gc"), (b"\x6d", "gc"), (b"\x6c", "gc"), (b"\x71", "gc"), (b"\x73", "gc"),
    (b"\x68", "stack switching"), (b"\x63\x68", "stack switching"),
])
def test_unsupported_value_types(vt, feature):
    e = rejects(module(section(1, vec([b"\x60\x01" + vt + b"\x00"]))), cls=UnsupportedFeature)
    assert e.feature == feature


def test_invalid_value_type_and_type_form():
    rejects(module(section(1, vec([b"\x60\x01\x40\x00"]))), "invalid value type")
    rejects(module(section(1, vec([b"\x61\x00\x00"]))), "invalid leading byte")


def test_too_many_params():
    body = b"\x60" + uleb(1001) + b"\x7f" * 1001 + b"\x00"
    rejects(module(section(1, vec([body]))), "params size is out of bounds")


# -- imports and index spaces ---------------------------------------------------------------
IMPORTS_WAT = """(module
  (type $v (func))
  (type $ii (func (param i32) (result i32)))
  (import "env" "f0" (func (type $ii)))
  (import "env" "mem" (memory 1 2))
  (import "env" "g0" (global (mut i64)))
  (import "env" "tab" (table 3 externref))
  (import "env" "f1" (func (type $v)))
  (import "env" "mem64" (memory i64 5))
  (import "env" "shm" (memory 1 4 shared))
  (import "env" "t64" (table i64 1 7 funcref))
  (import "env" "g1" (global f32))
  (import "env" "tag" (tag (param i64 f64)))
  (func $own (type $v))
  (memory 3)
  (global $mine i32 (i32.const 9))
  (table 1 funcref)
  (tag $t2 (param i32))
)"""


def test_imports_and_index_spaces():
    m = decode(wat(IMPORTS_WAT))
    imports = list(m.imports())
    assert [(a, b) for a, b, _ in imports] == [
        ("env", "f0"), ("env", "mem"), ("env", "g0"), ("env", "tab"), ("env", "f1"),
        ("env", "mem64"), ("env", "shm"), ("env", "t64"), ("env", "g1"), ("env", "tag")]
    types = [t for _, _, t in imports]
    assert types[0] == FuncType((I32,), (I32,))
    assert types[1] == MemoryType(1, 2)
    assert types[2] == GlobalType(I64, True)
    assert types[3] == TableType(EXTERNREF, 3, None)
    assert types[4] == FuncType((), ())
    assert types[5] == MemoryType(5, None, memory64=True)
    assert types[6] == MemoryType(1, 4, shared=True)
    assert types[7] == TableType(FUNCREF, 1, 7, table64=True)
    assert types[8] == GlobalType(F32, False)
    assert types[9] == TagType(2, FuncType((I64, F64), ()))
    assert [i.index for i in m.initializers] == [
        EntityIndex(FUNC, 0), EntityIndex(MEMORY, 0), EntityIndex(GLOBAL, 0), EntityIndex(TABLE, 0),
        EntityIndex(FUNC, 1), EntityIndex(MEMORY, 1), EntityIndex(MEMORY, 2), EntityIndex(TABLE, 1),
        EntityIndex(GLOBAL, 1), EntityIndex(TAG, 0)]
    assert (m.num_imported_funcs, m.num_imported_memories, m.num_imported_globals,
            m.num_imported_tables, m.num_imported_tags) == (2, 3, 2, 2, 1)
    assert len(m.functions) == 3 and m.functions[2].signature == 0
    assert m.func_index(0) == 2 and m.defined_func_index(2) == 0 and m.defined_func_index(1) is None
    assert m.memory_plans[3].memory == MemoryType(3) and m.defined_memory_index(3) == 0
    assert m.globals[2].type == GlobalType(I32) and m.globals[2].init == ConstExpr((("i32.const", 9),))
    assert m.globals[0].init is None and m.globals[1].init is None
    assert m.table_plans[2].table == TableType(FUNCREF, 1) and m.is_imported_table(1)
    assert m.tags[1] == TagType(3, FuncType((I32,), ()))
    assert m.owned_memory_index(0) == 0


def test_import_errors():
    def imp(kind):
        return section(2, vec([name("m") + name("f") + kind]))
    rejects(module(TYPE_VOID, imp(b"\x00\x01")), "unknown type 1")
    rejects(module(imp(b"\x05\x00")), "malformed import kind")
    rejects(module(imp(b"\x03\x7f\x02")), cls=UnsupportedFeature)  # shared global
    rejects(module(imp(b"\x03\x7f\x04")), "malformed mutability")
    rejects(module(imp(b"\x02\x02\x01")), "shared memory must have maximum")  # shared, no max
    decode(module(imp(b"\x02\x03\x01\x02")))  # shared with max
    rejects(module(imp(b"\x20\x00")), cls=UnsupportedFeature)  # exact func import
    e = rejects(module(section(2, vec([name("m") + name("") + b"\x7f\x00"]))),
                cls=UnsupportedFeature)
    assert e.feature == "compact imports"
    rejects(module(section(2, vec([name("m") + b"\x02\xff\xfe" + b"\x00\x00"]))), "UTF-8")


# -- tables and memories -------------------------------------------------------------------
def test_memory_limits_and_plans():
    m = decode(wat("""(module (memory 0) (memory 1 65536) (memory i64 1 0x1000000000000)
                               (memory 2 3 shared) (memory i64 0))"""))
    mems = [p.memory for p in m.memory_plans]
    assert mems == [MemoryType(0), MemoryType(1, 65536), MemoryType(1, 1 << 48, memory64=True),
                    MemoryType(2, 3, shared=True), MemoryType(0, None, memory64=True)]
    assert isinstance(m.memory_plans[0].style, MemoryStyle.Static)
    assert isinstance(m.memory_plans[4].style, MemoryStyle.Dynamic)
    t = Tunables(static_memory_bound=10)
    m2 = decode(wat("(module (memory 1 10) (memory 1 11))"), t)
    assert isinstance(m2.memory_plans[0].style, MemoryStyle.Static)
    assert isinstance(m2.memory_plans[1].style, MemoryStyle.Dynamic)


@pytest.mark.parametrize("entry,match", [
    (b"\x00" + uleb(65537), "at most 65536 pages"),
    (b"\x01\x00" + uleb(65537), "at most 65536 pages"),
    (b"\x01\x05\x04", "minimum must not be greater than maximum"),
    (b"\x04" + uleb((1 << 48) + 1), "2\\*\\*48"),
    (b"\x02\x01", "shared memory must have maximum"),
    (b"\x10\x00", "malformed limits flags"),
    (b"\x00" + b"\x82\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", "representation too long"),
    (b"\x00" + b"\x82\x80\x80\x80\x80\x80\x80\x80\x80\x10", "integer too large"),
])
def test_memory_errors(entry, match):
    rejects(module(section(5, vec([entry]))), match)


def test_memory_custom_page_size_unsupported():
    e = rejects(module(section(5, vec([b"\x08\x01\x00"]))), cls=UnsupportedFeature)
    assert e.feature == "custom page sizes"


def test_memory_limits_are_u64_leb_even_for_32bit():
    # 6-byte encoding of 2: too long for u32 but a valid u64 LEB (wasm 3.0 limits are u64)
    m = decode(module(section(5, vec([b"\x00\x82\x80\x80\x80\x80\x00"]))))
    assert m.memory_plans[0].memory.minimum == 2


def test_tables():
    m = decode(wat("(module (table 0 funcref) (table 5 10 externref) (table i64 2 funcref))"))
    assert [p.table for p in m.table_plans] == [
        TableType(FUNCREF, 0), TableType(EXTERNREF, 5, 10), TableType(FUNCREF, 2, table64=True)]


@pytest.mark.parametrize("entry,match,cls", [
    (b"\x70\x01\x05\x04", "minimum must not be greater", DecodeError),
    (b"\x70\x00" + uleb(1 << 32), "table size must be at most", DecodeError),
    (b"\x70\x08\x00", "malformed limits flags", DecodeError),
    (b"\x7f\x00\x00", "malformed reference type", DecodeError),
    (b"\x70\x03\x01\x02", "shared-everything", UnsupportedFeature),
    (b"\x40\x01\x70\x00\x01", "invalid table encoding", DecodeError),
    (b"\x64\x70\x00\x01", "non-defaultable element type", DecodeError),  # (ref func), no init
    (b"\x40\x00\x70\x00\x01\xd0\x6f\x0b", "type mismatch", DecodeError),  # init externref
    (b"\x40\x00\x64\x70\x00\x01\xd0\x70\x0b", "type mismatch", DecodeError),  # null in (ref func)
])
def test_table_errors(entry, match, cls):
    rejects(module(section(4, vec([entry]))), match, cls)


def test_table64_large_limits():
    m = decode(module(section(4, vec([b"\x70\x05" + uleb(1 << 40) + uleb(1 << 63)]))))
    assert m.table_plans[0].table == TableType(FUNCREF, 1 << 40, 1 << 63, table64=True)


def test_too_many_memories():
    rejects(module(section(5, vec([b"\x00\x00"] * 101))), "memories count exceeds limit")


# -- globals and constant expressions -------------------------------------------------------
def test_global_initializers():
    m = decode(wat("""(module
      (import "e" "g" (global i32))
      (func $f)
      (global i64 (i64.const -1))
      (global f32 (f32.const 1.5))
      (global f64 (f64.const -0.0))
      (global v128 (v128.const i32x4 1 2 3 4))
      (global funcref (ref.null func))
      (global externref (ref.null extern))
      (global funcref (ref.func $f))
      (global i32 (global.get 0))
      (global i32 (i32.add (global.get 0) (i32.const 5)))
      (global (mut i32) (i32.const 0))
      (global exnref (ref.null exn))
    )"""))
    inits = [g.init for g in m.globals]
    assert inits[0] is None
    assert inits[1].ops == (("i64.const", (1 << 64) - 1),)
    assert inits[2].ops == (("f32.const", 0x3FC00000),)
    assert inits[3].ops == (("f64.const", 0x8000000000000000),)
    assert inits[4].ops == (("v128.const", bytes.fromhex("01000000020000000300000004000000")),)
    assert inits[5].is_null() and inits[6].ops == (("ref.null", EXTERNREF),)
    assert inits[7].func_ref() == 0
    assert inits[8].global_base() == 0
    assert inits[9].ops == (("global.get", 0), ("i32.const", 5), ("i32.add", None))
    assert m.globals[10].type == GlobalType(I32, True)
    assert inits[11].ops == (("ref.null", EXNREF),)
    assert m.functions[0].anyfunc == 0 and m.num_escaped_funcs == 1


def glob(valtype: bytes, expr: bytes, mut=0) -> bytes:
    return section(6, vec([valtype + bytes([mut]) + expr]))


@pytest.mark.parametrize("mod,match", [
    (module(glob(b"\x7f", i64c(1))), "type mismatch"),
    (module(glob(b"\x7f", b"\x41\x01\x41\x02\x0b")), "type mismatch"),
    (module(glob(b"\x7f", b"\x0b")), "type mismatch"),
    (module(glob(b"\x7f", b"\x41\x01\x42\x01\x6a\x0b")), "type mismatch"),
    (module(glob(b"\x7f", b"\x41\x01\x6a\x0b")), "type mismatch"),
    (module(glob(b"\x7f", b"\x23\x00\x0b")), "unknown global 0"),
    (module(glob(b"\x7f", b"\x41\x01\x41\x01\x6d\x0b")), "non-constant operator"),  # i32.div_s
    (module(glob(b"\x7f", b"\x01\x41\x00\x0b")), "non-constant operator"),  # nop
    (module(glob(b"\x7f", b"\x41\x00")), "unexpected end"),
    (module(glob(b"\x70", b"\xd2\x00\x0b")), "unknown function 0"),
    (module(glob(b"\x6f", b"\xd0\x70\x0b")), "type mismatch"),
    (module(glob(b"\x7b", b"\xfd\x0d" + bytes(16) + b"\x0b")), "non-constant"),
    (module(glob(b"\x7f", b"\xd0\x40\x0b")), "invalid heap type"),
])
def test_const_expr_errors(mod, match):
    rejects(mod, match)


def test_global_get_rules():
    def two(first_mut):
        return section(6, vec([b"\x7f" + bytes([first_mut]) + i32c(1), b"\x7f\x00" + b"\x23\x00\x0b"]))
    # wasmtime 50 (GC on by default) accepts global.get of an earlier immutable defined global
    assert decode(module(two(0))).globals[1].init.global_base() == 0
    rejects(module(two(1)), "mutable global")
    # a global cannot refer to itself or later globals
    rejects(module(section(6, vec([b"\x7f\x00" + b"\x23\x00\x0b"]))), "unknown global")
    # imported mutable global is also rejected
    imp = section(2, vec([name("e") + name("g") + b"\x03\x7f\x01"]))
    rejects(module(imp, glob(b"\x7f", b"\x23\x00\x0b")), "mutable global")


def test_gc_const_ops_unsupported():
    e = rejects(module(glob(b"\x7f", b"\xfb\x1c\x0b")), cls=UnsupportedFeature)
    assert e.feature == "gc"
    rejects(module(glob(b"\x70", b"\xd0\x00\x0b")), "unknown type 0")  # ref.null $0, no types
    e = rejects(module(glob(b"\x70", b"\xd0\x73\x0b")), cls=UnsupportedFeature)  # ref.null nofunc
    assert e.feature == "gc"


# -- exports and start ----------------------------------------------------------------------
def test_exports_in_declaration_order():
    m = decode(wat("""(module (func $a) (func $b) (memory 1) (table 1 funcref) (global i32 (i32.const 0))
        (tag $t)
        (export "z" (func $b)) (export "a" (memory 0)) (export "m" (func $a))
        (export "t" (table 0)) (export "g" (global 0)) (export "x" (tag $t)))"""))
    assert list(m.exports) == ["z", "a", "m", "t", "g", "x"]
    assert m.exports["z"] == EntityIndex(FUNC, 1) and m.exports["x"] == EntityIndex(TAG, 0)
    assert [n for n, _, _ in m.exported()] == ["z", "a", "m", "t", "g", "x"]
    assert m.functions[1].anyfunc == 0 and m.functions[0].anyfunc == 1


def export(entries) -> bytes:
    return section(7, vec([name(n) + bytes([k]) + uleb(i) for n, k, i in entries]))


def test_export_errors():
    rejects(module(MEM1, export([("a", 2, 0), ("a", 2, 0)])), "duplicate export name")
    rejects(module(MEM1, export([("a", 2, 1)])), "unknown memory 1")
    rejects(module(export([("a", 0, 0)])), "unknown function 0")
    rejects(module(export([("a", 1, 0)])), "unknown table 0")
    rejects(module(export([("a", 3, 0)])), "unknown global 0")
    rejects(module(export([("a", 4, 0)])), "unknown tag 0")
    rejects(module(MEM1, export([("a", 5, 0)])), "malformed export kind")


def test_start():
    m = decode(wat("(module (func $s) (start $s))"))
    assert m.start_func == 0
    assert m.functions[0].anyfunc is None  # start does not make a function escape
    rejects(wat("(module (func $s (param i32)) (start $s))"), "invalid start function type")
    rejects(wat("(module (func $s (result i32) i32.const 0) (start $s))"), "invalid start")
    rejects(module(TYPE_VOID, FUNC1, section(8, uleb(1)), CODE1), "unknown function 1")
    rejects(module(TYPE_VOID, FUNC1, section(8, uleb(0) + b"\x00"), CODE1), "unexpected content")
    rejects(module(TYPE_VOID, FUNC1, section(8, uleb(0)), section(8, uleb(0)), CODE1),
            "duplicate start section")


# -- functions and code ---------------------------------------------------------------------
def test_function_code_count_mismatch():
    rejects(module(TYPE_VOID, FUNC1), "inconsistent lengths")
    rejects(module(TYPE_VOID, CODE1), "inconsistent lengths")
    rejects(module(TYPE_VOID, section(3, vec([uleb(0), uleb(0)])), CODE1), "inconsistent lengths")
    rejects(module(TYPE_VOID, section(3, vec([uleb(1)])), CODE1), "unknown type 1")
    decode(module(TYPE_VOID, section(3, vec([])), section(10, vec([]))))


def test_code_bodies_skipped_not_validated():
    # garbage inside a correctly framed body is a body-level problem: not ours to see
    body = b"\xff\xff\xff\xff"
    m = decode(module(TYPE_VOID, FUNC1, section(10, vec([uleb(len(body)) + body]))))
    assert len(m.functions) == 1


def test_code_body_past_section_end():
    rejects(module(TYPE_VOID, FUNC1, section(10, b"\x01\x05\x00\x0b")), "out of bounds")


# -- element segments -----------------------------------------------------------------------
def elem_module(*segments, tables=(b"\x70\x00\x0a",), funcs=3, globals_=()):
    parts = [TYPE_VOID]
    if globals_:
        parts.append(section(2, vec([name("e") + name(f"g{i}") + b"\x03" + g
                                     for i, g in enumerate(globals_)])))
    parts.append(section(3, vec([uleb(0)] * funcs)))
    parts.append(section(4, vec(tables)))
    parts.append(section(9, vec(segments)))
    parts.append(section(10, vec([b"\x02\x00\x0b"] * funcs)))
    return module(*parts)


def test_all_eight_element_encodings():
    def fidx(*fs):
        return vec([uleb(f) for f in fs])
    segs = [
        b"\x00" + i32c(1) + fidx(2, 0),                                      # 0 active t0 funcs
        b"\x01\x00" + fidx(1),                                               # 1 passive funcs
        b"\x02\x01" + i32c(3) + b"\x00" + fidx(0),                           # 2 active t1 funcs
        b"\x03\x00" + fidx(2),                                               # 3 declarative
        b"\x04" + i32c(4) + vec([b"\xd2\x01\x0b", b"\xd0\x70\x0b"]),         # 4 active t0 exprs
        b"\x05\x70" + vec([b"\xd2\x00\x0b", b"\x23\x00\x0b"]),               # 5 passive exprs
        b"\x06\x02" + i32c(0) + b"\x6f" + vec([b"\xd0\x6f\x0b"]),            # 6 active t2 exprs
        b"\x07\x70" + vec([b"\xd2\x02\x0b"]),                                # 7 declarative exprs
    ]
    m = decode(elem_module(*segs, tables=(b"\x70\x00\x0a", b"\x70\x00\x0a", b"\x6f\x00\x01"),
                           globals_=(b"\x70\x00",)))
    segs_ = m.table_initialization.segments
    assert segs_ == (
        TableInitializer(0, None, 1, (2, 0)),
        TableInitializer(1, None, 3, (0,)),
        TableInitializer(0, None, 4, (1, None)),
        TableInitializer(2, None, 0, (None,)),
    )
    assert m.num_elem_segments == 8
    assert m.dropped_elements == (0, 2, 3, 4, 6, 7)
    assert m.passive_elements == {
        1: ElementSegment("passive", FUNCREF, (1,)),
        5: ElementSegment("passive", FUNCREF, (0, ConstExpr((("global.get", 0),)))),
    }
    # escaping order: first appearance in decode order (all in the element section here)
    assert [f.anyfunc for f in m.functions] == [1, 2, 0]
    assert m.escaped_functions() == [2, 0, 1]
    assert m.num_escaped_funcs == 3


def test_element_flag_zero_with_two_byte_flags_and_table_index():
    # flags and table index read as LEB u32 (wasmparser accepts the 2-byte encodings)
    m = decode(elem_module(b"\x80\x00" + i32c(0) + vec([uleb(1)]),
                           b"\x02\x80\x00" + i32c(0) + b"\x00" + vec([])))
    assert [s.table_index for s in m.table_initialization.segments] == [0, 0]


@pytest.mark.parametrize("seg,match,kw", [
    (b"\x08" + vec([]), "malformed elements segment kind", {}),
    (b"\x02\x01" + i32c(0) + b"\x00" + vec([]), "unknown table 1", {}),
    (b"\x00" + i32c(0) + vec([uleb(3)]), "unknown function 3", {}),
    (b"\x01\x01" + vec([]), "malformed element kind", {}),
    (b"\x00" + i64c(0) + vec([]), "type mismatch", {}),
    (b"\x00" + i32c(0) + vec([]), "type mismatch", {"tables": (b"\x6f\x00\x01",)}),
    (b"\x04" + i32c(0) + vec([b"\xd0\x6f\x0b"]), "type mismatch", {}),
    (b"\x05\x70" + vec([b"\x41\x00\x0b"]), "type mismatch", {}),
    (b"\x06\x00" + i32c(0) + b"\x6f" + vec([]), "type mismatch", {}),
    (b"\x00" + i32c(0) + vec([]), "unknown table 0", {"tables": ()}),
])
def test_element_errors(seg, match, kw):
    rejects(elem_module(seg, **kw), match)


def test_element_into_table64_uses_i64_offset():
    m = decode(elem_module(b"\x00" + i64c(5) + vec([uleb(0)]), tables=(b"\x70\x04\x0a",)))
    seg, = m.table_initialization.segments
    assert seg.offset == 5 and seg.table64
    rejects(elem_module(b"\x00" + i32c(5) + vec([uleb(0)]), tables=(b"\x70\x04\x0a",)),
            "type mismatch")


def test_element_offsets_global_and_extended():
    m = decode(wat("""(module (import "e" "b" (global $b i32)) (table 10 funcref) (func $f)
        (elem (global.get $b) $f)
        (elem (offset (i32.add (global.get $b) (i32.const 2))) $f)
        (elem (offset (i32.sub (i32.const 1) (i32.const 2))) $f))"""))
    s0, s1, s2 = m.table_initialization.segments
    assert (s0.base, s0.offset, s0.expr) == (0, 0, None)
    assert s1.base is None and s1.offset == 0
    assert s1.expr.ops == (("global.get", 0), ("i32.const", 2), ("i32.add", None))
    assert (s2.base, s2.offset, s2.expr) == (None, 0xFFFFFFFF, None)


# -- data segments --------------------------------------------------------------------------
def data_passive(payload):
    return b"\x01" + uleb(len(payload)) + payload


def data_module(*segments, memories=(b"\x00\x01",), data_count=None, globals_=()):
    parts = []
    if globals_:
        parts.append(section(2, vec([name("e") + name(f"g{i}") + b"\x03" + g
                                     for i, g in enumerate(globals_)])))
    if memories:
        parts.append(section(5, vec(memories)))
    if data_count is not None:
        parts.append(section(12, uleb(data_count)))
    parts.append(section(11, vec(segments)))
    return module(*parts)


def test_active_and_passive_data():
    m_tr = wasmenv.translate(data_module(
        data_active(i32c(16), b"abc"), data_passive(b"P"),
        data_active(i32c(0), b"xy", memory=1), b"\x01\x00",
        memories=(b"\x00\x01", b"\x00\x01")))
    m = m_tr.module
    i0, i1 = m.memory_initialization.initializers
    assert (i0.memory_index, i0.base, i0.offset, i0.expr, i0.memory64) == (0, None, 16, None, False)
    assert (i1.memory_index, i1.offset) == (1, 0)
    assert bytes(m_tr.data_view(i0.data)) == b"abc" and bytes(m_tr.data_view(i1.data)) == b"xy"
    assert m.num_data_segments == 4
    assert set(m.passive_data_map) == {1, 3}
    assert bytes(m_tr.passive_data_view(1)) == b"P" and bytes(m_tr.passive_data_view(3)) == b""
    assert m_tr.passive_data_view(0) is None


def test_data_is_zero_copy_view_of_input():
    buf = bytearray(data_module(data_active(i32c(0), b"hello"), data_passive(b"world")))
    tr = wasmenv.translate(buf)
    init, = tr.module.memory_initialization.initializers
    view = tr.data_view(init.data)
    pview = tr.passive_data_view(1)
    assert view.obj is buf and pview.obj is buf
    assert tr.wasm.obj is buf
    at = bytes(buf).index(b"hello")
    buf[at] = ord("J")
    buf[bytes(buf).index(b"world")] = ord("W")
    assert bytes(view) == b"Jello" and bytes(pview) == b"World"
    assert tr.data.chunks[0].obj is buf


@pytest.mark.parametrize("value,expected", [
    (0, 0), (1, 1), (63, 63), (64, 64), (-1, 0xFFFFFFFF), (-64, 0xFFFFFFC0), (-65, 0xFFFFFFBF),
    (2 ** 20, 2 ** 20), (2 ** 27 - 1, 2 ** 27 - 1), (2 ** 27, 2 ** 27), (2 ** 31 - 1, 2 ** 31 - 1),
    (-(2 ** 31), 2 ** 31), (-(2 ** 31) + 1, 2 ** 31 + 1), (-2, 0xFFFFFFFE),
])
def test_i32_offsets_zero_extended(value, expected):
    for flags in (b"\x00", b"\x80\x00"):  # fast path and general path must agree
        seg = flags + i32c(value) + vec([b"z"])
        init, = decode(data_module(seg)).memory_initialization.initializers
        assert init.offset == expected and init.base is None and init.expr is None


@pytest.mark.parametrize("leb", [
    b"\x80\x00", b"\xff\x7f", b"\x80\x80\x80\x80\x00", b"\xff\xff\xff\xff\x07", b"\x80\x80\x80\x80\x78",
    b"\xff\xff\xff\xff\x7f",
])
def test_overlong_i32_const_offsets(leb):
    r = Reader(memoryview(leb))
    expected = r.s32() & 0xFFFFFFFF
    init, = decode(data_module(b"\x00\x41" + leb + b"\x0b" + vec([b"q"]))).memory_initialization.initializers
    assert init.offset == expected


@pytest.mark.parametrize("leb,match", [
    (b"\x80\x80\x80\x80\x80\x00", "representation too long"),
    (b"\x80\x80\x80\x80\x70", "integer too large"),
    (b"\xff\xff\xff\xff\x0f", "integer too large"),
])
def test_bad_i32_const_offsets(leb, match):
    rejects(data_module(b"\x00\x41" + leb + b"\x0b" + vec([b"q"])), match)


def test_truncated_i32_const_offset():
    rejects(module(MEM1, section(11, b"\x01\x00\x41\x80\x80")), "unexpected end")


def test_data_length_leb_and_bounds():
    # 2-byte length encoding, fast path
    init, = decode(data_module(b"\x00" + i32c(0) + b"\x83\x00abc")).memory_initialization.initializers
    assert len(init.data) == 3
    rejects(data_module(b"\x00" + i32c(0) + b"\x05abc"), "out of bounds|unexpected end")
    rejects(data_module(b"\x00" + i32c(0) + b"\x80\x80\x80\x80\x10"), "integer too large")


def test_data_offsets_global_extended_and_memory64():
    m = decode(wat("""(module (import "e" "b" (global $b i32)) (import "e" "b64" (global $c i64))
      (memory 1) (memory i64 1)
      (data (global.get $b) "a")
      (data (offset (i32.add (global.get $b) (i32.const 64))) "b")
      (data (offset (i32.add (i32.const 0x7fffffff) (i32.const 0x7fffffff))) "c")
      (data (offset (i32.mul (i32.const 0x10000) (i32.const 0x10000))) "d")
      (data (memory 1) (i64.const -1) "e")
      (data (memory 1) (offset (i64.sub (i64.const 1) (i64.const 2))) "f")
      (data (memory 1) (global.get $c) "g"))"""))
    inits = m.memory_initialization.initializers
    assert (inits[0].base, inits[0].offset, inits[0].expr) == (0, 0, None)
    assert inits[1].base is None and inits[1].offset == 0
    assert inits[1].expr == ConstExpr((("global.get", 0), ("i32.const", 64), ("i32.add", None)))
    assert (inits[2].offset, inits[2].expr) == (0xFFFFFFFE, None)
    assert (inits[3].offset, inits[3].expr) == (0, None)  # wraps to 32 bits
    assert inits[4].memory64 and inits[4].memory_index == 1 and inits[4].offset == (1 << 64) - 1
    assert inits[5].offset == (1 << 64) - 1
    assert inits[6].base == 1 and inits[6].memory64
    # the runtime resolution of a kept expression
    assert inits[1].start(lambda g: 100) == 164


@pytest.mark.parametrize("mod,match", [
    (data_module(data_active(i32c(0), b"x"), memories=()), "unknown memory 0"),
    (data_module(data_active(i32c(0), b"x", memory=1)), "unknown memory 1"),
    (data_module(data_active(i64c(0), b"x")), "type mismatch"),
    (data_module(data_active(i32c(0), b"x"), memories=(b"\x04\x01",)), "type mismatch"),
    (data_module(b"\x03" + vec([])), "malformed data segment kind"),
    (data_module(b"\x00\xd2\x00\x0b" + vec([])), "unknown function"),
    (data_module(data_active(b"\x23\x00\x0b", b"x"), globals_=(b"\x7f\x01",)), "mutable global"),
    (data_module(data_active(b"\x23\x00\x0b", b"x"), globals_=(b"\x7e\x00",)), "type mismatch"),
])
def test_data_errors(mod, match):
    rejects(mod, match)


def test_data_count():
    decode(data_module(data_active(i32c(0), b"x"), data_count=1))
    rejects(data_module(data_active(i32c(0), b"x"), data_count=2), "inconsistent lengths")
    rejects(module(MEM1, section(12, uleb(1))), "inconsistent lengths")
    decode(module(MEM1, section(12, uleb(0))))
    rejects(module(MEM1, section(12, uleb(100_001))), "too many data segments")
    rejects(module(MEM1, section(12, uleb(0) + b"\x00")), "unexpected content")


def test_data_fast_and_general_paths_agree():
    segs = [data_active(i32c(v), bytes([v & 0xFF]) * (v % 300)) for v in
            list(range(0, 70000, 997)) + [-5, 2 ** 31 + 5 - 2 ** 32]]
    fast = wasmenv.translate(data_module(*segs))
    slow = wasmenv.translate(data_module(*[b"\x80" + s for s in segs]))
    assert fast.module.memory_initialization == slow.module.memory_initialization
    for a in fast.module.memory_initialization.initializers:
        assert bytes(fast.data_view(a.data)) == bytes(slow.data_view(a.data))


@pytest.mark.parametrize("body,match,at", [
    # body after the flags byte; ``at``: offset of the bad byte within the body
    (b"\x41\x80\x80\x80\x80\x80\x00\x0b\x01q", "representation too long", 5),  # s32: 6 bytes
    (b"\x41\x80\x80\x80\x80\x70\x0b\x01q", "integer too large", 5),  # s32 unused bits
    (b"\x41\xff\xff\xff\xff\x0f\x0b\x01q", "integer too large", 5),  # s32 > 2^31 - 1
    (b"\x41\x80\x80", "unexpected end", 3),  # s32 truncated
    (b"\x41\x00\x0b\x80\x80\x80\x80\x80\x00", "representation too long", 7),  # u32: 6 bytes
    (b"\x41\x00\x0b\xff\xff\xff\xff\x1f", "integer too large", 7),  # u32 > 2^32 - 1
    (b"\x41\x00\x0b\x80\x80", "unexpected end", 5),  # u32 truncated
    (b"\x41\x00\x0b\x05abc", "length out of bounds", 3),  # length past the section end
])
def test_data_segment_leb_errors_have_offsets_on_fast_and_general_paths(body, match, at):
    # flags 0 takes the decoder's fast path, a two-byte flags 0 the general one: both read
    # through the Reader, so the error is the same, one byte later on the general path.
    errors = []
    for flags in (b"\x00", b"\x80\x00"):
        wasm = data_module(flags + body)
        err = rejects(wasm, match)
        assert err.section == "data" and err.offset == len(wasm) - len(body) + at
        errors.append(err)
    fast, general = errors
    assert fast.message == general.message


def test_data_fast_path_leaves_other_shapes_to_the_general_path():
    # `i32.const` followed by more than `end` (extended const), then a plain segment
    ext = b"\x00\x41\x05\x41\x03\x6a\x0b" + vec([b"e"])
    inits = decode(data_module(ext, data_active(i32c(70000), b"p"))).memory_initialization.initializers
    assert [(i.offset, i.expr, len(i.data)) for i in inits] == [(8, None, 1), (70000, None, 1)]


def test_memory_initializer_constructor_is_the_dataclass_one():
    fields = dataclasses.fields(MemoryInitializer)
    params = list(inspect.signature(MemoryInitializer).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    init = MemoryInitializer(memory_index=1, base=2, offset=3, data=range(4, 5))
    assert (init.expr, init.memory64) == (None, False)
    assert vars(init) == {f.name: getattr(init, f.name) for f in fields}
    assert repr(init) == ("MemoryInitializer(memory_index=1, base=2, offset=3, data=range(4, 5), "
                          "expr=None, memory64=False)")
    moved = dataclasses.replace(init, offset=9)
    assert moved.offset == 9 and moved != init and moved == MemoryInitializer(1, 2, 9, range(4, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        init.offset = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        del init.base


def test_memory_initializer_objects_are_normal():
    init, = decode(data_module(data_active(i32c(3), b"xyz"))).memory_initialization.initializers
    assert type(init) is MemoryInitializer
    assert init == MemoryInitializer(0, None, 3, init.data)
    assert hash(init) == hash(MemoryInitializer(0, None, 3, init.data))
    assert pickle.loads(pickle.dumps(init)) == init
    with pytest.raises(dataclasses.FrozenInstanceError):
        init.offset = 4  # still frozen


# -- escaping --------------------------------------------------------------------------------
def test_escape_order_globals_exports_elements():
    m = decode(wat("""(module
      (import "e" "imp" (func $imp))
      (func $a) (func $b) (func $c) (func $d) (func $e)
      (global funcref (ref.func $c))
      (export "d" (func $d))
      (export "c-again" (func $c))
      (export "imp" (func $imp))
      (table 4 funcref)
      (elem (i32.const 0) $b $d $a)
      (elem declare func $e))"""))
    # c (global), d, imp (exports), b, a (active elem), e (declarative)
    assert m.escaped_functions() == [3, 4, 0, 2, 1, 5]
    assert m.num_escaped_funcs == 6
    assert m.functions[3].anyfunc == 0 and m.functions[0].anyfunc == 2
    assert all(f.is_escaping() for f in m.functions)


def test_non_escaping_function():
    m = decode(wat("(module (func $a) (func $b) (export \"b\" (func $b)))"))
    assert m.functions[0].anyfunc is None and not m.functions[0].is_escaping()
    assert m.functions[1].anyfunc == 0 and m.num_escaped_funcs == 1


# -- tags ------------------------------------------------------------------------------------
def test_tags():
    m = decode(wat("(module (tag $a (param i32 f64)) (tag $b) (export \"a\" (tag $a)))"))
    assert m.tags == [TagType(0, FuncType((I32, F64), ())), TagType(1, FuncType((), ()))]
    tag = section(13, vec([b"\x00\x00"]))
    rejects(module(section(1, vec([b"\x60\x00\x01\x7f"])), tag), "non-empty tag result")
    rejects(module(TYPE_VOID, section(13, vec([b"\x01\x00"]))), "invalid tag attributes")
    rejects(module(TYPE_VOID, section(13, vec([b"\x00\x01"]))), "unknown type 1")


# -- name section ----------------------------------------------------------------------------
def test_module_name():
    assert decode(wat("(module $hello)")).name == "hello"
    sub = b"\x00" + uleb(6) + name("\u00e9t\u00e9")  # multi-byte UTF-8
    assert decode(module(section(0, name("name") + sub))).name == "\u00e9t\u00e9"


@pytest.mark.parametrize("payload", [
    b"\x00\x05\x03ab",            # subsection shorter than declared name
    b"\x00\x03\x02\xc3\x28",      # bad UTF-8 in module name
    b"\x00\xff\xff\xff\xff\x0f",  # huge subsection size
    b"\x01",                      # truncated
    b"\x00",
])
def test_malformed_name_section_is_ignored(payload):
    m = decode(module(section(0, name("name") + payload), MEM1))
    assert m.name is None and len(m.memory_plans) == 1


def test_name_section_after_error_keeps_earlier_module_name():
    payload = b"\x00\x03" + name("ok") + b"\x01\x05\x00"
    assert decode(module(section(0, name("name") + payload))).name == "ok"


# -- errors carry offsets and sections ------------------------------------------------------
def test_error_offset_and_section():
    w = module(TYPE_VOID, section(2, vec([name("m") + name("f") + b"\x00\x07"])))
    e = rejects(w, "unknown type 7")
    assert e.section == "import"
    assert e.offset == len(w) - 1
    assert "section import" in str(e) and hex(e.offset) in str(e)
    again = pickle.loads(pickle.dumps(e))
    assert again.offset == e.offset and again.section == e.section


# -- Reader ----------------------------------------------------------------------------------
def rd(data: bytes) -> Reader:
    return Reader(memoryview(data))


@pytest.mark.parametrize("data,value", [
    (b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\x82\x00", 2), (b"\x82\x80\x80\x80\x00", 2),
    (b"\xff\xff\xff\xff\x0f", 0xFFFFFFFF),
])
def test_u32(data, value):
    r = rd(data)
    assert r.u32() == value and r.eof()


@pytest.mark.parametrize("data,match", [
    (b"\x82\x80\x80\x80\x80\x00", "representation too long"),
    (b"\x82\x80\x80\x80\x10", "integer too large"),
    (b"\xff\xff\xff\xff\x1f", "integer too large"),
    (b"\x80\x80", "unexpected end"), (b"", "unexpected end"),
])
def test_u32_errors(data, match):
    with pytest.raises(DecodeError, match=match):
        rd(data).u32()


def test_u64_and_signed():
    assert rd(b"\xff" * 9 + b"\x01").u64() == (1 << 64) - 1
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\xff" * 9 + b"\x03").u64()
    with pytest.raises(DecodeError, match="representation too long"):
        rd(b"\x80" * 10 + b"\x00").u64()
    assert rd(b"\x7f").s32() == -1
    assert rd(b"\xff\xff\xff\xff\x07").s32() == 2 ** 31 - 1
    assert rd(b"\x80\x80\x80\x80\x78").s32() == -(2 ** 31)
    assert rd(b"\xff\xff\xff\xff\x7f").s32() == -1
    for bad in (b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x70", b"\x80\x80\x80\x80\x1f"):
        with pytest.raises(DecodeError, match="integer too large"):
            rd(bad).s32()
    assert rd(b"\xff" * 9 + b"\x00").s64() == 2 ** 63 - 1
    assert rd(b"\x80" * 9 + b"\x7f").s64() == -(2 ** 63)
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\x80" * 9 + b"\x01").s64()
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\xff" * 9 + b"\x7e").s64()
    with pytest.raises(DecodeError, match="representation too long"):
        rd(b"\xff" * 10 + b"\x7f").s64()
    assert rd(b"\x70").s33() == -16
    assert rd(b"\xff\xff\xff\xff\x0f").s33() == 2 ** 32 - 1
    assert rd(b"\x80\x80\x80\x80\x70").s33() == -(2 ** 32)
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\x80\x80\x80\x80\x20").s33()


def _leb_model(data: bytes, bits: int, signed: bool):
    """What the spec says an N-bit LEB128 at the start of ``data`` is: the value and its
    length, or the error and its offset (a range check, not the reader's bit tests)."""
    max_len = -(-bits // 7)
    value = 0
    for i, byte in enumerate(data[:max_len]):
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if signed and byte & 0x40:
                value -= 1 << (7 * (i + 1))
            low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
            return ("value", value, i + 1) if low <= value < high else ("integer too large", i)
    if len(data) < max_len:
        return "unexpected end", len(data)
    return "integer representation too long", max_len - 1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([0x00, 0x01, 0x0F, 0x3F, 0x40, 0x70, 0x7E, 0x7F, 0x80, 0x81, 0xC0,
                                 0xF0, 0xFF]) | st.integers(0, 255), max_size=12).map(bytes))
def test_reader_leb128_matches_the_spec(data):
    for method, bits, signed in (("u32", 32, False), ("u64", 64, False), ("s32", 32, True),
                                 ("s33", 33, True), ("s64", 64, True)):
        r = Reader(memoryview(b"\xee" + data + b"\xee"), 1, 1 + len(data))
        expected = _leb_model(data, bits, signed)
        if expected[0] == "value":
            assert (getattr(r, method)(), r.pos - 1) == expected[1:], method
        else:
            with pytest.raises(DecodeError) as info:
                getattr(r, method)()
            assert expected[0] in info.value.message and info.value.offset == 1 + expected[1], method


def test_reader_bytes_and_names_are_bounded():
    r = Reader(memoryview(b"\x03abcdef"), 0, 3)
    with pytest.raises(DecodeError):
        r.byte_vec()
    r = rd(b"\x03abc")
    v = r.byte_vec()
    assert bytes(v) == b"abc" and isinstance(v, memoryview)
    with pytest.raises(DecodeError, match="UTF-8"):
        rd(b"\x03\xed\xa0\x80").name()  # surrogate
    with pytest.raises(DecodeError, match="UTF-8"):
        rd(b"\x02\xc0\x80").name()  # overlong NUL
    with pytest.raises(DecodeError, match="string size out of bounds"):
        rd(uleb(100_001) + b"a" * 100_001).name()
    with pytest.raises(DecodeError):
        rd(b"").u8()
    r = rd(b"\x01")
    with pytest.raises(DecodeError):
        r.bytes(2)
    with pytest.raises(DecodeError):
        rd(b"\x05").count(1)


# -- end to end --------------------------------------------------------------------------------
def test_compile_end_to_end_static_image():
    w = wat('(module (memory 2) (data (i32.const 70000) "tail") (data (i32.const 10) "head"))')
    tr = wasmenv.compile(w)
    assert not tr.module.memory_initialization.is_segmented()
    img, = tr.module.memory_initialization.map
    view = bytes(tr.data_view(img.data))
    assert view[10 - img.offset:14 - img.offset] == b"head"


def test_examples_decode():
    import pathlib
    root = pathlib.Path(__file__).resolve().parent.parent / "examples"
    for path in sorted(root.glob("*.wat")):
        tr = wasmenv.compile(wat(path.read_text()))
        assert tr.module is not None
