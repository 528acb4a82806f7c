"""Owner: every owner of a native resource has close(), a context manager and ``__del__``
as its backstop (runtime/_owner.py), the one cleanup mechanism of the runtime."""
import pytest
import wasmtime

from runtime import Engine, Instance, Memory, Module, PoolingAllocator, Table
from runtime._owner import Owner
from runtime.allocator import InstanceAllocator, OnDemandAllocator
from runtime.image import MemoryImage
from runtime.memory import Reservation

OWNERS = [Reservation, Memory, MemoryImage, Module, Instance, Table, InstanceAllocator,
          OnDemandAllocator, PoolingAllocator]


@pytest.mark.parametrize("cls", OWNERS, ids=lambda cls: cls.__name__)
def test_every_owner_has_close_the_context_manager_and_the_backstop(cls):
    assert issubclass(cls, Owner)
    assert cls.__enter__ is Owner.__enter__ and cls.__exit__ is Owner.__exit__
    assert cls.close is not Owner.close
    # Instance's backstop is Owner's minus a call when it is already closed.
    assert cls.__del__ is Owner.__del__ or cls is Instance


def test_a_dropped_module_closes_its_images():
    module = Module(Engine(), wasmtime.wat2wasm('(module (memory 1) (data (i32.const 0) "x"))'))
    image = module.images[0]
    assert image is not None and not image.closed
    del module  # no collection needed: the backstop runs when the last reference goes
    assert image.closed


def test_a_host_table_closes_like_every_owner():
    with Table.new(Engine(), "funcref", 2) as table:
        assert table.get(1) is None and not table.closed
    assert table.closed
    with pytest.raises(ValueError, match="closed"):
        table.get(0)
    with Memory.new(Engine(), 1) as memory:
        assert not memory.closed
    assert memory.closed
