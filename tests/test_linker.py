"""runtime.linker: Linker and InstancePre, side by side with wasmtime-py's."""
import pytest
import wasmtime

import runtime
from runtime import (Engine, Func, Global, Instance, InstancePre, LinkError,
                     Linker, Memory, Module, Table)
from tests.helpers import wat
from wasmenv import ExportType, FuncType, GlobalType, ImportType, MemoryType, ValType


@pytest.fixture
def engine():
    return Engine()


# ---- the same definitions in both runtimes ------------------------------------------

def _wt_val(ty):
    return getattr(wasmtime.ValType, ty)()


def make_item(spec, engine, store, made):
    """(ours, theirs) for a definition spec."""
    kind = spec[0]
    if kind == "func":
        _, params, results = spec
        ours = Func(FuncType(tuple(ValType(p) for p in params), tuple(ValType(r) for r in results)),
                    lambda *a: None)
        theirs = wasmtime.Func(store, wasmtime.FuncType([_wt_val(p) for p in params],
                                                        [_wt_val(r) for r in results]),
                               lambda *a: None)
    elif kind == "global":
        _, ty, mutable, value = spec
        ours = Global.new(engine, ty, value, mutable=mutable)
        theirs = wasmtime.Global(store, wasmtime.GlobalType(_wt_val(ty), mutable),
                                 getattr(wasmtime.Val, ty)(value))
    elif kind == "memory":
        _, minimum, maximum = spec
        ours = Memory.new(engine, minimum, maximum)
        made.append(ours)
        theirs = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(minimum, maximum)))
    else:
        _, minimum, maximum = spec
        ours = Table.new(engine, "funcref", minimum, maximum)
        made.append(ours)
        theirs = wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(),
                                                          wasmtime.Limits(minimum, maximum)), None)
    return ours, theirs


@pytest.fixture
def both(engine):
    """(our linker, wasmtime's linker, define(module, name, spec), wasmtime store)."""
    store = wasmtime.Store()
    ours, theirs, made = Linker(engine), wasmtime.Linker(store.engine), []

    def define(module, name, spec):
        a, b = make_item(spec, engine, store, made)
        errors = []
        for linker, item, st in ((ours, a, None), (theirs, b, store)):
            try:
                linker.define(st, module, name, item)
                errors.append(None)
            except (LinkError, wasmtime.WasmtimeError) as e:
                errors.append(str(e).splitlines()[0])
        assert errors[0] == errors[1]
        return errors[0]

    yield ours, theirs, define, store
    for m in made:
        m.close()


def outcome_pair(engine, store, ours, theirs, text):
    """Instantiate ``text`` with both linkers: (ours, theirs) as None or the error's first line."""
    wasm = wat(text)
    out = []
    try:
        ours.instantiate(Module(engine, wasm)).close()
        out.append(None)
    except LinkError as e:
        out.append(str(e))
    try:
        theirs.instantiate(store, wasmtime.Module(store.engine, wasm))
        out.append(None)
    except wasmtime.WasmtimeError as e:
        out.append(str(e).splitlines()[0])
    return out


DEFINITIONS = [
    ("m", "f", ("func", ["i32"], ["i32"])),
    ("m", "g", ("global", "i32", False, 7)),
    ("m", "gm", ("global", "i64", True, 1)),
    ("m", "mem", ("memory", 1, 4)),
    ("m", "tab", ("table", 2, None)),
]

CASES = {
    "all resolved": '(import "m" "f" (func (param i32) (result i32))) (import "m" "g" (global i32)) '
                    '(import "m" "gm" (global (mut i64))) (import "m" "mem" (memory 1)) '
                    '(import "m" "tab" (table 1 funcref))',
    "missing": '(import "m" "nope" (func))',
    "missing module": '(import "other" "f" (func (param i32) (result i32)))',
    "names before types": '(import "m" "f" (func)) (import "m" "nope" (global i32))',
    "func type": '(import "m" "f" (func (param i64) (result i32)))',
    "kind": '(import "m" "g" (func))',
    "global type": '(import "m" "g" (global i64))',
    "global mutability": '(import "m" "g" (global (mut i32)))',
    "memory minimum": '(import "m" "mem" (memory 2))',
    "memory maximum": '(import "m" "mem" (memory 1 2))',
    "table minimum": '(import "m" "tab" (table 3 funcref))',
    "table element": '(import "m" "tab" (table 1 externref))',
    "memory as table": '(import "m" "mem" (table 1 funcref))',
}


