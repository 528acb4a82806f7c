"""Module: a compiled module plus its shared copy-on-write memory images."""
from __future__ import annotations

import os
import weakref
from typing import List, Optional

import wasmenv

from .engine import Engine


class Module:
    """A compiled module, ready to instantiate many times.

    ``source`` is wasm bytes (bytes, bytearray, memoryview, mmap) or a path to a ``.wasm``
    file. Static initialization images are created once here (a sealed memfd on Linux, an
    unlinked temporary file elsewhere) and mapped copy-on-write by every instance.

    Raises:
        wasmenv.DecodeError: the bytes are not a valid module.
    """

    def __init__(self, engine: Engine, source):
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                source = f.read()
        translation = wasmenv.compile(source, engine.tunables)
        self._setup(engine, translation)

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
            images = (_build_images(translation) if engine.memory_init_cow
                      else [None] * len(translation.module.memory_plans))
        self._images: List[Optional[object]] = images
        self._finalizer = weakref.finalize(self, _close_all, list(images))

    @property
    def images(self):
        """Per memory: the shared MemoryImage, or None (imported, no data, or Segmented)."""
        return tuple(self._images)

    @property
    def imports(self):
        return list(self.env.imports())

    @property
    def exports(self):
        return [(name, idx.kind, ty) for name, idx, ty in self.env.exported()]

    @property
    def start_func(self) -> Optional[int]:
        return self.env.start_func

    def close(self):
        """Release the images (instances still mapping them keep their pages)."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _build_images(translation) -> list:
    from .image import MemoryImage
    module = translation.module
    init = module.memory_initialization
    images = [None] * len(module.memory_plans)
    if init.is_segmented():
        return images
    made = []
    try:
        for index, static in enumerate(init.map):
            if static is not None and not module.is_imported_memory(index):
                img = MemoryImage.from_bytes(translation.data_view(static.data), static.offset)
                made.append(img)
                images[index] = img
    except BaseException:
        _close_all(made)
        raise
    return images


def _close_all(resources):
    for r in resources:
        if r is not None:
            r.close()
