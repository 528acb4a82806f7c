# Shared by scripts/run and scripts/test: create .venv if missing and install the package.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip setuptools wheel cffi
fi
# Editable install: builds runtime/_native from c_src/ in place; reruns are quick. The test
# extra is what the tests need, scripts what scripts/ needs (tests/test_scripts.py runs them).
.venv/bin/python -m pip install -q --no-build-isolation -e '.[test,scripts]'
.venv/bin/python scripts/build_examples.py
