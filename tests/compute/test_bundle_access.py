"""A provider's bundle is read by its job's client and oracles only (security review, finding 4).

Two jobs' bundles sit in one provider store behind one server: job 1 (client Alice, posted in
oracle epoch 1: oracles O1 and O2) and job 2 (client Bob, posted in epoch 2, after O2 was
retired and O3 added: oracles O1 and O3). Readers sign bundle access tokens
(`neurotoken.proofs.access`); the server's gate is the one the provider agent uses
(`JobReaders`: the job's record says its client and oracle epoch, the chain who serves that
epoch), fed from tables here instead of the chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotoken.jobs import keccak256, parse_spec, spec_hash
from neurotoken.market.job import ZERO_ADDRESS, OnChainJob
from neurotoken.market.states import JobState
from neurotoken.proofs import Commitment, HttpLimits, HttpSource, LocalStore, verify_job
from neurotoken.proofs.access import (
    MAX_HEADER_CHARS,
    MAX_TOKEN_AHEAD_S,
    BundleAccess,
    access_message,
    check_token,
    parse_token,
    sign_token,
)
from neurotoken.proofs.bundle import from_hex
from neurotoken.proofs.results import ResultError, fetch_result
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.provider import server as server_module
from neurotoken.provider.readers import JobReaders
from neurotoken.provider.server import BundleGate, BundleServer, make_app
from tests.constants import shelf_spec_dict

CHAIN_ID = 31337
MARKET = "0x" + "5a" * 20
OTHER_MARKET = "0x" + "5b" * 20
SEED = b"\x42" * 32
FAST = HttpLimits(timeout_s=5.0, retries=0)


def key(name: str) -> bytes:
    return keccak256(name.encode())


def address(name: str) -> str:
    return str(Account.from_key(key(name)).address)


@dataclass
class Job:
    job_id: int
    spec: object
    root: bytes
    commitment: Commitment
    outputs: list[bytes]
    leaves: list[bytes]


def record(job_id: int, client: str, epoch: int, root: bytes = b"\x01" * 32) -> OnChainJob:
    """A submitted job's record with the fields the gate reads (client, oracle epoch)."""
    return OnChainJob(
        job_id=job_id, client=client, payment_ntk=10**18, provider=ZERO_ADDRESS,
        collateral_ntk=0, spec_hash=b"\x02" * 32, result_root=root, state=JobState.SUBMITTED,
        accept_by=1, deliver_by=2, verdict_by=3, seed_block=4, shard_count=4,
        challenge_count=4, fee_bps=250, oracle_epoch=epoch, threshold=2,
    )  # fmt: skip


