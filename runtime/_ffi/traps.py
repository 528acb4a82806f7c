"""The guard-page fault handler and what it recorded (c_src/wenv_traps.h)."""
from __future__ import annotations

import os

from ..errors import WasmRuntimeError
from .wenv import ffi, lib


def install_trap_handler() -> None:
    """Install the SIGSEGV/SIGBUS handler, or put it back on top if something covered it."""
    if lib.wenv_trap_handler_install() != 0:
        err = ffi.errno
        raise WasmRuntimeError("could not install the guard-page fault handler") from OSError(
            err, os.strerror(err))


def trap_handler_on_top() -> int:
    """1: our handler is installed for SIGSEGV and SIGBUS; 0: covered by another; -1: never installed."""
    return lib.wenv_trap_handler_on_top()


signal_handler_id = lib.wenv_signal_handler_id      # (signum) -> the installed handler's identity
trap_handler_forget = lib.wenv_trap_handler_forget  # (handler id) -> entries dropped from our chain


last_status = lib.wenv_last_status
last_fault_address = lib.wenv_last_fault_address
last_fault_signal = lib.wenv_last_fault_signal
#: () -> faults the handler turned into traps on this thread (read-only; the signal path's count)
thread_faults_caught = lib.wenv_thread_faults_caught
