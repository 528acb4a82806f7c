"""Globals: typed values in 16-byte native cells, and :class:`Global`, a view of one cell.

Cells follow ``wasmenv.vmglobals``' encoding (little-endian from byte 0: i32/f32 in 4
bytes, i64/f64 in 8, v128 in 16). A cell of a reference type holds its reference cell
(c_src/wenv_table.h, runtime/refs.py: 0 null, a funcref record's address, an externref
key), read and written in place by wasm code too; the Python object last stored from
Python is also kept in its :class:`GlobalCells`' side table ``refs`` (what keeps a
funcref's instance alive), made on the first non-null reference stored.
"""
from __future__ import annotations

import struct
import threading

from wasmenv import GlobalType
from wasmenv.vmglobals import CELL_SIZE, VALUE_BYTES

from . import _ffi
from .refs import holder_of
from .table import _give_back, _take, _take_for
from .values import as_u64, check_ref, from_bits, to_bits, valtype

_U64 = struct.Struct("<Q")
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_REFS_LOCK = threading.Lock()  # GlobalCells.refs is made once


class GlobalCells:
    """A run of 16-byte global cells in a native block: an instance block's defined-global
    region (``start`` its offset), or a host global's one cell. Whoever holds this keeps
    the block alive: an importer holds its exporters' (so their cells outlive them)."""

    __slots__ = ("block", "start", "_buf", "refs")

    def __init__(self, block, start: int = 0):
        self.block = block
        self.start = start
        self._buf = None  # a memoryview of the block, made on the first read or write
        self.refs = None  # cell index -> object, for non-null references (see the module doc)

    def _buffer(self):
        """A writable memoryview of the whole block (made once)."""
        buf = self._buf
        if buf is None:
            buf = self._buf = _ffi.block_buffer(self.block)
        return buf

    def address(self, index: int) -> int:
        """The address of cell ``index`` (what an importer's block points at)."""
        return _ffi.block_address(self.block) + self.start + index * CELL_SIZE

    def read(self, content, index: int):
        """The raw value of cell ``index`` holding a ``content`` value: unsigned ints (float
        bits; v128 as a 128-bit int), or the referenced object (None: null)."""
        width = VALUE_BYTES.get(content)
        buf, offset = self._buffer(), self.start + index * CELL_SIZE
        if width is None:
            from .refs import value_of
            cell = _U64.unpack_from(buf, offset)[0]
            return None if cell == 0 else value_of(content, cell)
        low = _U64.unpack_from(buf, offset)[0]
        if width == 4:
            return low & _MASK32
        if width == 8:
            return low
        return low | _U64.unpack_from(buf, offset + 8)[0] << 64

    def raw(self, index: int) -> int:
        """The low 8 bytes of cell ``index`` as stored (a reference cell: 0, a funcref
        record's address, an externref key)."""
        return _U64.unpack_from(self._buffer(), self.start + index * CELL_SIZE)[0]

    def hold(self, index: int, holder, memories, tables, again: bool = False) -> None:
        """Cell ``index`` names a function of instance ``holder`` (stored by its code): keep
        ``holder`` and a use of ``memories`` and ``tables`` until the cell is written from
        Python or this is garbage (``again``: as runtime.table._take's).

        Raises:
            ValueError: one of them is closed (nothing taken).
        """
        _let_go(self._keep_ref(index, _HeldRef(holder, _take(memories, tables, again=again))))

    def _keep_ref(self, index: int, kept):
        """The side table (made on first use) keeps ``kept`` for cell ``index``; returns
        what it kept there before (the caller lets go of it once the cell is written)."""
        refs = self.refs
        if refs is None:
            with _REFS_LOCK:
                refs = self.refs
                if refs is None:
                    refs = self.refs = {}
        old = refs.get(index)
        refs[index] = kept
        return old

    def write(self, content, index: int, bits, externs=None, hold: bool = False) -> None:
        """Store ``bits`` (as :meth:`read` returns them; v128 also as 16 bytes) in cell
        ``index``; an externref is held by ``externs`` (runtime/refs.py; None: the
        process-wide registry). ``hold`` (a host global's cell, which no instance keeps
        for it): a wasm function stored here keeps the memories and tables its instance
        runs on until the cell holds something else or is garbage.

        Raises:
            ValueError: ``hold`` and the function's instance is closed (nothing written).
        """
        buf, offset = self._buffer(), self.start + index * CELL_SIZE
        width = VALUE_BYTES.get(content)
        if width is None:
            refs = self.refs
            if bits is None:
                if refs is not None:
                    _let_go(refs.pop(index, None))
                _U64.pack_into(buf, offset, 0)
                return
            kept = _HeldRef.of(bits) if hold else bits
            from .refs import cell_of
            cell = cell_of(content, bits, externs)
            old = self._keep_ref(index, kept)
            _U64.pack_into(buf, offset, cell)
            _let_go(old)
            return
        if isinstance(bits, (bytes, bytearray, memoryview)):  # a v128.const immediate
            bits = int.from_bytes(bits, "little")
        _U64.pack_into(buf, offset, bits & _MASK64)
        if width == 16:
            _U64.pack_into(buf, offset + 8, bits >> 64)