@dataclass
class Provider:
    """Two jobs in one store; who may read what, as the agent's chain would say."""

    store: LocalStore
    jobs: dict[int, Job]
    records: dict[int, OnChainJob]
    epoch_oracles: dict[int, set[str]]

    def jobs_of_root(self, root: bytes) -> list[int]:
        return [j.job_id for j in self.jobs.values() if j.root == root]

    def is_epoch_oracle(self, epoch: int, who: str) -> bool:
        return who in self.epoch_oracles.get(epoch, set())

    def readers(self) -> JobReaders:
        return JobReaders(self.jobs_of_root, self.records.__getitem__, self.is_epoch_oracle)

    def gate(self, **kwargs: object) -> BundleGate:
        return BundleGate(CHAIN_ID, MARKET, self.readers(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Provider:
    folder = tmp_path_factory.mktemp("access")
    store = LocalStore(folder / "store")
    jobs: dict[int, Job] = {}
    for job_id, seed in ((1, 31), (2, 32)):
        spec = parse_spec(shelf_spec_dict(seed=seed, shard_count=4))
        report = compute_job(spec, store, folder / f"state{job_id}", workers=1, progress=False)
        hashes = list(report.output_hashes)
        manifest = publish_bundle(store, job_id, spec, hashes)
        root = from_hex(manifest.root)
        commitment = Commitment(job_id, spec_hash(spec), spec.shard_count, root)
        outputs = [store.object(h, 1 << 30) for h in hashes]
        jobs[job_id] = Job(job_id, spec, root, commitment, outputs, hashes)
    records = {
        1: record(1, address("alice"), 1, jobs[1].root),
        2: record(2, address("bob"), 2, jobs[2].root),
    }
    epoch_oracles = {
        1: {address("oracle1"), address("oracle2")},
        2: {address("oracle1"), address("oracle3")},
    }
    return Provider(store, jobs, records, epoch_oracles)


@pytest.fixture
def server(provider: Provider) -> Iterator[BundleServer]:
    with BundleServer(make_app(provider.store, provider.gate())) as srv:
        yield srv


def token(name: str, root: bytes, **kwargs: object) -> str:
    return sign_token(key(name), CHAIN_ID, MARKET, root, **kwargs).header  # type: ignore[arg-type]


def access(name: str, root: bytes) -> BundleAccess:
    return BundleAccess.sign(key(name), CHAIN_ID, MARKET, root)


def bundle_paths(job: Job) -> list[str]:
    """Every path of a job's bundle, and its outputs under both the bundle and the old
    open route."""
    root = f"0x{job.root.hex()}"
    paths = [f"bundles/{root}/manifest", f"bundles/{root}/spec"]
    paths += [f"bundles/{root}/proofs/{i}" for i in range(len(job.leaves))]
    paths += [f"bundles/{root}/objects/0x{leaf.hex()}" for leaf in job.leaves]
    paths += [f"objects/0x{leaf.hex()}" for leaf in job.leaves]
    return paths


def get(url: str, path: str, authorization: str | None = None) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    headers = {} if authorization is None else {"Authorization": authorization}
    return session.get(f"{url}/{path}", headers=headers, timeout=10)


def assert_refused(url: str, job: Job, authorization: str | None) -> None:
    """Every path of `job`'s bundle is refused, and no answer carries any of its bytes."""
    for path in bundle_paths(job):
        resp = get(url, path, authorization)
        assert resp.status_code in (401, 403, 404), (path, resp.status_code)
        assert len(resp.content) < 100, path  # a short reason, never the bytes
        for output in job.outputs:
            assert output[:64] not in resp.content


# --- the attack ----------------------------------------------------------------------------


def test_stranger_knowing_the_bundle_url__gets_no_output(
    provider: Provider, server: BundleServer
) -> None:
    job = provider.jobs[1]
    assert_refused(server.url, job, None)  # no token at all
    assert_refused(server.url, job, token("stranger", job.root))  # a valid token, not a reader
    # a stranger verifying from the bundle URL learns nothing and gets no verdict to sign
    verdict = verify_job(job.spec, job.commitment, SEED, 4, HttpSource(server.url, FAST))  # type: ignore[arg-type]
    assert not verdict.accepted and verdict.retryable
    with pytest.raises(ResultError, match="403"):
        fetch_result(
            server.url, job.root, key("stranger"), CHAIN_ID, MARKET, Path("/nonexistent"),
            limits=FAST,
        )  # fmt: skip
    challenge = get(server.url, f"bundles/0x{job.root.hex()}/manifest").headers
    assert challenge["WWW-Authenticate"].startswith("NTK-Bundle")


def test_token_for_another_root__opens_nothing(provider: Provider, server: BundleServer) -> None:
    one, two = provider.jobs[1], provider.jobs[2]
    assert_refused(server.url, one, token("alice", two.root))  # Alice's token, job 2's root
    assert_refused(server.url, one, token("oracle1", two.root))


def test_oracle_of_another_epoch__is_refused(provider: Provider, server: BundleServer) -> None:
    """Only the oracles of the epoch a job was posted in settle it, so only they read it: O3,
    added after job 1 was posted, is refused job 1 (every path, no byte) with a token of its
    own, while it reads job 2; O2, retired before job 2, reads job 1 but not job 2."""
    one, two = provider.jobs[1], provider.jobs[2]
    assert_refused(server.url, one, token("oracle3", one.root))
    assert_refused(server.url, two, token("oracle2", two.root))
    assert get(server.url, f"bundles/0x{two.root.hex()}/manifest", token("oracle3", two.root)).ok
    assert get(server.url, f"bundles/0x{one.root.hex()}/manifest", token("oracle2", one.root)).ok
    assert get(server.url, f"bundles/0x{one.root.hex()}/manifest", token("oracle1", one.root)).ok
    assert get(server.url, f"bundles/0x{two.root.hex()}/manifest", token("oracle1", two.root)).ok


def test_client_of_another_job__is_refused(provider: Provider, server: BundleServer) -> None:
    one, two = provider.jobs[1], provider.jobs[2]
    assert_refused(server.url, one, token("bob", one.root))  # Bob is job 2's client
    assert get(server.url, f"bundles/0x{two.root.hex()}/manifest", token("bob", two.root)).ok


def test_expired_or_far_future_tokens__are_refused(
    provider: Provider, server: BundleServer
) -> None:
    job = provider.jobs[1]
    expired = token("alice", job.root, lifetime_s=60, now=time.time() - 120)
    assert_refused(server.url, job, expired)
    assert "expired" in get(server.url, f"bundles/0x{job.root.hex()}/spec", expired).text
    too_long = token("alice", job.root, lifetime_s=MAX_TOKEN_AHEAD_S + 600)
    assert_refused(server.url, job, too_long)


def test_token_for_another_market_or_chain__is_refused(
    provider: Provider, server: BundleServer
) -> None:
    job = provider.jobs[1]
    other_market = sign_token(key("alice"), CHAIN_ID, OTHER_MARKET, job.root).header
    other_chain = sign_token(key("alice"), 1, MARKET, job.root).header
    assert_refused(server.url, job, other_market)
    assert_refused(server.url, job, other_chain)


def hostile_headers(job: Job) -> list[str]:
    good = parse_token(token("alice", job.root))
    assert good is not None
    sig = good.signature
    as_oracle = replace(good, address=address("oracle1"))  # Alice's signature, oracle's name
    return [
        "",
        "NTK-Bundle",
        "Bearer abc",
        "NTK-Bundle " + "A" * 5000,
        "NTK-Bundle \u00e9\u00e9",
        good.header.replace("NTK-Bundle", "Basic"),
        good.header + " extra",
        good.header.replace(" ", "  "),
        as_oracle.header,
        replace(good, signature=sig[:64] + bytes([55 - sig[64]])).header,  # other parity
        replace(good, signature=sig[:64] + bytes([sig[64] ^ 1])).header,  # v of neither
        replace(good, signature=b"\xff" * 65).header,  # r and s out of range
        replace(good, signature=bytes(65)).header,
        replace(good, expires=good.expires + 1).header,  # another expiry than was signed
        f"NTK-Bundle {good.address} 99999999999999999999 0x{sig.hex()}",
        f"NTK-Bundle {good.address} -5 0x{sig.hex()}",
        f"NTK-Bundle 0x{'zz' * 20} {good.expires} 0x{sig.hex()}",
        f"NTK-Bundle {good.address} {good.expires} 0x{sig.hex()[:-2]}",
    ]


def test_forged_or_malformed_headers__are_refused_and_the_server_lives_on(
    provider: Provider, server: BundleServer
) -> None:
    job = provider.jobs[1]
    for header in hostile_headers(job):
        try:
            resp = get(server.url, f"bundles/0x{job.root.hex()}/manifest", header)
        except UnicodeEncodeError:
            continue  # the client library will not even send it
        assert resp.status_code in (400, 401), (header[:80], resp.status_code)
        assert job.root.hex() not in resp.text
    assert get(server.url, "healthz").json() == {"ok": True}
    assert get(server.url, f"bundles/0x{job.root.hex()}/manifest", token("alice", job.root)).ok


def test_object_not_in_the_bundle__is_refused_even_with_a_valid_token(
    provider: Provider, server: BundleServer
) -> None:
    one, two = provider.jobs[1], provider.jobs[2]
    bob = token("bob", two.root)  # a good token for job 2, asking for job 1's outputs
    for leaf in one.leaves:
        resp = get(server.url, f"bundles/0x{two.root.hex()}/objects/0x{leaf.hex()}", bob)
        assert resp.status_code == 404 and one.outputs[0][:64] not in resp.content
    # the open route is gone on a gated server
    assert get(server.url, f"objects/0x{two.leaves[0].hex()}", bob).status_code == 404
    assert get(server.url, f"bundles/0x{two.root.hex()}/objects/0x{two.leaves[0].hex()}", bob).ok


# --- the readers get everything ----------------------------------------------------------------


@pytest.mark.parametrize("reader", ["alice", "oracle1", "oracle2"])
def test_client_and_oracles__verify_and_fetch_the_whole_result(
    provider: Provider, server: BundleServer, reader: str, tmp_path: Path
) -> None:
    job = provider.jobs[1]
    source = HttpSource(server.url, FAST, access=access(reader, job.root))
    verdict = verify_job(job.spec, job.commitment, SEED, 4, source)  # type: ignore[arg-type]
    assert verdict.accepted, verdict.summary()
    result = fetch_result(server.url, job.root, key(reader), CHAIN_ID, MARKET, tmp_path / "r")
    assert [p.read_bytes() for p in result.shards] == job.outputs
    assert result.fetched == len(job.outputs)
    again = fetch_result(server.url, job.root, key(reader), CHAIN_ID, MARKET, tmp_path / "r")
    assert again.fetched == 0  # resumes: what is there and hashes right is kept


def test_one_token__one_signature_check_and_one_authorization_per_bundle(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str] = []
    asked: list[tuple[str, bytes]] = []
    real_check = check_token

    def counting_check(header: object, *args: object, **kwargs: object) -> object:
        checks.append(str(header)[:20])
        return real_check(header, *args, **kwargs)  # type: ignore[arg-type]

    readers = provider.readers()

    def authorize(who: str, root: bytes) -> bool:
        asked.append((who, root))
        return readers(who, root)

    monkeypatch.setattr(server_module, "check_token", counting_check)
    job = provider.jobs[1]
    gate = BundleGate(CHAIN_ID, MARKET, authorize)
    with BundleServer(make_app(provider.store, gate)) as srv:
        source = HttpSource(srv.url, FAST, access=access("oracle1", job.root))
        for _ in range(2):
            assert verify_job(job.spec, job.commitment, SEED, 4, source).accepted  # type: ignore[arg-type]
    assert len(checks) == 1 and asked == [(address("oracle1"), job.root)]


def test_admitted_tokens__expire_from_the_cache(provider: Provider) -> None:
    now = [time.time()]
    job = provider.jobs[1]
    gate = provider.gate(clock=lambda: now[0], cache_size=2)
    header = token("alice", job.root, lifetime_s=60, now=now[0])
    with BundleServer(make_app(provider.store, gate)) as srv:
        path = f"bundles/0x{job.root.hex()}/manifest"
        assert get(srv.url, path, header).ok
        now[0] += 61
        assert get(srv.url, path, header).status_code == 401
        for name in ("oracle1", "oracle2", "alice"):  # more tokens than the cache holds
            assert get(srv.url, path, token(name, job.root, now=now[0])).ok


def test_authorizer_failure__is_a_503_without_bytes(provider: Provider) -> None:
    def broken(_who: str, _root: bytes) -> bool:
        raise ConnectionError("node down")

    job = provider.jobs[1]
    with BundleServer(make_app(provider.store, BundleGate(CHAIN_ID, MARKET, broken))) as srv:
        resp = get(srv.url, f"bundles/0x{job.root.hex()}/manifest", token("alice", job.root))
        assert resp.status_code == 503 and job.root.hex() not in resp.text


def test_make_app__needs_a_gate_or_an_explicit_public_flag(provider: Provider) -> None:
    with pytest.raises(ValueError, match="public=True"):
        make_app(provider.store)
    with pytest.raises(ValueError):
        make_app(provider.store, provider.gate(), public=True)
    job = provider.jobs[1]
    with BundleServer(make_app(provider.store, public=True)) as srv:  # local demos only
        assert get(srv.url, f"objects/0x{job.leaves[0].hex()}").content == job.outputs[0]


# --- the token format -----------------------------------------------------------------------


def test_token__format_and_round_trip() -> None:
    root = b"\x07" * 32
    message = access_message(CHAIN_ID, MARKET.upper().replace("0X", "0x"), root, 1790000000)
    assert message == (
        f"neurotoken bundle access\nchain 31337\nmarket {MARKET}\n"
        f"root 0x{'07' * 32}\nexpires 1790000000"
    )
    signed = sign_token(key("alice"), CHAIN_ID, MARKET, root, now=1789999000)
    assert signed.expires == 1789999900
    header = signed.header
    assert header.startswith(f"NTK-Bundle {address('alice')} 1789999900 0x")
    assert len(header) <= MAX_HEADER_CHARS
    assert parse_token(header) == signed
    assert parse_token(header.replace("NTK-Bundle", "ntk-bundle")) == signed
    checked = check_token(header, CHAIN_ID, MARKET, root, now=1789999000)
    assert checked.ok and checked.token == signed
    assert not check_token(header, CHAIN_ID, MARKET, root, now=1789999900).ok  # expired
    assert not check_token(header, CHAIN_ID, MARKET, root, now=1789999900 - 3700).ok  # far ahead
    assert not check_token(header, CHAIN_ID, MARKET, b"\x08" * 32, now=1789999000).ok


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=400),
        st.binary(max_size=300),
        st.integers(),
        st.none(),
        st.builds(
            lambda a, e, s: f"NTK-Bundle 0x{a.hex()} {e} 0x{s.hex()}",
            st.binary(min_size=20, max_size=20),
            st.integers(min_value=0, max_value=10**12 - 1),
            st.binary(min_size=65, max_size=65),
        ),
    )
)
def test_check_token__is_total(header: object) -> None:
    checked = check_token(header, CHAIN_ID, MARKET, b"\x01" * 32, now=0)
    assert not checked.ok and checked.problem


