"""The interpreter: its status codes, code, calls, stacks and instances (c_src/wenv_interp.h)."""
from __future__ import annotations

from typing import NamedTuple

from .. import _ffi
from ..errors import AllocationError, WasmRuntimeError
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
I_NO_MEMORY = lib.WENV_I_NO_MEMORY
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


_HOST_NATIVES, _FUNCREF = ffi.typeof("wenv_host_native[]"), ffi.typeof("wenv_funcref *")


def new_host_funcs(words, n: int):
    """The native sides of ``n`` host functions in one array of ``wenv_host_native``: each
    one's funcref (vmctx NULL) and the wenv_func whose code, [host_call, host id, frame
    cells, return], exits to Python. ``words``: for each, its host id, the canonical id of
    its type and ``nparams << 32 | nresults``. Returns (funcrefs, keep): ``keep`` owns what
    every funcref points at."""
    natives = ffi.new(_HOST_NATIVES, n)
    lib.wenv_host_natives_init(natives, n, ffi.new("uint64_t[]", words))
    return [ffi.cast(_FUNCREF, natives + i) for i in range(n)], natives


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


# A wenv_vm and its arrays in one allocation: ffi.new (one Python object), or, for a
# sparse one (new_vm_state), wenv_vmctx_alloc, whose blocks of more than a page are fresh
# zero pages.
_new_vm_block = ffi.new_allocator(alloc=lib.wenv_vmctx_alloc, free=lib.wenv_vmctx_free,
                                  should_clear_after_alloc=False)
_FUNCREF_BYTES = ffi.sizeof("wenv_funcref")
_VM_WORDS = (1, 1, ffi.sizeof("wenv_import") // 8, _FUNCREF_BYTES // 8)  # (wenv_vm_layout's order)
_VM = ffi.typeof("wenv_vm *")


class VmShape(NamedTuple):
    """How big a module's ``wenv_vm`` is and how it is allocated (computed once per
    module: :func:`vm_shape`)."""

    nmems: int
    ntables: int
    nimports: int
    tail: dict          # ffi.new's init: {"tail": words}
    allocate: object    # ffi.new, or the sparse allocator


def vm_shape(nmems: int, ntables: int, nimports: int, nfuncrefs: int, made_at_once: int = 0) -> VmShape:
    """The shape of a ``wenv_vm`` with arrays of ``nmems``, ``ntables``, ``nimports`` and
    ``nfuncrefs`` entries in its tail, in that order.

    Funcref records are made on first use. When those instantiation does not make (all
    but ``made_at_once``: an eager element segment's) span more than a page, the state is
    fresh zero pages of its own (wenv_vmctx_alloc maps it), and a record nobody made costs
    no resident memory; otherwise one heap allocation (a mapping's pages, rounded up,
    would all become resident).
    """
    counts = (nmems, ntables, nimports, nfuncrefs)
    tail_words = max(1, sum(n * w for n, w in zip(counts, _VM_WORDS)))
    sparse = (nfuncrefs - made_at_once) * _FUNCREF_BYTES > _ffi.PAGE_SIZE
    return VmShape(nmems, ntables, nimports, {"tail": tail_words}, _new_vm_block if sparse else ffi.new)


def new_vm_state(shape: VmShape):
    """A zeroed ``wenv_vm`` (an owning cdata) of ``shape`` (:func:`vm_shape`), whose
    ``mems``, ``tables``, ``imports`` and ``funcrefs`` point at its tail's arrays (the
    caller fills in the rest).

    Raises:
        AllocationError: the C heap could not provide it.
    """
    try:
        vm = shape.allocate(_VM, shape.tail)
    except MemoryError as exc:
        raise AllocationError("instance state: out of memory", "heap") from exc
    _vm_layout(vm, shape.nmems, shape.ntables, shape.nimports)
    return vm


_vm_layout = lib.wenv_vm_layout


def new_vm_module(nmems: int, ntables: int, nimports: int, funcs=ffi.NULL, anyfunc_of=ffi.NULL,
                  type_ids=ffi.NULL, num_imported_funcs: int = 0, lazy=(), first_defined: int = 0):
    """A ``wenv_vm_module`` (c_src/wenv_interp.h): what every vm of a shape (:func:`vm_shape`'s
    counts) holds alike; ``lazy``: per defined table, (its lazy array or None, its length).
    Returns (the struct, what it points at: the caller keeps both)."""
    m = ffi.new("wenv_vm_module *")
    m.funcs, m.anyfunc_of, m.type_ids, m.num_imported_funcs = funcs, anyfunc_of, type_ids, num_imported_funcs
    m.nmems, m.ntables, m.nimports, m.first_defined = nmems, ntables, nimports, first_defined
    arrays = (ffi.new("const uint32_t *[]", [ffi.NULL if a is None else a for a, _ in lazy] or [ffi.NULL]),
              ffi.new("uint64_t[]", [n for _, n in lazy] or [0]))
    m.lazy, m.lazy_len = arrays
    return m, arrays


def vm_open(vm, module, block, vm_id: int, descs, tables, entries=ffi.NULL, records=ffi.NULL) -> None:
    """Fill the zeroed ``vm`` of ``module`` (a ``wenv_vm_module``) in one C call: ``descs``
    (every memory's ``wenv_memory *``), ``tables`` (the first tables' ``wenv_table *``), then
    the defined ones from ``entries`` (an instance's ``wenv_instance_table[]``, bound and
    marked viewed), the import records copied from ``records`` (c_src/wenv_interp.h)."""
    lib.wenv_vm_open(vm, module, block, vm_id, descs, tables, len(tables), entries, records)
# A call's bridge (Instance._enter/_leave): (vm, first, n) -> n, or the index of a closed one / None.
vm_memories_enter = lib.wenv_vm_memories_enter
vm_memories_leave = lib.wenv_vm_memories_leave
# (vm, first, n): another use of each, taken inside a call's use of them (kept even if closed).
vm_memories_keep = lib.wenv_vm_memories_keep


def new_u32s(values):
    return ffi.new("uint32_t[]", list(values) or [0])


def new_u64s(values):
    return ffi.new("uint64_t[]", list(values) or [0])


def address(ptr) -> int:
    """A C pointer as an int (0 for NULL)."""
    return int(ffi.cast("uintptr_t", ptr))



def funcref_range(vm, count: int) -> tuple:
    """[lo, hi) addresses of ``vm``'s ``count`` funcref records (its funcref cells' values)."""
    lo = _ffi.address(vm.funcrefs)
    return lo, lo + count * _FUNCREF_BYTES


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



def new_import_records(callees):
    """A ``wenv_import[]`` of host functions' funcrefs ``callees`` (vmctx NULL): what a
    vm's import array is for those imports, made once and copied (:func:`vm_open`)."""
    records = ffi.new("wenv_import[]", max(1, len(callees)))
    for i, callee in enumerate(callees):
        records[i].callee = callee
    return records
