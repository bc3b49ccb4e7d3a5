"""The oracle's main loop: how ingestion, verification, signing, transmission and the
transaction sender (`oracle.sending`) fit together.

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
6. mark jobs whose verdict deadline passed as ``expired``; on a market seeding challenges
   with RANDAO, record each confirmed seed block's mix from its header (the RandaoRecorder's
   ``record``, in turn with the other oracles: step 2 waits on it);
7. upkeep, in turn with the other oracles: store the challenge seed of a job still unsettled
   when its seed block grows old (``fixChallengeSeed``, long before EIP-2935 history loses
   it: a commitment gets one draw, never a second), lapse a job whose verdict deadline passed
   unsettled (``expireJob``: refund the client, unlock the provider's collateral), and end
   a job nobody accepted by its deadline (``expireJob``: refund) or accepted but never
   delivered (``expireJob``: default - the client gets the payment and compensation from
   the provider's collateral).

Each step persists its result before the next one starts, so a crash (a SIGKILL, say)
between any two lines loses nothing: the next start resumes from the store.

`Oracle` holds the lifecycle and the tick; each step's work and state live in a role:
`oracle.verification.Verification` (2, 3), `oracle.settlement.Settlement` (what became of
the transactions of 4, and 5), `oracle.upkeep.Deadlines` (6) and `oracle.upkeep.Upkeep` (7).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import requests
from sqlalchemy.exc import OperationalError
from web3.exceptions import Web3RPCError

from neurotoken.chain.sender import Sender
from neurotoken.errors import NeurotokenError
from neurotoken.market.verdicts import MarketDomain
from oracle.api import ApiServer, ApiState
from oracle.chain import MarketChain
from oracle.errors import StartupInterruptedError
from oracle.ingest import Ingestor
from oracle.keys import OracleKey
from oracle.logs import event, get_logger
from oracle.metrics import Metrics
from oracle.sending import oracle_sender
from oracle.settings import OracleSettings
from oracle.settlement import UPKEEP_KINDS, Ready, Settlement
from oracle.store import Store, StoreJournal
from oracle.transmit_turns import transmit_order, transmit_rank, turn_watch
from oracle.upkeep import Deadlines, Upkeep
from oracle.verification import TRANSIENT_PROVIDER, Verification
from oracle.verify import VerifierPool

__all__ = [
    "TRANSIENT_PROVIDER",
    "UPKEEP_KINDS",
    "Oracle",
    "Ready",
    "transmit_order",
    "transmit_rank",
    "turn_watch",
]

log = get_logger("service")
T = TypeVar("T")


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
            settings.rpc_url,
            settings.market,
            settings.abi_path,
            settings.rpc_timeout_s,
            from_block=settings.start_block,
            block_range=settings.block_range,
        )
        self.ingestor = Ingestor(
            self.chain,
            self.store,
            confirmations=settings.confirmations,
            block_range=settings.block_range,
            start_block=settings.start_block,
            crash=self._crash,
        )
        self.pool = VerifierPool(
            workers=settings.verify_workers, timeout_s=settings.verify_timeout_s
        )
        self.session = requests.Session()
        self.session.trust_env = False
        self.peer_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="peers")
        self.sender: Sender | None = None
        self.api: ApiServer | None = None
        self.domain: MarketDomain | None = None
        self.stopping = threading.Event()
        # the roles, made in `start` once what they need exists (`settlement` and `upkeep`
        # only with a key: a dry-run oracle never transmits)
        self.deadlines = Deadlines(store=self.store, log=log)
        self.verification: Verification | None = None
        self.settlement: Settlement | None = None
        self.upkeep: Upkeep | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, serve_http: bool = True) -> None:
        version = self._until_database(self.store.migrate)
        delay = 0.5
        while True:
            try:
                chain_id = self.chain.chain_id
                break
            except Exception as exc:
                if self.stopping.is_set():
                    raise StartupInterruptedError("stopped while waiting for the node") from None
                event(log, "rpc_unavailable", level=30, error=str(exc)[:200])
                self.stopping.wait(delay)
                delay = min(delay * 2, 10)
        domain = self.domain = MarketDomain(chain_id, self.chain.address)
        self._until_database(lambda: self.store.bind_identity(chain_id, self.chain.address))
        requeued = self._until_database(self.store.recover)
        self.pool.warm()
        self.verification = Verification(
            store=self.store,
            chain=self.chain,
            pool=self.pool,
            key=self.key,
            domain=domain,
            settings=self.settings,
            metrics=self.metrics,
            log=log,
            crash=self._crash,
        )
        if self.key is not None:
            sender = self.sender = oracle_sender(
                self.chain,
                self.key,
                StoreJournal(self.store, self.key.address),
                self.settings,
                on_broadcast=lambda: self._crash("after_send"),
                on_replaced=lambda: self._crash("after_replacement"),
            )
            self._retrying(sender.sync)
            settlement = self.settlement = Settlement(
                store=self.store,
                chain=self.chain,
                key=self.key,
                sender=sender,
                domain=domain,
                settings=self.settings,
                metrics=self.metrics,
                session=self.session,
                peer_pool=self.peer_pool,
                log=log,
            )
            self.upkeep = Upkeep(
                store=self.store,
                chain=self.chain,
                sender=sender,
                settlement=settlement,
                settings=self.settings,
                metrics=self.metrics,
                log=log,
            )
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

    def _until_database(self, fn: Callable[[], T]) -> T:
        """`fn()` (a start-up step that needs the database), again and again while a database
        server cannot be reached: an oracle (re)started while its PostgreSQL is down (being
        restarted, failing over) waits for it, as it waits for its node, instead of exiting.
        A SQLite file that cannot be opened is a configuration error: it fails at once."""
        delay = 0.5
        while True:
            try:
                return fn()
            except OperationalError as exc:
                if self.store.engine.dialect.name == "sqlite":
                    raise
                if self.stopping.is_set():
                    raise StartupInterruptedError(
                        "stopped while waiting for the database"
                    ) from None
                event(log, "database_unavailable", level=30, error=str(exc.orig or exc)[:200])
                self.stopping.wait(delay)
                delay = min(delay * 2, 10)

    def _retrying(self, fn: object) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                fn()  # type: ignore[operator]
                return
            except (
                NeurotokenError,
                requests.RequestException,
                Web3RPCError,
                OSError,
                OperationalError,  # the database went away (a sync reads the journal)
            ) as exc:
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
        verification, settlement, upkeep = self.verification, self.settlement, self.upkeep
        if verification is None:
            raise RuntimeError("Oracle.tick before Oracle.start")
        head_block = self.chain.block("latest")
        if head_block is None:
            return
        head, chain_now = head_block.number, head_block.timestamp
        if settlement is not None:
            settlement.new_tick()
        report = self.ingestor.tick(head)
        if report.rollback is not None:
            self.metrics.inc("oracle_reorgs_total")
        verification.schedule(head, chain_now)
        verification.collect(chain_now)
        verification.sign()
        if settlement is not None:
            settlement.apply_outcomes(settlement.sender.poll(head))
            if self.settings.transmit:
                settlement.transmit(head, chain_now)
        self.deadlines.expire(chain_now)
        if upkeep is not None and self.settings.transmit:
            upkeep.record_mixes(head)  # verification waits on it: not left to `upkeep`
            if self.settings.upkeep:
                upkeep.upkeep(head, chain_now)
        cursor = self.ingestor.cursor()
        m = self.metrics
        m.set("oracle_head_block", head)
        m.set("oracle_cursor_block", cursor)
        m.set("oracle_head_lag_blocks", max(0, head - cursor))
        m.set("oracle_pending_transactions", len(self.sender.pending()) if self.sender else 0)
        m.set("oracle_verifications_running", self.pool.busy)
        if self.sender is not None:
            m.counters["oracle_transactions_replaced_total"] = self.sender.replacements
        m.set("oracle_last_tick_timestamp_seconds", time.time())
