"""Job specs: canonical JSON, typed models, spec hashes."""

from neurotoken.jobs.canonical import CanonicalJsonError, canonical_json, keccak256, parse_json
from neurotoken.jobs.spec import (
    KINDS,
    MAX_SHARDS,
    NUM_CLASSES,
    JobSpec,
    SceneSpec,
    ShelfImagesSpec,
    SpecError,
    TrainingSpec,
    parse_spec,
    spec_hash,
    spec_json,
)

__all__ = [
    "KINDS",
    "MAX_SHARDS",
    "NUM_CLASSES",
    "CanonicalJsonError",
    "JobSpec",
    "SceneSpec",
    "ShelfImagesSpec",
    "SpecError",
    "TrainingSpec",
    "canonical_json",
    "keccak256",
    "parse_json",
    "parse_spec",
    "spec_hash",
    "spec_json",
]
