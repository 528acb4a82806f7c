"""Import resolution and type checking (link errors)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from wasmenv import ExternKind, FuncType, GlobalType, MemoryType, TableType, TagType, is_subtype

from .errors import LinkError
from .func import Func, code_instances
from .globals import Global
from .refs import crosses_registries
from .table import Table


class ImportGroups(NamedTuple):
    """A module's externs by kind, each in import order (what an Instance keeps of them)."""

    funcs: tuple
    globals: tuple
    tables: tuple
    memories: tuple
    tags: tuple
    code_instances: tuple  # the instances whose code runs from these (runtime.func.code_instances)
    crossing: tuple    # the imports externref cells may cross to or from (runtime.refs.link_imports)


class ImportedFuncs(tuple):
    """The imported functions of one grouping (ImportGroups.funcs, which its instances
    keep as theirs), and what their interpreter states copy, made at link time
    (runtime.InstancePre) so that an instance holds nothing more for them: ``records``,
    the vm import records when every one is a host function (runtime.func.link_host_funcs);
    ``links``, the interpreter links those instances share (runtime.interp.pre_link)."""

    records = None
    links = None


def group_imports(module_env, externs) -> ImportGroups:
    """``externs`` (in import order, checked) grouped by the kind of each import."""
    groups = {kind: [] for kind in ExternKind}
    for imp, ext in zip(module_env.initializers, externs):
        groups[imp.index.kind].append(ext)
    funcs = ImportedFuncs(groups[ExternKind.FUNC])
    globals_, tables = tuple(groups[ExternKind.GLOBAL]), tuple(groups[ExternKind.TABLE])
    return ImportGroups(funcs, globals_, tables, tuple(groups[ExternKind.MEMORY]),
                        tuple(groups[ExternKind.TAG]), code_instances(funcs, tables, globals_),
                        tuple(ext for ext in funcs + globals_ + tables if crosses_registries(ext)))


NO_IMPORTS = ImportGroups((), (), (), (), (), (), ())


class ResolvedImports:
    """Externs in import order, already resolved and checked against one module's imports
    (by :class:`runtime.InstancePre`), and grouped by kind once (``groups``):
    :func:`lookup_imports` returns them as they are."""

    __slots__ = ("env", "externs", "groups", "global_cells", "plain")

    def __init__(self, module_env, externs):
        self.env = module_env
        self.externs = list(externs)
        self.groups = g = group_imports(module_env, self.externs)
        #: Only functions, none holding anything (no other instance's code) or crossing
        #: stores: an instance keeps nothing of them but ``groups.funcs`` (a plain
        #: layout's one-call path, runtime.layout.InstanceLayout.plain).
        self.plain = not (g.globals or g.tables or g.memories or g.tags or g.code_instances or g.crossing)
        #: what its instances' _imported_globals share (runtime.instance._imported_globals)
        self.global_cells = None


def shares_links(env) -> bool:
    """Whether the instances of ``env`` link to nothing of their own (every memory and
    table imported: an Emscripten side module), so that the instances linked to the same
    imports share their interpreter links (runtime/interp.py)."""
    return env.num_imported_memories == len(env.memory_plans) and env.num_imported_tables == len(env.table_plans)


def lookup_imports(module_env, imports) -> list:
    """Match ``imports`` (mapping ``(module, field) -> extern`` or a sequence in import order)
    against the module's imports and check each type. Returns externs in import order.

    Every name is looked up before any type is checked (as Wasmtime's linker does). A
    :class:`ResolvedImports` made for this very module is returned unchecked.

    Raises:
        LinkError: an import is missing or has the wrong type.
    """
    if isinstance(imports, ResolvedImports):
        if imports.env is not module_env:
            raise LinkError("imports were resolved for another module")
        return imports.externs
    wanted = list(module_env.imports())
    if imports is None:
        imports = {}
    if isinstance(imports, Mapping):
        found = []
        for imp in wanted:
            if (imp.module, imp.name) not in imports:
                raise LinkError(f"unknown import: `{imp.module}::{imp.name}` has not been defined")
            found.append(imports[(imp.module, imp.name)])
    else:
        found = list(imports)
        if len(found) != len(wanted):
            raise LinkError(f"expected {len(wanted)} imports, found {len(found)}")
    return [check_import(imp.module, imp.name, imp.type, ext) for imp, ext in zip(wanted, found)]


def check_import(mod, field, ty, ext):
    """Check one extern against the imported type; a bare callable becomes a Func.

    Matching (Wasm 3.0 without GC): functions by exact type; tables by exact element
    type (invariant) and limits; immutable globals covariantly (the extern's declared
    type must be a subtype of the imported one, e.g. ``(ref $t)`` satisfies ``funcref``);
    mutable globals by exact type.
    """
    where = f"incompatible import type for `{mod}::{field}`"
    if isinstance(ty, FuncType):
        if isinstance(ext, Func):
            if ext.ty != ty:
                raise LinkError(f"{where}: function types differ: expected {ty}, found {ext.ty}")
            return ext
        if callable(ext) and not isinstance(ext, (Global, Table)) and not hasattr(ext, "size_pages"):
            return Func(ty, ext)
        raise LinkError(f"{where}: expected a function, found {type(ext).__name__}")
    if isinstance(ty, MemoryType):
        if not hasattr(ext, "size_pages") or not hasattr(ext, "ty"):
            raise LinkError(f"{where}: expected a memory, found {type(ext).__name__}")
        actual = ext.ty
        if actual.shared != ty.shared:
            raise LinkError(f"{where}: memory types differ: shared mismatch")
        if actual.memory64 != ty.memory64:
            raise LinkError(f"{where}: memory types differ: index type mismatch")
        _check_limits(where, "memory", ext.size_pages, actual.maximum, ty.minimum, ty.maximum)
        return ext
    if isinstance(ty, TableType):
        if not isinstance(ext, Table):
            raise LinkError(f"{where}: expected a table, found {type(ext).__name__}")
        if ext.ty.element != ty.element or ext.ty.table64 != ty.table64:
            raise LinkError(f"{where}: table types differ: {ext.ty.element} vs {ty.element}")
        _check_limits(where, "table", ext.size, ext.ty.maximum, ty.minimum, ty.maximum)
        return ext
    if isinstance(ty, GlobalType):
        if not isinstance(ext, Global):
            raise LinkError(f"{where}: expected a global, found {type(ext).__name__}")
        actual = ext.ty
        if actual.mutable != ty.mutable:
            raise LinkError(f"{where}: global types differ: mutability mismatch: expected "
                            f"{_global_str(ty)}, found {_global_str(actual)}")
        ok = (actual.content == ty.content) if ty.mutable else is_subtype(actual.content, ty.content)
        if not ok:
            raise LinkError(f"{where}: global types differ: expected {_global_str(ty)}, "
                            f"found {_global_str(actual)}")
        return ext
    if isinstance(ty, TagType):
        from .tag import Tag
        if not isinstance(ext, Tag) or ext.ty != ty.func_type:
            raise LinkError(f"{where}: expected a tag of type {ty.func_type}")
        return ext
    raise LinkError(f"{where}: unknown import kind")


def _global_str(ty: GlobalType) -> str:
    return f"(mut {ty.content})" if ty.mutable else str(ty.content)


def _check_limits(where, what, actual_min, actual_max, want_min, want_max):
    if actual_min < want_min:
        raise LinkError(f"{where}: {what} types incompatible: minimum {actual_min} < {want_min}")
    if want_max is not None and (actual_max is None or actual_max > want_max):
        raise LinkError(f"{where}: {what} types incompatible: maximum {actual_max} exceeds {want_max}")
