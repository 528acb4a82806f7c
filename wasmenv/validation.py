"""Validation of function bodies: the spec's validation algorithm over every proposal the
decoder accepts (MVP, sign extension, non-trapping float-to-int, multi-value, bulk memory,
reference types, typed function references, multi-memory, memory64/table64, extended-const,
tail calls, SIMD and relaxed SIMD, threads, exception handling and legacy exceptions).

Bodies are read in place (a memoryview of the module and an integer cursor). The walk is
driven by the instruction table (:mod:`wasmenv.opcodes`) and the type stacks of
:mod:`wasmenv.typestack`. GC instructions raise ``UnsupportedFeature("gc")``. An invalid
body raises :class:`DecodeError` naming the function index and the absolute byte offset.
"""
from __future__ import annotations

from .errors import DecodeError, UnsupportedFeature
from .opcodes import GC_PREFIX, OPS
from .reader import Reader
from .typestack import BLOCK, FUNC, IF, LOOP, Frame, Invalid, TypeStack
from .types import ValType, is_defaultable
from . import _validate_ops as ops

__all__ = ["validate", "validate_function", "MAX_FUNCTION_LOCALS"]

#: wasmparser's limit on the locals of one function (parameters excluded).
MAX_FUNCTION_LOCALS = 50_000

I32, I64 = ValType.I32, ValType.I64
_TYPE_NAMES = {"i32": I32, "i64": I64, "f32": ValType.F32, "f64": ValType.F64, "v128": ValType.V128}

# Kinds the hot loop handles inline; everything else goes through ops.HANDLERS.
(K_SIMPLE, K_LOCAL_GET, K_LOCAL_SET, K_LOCAL_TEE, K_CONST, K_MEM, K_BLOCK, K_END, K_BR_IF,
 K_CALL, K_OTHER, K_PREFIX, K_UNARY, K_BINARY, K_BR, K_DROP, K_GLOBAL_GET) = range(17)
#: Rules with an inline fast path for their common, trivially valid case; anything else
#: (and every error) goes to the rule's handler, so each rule stays in one place.
_FAST = {"block": (K_BLOCK, BLOCK), "loop": (K_BLOCK, LOOP), "if": (K_BLOCK, IF),
         "end": (K_END, None), "br_if": (K_BR_IF, None), "call": (K_CALL, None),
         "br": (K_BR, None), "drop": (K_DROP, None), "global.get": (K_GLOBAL_GET, None),
         "i32.const": (K_CONST, (I32, 0)), "i64.const": (K_CONST, (I64, 0)),
         "f32.const": (K_CONST, (ValType.F32, 4)), "f64.const": (K_CONST, (ValType.F64, 8))}


def _types(names, at):
    return [at if n == "at" else _TYPE_NAMES[n] for n in names]


def _entry(op):
    """The dispatch entry of one instruction of the table."""
    rule = op.rule
    if rule == "simple":
        pops, pushes = _types(op.sig[0], None), _types(op.sig[1], None)
        if len(pushes) == 1 and len(pops) == 1:  # t1 -> t2: one identity test in the hot loop
            return (K_UNARY, pops, pushes, pops[0], pushes[0])
        if len(pushes) == 1 and len(pops) == 2 and pops[0] is pops[1]:  # t t -> t2
            return (K_BINARY, pops, pushes, pops[0], pushes[0])
        return (K_SIMPLE, pops, pushes, len(pops), op)
    if rule == "local.get":
        return (K_LOCAL_GET, None, None, 0, op)
    if rule == "local.set":
        return (K_LOCAL_SET, None, None, 0, op)
    if rule == "local.tee":
        return (K_LOCAL_TEE, None, None, 0, op)
    if rule == "memarg":
        sig32 = (_types(op.sig[0], I32), _types(op.sig[1], I32))
        sig64 = (_types(op.sig[0], I64), _types(op.sig[1], I64))
        return (K_MEM, sig32, sig64, op.align, op)
    handler = ops.HANDLERS.get(rule)
    if handler is None:  # pragma: no cover - the table and the handlers are kept in step
        raise AssertionError(f"no validation rule {rule!r} for {op.name}")
    kind, extra = _FAST.get(rule, (K_OTHER, None))
    return (kind, handler, extra, 0, op)


