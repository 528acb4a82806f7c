"""Exports and globals of an instance (runtime/exports.py): ``exports[name]`` and by
position, in declaration order, each kind's object made on first use; ``instance.globals``
as a sequence of views."""
import pytest

from runtime import Func, Global, Instance, Memory, Table, Tag
from tests.helpers import inst
from tests.test_globals import IMPORTER, module_of
from wasmenv import FuncType, ValType

EVERY_KIND = """(module (memory (export "m") 1) (table (export "t") 2 funcref)
  (global (export "g") (mut i32) (i32.const 3)) (tag (export "e"))
  (func (export "fn") (result i32) i32.const 1))"""


def test_static_image_data_globals_and_exports(engine):
    i = inst(engine, """(module
      (memory (export "m") 1) (data (i32.const 5) "hello")
      (global (export "g") (mut i64) (i64.const -7))
      (global (export "f") f32 (f32.const 1.5))
      (func (export "fn") (param i32) (result i32) local.get 0))""")
    m = i.exports["m"]
    assert isinstance(m, Memory) and m.size_pages == 1 and m.byte_len == 65536
    assert m.read(0, 12) == b"\0" * 5 + b"hello" + b"\0\0"
    assert i.exports["g"].value == -7 and i.exports["g"].ty.mutable
    assert i.exports["f"].value == 1.5
    fn = i.exports["fn"]
    assert isinstance(fn, Func) and fn.ty == FuncType((ValType.I32,), (ValType.I32,))
    assert fn(1) == 1 and fn(-5) == -5  # wasm functions run (tests/test_interp.py)
    assert list(i.exports) == ["m", "g", "f", "fn"]
    i.close()


def test_exports_make_only_the_memory_asked_for(engine):
    host = Memory.new(engine, 1)
    i = inst(engine, """(module (import "env" "h" (memory 1)) (memory (export "a") 1)
      (memory (export "b") 2) (memory (export "c") 1) (export "h" (memory 0)))""", {("env", "h"): host})
    b = i.exports["b"]
    assert b.size_pages == 2 and i._made == [None, b, None]
    assert i.exports["h"] is i.memory(0) and i._made == [None, b, None]  # the import: nothing made
    assert [m.size_pages for _, m in i.exports.items()] == [1, 2, 1, 1] and None not in i._made
    i.close()
    host.close()


def test_globals_sequence_is_lazy_and_complete(engine):
    host = Global.new(engine, "i32", 1, mutable=True)
    b = Instance(module_of(engine, IMPORTER), {
        ("a", "g"): host, ("a", "x"): Global.new(engine, "externref", None, mutable=True),
        ("a", "k"): Global.new(engine, "i64", -1)})
    gs = b.globals
    assert len(gs) == 4 and [g.ty.content for g in gs] == [ValType.I32, ValType.EXTERNREF, ValType.I64,
                                                           ValType.I64]
    assert gs[-1].value == 99 and [g.value for g in gs[0:4:2]] == [1, -1]
    with pytest.raises(IndexError):
        gs[4]
    b.close()


def test_unknown_export_names_raise_key_error_and_get_gives_the_default(engine):
    i = inst(engine, EVERY_KIND)
    with pytest.raises(KeyError, match="nope"):
        i.exports["nope"]
    assert i.exports.get("nope") is None and i.exports.get("nope", 5) == 5
    assert i.exports.get("g").value == 3
    assert "m" in i.exports and "nope" not in i.exports and 0 not in i.exports
    i.close()


def test_exports_by_name_and_by_position_in_declaration_order(engine):
    i = inst(engine, EVERY_KIND)
    x = i.exports
    assert len(x) == 5 and list(x) == ["m", "t", "g", "e", "fn"]
    assert [name for name, _ in x.items()] == list(x)
    assert x[0] is x["m"] and x[-1] is x["fn"] and x[2].value == 3
    assert isinstance(x["t"], Table) and isinstance(x["e"], Tag)
    with pytest.raises(IndexError):
        x[5]
    i.close()


def test_a_module_without_exports_has_empty_exports(engine):
    i = inst(engine, "(module (memory 1) (func))")
    assert len(i.exports) == 0 and list(i.exports) == [] and i.exports.items() == []
    with pytest.raises(KeyError):
        i.exports["m"]
    i.close()


def test_export_objects_are_made_on_first_use(engine):
    """Instantiation makes no export object: the Exports, a function's Func and a memory's
    Memory are made when first read, then the same object is returned; a global's view is
    made per read, and every view reads and writes the one cell."""
    i = inst(engine, EVERY_KIND)
    assert i._exports is None and "_funcs" not in vars(i) and i._made is None
    x = i.exports
    assert i.exports is x
    fn = x["fn"]
    assert x["fn"] is fn and i._made is None  # a Func, no memory (a call makes them)
    assert fn() == 1
    assert x["m"] is x["m"] is i.memory(0) and x["t"] is x["t"] and x["e"] is x["e"]
    g = x["g"]
    g.value = 9
    assert x["g"].value == 9 and i.globals[0].value == 9
    i.close()


def test_globals_index_like_a_sequence(engine):
    i = inst(engine, "(module (global i32 (i32.const 1)) (global (mut i64) (i64.const 2)))")
    gs = i.globals
    assert [g.value for g in gs] == [1, 2] and [g.value for g in gs[::-1]] == [2, 1]
    assert [g.value for g in gs[1:5]] == [2] and gs[-2].value == 1
    for index in (2, -3):
        with pytest.raises(IndexError):
            gs[index]
    i.close()
