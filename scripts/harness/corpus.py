"""Corpora shared by the tests and the scripts: the spec test suite as binary modules,
wasm-smith modules.

* :func:`spec_wasm_modules` converts every ``*.wast`` of the spec suite with
  ``wasm-tools json-from-wast`` (fallback ``wast2json --enable-all``) into a cache under
  ``build/spec-cache`` keyed by the file's content hash, and returns one
  :class:`WastCommand` per command (module bytes for binary modules, the expected text of
  ``assert_*`` commands).
* :func:`smith_modules` generates deterministic modules with ``wasm-tools smith`` from
  seeded random bytes (cached under ``build/smith-cache``).
Caches are concurrency-safe: each entry is built in a private temporary directory and
renamed into place; a loser of the race discards its copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from . import wast

ROOT = Path(__file__).resolve().parents[2]
#: The spec suite: ``shared/wasm-testsuite`` beside the clone (``<clone>/../shared``; upstream's
#: layout: ``core/``, ``legacy/``, ``proposals/threads/``), or ``$WASMENV_SPEC_DIR``.
SPEC_DIR = Path(os.environ.get("WASMENV_SPEC_DIR") or ROOT.parent / "shared" / "wasm-testsuite")
SPEC_CACHE = ROOT / "build" / "spec-cache"
SMITH_CACHE = ROOT / "build" / "smith-cache"

#: wasm-smith options for the proposals wasmenv decodes (and nothing else): bulk memory,
#: reference types, multi-value, multi-memory, memory64/table64, threads, extended-const,
#: SIMD value types, exception tags. GC, typed function references, custom page sizes,
#: compact imports, custom descriptors, shared-everything and stack switching are off.
SUPPORTED_SMITH_ARGS: Dict[str, object] = {
    "bulk_memory_enabled": True,
    "reference_types_enabled": True,
    "multi_value_enabled": True,
    "memory64_enabled": True,
    "threads_enabled": True,
    "exceptions_enabled": True,
    "extended_const_enabled": True,
    "simd_enabled": True,
    "saturating_float_to_int_enabled": True,
    "sign_extension_ops_enabled": True,
    "tail_call_enabled": True,
    "gc_enabled": False,
    "custom_page_sizes_enabled": False,
    "compact_imports_enabled": False,
    "custom_descriptors_enabled": False,
    "shared_everything_threads_enabled": False,
    "relaxed_simd_enabled": False,
    "wide_arithmetic_enabled": False,
    "max_memories": 4,
    "max_tables": 4,
    "max_data_segments": 20,
    "max_element_segments": 20,
}


def find_tool(tool: str) -> Optional[str]:
    """``tool`` next to the running interpreter (the venv's bin), else on PATH."""
    return wast.tool(tool)


def wasm_tools() -> Optional[str]:
    return find_tool("wasm-tools")


def _tool_version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished temporary directory into place (first writer wins)."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


# -- spec suite ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WastCommand:
    """One command of a converted .wast file."""

    wast: str                      # path in the suite, e.g. "core/binary.wast"
    line: int
    type: str                      # "module", "assert_malformed", "assert_invalid", ...
    wasm: Optional[bytes]          # the binary module, if the command carries one
    text: Optional[str] = None     # expected message of assert_* commands
    name: Optional[str] = None     # "$M1"-style module name, if any
    module_type: Optional[str] = None  # "binary" or "text" (quoted WAT we cannot decode)
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.wast}:{self.line}"


#: wast2json's features: all but compact imports (wabt 1.0.42 would encode two imports from
#: one module in that proposal's form, which neither wasmenv nor the spec scripts expect).
WAST2JSON_FEATURES = ("--enable-threads", "--enable-function-references", "--enable-gc",
                      "--enable-code-metadata", "--enable-custom-page-sizes",
                      "--enable-wide-arithmetic")