_SINGLE = [None] * 256
_PREFIXED = {0xFC: {}, 0xFD: {}, 0xFE: {}}
for _op in OPS:
    if _op.prefix is None:
        _SINGLE[_op.code] = _entry(_op)
    else:
        _PREFIXED[_op.prefix][_op.code] = _entry(_op)
for _prefix, _table in _PREFIXED.items():
    _SINGLE[_prefix] = (K_PREFIX, _table, None, 0, None)


def _unknown_prefixed(prefix, sub):
    if prefix == 0xFC and 19 <= sub <= 22:
        return UnsupportedFeature("wide arithmetic", detail=f"instruction 0xfc {sub}")
    if prefix == 0xFE and sub >= 0x4F:
        return UnsupportedFeature("shared-everything threads", detail=f"instruction 0xfe {sub:#x}")
    return Invalid(f"illegal opcode {prefix:#04x} {sub:#x} (unknown instruction)")


def _unknown_single(op):
    if op == GC_PREFIX:
        return UnsupportedFeature("gc", detail="GC instruction")
    if 0xE0 <= op <= 0xE6:
        return UnsupportedFeature("stack switching", detail=f"instruction {op:#04x}")
    return Invalid(f"illegal opcode {op:#04x} (unknown instruction)")


class Context:
    """What validating bodies needs from the module (built once per module)."""

    __slots__ = ("types", "funcs", "tables", "memories", "globals", "tags", "refs",
                 "elem_types", "data_count", "num_imported_funcs", "call_sigs")

    def __init__(self, module, code):
        self.types = [t.func for t in module.types]
        self.funcs = [self.types[f.signature] for f in module.functions]
        self.tables = [p.table for p in module.table_plans]
        self.memories = [p.memory for p in module.memory_plans]
        self.globals = [g.type for g in module.globals]
        self.tags = [t.func_type for t in module.tags]
        self.refs = frozenset(i for i, f in enumerate(module.functions) if f.anyfunc is not None)
        self.elem_types = code.elem_types
        self.data_count = code.data_count
        self.num_imported_funcs = module.num_imported_funcs
        #: Per function: (params, results) as lists, for the hot loop's exact-match test.
        self.call_sigs = [(list(ft.params), list(ft.results)) for ft in self.funcs]


