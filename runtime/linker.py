"""Linker and InstancePre: resolve and type-check a module's imports once (wasmtime-py's names).

Store arguments: as in wasmtime-py, ``instantiate`` and ``InstancePre.instantiate`` take
the :class:`runtime.Store` the instance lives in (None: a private store). ``define``,
``define_instance`` and ``get`` accept a store in the same position and ignore it (the
definitions are not tied to a store here), so code written for wasmtime-py keeps its shape.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

from wasmenv import FuncType

from .engine import Engine
from .errors import LinkError
from .func import Func, link_host_funcs
from .globals import Global
from .instance import Instance
from .linking import ResolvedImports, lookup_imports, shares_links
from .memory import Memory
from .module import Module
from .table import Table
from .tag import Tag

__all__ = ["Linker", "InstancePre"]

#: What ``Linker.define`` accepts (wasmtime-py: Func, Global, Memory, SharedMemory, Tag, Table).
EXTERN_TYPES = (Func, Global, Memory, Table, Tag)


class Linker:
    """Named externs (``module::name`` -> Func, Global, Memory, Table or Tag) that modules'
    imports are resolved against.

    A name is defined once unless ``allow_shadowing`` is set (then the last definition
    wins), as in wasmtime-py. Import kinds are not part of the key: defining a global
    where a function was defined is a redefinition too.
    """

    def __init__(self, engine: Engine):
        if not isinstance(engine, Engine):
            raise TypeError("expected an `Engine`")
        self.engine = engine
        self._defs: Dict[Tuple[str, str], object] = {}
        self._allow_shadowing = False

    @property
    def allow_shadowing(self) -> bool:
        """Whether a definition may replace an earlier one of the same ``module::name``
        (wasmtime-py can only set it; here it can be read too)."""
        return self._allow_shadowing

    @allow_shadowing.setter
    def allow_shadowing(self, allow: bool) -> None:
        self._allow_shadowing = bool(allow)

    # -- definitions -----------------------------------------------------------------
    def define(self, store, module: str, name: str, item) -> None:
        """Define ``module::name`` as ``item`` (``store`` is ignored: see the module doc).

        Raises:
            TypeError: ``item`` is not a Func, Global, Memory, Table or Tag.
            LinkError: the name is defined already and shadowing is not allowed.
        """
        if not isinstance(item, EXTERN_TYPES):
            raise TypeError("expected a Func, Global, Memory, Table or Tag")
        self._insert_all([(_name(module), _name(name), item)])

    def define_func(self, module: str, name: str, ty: FuncType, func: Callable,
                    access_caller: bool = False) -> None:
        """Define ``module::name`` as a host function of type ``ty`` (with
        ``access_caller``, ``func`` gets a :class:`runtime.Caller` first).

        Raises:
            TypeError: ``ty`` is not a :class:`wasmenv.FuncType`, or ``func`` not callable.
            LinkError: the name is defined already and shadowing is not allowed.
        """
        if not isinstance(ty, FuncType):
            raise TypeError("expected a FuncType")
        self._insert_all([(_name(module), _name(name), Func(ty, func, access_caller=access_caller))])

    def define_instance(self, store, name: str, instance: Instance) -> None:
        """Define every export of ``instance`` as ``name::export`` (all or nothing).

        Raises:
            TypeError: ``instance`` is not an Instance.
            LinkError: one of the names is defined already and shadowing is not allowed
                (nothing is defined then).
        """
        if not isinstance(instance, Instance):
            raise TypeError("expected an `Instance`")
        if instance.closed:
            raise ValueError("instance is closed")
        module = _name(name)
        self._insert_all([(module, field, item) for field, item in instance.exports.items()])

    def _insert_all(self, entries) -> None:
        if not self._allow_shadowing:
            for module, name, _ in entries:
                if (module, name) in self._defs:
                    raise LinkError(f"import of `{module}::{name}` defined twice")
        for module, name, item in entries:
            self._defs[(module, name)] = item

    def get(self, store, module: str, name: str):
        """The item defined as ``module::name``.

        Raises:
            LinkError: nothing is defined under that name.
        """
        try:
            return self._defs[(module, name)]
        except KeyError:
            raise LinkError(f"item not defined in linker: `{module}::{name}`") from None

    # -- instantiation ---------------------------------------------------------------
    def instantiate_pre(self, module: Module) -> "InstancePre":
        """Resolve and type-check every import of ``module`` now, once.

        Raises:
            TypeError: ``module`` is not a Module.
            LinkError: an import is undefined or mistyped, or the module belongs to
                another engine.
        """
        if not isinstance(module, Module):
            raise TypeError("expected a `Module`")
        if module.engine is not self.engine:
            raise LinkError("cross-`Engine` instantiation is not currently supported")
        if module.closed:
            raise ValueError("module is closed")
        env = module.env
        externs = lookup_imports(env, self._defs) if env.initializers else []
        return InstancePre._new(module, ResolvedImports(env, externs) if externs else None)

    def instantiate(self, store_or_module, module: Module = None) -> Instance:
        """``instantiate(module)`` (a private store), or wasmtime-py's
        ``instantiate(store, module)``: :meth:`instantiate_pre` then
        :meth:`InstancePre.instantiate`."""
        if module is None:
            return self.instantiate_pre(store_or_module).instantiate()
        return self.instantiate_pre(module).instantiate(store_or_module)

    def __repr__(self):
        return f"<Linker: {len(self._defs)} definitions>"


class InstancePre:
    """A module whose imports are resolved and checked: ``instantiate()`` only allocates
    and initializes (no name lookup, no type check). Made by :meth:`Linker.instantiate_pre`.

    It keeps its imports alive (a closed import still fails when an instance uses it).
    """

    __slots__ = ("_module", "_imports")

    def __init__(self, *args, **kwargs):
        raise TypeError("InstancePre is made by Linker.instantiate_pre")

    @classmethod
    def _new(cls, module: Module, imports) -> "InstancePre":
        self = cls.__new__(cls)
        self._module, self._imports = module, imports
        if imports is not None and imports.groups.funcs:
            # Link-time work, done once here: the native side of the host functions its
            # instances call, and the links those instances share (runtime/interp.py).
            link_host_funcs(imports.groups.funcs)
            if shares_links(module.env) and len(module.env.functions) > module.env.num_imported_funcs:
                from .interp import pre_link
                pre_link(module, imports)
        return self

    @property
    def module(self) -> Module:
        """The Module this was made from."""
        return self._module

    def instantiate(self, store=None) -> Instance:
        """A new instance in ``store`` (None: a private store).

        Raises:
            Trap: a segment is out of bounds.
            AllocationError: memories or tables could not be had, or the store's limits
                do not allow the instance.
        """
        return Instance(self._module, self._imports, store)

    def __repr__(self):
        return f"<InstancePre of {self._module.env.name or 'module'}>"


def _name(text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a linker name is a str, got {type(text).__name__}")
    return text
