"""A throwaway Ray cluster of several nodes on one machine: a farm's set-up tried on one box.

`local_cluster([1, 2])` starts `ray start --head` and one more node per further entry with
`ray start --address`, each in its own process group with its own temp dir and ports, all on
127.0.0.1; it yields once every node has joined, and on exit kills every process of every
node at once (SIGKILL: a node sent SIGTERM drains for up to 30 s). The cluster tests and the
`ray_farm` benchmark suite use it; a farm uses `ray start` itself (docs/provider-agent.md).

Token authentication is off (`RAY_AUTH_MODE=disabled`, loopback only), set for the nodes and,
while the cluster runs, for this process, which connects as the driver; a dead node is
declared dead after ~1.5 s (Ray's default is ~15 s) so its tasks are retried quickly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from neurotoken.ports import free_ports

RAY = str(Path(sys.executable).with_name("ray"))

FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)


def _node_ports(ports: list[int], node: int) -> list[str]:
    mine = ports[node * len(NODE_PORT_FLAGS) : (node + 1) * len(NODE_PORT_FLAGS)]
    return [f"{flag}={port}" for flag, port in zip(NODE_PORT_FLAGS, mine, strict=True)]


def pids_in_group(pgid: int, name: str) -> list[int]:
    """Processes of process group `pgid` whose command line contains `name`."""
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
class LocalCluster:
    address: str
    """HOST:PORT of the head, what `RayBackend(address)` and `--ray-address` take."""
    nodes: list[subprocess.Popen[bytes]]
    """One `ray start --block` process per node, the head first; each leads its group."""
    env: dict[str, str]
    """The environment the nodes run with (for `ray` commands against the cluster)."""

    def kill_raylet(self, node: int) -> list[int]:
        """SIGKILLs node `node`'s raylet (its tasks' workers die with it); returns the pids."""
        pids = pids_in_group(self.nodes[node].pid, "raylet")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def node_count(self) -> int:
        """Nodes `ray status` lists (alive or not yet declared dead)."""
        status = subprocess.run(
            [RAY, "status", f"--address={self.address}"],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        ).stdout
        return status.count("node_")


def _wait_for_nodes(cluster: LocalCluster, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in cluster.nodes):
            raise RuntimeError("a `ray start` exited before the cluster was up (see its log)")
        if cluster.node_count() >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the cluster never reached {count} nodes in {timeout_s:.0f} s")


@contextlib.contextmanager
def local_cluster(
    cpus: list[int],
    log_dir: Path,
    *,
    object_store_bytes: int = 100_000_000,
    timeout_s: float = 90.0,
) -> Iterator[LocalCluster]:
    """A cluster of `len(cpus)` nodes with `cpus[i]` CPUs each (see the module docstring);
    each node's stderr goes to `log_dir/node-<i>.log`."""
    if not cpus:
        raise ValueError("a cluster needs at least its head node")
    auth_before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # this process is the driver: as the nodes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **FAST_HEALTH_CHECKS}
    # every port of every node chosen at once, so that none is chosen twice
    port, *node_ports = free_ports(1 + len(NODE_PORT_FLAGS) * len(cpus))
    address = f"127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    common = [
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--object-store-memory={object_store_bytes}",
    ]
    temps: list[str] = []
    cluster = LocalCluster(address, [], env)
    try:
        for i, count in enumerate(cpus):
            # short temp dirs: Ray's sockets live there (AF_UNIX paths of 107 bytes at most)
            temps.append(tempfile.mkdtemp(prefix=f"r{i}"))
            role = (
                ["--head", f"--port={port}", "--include-dashboard=false"]
                if i == 0
                else [f"--address={address}"]
            )
            command = [RAY, "start", *role, f"--num-cpus={count}", f"--temp-dir={temps[-1]}"]
            with (log_dir / f"node-{i}.log").open("wb") as log:
                node = subprocess.Popen(
                    [*command, *common, *_node_ports(node_ports, i)],
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            cluster.nodes.append(node)
            # the head must be up before a node can join it
            _wait_for_nodes(cluster, i + 1, timeout_s)
        yield cluster
    finally:
        for proc in reversed(cluster.nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
        if auth_before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_before