@pytest.mark.parametrize("case", list(CASES))
def test_link_outcomes_match_wasmtime(engine, both, case):
    ours, theirs, define, store = both
    for module, name, spec in DEFINITIONS:
        assert define(module, name, spec) is None
    got, expected = outcome_pair(engine, store, ours, theirs, f"(module {CASES[case]})")
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.startswith(expected), (got, expected)
    assert (got is None) == (case == "all resolved")


def test_redefinition_refused_unless_shadowing(engine, both):
    ours, theirs, define, store = both
    assert define("m", "f", ("func", ["i32"], [])) is None
    assert define("m", "f", ("func", ["i64"], [])) == "import of `m::f` defined twice"
    # The key is module::name, whatever the kind.
    assert define("m", "f", ("global", "i32", False, 1)) == "import of `m::f` defined twice"
    assert ours.get(None, "m", "f").ty == FuncType((ValType.I32,), ())  # unchanged
    ours.allow_shadowing = theirs.allow_shadowing = True
    assert ours.allow_shadowing is True
    assert define("m", "f", ("func", ["i64"], [])) is None
    text = '(module (import "m" "f" (func (param i64))))'
    assert outcome_pair(engine, store, ours, theirs, text) == [None, None]
    text = '(module (import "m" "f" (func (param i32))))'
    got, expected = outcome_pair(engine, store, ours, theirs, text)
    assert expected.startswith("incompatible import type for `m::f`") and got.startswith(expected)


def test_define_instance_exports_under_a_module_name(engine):
    src_text = """(module (global (export "x") i32 (i32.const 7)) (memory (export "mem") 1)
                  (func (export "f") (param i32)) (table (export "t") 2 funcref))"""
    user_text = """(module (import "src" "x" (global $x i32)) (import "src" "mem" (memory 1))
                   (import "src" "f" (func (param i32))) (import "src" "t" (table 1 funcref))
                   (data (i32.const 0) "hi"))"""
    src = Instance(Module(engine, wat(src_text)))
    linker = Linker(engine)
    linker.define_instance(None, "src", src)
    assert linker.get(None, "src", "x").value == 7
    assert linker.get(None, "src", "mem") is src.exports["mem"]
    user = linker.instantiate(Module(engine, wat(user_text)))
    assert src.exports["mem"].read(0, 2) == b"hi"  # the data went into src's memory
    # wasmtime-py agrees that this links.
    store = wasmtime.Store()
    wt_linker = wasmtime.Linker(store.engine)
    wt_src = wasmtime.Instance(store, wasmtime.Module(store.engine, wat(src_text)), [])
    wt_linker.define_instance(store, "src", wt_src)
    wt_linker.instantiate(store, wasmtime.Module(store.engine, wat(user_text)))
    with pytest.raises(wasmtime.WasmtimeError, match="defined twice"):
        wt_linker.define_instance(store, "src", wt_src)
    # A second definition of the same names is refused, and defines nothing at all.
    other = Instance(Module(engine, wat('(module (global (export "new") i32 (i32.const 1)) '
                                        '(global (export "x") i32 (i32.const 2)))')))
    with pytest.raises(LinkError, match="import of `src::x` defined twice"):
        linker.define_instance(None, "src", other)
    with pytest.raises(LinkError, match="item not defined in linker"):
        linker.get(None, "src", "new")
    user.close()
    src.close()
    with pytest.raises(ValueError, match="closed"):
        linker.define_instance(None, "later", src)
    other.close()


def test_instance_pre_checks_once_and_instantiates_many(engine, monkeypatch):
    text = """(module (import "env" "base" (global $b i32)) (import "env" "mem" (memory 1))
              (import "env" "f" (func $f)) (table 1 funcref) (elem (i32.const 0) $f)
              (data (global.get $b) "x"))"""
    mem = Memory.new(engine, 1)
    linker = Linker(engine)
    linker.define(None, "env", "base", Global.new(engine, "i32", 5))
    linker.define(None, "env", "mem", mem)
    calls = []
    linker.define_func("env", "f", FuncType((), ()), lambda: calls.append("called"))
    module = Module(engine, wat(text))
    pre = linker.instantiate_pre(module)
    assert isinstance(pre, InstancePre) and pre.module is module

    def no_checks(*args):
        raise AssertionError("InstancePre.instantiate checked an import")

    monkeypatch.setattr(runtime.linking, "check_import", no_checks)
    instances = [pre.instantiate() for _ in range(3)] + [pre.instantiate(runtime.Store(module.engine))]
    for inst in instances:
        assert inst.memory(0) is mem
        assert inst.tables[0].get(0)() is None and calls.pop() == "called"
    assert mem.read(5, 1) == b"x"
    # The same Func object links every instance (resolved once).
    assert len({id(inst.tables[0].get(0)) for inst in instances}) == 1
    for inst in instances:
        inst.close()
    mem.close()


