"""The oracle's main loop: how ingestion, verification, signing, transmission and the
transaction manager fit together.

One tick (every ``poll_interval_s``):

1. read the head; ingest confirmed market logs (undoing a reorg first if one happened);
2. start verifications for jobs in ``seen`` whose seed block is confirmed (reusing a stored
   verdict for the same (job, root) instead of verifying twice); collect finished ones:
   a verdict moves the job to ``verified``, transient trouble retries with backoff and
   becomes a reject only when the verdict deadline is too close to wait;
3. sign ``verified`` jobs (never twice differently: the store refuses), unless dry-run;
4. follow pending transactions (receipts, rebroadcasts, fee replacements);
5. for ``signed`` jobs, collect peers' signatures until some verdict has a quorum, then
   settle: a batch when several jobs are ready and the peers co-sign it, else one by one;
   a settlement that would revert because the job is already settled records it settled;
6. mark jobs whose verdict deadline passed as ``expired``;
7. upkeep, in turn with the other oracles: store the challenge seed of a job still unsettled
   when its seed block grows old (``fixChallengeSeed``, long before EIP-2935 history loses
   it: a commitment gets one draw, never a second), lapse a job whose verdict deadline passed
   unsettled (``expireJob``: refund the client, unlock the provider's collateral), and end
   a job nobody accepted by its deadline (``expireJob``: refund) or accepted but never
   delivered (``expireJob``: default - the client gets the payment and compensation from
   the provider's collateral).

Each step persists its result before the next one starts, so a crash (a SIGKILL, say)
between any two lines loses nothing: the next start resumes from the store.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from neurotoken.errors import NeurotokenError
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, SignedVerdict, Verdict
from oracle import peers
from oracle.api import ApiServer, ApiState
from oracle.chain import MarketChain, revert_data
from oracle.errors import ConflictingVerdictError
from oracle.ingest import Ingestor
from oracle.keys import OracleKey
from oracle.logs import event, get_logger
from oracle.metrics import Metrics
from oracle.settings import OracleSettings
from oracle.store import (
    EXPIRED,
    SEEN,
    SIGNED,
    TX_DROPPED,
    TX_MINED,
    VERIFIED,
    VERIFYING,
    JobRow,
    SpecRow,
    Store,
)
from oracle.txmanager import TxManager, TxOutcome
from oracle.verify import Kind, VerifierPool, VerifyOutcome, VerifyTask, bundle_access, task_limits

log = get_logger("service")

TRANSIENT_PROVIDER = ("UNAVAILABLE", "DEADLINE_EXCEEDED")
"""Finding names (from `neurotoken.proofs.verifier.Reason`) that are the provider's to fix
in time; past the give-up point they become a reject."""


def transmit_order(members: list[str], job_id: int) -> list[str]:
    """The order in which oracles transmit for `job_id`: the oracle set sorted by address,
    rotated by the job id (so the first sender changes from job to job)."""
    ordered = sorted(members, key=lambda a: int(a, 16))
    if not ordered:
        return []
    start = job_id % len(ordered)
    return ordered[start:] + ordered[:start]


def transmit_rank(members: list[str], me: str, job_id: int) -> int:
    """This oracle's place in `transmit_order`: every member gets a distinct rank in
    0..n-1 (so exactly one sends at once); a non-member ranks n, after all of them."""
    order = transmit_order(members, job_id)
    return order.index(me) if me in order else len(order)


def turn_watch(
    order: list[str],
    me: str,
    elapsed: float,
    delay: float,
    age: Callable[[], float | None],
    margin: float,
) -> bool | list[str]:
    """Whether `me` may transmit for a job now: False (not yet), True (go), or the oracles
    to look at first (go unless one has a transaction waiting in the node's pool).

    `order` is `transmit_order`; `elapsed` the seconds since `me` could first send; `age()`
    the seconds since any oracle could first have sent (None: not known); `margin` slack
    for clocks and polls. Rank r waits r delays. In the delay after that, a backup looks at
    the oracles before it: one of them probably sent this very transaction. An oracle so
    late that a later rank's turn may have come (`age` past (r + 1) delays) looks at all
    the others, so that a slow designated transmitter does not send next to the backup
    that stood in for it."""
    rank = order.index(me) if me in order else len(order)
    if elapsed < rank * delay:
        return False
    if elapsed >= (rank + 1) * delay:
        return True
    since_any = age()
    if since_any is not None and since_any + margin >= (rank + 1) * delay:
        return [a for a in order if a != me]
    return order[:rank]


UPKEEP_KINDS = ("fix_seed", "expire")
"""Transaction kinds that keep jobs moving without settling them (see `Oracle.upkeep`)."""


@dataclass(frozen=True)
class Ready:
    job: JobRow
    quorum: peers.Quorum
    own_accepted: bool


class Oracle:
    """One oracle process: construct, `start`, then `run` (or `tick` step by step)."""

    def __init__(
        self, settings: OracleSettings, key: OracleKey | None, store: Store | None = None
    ) -> None:
        self.settings = settings
        self.key = key
        self.store = store or Store(settings.database_url)
        self.metrics = Metrics()
        self.chain = MarketChain(
            settings.rpc_url, settings.market, settings.abi_path, settings.rpc_timeout_s
        )
        self.ingestor = Ingestor(
            self.chain,
            self.store,
            confirmations=settings.confirmations,
            block_range=settings.block_range,
            start_block=settings.start_block,
        )
        self.pool = VerifierPool(
            workers=settings.verify_workers, timeout_s=settings.verify_timeout_s
        )
        self.session = requests.Session()
        self.session.trust_env = False
        self.peer_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peers")
        self.txm: TxManager | None = None
        self.api: ApiServer | None = None
        self.domain: MarketDomain | None = None
        self.stopping = threading.Event()
        self._job_rules: dict[int, tuple[int, int]] = {}  # job -> (oracle epoch, threshold)
        self._serves: dict[tuple[int, str], bool] = {}  # (epoch, address) -> may sign
        self._peer_polled: dict[int, float] = {}
        self._ready_since: dict[int, float] = {}
        self._dry_logged: set[tuple[int, bytes]] = set()
        self._oracle_set: list[str] | None = None
        self._upkeep_since: dict[tuple[str, int], float] = {}
        self._seed_fix_sent: dict[int, int] = {}  # job -> head when its fixChallengeSeed went
        self._seed_settled: set[int] = set()  # jobs whose seed is fixed or beyond fixing
        self._task_seeds: dict[int, bytes] = {}  # job -> seed of its running verification
        self._deliver_by: dict[int, int] = {}  # accepted job -> its delivery deadline
        self._ended: set[int] = set()  # ended unsubmitted; its log is yet to be ingested

    # ------------------------------------------------------------------ lifecycle

    def start(self, serve_http: bool = True) -> None:
        version = self.store.migrate()
        delay = 0.5
        while True:
            try:
                chain_id = self.chain.chain_id
                break
            except Exception as exc:
                if self.stopping.is_set():
                    raise
                event(log, "rpc_unavailable", level=30, error=str(exc)[:200])
                self.stopping.wait(delay)
                delay = min(delay * 2, 10)
        self.domain = MarketDomain(chain_id, self.chain.address)
        self.store.bind_identity(chain_id, self.chain.address)
        requeued = self.store.recover()
        self.pool.warm()
        if self.key is not None:
            self.txm = TxManager(
                self.chain,
                self.store,
                self.key,
                stuck_after_blocks=self.settings.stuck_after_blocks,
                fee_bump_pct=self.settings.fee_bump_pct,
                priority_fee_gwei=self.settings.priority_fee_gwei,
                max_fee_gwei=self.settings.max_fee_gwei,
                on_broadcast=lambda: self._crash("after_send"),
            )
            self._retrying(self.txm.sync)
        if serve_http:
            state = ApiState(
                store=self.store,
                metrics=self.metrics,
                key=self.key,
                domain=self.domain,
                stall_after_s=max(30.0, 10 * self.settings.poll_interval_s),
            )
            self.api = ApiServer(state, self.settings.http_host, self.settings.http_port).start()
        event(
            log,
            "oracle_started",
            address=None if self.key is None else self.key.address,
            dry_run=self.key is None,
            chain_id=chain_id,
            market=self.chain.address,
            schema_version=version,
            requeued=requeued,
            http=None if self.api is None else self.api.url,
            settings=self.settings.redacted(),
        )

    def _retrying(self, fn: object) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                fn()  # type: ignore[operator]
                return
            except (NeurotokenError, requests.RequestException, Web3RPCError, OSError) as exc:
                event(log, "startup_retry", level=30, error=str(exc)[:200])
                self.stopping.wait(delay)
                delay = min(delay * 2, 10)

    def run(self) -> None:
        """Ticks until `stop` (or SIGTERM/SIGINT)."""
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                except Exception as exc:
                    self.metrics.inc("oracle_rpc_errors_total")
                    event(log, "tick_failed", level=40, error=f"{type(exc).__name__}: {exc}"[:400])
                spent = time.monotonic() - started
                self.stopping.wait(max(0.0, self.settings.poll_interval_s - spent))
        finally:
            self.shutdown()

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def shutdown(self) -> None:
        self.pool.shutdown()
        self.peer_pool.shutdown(wait=False, cancel_futures=True)
        if self.api is not None:
            self.api.stop()
            self.api = None
        self.store.close()
        event(log, "oracle_stopped")

    def _crash(self, point: str) -> None:
        """Fault injection for the crash tests (never configured in production)."""
        s = self.settings
        if s.crash_at == point and random.random() < s.crash_probability:
            event(log, "crash_injected", level=30, point=point)
            for handler in logging.getLogger("oracle").handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    # ------------------------------------------------------------------ the tick

    def tick(self) -> None:
        head_block = self.chain.block("latest")
        if head_block is None:
            return
        head, chain_now = head_block.number, head_block.timestamp
        self._oracle_set = None
        report = self.ingestor.tick(head)
        if report.rollback is not None:
            self.metrics.inc("oracle_reorgs_total")
        self.schedule(head, chain_now)
        self.collect(chain_now)
        self.sign()
        if self.txm is not None:
            self.apply_outcomes(self.txm.poll(head))
            if self.settings.transmit:
                self.transmit(head, chain_now)
        self.expire(chain_now)
        if self.txm is not None and self.settings.transmit and self.settings.upkeep:
            self.upkeep(head, chain_now)
        cursor = self.ingestor.cursor()
        m = self.metrics
        m.set("oracle_head_block", head)
        m.set("oracle_cursor_block", cursor)
        m.set("oracle_head_lag_blocks", max(0, head - cursor))
        m.set("oracle_pending_transactions", len(self.txm.pending()) if self.txm else 0)
        m.set("oracle_verifications_running", self.pool.busy)
        if self.txm is not None:
            m.counters["oracle_transactions_replaced_total"] = self.txm.replacements
        m.set("oracle_last_tick_timestamp_seconds", time.time())

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
                seed = self.chain.challenge_seed(job.job_id)
            except (ContractCustomError, ContractLogicError) as exc:
                decoded = self.chain.decode_error(revert_data(exc))
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
            seed = self.chain.challenge_seed(job.job_id)
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
            log,
            "verified",
            job=job.job_id,
            root=root,
            accepted=stored.accepted,
            reasons=stored.reasons,
            challenged=stored.challenged,
            elapsed_s=round(outcome.elapsed_s, 3),
        )
        self._crash("after_verify")

    # ------------------------------------------------------------------ signing

    def sign(self) -> None:
        for job in self.store.jobs([VERIFIED]):
            root = job.result_root
            if root is None:
                continue
            verdict = self.store.verdict(job.job_id, root)
            if verdict is None or verdict.seed is None:
                continue  # (a verdict stored before seeds were bound is never signed)
            if self.key is None or self.domain is None:
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
            self._crash("after_sign")

    # ------------------------------------------------------------------ settlement

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
        assert self.domain is not None
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
        assert self.domain is not None and job.result_root is not None
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
                event(log, "peer_garbage", level=30, peer=report.peer, job=job.job_id, error=reason)
            for signed in report.signed:
                verdict = signed.verdicts[0]
                if verdict.result_root != job.result_root:
                    continue  # a signature over another root is of no use to this job
                if own is None or verdict.seed != own.seed:
                    continue  # a signature over another challenge draw cannot settle it
                if not self.serves(job.job_id, signed.signer):
                    self.metrics.inc("oracle_peer_garbage_total")
                    event(
                        log,
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
                        log,
                        "peer_equivocated",
                        level=40,
                        peer=report.peer,
                        signer=signed.signer,
                        job=job.job_id,
                        error=str(exc),
                    )

    def ready_jobs(self, chain_now: int) -> list[Ready]:
        assert self.key is not None
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
        assert self.txm is not None
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
        assert self.key is not None
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
            event(log, "transmit_deferred", job=job_id, pending=pending)
        return not pending

    def _estimate(
        self, data: bytes, job_ids: Iterable[int], what: str = "settlement"
    ) -> int | None:
        """Gas for a market call with headroom, or None (logged) when it would revert; a
        settlement that would revert brings its jobs' rows in line with the chain."""
        assert self.key is not None
        try:
            gas = int(
                self.chain.w3.eth.estimate_gas(
                    {"from": self.key.address, "to": self.chain.address, "data": data}
                )
            )
        except (ContractCustomError, ContractLogicError) as exc:
            decoded = self.chain.decode_error(revert_data(exc))
            event(
                log,
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
        assert self.txm is not None
        job_id = item.job.job_id
        data = self.chain.settle_data(job_id, item.quorum.accepted, list(item.quorum.signatures))
        gas = self._estimate(data, [job_id])
        if gas is None:
            return
        tx_id = self.txm.send("settle", [job_id], data, gas, head)
        self.metrics.inc("oracle_transactions_sent_total")
        event(
            log,
            "settlement_sent",
            tx_id=tx_id,
            job=job_id,
            accepted=item.quorum.accepted,
            signers=list(item.quorum.signers),
        )

    def _settle_batch(self, chunk: list[Ready], head: int) -> bool:
        assert self.txm is not None and self.key is not None and self.domain is not None
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
                log, "batch_quorum_missing", jobs=[v.job_id for v in verdicts], signers=len(signed)
            )
            return False
        entries = [(v.job_id, v.accepted) for v in verdicts]
        data = self.chain.settle_batch_data(entries, list(quorum.signatures))
        gas = self._estimate(data, [])
        if gas is None:
            return False
        job_ids = [v.job_id for v in verdicts]
        tx_id = self.txm.send("settle_batch", job_ids, data, gas, head)
        self.metrics.inc("oracle_transactions_sent_total")
        event(
            log,
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
                event(log, "settled_by_other", job=job_id, outcome=outcome)
        elif onchain.state == JobState.LAPSED:
            self.store.back_to_signed(job_id)
            self.store.expire(job_id, ["LAPSED"])
        elif onchain.state == JobState.SUBMITTED:
            self.store.back_to_signed(job_id)

    def apply_outcomes(self, outcomes: list[TxOutcome]) -> None:
        for outcome in outcomes:
            if outcome.tx.kind in UPKEEP_KINDS:
                # what it changed reaches the store through ingestion, confirmed
                event(
                    log,
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
                        event(log, "settled", job=job_id, outcome=result, tx=outcome.tx_hash)
                elif outcome.status == TX_DROPPED:
                    self.reconcile(job_id)
                    self.store.back_to_signed(job_id)
                else:
                    self.reconcile(job_id)

    # ------------------------------------------------------------------ deadlines

    def expire(self, chain_now: int) -> None:
        for job in self.store.jobs([SEEN, VERIFIED, SIGNED]):
            spec = self.store.spec(job.job_id)
            overdue = spec is not None and chain_now > spec.verdict_by
            if overdue and self.store.expire(job.job_id, ["VERDICT_DEADLINE_PASSED"]):
                event(log, "expired", level=30, job=job.job_id, state=job.state)

    # ------------------------------------------------------------------ upkeep

    def upkeep(self, head: int, chain_now: int) -> None:
        """Sends, in turn with the other oracles, the calls anyone may make that keep jobs
        moving: `fixChallengeSeed` for an unsettled job whose seed block grew old,
        `expireJob` for one whose verdict deadline passed unsettled and for one that nobody
        accepted, or nobody delivered, in time."""
        assert self.txm is not None
        now = time.monotonic()
        busy = {(t.kind, j) for t in self.txm.pending() for j in t.job_ids}
        self._fix_old_seeds(head, busy, now)
        for job in self.store.jobs([EXPIRED], final=False):
            if ("expire", job.job_id) in busy:
                continue
            spec = self.store.spec(job.job_id)
            if spec is None or chain_now <= spec.verdict_by:
                continue
            since = self._upkeep_since.setdefault(("expire", job.job_id), now)
            if not self._turn(job.job_id, since):
                continue
            if self.chain.get_job(job.job_id).state != JobState.SUBMITTED:
                continue  # lapsed or settled already: ingestion will make it final
            self._upkeep_send("expire", job.job_id, self.chain.expire_data(job.job_id), head)
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
            if not self._turn(job_id, self._upkeep_since.setdefault(("fix_seed", job_id), now)):
                continue
            if self.chain.get_job(job_id).state != JobState.SUBMITTED:
                self._seed_settled.add(job_id)
                continue
            if self._upkeep_send("fix_seed", job_id, self.chain.fix_seed_data(job_id), head):
                self._seed_fix_sent[job_id] = head
            else:
                self._seed_settled.add(job_id)  # fixed already (or lost): nothing to send

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
                if not self._expirable(job_id, chain_now):
                    continue
                self._upkeep_since[key] = now
            if not self._turn(job_id, self._upkeep_since[key]):
                continue
            if self._expirable(job_id, chain_now):  # the turn may have come late
                self._upkeep_send("expire", job_id, self.chain.expire_data(job_id), head)

    def _expirable(self, job_id: int, chain_now: int) -> bool:
        """Whether `expireJob(job_id)` is due by the chain's state (as at `chain_now`)."""
        onchain = self.chain.get_job(job_id)
        if onchain.state == JobState.POSTED:
            return chain_now > onchain.accept_by
        if onchain.state == JobState.ACCEPTED:
            if chain_now > onchain.deliver_by:
                return True
            self._deliver_by[job_id] = onchain.deliver_by
            return False
        if onchain.state != JobState.SUBMITTED:  # ended; ingestion will close its spec
            self._ended.add(job_id)
        return False

    def _upkeep_send(self, kind: str, job_id: int, data: bytes, head: int) -> bool:
        """Sends an upkeep call; False (logged) when it would revert, so nothing went out."""
        assert self.txm is not None
        gas = self._estimate(data, [job_id], what=kind)
        if gas is None:
            return False
        tx_id = self.txm.send(kind, [job_id], data, gas, head)
        self.metrics.inc("oracle_transactions_sent_total")
        event(log, "upkeep_sent", kind=kind, tx_id=tx_id, job=job_id)
        return True
