"""Running wasm functions: per-module interpreter code (translated lazily, shared by every
instance) and the bridge that calls a function of an instance from Python.

This step's bridge builds a call context per call from the instance's existing objects:
the memory descriptors of its ``Memory`` objects and a globals region copied from its
globals' cells (the mutable ones written back after the call, trap or not). Reading the
native instance block directly replaces both in a later step.
"""
from __future__ import annotations

import threading
from typing import List, NamedTuple

from wasmenv import UnsupportedFeature, ValType

from . import _ffi
from .backtrace import function_names, register_code
from .engine import DEFAULT_MAX_WASM_STACK, FRAME_BYTES
from .translate import translate_function
from .traps import Trap, TrapCode
from .values import from_bits, to_bits

__all__ = ["ModuleCode", "module_code", "call", "call_bits", "STACK_CELLS", "MAX_FRAMES"]

#: The value stack of one thread (8-byte cells) and the deepest wasm call chain at the
#: default ``Engine.max_wasm_stack``; past either a call traps with STACK_OVERFLOW. A
#: thread's stacks grow to the largest engine limit it runs under.
STACK_CELLS = DEFAULT_MAX_WASM_STACK // 8
MAX_FRAMES = DEFAULT_MAX_WASM_STACK // FRAME_BYTES

_TRAPS = {
    _ffi.I_UNREACHABLE: TrapCode.UNREACHABLE,
    _ffi.I_DIV_ZERO: TrapCode.INTEGER_DIVISION_BY_ZERO,
    _ffi.I_INT_OVERFLOW: TrapCode.INTEGER_OVERFLOW,
    _ffi.I_BAD_CONV: TrapCode.BAD_CONVERSION_TO_INTEGER,
    _ffi.I_STACK_OVERFLOW: TrapCode.STACK_OVERFLOW,
    _ffi.I_OUT_OF_FUEL: TrapCode.OUT_OF_FUEL,
    _ffi.I_INTERRUPT: TrapCode.INTERRUPT,
}
_MODULE_LOCK = threading.Lock()


class _Context:
    """What translating a module's bodies needs (built once per module).

    Raw (unchecked) accesses follow the accessors' rule in C (``wenv_access_is_raw``) on
    the descriptor of memory 0 of the first instance called: its real reservation, pool
    slots included. Every later call checks that its memory 0 has that geometry.
    """

    def __init__(self, module, signals_based_traps: bool, mem0_desc):
        env = module.env
        # The engine's config is part of the code: fuel and epoch checks are emitted only
        # when it has them (a module belongs to one engine: one translation each).
        self.fuel, self.epoch = module.engine.code_config
        self.bounded = self.fuel or self.epoch
        self.types = [t.func for t in env.types]
        self.func_types = [self.types[f.signature] for f in env.functions]
        self.global_types = [g.type.content for g in env.globals]
        self.num_imported_funcs = env.num_imported_funcs
        self._mem0 = None
        self.geometry = None
        if signals_based_traps and env.memory_plans and env.num_imported_memories == 0 \
                and mem0_desc is not None and mem0_desc.flags == _ffi.MEM_STATIC:
            self._mem0 = _ffi.new_memory_desc()  # a copy: the instance's may be closed later
            self._mem0.flags = mem0_desc.flags
            self._mem0.bound_bytes = mem0_desc.bound_bytes
            self._mem0.guard_bytes = mem0_desc.guard_bytes
            self.geometry = geometry(mem0_desc)

    def raw_access(self, memory: int, offset: int, width: int) -> bool:
        """Raw iff memory 0 is 32-bit static and ``0xFFFFFFFF + offset + width <= bound + guard``."""
        return memory == 0 and self._mem0 is not None and \
            _ffi.access_is_raw(self._mem0, offset, width) == 1


def geometry(desc):
    """What raw code relies on in a memory: its style and its bytes of bound plus guard."""
    return desc.flags, desc.bound_bytes + desc.guard_bytes


