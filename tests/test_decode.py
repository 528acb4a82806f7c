"""The binary decoder (wasmenv.decode): header, section order and framing, types, imports
and index spaces, tables, memories, globals and constant expressions, exports, start,
code, escaping, tags, the name section, error offsets, and compile end to end.

Elsewhere: element and data segments, test_decode_segments.py; the LEB128 / byte Reader,
test_reader.py. Hand-encoded fragments (TYPE_VOID, MEM1, i32c, ...) are in tests/helpers.py.
"""
import mmap
import pickle

import pytest

import wasmenv
from wasmenv import (ConstExpr, DecodeError, EntityIndex, ExternKind, FuncType, GlobalType,
                     MemoryStyle, MemoryType, TableType, TagType, Tunables, UnsupportedFeature,
                     ValType)

from tests.helpers import (CODE1, EXNREF, EXTERNREF, FUNC1, FUNCREF, I32, I64, MEM1, TYPE_VOID,
                           decode, i32c, i64c, rejects, wat)
from wasmenv.encode import module, name, section, uleb, vec

F32, F64, V128 = ValType.F32, ValType.F64, ValType.V128
FUNC, TABLE, MEMORY, GLOBAL, TAG = (ExternKind.FUNC, ExternKind.TABLE, ExternKind.MEMORY,
                                    ExternKind.GLOBAL, ExternKind.TAG)


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
