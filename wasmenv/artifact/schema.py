"""A small JSON schema language: each node encodes a value and decodes it back.

A description built from these nodes (:mod:`.codec`) is the one definition of a JSON format:
encode and decode come from it, so they cannot drift apart. Decoding checks shape and
representation (types, integer ranges, known keys); errors are ArtifactError naming the
field's path.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Dict

from ..checks import U64
from ..errors import ArtifactError

#: What :meth:`Node.fast` returns when the slow path must decide.
SLOW = object()


def fail(where: str, message: str):
    raise ArtifactError(f"{where}: {message}")


def _tname(v) -> str:
    return "null" if v is None else type(v).__name__


def obj(v, where, keys) -> dict:
    """``v`` as a JSON object with exactly ``keys``."""
    if type(v) is not dict:
        fail(where, f"expected an object, got {_tname(v)}")
    if v.keys() != set(keys):
        msg = []
        missing = sorted(set(keys) - v.keys())
        extra = sorted(v.keys() - set(keys))
        if missing:
            msg.append(f"missing {', '.join(missing)}")
        if extra:
            msg.append(f"unknown {', '.join(extra)}")
        fail(where, "; ".join(msg))
    return v


class Node:
    """A JSON representation of one kind of value: ``encode(v)`` and ``decode(j, where, ctx)``.

    ``fast(j)``, where not None, is ``decode(j)`` for the common valid case, else
    :data:`SLOW` (then ``decode`` runs and reports the error). ``bulk(values)`` is True when
    every one of ``values`` is valid and decodes to itself (a check of a whole column in
    C-speed passes; False means "decode them one by one", which reports the error).
    """

    fast = None

    def bulk(self, values) -> bool:
        return False

    def encode(self, v):  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, j, where: str, ctx: dict):  # pragma: no cover - abstract
        raise NotImplementedError


class Int(Node):
    def __init__(self, lo=0, hi=U64):
        self.lo, self.hi = lo, hi
        self.fast = lambda j: j if type(j) is int and lo <= j <= hi else SLOW

    def encode(self, v):
        return v

    def decode(self, j, where, ctx):
        if type(j) is not int:
            fail(where, f"expected an integer, got {_tname(j)}")
        if not self.lo <= j <= self.hi:
            fail(where, f"{j} out of range [{self.lo}, {self.hi}]")
        return j

    def bulk(self, values) -> bool:
        return not values or (set(map(type, values)) == {int} and self.lo <= min(values)
                              and max(values) <= self.hi)


class Scalar(Node):
    """A JSON value that is the model's value as it is (``bool``, ``str``)."""

    def __init__(self, pytype, what: str):
        self.pytype, self.what = pytype, what
        self.fast = lambda j: j if type(j) is pytype else SLOW

    def encode(self, v):
        return v

    def decode(self, j, where, ctx):
        if type(j) is not self.pytype:
            fail(where, f"expected {self.what}, got {_tname(j)}")
        return j

    def bulk(self, values) -> bool:
        return set(map(type, values)) <= {self.pytype}


BOOL = Scalar(bool, "true/false")
STR = Scalar(str, "a string")


class Opt(Node):
    """``null`` or the inner node."""

    def __init__(self, inner: Node):
        self.inner = inner
        if inner.fast is not None:
            inner_fast = inner.fast
            self.fast = lambda j: None if j is None else inner_fast(j)

    def encode(self, v):
        return None if v is None else self.inner.encode(v)

    def decode(self, j, where, ctx):
        return None if j is None else self.inner.decode(j, where, ctx)

    def bulk(self, values) -> bool:
        return self.inner.bulk([v for v in values if v is not None])


class Const(Node):
    """A singleton value spelled as one JSON string."""

    def __init__(self, spelling: str, value):
        self.spelling, self.value = spelling, value

    def encode(self, v):
        return self.spelling

    def decode(self, j, where, ctx):
        if j != self.spelling:
            fail(where, f"expected {self.spelling!r}, got {j!r}")
        return self.value


