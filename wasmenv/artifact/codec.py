"""The metadata's JSON codec: one description of the model (in :mod:`.schema`'s nodes),
from which both encoding and decoding come.

Decoding checks the JSON's shape and each value's representation (types, integer ranges,
known keys); the model's invariants are :mod:`wasmenv.checks`'s job.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple, Optional, Tuple

from ..checks import MAX_TYPE_DEPTH, U64
from ..constexpr import _ARITH, ConstExpr
from ..init import (MemoryInitialization, MemoryInitializer, StaticMemoryInitializer,
                    TableInitialization, TableInitializer)
from ..module import ElementSegment, FunctionType, Global, Initializer, Module, ModuleType
from ..plans import MemoryPlan, MemoryStyle, TablePlan, TableStyle
from ..tunables import Tunables
from ..types import (EntityIndex, ExternKind, FuncType, GlobalType, MemoryType, RefType, TableType,
                     TagType, ValType)
from . import schema
from .schema import (BOOL, STR, Const, Enum, Group, Index, Int, Keyed, List, Node, Nullable, Opt,
                     Pairs, Record, Tagged, construct, dump, fail, obj)

__all__ = ["Metadata", "StoreInfo", "ChunkEntry", "CodeEntry", "METADATA", "encode", "decode",
           "dump", "fail", "check_complete"]


class ValTypeNode(Node):
    """A value type: its name, or ``{"ref": heap, "nullable": bool}`` for a typed reference
    (heap: an abstract heap type name, or a function type ``{"params", "results"}``)."""

    names = {t.value: t for t in ValType}

    def encode(self, v):
        if isinstance(v, ValType):
            return v.value
        heap = v.heap if isinstance(v.heap, str) else FUNC_TYPE.encode(v.heap)
        return {"ref": heap, "nullable": v.nullable}

    def decode(self, j, where, ctx):
        if type(j) is str and j in self.names:
            return self.names[j]
        if type(j) is not dict:
            fail(where, f"unknown value type {j!r}")
        depth = ctx.get("depth", 0)
        if depth >= MAX_TYPE_DEPTH:
            fail(where, "value types nested too deeply")
        o = obj(j, where, ("ref", "nullable"))
        nullable = BOOL.decode(o["nullable"], f"{where}.nullable", ctx)
        heap = o["ref"]
        if type(heap) is not str:
            ctx["depth"] = depth + 1
            try:
                heap = FUNC_TYPE.decode(heap, f"{where}.ref", ctx)
            finally:
                ctx["depth"] = depth
        return construct(RefType, {"nullable": nullable, "heap": heap}, where)


class Hex16(Node):
    def encode(self, v):
        return bytes(v).hex()

    def decode(self, j, where, ctx):
        if type(j) is str and len(j) == 32:
            try:
                return bytes.fromhex(j)
            except ValueError:
                pass
        fail(where, "v128.const needs 32 hex digits")


class NoImmediate(Node):
    def __init__(self, op):
        self.op = op

    def encode(self, v):
        return None

    def decode(self, j, where, ctx):
        if j is not None:
            fail(where, f"{self.op} takes no immediate")


class ExprNode(Node):
    """A constant expression: a list of ``[op, immediate]``."""

    def __init__(self, immediates: Dict[str, Node]):
        self.immediates = immediates

    def encode(self, e):
        return [[op, self.immediates[op].encode(imm)] for op, imm in e.ops]

    def decode(self, j, where, ctx):
        if type(j) is not list or not j:
            fail(where, "expected a non-empty list of [op, immediate]")
        ops = []
        for k, item in enumerate(j):
            w = f"{where}[{k}]"
            if type(item) is not list or len(item) != 2:
                fail(w, f"expected [op, immediate], got {item!r}")
            op, imm = item
            node = self.immediates.get(op) if type(op) is str else None
            if node is None:
                fail(w, f"unknown constant operator {op!r}")
            ops.append((op, node.decode(imm, w, ctx)))
        return ConstExpr(tuple(ops))


class ItemNode(Node):
    """An element item: a function index, null, or ``{"expr": ...}``."""

    def encode(self, v):
        if v is None or type(v) is int:
            return v
        return {"expr": EXPR.encode(v)}

    def decode(self, j, where, ctx):
        if j is None:
            return None
        if type(j) is int:
            return INDEX.decode(j, where, ctx)
        return EXPR.decode(obj(j, where, ("expr",))["expr"], f"{where}.expr", ctx)

    def bulk(self, values) -> bool:
        return INDEX.bulk(values)  # function indices decode to themselves


def _tag_func_type(attrs, ctx, where):
    types = ctx["types"]
    if attrs["type_index"] >= len(types):
        fail(f"{where}.type_index", f"{attrs['type_index']} out of range ({len(types)} types)")
    return types[attrs["type_index"]].func



class ChunkEntry(NamedTuple):
    """Where one data chunk lives: ``length`` bytes at file ``offset``, mmap-ninja ``item``."""

    length: int
    offset: int
    item: Optional[int]


class StoreInfo(NamedTuple):
    """The mmap-ninja store as the metadata records it."""

    kind: str
    file_size: int
    items: int
    blake2b: str


class CodeEntry(NamedTuple):
    """The code section as the metadata records it: the function bodies' bytes are ``chunk``
    of the data file (they were at ``module_offset`` in the module), ``bodies`` are offsets
    in that chunk; ``elem_types`` and ``data_count`` are :class:`~wasmenv.CodeSection`'s."""

    chunk: ChunkEntry
    module_offset: int
    bodies: Tuple[Tuple[int, int], ...]
    elem_types: Tuple[object, ...]
    data_count: Optional[int]


