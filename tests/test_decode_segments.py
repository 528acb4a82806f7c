"""The binary decoder (wasmenv.decode), element and data segments: the eight element
encodings, offsets (i32, i64, global, extended), active and passive data as zero-copy views
of the input, the fast and general data paths, and their errors."""
import dataclasses
import inspect
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wasmenv
from wasmenv import ConstExpr, DecodeError, ElementSegment, MemoryInitializer, TableInitializer
from wasmenv.reader import Reader

from tests.helpers import FUNCREF, MEM1, TYPE_VOID, data_active, decode, i32c, i64c, rejects, wat
from wasmenv.encode import module, name, section, uleb, vec


# -- element segments -----------------------------------------------------------------------
def elem_module(*segments, tables=(b"\x70\x00\x0a",), funcs=3, globals_=()):
    parts = [TYPE_VOID]
    if globals_:
        parts.append(section(2, vec([name("e") + name(f"g{i}") + b"\x03" + g
                                     for i, g in enumerate(globals_)])))
    parts.append(section(3, vec([uleb(0)] * funcs)))
    parts.append(section(4, vec(tables)))
    parts.append(section(9, vec(segments)))
    parts.append(section(10, vec([b"\x02\x00\x0b"] * funcs)))
    return module(*parts)


def test_all_eight_element_encodings():
    def fidx(*fs):
        return vec([uleb(f) for f in fs])
    segs = [
        b"\x00" + i32c(1) + fidx(2, 0),                                      # 0 active t0 funcs
        b"\x01\x00" + fidx(1),                                               # 1 passive funcs
        b"\x02\x01" + i32c(3) + b"\x00" + fidx(0),                           # 2 active t1 funcs
        b"\x03\x00" + fidx(2),                                               # 3 declarative
        b"\x04" + i32c(4) + vec([b"\xd2\x01\x0b", b"\xd0\x70\x0b"]),         # 4 active t0 exprs
        b"\x05\x70" + vec([b"\xd2\x00\x0b", b"\x23\x00\x0b"]),               # 5 passive exprs
        b"\x06\x02" + i32c(0) + b"\x6f" + vec([b"\xd0\x6f\x0b"]),            # 6 active t2 exprs
        b"\x07\x70" + vec([b"\xd2\x02\x0b"]),                                # 7 declarative exprs
    ]
    m = decode(elem_module(*segs, tables=(b"\x70\x00\x0a", b"\x70\x00\x0a", b"\x6f\x00\x01"),
                           globals_=(b"\x70\x00",)))
    segs_ = m.table_initialization.segments
    assert segs_ == (
        TableInitializer(0, None, 1, (2, 0)),
        TableInitializer(1, None, 3, (0,)),
        TableInitializer(0, None, 4, (1, None)),
        TableInitializer(2, None, 0, (None,)),
    )
    assert m.num_elem_segments == 8
    assert m.dropped_elements == (0, 2, 3, 4, 6, 7)
    assert m.passive_elements == {
        1: ElementSegment("passive", FUNCREF, (1,)),
        5: ElementSegment("passive", FUNCREF, (0, ConstExpr((("global.get", 0),)))),
    }
    # escaping order: first appearance in decode order (all in the element section here)
    assert [f.anyfunc for f in m.functions] == [1, 2, 0]
    assert m.escaped_functions() == [2, 0, 1]
    assert m.num_escaped_funcs == 3


def test_element_flag_zero_with_two_byte_flags_and_table_index():
    # flags and table index read as LEB u32 (wasmparser accepts the 2-byte encodings)
    m = decode(elem_module(b"\x80\x00" + i32c(0) + vec([uleb(1)]),
                           b"\x02\x80\x00" + i32c(0) + b"\x00" + vec([])))
    assert [s.table_index for s in m.table_initialization.segments] == [0, 0]


