"""Verification and signing, the oracle's steps 2 and 3 (see `oracle.service`): start
verifications for jobs in ``seen`` whose seed block is confirmed, collect finished ones and
decide their verdicts, then sign ``verified`` jobs (or only log them, in dry-run)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from web3.exceptions import ContractCustomError, ContractLogicError

from neurotoken.market.verdicts import MarketDomain, Verdict
from oracle.chain import MarketChain, revert_data
from oracle.keys import OracleKey
from oracle.logs import event
from oracle.metrics import Metrics
from oracle.settings import OracleSettings
from oracle.store import SEEN, VERIFIED, VERIFYING, JobRow, SpecRow, Store
from oracle.verify import Kind, VerifierPool, VerifyOutcome, VerifyTask, bundle_access, task_limits

TRANSIENT_PROVIDER = ("UNAVAILABLE", "DEADLINE_EXCEEDED")
"""Finding names (from `neurotoken.proofs.verifier.Reason`) that are the provider's to fix
in time; past the give-up point they become a reject."""


@dataclass(eq=False, kw_only=True)
class Verification:
    """Schedules verifications, turns their outcomes into verdicts and signs them.

    `key` is None in dry-run: verdicts are then logged once each and never signed."""

    store: Store
    chain: MarketChain
    pool: VerifierPool
    key: OracleKey | None
    domain: MarketDomain
    settings: OracleSettings
    metrics: Metrics
    log: logging.Logger
    crash: Callable[[str], None]
    """fault injection for the crash tests (`Oracle._crash`)"""
    _task_seeds: dict[int, bytes] = field(init=False, default_factory=dict)
    """job -> seed of its running verification"""
    _dry_logged: set[tuple[int, bytes]] = field(init=False, default_factory=set)

    # ------------------------------------------------------------------ verification

    def spec_for(self, job_id: int) -> SpecRow | None:
        spec = self.store.spec(job_id)
        if spec is not None:
            return spec
        found = self.chain.find_spec(job_id)
        if found is None:
            return None
        self.store.put_spec(*found)
        return found[0]

    def schedule(self, head: int, chain_now: int) -> None:
        log = self.log
        safe = head - self.settings.confirmations
        wall = time.time()
        for job in self.store.jobs([SEEN]):
            root = job.result_root
            if root is None or self.pool.running(job.job_id) or job.next_attempt_at > wall:
                continue
            spec = self.spec_for(job.job_id)
            if spec is None:
                event(log, "spec_not_found", level=30, job=job.job_id)
                continue
            if chain_now > spec.verdict_by:
                continue  # `expire` deals with it
            if job.seed_block is None or job.seed_block > safe:
                continue
            if not self.pool.has_room():
                break
            try:
                seed = self.chain.challenge_seed(job.job_id, job.seed_block)
            except (ContractCustomError, ContractLogicError) as exc:
                decoded = self.chain.decode_error(revert_data(exc))
                if decoded is not None and decoded.name == "MarketRandaoNotRecorded":
                    continue  # upkeep (ours or another party's) records the mix; then verify
                # Out of reach and never fixed: no party may draw again; the job can only lapse.
                event(log, "seed_unavailable", level=30, job=job.job_id, error=str(decoded or exc))
                continue
            stored = self.store.verdict(job.job_id, root)
            if stored is not None:
                if stored.seed != seed:
                    # Only a reorg deeper than the confirmations moves a committed root to
                    # another seed block; the old verdict judged another draw. Never reuse it.
                    event(log, "verdict_seed_changed", level=40, job=job.job_id, root=root)
                    continue
                self.store.record_verdict(
                    job.job_id, root, stored.accepted, stored.reasons, stored.challenged, seed=seed
                )
                event(log, "verdict_reused", job=job.job_id, root=root, accepted=stored.accepted)
                continue
            if not self.store.start_verifying(job.job_id, root):
                continue
            self._task_seeds[job.job_id] = seed
            task = VerifyTask(
                job_id=job.job_id,
                result_root=root,
                spec_hash=spec.spec_hash,
                spec_uri=spec.spec_uri,
                shard_count=spec.shard_count,
                challenge_count=spec.challenge_count,
                seed=seed,
                bundle_uri=job.bundle_uri or "",
                bundle_auth=bundle_access(self.key, self.domain, root, self.settings),
                **task_limits(self.settings),
            )
            self.pool.submit(task)
            event(log, "verification_started", job=job.job_id, root=root, attempt=job.attempts + 1)

    def collect(self, chain_now: int) -> None:
        for outcome in self.pool.poll():
            self._apply_verification(outcome, chain_now)

    def _apply_verification(self, outcome: VerifyOutcome, chain_now: int) -> None:
        log = self.log
        job = self.store.job(outcome.job_id)
        if job is None or job.result_root != outcome.result_root or job.state != VERIFYING:
            event(log, "verification_orphaned", job=outcome.job_id)
            return
        self.metrics.observe_latency(outcome.elapsed_s)
        self.metrics.inc("oracle_verifications_total")
        spec = self.store.spec(job.job_id)
        verdict_by = spec.verdict_by if spec is not None else 0
        root = outcome.result_root
        if outcome.kind == Kind.VERDICT:
            self._decide(job, root, outcome.accepted, list(outcome.reasons), outcome)
            return
        reasons = list(outcome.reasons)
        provider_transient = bool(reasons) and all(
            r.startswith(TRANSIENT_PROVIDER) for r in reasons
        )
        if (
            outcome.kind == Kind.RETRY
            and provider_transient
            and chain_now >= verdict_by - self.settings.give_up_margin_s
        ):
            reasons.append("GAVE_UP: the bundle was not served in time for the verdict deadline")
            self._decide(job, root, False, reasons, outcome)
            return
        worker_failure = any(r.startswith("WORKER_") for r in reasons)
        if worker_failure and job.attempts >= self.settings.max_verify_attempts:
            self.store.retry_later(job.job_id, root, time.time(), reasons)
            self.store.expire(job.job_id, [*reasons, "GAVE_UP: verification keeps failing"])
            event(log, "verification_abandoned", level=40, job=job.job_id, reasons=reasons)
            return
        backoff = min(60.0, self.settings.retry_backoff_s * 2 ** max(0, job.attempts - 1))
        self.store.retry_later(job.job_id, root, time.time() + backoff, reasons)
        event(
            log,
            "verification_retry",
            level=30,
            job=job.job_id,
            kind=outcome.kind.value,
            reasons=reasons,
            backoff_s=backoff,
        )

    def _decide(
        self, job: JobRow, root: bytes, accepted: bool, reasons: list[str], outcome: VerifyOutcome
    ) -> None:
        seed = self._task_seeds.pop(job.job_id, None)
        if seed is None:  # verification started before a restart: read the seed again
            assert job.seed_block is not None  # a job is verified once its seed block is known
            seed = self.chain.challenge_seed(job.job_id, job.seed_block)
        stored = self.store.record_verdict(
            job.job_id,
            root,
            accepted,
            reasons,
            list(outcome.challenged),
            latency_s=time.time() - job.seen_at,
            seed=seed,
        )
        event(
            self.log,
            "verified",
            job=job.job_id,
            root=root,
            accepted=stored.accepted,
            reasons=stored.reasons,
            challenged=stored.challenged,
            elapsed_s=round(outcome.elapsed_s, 3),
        )
        self.crash("after_verify")

    # ------------------------------------------------------------------ signing

    def sign(self) -> None:
        log = self.log
        for job in self.store.jobs([VERIFIED]):
            root = job.result_root
            if root is None:
                continue
            verdict = self.store.verdict(job.job_id, root)
            if verdict is None or verdict.seed is None:
                continue  # (a verdict stored before seeds were bound is never signed)
            if self.key is None:
                if (job.job_id, root) not in self._dry_logged:
                    self._dry_logged.add((job.job_id, root))
                    event(
                        log,
                        "dry_run_verdict",
                        job=job.job_id,
                        root=root,
                        accepted=verdict.accepted,
                        reasons=verdict.reasons,
                    )
                continue
            mine = [
                s
                for s in self.store.signatures(job.job_id, root, own=True)
                if s.signer == self.key.address
            ]
            if not mine:
                signed = self.key.sign_verdict(
                    self.domain, Verdict(job.job_id, root, verdict.seed, verdict.accepted)
                )
                self.store.record_signature(
                    job.job_id, root, self.key.address, verdict.accepted, signed.signature, True
                )
                self.metrics.inc("oracle_signatures_total")
                event(log, "signed", job=job.job_id, root=root, accepted=verdict.accepted)
            self.store.mark_signed(job.job_id, root)
            self.crash("after_sign")
