"""The Reader (wasmenv.reader): LEB128 integers, their errors, and bounded bytes and names."""
import inspect
import traceback

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmenv import DecodeError
from wasmenv.reader import Reader

from wasmenv.encode import uleb


# -- Reader ----------------------------------------------------------------------------------
def rd(data: bytes) -> Reader:
    return Reader(memoryview(data))


@pytest.mark.parametrize("data,value", [
    (b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\x82\x00", 2), (b"\x82\x80\x80\x80\x00", 2),
    (b"\xff\xff\xff\xff\x0f", 0xFFFFFFFF),
])
def test_u32(data, value):
    r = rd(data)
    assert r.u32() == value and r.eof()


@pytest.mark.parametrize("data,match", [
    (b"\x82\x80\x80\x80\x80\x00", "representation too long"),
    (b"\x82\x80\x80\x80\x10", "integer too large"),
    (b"\xff\xff\xff\xff\x1f", "integer too large"),
    (b"\x80\x80", "unexpected end"), (b"", "unexpected end"),
])
def test_u32_errors(data, match):
    with pytest.raises(DecodeError, match=match):
        rd(data).u32()


def test_u64_and_signed():
    assert rd(b"\xff" * 9 + b"\x01").u64() == (1 << 64) - 1
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\xff" * 9 + b"\x03").u64()
    with pytest.raises(DecodeError, match="representation too long"):
        rd(b"\x80" * 10 + b"\x00").u64()
    assert rd(b"\x7f").s32() == -1
    assert rd(b"\xff\xff\xff\xff\x07").s32() == 2 ** 31 - 1
    assert rd(b"\x80\x80\x80\x80\x78").s32() == -(2 ** 31)
    assert rd(b"\xff\xff\xff\xff\x7f").s32() == -1
    for bad in (b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x70", b"\x80\x80\x80\x80\x1f"):
        with pytest.raises(DecodeError, match="integer too large"):
            rd(bad).s32()
    assert rd(b"\xff" * 9 + b"\x00").s64() == 2 ** 63 - 1
    assert rd(b"\x80" * 9 + b"\x7f").s64() == -(2 ** 63)
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\x80" * 9 + b"\x01").s64()
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\xff" * 9 + b"\x7e").s64()
    with pytest.raises(DecodeError, match="representation too long"):
        rd(b"\xff" * 10 + b"\x7f").s64()
    assert rd(b"\x70").s33() == -16
    assert rd(b"\xff\xff\xff\xff\x0f").s33() == 2 ** 32 - 1
    assert rd(b"\x80\x80\x80\x80\x70").s33() == -(2 ** 32)
    with pytest.raises(DecodeError, match="integer too large"):
        rd(b"\x80\x80\x80\x80\x20").s33()


def _leb_model(data: bytes, bits: int, signed: bool):
    """What the spec says an N-bit LEB128 at the start of ``data`` is: the value and its
    length, or the error and its offset (a range check, not the reader's bit tests)."""
    max_len = -(-bits // 7)
    value = 0
    for i, byte in enumerate(data[:max_len]):
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if signed and byte & 0x40:
                value -= 1 << (7 * (i + 1))
            low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
            return ("value", value, i + 1) if low <= value < high else ("integer too large", i)
    if len(data) < max_len:
        return "unexpected end", len(data)
    return "integer representation too long", max_len - 1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([0x00, 0x01, 0x0F, 0x3F, 0x40, 0x70, 0x7E, 0x7F, 0x80, 0x81, 0xC0,
                                 0xF0, 0xFF]) | st.integers(0, 255), max_size=12).map(bytes))
def test_reader_leb128_matches_the_spec(data):
    for method, bits, signed in (("u32", 32, False), ("u64", 64, False), ("s32", 32, True),
                                 ("s33", 33, True), ("s64", 64, True)):
        r = Reader(memoryview(b"\xee" + data + b"\xee"), 1, 1 + len(data))
        expected = _leb_model(data, bits, signed)
        if expected[0] == "value":
            assert (getattr(r, method)(), r.pos - 1) == expected[1:], method
        else:
            with pytest.raises(DecodeError) as info:
                getattr(r, method)()
            assert expected[0] in info.value.message and info.value.offset == 1 + expected[1], method


def test_reader_bytes_and_names_are_bounded():
    r = Reader(memoryview(b"\x03abcdef"), 0, 3)
    with pytest.raises(DecodeError):
        r.byte_vec()
    r = rd(b"\x03abc")
    v = r.byte_vec()
    assert bytes(v) == b"abc" and isinstance(v, memoryview)
    with pytest.raises(DecodeError, match="UTF-8"):
        rd(b"\x03\xed\xa0\x80").name()  # surrogate
    with pytest.raises(DecodeError, match="UTF-8"):
        rd(b"\x02\xc0\x80").name()  # overlong NUL
    with pytest.raises(DecodeError, match="string size out of bounds"):
        rd(uleb(100_001) + b"a" * 100_001).name()
    with pytest.raises(DecodeError):
        rd(b"").u8()
    r = rd(b"\x01")
    with pytest.raises(DecodeError):
        r.bytes(2)
    with pytest.raises(DecodeError):
        rd(b"\x05").count(1)


@pytest.mark.parametrize("method", ["u32", "u64", "s32", "s33", "s64", "byte_vec"])
def test_generated_reader_methods_show_their_source(method):
    # The methods are generated from one LEB128 template: their source is still there for
    # inspect and for tracebacks.
    assert inspect.getsource(getattr(Reader, method)).startswith(f"def {method}(self):")
    with pytest.raises(DecodeError) as info:
        getattr(rd(b"\xff" * 11), method)()
    frame = traceback.extract_tb(info.tb)[-1]
    assert frame.name == method and "representation too long" in frame.line