@pytest.mark.parametrize("seg,match,kw", [
    (b"\x08" + vec([]), "malformed elements segment kind", {}),
    (b"\x02\x01" + i32c(0) + b"\x00" + vec([]), "unknown table 1", {}),
    (b"\x00" + i32c(0) + vec([uleb(3)]), "unknown function 3", {}),
    (b"\x01\x01" + vec([]), "malformed element kind", {}),
    (b"\x00" + i64c(0) + vec([]), "type mismatch", {}),
    (b"\x00" + i32c(0) + vec([]), "type mismatch", {"tables": (b"\x6f\x00\x01",)}),
    (b"\x04" + i32c(0) + vec([b"\xd0\x6f\x0b"]), "type mismatch", {}),
    (b"\x05\x70" + vec([b"\x41\x00\x0b"]), "type mismatch", {}),
    (b"\x06\x00" + i32c(0) + b"\x6f" + vec([]), "type mismatch", {}),
    (b"\x00" + i32c(0) + vec([]), "unknown table 0", {"tables": ()}),
])
def test_element_errors(seg, match, kw):
    rejects(elem_module(seg, **kw), match)


def test_element_into_table64_uses_i64_offset():
    m = decode(elem_module(b"\x00" + i64c(5) + vec([uleb(0)]), tables=(b"\x70\x04\x0a",)))
    seg, = m.table_initialization.segments
    assert seg.offset == 5 and seg.table64
    rejects(elem_module(b"\x00" + i32c(5) + vec([uleb(0)]), tables=(b"\x70\x04\x0a",)),
            "type mismatch")


def test_element_offsets_global_and_extended():
    m = decode(wat("""(module (import "e" "b" (global $b i32)) (table 10 funcref) (func $f)
        (elem (global.get $b) $f)
        (elem (offset (i32.add (global.get $b) (i32.const 2))) $f)
        (elem (offset (i32.sub (i32.const 1) (i32.const 2))) $f))"""))
    s0, s1, s2 = m.table_initialization.segments
    assert (s0.base, s0.offset, s0.expr) == (0, 0, None)
    assert s1.base is None and s1.offset == 0
    assert s1.expr.ops == (("global.get", 0), ("i32.const", 2), ("i32.add", None))
    assert (s2.base, s2.offset, s2.expr) == (None, 0xFFFFFFFF, None)


# -- data segments --------------------------------------------------------------------------
def data_passive(payload):
    return b"\x01" + uleb(len(payload)) + payload


def data_module(*segments, memories=(b"\x00\x01",), data_count=None, globals_=()):
    parts = []
    if globals_:
        parts.append(section(2, vec([name("e") + name(f"g{i}") + b"\x03" + g
                                     for i, g in enumerate(globals_)])))
    if memories:
        parts.append(section(5, vec(memories)))
    if data_count is not None:
        parts.append(section(12, uleb(data_count)))
    parts.append(section(11, vec(segments)))
    return module(*parts)


def test_active_and_passive_data():
    m_tr = wasmenv.translate(data_module(
        data_active(i32c(16), b"abc"), data_passive(b"P"),
        data_active(i32c(0), b"xy", memory=1), b"\x01\x00",
        memories=(b"\x00\x01", b"\x00\x01")))
    m = m_tr.module
    i0, i1 = m.memory_initialization.initializers
    assert (i0.memory_index, i0.base, i0.offset, i0.expr, i0.memory64) == (0, None, 16, None, False)
    assert (i1.memory_index, i1.offset) == (1, 0)
    assert bytes(m_tr.data_view(i0.data)) == b"abc" and bytes(m_tr.data_view(i1.data)) == b"xy"
    assert m.num_data_segments == 4
    assert set(m.passive_data_map) == {1, 3}
    assert bytes(m_tr.passive_data_view(1)) == b"P" and bytes(m_tr.passive_data_view(3)) == b""
    assert m_tr.passive_data_view(0) is None


def test_data_is_zero_copy_view_of_input():
    buf = bytearray(data_module(data_active(i32c(0), b"hello"), data_passive(b"world")))
    tr = wasmenv.translate(buf)
    init, = tr.module.memory_initialization.initializers
    view = tr.data_view(init.data)
    pview = tr.passive_data_view(1)
    assert view.obj is buf and pview.obj is buf
    assert tr.wasm.obj is buf
    at = bytes(buf).index(b"hello")
    buf[at] = ord("J")
    buf[bytes(buf).index(b"world")] = ord("W")
    assert bytes(view) == b"Jello" and bytes(pview) == b"World"
    assert tr.data.chunks[0].obj is buf


