"""The main job: inspect the bundled examples, instantiate them with every strategy, run
wasm code next to wasmtime-py (an export computing over its 1 MiB image, a guard-page trap
raised by wasm code), and measure resident memory per instance after that work, side by
side with wasmtime-py. Runs in seconds.

    scripts/run [--quick]
"""
import argparse
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "examples" / "build"

import runtime  # noqa: E402
import wasmenv  # noqa: E402
from wasmenv.report import render_text, summarize  # noqa: E402


def heading(text):
    print(f"\n=== {text} " + "=" * max(0, 76 - len(text)))


def inspect_examples():
    for wasm in sorted(EXAMPLES.glob("*.wasm")):
        heading(f"inspect {wasm.relative_to(ROOT)}")
        print(render_text(summarize(wasmenv.compile(wasm.read_bytes()))))


def instantiate_examples():
    heading("instantiate every example (imports satisfied by host objects)")
    engine = runtime.Engine()
    host = {
        ("env", "memory"): runtime.Memory.new(engine, 1),
        ("env", "__memory_base"): runtime.Global.new(engine, "i32", 1024),
        ("env", "__table_base"): runtime.Global.new(engine, "i32", 1),
        ("env", "table"): runtime.Table.new(engine, "funcref", 4),
    }
    for wasm in sorted(EXAMPLES.glob("*.wasm")):
        module = runtime.Module(engine, wasm.read_bytes())
        imports = {(imp.module, imp.name): host[(imp.module, imp.name)] for imp in module.imports}
        t0 = time.perf_counter()
        with runtime.Instance(module, imports) as inst:
            us = (time.perf_counter() - t0) * 1e6
            kind = "static image (CoW)" if not module.env.memory_initialization.is_segmented() \
                else "segmented (copied)"
            print(f"{wasm.name:<20} {len(inst.memories)} memories  {kind:<20} instantiated in {us:8.1f} us")
    side = host[("env", "memory")].read(1024, 25)
    print(f"side_module wrote {side!r} at __memory_base=1024 (global base resolved at run time)")


def trap_demo():
    heading("a guard-page trap")
    engine = runtime.Engine()
    module = runtime.Module(engine, (EXAMPLES / "hello.wasm").read_bytes())
    with runtime.Instance(module) as inst:
        mem = inst.exports["memory"]
        lo, hi = mem.reservation_range
        print(f"memory: {mem.size_pages} pages = {mem.byte_len:#x} bytes at {mem.base_address:#x}; "
              f"reservation [{lo:#x}, {hi:#x}) = {(hi - lo) >> 30} GiB with guards")
        print(f"load_i32(1024) = {mem.load_i32(1024):#x}  (the bytes of 'Hell')")
        for addr, offset in ((mem.byte_len, 0), (0xFFFF_FFFF, 0xFFFF_FFFF), (mem.byte_len - 2, 0)):
            try:
                mem.load_i32(addr, offset=offset)
                print(f"load_i32({addr:#x}, offset={offset:#x}) -> no trap?!")
            except runtime.Trap as trap:
                print(f"load_i32({addr:#x}, offset={offset:#x}) -> Trap({trap.code.name}) at wasm address "
                      f"{trap.address:#x}")


def wasmtime_instance(path):
    """(store, exports) of a wasmtime-py instance of ``path`` (the oracle, side by side)."""
    import wasmtime
    store = wasmtime.Store()
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, path.read_bytes()), [])
    return store, inst.exports(store)


def execution_demo():
    heading("execution: image_1mib's export checksum(0, 1 MiB) over its data image")
    path = EXAMPLES / "image_1mib.wasm"
    args = (0, 1 << 20)
    with runtime.Instance(runtime.Module(runtime.Engine(), path.read_bytes())) as inst:
        t0 = time.perf_counter()
        ours = inst.exports["checksum"](*args)
        ours_ms = (time.perf_counter() - t0) * 1e3
        stored = inst.exports["memory"].load_i32(1 << 20) & 0xFFFFFFFF
    store, exports = wasmtime_instance(path)
    t0 = time.perf_counter()
    theirs = exports["checksum"](store, *args)
    theirs_ms = (time.perf_counter() - t0) * 1e3
    print(f"ours (interpreter)   checksum{args} = {ours:#010x}  in {ours_ms:7.2f} ms (first call: "
          f"translation included); stored at 0x100000: {stored:#010x}")
    print(f"wasmtime-py (JIT)    checksum{args} = {theirs:#010x}  in {theirs_ms:7.2f} ms")
    print("same result" if ours == theirs else "RESULTS DIFFER")


def wasm_trap_demo():
    heading("a guard-page trap raised by wasm code (hello.wasm's export load: one i32.load)")
    path = EXAMPLES / "hello.wasm"
    store, exports = wasmtime_instance(path)
    with runtime.Instance(runtime.Module(runtime.Engine(), path.read_bytes())) as inst:
        mem = inst.exports["memory"]
        print(f"load(1024) = {inst.exports['load'](1024):#x}, wasmtime-py: {exports['load'](store, 1024):#x}")
        for addr in (mem.byte_len, 0xFFFF_FFFC):
            try:
                inst.exports["load"](addr)
                print(f"load({addr:#x}) -> no trap?!")
            except runtime.Trap as trap:
                how = "guard-page fault" if trap.guard_fault else "explicit check"
                print(f"load({addr:#x}) -> Trap({trap.code.name}) at wasm address {trap.address:#x} ({how})")
                for i, frame in enumerate(getattr(trap, "frames", None) or ()):  # wasmtime-py's names
                    name = frame.func_name or f"<wasm function {frame.func_index}>"
                    print(f"    backtrace {i}: {frame.module_offset:#x} - {frame.module_name}!{name}")
            try:
                exports["load"](store, addr)
            except Exception as exc:
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                print(f"    wasmtime-py: {type(exc).__name__}: " + " | ".join(lines))


def rss_tables(quick):
    heading("resident memory per live instance after work (image_1mib.wasm: a dense 1 MiB image; "
            "each instance runs checksum over it first)")
    ns = ["10", "100"] if quick else ["100", "1000"]
    cmd = [sys.executable, str(ROOT / "scripts" / "rss_per_instance.py"), str(EXAMPLES / "image_1mib.wasm"),
           "-n", *ns, "--strategy", "all", "--call", "checksum", "0", str(1 << 20),
           "--plot", str(ROOT / "out" / "rss_per_instance.png")]
    print("$ " + " ".join(str(pathlib.Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c
                          for c in cmd[1:]))
    subprocess.run(cmd, check=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    inspect_examples()
    instantiate_examples()
    trap_demo()
    execution_demo()
    wasm_trap_demo()
    rss_tables(args.quick)
    print(f"\nmain job done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
