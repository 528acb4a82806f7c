"""Robustness of the decoder on malformed input: only DecodeError, no hangs, no big allocations."""
import pathlib
import random
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wasmenv
from wasmenv import DecodeError
from wasmenv.decode import SECTION_NAMES

from tests.helpers import section_spans, wat
from wasmenv.encode import module, name, section, sleb, uleb, vec

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

RICH_WAT = """(module $rich
  (type $v (func))
  (type $ii (func (param i32 i64) (result i32 f64)))
  (import "env" "f" (func (type $ii)))
  (import "env" "mem" (memory 1 2))
  (import "env" "g" (global i32))
  (import "env" "t" (table 2 funcref))
  (import "env" "tag" (tag (param i32)))
  (func $a (type $v))
  (func $b (type $ii) (i32.const 1) (f64.const 2))
  (table $t1 4 externref)
  (table $t64 i64 2 8 funcref)
  (memory $m2 i64 1)
  (memory $m3 1 4 shared)
  (tag $t2 (param i64))
  (global $x (mut i64) (i64.const -7))
  (global $y funcref (ref.func $a))
  (global $z i32 (i32.add (global.get 0) (i32.const 3)))
  (export "a" (func $a)) (export "mem64" (memory $m2)) (export "x" (global $x))
  (start $a)
  (elem (i32.const 0) $a $b)
  (elem (table $t64) (i64.const 1) funcref (ref.func $b) (ref.null func))
  (elem funcref (ref.func $a) (global.get $y))
  (elem declare func $b)
  (data (i32.const 16) "active data")
  (data (memory $m2) (i64.const 65535) "x")
  (data (memory $m3) (offset (i32.add (global.get 0) (i32.const 1))) "y")
  (data "passive")
)"""


def corpus():
    mods = [wat(RICH_WAT)]
    for path in sorted(EXAMPLES.glob("*.wat")):
        mods.append(wat(path.read_text()))
    return mods


CORPUS = corpus()


def check_decode(data) -> bool:
    """Decode; True if accepted, False if a DecodeError; anything else fails the test."""
    try:
        wasmenv.translate(data)
        return True
    except DecodeError as e:
        assert e.offset is None or 0 <= e.offset <= len(data), e
        assert e.section is None or e.section in SECTION_NAMES.values(), e
        return False


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_every_prefix_is_rejected(index):
    wasm = CORPUS[index]
    assert check_decode(wasm)
    boundaries = {8} | {end for _, _, end in section_spans(wasm)}
    for n in range(len(wasm)):
        ok = check_decode(wasm[:n])
        if n not in boundaries:
            assert not ok, f"prefix of {n} bytes (not a section boundary) was accepted"


def test_prefixes_at_section_boundaries_behave():
    # Cutting between sections: fine unless it separates function and code (or
    # data count and data) sections.
    wasm = CORPUS[0]
    spans = section_spans(wasm)
    ids_before = []
    for sid, _, end in spans:
        ids_before.append(sid)
        ok = check_decode(wasm[:end])
        incomplete = (3 in ids_before and 10 not in ids_before) or \
                     (12 in ids_before and 11 not in ids_before)
        assert ok == (not incomplete), (ids_before, ok)