class Enum(Node):
    def __init__(self, spellings: Dict[str, object], what: str):
        self.values = spellings
        self.fast = lambda j: spellings.get(j, SLOW) if type(j) is str else SLOW
        self.names = {v: k for k, v in spellings.items()}
        self.what = what

    def encode(self, v):
        return self.names[v]

    def decode(self, j, where, ctx):
        v = self.values.get(j) if type(j) is str else None
        if v is None:
            fail(where, f"unknown {self.what} {j!r}")
        return v


class List(Node):
    """A JSON list of the inner node; a tuple in the model unless ``as_list``."""

    def __init__(self, inner: Node, as_list: bool = False, length: int = None):
        self.inner, self.as_list, self.length = inner, as_list, length

    def encode(self, v):
        return [self.inner.encode(x) for x in v]

    def decode(self, j, where, ctx):
        if type(j) is not list:
            fail(where, f"expected a list, got {_tname(j)}")
        if self.length is not None and len(j) != self.length:
            fail(where, f"expected {self.length} entries, got {len(j)}")
        inner = self.inner
        if inner.bulk(j):
            out = j  # plain values (indices: the common, and often huge, case) in one pass
        else:
            out = inner.decode_rows(j) if isinstance(inner, Record) else None
            if out is None:
                out = [inner.decode(x, f"{where}[{k}]", ctx) for k, x in enumerate(j)]
        return list(out) if self.as_list else tuple(out)


class Index(Int):
    """A non-negative integer (an index or a count)."""


class Pairs(Node):
    """A tuple of ``(a, b)`` integer pairs, one flat JSON list ``[a0, b0, a1, b1, ...]``
    (compact for the many function bodies; checked in one pass)."""

    def __init__(self, hi=U64):
        self.hi = hi

    def encode(self, v):
        return [x for pair in v for x in pair]

    def decode(self, j, where, ctx):
        if type(j) is not list:
            fail(where, f"expected a list, got {_tname(j)}")
        if len(j) % 2:
            fail(where, f"expected pairs of integers, got {len(j)} entries")
        hi = self.hi
        if j and not (set(map(type, j)) == {int} and min(j) >= 0 and max(j) <= hi):
            k = next(k for k, x in enumerate(j) if not (type(x) is int and 0 <= x <= hi))
            fail(f"{where}[{k}]", f"expected an integer in [0, {hi}], got {j[k]!r}")
        it = iter(j)
        return tuple(zip(it, it))


class Nullable(Node):
    """A list whose items may be null (None), plain indices checked in one pass."""

    def __init__(self, inner: Node):
        self.inner = Opt(inner)

    def encode(self, v):
        return [self.inner.encode(x) for x in v]

    def decode(self, j, where, ctx):
        if type(j) is not list:
            fail(where, f"expected a list, got {_tname(j)}")
        if self.inner.bulk(j):
            return tuple(j)
        return tuple(self.inner.decode(x, f"{where}[{k}]", ctx) for k, x in enumerate(j))


