"""Compiled artifacts: a :class:`ModuleTranslation` saved to a directory and mapped back zero-copy.

Layout of an artifact directory (format ``wasmenv-artifact``, version 1)::

    OUT/
      wasmenv-artifact.json   metadata: format name + version, blake2b checksum, tunables,
                              the whole Module, and where every data chunk lives in the store
      data/                   an mmap-ninja RaggedMmap of uint8 items (absent if no data bytes)
        data.ninja            the data file: every item back to back, no header
        starts/ ends/ ...     mmap-ninja's own index (validated against the metadata on load)

The data file holds ``translation.data``'s chunks (static images, or active segments) and
then ``translation.passive_data``'s, in order. mmap-ninja packs items with no alignment, so
zero-filled *padding items* are inserted before each image chunk: every chunk of
``translation.data`` of a Static module starts at a file offset that is a multiple of
``file_align`` (>= the host page size and the translation's ``data_align``). A runtime can
therefore ``mmap(MAP_PRIVATE)`` an image straight from the data file
(:func:`image_file_location`). Empty chunks are not stored (``item`` null). The metadata
records, per chunk, its length, its file offset and its mmap-ninja item index.

Loading (:func:`load_artifact`) never executes code (JSON only, no pickle or eval), checks
the checksum, validates every field (types, ranges, indices, data ranges against the chunk
layout, image alignment, plans against the stored tunables) and the sizes of every store
file *before* mapping anything, then maps the data file read-only (stdlib ``mmap``, so
loading never imports numpy): the translation's chunks are memoryviews over that mapping.
It does not read the data bytes (load time does not depend on their size) unless
``verify=True``, which hashes the data file against the blake2b recorded at save time.
Any problem is an :class:`~wasmenv.ArtifactError`.

Tunables: the artifact stores the tunables its memory plans were computed with.
``load_artifact(path, tunables)`` raises ArtifactError if they differ from the stored
ones (like Wasmtime refusing a module serialized with other settings): plans decide
reservation sizes and guard layout, so a silent mismatch would be a bug. Recompile.

Saving replaces nothing in place: the artifact is written to a temporary sibling directory
and renamed into place, so data files already mapped by a runtime are never modified.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .constexpr import _ARITH, ConstExpr
from .errors import ArtifactError
from .init import (MemoryInitialization, MemoryInitializer, StaticMemoryInitializer,
                   TableInitialization, TableInitializer)
from .module import ElementSegment, FunctionType, Global, Initializer, Module, ModuleType
from .plans import MemoryPlan, MemoryStyle, TablePlan, TableStyle
from .translation import MAX_FUNC_TABLE_SIZE, ModuleTranslation
from .tunables import Tunables
from .types import (ABSTRACT_HEAP_TYPES, WASM_PAGE_SIZE, EntityIndex, ExternKind, FuncType,
                    GlobalType, MemoryType, RefType, TableType, TagType, ValType, is_subtype)

__all__ = ["save_artifact", "load_artifact", "image_file_location", "validate_translation",
           "ArtifactInfo", "FORMAT_NAME", "FORMAT_VERSION", "METADATA_FILE", "STORE_DIR"]

FORMAT_NAME = "wasmenv-artifact"
FORMAT_VERSION = 1
METADATA_FILE = "wasmenv-artifact.json"
STORE_DIR = "data"
#: The store's data file, relative to the artifact directory (mmap-ninja's name).
DATA_FILE = os.path.join(STORE_DIR, "data.ninja")
STORE_KIND = "mmap_ninja.RaggedMmap[uint8]"
CHECKSUM_PREFIX = "blake2b-256:"

#: Metadata larger than this is refused before it is read.
MAX_METADATA_BYTES = 1 << 30
#: Largest alignment accepted in metadata (bytes).
MAX_ALIGN = 1 << 30
#: mmap-ninja items written per batch are grouped up to this many bytes.
_BATCH_BYTES = 64 << 20
#: Off only in tests: turn unexpected exceptions during load into ArtifactError.
_BACKSTOP = True

U32 = 1 << 32
U64 = 1 << 64

#: Nesting limit for value types inside value types (RefType -> FuncType -> RefType ...).
MAX_TYPE_DEPTH = 32

#: Fields of every stored dataclass; save refuses to drop a field it does not know.
_KNOWN_FIELDS = {
    TableType: {"element", "minimum", "maximum", "table64", "init"},
    MemoryType: {"minimum", "maximum", "shared", "memory64"},
    GlobalType: {"content", "mutable"},
    FuncType: {"params", "results"},
    TagType: {"type_index", "func_type"},
    MemoryPlan: {"memory", "style", "pre_guard_size", "offset_guard_size"},
    TablePlan: {"table", "style"},
    Global: {"type", "init"},
    FunctionType: {"signature", "anyfunc"},
    ModuleType: {"func"},
    ElementSegment: {"mode", "element", "items"},
    MemoryInitializer: {"memory_index", "base", "offset", "data", "expr", "memory64"},
    StaticMemoryInitializer: {"offset", "data"},
    TableInitializer: {"table_index", "base", "offset", "elements", "expr", "table64"},
    ConstExpr: {"ops"},
}

_MODULE_FIELDS = frozenset({
    "name", "initializers", "exports", "start_func", "table_initialization",
    "memory_initialization", "passive_elements", "dropped_elements", "passive_data_map",
    "num_data_segments", "num_elem_segments", "types", "num_imported_funcs",
    "num_imported_tables", "num_imported_memories", "num_imported_globals",
    "num_imported_tags", "num_escaped_funcs", "functions", "table_plans", "memory_plans",
    "globals", "tags"})


# =====================================================================================
# Public API
# =====================================================================================
@dataclass(frozen=True)
class ArtifactInfo:
    """Where a loaded translation's bytes live on disk (``translation.artifact``).

    ``data_offsets[i]`` is the file offset in ``data_file`` of ``translation.data.chunks[i]``
    (``passive_offsets`` likewise for ``translation.passive_data``). ``data_file`` is None
    when the artifact holds no data bytes at all. Offsets of static images are multiples
    of ``file_align``, itself a multiple of the host page size at load time.
    """

    directory: str
    metadata_path: str
    data_file: Optional[str]
    data_file_size: int
    data_offsets: Tuple[int, ...]
    passive_offsets: Tuple[int, ...]
    file_align: int
    tunables: Tunables
    #: The read-only ``mmap.mmap`` of ``data_file`` that the chunks are memoryviews of.
    mapping: object = field(default=None, compare=False, repr=False)
    _data_store: object = field(default=None, compare=False, repr=False)
    _data_starts: Tuple[int, ...] = field(default=(), compare=False, repr=False)

    def data_location(self, r: range) -> Tuple[str, int, int]:
        """``(path, file_offset, byte_len)`` of range ``r`` of ``translation.data``.

        Raises:
            ValueError: ``r`` is empty, not within one chunk, or there is no data file.
        """
        if self.data_file is None or len(r) == 0 or r.step != 1:
            raise ValueError(f"range {r} has no bytes in the artifact's data file")
        i = bisect.bisect_right(self._data_starts, r.start) - 1
        if i < 0:
            raise ValueError(f"range {r} is outside the data chunks")
        chunk = self._data_store.chunks[i]
        base = self._data_starts[i]
        if r.stop - base > len(chunk):
            raise ValueError(f"range {r} spans more than one data chunk")
        return self.data_file, self.data_offsets[i] + (r.start - base), len(r)


def image_file_location(translation: ModuleTranslation,
                        memory_index: int) -> Optional[Tuple[str, int, int]]:
    """Where memory ``memory_index``'s static image lives: ``(path, file_offset, byte_len)``.

    ``file_offset`` and ``byte_len`` are multiples of the host page size, so the runtime
    can ``mmap(path, byte_len, MAP_PRIVATE, offset=file_offset)`` at address
    ``base + init.offset`` (``init = module.memory_initialization.map[memory_index]``).

    Returns None when there is nothing to map from a file: the translation was not loaded
    from an artifact (or its data was replaced since), its initialization is Segmented, or
    this memory has no image.

    Raises:
        IndexError: ``memory_index`` is not a memory of the module.
    """
    n = len(translation.module.memory_plans)
    if not 0 <= memory_index < n:
        raise IndexError(f"memory {memory_index} out of range ({n} memories)")
    info = translation.artifact
    init = translation.module.memory_initialization
    if not isinstance(info, ArtifactInfo) or not isinstance(init, MemoryInitialization.Static):
        return None
    if translation.data is not info._data_store or len(translation.data.chunks) != len(info.data_offsets):
        return None  # the data was replaced after loading: the file no longer describes it
    entry = init.map[memory_index] if memory_index < len(init.map) else None
    if entry is None or len(entry.data) == 0:
        return None
    return info.data_location(entry.data)


def save_artifact(translation: ModuleTranslation, path, *, tunables: Tunables = None,
                  overwrite: bool = False) -> str:
    """Write ``translation`` as an artifact directory at ``path``; return its absolute path.

    ``tunables`` are the ones the translation's plans were computed with (default:
    ``translation.tunables`` if set, else the tunables of the artifact it was loaded from,
    else ``Tunables()``); they are checked against every memory plan.

    ``path`` must not exist, or be an empty directory; with ``overwrite=True`` it may also
    be an existing artifact, which is replaced atomically (rename), never rewritten in place.

    Raises:
        ArtifactError: the translation is inconsistent (it would not load back), or
            ``path`` is an existing artifact and ``overwrite`` is False.
        FileExistsError: ``path`` exists and is not an (empty dir or) artifact.
        OSError: writing failed (nothing is left at ``path`` then).
    """
    if tunables is None:
        tunables = translation.tunables
    if tunables is None:
        info = translation.artifact
        tunables = info.tunables if isinstance(info, ArtifactInfo) else Tunables()
    if not isinstance(tunables, Tunables):
        raise TypeError("tunables must be a wasmenv.Tunables")
    names = {f.name for f in dataclasses.fields(Module)}
    if names != _MODULE_FIELDS:  # pragma: no cover - guards future Module changes
        raise ArtifactError(f"cannot save artifact: Module fields changed "
                            f"(new: {sorted(names - _MODULE_FIELDS)}, gone: "
                            f"{sorted(_MODULE_FIELDS - names)}); update wasmenv/artifact.py")
    for cls, known in _KNOWN_FIELDS.items():
        new = {f.name for f in dataclasses.fields(cls)} - known
        if new:  # pragma: no cover - guards future model changes
            raise ArtifactError(f"cannot save artifact: {cls.__name__} has fields the format does "
                                f"not store ({sorted(new)}); update wasmenv/artifact.py")
    try:
        validate_translation(translation, tunables)
    except ArtifactError as exc:
        raise ArtifactError(f"cannot save artifact: {exc}") from None

    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    _check_destination(path, overwrite)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    try:
        data = [_byte_view(c) for c in translation.data.chunks]
        passive = [_byte_view(c) for c in translation.passive_data.chunks]
        file_align = max(translation.data_align or 1, _host_page_size())
        store, data_entries, passive_entries = _write_store(
            os.path.join(tmp, STORE_DIR), data, passive,
            file_align if translation.data_align is not None else None)
        doc = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "checksum": None,
            "tunables": _tunables_to_json(tunables),
            "data_align": translation.data_align,
            "file_align": file_align,
            "store": store,
            "data_chunks": data_entries,
            "passive_chunks": passive_entries,
            "module": _module_to_json(translation.module),
        }
        doc["checksum"] = metadata_checksum(doc)
        text = _dump(doc) + "\n"
        meta = os.path.join(tmp, METADATA_FILE)
        with open(meta, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        _install(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_artifact(path, tunables: Tunables = None, *, verify: bool = False) -> ModuleTranslation:
    """Load an artifact written by :func:`save_artifact`; data chunks map the file zero-copy.

    The returned translation has ``translation.artifact`` (an :class:`ArtifactInfo`) and
    ``translation.tunables``; ``translation.wasm`` is None. Nothing is mapped before every
    check passed, and a failed load leaves no file descriptor open. The data bytes are not
    read unless ``verify=True`` (then the data file is hashed against the checksum recorded
    at save time, before mapping).

    Raises:
        ArtifactError: missing or unreadable files, not an artifact, another format or
            version, bad checksum, invalid metadata, store files of the wrong size, image
            offsets not aligned for this host, ``tunables`` differing from the stored ones,
            or (``verify``) data bytes that changed.
    """
    if tunables is not None and not isinstance(tunables, Tunables):
        raise TypeError("tunables must be a wasmenv.Tunables")
    where = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path)
    try:
        return _load(path, tunables, verify)
    except ArtifactError:
        raise
    except OSError as exc:
        raise ArtifactError(f"artifact {where}: cannot read: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - backstop, see _BACKSTOP
        if not _BACKSTOP:
            raise
        raise ArtifactError(f"artifact {where}: invalid artifact "
                            f"({type(exc).__name__}: {exc})") from exc


def metadata_checksum(doc: dict) -> str:
    """The checksum recorded in (and checked against) a metadata document.

    blake2b-256 of the canonical JSON (sorted keys, no spaces) of ``doc`` without its
    ``checksum`` key. The store's file size and item count are part of ``doc``.
    """
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return CHECKSUM_PREFIX + hashlib.blake2b(text.encode("utf-8"), digest_size=32).hexdigest()


# =====================================================================================
# Validation of a translation (shared by save and load)
# =====================================================================================
def validate_translation(translation: ModuleTranslation, tunables: Tunables = None) -> None:
    """Check that ``translation`` is internally consistent (what :func:`load_artifact` checks).

    Every index in range, every constant expression well-typed, every data range within
    one chunk of its store, static images aligned and within their memory's minimum,
    memory plans equal to what ``tunables`` give (skipped if ``tunables`` is None).

    Raises:
        ArtifactError: the first inconsistency, with the field's path in the message.
    """
    if not isinstance(translation, ModuleTranslation):
        raise ArtifactError(f"not a ModuleTranslation: {type(translation).__name__}")
    data_lengths = [_chunk_len(c, f"data.chunks[{i}]") for i, c in enumerate(translation.data.chunks)]
    passive_lengths = [_chunk_len(c, f"passive_data.chunks[{i}]")
                       for i, c in enumerate(translation.passive_data.chunks)]
    _validate(translation.module, translation.data_align, data_lengths, passive_lengths, tunables)


def _chunk_len(chunk, where) -> int:
    try:
        return memoryview(chunk).nbytes
    except TypeError:
        raise ArtifactError(f"{where}: not a bytes-like object") from None


class _Chunks:
    """Chunk boundaries of a data store, for range checks."""

    def __init__(self, lengths: Sequence[int]):
        self.starts = []
        total = 0
        for n in lengths:
            self.starts.append(total)
            total += n
        self.lengths = list(lengths)
        self.total = total

    def index_of(self, r: range) -> Optional[int]:
        """The chunk holding non-empty ``r``, else None (or for empty ``r``)."""
        if len(r) == 0:
            return None
        i = bisect.bisect_right(self.starts, r.start) - 1
        return i if i >= 0 and r.stop - self.starts[i] <= self.lengths[i] else None


def _err(where: str, message: str):
    raise ArtifactError(f"{where}: {message}")


def _is_int(v) -> bool:
    return type(v) is int


def _check_int(v, where, lo=0, hi=None):
    if type(v) is not int:
        _err(where, f"expected an integer, got {_tname(v)}")
    if v < lo or (hi is not None and v > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        _err(where, f"{v} out of range {bound}")


def _tname(v) -> str:
    return "null" if v is None else type(v).__name__


def _check_range(r, chunks: _Chunks, where):
    if type(r) is not range or r.step != 1:
        _err(where, f"expected a range with step 1, got {r!r}")
    if not 0 <= r.start <= r.stop <= chunks.total:
        _err(where, f"range [{r.start}, {r.stop}) outside the {chunks.total} bytes of its store")
    if len(r) and chunks.index_of(r) is None:
        _err(where, f"range [{r.start}, {r.stop}) spans more than one data chunk")


def _is_pow2(v) -> bool:
    return _is_int(v) and v > 0 and v & (v - 1) == 0


class _Ctx:
    """What constant expressions and segments are checked against."""

    def __init__(self, module: Module):
        self.module = module
        self._item_ok = {}  # (signature, element type) -> is ref.func of it a subtype
        self.nfuncs = len(module.functions)
        self.globals = module.globals
        self.spaces = {
            ExternKind.FUNC: len(module.functions),
            ExternKind.TABLE: len(module.table_plans),
            ExternKind.MEMORY: len(module.memory_plans),
            ExternKind.GLOBAL: len(module.globals),
            ExternKind.TAG: len(module.tags),
        }

    def expr(self, e, expected: ValType, where: str, num_globals: int = None) -> None:
        """Type-check constant expression ``e`` producing ``expected``."""
        if type(e) is not ConstExpr or type(e.ops) is not tuple or not e.ops:
            _err(where, f"expected a non-empty constant expression, got {e!r}")
        if num_globals is None:
            num_globals = len(self.globals)
        stack: List[ValType] = []
        for k, item in enumerate(e.ops):
            w = f"{where}[{k}]"
            if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str:
                _err(w, f"malformed op {item!r}")
            op, imm = item
            if op in _CONST_BITS:
                _check_int(imm, w, 0, (1 << _CONST_BITS[op]) - 1)
                stack.append(_CONST_TYPES[op])
            elif op == "v128.const":
                if type(imm) is not bytes or len(imm) != 16:
                    _err(w, "v128.const needs 16 bytes")
                stack.append(ValType.V128)
            elif op == "global.get":
                _check_int(imm, w)
                if imm >= num_globals:
                    _err(w, f"global.get {imm}: only {num_globals} globals are visible here")
                g = self.globals[imm]
                if g.type.mutable:
                    _err(w, f"global.get {imm} of a mutable global in a constant expression")
                stack.append(g.type.content)
            elif op == "ref.null":
                _check_valtype(imm, w, ref=True)
                if _is_nonnullable(imm):
                    _err(w, "ref.null of a non-nullable type")
                stack.append(imm)
            elif op == "ref.func":
                self.func(imm, w)
                stack.append(self.func_ref_type(imm))
            elif op in _ARITH:
                if imm is not None:
                    _err(w, f"{op} takes no immediate")
                t = ValType.I32 if op.startswith("i32") else ValType.I64
                if len(stack) < 2 or stack[-1] is not t or stack[-2] is not t:
                    _err(w, f"{op} needs two {t} operands")
                stack.pop()
            else:
                _err(w, f"unknown constant operator {op!r}")
        if len(stack) != 1 or not _subtype(stack[0], expected):
            found = " ".join(str(s) for s in stack) or "nothing"
            _err(where, f"constant expression must produce [{expected}], produces [{found}]")

    def item(self, v, element: ValType, where: str) -> None:
        """An element item: function index (funcref only), None (null) or a ConstExpr."""
        if v is None:
            return
        if _is_int(v):
            if not 0 <= v < self.nfuncs:
                _err(where, f"function {v} out of range ({self.nfuncs} functions)")
            key = (self.module.functions[v].signature, element)
            ok = self._item_ok.get(key)
            if ok is None:
                ok = self._item_ok[key] = _subtype(self.func_ref_type(v), element)
            if not ok:
                _err(where, f"function index in a {element} segment")
            return
        self.expr(v, element, where)

    def items(self, items: tuple, element: ValType, where: str) -> None:
        """Check every item; plain function indices in one pass (segments can be huge)."""
        funcs = [v for v in items if type(v) is int]
        if funcs and min(funcs) >= 0 and max(funcs) < self.nfuncs:
            functions = self.module.functions
            for sig in {functions[v].signature for v in funcs}:
                key = (sig, element)
                ok = self._item_ok.get(key)
                if ok is None:
                    ok = self._item_ok[key] = _subtype(self.func_ref_type_of_sig(sig), element)
                if not ok:
                    break
            else:
                funcs = None  # all fine
        for j, v in enumerate(items):
            if v is None or (funcs is None and type(v) is int):
                continue
            self.item(v, element, f"{where}[{j}]")

    def func_ref_type_of_sig(self, sig: int):
        return RefType(False, self.module.types[sig].func)

    def func_ref_type(self, f: int):
        """The type of ``ref.func f``: ``(ref $sig)``."""
        return RefType(False, self.module.types[self.module.functions[f].signature].func)

    def base_global(self, g, want: ValType, where: str) -> None:
        if g is None:
            return
        _check_int(g, where)
        if g >= len(self.globals):
            _err(where, f"global {g} out of range ({len(self.globals)} globals)")
        gt = self.globals[g].type
        if gt.content is not want or gt.mutable:
            _err(where, f"base global {g} must be an immutable {want}")

    def func(self, f, where) -> None:
        _check_int(f, where, 0, U64)
        if f >= self.nfuncs:
            _err(where, f"function {f} out of range ({self.nfuncs} functions)")


_CONST_BITS = {"i32.const": 32, "i64.const": 64, "f32.const": 32, "f64.const": 64}
_CONST_TYPES = {"i32.const": ValType.I32, "i64.const": ValType.I64,
                "f32.const": ValType.F32, "f64.const": ValType.F64}


def _check_valtype(v, where, ref=False, depth=0):
    """A ValType, or (where wasmenv models typed references) a RefType."""
    if isinstance(v, ValType):
        if ref and not v.is_ref:
            _err(where, f"expected a reference type, got {v}")
        return
    if type(v) is not RefType:
        _err(where, f"expected a value type, got {v!r}")
    if depth >= MAX_TYPE_DEPTH:
        _err(where, "value types nested too deeply")
    if type(v.nullable) is not bool:
        _err(where, "RefType.nullable must be a bool")
    if isinstance(v.heap, str):
        if v.heap not in ABSTRACT_HEAP_TYPES:
            _err(where, f"unknown heap type {v.heap!r}")
    else:
        _check_functype(v.heap, f"{where}.heap", depth + 1)


def _check_functype(ft, where, depth=0):
    if type(ft) is not FuncType:
        _err(where, f"expected a FuncType, got {ft!r}")
    for part in ("params", "results"):
        vals = getattr(ft, part)
        if type(vals) is not tuple:
            _err(f"{where}.{part}", "expected a tuple")
        for k, v in enumerate(vals):
            _check_valtype(v, f"{where}.{part}[{k}]", depth=depth)


def _subtype(a, b) -> bool:
    """``a <: b`` (plain equality where wasmenv has no typed references)."""
    if a == b:
        return True
    return is_subtype(a, b)


def _is_nonnullable(t) -> bool:
    return type(t) is RefType and not t.nullable


def _check_str(v, where, optional=False):
    if v is None and optional:
        return
    if type(v) is not str:
        _err(where, f"expected a string, got {_tname(v)}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        _err(where, "string is not valid UTF-8 (lone surrogate)")


def _check_bool(v, where):
    if type(v) is not bool:
        _err(where, f"expected true/false, got {_tname(v)}")


def _validate(module: Module, data_align, data_lengths: Sequence[int],
              passive_lengths: Sequence[int], tunables: Optional[Tunables]) -> None:
    if not isinstance(module, Module):
        _err("module", f"expected a Module, got {_tname(module)}")
    m = module
    if data_align is not None and not (_is_pow2(data_align) and data_align <= MAX_ALIGN):
        _err("data_align", f"must be null or a power of two <= {MAX_ALIGN}, got {data_align!r}")
    data = _Chunks(data_lengths)
    passive = _Chunks(passive_lengths)

    _check_str(m.name, "module.name", optional=True)
    for fld in ("num_imported_funcs", "num_imported_tables", "num_imported_memories",
                "num_imported_globals", "num_imported_tags", "num_escaped_funcs",
                "num_data_segments", "num_elem_segments"):
        _check_int(getattr(m, fld), f"module.{fld}")
    for fld in ("types", "functions", "table_plans", "memory_plans", "globals", "tags",
                "initializers"):
        if type(getattr(m, fld)) is not list:
            _err(f"module.{fld}", f"expected a list, got {_tname(getattr(m, fld))}")

    # -- types -------------------------------------------------------------------------
    for i, t in enumerate(m.types):
        w = f"module.types[{i}]"
        if type(t) is not ModuleType:
            _err(w, f"expected a ModuleType(FuncType), got {t!r}")
        _check_functype(t.func, w)
    ntypes = len(m.types)

    # -- index spaces: counts of imports ------------------------------------------------
    for fld, space in (("num_imported_funcs", m.functions), ("num_imported_tables", m.table_plans),
                       ("num_imported_memories", m.memory_plans),
                       ("num_imported_globals", m.globals), ("num_imported_tags", m.tags)):
        if getattr(m, fld) > len(space):
            _err(f"module.{fld}", f"{getattr(m, fld)} imports but only {len(space)} entries")

    # -- functions -----------------------------------------------------------------------
    anyfuncs = set()
    for i, f in enumerate(m.functions):
        w = f"module.functions[{i}]"
        if type(f) is not FunctionType:
            _err(w, f"expected a FunctionType, got {f!r}")
        _check_int(f.signature, f"{w}.signature", 0, ntypes - 1 if ntypes else -1)
        if f.anyfunc is not None:
            _check_int(f.anyfunc, f"{w}.anyfunc", 0, m.num_escaped_funcs - 1)
            if f.anyfunc in anyfuncs:
                _err(f"{w}.anyfunc", f"anyfunc index {f.anyfunc} used twice")
            anyfuncs.add(f.anyfunc)
    if len(anyfuncs) != m.num_escaped_funcs:
        _err("module.num_escaped_funcs", f"{m.num_escaped_funcs} but {len(anyfuncs)} functions "
             f"escape (anyfunc indices must be dense)")

    # -- tables --------------------------------------------------------------------------
    for i, p in enumerate(m.table_plans):
        w = f"module.table_plans[{i}]"
        if type(p) is not TablePlan or type(p.table) is not TableType:
            _err(w, f"expected a TablePlan(TableType), got {p!r}")
        t = p.table
        _check_valtype(t.element, f"{w}.element", ref=True)
        _check_bool(t.table64, f"{w}.table64")
        cap = U64 - 1 if t.table64 else U32 - 1
        _check_int(t.minimum, f"{w}.minimum", 0, cap)
        if t.maximum is not None:
            _check_int(t.maximum, f"{w}.maximum", t.minimum, cap)
        if p.style is not TableStyle.CallerChecksSignature:
            _err(f"{w}.style", f"unknown table style {p.style!r}")

    # -- memories ------------------------------------------------------------------------
    for i, p in enumerate(m.memory_plans):
        w = f"module.memory_plans[{i}]"
        if type(p) is not MemoryPlan or type(p.memory) is not MemoryType:
            _err(w, f"expected a MemoryPlan(MemoryType), got {p!r}")
        mt = p.memory
        _check_bool(mt.shared, f"{w}.shared")
        _check_bool(mt.memory64, f"{w}.memory64")
        _check_int(mt.minimum, f"{w}.minimum", 0, mt.absolute_max_pages)
        if mt.maximum is not None:
            _check_int(mt.maximum, f"{w}.maximum", mt.minimum, mt.absolute_max_pages)
        elif mt.shared:
            _err(f"{w}.maximum", "a shared memory must have a maximum")
        if type(p.style) is MemoryStyle.Static:
            _check_int(p.style.bound_pages, f"{w}.style.bound_pages")
        elif type(p.style) is MemoryStyle.Dynamic:
            _check_int(p.style.reserve_bytes, f"{w}.style.reserve_bytes")
        else:
            _err(f"{w}.style", f"unknown memory style {p.style!r}")
        _check_int(p.pre_guard_size, f"{w}.pre_guard_size")
        _check_int(p.offset_guard_size, f"{w}.offset_guard_size")
        if tunables is not None:
            want = MemoryPlan.for_memory(mt, tunables)
            if p != want:
                _err(w, f"plan {p} is not what the tunables give ({want})")

    # -- globals ------------------------------------------------------------------------
    for i, g in enumerate(m.globals):
        w = f"module.globals[{i}]"
        if type(g) is not Global or type(g.type) is not GlobalType:
            _err(w, f"expected a Global(GlobalType), got {g!r}")
        _check_valtype(g.type.content, f"{w}.type")
        _check_bool(g.type.mutable, f"{w}.mutable")
    ctx = _Ctx(m)
    for i, g in enumerate(m.globals):
        w = f"module.globals[{i}].init"
        if i < m.num_imported_globals:
            if g.init is not None:
                _err(w, "an imported global has no initializer")
        else:
            ctx.expr(g.init, g.type.content, w, num_globals=i)

    for i, p in enumerate(m.table_plans):
        init = p.table.init
        w = f"module.table_plans[{i}].init"
        if init is not None:
            if i < m.num_imported_tables:
                _err(w, "an imported table has no initializer")
            # the table section precedes the global section: only imported globals are visible
            ctx.expr(init, p.table.element, w, num_globals=m.num_imported_globals)
        elif i >= m.num_imported_tables and _is_nonnullable(p.table.element):
            _err(w, "a defined table of a non-nullable type needs an initializer")

    # -- tags ------------------------------------------------------------------------------
    for i, t in enumerate(m.tags):
        w = f"module.tags[{i}]"
        if type(t) is not TagType:
            _err(w, f"expected a TagType, got {t!r}")
        _check_int(t.type_index, f"{w}.type_index", 0, ntypes - 1 if ntypes else -1)
        if t.func_type != m.types[t.type_index].func:
            _err(f"{w}.func_type", "differs from the type it names")
        if t.func_type.results:
            _err(f"{w}.func_type", "a tag's type has no results")

    # -- imports -------------------------------------------------------------------------
    counts = {k: 0 for k in ExternKind}
    for i, imp in enumerate(m.initializers):
        w = f"module.initializers[{i}]"
        if type(imp) is not Initializer.Import:
            _err(w, f"expected Initializer.Import, got {imp!r}")
        _check_str(imp.name, f"{w}.name")
        _check_str(imp.field, f"{w}.field")
        _check_entity(imp.index, f"{w}.index")
        kind, index = imp.index
        if index != counts[kind]:
            _err(f"{w}.index", f"imported {kind} {index} out of order (expected {counts[kind]})")
        counts[kind] += 1
    for kind, fld in ((ExternKind.FUNC, "num_imported_funcs"), (ExternKind.TABLE, "num_imported_tables"),
                      (ExternKind.MEMORY, "num_imported_memories"),
                      (ExternKind.GLOBAL, "num_imported_globals"), (ExternKind.TAG, "num_imported_tags")):
        if counts[kind] != getattr(m, fld):
            _err(f"module.{fld}", f"{getattr(m, fld)} but {counts[kind]} {kind} imports")

    # -- exports and start -----------------------------------------------------------------
    if type(m.exports) is not dict:
        _err("module.exports", f"expected a dict, got {_tname(m.exports)}")
    for name, index in m.exports.items():
        w = f"module.exports[{name!r}]"
        _check_str(name, w)
        _check_entity(index, w)
        if index.index >= ctx.spaces[index.kind]:
            _err(w, f"{index.kind} {index.index} out of range ({ctx.spaces[index.kind]})")
    if m.start_func is not None:
        ctx.func(m.start_func, "module.start_func")
        ft = m.types[m.functions[m.start_func].signature].func
        if ft.params or ft.results:
            _err("module.start_func", "the start function must take and return nothing")

    # -- memory initialization -------------------------------------------------------------
    mi = m.memory_initialization
    nmem = len(m.memory_plans)
    if type(mi) is MemoryInitialization.Segmented:
        if type(mi.initializers) is not tuple:
            _err("module.memory_initialization.initializers", "expected a tuple")
        for k, init in enumerate(mi.initializers):
            w = f"module.memory_initialization.initializers[{k}]"
            if type(init) is not MemoryInitializer:
                _err(w, f"expected a MemoryInitializer, got {init!r}")
            _check_int(init.memory_index, f"{w}.memory_index", 0, nmem - 1)
            mem64 = m.memory_plans[init.memory_index].memory.memory64
            _check_bool(init.memory64, f"{w}.memory64")
            if init.memory64 is not mem64:
                _err(f"{w}.memory64", "differs from the memory's index type")
            want = ValType.I64 if mem64 else ValType.I32
            ctx.base_global(init.base, want, f"{w}.base")
            _check_int(init.offset, f"{w}.offset", 0, (U64 if mem64 else U32) - 1)
            if init.expr is not None:
                if init.base is not None or init.offset != 0:
                    _err(w, "an initializer with an expression has no base and offset 0")
                ctx.expr(init.expr, want, f"{w}.expr")
            _check_range(init.data, data, f"{w}.data")
    elif type(mi) is MemoryInitialization.Static:
        if type(mi.map) is not tuple or len(mi.map) != nmem:
            _err("module.memory_initialization.map", f"expected a tuple of {nmem} entries")
        for k, init in enumerate(mi.map):
            w = f"module.memory_initialization.map[{k}]"
            if init is None:
                continue
            if type(init) is not StaticMemoryInitializer:
                _err(w, f"expected a StaticMemoryInitializer or None, got {init!r}")
            if k < m.num_imported_memories:
                _err(w, "an imported memory has no static image")
            if data_align is None:
                _err("data_align", "a Static initialization needs data_align")
            _check_int(init.offset, f"{w}.offset")
            _check_range(init.data, data, f"{w}.data")
            n = len(init.data)
            if n == 0:
                _err(f"{w}.data", "an image is never empty (None means no image)")
            if init.offset % data_align or n % data_align:
                _err(w, f"image at {init.offset} of {n} bytes is not aligned to {data_align}")
            limit = m.memory_plans[k].memory.minimum * WASM_PAGE_SIZE
            if init.offset + n > limit:
                _err(w, f"image [{init.offset}, {init.offset + n}) exceeds the memory's minimum "
                     f"size ({limit} bytes)")
            ci = data.index_of(init.data)
            if (init.data.start - data.starts[ci]) % data_align:
                _err(f"{w}.data", "image does not start at an aligned position of its chunk")
    else:
        _err("module.memory_initialization", f"unknown kind {mi!r}")

    # -- table initialization --------------------------------------------------------------
    ti = m.table_initialization
    ntab = len(m.table_plans)
    if type(ti) is TableInitialization.FuncTable:
        if type(ti.tables) is not tuple or len(ti.tables) != ntab:
            _err("module.table_initialization.tables", f"expected a tuple of {ntab} entries")
        for k, arr in enumerate(ti.tables):
            w = f"module.table_initialization.tables[{k}]"
            if arr is None:
                continue
            if type(arr) is not tuple:
                _err(w, "expected a tuple or None")
            t = m.table_plans[k].table
            if k < m.num_imported_tables or t.element is not ValType.FUNCREF:
                _err(w, "only defined funcref tables are folded")
            if len(arr) > min(t.minimum, MAX_FUNC_TABLE_SIZE):
                _err(w, f"{len(arr)} elements exceed the table minimum {t.minimum} "
                     f"(or {MAX_FUNC_TABLE_SIZE})")
            nf = ctx.nfuncs
            for j, f in enumerate(arr):
                if f is not None and (type(f) is not int or not 0 <= f < nf):
                    _err(f"{w}[{j}]", f"expected a function index < {nf} or None, got {f!r}")
        segments = ti.segments
    elif type(ti) is TableInitialization.Segments:
        segments = ti.segments
    else:
        _err("module.table_initialization", f"unknown kind {ti!r}")
    if type(segments) is not tuple:
        _err("module.table_initialization.segments", "expected a tuple")
    for k, seg in enumerate(segments):
        w = f"module.table_initialization.segments[{k}]"
        if type(seg) is not TableInitializer:
            _err(w, f"expected a TableInitializer, got {seg!r}")
        _check_int(seg.table_index, f"{w}.table_index", 0, ntab - 1)
        t = m.table_plans[seg.table_index].table
        _check_bool(seg.table64, f"{w}.table64")
        if seg.table64 is not t.table64:
            _err(f"{w}.table64", "differs from the table's index type")
        want = ValType.I64 if t.table64 else ValType.I32
        ctx.base_global(seg.base, want, f"{w}.base")
        _check_int(seg.offset, f"{w}.offset", 0, (U64 if t.table64 else U32) - 1)
        if seg.expr is not None:
            if seg.base is not None or seg.offset != 0:
                _err(w, "a segment with an expression has no base and offset 0")
            ctx.expr(seg.expr, want, f"{w}.expr")
        if type(seg.elements) is not tuple:
            _err(f"{w}.elements", "expected a tuple")
        ctx.items(seg.elements, t.element, f"{w}.elements")

    # -- element and data segments -----------------------------------------------------------
    if type(m.passive_elements) is not dict:
        _err("module.passive_elements", "expected a dict")
    for idx, seg in m.passive_elements.items():
        w = f"module.passive_elements[{idx!r}]"
        _check_int(idx, w, 0, m.num_elem_segments - 1)
        if type(seg) is not ElementSegment:
            _err(w, f"expected an ElementSegment, got {seg!r}")
        if seg.mode not in ("passive", "declarative"):
            _err(f"{w}.mode", f"unknown mode {seg.mode!r}")
        _check_valtype(seg.element, f"{w}.element", ref=True)
        if type(seg.items) is not tuple:
            _err(f"{w}.items", "expected a tuple")
        ctx.items(seg.items, seg.element, f"{w}.items")
    if type(m.dropped_elements) is not tuple:
        _err("module.dropped_elements", "expected a tuple")
    prev = -1
    for j, idx in enumerate(m.dropped_elements):
        w = f"module.dropped_elements[{j}]"
        _check_int(idx, w, prev + 1, m.num_elem_segments - 1)
        if idx in m.passive_elements:
            _err(w, f"element segment {idx} is both passive and dropped")
        prev = idx
    if type(m.passive_data_map) is not dict:
        _err("module.passive_data_map", "expected a dict")
    for idx, r in m.passive_data_map.items():
        w = f"module.passive_data_map[{idx!r}]"
        _check_int(idx, w, 0, m.num_data_segments - 1)
        _check_range(r, passive, w)


def _check_entity(index, where):
    if type(index) is not EntityIndex or not isinstance(index.kind, ExternKind):
        _err(where, f"expected an EntityIndex, got {index!r}")
    _check_int(index.index, where)


# =====================================================================================
# Objects -> JSON
# =====================================================================================
def _tunables_to_json(t: Tunables) -> dict:
    return {f.name: getattr(t, f.name) for f in dataclasses.fields(Tunables)}


def _range_json(r: range) -> list:
    return [r.start, r.stop]


def _vt_json(t):
    """A value type: its name, or ``{"ref": heap, "nullable": bool}`` for a typed reference
    (heap: an abstract heap type name, or a function type ``{"params", "results"}``)."""
    if isinstance(t, ValType):
        return t.value
    heap = t.heap if isinstance(t.heap, str) else _functype_json(t.heap)
    return {"ref": heap, "nullable": t.nullable}


def _functype_json(ft: FuncType) -> dict:
    return {"params": [_vt_json(v) for v in ft.params], "results": [_vt_json(v) for v in ft.results]}


def _expr_json(e: Optional[ConstExpr]):
    if e is None:
        return None
    out = []
    for op, imm in e.ops:
        if op == "v128.const":
            imm = bytes(imm).hex()
        elif op == "ref.null":
            imm = _vt_json(imm)
        out.append([op, imm])
    return out


def _item_json(v):
    if v is None or _is_int(v):
        return v
    return {"expr": _expr_json(v)}


def _table_init_json(s: TableInitializer) -> dict:
    return {"table": s.table_index, "base": s.base, "offset": s.offset,
            "expr": _expr_json(s.expr), "table64": s.table64,
            "elements": [_item_json(v) for v in s.elements]}


def _module_to_json(m: Module) -> dict:
    mi = m.memory_initialization
    if isinstance(mi, MemoryInitialization.Static):
        memory_init = {"kind": "static", "map": [
            None if e is None else {"offset": e.offset, "data": _range_json(e.data)} for e in mi.map]}
    else:
        memory_init = {"kind": "segmented", "initializers": [
            {"memory": i.memory_index, "base": i.base, "offset": i.offset,
             "expr": _expr_json(i.expr), "memory64": i.memory64, "data": _range_json(i.data)}
            for i in mi.initializers]}
    ti = m.table_initialization
    if isinstance(ti, TableInitialization.FuncTable):
        table_init = {"kind": "func_table",
                      "tables": [None if t is None else list(t) for t in ti.tables],
                      "segments": [_table_init_json(s) for s in ti.segments]}
    else:
        table_init = {"kind": "segments", "segments": [_table_init_json(s) for s in ti.segments]}
    return {
        "name": m.name,
        "types": [_functype_json(t.func) for t in m.types],
        "num_imported": {"funcs": m.num_imported_funcs, "tables": m.num_imported_tables,
                         "memories": m.num_imported_memories, "globals": m.num_imported_globals,
                         "tags": m.num_imported_tags},
        "imports": [{"module": i.name, "field": i.field, "kind": str(i.index.kind),
                     "index": i.index.index} for i in m.initializers],
        "functions": [[f.signature, f.anyfunc] for f in m.functions],
        "num_escaped_funcs": m.num_escaped_funcs,
        "tables": [{"element": _vt_json(p.table.element), "minimum": p.table.minimum,
                    "maximum": p.table.maximum, "table64": p.table.table64,
                    "init": _expr_json(p.table.init),
                    "style": "caller-checks-signature"} for p in m.table_plans],
        "memories": [{"minimum": p.memory.minimum, "maximum": p.memory.maximum,
                      "shared": p.memory.shared, "memory64": p.memory.memory64,
                      "style": ({"kind": "static", "bound_pages": p.style.bound_pages}
                                if isinstance(p.style, MemoryStyle.Static)
                                else {"kind": "dynamic", "reserve_bytes": p.style.reserve_bytes}),
                      "pre_guard_size": p.pre_guard_size,
                      "offset_guard_size": p.offset_guard_size} for p in m.memory_plans],
        "globals": [{"type": _vt_json(g.type.content), "mutable": g.type.mutable,
                     "init": _expr_json(g.init)} for g in m.globals],
        "tags": [{"type_index": t.type_index} for t in m.tags],
        "exports": [{"name": name, "kind": str(idx.kind), "index": idx.index}
                    for name, idx in m.exports.items()],
        "start_func": m.start_func,
        "memory_initialization": memory_init,
        "table_initialization": table_init,
        "passive_elements": [{"index": i, "mode": s.mode, "element": _vt_json(s.element),
                              "items": [_item_json(v) for v in s.items]}
                             for i, s in m.passive_elements.items()],
        "dropped_elements": list(m.dropped_elements),
        "passive_data": [{"index": i, "data": _range_json(r)} for i, r in m.passive_data_map.items()],
        "num_data_segments": m.num_data_segments,
        "num_elem_segments": m.num_elem_segments,
    }


def _dump(v, indent: str = "") -> str:
    """Readable JSON: one object key per line; short lists inline, long ones wrapped."""
    inner = indent + "  "
    if isinstance(v, dict):
        if not v:
            return "{}"
        parts = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dump(x, inner)}" for k, x in v.items()]
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        flat = not any(isinstance(x, dict) or (isinstance(x, list) and any(
            isinstance(y, (dict, list)) for y in x)) for x in v)
        if flat:
            compact = json.dumps(v, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
            if len(compact) <= 100:
                return compact
            per_line = 16 if all(not isinstance(x, list) for x in v) else 6
            items = [json.dumps(x, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
                     for x in v]
            lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
            return "[\n" + ",\n".join(inner + ln for ln in lines) + "\n" + indent + "]"
        return "[\n" + ",\n".join(inner + _dump(x, inner) for x in v) + "\n" + indent + "]"
    return json.dumps(v, ensure_ascii=False, allow_nan=False)


# =====================================================================================
# JSON -> objects (structural checks; semantics in _validate)
# =====================================================================================
def _obj(v, where, keys) -> dict:
    if type(v) is not dict:
        _err(where, f"expected an object, got {_tname(v)}")
    have = set(v)
    want = set(keys)
    if have != want:
        missing = sorted(want - have)
        extra = sorted(have - want)
        msg = []
        if missing:
            msg.append(f"missing {', '.join(missing)}")
        if extra:
            msg.append(f"unknown {', '.join(extra)}")
        _err(where, "; ".join(msg))
    return v


def _lst(v, where, length=None) -> list:
    if type(v) is not list:
        _err(where, f"expected a list, got {_tname(v)}")
    if length is not None and len(v) != length:
        _err(where, f"expected {length} entries, got {len(v)}")
    return v


def _int(v, where, lo=0, hi=None) -> int:
    _check_int(v, where, lo, hi)
    return v


def _opt_int(v, where, lo=0, hi=None) -> Optional[int]:
    return None if v is None else _int(v, where, lo, hi)


def _bool(v, where) -> bool:
    _check_bool(v, where)
    return v


def _str(v, where, optional=False):
    _check_str(v, where, optional)
    return v


_VALTYPES = {t.value: t for t in ValType}
_KINDS = {str(k): k for k in ExternKind}


def _valtype(v, where) -> ValType:
    t = _VALTYPES.get(v) if type(v) is str else None
    if t is None:
        _err(where, f"unknown value type {v!r}")
    return t


def _vt(v, where, depth=0):
    """A value type from JSON (see :func:`_vt_json`)."""
    if type(v) is str:
        return _valtype(v, where)
    if type(v) is not dict:
        _err(where, f"unknown value type {v!r}")
    if depth >= MAX_TYPE_DEPTH:
        _err(where, "value types nested too deeply")
    o = _obj(v, where, ("ref", "nullable"))
    nullable = _bool(o["nullable"], f"{where}.nullable")
    heap = o["ref"]
    if type(heap) is not str:
        heap = _functype(heap, f"{where}.ref", depth + 1)
    try:
        return RefType(nullable, heap)  # rejects unknown heaps and non-canonical forms
    except (ValueError, TypeError) as exc:
        _err(where, str(exc))


def _functype(v, where, depth=0) -> FuncType:
    o = _obj(v, where, ("params", "results"))
    return FuncType(
        tuple(_vt(x, f"{where}.params[{k}]", depth) for k, x in enumerate(_lst(o["params"], f"{where}.params"))),
        tuple(_vt(x, f"{where}.results[{k}]", depth) for k, x in enumerate(_lst(o["results"], f"{where}.results"))))


def _kind(v, where) -> ExternKind:
    k = _KINDS.get(v) if type(v) is str else None
    if k is None:
        _err(where, f"unknown extern kind {v!r}")
    return k


def _range(v, where) -> range:
    a, b = _lst(v, where, 2)
    a = _int(a, f"{where}[0]", 0, U64)
    b = _int(b, f"{where}[1]", a, U64)
    return range(a, b)


def _expr(v, where) -> ConstExpr:
    ops = []
    for k, item in enumerate(_lst(v, where)):
        w = f"{where}[{k}]"
        op, imm = _lst(item, w, 2)
        if type(op) is not str:
            _err(w, f"expected an operator name, got {_tname(op)}")
        if op == "v128.const":
            if type(imm) is not str or len(imm) != 32:
                _err(w, "v128.const needs 32 hex digits")
            try:
                imm = bytes.fromhex(imm)
            except ValueError:
                _err(w, "v128.const needs 32 hex digits")
        elif op == "ref.null":
            imm = _vt(imm, w)
        elif op in _ARITH:
            if imm is not None:
                _err(w, f"{op} takes no immediate")
        elif op in _CONST_BITS or op in ("global.get", "ref.func"):
            imm = _int(imm, w, 0, U64)
        else:
            _err(w, f"unknown constant operator {op!r}")
        ops.append((op, imm))
    if not ops:
        _err(where, "empty constant expression")
    return ConstExpr(tuple(ops))


def _opt_expr(v, where) -> Optional[ConstExpr]:
    return None if v is None else _expr(v, where)


def _item(v, where):
    if v is None:
        return None
    if _is_int(v):
        return _int(v, where)
    return _expr(_obj(v, where, ("expr",))["expr"], f"{where}.expr")


def _is_index(v) -> bool:
    return type(v) is int and v >= 0


def _items(v, where) -> tuple:
    """Element items: ints and nulls checked in one pass, expressions one by one."""
    v = _lst(v, where)
    if all(x is None or (type(x) is int and x >= 0) for x in v):
        return tuple(v)
    return tuple(_item(x, f"{where}[{j}]") for j, x in enumerate(v))


def _table_init(v, where) -> TableInitializer:
    o = _obj(v, where, ("table", "base", "offset", "expr", "table64", "elements"))
    return TableInitializer(
        _int(o["table"], f"{where}.table"), _opt_int(o["base"], f"{where}.base"),
        _int(o["offset"], f"{where}.offset", 0, U64),
        _items(o["elements"], f"{where}.elements"),
        _opt_expr(o["expr"], f"{where}.expr"), _bool(o["table64"], f"{where}.table64"))


_MODULE_KEYS = ("name", "types", "num_imported", "imports", "functions", "num_escaped_funcs",
                "tables", "memories", "globals", "tags", "exports", "start_func",
                "memory_initialization", "table_initialization", "passive_elements",
                "dropped_elements", "passive_data", "num_data_segments", "num_elem_segments")


def _module_from_json(v) -> Module:
    w = "module"
    o = _obj(v, w, _MODULE_KEYS)
    m = Module()
    m.name = _str(o["name"], f"{w}.name", optional=True)
    types = []
    for i, t in enumerate(_lst(o["types"], f"{w}.types")):
        tw = f"{w}.types[{i}]"
        types.append(ModuleType(_functype(t, tw)))
    m.types = types
    ni = _obj(o["num_imported"], f"{w}.num_imported", ("funcs", "tables", "memories", "globals", "tags"))
    m.num_imported_funcs = _int(ni["funcs"], f"{w}.num_imported.funcs")
    m.num_imported_tables = _int(ni["tables"], f"{w}.num_imported.tables")
    m.num_imported_memories = _int(ni["memories"], f"{w}.num_imported.memories")
    m.num_imported_globals = _int(ni["globals"], f"{w}.num_imported.globals")
    m.num_imported_tags = _int(ni["tags"], f"{w}.num_imported.tags")
    imports = []
    for i, imp in enumerate(_lst(o["imports"], f"{w}.imports")):
        iw = f"{w}.imports[{i}]"
        imp = _obj(imp, iw, ("module", "field", "kind", "index"))
        imports.append(Initializer.Import(
            _str(imp["module"], f"{iw}.module"), _str(imp["field"], f"{iw}.field"),
            EntityIndex(_kind(imp["kind"], f"{iw}.kind"), _int(imp["index"], f"{iw}.index"))))
    m.initializers = imports
    functions = []
    for i, f in enumerate(_lst(o["functions"], f"{w}.functions")):
        if type(f) is list and len(f) == 2 and _is_index(f[0]) and (f[1] is None or _is_index(f[1])):
            functions.append(FunctionType(f[0], f[1]))  # the common case, checked in one go
            continue
        fw = f"{w}.functions[{i}]"
        sig, anyfunc = _lst(f, fw, 2)
        functions.append(FunctionType(_int(sig, f"{fw}[0]"), _opt_int(anyfunc, f"{fw}[1]")))
    m.functions = functions
    m.num_escaped_funcs = _int(o["num_escaped_funcs"], f"{w}.num_escaped_funcs")
    tables = []
    for i, t in enumerate(_lst(o["tables"], f"{w}.tables")):
        tw = f"{w}.tables[{i}]"
        t = _obj(t, tw, ("element", "minimum", "maximum", "table64", "init", "style"))
        if t["style"] != "caller-checks-signature":
            _err(f"{tw}.style", f"unknown table style {t['style']!r}")
        args = (_vt(t["element"], f"{tw}.element"), _int(t["minimum"], f"{tw}.minimum", 0, U64),
                _opt_int(t["maximum"], f"{tw}.maximum", 0, U64), _bool(t["table64"], f"{tw}.table64"))
        init = _opt_expr(t["init"], f"{tw}.init")
        tt = TableType(*args, init=init)
        tables.append(TablePlan(tt, TableStyle.CallerChecksSignature))
    m.table_plans = tables
    memories = []
    for i, p in enumerate(_lst(o["memories"], f"{w}.memories")):
        pw = f"{w}.memories[{i}]"
        p = _obj(p, pw, ("minimum", "maximum", "shared", "memory64", "style", "pre_guard_size",
                         "offset_guard_size"))
        mt = MemoryType(_int(p["minimum"], f"{pw}.minimum", 0, U64), _opt_int(p["maximum"], f"{pw}.maximum", 0, U64),
                        _bool(p["shared"], f"{pw}.shared"), _bool(p["memory64"], f"{pw}.memory64"))
        s = p["style"]
        kind = s.get("kind") if type(s) is dict else None
        if kind == "static":
            s = _obj(s, f"{pw}.style", ("kind", "bound_pages"))
            style = MemoryStyle.Static(_int(s["bound_pages"], f"{pw}.style.bound_pages", 0, U64))
        elif kind == "dynamic":
            s = _obj(s, f"{pw}.style", ("kind", "reserve_bytes"))
            style = MemoryStyle.Dynamic(_int(s["reserve_bytes"], f"{pw}.style.reserve_bytes", 0, U64))
        else:
            _err(f"{pw}.style", "expected {\"kind\": \"static\"|\"dynamic\", ...}")
        memories.append(MemoryPlan(mt, style, _int(p["pre_guard_size"], f"{pw}.pre_guard_size", 0, U64),
                                   _int(p["offset_guard_size"], f"{pw}.offset_guard_size", 0, U64)))
    m.memory_plans = memories
    globals_ = []
    for i, g in enumerate(_lst(o["globals"], f"{w}.globals")):
        gw = f"{w}.globals[{i}]"
        g = _obj(g, gw, ("type", "mutable", "init"))
        globals_.append(Global(GlobalType(_vt(g["type"], f"{gw}.type"), _bool(g["mutable"], f"{gw}.mutable")),
                               _opt_expr(g["init"], f"{gw}.init")))
    m.globals = globals_
    tags = []
    for i, t in enumerate(_lst(o["tags"], f"{w}.tags")):
        tw = f"{w}.tags[{i}]"
        ti = _int(_obj(t, tw, ("type_index",))["type_index"], f"{tw}.type_index", 0, len(types) - 1)
        tags.append(TagType(ti, types[ti].func))
    m.tags = tags
    exports: Dict[str, EntityIndex] = {}
    for i, e in enumerate(_lst(o["exports"], f"{w}.exports")):
        ew = f"{w}.exports[{i}]"
        e = _obj(e, ew, ("name", "kind", "index"))
        name = _str(e["name"], f"{ew}.name")
        if name in exports:
            _err(f"{ew}.name", f"duplicate export {name!r}")
        exports[name] = EntityIndex(_kind(e["kind"], f"{ew}.kind"), _int(e["index"], f"{ew}.index"))
    m.exports = exports
    m.start_func = _opt_int(o["start_func"], f"{w}.start_func")

    mw = f"{w}.memory_initialization"
    mi = o["memory_initialization"]
    kind = mi.get("kind") if type(mi) is dict else None
    if kind == "static":
        mi = _obj(mi, mw, ("kind", "map"))
        entries = []
        for k, e in enumerate(_lst(mi["map"], f"{mw}.map")):
            ew = f"{mw}.map[{k}]"
            if e is None:
                entries.append(None)
                continue
            e = _obj(e, ew, ("offset", "data"))
            entries.append(StaticMemoryInitializer(_int(e["offset"], f"{ew}.offset", 0, U64),
                                                   _range(e["data"], f"{ew}.data")))
        m.memory_initialization = MemoryInitialization.Static(tuple(entries))
    elif kind == "segmented":
        mi = _obj(mi, mw, ("kind", "initializers"))
        inits = []
        for k, e in enumerate(_lst(mi["initializers"], f"{mw}.initializers")):
            ew = f"{mw}.initializers[{k}]"
            e = _obj(e, ew, ("memory", "base", "offset", "expr", "memory64", "data"))
            inits.append(MemoryInitializer(
                _int(e["memory"], f"{ew}.memory"), _opt_int(e["base"], f"{ew}.base"),
                _int(e["offset"], f"{ew}.offset", 0, U64), _range(e["data"], f"{ew}.data"),
                _opt_expr(e["expr"], f"{ew}.expr"), _bool(e["memory64"], f"{ew}.memory64")))
        m.memory_initialization = MemoryInitialization.Segmented(tuple(inits))
    else:
        _err(mw, "expected {\"kind\": \"static\"|\"segmented\", ...}")

    tw = f"{w}.table_initialization"
    ti = o["table_initialization"]
    kind = ti.get("kind") if type(ti) is dict else None
    if kind == "func_table":
        ti = _obj(ti, tw, ("kind", "tables", "segments"))
        arrays = []
        for k, arr in enumerate(_lst(ti["tables"], f"{tw}.tables")):
            aw = f"{tw}.tables[{k}]"
            if arr is None:
                arrays.append(None)
                continue
            arr = _lst(arr, aw)
            if not all(f is None or (type(f) is int and f >= 0) for f in arr):
                for j, f in enumerate(arr):
                    _opt_int(f, f"{aw}[{j}]")
            arrays.append(tuple(arr))
        segs = tuple(_table_init(s, f"{tw}.segments[{k}]") for k, s in enumerate(_lst(ti["segments"], f"{tw}.segments")))
        m.table_initialization = TableInitialization.FuncTable(tuple(arrays), segs)
    elif kind == "segments":
        ti = _obj(ti, tw, ("kind", "segments"))
        segs = tuple(_table_init(s, f"{tw}.segments[{k}]") for k, s in enumerate(_lst(ti["segments"], f"{tw}.segments")))
        m.table_initialization = TableInitialization.Segments(segs)
    else:
        _err(tw, "expected {\"kind\": \"func_table\"|\"segments\", ...}")

    passive_elements = {}
    for i, s in enumerate(_lst(o["passive_elements"], f"{w}.passive_elements")):
        sw = f"{w}.passive_elements[{i}]"
        s = _obj(s, sw, ("index", "mode", "element", "items"))
        idx = _int(s["index"], f"{sw}.index")
        if idx in passive_elements:
            _err(f"{sw}.index", f"element segment {idx} listed twice")
        mode = s["mode"]
        if mode not in ("passive", "declarative"):
            _err(f"{sw}.mode", f"unknown mode {mode!r}")
        passive_elements[idx] = ElementSegment(mode, _vt(s["element"], f"{sw}.element"),
                                               _items(s["items"], f"{sw}.items"))
    m.passive_elements = passive_elements
    m.dropped_elements = tuple(_int(x, f"{w}.dropped_elements[{j}]")
                               for j, x in enumerate(_lst(o["dropped_elements"], f"{w}.dropped_elements")))
    passive_data = {}
    for i, s in enumerate(_lst(o["passive_data"], f"{w}.passive_data")):
        sw = f"{w}.passive_data[{i}]"
        s = _obj(s, sw, ("index", "data"))
        idx = _int(s["index"], f"{sw}.index")
        if idx in passive_data:
            _err(f"{sw}.index", f"data segment {idx} listed twice")
        passive_data[idx] = _range(s["data"], f"{sw}.data")
    m.passive_data_map = passive_data
    m.num_data_segments = _int(o["num_data_segments"], f"{w}.num_data_segments")
    m.num_elem_segments = _int(o["num_elem_segments"], f"{w}.num_elem_segments")
    return m


def _tunables_from_json(v) -> Tunables:
    fields_ = dataclasses.fields(Tunables)
    o = _obj(v, "tunables", [f.name for f in fields_])
    kw = {}
    for f in fields_:
        default = f.default
        if isinstance(default, bool):
            kw[f.name] = _bool(o[f.name], f"tunables.{f.name}")
        else:
            kw[f.name] = _int(o[f.name], f"tunables.{f.name}", 0, U64)
    try:
        return Tunables(**kw)
    except (ValueError, TypeError) as exc:
        _err("tunables", str(exc))


# =====================================================================================
# The mmap-ninja store
# =====================================================================================
def _host_page_size() -> int:
    import mmap
    return mmap.PAGESIZE


def _byte_view(chunk) -> memoryview:
    mv = memoryview(chunk)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


def _write_store(store_dir: str, data: List[memoryview], passive: List[memoryview],
                 align: Optional[int]):
    """Write every chunk (plus padding items) as a RaggedMmap; return (store, entries...)."""
    import numpy as np
    from mmap_ninja import RaggedMmap

    items = []
    pos = 0
    digest = hashlib.blake2b(digest_size=32)

    def add(buf) -> int:
        nonlocal pos
        items.append(buf)
        digest.update(buf)
        pos += len(buf)
        return len(items) - 1

    def entries(chunks, aligned):
        out = []
        for c in chunks:
            n = len(c)
            if n == 0:
                out.append({"length": 0, "offset": pos, "item": None})
                continue
            if aligned and pos % align:
                add(bytes(-pos % align))  # a padding item: zeros up to the next aligned offset
            out.append({"length": n, "offset": pos, "item": len(items)})
            add(c)
        return out

    data_entries = entries(data, align is not None)
    passive_entries = entries(passive, False)
    if not items:
        return None, data_entries, passive_entries

    rm = None
    batch: list = []
    size = 0

    def flush():
        nonlocal rm, batch, size
        arrays = [np.frombuffer(b, dtype=np.uint8) for b in batch]
        if rm is None:
            rm = RaggedMmap.from_lists(store_dir, arrays, dtype=np.uint8)
        else:
            rm.extend(arrays)
        batch, size = [], 0

    for buf in items:
        if batch and size + len(buf) > _BATCH_BYTES:
            flush()
        batch.append(buf)
        size += len(buf)
    flush()
    starts = [int(x) for x in rm.starts]
    ends = [int(x) for x in rm.ends]
    rm = None  # drop mmap-ninja's read-write maps (and their file descriptors)
    size = os.path.getsize(os.path.join(store_dir, "data.ninja"))
    if size != pos or len(starts) != len(items) or (starts and ends[-1] != pos):  # pragma: no cover
        raise ArtifactError(f"mmap-ninja wrote {size} bytes / {len(starts)} items, "
                            f"expected {pos} / {len(items)}")
    with open(os.path.join(store_dir, "data.ninja"), "rb+") as f:
        os.fsync(f.fileno())
    store = {"kind": STORE_KIND, "file_size": pos, "items": len(items),
             "blake2b": digest.hexdigest()}
    return store, data_entries, passive_entries


def _read_small(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{path}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ArtifactError(f"{path}: unexpectedly large ({st.st_size} bytes)")
    return data


def _expect_file(path: str, content: bytes, what: str):
    try:
        got = _read_small(path, max(64, len(content)))
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {path}") from None
    if got != content:
        raise ArtifactError(f"store file {path} ({what}) is {got[:32]!r}, expected {content!r}")


def _file_size(path: str) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactError(f"missing store file {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path}: not a regular file")
    return st.st_size


def _check_numpy_dir(d: str, dtype: str, shape: Tuple[int, ...], itemsize: int,
                     kind: Optional[bytes]):
    """Check an mmap-ninja numpy directory's data size and side files."""
    want = itemsize
    for n in shape:
        want *= n
    got = _file_size(os.path.join(d, "data.ninja"))
    if got != want:
        raise ArtifactError(f"store file {os.path.join(d, 'data.ninja')} has {got} bytes, "
                            f"the metadata says {want} (truncated or replaced?)")
    _expect_file(os.path.join(d, "dtype.ninja"), dtype.encode(), "dtype")
    _expect_file(os.path.join(d, "order.ninja"), b"C", "order")
    _expect_file(os.path.join(d, "shape.ninja"), b"".join(struct.pack("<Q", n) for n in shape), "shape")
    if kind is not None:
        _expect_file(os.path.join(d, "type.ninja"), kind, "type")


