"""The main job: inspect the bundled examples (grows with the runtime)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

for wasm in sorted((ROOT / "examples" / "build").glob("*.wasm")):
    print(f"== {wasm.relative_to(ROOT)}")
    subprocess.run([sys.executable, "-m", "wasmenv", "inspect", str(wasm)], check=True)