@pytest.mark.parametrize("value,expected", [
    (0, 0), (1, 1), (63, 63), (64, 64), (-1, 0xFFFFFFFF), (-64, 0xFFFFFFC0), (-65, 0xFFFFFFBF),
    (2 ** 20, 2 ** 20), (2 ** 27 - 1, 2 ** 27 - 1), (2 ** 27, 2 ** 27), (2 ** 31 - 1, 2 ** 31 - 1),
    (-(2 ** 31), 2 ** 31), (-(2 ** 31) + 1, 2 ** 31 + 1), (-2, 0xFFFFFFFE),
])
def test_i32_offsets_zero_extended(value, expected):
    for flags in (b"\x00", b"\x80\x00"):  # fast path and general path must agree
        seg = flags + i32c(value) + vec([b"z"])
        init, = decode(data_module(seg)).memory_initialization.initializers
        assert init.offset == expected and init.base is None and init.expr is None


@pytest.mark.parametrize("leb", [
    b"\x80\x00", b"\xff\x7f", b"\x80\x80\x80\x80\x00", b"\xff\xff\xff\xff\x07", b"\x80\x80\x80\x80\x78",
    b"\xff\xff\xff\xff\x7f",
])
def test_overlong_i32_const_offsets(leb):
    r = Reader(memoryview(leb))
    expected = r.s32() & 0xFFFFFFFF
    init, = decode(data_module(b"\x00\x41" + leb + b"\x0b" + vec([b"q"]))).memory_initialization.initializers
    assert init.offset == expected


@pytest.mark.parametrize("leb,match", [
    (b"\x80\x80\x80\x80\x80\x00", "representation too long"),
    (b"\x80\x80\x80\x80\x70", "integer too large"),
    (b"\xff\xff\xff\xff\x0f", "integer too large"),
])
def test_bad_i32_const_offsets(leb, match):
    rejects(data_module(b"\x00\x41" + leb + b"\x0b" + vec([b"q"])), match)


def test_truncated_i32_const_offset():
    rejects(module(MEM1, section(11, b"\x01\x00\x41\x80\x80")), "unexpected end")


def test_data_length_leb_and_bounds():
    # 2-byte length encoding, fast path
    init, = decode(data_module(b"\x00" + i32c(0) + b"\x83\x00abc")).memory_initialization.initializers
    assert len(init.data) == 3
    rejects(data_module(b"\x00" + i32c(0) + b"\x05abc"), "out of bounds|unexpected end")
    rejects(data_module(b"\x00" + i32c(0) + b"\x80\x80\x80\x80\x10"), "integer too large")


def test_data_offsets_global_extended_and_memory64():
    m = decode(wat("""(module (import "e" "b" (global $b i32)) (import "e" "b64" (global $c i64))
      (memory 1) (memory i64 1)
      (data (global.get $b) "a")
      (data (offset (i32.add (global.get $b) (i32.const 64))) "b")
      (data (offset (i32.add (i32.const 0x7fffffff) (i32.const 0x7fffffff))) "c")
      (data (offset (i32.mul (i32.const 0x10000) (i32.const 0x10000))) "d")
      (data (memory 1) (i64.const -1) "e")
      (data (memory 1) (offset (i64.sub (i64.const 1) (i64.const 2))) "f")
      (data (memory 1) (global.get $c) "g"))"""))
    inits = m.memory_initialization.initializers
    assert (inits[0].base, inits[0].offset, inits[0].expr) == (0, 0, None)
    assert inits[1].base is None and inits[1].offset == 0
    assert inits[1].expr == ConstExpr((("global.get", 0), ("i32.const", 64), ("i32.add", None)))
    assert (inits[2].offset, inits[2].expr) == (0xFFFFFFFE, None)
    assert (inits[3].offset, inits[3].expr) == (0, None)  # wraps to 32 bits
    assert inits[4].memory64 and inits[4].memory_index == 1 and inits[4].offset == (1 << 64) - 1
    assert inits[5].offset == (1 << 64) - 1
    assert inits[6].base == 1 and inits[6].memory64
    # the runtime resolution of a kept expression
    assert inits[1].start(lambda g: 100) == 164


