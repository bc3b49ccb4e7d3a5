"""The Ray compute backend (#12): the same outputs and root as the local pool, and the
journal still decides what is computed; float32 segment steps go to a GPU (a local Ray of 2
CPUs and 1 declared GPU, started once per module: Ray schedules on the declaration, and
torch, absent or without CUDA here, sends the step to the numpy path)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec
from neurotoken.proofs import LocalStore
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.provider.agent_cli import Connection, agent
from neurotoken.provider.backends import LocalBackend
from neurotoken.provider.settings import ProviderSettings
from tests.compute.crashes import SimulatedCrashError, crash_after

pytest.importorskip("ray")

from neurotoken.provider.ray_backend import IN_FLIGHT_PER_CPU, RayBackend


@pytest.fixture(scope="module")
def ray_backend() -> Iterator[RayBackend]:
    backend = RayBackend(None, num_cpus=2, num_gpus=1)
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


def test_ray_backend__run__keeps_at_most_max_in_flight_or_twice_the_cpus_submitted(
    ray_backend: RayBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge job is not submitted all at once: at most `max_in_flight` shard tasks wait at a
    time, so each wait scans only those, and every shard is still computed once."""
    real_wait = ray_backend._ray.wait
    scanned: list[int] = []

    def wait(refs: list[object], **kwargs: object) -> object:
        scanned.append(len(refs))
        return real_wait(refs, **kwargs)

    monkeypatch.setattr(ray_backend._ray, "wait", wait)
    monkeypatch.setattr(ray_backend, "max_in_flight", 3)
    results = sorted(ray_backend.run(_square, b"", list(range(20))))
    assert results == [(i, i * i) for i in range(20)]
    assert len(scanned) == 20 and max(scanned) == 3 and scanned[-1] == 1
    # below max_in_flight, twice the cluster's CPUs: jobs computed at once share the cluster
    monkeypatch.setattr(ray_backend, "max_in_flight", 256)
    scanned.clear()
    assert sorted(ray_backend.run(_square, b"", list(range(20)))) == results
    assert max(scanned) == IN_FLIGHT_PER_CPU * ray_backend.parallelism == 4


def _square(spec_data: bytes, index: int) -> int:
    return index * index


def _where() -> tuple[int, list[Any]]:
    import ray

    gpus = ray.get_gpu_ids() if ray.is_initialized() else []
    return os.getpid(), list(gpus)


def test_ray_backend__call__a_gpu_step_is_a_task_holding_one_gpu__else_runs_here(
    ray_backend: RayBackend,
) -> None:
    assert ray_backend.gpus == 1
    pid, gpus = ray_backend.call(_where, gpu=True)
    assert pid != os.getpid() and len(gpus) == 1
    assert ray_backend.call(_where) == (os.getpid(), [])


def test_ray_backend__float32_training__each_segment_step_asks_for_a_gpu__same_root(
    tmp_path: Path, ray_backend: RayBackend, float_spec: TrainingSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # three segments: each step is a task of its own GPU scheduling class, started cold
    float_spec = TrainingSpec.model_validate({**float_spec.model_dump(), "shard_count": 3})
    asked: list[bool] = []
    real_call = ray_backend.call

    def call(fn: Any, *args: Any, gpu: bool = False) -> Any:
        asked.append(gpu)
        return real_call(fn, *args, gpu=gpu)

    monkeypatch.setattr(ray_backend, "call", call)
    on_ray = compute_job(float_spec, LocalStore(tmp_path / "r"), tmp_path / "s1", progress=False,
                         backend=ray_backend)  # fmt: skip
    assert asked == [True] * float_spec.shard_count
    assert on_ray.device == "cpu"  # the GPU task found no CUDA here: the numpy path
    local = compute_job(float_spec, LocalStore(tmp_path / "l"), tmp_path / "s2", progress=False,
                        backend=LocalBackend(1), device="cpu")  # fmt: skip
    assert on_ray.output_hashes == local.output_hashes
    asked.clear()
    compute_job(float_spec, LocalStore(tmp_path / "c"), tmp_path / "s3", progress=False,
                backend=ray_backend, device="cpu")  # fmt: skip
    assert asked == []


def test_compute__device_cuda_without_cuda__refused_not_run_on_the_cpu(
    tmp_path: Path, float_spec: TrainingSpec
) -> None:
    from neurotoken.workloads import training_torch

    if training_torch.cuda_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        compute_job(float_spec, LocalStore(tmp_path / "s"), tmp_path / "st", progress=False,
                    backend=LocalBackend(1), device="cuda")  # fmt: skip


def test_ray_backend__no_head_at_the_address__one_clear_error() -> None:
    from neurotoken.errors import ConfigError
    from neurotoken.provider.ray_backend import _check_head

    with pytest.raises(ConfigError, match=r"no Ray head answers at --ray-address 127\.0\.0\.1:1"):
        _check_head("127.0.0.1:1")
    with pytest.raises(ConfigError, match="no Ray head answers"):
        _check_head("not-an-address")


def test_ray_backend__max_in_flight_below_one__refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        RayBackend(None, max_in_flight=0)


def test_settings__backend_and_ray_address__from_the_environment(
    monkeypatch: pytest.MonkeyPatch, ray_backend: RayBackend
) -> None:
    assert ProviderSettings.model_validate({}).backend == "local"
    assert isinstance(
        Connection(ProviderSettings.model_validate({})).compute_backend(3), LocalBackend
    )
    monkeypatch.setenv("NEUROTOKEN_PROVIDER_BACKEND", "ray")
    monkeypatch.setenv("NEUROTOKEN_PROVIDER_RAY_ADDRESS", "head:6379")
    settings = ProviderSettings.model_validate({})
    assert (settings.backend, settings.ray_address) == ("ray", "head:6379")
    monkeypatch.setenv("NEUROTOKEN_PROVIDER_BACKEND", "slurm")
    with pytest.raises(ValidationError):
        ProviderSettings.model_validate({})
    # Ray already running in this process (the module's local Ray): joined, not owned.
    backend = Connection(ProviderSettings.model_validate({"backend": "ray"})).compute_backend(None)
    assert isinstance(backend, RayBackend) and backend.parallelism == 2
    backend.close()
    assert ray_backend.parallelism == 2


def test_agent_cli__backend_options__reach_the_settings() -> None:
    seen: list[ProviderSettings] = []

    @agent.command("show-backend")
    @click.pass_obj
    def show(conn: Connection) -> None:
        seen.append(conn.settings)

    try:
        result = CliRunner().invoke(
            agent, ["--backend", "ray", "--ray-address", "10.0.0.1:6379", "show-backend"]
        )
    finally:
        agent.commands.pop("show-backend")
    assert result.exit_code == 0, result.output
    assert (seen[0].backend, seen[0].ray_address) == ("ray", "10.0.0.1:6379")
    assert "--ray-address" in CliRunner().invoke(agent, ["--help"]).output
