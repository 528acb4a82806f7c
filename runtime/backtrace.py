"""Wasm backtraces: from interpreter code addresses back to functions and wasm offsets.

Nothing here runs while wasm runs. Each translated function's code is registered with
the op positions and the wasm offsets the translator recorded for them
(``translate.Code.offsets``); a trap keeps the ip it stopped at and the saved return ip
of each frame (raw addresses), and :class:`FrameInfo` records are made from them only
when someone reads ``Trap.frames``.
"""
from __future__ import annotations

import bisect
import threading
import weakref
from typing import List, NamedTuple, Optional

__all__ = ["FrameInfo", "register_code", "frames_of", "format_frames"]


class FrameInfo(NamedTuple):
    """One wasm frame of a trap (wasmtime-py's ``Frame`` names), innermost first.

    ``module_offset``: the offset in the module's bytes of the instruction that trapped
    (innermost frame) or of the call in flight (outer frames); ``func_offset``: the same,
    from the start of the function's body (its locals). ``func_name``: from the name
    section, None without one; ``module_name``: the module's name, or None.
    """

    func_index: int
    func_name: Optional[str]
    module_name: Optional[str]
    func_offset: int
    module_offset: int


class _Code(NamedTuple):
    start: int          # address of the first code word
    end: int            # address past the last code word
    owner: object       # weakref to the ModuleCode
    func_index: int
    body_start: int     # the body's offset in the code buffer
    positions: object   # array of op word positions (sorted)
    offsets: object     # array: wasm offset in the code buffer of each op


_LOCK = threading.Lock()
_STARTS: List[int] = []
_CODES: List[_Code] = []


def register_code(address: int, nwords: int, module_code, func_index: int, body_start: int,
                  positions, offsets) -> None:
    """Record that the code of ``func_index`` of ``module_code`` lives at ``address``."""
    code = _Code(address, address + 8 * nwords, weakref.ref(module_code), func_index,
                 body_start, positions, offsets)
    with _LOCK:
        i = bisect.bisect_left(_STARTS, address)
        # entries overlapping the new code are of freed buffers whose memory was reused
        while i < len(_CODES) and _CODES[i].start < code.end:
            del _STARTS[i], _CODES[i]
        while i > 0 and _CODES[i - 1].end > address:
            i -= 1
            del _STARTS[i], _CODES[i]
        _STARTS.insert(i, address)
        _CODES.insert(i, code)


def _lookup(ip: int, is_return: bool) -> Optional[FrameInfo]:
    with _LOCK:
        i = bisect.bisect_right(_STARTS, ip) - 1
        code = _CODES[i] if i >= 0 else None
    if code is None or not code.start <= ip < code.end + (8 if is_return else 0):
        return None
    mc = code.owner()
    if mc is None:
        return None
    word = (ip - code.start) // 8 - (1 if is_return else 0)  # a return ip follows its call
    k = bisect.bisect_right(code.positions, word) - 1
    offset = code.offsets[k] if k >= 0 else code.body_start
    base = mc.module_offset
    return FrameInfo(code.func_index, mc.func_name(code.func_index), mc.module.env.name,
                     offset - code.body_start, base + offset)


def frames_of(trap_ip: int, return_ips, keep=None) -> List[FrameInfo]:
    """Frames, innermost first: the trapping ip, then each saved return ip, innermost
    first (``return_ips`` is outermost first, as the frame stack holds them). ``keep``:
    the ModuleCode the trap held alive so that its registrations stay valid."""
    out = []
    if trap_ip:
        f = _lookup(trap_ip, False)
        if f is not None:
            out.append(f)
    for ip in reversed(return_ips):
        f = _lookup(ip, True)
        if f is not None:
            out.append(f)
    return out


def format_frames(frames) -> List[str]:
    """wasmtime's backtrace lines: ``"    0:     0x34 - m!inner"``."""
    lines = []
    for i, f in enumerate(frames):
        name = f.func_name if f.func_name is not None else f"<wasm function {f.func_index}>"
        lines.append(f"{i:>5}: {f.module_offset:#8x} - {f.module_name or '<unknown>'}!{name}")
    return lines


def function_names(wasm) -> dict:
    """Function index -> name from the ``name`` custom section of a whole module's bytes
    (``{}`` when there is none, it is malformed, or ``wasm`` is not a whole module)."""
    from wasmenv.reader import Reader
    names = {}
    try:
        if wasm is None or bytes(wasm[:4]) != b"\0asm":
            return names
        r = Reader(wasm, 8, len(wasm), "custom")
        while not r.eof():
            sid = r.u8()
            size = r.u32()
            end = r.pos + size
            if sid == 0:
                sub = r.sub(size)
                if sub.name() == "name":
                    while not sub.eof():
                        kind = sub.u8()
                        part = sub.sub(sub.u32())
                        if kind == 1:
                            for _ in range(part.u32()):
                                index = part.u32()
                                names[index] = part.name()
            r.pos = end
    except Exception:  # a malformed name section names nothing (as in wasmtime)
        return {}
    return names
