"""A plain-data summary of a compiled module (what ``inspect`` prints)."""
from __future__ import annotations

from .init import TableInitialization
from .plans import MemoryStyle
from .translation import ModuleTranslation
from .types import FuncType, GlobalType, MemoryType, TableType, TagType


def describe_type(ty) -> dict:
    """JSON-able description of an entity type (value types as text: ``"i32"``,
    ``"funcref"``, ``"(ref func)"``, ``"(ref null (func (param i32) (result )))"``)."""
    if isinstance(ty, FuncType):
        return {"kind": "func", "params": [str(p) for p in ty.params],
                "results": [str(r) for r in ty.results]}
    if isinstance(ty, MemoryType):
        return {"kind": "memory", "minimum": ty.minimum, "maximum": ty.maximum,
                "shared": ty.shared, "memory64": ty.memory64}
    if isinstance(ty, TableType):
        return {"kind": "table", "element": str(ty.element), "minimum": ty.minimum,
                "maximum": ty.maximum, "table64": ty.table64,
                "init": None if ty.init is None else str(ty.init)}
    if isinstance(ty, GlobalType):
        return {"kind": "global", "content": str(ty.content), "mutable": ty.mutable}
    if isinstance(ty, TagType):
        return {"kind": "tag", "params": [str(p) for p in ty.func_type.params]}
    raise TypeError(ty)


def _offset(init) -> str:
    if init.expr is not None:
        return str(init.expr)
    if init.base is not None:
        return f"global {init.base} + {init.offset}"
    return str(init.offset)


def summarize(tr: ModuleTranslation) -> dict:
    """Everything ``inspect`` shows, as plain data with stable keys."""
    m = tr.module
    memories = []
    for i, plan in enumerate(m.memory_plans):
        style = plan.style
        entry = {"index": i, "imported": m.is_imported_memory(i), **describe_type(plan.memory)}
        del entry["kind"]
        if isinstance(style, MemoryStyle.Static):
            entry.update(style="static", bound_pages=style.bound_pages, bound_bytes=style.bound_bytes)
        else:
            entry.update(style="dynamic", reserve_bytes=style.reserve_bytes)
        entry.update(pre_guard_bytes=plan.pre_guard_size, offset_guard_bytes=plan.offset_guard_size,
                     reservation_bytes=plan.reservation_bytes())
        memories.append(entry)

    mi = m.memory_initialization
    if mi.is_segmented():
        mem_init = {"kind": "segmented", "segments": [
            {"memory": s.memory_index, "offset": _offset(s), "byte_len": len(s.data)}
            for s in mi.initializers]}
    else:
        mem_init = {"kind": "static", "page_size": tr.data_align, "images": [
            None if s is None else {"memory": i, "offset": s.offset, "byte_len": len(s.data),
                                    "data_start": s.data.start}
            for i, s in enumerate(mi.map)]}

    ti = m.table_initialization
    def seg(s):
        return {"table": s.table_index, "offset": _offset(s), "elements": len(s.elements)}
    if isinstance(ti, TableInitialization.FuncTable):
        tab_init = {"kind": "functable",
                    "tables": [None if t is None else {"elements": len(t),
                                                       "non_null": sum(e is not None for e in t)}
                               for t in ti.tables],
                    "leftovers": [seg(s) for s in ti.segments]}
    else:
        tab_init = {"kind": "segments", "segments": [seg(s) for s in ti.segments]}

    tables = []
    for i, plan in enumerate(m.table_plans):
        entry = {"index": i, "imported": m.is_imported_table(i), **describe_type(plan.table)}
        del entry["kind"]
        tables.append(entry)

    return {
        "name": m.name,
        "imports": [{"module": imp.module, "name": imp.name, "type": describe_type(imp.type)}
                    for imp in m.imports()],
        "exports": [{"name": name, "kind": str(idx.kind), "index": idx.index}
                    for name, idx in m.exports.items()],
        "memories": memories,
        "memory_initialization": mem_init,
        "tables": tables,
        "table_initialization": tab_init,
        "globals": [{"index": i, "imported": m.is_imported_global(i), "content": str(g.type.content),
                     "mutable": g.type.mutable, "init": None if g.init is None else str(g.init)}
                    for i, g in enumerate(m.globals)],
        "functions": len(m.functions),
        "imported_functions": m.num_imported_funcs,
        "escaped_functions": m.num_escaped_funcs,
        "start_func": m.start_func,
        "data_segments": m.num_data_segments,
        "passive_data_segments": len(m.passive_data_map),
        "element_segments": m.num_elem_segments,
    }


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def render_text(s: dict) -> str:
    """Human-readable tables of a :func:`summarize` result."""
    out = [f"module {s['name'] or '(unnamed)'}: {s['functions']} functions "
           f"({s['imported_functions']} imported, {s['escaped_functions']} escaping), "
           f"start={s['start_func']}"]
    out.append("memories:")
    if not s["memories"]:
        out.append("  (none)")
    for m in s["memories"]:
        lim = f"{m['minimum']}..{m['maximum'] if m['maximum'] is not None else ''} pages"
        flags = "".join([" imported" if m["imported"] else "", " shared" if m["shared"] else "",
                         " memory64" if m["memory64"] else ""])
        style = (f"static bound {_size(m['bound_bytes'])}" if m["style"] == "static"
                 else f"dynamic reserve {_size(m['reserve_bytes'])}")
        out.append(f"  [{m['index']}] {lim}{flags}  {style}  pre-guard {_size(m['pre_guard_bytes'])}"
                   f"  offset-guard {_size(m['offset_guard_bytes'])}  reservation {_size(m['reservation_bytes'])}")
    mi = s["memory_initialization"]
    if mi["kind"] == "static":
        out.append(f"memory init: static (page size {mi['page_size']})")
        for i, img in enumerate(mi["images"]):
            out.append(f"  [{i}] " + ("no image" if img is None else
                                      f"image at {img['offset']:#x}, {_size(img['byte_len'])}"))
    else:
        out.append(f"memory init: segmented, {len(mi['segments'])} segments")
        for seg in mi["segments"][:20]:
            out.append(f"  mem {seg['memory']} @ {seg['offset']}: {seg['byte_len']} bytes")
        if len(mi["segments"]) > 20:
            out.append(f"  ... {len(mi['segments']) - 20} more")
    out.append("tables:")
    if not s["tables"]:
        out.append("  (none)")
    for t in s["tables"]:
        lim = f"{t['minimum']}..{t['maximum'] if t['maximum'] is not None else ''}"
        init = f" init {t['init']}" if t.get("init") else ""
        out.append(f"  [{t['index']}] {t['element']} {lim}{' imported' if t['imported'] else ''}{init}")
    ti = s["table_initialization"]
    if ti["kind"] == "functable":
        folded = sum(t["non_null"] for t in ti["tables"] if t)
        out.append(f"table init: functable ({folded} functions folded), {len(ti['leftovers'])} leftover segments")
    else:
        out.append(f"table init: segments, {len(ti['segments'])}")
    out.append(f"imports ({len(s['imports'])}):")
    for imp in s["imports"]:
        out.append(f"  {imp['module']}.{imp['name']}: {imp['type']['kind']}")
    out.append(f"exports ({len(s['exports'])}):")
    for exp in s["exports"]:
        out.append(f"  {exp['name']}: {exp['kind']} {exp['index']}")
    return "\n".join(out)
