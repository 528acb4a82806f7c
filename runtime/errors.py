"""Errors raised by the runtime (traps live in :mod:`runtime.traps`)."""


class WasmRuntimeError(Exception):
    """Root of every non-trap error the runtime raises."""


class LinkError(WasmRuntimeError):
    """Linking failed: an import is missing or mistyped, or a linker name is defined twice."""


class AllocationError(WasmRuntimeError, MemoryError):
    """A resource could not be had; ``limit`` names which one (address space, max_map_count, ...)."""

    def __init__(self, message, limit=None):
        self.message = message
        self.limit = limit
        super().__init__(message if limit is None else f"{message} [limit: {limit}]")

    def __reduce__(self):
        return (type(self), (self.message, self.limit))
