"""The cost model: every shard a spec allows is one an oracle can re-execute within its budget,
and the model's work units are the work the workloads really do.

No test here is timed: they assert on work units. The measured seconds behind the units are
in the benchmark (`python -m bench.compute_speed cost`) and docs/proofs.md.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.compute_speed import LARGEST_SHARDS
from neurotoken.jobs import (
    MAX_CHALLENGES,
    MAX_RESULT_BYTES,
    VERIFY_BUDGET_S,
    VERIFY_MEMORY_BYTES,
    ShelfImagesSpec,
    SpecError,
    TrainingSpec,
    market_problems,
    max_shard_bytes,
    parse_spec,
    shard_work,
    verification_cost,
)
from neurotoken.jobs.spec import (
    FETCH_BUDGET_S,
    FLOAT32_UNPAYABLE,
    MAX_SHARD_COST_NS,
    products_per_image,
    shard_memory_bytes,
)
from neurotoken.workloads import compute_shard, training
from neurotoken.workloads.shelf import render_image
from neurotoken.workloads.shelf_job import decode_shelf_shard
from tests.constants import shelf_spec_dict, training_spec_dict

from .conftest import COMPUTE_SETTINGS

# --- the limits: the largest shards are verifiable ------------------------------------------


@pytest.mark.parametrize("name", list(LARGEST_SHARDS))
def test_largest_shard__is_verifiable_and_payable_at_k_64(name: str) -> None:
    spec = parse_spec(LARGEST_SHARDS[name])
    assert shard_work(spec).cost_ns() <= MAX_SHARD_COST_NS
    cost = verification_cost(spec, MAX_CHALLENGES)
    assert cost.cpu_s <= VERIFY_BUDGET_S
    assert cost.result_bytes <= MAX_RESULT_BYTES
    assert cost.memory_bytes <= VERIFY_MEMORY_BYTES
    assert market_problems(spec, MAX_CHALLENGES) == []


@pytest.mark.parametrize("name", list(LARGEST_SHARDS))
def test_largest_shard__with_one_more_image_or_step__does_not_parse(name: str) -> None:
    raw = LARGEST_SHARDS[name]
    field = "images_per_shard" if raw["kind"] == "shelf-images" else "steps_per_segment"
    with pytest.raises(SpecError) as info:
        parse_spec({**raw, field: raw[field] + 1})
    assert info.value.field == field


_SCENES = st.fixed_dictionaries(
    {
        "width": st.integers(32, 1024),
        "height": st.integers(96, 1024),
        "shelves": st.integers(1, 6),
        "max_products_per_shelf": st.integers(1, 24),
        "occlusion_pct": st.integers(0, 100),
        "lighting_pct": st.integers(0, 50),
        "noise_level": st.integers(0, 32),
    }
)


def _skewed(lo: int, small: int, hi: int) -> st.SearchStrategy[int]:
    """Integers in [lo, hi], half of them at most `small` (so more draws make valid specs)."""
    return st.one_of(st.integers(lo, small), st.integers(lo, hi))


@settings(max_examples=300, deadline=None)
@given(
    scene=_SCENES,
    images=_skewed(1, 4, 64),
    crop=st.integers(4, 32),
    hidden=_skewed(4, 32, 256),
    batch=_skewed(1, 32, 256),
    steps=_skewed(1, 64, 4096),
    training_kind=st.booleans(),
)
def test_any_spec_that_parses__is_verifiable_at_k_64(
    scene: dict[str, int],
    images: int,
    crop: int,
    hidden: int,
    batch: int,
    steps: int,
    training_kind: bool,
) -> None:
    """The per-shard limits alone keep any fixed-point job of up to 64 shards verifiable
    with 64 challenges; larger jobs are bounded by the result size only."""
    raw: dict[str, Any] = (
        training_spec_dict(
            scene=scene,
            images_per_segment=images,
            crop_size=crop,
            hidden_units=hidden,
            batch_size=batch,
            steps_per_segment=steps,
            shard_count=64,
        )
        if training_kind
        else shelf_spec_dict(scene=scene, images_per_shard=images, shard_count=64)
    )
    try:
        spec = parse_spec(raw)
    except SpecError:
        return
    assert shard_work(spec).cost_ns() <= MAX_SHARD_COST_NS
    assert market_problems(spec, MAX_CHALLENGES) == []


# --- market_problems --------------------------------------------------------------------------


def test_market_problems__float32_training__is_not_payable(float_spec: TrainingSpec) -> None:
    assert market_problems(float_spec, 4) == [FLOAT32_UNPAYABLE]
    fixed = parse_spec(training_spec_dict(arithmetic="fixed-point"))
    assert market_problems(fixed, 4) == []


@pytest.mark.parametrize(
    ("shards", "k", "ok"),
    [
        (16, 1, True),
        (16, 16, True),
        (16, 17, False),
        (16, 0, False),
        (100, 64, True),
        (100, 65, False),
    ],
)
def test_market_problems__challenge_count__is_1_to_min_of_shards_and_64(
    shards: int, k: int, ok: bool
) -> None:
    spec = parse_spec(shelf_spec_dict(shard_count=shards))
    assert (market_problems(spec, k) == []) is ok


def test_market_problems__result_over_the_download_bound__is_not_payable() -> None:
    scene = {**shelf_spec_dict()["scene"], "width": 1024, "height": 1024}
    size = max_shard_bytes(parse_spec(shelf_spec_dict(scene=scene)))
    fits = MAX_RESULT_BYTES // size
    assert market_problems(parse_spec(shelf_spec_dict(scene=scene, shard_count=fits)), 8) == []
    (problem,) = market_problems(parse_spec(shelf_spec_dict(scene=scene, shard_count=fits + 1)), 8)
    assert problem.startswith(f"the result may take {(fits + 1) * size} bytes")


def test_market_problems__spec_built_around_the_limits__is_over_the_cpu_budget() -> None:
    """A spec object that skipped validation (the limits are checked when parsing) is still
    judged by the cost model: 64 shards of 16 megapixels cannot be verified in time."""
    ok = parse_spec(shelf_spec_dict(shard_count=64))
    assert isinstance(ok, ShelfImagesSpec)
    big_scene = ok.scene.model_copy(update={"width": 1024, "height": 1024})
    huge = ok.model_copy(update={"scene": big_scene, "images_per_shard": 16})
    problems = market_problems(huge, 64)
    assert any(p.startswith("verifying takes about") for p in problems), problems


# --- the units are the work the workloads do --------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(scene=_SCENES, seed=st.binary(min_size=32, max_size=32))
def test_products_per_image__bounds_the_products_drawn(scene: dict[str, int], seed: bytes) -> None:
    scene = {**scene, "width": min(scene["width"], 256), "height": min(scene["height"], 256)}
    spec = parse_spec(shelf_spec_dict(scene=scene))
    assert isinstance(spec, ShelfImagesSpec)
    image = render_image(spec.scene, seed)
    assert len(image.labels) <= products_per_image(spec.scene)


@pytest.mark.parametrize("images", [1, 3])
def test_shelf_shard__pixels_products_and_bytes_are_within_the_model(images: int) -> None:
    scene = {**shelf_spec_dict()["scene"], "shelves": 3, "max_products_per_shelf": 24}
    scene.update(occlusion_pct=100)
    spec = parse_spec(shelf_spec_dict(scene=scene, images_per_shard=images))
    assert isinstance(spec, ShelfImagesSpec)
    work = shard_work(spec)
    data = compute_shard(spec, 0, {})
    shard = decode_shelf_shard(data)
    assert sum(img.rgb.shape[0] * img.rgb.shape[1] for img in shard.images) == work.pixels
    assert sum(len(img.labels) for img in shard.images) <= work.products
    assert len(data) <= max_shard_bytes(spec)


class _Counting(np.ndarray):  # type: ignore[type-arg]
    """An array that counts the multiply-accumulates of every matrix product it takes part in."""

    macs = 0

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain = [np.asarray(x) if isinstance(x, _Counting) else x for x in inputs]
        outs = kwargs.get("out")
        if outs:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, _Counting) else o for o in outs)
        if ufunc is np.matmul and method == "__call__":
            a, b = plain[0], plain[1]
            assert a.ndim == b.ndim == 2
            _Counting.macs += a.shape[0] * a.shape[1] * b.shape[1]
        result = getattr(ufunc, method)(*plain, **kwargs)
        if outs:
            return outs[0] if len(outs) == 1 else outs
        return result.view(_Counting) if isinstance(result, np.ndarray) else result


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"crop_size": 16, "hidden_units": 40, "batch_size": 24, "steps_per_segment": 3},
        {"images_per_segment": 3, "crop_size": 5, "hidden_units": 7, "batch_size": 1},
    ],
)
def test_training_segment__does_exactly_the_macs_the_model_counts(
    overrides: dict[str, int],
) -> None:
    spec = parse_spec(training_spec_dict(**overrides))
    assert isinstance(spec, TrainingSpec)
    work = shard_work(spec)
    data = training.segment_data(spec, 1)
    pool = len(data.classes)
    assert 0 < pool <= work.crops
    counted = training.SegmentData(data.features.view(_Counting), data.classes, data.batches)
    params: training.Params = {
        k: v.view(_Counting) for k, v in training.initial_params(spec).items()
    }
    _Counting.macs = 0
    after, _ = training.run_segment(spec, params, counted)
    d, h, b = spec.crop_size**2 * 3, spec.hidden_units, spec.batch_size
    steps = spec.steps_per_segment * b * h * (2 * d + 3 * 16)
    assert _Counting.macs == steps + pool * h * (d + 16)
    assert _Counting.macs <= work.macs
    assert work.param_updates == spec.steps_per_segment * sum(v.size for v in after.values())
    # the counting arrays changed nothing: the same parameters as a plain run
    plain, _ = training.run_segment(spec, training.initial_params(spec), data)
    assert all(np.array_equal(np.asarray(after[k]), plain[k]) for k in plain)


@pytest.mark.parametrize(
    "raw",
    [
        shelf_spec_dict(images_per_shard=4),
        training_spec_dict(crop_size=16, hidden_units=64, batch_size=32, steps_per_segment=2),
    ],
)
def test_reexecution__peak_memory_is_within_the_model(raw: dict[str, Any]) -> None:
    spec = parse_spec(raw)
    deps = {0: compute_shard(spec, 0, {})} if isinstance(spec, TrainingSpec) else {}
    index = 1 if deps else 0
    tracemalloc.start()
    try:
        compute_shard(spec, index, deps)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= shard_memory_bytes(spec)


@COMPUTE_SETTINGS
@given(shards=st.integers(1, 4096), k=st.integers(1, 64))
def test_verification_cost__counts_k_shards_and_hashes_all(
    training_spec: TrainingSpec, shards: int, k: int
) -> None:
    spec = training_spec.model_copy(update={"shard_count": shards})
    cost = verification_cost(spec, k)
    assert cost.challenged == min(k, shards)
    assert cost.reexecute_ns == cost.challenged * shard_work(spec).cost_ns()
    assert cost.result_bytes == shards * max_shard_bytes(spec)


def test_fetching_every_shard__bounds_the_shard_count_a_job_may_pay_for() -> None:
    """Oracles fetch every shard output before accepting: a job of 65,536 tiny shards would
    take them ~205 s of round trips alone, past the fetch budget, so it is not payable; half
    as many shards fit."""
    tiny = {
        "kind": "shelf-images",
        "version": 1,
        "seed": 1,
        "scene": {
            "width": 32,
            "height": 32,
            "shelves": 1,
            "max_products_per_shelf": 1,
            "occlusion_pct": 0,
            "lighting_pct": 0,
            "noise_level": 0,
        },
        "images_per_shard": 1,
    }
    most = parse_spec({**tiny, "shard_count": 65_536})
    assert verification_cost(most, 8).fetch_s > FETCH_BUDGET_S
    assert any("fetching every shard output" in p for p in market_problems(most, 8))
    half = parse_spec({**tiny, "shard_count": 32_768})
    assert verification_cost(half, 8).fetch_s <= FETCH_BUDGET_S
    assert market_problems(half, 8) == []
