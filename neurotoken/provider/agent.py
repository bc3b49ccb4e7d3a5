"""The provider agent: watch posted jobs, take those the policy allows, compute, prove, submit.

One `step()` does, in order:

1. reconcile - jobs whose accept or submit transaction was signed but whose outcome this
   process never saw (a crash, a restart) are settled against the chain: a transaction that
   is still pending is followed to its end, replaced at its nonce with higher fees while it
   is stuck (so it can never land next to a second one), one that landed is recorded, one
   that vanished is retried only if the chain says the action has not happened;
2. scan - `JobPosted` logs from the last scanned block to head - confirmations (a job posted
   with this provider's quote, `postAcceptedJob`, arrives Accepted), and `JobAccepted` logs
   naming this provider (an acceptance signed with its key elsewhere brings back a job the
   agent had let go);
3. follow - jobs this provider holds are updated from the chain (paid, rejected, lapsed,
   defaulted, taken by someone else);
4. decide - each undecided posted job is checked (spec fetched and hash-checked, policy
   applied; best-paying first) and accepted when allowed; one that is already this
   provider's (quoted, or accepted outside this agent) is taken on whatever the policy says
   now - its collateral is locked - with a warning for each rule it breaks;
5. work - each accepted job is computed on all cores (finished shards come from the compute
   journal, never recomputed; on a Ray cluster every job in hand at once), its bundle
   published to the store the bundle server serves, and its result submitted - once: the
   job is re-read from the chain right before, and the contract refuses a second submission
   anyway. A job whose spec cannot be had stays in hand (a warning) and is tried again each
   step until deliverBy; the other jobs go on.

Quotes (`quote.py`) are signed by the `agent quote` command, not by the loop; a quote not yet
posted counts in `capacity` as a job in hand.

The market stores only a digest of each job's record, and acceptJob and submitResult take the
record itself, which must be the current one. The agent never keeps a record: it reads it
(rebuilt from the job's events since the block it began scanning at, checked against the
digest) right before each send. When the record changed in between (another provider took
the job, its client cancelled it, it expired) the call reverts (MarketJobRecordMismatch, or
MarketJobNotFound for an ended job) and the agent reads it again and decides once more from
what the chain says - it never sends again in the same step. A transaction an earlier run left
in flight carries the record of its time: if that record is stale it reverts when mined, and
the restarted agent, which follows it to its end, reads the job again and decides the same
way.

`run()` repeats steps until stopped. Deadlines are judged by chain time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from web3.exceptions import TransactionNotFound

from neurotoken.errors import ConfigError
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec
from neurotoken.market.job import OnChainJob, fold
from neurotoken.market.states import JobState as Chain
from neurotoken.proofs.store import LocalStore, atomic_write, manifest_path
from neurotoken.provider.backends import ComputeBackend
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.compute import ComputeReport, compute_job, default_workers
from neurotoken.provider.errors import (
    ChainRevertError,
)
from neurotoken.provider.faults import Crash
from neurotoken.provider.policy import Capacity, Decision, Policy, evaluate, net_price_per_shard
from neurotoken.provider.publish import publish_bundle
from neurotoken.provider.spec_fetch import (
    TRANSIENT,
    FetchedSpec,
    Refusal,
    SpecRefusedError,
    check_spec,
    fetch_spec,
)
from neurotoken.provider.state import OPEN_WORK, UNDECIDED, AgentState, JobRecord, JobStatus
from neurotoken.units import format_ntk

AnySpec = ShelfImagesSpec | TrainingSpec
Echo = Callable[[str], None]
JobShardHook = Callable[[int, int], None]

_log = logging.getLogger("neurotoken.provider.agent")

#: The chain states of a job some provider has accepted (the record names which).
_TAKEN = frozenset(
    {Chain.ACCEPTED, Chain.SUBMITTED, Chain.PAID, Chain.REJECTED, Chain.DEFAULTED, Chain.LAPSED}
)
#: The chain states of a job whose result its provider submitted.
_DELIVERED = frozenset({Chain.SUBMITTED, Chain.PAID, Chain.REJECTED, Chain.LAPSED})

#: Policy rules about taking a job, not about doing it: moot for a job already held.
_ACCEPTING_ONLY = frozenset(
    {Refusal.ACCEPT_WINDOW_CLOSED, Refusal.STAKE_TOO_LOW, Refusal.RESERVED_FOR_OTHER}
)

#: Terminal chain states and the status they map to for a job this provider held.
_SETTLED = {
    Chain.PAID: JobStatus.PAID,
    Chain.REJECTED: JobStatus.REJECTED,
    Chain.DEFAULTED: JobStatus.DEFAULTED,
    Chain.LAPSED: JobStatus.LAPSED,
}


def _shared(result: ComputeReport) -> Iterator[ComputeReport]:
    """The report of a computation, then, for each further job of the same spec, one where
    every shard came from the journal (as it would have, computed after it)."""
    yield result
    every = sorted(result.computed + result.reused)
    while True:
        yield ComputeReport(list(result.output_hashes), reused=every, device=result.device)


@dataclass
class AgentConfig:
    """Where the agent keeps things and how it works (the policy says what it takes)."""

    state_dir: Path
    """Holds agent.sqlite3, the compute journal and verified specs."""
    store_dir: Path
    """The content-addressed bundle store (what the bundle server serves)."""
    bundle_uri: str
    """Published on chain with each result: the bundle server's base URL (or a folder)."""
    policy: Policy = field(default_factory=Policy)
    workers: int = field(default_factory=default_workers)
    device: str = "auto"
    progress: bool = True
    confirmations: int = 0
    """Posted jobs are acted on once this many blocks deep (0 on a local chain)."""
    from_block: int = 0
    """Where the first scan starts (the market's deployment block on a real network)."""
    spec_timeout_s: float = 10.0
    max_spec_attempts: int = 5
    on_shard: JobShardHook | None = None
    """`on_shard(job_id, index)` after each shard is durably recorded (progress hooks, tests;
    from the job's computing thread when several jobs are computed at once)."""
    backend: ComputeBackend | None = None
    """Computes the shards (default: a local process pool of `workers` processes)."""
    read_only: bool = False
    """Look only (`agent jobs`): the state is read into memory, nothing is written to disk."""
    scans: bool = True
    """False for a command that never scans for jobs (`agent quote`): a new state file's first
    block is then left for the first `run` to fix (its --from-block)."""
    crash: Crash | None = None
    """Fault injection for the crash campaigns (`neurotoken.provider.faults`: SIGKILL after
    an accept or a submit is broadcast, mid-computation); None in production."""


