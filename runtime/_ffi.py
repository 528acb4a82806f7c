"""The one module that touches the compiled extension (``runtime._native``: ``lib``/``ffi``).

C reports facts (-1 + errno, or a status code); this module turns errno into domain
errors (``raise AllocationError(...) from OSError(errno, ...)``) and hands the hot
accessor entry points to :mod:`runtime.memory` as plain callables.
"""
from __future__ import annotations

import errno as _errno
import os
import sys

from ._native import ffi, lib
from .errors import AllocationError, WasmRuntimeError

IS_LINUX = sys.platform.startswith("linux")
IS_MACOS = sys.platform == "darwin"
PAGE_SIZE = lib.wenv_page_size()

# Accessor status codes (c_src/wenv.h, which also documents every return convention).
OK = lib.WENV_OK
OOB = lib.WENV_OOB
OOB_GUARD = lib.WENV_OOB_GUARD
FAULT = lib.WENV_FAULT
BADARG = lib.WENV_BADARG
CLOSED = lib.WENV_CLOSED
SRC_FAULT = lib.WENV_SRC_FAULT
# wenv_memory.flags
MEM_STATIC = lib.WENV_MEM_STATIC
MEM_64 = lib.WENV_MEM_64

#: An ENOMEM is blamed on vm.max_map_count when the process is this close to it.
MAP_COUNT_MARGIN = 16
_MAX_LEN = 1 << 64


# ---- errno -> domain errors ----------------------------------------------------------

