"""Build examples/*.wat into examples/build/*.wasm (skips up-to-date outputs)."""
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "examples"
OUT = SRC / "build"


def image_1mib_wat() -> str:
    """A module whose 1 MiB data image is dense (deterministic non-zero bytes)."""
    rng = random.Random(1)
    segs = []
    for i in range(16):
        chunk = bytes(rng.randrange(1, 256) for _ in range(65536))
        text = "".join(f"\\{b:02x}" for b in chunk)
        segs.append(f'  (data (i32.const {i * 65536}) "{text}")')
    return "(module $image_1mib\n  (memory (export \"memory\") 17 64)\n" + "\n".join(segs) + "\n)\n"


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
