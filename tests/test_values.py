"""Values (runtime/values.py): value type text forms, and reference values checked
against their type through Global.new and Global.value."""
import pytest

import runtime
from tests.helpers import EXTERNREF, FUNCREF, NULL_T0, NULLEXN, REF_EXN, REF_EXTERN, REF_FUNC, REF_T0, T0, T1, host


def test_valtype_text_forms():
    from runtime.values import valtype
    assert valtype("(ref func)") == REF_FUNC
    assert valtype("(ref null func)") is FUNCREF
    assert valtype("(ref null extern)") is EXTERNREF
    assert valtype("( ref  exn )") == REF_EXN
    assert valtype("nullexnref") == NULLEXN
    assert valtype(NULL_T0) is NULL_T0
    with pytest.raises(TypeError):
        valtype("(ref any)")
    with pytest.raises(TypeError):
        valtype("(ref $t)")


def test_global_new_typed(engine):
    f0, f1 = host(T0), host(T1)
    assert runtime.Global.new(engine, REF_T0, f0).value is f0
    assert runtime.Global.new(engine, "(ref func)", f1).value is f1
    assert runtime.Global.new(engine, NULL_T0, None).value is None
    with pytest.raises(TypeError, match="non-nullable"):
        runtime.Global.new(engine, REF_FUNC, None)
    with pytest.raises(TypeError, match="needs a function of type"):
        runtime.Global.new(engine, REF_T0, f1)
    with pytest.raises(TypeError, match="holds Func"):
        runtime.Global.new(engine, REF_FUNC, object())
    with pytest.raises(TypeError, match="holds Func"):
        runtime.Global.new(engine, FUNCREF, "not a function")
    with pytest.raises(TypeError, match="only null"):
        runtime.Global.new(engine, NULLEXN, object())
    ext = object()
    assert runtime.Global.new(engine, REF_EXTERN, ext).value is ext
    g = runtime.Global.new(engine, REF_T0, f0, mutable=True)
    with pytest.raises(TypeError):
        g.value = None
    with pytest.raises(TypeError):
        g.value = f1
    g.value = host(T0)

