"""The Ray compute backend (#12): the same outputs and root as the local pool, and the
journal still decides what is computed (a local Ray of 2 CPUs, started once per module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec
from neurotoken.proofs import LocalStore
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.provider.backends import LocalBackend

pytest.importorskip("ray")

from neurotoken.provider.ray_backend import RayBackend


class SimulatedCrashError(Exception):
    """Stands in for the provider dying between two shards."""


def crash_after(count: int) -> Callable[[int], None]:
    seen: list[int] = []

    def hook(index: int) -> None:
        seen.append(index)
        if len(seen) == count:
            raise SimulatedCrashError

    return hook


@pytest.fixture(scope="module")
def ray_backend() -> Iterator[RayBackend]:
    backend = RayBackend(None, num_cpus=2)
    try:
        yield backend
    finally:
        backend.close()


def objects(store: LocalStore, hashes: list[bytes]) -> list[bytes]:
    return [store.object(h, 1 << 30) for h in hashes]


@pytest.mark.parametrize("kind", ["shelf", "training"])
def test_ray_backend__same_job__byte_identical_outputs_and_root(
    tmp_path: Path,
    ray_backend: RayBackend,
    shelf_spec: ShelfImagesSpec,
    training_spec: TrainingSpec,
    kind: str,
) -> None:
    spec = shelf_spec if kind == "shelf" else training_spec
    local_store, ray_store = LocalStore(tmp_path / "local"), LocalStore(tmp_path / "ray")
    local = compute_job(
        spec, local_store, tmp_path / "s1", progress=False, backend=LocalBackend(2), device="cpu"
    )
    on_ray = compute_job(
        spec, ray_store, tmp_path / "s2", progress=False, backend=ray_backend, device="cpu"
    )
    assert sorted(on_ray.computed) == list(range(spec.shard_count))
    assert on_ray.output_hashes == local.output_hashes
    assert objects(ray_store, on_ray.output_hashes) == objects(local_store, local.output_hashes)
    assert (
        publish_bundle(ray_store, 1, spec, on_ray.output_hashes).root
        == publish_bundle(local_store, 1, spec, local.output_hashes).root
    )


def test_ray_backend__half_journalled__computes_only_the_rest(
    tmp_path: Path, ray_backend: RayBackend, shelf_spec: ShelfImagesSpec
) -> None:
    store, state = LocalStore(tmp_path / "store"), tmp_path / "state"
    half = shelf_spec.shard_count // 2
    with pytest.raises(SimulatedCrashError):
        compute_job(shelf_spec, store, state, workers=1, progress=False, on_shard=crash_after(half))
    resumed = compute_job(shelf_spec, store, state, progress=False, backend=ray_backend)
    assert resumed.reused == list(range(half))
    assert sorted(resumed.computed) == list(range(half, shelf_spec.shard_count))
    fresh = compute_job(shelf_spec, LocalStore(tmp_path / "f"), tmp_path / "fs", progress=False)
    assert resumed.output_hashes == fresh.output_hashes
    assert compute_job(shelf_spec, store, state, progress=False, backend=ray_backend).computed == []
