"""The verifier catches a faked shard exactly when the challenge lands on it."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec, keccak256, parse_spec, spec_hash
from neurotoken.proofs import (
    Commitment,
    LocalStore,
    Reason,
    challenge_indices,
    detection_probability,
    detection_probability_exact,
    verify_job,
)
from neurotoken.proofs.bundle import from_hex
from neurotoken.provider import publish_bundle
from neurotoken.workloads import compute_shard, container
from neurotoken.workloads import training as tr
from neurotoken.workloads.shelf_job import compute_shelf_shard
from tests.constants import shelf_spec_dict, training_spec_dict

from .conftest import COMPUTE_SETTINGS, BuiltJob

SEEDS = st.binary(min_size=32, max_size=32)


def recommit(job: BuiltJob, replace: dict[int, bytes], job_id: int | None = None) -> Commitment:
    """A cheating provider's commitment: `job` with some outputs swapped, bundle consistent."""
    hashes = [keccak256(o) for o in job.outputs]
    for index, data in replace.items():
        hashes[index] = job.store.put_object(data)
    jid = job.commitment.job_id if job_id is None else job_id
    manifest = publish_bundle(job.store, jid, job.spec, hashes)
    return Commitment(jid, spec_hash(job.spec), job.spec.shard_count, from_hex(manifest.root))


