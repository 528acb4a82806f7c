"""Module: a compiled module plus its shared copy-on-write memory images."""
from __future__ import annotations

import os
from typing import List, Optional

import wasmenv
from wasmenv import WASM_PAGE_SIZE, ExportType, ImportType

from ._owner import Owner
from .engine import Engine
from .errors import WasmRuntimeError


class Module(Owner):
    """A compiled module, ready to instantiate many times.

    ``source`` is wasm bytes (bytes, bytearray, memoryview, mmap), a path to a ``.wasm``
    file, or a path to a compiled artifact directory (see :meth:`from_artifact`). Static
    initialization images are created once here (a sealed memfd on Linux, an unlinked
    temporary file elsewhere) and mapped copy-on-write by every instance. The module owns
    them: :meth:`close`, context manager, and ``__del__`` as backstop (Owner).

    An artifact's function bodies are validated exactly as a ``.wasm``'s (a directory may
    have been written by someone else); a failure leaves no descriptor or mapping open.

    Raises:
        wasmenv.DecodeError: the bytes are not a valid module (function bodies included:
            the message names the function, ``offset`` is the byte offset in the module;
            for an artifact, the offset in the ``.wasm`` it was compiled from, i.e. the
            code blob's ``translation.code.module_offset`` plus the offset in the blob).
        wasmenv.ArtifactError: the artifact directory is missing pieces or corrupt, or has
            no code section while the module defines functions.
    """

    def __init__(self, engine: Engine, source):
        if isinstance(source, (str, os.PathLike)):
            if os.path.isdir(source):
                self._setup(engine, *_load_artifact(engine, source))
                return
            with open(source, "rb") as f:
                source = f.read()
        translation = wasmenv.compile(source, engine.tunables)
        wasmenv.validate(translation)  # every function body, before anything is mapped
        self._setup(engine, translation)

    @classmethod
    def from_artifact(cls, engine: Engine, path) -> "Module":
        """Load a compiled artifact (``python -m wasmenv compile``): images are mapped
        ``MAP_PRIVATE`` straight from the artifact's data file (page cache, no copy, no memfd);
        function bodies are validated as in ``Module(engine, path)``.

        Raises:
            wasmenv.ArtifactError: missing, corrupt, other format version or other tunables.
            wasmenv.DecodeError: an invalid function body (see :class:`Module`).
        """
        return cls._from_translation(engine, *_load_artifact(engine, path))

    @classmethod
    def _from_translation(cls, engine: Engine, translation, images=None) -> "Module":
        self = cls.__new__(cls)
        self._setup(engine, translation, images)
        return self

    def _setup(self, engine, translation, images=None):
        self.engine = engine
        self.translation = translation
        self.env = translation.module
        if images is None:
            images = (_build_images(translation, getattr(engine, "image_backing", None))
                      if engine.memory_init_cow
                      else [None] * len(translation.module.memory_plans))
        self._images: List[Optional[object]] = images
        self._data_images: List[object] = []  # runtime/layout.py's DataPlan makes these (as it needs them)
        self._instance_layout = None  # runtime.instance caches per-module instantiation work here
        self._closed = False
        self._users = []  # one entry per instantiation in progress (see _enter)

    @property
    def images(self):
        """Per memory: the shared MemoryImage, or None (imported, no data, or Segmented)."""
        return tuple(self._images)

    @property
    def imports(self) -> List[ImportType]:
        """Every import as a :class:`wasmenv.ImportType` (``.module``, ``.name``, ``.type``)."""
        return list(self.env.imports())

    @property
    def exports(self) -> List[ExportType]:
        """Every export as a :class:`wasmenv.ExportType` (``.name``, ``.type``), in order."""
        return [ExportType(name, ty) for name, _, ty in self.env.exported()]

    @property
    def start_func(self) -> Optional[int]:
        return self.env.start_func

    def _enter(self) -> None:
        """An instantiation begins to use the module's images (their fds, read by C).

        ``list.append``/``pop`` are atomic: an entry is made before ``closed`` is read, so
        a close() either sees it (and leaves the images to the last :meth:`_leave`) or
        happened before (and this raises). Either side may close the images; each image
        closes once.

        Raises:
            ValueError: the module is closed.
        """
        users = self._users
        users.append(None)
        if self._closed:
            self._leave()
            raise ValueError("module is closed")

    def _leave(self) -> None:
        """The instantiation :meth:`_enter` began no longer reads the images."""
        users = self._users
        users.pop()
        if self._closed and not users:
            self._close_images()

    def close(self):
        """Refuse new instances and release the images (idempotent): now, or when the last
        instantiation already using them finished. Instances keep their pages."""
        if self._instance_layout is not None:
            self._instance_layout.fast = False  # Instance's one-call path checks only this
        self._closed = True
        if not self._users:
            self._close_images()

    def _close_images(self) -> None:
        _close_all(self._images)  # each image closes once (MemoryImage.close is idempotent)
        _close_all(self._data_images)

    @property
    def closed(self) -> bool:
        return self._closed


