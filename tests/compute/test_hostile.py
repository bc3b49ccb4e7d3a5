"""Hostile bundles and hostile servers: every one is rejected with the right reason, in
bounded time and memory, and none raises out of the verifier. Also: the whole result must
be served (not only the challenged shards), and a server that drips is cut by a rate floor."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurotoken.jobs import ShelfImagesSpec, TrainingSpec, keccak256, parse_spec
from neurotoken.proofs import (
    Commitment,
    FetchError,
    FetchFailure,
    HttpLimits,
    HttpSource,
    LocalStore,
    Reason,
    VerifierLimits,
    challenge_indices,
    verify_job,
)
from neurotoken.proofs.bundle import MAX_MANIFEST_BYTES, from_hex
from neurotoken.proofs.store import manifest_path, object_path, proof_path, spec_path
from neurotoken.proofs.verifier import MAX_AVAILABILITY_FINDINGS, OracleSideError
from neurotoken.provider import BundleServer, make_app
from neurotoken.workloads import max_shard_bytes
from tests.constants import shelf_spec_dict, training_spec_dict

from .conftest import BuiltJob, build_job

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAST = HttpLimits(timeout_s=0.5, retries=2, backoff_s=0.05)
SEED = b"\x42" * 32


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> BuiltJob:
    """A small honest job; every test below challenges all of its shards."""
    spec = parse_spec(shelf_spec_dict(shard_count=4))
    return build_job(spec, tmp_path_factory.mktemp("hostile"))


class HostileServer:
    """Serves a store honestly, except for paths given a hostile handler; counts requests."""

    def __init__(self, store: LocalStore) -> None:
        self.honest = make_app(store, public=True)
        self.rules: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._dispatch)
        self._server = BundleServer(app)
        self.store = store

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        if path.startswith("bundles/") and "/objects/" in path:  # a reader with a token asks
            path = "objects/" + path.rpartition("/objects/")[2]  # for objects by bundle
        self.hits[path] = self.hits.get(path, 0) + 1
        rule = self.rules.get(path)
        if rule is not None:
            return await rule(request)
        file = self.store.root_dir / path
        if not file.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=file.read_bytes())

    def __enter__(self) -> HostileServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url


@pytest.fixture
def server(job: BuiltJob) -> Iterator[HostileServer]:
    with HostileServer(job.store) as srv:
        yield srv


def run(
    job: BuiltJob,
    source: object,
    commitment: Commitment | None = None,
    limits: VerifierLimits | None = None,
) -> set[tuple[Reason, int | None]]:
    verdict = verify_job(
        job.spec,
        commitment or job.commitment,
        SEED,
        job.spec.shard_count,
        source,  # type: ignore[arg-type]
        limits,
    )
    assert not verdict.accepted
    return {(f.reason, f.shard) for f in verdict.findings}


def body(data: bytes) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=data)

    return handler


# --- honest baseline ----------------------------------------------------------------------


def test_honest_bundle_over_http__is_accepted(job: BuiltJob, server: HostileServer) -> None:
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource(server.url, FAST))
    assert verdict.accepted, verdict.summary()


def test_bundle_server__refuses_paths_outside_the_store(job: BuiltJob) -> None:
    with BundleServer(make_app(job.store, public=True)) as srv:
        source = HttpSource(srv.url, FAST)
        for bad in ["objects/../../etc/passwd", "objects/0xZZ", "bundles/x/manifest", "healthz/.."]:
            with pytest.raises(FetchError) as info:
                asyncio.run(source.aget(bad, 1000))
            assert info.value.failure == FetchFailure.MISSING


# --- manifest -------------------------------------------------------------------------------


def test_manifest_missing__is_rejected(job: BuiltJob, server: HostileServer) -> None:
    missing = Commitment(job.commitment.job_id, job.commitment.spec_hash, 4, b"\x11" * 32)
    assert run(job, HttpSource(server.url, FAST), missing) == {(Reason.MANIFEST_MISSING, None)}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: {**m, "job_id": str(m["job_id"])}, Reason.MANIFEST_MALFORMED),  # wrong type
        (lambda m: {**m, "shard_count": 4.0}, Reason.MANIFEST_MALFORMED),  # a float
        (lambda m: {**m, "leaves": m["leaves"][:3]}, Reason.MANIFEST_MALFORMED),  # leaves missing
        (lambda m: {**m, "leaves": [*m["leaves"][:3], "0x12"]}, Reason.MANIFEST_MALFORMED),
        (lambda m: {**m, "extra": True}, Reason.MANIFEST_MALFORMED),
        (lambda m: {k: v for k, v in m.items() if k != "root"}, Reason.MANIFEST_MALFORMED),
        (lambda m: {**m, "job_id": m["job_id"] + 1}, Reason.MANIFEST_MISMATCH),  # another job
        (lambda m: {**m, "spec_hash": "0x" + "ab" * 32}, Reason.MANIFEST_MISMATCH),
        (lambda m: {**m, "root": "0x" + "cd" * 32}, Reason.ROOT_MISMATCH),  # wrong root
        (lambda m: {**m, "leaves": m["leaves"][::-1]}, Reason.ROOT_MISMATCH),  # leaves reordered
    ],
)
def test_manifest_tampered__is_rejected_with_the_right_reason(
    job: BuiltJob,
    server: HostileServer,
    mutate: Callable[[dict[str, object]], dict[str, object]],
    reason: Reason,
) -> None:
    original = json.loads(job.store.manifest(job.root, MAX_MANIFEST_BYTES))
    server.rules[manifest_path(job.root)] = body(json.dumps(mutate(original)).encode())
    found = run(job, HttpSource(server.url, FAST))
    assert {r for r, _ in found} == {reason}


@pytest.mark.parametrize(
    "junk", [b"", b"not json", b"[1, 2, 3]", b'{"format": ', b"\xff\xfe", b"{}" * 10]
)
def test_manifest_garbage__is_rejected_as_malformed(
    job: BuiltJob, server: HostileServer, junk: bytes
) -> None:
    server.rules[manifest_path(job.root)] = body(junk)
    assert run(job, HttpSource(server.url, FAST)) == {(Reason.MANIFEST_MALFORMED, None)}


def test_manifest_larger_than_any_valid_one__is_refused_unread(
    job: BuiltJob, server: HostileServer
) -> None:
    async def huge(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b" " * (MAX_MANIFEST_BYTES + 1))

    server.rules[manifest_path(job.root)] = huge
    assert run(job, HttpSource(server.url, FAST)) == {(Reason.MANIFEST_TOO_LARGE, None)}


# --- shards and proofs ----------------------------------------------------------------------


def test_shard_missing__is_rejected(job: BuiltJob, server: HostileServer) -> None:
    async def gone(_: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    server.rules[object_path(keccak256(job.outputs[2]))] = gone
    assert run(job, HttpSource(server.url, FAST)) == {(Reason.SHARD_MISSING, 2)}


def test_shard_with_other_bytes__fails_its_hash(job: BuiltJob, server: HostileServer) -> None:
    server.rules[object_path(keccak256(job.outputs[1]))] = body(job.outputs[0])
    assert run(job, HttpSource(server.url, FAST)) == {(Reason.SHARD_HASH_MISMATCH, 1)}


def test_shard_oversized_by_declaration__is_refused_unread(
    job: BuiltJob, server: HostileServer
) -> None:
    async def declares_a_terabyte(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(10**12)})
        await resp.prepare(request)
        return resp

    server.rules[object_path(keccak256(job.outputs[3]))] = declares_a_terabyte
    assert run(job, HttpSource(server.url, FAST)) == {(Reason.SHARD_TOO_LARGE, 3)}


def test_shard_streamed_without_end__is_cut_at_the_size_bound(
    job: BuiltJob, server: HostileServer
) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no length declared
        await resp.prepare(request)
        chunk = b"\x00" * 65536
        for _ in range(10_000):
            await resp.write(chunk)
        return resp

    server.rules[object_path(keccak256(job.outputs[0]))] = endless
    started = time.monotonic()
    assert run(job, HttpSource(server.url, HttpLimits(timeout_s=5, retries=0))) == {
        (Reason.SHARD_TOO_LARGE, 0)
    }
    assert max_shard_bytes(job.spec) < 1 << 20 and time.monotonic() - started < 5


def test_shard_truncated__is_retried_then_rejected(job: BuiltJob, server: HostileServer) -> None:
    data = job.outputs[2]
    path = object_path(keccak256(data))

    async def truncated(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return resp

    server.rules[path] = truncated
    found = run(job, HttpSource(server.url, FAST))
    assert found == {(Reason.UNAVAILABLE, 2)}
    assert server.hits[path] == FAST.retries + 1  # bounded retry


def test_slow_server__times_out_within_the_bound_and_is_retryable(
    job: BuiltJob, server: HostileServer
) -> None:
    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    path = object_path(keccak256(job.outputs[1]))
    server.rules[path] = slow
    started = time.monotonic()
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource(server.url, FAST))
    elapsed = time.monotonic() - started
    assert not verdict.accepted and verdict.retryable
    assert {(f.reason, f.shard) for f in verdict.findings} == {(Reason.UNAVAILABLE, 1)}
    assert "timed out" in verdict.summary()
    assert server.hits[path] == FAST.retries + 1
    assert elapsed < (FAST.retries + 1) * FAST.timeout_s + 1.0 + 2  # attempts + backoff + slack


def test_dripping_server__is_cut_by_the_whole_request_deadline(
    job: BuiltJob, server: HostileServer
) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(1000):
            await resp.write(b"x")
            await asyncio.sleep(0.05)
        return resp

    server.rules[manifest_path(job.root)] = drip
    started = time.monotonic()
    found = run(job, HttpSource(server.url, HttpLimits(timeout_s=0.6, retries=1, backoff_s=0.05)))
    assert found == {(Reason.UNAVAILABLE, None)}
    assert time.monotonic() - started < 3


def test_flaky_server__succeeds_on_retry(job: BuiltJob, server: HostileServer) -> None:
    path = object_path(keccak256(job.outputs[0]))
    calls = {"n": 0}

    async def flaky(_: web.Request) -> web.StreamResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            raise web.HTTPServiceUnavailable()
        return web.Response(body=job.outputs[0])

    server.rules[path] = flaky
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource(server.url, FAST))
    assert verdict.accepted, verdict.summary()
    assert calls["n"] == 2


def test_unreachable_server__is_rejected_as_retryable(job: BuiltJob) -> None:
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource("http://127.0.0.1:9", FAST))
    assert not verdict.accepted and verdict.retryable


def test_proof_missing__is_rejected(job: BuiltJob, server: HostileServer) -> None:
    async def gone(_: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    server.rules[proof_path(job.root, 3)] = gone
    assert run(job, HttpSource(server.url, FAST)) == {(Reason.PROOF_MISSING, 3)}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p, other: other, Reason.PROOF_INVALID),  # another shard's proof
        (
            lambda p, other: {**p, "proof": ["0x" + "00" * 32] * len(p["proof"])},
            Reason.PROOF_INVALID,
        ),
        (lambda p, other: {**p, "proof": []}, Reason.PROOF_INVALID),
        (lambda p, other: {**p, "proof": "0x00"}, Reason.PROOF_MALFORMED),
        (lambda p, other: {**p, "proof": ["0x00"] * 99}, Reason.PROOF_MALFORMED),
        (lambda p, other: {**p, "index": -1}, Reason.PROOF_MALFORMED),
    ],
)
def test_proof_tampered__is_rejected(
    job: BuiltJob, server: HostileServer, mutate: Callable[..., object], reason: Reason
) -> None:
    proof = json.loads(job.store.proof(job.root, 1, 10_000))
    other = json.loads(job.store.proof(job.root, 2, 10_000))
    server.rules[proof_path(job.root, 1)] = body(json.dumps(mutate(proof, other)).encode())
    assert run(job, HttpSource(server.url, FAST)) == {(reason, 1)}


# --- the commitment, the spec and the challenge -----------------------------------------------


def test_spec_that_does_not_match_the_commitment__is_rejected(job: BuiltJob) -> None:
    other = parse_spec(shelf_spec_dict(shard_count=4, seed=12))
    verdict = verify_job(other, job.commitment, SEED, 2, job.store)
    assert verdict.reasons == {Reason.SPEC_MISMATCH}


@pytest.mark.parametrize("k", [0, 5, -1])
def test_impossible_challenge__is_rejected(job: BuiltJob, k: int) -> None:
    verdict = verify_job(job.spec, job.commitment, SEED, k, job.store)
    assert verdict.reasons == {Reason.CHALLENGE_INVALID}


def test_deadline_spent__stops_fetching_and_is_retryable(job: BuiltJob) -> None:
    verdict = verify_job(
        job.spec, job.commitment, SEED, 4, job.store, VerifierLimits(deadline_s=-1)
    )
    assert verdict.reasons == {Reason.DEADLINE_EXCEEDED} and verdict.retryable


# --- local folders are read with the same bounds -----------------------------------------------


def test_local_store__oversized_object__is_refused(tmp_path: Path, job: BuiltJob) -> None:
    spec = job.spec
    assert isinstance(spec, ShelfImagesSpec)
    store = LocalStore(tmp_path)
    big = b"\x00" * (max_shard_bytes(spec) + 1)
    digest = store.put_object(big)
    with pytest.raises(FetchError) as info:
        store.object(digest, max_shard_bytes(spec))
    assert info.value.failure == FetchFailure.TOO_LARGE


def test_training_job_with_unusable_checkpoint__is_rejected(tmp_path: Path) -> None:
    from .test_verifier import recommit

    spec = parse_spec(training_spec_dict(shard_count=4))
    assert isinstance(spec, TrainingSpec)
    built = build_job(spec, tmp_path)
    commitment = recommit(built, {1: b"NTKSHARD\x00\x00\x00\x02{}"})
    verdict = verify_job(spec, commitment, SEED, 4, built.store)
    found = {(f.reason, f.shard) for f in verdict.findings}
    assert (Reason.RECOMPUTE_MISMATCH, 1) in found
    assert (Reason.BAD_CHECKPOINT, 2) in found
    assert from_hex(built.manifest.root) == built.root


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_corrupted_bundle_file__is_rejected_never_raises(
    job: BuiltJob, data: st.DataObject
) -> None:
    """Flip, cut or extend any byte of any file of the bundle; with every shard challenged
    the verdict must be a rejection with findings, and nothing may escape as an exception."""
    files = sorted(
        p for p in job.store.root_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    target = data.draw(st.sampled_from(files))
    original = target.read_bytes()
    action = data.draw(st.sampled_from(["flip", "cut", "extend", "empty"]))
    if action == "flip":
        pos = data.draw(st.integers(0, len(original) - 1))
        damaged = (
            original[:pos]
            + bytes([original[pos] ^ data.draw(st.integers(1, 255))])
            + original[pos + 1 :]
        )
    elif action == "cut":
        damaged = original[: data.draw(st.integers(0, len(original) - 1))]
    elif action == "extend":
        damaged = original + data.draw(st.binary(min_size=1, max_size=64))
    else:
        damaged = b""
    try:
        target.write_bytes(damaged)
        verdict = verify_job(job.spec, job.commitment, SEED, job.spec.shard_count, job.store)
    finally:
        target.write_bytes(original)
    belongs = "objects" in target.parts or job.root.hex() in str(target)
    if target.name == "spec":
        assert verdict.accepted  # verify_job is handed the spec; the bundle's copy is for oracles
    elif belongs:
        assert not verdict.accepted and verdict.findings
    else:
        assert verdict.accepted  # another job's bundle in the same store


# --- the whole result must be served -----------------------------------------------------------


def unchallenged(job: BuiltJob, k: int) -> list[int]:
    drawn = set(challenge_indices(SEED, job.commitment.job_id, job.spec.shard_count, k))
    return [i for i in range(job.spec.shard_count) if i not in drawn]


def test_unchallenged_shard_missing__rejects(job: BuiltJob, server: HostileServer) -> None:
    """The provider serves the challenged shards but not the rest of the result: the client
    could not download what it pays for, so the verdict is a reject, not an accept."""
    missing = unchallenged(job, 1)[0]

    async def gone(_: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    server.rules[object_path(keccak256(job.outputs[missing]))] = gone
    verdict = verify_job(job.spec, job.commitment, SEED, 1, HttpSource(server.url, FAST))
    assert not verdict.accepted and not verdict.retryable
    assert {(f.reason, f.shard) for f in verdict.findings} == {(Reason.SHARD_MISSING, missing)}


@pytest.mark.parametrize("damage", ["other-bytes", "oversized", "truncated"])
def test_unchallenged_shard_wrong__rejects(
    job: BuiltJob, server: HostileServer, damage: str
) -> None:
    index = unchallenged(job, 1)[-1]
    honest = job.outputs[index]
    served = {
        "other-bytes": job.outputs[(index + 1) % 4],
        "oversized": honest + b"\x00" * max_shard_bytes(job.spec),
        "truncated": honest[:-1],
    }[damage]
    server.rules[object_path(keccak256(honest))] = body(served)
    verdict = verify_job(job.spec, job.commitment, SEED, 1, HttpSource(server.url, FAST))
    reason = Reason.SHARD_TOO_LARGE if damage == "oversized" else Reason.SHARD_HASH_MISMATCH
    assert {(f.reason, f.shard) for f in verdict.findings} == {(reason, index)}


def test_availability_check__fetches_each_shard_once_and_proofs_only_when_challenged(
    job: BuiltJob, server: HostileServer
) -> None:
    verdict = verify_job(job.spec, job.commitment, SEED, 2, HttpSource(server.url, FAST))
    assert verdict.accepted, verdict.summary()
    objects = {k: v for k, v in server.hits.items() if k.startswith("objects/")}
    assert objects == {object_path(keccak256(o)): 1 for o in job.outputs}
    proofs = {k for k in server.hits if "/proofs/" in k}
    assert proofs == {proof_path(job.root, i) for i in verdict.challenged}
    assert spec_path(job.root) not in server.hits  # verify_job is handed the spec


class HidingSource:
    """A store that serves only the objects in `keep` (a provider withholding its result)."""

    def __init__(self, store: LocalStore, keep: set[bytes]) -> None:
        self.store = store
        self.keep = keep

    def manifest(self, root: bytes, max_bytes: int) -> bytes:
        return self.store.manifest(root, max_bytes)

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes:
        return self.store.proof(root, index, max_bytes)

    def spec(self, root: bytes, max_bytes: int) -> bytes:
        return self.store.spec(root, max_bytes)

    def object(self, digest: bytes, max_bytes: int) -> bytes:
        if digest not in self.keep:
            raise FetchError(FetchFailure.MISSING, object_path(digest))
        return self.store.object(digest, max_bytes)


def test_result_withheld_but_challenged_shards__rejects_with_a_bounded_list(
    honest_shelf_job: BuiltJob,
) -> None:
    job = honest_shelf_job
    drawn = challenge_indices(SEED, job.commitment.job_id, job.spec.shard_count, 2)
    source = HidingSource(job.store, {keccak256(job.outputs[i]) for i in drawn})
    verdict = verify_job(job.spec, job.commitment, SEED, 2, source)
    assert not verdict.accepted and not verdict.retryable
    assert verdict.reasons == {Reason.SHARD_MISSING}
    assert len(verdict.findings) == MAX_AVAILABILITY_FINDINGS + 1  # then "stopped; n left"
    assert "availability check stopped" in str(verdict.findings[-1])


# --- slow servers: the rate floor and the verification deadline -------------------------------


FLOOR = HttpLimits(timeout_s=5.0, retries=1, backoff_s=0.05, min_rate_bps=2000, rate_grace_s=0.3)


def drip(data: bytes, pause_s: float = 0.02) -> Handler:
    """Sends `data` one byte at a time (declared length, so a cut is not a truncation)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await resp.prepare(request)
        for i in range(len(data)):
            await resp.write(data[i : i + 1])
            await asyncio.sleep(pause_s)
        return resp

    return handler


