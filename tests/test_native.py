"""The C layer through runtime._ffi: reservations, protections, errno -> errors, and the
built (-O2) extension's guard-page accessors, checked from outside via /proc/self/maps."""
import errno
import os
import subprocess

import pytest

from runtime import _ffi
from runtime.errors import AllocationError, WasmRuntimeError
from tests.helpers import expected_layout, layout, parse_maps, run_child, vm_flags

PAGE = _ffi.PAGE_SIZE
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


# ---- the extension itself -------------------------------------------------------------

def test_extension_is_the_optimized_build():
    """The tests run against the -O2 cffi build that setup.py produced, not a debug one."""
    with open(os.path.join(os.path.dirname(__file__), "..", "c_src", "build_native.py")) as f:
        assert '"-O2"' in f.read()
    assert _ffi.EXTENSION_FILE.endswith(".so")
    assert hasattr(_ffi.lib, "wenv_load_i32")


def test_page_size():
    assert PAGE == os.sysconf("SC_PAGE_SIZE")


# ---- the package: one layer, one home per name ----------------------------------------

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _python_files(*dirs):
    for top in dirs:
        for base, _, files in os.walk(os.path.join(ROOT, top)):
            yield from (os.path.join(base, f) for f in files if f.endswith(".py"))


def test_only_the_ffi_package_imports_the_extension():
    """runtime._native is imported by runtime/_ffi/ alone: every other module (runtime,
    scripts, tests, wasmenv) goes through the package."""
    import ast
    offenders = []
    for path in _python_files("runtime", "scripts", "tests", "wasmenv", "examples"):
        if os.path.dirname(os.path.abspath(path)) == os.path.abspath(os.path.join(ROOT, "runtime", "_ffi")):
            continue
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
            if any(n.split(".")[-1] == "_native" or "._native." in n for n in names):
                offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert offenders == []


def test_package_functions_read_package_names_through_the_package():
    """The seam rule of runtime/_ffi/__init__.py: inside the package a function reads each
    public name of the package as ``_ffi.name``, never by a submodule's global binding, so
    a monkeypatch on runtime._ffi reaches every caller."""
    import ast
    import types
    public = {name for name, value in vars(_ffi).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)} - {"ffi", "lib"}
    offenders = []
    for path in _python_files(os.path.join("runtime", "_ffi")):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.Lambda)):
                continue
            local = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
            body = fn.body if isinstance(fn.body, list) else [fn.body]
            nodes = [n for stmt in body for n in ast.walk(stmt)]
            local |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            offenders += [f"{os.path.basename(path)}:{n.lineno} {n.id}" for n in nodes
                          if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                          and n.id in public and n.id not in local]
    assert offenders == []


# ---- reservations --------------------------------------------------------------------

def test_reserve_is_prot_none_noreserve_and_release_unmaps():
    start = _ffi.reserve(64 * MIB)
    try:
        assert start % PAGE == 0
        assert layout(start, start + 64 * MIB) == [(start, start + 64 * MIB, "---p")]
        assert "nr" in vm_flags(start)  # MAP_NORESERVE
    finally:
        _ffi.release(start, 64 * MIB)
    assert layout(start, start + 64 * MIB) == [(start, start + 64 * MIB, None)]


def test_protect_splits_and_restores():
    start = _ffi.reserve(16 * PAGE)
    try:
        _ffi.protect(start + 4 * PAGE, 8 * PAGE, True)
        assert layout(start, start + 16 * PAGE) == expected_layout(start, start + 4 * PAGE, 8 * PAGE,
                                                                   start + 16 * PAGE)
        _ffi.protect(start + 4 * PAGE, 8 * PAGE, False)
        assert layout(start, start + 16 * PAGE) == [(start, start + 16 * PAGE, "---p")]
    finally:
        _ffi.release(start, 16 * PAGE)


def test_decommit_and_anon_remap_zero_the_pages():
    import ctypes
    start = _ffi.reserve(4 * PAGE)
    try:
        _ffi.protect(start, 4 * PAGE, True)
        ctypes.memset(start, 0x5A, 4 * PAGE)
        _ffi.decommit(start, 2 * PAGE)
        assert ctypes.string_at(start, 2 * PAGE) == bytes(2 * PAGE)
        assert ctypes.string_at(start + 2 * PAGE, 2 * PAGE) == b"\x5a" * (2 * PAGE)
        _ffi.map_anon_fixed(start + 2 * PAGE, PAGE, False)
        assert layout(start, start + 4 * PAGE) == [(start, start + 2 * PAGE, "rw-p"),
                                                   (start + 2 * PAGE, start + 3 * PAGE, "---p"),
                                                   (start + 3 * PAGE, start + 4 * PAGE, "rw-p")]
        _ffi.map_anon_fixed(start + 2 * PAGE, PAGE, True)
        assert ctypes.string_at(start + 2 * PAGE, PAGE) == bytes(PAGE)
    finally:
        _ffi.release(start, 4 * PAGE)