def _read_int64s(path: str, n: int) -> List[int]:
    raw = _read_small(path, 8 * n)
    if len(raw) != 8 * n:
        raise ArtifactError(f"{path}: {len(raw)} bytes, expected {8 * n}")
    return list(struct.unpack(f"<{n}q", raw))


# =====================================================================================
# Loading
# =====================================================================================
def _reject_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


def _chunk_entries(v, where, file_size: int, items: int):
    out = []
    for i, e in enumerate(_lst(v, where)):
        ew = f"{where}[{i}]"
        e = _obj(e, ew, ("length", "offset", "item"))
        length = _int(e["length"], f"{ew}.length", 0, U64)
        offset = _int(e["offset"], f"{ew}.offset", 0, file_size)
        item = _opt_int(e["item"], f"{ew}.item", 0, max(items - 1, 0))
        if (item is None) != (length == 0):
            _err(ew, "a chunk has an item exactly when it is not empty")
        if item is not None and items == 0:
            _err(f"{ew}.item", "the artifact has no store")
        if offset + length > file_size:
            _err(ew, f"[{offset}, {offset + length}) is outside the {file_size}-byte data file")
        out.append((length, offset, item))
    return out


def _load(path, tunables: Optional[Tunables], verify: bool) -> ModuleTranslation:
    directory = os.path.abspath(os.fspath(path))
    if isinstance(directory, bytes):
        directory = os.fsdecode(directory)

    def fail(message):
        raise ArtifactError(f"artifact {directory}: {message}") from None

    if not os.path.exists(directory):
        fail("does not exist")
    if not os.path.isdir(directory):
        fail("is not a directory (an artifact is a directory written by save_artifact)")
    meta_path = os.path.join(directory, METADATA_FILE)
    if not os.path.exists(meta_path):
        fail(f"not a wasmenv artifact (no {METADATA_FILE})")
    try:
        raw = _read_small(meta_path, MAX_METADATA_BYTES)
    except ArtifactError as exc:
        fail(str(exc))
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                         parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        fail(f"{METADATA_FILE} is not valid JSON: {exc}")
    if type(doc) is not dict or doc.get("format") != FORMAT_NAME:
        fail(f"not a wasmenv artifact ({METADATA_FILE} has no \"format\": \"{FORMAT_NAME}\")")
    version = doc.get("version")
    if version != FORMAT_VERSION or type(version) is not int:
        fail(f"format version {version!r}, this wasmenv reads version {FORMAT_VERSION} only "
             f"(recompile the module)")
    checksum = doc.get("checksum")
    try:
        expected = metadata_checksum(doc)
    except (ValueError, RecursionError) as exc:
        fail(f"metadata cannot be checksummed: {exc}")
    if checksum != expected:
        fail(f"metadata checksum mismatch ({METADATA_FILE} was edited or corrupted)")

    try:
        _obj(doc, "metadata", ("format", "version", "checksum", "tunables", "data_align",
                               "file_align", "store", "data_chunks", "passive_chunks", "module"))
        stored_tunables = _tunables_from_json(doc["tunables"])
        data_align = doc["data_align"]
        if data_align is not None:
            if not _is_pow2(data_align) or data_align > MAX_ALIGN:
                _err("data_align", f"must be null or a power of two <= {MAX_ALIGN}")
        file_align = doc["file_align"]
        if not _is_pow2(file_align) or file_align > MAX_ALIGN:
            _err("file_align", f"must be a power of two <= {MAX_ALIGN}")
        store = doc["store"]
        if store is None:
            file_size, items = 0, 0
        else:
            store = _obj(store, "store", ("kind", "file_size", "items", "blake2b"))
            if store["kind"] != STORE_KIND:
                _err("store.kind", f"expected {STORE_KIND!r}, got {store['kind']!r}")
            file_size = _int(store["file_size"], "store.file_size", 1, U64)
            items = _int(store["items"], "store.items", 1, file_size)
            digest = store["blake2b"]
            if type(digest) is not str or len(digest) != 64:
                _err("store.blake2b", "expected 64 hex digits")
        data_entries = _chunk_entries(doc["data_chunks"], "data_chunks", file_size, items)
        passive_entries = _chunk_entries(doc["passive_chunks"], "passive_chunks", file_size, items)
        module = _module_from_json(doc["module"])
        _validate(module, data_align, [e[0] for e in data_entries], [e[0] for e in passive_entries],
                  stored_tunables)
        # Chunks are stored in order, without overlap; items strictly increasing.
        end, last_item = 0, -1
        for where, entries in (("data_chunks", data_entries), ("passive_chunks", passive_entries)):
            for i, (length, offset, item) in enumerate(entries):
                if offset < end:
                    _err(f"{where}[{i}].offset", f"{offset} overlaps the previous chunk (ends at {end})")
                if item is not None:
                    if item <= last_item:
                        _err(f"{where}[{i}].item", "items must be in increasing order")
                    last_item = item
                end = offset + length
        # Static images: file offsets must be mappable on this host.
        mi = module.memory_initialization
        page = _host_page_size()
        if isinstance(mi, MemoryInitialization.Static) and any(e is not None for e in mi.map):
            if data_align % page or file_align % page or file_align < data_align:
                _err("data_align", f"images aligned to {data_align} bytes (file: {file_align}) "
                     f"cannot be mapped with {page}-byte host pages: recompile on this host")
            chunks = _Chunks([e[0] for e in data_entries])
            for k, init in enumerate(mi.map):
                if init is None:
                    continue
                ci = chunks.index_of(init.data)
                off = data_entries[ci][1] + (init.data.start - chunks.starts[ci])
                if off % file_align:
                    _err(f"data_chunks[{ci}].offset", f"image of memory {k} at file offset {off} "
                         f"is not aligned to {file_align}")
    except ArtifactError as exc:
        fail(str(exc))

    if tunables is not None and tunables != stored_tunables:
        diff = ", ".join(f"{f.name}={getattr(stored_tunables, f.name)!r} (asked "
                         f"{getattr(tunables, f.name)!r})" for f in dataclasses.fields(Tunables)
                         if getattr(stored_tunables, f.name) != getattr(tunables, f.name))
        fail(f"compiled with other tunables: {diff}; recompile with these tunables")

    # -- the store: check every file we rely on before mapping anything ------------------
    store_dir = os.path.join(directory, STORE_DIR)
    data_file = os.path.join(store_dir, "data.ninja")
    if store is not None:
        try:
            _expect_file(os.path.join(store_dir, "type.ninja"), b"ragged", "type")
            _expect_file(os.path.join(store_dir, "shapes_are_flat.ninja"), struct.pack("<i", 1),
                         "shapes_are_flat")
            _check_numpy_dir(store_dir, "uint8", (file_size,), 1, None)  # type: ragged
            starts_dir = os.path.join(store_dir, "starts")
            ends_dir = os.path.join(store_dir, "ends")
            _check_numpy_dir(starts_dir, "int64", (items,), 8, b"numpy")
            _check_numpy_dir(ends_dir, "int64", (items,), 8, b"numpy")
            starts = _read_int64s(os.path.join(starts_dir, "data.ninja"), items)
            ends = _read_int64s(os.path.join(ends_dir, "data.ninja"), items)
        except ArtifactError as exc:
            fail(str(exc))
        pos = 0
        for k in range(items):
            if starts[k] != pos or ends[k] <= starts[k]:
                fail(f"mmap-ninja index: item {k} is [{starts[k]}, {ends[k]}), expected to start "
                     f"at {pos} and be non-empty")
            pos = ends[k]
        if pos != file_size:
            fail(f"mmap-ninja index covers {pos} bytes, the data file has {file_size}")
        for where, entries in (("data_chunks", data_entries), ("passive_chunks", passive_entries)):
            for i, (length, offset, item) in enumerate(entries):
                if item is not None and (starts[item] != offset or ends[item] != offset + length):
                    fail(f"{where}[{i}]: [{offset}, {offset + length}) but mmap-ninja item {item} "
                         f"is [{starts[item]}, {ends[item]})")
        if verify:
            h = hashlib.blake2b(digest_size=32)
            with open(data_file, "rb") as f:
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        break
                    h.update(block)
            if h.hexdigest() != store["blake2b"]:
                fail("data file contents differ from the checksum recorded at save (verify=True)")

    # -- map (read-only, shared page cache) and build zero-copy views ---------------------
    mapping = None
    base = None
    if store is not None:
        mapping = _map_readonly(data_file, file_size, fail)
        base = memoryview(mapping)

    def view(length, offset):
        return base[offset:offset + length] if length else memoryview(b"")

    translation = ModuleTranslation(module)
    for length, offset, _ in data_entries:
        translation.data.push(view(length, offset))
    for length, offset, _ in passive_entries:
        translation.passive_data.push(view(length, offset))
    translation.data_align = data_align
    info = ArtifactInfo(
        directory=directory, metadata_path=meta_path,
        data_file=data_file if store is not None else None, data_file_size=file_size,
        data_offsets=tuple(e[1] for e in data_entries),
        passive_offsets=tuple(e[1] for e in passive_entries),
        file_align=file_align, tunables=stored_tunables, mapping=mapping,
        _data_store=translation.data, _data_starts=tuple(translation.data._starts))
    translation.artifact = info
    translation.tunables = stored_tunables
    return translation