@pytest.mark.parametrize("mod,match", [
    (data_module(data_active(i32c(0), b"x"), memories=()), "unknown memory 0"),
    (data_module(data_active(i32c(0), b"x", memory=1)), "unknown memory 1"),
    (data_module(data_active(i64c(0), b"x")), "type mismatch"),
    (data_module(data_active(i32c(0), b"x"), memories=(b"\x04\x01",)), "type mismatch"),
    (data_module(b"\x03" + vec([])), "malformed data segment kind"),
    (data_module(b"\x00\xd2\x00\x0b" + vec([])), "unknown function"),
    (data_module(data_active(b"\x23\x00\x0b", b"x"), globals_=(b"\x7f\x01",)), "mutable global"),
    (data_module(data_active(b"\x23\x00\x0b", b"x"), globals_=(b"\x7e\x00",)), "type mismatch"),
])
def test_data_errors(mod, match):
    rejects(mod, match)


def test_data_count():
    decode(data_module(data_active(i32c(0), b"x"), data_count=1))
    rejects(data_module(data_active(i32c(0), b"x"), data_count=2), "inconsistent lengths")
    rejects(module(MEM1, section(12, uleb(1))), "inconsistent lengths")
    decode(module(MEM1, section(12, uleb(0))))
    rejects(module(MEM1, section(12, uleb(100_001))), "too many data segments")
    rejects(module(MEM1, section(12, uleb(0) + b"\x00")), "unexpected content")


def test_data_fast_and_general_paths_agree():
    segs = [data_active(i32c(v), bytes([v & 0xFF]) * (v % 300)) for v in
            list(range(0, 70000, 997)) + [-5, 2 ** 31 + 5 - 2 ** 32]]
    fast = wasmenv.translate(data_module(*segs))
    slow = wasmenv.translate(data_module(*[b"\x80" + s for s in segs]))
    assert fast.module.memory_initialization == slow.module.memory_initialization
    for a in fast.module.memory_initialization.initializers:
        assert bytes(fast.data_view(a.data)) == bytes(slow.data_view(a.data))


@pytest.mark.parametrize("body,match,at", [
    # body after the flags byte; ``at``: offset of the bad byte within the body
    (b"\x41\x80\x80\x80\x80\x80\x00\x0b\x01q", "representation too long", 5),  # s32: 6 bytes
    (b"\x41\x80\x80\x80\x80\x70\x0b\x01q", "integer too large", 5),  # s32 unused bits
    (b"\x41\xff\xff\xff\xff\x0f\x0b\x01q", "integer too large", 5),  # s32 > 2^31 - 1
    (b"\x41\x80\x80", "unexpected end", 3),  # s32 truncated
    (b"\x41\x00\x0b\x80\x80\x80\x80\x80\x00", "representation too long", 7),  # u32: 6 bytes
    (b"\x41\x00\x0b\xff\xff\xff\xff\x1f", "integer too large", 7),  # u32 > 2^32 - 1
    (b"\x41\x00\x0b\x80\x80", "unexpected end", 5),  # u32 truncated
    (b"\x41\x00\x0b\x05abc", "length out of bounds", 3),  # length past the section end
])
def test_data_segment_leb_errors_have_offsets_on_fast_and_general_paths(body, match, at):
    # flags 0 takes the decoder's fast path, a two-byte flags 0 the general one: both read
    # through the Reader, so the error is the same, one byte later on the general path.
    errors = []
    for flags in (b"\x00", b"\x80\x00"):
        wasm = data_module(flags + body)
        err = rejects(wasm, match)
        assert err.section == "data" and err.offset == len(wasm) - len(body) + at
        errors.append(err)
    fast, general = errors
    assert fast.message == general.message


def test_data_fast_path_leaves_other_shapes_to_the_general_path():
    # `i32.const` followed by more than `end` (extended const), then a plain segment
    ext = b"\x00\x41\x05\x41\x03\x6a\x0b" + vec([b"e"])
    inits = decode(data_module(ext, data_active(i32c(70000), b"p"))).memory_initialization.initializers
    assert [(i.offset, i.expr, len(i.data)) for i in inits] == [(8, None, 1), (70000, None, 1)]


