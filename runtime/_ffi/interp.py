"""The interpreter: its status codes, code, calls, stacks and instances (c_src/wenv_interp.h)."""
from __future__ import annotations

from .. import _ffi
from ..errors import WasmRuntimeError
from .wenv import ffi, lib

I_DONE = lib.WENV_I_DONE
I_UNREACHABLE = lib.WENV_I_UNREACHABLE
I_DIV_ZERO = lib.WENV_I_DIV_ZERO
I_INT_OVERFLOW = lib.WENV_I_INT_OVERFLOW
I_BAD_CONV = lib.WENV_I_BAD_CONV
I_OOB = lib.WENV_I_OOB
I_OOB_GUARD = lib.WENV_I_OOB_GUARD
I_STACK_OVERFLOW = lib.WENV_I_STACK_OVERFLOW
I_FAULT = lib.WENV_I_FAULT
I_OUT_OF_FUEL = lib.WENV_I_OUT_OF_FUEL
I_INTERRUPT = lib.WENV_I_INTERRUPT
I_EXIT_TRANSLATE = lib.WENV_I_EXIT_TRANSLATE
I_EXIT_GROW = lib.WENV_I_EXIT_GROW
I_EXIT_HOST = lib.WENV_I_EXIT_HOST
I_TABLE_OOB = lib.WENV_I_TABLE_OOB
I_NULL_REF = lib.WENV_I_NULL_REF
I_INDIRECT_NULL = lib.WENV_I_INDIRECT_NULL
I_BAD_SIG = lib.WENV_I_BAD_SIG
I_EXIT_TABLE_GROW = lib.WENV_I_EXIT_TABLE_GROW
I_EXIT_BULK = lib.WENV_I_EXIT_BULK
interp_run = lib.wenv_interp_run
_OP_NUMBERS = {ffi.string(lib.wenv_interp_op_name(i)).decode(): i
               for i in range(lib.wenv_interp_op_count())}
_new_unzeroed = ffi.new_allocator(should_clear_after_alloc=False)


def interp_op_numbers() -> dict:
    """Interpreter op name -> op number (the C op list, c_src/wenv_interp_ops.h)."""
    return _OP_NUMBERS


# ---- code ----------------------------------------------------------------------------

def new_interp_funcs(count: int):
    return ffi.new("wenv_func[]", max(count, 1))


def interp_publish(funcs, index: int, code):
    """Link translated ``code`` (runtime.translate.Code) and publish it as ``funcs[index]``;
    returns the code buffer (its owner keeps it alive as long as ``funcs``)."""
    words = ffi.new("uint64_t[]", len(code.words))
    ffi.memmove(words, code.words, len(code.words) * 8)
    positions = ffi.from_buffer("uint32_t[]", code.positions)
    if lib.wenv_interp_link(words, len(code.words), positions, len(code.positions)) != 0:
        raise WasmRuntimeError("interpreter code failed to link")  # pragma: no cover - a translator bug
    f = funcs[index]
    f.nparams, f.nresults, f.nlocals, f.frame_cells = (code.nparams, code.nresults, code.nlocals,
                                                       code.frame_cells)
    f.code = words  # last: the interpreter reads code first
    return words


def code_address(words) -> int:
    """The address of a function's code words (what ``wenv_call.ip`` points into)."""
    return int(ffi.cast("uintptr_t", words))


def new_host_func(host_id: int, type_id: int, nparams: int, nresults: int):
    """The native side of a host function: its funcref (vmctx NULL) and the wenv_func whose
    code, [host_call, host_id, frame cells, return], exits to Python. Returns (funcref,
    keep): ``keep`` holds what the funcref points at."""
    cells = max(nparams, nresults, 1)
    ops = _ffi.interp_op_numbers()
    words = ffi.new("uint64_t[]", [ops["host_call"], host_id, cells, ops["return"]])
    if lib.wenv_interp_link(words, 4, ffi.new("uint32_t[]", [0, 3]), 2) != 0:
        raise WasmRuntimeError("host function code failed to link")  # pragma: no cover
    fn = ffi.new("wenv_func *")
    fn.nparams, fn.nresults, fn.nlocals, fn.frame_cells, fn.code = nparams, nresults, 0, cells, words
    ref = ffi.new("wenv_funcref *")
    ref.func, ref.type_id, ref.vmctx = fn, type_id, ffi.NULL
    return ref, (words, fn)


