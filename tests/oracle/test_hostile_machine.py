"""A hostile provider and a hostile client against three oracles (threshold 2), on anvil.

Each step of the state machine runs one whole job through its life, synchronously:

* the client posts it (spec hash, payment, collateral >= `minimumCollateral`) and either
  serves its spec (``honest``) or does not: a URI to a missing file (``missing``), to a file
  with another valid spec's bytes (``other_bytes``), to a FIFO (``fifo``) or to an HTTP port
  nobody listens on (``unreachable``);
* a provider accepts it and is ``honest`` (computes every shard, publishes the bundle with
  the spec, submits), or fakes j >= 1 shards with self-consistent forged outputs (real shard
  containers of another spec, valid Merkle proofs: ``fake``), commits a root and publishes
  nothing (``withhold``), publishes a manifest holding a 5,000-digit integer
  (``huge_manifest``), deletes one unchallenged shard output once the challenge is known
  (``delete_output``; any output when k = N leaves none unchallenged), serves its bundle
  from a port nobody listens on (``goes_dark``), or never submits (``never_submit``);
* the market seeds challenges with RANDAO (the deploy default): once the seed block exists the
  provider posts its header with a mix of its choosing, and with its timestamp moved, to the
  market's RandaoRecorder (refused, `RandaoBlockHeaderUnknown`), then the relayer records the
  real one (a second record is refused);
* once the seed is recorded, both sides try what a hostile party can (the client cancels or
  expires the job, the provider re-submits for a second draw, either settles with its own
  signatures, oracles' signatures over another seed): every try must revert; and, holding
  every oracle's genuine signature over the job's real verdict, either side passes a record
  of its own making (the stale record from before the result, a record with a field
  changed in its favour: payment, collateral, provider, fee, epoch, threshold, state,
  deadlines, seed block, or the record under another job id): every one must revert
  `MarketJobRecordMismatch` (or `MarketJobNotFound`), so a verdict only ever settles the
  job on the terms it was posted and accepted under;
* each of the three oracle keys (one of them possibly down) runs the oracle's whole
  verification of the job in-process (`oracle.verify.run_task`) with the on-chain seed; an
  outcome that is RETRY for transient provider trouble only is retried at the service's
  give-up point (`verdictBy - give_up_margin_s`) and then, as the service does, becomes a
  reject; a VERDICT shared by >= 2 oracles is signed (EIP-712, seed-bound) and settled; with
  no quorum the job lapses at `verdictBy` (recorded, and asserted never to happen); a job
  never submitted is expired after `deliverBy` (a default, slashed).

Between jobs providers withdraw earnings, unbond and withdraw unbonded stake, and the owner
withdraws fees.

Invariants, after every step:

1. the market's NTK balance equals the books kept from its events (escrowed payments of
   open jobs + free and unbonding stake + locked collateral + unwithdrawn earnings + fees);
   the books match `getProvider` and `feesNtk`; the token supply fell by exactly the NTK
   burned;
2. an honest provider never loses: its job ends Paid whatever the client did, it earns
   payment - fee and its collateral returns to its free stake;
3. an honest client never loses: a job whose provider was not honest ends Rejected or
   Defaulted with the client refunded payment + half the collateral, unless a faked shard
   escaped the challenge (Paid: counted as "uncaught"); no job lapses while the oracles
   are up; a Paid job's whole result is served;
4. cheating has negative expected value: for each cheating job, with exact fractions,
   d = 1 - C(N-j, k)/C(N, k) and G = (j/N)C + (1-d)V - d(P+S) < 0 with C = V = P (the
   contract's assumptions, docs/proofs.md section 6; j = N, d = 1 for a provider that
   publishes nothing usable or never submits); a faking job is Paid exactly when none of
   its faked shards is among `challengedShards`;
5. every job pays out exactly once (payout events counted in the chain's logs).

NEUROTOKEN_STATEFUL_EXAMPLES x NEUROTOKEN_STATEFUL_STEPS: 50 x 30 by default (`make test`),
1,000 x 50 for `make fuzz`; with ``NEUROTOKEN_FUZZ=1`` the run ends by recording what ran
(examples, steps, jobs, hostile tries refused) as the campaign ``fuzz-hostile-market``
(tests/soak.py), which fails if fewer examples or shorter ones ran than configured.

What a step costs: a job step was ~0.6-1 s through ape. Now a job costs ~55 ms of this
process's CPU and ~20 ms of the node's (a withdrawal step a few ms; about half the steps
are jobs: 50 x 30 is ~60 s of CPU in all, 1,000 x 50 ~50 minutes). Of this process's
share the three oracles' verifications take ~43% (each re-executes its k challenged
shards), the ~45 tries that must revert ~21% (one batch of eth_calls, with their ~20
signatures), publishing the bundle ~13%, the five transactions ~8% (the node's share is
mostly theirs). What made it so, each without dropping a check: every call goes over raw
JSON-RPC (`tests.oracle.rawchain`: one `eth_sendTransactionSync` a transaction, its gas
given; every try of a job in one batch of `eth_call`s at the latest state; every invariant
read in one batch; the record of a job folded from the receipts' events and checked
against `jobDigest`); the module runs its own anvil (ape's traces every step of every
transaction); the specs are the smallest the validators allow (`tiny_spec`) and their
shard outputs are computed once per spec; verdicts are signed from the digest with
coincurve (`Signer`, byte for byte `sign_verdict`'s); bundles are written on tmpfs (the
store fsyncs each file); the oracles' fetches are not retried (every source is a local
file or a port nobody listens on: a retry only waited out its back-off; the retry at the
give-up point is still exercised).

Found (and fixed): property 4 failed when k > (N + 1) / 2. `minimumCollateral` was then 0,
and a provider that took such a job at zero collateral and faked every shard (caught for
certain), served nothing or never delivered gained G = (N/N)P - (P + 0) = 0: it broke even
instead of losing. The minimum is now never below one wei, which makes G < 0 for every N,
k and j (`test_minimum_collateral__every_faked_count_loses_money` in
tests/compute/test_economics.py). `test_provider_cheats_at_the_least_collateral__...` pins it.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import coincurve
import pytest
import rlp
from eth_utils.crypto import keccak
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from devchain.anvil import Anvil
from devchain.contracts import deploy, load_artifact
from devchain.invariants import Books
from devchain.localnet import free_port, small_spec
from neurotoken.chain.headers import header_rlp
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, spec_hash, spec_json
from neurotoken.market.job import ENDINGS, RECORD_EVENTS, OnChainJob, fold
from neurotoken.market.ops import minimum_collateral
from neurotoken.market.states import PAYOUT_EVENTS, JobState
from neurotoken.market.verdicts import (
    MarketDomain,
    SignedVerdict,
    Verdict,
    challenged_indices,
    sign_verdict,
    verdict_digest,
)
from neurotoken.proofs.bundle import make_manifest
from neurotoken.proofs.store import LocalStore, object_path
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.units import NTK
from oracle.service import TRANSIENT_PROVIDER
from oracle.verify import Kind, VerifyOutcome, VerifyTask, run_task
from tests.constants import (
    ACCEPTED,
    DEFAULTED,
    FEE_BPS,
    HOUR,
    LAPSED,
    MAX_UINT256,
    MIN_VERDICT_WINDOW,
    PAID,
    REJECTED,
    ZERO_ADDRESS,
)
from tests.helpers import sorted_signatures
from tests.oracle.rawchain import RawContract, Receipt, Rpc
from tests.soak import Campaign
from tests.stateful import STATEFUL_SETTINGS, ChainStateMachine, RunCounts

AnySpec = ShelfImagesSpec | TrainingSpec

# This harness's own market figures (not tests/constants.py's STAKE and UNBONDING_DELAY):
# its providers stake a thousand times deeper and unbond within the hour.
HOSTILE_UNBONDING_DELAY = HOUR
HOSTILE_STAKE = 1_000_000 * NTK
THRESHOLD = 2
TX_GAS = 5_000_000
"""Gas for every market transaction: anvil then runs each once instead of estimating its gas
(a binary search) first; a transaction that reverts fails the test either way."""
SLASH_TO_CLIENT_BPS = 5_000  # ComputeMarket.SLASH_TO_CLIENT_BPS
RANDAO_DELAY = 2
"""Blocks from a commit to its seed block, whose RANDAO mix seeds the challenge (the default
of `ape run market deploy` is 32; 2 keeps a step short and the path the same)."""
MIX_FIELD = 13
"""Index of prevRandao in a header's RLP list."""
GIVE_UP_MARGIN_S = 300  # oracle.settings: give_up_margin_s's default