@dataclass
class StepReport:
    """What one step did (for logs, tests and the demo)."""

    posted: list[int] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    computed: dict[int, ComputeReport] = field(default_factory=dict)
    submitted: list[int] = field(default_factory=list)
    settled: dict[int, JobStatus] = field(default_factory=dict)


class ProviderAgent:
    """Drives one provider account on one market (see the module docstring)."""

    def __init__(self, client: MarketClient, config: AgentConfig, echo: Echo | None = None) -> None:
        self.client = client
        self.config = config
        self.echo: Echo = echo or _log.info
        self.state = AgentState(
            config.state_dir / "agent.sqlite3",
            client.chain_id,
            client.market_address,
            client.address,
            read_only=config.read_only,
        )
        self.store = LocalStore(config.store_dir)
        self.first_block = self.state.first_block(config.from_block, keep=config.scans)
        """Where job records are searched for: the block the first scan started at."""

    def close(self) -> None:
        self.state.close()

    # ------------------------------------------------------------------ the loop

    def step(self) -> StepReport:
        report = StepReport()
        self.reconcile(report)
        report.posted = self.scan()
        self.follow(report)
        self.decide(report)
        self.work(report)
        return report

    def run(
        self,
        poll_s: float = 5.0,
        stop: Callable[[], bool] | None = None,
        max_steps: int | None = None,
        max_failures: int = 10,
    ) -> None:
        """Steps every `poll_s` seconds until `stop()` or `max_steps`. A step that fails (the
        node unreachable, a transaction refused) is logged and retried after a growing pause;
        `max_failures` failures in a row, or a configuration error, end the run."""
        steps = failures = 0
        while not (stop and stop()) and (max_steps is None or steps < max_steps):
            steps += 1
            try:
                self.step()
                failures = 0
            except ConfigError:
                raise
            except Exception as exc:  # a daemon survives what the next step may not meet
                failures += 1
                _log.debug("step failed", exc_info=True)
                self.echo(f"step failed ({failures} in a row): {type(exc).__name__}: {exc}")
                if failures >= max_failures:
                    raise
            if max_steps is None or steps < max_steps:
                time.sleep(poll_s * min(2**failures, 12))

    # ------------------------------------------------------------------ 1. reconcile

    def reconcile(self, report: StepReport) -> None:
        for record in self.state.with_status(JobStatus.ACCEPTING, JobStatus.SUBMITTING):
            job = self.read_job(record.job_id)
            if record.status is JobStatus.ACCEPTING:
                self._reconcile_accept(record, job, report)
            else:
                self._reconcile_submit(record, job, report)

    def read_job(self, job_id: int) -> OnChainJob:
        """The job's record as the chain has it now (its last one, once it has ended)."""
        return self.client.get_job(job_id, from_block=self.first_block)

    def _mine(self, job: OnChainJob) -> bool:
        return job.provider.lower() == self.client.address.lower()

    def held(self, job: OnChainJob) -> bool:
        """Whether this provider accepted the job (while a job is posted, its record names the
        provider it is reserved for, if any: that is not holding it)."""
        return job.state in _TAKEN and self._mine(job)

    def _fate(self, job: OnChainJob) -> str:
        """What became of a job this provider does not hold, in words."""
        if job.state in _TAKEN:
            return f"taken by {job.provider}"
        return f"{job.state.name.lower()} on chain"

    def _reconcile_accept(self, record: JobRecord, job: OnChainJob, report: StepReport) -> None:
        pending = self._pending_attempt(job.job_id, "accept_tx")
        if pending is not None:
            # Its record may be stale by now: then it reverts when mined, and the job read
            # again below says what happened instead.
            self._resume(job.job_id, pending, "accept_tx", f"acceptJob({job.job_id})")
            job = self.read_job(job.job_id)
        if self.held(job):
            self.state.update(job.job_id, status=JobStatus.ACCEPTED)
            self.echo(f"job {job.job_id}: acceptance found on chain after a restart")
            return
        if job.state == Chain.POSTED:
            # Never landed, and nothing of ours pending at its nonce: decide again, from scratch.
            self.state.update(job.job_id, status=JobStatus.SEEN, accept_tx=None)
            return
        fate = self._fate(job)
        self.echo(f"job {job.job_id}: giving it up - {fate} (found after a restart)")
        self.state.update(job.job_id, status=JobStatus.GONE, reason=fate)

    def _reconcile_submit(self, record: JobRecord, job: OnChainJob, report: StepReport) -> None:
        pending = self._pending_attempt(job.job_id, "submit_tx")
        if pending is not None:
            self._resume(job.job_id, pending, "submit_tx", f"submitResult({job.job_id})")
            job = self.read_job(job.job_id)
        if job.state in _DELIVERED and self._mine(job):
            self.state.update(job.job_id, status=JobStatus.SUBMITTED)
            self.echo(f"job {job.job_id}: submission found on chain after a restart")
            return
        if job.state == Chain.ACCEPTED and self._mine(job):
            self.state.update(job.job_id, status=JobStatus.COMPUTED, submit_tx=None)
            return
        self._record_chain_outcome(record, job, report)

    def _pending_attempt(self, job_id: int, field: str) -> str | None:
        """The attempt at the job's recorded transaction that the node still holds, unless one
        has landed (then the chain says what happened). Every attempt is looked at, not only
        the latest: a crash between recording a replacement and broadcasting it leaves the
        node holding the one before."""
        pending = None
        for tx_hash in self.state.tx_attempts(job_id, field):
            status = self.client.tx_status(tx_hash)
            if status in ("mined", "failed"):
                return None
            if status == "pending":
                pending = tx_hash
        return pending

    def _resume(self, job_id: int, tx_hash: str, field: str, action: str) -> None:
        """Follows a transaction an earlier run left pending until it (or a replacement at its
        nonce, with higher fees, its hash recorded first) lands; the chain then says what
        happened. It is followed even when the job has moved on (it would revert): a stuck
        nonce would hold back every later transaction. A timeout (TxTimeoutError) leaves the
        record as it is for the next step."""

        def sent(new_hash: str) -> None:
            self.state.update(job_id, **{field: new_hash})

        self.echo(f"job {job_id}: following {action}, sent before a restart (tx {tx_hash})")
        try:
            self.client.resume(tx_hash, action, sent)
        except ChainRevertError as exc:
            self.echo(f"job {job_id}: earlier {action} failed: {exc}")
        except TransactionNotFound:
            self.echo(f"job {job_id}: earlier {action} was dropped by the node")

    # ------------------------------------------------------------------ 2. scan

    def scan(self) -> list[int]:
        """Records jobs posted since the last scan; returns their ids."""
        head = self.client.head() - self.config.confirmations
        start = self.state.next_block(self.config.from_block)
        if head < start:
            return []
        new: list[int] = []
        for log in self.client.logs("JobPosted", start, head):
            args = log["args"]
            job_id = int(args["jobId"])
            posted = fold(job_id, [("JobPosted", args)])  # the job's first record
            assert posted is not None
            if self.state.add_seen(job_id, str(args["specURI"]), "0x" + posted.spec_hash.hex()):
                new.append(job_id)
                quoted = ""
                if posted.state is Chain.ACCEPTED and self._mine(posted):
                    # postAcceptedJob: this provider's acceptance came with it
                    quote = self.state.quote_posted("0x" + posted.digest().hex(), job_id)
                    quoted = " on this provider's quote" if quote else " already accepted"
                self.echo(
                    f"job {job_id}: posted by {posted.client}{quoted} - {posted.shard_count} "
                    f"shards, spec {args['specURI']}"
                )
        self._scan_acceptances(start, head)
        self.state.set_next_block(head + 1)
        return new

    def _scan_acceptances(self, start: int, head: int) -> None:
        """Jobs accepted for this provider that this agent had let go (refused, or seen taken):
        an acceptance signed with its key elsewhere (a quote, another program) locks its
        collateral all the same, so the job is decided again - and, held, taken on."""
        for log in self.client.logs("JobAccepted", start, head, {"provider": self.client.address}):
            job_id = int(log["args"]["jobId"])
            record = self.state.get(job_id)
            if record is None:
                # posted before the block this state file began at: not readable from here
                self.echo(
                    f"job {job_id}: WARNING - accepted with this provider's key but posted "
                    f"before block {self.first_block}, where this state folder begins: deliver "
                    "it from the program that accepted it, or run an agent with a new --state "
                    "and --from-block at or before its post"
                )
                _log.warning("job %d: held but posted before the first scanned block", job_id)
            elif record.status in (JobStatus.REFUSED, JobStatus.GONE):
                self.echo(
                    f"job {job_id}: accepted on chain with this provider's key, not by this "
                    f"agent (it was {record.status.value}): taking it on"
                )
                self.state.update(job_id, status=JobStatus.SEEN, reason=None, attempts=0)

    # ------------------------------------------------------------------ 3. follow

    def follow(self, report: StepReport) -> None:
        held = self.state.with_status(JobStatus.ACCEPTED, JobStatus.COMPUTED, JobStatus.SUBMITTED)
        for record in held + self.state.with_status(JobStatus.MISSED):
            job = self.read_job(record.job_id)
            self._record_chain_outcome(record, job, report)

    def _record_chain_outcome(self, record: JobRecord, job: OnChainJob, report: StepReport) -> None:
        status = _SETTLED.get(job.state)
        if status is not None and self._mine(job):
            self.state.update(job.job_id, status=status)
            report.settled[job.job_id] = status
            self.echo(f"job {job.job_id}: {status.value} on chain")
        elif job.state != Chain.POSTED and not self.held(job):
            self.state.update(job.job_id, status=JobStatus.GONE, reason=self._fate(job))

    # ------------------------------------------------------------------ 4. decide

    def spec_path(self, spec_hash: bytes) -> Path:
        return self.config.state_dir / "specs" / f"0x{spec_hash.hex()}.json"

    def load_spec(self, job: OnChainJob, uri: str) -> FetchedSpec:
        """The job's spec: from the local copy if verified before, else fetched and checked."""
        path = self.spec_path(job.spec_hash)
        if path.is_file():
            raw = path.read_bytes()
            if keccak256(raw) == job.spec_hash:  # else damaged: fetch again
                return check_spec(raw, job.spec_hash, job.shard_count, str(path))
        fetched = fetch_spec(uri, job.spec_hash, job.shard_count, self.config.spec_timeout_s)
        if not self.config.read_only:
            atomic_write(path, fetched.raw)
        return fetched

    def capacity(self, now: int | None = None, *, besides: str | None = None) -> Capacity:
        """What the provider has to offer at chain time `now`: the jobs it holds, and the
        quotes it signed that may still be posted (each counts as a job in hand, its
        collateral held back from the free stake), except the quote of digest `besides`."""
        open_work = self.state.with_status(*OPEN_WORK)
        when = self.client.timestamp() if now is None else now
        quotes = [q for q in self.state.outstanding_quotes(when) if q.digest != besides]
        promised = sum(q.collateral_ntk for q in quotes)
        return Capacity(
            provider=self.client.address,
            free_stake_ntk=max(0, self.client.get_provider().stake_ntk - promised),
            active_jobs=len(open_work) + len(quotes),
            queued_seconds=sum(r.estimate_s or 0.0 for r in open_work)
            + sum(q.estimate_s for q in quotes),
            workers=self.config.workers,
            promised_ntk=promised,
        )

    def evaluate(self, job_id: int) -> tuple[Decision, OnChainJob]:
        """The policy's decision on a posted job (nothing is sent)."""
        record = self.state.get(job_id)
        job = self.read_job(job_id)
        uri = record.spec_uri if record is not None else self._posted_uri(job_id)
        now = self.client.timestamp()
        if job.state != Chain.POSTED:
            refusal = (Refusal.ACCEPT_WINDOW_CLOSED, f"job is {job.state.name}")
            return Decision(job_id, False, (refusal,)), job
        try:
            fetched = self.load_spec(job, uri)
        except SpecRefusedError as exc:
            return Decision(job_id, False, ((exc.code, exc.detail),)), job
        return evaluate(job, fetched.spec, self.config.policy, self.capacity(), now), job

    def _posted_uri(self, job_id: int) -> str:
        for log in self.client.logs(
            "JobPosted", self.config.from_block, self.client.head(), {"jobId": job_id}
        ):
            return str(log["args"]["specURI"])
        return ""

    def decide(self, report: StepReport) -> None:
        candidates: list[tuple[int, OnChainJob, JobRecord]] = []
        for record in self.state.with_status(*UNDECIDED):
            job = self.read_job(record.job_id)
            if self.held(job):
                # Posted with this provider's quote, or an accept of an earlier run that landed
                # after all (e.g. an attempt replaced by one the node never took), or accepted
                # with its key elsewhere: the job is held, not gone.
                self._take_on(job, record)
                continue
            if job.state != Chain.POSTED:
                self.state.update(job.job_id, status=JobStatus.GONE, reason=self._fate(job))
                continue
            candidates.append((net_price_per_shard(job), job, record))
        candidates.sort(key=lambda c: (-c[0], c[1].job_id))
        for _, job, record in candidates:
            decision, job = self.evaluate(job.job_id)
            report.decisions.append(decision)
            if decision.accept:
                if self.accept(job, decision):
                    report.accepted.append(job.job_id)
                continue
            code = decision.code
            assert code is not None
            text = "; ".join(f"{c.value}: {t}" for c, t in decision.reasons)
            attempts = record.attempts + 1
            # Deferred only if every reason may pass (stake or capacity freed by a settlement,
            # a spec server back up - the latter a bounded number of times) before acceptBy.
            retry = all(c in TRANSIENT for c, _ in decision.reasons) and not (
                code is Refusal.SPEC_UNAVAILABLE and attempts >= self.config.max_spec_attempts
            )
            if retry and self.client.timestamp() <= job.accept_by:
                if record.status is not JobStatus.DEFERRED or record.reason != text:
                    self.echo(f"job {job.job_id}: deferred ({text})")
                self.state.update(
                    job.job_id, status=JobStatus.DEFERRED, reason=text, attempts=attempts
                )
            else:
                self.echo(f"job {job.job_id}: refused ({text})")
                self.state.update(
                    job.job_id, status=JobStatus.REFUSED, reason=text, attempts=attempts
                )

    def _take_on(self, job: OnChainJob, record: JobRecord) -> None:
        """Makes a job this provider holds but did not accept in this run one of its jobs in
        hand. Its collateral is locked: it is delivered whatever the policy says now (a spec
        gone, too much work, too little time); each rule it breaks is logged as a warning."""
        job_id = job.job_id
        quote = self.state.quote("0x" + job.digest().hex()) if job.state == Chain.ACCEPTED else None
        how = "its quote was posted" if quote else "found accepted by this provider on chain"
        estimate = quote.estimate_s if quote else None
        warnings: list[tuple[Refusal, str]] = []
        if job.state == Chain.ACCEPTED:
            try:
                fetched = self.load_spec(job, record.spec_uri)
            except SpecRefusedError as exc:
                warnings.append((exc.code, exc.detail))
            else:
                now = self.client.timestamp()
                decision = evaluate(job, fetched.spec, self.config.policy, self.capacity(now), now)
                estimate = decision.estimate_s
                # acceptBy, the free stake and the reservation concern accepting: done already
                warnings += [(c, t) for c, t in decision.reasons if c not in _ACCEPTING_ONLY]
        # where it stands (a program with this key may have gone on with it): followed from there
        status = {Chain.ACCEPTED: JobStatus.ACCEPTED, Chain.SUBMITTED: JobStatus.SUBMITTED}.get(
            job.state
        ) or _SETTLED[job.state]
        self.state.update(job_id, status=status, estimate_s=estimate, reason=None)
        self.echo(
            f"job {job_id}: {how} - {job.shard_count} shards for {format_ntk(job.payment_ntk)}, "
            f"{format_ntk(job.collateral_ntk)} collateral locked"
            + ("" if status is JobStatus.ACCEPTED else f" ({job.state.name.lower()} on chain)")
        )
        if warnings:
            text = "; ".join(f"{c.value}: {t}" for c, t in warnings)
            _log.warning("job %d: held against the policy (%s)", job_id, text)
            self.echo(
                f"job {job_id}: WARNING - this agent would not accept it now ({text}); "
                "delivering it anyway: its collateral is at stake"
            )

    def accept(self, job: OnChainJob, decision: Decision) -> bool:
        """Sends acceptJob with the job's record read right before; True when the job is this
        provider's afterwards. A job whose record changed meanwhile is decided again from the
        chain (`_not_accepted`), never sent for again in this step."""
        job_id = job.job_id
        current = self.read_job(job_id)  # the record acceptJob takes: the current one
        if current.state != Chain.POSTED:
            return self._not_accepted(current, decision, "its record changed before sending")

        def sent(tx_hash: str) -> None:
            self.state.update(
                job_id,
                status=JobStatus.ACCEPTING,
                accept_tx=tx_hash,
                estimate_s=decision.estimate_s,
            )

        try:
            receipt = self.client.transact(
                self.client.market.functions.acceptJob(job_id, current.record()),
                f"acceptJob({job_id})",
                sent,
                **self._injected("after_accept_sent", job_id),
            )
        except ChainRevertError as exc:
            return self._not_accepted(self.read_job(job_id), decision, str(exc))
        self.state.update(job_id, status=JobStatus.ACCEPTED)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        self.echo(
            f"job {job_id}: accepted - {job.shard_count} shards for "
            f"{job.payment_ntk / 1e18:,.2f} NTK, {job.collateral_ntk / 1e18:,.2f} NTK collateral "
            f"locked (tx {tx})"
        )
        return True

    def _not_accepted(self, job: OnChainJob, decision: Decision, why: str) -> bool:
        """Records what the chain says of a job whose acceptJob was refused or not sent
        (`job` read after it); True if the job is this provider's all the same (an earlier
        attempt landed)."""
        job_id = job.job_id
        if self.held(job):
            self.state.update(job_id, status=JobStatus.ACCEPTED, estimate_s=decision.estimate_s)
            self.echo(f"job {job_id}: found accepted by this provider on chain")
            return True
        if job.state == Chain.POSTED:  # still open: decided again in the next step
            self.echo(f"job {job_id}: could not accept ({why})")
            self.state.update(job_id, status=JobStatus.DEFERRED, reason=why, accept_tx=None)
            return False
        fate = self._fate(job)
        self.echo(f"job {job_id}: giving it up - {fate} before this provider's acceptance ({why})")
        self.state.update(job_id, status=JobStatus.GONE, reason=f"{fate}: {why}", accept_tx=None)
        return False

    # ------------------------------------------------------------------ 5. work

    def work(self, report: StepReport) -> None:
        """Submits each job in hand whose bundle is published, then computes the others and
        submits each as soon as its bundle is (several at once on a backend that schedules
        jobs together, see `_compute_all`)."""
        ready: list[tuple[OnChainJob, JobRecord]] = []
        to_compute: list[tuple[OnChainJob, JobRecord, FetchedSpec]] = []
        for record in self.state.with_status(JobStatus.ACCEPTED, JobStatus.COMPUTED):
            job = self.read_job(record.job_id)
            if job.state != Chain.ACCEPTED or not self._mine(job):
                self._record_chain_outcome(record, job, report)
                continue
            if self.client.timestamp() > job.deliver_by:
                self._missed(job)
                continue
            if record.root is not None and self._published(record.root):
                ready.append((job, record))
                continue
            try:
                fetched = self.load_spec(job, record.spec_uri)
            except SpecRefusedError as exc:
                self._spec_lost(record, exc)
                continue
            to_compute.append((job, record, fetched))
        for job, record in ready:
            self.submit(job, record, report)
        for job, record in self._compute_all(to_compute, report):
            self.submit(job, record, report)

    def _compute_all(
        self, jobs: list[tuple[OnChainJob, JobRecord, FetchedSpec]], report: StepReport
    ) -> Iterator[tuple[OnChainJob, JobRecord]]:
        """Computes the jobs' shards and publishes each job's bundle, yielding each job as
        soon as its bundle is published. On a backend with `concurrent_jobs` (Ray) every job
        is computed at once, one thread each handing its shards to the cluster (the policy's
        max_active_jobs bounds how many are in hand); on the local pool, one after the other
        (each fills every core). Jobs of the same spec share one computation (one journal).
        Only this thread writes the state file and sends transactions. A job whose
        computation fails does not stop the others; the first failure is raised at the end."""
        if not jobs:
            return
        by_spec: dict[bytes, list[tuple[OnChainJob, JobRecord, FetchedSpec]]] = {}
        for item in jobs:
            by_spec.setdefault(item[0].spec_hash, []).append(item)
        backend = self.config.backend
        threads = len(by_spec) if backend is not None and backend.concurrent_jobs else 1
        if threads == 1:
            for same in by_spec.values():
                result = self._compute_shards(same[0][0], same[0][2])
                for (job, _record, fetched), shared in zip(same, _shared(result), strict=False):
                    yield job, self._publish(job, fetched, shared, report)
            return
        failure: BaseException | None = None
        with ThreadPoolExecutor(threads, thread_name_prefix="job") as pool:
            futures = {
                pool.submit(self._compute_shards, same[0][0], same[0][2]): same
                for same in by_spec.values()
            }
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:
                    failure = failure or exc
                    job_ids = ", ".join(str(j.job_id) for j, _, _ in futures[future])
                    self.echo(f"job {job_ids}: computing failed: {type(exc).__name__}: {exc}")
                    continue
                same = futures[future]
                for (job, _record, fetched), shared in zip(same, _shared(result), strict=False):
                    yield job, self._publish(job, fetched, shared, report)
        if failure is not None:
            raise failure

    def _spec_lost(self, record: JobRecord, exc: SpecRefusedError) -> None:
        """A held job whose spec cannot be had (never verified here, and its URI failing now):
        it stays in hand and is tried again every step until deliverBy (its collateral is at
        stake); the other jobs go on."""
        text = f"{exc.code.value}: {exc.detail}"
        if record.reason != text:
            _log.warning("job %d: spec not available (%s)", record.job_id, text)
            self.echo(
                f"job {record.job_id}: WARNING - cannot compute it, its spec is not available "
                f"({text}); trying again each step until deliverBy"
            )
            self.state.update(record.job_id, reason=text)

    def _published(self, root: str) -> bool:
        """Whether the bundle of `root` is (still) complete in the store: its manifest is
        written last, so its presence means every proof is there too."""
        return (self.store.root_dir / manifest_path(bytes.fromhex(root[2:]))).is_file()

    def compute(self, job: OnChainJob, record: JobRecord, report: StepReport) -> JobRecord:
        """Computes one job in hand and publishes its bundle (the work phase's part for a
        single job)."""
        fetched = self.load_spec(job, record.spec_uri)
        return self._publish(job, fetched, self._compute_shards(job, fetched), report)

    def _compute_shards(self, job: OnChainJob, fetched: FetchedSpec) -> ComputeReport:
        """The job's shards, computed on the backend (journalled; any thread)."""
        backend = self.config.backend
        where = (
            f"{self.config.workers} workers"
            if backend is None or backend.name == "local"
            else f"the {backend.name} backend ({self.config.workers} CPUs)"
        )
        self.echo(f"job {job.job_id}: computing {job.shard_count} shards on {where}")
        hook = self.config.on_shard
        return compute_job(
            fetched.spec,
            self.store,
            self.config.state_dir / "journal",
            workers=self.config.workers,
            progress=self.config.progress,
            on_shard=None if hook is None else partial(hook, job.job_id),
            device=self.config.device,
            backend=backend,
            crash=self.config.crash,
            job=job.job_id,
        )

    def _injected(self, point: str, job_id: int) -> dict[str, Callable[[], None]]:
        """`transact`'s on_broadcast for the configured crash at `point` (job `job_id`); no
        argument at all when none is configured (the call is the same as without faults)."""
        crash = self.config.crash
        return {} if crash is None else {"on_broadcast": partial(crash, point, job_id)}

    def _publish(
        self, job: OnChainJob, fetched: FetchedSpec, result: ComputeReport, report: StepReport
    ) -> JobRecord:
        """Publishes the job's bundle from its computed shards and records it (this thread)."""
        report.computed[job.job_id] = result
        manifest = publish_bundle(self.store, job.job_id, fetched.spec, result.output_hashes)
        self.echo(
            f"job {job.job_id}: {len(result.computed)} shards computed, {len(result.reused)} "
            f"reused from the journal; bundle published, root {manifest.root}"
        )
        return self.state.update(
            job.job_id,
            status=JobStatus.COMPUTED,
            root=manifest.root,
            bundle_uri=self.config.bundle_uri,
        )

    def submit(self, job: OnChainJob, record: JobRecord, report: StepReport) -> None:
        """Sends submitResult with the job's record read right before (the current one); a
        refusal is judged by the job read again, and never sent again in this step."""
        assert record.root is not None
        fresh = self.read_job(job.job_id)  # right before sending: the chain decides
        if fresh.state != Chain.ACCEPTED or not self._mine(fresh):
            self._record_chain_outcome(record, fresh, report)
            return
        bundle_uri = record.bundle_uri or self.config.bundle_uri
        root = bytes.fromhex(record.root.removeprefix("0x"))

        def sent(tx_hash: str) -> None:
            self.state.update(job.job_id, status=JobStatus.SUBMITTING, submit_tx=tx_hash)

        try:
            receipt = self.client.transact(
                self.client.market.functions.submitResult(
                    job.job_id, fresh.record(), root, fresh.shard_count, bundle_uri
                ),
                f"submitResult({job.job_id})",
                sent,
                **self._injected("after_submit_sent", job.job_id),
            )
        except ChainRevertError as exc:
            after = self.read_job(job.job_id)
            if after.state in _DELIVERED and self._mine(after):  # an earlier attempt landed
                self.state.update(job.job_id, status=JobStatus.SUBMITTED)
                return
            self.echo(f"job {job.job_id}: submit failed ({exc})")
            if after.state != Chain.ACCEPTED or not self._mine(after):  # ended meanwhile
                self._record_chain_outcome(record, after, report)
            elif self.client.timestamp() > after.deliver_by:
                self._missed(after)
            else:
                self.state.update(job.job_id, status=JobStatus.COMPUTED, submit_tx=None)
            return
        self.state.update(job.job_id, status=JobStatus.SUBMITTED)
        report.submitted.append(job.job_id)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        self.echo(
            f"job {job.job_id}: result submitted, root {record.root}, bundle {bundle_uri} (tx {tx})"
        )

    def _missed(self, job: OnChainJob) -> None:
        self.state.update(job.job_id, status=JobStatus.MISSED, reason="deliverBy passed")
        self.echo(f"job {job.job_id}: deliverBy passed before the result was submitted")
