"""Settlement, the oracle's step 5 (see `oracle.service`): the rules each job was posted
under, the on-chain oracle set, peers' signatures, which jobs have a quorum, whose turn it
is to transmit, and the settlement transactions with what became of them.

Every settlement carries the job's current record, read at the head just before its
calldata is built and checked against what the oracle verified (the root and seed block of
its confirmed ResultSubmitted). A record the node cannot give yet (`JobRecordError`: its
logs lag its state, or a reorg) leaves the job for the next tick; a job that has ended by
then (another oracle settled it: the market answers `MarketJobNotFound`) is recorded
settled elsewhere, never sent again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from web3.exceptions import ContractCustomError, ContractLogicError

from neurotoken.chain.sender import Call, Outcome, Sender
from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, SignedVerdict, Verdict
from oracle import peers
from oracle.chain import JobRecordError, MarketChain, revert_data
from oracle.errors import ConflictingVerdictError
from oracle.keys import OracleKey
from oracle.logs import event
from oracle.metrics import Metrics
from oracle.settings import OracleSettings
from oracle.store import (
    SEEN,
    SIGNED,
    SUBMITTED,
    TX_DROPPED,
    TX_MINED,
    VERIFIED,
    VERIFYING,
    JobRow,
    Store,
)
from oracle.transmit_turns import transmit_order, turn_watch

UPKEEP_KINDS = ("fix_seed", "record_randao", "expire")
"""Transaction kinds that keep jobs moving without settling them (see `oracle.upkeep.Upkeep`)."""

SETTLED_STATES = {JobState.PAID: "paid", JobState.REJECTED: "rejected"}
"""The states a settlement leaves, and the outcome the store records for each."""

JOB_ENDED = "MarketJobNotFound"
"""What the market answers for a call about a job that has ended (its digest is cleared):
for a settlement, the benign news that another transaction settled (or lapsed) it first."""
MIX_RECORDED = "RandaoAlreadyRecorded"
"""What the RandaoRecorder answers for a block already recorded: another party came first."""


@dataclass(frozen=True)
class Ready:
    job: JobRow
    quorum: peers.Quorum
    own_accepted: bool


@dataclass(eq=False, kw_only=True)
class Settlement:
    """Gathers signatures into quorums and settles jobs, in turn with the other oracles.

    Exists only with a key (a dry-run oracle never transmits). The oracle set is read at
    most once per tick: `new_tick` forgets the last one."""

    store: Store
    chain: MarketChain
    key: OracleKey
    sender: Sender
    domain: MarketDomain
    settings: OracleSettings
    metrics: Metrics
    session: requests.Session
    peer_pool: ThreadPoolExecutor
    log: logging.Logger
    _job_rules: dict[int, tuple[int, int]] = field(init=False, default_factory=dict)
    """job -> (oracle epoch, threshold)"""
    _peer_polled: dict[int, float] = field(init=False, default_factory=dict)
    _ready_since: dict[int, float] = field(init=False, default_factory=dict)
    _oracle_set: list[str] | None = field(init=False, default=None)

    def new_tick(self) -> None:
        """Forgets the oracle set read during the last tick."""
        self._oracle_set = None

    def job_rule(self, job_id: int) -> tuple[int, int]:
        """(oracle epoch, threshold) of a job: fixed when it was posted, so read once.
        Raises JobRecordError while the node cannot give the job's record."""
        rule = self._job_rules.get(job_id)
        if rule is None:
            self._learn_rule(self.read_job(job_id))
            rule = self._job_rules[job_id]
        return rule

    def read_job(self, job_id: int) -> OnChainJob:
        """The job's record at the head, rebuilt from its events since the block it was
        posted in (as the store has it). Raises JobRecordError while the node cannot give
        it."""
        return self.chain.get_job(job_id, from_block=self.store.posted_block(job_id))

    def _learn_rule(self, onchain: OnChainJob) -> None:
        self._job_rules.setdefault(onchain.job_id, (onchain.oracle_epoch, onchain.threshold))

    def serves(self, job_id: int, address: str) -> bool:
        """Whether `address` may sign for `job_id` (an oracle of the job's epoch; that never
        changes, so `MarketChain.is_epoch_oracle` keeps each answer)."""
        epoch, _ = self.job_rule(job_id)
        return self.chain.is_epoch_oracle(epoch, address)

    def _record_unavailable(self, job_id: int, exc: Exception, step: str) -> None:
        """Logs a job record the node could not give (tried again next tick)."""
        self.metrics.inc("oracle_rpc_errors_total")
        event(
            self.log,
            "job_record_unavailable",
            level=30,
            job=job_id,
            step=step,
            error=str(exc)[:200],
        )

    def current_record(self, row: JobRow) -> OnChainJob | None:
        """The job's current record, read at the head, when a settlement of what this
        oracle verified can still be sent with it: the job still awaits its verdict, on the
        root and seed block the oracle judged. None otherwise (logged; a job that ended is
        brought in line with the chain, one the node cannot give is tried next tick)."""
        try:
            onchain = self.read_job(row.job_id)
        except JobRecordError as exc:
            self._record_unavailable(row.job_id, exc, "settle")
            return None
        self._learn_rule(onchain)
        if not onchain.is_open:
            self._reconcile_with(onchain)
            return None
        if (
            onchain.state != JobState.SUBMITTED
            or onchain.result_root != row.result_root
            or onchain.seed_block != row.seed_block
        ):
            # The head disagrees with the confirmed logs the oracle verified: a reorg is under
            # way. Ingestion brings the row in line once it is confirmed either way.
            event(
                self.log,
                "record_differs",
                level=30,
                job=row.job_id,
                state=onchain.state.name,
                root=onchain.result_root,
                seed_block=onchain.seed_block,
            )
            return None
        return onchain

    def oracle_set(self) -> list[str]:
        """The on-chain oracle set, sorted; read at most once per tick."""
        if self._oracle_set is None:
            self._oracle_set = self.chain.oracles()
        return self._oracle_set

    def signed_verdicts(self, job_id: int, root: bytes) -> list[SignedVerdict]:
        own = self.store.verdict(job_id, root)
        if own is None or own.seed is None:
            return []
        return [
            SignedVerdict(
                domain=self.domain,
                kind="verdict",
                verdicts=(Verdict(job_id, root, own.seed, row.accepted),),
                signer=row.signer,
                signature=row.signature,
            )
            for row in self.store.signatures(job_id, root)
        ]

    def gather(self, job: JobRow) -> None:
        """Asks the peers for their signatures on `job` and stores the good ones."""
        assert job.result_root is not None
        reports = peers.collect(
            self.session,
            self.settings.peers,
            job.job_id,
            self.domain,
            self.settings.peer_timeout_s,
            self.peer_pool,
        )
        own = self.store.verdict(job.job_id, job.result_root)
        for report in reports:
            for reason in report.garbage:
                self.metrics.inc("oracle_peer_garbage_total")
                event(
                    self.log,
                    "peer_garbage",
                    level=30,
                    peer=report.peer,
                    job=job.job_id,
                    error=reason,
                )
            for signed in report.signed:
                verdict = signed.verdicts[0]
                if verdict.result_root != job.result_root:
                    continue  # a signature over another root is of no use to this job
                if own is None or verdict.seed != own.seed:
                    continue  # a signature over another challenge draw cannot settle it
                if not self.serves(job.job_id, signed.signer):
                    self.metrics.inc("oracle_peer_garbage_total")
                    event(
                        self.log,
                        "peer_garbage",
                        level=30,
                        peer=report.peer,
                        job=job.job_id,
                        error=f"signer {signed.signer} is not an oracle",
                    )
                    continue
                try:
                    self.store.record_signature(
                        job.job_id,
                        verdict.result_root,
                        signed.signer,
                        verdict.accepted,
                        signed.signature,
                        own=False,
                    )
                except ConflictingVerdictError as exc:
                    self.metrics.inc("oracle_peer_garbage_total")
                    event(
                        self.log,
                        "peer_equivocated",
                        level=40,
                        peer=report.peer,
                        signer=signed.signer,
                        job=job.job_id,
                        error=str(exc),
                    )

    def ready_jobs(self, chain_now: int) -> list[Ready]:
        out: list[Ready] = []
        now = time.monotonic()
        for job in self.store.jobs([SIGNED]):
            root = job.result_root
            spec = self.store.spec(job.job_id)
            if root is None or spec is None or chain_now > spec.verdict_by:
                continue
            mine = [
                s
                for s in self.store.signatures(job.job_id, root, own=True)
                if s.signer == self.key.address
            ]
            if not mine:
                continue
            own_accepted = mine[0].accepted
            try:
                _, threshold = self.job_rule(job.job_id)
            except JobRecordError as exc:
                self._record_unavailable(job.job_id, exc, "rules")
                continue

            def serves(address: str, job_id: int = job.job_id) -> bool:
                return self.serves(job_id, address)

            quorum = peers.assemble(
                self.signed_verdicts(job.job_id, root), threshold, serves, own_accepted
            )
            due = now - self._peer_polled.get(job.job_id, 0.0) >= self.settings.poll_interval_s
            if quorum is None and self.settings.peers and due:
                self._peer_polled[job.job_id] = now
                self.gather(job)  # the job's rule is known by now: `serves` reads no record
                quorum = peers.assemble(
                    self.signed_verdicts(job.job_id, root), threshold, serves, own_accepted
                )
            if quorum is not None:
                out.append(Ready(job, quorum, own_accepted))
        return out

    def transmit(self, head: int, chain_now: int) -> None:
        ready = [r for r in self.ready_jobs(chain_now) if self._my_turn(r)]
        if not ready or self._hold_for_batch(ready):
            return
        remaining = list(ready)
        # one batch settles jobs of one oracle epoch (the contract checks the signers once)
        epoch = self.job_rule(ready[0].job.job_id)[0]
        batchable = [
            r
            for r in ready
            if r.quorum.accepted == r.own_accepted and self.job_rule(r.job.job_id)[0] == epoch
        ]
        if self.settings.batch_max > 1 and len(batchable) >= 2:
            chunk = batchable[: self.settings.batch_max]
            if self._settle_batch(chunk, head):
                done = {r.job.job_id for r in chunk}
                remaining = [r for r in remaining if r.job.job_id not in done]
        for item in remaining:
            self._settle_one(item, head)

    def _hold_for_batch(self, ready: list[Ready]) -> bool:
        """With `batch_wait_s` set, waits (at most that long after the first job became
        ready) while more jobs are on their way, to settle them in one transaction."""
        wait = self.settings.batch_wait_s
        if wait <= 0 or len(ready) >= self.settings.batch_max:
            return False
        oldest = min(self._ready_since.get(r.job.job_id, time.monotonic()) for r in ready)
        if time.monotonic() - oldest >= wait:
            return False
        ready_ids = {r.job.job_id for r in ready}
        coming = [j for j in self.store.jobs([SEEN, VERIFYING, VERIFIED, SIGNED])
                  if j.job_id not in ready_ids]  # fmt: skip
        return bool(coming)

    def _my_turn(self, item: Ready) -> bool:
        """Whether this oracle should transmit `item` now (see `_turn`)."""
        since = self._ready_since.setdefault(item.job.job_id, time.monotonic())
        return self._turn(item.job.job_id, since, lambda: self._verifiable_for(item.job))

    def _verifiable_for(self, job: JobRow) -> float | None:
        """Seconds since the job could first be verified by anyone: since the block that
        confirms its seed block (by that block's timestamp). None when not known."""
        if job.seed_block is None:
            return None
        info = self.chain.block(job.seed_block + self.settings.confirmations)
        return None if info is None else max(0.0, time.time() - info.timestamp)

    def _turn(
        self, job_id: int, since: float, age: Callable[[], float | None] = lambda: None
    ) -> bool:
        """Whether this oracle's turn to send a transaction for `job_id` has come, `since`
        (monotonic) being when it first could and `age()` how long ago any oracle first
        could have (when known).

        Every oracle ranks the whole on-chain oracle set, sorted by address and rotated by
        the job id, so all of them agree on the order whatever signatures each has seen:
        rank 0 sends at once, rank r waits `r` backup delays (a transaction goes out once
        when all are up, and still goes out when some are down or disagree); see
        `turn_watch` for when it first looks at the node's pool."""
        order = transmit_order(self.oracle_set(), job_id)
        verdict = turn_watch(
            order,
            self.key.address,
            elapsed=time.monotonic() - since,
            delay=self.settings.transmit_backup_delay_s,
            age=age,
            margin=self.settings.poll_interval_s,
        )
        if isinstance(verdict, bool):
            return verdict
        pending = [a for a in verdict if self.chain.has_pending(a)]
        if pending:
            event(self.log, "transmit_deferred", job=job_id, pending=pending)
        return not pending

    def _estimate(
        self, data: bytes, job_ids: Iterable[int], what: str = "settlement", to: str | None = None
    ) -> int | None:
        """Gas for a market call (or a call to `to`) with headroom, or None (logged) when it
        would revert; a settlement that would revert brings its jobs' rows in line with the
        chain.

        A job that has ended by now (`MarketJobNotFound`: another oracle's settlement, or a
        lapse, came first) or a mix recorded by now (`RandaoAlreadyRecorded`) is the benign
        outcome of a race every oracle set runs, logged at info; any other revert is a
        warning."""
        try:
            gas = int(
                self.chain.w3.eth.estimate_gas(
                    {"from": self.key.address, "to": to or self.chain.address, "data": data}
                )
            )
        except (ContractCustomError, ContractLogicError) as exc:
            decoded = self.chain.decode_error(revert_data(exc))
            ended = decoded is not None and decoded.name == JOB_ENDED
            raced = ended or (decoded is not None and decoded.name == MIX_RECORDED)
            event(
                self.log,
                f"{what}_would_revert",
                level=20 if raced else 30,
                jobs=list(job_ids),
                error=str(decoded or exc)[:200],
                job_ended=ended,
            )
            if what == "settlement":
                for job_id in job_ids:
                    self.reconcile(job_id)
            return None
        return gas + gas // 4 + 20_000

    def _settle_one(self, item: Ready, head: int) -> None:
        job_id = item.job.job_id
        onchain = self.current_record(item.job)
        if onchain is None:
            return
        data = self.chain.settle_data(onchain, item.quorum.accepted, list(item.quorum.signatures))
        gas = self._estimate(data, [job_id])
        if gas is None:
            return
        call = Call(self.chain.address, data, gas)
        tx_id = self.sender.send(call, "settle", [job_id], head).tx.id
        self.metrics.inc("oracle_transactions_sent_total")
        event(
            self.log,
            "settlement_sent",
            tx_id=tx_id,
            job=job_id,
            accepted=item.quorum.accepted,
            signers=list(item.quorum.signers),
        )

    def _settle_batch(self, chunk: list[Ready], head: int) -> bool:
        records = [self.current_record(r.job) for r in chunk]
        current = [(r, job) for r, job in zip(chunk, records, strict=True) if job is not None]
        if len(current) < 2:
            return False  # what is left goes one by one (each reads its record again)
        chunk = [r for r, _ in current]
        verdicts = [r.quorum.verdicts[0] for r in chunk]
        signed = [self.key.sign_batch(self.domain, verdicts)]
        for peer in self.settings.peers:
            got = peers.request_batch(
                self.session, peer, self.domain, verdicts, self.settings.peer_timeout_s
            )
            if got is not None:
                signed.append(got)
        first = chunk[0].job.job_id
        threshold = max(self.job_rule(r.job.job_id)[1] for r in chunk)
        quorum = peers.assemble(signed, threshold, lambda address: self.serves(first, address))
        if quorum is None:
            event(
                self.log,
                "batch_quorum_missing",
                jobs=[v.job_id for v in verdicts],
                signers=len(signed),
            )
            return False
        entries = [(job, v.accepted) for (_, job), v in zip(current, verdicts, strict=True)]
        data = self.chain.settle_batch_data(entries, list(quorum.signatures))
        gas = self._estimate(data, [])
        if gas is None:
            return False
        job_ids = [v.job_id for v in verdicts]
        call = Call(self.chain.address, data, gas)
        tx_id = self.sender.send(call, "settle_batch", job_ids, head).tx.id
        self.metrics.inc("oracle_transactions_sent_total")
        event(
            self.log,
            "settlement_sent",
            tx_id=tx_id,
            jobs=job_ids,
            batch=True,
            signers=list(quorum.signers),
        )
        return True

    def reconcile(self, job_id: int) -> bool:
        """Brings a job's row in line with the chain after a failed or refused settlement.
        False (logged) when the node cannot give the job's record: the row stays as it is
        and `follow_up` tries again next tick."""
        try:
            onchain = self.read_job(job_id)
        except JobRecordError as exc:
            self._record_unavailable(job_id, exc, "reconcile")
            return False
        self._reconcile_with(onchain)
        return True

    def _reconcile_with(self, onchain: OnChainJob) -> None:
        job_id = onchain.job_id
        outcome = SETTLED_STATES.get(onchain.state)
        if outcome is not None:
            # Our settlement failed or was refused, and the chain has the job settled: another
            # transaction did it. Said every time (the store may have it from the logs first).
            recorded = self.store.settled_elsewhere(job_id, outcome, None)
            event(self.log, "settled_by_other", job=job_id, outcome=outcome, recorded=recorded)
        elif onchain.state == JobState.LAPSED:
            self.store.back_to_signed(job_id)
            self.store.expire(job_id, ["LAPSED"])
        elif onchain.state == JobState.SUBMITTED:
            self.store.back_to_signed(job_id)

    def follow_up(self) -> None:
        """Reconciles each job left `submitted` with no transaction of ours pending for it:
        its transaction ended (reverted, dropped, or an upkeep call) while the job's
        record could not be read, or before a crash. Nothing to do in the common case."""
        pending = {j for tx in self.sender.pending() for j in tx.job_ids}
        for row in self.store.jobs([SUBMITTED], final=False):
            if row.job_id not in pending:
                self.reconcile(row.job_id)

    def apply_outcomes(self, outcomes: list[Outcome]) -> None:
        self._apply(outcomes)
        self.follow_up()

    def _apply(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.tx.kind in UPKEEP_KINDS:
                # what it changed reaches the store through ingestion, confirmed
                event(
                    self.log,
                    "upkeep_outcome",
                    kind=outcome.tx.kind,
                    jobs=outcome.tx.job_ids,
                    status=outcome.status,
                    tx=outcome.tx_hash,
                )
                continue
            for job_id in outcome.tx.job_ids:
                if outcome.status == TX_MINED and outcome.tx_hash is not None:
                    # mined, not reverted: it settled the job. Which way, the record tells
                    # (or, while the node cannot give it, the JobPaid/JobRejected log will).
                    try:
                        result = SETTLED_STATES.get(self.read_job(job_id).state)
                    except JobRecordError as exc:
                        self._record_unavailable(job_id, exc, "receipt")
                        result = None
                    if self.store.settled_by_receipt(
                        job_id, result, outcome.tx_hash, outcome.block_number or 0
                    ):
                        self.metrics.inc("oracle_settlements_total")
                        event(self.log, "settled", job=job_id, outcome=result, tx=outcome.tx_hash)
                elif outcome.status == TX_DROPPED:
                    self.reconcile(job_id)
                    self.store.back_to_signed(job_id)
                else:
                    self.reconcile(job_id)
