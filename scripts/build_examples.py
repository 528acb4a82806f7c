"""Build examples/*.wat into examples/build/*.wasm (skips up-to-date outputs)."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "examples"
OUT = SRC / "build"


def main() -> int:
    import wasmtime  # the test extra; wat2wasm is its text-format parser
    OUT.mkdir(exist_ok=True)
    for wat in sorted(SRC.glob("*.wat")):
        wasm = OUT / (wat.stem + ".wasm")
        if wasm.exists() and wasm.stat().st_mtime >= wat.stat().st_mtime:
            continue
        wasm.write_bytes(wasmtime.wat2wasm(wat.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