class Metadata(NamedTuple):
    """The whole metadata document (``wasmenv-artifact.json``)."""

    format: str
    version: int
    checksum: Optional[str]
    tunables: Tunables
    data_align: Optional[int]
    file_align: int
    store: Optional[StoreInfo]
    data_chunks: Tuple[ChunkEntry, ...]
    passive_chunks: Tuple[ChunkEntry, ...]
    #: None: saved from a translation without its code section.
    code: Optional[CodeEntry]
    module: Module


# -- the description --------------------------------------------------------------------
INDEX = Index()
VALTYPE = ValTypeNode()
U64_INT = Int(0, U64)
RANGE = Record(range, (("start", "start", U64_INT), ("stop", "stop", U64_INT)), row=True,
               make=lambda start, stop: range(start, stop))
KIND = Enum({str(k): k for k in ExternKind}, "extern kind")
FUNC_TYPE = Record(FuncType, (("params", "params", List(VALTYPE)), ("results", "results", List(VALTYPE))))
EXPR = ExprNode({**{op: U64_INT for op in ("i32.const", "i64.const", "f32.const", "f64.const",
                                           "global.get", "ref.func")},
                 "v128.const": Hex16(), "ref.null": VALTYPE,
                 **{op: NoImmediate(op) for op in _ARITH}})
ITEMS = Nullable(ItemNode())
TABLE_INIT = Record(TableInitializer, (
    ("table", "table_index", INDEX), ("base", "base", Opt(INDEX)), ("offset", "offset", U64_INT),
    ("expr", "expr", Opt(EXPR)), ("table64", "table64", BOOL), ("elements", "elements", ITEMS)))
MEMORY_STYLE = Tagged("memory style", {
    "static": Record(MemoryStyle.Static, (("bound_pages", "bound_pages", U64_INT),)),
    "dynamic": Record(MemoryStyle.Dynamic, (("reserve_bytes", "reserve_bytes", U64_INT),))})
MEMORY_INIT = Tagged("memory initialization", {
    "static": Record(MemoryInitialization.Static, (("map", "map", List(Opt(Record(
        StaticMemoryInitializer, (("offset", "offset", U64_INT), ("data", "data", RANGE)))))),)),
    "segmented": Record(MemoryInitialization.Segmented, (("initializers", "initializers", List(
        Record(MemoryInitializer, (
            ("memory", "memory_index", INDEX), ("base", "base", Opt(INDEX)),
            ("offset", "offset", U64_INT), ("expr", "expr", Opt(EXPR)),
            ("memory64", "memory64", BOOL), ("data", "data", RANGE))))),)),
})
TABLE_INITIALIZATION = Tagged("table initialization", {
    "func_table": Record(TableInitialization.FuncTable, (
        ("tables", "tables", List(Opt(Nullable(INDEX)))), ("segments", "segments", List(TABLE_INIT)))),
    "segments": Record(TableInitialization.Segments, (("segments", "segments", List(TABLE_INIT)),)),
})

