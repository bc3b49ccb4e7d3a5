"""Suite `compute_speed`: workload throughput, verification cost and signature recovery.

Measures, on this machine (the chain is not used):

* shards per second for each workload, in one process and on all cores;
* the time to verify a 256-shard job at k = 4, 8 and 16 (fetch from the local bundle
  store, check hashes and proofs, re-execute the k challenged shards), also at k = 8 over
  HTTP, and its ratio to computing the whole job in one process (target: <= 5% at k = 8);
* eth-account signature recovery with the coincurve backend against eth-keys' pure-Python
  NativeECCBackend.

Shard sizes are chosen so the whole suite takes a minute or two on a small machine.
Run alone with `python -m neurotoken.bench.compute_speed`, or with the others by `make bench`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from neurotoken.bench.common import Table
from neurotoken.jobs import ShelfImagesSpec, TrainingSpec, keccak256, parse_spec, spec_hash
from neurotoken.proofs import Commitment, HttpSource, LocalStore, verify_job
from neurotoken.proofs.bundle import from_hex
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.provider.compute import default_workers

SHARDS = 256
SCENE = {
    "width": 160,
    "height": 120,
    "shelves": 2,
    "max_products_per_shelf": 8,
    "occlusion_pct": 30,
    "lighting_pct": 20,
    "noise_level": 6,
}
JOBS: dict[str, dict[str, Any]] = {
    "shelf-images (2 images of 160x120 per shard)": {
        "kind": "shelf-images",
        "version": 1,
        "seed": 1,
        "scene": SCENE,
        "images_per_shard": 2,
        "shard_count": SHARDS,
    },
    "classifier-training, fixed-point (20 steps of 32 per shard)": {
        "kind": "classifier-training",
        "version": 1,
        "seed": 2,
        "scene": SCENE,
        "images_per_segment": 1,
        "crop_size": 8,
        "hidden_units": 32,
        "batch_size": 32,
        "steps_per_segment": 20,
        "learning_rate_ppm": 200_000,
        "arithmetic": "fixed-point",
        "shard_count": SHARDS,
    },
    "classifier-training, float32 (20 steps of 32 per shard)": {
        "kind": "classifier-training",
        "version": 1,
        "seed": 3,
        "scene": SCENE,
        "images_per_segment": 1,
        "crop_size": 8,
        "hidden_units": 32,
        "batch_size": 32,
        "steps_per_segment": 20,
        "learning_rate_ppm": 200_000,
        "arithmetic": "float32",
        "shard_count": SHARDS,
    },
}
KS = (4, 8, 16)


def _timed_compute(
    spec: ShelfImagesSpec | TrainingSpec, folder: Path, workers: int
) -> tuple[float, list[bytes], LocalStore]:
    store = LocalStore(folder / "store")
    started = time.perf_counter()
    report = compute_job(spec, store, folder / "state", workers=workers, progress=False)
    return time.perf_counter() - started, report.output_hashes, store


def _verify_seconds(
    spec: ShelfImagesSpec | TrainingSpec,
    commitment: Commitment,
    k: int,
    source: Any,
    rounds: int = 5,
) -> float:
    total = 0.0
    for r in range(rounds):
        seed = keccak256(b"bench" + bytes([k, r]))
        started = time.perf_counter()
        verdict = verify_job(spec, commitment, seed, k, source)
        total += time.perf_counter() - started
        if not verdict.accepted:
            raise RuntimeError(f"honest job rejected: {verdict.summary()}")
    return total / rounds


@contextmanager
def _bundle_server(store_dir: Path) -> Iterator[str]:
    """`python -m neurotoken.provider serve` on `store_dir`, in its own process (as on a
    provider's machine: the oracle's process does not pay for serving); yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    args = ["serve", "--store", str(store_dir), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "neurotoken.provider", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bundle server on port {port} did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure_workloads() -> list[Table]:
    cores = default_workers()
    speed = Table(
        f"Workload throughput ({SHARDS}-shard jobs, this machine: {cores} cores)",
        [
            "workload",
            "1 process (shards/s)",
            f"{cores} processes (shards/s)",
            "full job, 1 process (s)",
        ],
    )
    cost = Table(
        f"Verification cost ({SHARDS}-shard jobs; mean of 5 challenges each)",
        ["workload", "k", "verify (s)", "verify / full compute", "target"],
    )
    for name, raw in JOBS.items():
        spec = parse_spec(raw)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            full, hashes, store = _timed_compute(spec, folder / "one", workers=1)
            if cores > 1:
                pooled, pooled_hashes, _ = _timed_compute(spec, folder / "all", workers=cores)
                if pooled_hashes != hashes:
                    raise RuntimeError(f"{name}: outputs differ between 1 and {cores} processes")
                pooled_rate = f"{SHARDS / pooled:.1f}"
            else:
                pooled_rate = "n/a (1 core)"
            speed.add(name, f"{SHARDS / full:.1f}", pooled_rate, f"{full:.1f}")
            manifest = publish_bundle(store, 1, spec, hashes)
            commitment = Commitment(1, spec_hash(spec), SHARDS, from_hex(manifest.root))
            for k in KS:
                seconds = _verify_seconds(spec, commitment, k, store)
                target = "<= 5%" if k == 8 else ""
                cost.add(name, k, f"{seconds:.3f}", f"{100 * seconds / full:.2f}%", target)
            with _bundle_server(Path(store.root_dir)) as url:
                # one untimed pass warms the server's process as the k = 4 row warmed ours
                _verify_seconds(spec, commitment, 4, HttpSource(url), rounds=1)
                seconds = _verify_seconds(spec, commitment, 8, HttpSource(url))
            cost.add(name, "8 (HTTP)", f"{seconds:.3f}", f"{100 * seconds / full:.2f}%", "<= 5%")
    speed.notes.append(
        f"{cores}-process figures include starting the worker pool. Training segments form a "
        "chain: only their data preparation (rendering, cropping) runs in parallel."
    )
    cost.notes.append(
        "Verification = fetch manifest, proofs and shards (hash-checked), recompute the root, "
        "check proofs, re-execute the k challenged shards (training: from the committed "
        "checkpoint before each). Shards are fetched up to 8 at once; the HTTP row fetches "
        "from `python -m neurotoken.provider serve` in another process, as from a provider's "
        f"machine. Re-execution alone is about k/{SHARDS} of the job ("
        + ", ".join(f"{100 * k / SHARDS:.2f}% at k = {k}" for k in KS)
        + "); shards differ in cost (products per image), and on a shared machine single "
        "timings move by 10-20%."
    )
    return [speed, cost]


def measure_signatures(rounds: int = 40) -> Table:
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_keys.backends import get_backend

    account = Account.from_key(keccak256(b"bench signer"))
    message = encode_defunct(text="verdict: job 1 accepted")
    signature = account.sign_message(message).signature
    table = Table(
        "Signature recovery (eth-account Account.recover_message)",
        ["backend", "recoveries/s", "speed-up"],
    )
    rates: dict[str, float] = {}
    before = os.environ.get("ECC_BACKEND_CLASS")
    try:
        for label, path in (
            ("pure Python (eth-keys NativeECCBackend)", "eth_keys.backends.NativeECCBackend"),
            ("coincurve (libsecp256k1)", "eth_keys.backends.CoinCurveECCBackend"),
        ):
            os.environ["ECC_BACKEND_CLASS"] = path
            assert type(get_backend()).__name__ == path.rsplit(".", 1)[1]
            n = rounds if "Native" in path else rounds * 25
            started = time.perf_counter()
            for _ in range(n):
                if Account.recover_message(message, signature=signature) != account.address:
                    raise RuntimeError("recovery returned the wrong address")
            rates[label] = n / (time.perf_counter() - started)
    finally:
        if before is None:
            os.environ.pop("ECC_BACKEND_CLASS", None)
        else:
            os.environ["ECC_BACKEND_CLASS"] = before
    native = next(iter(rates.values()))
    for label, rate in rates.items():
        table.add(label, f"{rate:,.0f}", f"{rate / native:.1f}x")
    table.notes.append("Oracles and the settlement path recover one signature per verdict.")
    return table


def run(ctx: Any = None) -> list[Table]:
    """The suite's tables (the chain context is not needed)."""
    return [*measure_workloads(), measure_signatures()]


if __name__ == "__main__":
    for t in run():
        print(t.markdown())
