"""Job specs: canonical bytes, stable hashes, and errors that name the offending field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotoken.jobs import (
    CanonicalJsonError,
    SpecError,
    canonical_json,
    keccak256,
    parse_spec,
    spec_hash,
    spec_json,
)
from tests.constants import shelf_spec_dict, training_spec_dict


def test_keccak256__matches_ethereum_known_vector() -> None:
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"").hex() == empty


def test_canonical_json__sorts_keys_and_drops_whitespace() -> None:
    assert (
        canonical_json({"b": [1, {"d": 2, "c": None}], "a": "x"})
        == b'{"a":"x","b":[1,{"c":null,"d":2}]}'
    )


def test_canonical_json__with_float__raises() -> None:
    with pytest.raises(CanonicalJsonError, match=r"b\[0\]: floats"):
        canonical_json({"b": [1.5]})


def test_spec_hash__is_keccak_of_canonical_json() -> None:
    spec = parse_spec(shelf_spec_dict())
    assert spec_hash(spec) == keccak256(spec_json(spec))
    assert spec_json(spec) == canonical_json(shelf_spec_dict())


def test_spec_hash__is_pinned() -> None:
    """The canonical form is part of the protocol: changing it changes every job's hash."""
    spec = parse_spec(shelf_spec_dict())
    assert (
        spec_hash(spec).hex() == "129fc1bfc6afdf2520bc80744419a9ed33762886f66d9c1f9da2dbdac4f9260e"
    )


def test_parse_spec__from_any_key_order_and_whitespace__gives_the_same_hash() -> None:
    text = b' {"shard_count": 16, "images_per_shard": 1, "seed": 11, "version": 1,\n'
    text += b'"kind": "shelf-images", "scene": {"width": 64, "height": 48, "shelves": 2, '
    text += (
        b'"max_products_per_shelf": 5, "occlusion_pct": 40, "lighting_pct": 20, "noise_level": 4}}'
    )
    assert spec_hash(parse_spec(text)) == spec_hash(parse_spec(shelf_spec_dict()))


def _mutated(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("kind", "mining", "kind", "unknown kind 'mining'"),
        ("kind", _DELETE, "kind", "field required"),
        ("seed", _DELETE, "seed", "Field required"),
        ("scene.noise_level", _DELETE, "scene.noise_level", "Field required"),
        ("colour", "red", "colour", "Extra inputs are not permitted"),
        ("scene.fog", 3, "scene.fog", "Extra inputs are not permitted"),
        ("scene.width", 4096, "scene.width", "less than or equal to 1024"),
        ("shard_count", 0, "shard_count", "greater than or equal to 1"),
        ("seed", -1, "seed", "greater than or equal to 0"),
        ("seed", 1.5, "seed", "valid integer"),
        ("seed", "11", "seed", "valid integer"),
        ("images_per_shard", True, "images_per_shard", "valid integer"),
        ("version", 2, "version", "Input should be 1"),
        ("scene.shelves", 6, "scene.shelves", "at least 96 high"),
        ("images_per_shard", 200, "images_per_shard", "at most 2097152 pixels"),
        ("images_per_shard", 100, "images_per_shard", "may cost at most 1 s to re-execute"),
    ],
)
def test_parse_spec__with_bad_shelf_field__names_the_field(
    path: str, value: Any, field: str, message: str
) -> None:
    base = shelf_spec_dict()
    if path == "images_per_shard" and value == 200:
        base["scene"].update(width=1024, height=1024)
    if path == "images_per_shard" and value == 100:  # 100 x 255 products: about 9 s
        base["scene"].update(shelves=6, height=96, max_products_per_shelf=24)
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(_mutated(base, path, value))
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("arithmetic", "float64", "arithmetic"),
        ("crop_size", 64, "crop_size"),
        ("learning_rate_ppm", 0, "learning_rate_ppm"),
        ("steps_per_segment", 4096, "steps_per_segment"),  # too much work per segment
        ("images_per_segment", 64, "images_per_segment"),  # too many pixels
        ("batch_size", _DELETE, "batch_size"),
    ],
)
def test_parse_spec__with_bad_training_field__names_the_field(
    path: str, value: Any, field: str
) -> None:
    base = training_spec_dict(crop_size=32, hidden_units=256, batch_size=256)
    if path == "images_per_segment":
        base = training_spec_dict(scene={**training_spec_dict()["scene"], "width": 1024})
    elif path != "steps_per_segment":
        base = training_spec_dict()
    with pytest.raises(SpecError) as info:
        parse_spec(_mutated(base, path, value))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps_per_segment": 2000}, "may cost at most 1 s to re-execute"),  # steps' overhead
        ({"crop_size": 32, "hidden_units": 64, "batch_size": 64, "steps_per_segment": 6}, "MACs"),
    ],
)
def test_parse_spec__training_segment_over_its_work_bound__names_steps(
    overrides: dict[str, int], message: str
) -> None:
    raw = training_spec_dict(**overrides)
    if "crop_size" not in overrides:
        raw["scene"] = {**raw["scene"], "width": 1024, "height": 1024, "shelves": 6}
        raw["scene"]["max_products_per_shelf"] = 24
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(raw)
    assert info.value.field == "steps_per_segment"


@pytest.mark.parametrize(
    "document",
    [
        b'{"kind": "shelf-images", "kind": "shelf-images"}',
        b"[1, 2]",
        b"{",
        b'{"seed": 1e3}',
        b"\xff",
    ],
)
def test_parse_spec__with_bad_document__raises_spec_error(document: bytes) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(document)
    assert info.value.field == "(document)"


def test_parse_spec__oversized_document__raises_before_parsing() -> None:
    with pytest.raises(SpecError, match="more than"):
        parse_spec(b'{"x": "' + b"a" * 70_000 + b'"}')


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    width=st.integers(32, 1024),
    height=st.integers(32, 1024),
    shards=st.integers(1, 65536),
    arithmetic=st.sampled_from(["fixed-point", "float32"]),
)
def test_spec_json__round_trips_to_the_same_hash(
    seed: int, width: int, height: int, shards: int, arithmetic: str
) -> None:
    scene = {**shelf_spec_dict()["scene"], "width": width, "height": height}
    for raw in (
        shelf_spec_dict(seed=seed, scene=scene, shard_count=shards),
        training_spec_dict(seed=seed, scene=scene, shard_count=shards, arithmetic=arithmetic),
    ):
        spec = parse_spec(raw)
        again = parse_spec(spec_json(spec))
        assert again == spec
        assert spec_hash(again) == spec_hash(spec)