@pytest.mark.parametrize("what", ["manifest", "proof", "shard"])
def test_dripping_server__is_cut_by_the_rate_floor_and_rejected(
    job: BuiltJob, server: HostileServer, what: str
) -> None:
    """Well inside the whole-request deadline, a body that arrives slower than the floor is
    cut, retried, and then final: the provider's fault, not a transient failure."""
    path = {
        "manifest": manifest_path(job.root),
        "proof": proof_path(job.root, 2),
        "shard": object_path(keccak256(job.outputs[2])),
    }[what]
    server.rules[path] = drip(job.store.root_dir.joinpath(path).read_bytes())
    started = time.monotonic()
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource(server.url, FLOOR))
    elapsed = time.monotonic() - started
    assert not verdict.accepted and not verdict.retryable
    assert {(f.reason, f.shard) for f in verdict.findings} == {
        (Reason.TOO_SLOW, None if what == "manifest" else 2)
    }
    assert server.hits[path] == FLOOR.retries + 1
    assert elapsed < FLOOR.timeout_s  # cut by the floor, not by the request deadline


def test_slow_headers_then_a_fast_body__is_accepted(job: BuiltJob, server: HostileServer) -> None:
    """The floor counts from the headers: a server slow to answer but quick to send is only
    bound by the whole-request deadline."""
    path = object_path(keccak256(job.outputs[1]))
    data = job.outputs[1]

    async def late(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2 * FLOOR.rate_grace_s)
        return web.Response(body=data)

    server.rules[path] = late
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource(server.url, FLOOR))
    assert verdict.accepted, verdict.summary()


