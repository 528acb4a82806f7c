"""Compiled artifacts: a :class:`ModuleTranslation` saved to a directory and mapped back zero-copy.

This package: the API (here), :mod:`.codec` (the metadata's JSON, one description read
both ways), :mod:`.store` (the mmap-ninja data store), :mod:`.checks` (the chunk layout);
the module's own invariants are :mod:`wasmenv.checks`, shared with the decoder.

Layout of an artifact directory (format ``wasmenv-artifact``, version 2)::

    OUT/
      wasmenv-artifact.json   metadata: format name + version, blake2b checksum, tunables,
                              the whole Module, where every data chunk lives in the store,
                              and the code section (where its bytes are, body ranges in them,
                              element segment types, data count)
      data/                   an mmap-ninja RaggedMmap of uint8 items (absent if no bytes)
        data.ninja            the data file: every item back to back, no header
        starts/ ends/ ...     mmap-ninja's own index (validated against the metadata on load)

The data file holds ``translation.data``'s chunks (static images, or active segments),
then ``translation.passive_data``'s, in order, then the code blob: the function bodies as
they lie in the module's code section, from the first body's first byte to the last body's
last (the size prefixes between them included). Artifacts keep code, never trusted
interpreter code: ``runtime.Module`` validates every body of an artifact exactly as it
validates a ``.wasm`` (a directory may have been written by someone else).

mmap-ninja packs items with no alignment, so zero-filled *padding items* are inserted
before each image chunk: every chunk of ``translation.data`` of a Static module starts at a
file offset that is a multiple of ``file_align`` (>= the host page size and the
translation's ``data_align``). A runtime can therefore ``mmap(MAP_PRIVATE)`` an image
straight from the data file (:func:`image_file_location`). Empty chunks are not stored
(``item`` null). The metadata records, per chunk, its length, its file offset and its
mmap-ninja item index.

Loading (:func:`load_artifact`) never executes code (JSON only, no pickle or eval), checks
the checksum, validates every field (types, ranges, indices, data ranges against the chunk
layout, image alignment, plans against the stored tunables) and the sizes of every store
file *before* mapping anything, then maps the data file read-only (stdlib ``mmap``, so
loading never imports numpy): the translation's chunks are memoryviews over that mapping.
It does not read the data bytes or the code (load time does not depend on their size)
unless ``verify=True``, which hashes the data file against the blake2b recorded at save
time. ``translation.code`` is a :class:`~wasmenv.CodeSection` whose ``buffer`` is a view
of the code blob in that mapping (body ranges checked against the blob's length before
mapping); a translation saved without its code (``code`` None) loads with ``code`` None.
Version 1 artifacts (which did not keep the code) are refused: recompile them.
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
import mmap
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .. import checks as model_checks
from ..errors import ArtifactError
from ..init import MemoryInitialization
from ..translation import CodeSection, ModuleTranslation
from ..tunables import Tunables
from . import checks, codec, store
from .codec import CodeEntry, Metadata

__all__ = ["save_artifact", "load_artifact", "image_file_location", "validate_translation",
           "metadata_checksum", "ArtifactInfo", "FORMAT_NAME", "FORMAT_VERSION", "METADATA_FILE",
           "STORE_DIR"]

FORMAT_NAME = "wasmenv-artifact"
FORMAT_VERSION = 2
#: Why an older format version is refused (shown in the ArtifactError).
_OLD_VERSIONS = {1: "version 1 artifacts do not keep the function bodies, which are validated "
                    "when a Module is made"}
METADATA_FILE = "wasmenv-artifact.json"
STORE_DIR = "data"
#: The store's data file, relative to the artifact directory (mmap-ninja's name).
DATA_FILE = f"{STORE_DIR}/{store.DATA_NAME}"
CHECKSUM_PREFIX = "blake2b-256:"

#: Metadata larger than this is refused before it is read.
MAX_METADATA_BYTES = 1 << 30
#: Off only in tests: turn unexpected exceptions during load into ArtifactError.
_BACKSTOP = True


def _host_page_size() -> int:
    return mmap.PAGESIZE


@dataclass(frozen=True)
class ArtifactInfo:
    """Where a loaded translation's bytes live on disk (``translation.artifact``).

    ``data_offsets[i]`` is the file offset in ``data_file`` of ``translation.data.chunks[i]``
    (``passive_offsets`` likewise for ``translation.passive_data``; ``code_offset`` that of
    ``translation.code.buffer``, None without code). ``data_file`` is None when the
    artifact holds no bytes at all. Offsets of static images are multiples of
    ``file_align``, itself a multiple of the host page size at load time.
    """

    directory: str
    metadata_path: str
    data_file: Optional[str]
    data_file_size: int
    data_offsets: Tuple[int, ...]
    passive_offsets: Tuple[int, ...]
    file_align: int
    tunables: Tunables
    code_offset: Optional[int] = None
    #: The read-only ``mmap.mmap`` of ``data_file`` that the chunks are memoryviews of.
    mapping: object = field(default=None, compare=False, repr=False)
    #: ``(st_dev, st_ino)`` of the data file that was checked and mapped.
    data_file_id: Optional[Tuple[int, int]] = field(default=None, compare=False, repr=False)
    _data_store: object = field(default=None, compare=False, repr=False)
    _data_starts: Tuple[int, ...] = field(default=(), compare=False, repr=False)

    def open_data_file(self) -> int:
        """A new read-only descriptor of the data file checked and mapped at load (the
        caller owns it), opened as the loader opens it (no symbolic link followed).

        Raises:
            ArtifactError: there is no data file, or the file at its place is not that one
                any more (replaced, removed, resized).
        """
        if self.data_file is None:
            raise ArtifactError(f"artifact {self.directory} has no data file")
        try:
            with store.ArtifactDir(self.directory) as d:
                fd = store.open_data(d, DATA_FILE, self.data_file_size)
        except OSError as exc:
            raise ArtifactError(f"artifact {self.directory}: cannot open its data file: {exc}") from None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self.data_file_id:
            os.close(fd)
            raise ArtifactError(f"{self.data_file} was replaced since the artifact was loaded")
        return fd

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
    codec.check_complete()
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
        code = translation.code
        blob, first = _code_blob(code)
        info, data_entries, passive_entries, code_chunk = store.write_store(
            os.path.join(tmp, STORE_DIR), data, passive,
            file_align if translation.data_align is not None else None, blob)
        code_entry = None if code is None else CodeEntry(
            code_chunk, code.module_offset + first,
            tuple((start - first, end - first) for start, end in code.bodies),
            code.elem_types, code.data_count)
        doc = codec.encode(Metadata(
            FORMAT_NAME, FORMAT_VERSION, None, tunables, translation.data_align, file_align,
            info, tuple(data_entries), tuple(passive_entries), code_entry, translation.module))
        doc["checksum"] = metadata_checksum(doc)
        text = codec.dump(doc) + "\n"
        meta = os.path.join(tmp, METADATA_FILE)
        with open(meta, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        store.seal_modes(tmp)
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

    The directory may be someone else's: no symbolic link inside it is followed, every
    file is opened without blocking and checked on its descriptor (a FIFO is refused),
    sizes are checked before anything is read, and a data file that another user owns or
    that group or others can write is refused (untouched copy-on-write pages follow the
    file: its writer could change live instances' memory, or code after it was validated).
    Its owner must not rewrite it in place while it is mapped, for the same reason.

    ``translation.code`` views the code blob in the mapping (None if saved without code):
    its body ranges are checked here, the bodies themselves are not read; validating them
    (``wasmenv.validate``, which ``runtime.Module`` runs) reports offsets in the ``.wasm``
    the artifact was compiled from (``code.module_offset`` + offset in the blob).

    Raises:
        ArtifactError: missing or unreadable files, not an artifact, another format or
            version (version 1 did not keep the code), bad checksum, invalid metadata
            (body ranges outside the code blob included), store files of the wrong size or kind
            (FIFO, symbolic link, ...), a data file others can write, image offsets not
            aligned for this host, ``tunables`` differing from the stored ones, or
            (``verify``) data bytes that changed.
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

def validate_translation(translation: ModuleTranslation, tunables: Tunables = None) -> None:
    """Check that ``translation`` is internally consistent (what :func:`load_artifact` checks).

    Every index in range, every constant expression well-typed, every data range within
    one chunk of its store, static images aligned and within their memory's minimum,
    memory plans equal to what ``tunables`` give (skipped if ``tunables`` is None): the
    rules of :mod:`wasmenv.checks`, which the decoder applies too.

    Raises:
        ArtifactError: the first inconsistency, with the field's path in the message.
    """
    try:
        model_checks.check_translation(translation, tunables)
    except model_checks.Invalid as exc:
        raise ArtifactError(str(exc)) from None


def _code_blob(code: Optional[CodeSection]):
    """``(blob, first)``: the bytes from the first body to the end of the last (a view, not
    a copy), and where it starts in ``code.buffer``; ``(None, 0)`` without code."""
    if code is None:
        return None, 0
    if not code.bodies:
        return memoryview(b""), 0
    first, last = code.bodies[0][0], code.bodies[-1][1]
    return _byte_view(code.buffer)[first:last], first


def _byte_view(chunk) -> memoryview:
    mv = memoryview(chunk)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


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


def _load(path, tunables: Optional[Tunables], verify: bool) -> ModuleTranslation:
    directory = os.path.abspath(os.fspath(path))
    if isinstance(directory, bytes):
        directory = os.fsdecode(directory)

    def fail(message):
        raise ArtifactError(f"artifact {directory}: {message}") from None

    try:
        d = store.ArtifactDir(directory)
    except FileNotFoundError:
        fail("does not exist")
    except NotADirectoryError:
        fail("is not a directory (an artifact is a directory written by save_artifact)")
    with d:
        return _load_from(d, directory, tunables, verify, fail)


def _load_from(d, directory, tunables, verify, fail) -> ModuleTranslation:
    meta_path = os.path.join(directory, METADATA_FILE)
    try:
        raw = d.read(METADATA_FILE, MAX_METADATA_BYTES)
    except FileNotFoundError:
        fail(f"not a wasmenv artifact (no {METADATA_FILE})")
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
        why = _OLD_VERSIONS.get(version) if type(version) is int else None
        fail(f"format version {version!r}, this wasmenv reads version {FORMAT_VERSION} only "
             f"({why + '; ' if why else ''}recompile the module)")
    try:
        expected = metadata_checksum(doc)
    except (ValueError, RecursionError) as exc:
        fail(f"metadata cannot be checksummed: {exc}")
    if doc.get("checksum") != expected:
        fail(f"metadata checksum mismatch ({METADATA_FILE} was edited or corrupted)")

    try:
        meta = codec.decode(doc)
        file_size, items = checks.store_info(meta.store)
        code = meta.code
        code_chunk = code.chunk if code is not None else None
        checks.chunk_layout(meta.data_chunks, meta.passive_chunks, file_size, items,
                            padded=meta.data_align is not None, code=code_chunk)
        try:
            model_checks.check_module(
                meta.module, meta.data_align, [e.length for e in meta.data_chunks],
                [e.length for e in meta.passive_chunks], meta.tunables,
                None if code is None else CodeSection(code.bodies, code.elem_types,
                                                      code.data_count, None, code.module_offset),
                None if code is None else code_chunk.length)
        except model_checks.Invalid as exc:
            raise ArtifactError(str(exc)) from None
        checks.file_alignment(meta.module, meta.data_align, meta.file_align, meta.data_chunks,
                              _host_page_size())
    except ArtifactError as exc:
        fail(str(exc))

    stored_tunables = meta.tunables
    if tunables is not None and tunables != stored_tunables:
        diff = ", ".join(f"{f.name}={getattr(stored_tunables, f.name)!r} (asked "
                         f"{getattr(tunables, f.name)!r})" for f in dataclasses.fields(Tunables)
                         if getattr(stored_tunables, f.name) != getattr(tunables, f.name))
        fail(f"compiled with other tunables: {diff}; recompile with these tunables")

    # -- the store: check every file we rely on before mapping anything ------------------
    data_file = os.path.join(directory, DATA_FILE)
    mapping = data_file_id = None
    if meta.store is not None:
        try:
            starts, ends = store.read_index(d, STORE_DIR, file_size, items)
            checks.index_agrees(starts, ends, file_size, meta.data_chunks, meta.passive_chunks,
                                code_chunk)
            fd = store.open_data(d, DATA_FILE, file_size)
            try:
                st = os.fstat(fd)
                data_file_id = (st.st_dev, st.st_ino)
                if verify and store.hash_fd(fd) != meta.store.blake2b:
                    raise ArtifactError("data file contents differ from the checksum recorded "
                                        "at save (verify=True)")
                # -- map (read-only, shared page cache) and build zero-copy views ---------
                mapping = store.map_readonly(fd, file_size)
            finally:
                os.close(fd)
        except ArtifactError as exc:
            fail(str(exc))
    base = memoryview(mapping) if mapping is not None else None

    def view(entry):
        return base[entry.offset:entry.offset + entry.length] if entry.length else memoryview(b"")

    translation = ModuleTranslation(meta.module, data_align=meta.data_align,
                                    tunables=stored_tunables)
    for entry in meta.data_chunks:
        translation.data.push(view(entry))
    for entry in meta.passive_chunks:
        translation.passive_data.push(view(entry))
    if code is not None:
        translation.code = CodeSection(code.bodies, code.elem_types, code.data_count,
                                       view(code_chunk), code.module_offset)
    translation.artifact = ArtifactInfo(
        directory=directory, metadata_path=meta_path,
        data_file=data_file if meta.store is not None else None, data_file_size=file_size,
        data_offsets=tuple(e.offset for e in meta.data_chunks),
        passive_offsets=tuple(e.offset for e in meta.passive_chunks),
        file_align=meta.file_align, tunables=stored_tunables,
        code_offset=code_chunk.offset if code is not None else None, mapping=mapping,
        data_file_id=data_file_id,
        _data_store=translation.data, _data_starts=tuple(translation.data._starts))
    return translation


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
