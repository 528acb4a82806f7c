"""MemoryPlan / MemoryStyle / Tunables rules (DESIGN.md: MemoryStyle / MemoryPlan)."""
import pickle

import pytest

from wasmenv import MemoryPlan, MemoryStyle, MemoryType, TablePlan, TableStyle, TableType, Tunables, ValType

GIB = 1 << 30
T = Tunables()


def test_defaults_are_wasmtime5_64bit():
    assert T.static_memory_bound == 65536
    assert T.static_memory_offset_guard_size == 2 * GIB
    assert T.dynamic_memory_offset_guard_size == 64 * 1024
    assert T.dynamic_memory_growth_reserve == 2 * GIB
    assert T.guard_before_linear_memory is True
    assert T.static_memory_bound_is_maximum is False


@pytest.mark.parametrize("mem", [MemoryType(0), MemoryType(1, 1), MemoryType(0, 65536), MemoryType(65536)])
def test_wasm32_is_static_with_bound_and_static_guard(mem):
    plan = MemoryPlan.for_memory(mem, T)
    assert plan.style == MemoryStyle.Static(65536)
    assert plan.offset_guard_size == 2 * GIB
    assert plan.pre_guard_size == 2 * GIB
    assert plan.reservation_bytes() == 2 * GIB + 4 * GIB + 2 * GIB


def test_memory64_without_max_is_dynamic():
    plan = MemoryPlan.for_memory(MemoryType(1, memory64=True), T)
    assert plan.style == MemoryStyle.Dynamic(2 * GIB)
    assert plan.offset_guard_size == 64 * 1024
    assert plan.pre_guard_size == 64 * 1024
    assert plan.reservation_bytes() == 64 * 1024 + 65536 + 2 * GIB + 64 * 1024


def test_memory64_with_small_max_is_static():
    plan = MemoryPlan.for_memory(MemoryType(1, 10, memory64=True), T)
    assert isinstance(plan.style, MemoryStyle.Static)


def test_max_above_bound_is_dynamic():
    t = T.replace(static_memory_bound=100)
    assert isinstance(MemoryPlan.for_memory(MemoryType(1, 101), t).style, MemoryStyle.Dynamic)
    assert isinstance(MemoryPlan.for_memory(MemoryType(1, 100), t).style, MemoryStyle.Static)
    # No declared maximum counts as 4 GiB: above a 100-page bound.
    assert isinstance(MemoryPlan.for_memory(MemoryType(1), t).style, MemoryStyle.Dynamic)


def test_static_bound_is_maximum_caps_and_minimum_above_cap_is_dynamic():
    t = T.replace(static_memory_bound=100, static_memory_bound_is_maximum=True)
    assert MemoryPlan.for_memory(MemoryType(1), t).style == MemoryStyle.Static(100)
    assert isinstance(MemoryPlan.for_memory(MemoryType(101), t).style, MemoryStyle.Dynamic)


def test_no_guard_before():
    plan = MemoryPlan.for_memory(MemoryType(1), T.replace(guard_before_linear_memory=False))
    assert plan.pre_guard_size == 0 and plan.offset_guard_size == 2 * GIB


def test_dense_config_32mib_guard():
    t = T.replace(static_memory_offset_guard_size=32 << 20)
    plan = MemoryPlan.for_memory(MemoryType(1), t)
    assert plan.reservation_bytes() == 4 * GIB + 64 * (1 << 20)


def test_tunables_reject_bad_values():
    with pytest.raises(ValueError):
        T.replace(static_memory_offset_guard_size=-1)
    with pytest.raises(ValueError):
        T.replace(dynamic_memory_offset_guard_size=1000)


def test_table_plan_and_pickle():
    plan = TablePlan.for_table(TableType(ValType.FUNCREF, 1, 2), T)
    assert plan.style is TableStyle.CallerChecksSignature
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and again.style is TableStyle.CallerChecksSignature
    mplan = MemoryPlan.for_memory(MemoryType(1), T)
    assert pickle.loads(pickle.dumps(mplan)) == mplan
