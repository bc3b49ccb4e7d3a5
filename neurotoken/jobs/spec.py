"""Job specs: typed, strict, canonical.

A spec says exactly what work a client pays for. It is written as canonical JSON and its
keccak256 (the spec hash) is what the market contract stores. Parsing is strict: an unknown
`kind`, a missing or extra field, a float or string where an integer belongs, or a value out
of range raises `SpecError` naming the field (for example `scene.width`).

Limits keep every shard cheap to re-execute: a cost model (`ShardWork`, nanoseconds per work
unit measured on the reference machine, with a margin) bounds one shard at
MAX_SHARD_COST_NS (1 s). `market_problems` says whether a job of a spec, with its k
challenged shards, is one an oracle can verify within its budget (VERIFY_BUDGET_S of CPU,
MAX_RESULT_BYTES downloaded, VERIFY_MEMORY_BYTES) and one the market pays for: the provider
agent refuses, and the oracle rejects, a job with problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from neurotoken.errors import InputError
from neurotoken.jobs.canonical import CanonicalJsonError, canonical_json, keccak256, parse_json

MAX_SHARDS = 1 << 16
"""The most shards one job may have (bounds manifests, proofs and challenge derivation)."""
MAX_PIXELS_PER_SHARD = 1 << 21
"""The most pixels one shard may render (two 1024x1024 images; bounds bytes and memory)."""
MAX_MACS_PER_SEGMENT = 1 << 27
"""The most multiply-accumulates one training segment may do (see `segment_macs`)."""
NUM_CLASSES = 16
"""Products in the catalogue (see `neurotoken.workloads.catalogue`); the classifier's classes."""
MAX_PRODUCTS_PER_IMAGE = 255
"""Products drawn in one image, at most (instance ids are uint8, 0 is the background)."""
LABEL_BYTES_PER_PRODUCT = 400
"""An upper bound on one product's label in a shelf shard's canonical JSON header."""

# --- what an oracle can afford ----------------------------------------------------------
# Every paid job must be verifiable by one oracle worker (oracle/verify.py: 300 s wall clock,
# 4 GiB of address space) with time to spare. `market_problems` checks a spec against these.

MAX_CHALLENGES = 64
"""The most shards (k) one job may have challenged (the market contract's maximum)."""
VERIFY_BUDGET_S = 120
"""CPU seconds (on the reference machine) an oracle spends on one job: re-executing its k
challenged shards and hashing every shard of the result."""
MAX_RESULT_BYTES = 1 << 30
"""The most bytes a job's whole result may take (N x the shard size bound): an oracle
downloads and hashes every shard to check the result is available (about 43 s at 25 MB/s)."""
VERIFY_MEMORY_BYTES = 2 << 30
"""Memory an oracle worker may need for one job: the challenged shards and their checkpoints
held at once, the fetches in flight, and one shard's re-execution."""
ORACLE_FETCH_CONCURRENCY = 8
"""Shard outputs an oracle fetches at once (`neurotoken.proofs.VerifierLimits`)."""
FETCH_BUDGET_S = 120
"""Wall-clock seconds an oracle spends fetching one job's result (its default fetch budget is
0.8 x its 300 s verification bound: this leaves half of that as margin)."""
OBJECT_ROUND_TRIP_S = 0.025
"""An assumed round trip per shard output fetched from a provider across the internet."""
FETCH_BYTES_PER_S = 16 << 20
"""An assumed download rate from a provider (16 MiB/s)."""
MAX_SHARD_COST_NS = 1_000_000_000
"""The most one shard may cost to re-execute by the cost model: 1 s on the reference machine."""

# --- the cost model -----------------------------------------------------------------------
# Nanoseconds of CPU per work unit on the reference machine (2 cores, numpy 1.26, one core
# used), each at least 1.5 times the largest rate measured for it, and checked on whole shards
# at the limits, which measure at most about half the model (`python -m
# bench.compute_speed cost`; figures and the command in docs/proofs.md section 1).