def convert_wast(path: Path, cache: Path = None) -> Path:
    """Directory holding ``<stem>.json`` and the module files of ``path`` (cached under
    ``cache``, default :data:`SPEC_CACHE`). The one .wast converter of the project:
    ``scripts/spec.py`` uses it too. ``wasm-tools json-from-wast`` first; wabt's
    ``wast2json`` (:data:`WAST2JSON_FEATURES`) for what wasm-tools cannot parse (the legacy exception
    instructions' text: ``try``/``do``/``catch``/``delegate``) or when it is missing."""
    cache = Path(cache) if cache is not None else SPEC_CACHE
    content = path.read_bytes()
    converters = [c for c in (wasm_tools(), find_tool("wast2json")) if c]
    if not converters:
        raise RuntimeError("neither wasm-tools nor wast2json found")
    chain = "+".join(Path(c).name for c in converters)
    digest = hashlib.sha256(content + chain.encode()).hexdigest()[:16]
    final = cache / f"{path.stem}-{digest}"
    json_path = final / f"{path.stem}.json"
    if json_path.exists():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for converter in converters:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.stem}-", dir=cache))
        try:
            if Path(converter).name.startswith("wasm-tools"):
                cmd = [converter, "json-from-wast", str(path), "--wasm-dir", str(tmp),
                       "-o", str(tmp / json_path.name)]
            else:
                cmd = [converter, *WAST2JSON_FEATURES, str(path), "-o", str(tmp / json_path.name)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                _publish(tmp, final)
                return final
            errors.append(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    raise RuntimeError("\n".join(errors))


def spec_wast_files(spec_dir: Path = None) -> List[Path]:
    """The ``*.wast`` files of the spec suite, subdirectories included (none if it is not
    there)."""
    return sorted(Path(spec_dir or SPEC_DIR).rglob("*.wast"))


def spec_name(path: Path, spec_dir: Path = None) -> str:
    """``path`` relative to the suite, without ``.wast`` (``core/binary``, ``legacy/throw``):
    unique, where stems are not (``core/throw`` and ``legacy/throw``)."""
    try:
        rel = Path(path).relative_to(Path(spec_dir or SPEC_DIR))
    except ValueError:
        rel = Path(Path(path).name)
    return rel.with_suffix("").as_posix()


def require_spec_suite(spec_dir: Path = None) -> List[Path]:
    """:func:`spec_wast_files`, or FileNotFoundError saying where to put the suite."""
    files = spec_wast_files(spec_dir)
    if not files:
        raise FileNotFoundError(
            f"no spec test suite (*.wast files) at {Path(spec_dir or SPEC_DIR)}: put the "
            "WebAssembly testsuite there (shared/wasm-testsuite beside the clone) "
            "or set WASMENV_SPEC_DIR to its folder")
    return files


def spec_wasm_modules(spec_dir: Path = None, files: Iterable[str] = None,
                      cache: Path = None) -> List[WastCommand]:
    """Every command of every ``*.wast`` in the spec suite, in file order.

    ``files`` restricts to the given file names, stems or names in the suite
    (:func:`spec_name`). Commands that carry a binary module have ``wasm`` set, and so do
    quoted-text modules the converter encoded (``binary_filename``); other quoted-text
    modules (``module_type == "text"``) and non-module commands have ``wasm = None``.
    Raises FileNotFoundError (saying where to put it) if the suite is not there.
    """
    wanted = None if files is None else {Path(f).with_suffix("").as_posix() for f in files}
    records = []
    for path in require_spec_suite(spec_dir):
        name = spec_name(path, spec_dir)
        if wanted is not None and path.stem not in wanted and name not in wanted:
            continue
        out = convert_wast(path, Path(cache or SPEC_CACHE))
        doc = json.loads((out / f"{path.stem}.json").read_text())
        for cmd in doc.get("commands", []):
            wasm = None
            filename = cmd.get("filename")
            module_type = cmd.get("module_type")
            if filename and (module_type == "binary" or (module_type is None and filename.endswith(".wasm"))):
                wasm = (out / filename).read_bytes()
            elif module_type == "text" and cmd.get("binary_filename"):  # quoted text, encoded
                wasm = (out / cmd["binary_filename"]).read_bytes()
            records.append(WastCommand(
                wast=f"{name}.wast", line=cmd.get("line", 0), type=cmd["type"], wasm=wasm,
                text=cmd.get("text"), name=cmd.get("name"), module_type=module_type, raw=cmd))
    return records


# -- wasm-smith ------------------------------------------------------------------------------
#: smith options that are bare flags (on when given).
_BARE_FLAGS = {"ensure_termination"}


def _smith_flags(smith_args: Dict[str, object]) -> List[str]:
    flags = []
    for key in sorted(smith_args):
        value = smith_args[key]
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key in _BARE_FLAGS:  # flags without a value
            flags += [flag] if value else []
        elif isinstance(value, bool):
            flags += [flag, "true" if value else "false"]
        else:
            flags += [flag, str(value)]
    return flags


def smith_modules(n: int, seed: int = 0, seed_bytes: int = 2048, cache: Path = None,
                  **smith_args) -> List[bytes]:
    """``n`` deterministic modules from ``wasm-tools smith`` (module ``i`` uses random bytes
    seeded by ``(seed, i)``; seeds smith cannot use are skipped, deterministically).

    ``smith_args`` are smith options with underscores, e.g. ``max_memories=4``,
    ``memory64_enabled=True``. Cached under ``build/smith-cache``.
    """
    tool = wasm_tools()
    if not tool:
        raise RuntimeError("wasm-tools not found")
    flags = _smith_flags(smith_args)
    key = json.dumps([n, seed, seed_bytes, flags, _tool_version(tool)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(cache or SMITH_CACHE)
    final = cache / f"smith-{n}-{seed}-{digest}"
    done = final / "count"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-smith-", dir=cache))
        try:
            _generate(tool, flags, n, seed, seed_bytes, tmp)
            (tmp / "count").write_text(str(n))
            _publish(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return [(final / f"{i:05d}.wasm").read_bytes() for i in range(n)]


def _smith_one(tool: str, flags: List[str], seed: int, attempt: int, seed_bytes: int,
               workdir: Path) -> Optional[bytes]:
    rng = random.Random(f"wasmenv-smith:{seed}:{attempt}")
    data = rng.randbytes(seed_bytes)
    out = workdir / f"a{attempt}.wasm"
    proc = subprocess.run([tool, "smith", *flags, "-o", str(out)], input=data,
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        if proc.returncode == 2:  # seed could not produce a module
            return None
        raise RuntimeError(f"wasm-tools smith failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')}")
    wasm = out.read_bytes()
    out.unlink()
    return wasm


def _generate(tool: str, flags: List[str], n: int, seed: int, seed_bytes: int, tmp: Path) -> None:
    produced = 0
    attempt = 0
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        while produced < n:
            batch = list(range(attempt, attempt + (n - produced) + 4))
            attempt += len(batch)
            results = list(pool.map(lambda a: _smith_one(tool, flags, seed, a, seed_bytes, tmp), batch))
            for wasm in results:  # in attempt order: deterministic
                if wasm is None or produced >= n:
                    continue
                (tmp / f"{produced:05d}.wasm").write_bytes(wasm)
                produced += 1
            if attempt > 20 * n + 100:
                raise RuntimeError("wasm-tools smith keeps failing to generate modules")
