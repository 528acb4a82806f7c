"""Import resolution and type checks (runtime/linking.py): link errors, host callables,
shared memories, and import matching of typed references (covariant immutable globals,
invariant mutable globals and tables, exact function types)."""
import pytest

import runtime
from runtime import Func, Global, LinkError, Memory
from tests.helpers import FUNCREF, NULL_T0, REF_FUNC, REF_T0, T0, host, inst, wat
from wasmenv import FuncType


def test_link_errors(engine):
    text = """(module (import "env" "g" (global i32)) (import "env" "m" (memory 2 3)))"""
    with pytest.raises(LinkError, match="unknown import"):
        inst(engine, text, {})
    g64 = Global.new(engine, "i64", 1)
    with pytest.raises(LinkError, match="global"):
        inst(engine, text, {("env", "g"): g64, ("env", "m"): Memory.new(engine, 2, 3)})
    g = Global.new(engine, "i32", 1)
    with pytest.raises(LinkError, match="minimum"):
        inst(engine, text, {("env", "g"): g, ("env", "m"): Memory.new(engine, 1, 3)})
    with pytest.raises(LinkError, match="maximum"):
        inst(engine, text, {("env", "g"): g, ("env", "m"): Memory.new(engine, 2)})
    with pytest.raises(LinkError, match="memory"):
        inst(engine, text, {("env", "g"): g, ("env", "m"): g})


def test_bare_callable_and_func_imports(engine):
    text = """(module (import "env" "f" (func $f (param i32) (result i32)))
      (table (export "t") 1 funcref) (elem (i32.const 0) $f) (export "f2" (func $f)))"""
    i = inst(engine, text, {("env", "f"): lambda x: x + 1})
    assert i.exports["t"].get(0)(41) == 42
    assert i.exports["f2"] is i.exports["t"].get(0)
    bad = Func(FuncType((), ()), lambda: None)
    with pytest.raises(LinkError, match="function types differ"):
        inst(engine, text, {("env", "f"): bad})


def test_shared_memory_import(engine):
    shared = Memory.new(engine, 1, 2, shared=True)
    text = """(module (import "env" "m" (memory 1 2 shared)) (data (i32.const 0) "s"))"""
    a = inst(engine, text, {("env", "m"): shared})
    b = inst(engine, text, {("env", "m"): shared})
    assert a.memory(0) is b.memory(0) is shared
    with pytest.raises(LinkError, match="shared"):
        inst(engine, text, {("env", "m"): Memory.new(engine, 1, 2)})


def test_typed_global_import_subtyping(engine):
    t0 = FuncType((), ())
    exporter = inst(engine, """(module (type $t (func)) (func $f (type $t))
      (global (export "r") (ref $t) (ref.func $f)) (global (export "n") funcref (ref.null func)))""")
    text = """(module (type $t (func)) (import "m" "g" (global {})))"""
    ok = inst(engine, text.format("funcref"), {("m", "g"): exporter.exports["r"]})
    with pytest.raises(LinkError, match="incompatible import type"):
        inst(engine, text.format("(ref $t)"), {("m", "g"): exporter.exports["n"]})
    with pytest.raises(LinkError, match="incompatible import type"):
        inst(engine, text.format("(mut funcref)"), {("m", "g"): exporter.exports["n"]})
    assert exporter.exports["r"].value.ty == t0
    ok.close()
    exporter.close()


# -- typed references: covariant immutable globals, invariant mutable globals and tables --
EXPORTER = """(module (type $t (func)) (func $f (type $t))
    (global (export "const-funcnull") (ref null func) (ref.null func))
    (global (export "const-func") (ref func) (ref.func $f))
    (global (export "const-refnull") (ref null $t) (ref.null $t))
    (global (export "const-ref") (ref $t) (ref.func $f))
    (global (export "var-ref") (mut (ref $t)) (ref.func $f))
    (global (export "var-funcnull") (mut funcref) (ref.null func))
    (table (export "tab-func") 1 funcref)
    (table (export "tab-ref") 1 (ref null $t))
    (table (export "tab-nonnull") 1 (ref $t) (ref.func $f)))"""


