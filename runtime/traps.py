"""Traps: a WebAssembly execution stopped by the spec (not a runtime failure).

``Trap`` is deliberately *not* a :class:`runtime.errors.WasmRuntimeError`: a trap is a
wasm outcome (as in the spec's ``assert_trap``), while ``WasmRuntimeError`` means the
runtime itself could not do something (link errors, allocation failures).
"""
from __future__ import annotations

import enum
from typing import Optional

__all__ = ["Trap", "TrapCode", "install_trap_handler", "trap_handler_on_top"]


class TrapCode(enum.Enum):
    """Why wasm trapped. Each value is the spec test suite's ``assert_trap`` text."""

    MEMORY_OUT_OF_BOUNDS = "out of bounds memory access"
    TABLE_OUT_OF_BOUNDS = "out of bounds table access"
    INDIRECT_CALL_TO_NULL = "uninitialized element"
    BAD_SIGNATURE = "indirect call type mismatch"
    INTEGER_OVERFLOW = "integer overflow"
    INTEGER_DIVISION_BY_ZERO = "integer divide by zero"
    BAD_CONVERSION_TO_INTEGER = "invalid conversion to integer"
    UNREACHABLE = "unreachable"
    STACK_OVERFLOW = "call stack exhausted"
    HEAP_MISALIGNED = "unaligned atomic"
    OUT_OF_FUEL = "all fuel consumed by WebAssembly"
    NULL_REFERENCE = "null reference"
    ATOMIC_WAIT_NON_SHARED = "atomic wait on non-shared memory"
    INTERRUPT = "interrupt"

    @property
    def message(self) -> str:
        return self.value

    def __str__(self):
        return self.value


class Trap(Exception):
    """A WebAssembly trap.

    Args:
        code: the :class:`TrapCode`.
        message: details; defaults to the code's spec text (plus the address, if any).
        address: for memory traps, the wasm (effective) address of the access, else None.
        guard_fault: True when the trap was detected by a fault on a guard page (the
            access ran with no bounds check), False when an explicit check found it.

    ``frames`` is the wasm backtrace, innermost first (:class:`runtime.backtrace.FrameInfo`,
    wasmtime-py's Frame names: ``func_index``, ``func_name``, ``module_name``,
    ``func_offset``, ``module_offset``), empty for a trap raised outside wasm code (a
    segment at instantiation, an accessor); ``trace`` is the same as wasmtime's
    backtrace lines (``"    0:     0x34 - m!inner"``). Both are resolved on first read.

    ``str(trap)`` is the message. Picklable: every field survives ``pickle``.
    """

    # Built on the trap path of every guarded access: keep construction cheap (no
    # super().__init__, message formatted only when someone reads it).
    def __init__(self, code: TrapCode, message: Optional[str] = None, *, address: Optional[int] = None,
                 guard_fault: bool = False, _context=None):
        if code.__class__ is not TrapCode:
            raise TypeError(f"code must be a TrapCode, got {code!r}")
        self.code = code
        self._message = message
        self._context = _context
        self.address = address
        self.guard_fault = guard_fault
        self._ips = None      # (trap ip, return ips outermost first): raw, from the interpreter
        self._frames = None

    @property
    def frames(self) -> list:
        """The wasm frames, innermost first (see the class doc)."""
        if self._frames is None:
            if self._ips is None:
                self._frames = []
            else:
                from .backtrace import frames_of
                self._frames = frames_of(*self._ips)
                self._ips = None
        return self._frames

    @property
    def trace(self) -> list:
        """``frames`` as wasmtime's backtrace lines."""
        from .backtrace import format_frames
        return format_frames(self.frames)

    @property
    def message(self) -> str:
        if self._message is None:
            if self._context is not None:
                op, width, addr, offset, memory_bytes = self._context
                self._message = (
                    f"{self.code.value}: {op} of {width} bytes at wasm address {self.address:#x} "
                    f"(addr {addr:#x} + offset {offset:#x}) in a memory of {memory_bytes:#x} bytes "
                    f"({'guard page fault' if self.guard_fault else 'bounds check'})")
            elif self.address is not None:
                self._message = f"{self.code.value} at wasm address {self.address:#x}"
            else:
                self._message = self.code.value
        return self._message

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (_rebuild_trap, (self.code, self.message, self.address, self.guard_fault,
                                [tuple(f) for f in self.frames]))

    def __repr__(self):
        return f"Trap({self.code.name}, {self.message!r}, address={self.address!r})"


def _rebuild_trap(code, message, address, guard_fault, frames=()):
    trap = Trap(code, message, address=address, guard_fault=guard_fault)
    if frames:
        from .backtrace import FrameInfo
        trap._frames = [FrameInfo(*f) for f in frames]
    return trap


def install_trap_handler() -> None:
    """Install the guard-page SIGSEGV/SIGBUS handler, or put it back on top.

    Creating a Memory does this already, and ``faulthandler.enable()`` /
    ``faulthandler.disable()`` put it back on top by themselves (see
    :func:`_follow_faulthandler`). Call it if something else installed its own
    SIGSEGV/SIGBUS handler afterwards without chaining to ours first: while such a
    handler is on top, a guard-page fault may kill the process instead of becoming a
    Trap. Re-installing keeps the covered handler in the chain: faults that are not
    ours still reach it.
    """
    from . import _ffi
    _ffi.install_trap_handler()


def trap_handler_on_top() -> bool:
    """True if the guard-page handler is the installed SIGSEGV and SIGBUS handler."""
    from . import _ffi
    return _ffi.trap_handler_on_top() == 1


def _follow_faulthandler() -> None:
    """Keep the guard-page handler on top whatever Python's ``faulthandler`` does.

    ``faulthandler.enable()`` installs a handler that treats every fault as fatal over
    ours, and ``faulthandler.disable()`` restores what it found when it was enabled:
    SIG_DFL, if it was enabled before our first memory. Either way the next guard-page
    fault would kill the process. So both are wrapped (once, at import): after either,
    ours is put back on top, and a disabled faulthandler is dropped from the handlers
    ours chains real crashes to (it would return without acting, and the fault would
    repeat forever). Faulthandler's handler is found as the SIGABRT handler while it is
    enabled (nothing else of the interpreter handles SIGABRT). No cost per access.
    A reference to the unwrapped functions taken before ``runtime`` was imported
    bypasses this: call :func:`install_trap_handler` after using it.
    """
    import faulthandler
    import functools
    import signal
    if getattr(faulthandler.enable, "_wenv_follows", False):
        return
    enable, disable = faulthandler.enable, faulthandler.disable

    def back_on_top():
        from . import _ffi
        if _ffi.trap_handler_on_top() == 0:  # -1: never installed, nothing to keep
            _ffi.install_trap_handler()

    @functools.wraps(enable)
    def enable_following(*args, **kwargs):
        try:
            return enable(*args, **kwargs)
        finally:
            back_on_top()

    @functools.wraps(disable)
    def disable_following():
        from . import _ffi
        theirs = _ffi.signal_handler_id(signal.SIGABRT) if faulthandler.is_enabled() else 0
        try:
            return disable()
        finally:
            if theirs:
                _ffi.trap_handler_forget(theirs)
            back_on_top()

    enable_following._wenv_follows = disable_following._wenv_follows = True
    faulthandler.enable, faulthandler.disable = enable_following, disable_following


_follow_faulthandler()
