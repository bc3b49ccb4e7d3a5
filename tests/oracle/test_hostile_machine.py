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
* once the seed block exists, both sides try what a hostile party can (the client cancels or
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

NEUROTOKEN_STATEFUL_EXAMPLES and NEUROTOKEN_STATEFUL_STEPS deepen the run (default 5 x 8).

Found (and fixed): property 4 failed when k > (N + 1) / 2. `minimumCollateral` was then 0,
and a provider that took such a job at zero collateral and faked every shard (caught for
certain), served nothing or never delivered gained G = (N/N)P - (P + 0) = 0: it broke even
instead of losing. The minimum is now never below one wei, which makes G < 0 for every N,
k and j (`test_minimum_collateral__every_faked_count_loses_money` in
tests/compute/test_economics.py). `test_provider_cheats_at_the_least_collateral__...` pins it.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test
from web3.exceptions import ContractLogicError

from devchain.localnet import free_port, small_spec
from neurotoken.chain.reverts import ErrorDecoder
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, spec_hash, spec_json
from neurotoken.market.job import ENDINGS, OnChainJob, fold
from neurotoken.market.ops import (
    minimum_collateral,
)
from neurotoken.market.records import ape_reader, contract_abi
from neurotoken.market.states import PAYOUT_EVENTS, JobState
from neurotoken.market.verdicts import MarketDomain, Verdict, challenged_indices, sign_verdict
from neurotoken.proofs.bundle import make_manifest
from neurotoken.proofs.store import LocalStore, object_path
from neurotoken.provider import compute_job, publish_bundle
from neurotoken.units import NTK
from oracle.chain import revert_data
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
from tests.helpers import deploy_market, sorted_signatures
from tests.stateful import ChainStateMachine

AnySpec = ShelfImagesSpec | TrainingSpec

# This harness's own market figures (not tests/constants.py's STAKE and UNBONDING_DELAY):
# its providers stake a thousand times deeper and unbond within the hour.
HOSTILE_UNBONDING_DELAY = HOUR
HOSTILE_STAKE = 1_000_000 * NTK
THRESHOLD = 2
SLASH_TO_CLIENT_BPS = 5_000  # ComputeMarket.SLASH_TO_CLIENT_BPS
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

# ---------------------------------------------------------------- shard outputs, cached


_OUTPUTS: dict[bytes, list[bytes]] = {}


def shard_outputs(spec: AnySpec, cache: Path) -> list[bytes]:
    """Every shard output of `spec`, computed once per test session by the provider's own
    `compute_job` (the examples reuse a handful of specs)."""
    key = spec_hash(spec)
    if key not in _OUTPUTS:
        store = LocalStore(cache / "store")
        report = compute_job(spec, store, cache / "state", workers=1, progress=False)
        _OUTPUTS[key] = [store.object(h, 1 << 30) for h in report.output_hashes]
    return _OUTPUTS[key]


# ---------------------------------------------------------------- the books, from events


@dataclass
class Books:
    """What the market owes, rebuilt from its events alone."""

    escrow: dict[int, int] = field(default_factory=dict)  # open job -> payment
    locked: dict[int, int] = field(default_factory=dict)  # accepted job -> collateral
    stake: Counter[str] = field(default_factory=Counter)
    unbonding: Counter[str] = field(default_factory=Counter)
    earned: Counter[str] = field(default_factory=Counter)
    fees: int = 0
    burned: int = 0
    payouts: Counter[int] = field(default_factory=Counter)

    def total(self) -> int:
        return (
            sum(self.escrow.values())
            + sum(self.locked.values())
            + sum(self.stake.values())
            + sum(self.unbonding.values())
            + sum(self.earned.values())
            + self.fees
        )

    def apply(self, name: str, a: dict[str, Any]) -> None:
        """Books one market event; its amounts must agree with what the books hold."""
        if name in PAYOUT_EVENTS:
            self.payouts[int(a["jobId"])] += 1
        if name == "ProviderRegistered":
            self.stake[a["provider"]] += a["stakeNtk"]
        elif name == "StakeAdded":
            self.stake[a["provider"]] += a["amountNtk"]
            assert self.stake[a["provider"]] == a["stakeNtk"], a
        elif name == "UnbondRequested":
            self.stake[a["provider"]] -= a["amountNtk"]
            self.unbonding[a["provider"]] += a["amountNtk"]
            assert self.unbonding[a["provider"]] == a["unbondingNtk"], a
        elif name == "UnbondWithdrawn":
            assert self.unbonding[a["provider"]] == a["amountNtk"], a
            self.unbonding[a["provider"]] = 0
        elif name == "EarningsWithdrawn":
            assert self.earned[a["provider"]] == a["amountNtk"], a
            self.earned[a["provider"]] = 0
        elif name == "FeesWithdrawn":
            assert self.fees == a["amountNtk"], a
            self.fees = 0
        elif name == "JobPosted":
            posted = fold(int(a["jobId"]), [(name, a)])
            assert posted is not None, a
            self.escrow[a["jobId"]] = posted.payment_ntk
        elif name == "JobAccepted":
            self.stake[a["provider"]] -= a["collateralNtk"]
            assert self.stake[a["provider"]] >= 0, a
            self.locked[a["jobId"]] = a["collateralNtk"]
        elif name == "JobPaid":
            payment, collateral = self.escrow.pop(a["jobId"]), self.locked.pop(a["jobId"])
            assert a["providerNtk"] + a["feeNtk"] == payment, a
            self.earned[a["provider"]] += a["providerNtk"]
            self.fees += a["feeNtk"]
            self.stake[a["provider"]] += collateral
        elif name in ("JobRejected", "JobDefaulted"):
            payment, collateral = self.escrow.pop(a["jobId"]), self.locked.pop(a["jobId"])
            assert a["refundNtk"] == payment + a["compensationNtk"], a
            assert a["compensationNtk"] + a["burnedNtk"] == collateral, a
            self.burned += a["burnedNtk"]
        elif name == "JobLapsed":
            payment, collateral = self.escrow.pop(a["jobId"]), self.locked.pop(a["jobId"])
            assert a["refundNtk"] == payment and a["collateralNtk"] == collateral, a
            self.stake[a["provider"]] += collateral
        elif name in ("JobCancelled", "JobExpired"):
            assert a["refundNtk"] == self.escrow.pop(a["jobId"]), a


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
    """One deployed market, its clients, providers and oracles, and the books."""

    def __init__(
        self,
        chain: Any,
        market: Any,
        token: Any,
        owner: Any,
        clients: list[Any],
        providers: list[Any],
        oracles: list[Any],
        relayer: Any,
        treasury: Any,
        folder: Path,
    ) -> None:
        self.chain = chain
        self.market = market
        self.token = token
        self.owner = owner
        self.clients = clients
        self.providers = providers
        self.oracles = oracles
        self.relayer = relayer
        self.treasury = treasury
        self.folder = folder
        self.domain = MarketDomain(chain.chain_id, market.address)
        self.reader = ape_reader(market)
        self.errors = ErrorDecoder(contract_abi(market))
        self.jobs_run = 0
        self.payout_topics = self._event_topics(PAYOUT_EVENTS)
        self.reset()

    def reset(self) -> None:
        """Books from the chain as it is now (an example starts here)."""
        self.books = Books()
        for p in self.providers:
            record = self.market.getProvider(p)
            self.books.stake[p.address] = int(record.stakeNtk)
            self.books.unbonding[p.address] = int(record.unbondingNtk)
            self.books.earned[p.address] = int(record.earnedNtk)
        self.books.fees = int(self.market.feesNtk())
        self.supply = int(self.token.totalSupply())
        self.start_block = int(self.chain.blocks.head.number) + 1
        self.records: list[JobRecord] = []

    def _event_topics(self, names: tuple[str, ...]) -> dict[bytes, str]:
        topics = {}
        for abi in self.market.contract_type.abi:
            if abi.type == "event" and abi.name in names:
                signature = f"{abi.name}({','.join(i.canonical_type for i in abi.inputs)})"
                topics[keccak(text=signature)] = abi.name
        assert len(topics) == len(names)
        return topics

    # ------------------------------------------------------------ chain access

    def send(self, method: str, *args: Any, sender: Any) -> Any:
        """A market transaction; its events go into the books."""
        tx = getattr(self.market, method)(*args, sender=sender)
        for log in tx.events:
            if log.contract_address == self.market.address:
                self.books.apply(log.event_name, dict(log.event_arguments))
        return tx

    def events(self, tx: Any) -> dict[str, dict[str, Any]]:
        return {
            log.event_name: dict(log.event_arguments)
            for log in tx.events
            if log.contract_address == self.market.address
        }

    def job(self, job_id: int) -> OnChainJob:
        """The job's record (its last one once it has ended), rebuilt from its events and
        checked against the digest the market stores."""
        return self.reader.get(job_id)

    def rec(self, job_id: int) -> tuple[int, int, int, bytes, bytes]:
        """The job's current record, as the market's calls take it."""
        return self.job(job_id).record()

    def reverts(self, sender: Any, method: str, *args: Any, error: str | None = None) -> None:
        """The call must revert (a raw eth_call on the pending block); with `error`, with
        that custom error of the market."""
        data = getattr(self.market, method).encode_input(*args)
        call = {"from": sender.address, "to": self.market.address, "data": data}
        try:
            self.chain.provider.web3.eth.call(call, "pending")
        except ContractLogicError as exc:
            if error is not None:
                decoded = self.errors.decode(revert_data(exc))
                assert decoded is not None and decoded.name == error, (method, decoded, error)
            STATS[f"{method} refused"] += 1
            return
        raise AssertionError(f"{method}{args} by {sender.address} did not revert")

    def warp(self, timestamp: int) -> None:
        """Mines a block at `timestamp` (if the chain is not past it already)."""
        if timestamp > int(self.chain.blocks.head.timestamp):
            self.chain.provider.set_timestamp(timestamp)
            self.chain.provider.mine(1)

    def payouts_in_logs(self) -> Counter[int]:
        """Payout events per job, read from the chain's logs (not from our receipts)."""
        if self.start_block > int(self.chain.blocks.head.number):
            return Counter()
        logs = self.chain.provider.web3.eth.get_logs(
            {"address": self.market.address, "fromBlock": self.start_block, "toBlock": "latest"}
        )
        counts: Counter[int] = Counter()
        for log in logs:
            if bytes(log["topics"][0]) in self.payout_topics:
                counts[int.from_bytes(bytes(log["topics"][1]), "big")] += 1
        return counts

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
            path.write_bytes(spec_json(small_spec(seed=spec.seed + 50, shards=spec.shard_count)))
            return path.as_uri()
        if mode == "fifo":
            path = folder / "spec.fifo"
            os.mkfifo(path)
            return path.as_uri()
        assert mode == "unreachable", mode
        return f"http://127.0.0.1:{free_port()}/spec.json"

    # ------------------------------------------------------------ the provider's bundle

    def publish(
        self, plan: JobPlan, spec: AnySpec, job_id: int, folder: Path
    ) -> tuple[bytes, str, LocalStore]:
        """Builds what the provider's mode publishes; returns the root to commit, the bundle
        URI and the store."""
        assert isinstance(spec, ShelfImagesSpec)
        cache = self.folder / "cache"
        outputs = list(shard_outputs(spec, cache))
        if plan.provider_mode == "fake":
            forger = small_spec(seed=spec.seed + 100, shards=spec.shard_count)
            forged = shard_outputs(forger, cache)
            for index in plan.faked:
                outputs[index] = forged[index]  # a real shard container, of another spec
        store = LocalStore(folder / "bundle")
        if plan.provider_mode in ("withhold", "goes_dark"):  # commits, publishes nothing
            _, tree = make_manifest(job_id, spec_hash(spec), [keccak256(o) for o in outputs])
            uri = (
                store.root_dir.as_uri()
                if plan.provider_mode == "withhold"
                else f"http://127.0.0.1:{free_port()}"
            )
            return tree.root, uri, store
        manifest = publish_bundle(store, job_id, spec, [store.put_object(o) for o in outputs])
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
        job_id: int,
        client: Any,
        provider: Any,
        root: bytes,
        shards: int,
        seed: bytes,
        stale: OnChainJob,
    ) -> None:
        """What either side may try once the challenge is known: each must revert. `stale`
        is the job's record from before its result (the accepted one)."""
        job = self.job(job_id)
        rec = job.record()
        self.reverts(client, "cancelJob", job_id, rec)
        self.reverts(client, "expireJob", job_id, rec)
        other = keccak(root)  # a second draw: move the fakes away from the challenge
        self.reverts(provider, "submitResult", job_id, rec, other, shards, "file:///elsewhere")
        self.reverts(  # ... with the record from before the first: it is not current
            provider, "submitResult", job_id, stale.record(), other, shards, "file:///elsewhere",
            error="MarketJobRecordMismatch",
        )  # fmt: skip
        for party, accepted in ((client, False), (provider, True)):
            own = [
                sign_verdict(k.private_key, self.domain, Verdict(job_id, root, seed, accepted))
                for k in (client, provider)
            ]
            self.reverts(party, "settle", job_id, rec, accepted, sorted_signatures(own))
        reseeded = [  # oracles' signatures over another seed settle nothing
            sign_verdict(o.private_key, self.domain, Verdict(job_id, root, keccak(seed), True))
            for o in self.oracles
        ]
        self.reverts(provider, "settle", job_id, rec, True, sorted_signatures(reseeded))
        self.forged_records(job, stale, client, provider, seed)

    def forged_records(
        self, job: OnChainJob, stale: OnChainJob, client: Any, provider: Any, seed: bytes
    ) -> None:
        """Every oracle's genuine signature over the job's real verdict (either way) settles
        nothing with a record that is not the job's current one: the stale one, one with a
        field changed in the sender's favour, or the record under another job id."""
        job_id, root = job.job_id, job.result_root
        wei = 10**18
        for accepted, party in ((True, provider), (False, client)):
            verdict = Verdict(job_id, root, seed, accepted)
            genuine = sorted_signatures(
                [sign_verdict(o.private_key, self.domain, verdict) for o in self.oracles]
            )
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
                self.reverts(
                    party, "settle", job_id, record.record(), accepted, genuine,
                    error="MarketJobRecordMismatch",
                )  # fmt: skip
            entries = [(job_id, forged[0].record(), accepted)]
            self.reverts(party, "settleBatch", entries, genuine, error="MarketJobRecordMismatch")
            # the record under another job id: no such open job
            self.reverts(
                party, "settle", job_id + 1_000, job.record(), accepted, genuine,
                error="MarketJobNotFound",
            )  # fmt: skip
            STATS["forged records refused"] += len(forged) + 2

    # ------------------------------------------------------------ the whole job

    def run_job(self, plan: JobPlan) -> JobRecord:
        client = self.clients[plan.client % len(self.clients)]
        provider = self.providers[plan.provider % len(self.providers)]
        spec = small_spec(seed=plan.seed, shards=plan.shards)
        n, k = plan.shards, plan.k
        minimum = int(self.market.minimumCollateral(plan.payment, n, k))
        assert minimum == minimum_collateral(plan.payment, n, k)
        collateral = minimum + plan.extra_collateral
        folder = self.folder / f"job{self.jobs_run}"
        self.jobs_run += 1

        spec_uri = self.spec_uri(plan.client_mode, spec, folder)
        if self.books.stake[provider.address] < collateral:
            self.send("addStake", collateral, sender=provider)
        client_before = int(self.token.balanceOf(client))
        account_before = self.market.getProvider(provider)

        now = int(self.chain.blocks.head.timestamp)
        accept_by, deliver_by = now + 3600, now + 7200
        verdict_by = deliver_by + MIN_VERDICT_WINDOW
        request = {
            "specHash": spec_hash(spec),
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
        job_id = int(self.events(posted)["JobPosted"]["jobId"])
        self.send("acceptJob", job_id, self.rec(job_id), sender=provider)
        record = JobRecord(plan, job_id, collateral, ACCEPTED)
        accepted = self.job(job_id)

        if plan.provider_mode == "never_submit":
            self.reverts(client, "cancelJob", job_id, accepted.record())
            self.reverts(client, "expireJob", job_id, accepted.record())
            self.warp(deliver_by + 1)
            tx = self.send("expireJob", job_id, accepted.record(), sender=self.relayer)
            record.events = self.events(tx)
        else:
            root, bundle_uri, store = self.publish(plan, spec, job_id, folder)
            self.send(
                "submitResult", job_id, accepted.record(), root, n, bundle_uri, sender=provider
            )
            self.chain.mine(2)  # the seed block, then one from which a view sees its hash
            submitted = self.job(job_id)
            seed = bytes(self.market.challengeSeed(job_id, submitted.seed_block))
            challenged = tuple(
                int(i) for i in self.market.challengedShards(job_id, submitted.record())
            )
            assert list(challenged) == challenged_indices(seed, job_id, n, k)
            record.challenged = challenged
            self.hostile_tries(job_id, client, provider, root, n, seed, accepted)
            if plan.provider_mode == "delete_output":
                spared = [i for i in range(n) if i not in challenged] or list(range(n))
                victim = keccak256(
                    shard_outputs(spec, self.folder / "cache")[
                        spared[plan.delete_pick % len(spared)]
                    ]
                )
                (store.root_dir / object_path(victim)).unlink()
            task = VerifyTask(
                job_id=job_id,
                result_root=root,
                spec_hash=spec_hash(spec),
                spec_uri=spec_uri,
                shard_count=n,
                challenge_count=k,
                seed=seed,
                bundle_uri=bundle_uri,
                fetch_timeout_s=2.0,
                fetch_retries=1,
                fetch_budget_s=60.0,
            )
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
                signatures = sorted_signatures(
                    [sign_verdict(o.private_key, self.domain, verdict) for o in votes[decision]]
                )
                tx = self.send(
                    "settle", job_id, submitted.record(), decision, signatures, sender=self.relayer
                )
            record.events = self.events(tx)
            if plan.provider_mode not in ("withhold", "goes_dark"):
                leaves = [keccak256(o) for o in shard_outputs(spec, self.folder / "cache")]
                if plan.provider_mode == "fake":
                    forger = small_spec(seed=plan.seed + 100, shards=n)
                    forged = shard_outputs(forger, self.folder / "cache")
                    leaves = [keccak256(forged[i]) if i in plan.faked else h
                              for i, h in enumerate(leaves)]  # fmt: skip
                record.available = all(store.has_object(h, verify=True) for h in leaves)

        final = self.job(job_id)  # its last record, folded from its events
        assert not final.is_open and bytes(self.market.jobDigest(job_id)) == bytes(32)
        record.state = int(final.state)
        assert ENDINGS[next(n for n in record.events if n in ENDINGS)] == final.state
        account_after = self.market.getProvider(provider)
        record.client_delta = int(self.token.balanceOf(client)) - client_before
        record.stake_delta = int(account_after.stakeNtk) - int(account_before.stakeNtk)
        record.earned_delta = int(account_after.earnedNtk) - int(account_before.earnedNtk)
        self.records.append(record)
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


class HostileMachine(ChainStateMachine):
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
            before = int(h.token.balanceOf(provider))
            owed = h.books.earned[provider.address]
            h.send("withdrawEarnings", sender=provider)
            assert int(h.token.balanceOf(provider)) - before == owed
        elif kind == "fees":
            if h.books.fees == 0:
                h.reverts(h.owner, "withdrawFees", h.treasury)
                return
            before, owed = int(h.token.balanceOf(h.treasury)), h.books.fees
            h.send("withdrawFees", h.treasury, sender=h.owner)
            assert int(h.token.balanceOf(h.treasury)) - before == owed
        elif kind == "unbond":
            h.send("requestUnbond", amount, sender=provider)
        else:
            record = h.market.getProvider(provider)
            if record.unbondingNtk == 0:
                return
            h.warp(int(record.unbondReadyAt))
            h.send("withdrawUnbonded", sender=provider)
        STATS[f"withdraw {kind}"] += 1

    @invariant()
    def market_balance_equals_books(self) -> None:
        h = self.h
        assert int(h.token.balanceOf(h.market)) == h.books.total()
        assert int(h.market.feesNtk()) == h.books.fees
        for p in h.providers:
            record = h.market.getProvider(p)
            assert (
                int(record.stakeNtk),
                int(record.unbondingNtk),
                int(record.earnedNtk),
            ) == (
                h.books.stake[p.address],
                h.books.unbonding[p.address],
                h.books.earned[p.address],
            ), p.address
        assert int(h.token.totalSupply()) == h.supply - h.books.burned

    @invariant()
    def every_job_pays_out_exactly_once(self) -> None:
        h = self.h
        logged = h.payouts_in_logs()
        assert logged == h.books.payouts
        assert all(logged[r.job_id] == 1 for r in h.records), logged
        assert not h.books.escrow and not h.books.locked  # every job ran to its end

    @invariant()
    def no_lapses(self) -> None:
        assert not [r.job_id for r in self.h.records if r.state == LAPSED]


HOSTILE_SETTINGS = settings(
    max_examples=int(os.environ.get("NEUROTOKEN_STATEFUL_EXAMPLES", "5")),
    stateful_step_count=int(os.environ.get("NEUROTOKEN_STATEFUL_STEPS", "8")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---------------------------------------------------------------- fixtures and tests


@pytest.fixture
def harness(
    project: Any, chain: Any, token: Any, owner: Any, minter: Any, client: Any, client2: Any,
    provider: Any, provider2: Any, oracles: list[Any], stranger: Any, treasury: Any,
    tmp_path: Path,
) -> Harness:  # fmt: skip
    """A market with 3 oracles (threshold 2), fee 2.5%; 2 clients and 2 staked providers."""
    market = deploy_market(
        project, token, owner, oracles,
        unbonding_delay=HOSTILE_UNBONDING_DELAY, threshold=THRESHOLD,
    )  # fmt: skip
    clients, providers = [client, client2], [provider, provider2]
    for account in (*clients, *providers):
        token.mint(account, 10_000_000 * NTK, sender=minter)
        token.approve(market, MAX_UINT256, sender=account)
    for provider in providers:
        market.registerProvider(HOSTILE_STAKE, "file:///provider.json", sender=provider)
    return Harness(
        chain, market, token, owner, clients, providers, oracles,
        relayer=stranger, treasury=treasury, folder=tmp_path,
    )  # fmt: skip


def test_hostile_provider_and_client_against_three_oracles(harness: Harness, chain: Any) -> None:
    STATS.clear()
    bound = type("HostileMachine", (HostileMachine,), {"chain": chain, "harness": harness})
    run_state_machine_as_test(bound, settings=HOSTILE_SETTINGS)
    print("\nhostile machine, over all examples:", dict(sorted(STATS.items())))


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
    supply = int(harness.token.totalSupply())
    record = harness.run_job(plan)
    check_job(record)
    assert record.state == REJECTED and 3 in record.challenged
    collateral = 40 * NTK + 1  # the minimum (one wei: every shard is challenged) plus 40 NTK
    assert record.stake_delta == -collateral and record.earned_delta == 0
    assert record.client_delta == collateral // 2
    assert int(harness.token.totalSupply()) == supply - (collateral - collateral // 2)
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
