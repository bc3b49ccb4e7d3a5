"""A real two-node Ray cluster on this machine (#12): `ray start --head` and a second node
`ray start --address`, each in its own process group with its own temp dir; the agent's
compute runs a half-journalled job across them, the second node's raylet is SIGKILLed
mid-job, and the job still completes with the local backend's root, no journalled shard
computed again and no shard recorded twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from neurotoken.jobs import ShelfImagesSpec
from neurotoken.proofs import LocalStore
from neurotoken.provider import compute_job, publish_bundle
from tests.constants import shelf_spec_dict

pytest.importorskip("ray")

from neurotoken.provider.ray_backend import RayBackend
from neurotoken.provider.ray_local import LocalCluster, local_cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A head of 1 CPU and a second node of 2 (`neurotoken.provider.ray_local`)."""
    with local_cluster([1, 2], tmp_path / "ray-logs") as started:
        yield started


def hook(seen: list[int], at: int, action: Callable[[], None]) -> Callable[[int], None]:
    def on_shard(index: int) -> None:
        seen.append(index)
        if len(seen) == at:
            action()

    return on_shard


class SimulatedCrashError(Exception):
    pass


def test_ray_cluster__worker_node_killed_mid_job__same_root_nothing_recomputed(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    spec = ShelfImagesSpec.model_validate(shelf_spec_dict(shard_count=24, images_per_shard=3))
    store, state = LocalStore(tmp_path / "store"), tmp_path / "state"

    def crash() -> None:
        raise SimulatedCrashError

    with pytest.raises(SimulatedCrashError):
        compute_job(spec, store, state, workers=1, progress=False, on_shard=hook([], 6, crash))

    killed: list[int] = []
    seen: list[int] = []
    backend = RayBackend(cluster.address)
    try:
        assert backend.parallelism == 3
        assert backend.gpus == 0
        with pytest.raises(RuntimeError, match="no GPU"):  # not a task waiting forever
            backend.call(len, b"", gpu=True)
        report = compute_job(
            spec, store, state, progress=False, backend=backend,
            on_shard=hook(seen, 2, lambda: killed.extend(cluster.kill_raylet(1))),
        )  # fmt: skip
    finally:
        backend.close()
    assert killed, "the worker node's raylet was not found"
    assert report.reused == list(range(6))
    assert sorted(report.computed) == list(range(6, 24)) == sorted(seen)
    fresh = compute_job(
        spec, LocalStore(tmp_path / "f"), tmp_path / "fs", workers=1, progress=False
    )
    assert report.output_hashes == fresh.output_hashes
    assert (
        publish_bundle(store, 1, spec, report.output_hashes).root
        == publish_bundle(LocalStore(tmp_path / "f"), 1, spec, fresh.output_hashes).root
    )