def test_map_fd_fixed_is_private_copy_on_write(tmp_path):
    import ctypes
    path = tmp_path / "img"
    path.write_bytes(b"A" * PAGE + b"B" * PAGE)
    fd = os.open(path, os.O_RDONLY)
    start = _ffi.reserve(4 * PAGE)
    try:
        _ffi.map_fd_fixed(start + PAGE, 2 * PAGE, fd, 0)
        assert ctypes.string_at(start + PAGE, 2) == b"AA"
        ctypes.memset(start + PAGE, ord("Z"), 1)
        assert ctypes.string_at(start + PAGE, 2) == b"ZA"
        assert path.read_bytes()[:2] == b"AA"  # MAP_PRIVATE: the file is untouched
        maps = parse_maps()
        assert [m for m in maps if m[0] <= start + PAGE < m[1]][0][4] == str(path)
    finally:
        _ffi.release(start, 4 * PAGE)
        os.close(fd)


def test_enomem_becomes_allocation_error_address_space():
    before = len(parse_maps())
    with pytest.raises(AllocationError) as info:
        _ffi.reserve(1 << 62)
    assert info.value.limit == "address space"
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOMEM
    with pytest.raises(AllocationError) as info:
        _ffi.reserve(1 << 64)  # cannot even be expressed
    assert info.value.limit == "address space"
    assert len(parse_maps()) == before


def test_other_errno_becomes_runtime_error_with_oserror_cause():
    with pytest.raises(WasmRuntimeError) as info:
        _ffi.protect(PAGE + 1, PAGE, True)  # unaligned -> EINVAL
    assert info.value.__cause__.errno == errno.EINVAL
    with pytest.raises(WasmRuntimeError) as info:
        _ffi.map_fd_fixed(_ffi.reserve(PAGE), PAGE, 987654, 0)  # bad fd -> EBADF
    assert info.value.__cause__.errno == errno.EBADF


def test_enomem_is_blamed_on_max_map_count_near_the_limit(monkeypatch):
    monkeypatch.setattr(_ffi, "max_map_count", lambda: _ffi.mapping_count() + 3)
    assert _ffi.enomem_limit() == "vm.max_map_count"
    monkeypatch.setattr(_ffi, "max_map_count", lambda: _ffi.mapping_count() + 10_000)
    assert _ffi.enomem_limit() == "address space"


# ---- descriptors and access modes ----------------------------------------------------

