"""The initialization steps of an instance, in spec order: its block (the globals template
copied in, imported globals' cell pointers), per-instance global initializers, table
initializers, element segments, data segments, the start function. A mixin of
:class:`runtime.Instance` (it runs them from ``__init__``), kept apart so that the
instance's lifetime and views (runtime/instance.py) read on their own."""
from __future__ import annotations

from wasmenv import ConstExpr

from . import _ffi
from .globals import BlockCells
from .refs import FuncAt
from .traps import Trap, TrapCode
from .values import as_u64


class Initialization:
    """What :class:`runtime.Instance` runs to initialize itself (see the module docstring)."""

    __slots__ = ()

    def _open_block(self, layout):
        """The instance block: the globals template copied in, imported globals' cell
        pointers, then the per-instance initializers evaluated in order."""
        byte_len = layout.block_bytes
        block = _new_block(byte_len)
        self._cells = BlockCells(block, layout.globals_start, byte_len)  # (owns it from here)
        template = layout.globals_template
        if template.cells:
            _copy_into(block + layout.globals_start, template.cells, len(template.cells))
        imported = self._imported_globals
        if imported:
            _store_u64s(block, layout.vmoffsets.start("imported_globals"),
                        [src.address(index) for _, src, index in imported])

    # -- instantiation -------------------------------------------------------------------
    def _instantiate(self, layout):
        """Per-instance global initializers, tables (memories are open already), then
        element and data segments."""
        # The interpreter state (runtime/interp.py) is made on first use: a call, a funcref
        # (ref.func initializers, element segments), an element read of a lazy table.
        template = layout.globals_template
        if template.per_instance:
            types, cells = template.types, self._cells
            template.evaluate_per_instance(self._global_bits, self._func_ref,
                                           lambda k, bits: cells.write(types[k], k, bits))
        for k, init, size in layout.table_inits:  # tables are open (uninitialized)
            value = self._eval(init)
            if value is not None:  # (null: uninitialized reads as null, or as the lazy array says)
                self._table(len(self._imported_tables) + k).fill(0, value, size)
        # (An interpreter state made above, for a funcref, found the tables open: it made
        # their views and reaches them.)

        # Element segments (eager ones), then data segments, each in order; stop at the
        # first out-of-bounds segment with earlier writes kept.
        for write in layout.element_segments:
            seg = write.segment
            table = self._table(seg.table_index)
            start = seg.start(self._global_u64)
            if start + len(seg.elements) > table.size:
                raise Trap(TrapCode.TABLE_OUT_OF_BOUNDS,
                           f"element segment out of bounds: [{start}, {start + len(seg.elements)}) "
                           f"in table {seg.table_index} of size {table.size}")
            if write.funcs is not None and table._funcs:
                table._write_funcs(start, self, write)
            else:
                table._write_elements(start, [self._element(e) for e in seg.elements])

        if layout.segmented:
            self._apply_data(layout.data_plan)
        else:  # Static: images were mapped at allocation, unless copy-on-write is off
            for index, offset, view in layout.copies:
                self.memory(index).write(offset, view)
        # Active and declarative segments are dropped; passive ones stay until data.drop
        # (the layout's mapping is shared until this instance drops one: _dropped_data).
        start = self.module.env.start_func
        if start is not None:  # last, in spec order; a trap releases everything (__init__)
            if start < len(self._imported_funcs):
                self._imported_funcs[start]()
            else:  # (type [] -> []: no Func, no arguments to check, no results)
                from .interp import call_bits
                call_bits(self, start, ())

    def _apply_data(self, plan) -> None:
        """Active data segments in order, in one C call (imported memories included); a
        segment that does not fit traps with the earlier ones written."""
        writes, n = plan.writes, plan.count
        if plan.per_instance:
            writes = _ffi.copy_data_writes(writes, n)
            for i, init in plan.per_instance:
                start = init.start(self._global_u64)
                if start is None:  # past 2^64: the writes before it, then the trap
                    n = i
                    break
                writes[i].start = start
                if i in plan.mapped:
                    plan.map_from_file(writes, i, start)
        imported = len(self._imported_memories)
        mems = _ffi.new_memory_array([_ffi.NULL if k not in plan.memories
                                      else self.memory(k)._desc if k < imported else self._memory_desc(k - imported)
                                      for k in range(imported + self._layout.memory_count)])
        done, status = _ffi.data_apply(mems, writes, n, plan.fail)
        if done < n:  # out of bounds (a Trap), or a fault reading a data file's bytes
            w = writes[done]
            raise self.memory(w.memory)._error(status, "data segment", w.byte_len, w.start)
        if done != plan.count:  # a start past 2^64
            raise Trap(TrapCode.MEMORY_OUT_OF_BOUNDS, "data segment out of bounds")

    def _global_u64(self, index: int) -> int:
        return as_u64(self.module.env.globals[index].type.content, self._global_bits(index))

    def _eval(self, expr: ConstExpr):
        return expr.evaluate(self._global_bits, self._func_ref)

    def _element(self, item):
        """An element segment's item as a table value: None, an imported Func, a FuncAt
        (a defined function: no Func object is made), or what its expression gives."""
        if item is None:
            return None
        if isinstance(item, int):
            return self._element_func(item)
        return item.evaluate(self._global_bits, self._element_func)

    def _element_func(self, index: int):
        imported = self._imported_funcs
        return imported[index] if index < len(imported) else FuncAt(self, index)


_new_block, _copy_into, _store_u64s = _ffi.alloc_written_block, _ffi.copy_into, _ffi.store_u64s