# ---- calls: bounds, stacks, frames ---------------------------------------------------

def new_fuel_cell():
    """A store's fuel: an ``int64_t[1]`` the interpreter decrements atomically (0 at first)."""
    return ffi.new("int64_t[1]")


def new_epoch_cell():
    """An engine's epoch or a store's deadline: a ``uint64_t[1]`` (0 at first)."""
    return ffi.new("uint64_t[1]")


def set_call_bounds(c, fuel, epoch, deadline) -> None:
    """Point a ``wenv_call`` at its store's fuel and deadline and its engine's epoch."""
    c.fuel, c.epoch, c.epoch_deadline = fuel, epoch, deadline


def new_interp_call():
    """A zeroed ``wenv_call`` (the bridge fills it per call)."""
    return ffi.new("wenv_call *")


def pointer_address(p) -> int:
    return int(ffi.cast("uintptr_t", p))


def frame_return_ips(frames, depth: int, limit: int) -> list:
    """The saved return ips of the innermost ``limit`` of the ``depth`` outer frames of a
    call, outermost first."""
    first_frame = max(0, depth - limit)
    count = depth - first_frame
    if count <= 0:
        return []
    stride = ffi.sizeof("wenv_frame") // 8
    first = ffi.offsetof("wenv_frame", "ret_ip") // 8
    words = ffi.unpack(ffi.cast("uint64_t *", frames) + stride * first_frame, stride * count)
    return words[first::stride]


def new_interp_stacks(cells: int, frames: int):
    """A thread's value stack and frame stack (not zeroed: untouched pages stay unmapped)."""
    return _new_unzeroed("uint64_t[]", cells), _new_unzeroed("wenv_frame[]", frames)


# ---- instances (wenv_vm) and their functions -------------------------------------------

vm_funcref = lib.wenv_vm_funcref     # (vm, function index) -> wenv_funcref * (NULL: none)
ANYFUNC_NONE = 0xFFFFFFFF


def new_vm(block, funcs, mems, nmems: int, num_imported_funcs: int, vm_id: int, regions,
           imports_offset: int, anyfunc_of, type_ids):
    """A ``wenv_vm``: ``block`` (or NULL) the instance block, ``regions`` the block of its
    funcref and imported-function regions (the import entries at ``imports_offset``)."""
    vm = ffi.new("wenv_vm *")
    vm.block = ffi.NULL if block is None else ffi.cast("uint8_t *", block)
    vm.funcs, vm.mems, vm.nmems, vm.num_imported_funcs, vm.id = (funcs, mems, nmems,
                                                                 num_imported_funcs, vm_id)
    vm.funcrefs = ffi.cast("wenv_funcref *", regions)
    vm.imports = ffi.cast("wenv_import *", regions + imports_offset)
    vm.anyfunc_of, vm.type_ids = anyfunc_of, type_ids
    return vm


def new_u32s(values):
    return ffi.new("uint32_t[]", list(values) or [0])


def new_u64s(values):
    return ffi.new("uint64_t[]", list(values) or [0])


def address(ptr) -> int:
    """A C pointer as an int (0 for NULL)."""
    return int(ffi.cast("uintptr_t", ptr))


def funcref_at(addr: int):
    """The ``wenv_funcref *`` at ``addr``."""
    return ffi.cast("wenv_funcref *", addr)


def func_offset(fn, funcs) -> int:
    """The index of ``fn`` (a ``wenv_func *``) in the array ``funcs``."""
    return (_ffi.address(fn) - _ffi.address(funcs)) // ffi.sizeof("wenv_func")


def set_import(vm, index: int, callee, vmctx) -> None:
    """Imported function ``index`` of ``vm`` is ``callee`` (a funcref) of ``vmctx`` (or NULL)."""
    vm.imports[index].callee = callee
    vm.imports[index].vmctx = ffi.NULL if vmctx is None else vmctx
