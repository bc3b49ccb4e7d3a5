"""Suite `oracle_speed`: how fast the oracle service verifies and settles.

Measures, on this machine:

* jobs verified per minute at k = 8 through the oracle's own path: one bounded worker
  process per job (forkserver, RLIMIT_AS and RLIMIT_CPU set), the spec and the challenged
  shards fetched over HTTP from a provider's bundle server, re-executed and compared; with
  one worker and with one per core, beside the same verification run in-process (the cost
  of the isolation);
* the latency from result submission to settlement on an anvil node with one-second blocks
  (interval mining only), three oracle processes with threshold two and a confirmation
  depth of two, counted in blocks after the confirmation depth (target: at most three).

This suite starts its own anvil (the latency needs interval mining); ape's chain is not used.
Run alone with `python -m bench.oracle_speed`, or with the others by `make bench`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Table
from neurotoken.jobs import parse_spec, spec_hash, spec_json
from neurotoken.proofs import LocalStore
from neurotoken.provider import BundleServer, compute_job, make_app, publish_bundle
from neurotoken.provider.compute import default_workers

SCENE = {
    "width": 160,
    "height": 120,
    "shelves": 2,
    "max_products_per_shelf": 8,
    "occlusion_pct": 30,
    "lighting_pct": 20,
    "noise_level": 6,
}
SPEC = {
    "kind": "shelf-images",
    "version": 1,
    "seed": 1,
    "scene": SCENE,
    "images_per_shard": 2,
    "shard_count": 64,
}
K = 8
VERIFY_JOBS = 16
LATENCY_JOBS = 10
CONFIRMATIONS = 2


def _oracle_importable() -> None:
    """`ape run` loads scripts on a temporary sys.path and takes the checkout off it again;
    the `oracle` package (beside `neurotoken`) and the verification workers need it."""
    home = str(Path(__file__).resolve().parents[1])
    if home not in sys.path:
        sys.path.append(home)


def _verify_throughput(folder: Path) -> Table:
    _oracle_importable()
    from oracle.verify import Kind, VerifierPool, VerifyTask, run_task

    spec = parse_spec(SPEC)
    computed = LocalStore(folder / "computed")
    report = compute_job(
        spec, computed, folder / "state", workers=default_workers(), progress=False
    )
    # A manifest names its job, and one root has one manifest: one store per job, its
    # objects hard-linked from the computed ones, each served by its own bundle server.
    stores = []
    for job in range(1, VERIFY_JOBS + 1):
        store = LocalStore(folder / f"job{job}")
        (store.root_dir / "objects").mkdir(parents=True)
        for obj in (computed.root_dir / "objects").iterdir():
            os.link(obj, store.root_dir / "objects" / obj.name)
        root = bytes.fromhex(publish_bundle(store, job, spec, report.output_hashes).root[2:])
        stores.append((store, root))
    spec_file = folder / "spec.json"
    spec_file.write_bytes(spec_json(spec))
    table = Table(
        title=f"Oracle verification throughput (64-shard shelf-images jobs, k = {K}, over HTTP)",
        columns=["mode", "jobs", "seconds", "jobs per minute", "mean per job"],
    )
    servers = [BundleServer(make_app(store, public=True)).start() for store, _ in stores]
    try:
        tasks = [
            VerifyTask(
                job_id=job,
                result_root=stores[job - 1][1],
                spec_hash=spec_hash(spec),
                spec_uri=spec_file.as_uri(),
                shard_count=spec.shard_count,
                challenge_count=K,
                seed=job.to_bytes(32, "big"),
                bundle_uri=servers[job - 1].url,
                memory_mb=4096,
                cpu_s=300,
            )
            for job in range(1, VERIFY_JOBS + 1)
        ]
        started = time.perf_counter()
        for task in tasks:
            assert run_task(task).accepted
        inline = time.perf_counter() - started
        table.add("in-process, warm caches (no isolation)", len(tasks), f"{inline:.1f}",
                  f"{60 * len(tasks) / inline:.0f}", f"{inline / len(tasks):.2f} s")  # fmt: skip
        for workers in sorted({1, default_workers()}):
            pool = VerifierPool(workers=workers, timeout_s=300)
            try:
                pool.submit(tasks[0])  # start the forkserver outside the measurement
                while not pool.poll():
                    time.sleep(0.01)
                queue = list(tasks)
                done = 0
                started = time.perf_counter()
                while done < len(tasks):
                    while queue and pool.has_room():
                        pool.submit(queue.pop(0))
                    for outcome in pool.poll():
                        assert outcome.kind == Kind.VERDICT and outcome.accepted, outcome
                        done += 1
                    time.sleep(0.005)
                took = time.perf_counter() - started
            finally:
                pool.shutdown()
            table.add(
                f"oracle worker pool, {workers} worker{'s' if workers > 1 else ''}",
                len(tasks), f"{took:.1f}", f"{60 * len(tasks) / took:.0f}",
                f"{took / len(tasks):.2f} s",
            )  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    table.notes.append(
        f"Each worker is a fresh process from a preloaded forkserver with RLIMIT_AS = 4 GiB and "
        f"RLIMIT_CPU set; it fetches the spec, the manifest, {K} inclusion proofs and every "
        "shard output over HTTP (each job's result must be served whole), checks them, and "
        f"re-executes the {K} challenged shards. "
        "The in-process row reuses one process, whose rendering caches stay warm: the gap "
        f"is the price of isolating each job. {default_workers()} core(s) on this machine."
    )
    return table


def _latency(folder: Path) -> Table:
    _oracle_importable()
    from devchain.localnet import (
        Anvil,
        Client,
        Provider,
        oracle_set,
        running,
        setup_local_market,
        small_spec,
        wait_until,
    )

    table = Table(
        title="Submission to settlement on anvil (1-second blocks, 3 oracles, threshold 2)",
        columns=["job", "submitted in block", "settled in block", "blocks", "blocks after "
                 f"the {CONFIRMATIONS}-block confirmation depth", "seconds"],
    )  # fmt: skip
    with Anvil(block_time=1, log_path=folder / "anvil.log") as anvil:
        w3 = anvil.web3()
        m = setup_local_market(w3)
        client = Client(m, folder / "specs")
        provider = Provider(m, m.providers[0], folder / "provider").start()
        oracles = oracle_set(
            m, folder / "oracles", anvil.url,
            env={"ORACLE_START_BLOCK": str(m.deploy_block),
                 "ORACLE_CONFIRMATIONS": str(CONFIRMATIONS)},
        )  # fmt: skip
        after: list[int] = []
        try:
            with running(oracles):
                for o in oracles:
                    o.wait_ready()
                for i in range(LATENCY_JOBS):
                    spec = small_spec(seed=500 + i)
                    job = client.post(spec)
                    provider.accept(job)
                    root = provider.build(job, spec)
                    submitted_at = time.monotonic()
                    block = provider.submit(job, root, spec.shard_count)
                    wait_until(lambda job=job: m.state(job) == 4, 60)  # type: ignore[misc]
                    seconds = time.monotonic() - submitted_at
                    ((_, _, tx),) = m.settlement_logs(job)
                    settled = int(w3.eth.get_transaction_receipt(tx)["blockNumber"])  # type: ignore[arg-type]
                    after.append(settled - block - CONFIRMATIONS)
                    table.add(job, block, settled, settled - block, after[-1], f"{seconds:.1f}")
        finally:
            provider.stop()
    met = "met" if max(after) <= 3 else "**not met** in the worst case"
    table.notes.append(
        f"Mean {statistics.mean(after):.1f} and worst {max(after)} blocks after the "
        f"confirmation depth (target: at most 3: {met}). The oracles wait for {CONFIRMATIONS} "
        "confirmations of the result and of its seed block (the block after it), verify, "
        "exchange signatures over HTTP, and the job's designated transmitter (first in the "
        "on-chain oracle set sorted by address and rotated by the job id) sends the "
        "settlement, which lands in the next block."
    )
    return table


def run(ctx: Any = None) -> list[Table]:
    with tempfile.TemporaryDirectory(prefix="oracle-bench-") as tmp:
        folder = Path(tmp)
        return [_verify_throughput(folder / "verify"), _latency(folder / "latency")]


if __name__ == "__main__":
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    for t in run():
        print(t.markdown())