def test_slow_manifest__is_cut_by_the_verification_deadline(
    job: BuiltJob, server: HostileServer
) -> None:
    """The verification deadline bounds every fetch, the manifest's included, whatever the
    per-request timeout and retries would allow (here 3 x 5 s)."""

    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(body=b"{}")

    server.rules[manifest_path(job.root)] = slow
    started = time.monotonic()
    verdict = verify_job(
        job.spec,
        job.commitment,
        SEED,
        4,
        HttpSource(server.url, HttpLimits(timeout_s=5.0, retries=2)),
        VerifierLimits(deadline_s=0.5),
    )
    assert not verdict.accepted and verdict.retryable
    assert time.monotonic() - started < 2.5


def test_local_store__a_fifo_in_place_of_a_file__is_missing_not_a_hang(
    job: BuiltJob, tmp_path: Path
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(job.store.root_dir, copy)
    victim = copy / object_path(keccak256(job.outputs[3]))
    victim.unlink()
    os.mkfifo(victim)
    result: list[set[tuple[Reason, int | None]]] = []
    worker = threading.Thread(target=lambda: result.append(run(job, LocalStore(copy))), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "reading a FIFO hung the verifier"
    assert result == [{(Reason.SHARD_MISSING, 3)}]


# --- totality: only the oracle's own failures pass through ------------------------------------


class RaisingSource:
    """A source whose manifest read raises `exc` (as a bug tripped by odd data would)."""

    def __init__(self, store: LocalStore, exc: BaseException) -> None:
        self.store = store
        self.exc = exc

    def manifest(self, root: bytes, max_bytes: int) -> bytes:
        raise self.exc

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes:
        return self.store.proof(root, index, max_bytes)

    def object(self, digest: bytes, max_bytes: int) -> bytes:
        return self.store.object(digest, max_bytes)

    def spec(self, root: bytes, max_bytes: int) -> bytes:
        return self.store.spec(root, max_bytes)


@pytest.mark.parametrize(
    "exc", [KeyError("x"), TypeError("unhashable"), RecursionError(), ValueError("digits")]
)
def test_unexpected_error_while_judging__is_a_malformed_reject(
    job: BuiltJob, exc: Exception
) -> None:
    verdict = verify_job(job.spec, job.commitment, SEED, 4, RaisingSource(job.store, exc))
    assert not verdict.accepted and not verdict.retryable
    assert verdict.reasons == {Reason.MALFORMED}
    assert type(exc).__name__ in verdict.summary()


@pytest.mark.parametrize(
    "exc", [MemoryError(), OSError(24, "Too many open files"), OracleSideError("no threads")]
)
def test_oracle_side_failure__passes_through_for_a_retry(job: BuiltJob, exc: Exception) -> None:
    with pytest.raises(type(exc)):
        verify_job(job.spec, job.commitment, SEED, 4, RaisingSource(job.store, exc))
