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

import linecache
import string
import textwrap

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


# -- the LEB128 rule, as source ---------------------------------------------------------
# The rule is written once, as the template below. Every reader of an integer is generated
# from it: the Reader methods u32 ... s64 and byte_vec, and the decoder's data-segment
# fast path, which reads its integers inline (a Python call per integer costs as much as
# the reading itself).

#: Read a ``bits``-bit LEB128 at ``pos`` (a local, like ``buf``, ``end`` and the reader
#: ``self``) into ``$out``, leaving ``pos`` after it. At most ``ceil(bits / 7)`` bytes; in
#: the last one the continuation bit must be clear and the bits above the value must be
#: zero (unsigned) or copies of the sign bit (signed). Signed values come out as Python
#: ints (negative allowed). On an error ``self.pos`` is where the reading stopped for a
#: truncated integer, else the integer's first byte.
_LEB128 = string.Template("""\
if pos >= end:
    self.pos = pos
    raise self.eof_error()
byte = buf[pos]
pos += 1
if byte < 0x80:  # one byte: most indices, counts and small constants
    $out = $one_byte
else:
    $out = byte & 0x7F
    shift = 7
    while pos < end:
        byte = buf[pos]
        pos += 1
        if byte < 0x80 or shift == $last_shift:
            break
        $out |= (byte & 0x7F) << shift
        shift += 7
    else:
        self.pos = pos
        raise self.eof_error()
    if shift == $last_shift:
        if byte & 0x80:
            self.pos = pos - $max_len
            raise self.error("integer representation too long", pos - 1)
        if $too_large:
            self.pos = pos - $max_len
            raise self.error("integer too large", pos - 1)
    $out |= byte << shift$sign_extend
""")

#: Read a length-prefixed byte vector at ``pos`` into ``$out`` (a zero-copy view).
_BYTE_VEC = string.Template("""\
start = pos
${read_length}if length > end - pos:
    self.pos = pos
    raise self.error(f"length out of bounds: {length} bytes declared, "
                     f"{end - pos} remaining (unexpected end)", start)
$out = buf[pos:pos + length]
pos += length
""")


def leb128_source(out: str, bits: int, signed: bool) -> str:
    """The source of the LEB128 rule (:data:`_LEB128`) for ``bits``-bit integers, read into
    the local ``out``."""
    last_shift = (bits - 1) // 7 * 7  # shift of the last allowed byte
    if signed:
        sign_bit = bits - 1 - last_shift  # bit index of the sign inside that byte
        all_ones = 0x7F >> sign_bit  # the sign bit and the unused bits above it, all set
        too_large = f"(byte >> {sign_bit}) not in (0, {all_ones:#x})"
        one_byte = "byte - 0x80 if byte & 0x40 else byte"
        sign_extend = f"\n    if byte & 0x40:\n        {out} -= 1 << (shift + 7)"
    else:
        too_large = f"byte & {(0x7F << (bits - last_shift)) & 0x7F:#x}"  # bits above the value
        one_byte = "byte"
        sign_extend = ""
    return _LEB128.substitute(out=out, last_shift=last_shift, max_len=last_shift // 7 + 1,
                              too_large=too_large, one_byte=one_byte, sign_extend=sign_extend)


def byte_vec_source(out: str) -> str:
    """The source of a length-prefixed byte vector read (:data:`_BYTE_VEC`) into ``out``."""
    return _BYTE_VEC.substitute(out=out, read_length=leb128_source("length", 32, signed=False))


def generate(module: str, what: str, source: str, **names) -> dict:
    """The names ``source`` defines, as if in ``module``, whose globals are ``names``.

    The source is registered under the file name ``<module: what>`` (tracebacks show its
    lines; ``inspect.getsource`` finds each function's definition).
    """
    filename = f"<{module}: {what}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": module, **names}
    exec(compile(source, filename, "exec"), namespace)  # our own templates, nothing else
    return namespace


def _method(name: str, doc: str, read: str) -> str:
    """The source of reader method ``name``: ``read`` into ``value`` from the cursor, which
    then moves past it."""
    body = read + "self.pos = pos\nreturn value\n"
    return (f"def {name}(self):\n    {doc!r}\n    buf = self.buf\n    pos = self.pos\n"
            f"    end = self.end\n" + textwrap.indent(body, "    "))


_INTEGERS = {"u32": (32, False), "u64": (64, False), "s32": (32, True), "s33": (33, True),
             "s64": (64, True)}  # name: (bits, signed)
_METHODS = generate(__name__, "generated methods", "\n".join([
    *(_method(name, f"{'Signed' if signed else 'Unsigned'} {bits}-bit LEB128.",
              leb128_source("value", bits, signed))
      for name, (bits, signed) in _INTEGERS.items()),
    _method("byte_vec", "A length-prefixed byte vector as a zero-copy view.",
            byte_vec_source("value")),
]))


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
    u32 = _METHODS["u32"]
    #: Unsigned LEB128, at most 10 bytes, value < 2^64.
    u64 = _METHODS["u64"]
    #: Signed LEB128, at most 5 bytes, value in [-2^31, 2^31).
    s32 = _METHODS["s32"]
    #: Signed LEB128 of 33 bits (block types, heap types).
    s33 = _METHODS["s33"]
    #: Signed LEB128, at most 10 bytes, value in [-2^63, 2^63).
    s64 = _METHODS["s64"]

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

    #: A length-prefixed byte vector as a zero-copy view.
    byte_vec = _METHODS["byte_vec"]

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


for _name in ("u32", "u64", "s32", "s33", "s64", "byte_vec"):
    _METHODS[_name].__qualname__ = f"Reader.{_name}"
del _name