CLIENT_MODES = ("honest", "missing", "other_bytes", "fifo", "unreachable")
PROVIDER_MODES = (
    "honest",
    "fake",
    "withhold",
    "huge_manifest",
    "delete_output",
    "goes_dark",
    "never_submit",
)
#: How a rejecting oracle's first reason starts, per hostile provider.
REJECT_REASONS = {
    "fake": ("RECOMPUTE_MISMATCH", "SHARD_MALFORMED"),
    "withhold": ("MANIFEST_MISSING", "SPEC_NOT_SERVED"),
    "huge_manifest": ("MANIFEST_MALFORMED",),
    "delete_output": ("SHARD_MISSING",),
    "goes_dark": ("UNAVAILABLE",),
}
#: What happened over all examples (printed with -s).
STATS: Counter[str] = Counter()
#: Seconds spent in each part of the steps over all examples, wall and this process's CPU
#: (printed with -s; on a loaded machine the CPU seconds say what a part costs).
TIMES: defaultdict[str, float] = defaultdict(float)
CPU_TIMES: defaultdict[str, float] = defaultdict(float)


@contextmanager
def timed(part: str) -> Iterator[None]:
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        TIMES[part] += time.perf_counter() - started
        CPU_TIMES[part] += time.process_time() - cpu


# ---------------------------------------------------------------- shard outputs, cached


_OUTPUTS: dict[bytes, list[bytes]] = {}


def shard_outputs(spec: AnySpec, cache: Path) -> list[bytes]:
    """Every shard output of `spec`, computed once per test session by the provider's own
    `compute_job` (the examples reuse a handful of specs)."""
    key = hash_of(spec)
    if key not in _OUTPUTS:
        with timed("computing shard outputs (once a spec)"):
            store = LocalStore(cache / "store")
            report = compute_job(spec, store, cache / "state", workers=1, progress=False)
            _OUTPUTS[key] = [store.object(h, 1 << 30) for h in report.output_hashes]
    return _OUTPUTS[key]


@functools.cache
def tiny_spec(seed: int, shards: int) -> AnySpec:
    """The smallest shelf-images spec the validators allow (one 32 x 32 image a shard, one
    shelf, one product): a shard re-executes in ~2 ms instead of ~11 ms for `small_spec`'s
    default scene, and the market and the oracles see a spec like any other."""
    return small_spec(
        seed=seed, shards=shards, width=32, height=32, shelves=1, max_products_per_shelf=1
    )


_HASHES: dict[int, tuple[AnySpec, bytes]] = {}


def hash_of(spec: AnySpec) -> bytes:
    """`spec_hash(spec)`, remembered for the (few, cached) spec objects of the run."""
    if id(spec) not in _HASHES:
        _HASHES[id(spec)] = (spec, spec_hash(spec))  # the spec held: its id stays its own
    return _HASHES[id(spec)][1]


class Signer:
    """Signs verdicts as `sign_verdict` does, byte for byte (RFC 6979, low s), but from the
    digest (`verdict_digest`, the contract's `verdictDigest`) with coincurve directly: ~0.1
    ms instead of ~3 ms through eth-account's EIP-712 encoder, for the ~20 signatures a job
    needs. Checked against `sign_verdict` when made; the settlements, which the contract
    verifies, use the same signer."""

    def __init__(self, account: Any, domain: MarketDomain) -> None:
        self.address = account.address
        self.domain = domain
        self.key = coincurve.PrivateKey(bytes.fromhex(str(account.private_key).removeprefix("0x")))
        probe = Verdict(7, keccak(b"root"), keccak(b"seed"), True)
        assert self.sign(probe) == sign_verdict(account.private_key, domain, probe)

    def sign(self, verdict: Verdict) -> SignedVerdict:
        raw = self.key.sign_recoverable(verdict_digest(self.domain, verdict), hasher=None)
        signature = raw[:64] + bytes([raw[64] + 27])
        return SignedVerdict(self.domain, "verdict", (verdict,), self.address, signature)


# ---------------------------------------------------------------- one job


@dataclass(frozen=True)
class JobPlan:
    """Everything drawn for one job."""

    client: int = 0
    provider: int = 0
    seed: int = 1
    shards: int = 8
    k: int = 4
    payment: int = 100 * NTK
    extra_collateral: int = 0  # on top of minimumCollateral
    client_mode: str = "honest"
    provider_mode: str = "honest"
    faked: frozenset[int] = frozenset()  # shards a faking provider forges
    down: int | None = None  # an oracle that is down
    delete_pick: int = 0  # which unchallenged output a deleting provider removes


@dataclass
class JobRecord:
    """What became of one job."""

    plan: JobPlan
    job_id: int
    collateral: int
    state: int
    challenged: tuple[int, ...] = ()
    outcomes: dict[str, VerifyOutcome] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    client_delta: int = 0
    stake_delta: int = 0
    earned_delta: int = 0
    available: bool | None = None  # whether every shard output is served (None: no bundle)