def test_linker_instantiate_forms_and_instance_still_takes_imports(engine):
    text = '(module (import "a" "g" (global i32)) (global (export "h") i32 (global.get 0)))'
    module = Module(engine, wat(text))
    g = Global.new(engine, "i32", 3)
    linker = Linker(engine)
    linker.define(wasmtime.Store(), "a", "g", g)  # a store argument is accepted and ignored
    assert linker.instantiate(module).exports["h"].value == 3
    assert linker.instantiate(None, module).exports["h"].value == 3
    assert Instance(module, {("a", "g"): g}).exports["h"].value == 3
    assert Instance(module, [g]).exports["h"].value == 3
    empty = Module(engine, wat("(module (memory 1))"))
    with linker.instantiate_pre(empty).instantiate() as inst:
        assert inst.memory(0).size_pages == 1


def test_bad_arguments(engine):
    linker = Linker(engine)
    with pytest.raises(TypeError, match="expected a Func, Global, Memory, Table or Tag"):
        linker.define(None, "m", "f", lambda: None)
    with pytest.raises(TypeError):
        wasmtime.Linker(wasmtime.Engine()).define(wasmtime.Store(), "m", "f", lambda: None)
    with pytest.raises(TypeError, match="expected a FuncType"):
        linker.define_func("m", "f", "(func)", lambda: None)
    with pytest.raises(TypeError, match="str"):
        linker.define(None, b"m", "f", Global.new(engine, "i32", 0))
    with pytest.raises(TypeError, match="Instance"):
        linker.define_instance(None, "m", object())
    with pytest.raises(TypeError, match="Module"):
        linker.instantiate_pre(wat("(module)"))
    with pytest.raises(TypeError):
        Linker(object())
    with pytest.raises(TypeError, match="instantiate_pre"):
        InstancePre()
    with pytest.raises(LinkError, match="item not defined in linker"):
        linker.get(None, "m", "f")
    assert linker._defs == {}  # nothing was defined by the refused calls
    with pytest.raises(LinkError, match="cross-`Engine`"):
        linker.instantiate_pre(Module(Engine(), wat("(module)")))
    module = Module(engine, wat("(module)"))
    module.close()
    with pytest.raises(ValueError, match="closed"):
        linker.instantiate_pre(module)


def test_resolved_imports_belong_to_their_module(engine):
    linker = Linker(engine)
    linker.define(None, "a", "g", Global.new(engine, "i32", 3))
    text = '(module (import "a" "g" (global i32)))'
    pre = linker.instantiate_pre(Module(engine, wat(text)))
    with pytest.raises(LinkError, match="another module"):
        Instance(Module(engine, wat(text)), pre._imports)


def test_module_imports_and_exports_are_wasmtime_shaped(engine):
    text = """(module (import "env" "f" (func (param i32))) (import "env" "m" (memory 1 2))
              (global (export "g") (mut i64) (i64.const 0)) (func (export "run")))"""
    module = Module(engine, wat(text))
    theirs = wasmtime.Module(wasmtime.Engine(), wat(text))
    assert [(i.module, i.name) for i in module.imports] == [(i.module, i.name) for i in theirs.imports]
    assert [e.name for e in module.exports] == [e.name for e in theirs.exports]
    assert module.imports == [ImportType("env", "f", FuncType((ValType.I32,), ())),
                              ImportType("env", "m", MemoryType(1, 2))]
    assert module.exports == [ExportType("g", GlobalType(ValType.I64, True)),
                              ExportType("run", FuncType((), ()))]
    assert module.imports[1].type.maximum == theirs.imports[1].type.limits.max == 2


def test_a_func_type_made_from_lists_links_like_the_modules_own():
    """FuncType([ValType.I32], []) is the tuple-typed signature the decoder makes (equal,
    hashable): a host function typed with lists links."""
    ty = FuncType([ValType.I32], [])
    assert ty == FuncType((ValType.I32,), ()) and hash(ty) == hash(FuncType((ValType.I32,), ()))
    got = []
    inst = Instance(runtime.Module(Engine(), wat('(module (import "h" "f" (func (param i32))) '
                                                 '(func (export "g") i32.const 5 call 0))')),
                    {("h", "f"): Func(ty, got.append)})
    inst.exports["g"]()
    assert got == [5]