def tamper_shelf(kind: str, job: BuiltJob, index: int) -> bytes:
    honest = job.outputs[index]
    if kind == "flip-one-pixel":
        data = bytearray(honest)
        data[-7] ^= 0x01  # a byte in the instance map / pixels at the end
        return bytes(data)
    if kind == "another-shards-output":
        return job.outputs[(index + 1) % len(job.outputs)]
    if kind == "rendered-with-another-seed":
        other = parse_spec(shelf_spec_dict(seed=999))
        assert isinstance(other, ShelfImagesSpec)
        return compute_shelf_shard(other, index)
    return honest[: len(honest) // 2]  # truncated


# --- honest work is accepted ----------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 16])
def test_verify_job__honest_shelf_job__is_accepted(honest_shelf_job: BuiltJob, k: int) -> None:
    job = honest_shelf_job
    verdict = verify_job(job.spec, job.commitment, b"\x05" * 32, k, job.store)
    assert verdict.accepted, verdict.summary()
    assert len(verdict.challenged) == k and not verdict.findings


@pytest.mark.parametrize("spec_fixture", ["training_spec", "float_spec"])
def test_verify_job__honest_training_job__is_accepted(
    request: pytest.FixtureRequest, make_job: Callable[..., BuiltJob], spec_fixture: str
) -> None:
    spec = request.getfixturevalue(spec_fixture)
    job = make_job(spec)
    verdict = verify_job(spec, job.commitment, b"\x09" * 32, spec.shard_count, job.store)
    assert verdict.accepted, verdict.summary()


# --- a faked shard is caught exactly when challenged -----------------------------------------


@COMPUTE_SETTINGS
@given(
    index=st.integers(0, 15),
    kind=st.sampled_from(
        ["flip-one-pixel", "another-shards-output", "rendered-with-another-seed", "truncated"]
    ),
    seed=SEEDS,
    k=st.integers(1, 6),
)
def test_tampered_shelf_shard__is_detected_whenever_challenged(
    honest_shelf_job: BuiltJob, index: int, kind: str, seed: bytes, k: int
) -> None:
    job = honest_shelf_job
    commitment = recommit(job, {index: tamper_shelf(kind, job, index)})
    verdict = verify_job(job.spec, commitment, seed, k, job.store)
    if index in challenge_indices(seed, commitment.job_id, commitment.shard_count, k):
        assert not verdict.accepted
        assert [(f.reason, f.shard) for f in verdict.findings] == [
            (Reason.RECOMPUTE_MISMATCH, index)
        ]
    else:
        assert verdict.accepted, verdict.summary()


@COMPUTE_SETTINGS
@given(
    index=st.integers(0, 11), seed=SEEDS, k=st.integers(1, 4), nudge=st.sampled_from([1, -1, 1000])
)
def test_tampered_training_checkpoint__is_detected_whenever_challenged(
    fixed_training_job: BuiltJob, index: int, seed: bytes, k: int, nudge: int
) -> None:
    job = fixed_training_job
    spec = job.spec
    assert isinstance(spec, TrainingSpec)
    shard = tr.decode_training_shard(spec, job.outputs[index])
    params = {name: value.copy() for name, value in shard.params.items()}
    params["W1"][0, 0] += nudge  # one weight, by as little as 2**-16
    faked = tr.encode_training_shard(spec, index, params, shard.metrics)
    commitment = recommit(job, {index: faked})
    challenged = challenge_indices(seed, commitment.job_id, commitment.shard_count, k)
    verdict = verify_job(spec, commitment, seed, k, job.store)
    if index in challenged:
        assert (Reason.RECOMPUTE_MISMATCH, index) in [(f.reason, f.shard) for f in verdict.findings]
    # Shard index+1 was computed from the honest checkpoint, so it no longer follows either.
    if index + 1 in challenged:
        assert (Reason.RECOMPUTE_MISMATCH, index + 1) in [
            (f.reason, f.shard) for f in verdict.findings
        ]
    if index not in challenged and index + 1 not in challenged:
        assert verdict.accepted, verdict.summary()


@pytest.fixture(scope="module")
def fixed_training_job(tmp_path_factory: pytest.TempPathFactory) -> BuiltJob:
    from .conftest import build_job

    return build_job(parse_spec(training_spec_dict()), tmp_path_factory.mktemp("fixed-training"))


def test_float32_shard_out_of_tolerance__is_rejected(
    make_job: Callable[..., BuiltJob], float_spec: TrainingSpec
) -> None:
    job = make_job(float_spec)
    shard = tr.decode_training_shard(float_spec, job.outputs[5])
    params = {name: value.copy() for name, value in shard.params.items()}
    params["b1"][0] += np.float32(0.01)
    commitment = recommit(job, {5: tr.encode_training_shard(float_spec, 5, params, shard.metrics)})
    verdict = verify_job(float_spec, commitment, b"\x01" * 32, float_spec.shard_count, job.store)
    assert (Reason.OUT_OF_TOLERANCE, 5) in [(f.reason, f.shard) for f in verdict.findings]


def test_float32_shard_that_is_not_a_checkpoint__is_rejected_as_malformed(
    make_job: Callable[..., BuiltJob], float_spec: TrainingSpec
) -> None:
    job = make_job(float_spec)
    garbage = container.encode({"format": "something else"}, {"x": np.zeros(3, np.uint8)})
    commitment = recommit(job, {3: garbage})
    verdict = verify_job(float_spec, commitment, b"\x01" * 32, float_spec.shard_count, job.store)
    found = {(f.reason, f.shard) for f in verdict.findings}
    assert (Reason.SHARD_MALFORMED, 3) in found
    assert (Reason.BAD_CHECKPOINT, 4) in found  # shard 4 starts from the garbage


# --- the detection rate is 1 - (1 - f)^k -------------------------------------------------------


@pytest.mark.parametrize(("shards", "faked", "k"), [(200, 20, 8), (200, 50, 4), (400, 20, 16)])
def test_detection_rate__over_many_challenges__matches_the_formula(
    shards: int, faked: int, k: int
) -> None:
    trials = 1500
    fake = set(range(0, shards, shards // faked))
    assert len(fake) == faked
    hits = sum(
        bool(fake & set(challenge_indices(keccak256(t.to_bytes(4, "big")), 1, shards, k)))
        for t in range(trials)
    )
    measured = hits / trials
    exact = detection_probability_exact(shards, faked, k)
    formula = detection_probability(faked / shards, k)
    sigma = math.sqrt(exact * (1 - exact) / trials)
    assert abs(measured - exact) < 4 * sigma, (measured, exact)
    assert formula <= exact < formula + 0.02  # sampling without replacement only helps
    assert measured > formula - 4 * sigma


def test_detection_rate__through_the_verifier__matches_the_formula(
    honest_shelf_job: BuiltJob, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """End to end: fake 4 of 16 shards; challenge k = 2 with 120 seeds; count rejections."""
    job = honest_shelf_job
    faked = {1, 6, 9, 14}
    commitment = recommit(job, {i: tamper_shelf("flip-one-pixel", job, i) for i in faked})
    trials = 120
    rejected = 0
    for t in range(trials):
        seed = keccak256(b"trial" + t.to_bytes(4, "big"))
        verdict = verify_job(job.spec, commitment, seed, 2, job.store)
        caught = bool(faked & set(verdict.challenged))
        assert verdict.accepted is not caught
        rejected += not verdict.accepted
    exact = detection_probability_exact(16, 4, 2)  # 0.45; the formula gives 0.4375
    sigma = math.sqrt(exact * (1 - exact) / trials)
    assert abs(rejected / trials - exact) < 4 * sigma


def test_store_is_content_addressed(honest_shelf_job: BuiltJob) -> None:
    store: LocalStore = honest_shelf_job.store
    digest = keccak256(honest_shelf_job.outputs[0])
    assert store.object(digest, 1 << 30) == honest_shelf_job.outputs[0]
    assert compute_shard(honest_shelf_job.spec, 0, {}) == honest_shelf_job.outputs[0]
