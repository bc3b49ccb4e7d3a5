"""The two workloads: deterministic to the byte, labels exact, training that learns."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec, keccak256, market_problems, parse_spec
from neurotoken.jobs.spec import FLOAT32_UNPAYABLE
from neurotoken.workloads import CheckFailure, check_shard, compute_shard, container, training
from neurotoken.workloads.shelf import render_image
from neurotoken.workloads.shelf_job import decode_shelf_shard
from tests.constants import shelf_spec_dict, training_spec_dict

from .conftest import COMPUTE_SETTINGS

# Pinned output hashes. They hold on any machine: the workloads use integer numpy arithmetic
# and SHAKE-256 only. If one changes, every committed job root changes with it.
SHELF_SHARD_0 = "70c552924eb3de81d681df1c07c49a90b33c133a3630230a6122fb87806d73e8"
TRAINING_SHARD_2 = "4b0eb3e20cb8b73e52c24f2cef490fafe4c8fa1cb98b84ab4c0d492c021bfe1e"


def _chain(spec: TrainingSpec, upto: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(upto + 1):
        out.append(compute_shard(spec, i, {i - 1: out[-1]} if i else {}))
    return out


# --- shelf images ---------------------------------------------------------------------------


def test_shelf_shard__is_pinned_to_its_hash(shelf_spec: ShelfImagesSpec) -> None:
    assert keccak256(compute_shard(shelf_spec, 0, {})).hex() == SHELF_SHARD_0


def test_shelf_shard__depends_on_seed_and_index(shelf_spec: ShelfImagesSpec) -> None:
    other_seed = parse_spec(shelf_spec_dict(seed=12))
    a = compute_shard(shelf_spec, 0, {})
    assert compute_shard(shelf_spec, 1, {}) != a
    assert compute_shard(other_seed, 0, {}) != a


@settings(max_examples=15, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), occlusion=st.integers(0, 100))
def test_render_image__labels_agree_with_the_instance_map(seed: bytes, occlusion: int) -> None:
    scene = parse_spec(
        shelf_spec_dict(scene={**shelf_spec_dict()["scene"], "occlusion_pct": occlusion})
    )
    assert isinstance(scene, ShelfImagesSpec)
    image = render_image(scene.scene, seed)
    assert image.rgb.shape == (48, 64, 3) and image.rgb.dtype == np.uint8
    ids = np.unique(image.instances)
    assert set(ids.tolist()) <= {0} | {lab["instance"] for lab in image.labels}
    for depth, label in enumerate(image.labels):
        mask = image.instances == label["instance"]
        assert label["depth"] == depth
        assert label["visible_pixels"] == int(mask.sum())
        assert label["visible_pixels"] <= label["area_pixels"]
        assert 0 <= label["class"] < 16
        if label["bbox"] is None:
            assert not mask.any()
            continue
        x0, y0, x1, y1 = label["bbox"]
        rows, cols = np.nonzero(mask)
        assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        ax0, ay0, ax1, ay1 = label["amodal_bbox"]
        assert ax0 <= x0 and ay0 <= y0 and x1 <= ax1 and y1 <= ay1


def test_render_image__with_heavy_occlusion__hides_some_products_partly() -> None:
    spec = parse_spec(shelf_spec_dict(scene={**shelf_spec_dict()["scene"], "occlusion_pct": 100}))
    assert isinstance(spec, ShelfImagesSpec)
    image = render_image(spec.scene, b"\x07" * 32)
    assert any(0 < lab["visible_pixels"] < lab["area_pixels"] for lab in image.labels)


def test_decode_shelf_shard__returns_images_and_labels(shelf_spec: ShelfImagesSpec) -> None:
    shard = decode_shelf_shard(compute_shard(shelf_spec, 3, {}))
    assert shard.index == 3 and len(shard.images) == shelf_spec.images_per_shard
    assert shard.images[0].labels and shard.images[0].rgb.shape == (48, 64, 3)


# --- the container --------------------------------------------------------------------------


def test_container__round_trips_arrays_and_meta() -> None:
    arrays: dict[str, npt.NDArray[Any]] = {
        "a": np.arange(6, dtype=np.int64).reshape(2, 3),
        "b": np.ones(4, np.float32),
    }
    meta, back = container.decode(container.encode({"k": [1, None]}, arrays))
    assert meta == {"k": [1, None]}
    assert all(np.array_equal(back[name], arrays[name]) for name in arrays)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_container_decode__on_mutated_bytes__returns_or_raises_container_error(
    data: st.DataObject,
) -> None:
    good = bytearray(container.encode({"x": 1}, {"a": np.arange(5, dtype=np.uint8)}))
    action = data.draw(st.sampled_from(["flip", "truncate", "extend", "random"]))
    if action == "flip":
        pos = data.draw(st.integers(0, len(good) - 1))
        good[pos] ^= data.draw(st.integers(1, 255))
    elif action == "truncate":
        del good[data.draw(st.integers(0, len(good) - 1)) :]
    elif action == "extend":
        good += data.draw(st.binary(min_size=1, max_size=16))
    else:
        good = bytearray(container.MAGIC + data.draw(st.binary(max_size=64)))
    with contextlib.suppress(container.ContainerError):
        container.decode(bytes(good))


@pytest.mark.parametrize(
    "header",
    [
        b'{"arrays":[{"dtype":"f8","name":"a","shape":[1]}],"meta":{}}',
        b'{"arrays":[{"dtype":"u1","name":"a","shape":[-1]}],"meta":{}}',
        b'{"arrays":[{"dtype":"u1","name":"a","shape":[1000000000000]}],"meta":{}}',
        b'{"arrays":[],"meta":{},"extra":1}',
        b'{"arrays":[],"meta":{"x":1.5}}',
    ],
)
def test_container_decode__hostile_header__raises_container_error(header: bytes) -> None:
    with pytest.raises(container.ContainerError):
        container.decode(container.MAGIC + len(header).to_bytes(4, "big") + header + b"\x00")


# --- training -------------------------------------------------------------------------------


def test_training_shard__is_pinned_to_its_hash(training_spec: TrainingSpec) -> None:
    assert keccak256(_chain(training_spec, 2)[2]).hex() == TRAINING_SHARD_2


def test_training_shard__reexecutes_from_the_previous_checkpoint_alone(
    training_spec: TrainingSpec,
) -> None:
    chain = _chain(training_spec, 3)
    assert compute_shard(training_spec, 3, {2: chain[2]}) == chain[3]
    assert check_shard(training_spec, 3, chain[3], {2: chain[2]}).ok
    # The same segment from another checkpoint is another result.
    assert compute_shard(training_spec, 3, {2: chain[1]}) != chain[3]


def test_fixed_point_training__learns_to_classify_products() -> None:
    spec = parse_spec(
        training_spec_dict(
            scene={**shelf_spec_dict()["scene"], "width": 128, "height": 64},
            images_per_segment=2,
            steps_per_segment=10,
            batch_size=16,
            hidden_units=16,
            shard_count=10,
        )
    )
    assert isinstance(spec, TrainingSpec)
    chain = _chain(spec, 9)
    first = training.decode_training_shard(spec, chain[0]).metrics
    late = [training.decode_training_shard(spec, c).metrics for c in chain[6:]]
    # Accuracy on each segment's fresh images, measured before it trains on them.
    before = first["pool_correct_before"] / first["pool_size"]
    after = sum(m["pool_correct_before"] for m in late) / sum(m["pool_size"] for m in late)
    assert before < 0.3 < 0.6 < after


def test_softmax_fixed__tracks_the_real_softmax() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(64, 16))
    fixed = training.softmax_fixed(np.round(logits * training.ONE).astype(np.int64)) / training.ONE
    exact = np.exp(logits - logits.max(1, keepdims=True))
    exact /= exact.sum(1, keepdims=True)
    assert np.abs(fixed - exact).max() < 2e-3


def test_decode_training_shard__with_values_beyond_the_clip__raises(
    training_spec: TrainingSpec,
) -> None:
    shard = training.decode_training_shard(training_spec, _chain(training_spec, 0)[0])
    params = dict(shard.params)
    params["W2"] = params["W2"].copy()
    params["W2"][0, 0] = training.PARAM_LIMIT + 1
    bad = training.encode_training_shard(training_spec, 0, params, shard.metrics)
    with pytest.raises(container.ContainerError, match="beyond"):
        training.decode_training_shard(training_spec, bad)
    check = check_shard(training_spec, 1, _chain(training_spec, 1)[1], {0: bad})
    assert check.failure == CheckFailure.BAD_DEPENDENCY


# --- float32 and the tolerance comparator ----------------------------------------------------


def _float64_segment(
    spec: TrainingSpec,
    params: training.Params,
    data: training.SegmentData,
    steps: int | None = None,
) -> training.Params:
    """An independent float64 implementation: a different 'device' with other rounding."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    x_all = (data.features.astype(np.float64) - 128) / 128
    lr = spec.learning_rate_ppm / 1e6
    for step, rows in enumerate(data.batches):
        if steps is not None and step >= steps:
            break
        x, y = x_all[rows], data.classes[rows]
        z1 = x @ p["W1"] + p["b1"]
        h = np.maximum(z1, 0)
        z2 = h @ p["W2"] + p["b2"]
        e = np.exp(z2 - z2.max(1, keepdims=True))
        dz2 = e / e.sum(1, keepdims=True)
        dz2[np.arange(len(y)), y] -= 1
        dz2 /= len(y)
        dz1 = (dz2 @ p["W2"].T) * (z1 > 0)
        grads = {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": h.T @ dz2, "b2": dz2.sum(0)}
        p = {k: p[k] - lr * grads[k] for k in p}
    return p


@COMPUTE_SETTINGS
@given(segment=st.integers(0, 11))
def test_float32_segment__matches_a_float64_reexecution_within_tolerance(
    float_spec: TrainingSpec, segment: int
) -> None:
    params = training.initial_params(float_spec)
    data = training.segment_data(float_spec, segment)
    ours, _ = training.run_segment(float_spec, params, data)
    theirs = _float64_segment(float_spec, params, data)
    ok, where = training.within_tolerance(ours, theirs, training.FLOAT32_TOLERANCE)
    assert ok, where


def test_float32_segment__with_reordered_sums__stays_within_tolerance(
    float_spec: TrainingSpec,
) -> None:
    """Another BLAS or GPU adds in another order; float32 results differ in the last bits."""
    params = training.initial_params(float_spec)
    data = training.segment_data(float_spec, 1)
    ours, _ = training.run_segment(float_spec, params, data)
    reordered = dict(params, W1=params["W1"][::-1].copy())  # input features in reverse order
    flipped = training.SegmentData(data.features[:, ::-1].copy(), data.classes, data.batches)
    theirs, _ = training.run_segment(float_spec, reordered, flipped)
    theirs["W1"] = theirs["W1"][::-1]
    ok, where = training.within_tolerance(theirs, ours, training.FLOAT32_TOLERANCE)
    assert ok, where


@pytest.mark.parametrize(
    "cheat", ["skip-last-step", "half-learning-rate", "nudge-one-weight", "nan"]
)
def test_within_tolerance__rejects_real_deviations(float_spec: TrainingSpec, cheat: str) -> None:
    params = training.initial_params(float_spec)
    data = training.segment_data(float_spec, 2)
    honest, _ = training.run_segment(float_spec, params, data)
    if cheat == "skip-last-step":
        claimed = {
            k: v.astype(np.float32)
            for k, v in _float64_segment(float_spec, params, data, steps=3).items()
        }
    elif cheat == "half-learning-rate":
        slow = parse_spec(training_spec_dict(arithmetic="float32", learning_rate_ppm=100_000))
        assert isinstance(slow, TrainingSpec)
        claimed, _ = training.run_segment(slow, params, data)
    elif cheat == "nudge-one-weight":
        claimed = {k: v.copy() for k, v in honest.items()}
        claimed["W1"][3, 2] += np.float32(1e-3)
    else:
        claimed = {k: v.copy() for k, v in honest.items()}
        claimed["b2"][0] = np.nan
    ok, where = training.within_tolerance(claimed, honest, training.FLOAT32_TOLERANCE)
    assert not ok and where


def test_within_tolerance__with_missing_or_reshaped_tensor__rejects(
    float_spec: TrainingSpec,
) -> None:
    honest = training.initial_params(float_spec)
    assert not training.within_tolerance(
        {k: v for k, v in honest.items() if k != "b1"}, honest, training.FLOAT32_TOLERANCE
    )[0]
    reshaped = dict(honest, W2=honest["W2"].T.copy())
    assert not training.within_tolerance(reshaped, honest, training.FLOAT32_TOLERANCE)[0]


def test_check_shard__float32_shard_from_another_device__is_accepted(
    float_spec: TrainingSpec,
) -> None:
    params = training.initial_params(float_spec)
    data = training.segment_data(float_spec, 0)
    other = {k: v.astype(np.float32) for k, v in _float64_segment(float_spec, params, data).items()}
    _, metrics = training.run_segment(float_spec, params, data)
    claimed = training.encode_training_shard(float_spec, 0, other, metrics)
    assert claimed != compute_shard(float_spec, 0, {})  # not bit-identical ...
    assert check_shard(float_spec, 0, claimed, {}).ok  # ... yet within tolerance


def _walked(spec: TrainingSpec, params: training.Params, push: float) -> training.Params:
    """Every parameter moved up by `push` of what the tolerance allows around it."""
    tol = training.FLOAT32_TOLERANCE
    out: training.Params = {}
    for name, value in params.items():
        ref = value.astype(np.float64)
        out[name] = (ref + push * (tol.atol + tol.rtol * np.abs(ref))).astype(value.dtype)
    return out


def test_float32_walk_under_tolerance__every_segment_passes_check_shard_but_job_is_not_payable(
    float_spec: TrainingSpec,
) -> None:
    """The attack on a tolerance. A provider re-executes each segment from its own committed
    checkpoint (exactly what a verifier will do) and moves every parameter to just under the
    tolerance, always the same way. Every segment passes `check_shard`, so any challenge
    passes; but the drift from the honest model adds up segment after segment, without bound
    (the steered model is the attacker's, not the one trained). Fixed-point leaves no slack:
    a change of one unit in the last place fails. So paid training is fixed-point only."""
    shards = float_spec.shard_count
    honest = _chain(float_spec, shards - 1)
    walked: list[bytes] = []
    drift: list[float] = []
    for i in range(shards):
        deps = {i - 1: walked[-1]} if i else {}
        start = (
            training.decode_training_shard(float_spec, walked[-1]).params
            if i
            else training.initial_params(float_spec)
        )
        reference, metrics = training.run_segment(
            float_spec, start, training.segment_data(float_spec, i)
        )
        claimed = training.encode_training_shard(
            float_spec, i, _walked(float_spec, reference, 0.9), metrics
        )
        assert check_shard(float_spec, i, claimed, deps).ok, f"segment {i}"
        walked.append(claimed)
        ours = training.decode_training_shard(float_spec, claimed).params
        theirs = training.decode_training_shard(float_spec, honest[i]).params
        drift.append(max(float(np.abs(ours[k] - theirs[k]).max()) for k in theirs))
    # The walk leaves the honest chain further behind with every segment ...
    assert drift[-1] > 5 * drift[0]
    final = training.decode_training_shard(float_spec, walked[-1]).params
    honest_final = training.decode_training_shard(float_spec, honest[-1]).params
    ok, _ = training.within_tolerance(final, honest_final, training.FLOAT32_TOLERANCE)
    assert not ok  # ... far beyond the tolerance by the end, yet no segment was caught.
    # So the market does not pay for float32 training; the same job in fixed point is payable,
    # and there a walk of one unit in the last place is caught.
    assert market_problems(float_spec, 4) == [FLOAT32_UNPAYABLE]
    fixed = parse_spec(training_spec_dict(arithmetic="fixed-point"))
    assert isinstance(fixed, TrainingSpec) and market_problems(fixed, 4) == []
    chain = _chain(fixed, 1)
    shard = training.decode_training_shard(fixed, chain[1])
    nudged = {k: v + (1 if k == "b2" else 0) for k, v in shard.params.items()}
    cheat = training.encode_training_shard(fixed, 1, nudged, shard.metrics)
    assert check_shard(fixed, 1, cheat, {0: chain[0]}).failure == CheckFailure.MISMATCH


def test_torch_segment__matches_numpy_within_tolerance(float_spec: TrainingSpec) -> None:
    torch = pytest.importorskip("torch")
    from neurotoken.workloads.training_torch import run_segment_torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    params = training.initial_params(float_spec)
    data = training.segment_data(float_spec, 0)
    ours, metrics = training.run_segment(float_spec, params, data)
    theirs, their_metrics = run_segment_torch(float_spec, params, data, device=device)
    ok, where = training.within_tolerance(theirs, ours, training.FLOAT32_TOLERANCE)
    assert ok, where
    assert training.metrics_agree(their_metrics, metrics)[0]
