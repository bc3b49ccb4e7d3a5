"""Verification in bounded worker processes, on real bundles served over HTTP: honest,
forged, malformed, oversized, unreachable and slow bundles, the time and memory bounds of a
worker, and where the spec comes from (the client's URI or the provider's bundle)."""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from eth_account import Account

from devchain.localnet import free_port, small_spec
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import parse_spec, spec_hash, spec_json
from neurotoken.market.verdicts import MarketDomain
from neurotoken.proofs.access import MAX_TOKEN_AHEAD_S, BundleAccess
from neurotoken.proofs.store import LocalStore, manifest_path, spec_path
from neurotoken.provider import BundleServer, compute_job, make_app, publish_bundle
from neurotoken.provider.server import BundleGate
from oracle.keys import OracleKey
from oracle.verify import (
    Kind,
    VerifierPool,
    VerifyOutcome,
    VerifyTask,
    access_lifetime_s,
    bundle_access,
    run_task,
)
from tests.compute.test_hostile import HostileServer, body
from tests.constants import training_spec_dict

SEED = b"\x42" * 32
DOMAIN = MarketDomain(31337, "0x" + "5a" * 20)
ORACLE_KEY = keccak256(b"test oracle")
ORACLE = OracleKey(Account.from_key(ORACLE_KEY))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """An honest and a forged bundle for job 1 of one spec, in one store served over HTTP to
    the job's oracle (`ORACLE`) only, as a provider agent serves it."""
    folder = tmp_path_factory.mktemp("bundle")
    spec = small_spec(seed=21, shards=16)
    store = LocalStore(folder / "store")
    report = compute_job(spec, store, folder / "state", workers=1, progress=False)
    honest = publish_bundle(store, 1, spec, list(report.output_hashes))
    forged_hashes = [store.put_object(b"forged %d" % i) for i in range(spec.shard_count)]
    forged = publish_bundle(store, 1, spec, forged_hashes)
    spec_file = folder / "spec.json"
    spec_file.write_bytes(spec_json(spec))
    gate = BundleGate(DOMAIN.chain_id, DOMAIN.market, lambda who, _root: who == ORACLE.address)
    with BundleServer(make_app(store, gate)) as server:
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
    root: bytes = bundle[root_key]  # type: ignore[assignment]
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
        bundle_auth=ORACLE.bundle_access(DOMAIN, root).authorization,
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
    # A big spec (2 megapixels per shard) whose forged bundle costs nothing to publish but
    # whose re-execution needs far more than the worker's 64 MiB.
    spec = small_spec(seed=5, shards=4, images=2, width=1024, height=1024)
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


def test_manifest_with_5000_digit_integer__is_rejected_not_retried(bundle) -> None:
    """A caught cheater replaces its manifest with JSON holding a 5,000-digit integer (over
    Python's int-conversion limit). That is malformed provider data: a signed reject, not a
    worker error that is retried until the job lapses and the provider keeps its stake."""
    store: LocalStore = bundle["store"]
    root: bytes = bundle["forged_root"]
    honest = store.manifest(root, 1 << 20)
    hostile = honest.replace(b'"job_id":1,', b'"job_id":' + b"9" * 5000 + b",")
    assert hostile != honest
    with HostileServer(store) as server:
        server.rules[manifest_path(root)] = body(hostile)
        task = task_for(bundle, "forged_root", bundle_uri=server.url)
        outcome = run_task(task)
        assert outcome.kind == Kind.VERDICT and not outcome.accepted
        assert outcome.reasons[0].startswith("MANIFEST_MALFORMED"), outcome.reasons
        assert "digits" in outcome.reasons[0]
        in_worker = in_pool(task)  # the same through a worker process
    assert in_worker.kind == Kind.VERDICT and not in_worker.accepted, in_worker.reasons