def mutate(rng: random.Random, wasm: bytes) -> bytes:
    w = bytearray(wasm)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(w) + 1)
        if op < 0.45 and i < len(w):
            w[i] = rng.randrange(256)
        elif op < 0.65 and i < len(w):
            w[i] ^= 1 << rng.randrange(8)
        elif op < 0.8:
            w[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        elif op < 0.9:
            del w[i:i + rng.randint(1, 3)]
        else:
            w[i:i] = rng.choice([b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x80\x00", b"\x00", b"\x0b"])
    return bytes(w)


def test_random_mutations_only_raise_decode_error():
    rng = random.Random(1234)
    accepted = rejected = 0
    deadline = time.monotonic() + 20
    for _ in range(20000):
        if time.monotonic() > deadline:
            break
        if check_decode(mutate(rng, rng.choice(CORPUS))):
            accepted += 1
        else:
            rejected += 1
    assert rejected > accepted > 0


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_byte_flips(data):
    wasm = bytearray(data.draw(st.sampled_from(CORPUS)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(wasm) - 1), st.integers(0, 255)),
                               min_size=1, max_size=4))
    for pos, value in flips:
        wasm[pos] = value
    cut = data.draw(st.none() | st.integers(0, len(wasm)))
    if cut is not None:
        del wasm[cut:]
    check_decode(bytes(wasm))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_hypothesis_arbitrary_bodies(body):
    # arbitrary bytes after a valid header, also framed as each known section
    check_decode(b"\0asm\x01\0\0\0" + body)
    for sid in range(14):
        check_decode(module(section(sid, body)))


# -- huge declared sizes fail fast without allocating -----------------------------------------
HUGE = uleb(0xFFFFFFFF)
T = section(1, vec([b"\x60\x00\x00"]))
F = section(3, vec([b"\x00"]))
M = section(5, vec([b"\x00\x01"]))
TB = section(4, vec([b"\x70\x00\x01"]))

HUGE_CASES = {
    "types": module(section(1, HUGE + b"\x60\x00\x00")),
    "params": module(section(1, b"\x01\x60" + HUGE + b"\x7f")),
    "results": module(section(1, b"\x01\x60\x00" + HUGE + b"\x7f")),
    "imports": module(section(2, HUGE + b"\x00\x00\x00\x00")),
    "import module name": module(section(2, b"\x01" + HUGE + b"ab")),
    "import field name": module(section(2, b"\x01\x01a" + HUGE + b"ab")),
    "functions": module(T, section(3, HUGE + b"\x00")),
    "tables": module(section(4, HUGE + b"\x70\x00\x01")),
    "memories": module(section(5, HUGE + b"\x00\x01")),
    "tags": module(T, section(13, HUGE + b"\x00\x00")),
    "globals": module(section(6, HUGE + b"\x7f\x00\x41\x00\x0b")),
    "exports": module(section(7, HUGE + b"\x00\x00\x00")),
    "export name": module(section(7, b"\x01" + HUGE + b"\x00\x00")),
    "element segments": module(TB, section(9, HUGE + b"\x00\x41\x00\x0b\x00")),
    "element items": module(T, F, TB, section(9, b"\x01\x00\x41\x00\x0b" + HUGE + b"\x00"),
                            section(10, vec([b"\x02\x00\x0b"]))),
    "element exprs": module(TB, section(9, b"\x01\x05\x70" + HUGE + b"\xd0\x70\x0b")),
    "data count": module(M, section(12, HUGE)),
    "data segments": module(M, section(11, HUGE + b"\x01\x00")),
    "data bytes": module(M, section(11, b"\x01\x00\x41\x00\x0b" + HUGE + b"abc")),
    "passive data bytes": module(section(11, b"\x01\x01" + HUGE + b"abc")),
    "code bodies": module(T, F, section(10, HUGE + b"\x02\x00\x0b")),
    "code body size": module(T, F, section(10, b"\x01" + HUGE + b"\x00\x0b")),
    "section size": module(b"\x01" + HUGE + b"\x00"),
    "custom name": module(section(0, HUGE + b"abc")),
    "name subsection": module(section(0, name("name") + b"\x00" + HUGE + b"\x00")),
    "module name": module(section(0, name("name") + b"\x00\x06" + HUGE + b"a")),
    "too many data segments": module(M, section(11, uleb(100_001) + b"\x01\x00" * 100_001)),
    "too many element segments": module(section(9, uleb(100_001) + b"\x01\x00\x00" * 100_001)),
}


@pytest.mark.parametrize("case", sorted(HUGE_CASES))
def test_huge_counts_fail_fast_without_allocating(case):
    wasm = HUGE_CASES[case]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        t0 = time.perf_counter()
        accepted = check_decode(wasm)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the name section is ignored when malformed; everything else must be rejected
    assert accepted == (case in ("name subsection", "module name")), case
    assert elapsed < 0.5, f"{case}: {elapsed:.3f}s"
    assert peak - base < 256 * 1024, f"{case}: peak allocation {peak - base} bytes"


def test_long_constant_expression_is_linear():
    # 200,000 i32.const in one global initializer: rejected (stack of many values), quickly
    expr = b"\x41\x00" * 200_000 + b"\x0b"
    wasm = module(section(6, vec([b"\x7f\x00" + expr])))
    t0 = time.perf_counter()
    with pytest.raises(DecodeError, match="type mismatch"):
        wasmenv.translate(wasm)
    assert time.perf_counter() - t0 < 5


def test_many_small_items_are_linear():
    # 100,000 exports and 100,000 element items decode in reasonable time
    funcs = 1
    exports = vec([name(f"e{i}") + b"\x00\x00" for i in range(100_000)])
    items = vec([b"\x00"] * 100_000)
    wasm = module(T, section(3, vec([b"\x00"] * funcs)), section(4, vec([b"\x70\x00" + uleb(100_000)])),
                  section(7, exports), section(9, vec([b"\x00\x41\x00\x0b" + items])),
                  section(10, vec([b"\x02\x00\x0b"] * funcs)))
    t0 = time.perf_counter()
    m = wasmenv.translate(wasm).module
    assert len(m.exports) == 100_000 and len(m.table_initialization.segments[0].elements) == 100_000
    assert time.perf_counter() - t0 < 10


def test_sleb_helper_roundtrip():
    from wasmenv.reader import Reader
    for v in (0, 1, -1, 63, 64, -64, -65, 2 ** 31 - 1, -(2 ** 31), 2 ** 63 - 1, -(2 ** 63)):
        assert Reader(memoryview(sleb(v))).s64() == v
