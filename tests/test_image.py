"""MemoryImage: sealed memfd (Linux), unlinked temp file (the macOS path), existing files.

Tests that hold for any backing run with both (``backing``): the macOS way on Linux too.
"""
import errno
import fcntl
import gc
import os
import stat

import pytest

from runtime import _ffi, image as image_mod
from runtime.errors import AllocationError
from runtime.image import MemoryImage
from tests.helpers import open_fd_count as fd_count

PAGE = _ffi.PAGE_SIZE


@pytest.fixture(params=image_mod.BACKINGS)
def backing(request):
    return request.param


def test_from_bytes_is_a_sealed_memfd_padded_to_pages():
    data = b"hello" + bytes(PAGE) + b"world"
    with MemoryImage.from_bytes(data, 2 * PAGE) as img:
        assert img.source == "memfd" and img.sealed
        assert img.byte_len == 2 * PAGE and img.file_offset == 0 and img.linear_offset == 2 * PAGE
        assert os.readlink(f"/proc/self/fd/{img.fd}").startswith("/memfd:wenv-image")
        assert img.read() == data + bytes(2 * PAGE - len(data))
        seals = fcntl.fcntl(img.fd, fcntl.F_GET_SEALS)
        for seal in (fcntl.F_SEAL_WRITE, fcntl.F_SEAL_GROW, fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_SEAL):
            assert seals & seal
        # Nobody can change the bytes under the mappings.
        with pytest.raises(PermissionError):
            os.pwrite(img.fd, b"x", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(img.fd, PAGE)
        with pytest.raises(PermissionError):
            os.ftruncate(img.fd, 8 * PAGE)
        assert not os.get_inheritable(img.fd)


def test_accepts_any_bytes_like_zero_copy_view(backing):
    buf = bytearray(b"abcdefgh" * 1000)
    with MemoryImage.from_bytes(memoryview(buf)[8:16], backing=backing) as img:
        assert img.read()[:8] == b"abcdefgh"
    import array
    with MemoryImage.from_bytes(array.array("I", [1, 2]), backing=backing) as img:  # multi-byte items
        assert img.read()[:8] == b"\x01\x00\x00\x00\x02\x00\x00\x00"


def test_empty_image(backing):
    with MemoryImage.from_bytes(b"", backing=backing) as img:
        assert img.byte_len == 0 and img.read() == b""


def test_linear_offset_must_be_page_aligned(backing):
    with pytest.raises(ValueError):
        MemoryImage.from_bytes(b"x", 100, backing=backing)
    with pytest.raises(ValueError):
        MemoryImage.from_bytes(b"x", -PAGE, backing=backing)


def test_close_context_manager_and_finalizer_release_the_fd(backing):
    gc.collect()  # earlier tests' garbage may hold fds; collect it before counting
    before = fd_count()
    img = MemoryImage.from_bytes(b"x", backing=backing)
    fd = img.fd
    assert fd_count() == before + 1
    img.close()
    img.close()  # idempotent
    assert img.closed and fd_count() == before
    with pytest.raises(ValueError):
        _ = img.fd
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF

    with MemoryImage.from_bytes(b"y", backing=backing):
        assert fd_count() == before + 1
    assert fd_count() == before

    img = MemoryImage.from_bytes(b"z", backing=backing)
    assert fd_count() == before + 1
    del img
    gc.collect()
    assert fd_count() == before  # the backstop (Owner.__del__)


def test_tempfile_fallback_is_unlinked(monkeypatch):
    """The macOS path (no memfd): an unlinked temporary file, no seals."""
    monkeypatch.setattr(image_mod, "_SEALS", 0)
    with MemoryImage.from_bytes(b"mac" * 10, PAGE) as img:
        assert img.source == "tempfile" and not img.sealed
        target = os.readlink(f"/proc/self/fd/{img.fd}")
        assert target.endswith(" (deleted)")
        assert stat.S_ISREG(os.fstat(img.fd).st_mode)
        assert img.read()[:30] == b"mac" * 10 and img.byte_len == PAGE


@pytest.mark.parametrize("asked", [None, "memfd"])
def test_memfd_failure_is_an_allocation_error(monkeypatch, asked):
    def no_fds(name, flags=0):
        raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(os, "memfd_create", no_fds)
    before = fd_count()
    with pytest.raises(AllocationError) as info:
        MemoryImage.from_bytes(b"x", backing=asked)
    assert info.value.limit == "file descriptors"
    assert fd_count() == before


def test_memfd_asked_for_is_never_replaced_by_a_temporary_file(monkeypatch):
    """The platform's choice falls back to a temporary file where the kernel has no
    memfd (ENOSYS); a memfd asked for by name is an error there instead."""
    def no_memfd(name, flags=0):
        raise OSError(errno.ENOSYS, "Function not implemented")
    monkeypatch.setattr(os, "memfd_create", no_memfd)
    with MemoryImage.from_bytes(b"x") as img:
        assert img.source == "tempfile"
    with pytest.raises(AllocationError):
        MemoryImage.from_bytes(b"x", backing="memfd")


def test_fill_failure_closes_the_fd(monkeypatch, backing):
    def fail(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "pwrite", fail)
    before = fd_count()
    with pytest.raises(AllocationError) as info:
        MemoryImage.from_bytes(b"x" * 100, backing=backing)
    assert info.value.limit == "memory"
    assert fd_count() == before


def test_from_file_maps_an_existing_file_at_an_offset(tmp_path):
    path = tmp_path / "artifact.bin"
    path.write_bytes(b"H" * PAGE + b"D" * (2 * PAGE) + b"T" * 10)
    before = fd_count()
    with MemoryImage.from_file(path, PAGE, 2 * PAGE, 3 * PAGE) as img:
        assert img.source == "file" and not img.sealed
        assert (img.file_offset, img.byte_len, img.linear_offset) == (PAGE, 2 * PAGE, 3 * PAGE)
        assert img.read() == b"D" * (2 * PAGE)
        assert os.fstat(img.fd).st_ino == os.stat(path).st_ino
    assert fd_count() == before


def test_from_file_checks_alignment_and_size(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(bytes(2 * PAGE))
    before = fd_count()
    with pytest.raises(ValueError):
        MemoryImage.from_file(path, 1, PAGE)
    with pytest.raises(ValueError):
        MemoryImage.from_file(path, 0, 100)
    with pytest.raises(ValueError):
        MemoryImage.from_file(path, PAGE, 2 * PAGE)  # past the end of the file
    with pytest.raises(FileNotFoundError):
        MemoryImage.from_file(tmp_path / "missing", 0, PAGE)
    assert fd_count() == before


def test_repr_mentions_state(backing):
    img = MemoryImage.from_bytes(b"x", backing=backing)
    assert backing in repr(img) and "fd=" in repr(img)
    img.close()
    assert "closed" in repr(img)


# ---- the backing, selectable at run time ----------------------------------------------

@pytest.mark.parametrize("backing", ["memfd", "tempfile"])
def test_backing_is_selectable_at_run_time(backing):
    """Both backings on Linux: a sealed memfd, or the macOS way (an unlinked temporary
    file); per image, and per Engine for the images its modules make."""
    from runtime import Engine, Instance, Module
    with MemoryImage.from_bytes(b"pick" * 10, PAGE, backing=backing) as img:
        assert img.source == backing and img.sealed == (backing == "memfd")
        target = os.readlink(f"/proc/self/fd/{img.fd}")
        assert target.startswith("/memfd:") == (backing == "memfd") and target.endswith(" (deleted)")
        assert img.read()[:40] == b"pick" * 10
    import wasmtime
    engine = Engine(image_backing=backing)
    assert engine.image_backing == backing
    module = Module(engine, wasmtime.wat2wasm('(module (memory (export "m") 1) (data (i32.const 8) "img"))'))
    assert module.images[0].source == backing
    with Instance(module) as inst:
        assert inst.memory(0).read(8, 3) == b"img"
    with pytest.raises(ValueError):
        MemoryImage.from_bytes(b"x", backing="floppy")
    with pytest.raises(ValueError):
        Engine(image_backing="floppy")


def test_image_is_mapped_copy_on_write_into_every_memory(backing):
    """Two memories map one image: each reads it, a write stays in its memory, the file
    keeps the image, and a closed image leaves the mappings valid."""
    from types import SimpleNamespace

    from runtime import OnDemandAllocator
    from wasmenv import MemoryPlan, MemoryType, Tunables
    eng = SimpleNamespace(tunables=Tunables(), allocator=OnDemandAllocator())
    plan = MemoryPlan.for_memory(MemoryType(1), eng.tunables)
    data = bytes(range(256)) * 16
    img = MemoryImage.from_bytes(data, PAGE, backing=backing)
    with eng.allocator.allocate_memory(plan, img) as a, eng.allocator.allocate_memory(plan, img) as b:
        img.close()
        for m in (a, b):
            assert m.read(0, PAGE) == bytes(PAGE) and m.read(PAGE, len(data)) == data
        a.write(PAGE, b"mine")
        assert a.read(PAGE, 4) == b"mine" and b.read(PAGE, 4) == data[:4]
    with MemoryImage.from_bytes(data, backing=backing) as again:
        assert again.read()[:len(data)] == data
