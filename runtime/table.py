"""Tables: sparse, growable arrays of references with lazy FuncTable initialization."""
from __future__ import annotations

import bisect
import threading
from typing import Optional, Sequence

from wasmenv import TablePlan, TableType

from ._owner import Owner
from .traps import Trap, TrapCode
from .values import check_ref, valtype

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

_UNSET = object()


class Table(Owner):
    """A wasm table.

    Storage is sparse: explicitly set elements live in a dict, a FuncTable array (from
    the module's compile-time folding) supplies lazily created function references, and
    everything else is the fill value of the range it was created or grown with. A
    10-million-element table therefore costs nothing until it is written.

    ``slot`` (from a pooling allocator): an object with ``max_elements`` (a cap on
    ``grow``) and ``release()`` (called once by :meth:`close`, after every element was
    dropped). The Table owns it: :meth:`close`, context manager, and the Owner backstop.
    """

    def __init__(self, ty: TableType, init=None, *, lazy: Optional[Sequence[Optional[int]]] = None,
                 make_func=None, slot=None):
        self.ty = ty
        self._size = ty.minimum
        self._slot = slot
        self._set = {}
        self._fill_starts = [0]
        self._fill_values = [init]
        self._lazy = lazy or ()
        self._make_func = make_func
        self._lock = threading.Lock()
        self._closed = False
        self._store = None  # set by the instance that defines it (runtime.store limits)

    @classmethod
    def new(cls, engine, element, minimum: int, maximum: Optional[int] = None, init=None,
            *, table64: bool = False) -> "Table":
        """A host table of ``element`` references (``"funcref"``, ``"externref"``, a RefType
        such as ``RefType(False, "func")``); every element starts as ``init``, which a
        non-nullable element type requires (TypeError otherwise)."""
        el = valtype(element)
        if not el.is_ref:
            raise TypeError(f"table element type must be a reference type, got {el}")
        limit = U64_MAX if table64 else U32_MAX
        if not 0 <= minimum <= limit or (maximum is not None and not minimum <= maximum <= limit):
            raise ValueError(f"bad table limits {minimum}..{maximum}")
        check_ref(el, init)
        return cls(TableType(el, minimum, maximum, table64), init)

    @classmethod
    def _for_plan(cls, plan: TablePlan, lazy=None, make_func=None, init=None, slot=None) -> "Table":
        """A defined table; ``init`` is the value of its initializer expression (None: null)."""
        check_ref(plan.table.element, init)
        return cls(plan.table, init, lazy=lazy, make_func=make_func, slot=slot)

    @property
    def size(self) -> int:
        return self._size

    @property
    def maximum(self) -> Optional[int]:
        return self.ty.maximum

    def get(self, index: int):
        """The element at ``index`` (None for null). Raises Trap if out of bounds."""
        self._check(index, 1)
        return self._get(index)

    def _get(self, index):
        value = self._set.get(index, _UNSET)
        if value is not _UNSET:
            return value
        if index < len(self._lazy) and self._lazy[index] is not None:
            value = self._make_func(self._lazy[index])
            self._set[index] = value  # materialized once, identity preserved
            return value
        i = bisect.bisect_right(self._fill_starts, index) - 1
        return self._fill_values[i]

    def set(self, index: int, value):
        """Store ``value`` (a Func, an extern object, or None). Raises Trap if out of bounds,
        TypeError if the value does not fit the element type (e.g. null in a ``(ref func)``
        table, or a Func of another type in a ``(ref $t)`` table)."""
        check_ref(self.ty.element, value)
        self._check(index, 1)
        self._set[index] = value

    def grow(self, delta: int, init=None) -> int:
        """Grow by ``delta`` elements filled with ``init``; the old size, or -1 if not allowed."""
        check_ref(self.ty.element, init)
        if delta < 0:
            raise ValueError("delta must be >= 0")
        with self._lock:
            old = self._size
            new = old + delta
            limit = self.ty.maximum if self.ty.maximum is not None else (
                U64_MAX if self.ty.table64 else U32_MAX)
            if new > limit or (self._slot is not None and new > self._slot.max_elements):
                return -1
            store = self._store  # an instance's table: its store's limits
            if store is not None and not store._table_may_grow(new):
                return -1
            if delta:
                self._fill_starts.append(old)
                self._fill_values.append(init)
                self._size = new
            return old

    def fill(self, index: int, value, n: int):
        """table.fill: bounds-checked before writing anything."""
        check_ref(self.ty.element, value)
        self._check(index, n)
        for i in range(index, index + n):
            self._set[i] = value

    def _write_elements(self, start: int, values: Sequence):
        """Element-segment write: bounds-checked first, then all values (already refs)."""
        self._check(start, len(values))
        for i, v in enumerate(values):
            self._set[start + i] = v

    def _check(self, index: int, n: int):
        if self._closed:
            raise ValueError("table is closed")
        if index < 0 or n < 0 or index + n > self._size:
            raise Trap(TrapCode.TABLE_OUT_OF_BOUNDS,
                       f"table access [{index}, {index + n}) out of bounds (size {self._size})")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self):
        """Drop every element and give a pool's table slot back (idempotent); later
        accesses raise ValueError."""
        if self._closed:
            return
        self._closed = True
        self._set = {}
        self._lazy = ()
        self._make_func = None
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    def __repr__(self):
        return f"<Table {self.ty.element} size={self._size} max={self.ty.maximum}>"

