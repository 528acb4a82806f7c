"""Build examples/*.wat into examples/build/*.wasm (skips up-to-date outputs)."""
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "examples"
OUT = SRC / "build"


#: image_1mib's export computing over its image: a hash of the i32 words of
#: [addr, addr + len), also stored just past the image (one page written per instance).
CHECKSUM_WAT = """  (func (export "checksum") (param $addr i32) (param $len i32) (result i32)
    (local $end i32) (local $h i32)
    (local.set $end (i32.add (local.get $addr) (local.get $len)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $addr) (local.get $end)))
      (local.set $h (i32.xor (i32.mul (local.get $h) (i32.const 31)) (i32.load (local.get $addr))))
      (local.set $addr (i32.add (local.get $addr) (i32.const 4)))
      (br $next)))
    (i32.store (i32.const 1048576) (local.get $h))
    (local.get $h))
"""


def image_1mib_wat() -> str:
    """A module whose 1 MiB data image is dense (deterministic non-zero bytes), with an
    export computing over it (``checksum``)."""
    rng = random.Random(1)
    segs = []
    for i in range(16):
        chunk = bytes(rng.randrange(1, 256) for _ in range(65536))
        text = "".join(f"\\{b:02x}" for b in chunk)
        segs.append(f'  (data (i32.const {i * 65536}) "{text}")')
    return ("(module $image_1mib\n  (memory (export \"memory\") 17 64)\n" + CHECKSUM_WAT
            + "\n".join(segs) + "\n)\n")


GENERATED = {"image_1mib": image_1mib_wat}


def main() -> int:
    import wasmtime  # the scripts extra; wat2wasm is its text-format parser
    OUT.mkdir(exist_ok=True)
    for name, make in GENERATED.items():
        wasm = OUT / (name + ".wasm")
        if not wasm.exists() or wasm.stat().st_mtime < pathlib.Path(__file__).stat().st_mtime:
            wasm.write_bytes(wasmtime.wat2wasm(make()))
    for wat in sorted(SRC.glob("*.wat")):
        wasm = OUT / (wat.stem + ".wasm")
        if wasm.exists() and wasm.stat().st_mtime >= wat.stat().st_mtime:
            continue
        wasm.write_bytes(wasmtime.wat2wasm(wat.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