class ModuleCode:
    """The interpreter code of one module: a ``wenv_func`` per function, translated on
    first call (thread-safe), shared by every instance."""

    def __init__(self, module, mem0_desc=None):
        translation = module.translation
        if translation.code is None or (translation.code.bodies and translation.wasm is None):
            raise UnsupportedFeature("execution", detail="this module does not carry its code section")
        self.module = module
        self.ctx = _Context(module, module.engine.signals_based_traps, mem0_desc)
        self._bodies = translation.code.bodies
        self._wasm = translation.wasm
        self.module_offset = translation.code.module_offset  # of the code buffer's offset 0
        self._names = None
        self.funcs = _ffi.new_interp_funcs(len(self.ctx.func_types))
        self._keep: List[object] = []
        self._failed = {}
        self._lock = threading.Lock()

    def ensure(self, func_index: int) -> None:
        """Translate ``func_index`` unless done. Raises UnsupportedFeature (every time)."""
        if self.funcs[func_index].code != _ffi.NULL:
            return
        with self._lock:
            if self.funcs[func_index].code != _ffi.NULL:
                return
            exc = self._failed.get(func_index)
            if exc is None:
                try:
                    self._translate(func_index)
                    return
                except UnsupportedFeature as e:
                    exc = self._failed[func_index] = e
            raise UnsupportedFeature(exc.feature, exc.offset, exc.section, exc.detail)

    def _translate(self, func_index: int) -> None:
        ctx = self.ctx
        if func_index < ctx.num_imported_funcs:
            raise UnsupportedFeature("host calls", detail=f"function {func_index} is imported")
        start, end = self._bodies[func_index - ctx.num_imported_funcs]
        code = translate_function(ctx, func_index, self._wasm, start, end, _ffi.interp_op_numbers())
        words = _ffi.interp_publish(self.funcs, func_index, code)
        register_code(_ffi.code_address(words), len(code.words), self, func_index, start,
                      code.positions, code.offsets)
        self._keep.append(words)

    def func_name(self, func_index: int):
        """The function's name from the module's name section, or None."""
        if self._names is None:
            self._names = function_names(self._wasm if self.module_offset == 0 else None)
        return self._names.get(func_index)


def module_code(module, mem0_desc=None) -> ModuleCode:
    """The module's ModuleCode (made on first use; ``mem0_desc``: see _Context)."""
    mc = getattr(module, "_code", None)
    if mc is None:
        with _MODULE_LOCK:
            mc = getattr(module, "_code", None)
            if mc is None:
                mc = module._code = ModuleCode(module, mem0_desc)
    return mc


class _ThreadStack(threading.local):
    stack = None
    frames = None
    cells = 0
    nframes = 0


_THREAD = _ThreadStack()


def _stacks(cells: int, nframes: int):
    """This thread's value and frame stacks, at least ``cells`` and ``nframes`` long (a
    call in flight keeps the smaller ones it had alive)."""
    t = _THREAD
    if t.cells < cells or t.nframes < nframes:
        t.cells, t.nframes = max(cells, t.cells), max(nframes, t.nframes)
        t.stack, t.frames = _ffi.new_interp_stacks(t.cells, t.nframes)
    return t.stack, t.frames


class _Site(NamedTuple):
    """What calls into one instance share (made on its first call)."""

    mc: ModuleCode
    memories: list
    mems: object   # the wenv_memory *[] of the call contexts
    nmems: int


def _site(instance) -> _Site:
    site = instance.__dict__.get("_interp_site")
    if site is not None:
        return site
    memories = instance.memories
    descs = [m._desc for m in memories]
    mc = module_code(instance.module, descs[0] if descs else None)
    if mc.ctx.geometry is not None and geometry(descs[0]) != mc.ctx.geometry:
        from .errors import WasmRuntimeError
        raise WasmRuntimeError("memory 0 of this instance has another layout than the one its "
                               "module's code was translated for (raw accesses need its guard)")
    site = instance._interp_site = _Site(mc, memories, _ffi.new_memory_array(descs), len(descs))
    return site


_NUMERIC = (ValType.I32, ValType.I64, ValType.F32, ValType.F64)


