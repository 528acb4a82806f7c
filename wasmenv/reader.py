"""A zero-copy cursor over a WebAssembly binary: LEB128 integers, bytes, names.

A :class:`Reader` is a ``memoryview`` of the whole input plus an integer cursor and an
end bound; sub-readers share the same buffer (no copies). Every failure raises
:class:`~wasmenv.errors.DecodeError` with the absolute byte offset and the section name;
nothing here raises ``IndexError``, ``struct.error`` or ``UnicodeDecodeError``.

LEB128 rules follow the spec (see the spec test ``binary-leb128.wast``): an encoding
may be longer than minimal, but at most ``ceil(N / 7)`` bytes; in the last byte the
continuation bit must be clear ("integer representation too long") and the unused
high bits must be zero (unsigned) or copies of the sign bit (signed) ("integer too
large").
"""
from __future__ import annotations

from .errors import DecodeError

#: wasmparser's limit on the byte length of any name (MAX_WASM_STRING_SIZE).
MAX_NAME_SIZE = 100_000


def as_byte_view(data) -> memoryview:
    """A flat, read-only-agnostic ``memoryview`` of unsigned bytes over ``data`` (no copy).

    Accepts bytes, bytearray, memoryview, mmap.mmap and anything else exporting a
    contiguous buffer. Raises TypeError for objects that are not buffers.
    """
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"expected a bytes-like object (bytes, bytearray, memoryview, mmap), "
                        f"got {type(data).__name__}") from None
    if view.ndim != 1 or view.format not in ("B", "b", "c") or view.itemsize != 1:
        if not view.c_contiguous:
            raise TypeError("the module buffer must be C-contiguous")
        view = view.cast("B")
    elif view.format != "B":
        view = view.cast("B")
    if not view.c_contiguous:
        raise TypeError("the module buffer must be contiguous")
    return view


def _leb128(bits: int, signed: bool):
    """The reader method for ``bits``-bit LEB128 integers (the only copy of the rule).

    At most ``ceil(bits / 7)`` bytes; in the last one the continuation bit must be clear
    and the bits above the value must be zero (unsigned) or copies of the sign bit
    (signed). Signed values come back as Python ints (negative allowed). Errors leave the
    cursor where the reading stopped.
    """
    last_shift = (bits - 1) // 7 * 7  # shift of the last allowed byte
    if signed:
        sign_bit = bits - 1 - last_shift  # bit index of the sign inside that byte
        all_ones = 0x7F >> sign_bit  # the sign bit and the unused bits above it, all set
    else:
        unused = (0x7F << (bits - last_shift)) & 0x7F  # that byte's bits above the value

    def read(self) -> int:
        buf = self.buf
        pos = self.pos
        end = self.end
        if pos >= end:
            raise self.eof_error()
        byte = buf[pos]
        pos += 1
        if byte < 0x80:  # one byte: most indices, counts and small constants
            self.pos = pos
            return byte - 0x80 if signed and byte & 0x40 else byte
        result = byte & 0x7F
        shift = 7
        while pos < end:
            byte = buf[pos]
            pos += 1
            if byte < 0x80 or shift == last_shift:
                break
            result |= (byte & 0x7F) << shift
            shift += 7
        else:
            self.pos = pos
            raise self.eof_error()
        if shift == last_shift:
            if byte & 0x80:
                raise self.error("integer representation too long", pos - 1)
            if signed:
                high = byte >> sign_bit
                if high != 0 and high != all_ones:
                    raise self.error("integer too large", pos - 1)
            elif byte & unused:
                raise self.error("integer too large", pos - 1)
        self.pos = pos
        result |= byte << shift
        return result - (1 << (shift + 7)) if signed and byte & 0x40 else result

    read.__name__ = read.__qualname__ = f"{'s' if signed else 'u'}{bits}"
    return read