@pytest.mark.parametrize("client", ["missing-file", "another-spec", "http-404", "unreachable"])
@pytest.mark.parametrize("root_key", ["honest_root", "forged_root"])
def test_client_withholds_spec__spec_from_bundle__job_is_judged(
    bundle, serve, tmp_path: Path, client: str, root_key: str
) -> None:
    """The client takes the outputs and withholds (or swaps) its spec: the oracle takes the
    spec from the provider's bundle and judges the job as usual."""
    other = tmp_path / "other.json"
    other.write_bytes(spec_json(small_spec(seed=99)))
    app = web.Application()
    uri = {
        "missing-file": (tmp_path / "gone.json").as_uri(),
        "another-spec": other.as_uri(),
        "http-404": serve(app) + "/spec.json",
        "unreachable": f"http://127.0.0.1:{free_port()}/spec.json",
    }[client]
    outcome = run_task(task_for(bundle, root_key, spec_uri=uri))
    assert outcome.kind == Kind.VERDICT
    assert outcome.accepted is (root_key == "honest_root"), outcome.reasons
    if root_key == "forged_root":
        assert all(r.startswith(("RECOMPUTE_MISMATCH", "SHARD_MALFORMED")) for r in outcome.reasons)


@pytest.fixture
def bundle_without_spec(bundle, tmp_path: Path) -> Path:
    """A copy of the bundle store whose bundles do not carry the spec."""
    copy = tmp_path / "no-spec"
    shutil.copytree(bundle["store"].root_dir, copy)
    for root_key in ("honest_root", "forged_root"):
        (copy / spec_path(bundle[root_key])).unlink()
    return copy


def test_no_spec_anywhere__rejects(bundle, bundle_without_spec: Path, tmp_path: Path) -> None:
    """Neither the client nor the provider serves the spec: the provider accepted the job,
    so it had the spec and had to publish it. A reject, not a lapse with a full refund."""
    outcome = run_task(
        task_for(
            bundle,
            spec_uri=(tmp_path / "gone.json").as_uri(),
            bundle_uri=bundle_without_spec.as_uri(),
        )
    )
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("SPEC_NOT_SERVED"), outcome.reasons
    assert "client URI" in outcome.reasons[0] and "provider bundle" in outcome.reasons[0]


def test_no_matching_spec_anywhere__rejects(bundle, tmp_path: Path) -> None:
    """Both sides serve a spec, neither the committed one."""
    other = spec_json(small_spec(seed=99))
    store: LocalStore = bundle["store"]
    root: bytes = bundle["honest_root"]
    wrong = tmp_path / "other.json"
    wrong.write_bytes(other)
    with HostileServer(store) as server:
        server.rules[spec_path(root)] = body(other)
        outcome = run_task(task_for(bundle, spec_uri=wrong.as_uri(), bundle_uri=server.url))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("SPEC_NOT_SERVED")
    assert "do not hash to the spec hash" in outcome.reasons[0]


def test_no_spec_and_bundle_server_down__is_a_transient_retry(bundle, tmp_path: Path) -> None:
    """The bundle server cannot be reached (yet): retry; every reason is transient, so the
    service rejects once the verdict deadline is near (it matches `UNAVAILABLE`)."""
    outcome = run_task(
        task_for(
            bundle,
            spec_uri=(tmp_path / "gone.json").as_uri(),
            bundle_uri=f"http://127.0.0.1:{free_port()}",
            fetch_timeout_s=0.5,
        )
    )
    assert outcome.kind == Kind.RETRY
    assert outcome.reasons and all(r.startswith("UNAVAILABLE") for r in outcome.reasons)


def test_spec_that_hashes_right_but_is_invalid__rejects(bundle) -> None:
    """The posted spec hash names bytes that are no valid spec; the provider accepted the job
    anyway (it should have refused it)."""
    junk = b'{"kind":"shelf-images","version":1,"shard_count":' + b"9" * 5000 + b"}"
    uri = "data:application/json;base64," + base64.b64encode(junk).decode()
    outcome = run_task(task_for(bundle, spec_uri=uri, spec_hash=keccak256(junk)))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("SPEC_INVALID"), outcome.reasons


def test_valid_spec_the_market_cannot_pay_for__rejects(bundle) -> None:
    """float32 training parses but is not payable (`market_problems`): the provider should
    have refused the job."""
    spec = parse_spec(training_spec_dict(arithmetic="float32", shard_count=16))
    raw = spec_json(spec)
    uri = "data:application/json;base64," + base64.b64encode(raw).decode()
    outcome = run_task(task_for(bundle, spec_uri=uri, spec_hash=keccak256(raw)))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("SPEC_UNPAYABLE"), outcome.reasons


