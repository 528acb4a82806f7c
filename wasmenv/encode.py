"""Tiny binary encoders for building modules by hand (tests, benchmarks, fuzz seeds)."""
from __future__ import annotations

MAGIC_VERSION = b"\0asm\x01\0\0\0"


def uleb(value: int) -> bytes:
    """Unsigned LEB128 (minimal)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    """Signed LEB128 (minimal)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def name(text: str) -> bytes:
    raw = text.encode()
    return uleb(len(raw)) + raw


def vec(items) -> bytes:
    items = list(items)
    return uleb(len(items)) + b"".join(items)


def section(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + uleb(len(body)) + body


def module(*sections: bytes) -> bytes:
    return MAGIC_VERSION + b"".join(sections)
