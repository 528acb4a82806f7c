"""python -m wasmenv inspect (wasmenv/cli.py, wasmenv/report.py)."""
import json
import subprocess
import sys

from tests.helpers import wat

from wasmenv.cli import main

SIDE = wat("""(module (import "env" "memory" (memory 1)) (import "env" "mb" (global $mb i32))
  (data (global.get $mb) "x") (table 3 funcref) (func $f) (elem (i32.const 0) $f)
  (export "f" (func $f)))""")
STATIC = wat("""(module (memory (export "m") 2 10) (data (i32.const 70000) "img")
  (table 4 funcref) (func $f) (elem (i32.const 1) $f) (global (mut i64) (i64.const 5)))""")


def run(tmp_path, wasm, *args):
    path = tmp_path / "m.wasm"
    path.write_bytes(wasm)
    return subprocess.run([sys.executable, "-m", "wasmenv", "inspect", str(path), *args],
                          capture_output=True, text=True, check=True).stdout


def test_inspect_json_static(tmp_path):
    s = json.loads(run(tmp_path, STATIC, "--json"))
    mem = s["memories"][0]
    assert mem["style"] == "static" and mem["bound_bytes"] == 4 << 30
    assert mem["pre_guard_bytes"] == mem["offset_guard_bytes"] == 2 << 30
    assert mem["reservation_bytes"] == 8 << 30
    init = s["memory_initialization"]
    assert init["kind"] == "static" and init["page_size"] == 4096
    assert init["images"][0] == {"memory": 0, "offset": 69632, "byte_len": 4096, "data_start": 0}
    assert s["table_initialization"]["kind"] == "functable"
    assert s["table_initialization"]["tables"][0] == {"elements": 2, "non_null": 1}
    assert s["escaped_functions"] == 1 and s["exports"] == [{"name": "m", "kind": "memory", "index": 0}]
    # Stable: the same bytes give the same JSON text.
    assert run(tmp_path, STATIC, "--json") == run(tmp_path, STATIC, "--json")


def test_inspect_json_segmented_with_imports(tmp_path):
    s = json.loads(run(tmp_path, SIDE, "--json"))
    assert s["memory_initialization"] == {"kind": "segmented", "segments": [
        {"memory": 0, "offset": "global 0 + 0", "byte_len": 1}]}
    assert [i["type"]["kind"] for i in s["imports"]] == ["memory", "global"]
    assert s["memories"][0]["imported"] is True


def test_inspect_text(tmp_path):
    out = run(tmp_path, STATIC)
    assert "static bound 4 GiB" in out and "reservation 8 GiB" in out
    assert "image at 0x11000, 4 KiB" in out


def test_inspect_bad_module_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0\x05\x05\x01")
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wasmenv: error:") and "offset" in err
