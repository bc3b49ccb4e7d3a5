"""Verification in bounded worker processes, on real bundles served over HTTP: honest,
forged, malformed, oversized, unreachable and slow bundles, and the time and memory
bounds of a worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from neurotoken.jobs.spec import spec_hash, spec_json
from neurotoken.proofs.store import LocalStore
from neurotoken.provider import BundleServer, compute_job, make_app, publish_bundle
from oracle.localnet import free_port, small_spec
from oracle.verify import Kind, VerifierPool, VerifyOutcome, VerifyTask, run_task

SEED = b"\x42" * 32


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """An honest and a forged bundle for job 1 of one spec, in one store served over HTTP."""
    folder = tmp_path_factory.mktemp("bundle")
    spec = small_spec(seed=21, shards=16)
    store = LocalStore(folder / "store")
    report = compute_job(spec, store, folder / "state", workers=1, progress=False)
    honest = publish_bundle(store, 1, spec, list(report.output_hashes))
    forged_hashes = [store.put_object(b"forged %d" % i) for i in range(spec.shard_count)]
    forged = publish_bundle(store, 1, spec, forged_hashes)
    spec_file = folder / "spec.json"
    spec_file.write_bytes(spec_json(spec))
    with BundleServer(make_app(store)) as server:
        yield {
            "spec": spec,
            "store": store,
            "url": server.url,
            "spec_uri": spec_file.as_uri(),
            "honest_root": bytes.fromhex(honest.root[2:]),
            "forged_root": bytes.fromhex(forged.root[2:]),
        }


def task_for(
    bundle: dict[str, object], root_key: str = "honest_root", **overrides: object
) -> VerifyTask:
    spec = bundle["spec"]
    task = VerifyTask(
        job_id=1,
        result_root=bundle[root_key],  # type: ignore[arg-type]
        spec_hash=spec_hash(spec),  # type: ignore[arg-type]
        spec_uri=str(bundle["spec_uri"]),
        shard_count=16,
        challenge_count=8,
        seed=SEED,
        bundle_uri=str(bundle["url"]),
        fetch_timeout_s=2.0,
        fetch_retries=1,
        fetch_budget_s=20.0,
        memory_mb=2048,
        cpu_s=60,
    )
    return replace(task, **overrides)  # type: ignore[arg-type]


def in_pool(task: VerifyTask, timeout_s: float = 60.0) -> VerifyOutcome:
    pool = VerifierPool(workers=1, timeout_s=timeout_s)
    try:
        pool.submit(task)
        deadline = time.monotonic() + timeout_s + 30
        while time.monotonic() < deadline:
            done = pool.poll()
            if done:
                (outcome,) = done
                return outcome
            time.sleep(0.05)
        raise AssertionError("the pool never answered")
    finally:
        pool.shutdown()


@pytest.fixture
def serve() -> Iterator[Callable[[web.Application], str]]:
    servers: list[BundleServer] = []

    def _serve(app: web.Application) -> str:
        server = BundleServer(app, shutdown_timeout_s=0.1).start()
        servers.append(server)
        return server.url

    yield _serve
    for server in servers:
        server.stop()


def test_honest_bundle__in_a_worker_process__is_accepted(bundle) -> None:
    outcome = in_pool(task_for(bundle))
    assert outcome.kind == Kind.VERDICT and outcome.accepted, outcome.reasons
    assert len(outcome.challenged) == 8 and outcome.elapsed_s > 0


def test_forged_bundle__is_rejected_with_reasons(bundle) -> None:
    outcome = in_pool(task_for(bundle, "forged_root"))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert all(r.startswith(("RECOMPUTE_MISMATCH", "SHARD_MALFORMED")) for r in outcome.reasons)
    assert len(outcome.reasons) == 8


def test_malformed_manifest__is_rejected(bundle, serve) -> None:
    async def manifest(_: web.Request) -> web.Response:
        return web.Response(body=b'{"format": "neurotoken-bundle/1", "leaves": 5}')

    app = web.Application()
    app.router.add_get("/bundles/{root}/manifest", manifest)
    outcome = run_task(task_for(bundle, bundle_uri=serve(app)))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("MANIFEST_MALFORMED")


def test_oversized_manifest__is_rejected_without_reading_it_all(bundle, serve) -> None:
    async def manifest(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(2000):  # ~130 MB if read to the end
            await resp.write(b"x" * 65536)
        return resp

    app = web.Application()
    app.router.add_get("/bundles/{root}/manifest", manifest)
    started = time.monotonic()
    outcome = run_task(task_for(bundle, bundle_uri=serve(app)))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("MANIFEST_TOO_LARGE")
    assert time.monotonic() - started < 10


def test_unreachable_bundle__is_a_retry_not_a_verdict(bundle) -> None:
    outcome = run_task(task_for(bundle, bundle_uri=f"http://127.0.0.1:{free_port()}"))
    assert outcome.kind == Kind.RETRY and not outcome.accepted
    assert outcome.reasons[0].startswith("UNAVAILABLE")


def test_slow_bundle__times_out_into_a_retry(bundle, serve) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"{}")

    app = web.Application()
    app.router.add_get("/bundles/{root}/manifest", slow)
    started = time.monotonic()
    outcome = run_task(task_for(bundle, bundle_uri=serve(app), fetch_timeout_s=0.5))
    assert outcome.kind == Kind.RETRY
    assert outcome.reasons[0].startswith("UNAVAILABLE") and "timed out" in outcome.reasons[0]
    assert time.monotonic() - started < 4


def test_worker_past_its_wall_clock_bound__is_killed_into_a_retry(bundle, serve) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=b"{}")

    app = web.Application()
    app.router.add_get("/bundles/{root}/manifest", slow)
    started = time.monotonic()
    outcome = in_pool(task_for(bundle, bundle_uri=serve(app), fetch_timeout_s=60), timeout_s=2)
    assert outcome.kind == Kind.RETRY and outcome.reasons[0].startswith("WORKER_TIMEOUT")
    assert time.monotonic() - started < 15


def test_worker_over_its_memory_bound__fails_into_a_retry(tmp_path: Path) -> None:
    # A big spec (16 megapixels per shard) whose forged bundle costs nothing to publish but
    # whose re-execution needs far more than the worker's 64 MiB.
    spec = small_spec(seed=5, shards=4, images=16, width=1024, height=1024)
    store = LocalStore(tmp_path / "store")
    forged = publish_bundle(store, 1, spec, [store.put_object(b"f%d" % i) for i in range(4)])
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(spec_json(spec))
    task = VerifyTask(
        job_id=1, result_root=bytes.fromhex(forged.root[2:]), spec_hash=spec_hash(spec),
        spec_uri=spec_file.as_uri(), shard_count=4, challenge_count=1, seed=SEED,
        bundle_uri=(tmp_path / "store").as_uri(), memory_mb=64, cpu_s=60,
    )  # fmt: skip
    outcome = in_pool(task)
    assert outcome.kind == Kind.RETRY, outcome
    assert outcome.reasons[0].startswith(("WORKER_MEMORY", "WORKER_DIED"))


def test_spec_not_matching_its_hash__gives_no_verdict(bundle, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_bytes(spec_json(small_spec(seed=99)))
    outcome = run_task(task_for(bundle, spec_uri=other.as_uri()))
    assert outcome.kind == Kind.NO_VERDICT
    assert outcome.reasons[0].startswith("SPEC_HASH_MISMATCH")


def test_missing_spec__gives_no_verdict(bundle, tmp_path: Path) -> None:
    outcome = run_task(task_for(bundle, spec_uri=(tmp_path / "gone.json").as_uri()))
    assert outcome.kind == Kind.NO_VERDICT and outcome.reasons[0].startswith("SPEC_UNAVAILABLE")


def test_spec_over_http_and_bundle_from_a_folder__are_read(bundle, serve, tmp_path: Path) -> None:
    data = spec_json(bundle["spec"])

    async def spec(_: web.Request) -> web.Response:
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/spec.json", spec)
    store_dir = bundle["store"].root_dir
    outcome = run_task(
        task_for(bundle, spec_uri=serve(app) + "/spec.json", bundle_uri=Path(store_dir).as_uri())
    )
    assert outcome.kind == Kind.VERDICT and outcome.accepted


def test_bundle_uri_scheme_nobody_can_read__is_rejected(bundle) -> None:
    outcome = run_task(task_for(bundle, bundle_uri="ipfs://bafy-not-served"))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("BUNDLE_URI_UNUSABLE")