def test_a_func_type_naming_value_types_by_their_text_is_the_valtype_one():
    """FuncType([], ["i32"]) is FuncType((), (ValType.I32,)): a host function typed with
    names passes call_indirect's signature check; an unknown name is a ValueError."""
    ty = FuncType(["i64"], ("i32",))
    assert ty == FuncType((ValType.I64,), (ValType.I32,)) and hash(ty) == hash(FuncType((ValType.I64,), (ValType.I32,)))
    inst = Instance(runtime.Module(Engine(), wat('''(module (table (export "t") 1 funcref)
      (type $s (func (param i64) (result i32)))
      (func (export "via") (param i64) (result i32) (call_indirect (type $s) (local.get 0) (i32.const 0))))''')))
    inst.exports["t"].set(0, Func(ty, lambda x: x + 1))
    assert inst.exports["via"](41) == 42
    with pytest.raises(ValueError):
        FuncType(["int"], [])


def test_instances_of_an_instance_pre_share_their_imported_global_records(engine):
    """What an instance records of its imported globals is made once per InstancePre (the
    per-instance cost of a side module with many imported globals), and still reads and
    writes the exporter's cell; a closed exporter is still refused per instance."""
    host = Global.new(engine, "i32", 5, mutable=True)
    module = Module(engine, wat('''(module (import "env" "g" (global $g (mut i32)))
      (func (export "get") (result i32) global.get $g))'''))
    linker = Linker(engine)
    linker.define(None, "env", "g", host)
    pre = linker.instantiate_pre(module)
    a, b = pre.instantiate(), pre.instantiate()
    assert a._imported_globals is b._imported_globals
    host.value = 9
    assert a.exports["get"]() == b.exports["get"]() == 9
    exporter = Instance(Module(engine, wat('(module (global (export "g") (mut i32) (i32.const 1)))')))
    linker2 = Linker(engine)
    linker2.define(None, "env", "g", exporter.exports["g"])
    pre2 = linker2.instantiate_pre(module)
    assert pre2.instantiate().exports["get"]() == 1
    exporter.close()
    with pytest.raises(ValueError, match="closed"):
        pre2.instantiate()


_SIDE_MODULE = '''(module
  (import "env" "memory" (memory 1))
  (import "env" "table" (table 2 funcref))
  (import "env" "add" (func $add (param i32) (result i32)))
  (func $f (result i32) (i32.const 40))
  (elem (i32.const 1) $f)
  (func (export "run") (result i32) (call $add (call_indirect (result i32) (i32.const 1)))))'''


def test_an_instance_pre_of_a_side_module_links_once_for_all_its_instances(engine):
    """Link-time work at instantiate_pre: the host functions' native side and the
    interpreter links (memories, tables, imports) the instances share; instances made
    from it use those links, and results stay what wasmtime-py's would be (40 + 2)."""
    from runtime.interp import site_of
    memory, table = Memory.new(engine, 1), Table.new(engine, "funcref", 2)
    linker = Linker(engine)
    linker.define(None, "env", "memory", memory)
    linker.define(None, "env", "table", table)
    add = Func(FuncType(["i32"], ["i32"]), lambda x: x + 2)
    linker.define(None, "env", "add", add)
    module = Module(engine, wat(_SIDE_MODULE))
    pre = linker.instantiate_pre(module)
    funcs = pre._imports.groups.funcs
    links = funcs.links
    assert links is not None and add._native is not None  # made at link time
    assert funcs.records is not None  # host functions only: the vm's import records, made once
    a, b = pre.instantiate(), pre.instantiate()
    assert a.exports["run"]() == b.exports["run"]() == 42
    assert site_of(a).links is links and site_of(b).links is links
    a.close(), b.close()
    # An import closed before instantiate_pre: refused then (nothing linked).
    table.close()
    with pytest.raises(LinkError):
        linker.instantiate_pre(module)
    memory.close()


def test_an_instance_pre_importing_a_wasm_function_links_it_per_instance(engine):
    """Import records are made once only for host functions; a wasm function of another
    instance is linked through that instance's state (and still runs there)."""
    exporter = Instance(Module(engine, wat('(module (func (export "f") (result i32) (i32.const 5)))')))
    linker = Linker(engine)
    linker.define(None, "env", "f", exporter.exports["f"])
    linker.define(None, "env", "g", Func(FuncType([], ["i32"]), lambda: 6))
    module = Module(engine, wat("""(module (import "env" "f" (func $f (result i32)))
      (import "env" "g" (func $g (result i32)))
      (func (export "sum") (result i32) (i32.add (call $f) (call $g))))"""))
    pre = linker.instantiate_pre(module)
    assert pre._imports.groups.funcs.records is None
    with pre.instantiate() as a, pre.instantiate() as b:
        assert a.exports["sum"]() == b.exports["sum"]() == 11
    exporter.close()
