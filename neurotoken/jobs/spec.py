"""Job specs: typed, strict, canonical.

A spec says exactly what work a client pays for. It is written as canonical JSON and its
keccak256 (the spec hash) is what the market contract stores. Parsing is strict: an unknown
`kind`, a missing or extra field, a float or string where an integer belongs, or a value out
of range raises `SpecError` naming the field (for example `scene.width`).
"""

from __future__ import annotations

from collections.abc import Mapping
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

from neurotoken.jobs.canonical import CanonicalJsonError, canonical_json, keccak256, parse_json

MAX_SHARDS = 1 << 16
"""The most shards one job may have (bounds manifests, proofs and challenge derivation)."""
MAX_PIXELS_PER_SHARD = 1 << 24
"""The most pixels one shard may render (bounds re-execution time and memory per shard)."""
MAX_MACS_PER_SEGMENT = 1 << 32
"""The most multiply-accumulates one training segment may do (about a second on one core)."""
NUM_CLASSES = 16
"""Products in the catalogue (see `neurotoken.workloads.catalogue`); the classifier's classes."""


class SpecError(ValueError):
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
        if isinstance(scene, SceneSpec) and scene.width * scene.height * n > MAX_PIXELS_PER_SHARD:
            raise ValueError(f"a shard may render at most {MAX_PIXELS_PER_SHARD} pixels")
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
    """'fixed-point': exact int64 arithmetic, leaves compared bit for bit. 'float32': may run
    on a GPU; verification re-executes and compares within `FLOAT32_TOLERANCE`."""
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
        crop, hidden, batch = (
            info.data.get(k) for k in ("crop_size", "hidden_units", "batch_size")
        )
        if isinstance(crop, int) and isinstance(hidden, int) and isinstance(batch, int):
            macs = 3 * steps * batch * (crop * crop * 3 + NUM_CLASSES) * hidden
            if macs > MAX_MACS_PER_SEGMENT:
                raise ValueError(f"a segment may do at most {MAX_MACS_PER_SEGMENT} MACs ({macs})")
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