def _data_outcome(wasm):
    """What translating ``wasm`` gives: its data initializers, passive segments and bytes,
    or its error (message and offset)."""
    try:
        tr = wasmenv.translate(wasm)
    except DecodeError as err:
        return "error", err.message, err.offset
    m = tr.module
    return ("ok", m.memory_initialization, m.passive_data_map,
            [bytes(c) for c in tr.data.chunks], [bytes(c) for c in tr.passive_data.chunks])


_LEBISH = st.lists(st.sampled_from([0x00, 0x01, 0x0B, 0x3F, 0x40, 0x41, 0x70, 0x7F, 0x80, 0x81,
                                    0xC0, 0xF0, 0xFF]) | st.integers(0, 255), max_size=7).map(bytes)


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.sampled_from([b"\x41", b"\x42", b""]) | st.binary(max_size=1), _LEBISH,
                 st.sampled_from([b"\x0b", b"\x41\x00\x6a\x0b", b""]) | st.binary(max_size=1),
                 _LEBISH, st.binary(max_size=6)).map(b"".join).filter(len))
def test_data_fast_path_reads_any_segment_bytes_as_the_general_path(body):
    # After flags 0 the fast path reads the bytes itself (the reader's rules, inline); after
    # a two-byte flags 0 the general path reads them through the Reader. Same result, same
    # error, one byte later on the general path. (Not empty: a segment has two bytes or
    # more, or the count check rejects the section first.)
    fast = _data_outcome(data_module(b"\x00" + body))
    general = _data_outcome(data_module(b"\x80\x00" + body))
    if fast[0] == "error":
        assert general == ("error", fast[1], fast[2] + 1)
    else:
        assert general == fast


def _bytes(data):
    return uleb(len(data)) + data


_SEGMENT_KINDS = {  # kind: (flags, the encoding after them)
    "common": lambda v, data: (0, i32c(v) + _bytes(data)),
    "passive": lambda v, data: (1, _bytes(data)),
    "memory 0": lambda v, data: (2, b"\x00" + i32c(v) + _bytes(data)),
    "extended": lambda v, data: (0, b"\x41" + uleb(v) + b"\x41\x01\x6a\x0b" + _bytes(data)),
}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_SEGMENT_KINDS)), st.integers(0, 60000),
                          st.binary(max_size=4)), max_size=12))
def test_data_fast_path_runs_mixed_with_other_segments(segments):
    # Runs of common segments go through the fast path in one call, the others one by one:
    # the segment indices (passive ones are keyed by theirs), order and bytes are those of
    # decoding every segment on the general path (flags written in two bytes).
    encoded = [_SEGMENT_KINDS[kind](v, data) for kind, v, data in segments]
    mixed = _data_outcome(data_module(*[bytes([flags]) + rest for flags, rest in encoded]))
    general = _data_outcome(data_module(*[bytes([0x80 | flags, 0]) + rest for flags, rest in encoded]))
    assert mixed[0] == "ok" and mixed == general
    assert len(mixed[1].initializers) == sum(kind != "passive" for kind, _, _ in segments)


def test_memory_initializer_constructor_is_the_dataclass_one():
    fields = dataclasses.fields(MemoryInitializer)
    params = list(inspect.signature(MemoryInitializer).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    init = MemoryInitializer(memory_index=1, base=2, offset=3, data=range(4, 5))
    assert (init.expr, init.memory64) == (None, False)
    assert vars(init) == {f.name: getattr(init, f.name) for f in fields}
    assert repr(init) == ("MemoryInitializer(memory_index=1, base=2, offset=3, data=range(4, 5), "
                          "expr=None, memory64=False)")
    moved = dataclasses.replace(init, offset=9)
    assert moved.offset == 9 and moved != init and moved == MemoryInitializer(1, 2, 9, range(4, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        init.offset = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        del init.base


def test_memory_initializer_objects_are_normal():
    init, = decode(data_module(data_active(i32c(3), b"xyz"))).memory_initialization.initializers
    assert type(init) is MemoryInitializer
    assert init == MemoryInitializer(0, None, 3, init.data)
    assert hash(init) == hash(MemoryInitializer(0, None, 3, init.data))
    assert pickle.loads(pickle.dumps(init)) == init
    with pytest.raises(dataclasses.FrozenInstanceError):
        init.offset = 4  # still frozen
