"""An instance's exports and globals as sequences of views, each made when it is read."""
from __future__ import annotations

from collections.abc import Sequence

from wasmenv import ExternKind

from .layout import layout_of


class _Globals(Sequence):
    """``instance.globals``: its globals, imported ones first; each access makes a view."""

    __slots__ = ("_instance",)

    def __init__(self, instance):
        self._instance = instance

    def __len__(self):
        return len(self._instance.module.env.globals)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        return self._instance._global(index)


class Exports:
    """``instance.exports[name]`` -> Func, Table, Memory, Global or Tag; in declaration order."""

    def __init__(self, instance):
        self._instance = instance
        self._names = layout_of(instance.module).export_names

    def __getitem__(self, name):
        if isinstance(name, int):
            name = self._names[name]
        inst = self._instance
        idx = inst.module.env.exports[name]
        kind = idx.kind
        if kind is ExternKind.FUNC:
            return inst._func_ref(idx.index)
        if kind is ExternKind.MEMORY:
            return inst.memory(idx.index)
        if kind is ExternKind.TABLE:
            return inst._table(idx.index)
        if kind is ExternKind.GLOBAL:
            return inst._global(idx.index)
        return inst.tags[idx.index]

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name):
        return name in self._instance.module.env.exports

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def items(self):
        return [(n, self[n]) for n in self._names]
