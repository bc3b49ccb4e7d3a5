"""A real two-node Ray cluster on this machine (#12): `ray start --head` and a second node
`ray start --address`, each in its own process group with its own temp dir; the agent's
compute runs a half-journalled job across them, the second node's raylet is SIGKILLed
mid-job, and the job still completes with the local backend's root, no journalled shard
computed again and no shard recorded twice."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from neurotoken.jobs import ShelfImagesSpec
from neurotoken.proofs import LocalStore
from neurotoken.provider import compute_job, publish_bundle
from tests.constants import shelf_spec_dict

pytest.importorskip("ray")

from neurotoken.provider.ray_backend import RayBackend

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_ports() -> list[str]:
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def pids_in_group(pgid: int, name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ProcessLookupError):
            continue
        if name in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class Cluster:
    address: str
    head: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    def kill_worker_raylet(self) -> list[int]:
        pids = pids_in_group(self.worker.pid, "raylet")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids


def wait_for_nodes(
    address: str, count: int, procs: list[subprocess.Popen[bytes]], timeout_s: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a ray start exited (see head/worker.log)"
        status = subprocess.run(
            [RAY, "status", f"--address={address}"], capture_output=True, text=True
        ).stdout
        if status.count("node_") >= count:
            return
        time.sleep(1.0)
    raise AssertionError(f"the cluster never reached {count} nodes:\n{status}")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    # one machine, loopback only: no token authentication (a farm keeps it, see the docs);
    # set here so the nodes and this process (the driver) agree
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # a dead node is declared dead after ~1.5 s (default ~15 s), so its tasks are retried
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_timeout_ms": "500",
        "RAY_health_check_failure_threshold": "3",
    }
    common = ["--block", "--object-store-memory=100000000"]
    # short temp dirs: Ray's sockets live there (AF_UNIX paths of 107 bytes at most)
    head_tmp = tempfile.mkdtemp(prefix="rh")
    worker_tmp = tempfile.mkdtemp(prefix="rw")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        head = subprocess.Popen(
            [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
             "--num-cpus=1", f"--temp-dir={head_tmp}", "--include-dashboard=false",
             *common, *node_ports()],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "head.log", "wb"),  # noqa: SIM115
        )  # fmt: skip
        procs.append(head)
        time.sleep(4.0)
        worker = subprocess.Popen(
            [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1",
             "--num-cpus=2", f"--temp-dir={worker_tmp}", *common, *node_ports()],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "worker.log", "wb"),  # noqa: SIM115
        )  # fmt: skip
        procs.append(worker)
        wait_for_nodes(address, 2, procs)
        yield Cluster(address, head, worker)
    finally:
        # a throwaway cluster: every process of each node's group, at once (SIGTERM makes
        # a node drain for up to 30 s)
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(head_tmp, ignore_errors=True)
        shutil.rmtree(worker_tmp, ignore_errors=True)


def hook(seen: list[int], at: int, action: Callable[[], None]) -> Callable[[int], None]:
    def on_shard(index: int) -> None:
        seen.append(index)
        if len(seen) == at:
            action()

    return on_shard


class SimulatedCrashError(Exception):
    pass


def test_ray_cluster__worker_node_killed_mid_job__same_root_nothing_recomputed(
    tmp_path: Path, cluster: Cluster
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
        report = compute_job(
            spec, store, state, progress=False, backend=backend,
            on_shard=hook(seen, 2, lambda: killed.extend(cluster.kill_worker_raylet())),
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
