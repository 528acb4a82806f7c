"""Helpers shared by the tests (plain functions and constants; fixtures are in conftest.py)."""
import gc
import os
import subprocess
import sys
import textwrap

import pytest
import wasmtime

import wasmenv
from runtime import Func, Instance, Module
from wasmenv import DecodeError, FuncType, RefType, ValType


# -- modules ------------------------------------------------------------------------------
def wat(text: str) -> bytes:
    """Assemble WAT text to a binary module (wasmtime.wat2wasm)."""
    return bytes(wasmtime.wat2wasm(text))


def decode(data, tunables=None):
    """The decoded module (``wasmenv.translate(...).module``)."""
    return wasmenv.translate(data, tunables).module


def rejects(data, match=None, cls=DecodeError):
    """Assert that decoding ``data`` raises ``cls`` matching ``match``; return the error."""
    with pytest.raises(cls, match=match) as info:
        wasmenv.translate(data)
    return info.value


def inst(engine, text, imports=None):
    """An Instance of the WAT module ``text``."""
    return Instance(Module(engine, wat(text)), imports)


def section_spans(wasm: bytes):
    """``(id, start, end)`` of every section (start = the id byte, end = past its body).

    A minimal independent walker for tests; raises ValueError on a malformed frame.
    """
    spans = []
    pos = 8
    while pos < len(wasm):
        start = pos
        sid = wasm[pos]
        pos += 1
        size = shift = 0
        while True:
            if pos >= len(wasm):
                raise ValueError("truncated section size")
            b = wasm[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if pos + size > len(wasm):
            raise ValueError("section past the end")
        pos += size
        spans.append((sid, start, pos))
    return spans


# -- typed references -----------------------------------------------------------------------
I32, I64 = ValType.I32, ValType.I64
FUNCREF, EXTERNREF, EXNREF = ValType.FUNCREF, ValType.EXTERNREF, ValType.EXNREF
T0 = FuncType((), ())                 # (func)
T1 = FuncType((I32,), ())             # (func (param i32))
REF_T0, NULL_T0 = RefType(False, T0), RefType(True, T0)
REF_T1, NULL_T1 = RefType(False, T1), RefType(True, T1)
REF_FUNC, REF_EXTERN, REF_EXN = RefType(False, "func"), RefType(False, "extern"), RefType(False, "exn")
NULLEXN = RefType(True, "noexn")


def host(ft=T0):
    """A host function of type ``ft`` that does nothing."""
    return Func(ft, lambda *a: None)


# -- the process seen from outside: /proc/self/maps, smaps, fds, a fresh interpreter ------
def parse_maps():
    """[(lo, hi, perms, offset, path)] for every mapping of this process."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            out.append((lo, hi, parts[1], int(parts[2], 16), path))
    return out


def layout(start, end, maps=None):
    """The mappings covering [start, end), clipped, with adjacent ones of equal
    permissions merged: [(lo, hi, perms)]. Gaps show up as perms None."""
    pieces = []
    cursor = start
    for lo, hi, perms, _, _ in sorted(maps if maps is not None else parse_maps()):
        if hi <= start or lo >= end:
            continue
        lo, hi = max(lo, start), min(hi, end)
        if lo > cursor:
            pieces.append([cursor, lo, None])
        if pieces and pieces[-1][2] == perms and pieces[-1][1] == lo:
            pieces[-1][1] = hi
        else:
            pieces.append([lo, hi, perms])
        cursor = hi
    if cursor < end:
        pieces.append([cursor, end, None])
    return [tuple(p) for p in pieces]


def expected_layout(start, base, byte_len, end):
    """What :func:`layout` shows for a reservation [start, end) with ``byte_len`` R/W bytes at ``base``."""
    out = []
    if base > start:
        out.append((start, base, "---p"))
    if byte_len:
        out.append((base, base + byte_len, "rw-p"))
    if base + byte_len < end:
        out.append((base + byte_len, end, "---p"))
    return out


def _smaps():
    """``(lo, hi, field_lines)`` for every mapping in /proc/self/smaps."""
    entry = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                if entry is not None:
                    yield entry
                lo, hi = (int(x, 16) for x in head.split("-"))
                entry = (lo, hi, [])
            elif entry is not None:
                entry[2].append(line)
    if entry is not None:
        yield entry


def smaps_usage(start, end):
    """Sum of the smaps fields (kB -> bytes) of the mappings inside [start, end)."""
    totals = {}
    for lo, hi, fields in _smaps():
        if lo >= start and hi <= end:
            for line in fields:
                if line.rstrip().endswith(" kB"):
                    key, value = line.split(":", 1)
                    totals[key] = totals.get(key, 0) + int(value.split()[0]) * 1024
    return totals


def vm_flags(addr):
    """The VmFlags of the mapping containing ``addr``."""
    for lo, hi, fields in _smaps():
        if lo <= addr < hi:
            return next((line.split()[1:] for line in fields if line.startswith("VmFlags:")), None)
    return None


def open_fd_count():
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


def maps_and_fds(collect=False):
    """(mappings, open file descriptors) of this process; ``collect``: after gc.collect()
    (objects dropped earlier release their memories when collected)."""
    if collect:
        gc.collect()
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return maps, open_fd_count()


def run_child(code, *args, timeout=120, env_extra=None):
    """Run ``code`` in a fresh interpreter (the repo's venv); return CompletedProcess."""
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    if env_extra:
        env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)



# -- C under sanitizers ----------------------------------------------------------------------
def build_sanitized(exe: str, sources, libs=("-lpthread",)) -> str:
    """Compile ``sources`` (paths) with ASan + UBSan (no recovery) into ``exe``; returns it."""
    import shutil
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    assert cc, "a C compiler is needed (the runtime itself is built with one)"
    c_src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "c_src")
    subprocess.run([cc, "-O1", "-g", "-std=gnu11", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", f"-I{c_src}",
                    *sources, "-o", exe, *libs], check=True, capture_output=True, text=True)
    return exe
