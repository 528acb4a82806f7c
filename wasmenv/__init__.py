"""wasmenv: decode WebAssembly modules into the metadata a runtime needs.

Pure Python; never imports :mod:`runtime`.
"""
from __future__ import annotations

import mmap as _mmap

from .artifact import load_artifact, save_artifact
from .constexpr import ConstExpr
from .errors import ArtifactError, DecodeError, UnsupportedFeature, WasmEnvError
from .init import (InitMemory, MemoryInitialization, MemoryInitializer, StaticMemoryInitializer,
                   TableInitialization, TableInitializer, init_memory)
from .module import ElementSegment, FunctionType, Global, Initializer, Module, ModuleType
from .plans import MemoryPlan, MemoryStyle, TablePlan, TableStyle
from .translation import (MAX_FUNC_TABLE_SIZE, MAX_IMAGE_SIZE_ALWAYS_ALLOWED, CodeSection,
                          ModuleTranslation)
from .tunables import Tunables
from .vmglobals import GlobalsTemplate
from .vmoffsets import VMOffsets
from .types import (WASM_PAGE_SIZE, EntityIndex, ExportType, ExternKind, FuncType, GlobalType,
                    ImportType, MemoryType, RefType, TableType, TagType, ValType, is_subtype)

__all__ = [
    "translate", "compile", "validate", "host_page_size", "save_artifact", "load_artifact",
    "WasmEnvError", "DecodeError", "UnsupportedFeature", "ArtifactError",
    "Tunables", "Module", "ModuleTranslation", "CodeSection", "ModuleType", "FunctionType", "Global",
    "Initializer", "ElementSegment", "ConstExpr",
    "MemoryPlan", "MemoryStyle", "TablePlan", "TableStyle",
    "MemoryInitializer", "StaticMemoryInitializer", "MemoryInitialization", "InitMemory",
    "init_memory", "TableInitializer", "TableInitialization",
    "ValType", "RefType", "is_subtype", "ExternKind", "EntityIndex", "FuncType", "MemoryType", "TableType",
    "GlobalType", "TagType", "ImportType", "ExportType", "WASM_PAGE_SIZE", "MAX_FUNC_TABLE_SIZE",
    "MAX_IMAGE_SIZE_ALWAYS_ALLOWED", "VMOffsets", "GlobalsTemplate",
]


def host_page_size() -> int:
    """The host's virtual-memory page size in bytes."""
    return _mmap.PAGESIZE


def translate(data, tunables: Tunables = None) -> ModuleTranslation:
    """Decode and check a binary module (code bodies skipped); initializers stay Segmented.

    Raises:
        DecodeError: malformed or invalid at module level (``.offset`` says where).
        UnsupportedFeature: the module uses a proposal wasmenv does not decode.
    """
    from .decode import decode_module
    return decode_module(data, tunables if tunables is not None else Tunables())


def validate(translation: ModuleTranslation) -> None:
    """Validate every function body of a translation (the spec's validation algorithm, for
    every proposal the decoder accepts); ``translate`` and ``compile`` do not do it.

    Raises:
        DecodeError: an invalid body; the message names the function index and ``offset``
            is the absolute byte offset of the offending instruction in the module (for a
            translation loaded from an artifact: in the ``.wasm`` it was compiled from,
            ``code.module_offset`` + the offset in the artifact's code blob).
        UnsupportedFeature: a body uses an instruction of a proposal wasmenv does not
            decode (GC instructions: ``feature == "gc"``).
        ValueError: the translation does not carry its code section.
    """
    code = translation.code
    if code is not None and not code.bodies:
        return  # no body: no need to import the validator (tens of ms in a fresh process)
    from .validation import validate as _validate
    _validate(translation)


def compile(data, tunables: Tunables = None) -> ModuleTranslation:  # noqa: A001 - API name
    """``translate``, then static memory images and FuncTable folding where possible."""
    translation = translate(data, tunables)
    translation.try_static_init(host_page_size(), MAX_IMAGE_SIZE_ALWAYS_ALLOWED)
    translation.try_func_table_init()
    return translation
