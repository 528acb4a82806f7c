"""What the artifact tests save and edit: a hand-built translation using every field
(``rich_module``), WAT modules of each kind, and read / write of the metadata document."""
import json
import os

import pytest
import wasmtime

import wasmenv
from wasmenv import (ConstExpr, ElementSegment, EntityIndex, ExternKind, FuncType, FunctionType,
                     Global, GlobalType, Initializer, MemoryInitialization, MemoryInitializer,
                     MemoryPlan, MemoryStyle, MemoryType, Module, ModuleTranslation, ModuleType,
                     StaticMemoryInitializer, TableInitialization, TableInitializer, TablePlan,
                     TableType, TagType, Tunables, ValType)
from tests.helpers import open_fd_count as fd_count
from wasmenv import ArtifactError, load_artifact
from wasmenv import artifact as A

PAGE = 4096
MIB = 1 << 20
T = Tunables()
I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF


# -- the metadata document ---------------------------------------------------------------
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


def assert_bad(path, match, **kw):
    """Assert that loading ``path`` raises ArtifactError matching ``match`` and leaks no fd."""
    fds = fd_count()
    with pytest.raises(ArtifactError, match=match):
        load_artifact(path, **kw)
    assert fd_count() == fds


def compile_wat(text, tunables=None):
    return wasmenv.compile(wasmtime.wat2wasm(text), tunables)


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
