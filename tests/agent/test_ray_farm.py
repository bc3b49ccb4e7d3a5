"""The provider agent on Ray (#12): the jobs in hand computed at once across the cluster under
the policy's limits, and the agent process SIGKILLed mid-job and restarted on a real
two-node cluster, resuming from its journal with the local backend's roots."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neurotoken.jobs import parse_spec, spec_hash
from neurotoken.market.records import JobRecordError
from neurotoken.market.states import JobState
from neurotoken.proofs import LocalStore
from neurotoken.provider import account as acct
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.policy import Policy
from neurotoken.provider.state import JobStatus
from neurotoken.units import NTK
from tests.agent.conftest import FAST_POLICY, PASSWORD_ENV, Jobs, spec_bytes
from tests.agent.test_flow import AgentFactory, events
from tests.constants import STAKE

pytest.importorskip("ray")

from neurotoken.provider.ray_backend import RayBackend
from neurotoken.provider.ray_local import LocalCluster, local_cluster


@pytest.fixture(scope="module")
def local_ray() -> Iterator[RayBackend]:
    backend = RayBackend(None, num_cpus=2)
    try:
        yield backend
    finally:
        backend.close()


def local_root(raw: bytes, job_id: int, folder: Path) -> bytes:
    """The root the local backend gives the job (one process, a store of its own)."""
    spec = parse_spec(raw)
    store = LocalStore(folder / "store")
    hashes = compute_job(spec, store, folder / "state", workers=1, progress=False).output_hashes
    return bytes.fromhex(publish_bundle(store, job_id, spec, hashes).root.removeprefix("0x"))


def test_agent_on_ray__jobs_in_hand_computed_at_once__a_third_waits_for_capacity(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory,
    local_ray: RayBackend, tmp_path: Path, stranger: Any,
) -> None:  # fmt: skip
    acct.register(farm, STAKE)
    raws = [spec_bytes(seed=100 + i) for i in range(3)]
    ids = [jobs.post(raw) for raw in raws]
    first_shard = {job_id: threading.Event() for job_id in ids}
    overlapped: list[bool] = []

    def on_shard(job_id: int, index: int) -> None:
        # each job's first recorded shard waits for the other job in hand to record one:
        # computed one after the other, the first job would wait in vain
        if not first_shard[job_id].is_set():
            first_shard[job_id].set()
            other = ids[1] if job_id == ids[0] else ids[0]
            overlapped.append(first_shard[other].wait(timeout=60))

    agent = make_agent(
        policy=Policy(**{**FAST_POLICY.model_dump(), "max_active_jobs": 2}),
        backend=local_ray, workers=local_ray.parallelism, on_shard=on_shard,
    )  # fmt: skip
    report = agent.step()
    assert report.accepted == ids[:2]
    assert overlapped == [True, True]
    assert sorted(report.submitted) == ids[:2]
    third = agent.state.get(ids[2])
    assert third is not None and third.status is JobStatus.DEFERRED
    assert (third.reason or "").startswith("BUSY: 2 jobs in progress")
    for job_id, raw in zip(ids[:2], raws, strict=False):
        assert jobs.job(job_id).result_root == local_root(raw, job_id, tmp_path / str(job_id))

    jobs.settle(ids[0], True, sender=stranger)  # a job ends: room for the third
    report = agent.step()
    assert report.accepted == [ids[2]] and report.submitted == [ids[2]]
    assert jobs.job(ids[2]).result_root == local_root(raws[2], ids[2], tmp_path / "3")
    assert all(len(events(market, "ResultSubmitted", j)) == 1 for j in ids)


# ---------------------------------------------------------------- the agent process on a cluster

CLUSTER_SHARDS = 24


def journal_counts(state: Path, raws: list[bytes]) -> list[int]:
    """Shards journalled per spec (the agent's `<state>/journal/<spec hash>/done/<index>`)."""
    counts = []
    for raw in raws:
        done = state / "journal" / ("0x" + spec_hash(parse_spec(raw)).hex()) / "done"
        counts.append(sum(1 for p in done.iterdir() if p.name.isdigit()) if done.is_dir() else 0)
    return counts


def start_agent(
    cluster: LocalCluster, state: Path, store: Path, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "neurotoken.provider", "agent", "--password-env", PASSWORD_ENV,
        "--backend", "ray", "--ray-address", cluster.address,
        "run", "--state", str(state), "--store", str(store), "--confirmations", "0",
        "--no-serve", "--poll", "0.3", "--quiet",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **cluster.env},
        )  # fmt: skip


def wait_until(what: str, condition: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, f"the agent exited:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()}"
        time.sleep(0.05)


def submitted(jobs: Jobs, ids: list[int]) -> bool:
    """Whether every job shows Submitted; read while the agent sends, a block whose logs
    anvil has not indexed yet reads as a record error: not yet."""
    try:
        return all(jobs.job(j).state == JobState.SUBMITTED for j in ids)
    except JobRecordError:
        return False


def test_agent_process_on_a_two_node_cluster__killed_mid_job__resumes_with_the_same_roots(
    cli: Any, jobs: Jobs, market: Any, tmp_path: Path,
) -> None:  # fmt: skip
    assert cli("register", "--stake", "1000").exit_code == 0
    raws = [
        spec_bytes(seed=200 + i, shard_count=CLUSTER_SHARDS, images_per_shard=2) for i in range(2)
    ]
    # the deterrent for 24 shards at k = 4 is 340 NTK: two jobs fit the 1,000 NTK stake
    ids = [jobs.post(raw, shardCount=CLUSTER_SHARDS, collateralNtk=400 * NTK) for raw in raws]
    state, store, log = tmp_path / "state", tmp_path / "bundles", tmp_path / "agent.log"
    with local_cluster([1, 1], tmp_path / "ray-logs") as cluster:
        first = start_agent(cluster, state, store, log)
        try:
            # both jobs under way at once, then the agent dies without a word (SIGKILL)
            wait_until(
                "both jobs started", lambda: min(journal_counts(state, raws)) >= 1, first, log
            )
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        journalled = journal_counts(state, raws)
        assert all(0 < n < CLUSTER_SHARDS for n in journalled), journalled
        assert all(jobs.job(j).state == JobState.ACCEPTED for j in ids)

        again = start_agent(cluster, state, store, log)
        try:
            wait_until("both results submitted", lambda: submitted(jobs, ids), again, log)
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=60) == 0, log.read_text()
    output = log.read_text()
    for job_id, raw, reused in zip(ids, raws, journalled, strict=True):
        found = re.findall(
            rf"job {job_id}: (\d+) shards computed, (\d+) reused from the journal", output
        )
        # the restarted agent computed only what the killed one had not journalled
        assert found == [(str(CLUSTER_SHARDS - reused), str(reused))], output
        assert jobs.job(job_id).result_root == local_root(raw, job_id, tmp_path / str(job_id))
        assert len(events(market, "JobAccepted", job_id)) == 1
        assert len(events(market, "ResultSubmitted", job_id)) == 1
