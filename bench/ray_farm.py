"""Suite `ray_farm`: the provider's compute backends side by side (#12).

Measures, on this machine (the chain is not used), for one shelf-images job of SHARDS shards:

* shards per second on the local backend (1 process, and a pool of every core) and on Ray
  with 1 node and with 2 nodes (`neurotoken.provider.ray_local`: real `ray start` nodes on
  this machine, together as many CPUs as it has cores), each against the local pool;
* Ray's cost per task: NOOPS empty tasks through `RayBackend.run` (the round trip a shard
  pays besides its work), and the CPU time each shard costs on Ray beyond its work;
* what a farm of N rigs should expect from these figures (the notes).

Every Ray row's outputs are checked against the local backend's, byte for byte. Without
Ray installed the suite says so and measures the local backend alone. Run alone with
`python -m bench.ray_farm`, or with the others by `make bench`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Table
from bench.compute_speed import JOBS
from neurotoken.jobs import parse_spec, spec_json
from neurotoken.proofs import LocalStore
from neurotoken.provider import compute_job
from neurotoken.provider.backends import ComputeBackend, LocalBackend, default_workers

SHARDS = 256
NOOPS = 1000
JOB = "shelf-images (2 images of 160x120 per shard)"
RIGS = 10
RIG_CORES = 6


def _noop(spec_data: bytes, index: int) -> int:
    return index


def _timed(backend: ComputeBackend, folder: Path) -> tuple[float, list[bytes]]:
    spec = parse_spec({**JOBS[JOB], "shard_count": SHARDS})
    started = time.perf_counter()
    report = compute_job(spec, LocalStore(folder / "store"), folder / "state", progress=False,
                         backend=backend)  # fmt: skip
    return time.perf_counter() - started, report.output_hashes


def _noop_ms(backend: ComputeBackend, rounds: int = 3) -> tuple[float, float]:
    """Milliseconds per empty task through `run`, best of `rounds` after a warm-up round:
    wall time, and the CPU time of this process (the agent's side of each task: its bound
    where it has a core of its own)."""
    data = spec_json(parse_spec(JOBS[JOB]))
    for _ in backend.run(_noop, data, list(range(backend.parallelism * 4))):
        pass
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in backend.run(_noop, data, list(range(NOOPS))):
            pass
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return 1000 * best_wall / NOOPS, 1000 * best_cpu / NOOPS


def _on_cluster(cpus: list[int], folder: Path, measure: Callable[[ComputeBackend], Any]) -> Any:
    from neurotoken.provider.ray_backend import RayBackend
    from neurotoken.provider.ray_local import local_cluster

    with local_cluster(cpus, folder / "ray-logs") as cluster:
        backend = RayBackend(cluster.address)
        try:
            return measure(backend)
        finally:
            backend.close()


def run(ctx: Any = None) -> list[Table]:
    """The suite's tables (the chain context is not needed)."""
    cores = default_workers()
    speed = Table(
        f"Compute backends ({SHARDS}-shard shelf-images job, 2 images of 160x120 per shard; "
        f"this machine: {cores} cores)",
        ["backend", "CPUs", "shards/s", "vs local pool", "s per shard x CPUs"],
    )
    try:
        import ray  # noqa: F401
    except ImportError:
        ray_ok = False
    else:
        ray_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one_s, reference = _timed(LocalBackend(1), folder / "one")
        pool_s, pooled = _timed(LocalBackend(cores), folder / "pool")
        if pooled != reference:
            raise RuntimeError("the local pool's outputs differ from one process's")
        rows: list[tuple[str, int, float]] = [
            ("local, 1 process", 1, one_s),
            (f"local pool, {cores} processes", cores, pool_s),
        ]
        noops: dict[str, tuple[float, float]] = {}
        if ray_ok:
            half = max(1, cores // 2)
            layouts = {"Ray, 1 node": [cores], "Ray, 2 nodes": [half, max(1, cores - half)]}
            for name, layout in layouts.items():
                where = folder / name.replace(" ", "_").replace(",", "")

                def both(backend: ComputeBackend, where: Path = where) -> tuple[Any, Any]:
                    return _timed(backend, where), _noop_ms(backend)

                (seconds, hashes), noops[name] = _on_cluster(layout, where, both)
                if hashes != reference:
                    raise RuntimeError(f"{name}: outputs differ from the local backend's")
                label = f"{name} ({' + '.join(map(str, layout))} CPUs)"
                rows.append((label, sum(layout), seconds))
    for name, cpus, seconds in rows:
        speed.add(
            name, cpus, f"{SHARDS / seconds:.1f}", f"{pool_s / seconds:.2f}x",
            f"{1000 * seconds * cpus / SHARDS:.1f} ms",
        )  # fmt: skip
    work_ms = 1000 * one_s / SHARDS
    if ray_ok:
        ray_s = rows[2][2]  # Ray, 1 node
        driver_ms = max(cpu for _, cpu in noops.values())
        speed.notes.append(
            f"Ray's cost per task, {NOOPS:,} empty tasks through `RayBackend.run` (best of 3): "
            + "; ".join(
                f"{name}: {wall:.2f} ms each (wall), {cpu:.2f} ms of the agent's CPU"
                for name, (wall, cpu) in noops.items()
            )
            + "."
        )
        extra_ms = 1000 * ray_s * cores / SHARDS - work_ms
        rig_rate = RIG_CORES * 1000 / (work_ms + max(extra_ms, 0.0))
        driver_rate = 1000 / driver_ms
        farm_rate = min(RIGS * rig_rate, driver_rate)
        speed.notes.append(
            f"A shard's work here: {work_ms:.1f} ms in one process; on Ray (1 node) each shard "
            f"cost {extra_ms:.1f} ms more CPU time (the task's round trip, its output sent "
            "back to the agent, Ray's own processes on the same cores). Expected on N rigs of "
            f"c cores: about N x c / ({work_ms:.0f} + {max(extra_ms, 0):.0f} ms) shards/s, "
            f"until the agent, at ~{driver_ms:.2f} ms of its CPU a task, is the bound "
            f"(~{driver_rate:,.0f} tasks/s). A {RIGS}-rig farm of {RIG_CORES} cores each: "
            f"~{RIGS * rig_rate:,.0f} shards/s of this job by its cores, "
            f"~{farm_rate:,.0f} with the agent's bound: {farm_rate / (SHARDS / pool_s):.0f}x "
            "this machine's local pool. Shards of more work (larger images, more per shard) "
            "lift the agent's bound; jobs of tiny shards are better run on the local pool."
        )
    else:
        speed.notes.append("Ray is not installed (requirements-ray.lock): local backend only.")
    speed.notes.append(
        "Both Ray layouts share this machine's cores with Ray's own processes (GCS, raylets, "
        "object stores): on one machine Ray gains nothing over the local pool, its gain is "
        "more machines. The agent also hashes and writes each shard it gets back (store and "
        "journal, fsynced). Single timings move by 10-30% on a shared machine."
    )
    speed.notes = [line for note in speed.notes for line in (note, "")][:-1]  # paragraphs
    return [speed]


if __name__ == "__main__":
    for table in run():
        print(table.markdown())