def _map_readonly(path: str, size: int, fail):
    """Map mmap-ninja's data file read-only (what ``np_open_existing(mode="r")`` does).

    The stdlib mmap is used instead of numpy's memmap so that loading does not import
    numpy (hundreds of milliseconds in a fresh process); the bytes and layout are the same.
    The size is checked again on the opened descriptor, which is closed before returning
    (the mapping keeps its own duplicate, as numpy's does).
    """
    import mmap
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            fail(f"data file {path} changed while loading ({st.st_size} bytes, expected {size})")
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)


# =====================================================================================
# Installing a freshly written artifact
# =====================================================================================
def _is_artifact_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, METADATA_FILE))


def _check_destination(path: str, overwrite: bool) -> None:
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        if not os.listdir(path):
            return
        if _is_artifact_dir(path):
            if overwrite:
                return
            raise ArtifactError(f"{path} is an existing artifact (pass overwrite=True / --force)")
    raise FileExistsError(f"{path} exists and is not an empty directory or an artifact; "
                          f"refusing to replace it")


def _install(tmp: str, path: str, overwrite: bool) -> None:
    """Rename ``tmp`` to ``path``; an old artifact there is moved aside, then removed."""
    _check_destination(path, overwrite)
    old = None
    if os.path.lexists(path) and os.listdir(path):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old",
                               dir=os.path.dirname(path))
        os.rmdir(old)
        os.rename(path, old)
    elif os.path.lexists(path):
        os.rmdir(path)  # an empty directory
    try:
        os.rename(tmp, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    if old is not None:
        # Runtimes that mapped the old data file keep their (unlinked) pages.
        shutil.rmtree(old, ignore_errors=True)
