"""The metadata codec (wasmenv/artifact/codec.py, schema.py): one description, both ways."""
import dataclasses

import pytest

from wasmenv import ArtifactError
from wasmenv.artifact import codec, schema


def test_the_description_covers_every_model_field():
    codec.check_complete()  # what save_artifact runs first


def test_a_field_the_description_does_not_store_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0

    record = schema.Record(Point, (("x", "x", schema.Index()),))
    with pytest.raises(ArtifactError, match=r"does not describe Point exactly \(not stored: \['y'\]"):
        schema.check_complete(record)


def test_decode_errors_name_the_field():
    record = schema.Record(range, (("start", "start", schema.Index()), ("stop", "stop", schema.Index())),
                           row=True, make=lambda start, stop: range(start, stop))
    node = schema.List(record)
    assert node.decode([[1, 2], [3, 4]], "r", {}) == (range(1, 2), range(3, 4))
    with pytest.raises(ArtifactError, match=r"^r\[1\]\[0\]: expected an integer, got str"):
        node.decode([[1, 2], ["3", 4]], "r", {})
    with pytest.raises(ArtifactError, match=r"^r\[0\]: expected a list of 2 entries"):
        node.decode([[1]], "r", {})


def test_pairs_are_one_flat_list():
    node = schema.Pairs()
    assert node.encode(((1, 2), (3, 4))) == [1, 2, 3, 4]
    assert node.decode([1, 2, 3, 4], "p", {}) == ((1, 2), (3, 4))
    assert node.decode([], "p", {}) == ()
    with pytest.raises(ArtifactError, match=r"^p: expected pairs of integers, got 3 entries"):
        node.decode([1, 2, 3], "p", {})
    with pytest.raises(ArtifactError, match=r"^p\[2\]: expected an integer in \[0, \d+\], got True"):
        node.decode([1, 2, True, 4], "p", {})
    with pytest.raises(ArtifactError, match=r"^p: expected a list, got dict"):
        node.decode({}, "p", {})
