"""The one layer that touches the compiled extension (``runtime._native``: ``lib``/``ffi``).

C reports facts (-1 + errno, or a status code); this package turns errno into domain
errors (``raise AllocationError(...) from OSError(errno, ...)``) and hands the hot entry
points (accessors, ``interp_run``, ``instance_open``/``close``) to the runtime as the cffi
function objects themselves. One submodule per C concept, named after its header in
c_src/: :mod:`.wenv` (wenv.h: the extension, status codes, errno -> errors),
:mod:`.mman`, :mod:`.memory`, :mod:`.instance`, :mod:`.pool`, :mod:`.vmctx` (and
wenv_vmoffsets.h), :mod:`.table`, :mod:`.tables`, :mod:`.interp`, :mod:`.traps`, :mod:`.bench`. Nothing
outside this package imports ``runtime._native``; ``ffi``/``lib`` are re-exported for the
tests of the C ABI itself (struct layouts, constants), not for runtime code.

Every public name is re-exported here, and this namespace is its one home at call time:

* Callers use ``from runtime import _ffi`` and ``_ffi.name``; a module that binds a
  hot entry point once (``_open = _ffi.instance_open``) does so from here.
* Inside the package, a function reads every public name of the package it uses
  (functions and constants, from its own submodule or another) through the package,
  ``_ffi.name``, at call time; it never calls a sibling's public function by its
  module-global binding. So ``monkeypatch.setattr(_ffi, "max_map_count", ...)`` (or
  ``memory_open``, ``pool_grow``) reaches every caller, as when this was one module.
  Submodules import from each other only the cffi objects (``ffi``, ``lib``), private
  helpers (``_raise_errno``, ``_MAX_LEN``) and what a definition needs at import time
  (``pool_new``'s default ``DEFAULT_RESET``). tests/test_native.py checks this rule.
* Patch seams on the package (``runtime._ffi``), never on a submodule.
"""
from __future__ import annotations

from .wenv import (
    IS_LINUX, IS_MACOS, ffi, lib, EXTENSION_FILE, NULL, OK, OOB, OOB_GUARD, FAULT, BADARG,
    CLOSED, SRC_FAULT, MAP_COUNT_MARGIN, mapping_count, max_map_count, enomem_limit,
    errno_now,
)
from .mman import (
    PAGE_SIZE, RESETS, DEFAULT_RESET, reserve, reserve_memory, release_failed, release,
    protect, map_fd_fixed, map_anon_fixed, decommit,
)
from .memory import (
    MEM_STATIC, MEM_64, MEM_CLOSED, MEM_STYLE, new_memory_desc, memory_init, memory_set_byte_len, memory_grow, memory_grow_unlock, GROW_OWNER,
    new_limit_cell, NO_LIMIT, RELEASE_DEFERRED,
    memory_close, memory_enter, memory_leave, memories_keep, access_is_raw,
    new_memory_array, LOAD, STORE, INT64_MIN, U64_SENTINEL, read, write, init, copy_out,
    fill, copy, new_data_writes, copy_data_writes, data_apply, MAP_WRITE_BYTES,
)
from .instance import (
    new_memory_specs, memory_open, memory_open_failed, instance_open, instance_close,
    memory_own_reservation, memory_own_pool_slot,
)
from .pool import (
    POOL_MAX_INSTANCES, POOL_NO_SLOT, POOL_CLOSED, POOL_FAIL, pool_new, pool_free,
    pool_forget_reservation, pool_begin, pool_take, pool_put, pool_put_clean, pool_end, pool_close,
    pool_slot_base, pool_failed, pool_slot_tenancy, pool_grow, pool_stats,
    pool_slot_state, pool_inject_failures,
)
from .vmctx import (
    new_vmoffsets, vmctx_entry, new_block, alloc_written_block, free_block, block_address, block_buffer,
    copy_into, store_u64s,
)
from .table import (
    LAZY_NONE, address_of, table_open, table_bind, table_close, table_get, table_set, table_names_range,
    table_fill, table_init, table_init_funcs, table_grow, new_table_array, table_mapped,
    table_inject_failures,
)
from .tables import (
    POOL_NO_TABLE_SLOT, new_table_specs, new_instance_tables, instance_table, table_pool_new,
    tables_open_failed, table_pool_close, table_pool_free, table_pool_live, tables_open,
    tables_close, table_release, instance_open_tables, instance_close_tables,
)
from .interp import (
    I_DONE, I_UNREACHABLE, I_DIV_ZERO, I_INT_OVERFLOW, I_BAD_CONV, I_OOB, I_OOB_GUARD,
    I_STACK_OVERFLOW, I_FAULT, I_OUT_OF_FUEL, I_INTERRUPT, I_EXIT_TRANSLATE, I_EXIT_GROW,
    I_EXIT_HOST, I_TABLE_OOB, I_NULL_REF, I_INDIRECT_NULL, I_BAD_SIG, I_NO_MEMORY, I_EXIT_TABLE_GROW,
    I_EXIT_BULK, interp_run, interp_op_numbers, new_interp_funcs, interp_publish,
    code_address, new_host_funcs, new_fuel_cell, new_epoch_cell, set_call_bounds,
    new_interp_call, pointer_address, frame_return_ips, new_interp_stacks, vm_funcref,
    ANYFUNC_NONE, vm_shape, new_vm_state, new_vm_module, vm_open, vm_memories_enter, vm_memories_leave, vm_memories_keep, new_u32s, new_u64s, address, funcref_at, funcref_range,
    func_offset, set_import, new_import_records,
)
from .traps import (
    install_trap_handler, trap_handler_on_top, signal_handler_id, trap_handler_forget,
    last_status, last_fault_address, last_fault_signal, thread_faults_caught,
)
from .bench import (
    bench_trap_roundtrip, bench_jmp_roundtrip, bench_load_i32, floor_ondemand,
    floor_pooled, floor_copy, bench_instance_cycle,
)
