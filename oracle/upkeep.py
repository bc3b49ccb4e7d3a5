"""Deadlines and upkeep, the oracle's steps 6 and 7 (see `oracle.service`): mark jobs
whose verdict deadline passed as ``expired``; then, in turn with the other oracles, send the
calls anyone may make that keep jobs moving (``fixChallengeSeed``, or on a market seeding with
RANDAO the RandaoRecorder's ``record`` of a seed block's header, and ``expireJob``).

Each call carries the job's current record, read at the head right before the call is built
(the same read that says whether the call is due); a record the node cannot give yet
(`JobRecordError`) leaves the job for the next tick."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from neurotoken.chain.headers import BlockHeaderError
from neurotoken.chain.sender import Call, Sender
from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState
from oracle.chain import JobRecordError, MarketChain
from oracle.logs import event
from oracle.metrics import Metrics
from oracle.settings import OracleSettings
from oracle.settlement import Settlement
from oracle.store import EXPIRED, SEEN, SIGNED, VERIFIED, VERIFYING, Store


@dataclass(eq=False, kw_only=True)
class Deadlines:
    """Marks jobs whose verdict deadline passed as ``expired`` (in dry-run too)."""

    store: Store
    log: logging.Logger

    def expire(self, chain_now: int) -> None:
        for job in self.store.jobs([SEEN, VERIFIED, SIGNED]):
            spec = self.store.spec(job.job_id)
            overdue = spec is not None and chain_now > spec.verdict_by
            if overdue and self.store.expire(job.job_id, ["VERDICT_DEADLINE_PASSED"]):
                event(self.log, "expired", level=30, job=job.job_id, state=job.state)


@dataclass(eq=False, kw_only=True)
class Upkeep:
    """The upkeep calls, sent in turn with the other oracles (see `Settlement._turn`).

    Exists only with a key, as `Settlement` does."""

    store: Store
    chain: MarketChain
    sender: Sender
    settlement: Settlement
    settings: OracleSettings
    metrics: Metrics
    log: logging.Logger
    _upkeep_since: dict[tuple[str, int], float] = field(init=False, default_factory=dict)
    """(kind, job) -> when (monotonic) the call could first be sent"""
    _seed_fix_sent: dict[int, int] = field(init=False, default_factory=dict)
    """job -> head when its fixChallengeSeed went"""
    _seed_settled: set[int] = field(init=False, default_factory=set)
    """jobs whose seed is fixed or beyond fixing"""
    _mix_sent: dict[int, int] = field(init=False, default_factory=dict)
    """seed block -> head when its RandaoRecorder `record` went (or its header failed)"""
    _deliver_by: dict[int, int] = field(init=False, default_factory=dict)
    """accepted job -> its delivery deadline"""
    _ended: set[int] = field(init=False, default_factory=set)
    """ended unsubmitted; its log is yet to be ingested"""

    def upkeep(self, head: int, chain_now: int) -> None:
        """Sends, in turn with the other oracles, the calls anyone may make that keep jobs
        moving: on a market seeding with block hashes, `fixChallengeSeed` for an unsettled
        job whose seed block grew old; `expireJob` for one whose verdict deadline passed
        unsettled and for one that nobody accepted, or nobody delivered, in time."""
        now = time.monotonic()
        busy = {(t.kind, j) for t in self.sender.pending() for j in t.job_ids}
        if not self.chain.randao_delay:
            self._fix_old_seeds(head, busy, now)
        for job in self.store.jobs([EXPIRED], final=False):
            if ("expire", job.job_id) in busy:
                continue
            spec = self.store.spec(job.job_id)
            if spec is None or chain_now <= spec.verdict_by:
                continue
            since = self._upkeep_since.setdefault(("expire", job.job_id), now)
            if not self.settlement._turn(job.job_id, since):
                continue
            onchain = self._record(job.job_id, "expire")
            if onchain is None or onchain.state != JobState.SUBMITTED:
                continue  # lapsed or settled already: ingestion will make it final
            self._upkeep_send("expire", job.job_id, self.chain.expire_data(onchain), head)
        self._expire_unsubmitted(head, chain_now, busy, now)

    def _fix_old_seeds(self, head: int, busy: set[tuple[str, int]], now: float) -> None:
        """`fixChallengeSeed` for each unsettled job whose seed block is
        `seed_fix_after_blocks` old, so that its one challenge draw outlives EIP-2935 history.
        A call that would revert (fixed already, or the seed lost) is not sent."""
        patience = self.settings.confirmations + 4 * self.settings.stuck_after_blocks
        for job in self.store.jobs([SEEN, VERIFYING, VERIFIED, SIGNED]):
            job_id = job.job_id
            if job.seed_block is None or job_id in self._seed_settled:
                continue
            if head - job.seed_block < self.settings.seed_fix_after_blocks:
                continue
            sent = self._seed_fix_sent.get(job_id)
            if ("fix_seed", job_id) in busy or (sent is not None and head - sent <= patience):
                continue  # sent; on its way to confirmation
            if not self.settlement._turn(
                job_id, self._upkeep_since.setdefault(("fix_seed", job_id), now)
            ):
                continue
            onchain = self._record(job_id, "fix_seed")
            if onchain is None:
                continue
            if onchain.state != JobState.SUBMITTED:
                self._seed_settled.add(job_id)
                continue
            if self._upkeep_send("fix_seed", job_id, self.chain.fix_seed_data(onchain), head):
                self._seed_fix_sent[job_id] = head
            else:
                self._seed_settled.add(job_id)  # fixed already (or lost): nothing to send

    def record_mixes(self, head: int) -> None:
        """On a RANDAO-seeded market, the RandaoRecorder's `record` of the header of each
        confirmed seed block whose mix nobody recorded yet, for the jobs awaiting verification
        (their seed is that mix: every oracle that transmits does this, `upkeep` or not), in
        turn with the other oracles. A header the node's block cannot rebuild is logged (an
        error: this oracle cannot record on this chain) and tried again after the patience
        of a stuck transaction."""
        if not self.chain.randao_delay:
            return
        now = time.monotonic()
        busy = {(t.kind, j) for t in self.sender.pending() for j in t.job_ids}
        patience = self.settings.confirmations + 4 * self.settings.stuck_after_blocks
        safe = head - self.settings.confirmations
        self._mix_sent = {b: h for b, h in self._mix_sent.items() if head - h <= patience}
        for job in self.store.jobs([SEEN]):
            block = job.seed_block
            if block is None or block > safe:
                continue
            sent = self._mix_sent.get(block)
            if ("record_randao", job.job_id) in busy or (
                sent is not None and head - sent <= patience
            ):
                continue
            if self.chain.randao_recorded(block):  # asked each tick: a reorg may take a record
                continue
            since = self._upkeep_since.setdefault(("record_randao", job.job_id), now)
            if not self.settlement._turn(job.job_id, since):
                continue
            try:
                data = self.chain.record_randao_data(block)
            except BlockHeaderError as exc:
                event(
                    self.log, "randao_header_unavailable", level=40, job=job.job_id, error=str(exc)
                )
                self._mix_sent[block] = head
                continue
            to = self.chain.recorder.address
            if self._upkeep_send("record_randao", job.job_id, data, head, to=to):
                self._mix_sent[block] = head

    def _expire_unsubmitted(
        self, head: int, chain_now: int, busy: set[tuple[str, int]], now: float
    ) -> None:
        """`expireJob` for jobs posted (as ingested) whose acceptance deadline passed with no
        result: still posted (refund), or accepted and past the delivery deadline (default).
        The chain is asked only for jobs past a deadline, once per poll until it is due."""
        overdue = self.store.unsubmitted_past(chain_now)
        listed = {u.job_id for u in overdue}
        self._deliver_by = {j: t for j, t in self._deliver_by.items() if j in listed}
        self._ended &= listed
        for item in overdue:
            job_id = item.job_id
            key = ("expire", job_id)
            if key in busy or job_id in self._ended:
                continue
            if chain_now <= self._deliver_by.get(job_id, 0):
                continue  # accepted; its delivery deadline is still ahead
            if key not in self._upkeep_since:
                if self._expirable(job_id, chain_now) is None:
                    continue
                self._upkeep_since[key] = now
            if not self.settlement._turn(job_id, self._upkeep_since[key]):
                continue
            onchain = self._expirable(job_id, chain_now)  # the turn may have come late
            if onchain is not None:
                self._upkeep_send("expire", job_id, self.chain.expire_data(onchain), head)

    def _record(self, job_id: int, kind: str) -> OnChainJob | None:
        """The job's current record, or None (logged) while the node cannot give it."""
        try:
            return self.settlement.read_job(job_id)
        except JobRecordError as exc:
            self.settlement._record_unavailable(job_id, exc, kind)
            return None

    def _expirable(self, job_id: int, chain_now: int) -> OnChainJob | None:
        """The job's current record when `expireJob(job_id)` is due by the chain's state (as
        at `chain_now`), else None."""
        onchain = self._record(job_id, "expire")
        if onchain is None:
            return None
        if onchain.state == JobState.POSTED:
            return onchain if chain_now > onchain.accept_by else None
        if onchain.state == JobState.ACCEPTED:
            if chain_now > onchain.deliver_by:
                return onchain
            self._deliver_by[job_id] = onchain.deliver_by
            return None
        if onchain.state != JobState.SUBMITTED:  # ended; ingestion will close its spec
            self._ended.add(job_id)
        return None

    def _upkeep_send(
        self, kind: str, job_id: int, data: bytes, head: int, to: str | None = None
    ) -> bool:
        """Sends an upkeep call (to the market unless `to`); False (logged) when it would
        revert, so nothing went out."""
        target = to or self.chain.address
        gas = self.settlement._estimate(data, [job_id], what=kind, to=target)
        if gas is None:
            return False
        sent = self.sender.send(Call(target, data, gas), kind, [job_id], head)
        tx_id = sent.tx.id
        self.metrics.inc("oracle_transactions_sent_total")
        event(self.log, "upkeep_sent", kind=kind, tx_id=tx_id, job=job_id)
        return True