@pytest.fixture
def exporter(engine):
    inst = runtime.Instance(runtime.Module(engine, wat(EXPORTER)))
    yield {name: inst.exports[name] for name in inst.exports}
    inst.close()


LINKS = [
    # immutable globals: covariant
    ("const-func", "(global (ref null func))", True),
    ("const-ref", "(global (ref null func))", True),
    ("const-ref", "(global (ref func))", True),
    ("const-ref", "(global (ref null $t))", True),
    ("const-ref", "(global (ref $t))", True),
    ("const-refnull", "(global (ref null func))", True),
    ("const-funcnull", "(global (ref func))", False),
    ("const-refnull", "(global (ref $t))", False),
    ("const-func", "(global (ref $t))", False),  # declared type counts, not the value
    ("const-ref", "(global (ref $u))", False),
    ("const-ref", "(global externref)", False),
    ("const-ref", "(global (mut (ref $t)))", False),
    # mutable globals: invariant
    ("var-ref", "(global (mut (ref $t)))", True),
    ("var-ref", "(global (mut (ref null $t)))", False),
    ("var-ref", "(global (mut funcref))", False),
    ("var-ref", "(global (ref $t))", False),
    ("var-funcnull", "(global (mut funcref))", True),
    ("var-funcnull", "(global (mut (ref null $t)))", False),
    # tables: invariant element types
    ("tab-func", "(table 1 funcref)", True),
    ("tab-func", "(table 1 (ref null $t))", False),
    ("tab-ref", "(table 1 (ref null $t))", True),
    ("tab-ref", "(table 1 funcref)", False),
    ("tab-nonnull", "(table 1 (ref $t))", True),
    ("tab-nonnull", "(table 1 (ref null $t))", False),
    ("tab-nonnull", "(table 1 (ref func))", False),
    ("tab-nonnull", "(table 2 (ref $t))", False),  # limits still apply
]


@pytest.mark.parametrize("name,desc,ok", LINKS, ids=[f"{n}-as-{d}" for n, d, _ in LINKS])
def test_import_matching(engine, exporter, name, desc, ok):
    text = f"""(module (type $t (func)) (type $u (func (param i32)))
        (import "M" "x" {desc}))"""
    m = runtime.Module(engine, wat(text))
    if ok:
        runtime.Instance(m, {("M", "x"): exporter[name]}).close()
    else:
        with pytest.raises(runtime.LinkError, match="incompatible import type"):
            runtime.Instance(m, {("M", "x"): exporter[name]})


def test_function_imports_match_exactly(engine):
    m = runtime.Module(engine, wat("""(module (type $t (func))
        (import "m" "f" (func (param (ref $t)) (result (ref null func)))))"""))
    want = FuncType((REF_T0,), (FUNCREF,))
    runtime.Instance(m, {("m", "f"): runtime.Func(want, lambda *a: None)}).close()
    for other in (FuncType((NULL_T0,), (FUNCREF,)), FuncType((REF_T0,), (REF_FUNC,)),
                  FuncType((REF_FUNC,), (FUNCREF,))):
        with pytest.raises(runtime.LinkError, match="function types differ"):
            runtime.Instance(m, {("m", "f"): runtime.Func(other, lambda *a: None)})
    runtime.Instance(m, {("m", "f"): lambda *a: None}).close()  # a bare callable gets the type


def test_host_globals_link_by_declared_type(engine):
    m = runtime.Module(engine, wat("""(module (type $t (func))
        (import "m" "g" (global (ref null func))))"""))
    g = runtime.Global.new(engine, REF_T0, host(T0))
    runtime.Instance(m, {("m", "g"): g}).close()
    m2 = runtime.Module(engine, wat("""(module (type $t (func)) (import "m" "g" (global (ref $t))))"""))
    with pytest.raises(runtime.LinkError):
        runtime.Instance(m2, {("m", "g"): runtime.Global.new(engine, FUNCREF, host(T0))})