class FunctionValidator(TypeStack):
    """The walk over one body: the type stacks plus the cursor and the function's locals."""

    __slots__ = ("ctx", "r", "locals", "results", "func_index")

    def __init__(self, ctx: Context, func_index: int, buf, start: int, end: int):
        super().__init__()
        self.ctx = ctx
        self.func_index = func_index
        self.r = Reader(buf, start, end, "code")
        self.results = ctx.funcs[func_index].results
        self.locals = None

    def read_locals(self) -> None:
        r = self.r
        ft = self.ctx.funcs[self.func_index]
        local_types = list(ft.params)
        ngroups = r.count(2, "local groups")
        total = 0
        nullable_only = True
        types = self.ctx.types
        from .decode_types import read_val_type
        for _ in range(ngroups):
            pos = r.pos
            n = r.u32()
            total += n
            if total > MAX_FUNCTION_LOCALS:
                raise DecodeError("too many locals", pos, "code")
            t = read_val_type(r, types)
            if not is_defaultable(t):
                nullable_only = False
            local_types.extend([t] * n)
        self.locals = local_types
        if not nullable_only:
            self.inited = bytearray(1 if (i < len(ft.params) or is_defaultable(t)) else 0
                                    for i, t in enumerate(local_types))

    def run(self) -> None:
        """Validate the body's instructions (after the locals) up to the final ``end``."""
        r = self.r
        end = r.end
        buf = r.buf[:end]  # zero-copy; indexing past the body raises IndexError
        r.buf = buf
        vals = self.vals
        ctrls = self.ctrls
        self.push_ctrl(FUNC, (), self.results)
        frame = ctrls[-1]
        height = 0
        local_types = self.locals
        nlocals = len(local_types)
        inited = self.inited
        single = _SINGLE
        memories = self.ctx.memories
        mem0 = memories[0] if memories else None
        mem0_sig = (lambda info: info[2]) if mem0 is not None and mem0.memory64 else (lambda info: info[1])
        call_sigs = self.ctx.call_sigs
        nfuncs = len(call_sigs)
        short_block = ops.SHORT_BLOCK
        global_types = [g.content for g in self.ctx.globals[:0x80]]
        nglobals = len(global_types)
        pos = r.pos
        op_pos = pos
        u32 = r.u32
        try:
            while True:
                op_pos = pos
                op = buf[pos]
                pos += 1
                info = single[op]
                if info is None:
                    raise _unknown_single(op)
                kind = info[0]
                if kind == K_PREFIX:
                    r.pos = pos
                    sub = u32()
                    pos = r.pos
                    info = info[1].get(sub)
                    if info is None:
                        raise _unknown_prefixed(op, sub)
                    kind = info[0]
                if K_LOCAL_GET <= kind <= K_LOCAL_TEE:
                    b = buf[pos]
                    if b < 0x80:
                        x = b
                        pos += 1
                    else:
                        r.pos = pos
                        x = u32()
                        pos = r.pos
                    if x >= nlocals:
                        raise Invalid(f"unknown local {x}: local index out of bounds")
                    t = local_types[x]
                    if kind == K_LOCAL_GET:
                        if inited is not None and not inited[x]:
                            raise Invalid(f"uninitialized local {x}")
                        vals.append(t)
                        continue
                    if len(vals) > height and vals[-1] is t:
                        if kind == K_LOCAL_SET:
                            vals.pop()
                    else:
                        self.pop(t)
                        if kind == K_LOCAL_TEE:
                            vals.append(t)
                    if inited is not None and not inited[x]:
                        inited[x] = 1
                        self.inits.append(x)
                    continue
                if kind == K_CONST:
                    t, size = info[2]
                    if size:
                        if pos + size <= end:
                            pos += size
                            vals.append(t)
                            continue
                    elif buf[pos] < 0x80:  # a one-byte LEB128
                        pos += 1
                        vals.append(t)
                        continue
                if kind == K_BINARY:
                    t = info[3]
                    if len(vals) - height >= 2 and vals[-1] is t and vals[-2] is t:
                        vals.pop()
                        vals[-1] = info[4]
                    else:
                        self.pop_vals(info[1])
                        vals.append(info[4])
                    continue
                if kind == K_MEM:
                    if buf[pos] <= info[3] and pos + 1 < end and buf[pos + 1] < 0x80 \
                            and mem0 is not None:
                        pos += 2  # memory 0, natural or smaller alignment, one-byte offset
                        pops, pushes = mem0_sig(info)
                    else:
                        r.pos = pos
                        pops, pushes = ops.memarg(self, info[4], info[3], info[1], info[2])
                        pos = r.pos
                    n = len(pops)
                    if len(vals) - height >= n and vals[-n:] == pops:
                        del vals[-n:]
                    else:
                        self.pop_vals(pops)
                    vals.extend(pushes)
                    continue
                if kind == K_CALL:
                    b = buf[pos]
                    if b < 0x80:
                        x = b
                        p = pos + 1
                    else:
                        r.pos = pos
                        x = u32()
                        p = r.pos
                    if x < nfuncs:
                        params, results = call_sigs[x]
                        n = len(params)
                        if n == 0 or (len(vals) - height >= n and vals[-n:] == params):
                            pos = p
                            if n:
                                del vals[-n:]
                            vals.extend(results)
                            continue
                if kind == K_UNARY:
                    if len(vals) > height and vals[-1] is info[3]:
                        vals[-1] = info[4]
                    else:
                        self.pop(info[3])
                        vals.append(info[4])
                    continue
                if kind == K_END:
                    results = frame.results
                    n = len(results)
                    if (frame.kind != IF or not (n or frame.params)) and len(vals) - height == n \
                            and len(ctrls) > 1 and (
                            n == 0 or (n == 1 and vals[-1] is results[0])) \
                            and len(self.inits) == frame.init_height:
                        ctrls.pop()
                        frame = ctrls[-1]
                        height = frame.height
                        continue
                if kind == K_BR_IF:
                    b = buf[pos]
                    if b < 0x80 and b < len(ctrls) and not ctrls[-1 - b].label_types \
                            and len(vals) > height and vals[-1] is I32:
                        pos += 1
                        vals.pop()
                        continue
                if kind == K_BLOCK:
                    bt = short_block.get(buf[pos])
                    if bt is not None and (info[2] != IF or (len(vals) > height and vals[-1] is I32)):
                        pos += 1
                        if info[2] == IF:
                            vals.pop()
                        frame = Frame(info[2], (), bt.results, len(vals), len(self.inits))
                        ctrls.append(frame)
                        height = frame.height
                        continue
                if kind == K_SIMPLE:
                    n = info[3]
                    if n == 0:
                        vals.extend(info[2])
                    elif len(vals) - height >= n and vals[-n:] == info[1]:
                        vals[-n:] = info[2]
                    else:
                        self.pop_vals(info[1])
                        vals.extend(info[2])
                    continue
                if kind == K_BR:
                    b = buf[pos]
                    if b < 0x80 and b < len(ctrls) and not ctrls[-1 - b].label_types:
                        pos += 1
                        del vals[height:]
                        frame.unreachable = True
                        continue
                if kind == K_DROP:
                    if len(vals) > height:
                        vals.pop()
                        continue
                if kind == K_GLOBAL_GET:
                    b = buf[pos]
                    if b < nglobals:  # implies a one-byte index
                        pos += 1
                        vals.append(global_types[b])
                        continue
                # Everything else: a handler reading its immediates at r.pos.
                r.pos = pos
                info[1](self, info[4])
                pos = r.pos
                if not ctrls:  # the function's final `end`
                    if pos != end:
                        raise Invalid("operators remaining after end of function")
                    return
                frame = ctrls[-1]
                height = frame.height
        except Invalid as exc:
            raise DecodeError(f"function {self.func_index}: {exc}", op_pos, "code") from None
        except IndexError:
            if pos >= end or r.pos >= end:
                raise DecodeError(f"function {self.func_index}: unexpected end of function body "
                                  f"(END opcode expected)", min(max(pos, r.pos), end), "code") from None
            raise  # pragma: no cover - a bug, not an input error
        except UnsupportedFeature as exc:
            if exc.offset is None:
                raise UnsupportedFeature(exc.feature, op_pos, "code",
                                         f"function {self.func_index}: {exc.detail}") from None
            raise
        except DecodeError as exc:
            raise DecodeError(f"function {self.func_index}: {exc.message}", exc.offset, "code") from None


