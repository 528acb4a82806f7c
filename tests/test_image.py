"""MemoryImage: sealed memfd (Linux), unlinked temp file (the macOS path), existing files."""
import errno
import fcntl
import gc
import os
import stat

import pytest

from runtime import _ffi, image as image_mod
from runtime.errors import AllocationError
from runtime.image import MemoryImage

PAGE = _ffi.PAGE_SIZE


def fd_count():
    return len(os.listdir("/proc/self/fd"))


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


def test_accepts_any_bytes_like_zero_copy_view():
    backing = bytearray(b"abcdefgh" * 1000)
    with MemoryImage.from_bytes(memoryview(backing)[8:16]) as img:
        assert img.read()[:8] == b"abcdefgh"
    import array
    with MemoryImage.from_bytes(array.array("I", [1, 2])) as img:  # multi-byte items
        assert img.read()[:8] == b"\x01\x00\x00\x00\x02\x00\x00\x00"


def test_empty_image():
    with MemoryImage.from_bytes(b"") as img:
        assert img.byte_len == 0 and img.read() == b""


def test_linear_offset_must_be_page_aligned():
    with pytest.raises(ValueError):
        MemoryImage.from_bytes(b"x", 100)
    with pytest.raises(ValueError):
        MemoryImage.from_bytes(b"x", -PAGE)


def test_close_context_manager_and_finalizer_release_the_fd():
    gc.collect()  # earlier tests' garbage may hold fds; collect it before counting
    before = fd_count()
    img = MemoryImage.from_bytes(b"x")
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

    with MemoryImage.from_bytes(b"y"):
        assert fd_count() == before + 1
    assert fd_count() == before

    img = MemoryImage.from_bytes(b"z")
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


def test_memfd_failure_is_an_allocation_error(monkeypatch):
    def no_fds(name, flags=0):
        raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(os, "memfd_create", no_fds)
    before = fd_count()
    with pytest.raises(AllocationError) as info:
        MemoryImage.from_bytes(b"x")
    assert info.value.limit == "file descriptors"
    assert fd_count() == before


def test_fill_failure_closes_the_fd(monkeypatch):
    def fail(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "pwrite", fail)
    before = fd_count()
    with pytest.raises(AllocationError) as info:
        MemoryImage.from_bytes(b"x" * 100)
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


def test_repr_mentions_state():
    img = MemoryImage.from_bytes(b"x")
    assert "memfd" in repr(img) and "fd=" in repr(img)
    img.close()
    assert "closed" in repr(img)
