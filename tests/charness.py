"""Build the C harnesses of tests/c/ from c_src/ (with sanitizers or test hooks)."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_SRC = os.path.join(ROOT, "c_src")


def build(out_dir, harness, units, *flags, libs=("-lpthread",)):
    """Compile tests/c/HARNESS.c with c_src/wenv_UNIT.c for each of ``units`` and
    ``flags`` (warnings are errors, as in the extension); the executable's path."""
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    assert cc, "a C compiler is needed (the runtime itself is built with one)"
    exe = os.path.join(str(out_dir), harness)
    proc = subprocess.run([cc, "-O1", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                           "-Wno-unused-parameter", "-fno-omit-frame-pointer", *flags, f"-I{C_SRC}",
                           *(os.path.join(C_SRC, f"wenv_{unit}.c") for unit in units),
                           os.path.join(ROOT, "tests", "c", f"{harness}.c"), "-o", exe, *libs],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


def run(exe, *args, timeout=120):
    """(returncode, stdout + stderr) of the harness."""
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr
