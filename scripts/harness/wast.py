"""Run WebAssembly spec scripts (.wast) against the runtime, as far as it can answer them.

A ``.wast`` is converted to JSON + binaries with ``wasm-tools json-from-wast`` (or wabt's
``wast2json``). Module-level commands are answered for real (decode, link, instantiate,
segment traps, globals). Commands that need wasm code to run are counted as
"needs execution"; invalid/malformed modules are decoded and their bodies validated
(one the validator misses but whose module level is valid still counts as "needs code
validation"); text-format
``assert_malformed`` cases as "text format". Modules the decoder rejects with
``UnsupportedFeature("gc")`` (GC types: rec/sub/struct/array, any/eq/i31/none heap types)
are counted as "unsupported" -- and so is a ``register`` or global ``get`` of such a
module; any other rejection of a valid module is a failure. Nothing is dropped silently.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import wasmenv
from wasmenv.encode import section, uleb

from runtime import Instance, LinkError, Module, Trap, WasmRuntimeError

from .spectest import spectest_externs

CATEGORIES = ("passed", "failed", "unsupported", "needs_execution", "needs_code_validation",
              "text_format")
#: The only UnsupportedFeature.feature that is counted as "unsupported" rather than "failed".
UNSUPPORTED_FEATURES = frozenset({"gc"})


def is_unsupported(exc: BaseException) -> bool:
    """True if ``exc`` is the decoder declining a feature in :data:`UNSUPPORTED_FEATURES`."""
    return isinstance(exc, wasmenv.UnsupportedFeature) and exc.feature in UNSUPPORTED_FEATURES


def tool(name: str) -> Optional[str]:
    """Find a CLI installed next to this Python (a venv's bin) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


def read_uleb(buf, pos):
    """``(value, next position)`` of the unsigned LEB128 at ``buf[pos]`` (no checks: for
    modules already known to be well formed)."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def strip_code_bodies(wasm: bytes) -> Optional[bytes]:
    """The module with every function body replaced by ``unreachable`` (valid for any type),
    or None if the section structure itself cannot be walked."""
    try:
        if wasm[:8] != b"\0asm\x01\0\0\0":
            return None
        out = bytearray(wasm[:8])
        pos = 8
        while pos < len(wasm):
            sid = wasm[pos]
            size, body = read_uleb(wasm, pos + 1)
            end = body + size
            if end > len(wasm):
                return None
            if sid == 10:
                count, p = read_uleb(wasm, body)
                if count > size:
                    return None
                payload = bytearray()
                payload += uleb(count)
                for _ in range(count):
                    fsize, p = read_uleb(wasm, p)
                    p += fsize
                    payload += b"\x03\x00\x00\x0b"  # size 3: no locals, unreachable, end
                if p != end:
                    return None
                out += section(10, bytes(payload))
            else:
                out += wasm[pos:end]
            pos = end
        return bytes(out)
    except IndexError:
        return None


def module_level_valid(wasm: bytes) -> bool:
    """True if the module is valid once its function bodies are ignored (wasm-tools)."""
    stripped = strip_code_bodies(wasm)
    if stripped is None:
        return False
    wasm_tools = tool("wasm-tools")
    if wasm_tools is None:
        raise RuntimeError("need wasm-tools to classify body-level failures")
    r = subprocess.run([wasm_tools, "validate", "--features", "all", "-"], input=stripped,
                       capture_output=True)
    return r.returncode == 0


@dataclass
class FileResult:
    name: str
    counts: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    failures: List[str] = field(default_factory=list)
    unsupported: List[str] = field(default_factory=list)

    def add(self, category: str, line=None, why: str = ""):
        self.counts[category] += 1
        if category == "failed":
            self.failures.append(f"{self.name}:{line}: {why}")
        elif category == "unsupported":
            self.unsupported.append(f"{self.name}:{line}: {why}")


class WastRunner:
    """Runs converted spec scripts; one runner (engine, spectest) per file."""

    def __init__(self, engine):
        self.engine = engine

    def run_file(self, json_path: str) -> FileResult:
        base = os.path.dirname(json_path)
        with open(json_path) as f:
            script = json.load(f)
        result = FileResult(os.path.splitext(os.path.basename(json_path))[0])
        spectest = spectest_externs(self.engine)
        registry: Dict[str, Dict[str, object]] = {"spectest": spectest}
        named: Dict[str, Instance] = {}
        self._owned = []
        # Once an action that needs execution was skipped, later state (mutable globals,
        # grown tables/memories) may differ from the script's: disagreements after that
        # point are attributed to the skipped code, not counted as failures.
        self._diverged = False
        # Names of modules (and None for an unnamed current one) rejected as unsupported.
        self._unsupported_modules = set()
        current = None
        try:
            for cmd in script["commands"]:
                current = self._command(cmd, base, registry, named, current, result)
        finally:
            for inst in self._owned:
                inst.close()
            for ext in spectest.values():
                ext.close() if hasattr(ext, "close") else None
        return result

    # -- commands ------------------------------------------------------------------------
    def _command(self, cmd, base, registry, named, current, result):
        kind = cmd["type"]
        line = cmd.get("line")
        if kind in ("module", "module_definition"):
            wasm = self._read(base, cmd)
            self._unsupported_modules.discard(None)  # None: the current module
            self._unsupported_modules.discard(cmd.get("name"))
            try:
                module = Module(self.engine, wasm)
            except wasmenv.DecodeError as exc:
                if is_unsupported(exc):
                    self._unsupported_modules.update({None, cmd.get("name")})
                    result.add("unsupported", line, str(exc))
                else:
                    result.add("failed", line, f"valid module rejected: {exc}")
                return None
            if kind == "module_definition":
                result.add("passed")
                return current
            try:
                inst = Instance(module, self._imports(module, registry))
            except (LinkError, Trap, WasmRuntimeError) as exc:
                result.add(self._failure(), line, f"module failed to instantiate: {exc}")
                return None
            self._owned.append(inst)
            if cmd.get("name"):
                named[cmd["name"]] = inst
            if inst.start_func is not None:
                self._diverged = True  # the start function would have run here
                result.add("needs_execution")
            else:
                result.add("passed")
            return inst
        if kind == "register":
            inst = named.get(cmd.get("name")) if cmd.get("name") else current
            if inst is None and cmd.get("name") in self._unsupported_modules:
                result.add("unsupported", line, "register of a module using an unsupported feature")
            elif inst is None:
                result.add(self._failure(), line, "register of a module that did not instantiate")
            else:
                registry[cmd["as"]] = {n: inst.exports[n] for n in inst.exports}
                result.add("passed")
            return current
        if kind in ("assert_malformed", "assert_invalid"):
            if cmd.get("module_type") == "text":
                result.add("text_format")
                return current
            wasm = self._read(base, cmd)
            try:
                wasmenv.validate(wasmenv.translate(wasm))  # bodies included
            except wasmenv.DecodeError as exc:
                if is_unsupported(exc):  # rejected, but not necessarily for the right reason
                    result.add("unsupported", line, f"{kind}: {exc}")
                else:
                    result.add("passed")
                return current
            if module_level_valid(wasm):
                result.add("needs_code_validation")
            else:
                result.add("failed", line, f"{kind} accepted: expected {cmd.get('text')!r}")
            return current
        if kind in ("assert_unlinkable", "assert_uninstantiable"):
            wasm = self._read(base, cmd)
            try:
                module = Module(self.engine, wasm)
                inst = Instance(module, self._imports(module, registry))
            except LinkError:
                ok = kind == "assert_unlinkable"
                result.add("passed" if ok else self._failure(), line, "link error, expected a trap")
                return current
            except Trap:
                ok = kind == "assert_uninstantiable"
                result.add("passed" if ok else self._failure(), line, "trap, expected a link error")
                return current
            except wasmenv.DecodeError as exc:
                if is_unsupported(exc):
                    result.add("unsupported", line, f"{kind}: {exc}")
                else:
                    result.add("failed", line, f"valid module rejected: {exc}")
                return current
            self._owned.append(inst)
            if kind == "assert_uninstantiable" and inst.start_func is not None:
                self._diverged = True
                result.add("needs_execution")  # the trap is the start function's
            else:
                result.add(self._failure(), line, f"{kind}: instantiated fine, expected {cmd.get('text')!r}")
            return current
        if kind in ("assert_return", "assert_trap", "action", "assert_exhaustion",
                    "assert_exception"):
            self._action(cmd, named, current, result)
            return current
        result.add("needs_execution")
        return current

    def _action(self, cmd, named, current, result):
        action = cmd["action"]
        line = cmd.get("line")
        inst = named.get(action["module"]) if action.get("module") else current
        if action["type"] == "get" and cmd["type"] == "assert_return":
            if inst is None:
                if action.get("module") in self._unsupported_modules:
                    result.add("unsupported", line, "get on a module using an unsupported feature")
                else:
                    result.add(self._failure(), line, "get on a module that did not instantiate")
                return
            glob = inst.exports[action["field"]]
            expected = cmd["expected"][0]
            if _value_matches(expected, glob.bits):
                result.add("passed")
            else:
                why = f"global {action['field']} = {glob.bits!r}, expected {expected}"
                result.add(self._failure() if glob.ty.mutable else "failed", line, why)
            return
        self._diverged = True
        result.add("needs_execution")

    def _failure(self) -> str:
        return "needs_execution" if self._diverged else "failed"

    def _read(self, base, cmd) -> bytes:
        with open(os.path.join(base, cmd["filename"]), "rb") as f:
            return f.read()

    def _imports(self, module, registry):
        out = {}
        for imp in module.imports:
            ext = registry.get(imp.module, {}).get(imp.name)
            if ext is not None:
                out[(imp.module, imp.name)] = ext
        return out


def _value_matches(expected: dict, bits) -> bool:
    ty, value = expected["type"], expected.get("value")
    if ty in ("i32", "i64"):
        return int(value) == bits
    if ty in ("f32", "f64"):
        width = 32 if ty == "f32" else 64
        exp_mask = (0xFF << 23) if width == 32 else (0x7FF << 52)
        frac = (1 << (23 if width == 32 else 52)) - 1
        is_nan = (bits & exp_mask) == exp_mask and bits & frac
        if value in ("nan:canonical", "nan:arithmetic"):
            if not is_nan:
                return False
            quiet = 1 << (22 if width == 32 else 51)
            return bool(bits & quiet) if value == "nan:arithmetic" else (bits & frac) == quiet
        return int(value) == bits
    if ty in ("funcref", "externref", "anyref", "exnref", "refnull"):
        return (value == "null") == (bits is None)
    return False