def validate_function(ctx: Context, func_index: int, buf, start: int, end: int) -> None:
    """Validate the body ``buf[start:end]`` (locals and code) of function ``func_index``."""
    v = FunctionValidator(ctx, func_index, buf, start, end)
    try:
        v.read_locals()
    except UnsupportedFeature:
        raise
    except DecodeError as exc:
        raise DecodeError(f"function {func_index}: {exc.message}", exc.offset, "code") from None
    v.run()


def validate(translation) -> None:
    """Validate every function body of a decoded module (the spec's validation algorithm).

    Args:
        translation: a :class:`~wasmenv.ModuleTranslation` from ``wasmenv.translate`` or
            ``wasmenv.compile`` (its ``code`` views the input bytes), or from
            ``wasmenv.load_artifact`` (its ``code`` views the artifact's code blob).

    Raises:
        DecodeError: an invalid body; the message names the function index, ``offset``
            is the byte offset in the original module (``code.module_offset`` + the
            offset in ``code.buffer``): for an artifact, where the bytes were in the
            ``.wasm`` it was compiled from.
        UnsupportedFeature: a body uses a proposal wasmenv does not validate (GC, ...).
        ValueError: the translation does not carry its code (e.g. loaded from an artifact
            saved from a translation without its code section).
    """
    code = translation.code
    if code is None or (code.bodies and code.buffer is None):
        raise ValueError("this translation does not carry its code section; validate the .wasm")
    if not code.bodies:
        return
    ctx = Context(translation.module, code)
    buf = code.buffer
    first = ctx.num_imported_funcs
    try:
        for i, (start, end) in enumerate(code.bodies):
            validate_function(ctx, first + i, buf, start, end)
    except DecodeError as exc:
        if not code.module_offset:
            raise
        raise exc.moved(code.module_offset) from None