#: Memories up to this minimum size get an image covering their whole initial size
#: (one mapping instead of three; see MemoryImage.from_bytes). Larger ones map the image
#: alone, so that reading their zero pages costs no page cache.
COVER_MAX_BYTES = 16 << 20


def _build_images(translation, backing=None) -> list:
    """One sealed-memfd (or temp file: ``backing``) image per defined memory with a static image."""
    from .image import MemoryImage
    init = translation.module.memory_initialization

    def make(index):
        static = init.map[index]
        if static is None or translation.module.is_imported_memory(index):
            return None
        min_bytes = translation.module.memory_plans[index].memory.minimum * WASM_PAGE_SIZE
        cover = min_bytes if min_bytes <= COVER_MAX_BYTES else None
        return MemoryImage.from_bytes(translation.data_view(static.data), static.offset,
                                      cover_byte_len=cover, backing=backing)

    return _images(translation, make)


def _load_artifact(engine, path):
    """(translation, images) of a compiled artifact directory, its code validated.

    On failure nothing stays open: the translation's views keep the artifact's mapping
    (and with it a descriptor) alive, and so would the frames in the error's traceback
    (the validator's among them), so the error is raised without them.
    """
    translation = wasmenv.load_artifact(os.fspath(path), engine.tunables)
    try:
        _validate_code(translation)
        return translation, _artifact_images(engine, translation)
    except (wasmenv.WasmEnvError, WasmRuntimeError, OSError) as exc:
        error = exc
    del translation
    todo, seen = [error], set()
    while todo:  # the chained errors' tracebacks too (their frames hold views)
        e = todo.pop()
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            e.__traceback__ = None
            todo += [e.__context__, e.__cause__]
    try:
        raise error
    finally:
        error = None


def _validate_code(translation) -> None:
    """Validate an artifact's function bodies exactly as a ``.wasm``'s."""
    module = translation.module
    if translation.code is None:
        if len(module.functions) > module.num_imported_funcs:
            raise wasmenv.ArtifactError(
                f"artifact {translation.artifact.directory}: no code section (saved from a "
                f"translation without its function bodies): its functions cannot run; "
                f"recompile it from the .wasm")
        return
    wasmenv.validate(translation)


def _artifact_images(engine, translation) -> list:
    """Images backed by the artifact's data file (or none, when copy-on-write is off)."""
    from wasmenv.artifact import image_file_location

    from .image import MemoryImage
    if not engine.memory_init_cow:
        return [None] * len(translation.module.memory_plans)
    init = translation.module.memory_initialization

    def make(index):
        where = image_file_location(translation, index)
        if where is None:
            return None
        # The file checked and mapped at load, not whatever is at its path now.
        fd = translation.artifact.open_data_file()
        return MemoryImage.from_fd(fd, where[1], where[2], init.map[index].offset, name=where[0])

    return _images(translation, make)


def _images(translation, make) -> list:
    """``make(index)`` for every memory of a Static module; all or nothing."""
    images = [None] * len(translation.module.memory_plans)
    if translation.module.memory_initialization.is_segmented():
        return images
    try:
        for index in range(len(images)):
            images[index] = make(index)
    except BaseException:
        _close_all(images)
        raise
    return images


def _close_all(resources):
    for r in resources:
        if r is not None:
            r.close()
