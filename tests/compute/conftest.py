"""Fixtures for the compute tests: tiny job specs (built by tests/constants.py) and factories
for built bundles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec, parse_spec, spec_hash
from neurotoken.proofs import Commitment, LocalStore, Manifest
from neurotoken.proofs.bundle import from_hex
from neurotoken.provider import compute_job, publish_bundle
from tests.constants import shelf_spec_dict, training_spec_dict

# Compute-heavy property tests: few examples, no deadline (the machine is shared).
COMPUTE_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def shelf_spec() -> ShelfImagesSpec:
    spec = parse_spec(shelf_spec_dict())
    assert isinstance(spec, ShelfImagesSpec)
    return spec


@pytest.fixture
def training_spec() -> TrainingSpec:
    spec = parse_spec(training_spec_dict())
    assert isinstance(spec, TrainingSpec)
    return spec


@pytest.fixture
def float_spec() -> TrainingSpec:
    spec = parse_spec(training_spec_dict(arithmetic="float32"))
    assert isinstance(spec, TrainingSpec)
    return spec


@dataclass
class BuiltJob:
    """A computed and published job: its spec, store, manifest and on-chain commitment."""

    spec: ShelfImagesSpec | TrainingSpec
    store: LocalStore
    manifest: Manifest
    commitment: Commitment
    outputs: list[bytes]

    @property
    def root(self) -> bytes:
        return self.commitment.root


def build_job(
    spec: ShelfImagesSpec | TrainingSpec,
    folder: Path,
    job_id: int = 1,
    replace: dict[int, bytes] | None = None,
) -> BuiltJob:
    """Computes and publishes `spec`; `replace` swaps shard outputs before committing (a
    provider that fakes those shards yet publishes a self-consistent bundle)."""
    store = LocalStore(folder / "store")
    report = compute_job(spec, store, folder / "state", workers=1, progress=False)
    hashes = list(report.output_hashes)
    for index, data in (replace or {}).items():
        hashes[index] = store.put_object(data)
    manifest = publish_bundle(store, job_id, spec, hashes)
    commitment = Commitment(job_id, spec_hash(spec), spec.shard_count, from_hex(manifest.root))
    outputs = [store.object(h, 1 << 30) for h in hashes]
    return BuiltJob(spec, store, manifest, commitment, outputs)


@pytest.fixture
def make_job(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., BuiltJob]:
    """Returns a builder: make_job(spec, job_id=1, replace=None) -> BuiltJob."""

    def _make(
        spec: ShelfImagesSpec | TrainingSpec,
        job_id: int = 1,
        replace: dict[int, bytes] | None = None,
    ) -> BuiltJob:
        return build_job(spec, tmp_path_factory.mktemp("job"), job_id, replace)

    return _make


@pytest.fixture(scope="module")
def honest_shelf_job(tmp_path_factory: pytest.TempPathFactory) -> BuiltJob:
    """One honest 16-shard shelf job shared by a module's read-only tests."""
    spec = parse_spec(shelf_spec_dict())
    return build_job(spec, tmp_path_factory.mktemp("honest-shelf"))