def mapping_count() -> int:
    """Number of mappings (VMAs) of this process, or -1 where /proc is not available.

    Reads through one small buffer: near vm.max_map_count a large allocation would need
    a new mapping itself and fail.
    """
    count = 0
    buf = bytearray(16384)
    try:
        with open("/proc/self/maps", "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    return count
                count += buf.count(b"\n", 0, n)
    except OSError:
        return -1


def max_map_count() -> int:
    """The kernel's per-process mapping limit (``vm.max_map_count``), or -1 if unknown."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def enomem_limit() -> str:
    """Which limit an ENOMEM from mmap/mprotect/munmap most likely hit."""
    limit = max_map_count()
    try:
        if limit > 0 and mapping_count() >= limit - MAP_COUNT_MARGIN:
            return "vm.max_map_count"
    except MemoryError:  # even malloc could not map memory: out of mappings
        return "vm.max_map_count"
    return "address space"


def errno_now() -> int:
    """errno of this thread's last cffi call. Read it right after the failing call: any
    Python code in between may run a collection, whose finalizers make C calls too."""
    return ffi.errno


def _raise_errno(what: str, err: int = None):
    if err is None:
        err = ffi.errno
    cause = OSError(err, f"{what}: {os.strerror(err)}")
    if err == _errno.ENOMEM:
        limit = enomem_limit()
        raise AllocationError(f"{what} failed: {os.strerror(err)}", limit) from cause
    raise WasmRuntimeError(f"{what} failed: {os.strerror(err)}") from cause


def _check_len(what: str, byte_len: int):
    """A reservation's length: 0 (one PROT_NONE page, c_src/wenv_mman.h) up to 2^64 - 1."""
    if byte_len < 0:
        raise ValueError(f"{what}: byte_len must not be negative, got {byte_len}")
    if byte_len >= _MAX_LEN:
        raise AllocationError(f"{what}: {byte_len} bytes cannot be addressed", "address space")


# ---- reservations --------------------------------------------------------------------

def reserve(byte_len: int) -> int:
    """Reserve ``byte_len`` bytes PROT_NONE (MAP_NORESERVE); return the start address.
    0 bytes still get an address (one page, released by ``release(start, 0)``)."""
    _check_len("reserve", byte_len)
    out = ffi.new("uint64_t *")
    if lib.wenv_reserve(byte_len, out) != 0:
        _raise_errno(f"mmap reservation of {byte_len:#x} bytes")
    return out[0]


def reserve_memory(byte_len: int, pre_guard: int, accessible: int, image=None) -> int:
    """Reserve ``byte_len`` bytes, map ``image`` (a MemoryImage or None) at
    ``pre_guard + image.linear_offset`` and make ``accessible`` bytes after the pre-guard
    R/W, in one C call (all or nothing). Returns the reservation's start."""
    _check_len("reserve", byte_len)
    out = ffi.new("uint64_t *")
    if image is not None and image.byte_len:
        rc = lib.wenv_reserve_memory(byte_len, pre_guard, accessible, image.fd, image.file_offset,
                                     image.linear_offset, image.byte_len, out)
    else:
        rc = lib.wenv_reserve_memory(byte_len, pre_guard, accessible, -1, 0, 0, 0, out)
    if rc != 0:
        _raise_errno(f"mmap reservation of {byte_len:#x} bytes (with its image)")
    return out[0]


def new_memory_specs(count: int):
    """A zeroed ``wenv_memory_spec[count]`` (what instantiating each defined memory needs)."""
    return ffi.new("wenv_memory_spec[]", count)


def memory_open(spec) -> int:
    """Reserve a memory as ``spec`` says (one C call, all or nothing); its start address."""
    start = lib.wenv_memory_open(spec)
    if start == 0:
        memory_open_failed(spec)
    return start


def memory_open_failed(spec, err: int = None):
    """Raise the domain error for a failed wenv_memory_open / wenv_instance_open of
    ``spec`` (``err``: its errno_now(); default: read now)."""
    if spec[0].reserve_bytes == _MAX_LEN - 1:  # the layout's mark for 2^64 bytes or more
        raise AllocationError("reserve: the memory needs 2^64 bytes or more: it cannot be addressed",
                              "address space")
    _raise_errno(f"mmap reservation of {spec[0].reserve_bytes:#x} bytes (with its image)", err)


def release_failed(addr: int, byte_len: int):
    """Raise the domain error for a failed munmap of [addr, addr + byte_len) (errno still set)."""
    _raise_errno(f"munmap of {byte_len:#x} bytes at {addr:#x}")


def release(addr: int, byte_len: int) -> None:
    if lib.wenv_release(addr, byte_len) != 0:
        release_failed(addr, byte_len)


def protect(addr: int, byte_len: int, writable: bool) -> None:
    """mprotect to PROT_READ|PROT_WRITE (``writable``) or PROT_NONE."""
    if lib.wenv_protect(addr, byte_len, 1 if writable else 0) != 0:
        what = "read/write" if writable else "none"
        _raise_errno(f"mprotect({what}) of {byte_len:#x} bytes at {addr:#x}")


def map_fd_fixed(addr: int, byte_len: int, fd: int, file_offset: int) -> None:
    """Map ``fd`` at ``file_offset`` over [addr, addr + byte_len): MAP_PRIVATE|MAP_FIXED, R/W (CoW)."""
    if lib.wenv_map_fd_fixed(addr, byte_len, fd, file_offset) != 0:
        _raise_errno(f"mmap of fd {fd} at file offset {file_offset:#x} ({byte_len:#x} bytes) at {addr:#x}")


def map_anon_fixed(addr: int, byte_len: int, writable: bool) -> None:
    """Replace [addr, addr + byte_len) by fresh zero pages (R/W or PROT_NONE)."""
    if lib.wenv_map_anon_fixed(addr, byte_len, 1 if writable else 0) != 0:
        _raise_errno(f"mmap of fresh pages ({byte_len:#x} bytes) at {addr:#x}")


def decommit(addr: int, byte_len: int) -> None:
    """Give back the pages of a R/W range.

    Linux: ``madvise(MADV_DONTNEED)``: anonymous pages read as zero afterwards, private
    file (image) pages revert to the file's contents. macOS: ``MADV_DONTNEED`` does not
    zero there, so fresh anonymous pages replace the range: everything reads as zero
    (re-map an image afterwards if its contents are wanted).
    """
    if lib.wenv_decommit(addr, byte_len, RESETS[DEFAULT_RESET]) != 0:
        _raise_errno(f"decommit of {byte_len:#x} bytes at {addr:#x}")


# ---- pool slots (c_src/wenv_pool.h) ---------------------------------------------------

POOL_MAX_INSTANCES = lib.WENV_POOL_MAX_INSTANCES
POOL_NO_SLOT = lib.WENV_POOL_NO_SLOT
POOL_CLOSED = lib.WENV_POOL_CLOSED
#: Step name -> WENV_FAIL_* bit (c_src/wenv_mman.h), for pool_inject_failures (tests).
POOL_FAIL = {"decommit": lib.WENV_FAIL_DECOMMIT, "map_anon": lib.WENV_FAIL_MAP_ANON,
             "protect": lib.WENV_FAIL_PROTECT, "map_image": lib.WENV_FAIL_MAP_FILE}


#: How released pages are given back (c_src/wenv_mman.h): "madvise" (MADV_DONTNEED: image
#: pages revert to the file, which stays mapped) or "remap" (fresh anonymous pages).
RESETS = {"madvise": lib.WENV_RESET_MADVISE, "remap": lib.WENV_RESET_REMAP}
#: The platform's reset: "remap" on macOS (MADV_DONTNEED does not zero there).
DEFAULT_RESET = next(name for name, how in RESETS.items() if how == lib.wenv_reset_default())


def pool_new(slot_count: int, slots_per_chunk: int, chunk_bases, stride: int, bound_bytes: int,
             keep_bytes: int, max_instances: int, reset: str = DEFAULT_RESET):
    """The C side of a pool; its owner frees it with :func:`pool_free`."""
    bases = ffi.new("uint64_t[]", list(chunk_bases) or [0])
    pool = lib.wenv_pool_new(slot_count, slots_per_chunk, bases, len(chunk_bases), stride, bound_bytes,
                             keep_bytes, max_instances, RESETS[reset])
    if pool == ffi.NULL:
        _raise_errno("creating the pool's slot table")
    return pool


pool_free = lib.wenv_pool_free
pool_forget_reservation = lib.wenv_pool_forget_reservation  # (pool): later puts only count


NULL = ffi.NULL
instance_open = lib.wenv_instance_open    # (spec) -> handle, or < 0 (spec.pool: NULL or a pool)
instance_close = lib.wenv_instance_close  # (spec, handle) -> 0, -1 (errno) or 1 (pool unused)
pool_begin = lib.wenv_pool_begin      # (pool) -> 0 or POOL_* code
pool_take = lib.wenv_pool_take        # (pool, spec, count_instance) -> slot, -1 (errno) or POOL_* code
pool_put = lib.wenv_pool_put          # (pool, slot, end_instance) -> 1 if closed and unused, -1 refused
pool_end = lib.wenv_pool_end          # (pool) -> 1 if closed and unused, -1 if no instance is live
pool_close = lib.wenv_pool_close      # (pool) -> 1 if unused
pool_slot_base = lib.wenv_pool_slot_base


def pool_failed(what: str, err: int = None):
    """Raise the domain error for a -1 from a pool call (``err``: its errno_now())."""
    _raise_errno(what, err)


pool_slot_tenancy = lib.wenv_pool_slot_tenancy  # (pool, slot) -> the slot's current tenancy


def pool_grow(pool, slot: int, tenancy: int, new_bytes: int) -> None:
    """Make a slot R/W up to ``new_bytes`` if it is still in ``tenancy`` (else ESTALE)."""
    if lib.wenv_pool_grow(pool, slot, tenancy, new_bytes) != 0:
        _raise_errno(f"mprotect(read/write) growing pool slot {slot} to {new_bytes:#x} bytes")


def pool_stats(pool) -> tuple:
    """(live_instances, live_memories, slots ever used, free slots, in-use slots on the free list)."""
    out = ffi.new("uint64_t[5]")
    lib.wenv_pool_stats(pool, out)
    return tuple(out)


def pool_slot_state(pool, slot: int) -> dict:
    out = ffi.new("uint64_t[6]")
    if lib.wenv_pool_slot_state(pool, slot, out) != 0:
        raise IndexError(f"no pool slot {slot}")
    keys = ("in_use", "poisoned", "accessible", "image_key", "image_offset", "image_len")
    return {key: out[i] for i, key in enumerate(keys)}


def pool_inject_failures(pool, steps) -> None:
    """Make the named pool steps (POOL_FAIL keys) fail with EIO until called with ()."""
    mask = 0
    for step in steps:
        mask |= POOL_FAIL[step]
    lib.wenv_pool_inject_failures(pool, mask)


# ---- memory descriptors --------------------------------------------------------------

def new_memory_desc():
    """A zeroed ``wenv_memory`` (freed with the returned cdata)."""
    return ffi.new("wenv_memory *")


memory_init = lib.wenv_memory_init            # (desc, base, byte_len, bound, guard, start, end, flags)
memory_set_byte_len = lib.wenv_memory_set_byte_len
# Lifetime (c_src/wenv_memory.h): close refuses later uses and releases the memory, now
# (the release's result) or in the last use in flight (RELEASE_DEFERRED).
RELEASE_DEFERRED = lib.WENV_RELEASE_DEFERRED
memory_close = lib.wenv_memory_close          # (desc) -> release result, RELEASE_DEFERRED or 0
memory_enter = lib.wenv_memory_enter          # (desc) -> 1: in use until memory_leave; 0: closed
memory_leave = lib.wenv_memory_leave          # (desc) -> the release's result if it ran here, else 0
memories_enter = lib.wenv_memories_enter      # (descs array, n) -> n, or the index of a closed one
memories_leave = lib.wenv_memories_leave      # (descs array, n)
memory_own_reservation = lib.wenv_memory_own_reservation  # (desc): C unmaps it after close
memory_own_pool_slot = lib.wenv_memory_own_pool_slot      # (desc, pool, slot, end_instance)
access_is_raw = lib.wenv_access_is_raw        # (desc, offset, width) -> 0/1

# ---- the fault handler ---------------------------------------------------------------


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

# ---- accessors -----------------------------------------------------------------------

#: C loads by result kind; each is (desc, addr, offset) -> value or sentinel.
LOAD = {
    "i32": lib.wenv_load_i32, "i64": lib.wenv_load_i64, "u64": lib.wenv_load_u64,
    "f32": lib.wenv_load_f32, "f64": lib.wenv_load_f64,
    "s8": lib.wenv_load_s8, "u8": lib.wenv_load_u8, "s16": lib.wenv_load_s16,
    "u16": lib.wenv_load_u16, "u32": lib.wenv_load_u32,
}
#: C stores by wasm op; each is (desc, addr, offset, value) -> status.
STORE = {
    "i32": lib.wenv_store_i32, "i32_8": lib.wenv_store_i32_8, "i32_16": lib.wenv_store_i32_16,
    "i64": lib.wenv_store_i64, "i64_8": lib.wenv_store_i64_8, "i64_16": lib.wenv_store_i64_16,
    "i64_32": lib.wenv_store_i64_32, "f32": lib.wenv_store_f32, "f64": lib.wenv_store_f64,
}
INT64_MIN = -(1 << 63)
U64_SENTINEL = 1 << 63


def read(desc, addr: int, byte_len: int):
    """(status, bytes) of [addr, addr + byte_len)."""
    if byte_len == 0:
        return lib.wenv_read(desc, addr, ffi.NULL, 0), b""
    buf = bytearray(byte_len)
    status = lib.wenv_read(desc, addr, ffi.from_buffer(buf), byte_len)
    return status, bytes(buf) if status == OK else b""


def write(desc, addr: int, data) -> int:
    view = memoryview(data)
    if not view.contiguous:
        view = memoryview(view.tobytes())
    return lib.wenv_write(desc, addr, ffi.from_buffer(view), view.nbytes)


def init(desc, addr: int, src, src_offset: int, byte_len: int) -> int:
    view = memoryview(src)
    if not view.contiguous:
        view = memoryview(view.tobytes())
    return lib.wenv_init(desc, addr, ffi.from_buffer(view), view.nbytes, src_offset, byte_len)


def copy_out(desc, dst_addr: int, byte_len: int) -> int:
    """Copy the memory's first ``byte_len`` bytes to the raw address ``dst_addr`` (a moving
    grow's new reservation), under the fault guard; the status."""
    return lib.wenv_read(desc, 0, ffi.cast("char *", dst_addr), byte_len)


fill = lib.wenv_fill   # (desc, addr, value, byte_len) -> status
copy = lib.wenv_copy   # (desc, dst, src, byte_len) -> status

# ---- benchmarks ----------------------------------------------------------------------

bench_trap_roundtrip = lib.wenv_bench_trap_roundtrip   # (iterations) -> ns per trap in C
bench_jmp_roundtrip = lib.wenv_bench_jmp_roundtrip     # (iterations, savemask) -> ns
bench_load_i32 = lib.wenv_bench_load_i32               # (iterations) -> ns per raw C call


# ---- the instance block layout (wasmenv.vmoffsets) ------------------------------------

def new_vmoffsets(offsets):
    """A ``wenv_vmoffsets`` filled from a :class:`wasmenv.vmoffsets.VMOffsets`."""
    return ffi.new("wenv_vmoffsets *", offsets.c_fields())


vmctx_entry = lib.wenv_vmctx_entry   # (vmoffsets, region, index) -> byte offset, or -1 (EINVAL)


# ---- the interpreter (c_src/wenv_interp.h) ---------------------------------------------

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
interp_run = lib.wenv_interp_run
_OP_NUMBERS = {ffi.string(lib.wenv_interp_op_name(i)).decode(): i
               for i in range(lib.wenv_interp_op_count())}
_new_unzeroed = ffi.new_allocator(should_clear_after_alloc=False)


def interp_op_numbers() -> dict:
    """Interpreter op name -> op number (the C op list, c_src/wenv_interp_ops.h)."""
    return _OP_NUMBERS


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


def new_fuel_cell():
    """A store's fuel: an ``int64_t[1]`` the interpreter decrements atomically (0 at first)."""
    return ffi.new("int64_t[1]")


def new_epoch_cell():
    """An engine's epoch or a store's deadline: a ``uint64_t[1]`` (0 at first)."""
    return ffi.new("uint64_t[1]")


def set_call_bounds(c, fuel, epoch, deadline) -> None:
    """Point a ``wenv_call`` at its store's fuel and deadline and its engine's epoch."""
    c.fuel, c.epoch, c.epoch_deadline = fuel, epoch, deadline


def code_address(words) -> int:
    """The address of a function's code words (what ``wenv_call.ip`` points into)."""
    return int(ffi.cast("uintptr_t", words))


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


def new_memory_array(descs):
    """A ``wenv_memory *[]`` of ``descs`` (never empty)."""
    return ffi.new("wenv_memory *[]", descs or [NULL])


def new_data_writes(writes):
    """A ``wenv_data_write[]`` of ``(memory, start, bytes-like)`` writes (c_src/wenv_memory.h),
    and what keeps their bytes alive: ``(array, keep)``."""
    arr, keep = ffi.new("wenv_data_write[]", max(1, len(writes))), []
    for w, (memory, start, data) in zip(arr, writes):
        buf = ffi.from_buffer(data)
        keep.append(buf)
        w.memory, w.start, w.src, w.byte_len = memory, start, buf, len(buf)
    return arr, keep


def copy_data_writes(writes, n: int):
    """A copy of the first ``n`` entries of a ``wenv_data_write[]`` (to set starts in)."""
    out = ffi.new("wenv_data_write[]", max(1, n))
    ffi.memmove(out, writes, n * ffi.sizeof("wenv_data_write"))
    return out


def data_apply(mems, writes, n: int):
    """Apply ``writes[0..n)`` to ``mems`` (c_src/wenv_memory.h): ``(n, 0)``, or the index
    of the first write that failed and its accessor status."""
    status = ffi.new("int *")
    return lib.wenv_data_apply(mems, writes, n, status), status[0]


I_EXIT_HOST = lib.WENV_I_EXIT_HOST
vm_funcref = lib.wenv_vm_funcref     # (vm, function index) -> wenv_funcref * (NULL: none)
ANYFUNC_NONE = 0xFFFFFFFF


def new_interp_call():
    """A zeroed ``wenv_call`` (the bridge fills it per call)."""
    return ffi.new("wenv_call *")


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


def new_host_func(host_id: int, type_id: int, nparams: int, nresults: int):
    """The native side of a host function: its funcref (vmctx NULL) and the wenv_func whose
    code, [host_call, host_id, frame cells, return], exits to Python. Returns (funcref,
    keep): ``keep`` holds what the funcref points at."""
    cells = max(nparams, nresults, 1)
    ops = interp_op_numbers()
    words = ffi.new("uint64_t[]", [ops["host_call"], host_id, cells, ops["return"]])
    if lib.wenv_interp_link(words, 4, ffi.new("uint32_t[]", [0, 3]), 2) != 0:
        raise WasmRuntimeError("host function code failed to link")  # pragma: no cover
    fn = ffi.new("wenv_func *")
    fn.nparams, fn.nresults, fn.nlocals, fn.frame_cells, fn.code = nparams, nresults, 0, cells, words
    ref = ffi.new("wenv_funcref *")
    ref.func, ref.type_id, ref.vmctx = fn, type_id, ffi.NULL
    return ref, (words, fn)


def address(ptr) -> int:
    """A C pointer as an int (0 for NULL)."""
    return int(ffi.cast("uintptr_t", ptr))


def funcref_at(addr: int):
    """The ``wenv_funcref *`` at ``addr``."""
    return ffi.cast("wenv_funcref *", addr)


def func_offset(fn, funcs) -> int:
    """The index of ``fn`` (a ``wenv_func *``) in the array ``funcs``."""
    return (address(fn) - address(funcs)) // ffi.sizeof("wenv_func")


def set_import(vm, index: int, callee, vmctx) -> None:
    """Imported function ``index`` of ``vm`` is ``callee`` (a funcref) of ``vmctx`` (or NULL)."""
    vm.imports[index].callee = callee
    vm.imports[index].vmctx = ffi.NULL if vmctx is None else vmctx


# Instance blocks and global cells live on the C heap (wenv_vmctx_alloc: zeroed, 16-aligned),
# not in Python's allocator; cffi frees one when its owning cdata is garbage.
_new_block = ffi.new_allocator(alloc=lib.wenv_vmctx_alloc, free=lib.wenv_vmctx_free,
                               should_clear_after_alloc=False)


def new_block(byte_len: int):
    """A zeroed native block of ``byte_len`` bytes (an owning ``uint8_t[]`` cdata, freed
    when it is garbage: whoever holds it keeps the bytes alive).

    Raises:
        AllocationError: the C heap could not provide it.
    """
    return _block(_new_block, byte_len)


def _block(allocator, byte_len: int):
    """A ``uint8_t[byte_len]`` from the cffi ``allocator``; AllocationError if none."""
    try:
        return allocator("uint8_t[]", byte_len)
    except MemoryError as exc:
        raise AllocationError(f"instance block of {byte_len} bytes: out of memory", "heap") from exc


_new_written_block = ffi.new_allocator(alloc=lib.wenv_vmctx_alloc_written, free=lib.wenv_vmctx_free,
                                       should_clear_after_alloc=False)


def new_written_block(byte_len: int):
    """:func:`new_block` for a block written right away (an instance block: its globals
    template is copied in): calloc whatever its size (no fresh pages to fault in).

    Raises:
        AllocationError: the C heap could not provide it.
    """
    return _block(_new_written_block, byte_len)


def block_address(block) -> int:
    """The address of a block's first byte."""
    return int(ffi.cast("uintptr_t", block))


def block_buffer(block):
    """A writable memoryview of a whole block (it keeps the block alive)."""
    return memoryview(ffi.buffer(block))


copy_into = ffi.memmove   # (block + offset, bytes, byte_len)


def store_u64s(block, offset: int, values) -> None:
    """Write ``values`` as consecutive u64s at ``offset`` of ``block``."""
    ffi.cast("uint64_t *", block + offset)[0:len(values)] = values


# ---- tables and reference cells (c_src/wenv_table.h) -----------------------------------

LAZY_NONE = lib.WENV_LAZY_NONE



def address_of(cdata) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def table_open(size: int, maximum: int, init_cell: int):
    """A new native table (an owning ``wenv_table *``; close it with table_close).

    Raises:
        AllocationError: its reservation could not be made.
    """
    t = ffi.new("wenv_table *")
    if lib.wenv_table_open(t, size, maximum, init_cell) != 0:
        err = errno_now()
        raise AllocationError(f"table of {size} elements: {os.strerror(err)}", "table") \
            from OSError(err, os.strerror(err))
    return t


def table_bind(t, lazy, lazy_len: int, vm) -> None:
    """Uninitialized elements of ``t`` read as ``lazy``'s functions of ``vm`` (a ``wenv_vm *``;
    the arrays stay the caller's to keep alive)."""
    t.lazy, t.lazy_len, t.vm = lazy, lazy_len, vm


table_close = lib.wenv_table_close
pool_table_reset = lib.wenv_pool_table_reset  # (t, size, maximum, init_cell) -> 0, or -1 (ERANGE)
_cell_out = ffi.new_allocator(should_clear_after_alloc=False)


def table_get(t, index: int):
    """The cell at ``index``, or None when out of bounds."""
    out = _cell_out("uint64_t *")
    if lib.wenv_table_get(t, index, out) != 0:
        return None
    return out[0]


def table_set(t, index: int, cell: int) -> bool:
    return lib.wenv_table_set(t, index, cell) == 0


def table_fill(t, index: int, cell: int, n: int) -> bool:
    return lib.wenv_table_fill(t, index, cell, n) == 0


def table_init(t, d: int, cells, s: int, n: int) -> bool:
    """Write ``cells[s:s+n]`` (a list of cells) at ``d``; False (nothing written) when out of bounds."""
    buf = ffi.new("uint64_t[]", list(cells) or [0])
    return lib.wenv_table_init(t, d, buf, len(cells), s, n) == 0


def table_grow(t, delta: int, init_cell: int) -> int:
    """The old size, or -1 (past the maximum, or out of memory)."""
    return lib.wenv_table_grow(t, delta, init_cell)


def new_table_array(tables):
    """A ``wenv_table *[]`` of ``tables`` (never empty)."""
    return ffi.new("wenv_table *[]", tables or [NULL])


I_TABLE_OOB = lib.WENV_I_TABLE_OOB
I_NULL_REF = lib.WENV_I_NULL_REF
I_INDIRECT_NULL = lib.WENV_I_INDIRECT_NULL
I_BAD_SIG = lib.WENV_I_BAD_SIG
I_EXIT_TABLE_GROW = lib.WENV_I_EXIT_TABLE_GROW
I_EXIT_BULK = lib.WENV_I_EXIT_BULK


# --- floor ---------------------------------------------------------------------------------
# The C syscall floors of instantiation (c_src/wenv_bench.h), for scripts/bench_instantiate.py
# and scripts/bench_real.py: each returns the samples (mean ns per iteration of a batch).

def _floor_samples(rc: int, samples, what: str) -> list:
    if rc != 0:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return list(samples)


def floor_ondemand(specs, memory_count: int, table_elems, n: int, batch: int) -> list:
    """On demand: ``specs`` (a layout's wenv_memory_spec array, its first ``memory_count``)
    and tables of ``table_elems`` elements each mapped and unmapped, ``n`` samples.

    Raises:
        OSError: a mapping failed (with its errno; nothing stays mapped).
    """
    out, elems = ffi.new("double[]", n), ffi.new("uint64_t[]", list(table_elems) or [0])
    return _floor_samples(lib.wenv_floor_ondemand(specs, memory_count, elems, len(table_elems), n, batch, out),
                          out, "floor on demand")


def floor_pooled(specs, memory_count: int, table_elems, n: int, batch: int) -> list:
    """Pooled: the reset of the same memories' slots and tables, ``n`` samples.

    Raises:
        OSError: a mapping or a reset failed (with its errno; nothing stays mapped).
    """
    out, elems = ffi.new("double[]", n), ffi.new("uint64_t[]", list(table_elems) or [0])
    return _floor_samples(lib.wenv_floor_pooled(specs, memory_count, elems, len(table_elems), n, batch, out),
                          out, "floor pooled")


def floor_copy(spec, image: bytes, n: int, batch: int) -> list:
    """On demand with the image copied: one memory (``spec``) and its image bytes, ``n`` samples.

    Raises:
        OSError: a mapping failed (with its errno; nothing stays mapped).
    """
    out = ffi.new("double[]", n)
    return _floor_samples(lib.wenv_floor_copy(spec, image, n, batch, out), out, "floor copy")
