"""Model-based state machine: several clients, providers and oracles, moving clocks.

A Python model predicts every call's outcome; a call the model says is invalid must revert,
and a valid one must succeed. The market stores only a digest per open job, so the machine
keeps every job's record itself, folded from the events of its own transactions, and passes
it to every call (a call about an ended job must then revert MarketJobNotFound, and no call
may ever revert MarketJobRecordMismatch, except where a rule forges the record on purpose).
After every step:
- the market's NTK balance equals escrowed payments + provider stake (free, locked as
  collateral, unbonding) + provider earnings + unclaimed fees;
- every job's record, as the machine folded it, is the one the model predicts, and its
  state never moved backwards;
- `jobDigest` of every open job is the digest of that record, and zero for every ended job;
- no job has paid out more than once;
- a settlement only ever succeeded with a quorum of current oracles.
At the end of each example every job's record is rebuilt from the chain alone (as `JobReader`
does: the market's logs folded per job, checked against the digest) and compared, and every
provider compared with the model.

Transactions go through the fast path of tests/stateful.py (`self.tx`), and a call the model
says must revert is tried as a raw `eth_call` in the pending block whose timestamp `_next_ts`
pinned; time moves with raw `evm_mine`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import rlp
from eth_utils.crypto import keccak
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from neurotoken.chain.headers import header_at
from neurotoken.market.job import RECORD_EVENTS, OnChainJob, fold
from neurotoken.market.ops import (
    minimum_collateral,
)
from neurotoken.market.states import PAYOUT_EVENTS, JobState
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_batch, sign_verdict
from neurotoken.units import NTK
from tests.constants import (
    ACCEPTED,
    CANCELLED,
    DEFAULTED,
    EXPIRED,
    LAPSED,
    MAX_UINT256,
    PAID,
    POSTED,
    REJECTED,
    SUBMITTED,
    ZERO_ADDRESS,
)
from tests.helpers import sorted_signatures
from tests.stateful import ChainStateMachine, batch_view, reverts, run_machine

SHARDS = 8
SPEC_HASH = b"\x01" * 32
CHALLENGES = 4  # the deterrent minimum is then a quarter of the payment (plus one wei)
#: How often each move succeeded or was refused, over all examples (printed with -s).
STATS: Counter[str] = Counter()
#: The ways the `forged_record` rule changes a job's record (`stale`: an earlier record of the
#: job, or another job's current one).
FORGERIES = (
    "stale",
    "client",
    "payment",
    "provider",
    "collateral",
    "state",
    "deadline",
    "seed_block",
    "fee",
    "epoch",
    "threshold",
    "spec",
    "root",
)
#: The job calls the `forged_record` rule sends a forged record to.
JOB_CALLS = ("acceptJob", "submitResult", "settle", "settleBatch", "cancelJob", "expireJob")


def _selector(contract: Any, name: str) -> str:
    for abi in contract.contract_type.abi:
        if abi.type == "error" and abi.name == name:
            signature = f"{name}({','.join(i.canonical_type for i in abi.inputs)})"
            return "0x" + keccak(text=signature)[:4].hex()
    raise KeyError(name)


@dataclass
class JobModel:
    client: Any
    payment: int
    chosen: Any | None
    collateral: int
    accept_by: int
    deliver_by: int
    verdict_by: int
    fee_bps: int
    epoch: int  # the oracle epoch it was posted in: only its oracles settle it
    threshold: int  # the threshold in force when it was posted
    provider: Any = None  # the accepting provider, once accepted
    state: int = POSTED
    root: bytes = b""
    seed_block: int = 0


@dataclass
class ProviderModel:
    registered: bool = False
    stake: int = 0
    earned: int = 0
    unbonding: int = 0
    ready_at: int = 0


class MarketMachine(ChainStateMachine):
    market: Any = None
    token: Any = None
    clients: list[Any] = []
    providers: list[Any] = []
    signers: list[Any] = []  # oracles first, then keys that never were oracles
    initial_oracles: int = 3
    owner: Any = None
    treasury: Any = None
    unbonding_delay: int = 0
    fee_bps: int = 0
    min_verdict_window: int = 0
    randao_delay: int = 0
    """0: the market seeds challenges with block hashes; else with recorded RANDAO mixes."""
    recorder: Any = None
    """The market's RandaoRecorder (a RANDAO market)."""

    def __init__(self) -> None:
        super().__init__()
        self.tx = self.fast.wrap(self.market)  # its transactions on the fast path
        self.recorder_tx = self.fast.wrap(self.recorder) if self.recorder else None
        self.mixes: dict[int, bytes] = {}  # seed block -> the RANDAO mix this example recorded
        self.chain_id = int(self.chain.chain_id)
        _, self.now = self.fast.head()
        self.jobs: dict[int, JobModel] = {}
        self.accounts = {}
        # The test may have registered some before the snapshot.
        for p, record in zip(self.providers, self._providers_on_chain(), strict=True):
            self.accounts[p.address] = ProviderModel(
                record["registered"],
                record["stakeNtk"],
                record["earnedNtk"],
                record["unbondingNtk"],
                record["unbondReadyAt"],
            )
        self.fees = 0
        self.oracles = {s.address for s in self.signers[: self.initial_oracles]}
        self.threshold = 2
        self.epoch = 1
        # oracle -> [first epoch served, first epoch not served (0: still serving)]
        self.terms: dict[str, list[int]] = {address: [1, 0] for address in self.oracles}
        self.payouts: Counter[int] = Counter()
        self.seen_state: dict[int, int] = {}
        # Every record each job has had, the current one last, folded from the events of the
        # machine's own transactions.
        self.records: dict[int, list[OnChainJob]] = {}

    # ------------------------------------------------------------ helpers

    def _providers_on_chain(self) -> list[dict[str, Any]]:
        """`getProvider` of every provider, in one batch read, as {field: value}."""
        abi = self.market.contract_type.view_methods["getProvider"]
        names = [c.name for c in abi.outputs[0].components]
        values = batch_view(self.market, [("getProvider", p) for p in self.providers])
        return [dict(zip(names, v, strict=True)) for v in values]

    def _head(self) -> int:
        """The latest block's number."""
        return self.fast.head()[0]

    def _next_ts(self) -> int:
        """Pins the next block's timestamp so the model knows it exactly."""
        self.now += 1
        self.fast.pin_next_timestamp(self.now)
        return self.now

    def _job(self, index: int, *states: int) -> tuple[int, JobModel]:
        """A job: for even `index`, one in `states` when there is one (so most moves are
        valid); otherwise any job (so invalid moves are tried too)."""
        candidates = sorted(self.jobs)
        if index % 2 == 0 and states:
            candidates = [i for i in candidates if self.jobs[i].state in states] or candidates
        job_id = candidates[(index // 2) % len(candidates)]
        return job_id, self.jobs[job_id]

    def _record(self, job_id: int) -> OnChainJob:
        """The job's current record as the machine folded it (its last one once ended)."""
        return self.records[job_id][-1]

    def _rec(self, job_id: int) -> tuple[Any, ...]:
        """The job's current record as the market's calls take it."""
        return self._record(job_id).record()

    @staticmethod
    def _gone(job: JobModel) -> str | None:
        """The error every call about the job gives once it has ended (its digest is cleared):
        the record check comes first in each of them."""
        return None if job.state in (POSTED, ACCEPTED, SUBMITTED) else "MarketJobNotFound"

    def _reverts(
        self, sender: Any, method: str, *args: Any, error: str | None = None, move: str = ""
    ) -> None:
        """Asserts the call reverts (with `error`, if named; else never with a record
        mismatch) in the pending block, whose timestamp `_next_ts` pinned; counts it in STATS
        as `move`. A raw eth_call: ape's revert decoding costs ~100 ms."""
        call = {
            "from": sender.address,
            "to": self.tx.address,
            "data": getattr(self.tx, method).encode_input(*args),
        }
        data = "0x" + self.fast.revert_data(f"{method}{args}", call).hex()
        if error is not None:
            assert data.startswith(_selector(self.market, error)), (method, args, data)
        else:  # the machine's records are always current
            mismatch = _selector(self.market, "MarketJobRecordMismatch")
            assert not data.startswith(mismatch), (method, args, data)
        STATS[move or f"{method} refused"] += 1

    def _observe(self, tx: Any) -> list[int]:
        """Folds the transaction's record events into the machine's records and counts its
        payouts; returns the ids of the jobs it posted."""
        posted_ids = []
        for log in tx.events:
            if str(log.contract_address) != str(self.market.address):
                continue
            name, args = str(log.event_name), dict(log.event_arguments)
            job_id = int(args.get("jobId", 0))
            if name == "JobPosted":
                posted = fold(job_id, [(name, args)])
                assert posted is not None and job_id not in self.records
                self.records[job_id] = [posted]
                posted_ids.append(job_id)
            elif name in RECORD_EVENTS:
                self.records[job_id].append(self._record(job_id).apply(name, args))
            if name in PAYOUT_EVENTS:
                self.payouts[job_id] += 1
        return posted_ids

    def _modelled(self, job_id: int, job: JobModel) -> OnChainJob:
        """The record the model predicts for the job."""
        provider = job.provider or job.chosen
        return OnChainJob(
            job_id=job_id,
            client=job.client.address,
            payment_ntk=job.payment,
            provider=provider.address if provider else ZERO_ADDRESS,
            collateral_ntk=job.collateral,
            spec_hash=SPEC_HASH,
            result_root=job.root or bytes(32),
            state=JobState(job.state),
            accept_by=job.accept_by,
            deliver_by=job.deliver_by,
            verdict_by=job.verdict_by,
            seed_block=job.seed_block,
            shard_count=SHARDS,
            challenge_count=CHALLENGES,
            fee_bps=job.fee_bps,
            oracle_epoch=job.epoch,
            threshold=job.threshold,
        )

    def _settle_valid(self, job: JobModel, ts: int, head: int) -> bool:
        seeded = not self.randao_delay or job.seed_block in self.mixes
        return job.state == SUBMITTED and ts <= job.verdict_by and head >= job.seed_block and seeded

    def _serves(self, address: str, epoch: int) -> bool:
        term = self.terms.get(address)
        return term is not None and term[0] <= epoch and (term[1] == 0 or epoch < term[1])

    def _quorum(self, jobs: list[JobModel], signers: list[Any]) -> bool:
        """Whether `signers` may settle `jobs` together: one oracle epoch, enough of its
        oracles for the highest of the jobs' thresholds."""
        epochs = {j.epoch for j in jobs}
        if len(epochs) != 1:
            return False
        (epoch,) = epochs
        required = max(j.threshold for j in jobs)
        return len(signers) >= required and all(self._serves(s.address, epoch) for s in signers)

    def _seed(self, job: JobModel) -> bytes:
        """The job's challenge seed once its seed block exists (else any bytes: the settlement
        must revert for another reason)."""
        if job.state == SUBMITTED and self._head() >= job.seed_block:
            if self.randao_delay:
                return self.mixes.get(job.seed_block, b"\x01" * 32)
            return self.fast.block_hash(job.seed_block)
        return b"\x01" * 32

    def _apply_verdict(self, job: JobModel, accepted: bool) -> None:
        account = self.accounts[job.provider.address]
        if accepted:
            job.state = PAID
            fee = -(-job.payment * job.fee_bps // 10_000)  # rounded up, exactly
            self.fees += fee
            account.earned += job.payment - fee
            account.stake += job.collateral
        else:
            job.state = REJECTED

    # ------------------------------------------------------------ providers

    def register(self, p: int, stake: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        self._next_ts()
        if account.registered:
            self._reverts(
                provider,
                "registerProvider",
                stake * NTK,
                "uri",
                error="MarketProviderAlreadyRegistered",
            )
            return
        self.tx.registerProvider(stake * NTK, "uri", sender=provider)
        STATS["registerProvider ok"] += 1
        account.registered, account.stake = True, stake * NTK

    def add_stake(self, p: int, amount: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        self._next_ts()
        if not account.registered:
            self._reverts(provider, "addStake", amount * NTK, error="MarketProviderNotRegistered")
            return
        self.tx.addStake(amount * NTK, sender=provider)
        STATS["addStake ok"] += 1
        account.stake += amount * NTK

    def request_unbond(self, p: int, amount: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        ts = self._next_ts()
        if not account.registered or amount * NTK > account.stake:
            self._reverts(provider, "requestUnbond", amount * NTK)
            return
        self.tx.requestUnbond(amount * NTK, sender=provider)
        STATS["requestUnbond ok"] += 1
        account.stake -= amount * NTK
        account.unbonding += amount * NTK
        account.ready_at = ts + self.unbonding_delay

    def withdraw_unbonded(self, p: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        ts = self._next_ts()
        if account.unbonding == 0 or ts < account.ready_at:
            self._reverts(provider, "withdrawUnbonded")
            return
        self.tx.withdrawUnbonded(sender=provider)
        STATS["withdrawUnbonded ok"] += 1
        account.unbonding = 0

    def withdraw_earnings(self, p: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        self._next_ts()
        if account.earned == 0:
            self._reverts(provider, "withdrawEarnings", error="MarketNothingToWithdraw")
            return
        self.tx.withdrawEarnings(sender=provider)
        STATS["withdrawEarnings ok"] += 1
        account.earned = 0

    # ------------------------------------------------------------ jobs

    @rule(
        c=st.integers(0, 9),
        payment=st.integers(1, 300),
        collateral=st.integers(0, 300),
        chosen=st.none() | st.integers(0, 9),
        windows=st.tuples(st.integers(1, 4000), st.integers(1, 4000), st.integers(1, 4000)),
    )
    def post(
        self,
        c: int,
        payment: int,
        collateral: int,
        chosen: int | None,
        windows: tuple[int, int, int],
    ) -> None:
        client = self.clients[c % len(self.clients)]
        provider = None if chosen is None else self.providers[chosen % len(self.providers)]
        ts = self._next_ts()
        accept_by = ts + windows[0]
        deliver_by = accept_by + windows[1]
        verdict_by = deliver_by + windows[2]
        request = {
            "specHash": SPEC_HASH,
            "specURI": "ipfs://spec",
            "paymentNtk": payment * NTK,
            "provider": provider.address if provider else ZERO_ADDRESS,
            "collateralNtk": collateral * NTK,
            "shardCount": SHARDS,
            "challengeCount": CHALLENGES,
            "acceptBy": accept_by,
            "deliverBy": deliver_by,
            "verdictBy": verdict_by,
        }
        if (
            collateral * NTK < minimum_collateral(payment * NTK, SHARDS, CHALLENGES)
            or windows[2] < self.min_verdict_window
        ):
            self._reverts(client, "postJob", request)
            return
        tx = self.tx.postJob(request, sender=client)
        STATS["postJob ok"] += 1
        (job_id,) = self._observe(tx)
        assert job_id == len(self.jobs) + 1
        self.jobs[job_id] = JobModel(
            client,
            payment * NTK,
            provider,
            collateral * NTK,
            accept_by,
            deliver_by,
            verdict_by,
            self.fee_bps,
            self.epoch,
            self.threshold,
        )

    def _accept(self, job_id: int, job: JobModel, provider: Any) -> None:
        account = self.accounts[provider.address]
        ts = self._next_ts()
        valid = (
            job.state == POSTED
            and ts <= job.accept_by
            and (job.chosen is None or job.chosen.address == provider.address)
            and account.registered
            and account.stake >= job.collateral
        )
        if not valid:
            self._reverts(provider, "acceptJob", job_id, self._rec(job_id), error=self._gone(job))
            return
        self._observe(self.tx.acceptJob(job_id, self._rec(job_id), sender=provider))
        STATS["acceptJob ok"] += 1
        account.stake -= job.collateral
        job.provider, job.state = provider, ACCEPTED

    def _submit(self, job_id: int, job: JobModel, sender: Any, root: bytes) -> None:
        ts = self._next_ts()
        valid = (
            job.state == ACCEPTED
            and job.provider is not None
            and sender.address == job.provider.address
            and ts <= job.deliver_by
            and root != bytes(32)
        )
        args = (job_id, self._rec(job_id), root, SHARDS, "ipfs://bundle")
        if not valid:
            self._reverts(sender, "submitResult", *args, error=self._gone(job))
            return
        tx = self.tx.submitResult(*args, sender=sender)
        STATS["submitResult ok"] += 1
        self._observe(tx)
        job.state, job.root = SUBMITTED, root
        job.seed_block = tx.block_number + (self.randao_delay or 1)

    def _settle(self, job_id: int, job: JobModel, accepted: bool, signers: list[Any]) -> None:
        quorum = self._quorum([job], signers)
        verdict = Verdict(job_id, job.root or b"\x01" * 32, self._seed(job), accepted)
        domain = self._domain()
        signatures = sorted_signatures(
            [sign_verdict(s.private_key, domain, verdict) for s in signers]
        )
        head = self._head()
        ts = self._next_ts()
        args = (job_id, self._rec(job_id), accepted, signatures)
        if not (quorum and self._settle_valid(job, ts, head)):
            self._reverts(self.clients[0], "settle", *args, error=self._gone(job))
            return
        tx = self.tx.settle(*args, sender=self.clients[0])
        STATS["settle ok"] += 1
        self._observe(tx)
        self._apply_verdict(job, accepted)

    @precondition(lambda self: self.jobs)
    @rule(j=st.integers(0, 99), p=st.integers(0, 9))
    def accept(self, j: int, p: int) -> None:
        job_id, job = self._job(j, POSTED)
        self._accept(job_id, job, self.providers[p % len(self.providers)])

    @precondition(lambda self: self.jobs)
    @rule(j=st.integers(0, 99), root=st.binary(min_size=32, max_size=32), impostor=st.booleans())
    def submit(self, j: int, root: bytes, impostor: bool) -> None:
        job_id, job = self._job(j, ACCEPTED)
        sender = self.clients[0] if impostor or job.provider is None else job.provider
        self._submit(job_id, job, sender, root)

    def _signers(self, signer_mask: int | None, job: JobModel) -> list[Any]:
        """A bare quorum of `job`'s oracles (None), or any subset of the keys (a mask)."""
        if signer_mask is None:
            serving = [s.address for s in self.signers if self._serves(s.address, job.epoch)]
            current = sorted(serving, key=lambda a: int(a, 16))[: job.threshold]
            return [s for s in self.signers if s.address in current]
        return [s for i, s in enumerate(self.signers) if signer_mask >> i & 1]

    @precondition(lambda self: self.jobs)
    @rule(j=st.integers(0, 99), accepted=st.booleans(), signer_mask=st.none() | st.integers(0, 15))
    def settle(self, j: int, accepted: bool, signer_mask: int | None) -> None:
        job_id, job = self._job(j, SUBMITTED)
        self._settle(job_id, job, accepted, self._signers(signer_mask, job))

    @precondition(
        lambda self: any(j.state in (POSTED, ACCEPTED, SUBMITTED) for j in self.jobs.values())
    )
    @rule(j=st.integers(0, 99), accepted=st.booleans())
    def progress(self, j: int, accepted: bool) -> None:
        """The happy path's next move for an open job, by the right party: accept (by the
        chosen or the best-staked provider), submit (by its provider), or settle (by a bare
        quorum of current oracles, once the seed block exists)."""
        job_id, job = self._job(2 * j, POSTED, ACCEPTED, SUBMITTED)
        if job.state == POSTED:
            candidates = [job.chosen] if job.chosen else self.providers
            provider = max(candidates, key=lambda p: self.accounts[p.address].stake)
            self._accept(job_id, job, provider)
        elif job.state == ACCEPTED:
            assert job.provider is not None
            self._submit(job_id, job, job.provider, keccak(job_id.to_bytes(32, "big")))
        elif job.state == SUBMITTED:
            if self._head() < job.seed_block:
                self.advance_clock(1)
            if self.randao_delay and job.seed_block not in self.mixes:
                self._record_mix(job)
            self._settle(job_id, job, accepted, self._signers(None, job))

    @precondition(lambda self: self.randao_delay and self.jobs)
    @rule(j=st.integers(0, 99))
    def record_mix(self, j: int) -> None:
        """Anyone records a submitted job's seed block's RANDAO mix from its header (once the
        block is mined); a second record is refused."""
        self._record_mix(self._job(j, SUBMITTED)[1])

    def _record_mix(self, job: JobModel) -> None:
        block = job.seed_block
        if not block or self._head() < block:
            return
        header = header_at(self.chain.provider.web3, block)
        mix = rlp.decode(header)[13]
        assert self.recorder_tx is not None
        if block in self.mixes:
            with reverts(self.recorder.RandaoAlreadyRecorded, blockNumber=block, mix=mix):
                self.recorder_tx.record(header, sender=self.clients[-1])
            STATS["record refused (already recorded)"] += 1
            return
        self.recorder_tx.record(header, sender=self.clients[-1])
        STATS["record ok"] += 1
        self.mixes[block] = mix

    @precondition(lambda self: len(self.jobs) >= 2)
    @rule(
        picks=st.lists(st.tuples(st.integers(0, 99), st.booleans()), min_size=1, max_size=4),
        signer_mask=st.none() | st.integers(0, 15),
        mess=st.booleans(),
    )
    def settle_batch(
        self, picks: list[tuple[int, bool]], signer_mask: int | None, mess: bool
    ) -> None:
        """Without `mess`: distinct jobs awaiting a verdict where there are some. With it: any
        jobs, repeats allowed."""
        entries: list[tuple[int, bool]] = []
        for j, accepted in picks:
            job_id, _ = self._job(j if mess else 2 * j, SUBMITTED)
            if mess or all(job_id != e[0] for e in entries):
                entries.append((job_id, accepted))
        if self.randao_delay and not mess:  # seeds recorded, as oracles would first
            for job_id, _ in entries:
                job = self.jobs[job_id]
                if job.state == SUBMITTED and job.seed_block not in self.mixes:
                    self._record_mix(job)
        signers = self._signers(signer_mask, self.jobs[entries[0][0]])
        quorum = self._quorum([self.jobs[i] for i, _ in entries], signers)
        verdicts = [
            Verdict(i, self.jobs[i].root or b"\x01" * 32, self._seed(self.jobs[i]), a)
            for i, a in entries
        ]
        domain = self._domain()
        signatures = sorted_signatures(
            [sign_batch(s.private_key, domain, verdicts) for s in signers]
        )
        head = self._head()
        ts = self._next_ts()
        ids = [i for i, _ in entries]
        valid = (
            quorum
            and len(set(ids)) == len(ids)
            and all(self._settle_valid(self.jobs[i], ts, head) for i in ids)
        )
        batch = [(i, self._rec(i), a) for i, a in entries]
        if not valid:
            error = self._batch_error(ids, ts, head)
            self._reverts(self.clients[-1], "settleBatch", batch, signatures, error=error)
            return
        tx = self.tx.settleBatch(batch, signatures, sender=self.clients[-1])
        STATS["settleBatch ok"] += 1
        self._observe(tx)
        for job_id, accepted in entries:
            self._apply_verdict(self.jobs[job_id], accepted)

    def _batch_error(self, ids: list[int], ts: int, head: int) -> str | None:
        """The error an invalid batch of `ids` must give where the model knows it: the entries
        are checked in order, each against the market as the entries before it left it, so a
        job that has ended, or that an earlier entry settled, is not found."""
        settled: set[int] = set()
        for job_id in ids:
            job = self.jobs[job_id]
            if self._gone(job) or job_id in settled:
                return "MarketJobNotFound"
            if not self._settle_valid(job, ts, head):
                return None  # wrong state, past its deadline or seed pending
            if job.epoch != self.jobs[ids[0]].epoch:
                return "MarketBatchEpochMismatch"
            settled.add(job_id)
        return None  # a quorum failure

    @precondition(lambda self: self.jobs)
    @rule(j=st.integers(0, 99), by_client=st.booleans())
    def cancel(self, j: int, by_client: bool) -> None:
        job_id, job = self._job(j, POSTED)
        sender = job.client if by_client else self.providers[0]
        self._next_ts()
        if not (job.state == POSTED and by_client):
            self._reverts(sender, "cancelJob", job_id, self._rec(job_id), error=self._gone(job))
            return
        self._observe(self.tx.cancelJob(job_id, self._rec(job_id), sender=sender))
        STATS["cancelJob ok"] += 1
        job.state = CANCELLED

    @precondition(lambda self: self.jobs)
    @rule(j=st.integers(0, 99))
    def expire(self, j: int) -> None:
        job_id, job = self._job(j, POSTED, ACCEPTED, SUBMITTED)
        ts = self._next_ts()
        if job.state == POSTED and ts > job.accept_by:
            new_state = EXPIRED
        elif job.state == ACCEPTED and ts > job.deliver_by:
            new_state = DEFAULTED
        elif job.state == SUBMITTED and ts > job.verdict_by:
            new_state = LAPSED
        else:
            sender = self.signers[-1]
            self._reverts(sender, "expireJob", job_id, self._rec(job_id), error=self._gone(job))
            return
        self._observe(self.tx.expireJob(job_id, self._rec(job_id), sender=self.signers[-1]))
        STATS["expireJob ok"] += 1
        if new_state == LAPSED:
            self.accounts[job.provider.address].stake += job.collateral
        job.state = new_state

    def _forge(self, job_id: int, how: str) -> OnChainJob:
        """The job's current record changed as `how` says (see FORGERIES)."""
        current = self._record(job_id)
        others = [a for a in (*self.clients, *self.providers) if a.address != current.client]
        stranger = others[0].address
        if how == "stale":
            if len(self.records[job_id]) > 1:
                return self.records[job_id][-2]
            return self._record(job_id % len(self.jobs) + 1)  # another job's
        changes: dict[str, Any] = {
            "client": {"client": stranger},
            "payment": {"payment_ntk": current.payment_ntk + 1},
            "provider": {"provider": stranger if current.provider != stranger else ZERO_ADDRESS},
            "collateral": {"collateral_ntk": current.collateral_ntk // 2},
            "state": {"state": JobState(current.state % 9 + 1)},
            "deadline": {"verdict_by": current.verdict_by + 1},
            "seed_block": {"seed_block": current.seed_block + 1},
            "fee": {"fee_bps": current.fee_bps ^ 1},
            "epoch": {"oracle_epoch": current.oracle_epoch + 1},
            "threshold": {"threshold": 1 if current.threshold != 1 else 2},
            "spec": {"spec_hash": b"\x02" * 32},
            "root": {"result_root": bytes(31) + b"\x01"},
        }[how]
        return dataclasses.replace(current, **changes)

    @precondition(lambda self: self.jobs)
    @rule(
        j=st.integers(0, 99),
        how=st.sampled_from(FORGERIES),
        call=st.sampled_from(JOB_CALLS),
        accepted=st.booleans(),
    )
    def forged_record(self, j: int, how: str, call: str, accepted: bool) -> None:
        """A job call, by the party that may make it, with a record that is not the job's
        current one: an earlier record of the job (or another job's), or the current one with
        one field changed. The record check comes first: it reverts MarketJobRecordMismatch
        while the job is open and MarketJobNotFound once it has ended, and changes nothing."""
        job_id, job = self._job(j, POSTED, ACCEPTED, SUBMITTED)
        forged = self._forge(job_id, how)
        if forged.record() == self._rec(job_id):
            return  # another job's record that happens to equal this one's: not a forgery
        record = forged.record()
        self._next_ts()
        sender: Any = self.signers[-1]
        args: tuple[Any, ...] = (job_id, record)
        if call == "acceptJob":
            sender = job.chosen or self.providers[0]
        elif call == "submitResult":
            sender = job.provider or self.providers[0]
            args = (job_id, record, b"\x0d" * 32, SHARDS, "ipfs://bundle")
        elif call == "cancelJob":
            sender = job.client
        elif call in ("settle", "settleBatch"):
            verdict = Verdict(job_id, job.root or b"\x01" * 32, self._seed(job), accepted)
            signers = self._signers(None, job)
            if call == "settle":
                signatures = sorted_signatures(
                    [sign_verdict(s.private_key, self._domain(), verdict) for s in signers]
                )
                args = (job_id, record, accepted, signatures)
            else:
                signatures = sorted_signatures(
                    [sign_batch(s.private_key, self._domain(), [verdict]) for s in signers]
                )
                args = ([(job_id, record, accepted)], signatures)
        error = self._gone(job) or "MarketJobRecordMismatch"
        self._reverts(sender, call, *args, error=error, move=f"{call} with forged {how} refused")

    # ------------------------------------------------------------ clock and governance

    @rule(seconds=st.integers(1, 8000))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds
        self.fast.mine(self.now)

    def change_oracles(self, i: int, add: bool) -> None:
        oracle = self.signers[i]
        self._next_ts()
        if add:
            if oracle.address in self.oracles:
                self._reverts(self.owner, "addOracle", oracle, error="MarketOracleAlreadyAdded")
                return
            if oracle.address in self.terms:
                self._reverts(self.owner, "addOracle", oracle, error="MarketOracleRetired")
                return
            if 2 * self.threshold <= len(self.oracles) + 1:
                self._reverts(self.owner, "addOracle", oracle, error="MarketInvalidThreshold")
                return
            self.tx.addOracle(oracle, sender=self.owner)
            STATS["addOracle ok"] += 1
            self.oracles.add(oracle.address)
            self.epoch += 1
            self.terms[oracle.address] = [self.epoch, 0]
            return
        if oracle.address not in self.oracles or len(self.oracles) - 1 < self.threshold:
            self._reverts(self.owner, "removeOracle", oracle)
            return
        self.tx.removeOracle(oracle, sender=self.owner)
        STATS["removeOracle ok"] += 1
        self.oracles.discard(oracle.address)
        self.epoch += 1
        self.terms[oracle.address][1] = self.epoch

    def set_threshold(self, value: int) -> None:
        self._next_ts()
        if not (value <= len(self.oracles) < 2 * value):
            self._reverts(self.owner, "setThreshold", value, error="MarketInvalidThreshold")
            return
        self.tx.setThreshold(value, sender=self.owner)
        STATS["setThreshold ok"] += 1
        self.threshold = value

    def withdraw_fees(self) -> None:
        self._next_ts()
        if self.fees == 0:
            self._reverts(
                self.owner, "withdrawFees", self.treasury, error="MarketNothingToWithdraw"
            )
            return
        self.tx.withdrawFees(self.treasury, sender=self.owner)
        STATS["withdrawFees ok"] += 1
        self.fees = 0

    # ------------------------------------------------------------ rules that dispatch
    # (fewer, broader rules: hypothesis then draws each of them more often)

    @rule(
        kind=st.sampled_from(["register", "add", "unbond"]),
        p=st.integers(0, 9),
        amount=st.integers(0, 300),
    )
    def stake_action(self, kind: str, p: int, amount: int) -> None:
        if kind == "register":
            self.register(p, amount)
        elif kind == "add":
            self.add_stake(p, max(amount, 1))
        else:
            self.request_unbond(p, max(amount, 1))

    @rule(kind=st.sampled_from(["unbonded", "earnings", "fees"]), p=st.integers(0, 9))
    def withdraw(self, kind: str, p: int) -> None:
        if kind == "unbonded":
            self.withdraw_unbonded(p)
        elif kind == "earnings":
            self.withdraw_earnings(p)
        else:
            self.withdraw_fees()

    @rule(kind=st.sampled_from(["add", "remove", "threshold"]), i=st.integers(0, 4))
    def governance(self, kind: str, i: int) -> None:
        if kind == "threshold":
            self.set_threshold(i)
        else:
            self.change_oracles(i % len(self.signers), kind == "add")

    @initialize(collaterals=st.lists(st.integers(14, 200), min_size=3, max_size=3))
    def open_jobs(self, collaterals: list[int]) -> None:
        """Every example starts with three open jobs: one posted, one accepted, one submitted."""
        for c, collateral in enumerate(collaterals):
            self.post(c, 50 + c, collateral, None, (3000, 3000, 3000))
        ids = sorted(self.jobs)
        provider = self.providers[0]
        self._accept(ids[1], self.jobs[ids[1]], provider)
        self._accept(ids[2], self.jobs[ids[2]], provider)
        self._submit(ids[2], self.jobs[ids[2]], provider, b"\x42" * 32)

    # ------------------------------------------------------------ invariants

    def _domain(self) -> MarketDomain:
        return MarketDomain(self.chain_id, self.market.address)

    @invariant()
    def chain_matches_model(self) -> None:
        """The market's NTK equals its books; every job's record, as the machine folded it
        from the events, is the one the model predicts and only moves forward, and the market
        stores its digest while it is open and nothing once it has ended; the oracle set,
        threshold and epoch match. One batch read of each contract."""
        records = {job_id: self._record(job_id) for job_id in sorted(self.jobs)}
        assert set(records) == set(self.records)
        escrow = sum(r.payment_ntk for r in records.values() if r.is_open)
        locked = sum(
            r.collateral_ntk
            for r in records.values()
            if r.state in (JobState.ACCEPTED, JobState.SUBMITTED)
        )
        stake = sum(a.stake + a.unbonding for a in self.accounts.values())
        earned = sum(a.earned for a in self.accounts.values())
        (balance,) = batch_view(self.token, [("balanceOf", self.market)])
        fees, oracles, threshold, epoch, *digests = batch_view(
            self.market,
            [("feesNtk",), ("oracles",), ("threshold",), ("oracleEpoch",)]
            + [("jobDigest", job_id) for job_id in records],
        )
        assert balance == escrow + locked + stake + earned + self.fees
        assert fees == self.fees
        for (job_id, record), digest in zip(records.items(), digests, strict=True):
            assert record == self._modelled(job_id, self.jobs[job_id]), f"job {job_id}"
            expected = record.digest() if record.is_open else bytes(32)
            assert bytes(digest) == expected, f"job {job_id}: digest"
            state = int(record.state)
            assert state >= self.seen_state.get(job_id, 0), f"job {job_id} moved backwards"
            self.seen_state[job_id] = state
        assert len(oracles) == len(set(oracles))
        assert {a.lower() for a in oracles} == {str(a).lower() for a in self.oracles}
        assert threshold == self.threshold <= len(oracles) < 2 * self.threshold
        assert epoch == self.epoch

    @invariant()
    def recorded_mixes_hold(self) -> None:
        """Every mix this example recorded is the recorder's, and the market's seed for each
        submitted job whose seed block it is."""
        if not self.mixes:
            return
        blocks = sorted(self.mixes)
        held = batch_view(self.recorder, [("mixOf", b) for b in blocks])
        assert [bytes(m) for m in held] == [self.mixes[b] for b in blocks]
        for job_id, job in self.jobs.items():
            if job.state == SUBMITTED and job.seed_block in self.mixes:
                seed = batch_view(self.market, [("challengeSeed", job_id, job.seed_block)])[0]
                assert bytes(seed) == self.mixes[job.seed_block], job_id

    @invariant()
    def each_job_pays_out_at_most_once(self) -> None:
        assert all(count <= 1 for count in self.payouts.values()), self.payouts
        for job_id, count in self.payouts.items():
            assert self.jobs[job_id].state >= PAID and count == 1

    def _rebuilt_records(self) -> dict[int, OnChainJob]:
        """Every job's record rebuilt from the chain alone, as `JobReader.get` does it: the
        market's record events (one `eth_getLogs` up to the head) folded per job, each checked
        against `jobDigest` at the same block (open: the record's digest; ended: zero)."""
        head = self._head()
        raw = self.fast.rpc.call(
            "eth_getLogs", {"address": self.tx.address, "fromBlock": "0x0", "toBlock": hex(head)}
        )
        events: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for log in map(self.fast.decode_log, raw):
            assert log is not None
            if log.event_name in RECORD_EVENTS:
                job_id = int(log.event_arguments["jobId"])
                events.setdefault(job_id, []).append((log.event_name, log.event_arguments))
        records = {job_id: fold(job_id, folded) for job_id, folded in events.items()}
        ids = sorted(records)
        digests = self.fast.rpc.strict_batch(
            [
                (
                    "eth_call",
                    [
                        {"to": self.tx.address, "data": self._digest_call(job_id)},
                        hex(head),
                    ],
                )
                for job_id in ids
            ]
        )
        rebuilt = {}
        for job_id, digest in zip(ids, digests, strict=True):
            record = records[job_id]
            assert record is not None, f"job {job_id}: record events but no JobPosted"
            stored = bytes.fromhex(digest[2:])
            assert stored == (record.digest() if record.is_open else bytes(32)), job_id
            rebuilt[job_id] = record
        return rebuilt

    def _digest_call(self, job_id: int) -> str:
        selector = keccak(text="jobDigest(uint256)")[:4]
        return "0x" + (selector + job_id.to_bytes(32, "big")).hex()

    def teardown(self) -> None:
        try:
            rebuilt = self._rebuilt_records()
            assert set(rebuilt) == set(self.jobs)
            for job_id, job in self.jobs.items():
                assert rebuilt[job_id] == self._record(job_id) == self._modelled(job_id, job), (
                    job_id
                )
            for provider, on_chain in zip(self.providers, self._providers_on_chain(), strict=True):
                account = self.accounts[provider.address]
                assert (
                    on_chain["registered"],
                    on_chain["stakeNtk"],
                    on_chain["earnedNtk"],
                    on_chain["unbondingNtk"],
                ) == (account.registered, account.stake, account.earned, account.unbonding), (
                    provider.address
                )
        finally:
            super().teardown()


class RandaoMarketMachine(MarketMachine):
    """The same machine on a market seeding challenges with RANDAO mixes one block after the
    commit, recorded by anyone (`record_mix`)."""

    randao_delay = 1


@pytest.mark.parametrize(
    "machine", [MarketMachine, RandaoMarketMachine], ids=["block_hash", "randao"]
)
def test_market_state_machine(
    machine,
    project,
    chain,
    token,
    minter,
    owner,
    client,
    provider,
    provider2,
    oracles,
    outsider_key,
    treasury,
    client2,
):
    # A short unbonding delay, so that withdrawals fall within an example's clock moves.
    # A short minimum verdict window too: a fifth of the windows drawn fall below it.
    STATS.clear()
    randao = machine.randao_delay
    market = project.ComputeMarket.deploy(
        token, owner, 3_000, 250, oracles, 2, 800, randao, sender=owner
    )
    for account in (client, client2, provider, provider2):
        token.mint(account, 100_000 * NTK, sender=minter)
        token.approve(market, MAX_UINT256, sender=account)
    # One provider starts registered so that early steps already reach deep states; the
    # other registers (or not) inside the machine.
    market.registerProvider(600 * NTK, "uri", sender=provider)
    run_machine(
        machine,
        chain,
        recorder=project.RandaoRecorder.at(market.randaoRecorder()) if randao else None,
        market=market,
        token=token,
        clients=[client, client2],
        providers=[provider, provider2],
        signers=[*oracles, outsider_key],
        owner=owner,
        treasury=treasury,
        unbonding_delay=int(market.unbondingDelay()),
        fee_bps=int(market.feeBps()),
        min_verdict_window=int(market.minVerdictWindow()),
    )
    print("\nmoves over all examples:", dict(sorted(STATS.items())))
