"""The provider agent: watch posted jobs, take those the policy allows, compute, prove, submit.

One `step()` does, in order:

1. reconcile - jobs whose accept or submit transaction was signed but whose outcome this
   process never saw (a crash, a restart) are settled against the chain: a transaction that
   is still pending is followed to its end, replaced at its nonce with higher fees while it
   is stuck (so it can never land next to a second one), one that landed is recorded, one
   that vanished is retried only if the chain says the action has not happened;
2. scan - `JobPosted` logs from the last scanned block to head - confirmations;
3. follow - jobs this provider holds are updated from the chain (paid, rejected, lapsed,
   defaulted, taken by someone else);
4. decide - each undecided posted job is checked (spec fetched and hash-checked, policy
   applied; best-paying first) and accepted when allowed;
5. work - each accepted job is computed on all cores (finished shards come from the compute
   journal, never recomputed), its bundle published to the store the bundle server serves,
   and its result submitted - once: the job is re-read from the chain right before, and the
   contract refuses a second submission anyway.

`run()` repeats steps until stopped. Deadlines are judged by chain time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from web3.exceptions import TransactionNotFound

from neurotoken.errors import ConfigError
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec
from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState as Chain
from neurotoken.proofs.store import LocalStore, atomic_write, manifest_path
from neurotoken.provider.backends import ComputeBackend
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.compute import ComputeReport, ShardHook, compute_job, default_workers
from neurotoken.provider.errors import (
    ChainRevertError,
)
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

AnySpec = ShelfImagesSpec | TrainingSpec
Echo = Callable[[str], None]

_log = logging.getLogger("neurotoken.provider.agent")

#: Terminal chain states and the status they map to for a job this provider held.
_SETTLED = {
    Chain.PAID: JobStatus.PAID,
    Chain.REJECTED: JobStatus.REJECTED,
    Chain.DEFAULTED: JobStatus.DEFAULTED,
    Chain.LAPSED: JobStatus.LAPSED,
}


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
    on_shard: ShardHook | None = None
    """Called after each shard is durably recorded (progress hooks, tests)."""
    backend: ComputeBackend | None = None
    """Computes the shards (default: a local process pool of `workers` processes)."""
    read_only: bool = False
    """Look only (`agent jobs`): the state is read into memory, nothing is written to disk."""


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
            job = self.client.get_job(record.job_id)
            if record.status is JobStatus.ACCEPTING:
                self._reconcile_accept(record, job, report)
            else:
                self._reconcile_submit(record, job, report)

    def _mine(self, job: OnChainJob) -> bool:
        return job.provider.lower() == self.client.address.lower()

    def _reconcile_accept(self, record: JobRecord, job: OnChainJob, report: StepReport) -> None:
        pending = self._pending_attempt(job.job_id, "accept_tx")
        if pending is not None:
            self._resume(job.job_id, pending, "accept_tx", f"acceptJob({job.job_id})")
            job = self.client.get_job(job.job_id)
        if job.state >= Chain.ACCEPTED and self._mine(job):
            self.state.update(job.job_id, status=JobStatus.ACCEPTED)
            self.echo(f"job {job.job_id}: acceptance found on chain after a restart")
            return
        if job.state == Chain.POSTED:
            # Never landed, and nothing of ours pending at its nonce: decide again, from scratch.
            self.state.update(job.job_id, status=JobStatus.SEEN, accept_tx=None)
            return
        self.state.update(job.job_id, status=JobStatus.GONE, reason=f"chain state {job.state.name}")

    def _reconcile_submit(self, record: JobRecord, job: OnChainJob, report: StepReport) -> None:
        pending = self._pending_attempt(job.job_id, "submit_tx")
        if pending is not None:
            self._resume(job.job_id, pending, "submit_tx", f"submitResult({job.job_id})")
            job = self.client.get_job(job.job_id)
        if job.state >= Chain.SUBMITTED and job.state != Chain.DEFAULTED and self._mine(job):
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
            if self.state.add_seen(
                job_id, str(args["specURI"]), "0x" + bytes(args["specHash"]).hex()
            ):
                new.append(job_id)
                self.echo(
                    f"job {job_id}: posted by {args['client']} - {args['shardCount']} shards, "
                    f"spec {args['specURI']}"
                )
        self.state.set_next_block(head + 1)
        return new

    # ------------------------------------------------------------------ 3. follow

    def follow(self, report: StepReport) -> None:
        held = self.state.with_status(JobStatus.ACCEPTED, JobStatus.COMPUTED, JobStatus.SUBMITTED)
        for record in held + self.state.with_status(JobStatus.MISSED):
            job = self.client.get_job(record.job_id)
            self._record_chain_outcome(record, job, report)

    def _record_chain_outcome(self, record: JobRecord, job: OnChainJob, report: StepReport) -> None:
        status = _SETTLED.get(job.state)
        if status is not None and self._mine(job):
            self.state.update(job.job_id, status=status)
            report.settled[job.job_id] = status
            self.echo(f"job {job.job_id}: {status.value} on chain")
        elif not self._mine(job) and job.state != Chain.POSTED:
            self.state.update(job.job_id, status=JobStatus.GONE, reason=f"held by {job.provider}")

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

    def capacity(self) -> Capacity:
        open_work = self.state.with_status(*OPEN_WORK)
        return Capacity(
            provider=self.client.address,
            free_stake_ntk=self.client.get_provider().stake_ntk,
            active_jobs=len(open_work),
            queued_seconds=sum(r.estimate_s or 0.0 for r in open_work),
            workers=self.config.workers,
        )

    def evaluate(self, job_id: int) -> tuple[Decision, OnChainJob]:
        """The policy's decision on a posted job (nothing is sent)."""
        record = self.state.get(job_id)
        job = self.client.get_job(job_id)
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
            job = self.client.get_job(record.job_id)
            if job.state != Chain.POSTED and self._mine(job):
                # An accept of an earlier run landed after all (e.g. an attempt replaced by one
                # the node never took): the job is held, not gone.
                self.state.update(job.job_id, status=JobStatus.ACCEPTED)
                self.echo(f"job {job.job_id}: found accepted by this provider on chain")
                continue
            if job.state != Chain.POSTED:
                self.state.update(job.job_id, status=JobStatus.GONE, reason=f"{job.state.name}")
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

    def accept(self, job: OnChainJob, decision: Decision) -> bool:
        job_id = job.job_id

        def sent(tx_hash: str) -> None:
            self.state.update(
                job_id,
                status=JobStatus.ACCEPTING,
                accept_tx=tx_hash,
                estimate_s=decision.estimate_s,
            )

        try:
            receipt = self.client.transact(
                self.client.market.functions.acceptJob(job_id), f"acceptJob({job_id})", sent
            )
        except ChainRevertError as exc:
            after = self.client.get_job(job_id)
            if after.state >= Chain.ACCEPTED and self._mine(after):
                self.state.update(job_id, status=JobStatus.ACCEPTED, estimate_s=decision.estimate_s)
                return True
            self.echo(f"job {job_id}: could not accept ({exc})")
            status = JobStatus.GONE if after.state != Chain.POSTED else JobStatus.DEFERRED
            self.state.update(job_id, status=status, reason=str(exc), accept_tx=None)
            return False
        self.state.update(job_id, status=JobStatus.ACCEPTED)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        self.echo(
            f"job {job_id}: accepted - {job.shard_count} shards for "
            f"{job.payment_ntk / 1e18:,.2f} NTK, {job.collateral_ntk / 1e18:,.2f} NTK collateral "
            f"locked (tx {tx})"
        )
        return True

    # ------------------------------------------------------------------ 5. work

    def work(self, report: StepReport) -> None:
        for record in self.state.with_status(JobStatus.ACCEPTED, JobStatus.COMPUTED):
            job = self.client.get_job(record.job_id)
            if job.state != Chain.ACCEPTED or not self._mine(job):
                self._record_chain_outcome(record, job, report)
                continue
            if self.client.timestamp() > job.deliver_by:
                self._missed(job)
                continue
            if record.root is None or not self._published(record.root):
                record = self.compute(job, record, report)
            self.submit(job, record, report)

    def _published(self, root: str) -> bool:
        """Whether the bundle of `root` is (still) complete in the store: its manifest is
        written last, so its presence means every proof is there too."""
        return (self.store.root_dir / manifest_path(bytes.fromhex(root[2:]))).is_file()

    def compute(self, job: OnChainJob, record: JobRecord, report: StepReport) -> JobRecord:
        fetched = self.load_spec(job, record.spec_uri)
        where = (
            f"{self.config.workers} workers"
            if self.config.backend is None or self.config.backend.name == "local"
            else f"the {self.config.backend.name} backend ({self.config.workers} CPUs)"
        )
        self.echo(f"job {job.job_id}: computing {job.shard_count} shards on {where}")
        result = compute_job(
            fetched.spec,
            self.store,
            self.config.state_dir / "journal",
            workers=self.config.workers,
            progress=self.config.progress,
            on_shard=self.config.on_shard,
            device=self.config.device,
            backend=self.config.backend,
        )
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
        assert record.root is not None
        fresh = self.client.get_job(job.job_id)  # right before sending: the chain decides
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
                    job.job_id, root, job.shard_count, bundle_uri
                ),
                f"submitResult({job.job_id})",
                sent,
            )
        except ChainRevertError as exc:
            after = self.client.get_job(job.job_id)
            if after.state >= Chain.SUBMITTED and self._mine(after):
                self.state.update(job.job_id, status=JobStatus.SUBMITTED)
                return
            self.echo(f"job {job.job_id}: submit failed ({exc})")
            if self.client.timestamp() > after.deliver_by:
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