class _HeldRef:
    """A reference a host global's cell holds, with what :func:`runtime.table._take` took
    for it (its wasm function's instance's memories and tables), given back once."""

    __slots__ = ("value", "taken")

    def __init__(self, value, taken):
        self.value, self.taken = value, taken

    @classmethod
    def of(cls, value):
        """``value`` with a use of what its code runs on (ValueError: its instance is closed)."""
        holder = holder_of(value)
        taken = () if holder is None else _take_for(holder)
        return cls(value, taken) if taken else value

    def __del__(self):
        taken, self.taken = self.taken, ()
        if taken:
            _give_back(taken)


def _let_go(kept) -> None:
    """A cell no longer holds ``kept`` (a _HeldRef gives back what it took)."""
    if type(kept) is _HeldRef:
        kept.__del__()


class BlockCells(GlobalCells):
    """The defined-global cells of an instance block that this object owns: a bare
    ``uint8_t *`` from ``_ffi.alloc_written_block``, freed when this is garbage (so it
    costs no owning cdata per instance; whoever holds this keeps the block alive)."""

    __slots__ = ("byte_len",)

    def __init__(self, block, start: int, byte_len: int):
        self.block, self.start, self._buf, self.refs = block, start, None, None  # (GlobalCells')
        self.byte_len = byte_len

    def _buffer(self):
        buf = self._buf
        if buf is None:
            buf = self._buf = _ffi.block_buffer(self.block, self.byte_len)
        return buf

    def __del__(self):
        block, self.block = self.block, None
        if block is not None:
            _free_block(block)


_free_block = _ffi.free_block


class Global:
    """A wasm global: a view of one cell. ``value`` reads and (if mutable) writes it as a
    Python value.

    A host global (:meth:`new`) owns its cell. An instance's globals are views made on
    demand (``exports[name]``, ``instance.globals[i]``) of its block's cells, or, for an
    imported global, of the exporter's cell (so a write through either side is seen by
    both); once that instance is closed they raise ValueError. An externref stored in it
    stays alive with the registry of its instance's store (a host global: its own).
    """

    __slots__ = ("ty", "_cells", "_index", "_owner", "_externs", "__weakref__")

    def __init__(self, ty: GlobalType, bits):
        self.ty = ty
        self._cells = GlobalCells(_ffi.new_block(CELL_SIZE))
        self._index = 0
        self._owner = None  # the instance whose liveness this view depends on (None: host)
        self._externs = None  # a host global's externref registry (made on first use)
        self._cells.write(ty.content, 0, bits, self._registry() if ty.content.is_ref else None, hold=True)

    @classmethod
    def new(cls, engine, content, value, *, mutable: bool = False) -> "Global":
        """A host global of type ``content`` (``"i32"``, ``ValType.F64``, a RefType, ...).

        Reference values: None (null, nullable types only), a Func for function
        references (of exactly ``$t`` for ``(ref null? $t)``), any object for externref.
        """
        ty = GlobalType(valtype(content), bool(mutable))
        check_ref(ty.content, value)
        return cls(ty, to_bits(ty.content, value))

    @classmethod
    def _view(cls, ty: GlobalType, cells: GlobalCells, index: int, owner) -> "Global":
        """A view of cell ``index`` of ``cells``, usable while ``owner`` (an Instance) is open."""
        g = cls.__new__(cls)
        g.ty, g._cells, g._index, g._owner, g._externs = ty, cells, index, owner, None
        return g

    def _registry(self):
        """Its externrefs' registry: its instance's store's, or (a host global) its own."""
        if self._owner is not None:
            return self._owner.store._externs
        externs = self._externs
        if externs is None:
            from .refs import ExternRefs
            externs = self._externs = ExternRefs()  # (made in __init__: no race)
        return externs

    def _live_cells(self) -> GlobalCells:
        owner = self._owner
        if owner is not None and owner.closed:
            raise ValueError("instance is closed: its globals cannot be used")
        return self._cells

    @property
    def value(self):
        return from_bits(self.ty.content, self._live_cells().read(self.ty.content, self._index))

    @value.setter
    def value(self, new):
        if not self.ty.mutable:
            raise AttributeError("global is immutable")
        content = self.ty.content
        check_ref(content, new)
        bits = to_bits(content, new)
        cells = self._live_cells()
        owner = self._owner
        if new is not None and owner is not None and content.is_ref:
            holder = holder_of(new)
            if holder is not None:  # its code may run from here: keep what it runs on
                owner._keep(holder)
        cells.write(content, self._index, bits, self._registry() if content.is_ref else None,
                    hold=owner is None)

    @property
    def bits(self):
        """The raw value: unsigned ints, float bit patterns, or the reference object."""
        return self._live_cells().read(self.ty.content, self._index)

    def as_u64(self) -> int:
        return as_u64(self.ty.content, self.bits)

    def _set_bits(self, bits) -> None:
        """Store raw ``bits`` (as :attr:`bits` returns them), mutable or not: the
        interpreter writing back what wasm code stored."""
        content = self.ty.content
        cells = self._live_cells()
        cells.write(content, self._index, bits, self._registry() if content.is_ref else None)

    def close(self):
        """A view releases nothing (its instance owns the cell); present for a uniform API."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        mut = "mut " if self.ty.mutable else ""
        try:
            value = repr(self.value)
        except ValueError:
            value = "<closed instance>"
        return f"<Global {mut}{self.ty.content} = {value}>"