# --- the readers rule, as the agent runs it -------------------------------------------------------


def test_job_readers__cache_what_never_changes_and_see_new_jobs_of_a_root() -> None:
    root = b"\x09" * 32
    roots: dict[bytes, list[int]] = {root: [1]}
    calls: list[str] = []
    records = {1: record(1, address("alice"), 1), 2: record(2, address("bob"), 1)}

    def job_of(job: int) -> OnChainJob:
        calls.append(f"job {job}")
        return records[job]

    def is_epoch_oracle(epoch: int, who: str) -> bool:
        calls.append(f"oracle {epoch} {who[:6]}")
        return epoch == 1 and who == address("oracle1")

    readers = JobReaders(lambda r: list(roots.get(r, [])), job_of, is_epoch_oracle)
    for _ in range(3):
        assert readers(address("alice").lower(), root)
        assert readers(address("oracle1"), root)
        assert not readers(address("bob"), root)
        assert not readers(address("alice"), b"\x0a" * 32)
    assert sorted(set(calls)) == sorted(calls)  # every chain answer asked once
    roots[root].append(2)  # the same spec posted again: the same outputs, the same root
    assert readers(address("bob"), root)
    assert calls.count("job 2") == 1
    # job 2 is of the same epoch: the epoch's answers are not asked again
    assert calls.count(f"oracle 1 {address('oracle1')[:6]}") == 1


def test_job_readers__are_safe_across_threads() -> None:
    root = b"\x09" * 32
    asked: list[int] = []

    def job_of(job: int) -> OnChainJob:
        asked.append(job)
        return record(job, address("alice"), 1)

    readers = JobReaders(lambda r: [1], job_of, lambda epoch, who: False)

    async def many() -> list[bool]:
        loop = asyncio.get_running_loop()
        names = ["alice", "bob"] * 20
        return await asyncio.gather(
            *(loop.run_in_executor(None, readers, address(n), root) for n in names)
        )

    answers = asyncio.run(many())
    assert answers == [True, False] * 20 and asked == [1]