NS_PER_PIXEL = 450
"""Rendering, per pixel: background, noise, lighting (measured 138 on a sparse image, up to
about 300 with the area of large products)."""
NS_PER_PRODUCT = 360_000
"""Rendering, per product drawn, with its label (measured 173 to 245 us on crowded images)."""
NS_PER_CROP = 60_000
"""Training data, per product crop cut out (measured 15 to 40 us)."""
NS_PER_MAC = 6
"""Fixed-point int64 matrix products, per multiply-accumulate (measured 3.1 to 3.5 in batches;
about 6 at batch 1, where the per-parameter and per-step costs below dominate)."""
NS_PER_PARAM_UPDATE = 12
"""Fixed-point SGD update, per parameter per step (measured 3.8; about 8 with the copies of a
batch-1 step)."""
NS_PER_STEP = 400_000
"""Fixed overhead of one SGD step (measured 106 to 250 us)."""
NS_PER_BYTE_HASHED = 8
"""keccak256 of a fetched output, per byte (measured 3.8 to 4.8)."""


class SpecError(InputError):
    """A job spec is not acceptable; `field` names the first offending field."""

    def __init__(self, field: str, problem: str, others: int = 0) -> None:
        self.field = field
        self.problem = problem
        more = f" (and {others} more problem{'s' if others != 1 else ''})" if others else ""
        super().__init__(f"job spec field '{field}': {problem}{more}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Seed = Annotated[int, Field(ge=0, le=(1 << 64) - 1)]


class SceneSpec(_Strict):
    """How a synthetic shelf image looks."""

    width: Annotated[int, Field(ge=32, le=1024)]
    """Image width in pixels."""
    height: Annotated[int, Field(ge=32, le=1024)]
    """Image height in pixels."""
    shelves: Annotated[int, Field(ge=1, le=6)]
    """Shelf boards per image; each must get at least 16 pixel rows."""
    max_products_per_shelf: Annotated[int, Field(ge=1, le=24)]
    """Upper bound on products standing on one shelf (back row)."""
    occlusion_pct: Annotated[int, Field(ge=0, le=100)]
    """Chance (percent) that a product gets a front-row product partly hiding it."""
    lighting_pct: Annotated[int, Field(ge=0, le=50)]
    """Amplitude (percent) of the random brightness and light-direction gradient."""
    noise_level: Annotated[int, Field(ge=0, le=32)]
    """Amplitude of per-pixel sensor noise, in 8-bit levels."""

    @field_validator("shelves")
    @classmethod
    def _shelves_fit(cls, shelves: int, info: ValidationInfo) -> int:
        height = info.data.get("height")
        if isinstance(height, int) and height // shelves < 16:
            raise ValueError(f"{shelves} shelves need an image at least {16 * shelves} high")
        return shelves


class ShelfImagesSpec(_Strict):
    """Workload 1: synthetic retail-shelf images with pixel-perfect labels."""

    kind: Literal["shelf-images"]
    version: Literal[1]
    seed: Seed
    scene: SceneSpec
    images_per_shard: Annotated[int, Field(ge=1, le=256)]
    shard_count: Annotated[int, Field(ge=1, le=MAX_SHARDS)]

    @field_validator("images_per_shard")
    @classmethod
    def _shard_bounded(cls, n: int, info: ValidationInfo) -> int:
        scene = info.data.get("scene")
        if isinstance(scene, SceneSpec):
            if scene.width * scene.height * n > MAX_PIXELS_PER_SHARD:
                raise ValueError(f"a shard may render at most {MAX_PIXELS_PER_SHARD} pixels")
            _check_cost(_shelf_work(scene, n))
        return n


class TrainingSpec(_Strict):
    """Workload 2: a small classifier trained on product crops, in segments (shards)."""

    kind: Literal["classifier-training"]
    version: Literal[1]
    seed: Seed
    scene: SceneSpec
    images_per_segment: Annotated[int, Field(ge=1, le=64)]
    """Fresh shelf images rendered for each segment; their product crops are its data."""
    crop_size: Annotated[int, Field(ge=4, le=32)]
    """Crops are resized to crop_size x crop_size RGB."""
    hidden_units: Annotated[int, Field(ge=4, le=256)]
    batch_size: Annotated[int, Field(ge=1, le=256)]
    steps_per_segment: Annotated[int, Field(ge=1, le=4096)]
    learning_rate_ppm: Annotated[int, Field(ge=1, le=1_000_000)]
    """SGD learning rate in millionths (50000 means 0.05)."""
    arithmetic: Literal["fixed-point", "float32"]
    """'fixed-point': exact int64 arithmetic, leaves compared bit for bit (what the market pays
    for). 'float32': may run on a GPU, checked only within `FLOAT32_TOLERANCE`; for local and
    preview use, not payable (`market_problems`)."""
    shard_count: Annotated[int, Field(ge=1, le=MAX_SHARDS)]
    """Number of segments; shard i holds the parameters after segment i."""

    @field_validator("images_per_segment")
    @classmethod
    def _pixels_bounded(cls, n: int, info: ValidationInfo) -> int:
        scene = info.data.get("scene")
        if isinstance(scene, SceneSpec) and scene.width * scene.height * n > MAX_PIXELS_PER_SHARD:
            raise ValueError(f"a segment may render at most {MAX_PIXELS_PER_SHARD} pixels")
        return n

    @field_validator("steps_per_segment")
    @classmethod
    def _work_bounded(cls, steps: int, info: ValidationInfo) -> int:
        scene, images, crop, hidden, batch = (
            info.data.get(k)
            for k in ("scene", "images_per_segment", "crop_size", "hidden_units", "batch_size")
        )
        if (
            isinstance(scene, SceneSpec)
            and isinstance(images, int)
            and isinstance(crop, int)
            and isinstance(hidden, int)
            and isinstance(batch, int)
        ):
            work = _training_work(scene, images, crop, hidden, batch, steps)
            if work.macs > MAX_MACS_PER_SEGMENT:
                raise ValueError(
                    f"a segment may do at most {MAX_MACS_PER_SEGMENT} MACs ({work.macs})"
                )
            _check_cost(work)
        return steps


JobSpec = Annotated[ShelfImagesSpec | TrainingSpec, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[ShelfImagesSpec | TrainingSpec] = TypeAdapter(JobSpec)
KINDS = ("shelf-images", "classifier-training")


def _field_of(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in KINDS:
        parts = parts[1:]  # the union's tag, not a field
    return ".".join(parts) or "kind"


def _from_validation(exc: ValidationError) -> SpecError:
    errors = exc.errors()
    first = errors[0]
    if first["type"] == "union_tag_invalid":
        got = first.get("input", {})
        kind = got.get("kind") if isinstance(got, dict) else None
        return SpecError("kind", f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    if first["type"] == "union_tag_not_found":
        return SpecError("kind", "field required")
    problem = str(first["msg"])
    if first["type"] == "value_error":
        problem = problem.removeprefix("Value error, ")
    return SpecError(_field_of(tuple(first["loc"])), problem, others=len(errors) - 1)


def parse_spec(data: bytes | str | Mapping[str, Any]) -> ShelfImagesSpec | TrainingSpec:
    """A validated spec from JSON bytes/text or a mapping; `SpecError` names a bad field."""
    if isinstance(data, bytes | str):
        try:
            data = parse_json(data)
        except CanonicalJsonError as exc:
            raise SpecError("(document)", str(exc)) from None
    if not isinstance(data, Mapping):
        raise SpecError("(document)", f"a job spec is a JSON object, not {type(data).__name__}")
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise _from_validation(exc) from None


def spec_json(spec: ShelfImagesSpec | TrainingSpec) -> bytes:
    """The canonical JSON bytes of `spec` (what is hashed and what is shipped)."""
    return canonical_json(spec.model_dump(mode="json"))


def spec_hash(spec: ShelfImagesSpec | TrainingSpec) -> bytes:
    """keccak256 of the canonical JSON of `spec`: the 32-byte hash stored on chain."""
    return keccak256(spec_json(spec))


# --- the cost model: what re-executing a shard does, and what verifying a job costs -------


def products_per_image(scene: SceneSpec) -> int:
    """At most this many products are drawn in one image of `scene`: a back row of
    `max_products_per_shelf` per shelf, each with one front-row product when occlusion is
    possible, and never more than MAX_PRODUCTS_PER_IMAGE."""
    rows = 2 if scene.occlusion_pct > 0 else 1
    return min(MAX_PRODUCTS_PER_IMAGE, scene.shelves * scene.max_products_per_shelf * rows)


@dataclass(frozen=True)
class ShardWork:
    """What re-executing one shard does, in work units: upper bounds from the spec alone.

    For a training segment: `crops` product crops (one per product drawn, at most) form the
    pool; `macs` counts the multiply-accumulates of every matrix product, `steps` SGD steps
    of `batch_size * hidden_units * (2 * D + 3 * 16)` plus one forward pass over the pool of
    `crops * hidden_units * (D + 16)`, with D = crop_size**2 * 3 inputs; `param_updates` is
    steps x parameters.
    """

    pixels: int = 0
    products: int = 0
    crops: int = 0
    macs: int = 0
    param_updates: int = 0
    steps: int = 0

    def cost_ns(self) -> int:
        """Reference-machine nanoseconds to do this work, by the cost model (an upper bound)."""
        return (
            self.pixels * NS_PER_PIXEL
            + self.products * NS_PER_PRODUCT
            + self.crops * NS_PER_CROP
            + self.macs * NS_PER_MAC
            + self.param_updates * NS_PER_PARAM_UPDATE
            + self.steps * NS_PER_STEP
        )


def _shelf_work(scene: SceneSpec, images: int) -> ShardWork:
    return ShardWork(
        pixels=images * scene.width * scene.height, products=images * products_per_image(scene)
    )


def _param_count(inputs: int, hidden: int) -> int:
    return inputs * hidden + hidden + hidden * NUM_CLASSES + NUM_CLASSES


def _training_work(
    scene: SceneSpec, images: int, crop: int, hidden: int, batch: int, steps: int
) -> ShardWork:
    inputs = crop * crop * 3
    crops = images * products_per_image(scene)
    return ShardWork(
        pixels=images * scene.width * scene.height,
        products=crops,
        crops=crops,
        macs=steps * batch * hidden * (2 * inputs + 3 * NUM_CLASSES)
        + crops * hidden * (inputs + NUM_CLASSES),
        param_updates=steps * _param_count(inputs, hidden),
        steps=steps,
    )


def _check_cost(work: ShardWork) -> None:
    cost = work.cost_ns()
    if cost > MAX_SHARD_COST_NS:
        raise ValueError(
            f"a shard may cost at most {MAX_SHARD_COST_NS / 1e9:g} s to re-execute by the cost "
            f"model (this one: {cost / 1e9:.4f} s)"
        )


def shard_work(spec: ShelfImagesSpec | TrainingSpec) -> ShardWork:
    """The work units of re-executing one shard of `spec` (every shard is bounded by these)."""
    if isinstance(spec, ShelfImagesSpec):
        return _shelf_work(spec.scene, spec.images_per_shard)
    return _training_work(
        spec.scene,
        spec.images_per_segment,
        spec.crop_size,
        spec.hidden_units,
        spec.batch_size,
        spec.steps_per_segment,
    )


def segment_macs(spec: TrainingSpec) -> int:
    """The multiply-accumulates one training segment does, at most (see `ShardWork`)."""
    return shard_work(spec).macs


def param_count(spec: TrainingSpec) -> int:
    """The classifier's parameters: W1, b1, W2, b2."""
    return _param_count(spec.crop_size * spec.crop_size * 3, spec.hidden_units)


def max_shard_bytes(spec: ShelfImagesSpec | TrainingSpec) -> int:
    """An upper bound on one shard's canonical bytes: the most a verifier fetches for it."""
    if isinstance(spec, ShelfImagesSpec):
        work = shard_work(spec)  # rgb (3 bytes) and instance id (1 byte) per pixel, labels
        return 4 * work.pixels + LABEL_BYTES_PER_PRODUCT * work.products + 4096
    return 8 * param_count(spec) + 4096  # int64 or float32 parameters, a small header


def shard_memory_bytes(spec: ShelfImagesSpec | TrainingSpec) -> int:
    """An upper bound on the memory re-executing one shard takes (peaks measured with
    tracemalloc, times about 1.5: 109 bytes per pixel of the image being rendered, 8 per
    pixel of the shard, under 50 MiB for the largest training segment's arrays)."""
    image = 160 * spec.scene.width * spec.scene.height
    work = shard_work(spec)
    if isinstance(spec, ShelfImagesSpec):
        return image + 16 * work.pixels + 4 * LABEL_BYTES_PER_PRODUCT * work.products + (1 << 20)
    inputs, hidden, batch = spec.crop_size * spec.crop_size * 3, spec.hidden_units, spec.batch_size
    arrays = 16 * work.crops * inputs + 48 * work.crops * hidden  # pool features, activations
    arrays += 64 * param_count(spec) + 32 * batch * inputs + 64 * batch * hidden  # one step
    return image + arrays + 4 * max_shard_bytes(spec) + (1 << 20)


@dataclass(frozen=True)
class VerificationCost:
    """What one oracle spends verifying a job of `spec` with k challenged shards."""

    challenged: int
    """k, capped at the shard count."""
    shard_ns: int
    """Re-executing one shard, by the cost model (a training shard's checkpoint is fetched)."""
    reexecute_ns: int
    """Re-executing the k challenged shards."""
    hash_ns: int
    """Hashing every shard of the result (the availability check)."""
    result_bytes: int
    """Every shard's bytes, at most: what the oracle downloads."""
    memory_bytes: int
    """Challenged shards and checkpoints held, fetches in flight, one re-execution."""

    objects: int = 0
    """Shard outputs the oracle fetches: every one, to check the whole result is served."""

    @property
    def cpu_s(self) -> float:
        return (self.reexecute_ns + self.hash_ns) / 1e9

    @property
    def fetch_s(self) -> float:
        """Wall-clock time to fetch every shard output, at ORACLE_FETCH_CONCURRENCY requests
        in flight of OBJECT_ROUND_TRIP_S each, and FETCH_BYTES_PER_S."""
        trips = -(-self.objects // ORACLE_FETCH_CONCURRENCY) * OBJECT_ROUND_TRIP_S
        return trips + self.result_bytes / FETCH_BYTES_PER_S


def verification_cost(
    spec: ShelfImagesSpec | TrainingSpec, challenge_count: int
) -> VerificationCost:
    """The cost model applied to a job: `spec` with `challenge_count` (k) challenged shards."""
    k = max(0, min(challenge_count, spec.shard_count))
    size = max_shard_bytes(spec)
    held = min(spec.shard_count, 2 * k if isinstance(spec, TrainingSpec) else k)
    shard_ns = shard_work(spec).cost_ns()
    result = spec.shard_count * size
    return VerificationCost(
        challenged=k,
        shard_ns=shard_ns,
        reexecute_ns=k * shard_ns,
        hash_ns=result * NS_PER_BYTE_HASHED,
        result_bytes=result,
        memory_bytes=(held + ORACLE_FETCH_CONCURRENCY) * size + shard_memory_bytes(spec),
        objects=spec.shard_count,
    )


FLOAT32_UNPAYABLE = (
    "float32 training is not payable: its segments are checked within a tolerance, which a "
    "provider can stay under on every segment while its model drifts without bound; paid "
    "training is fixed-point (bit-exact)"
)


def market_problems(spec: ShelfImagesSpec | TrainingSpec, challenge_count: int) -> list[str]:
    """Why a job of `spec` with `challenge_count` challenged shards cannot be paid for on the
    market: an oracle could not verify it within its budget (VERIFY_BUDGET_S of CPU,
    MAX_RESULT_BYTES downloaded, VERIFY_MEMORY_BYTES), or its result cannot be checked
    exactly. Empty when the job is verifiable and payable. The provider agent refuses and the
    oracle rejects a job with problems."""
    problems: list[str] = []
    if isinstance(spec, TrainingSpec) and spec.arithmetic != "fixed-point":
        problems.append(FLOAT32_UNPAYABLE)
    most = min(spec.shard_count, MAX_CHALLENGES)
    if not 1 <= challenge_count <= most:
        problems.append(
            f"{challenge_count} challenged shards: a job of {spec.shard_count} shards needs "
            f"1 to {most}"
        )
    cost = verification_cost(spec, challenge_count)
    if cost.result_bytes > MAX_RESULT_BYTES:
        problems.append(
            f"the result may take {cost.result_bytes} bytes ({spec.shard_count} shards of up to "
            f"{max_shard_bytes(spec)}), over the {MAX_RESULT_BYTES} an oracle downloads"
        )
    if cost.cpu_s > VERIFY_BUDGET_S:
        problems.append(
            f"verifying takes about {cost.cpu_s:.0f} s of CPU ({cost.challenged} shards of "
            f"{cost.shard_ns / 1e9:.3g} s, hashing {cost.hash_ns / 1e9:.0f} s), over the "
            f"oracle's {VERIFY_BUDGET_S} s"
        )
    if cost.fetch_s > FETCH_BUDGET_S:
        problems.append(
            f"fetching every shard output takes about {cost.fetch_s:.0f} s ({spec.shard_count} "
            f"requests, {cost.result_bytes} bytes), over the oracle's {FETCH_BUDGET_S} s"
        )
    if cost.memory_bytes > VERIFY_MEMORY_BYTES:
        problems.append(
            f"verifying needs about {cost.memory_bytes >> 20} MiB, over the oracle's "
            f"{VERIFY_MEMORY_BYTES >> 20} MiB"
        )
    return problems
