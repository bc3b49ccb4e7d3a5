"""Model-based state machine: several clients, providers and oracles, moving clocks.

A Python model predicts every call's outcome; a call the model says is invalid must revert,
and a valid one must succeed. After every step:
- the market's NTK balance equals escrowed payments + provider stake (free, locked as
  collateral, unbonding) + provider earnings + unclaimed fees;
- every job the step touched is in the state the model says and never moved backwards;
- no job has paid out more than once;
- a settlement only ever succeeded with a quorum of current oracles.
At the end of each example every job and provider is compared with the model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule
from web3.exceptions import ContractLogicError

from neurotoken.market.ops import (
    minimum_collateral,
)
from neurotoken.market.states import PAYOUT_EVENTS
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
from tests.stateful import ChainStateMachine, batch_view, run_machine

SHARDS = 8
# IComputeMarket.Job: client, paymentNtk, provider, collateralNtk, specHash, resultRoot, state
JOB_STATE_FIELD = 6
CHALLENGES = 4  # the deterrent minimum is then a quarter of the payment (plus one wei)
#: How often each move succeeded or was refused, over all examples (printed with -s).
STATS: Counter[str] = Counter()


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

    def __init__(self) -> None:
        super().__init__()
        self.now = int(self.chain.blocks.head.timestamp)
        self.jobs: dict[int, JobModel] = {}
        self.accounts = {}
        for p in self.providers:  # the test may have registered some before the snapshot
            record = self.market.getProvider(p)
            self.accounts[p.address] = ProviderModel(
                record.registered,
                record.stakeNtk,
                record.earnedNtk,
                record.unbondingNtk,
                record.unbondReadyAt,
            )
        self.fees = 0
        self.oracles = {s.address for s in self.signers[: self.initial_oracles]}
        self.threshold = 2
        self.epoch = 1
        # oracle -> [first epoch served, first epoch not served (0: still serving)]
        self.terms: dict[str, list[int]] = {address: [1, 0] for address in self.oracles}
        self.payouts: Counter[int] = Counter()
        self.seen_state: dict[int, int] = {}
        self.touched: set[int] = set()

    # ------------------------------------------------------------ helpers

    def _next_ts(self) -> int:
        """Pins the next block's timestamp so the model knows it exactly."""
        self.now += 1
        self.chain.provider.set_timestamp(self.now)
        return self.now

    def _job(self, index: int, *states: int) -> tuple[int, JobModel]:
        """A job: for even `index`, one in `states` when there is one (so most moves are
        valid); otherwise any job (so invalid moves are tried too)."""
        candidates = sorted(self.jobs)
        if index % 2 == 0 and states:
            candidates = [i for i in candidates if self.jobs[i].state in states] or candidates
        job_id = candidates[(index // 2) % len(candidates)]
        self.touched.add(job_id)
        return job_id, self.jobs[job_id]

    def _reverts(self, sender: Any, method: str, *args: Any, error: str | None = None) -> None:
        """Asserts the call reverts (with `error`, if named) in the pending block, whose
        timestamp `_next_ts` pinned. A raw eth_call: ape's revert decoding costs ~100 ms."""
        data = getattr(self.market, method).encode_input(*args)
        call = {"from": sender.address, "to": self.market.address, "data": data}
        try:
            self.chain.provider.web3.eth.call(call, "pending")
        except ContractLogicError as exc:
            if error is not None:
                assert str(exc.data).startswith(_selector(self.market, error)), (
                    method,
                    args,
                    exc.data,
                )
            STATS[f"{method} refused"] += 1
            return
        raise AssertionError(f"{method}{args} did not revert; the model says it must")

    def _record(self, tx: Any) -> None:
        for name in PAYOUT_EVENTS:
            for log in tx.events.filter(getattr(self.market, name)):
                self.payouts[int(log.event_arguments["jobId"])] += 1

    def _settle_valid(self, job: JobModel, ts: int, head: int) -> bool:
        return job.state == SUBMITTED and ts <= job.verdict_by and head >= job.seed_block

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
        if job.state == SUBMITTED and int(self.chain.blocks.head.number) >= job.seed_block:
            return bytes(self.chain.blocks[job.seed_block].hash)
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
        self.market.registerProvider(stake * NTK, "uri", sender=provider)
        STATS["registerProvider ok"] += 1
        account.registered, account.stake = True, stake * NTK

    def add_stake(self, p: int, amount: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        self._next_ts()
        if not account.registered:
            self._reverts(provider, "addStake", amount * NTK, error="MarketProviderNotRegistered")
            return
        self.market.addStake(amount * NTK, sender=provider)
        STATS["addStake ok"] += 1
        account.stake += amount * NTK

    def request_unbond(self, p: int, amount: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        ts = self._next_ts()
        if not account.registered or amount * NTK > account.stake:
            self._reverts(provider, "requestUnbond", amount * NTK)
            return
        self.market.requestUnbond(amount * NTK, sender=provider)
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
        self.market.withdrawUnbonded(sender=provider)
        STATS["withdrawUnbonded ok"] += 1
        account.unbonding = 0

    def withdraw_earnings(self, p: int) -> None:
        provider = self.providers[p % len(self.providers)]
        account = self.accounts[provider.address]
        self._next_ts()
        if account.earned == 0:
            self._reverts(provider, "withdrawEarnings", error="MarketNothingToWithdraw")
            return
        self.market.withdrawEarnings(sender=provider)
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
            "specHash": b"\x01" * 32,
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
        tx = self.market.postJob(request, sender=client)
        STATS["postJob ok"] += 1
        job_id = int(tx.events.filter(self.market.JobPosted)[0].event_arguments["jobId"])
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
        self.touched.add(job_id)

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
            self._reverts(provider, "acceptJob", job_id)
            return
        self.market.acceptJob(job_id, sender=provider)
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
        if not valid:
            self._reverts(sender, "submitResult", job_id, root, SHARDS, "ipfs://bundle")
            return
        tx = self.market.submitResult(job_id, root, SHARDS, "ipfs://bundle", sender=sender)
        STATS["submitResult ok"] += 1
        job.state, job.root, job.seed_block = SUBMITTED, root, tx.block_number + 1

    def _settle(self, job_id: int, job: JobModel, accepted: bool, signers: list[Any]) -> None:
        quorum = self._quorum([job], signers)
        verdict = Verdict(job_id, job.root or b"\x01" * 32, self._seed(job), accepted)
        domain = self._domain()
        signatures = sorted_signatures(
            [sign_verdict(s.private_key, domain, verdict) for s in signers]
        )
        head = int(self.chain.blocks.head.number)
        ts = self._next_ts()
        if not (quorum and self._settle_valid(job, ts, head)):
            self._reverts(self.clients[0], "settle", job_id, accepted, signatures)
            return
        tx = self.market.settle(job_id, accepted, signatures, sender=self.clients[0])
        STATS["settle ok"] += 1
        self._record(tx)
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
            if int(self.chain.blocks.head.number) < job.seed_block:
                self.advance_clock(1)
            self._settle(job_id, job, accepted, self._signers(None, job))

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
        head = int(self.chain.blocks.head.number)
        ts = self._next_ts()
        ids = [i for i, _ in entries]
        valid = (
            quorum
            and len(set(ids)) == len(ids)
            and all(self._settle_valid(self.jobs[i], ts, head) for i in ids)
        )
        if not valid:
            self._reverts(self.clients[-1], "settleBatch", entries, signatures)
            return
        tx = self.market.settleBatch(entries, signatures, sender=self.clients[-1])
        STATS["settleBatch ok"] += 1
        self._record(tx)
        for job_id, accepted in entries:
            self._apply_verdict(self.jobs[job_id], accepted)

    @precondition(lambda self: self.jobs)
    @rule(j=st.integers(0, 99), by_client=st.booleans())
    def cancel(self, j: int, by_client: bool) -> None:
        job_id, job = self._job(j, POSTED)
        sender = job.client if by_client else self.providers[0]
        self._next_ts()
        if not (job.state == POSTED and by_client):
            self._reverts(sender, "cancelJob", job_id)
            return
        self._record(self.market.cancelJob(job_id, sender=sender))
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
            self._reverts(self.signers[-1], "expireJob", job_id)
            return
        self._record(self.market.expireJob(job_id, sender=self.signers[-1]))
        STATS["expireJob ok"] += 1
        if new_state == LAPSED:
            self.accounts[job.provider.address].stake += job.collateral
        job.state = new_state

    # ------------------------------------------------------------ clock and governance

    @rule(seconds=st.integers(1, 8000))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds
        self.chain.provider.set_timestamp(self.now)
        self.chain.provider.mine(1)

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
            self.market.addOracle(oracle, sender=self.owner)
            STATS["addOracle ok"] += 1
            self.oracles.add(oracle.address)
            self.epoch += 1
            self.terms[oracle.address] = [self.epoch, 0]
            return
        if oracle.address not in self.oracles or len(self.oracles) - 1 < self.threshold:
            self._reverts(self.owner, "removeOracle", oracle)
            return
        self.market.removeOracle(oracle, sender=self.owner)
        STATS["removeOracle ok"] += 1
        self.oracles.discard(oracle.address)
        self.epoch += 1
        self.terms[oracle.address][1] = self.epoch

    def set_threshold(self, value: int) -> None:
        self._next_ts()
        if not (value <= len(self.oracles) < 2 * value):
            self._reverts(self.owner, "setThreshold", value, error="MarketInvalidThreshold")
            return
        self.market.setThreshold(value, sender=self.owner)
        STATS["setThreshold ok"] += 1
        self.threshold = value

    def withdraw_fees(self) -> None:
        self._next_ts()
        if self.fees == 0:
            self._reverts(
                self.owner, "withdrawFees", self.treasury, error="MarketNothingToWithdraw"
            )
            return
        self.market.withdrawFees(self.treasury, sender=self.owner)
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
        return MarketDomain(self.chain.chain_id, self.market.address)

    @invariant()
    def chain_matches_model(self) -> None:
        """The market's NTK equals its books; touched jobs match the model and only move
        forward; the oracle set, threshold and epoch match. One batch read of each contract."""
        escrow = sum(
            j.payment for j in self.jobs.values() if j.state in (POSTED, ACCEPTED, SUBMITTED)
        )
        locked = sum(j.collateral for j in self.jobs.values() if j.state in (ACCEPTED, SUBMITTED))
        stake = sum(a.stake + a.unbonding for a in self.accounts.values())
        earned = sum(a.earned for a in self.accounts.values())
        (balance,) = batch_view(self.token, [("balanceOf", self.market)])
        touched = sorted(self.touched)
        fees, oracles, threshold, epoch, *jobs = batch_view(
            self.market,
            [("feesNtk",), ("oracles",), ("threshold",), ("oracleEpoch",)]
            + [("getJob", job_id) for job_id in touched],
        )
        assert balance == escrow + locked + stake + earned + self.fees
        assert fees == self.fees
        for job_id, job in zip(touched, jobs, strict=True):
            state = int(job[JOB_STATE_FIELD])
            assert state == self.jobs[job_id].state, f"job {job_id}"
            assert state >= self.seen_state.get(job_id, 0), f"job {job_id} moved backwards"
            self.seen_state[job_id] = state
        self.touched.clear()
        assert len(oracles) == len(set(oracles))
        assert {a.lower() for a in oracles} == {str(a).lower() for a in self.oracles}
        assert threshold == self.threshold <= len(oracles) < 2 * self.threshold
        assert epoch == self.epoch

    @invariant()
    def each_job_pays_out_at_most_once(self) -> None:
        assert all(count <= 1 for count in self.payouts.values()), self.payouts
        for job_id, count in self.payouts.items():
            assert self.jobs[job_id].state >= PAID and count == 1

    def teardown(self) -> None:
        try:
            for job_id, job in self.jobs.items():
                on_chain = self.market.getJob(job_id)
                assert (int(on_chain.state), on_chain.client) == (job.state, job.client.address)
            for address, account in self.accounts.items():
                on_chain = self.market.getProvider(address)
                assert (
                    on_chain.registered,
                    on_chain.stakeNtk,
                    on_chain.earnedNtk,
                    on_chain.unbondingNtk,
                ) == (account.registered, account.stake, account.earned, account.unbonding), address
        finally:
            super().teardown()


def test_market_state_machine(
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
    market = project.ComputeMarket.deploy(token, owner, 3_000, 250, oracles, 2, 800, sender=owner)
    for account in (client, client2, provider, provider2):
        token.mint(account, 100_000 * NTK, sender=minter)
        token.approve(market, MAX_UINT256, sender=account)
    # One provider starts registered so that early steps already reach deep states; the
    # other registers (or not) inside the machine.
    market.registerProvider(600 * NTK, "uri", sender=provider)
    run_machine(
        MarketMachine,
        chain,
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