class Record(Node):
    """An object (or, with ``row``, a fixed-length list) of the attributes of ``cls``.

    ``fields`` are ``(json_key, attribute, node)``. An attribute may be a dotted path into a
    part built first (``parts={"table": TableType}``: ``table.minimum``); ``attribute`` None
    means ``node`` is a :class:`Group` (several attributes under one key). ``derived`` maps
    attributes not stored to ``fn(decoded_attrs, ctx, where)``; ``publish`` names attributes
    put in ``ctx`` once decoded, for the fields after them. A ``row``'s entries are the
    positional arguments of ``make`` (default ``cls``), in the order of ``fields``.
    """

    def __init__(self, cls, fields, *, parts=None, derived=None, row: bool = False,
                 publish=(), make=None):
        self.cls, self.fields, self.row = cls, tuple(fields), row
        self.make = make or cls
        self.parts = parts or {}
        self.derived = derived or {}
        self.publish = frozenset(publish)
        self.keys = tuple(k for k, _, _ in self.fields)
        self.keyset = frozenset(self.keys)
        self.simple = not (self.parts or self.derived or self.publish) and all(
            a is not None and "." not in a for _, a, _ in self.fields)
        self.attrs = tuple(a for _, a, _ in self.fields)
        fasts = [node.fast for _, _, node in self.fields]
        self.fast_row = tuple(fasts) if row and self.simple and None not in fasts else None
        if row and dataclasses.is_dataclass(cls) and make is None:
            names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
            if names[:len(self.attrs)] != self.attrs:  # pragma: no cover - a description bug
                raise TypeError(f"row of {cls.__name__}: fields {self.attrs} are not its "
                                f"positional arguments {names}")

    def encode(self, v):
        values = []
        for _, attr, node in self.fields:
            if attr is None:
                values.append(node.encode(v))
                continue
            x = v
            for a in attr.split("."):
                x = getattr(x, a)
            values.append(node.encode(x))
        return values if self.row else dict(zip(self.keys, values))

    def decode(self, j, where, ctx):
        if self.row:
            if self.fast_row and type(j) is list and len(j) == len(self.fields):
                values = [f(x) for f, x in zip(self.fast_row, j)]
                if SLOW not in values:
                    return construct(self.make, values, where)
            if type(j) is not list or len(j) != len(self.fields):
                fail(where, f"expected a list of {len(self.fields)} entries, got {j!r}")
            return self.decode_fields(dict(zip(self.keys, j)), where, ctx, "[{}]")
        if type(j) is not dict or j.keys() != self.keyset:
            obj(j, where, self.keys)
        return self.decode_fields(j, where, ctx)

    def decode_rows(self, j: list):
        """The records of rows ``j`` when every entry of every row passes its node's
        :meth:`~Node.bulk` check and ``make`` accepts them, else None (then decode them one
        by one, which reports the error)."""
        if not (self.row and self.simple):
            return None
        n = len(self.fields)
        if not all(type(x) is list and len(x) == n for x in j):
            return None
        columns = list(zip(*j)) if j else [()] * n
        if not all(node.bulk(col) for (_, _, node), col in zip(self.fields, columns)):
            return None
        try:
            return list(map(self.make, *columns))
        except (ValueError, TypeError):
            return None

    def decode_fields(self, o: dict, where, ctx, step=".{}"):
        """Decode the fields of ``o``, whose keys were checked."""
        if self.simple:
            kw = {}
            for i, (key, attr, node) in enumerate(self.fields):
                x = o[key]
                v = SLOW if node.fast is None else node.fast(x)
                kw[attr] = v if v is not SLOW else node.decode(
                    x, where + step.format(i if step == "[{}]" else key), ctx)
            return construct(self.make, kw, where)
        attrs: dict = {}
        for i, (key, attr, node) in enumerate(self.fields):
            w = where + step.format(i if step == "[{}]" else key)
            if attr is None:
                attrs.update(node.decode(o[key], w, ctx))
                continue
            attrs[attr] = node.decode(o[key], w, ctx)
            if attr in self.publish:
                ctx[attr] = attrs[attr]
        for attr, fn in self.derived.items():
            attrs[attr] = fn(attrs, ctx, where)
        kw = {}
        nested: dict = {}
        for attr, value in attrs.items():
            head, _, rest = attr.partition(".")
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                kw[attr] = value
        for head, cls in self.parts.items():
            kw[head] = construct(cls, nested.get(head, {}), where)
        return construct(self.make, kw, where)

    def covered(self) -> Dict[object, set]:
        """Per class, the attributes this record stores or derives."""
        attrs = list(self.derived)
        for _, attr, node in self.fields:
            attrs.extend(node.attributes() if attr is None else [attr])
        out: Dict[object, set] = {self.cls: set()}
        for attr in attrs:
            head, _, rest = attr.partition(".")
            out[self.cls].add(head)
            if rest:
                out.setdefault(self.parts[head], set()).add(rest)
        return out


class Group(Node):
    """Several attributes of the enclosing record under one JSON object."""

    def __init__(self, fields):
        self.fields = tuple(fields)

    def attributes(self):
        return [attr for _, attr, _ in self.fields]

    def encode(self, v):
        return {key: node.encode(getattr(v, attr)) for key, attr, node in self.fields}

    def decode(self, j, where, ctx):
        o = obj(j, where, [key for key, _, _ in self.fields])
        return {attr: node.decode(o[key], f"{where}.{key}", ctx) for key, attr, node in self.fields}