def _desc(base, byte_len, bound, guard, flags, start=None, end=None):
    d = _ffi.new_memory_desc()
    _ffi.memory_init(d, base, byte_len, bound, guard, base if start is None else start,
                     base + bound + guard if end is None else end, flags, bound // 65536)
    return d


@pytest.mark.parametrize("bound,guard,flags,offset,width,raw", [
    (4 * GIB, 2 * GIB, _ffi.MEM_STATIC, 0, 8, 1),
    (4 * GIB, 2 * GIB, _ffi.MEM_STATIC, 2 * GIB - 7, 8, 1),  # last byte at 6 GiB - 1
    (4 * GIB, 2 * GIB, _ffi.MEM_STATIC, 2 * GIB - 6, 8, 0),
    (4 * GIB, 0, _ffi.MEM_STATIC, 0, 1, 1),          # 0xFFFFFFFF + 0 + 1 == 4 GiB exactly
    (4 * GIB, 0, _ffi.MEM_STATIC, 0, 2, 0),
    (4 * GIB, 64 * KIB, _ffi.MEM_STATIC, 65536, 1, 1),
    (4 * GIB, 64 * KIB, _ffi.MEM_STATIC, 65537, 1, 0),
    (4 * GIB, 2 * GIB, 0, 0, 4, 0),                   # Dynamic: always checked
    (4 * GIB, 2 * GIB, _ffi.MEM_STATIC | _ffi.MEM_64, 0, 4, 0),  # memory64: always checked
    (64 * KIB, 32 * MIB, _ffi.MEM_STATIC, 0, 4, 0),  # small bound
])
def test_access_mode_rule(bound, guard, flags, offset, width, raw):
    d = _desc(0x10000, 0, bound, guard, flags)
    assert _ffi.access_is_raw(d, offset, width) == raw


def test_bench_entry_points_report_positive_times():
    assert 0 < _ffi.bench_trap_roundtrip(200) < 1e6
    assert 0 < _ffi.bench_jmp_roundtrip(1000, 0) < 1e5
    assert 0 < _ffi.bench_jmp_roundtrip(1000, 1) < 1e5
    assert 0 < _ffi.bench_load_i32(10000) < 1e5


def test_guard_fault_from_c_accessor_on_a_bare_descriptor():
    """A hand-made Static descriptor over a real 4 GiB + 64 KiB reservation: the raw
    load past the accessible page faults and comes back as WENV_OOB_GUARD."""
    size = 4 * GIB + 64 * KIB
    start = _ffi.reserve(size)
    try:
        _ffi.protect(start, 64 * KIB, True)
        _ffi.install_trap_handler()
        d = _desc(start, 64 * KIB, 4 * GIB, 64 * KIB, _ffi.MEM_STATIC)
        assert _ffi.access_is_raw(d, 0, 4)
        assert _ffi.LOAD["i32"](d, 64 * KIB - 4, 0) == 0
        assert _ffi.last_status() == _ffi.OK
        assert _ffi.LOAD["i32"](d, 0xFFFF_FFFF, 0) == _ffi.INT64_MIN
        assert _ffi.last_status() == _ffi.OOB_GUARD
        assert _ffi.last_fault_address() == start + 0xFFFF_FFFF
        assert _ffi.last_fault_signal() in (11, 7)  # SIGSEGV (SIGBUS on macOS)
        assert _ffi.STORE["i32"](d, 64 * KIB - 2, 0, 1) == _ffi.OOB_GUARD  # straddles: nothing written
        assert _ffi.LOAD["u16"](d, 64 * KIB - 2, 0) == 0
        assert _ffi.STORE["i32"](d, 0, 0, 1 << 32) == _ffi.BADARG
        assert _ffi.LOAD["i32"](d, 1 << 32, 0) == _ffi.INT64_MIN and _ffi.last_status() == _ffi.BADARG
        _ffi.memory_close(d)
        assert _ffi.LOAD["i32"](d, 0, 0) == _ffi.INT64_MIN and _ffi.last_status() == _ffi.CLOSED
    finally:
        _ffi.release(start, size)


def test_o2_build_orders_the_jump_buffer_before_the_access():
    """Disassemble the built extension: in the guarded body of wenv_load_i32 (its own
    function, wenv_load_in_i32: wenv_load_i32 enters and leaves the memory around it)
    the store of the armed jump buffer pointer (a %fs-relative TLS store of a stack
    address) precedes the guarded load, and the load precedes the store that disarms it
    (movq $0x0)."""
    objdump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", _ffi.EXTENSION_FILE],
                             capture_output=True, text=True)
    if objdump.returncode != 0:
        pytest.fail("objdump is needed to inspect the built extension")
    body = objdump.stdout.split("<wenv_load_in_i32>:", 1)[1].split("\n\n", 1)[0].splitlines()
    insns = [line.split("\t", 1)[1].strip() for line in body if "\t" in line]
    arm = next(i for i, s in enumerate(insns) if s.startswith("lea") and "(%rsp)" in s
               and i + 1 < len(insns) and insns[i + 1].startswith("mov") and insns[i + 1].endswith(",(%rcx)"))
    load = next(i for i, s in enumerate(insns) if i > arm and s.startswith("movslq") and "(%r" in s)
    disarm = next(i for i, s in enumerate(insns) if i > load and s.startswith("movq   $0x0,"))
    assert arm < load < disarm


# ---- a real fault outside an accessor still crashes ----------------------------------

@pytest.mark.parametrize("where", ["below_base", "past_end", "in_offset_guard"])
def test_raw_write_into_a_guard_kills_the_child_with_sigsegv(where):
    code = """
        import ctypes, sys
        from types import SimpleNamespace
        from runtime import Memory, OnDemandAllocator
        from wasmenv import Tunables
        eng = SimpleNamespace(tunables=Tunables(static_memory_offset_guard_size=64 * 1024),
                              allocator=OnDemandAllocator())
        m = Memory.new(eng, 1, 2)
        ctypes.memset(m.base_address, 1, 1)                  # first accessible byte: fine
        ctypes.memset(m.base_address + m.byte_len - 1, 1, 1)  # last accessible byte: fine
        target = {"below_base": m.base_address - 1,
                  "past_end": m.base_address + m.byte_len,
                  "in_offset_guard": m.reservation_range[1] - 1}[sys.argv[1]]
        print("about to fault", flush=True)
        ctypes.memset(target, 1, 1)
        print("survived", flush=True)
    """
    proc = run_child(code, where)
    assert "about to fault" in proc.stdout, proc.stderr
    assert "survived" not in proc.stdout
    assert proc.returncode == -11, (proc.returncode, proc.stderr)


# ---- the macOS branches ---------------------------------------------------------------

@pytest.mark.parametrize("source", sorted(f for f in os.listdir(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "c_src")) if f.endswith(".c")))
def test_macos_branches_compile_without_warnings(source):
    """Untested on macOS here, but at least type-checked: the #ifdef __APPLE__ branches
    (no memfd, SIGBUS, resets that map fresh pages) compile cleanly against POSIX headers."""
    import shutil
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    assert cc, "a C compiler is needed (the runtime itself is built with one)"
    c_src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "c_src")
    proc = subprocess.run([cc, "-fsyntax-only", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                           "-Wno-unused-parameter", "-D__APPLE__", f"-I{c_src}",
                           os.path.join(c_src, source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
