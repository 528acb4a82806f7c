"""runtime: instantiate wasmenv modules on real mmap-backed memories.

Linear memories are reserved with guard regions, static images are mapped
copy-on-write, segmented data is copied at instantiation, and out-of-bounds accesses
caught by guard pages become :class:`Trap`.
"""
from .allocator import OnDemandAllocator
from .engine import Engine
from .errors import AllocationError, LinkError, WasmRuntimeError
from .func import Caller, ExecutionUnsupported, Func
from .globals import Global
from .instance import Instance
from .linker import InstancePre, Linker
from .memory import Memory
from .module import Module
from .pooling import PoolingAllocator
from .store import Store, StoreError, StoreLimits
from .table import Table
from .tag import Tag
from .traps import Trap, TrapCode

__all__ = [
    "Engine", "Module", "Instance", "Linker", "InstancePre", "Memory", "Table", "Global", "Func",
    "Caller", "Tag",
    "OnDemandAllocator", "PoolingAllocator", "Trap", "TrapCode", "WasmRuntimeError", "LinkError",
    "AllocationError", "ExecutionUnsupported", "Store", "StoreError", "StoreLimits",
]