MODULE = Record(Module, (
    ("name", "name", Opt(STR)),
    ("types", "types", List(Record(ModuleType, (
        ("params", "func.params", List(VALTYPE)), ("results", "func.results", List(VALTYPE))),
        parts={"func": FuncType}), as_list=True)),
    ("num_imported", None, Group([(k, f"num_imported_{k}", INDEX)
                                  for k in ("funcs", "tables", "memories", "globals", "tags")])),
    ("imports", "initializers", List(Record(Initializer.Import, (
        ("module", "name", STR), ("field", "field", STR), ("kind", "index.kind", KIND),
        ("index", "index.index", INDEX)), parts={"index": EntityIndex}), as_list=True)),
    ("functions", "functions", List(Record(FunctionType, (
        ("signature", "signature", INDEX), ("anyfunc", "anyfunc", Opt(INDEX))), row=True),
        as_list=True)),
    ("num_escaped_funcs", "num_escaped_funcs", INDEX),
    ("tables", "table_plans", List(Record(TablePlan, (
        ("element", "table.element", VALTYPE), ("minimum", "table.minimum", U64_INT),
        ("maximum", "table.maximum", Opt(U64_INT)), ("table64", "table.table64", BOOL),
        ("init", "table.init", Opt(EXPR)),
        ("style", "style", Const("caller-checks-signature", TableStyle.CallerChecksSignature))),
        parts={"table": TableType}), as_list=True)),
    ("memories", "memory_plans", List(Record(MemoryPlan, (
        ("minimum", "memory.minimum", U64_INT), ("maximum", "memory.maximum", Opt(U64_INT)),
        ("shared", "memory.shared", BOOL), ("memory64", "memory.memory64", BOOL),
        ("style", "style", MEMORY_STYLE), ("pre_guard_size", "pre_guard_size", U64_INT),
        ("offset_guard_size", "offset_guard_size", U64_INT)), parts={"memory": MemoryType}),
        as_list=True)),
    ("globals", "globals", List(Record(Global, (
        ("type", "type.content", VALTYPE), ("mutable", "type.mutable", BOOL),
        ("init", "init", Opt(EXPR))), parts={"type": GlobalType}), as_list=True)),
    ("tags", "tags", List(Record(TagType, (("type_index", "type_index", INDEX),),
                                 derived={"func_type": _tag_func_type}), as_list=True)),
    ("exports", "exports", Keyed("name", Record(EntityIndex, (
        ("kind", "kind", KIND), ("index", "index", INDEX))), True, "export", STR)),
    ("start_func", "start_func", Opt(INDEX)),
    ("memory_initialization", "memory_initialization", MEMORY_INIT),
    ("table_initialization", "table_initialization", TABLE_INITIALIZATION),
    ("passive_elements", "passive_elements", Keyed("index", Record(ElementSegment, (
        ("mode", "mode", Enum({"passive": "passive", "declarative": "declarative"}, "mode")),
        ("element", "element", VALTYPE), ("items", "items", ITEMS))), True, "element segment")),
    ("dropped_elements", "dropped_elements", List(INDEX)),
    ("passive_data", "passive_data_map", Keyed("index", RANGE, False, "data segment")),
    ("num_data_segments", "num_data_segments", INDEX),
    ("num_elem_segments", "num_elem_segments", INDEX),
), publish=("types",))

TUNABLES = Record(Tunables, [(f.name, f.name, BOOL if isinstance(f.default, bool) else U64_INT)
                             for f in dataclasses.fields(Tunables)])
CHUNK = Record(ChunkEntry, (("length", "length", U64_INT), ("offset", "offset", U64_INT),
                            ("item", "item", Opt(U64_INT))))
STORE = Record(StoreInfo, (("kind", "kind", STR), ("file_size", "file_size", U64_INT),
                           ("items", "items", U64_INT), ("blake2b", "blake2b", STR)))
CODE = Record(CodeEntry, (
    ("chunk", "chunk", CHUNK), ("module_offset", "module_offset", U64_INT),
    ("bodies", "bodies", Pairs()), ("elem_types", "elem_types", List(VALTYPE)),
    ("data_count", "data_count", Opt(INDEX))))
METADATA = Record(Metadata, (
    ("format", "format", STR), ("version", "version", INDEX), ("checksum", "checksum", Opt(STR)),
    ("tunables", "tunables", TUNABLES), ("data_align", "data_align", Opt(INDEX)),
    ("file_align", "file_align", INDEX), ("store", "store", Opt(STORE)),
    ("data_chunks", "data_chunks", List(CHUNK)), ("passive_chunks", "passive_chunks", List(CHUNK)),
    ("code", "code", Opt(CODE)), ("module", "module", MODULE)))


def encode(metadata: Metadata) -> dict:
    """The JSON document of ``metadata``."""
    return METADATA.encode(metadata)


def decode(doc) -> Metadata:
    """``doc``'s :class:`Metadata`; raises ArtifactError naming the first bad field."""
    return METADATA.decode(doc, "metadata", {})


def check_complete() -> None:
    """Raise ArtifactError if a dataclass of the model has a field the format does not store."""
    schema.check_complete(METADATA)
