"""The Reader (wasmenv.reader): LEB128 integers, their errors, and bounded bytes and names."""
import pytest

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
