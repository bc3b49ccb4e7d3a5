"""The two workloads behind one interface: what a shard needs, how to compute and check it.

* `shelf-images` (`shelf_job`): shard i is a block of rendered shelf images with labels;
  it depends on nothing but the spec.
* `classifier-training` (`training`): shard i is the model after segment i; it depends on
  shard i-1 (the checkpoint it starts from).

`check_shard` is what a verifier runs on a challenged shard: it re-executes the shard from
its dependencies and compares with the claimed bytes, exactly or, for float32 training,
within the stated tolerance. It never raises on hostile bytes; it returns a `ShardCheck`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec
from neurotoken.jobs.spec import max_shard_bytes as spec_max_shard_bytes
from neurotoken.workloads import shelf_job, training
from neurotoken.workloads.container import ContainerError

AnySpec = ShelfImagesSpec | TrainingSpec


class CheckFailure(StrEnum):
    MISMATCH = "re-executed bytes differ"
    OUT_OF_TOLERANCE = "re-executed parameters differ beyond the tolerance"
    MALFORMED = "claimed output is malformed"
    BAD_DEPENDENCY = "the committed checkpoint it starts from is unusable"


@dataclass(frozen=True)
class ShardCheck:
    ok: bool
    failure: CheckFailure | None = None
    detail: str = ""


def dependencies(spec: AnySpec, index: int) -> tuple[int, ...]:
    """The shards whose outputs shard `index` is computed from."""
    if isinstance(spec, TrainingSpec) and index > 0:
        return (index - 1,)
    return ()


def max_shard_bytes(spec: AnySpec) -> int:
    """An upper bound on one shard's size: the most a verifier should fetch for it."""
    return spec_max_shard_bytes(spec)


def compute_shard(spec: AnySpec, index: int, deps: Mapping[int, bytes]) -> bytes:
    """The canonical bytes of shard `index`, given the outputs of its dependencies."""
    if isinstance(spec, ShelfImagesSpec):
        return shelf_job.compute_shelf_shard(spec, index)
    previous = deps[index - 1] if index > 0 else None
    return training.compute_training_shard(spec, index, previous)


def check_shard(spec: AnySpec, index: int, claimed: bytes, deps: Mapping[int, bytes]) -> ShardCheck:
    """Re-executes shard `index` and compares it with `claimed` (never raises on bad bytes)."""
    if isinstance(spec, ShelfImagesSpec) or spec.arithmetic == "fixed-point":
        try:
            expected = compute_shard(spec, index, deps)
        except (ContainerError, KeyError) as exc:
            return ShardCheck(False, CheckFailure.BAD_DEPENDENCY, str(exc))
        if expected == claimed:
            return ShardCheck(True)
        return ShardCheck(False, CheckFailure.MISMATCH, f"{len(claimed)} bytes claimed")
    try:
        got = training.decode_training_shard(spec, claimed)
    except ContainerError as exc:
        return ShardCheck(False, CheckFailure.MALFORMED, str(exc))
    if got.index != index:
        return ShardCheck(False, CheckFailure.MALFORMED, f"labelled shard {got.index}")
    try:
        start = (
            training.decode_training_shard(spec, deps[index - 1]).params
            if index > 0
            else training.initial_params(spec)
        )
    except (ContainerError, KeyError) as exc:
        return ShardCheck(False, CheckFailure.BAD_DEPENDENCY, str(exc))
    reference, metrics = training.run_segment(spec, start, training.segment_data(spec, index))
    ok, where = training.within_tolerance(got.params, reference, training.FLOAT32_TOLERANCE)
    if not ok:
        return ShardCheck(False, CheckFailure.OUT_OF_TOLERANCE, where)
    ok, where = training.metrics_agree(got.metrics, metrics)
    if not ok:
        return ShardCheck(False, CheckFailure.OUT_OF_TOLERANCE, where)
    return ShardCheck(True)


__all__ = [
    "AnySpec",
    "CheckFailure",
    "ShardCheck",
    "check_shard",
    "compute_shard",
    "dependencies",
    "max_shard_bytes",
]