def fee_of(payment: int) -> int:
    return -(-payment * FEE_BPS // 10_000)  # rounded up, as the contract does


def cheater_gain(shards: int, k: int, faked: int, payment: int, collateral: int) -> Fraction:
    """G = (j/N)C + (1-d)V - d(P+S), C = V = P, d = 1 - C(N-j, k)/C(N, k): what faking
    j of N shards gains over honest work in expectation (docs/proofs.md section 6)."""
    d = 1 - Fraction(math.comb(shards - faked, k), math.comb(shards, k))
    c = v = p = payment
    return Fraction(faked, shards) * c + (1 - d) * v - d * (p + collateral)


class Harness:
    """One deployed market, its clients, providers and oracles, and the books.

    Everything on chain goes over raw JSON-RPC (`tests.oracle.rawchain`) to the module's own
    anvil: each market transaction is one `eth_sendTransactionSync` (its receipt in the
    answer), the tries that must revert go out as one batch of `eth_call`s per job, and the
    reads a step needs as one batch."""

    def __init__(
        self,
        node: Anvil,
        market: str,
        token: str,
        owner: Any,
        clients: list[Any],
        providers: list[Any],
        oracles: list[Any],
        relayer: Any,
        treasury: Any,
        folder: Path,
    ) -> None:
        self.node = node
        self.owner = owner
        self.clients = clients
        self.providers = providers
        self.oracles = oracles
        self.relayer = relayer
        self.treasury = treasury
        self.folder = folder
        self.rpc = Rpc(node.url)
        self.m = RawContract(self.rpc, market, load_artifact("ComputeMarket")[0])
        self.recorder = RawContract(
            self.rpc, self.m.view("randaoRecorder"), load_artifact("RandaoRecorder")[0]
        )
        self.t = RawContract(self.rpc, token, load_artifact("NeuroToken")[0])
        self.domain = MarketDomain(int(self.rpc.call("eth_chainId"), 16), self.m.address)
        self.signers = {a.address: Signer(a, self.domain) for a in (*oracles, *clients, *providers)}
        self.jobs_run = 0
        self.objects = LocalStore(folder / "objects")
        self.payout_topics = self.m.topics(PAYOUT_EVENTS)
        self.reset()

    def snapshot(self) -> str:
        """evm_snapshot (the state machine takes one per example: `ChainStateMachine`)."""
        return str(self.rpc.call("evm_snapshot"))

    def restore(self, snapshot: str) -> None:
        assert self.rpc.call("evm_revert", snapshot) is True, f"no snapshot {snapshot}"

    def reset(self) -> None:
        """Books from the chain as it is now (an example starts here)."""
        self.books = Books()
        reads = self.read(
            *[(self.m, "getProvider", p) for p in self.providers],
            (self.m, "feesNtk"),
            (self.t, "totalSupply"),
        )
        for p, record in zip(self.providers, reads, strict=False):
            self.books.stake[p.address] = int(record["stakeNtk"])
            self.books.unbonding[p.address] = int(record["unbondingNtk"])
            self.books.earned[p.address] = int(record["earnedNtk"])
        self.books.fees, self.supply = int(reads[-2]), int(reads[-1])
        self.start_block = self.rpc.head_number() + 1
        self.records: list[JobRecord] = []
        self.job_events: dict[int, list[tuple[str, dict[str, Any]]]] = {}  # from receipts
        self.logged: dict[int, list[tuple[str, dict[str, Any]]]] = {}  # from eth_getLogs
        self.logs_from = self.start_block  # the next block eth_getLogs reads
        self.checked = 0  # records already compared with the chain's logs

    # ------------------------------------------------------------ chain access

    def read(self, *calls: tuple[Any, ...]) -> list[Any]:
        """Views of the market or the token, `(contract, name, *args)` each, in one batch."""
        requests = [contract.call_request(name, *args) for contract, name, *args in calls]
        answers = self.rpc.batch(requests)
        return [
            contract.decode_result(name, len(args), answer)
            for (contract, name, *args), answer in zip(calls, answers, strict=True)
        ]

    def send(self, method: str, *args: Any, sender: Any) -> Receipt:
        """A market transaction; its events go into the books."""
        with timed("transactions"):
            tx = self.m.transact(method, *args, sender=sender, gas=TX_GAS)
        for name, event in tx.logs:
            self.books.apply(name, event)
            if name in RECORD_EVENTS:
                self.job_events.setdefault(int(event["jobId"]), []).append((name, event))
        return tx

    def events(self, tx: Receipt) -> dict[str, dict[str, Any]]:
        return tx.events

    def folded(self, job_id: int) -> OnChainJob:
        """The job's record folded from the events of the receipts we saw."""
        job = fold(job_id, self.job_events.get(job_id, []))
        assert job is not None, f"job {job_id} was never posted"
        return job

    def job(self, job_id: int) -> OnChainJob:
        """The job's record (its last one once it has ended), rebuilt from its events and
        checked against the digest the market stores."""
        job = self.folded(job_id)
        stored = bytes(self.m.view("jobDigest", job_id))
        assert stored == (job.digest() if job.is_open else bytes(32)), (job, stored.hex())
        return job

    def rec(self, job_id: int) -> tuple[int, int, int, bytes, bytes]:
        """The job's current record, as the market's calls take it."""
        return self.job(job_id).record()

    def record_mix(self, block: int, provider: Any) -> None:
        """The provider first posts the seed block's header with a mix of its choosing (and
        with another field changed): refused; then the relayer records the real one, and a
        second record is refused."""
        raw = self.rpc.call("eth_getBlockByNumber", hex(block), False)
        header = header_rlp(raw)
        fields = rlp.decode(header)
        chosen = [*fields[:MIX_FIELD], keccak(b"a mix of the provider's choosing"), *fields[14:]]
        later = [*fields[:11], int.from_bytes(fields[11], "big") + 1, *fields[12:]]
        tries = [(provider, "record", (rlp.encode(forged),)) for forged in (chosen, later)]
        for got in self.recorder.try_calls(tries):
            assert got.reverted and got.error is not None, got
            assert got.error.name == "RandaoBlockHeaderUnknown", got.error
        STATS["forged headers refused"] += len(tries)
        with timed("transactions"):
            self.recorder.transact("record", header, sender=self.relayer, gas=TX_GAS)
        (again,) = self.recorder.try_calls([(provider, "record", (header,))])
        assert again.error is not None and again.error.name == "RandaoAlreadyRecorded", again

    def expect_reverts(self, tries: list[tuple[Any, str, tuple[Any, ...], str | None]]) -> None:
        """Each `(sender, method, args, error)` must revert; with `error`, with that custom
        error of the market. All of them go as one batch of `eth_call`s from their senders at
        the latest state: each is what that transaction would do now, since none of them
        depends on the block's number or time (every deadline is an hour or more away when
        they are tried). (On "pending" anvil builds a pending block for each call: up to
        ~0.8 ms a call instead of ~0.1 ms.)"""
        with timed("tries that must revert (one batch)"):
            done = self.m.try_calls([(s, m, a) for s, m, a, _ in tries])
        for (_, method, args, error), got in zip(tries, done, strict=True):
            assert got.reverted, f"{method}{args} by {got.sender} did not revert"
            if error is not None:
                assert got.error is not None and got.error.name == error, (method, got.error, error)
            STATS[f"{method} refused"] += 1

    def reverts(self, sender: Any, method: str, *args: Any, error: str | None = None) -> None:
        """The call must revert (see `expect_reverts`)."""
        self.expect_reverts([(sender, method, args, error)])

    def warp(self, timestamp: int) -> None:
        """Mines a block at `timestamp` (if the chain is not past it already)."""
        self.rpc.warp(timestamp)

    def logs_request(self) -> tuple[str, list[Any]]:
        """eth_getLogs for the market's logs from the block before the first not read yet
        (that block always exists: anvil refuses a range starting past its head)."""
        start = hex(self.logs_from - 1)
        return ("eth_getLogs", [{"address": self.m.address, "fromBlock": start}])

    def take_logs(self, logs: list[dict[str, Any]]) -> None:
        """Adds the new logs of `logs_request` to those read so far (the chain only grows
        within an example: it is restored only at its end)."""
        fresh = [log for log in logs if int(log["blockNumber"], 16) >= self.logs_from]
        for log in fresh:
            assert not log.get("removed"), log
        if fresh:
            self.logs_from = max(int(log["blockNumber"], 16) for log in fresh) + 1
        for name, event in self.m.decode_logs(fresh):
            if name in RECORD_EVENTS:
                self.logged.setdefault(int(event["jobId"]), []).append((name, event))

    def payouts_in_logs(self) -> Counter[int]:
        """Payout events per job, read from the chain's logs (not from our receipts)."""
        self.take_logs(self.rpc.call(*self.logs_request()))
        return Counter(
            {job: sum(1 for name, _ in events if name in PAYOUT_EVENTS)
             for job, events in self.logged.items()}
        )  # fmt: skip

    def sign(self, signer: Any, verdict: Verdict) -> SignedVerdict:
        return self.signers[signer.address].sign(verdict)

    # ------------------------------------------------------------ the client's spec

    def spec_uri(self, mode: str, spec: AnySpec, folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        if mode == "honest":
            path = folder / "spec.json"
            path.write_bytes(spec_json(spec))
            return path.as_uri()
        if mode == "missing":
            return (folder / "withheld.json").as_uri()
        if mode == "other_bytes":
            assert isinstance(spec, ShelfImagesSpec)
            path = folder / "spec.json"
            path.write_bytes(spec_json(tiny_spec(seed=spec.seed + 50, shards=spec.shard_count)))
            return path.as_uri()
        if mode == "fifo":
            path = folder / "spec.fifo"
            os.mkfifo(path)
            return path.as_uri()
        assert mode == "unreachable", mode
        return f"http://127.0.0.1:{free_port()}/spec.json"

    # ------------------------------------------------------------ the provider's bundle

    def outputs(self, plan: JobPlan) -> list[bytes]:
        """The shard outputs the provider commits to: its spec's, with the faked ones
        replaced by real shard containers of another spec (each one different)."""
        cache = self.folder / "cache"
        outputs = list(shard_outputs(tiny_spec(plan.seed, plan.shards), cache))
        if plan.provider_mode == "fake":
            forged = shard_outputs(tiny_spec(seed=plan.seed + 100, shards=plan.shards), cache)
            for index in plan.faked:
                assert forged[index] != outputs[index]
                outputs[index] = forged[index]
        return outputs

    def put_object(self, store: LocalStore, data: bytes) -> bytes:
        """`store.put_object(data)`, as a hard link to the same object in a store of every
        output met so far (each computed output is written once, not once a job; the bytes
        served are the same file's)."""
        digest = keccak256(data)
        cached = self.objects.root_dir / object_path(digest)
        if not cached.exists():
            assert self.objects.put_object(data) == digest
        target = store.root_dir / object_path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(cached, target)
        return digest

    def publish(
        self, plan: JobPlan, spec: AnySpec, job_id: int, folder: Path
    ) -> tuple[bytes, str, LocalStore]:
        """Builds what the provider's mode publishes; returns the root to commit, the bundle
        URI and the store."""
        assert isinstance(spec, ShelfImagesSpec)
        outputs = self.outputs(plan)
        store = LocalStore(folder / "bundle")
        if plan.provider_mode in ("withhold", "goes_dark"):  # commits, publishes nothing
            _, tree = make_manifest(job_id, hash_of(spec), [keccak256(o) for o in outputs])
            uri = (
                store.root_dir.as_uri()
                if plan.provider_mode == "withhold"
                else f"http://127.0.0.1:{free_port()}"
            )
            return tree.root, uri, store
        manifest = publish_bundle(store, job_id, spec, [self.put_object(store, o) for o in outputs])
        root = bytes.fromhex(manifest.root[2:])
        if plan.provider_mode == "huge_manifest":
            honest = store.manifest(root, 1 << 20)
            hostile = honest.replace(b'"job_id":%d,' % job_id, b'"job_id":' + b"9" * 5000 + b",")
            assert hostile != honest
            store.put_manifest(root, hostile)
        return root, store.root_dir.as_uri(), store

    # ------------------------------------------------------------ the oracles

    def verify(self, task: VerifyTask, down: int | None, verdict_by: int) -> dict[str, Any]:
        """Each oracle that is up verifies the job; an oracle whose outcome is a RETRY for
        transient provider trouble only tries again at the service's give-up point and, as
        the service does, rejects if it is still so."""
        outcomes: dict[str, VerifyOutcome] = {}
        for i, oracle in enumerate(self.oracles):
            if i != down:
                outcomes[oracle.address] = run_task(task)

        def transient(outcome: VerifyOutcome) -> bool:
            reasons = outcome.reasons
            return (
                outcome.kind == Kind.RETRY
                and bool(reasons)
                and all(r.startswith(TRANSIENT_PROVIDER) for r in reasons)
            )

        if any(transient(o) for o in outcomes.values()):
            self.warp(verdict_by - GIVE_UP_MARGIN_S)
            for address, outcome in list(outcomes.items()):
                if transient(outcome):
                    again = run_task(task)
                    if transient(again):
                        again = replace(
                            again,
                            kind=Kind.VERDICT,
                            accepted=False,
                            reasons=(*again.reasons, "GAVE_UP: not served by the deadline"),
                        )
                    outcomes[address] = again
        return outcomes

    # ------------------------------------------------------------ hostile tries

    def hostile_tries(
        self,
        job: OnChainJob,
        client: Any,
        provider: Any,
        seed: bytes,
        stale: OnChainJob,
    ) -> list[tuple[Any, str, tuple[Any, ...], str | None]]:
        """What either side may try once the challenge is known: each must revert. `job`
        is the job's current record, `stale` the one from before its result (the accepted
        one)."""
        job_id, root, shards, rec = job.job_id, job.result_root, job.shard_count, job.record()
        other = keccak(root)  # a second draw: move the fakes away from the challenge
        tries: list[tuple[Any, str, tuple[Any, ...], str | None]] = [
            (client, "cancelJob", (job_id, rec), None),
            (client, "expireJob", (job_id, rec), None),
            (provider, "submitResult", (job_id, rec, other, shards, "file:///elsewhere"), None),
            # ... with the record from before the first: it is not current
            (provider, "submitResult", (job_id, stale.record(), other, shards,
                                        "file:///elsewhere"), "MarketJobRecordMismatch"),
        ]  # fmt: skip
        for party, accepted in ((client, False), (provider, True)):
            own = [self.sign(k, Verdict(job_id, root, seed, accepted)) for k in (client, provider)]
            tries.append((party, "settle", (job_id, rec, accepted, sorted_signatures(own)), None))
        reseeded = [  # oracles' signatures over another seed settle nothing
            self.sign(o, Verdict(job_id, root, keccak(seed), True)) for o in self.oracles
        ]
        tries.append((provider, "settle", (job_id, rec, True, sorted_signatures(reseeded)), None))
        return tries + self.forged_records(job, stale, client, provider, seed)

    def forged_records(
        self, job: OnChainJob, stale: OnChainJob, client: Any, provider: Any, seed: bytes
    ) -> list[tuple[Any, str, tuple[Any, ...], str | None]]:
        """Every oracle's genuine signature over the job's real verdict (either way) settles
        nothing with a record that is not the job's current one: the stale one, one with a
        field changed in the sender's favour, or the record under another job id."""
        job_id, root = job.job_id, job.result_root
        wei = 10**18
        tries: list[tuple[Any, str, tuple[Any, ...], str | None]] = []
        mismatch = "MarketJobRecordMismatch"
        for accepted, party in ((True, provider), (False, client)):
            verdict = Verdict(job_id, root, seed, accepted)
            genuine = sorted_signatures([self.sign(o, verdict) for o in self.oracles])
            forged = [
                stale,  # the accepted record: no result in it
                replace(job, payment_ntk=job.payment_ntk + wei),  # a bigger payout
                replace(job, payment_ntk=job.payment_ntk - 1),
                replace(job, collateral_ntk=job.collateral_ntk // 2),  # a smaller slash
                replace(job, collateral_ntk=job.collateral_ntk + wei),  # a bigger one
                replace(job, provider=job.client),  # the payout to the client
                replace(job, client=job.provider),  # the refund to the provider
                replace(job, fee_bps=0),
                replace(job, oracle_epoch=job.oracle_epoch + 1),
                replace(job, threshold=1),
                replace(job, verdict_by=job.verdict_by + HOUR),
                replace(job, seed_block=job.seed_block + 1),  # a second draw
                replace(job, shard_count=job.shard_count + 1),
                replace(job, challenge_count=job.challenge_count % job.shard_count + 1),
                replace(job, spec_hash=keccak(job.spec_hash)),
                replace(job, state=JobState.ACCEPTED),
            ]
            for record in forged:
                assert record.record() != job.record()
                tries.append(
                    (party, "settle", (job_id, record.record(), accepted, genuine), mismatch)
                )
            entries = [(job_id, forged[0].record(), accepted)]
            tries.append((party, "settleBatch", (entries, genuine), mismatch))
            # the record under another job id: no such open job
            tries.append(
                (party, "settle", (job_id + 1_000, job.record(), accepted, genuine),
                 "MarketJobNotFound")
            )  # fmt: skip
            STATS["forged records refused"] += len(forged) + 2
        return tries

    # ------------------------------------------------------------ the whole job

    def run_job(self, plan: JobPlan) -> JobRecord:
        client = self.clients[plan.client % len(self.clients)]
        provider = self.providers[plan.provider % len(self.providers)]
        spec = tiny_spec(seed=plan.seed, shards=plan.shards)
        n, k = plan.shards, plan.k
        folder = self.folder / f"job{self.jobs_run}"
        self.jobs_run += 1
        head, minimum, client_before, account_before = self.rpc.batch(
            [
                ("eth_getBlockByNumber", ["latest", False]),
                self.m.call_request("minimumCollateral", plan.payment, n, k),
                self.t.call_request("balanceOf", client),
                self.m.call_request("getProvider", provider),
            ]
        )
        minimum = self.m.decode_result("minimumCollateral", 3, minimum)
        assert minimum == minimum_collateral(plan.payment, n, k)
        collateral = minimum + plan.extra_collateral
        client_before = self.t.decode_result("balanceOf", 1, client_before)
        account_before = self.m.decode_result("getProvider", 1, account_before)

        spec_uri = self.spec_uri(plan.client_mode, spec, folder)
        if self.books.stake[provider.address] < collateral:
            self.send("addStake", collateral, sender=provider)
            account_before = self.m.view("getProvider", provider)

        now = int(head["timestamp"], 16)
        accept_by, deliver_by = now + 3600, now + 7200
        verdict_by = deliver_by + MIN_VERDICT_WINDOW
        request = {
            "specHash": hash_of(spec),
            "specURI": spec_uri,
            "paymentNtk": plan.payment,
            "provider": ZERO_ADDRESS,
            "collateralNtk": collateral,
            "shardCount": n,
            "challengeCount": k,
            "acceptBy": accept_by,
            "deliverBy": deliver_by,
            "verdictBy": verdict_by,
        }
        posted = self.send("postJob", request, sender=client)
        job_id = int(posted.events["JobPosted"]["jobId"])
        self.send("acceptJob", job_id, self.rec(job_id), sender=provider)
        record = JobRecord(plan, job_id, collateral, ACCEPTED)
        accepted = self.job(job_id)

        if plan.provider_mode == "never_submit":
            self.expect_reverts(
                [
                    (client, "cancelJob", (job_id, accepted.record()), None),
                    (client, "expireJob", (job_id, accepted.record()), None),
                ]
            )
            self.warp(deliver_by + 1)
            tx = self.send("expireJob", job_id, accepted.record(), sender=self.relayer)
            record.events = tx.events
        else:
            with timed("publishing the bundle"):
                root, bundle_uri, store = self.publish(plan, spec, job_id, folder)
            self.send(
                "submitResult", job_id, accepted.record(), root, n, bundle_uri, sender=provider
            )
            submitted = self.folded(job_id)
            self.rpc.mine(RANDAO_DELAY)  # to the seed block, whose RANDAO mix seeds the challenge
            self.record_mix(submitted.seed_block, provider)
            self.rpc.mine(1)
            digest, seed, challenged = self.read(
                (self.m, "jobDigest", job_id),
                (self.m, "challengeSeed", job_id, submitted.seed_block),
                (self.m, "challengedShards", job_id, submitted.record()),
            )
            assert bytes(digest) == submitted.digest(), "the submitted record is not current"
            seed = bytes(seed)
            record.challenged = tuple(int(i) for i in challenged)
            assert list(record.challenged) == challenged_indices(seed, job_id, n, k)
            with timed("signing and encoding the tries"):
                tries = self.hostile_tries(submitted, client, provider, seed, accepted)
            self.expect_reverts(tries)
            if plan.provider_mode == "delete_output":
                spared = [i for i in range(n) if i not in record.challenged] or list(range(n))
                victim = keccak256(
                    shard_outputs(spec, self.folder / "cache")[
                        spared[plan.delete_pick % len(spared)]
                    ]
                )
                (store.root_dir / object_path(victim)).unlink()
            task = VerifyTask(
                job_id=job_id,
                result_root=root,
                spec_hash=hash_of(spec),
                spec_uri=spec_uri,
                shard_count=n,
                challenge_count=k,
                seed=seed,
                bundle_uri=bundle_uri,
                fetch_timeout_s=2.0,
                fetch_retries=0,  # every source is a local file or a port nobody listens on
                fetch_budget_s=60.0,
            )
            with timed("verification (run_task, each oracle)"):
                record.outcomes = self.verify(task, plan.down, verdict_by)
            votes: dict[bool, list[Any]] = {True: [], False: []}
            for oracle in self.oracles:
                outcome = record.outcomes.get(oracle.address)
                if outcome is not None and outcome.kind == Kind.VERDICT:
                    votes[outcome.accepted].append(oracle)
            decision = next((a for a in (True, False) if len(votes[a]) >= THRESHOLD), None)
            if decision is None:  # no quorum: the job lapses at its verdict deadline
                self.warp(verdict_by + 1)
                tx = self.send("expireJob", job_id, submitted.record(), sender=self.relayer)
            else:
                verdict = Verdict(job_id, root, seed, decision)
                signatures = sorted_signatures([self.sign(o, verdict) for o in votes[decision]])
                tx = self.send(
                    "settle", job_id, submitted.record(), decision, signatures, sender=self.relayer
                )
            record.events = tx.events
            if plan.provider_mode not in ("withhold", "goes_dark"):
                leaves = [keccak256(o) for o in self.outputs(plan)]
                record.available = all(store.has_object(h, verify=True) for h in leaves)

        final = self.job(job_id)  # its last record, folded from its events; digest zero
        assert not final.is_open
        record.state = int(final.state)
        assert ENDINGS[next(n for n in record.events if n in ENDINGS)] == final.state
        client_after, account_after = self.read(
            (self.t, "balanceOf", client), (self.m, "getProvider", provider)
        )
        record.client_delta = int(client_after) - int(client_before)
        record.stake_delta = int(account_after["stakeNtk"]) - int(account_before["stakeNtk"])
        record.earned_delta = int(account_after["earnedNtk"]) - int(account_before["earnedNtk"])
        self.records.append(record)
        shutil.rmtree(folder)  # the job's spec and bundle (a deep run makes tens of thousands)
        return record


# ---------------------------------------------------------------- the per-job properties


SHARD_IN_REASON = re.compile(r"^[A-Z_]+: shard (\d+): ")


def check_job(record: JobRecord) -> None:
    """Properties 2 to 5 for one finished job."""
    plan, mode = record.plan, record.plan.provider_mode
    n, k, p, s = plan.shards, plan.k, plan.payment, record.collateral
    fee = fee_of(p)
    compensation = s * SLASH_TO_CLIENT_BPS // 10_000
    where = f"job {record.job_id}: {plan}, outcomes {record.outcomes}"

    # the oracles agree, and drew the challenge the chain drew
    verdicts = {o.accepted for o in record.outcomes.values() if o.kind == Kind.VERDICT}
    assert len(verdicts) <= 1, f"the oracles disagree; {where}"
    for outcome in record.outcomes.values():
        assert not outcome.challenged or outcome.challenged == record.challenged, where

    # 3 (part): no lapse while the oracles are up (a lapse is a fault that escaped)
    assert record.state != LAPSED, f"LAPSED: a provider fault escaped the slash; {where}"

    if mode == "honest":  # 2: an honest provider never loses, whatever the client did
        assert record.state == PAID, f"an honest provider was not paid; {where}"
        paid = record.events["JobPaid"]
        assert (paid["providerNtk"], paid["feeNtk"]) == (p - fee, fee)
        assert (record.stake_delta, record.earned_delta) == (0, p - fee), where
        assert record.client_delta == -p, where
        STATS[f"honest provider paid (client {plan.client_mode})"] += 1
        return

    if mode == "fake":  # 4 (empirical): paid exactly when no faked shard was challenged
        caught = plan.faked & set(record.challenged)
        if not caught:
            assert record.state == PAID, f"an uncaught fake was not paid; {where}"
            assert record.client_delta == -p and record.stake_delta == 0, where
            STATS["fake uncaught (paid)"] += 1
        else:
            assert record.state == REJECTED, f"a challenged fake was not rejected; {where}"
            for outcome in record.outcomes.values():
                named = {
                    int(m.group(1)) for r in outcome.reasons if (m := SHARD_IN_REASON.match(r))
                }
                assert named <= caught and (len(caught) > 8 or named == caught), where
        faked = len(plan.faked)
    else:  # publishes nothing usable or never submits: caught for sure, computed nothing
        faked = n

    gain = cheater_gain(n, k, faked, p, s)
    assert gain < 0, (
        f"cheating does not lose: G = {gain} (= {float(gain):.6g} wei) for faking {faked} of "
        f"{n} shards with k = {k}, payment {p}, collateral {s} "
        f"(minimumCollateral {s - plan.extra_collateral}); {where}"
    )

    if record.state == PAID:
        return
    # 3: an honest client never loses to a provider that was not honest
    expected = DEFAULTED if mode == "never_submit" else REJECTED
    assert record.state == expected, f"expected state {expected}; {where}"
    slashed = record.events["JobDefaulted" if expected == DEFAULTED else "JobRejected"]
    assert slashed["refundNtk"] == p + compensation, where
    assert slashed["burnedNtk"] == s - compensation, where
    assert record.client_delta == compensation, where
    assert (record.stake_delta, record.earned_delta) == (-s, 0), where
    if mode != "never_submit":
        for outcome in record.outcomes.values():
            assert outcome.kind == Kind.VERDICT and not outcome.accepted, where
            assert outcome.reasons[0].startswith(REJECT_REASONS[mode]), where
    STATS[f"{mode} {'defaulted' if expected == DEFAULTED else 'rejected'}"] += 1


def check_paid_results_served(record: JobRecord) -> None:
    """A Paid job's whole result is served to its client."""
    if record.state == PAID:
        assert record.available is True, f"job {record.job_id} paid without its whole result"


# ---------------------------------------------------------------- the state machine


class HostileMarketMachine(ChainStateMachine):
    harness: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.h: Harness = self.harness
        self.h.reset()

    @rule(
        client=st.integers(0, 1),
        provider=st.integers(0, 1),
        seed=st.integers(1, 2),
        shards=st.integers(8, 16),
        client_mode=st.sampled_from(CLIENT_MODES),
        provider_mode=st.sampled_from(PROVIDER_MODES),
        payment=st.integers(1, 10**6) | st.integers(NTK, 1000 * NTK),
        down=st.none() | st.integers(0, 2),
        data=st.data(),
    )
    def job(
        self,
        client: int,
        provider: int,
        seed: int,
        shards: int,
        client_mode: str,
        provider_mode: str,
        payment: int,
        down: int | None,
        data: st.DataObject,
    ) -> None:
        k = data.draw(st.sampled_from([1, shards]) | st.integers(1, shards), label="k")
        extra = data.draw(st.sampled_from([0, 1]) | st.integers(0, payment), label="extra")
        faked: frozenset[int] = frozenset()
        if provider_mode == "fake":
            j = data.draw(st.sampled_from([1, shards]) | st.integers(1, shards), label="j")
            order = data.draw(st.permutations(range(shards)), label="shard order")
            faked = frozenset(order[:j])
        plan = JobPlan(
            client=client,
            provider=provider,
            seed=seed,
            shards=shards,
            k=k,
            payment=payment,
            extra_collateral=extra,
            client_mode=client_mode,
            provider_mode=provider_mode,
            faked=faked,
            down=down,
            delete_pick=data.draw(st.integers(0, 63), label="delete pick"),
        )
        self._run(plan)

    @rule(
        client=st.integers(0, 1),
        provider=st.integers(0, 1),
        shards=st.integers(8, 16),
        client_mode=st.sampled_from(CLIENT_MODES),
        payment=st.integers(1, 10**6) | st.integers(NTK, 1000 * NTK),
        down=st.none() | st.integers(0, 2),
        data=st.data(),
    )
    def honest_provider_job(
        self,
        client: int,
        provider: int,
        shards: int,
        client_mode: str,
        payment: int,
        down: int | None,
        data: st.DataObject,
    ) -> None:
        """An honest provider against a client that is hostile more often than not."""
        plan = JobPlan(
            client=client,
            provider=provider,
            seed=data.draw(st.integers(1, 2), label="seed"),
            shards=shards,
            k=data.draw(st.integers(1, shards), label="k"),
            payment=payment,
            extra_collateral=data.draw(st.integers(0, payment), label="extra"),
            client_mode=client_mode,
            down=down,
        )
        self._run(plan)

    def _run(self, plan: JobPlan) -> None:
        with timed("jobs (whole)"):
            record = self.h.run_job(plan)
        STATS["jobs"] += 1
        check_job(record)
        check_paid_results_served(record)

    @rule(
        kind=st.sampled_from(["earnings", "fees", "unbond", "unbonded"]),
        p=st.integers(0, 1),
        amount=st.integers(1, 1000 * NTK),
    )
    def withdraw(self, kind: str, p: int, amount: int) -> None:
        h, provider = self.h, self.h.providers[p]
        if kind == "earnings":
            if h.books.earned[provider.address] == 0:
                h.reverts(provider, "withdrawEarnings")
                return
            before = int(h.t.view("balanceOf", provider))
            owed = h.books.earned[provider.address]
            h.send("withdrawEarnings", sender=provider)
            assert int(h.t.view("balanceOf", provider)) - before == owed
        elif kind == "fees":
            if h.books.fees == 0:
                h.reverts(h.owner, "withdrawFees", h.treasury)
                return
            before, owed = int(h.t.view("balanceOf", h.treasury)), h.books.fees
            h.send("withdrawFees", h.treasury, sender=h.owner)
            assert int(h.t.view("balanceOf", h.treasury)) - before == owed
        elif kind == "unbond":
            h.send("requestUnbond", amount, sender=provider)
        else:
            record = h.m.view("getProvider", provider)
            if record["unbondingNtk"] == 0:
                return
            h.warp(int(record["unbondReadyAt"]))
            h.send("withdrawUnbonded", sender=provider)
        STATS[f"withdraw {kind}"] += 1

    @invariant()
    def the_chain_agrees_with_the_books(self) -> None:
        """Properties 1 and 5, from one batch of reads: the market's NTK, its fees, each
        provider's account and the token supply against the books; the payout events in the
        chain's logs (not our receipts), exactly one per job; each job's record folded from
        the chain's logs is the one we saw end."""
        h = self.h
        with timed("invariants"):
            self._check_books(h)

    def _check_books(self, h: Harness) -> None:
        answers = h.rpc.batch(
            [
                h.t.call_request("balanceOf", h.m.address),
                h.m.call_request("feesNtk"),
                h.t.call_request("totalSupply"),
                *[h.m.call_request("getProvider", p) for p in h.providers],
                h.logs_request(),
            ]
        )
        balance, fees, supply = (
            h.t.decode_result("balanceOf", 1, answers[0]),
            h.m.decode_result("feesNtk", 0, answers[1]),
            h.t.decode_result("totalSupply", 0, answers[2]),
        )
        # 1: the market's NTK balance equals its books; the books match the market's views
        assert balance == h.books.total()
        assert fees == h.books.fees
        for p, raw in zip(h.providers, answers[3:-1], strict=True):
            record = h.m.decode_result("getProvider", 1, raw)
            assert (
                int(record["stakeNtk"]),
                int(record["unbondingNtk"]),
                int(record["earnedNtk"]),
            ) == (
                h.books.stake[p.address],
                h.books.unbonding[p.address],
                h.books.earned[p.address],
            ), p.address
        assert supply == h.supply - h.books.burned
        # 5: every job pays out exactly once, counted in the chain's logs
        logs = answers[-1]
        assert not isinstance(logs, Exception), logs
        h.take_logs(logs)
        logged = Counter(
            {job: sum(1 for name, _ in events if name in PAYOUT_EVENTS)
             for job, events in h.logged.items()}
        )  # fmt: skip
        logged = +logged  # jobs with no payout yet drop out, as in the books
        assert logged == h.books.payouts
        assert all(logged[r.job_id] == 1 for r in h.records), logged
        assert not h.books.escrow and not h.books.locked  # every job ran to its end
        for r in h.records[h.checked :]:  # the record the chain's logs give is the one we saw
            assert fold(r.job_id, h.logged[r.job_id]) == h.folded(r.job_id), r.job_id
        h.checked = len(h.records)

    @invariant()
    def no_lapses(self) -> None:
        assert not [r.job_id for r in self.h.records if r.state == LAPSED]


EXAMPLES = int(os.environ.get("NEUROTOKEN_STATEFUL_EXAMPLES", "50"))
STEPS = int(os.environ.get("NEUROTOKEN_STATEFUL_STEPS", "30"))
HOSTILE_SETTINGS = settings(STATEFUL_SETTINGS, max_examples=EXAMPLES, stateful_step_count=STEPS)


# ---------------------------------------------------------------- fixtures and tests


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds process `pid` has used (0.0 if unknown): on a loaded machine the wall
    time of a run says little, its CPU time what it costs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def memory_folder(fallback: Path) -> Iterator[Path]:
    """A fresh folder in memory (/dev/shm), removed afterwards; `fallback` where there is
    none. The provider's store writes each object, proof and manifest atomically with an
    fsync: ~6 ms each on this machine's disk, ~0.1 ms on tmpfs, and a job writes ~2N + 2
    files. What is written and read is the same either way."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="hostile-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def node(project: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    """This module's own anvil (the build's artifacts from `project`): ape's node traces every
    step of every transaction (--steps-tracing, for its tracebacks), which cost a third of
    the machine's time and is never read here."""
    assert project.ComputeMarket and project.NeuroToken  # compiled (.build/__local__.json)
    anvil = Anvil(accounts=20, log_path=tmp_path_factory.mktemp("hostile") / "anvil.log")
    anvil.start()
    try:
        yield anvil
    finally:
        anvil.stop()


@pytest.fixture
def harness(
    node: Anvil, owner: Any, minter: Any, client: Any, client2: Any, provider: Any,
    provider2: Any, oracles: list[Any], stranger: Any, treasury: Any, tmp_path: Path,
) -> Iterator[Harness]:  # fmt: skip
    """A fresh NTK and market with 3 oracles (threshold 2), fee 2.5%, on this module's anvil;
    2 clients and 2 staked providers (the test accounts of ape's mnemonic: anvil's own)."""
    w3 = node.web3()
    token = deploy(w3, "NeuroToken", owner.address, owner.address)
    market = deploy(
        w3, "ComputeMarket", owner.address, token.address, owner.address,
        HOSTILE_UNBONDING_DELAY, FEE_BPS, [o.address for o in oracles], THRESHOLD,
        MIN_VERDICT_WINDOW, RANDAO_DELAY,  # RANDAO seeds, as `ape run market deploy` makes
    )  # fmt: skip
    rpc = Rpc(node.url)
    ntk = RawContract(rpc, token.address, load_artifact("NeuroToken")[0])
    ntk.transact("grantRole", ntk.view("MINTER_ROLE"), minter, sender=owner)
    clients, providers = [client, client2], [provider, provider2]
    for account in (*clients, *providers):
        ntk.transact("mint", account, 10_000_000 * NTK, sender=minter)
        ntk.transact("approve", market.address, MAX_UINT256, sender=account)
    bourse = RawContract(rpc, market.address, load_artifact("ComputeMarket")[0])
    for account in providers:
        bourse.transact("registerProvider", HOSTILE_STAKE, "file:///provider.json", sender=account)
    with memory_folder(tmp_path) as folder:
        yield Harness(
            node, market.address, token.address, owner, clients, providers, oracles,
            relayer=stranger, treasury=treasury, folder=folder,
        )  # fmt: skip


def test_hostile_provider_and_client_against_three_oracles(harness: Harness) -> None:
    STATS.clear()
    TIMES.clear()
    CPU_TIMES.clear()
    counts = RunCounts()
    bound = type(
        "HostileMarketMachine",
        (HostileMarketMachine,),
        {"chain": harness, "harness": harness, "counts": counts},
    )
    campaign = Campaign(
        "fuzz-hostile-market", f"The hostile-market state machine ({EXAMPLES} x {STEPS})"
    )
    node = harness.node.process.pid if harness.node.process else None
    started, rpc_before = time.monotonic(), harness.rpc.requests
    cpu_before = (time.process_time(), process_cpu_s(node))
    run_state_machine_as_test(bound, settings=HOSTILE_SETTINGS)
    seconds = time.monotonic() - started
    cpu = (time.process_time() - cpu_before[0], process_cpu_s(node) - cpu_before[1])
    print("\nhostile machine, over all examples:", dict(sorted(STATS.items())))
    print("time in each part of the steps:")
    for part, wall in sorted(TIMES.items(), key=lambda i: -i[1]):
        print(f"  {part}: {wall:.2f} s, CPU {CPU_TIMES[part]:.2f} s")
    print(f"{counts.examples} examples, {counts.steps} steps in {seconds:.1f} s "
          f"({1000 * seconds / max(1, counts.steps):.0f} ms a step), "
          f"{harness.rpc.requests - rpc_before} JSON-RPC requests; CPU: this process "
          f"{cpu[0]:.1f} s, the node {cpu[1]:.1f} s")  # fmt: skip
    # hypothesis runs every example to the step count unless its choice buffer fills first
    assert counts.examples >= EXAMPLES and counts.longest == STEPS, counts
    if os.environ.get("NEUROTOKEN_FUZZ"):
        campaign.figure("examples", counts.examples, EXAMPLES)
        campaign.figure("steps", counts.steps)
        campaign.figure("steps per example (max)", counts.longest, STEPS)
        campaign.figure(f"examples of {STEPS} steps", counts.per_example.count(STEPS))
        campaign.figure("jobs run to their end", STATS["jobs"])
        refused = sum(v for name, v in STATS.items() if name.endswith(" refused"))
        campaign.figure("hostile tries refused", refused)
        campaign.figure("ms per step", round(1000 * seconds / max(1, counts.steps), 1))
        campaign.note(
            f"hypothesis {EXAMPLES} examples x {STEPS} steps; {counts.steps} steps "
            f"({STATS['jobs']} whole jobs, three oracles each) in {seconds:.0f} s"
        )
        campaign.report()


@pytest.mark.parametrize("client_mode", ["missing", "other_bytes", "fifo", "unreachable"])
def test_client_withholds_spec__honest_provider_still_paid(
    harness: Harness, client_mode: str
) -> None:
    """The client keeps the outputs and withholds (or swaps) its spec; the oracles take the
    spec from the provider's bundle: the honest provider is paid in full."""
    record = harness.run_job(JobPlan(shards=12, k=4, client_mode=client_mode))
    check_job(record)
    check_paid_results_served(record)
    assert record.state == PAID and record.earned_delta == 100 * NTK - fee_of(100 * NTK)


def test_provider_fakes_a_challenged_shard__rejected_and_slashed_in_full(
    harness: Harness,
) -> None:
    """Every shard is challenged (k = N), so the one faked shard is among them: the job is
    rejected, the client gets its payment and half the collateral, the rest is burned and
    the provider keeps nothing of it."""
    plan = JobPlan(
        shards=10, k=10, extra_collateral=40 * NTK, provider_mode="fake", faked=frozenset({3})
    )
    supply = int(harness.t.view("totalSupply"))
    record = harness.run_job(plan)
    check_job(record)
    assert record.state == REJECTED and 3 in record.challenged
    collateral = 40 * NTK + 1  # the minimum (one wei: every shard is challenged) plus 40 NTK
    assert record.stake_delta == -collateral and record.earned_delta == 0
    assert record.client_delta == collateral // 2
    assert int(harness.t.view("totalSupply")) == supply - (collateral - collateral // 2)
    for outcome in record.outcomes.values():
        assert outcome.reasons and all("shard 3:" in r for r in outcome.reasons), outcome


@pytest.mark.parametrize("provider_mode", ["fake", "never_submit"])
def test_provider_cheats_at_the_least_collateral__cheating_must_not_break_even(
    harness: Harness, provider_mode: str
) -> None:
    """With k > (N + 1) / 2 the market's minimum collateral was 0: a provider that took such
    a job at zero collateral and faked every shard (caught for certain) or never delivered
    lost nothing (with C = V = P its gain was exactly 0). The minimum is now one wei."""
    plan = JobPlan(  # collateral: the market's minimum, one wei for N = 8, k = 5
        shards=8,
        k=5,
        provider_mode=provider_mode,
        faked=frozenset(range(8)) if provider_mode == "fake" else frozenset(),
    )
    record = harness.run_job(plan)
    assert record.state in (REJECTED, DEFAULTED) and record.earned_delta == 0
    check_job(record)  # G = (8/8)P + 0*P - 1*(P + 1 wei) < 0
    assert record.stake_delta == -1, "the cheater lost nothing"
