"""Settlement, the oracle's step 5 (see `oracle.service`): the rules each job was posted
under, the on-chain oracle set, peers' signatures, which jobs have a quorum, whose turn it
is to transmit, and the settlement transactions with what became of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from web3.exceptions import ContractCustomError, ContractLogicError

from neurotoken.chain.sender import Call, Outcome, Sender
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, SignedVerdict, Verdict
from oracle import peers
from oracle.chain import MarketChain, revert_data
from oracle.errors import ConflictingVerdictError
from oracle.keys import OracleKey
from oracle.logs import event
from oracle.metrics import Metrics
from oracle.settings import OracleSettings
from oracle.store import SEEN, SIGNED, TX_DROPPED, TX_MINED, VERIFIED, VERIFYING, JobRow, Store
from oracle.transmit_turns import transmit_order, turn_watch

UPKEEP_KINDS = ("fix_seed", "expire")
"""Transaction kinds that keep jobs moving without settling them (see `oracle.upkeep.Upkeep`)."""


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
    _serves: dict[tuple[int, str], bool] = field(init=False, default_factory=dict)
    """(epoch, address) -> may sign"""
    _peer_polled: dict[int, float] = field(init=False, default_factory=dict)
    _ready_since: dict[int, float] = field(init=False, default_factory=dict)
    _oracle_set: list[str] | None = field(init=False, default=None)

    def new_tick(self) -> None:
        """Forgets the oracle set read during the last tick."""
        self._oracle_set = None

    def job_rule(self, job_id: int) -> tuple[int, int]:
        """(oracle epoch, threshold) of a job: fixed when it was posted, so read once."""
        rule = self._job_rules.get(job_id)
        if rule is None:
            onchain = self.chain.get_job(job_id)
            rule = (onchain.oracle_epoch, onchain.threshold)
            self._job_rules[job_id] = rule
        return rule

    def serves(self, job_id: int, address: str) -> bool:
        """Whether `address` may sign for `job_id` (an oracle of the job's epoch; that never
        changes, so each answer is kept)."""
        epoch, _ = self.job_rule(job_id)
        key = (epoch, address)
        value = self._serves.get(key)
        if value is None:
            value = self.chain.is_job_oracle(job_id, address)
            self._serves[key] = value
        return value

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
            _, threshold = self.job_rule(job.job_id)

            def serves(address: str, job_id: int = job.job_id) -> bool:
                return self.serves(job_id, address)

            quorum = peers.assemble(
                self.signed_verdicts(job.job_id, root), threshold, serves, own_accepted
            )
            due = now - self._peer_polled.get(job.job_id, 0.0) >= self.settings.poll_interval_s
            if quorum is None and self.settings.peers and due:
                self._peer_polled[job.job_id] = now
                self.gather(job)
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
        self, data: bytes, job_ids: Iterable[int], what: str = "settlement"
    ) -> int | None:
        """Gas for a market call with headroom, or None (logged) when it would revert; a
        settlement that would revert brings its jobs' rows in line with the chain."""
        try:
            gas = int(
                self.chain.w3.eth.estimate_gas(
                    {"from": self.key.address, "to": self.chain.address, "data": data}
                )
            )
        except (ContractCustomError, ContractLogicError) as exc:
            decoded = self.chain.decode_error(revert_data(exc))
            event(
                self.log,
                f"{what}_would_revert",
                level=30,
                jobs=list(job_ids),
                error=str(decoded or exc)[:200],
            )
            if what == "settlement":
                for job_id in job_ids:
                    self.reconcile(job_id)
            return None
        return gas + gas // 4 + 20_000

    def _settle_one(self, item: Ready, head: int) -> None:
        job_id = item.job.job_id
        data = self.chain.settle_data(job_id, item.quorum.accepted, list(item.quorum.signatures))
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
        entries = [(v.job_id, v.accepted) for v in verdicts]
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

    def reconcile(self, job_id: int) -> None:
        """Brings a job's row in line with the chain after a failed or refused settlement."""
        onchain = self.chain.get_job(job_id)
        if onchain.state in (JobState.PAID, JobState.REJECTED):
            outcome = "paid" if onchain.state == JobState.PAID else "rejected"
            if self.store.settled_elsewhere(job_id, outcome, None):
                event(self.log, "settled_by_other", job=job_id, outcome=outcome)
        elif onchain.state == JobState.LAPSED:
            self.store.back_to_signed(job_id)
            self.store.expire(job_id, ["LAPSED"])
        elif onchain.state == JobState.SUBMITTED:
            self.store.back_to_signed(job_id)

    def apply_outcomes(self, outcomes: list[Outcome]) -> None:
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
                    onchain = self.chain.get_job(job_id)
                    result = {JobState.PAID: "paid", JobState.REJECTED: "rejected"}.get(
                        onchain.state
                    )
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
