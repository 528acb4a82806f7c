"""Coverage-guided fuzzing of the decoder with atheris (opt-in, long runs).

    .venv/bin/python -m pip install --no-build-isolation -e '.[fuzz]'   (atheris)
    python scripts/fuzz_decode.py [-runs=100000] [-max_len=4096] [CORPUS_DIR ...]

The property: ``wasmenv.compile`` on any bytes either returns or raises DecodeError
(never another exception, never a hang). Seeds: the bundled examples and a few spec
modules. libFuzzer flags pass through.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Import the packages of this checkout, not an installed copy: the imports below come
# after this line, hence their noqa: E402.
sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

with atheris.instrument_imports():
    import wasmenv  # noqa: E402
    import wasmenv.decode  # noqa: E402,F401  (imported lazily by translate: instrument it too)
    import wasmenv.reader  # noqa: E402,F401  (the same)


def one_input(data: bytes):
    try:
        wasmenv.compile(data)
    except wasmenv.DecodeError:
        pass


def main():
    args = list(sys.argv)
    seeds = ROOT / "build" / "fuzz-seeds"
    if not seeds.exists():
        seeds.mkdir(parents=True)
        for wasm in (ROOT / "examples" / "build").glob("*.wasm"):
            if wasm.stat().st_size < 64 << 10:
                (seeds / wasm.name).write_bytes(wasm.read_bytes())
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(seeds))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
