"""Which execution proposals a module uses, so that spec commands still waiting for
execution can be counted per proposal (``scripts/spec.py``'s summary).

The interpreter will run MVP code and most proposals, but not SIMD, atomics (threads) or
exception handling yet (issue 15: those raise ``UnsupportedFeature`` when first called).
A module *uses* a proposal when a validator accepts it with every feature on and rejects it
with that proposal turned off (at module level too: a shared memory counts as threads, a
tag as exceptions). The validator is wasmtime's, in process; wasm-tools' (one process per
check) for what wasmtime does not accept, such as the legacy exception instructions
(try/catch/rethrow, counted as "exceptions"). Results are memoized by module hash.
"""
from __future__ import annotations

import functools
import hashlib
import subprocess
from typing import Dict, Optional, Tuple

from .wast import tool

#: proposal name -> (wasmtime Config flags, wasm-tools features) turned off to see whether a
#: module uses it
EXECUTION_PROPOSALS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "simd": (("wasm_simd", "wasm_relaxed_simd"), "-simd,-relaxed-simd"),
    "threads": (("wasm_threads",), "-threads,-shared-everything-threads"),
    "exceptions": (("wasm_exceptions",), "-exceptions,-legacy-exceptions"),
}
_ALL_WASMTIME = ("wasm_simd", "wasm_relaxed_simd", "wasm_threads", "wasm_exceptions", "wasm_gc",
                 "wasm_function_references", "wasm_tail_call", "wasm_memory64",
                 "wasm_multi_memory", "wasm_reference_types", "wasm_bulk_memory",
                 "wasm_multi_value", "wasm_wide_arithmetic", "wasm_custom_page_sizes")

_memo: Dict[str, Tuple[str, ...]] = {}


@functools.lru_cache(maxsize=None)
def _wasmtime_engine(proposal: Optional[str] = None):
    """A wasmtime engine with every feature on, except ``proposal``'s."""
    import wasmtime
    config = wasmtime.Config()
    for flag in _ALL_WASMTIME:
        if hasattr(config, flag):
            setattr(config, flag, True)
    config.shared_memory = True
    for flag in EXECUTION_PROPOSALS[proposal][0] if proposal else ():
        setattr(config, flag, False)
    return wasmtime.Engine(config)


def _wasmtime_valid(wasm: bytes, proposal: Optional[str] = None) -> bool:
    import wasmtime
    try:
        wasmtime.Module.validate(_wasmtime_engine(proposal), wasm)
        return True
    except wasmtime.WasmtimeError:
        return False


def _valid(wasm: bytes, features: str) -> bool:
    wasm_tools = tool("wasm-tools")
    if wasm_tools is None:
        raise RuntimeError("need wasm-tools to tell which proposals a module uses")
    r = subprocess.run([wasm_tools, "validate", "--features", features, "-"], input=wasm,
                       capture_output=True)
    return r.returncode == 0


def execution_proposals(wasm: bytes) -> Tuple[str, ...]:
    """The :data:`EXECUTION_PROPOSALS` ``wasm`` uses, in that order (empty if it uses none
    of them, or if it is not valid with every feature on)."""
    key = hashlib.sha256(wasm).hexdigest()
    if key not in _memo:
        used = ()
        if _wasmtime_valid(wasm):
            used = tuple(p for p in EXECUTION_PROPOSALS if not _wasmtime_valid(wasm, p))
        elif _valid(wasm, "all"):
            used = tuple(p for p, (_, off) in EXECUTION_PROPOSALS.items()
                         if not _valid(wasm, f"all,{off}"))
        _memo[key] = used
    return _memo[key]
