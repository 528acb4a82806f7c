"""runtime/refs.py: externref registries (holding values, linking, releasing)."""
import gc

from runtime.refs import ExternRefs, extern_of

from tests.helpers import run_child


def test_a_registry_holds_its_values_until_released():
    value = object()
    refs = ExternRefs()
    cell = refs.cell(value)
    assert extern_of(cell) is value and len(refs) == 1
    assert refs.cell(value) == cell and len(refs) == 1  # held once
    refs.release()
    assert len(refs) == 0
    refs.release()  # idempotent


def test_a_value_two_registries_hold_stays_until_both_release():
    value, a, b = object(), ExternRefs(), ExternRefs()
    cell = a.cell(value)
    assert b.cell(value) == cell
    a.release()
    assert extern_of(cell) is value
    b.release()
    a.link(b)  # (linking released registries is harmless)


def test_linked_registries_live_as_long_as_each_other():
    value, a = object(), ExternRefs()
    b = ExternRefs()
    cell = b.cell(value)
    a.link(b)
    del b
    gc.collect()
    assert extern_of(cell) is value  # a keeps b, so b keeps the value
    del a
    gc.collect()


def test_a_collection_inside_link_or_release_does_not_deadlock():
    """Making an object can run a collection whose finalizers release registries (they take
    the registries' lock): link and release must make nothing while they hold it. A child
    process, as the failure is a hang; with sets made under the lock this times out."""
    out = run_child("""
        import gc
        from runtime.refs import ExternRefs
        gc.set_threshold(1)  # a collection at (nearly) every object made
        for i in range(2000):
            a, b = ExternRefs(), ExternRefs()
            a.cell(object())
            a.link(b)  # a cycle with finalizers: garbage for a later collection
            c, d = ExternRefs(), ExternRefs()
            c.link(d)  # makes their link sets: a collection may run here
            c.release()
            del a, b, c, d
        print("done")
    """, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