def call(instance, func_index: int, ty, args):
    """Call function ``func_index`` of ``instance`` with Python ``args``; returns None, a
    value, or a tuple (multi-value). Raises TypeError (arity/type) before anything runs,
    ``Trap``, or ``UnsupportedFeature``."""
    params = ty.params
    if len(args) != len(params):
        raise TypeError(f"expected {len(params)} arguments, got {len(args)}")
    for t in params:
        if t not in _NUMERIC:
            raise UnsupportedFeature("reference types", detail=f"calling with a {t} parameter")
    cells = [to_bits(t, a) for t, a in zip(params, args)]
    results = ty.results
    stack = call_bits(instance, func_index, cells)
    if len(results) == 1:
        return from_bits(results[0], stack[0])
    return tuple(from_bits(t, stack[i]) for i, t in enumerate(results)) if results else None


def call_bits(instance, func_index: int, cells):
    """:func:`call` on raw cells (argument bit patterns, as ``to_bits`` makes them, already
    checked); returns the thread's value stack, whose first cells are the results' bit
    patterns (valid until the next call on this thread)."""
    if instance.closed:
        raise ValueError("instance is closed")
    site = _site(instance)
    mc = site.mc
    mc.ensure(func_index)
    engine = instance.module.engine
    max_cells, max_frames = engine._stack_cells, engine._stack_frames
    stack, frames = _stacks(max_cells, max_frames)
    for i, v in enumerate(cells):
        stack[i] = v
    globals_ = instance.globals
    # The numeric globals, as views made once for this call (code reading other globals
    # is not translated yet): copied in now, the mutable ones written back after.
    numeric = [(i, g) for i, g in enumerate(globals_) if g.ty.content in _NUMERIC]
    c, gcells = _ffi.new_interp_call(mc.funcs, site.mems, site.nmems, len(globals_), stack,
                                     max_cells, frames, max_frames, func_index)
    if mc.ctx.bounded:  # code with fuel/epoch checks: under the store of the function called
        store = instance.store
        _ffi.set_call_bounds(c, store._fuel, engine._epoch, store._deadline)
    for i, g in numeric:
        gcells[2 * i] = g.bits
    try:
        while True:
            status = _ffi.interp_run(c)
            if status == _ffi.I_DONE:
                break
            if status == _ffi.I_EXIT_TRANSLATE:
                mc.ensure(c.exit_arg0)
            elif status == _ffi.I_EXIT_GROW:
                _grow(c, site.memories, mc.ctx)
            else:
                raise _trap(c, status, frames, engine.wasm_backtrace_max_frames, mc)
    finally:
        for i, g in numeric:
            if g.ty.mutable:
                g._set_bits(gcells[2 * i])
    return stack


def _grow(c, memories, ctx) -> None:
    index = c.exit_arg0
    memory64 = memories[index].plan.memory.memory64
    delta = c.exit_arg1 if memory64 else c.exit_arg1 & 0xFFFFFFFF
    old = memories[index].grow(delta)
    c.exit_dst[0] = old & (0xFFFFFFFFFFFFFFFF if memory64 else 0xFFFFFFFF)


def _trap(c, status, frames, max_frames, mc) -> Exception:
    code = _TRAPS.get(status)
    if code is not None:
        trap = Trap(code)
    elif status in (_ffi.I_OOB, _ffi.I_OOB_GUARD):
        trap = Trap(TrapCode.MEMORY_OUT_OF_BOUNDS, address=c.trap_addr,
                    guard_fault=status == _ffi.I_OOB_GUARD)
    else:
        trap = None
    if trap is not None:  # raw addresses now; FrameInfo records when someone reads them
        trap._ips = (_ffi.pointer_address(c.ip),  # mc: its code stays mapped until read
                     _ffi.frame_return_ips(frames, c.depth, max_frames - 1), mc)
        return trap
    from .errors import WasmRuntimeError
    if status == _ffi.I_FAULT:
        return WasmRuntimeError(f"memory fault inside the accessible bytes at wasm address "
                                f"{c.trap_addr:#x} (was an image file truncated?)")
    return WasmRuntimeError(f"interpreter: unexpected status {status}")  # pragma: no cover