def construct(cls, kw, where):
    """``cls(**kw)`` (``cls(*kw)`` for a list of positional arguments); a constructor's
    ValueError or TypeError is an ArtifactError at ``where``."""
    try:
        return cls(*kw) if type(kw) is list else cls(**kw)
    except (ValueError, TypeError) as exc:  # e.g. a RefType in a non-canonical form
        fail(where, str(exc))


class Tagged(Node):
    """One of several records, told apart by ``{"kind": tag, ...}``."""

    def __init__(self, what: str, variants: Dict[str, Record]):
        self.what, self.variants = what, variants
        self.tags = {r.cls: tag for tag, r in variants.items()}

    def encode(self, v):
        tag = self.tags[type(v)]
        return {"kind": tag, **self.variants[tag].encode(v)}

    def decode(self, j, where, ctx):
        tag = j.get("kind") if type(j) is dict else None
        record = self.variants.get(tag) if type(tag) is str else None
        if record is None:
            alternatives = "|".join(f'"{t}"' for t in self.variants)
            fail(where, f'expected {{"kind": {alternatives}, ...}}')
        body = dict(j)
        del body["kind"]
        return record.decode(body, where, ctx)


class Keyed(Node):
    """A dict in the model, a list of records in JSON, each with its key under ``key``."""

    def __init__(self, key: str, value: Node, flat: bool, what: str, key_node: Node = None):
        self.key, self.value, self.flat, self.what = key, value, flat, what
        self.key_node = key_node or Index()
        if flat:
            self.flat_keys = value.keyset | {key}

    def encode(self, v):
        out = []
        for k, x in v.items():
            body = self.value.encode(x)
            out.append({self.key: k, **body} if self.flat else {self.key: k, "data": body})
        return out

    def decode(self, j, where, ctx):
        if type(j) is not list:
            fail(where, f"expected a list, got {_tname(j)}")
        out = {}
        for i, e in enumerate(j):
            w = f"{where}[{i}]"
            if type(e) is not dict or self.key not in e:
                fail(w, f"expected an object with {self.key!r}")
            k = self.key_node.decode(e[self.key], f"{w}.{self.key}", ctx)
            if k in out:
                fail(f"{w}.{self.key}", f"duplicate {self.what} {k!r}")
            if self.flat and e.keys() == self.flat_keys:
                out[k] = self.value.decode_fields(e, w, ctx)
                continue
            body = {x: y for x, y in e.items() if x != self.key}
            if self.flat:
                out[k] = self.value.decode(body, w, ctx)
            else:
                out[k] = self.value.decode(obj(body, w, ("data",))["data"], f"{w}.data", ctx)
        return out


def _nodes(node, seen):
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, Node):
        yield node
        node = list(vars(node).values())
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for x in node:
            yield from _nodes(x, seen)


def check_complete(root: Node) -> None:
    """Raise ArtifactError if a dataclass the description builds has a field it misses."""
    for node in _nodes(root, set()):
        if not isinstance(node, Record):
            continue
        for cls, attrs in node.covered().items():
            if dataclasses.is_dataclass(cls):
                names = {f.name for f in dataclasses.fields(cls)}
                if names != attrs:  # pragma: no cover - guards future model changes
                    raise ArtifactError(
                        f"cannot save artifact: the format does not describe {cls.__name__} "
                        f"exactly (not stored: {sorted(names - attrs)}, unknown: "
                        f"{sorted(attrs - names)}); update wasmenv/artifact/codec.py")


def dump(v, indent: str = "") -> str:
    """Readable JSON: one object key per line; short lists inline, long ones wrapped."""
    inner = indent + "  "
    if isinstance(v, dict):
        if not v:
            return "{}"
        parts = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump(x, inner)}" for k, x in v.items()]
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
        return "[\n" + ",\n".join(inner + dump(x, inner) for x in v) + "\n" + indent + "]"
    return json.dumps(v, ensure_ascii=False, allow_nan=False)