class Reader:
    """Cursor over ``buf[pos:end]``; offsets are absolute positions in ``buf``."""

    __slots__ = ("buf", "pos", "end", "section")

    def __init__(self, buf: memoryview, pos: int = 0, end: int = None, section=None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.section = section

    # -- errors ---------------------------------------------------------------------------
    def error(self, message: str, offset: int = None) -> DecodeError:
        """A DecodeError at ``offset`` (default: the cursor) in this reader's section."""
        return DecodeError(message, self.pos if offset is None else offset, self.section)

    def eof_error(self, offset: int = None) -> DecodeError:
        what = "unexpected end of section or function" if self.section is not None else "unexpected end"
        return self.error(what, offset)

    # -- position -------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def eof(self) -> bool:
        return self.pos >= self.end

    def sub(self, length: int, section=None) -> "Reader":
        """A reader over the next ``length`` bytes (which it skips here)."""
        start = self.pos
        if length > self.end - start:
            raise self.error("length out of bounds" if self.section is not None
                             else "unexpected end", start)
        self.pos = start + length
        return Reader(self.buf, start, start + length, self.section if section is None else section)

    def skip(self, length: int) -> None:
        if length > self.end - self.pos:
            raise self.eof_error()
        self.pos += length

    # -- fixed-size -----------------------------------------------------------------------
    def u8(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.eof_error()
        self.pos = pos + 1
        return self.buf[pos]

    def peek(self) -> int:
        if self.pos >= self.end:
            raise self.eof_error()
        return self.buf[self.pos]

    def bytes(self, length: int) -> memoryview:
        """The next ``length`` bytes as a zero-copy memoryview slice."""
        pos = self.pos
        if length > self.end - pos:
            raise self.eof_error()
        self.pos = pos + length
        return self.buf[pos:pos + length]

    def u32_fixed(self) -> int:
        """A little-endian 4-byte unsigned integer."""
        return int.from_bytes(self.bytes(4), "little")

    def u64_fixed(self) -> int:
        return int.from_bytes(self.bytes(8), "little")

    # -- LEB128 ---------------------------------------------------------------------------
    #: Unsigned LEB128, at most 5 bytes, value < 2^32 (every index and count of a module).
    u32 = _leb128(32, signed=False)
    #: Unsigned LEB128, at most 10 bytes, value < 2^64.
    u64 = _leb128(64, signed=False)
    #: Signed LEB128, at most 5 bytes, value in [-2^31, 2^31).
    s32 = _leb128(32, signed=True)
    #: Signed LEB128 of 33 bits (block types, heap types).
    s33 = _leb128(33, signed=True)
    #: Signed LEB128, at most 10 bytes, value in [-2^63, 2^63).
    s64 = _leb128(64, signed=True)

    # -- composite ------------------------------------------------------------------------
    def count(self, min_item_size: int = 1, what: str = "items", limit: int = None) -> int:
        """A vector length, checked against the bytes left (each item >= ``min_item_size``).

        The check happens before anything is allocated, so a huge declared count in a
        small input fails immediately.
        """
        start = self.pos
        n = self.u32()
        if limit is not None and n > limit:
            raise self.error(f"{what} count exceeds limit of {limit}", start)
        if n * min_item_size > self.end - self.pos:
            raise self.error(f"{what} count {n} exceeds the bytes remaining "
                             f"({self.end - self.pos}): unexpected end", start)
        return n

    def byte_vec(self) -> memoryview:
        """A length-prefixed byte vector as a zero-copy view."""
        start = self.pos
        n = self.u32()
        if n > self.end - self.pos:
            raise self.error(f"length out of bounds: {n} bytes declared, "
                             f"{self.end - self.pos} remaining (unexpected end)", start)
        pos = self.pos
        self.pos = pos + n
        return self.buf[pos:pos + n]

    def name(self) -> str:
        """A length-prefixed UTF-8 name (strictly valid UTF-8, at most 100,000 bytes)."""
        start = self.pos
        n = self.u32()
        if n > MAX_NAME_SIZE:
            raise self.error("string size out of bounds", start)
        if n > self.end - self.pos:
            raise self.error("length out of bounds: unexpected end", start)
        pos = self.pos
        raw = self.buf[pos:pos + n]
        self.pos = pos + n
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"malformed UTF-8 encoding: {e.reason}", pos + e.start) from None

    def __repr__(self):
        return f"<Reader pos={self.pos:#x} end={self.end:#x} section={self.section!r}>"
