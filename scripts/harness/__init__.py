"""The test harness shared by tests/ and scripts/ (not part of the runtime's API).

* :mod:`harness.wast` runs converted spec scripts (.wast) through the runtime, every
  command executed, with the ``spectest`` host module of :mod:`harness.spectest` and the
  value conversions, trap texts and API detection of :mod:`harness.invoke`
  (``scripts/spec.py``, tests/test_spec.py);
* :mod:`harness.corpus` converts the spec suite and generates wasm-smith modules (cached);
* :mod:`harness.proposals` tells which execution proposals (SIMD, threads, exceptions) a
  module uses, for ``scripts/spec.py``'s count of what needs execution;
* :mod:`harness.oracle` compares an instantiation with wasmtime-py's
  (``scripts/fuzz_differential.py``, tests/test_differential.py);
* :mod:`harness.execution` compares one call with wasmtime-py's (results, traps) and runs
  the spec scripts' invokes in the interpreter;
* :mod:`harness.typed_refs` makes random modules using typed function references;
* :mod:`harness.differential` compares whole modules' execution with wasmtime-py's, with the
  same imports: results, traps, host calls, memories, globals, tables (``scripts/fuzz_exec.py``,
  tests/test_fuzz_exec.py, tests/test_interp_differential.py).

Scripts import it as ``harness`` (their folder is on ``sys.path`` when run as
``python scripts/NAME.py``); tests/conftest.py puts ``scripts/`` on ``sys.path`` for the tests.
"""
