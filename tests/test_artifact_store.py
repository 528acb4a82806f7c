"""The data store (wasmenv/artifact/store.py): our reader against the pinned mmap-ninja."""
import configparser
import os
import pathlib
import random
from importlib import metadata

import numpy as np
import pytest
from mmap_ninja import RaggedMmap

from wasmenv import ArtifactError
from wasmenv.artifact import store

ROOT = pathlib.Path(__file__).resolve().parent.parent


def pinned_version():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    for line in cfg["options"]["install_requires"].split("\n"):
        name, _, version = line.strip().partition("==")
        if name == "mmap-ninja":
            return version
    raise AssertionError("setup.cfg does not pin mmap-ninja (the loader reads its files itself)")


def test_the_installed_mmap_ninja_is_the_pinned_one():
    assert metadata.version("mmap-ninja") == pinned_version()


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in pathlib.Path(d).rglob("*") if p.is_file())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_our_reader_agrees_with_what_mmap_ninja_writes(tmp_path, seed):
    rng = random.Random(seed)
    items = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    d = str(tmp_path / "ragged")
    rm = RaggedMmap.from_lists(d, [np.frombuffer(b, np.uint8) for b in items[:25]], dtype=np.uint8)
    rm.extend([np.frombuffer(b, np.uint8) for b in items[25:]])  # what save does past a batch
    want_starts, want_ends = [int(x) for x in rm.starts], [int(x) for x in rm.ends]
    del rm
    # Every file mmap-ninja writes is one the reader checks, or one it knowingly ignores
    # (item shapes: with shapes_are_flat they repeat ends - starts). A new one is noticed.
    numpy_dir = ("data.ninja", "dtype.ninja", "order.ninja", "shape.ninja", "type.ninja")
    checked = ["data.ninja", "dtype.ninja", "order.ninja", "shape.ninja", "shapes_are_flat.ninja",
               "type.ninja", *(f"{sub}/{n}" for sub in ("starts", "ends") for n in numpy_dir)]
    ignored = [f"{sub}/{n}" for sub in ("shapes", "flattened_shapes") for n in numpy_dir]
    assert files_under(d) == sorted(checked + ignored)
    size = sum(map(len, items))
    starts, ends = store.read_index(d, size, len(items))
    assert (starts, ends) == (want_starts, want_ends)
    mapping = store.map_readonly(os.path.join(d, store.DATA_NAME), size)
    try:
        assert [mapping[s:e] for s, e in zip(starts, ends)] == items
    finally:
        mapping.close()
    with pytest.raises(ArtifactError, match="metadata says"):
        store.read_index(d, size, len(items) + 1)