def test_remote_client_spec__is_read_only_if_the_bundle_lacks_it(
    bundle, bundle_without_spec: Path
) -> None:
    """A remote client URI is tried after the provider's bundle, so a slow client cannot
    spend an honest provider's verification budget."""
    hits: list[str] = []
    data = spec_json(bundle["spec"])

    async def spec(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/spec.json", spec)
    with BundleServer(app) as client:
        uri = client.url + "/spec.json"
        assert run_task(task_for(bundle, spec_uri=uri)).accepted
        assert hits == []
        store_dir = bundle_without_spec.as_uri()
        assert run_task(task_for(bundle, spec_uri=uri, bundle_uri=store_dir)).accepted
        assert hits == ["/spec.json"]


@pytest.mark.parametrize(
    ("spec_uri", "bundle_uri", "kind"),
    [
        ("http://[::1/spec.json", None, Kind.VERDICT),  # unparsable: the spec comes from the bundle
        ("data:;base64,!!not base64!!", None, Kind.VERDICT),
        ("data:no-comma", None, Kind.VERDICT),
        ("ftp://example.invalid/spec", None, Kind.VERDICT),
        (None, "http://[::1", Kind.VERDICT),  # the provider's URI is unparsable: a reject
    ],
)
def test_hostile_uris__give_an_outcome_never_raise(
    bundle, spec_uri: str | None, bundle_uri: str | None, kind: Kind
) -> None:
    overrides = {"spec_uri": spec_uri, "bundle_uri": bundle_uri}
    outcome = run_task(task_for(bundle, **{k: v for k, v in overrides.items() if v is not None}))
    assert outcome.kind == kind
    assert outcome.accepted is (bundle_uri is None), outcome.reasons


def test_spec_over_http_and_bundle_from_a_folder__are_read(
    bundle, serve, bundle_without_spec: Path
) -> None:
    data = spec_json(bundle["spec"])

    async def spec(_: web.Request) -> web.Response:
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/spec.json", spec)
    outcome = run_task(
        task_for(
            bundle, spec_uri=serve(app) + "/spec.json", bundle_uri=bundle_without_spec.as_uri()
        )
    )
    assert outcome.kind == Kind.VERDICT and outcome.accepted


def test_bundle_uri_scheme_nobody_can_read__is_rejected(bundle) -> None:
    outcome = run_task(task_for(bundle, bundle_uri="ipfs://bafy-not-served"))
    assert outcome.kind == Kind.VERDICT and not outcome.accepted
    assert outcome.reasons[0].startswith("BUNDLE_URI_UNUSABLE")


# --- reading a provider that serves its bundles to the job's oracles only ----------------------


def test_without_a_token__the_provider_refuses__a_transient_retry(bundle) -> None:
    """No token (a dry-run oracle has no key), or one a provider does not honour: no verdict
    either way; the service rejects only if the provider still refuses near the deadline."""
    outcome = run_task(task_for(bundle, bundle_auth=""))
    assert outcome.kind == Kind.RETRY and not outcome.accepted
    assert all(r.startswith("UNAVAILABLE") for r in outcome.reasons), outcome.reasons
    assert "401" in outcome.reasons[0]
    stranger = BundleAccess.sign(keccak256(b"stranger"), DOMAIN.chain_id, DOMAIN.market,
                                 bundle["honest_root"])  # fmt: skip
    outcome = run_task(task_for(bundle, bundle_auth=stranger.authorization))
    assert outcome.kind == Kind.RETRY and "403" in outcome.reasons[0]


def test_token__made_in_the_main_process__lives_through_the_verification(bundle) -> None:
    assert "NTK-Bundle" not in repr(task_for(bundle))  # a credential: kept out of logs

    class Settings:
        verify_timeout_s = 300.0

    header = bundle_access(ORACLE, DOMAIN, b"\x01" * 32, Settings())
    assert header.startswith(f"NTK-Bundle {ORACLE.address} ")
    expires = int(header.split()[2])
    assert time.time() + 360 <= expires + 1 and expires <= time.time() + MAX_TOKEN_AHEAD_S
    assert bundle_access(None, DOMAIN, b"\x01" * 32, Settings()) == ""  # dry run: no key
    Settings.verify_timeout_s = 10 * 3600.0  # never past what a provider accepts
    assert access_lifetime_s(Settings()) == MAX_TOKEN_AHEAD_S - 60
