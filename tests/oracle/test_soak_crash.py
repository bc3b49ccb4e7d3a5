"""The oracle's SIGKILL campaigns (issue 13, under `make soak`): three oracles, each killed
at one crash point every time it gets there (after verifying, after signing, after sending,
after a fee replacement, in the middle of ingesting), or from outside at random instants,
restarted every time, while jobs flow; and PostgreSQL stopped and started under three
running oracles.

Each campaign feeds jobs (odd ones by the cheating provider) until the kills counted from the
oracles' own ``crash_injected`` lines (or the killer's counter) reach ``scaled(n)``, then
lets every job settle and asserts: each job settled exactly once with the right outcome
(honest Paid, cheat Rejected), each oracle's store complete with at most one signature of its
own per job (for the right verdict), every SIGKILL accounted for (the processes' exit
statuses), no oracle ended any other way; then the market's invariants, then the figures.

The oracles are `WarmOracleProcess`es (tests/oracle/warm_oracles.py): forked from a launcher
that imported the oracle once, they restart in under a second where ``python -m oracle run``
took 3 to 15 s on two loaded cores; the start-up time is measured and reported.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from devchain.invariants import check_market_invariants
from devchain.localnet import OracleProcess, small_spec, wait_until
from devchain.oracles import log_events
from oracle.store import SETTLED
from tests.constants import PAID, REJECTED
from tests.oracle.helpers import assert_settled_once, store_of
from tests.oracle.postgres import TempPostgres
from tests.oracle.test_database_outage import own_postgres  # noqa: F401 (a fixture)
from tests.oracle.warm_oracles import WarmOracleProcess, warm_oracle_set
from tests.soak import Campaign, scaled

pytestmark = pytest.mark.soak

SIGKILL_EXIT = -9
OUTAGE_TICKS = 6
"""Failed ticks each oracle logs while PostgreSQL is down, before it is started again."""


def warm_set(
    net: Any, backup_delay_s: str, env: dict[str, str] | None = None
) -> list[WarmOracleProcess]:
    """The three oracles of `net`, forked from a warm launcher, reading from the market's
    deployment block, a backup transmitter waiting `backup_delay_s` per rank."""
    return warm_oracle_set(
        net.market,
        net.folder / "warm",
        net.anvil.url,
        env={
            "ORACLE_START_BLOCK": str(net.market.deploy_block),
            "ORACLE_TRANSMIT_BACKUP_DELAY_S": backup_delay_s,
            **(env or {}),
        },
    )


# ---------------------------------------------------------------------------- the fleet


@dataclass
class Tail:
    """An oracle's JSON log read incrementally: counts of each event since the test began."""

    process: OracleProcess
    offset: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    points: Counter[str] = field(default_factory=Counter)
    """``crash_injected`` lines by crash point."""

    def read(self) -> list[dict[str, Any]]:
        path = self.process.log_path
        if not path.exists():
            return []
        with path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # complete lines only
        self.offset += end
        out = []
        for item in log_events(chunk[:end].decode(errors="replace")):
            name = str(item.get("event"))
            self.counts[name] += 1
            if name == "crash_injected":
                self.points[str(item.get("point"))] += 1
            out.append(item)
        return out


class Fleet:
    """Three oracles kept running: a thread restarts each one that ended (counting how it
    ended) and measures how long each start takes to log ``oracle_started``; with
    `lifetime` = (lo, hi), while `killing` is set, it SIGKILLs each oracle at a random
    instant lo..hi seconds after it has started (mid-tick, mid-verification, mid-send...)."""

    def __init__(
        self,
        oracles: list[WarmOracleProcess],
        lifetime: tuple[float, float] | None = None,
        seed: int = 13,
    ) -> None:
        self.oracles = oracles
        self.tails = {o.name: Tail(o) for o in oracles}
        self.lifetime = lifetime
        self.rng = random.Random(seed)
        self.killing = threading.Event()
        self.external_kills = 0
        self.exits: Counter[int] = Counter()
        self.unexpected: list[str] = []
        self.startup_s: list[float] = []
        self._started_at: dict[str, float] = {}
        self._up: dict[str, bool] = {}
        self._death_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the thread

    def start(self) -> Fleet:
        for o in self.oracles:
            self._launch(o)
        self._thread.start()
        return self

    def _launch(self, o: WarmOracleProcess) -> None:
        o.start()
        self._started_at[o.name] = time.monotonic()
        self._up[o.name] = False

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for o in self.oracles:
                    self._look(o)
            self._stop.wait(0.05)

    def _look(self, o: WarmOracleProcess) -> None:
        for item in self.tails[o.name].read():
            if item.get("event") == "oracle_started" and not self._up[o.name]:
                now = time.monotonic()
                self._up[o.name] = True
                self.startup_s.append(now - self._started_at[o.name])
                if self.lifetime is not None:
                    self._death_at[o.name] = now + self.rng.uniform(*self.lifetime)
        if (
            self.killing.is_set()
            and self._up[o.name]
            and time.monotonic() >= self._death_at.get(o.name, float("inf"))
            and o.running()
        ):
            o.kill()
            self.external_kills += 1
        if o.running():
            return
        self._ended(o)
        self._launch(o)

    def _ended(self, o: WarmOracleProcess) -> None:
        code = o.exitcode
        assert code is not None
        self.exits[code] += 1
        if code != SIGKILL_EXIT:
            self.unexpected.append(f"{o.name} exited with {code}: {o.tail(12)}")

    # ------------------------------------------------------------ the test's side

    def kill(self, o: WarmOracleProcess) -> None:
        """SIGKILLs `o` from outside now (counted with the random kills); it is restarted."""
        with self._lock:
            o.kill()
            self.external_kills += 1

    def check(self) -> bool:
        """Fails at once if an oracle ended other than by a SIGKILL (True otherwise)."""
        assert not self.unexpected, self.unexpected
        return True

    def stop(self) -> None:
        """Stops restarting, then stops the oracles (SIGTERM); counts the ends of those that
        had died (or die now) by themselves; an oracle that does not stop cleanly is
        `unexpected`."""
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for o in self.oracles:
                if o.proc is None:
                    continue
                was_running = o.running()
                o.stop()
                self.tails[o.name].read()
                if not was_running or o.exitcode == SIGKILL_EXIT:
                    self._ended(o)
                elif o.exitcode not in (0, -15):  # -15: stopped before its handlers were set
                    self.unexpected.append(f"{o.name} stopped with {o.exitcode}: {o.tail(12)}")

    def crashes(self, point: str) -> int:
        """``crash_injected`` lines for `point` in all the oracles' logs so far."""
        with self._lock:
            for tail in self.tails.values():
                tail.read()
            return sum(t.points[point] for t in self.tails.values())

    def count(self, event: str) -> int:
        with self._lock:
            for tail in self.tails.values():
                tail.read()
            return sum(t.counts[event] for t in self.tails.values())

    def count_of(self, name: str, event: str) -> int:
        with self._lock:
            tail = self.tails[name]
            tail.read()
            return tail.counts[event]

    def starts(self) -> int:
        return sum(o.starts for o in self.oracles)

    def startup_figures(self, campaign: Campaign) -> None:
        times = sorted(self.startup_s)
        if not times:
            return
        campaign.figure("oracle_starts", self.starts())
        campaign.figure("startup_median_s", round(statistics.median(times), 2))
        campaign.figure("startup_p90_s", round(times[int(0.9 * (len(times) - 1))], 2))


# ---------------------------------------------------------------------------- jobs


class Jobs:
    """Posts and fulfils jobs (every other one by the cheat), keeping `in_flight` unsettled
    at a time, and follows them to their settlement."""

    def __init__(self, net: Any, seed: int) -> None:
        self.net = net
        self.seed = seed
        self.expected: dict[int, int] = {}
        self.open: set[int] = set()

    def post_one(self) -> int:
        i = len(self.expected)
        spec = small_spec(seed=self.seed + i)
        job = int(self.net.client.post(spec))
        cheat = i % 2 == 1
        (self.net.cheat if cheat else self.net.honest).fulfil(job, spec)
        self.expected[job] = REJECTED if cheat else PAID
        self.open.add(job)
        return job

    def settled(self) -> bool:
        m = self.net.market
        self.open = {j for j in self.open if m.state(j) != self.expected[j]}
        return not self.open

    def feed(
        self,
        enough: Callable[[], bool],
        fleet: Fleet,
        in_flight: int,
        max_jobs: int,
        what: str,
        timeout: float,
    ) -> None:
        """Posts jobs until `enough()`; fails past `max_jobs` or `timeout`."""
        deadline = time.monotonic() + timeout
        while not enough():
            fleet.check()
            assert time.monotonic() < deadline, f"{what}: not enough after {timeout}s"
            self.settled()
            if len(self.open) < in_flight:
                assert len(self.expected) < max_jobs, f"{what}: not enough after {max_jobs} jobs"
                self.post_one()
            else:
                wait_until(lambda: enough() or (self.settled() or len(self.open) < in_flight),
                           timeout, interval=0.2, what=what)  # fmt: skip

    def wait_settled(self, fleet: Fleet, timeout: float) -> None:
        def done() -> bool:
            fleet.check()
            return self.settled()

        wait_until(done, timeout, interval=0.3, what=f"jobs to settle (open: {self.open})")


def stores_complete(oracles: list[WarmOracleProcess], expected: dict[int, int]) -> bool:
    want = dict.fromkeys(expected, SETTLED)
    return all({j.job_id: j.state for j in store_of(o).jobs()} == want for o in oracles)


def check_outcome(net: Any, oracles: list[WarmOracleProcess], expected: dict[int, int]) -> None:
    """Every job settled once with the right outcome; each store at most one signature of
    its own per job, for the right verdict."""
    m = net.market
    assert {j: m.state(j) for j in expected} == expected
    assert_settled_once(m, list(expected))
    for o in oracles:
        store = store_of(o)
        for job_id, state in expected.items():
            own = store.signatures(job_id, own=True)
            assert len(own) <= 1, (o.name, job_id, own)
            assert all(s.accepted == (state == PAID) for s in own), (o.name, job_id, own)


def check_invariants(net: Any, expected: dict[int, int], campaign: Campaign) -> None:
    """The market's invariants from the chain (`devchain.invariants`), its figures noted."""
    figures = check_market_invariants(net.market.w3, net.market.market.address, list(expected))
    campaign.note(f"market invariants held: {figures}")


class Miner:
    """Mines a block every `interval` seconds on an automine-off node; while `blockade` is
    set it first removes every pending transaction of `blocked` from the node's pool (the
    node 'drops' them: they stay without a receipt until they are sent again)."""

    def __init__(self, anvil: Any, blocked: list[str], interval: float = 0.5) -> None:
        self.anvil = anvil
        self.blocked = blocked
        self.interval = interval
        self.blockade = threading.Event()
        self.removed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="miner", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.blockade.is_set():
                before = int(self.anvil.rpc("txpool_status")["pending"], 16)
                for address in self.blocked:
                    self.anvil.rpc("anvil_removePoolTransactions", address)
                after = int(self.anvil.rpc("txpool_status")["pending"], 16)
                self.removed += max(0, before - after)
            self.anvil.rpc("evm_mine")

    def start(self) -> Miner:
        self.anvil.rpc("evm_setAutomine", False)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# ---------------------------------------------------------------------------- crash points


@dataclass(frozen=True)
class Point:
    name: str
    probability: str = "1.0"
    env: dict[str, str] = field(default_factory=dict)
    in_flight: int = 6
    miner: bool = False
    """Automine off, a block every 0.5 s (the test's `Miner`)."""
    blockade: bool = False
    """The oracles' transactions are dropped from the pool until the kills are in."""


POINTS = [
    Point("after_verify"),
    Point("after_sign"),
    # Every quorum signer sends at once (no backup delay) and each settlement is its own
    # transaction; blocks every 0.5 s leave time for several to be sent for one job.
    Point("after_send", env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "0", "ORACLE_BATCH_MAX": "1"},
          miner=True),
    # Settlements are dropped from the node's pool, so each is stuck after a block and
    # replaced (25% more each time, under a cap far away) by each oracle that sent one.
    Point("after_replacement", miner=True, blockade=True, in_flight=3,
          env={"ORACLE_STUCK_AFTER_BLOCKS": "1", "ORACLE_BATCH_MAX": "1",
               "ORACLE_TRANSMIT_BACKUP_DELAY_S": "1", "ORACLE_MAX_FEE_GWEI": "100000"}),
    # Ranges of two blocks: a restart's backlog is several ranges, and the crash falls
    # between two of their commits. At p = 1 an oracle that dies after every range with logs
    # would never get past ingesting while jobs flow.
    # (A kill needs new logs, and new logs need new jobs: more of them in flight.)
    Point("mid_ingest", probability="0.5", env={"ORACLE_BLOCK_RANGE": "2"}, in_flight=10),
]  # fmt: skip


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_sigkill_campaign_at_crash_point__every_job_settled_exactly_once(
    make_net: Callable[..., Any], point: Point
) -> None:
    asked = scaled(100)
    campaign = Campaign(
        f"oracle-sigkill-{point.name.replace('_', '-')}",
        f"Oracle: SIGKILL {point.name.replace('_', ' ')} (3 oracles, p = {point.probability})",
    )
    net = make_net(block_time=None if point.miner else 1)
    miner = Miner(net.anvil, net.market.oracle_addresses).start() if point.miner else None
    oracles = warm_set(
        net,
        "2",
        {**point.env, "ORACLE_CRASH_AT": point.name, "ORACLE_CRASH_PROBABILITY": point.probability},
    )
    net.oracles += oracles
    jobs = Jobs(net, seed=1000)
    fleet = Fleet(oracles).start()
    try:
        if miner is not None and point.blockade:
            miner.blockade.set()
        jobs.feed(lambda: fleet.crashes(point.name) >= asked, fleet, point.in_flight,
                  max_jobs=3 * asked + 20, what=f"{asked} kills {point.name}",
                  timeout=900)  # fmt: skip
        if miner is not None:
            miner.blockade.clear()
        jobs.wait_settled(fleet, timeout=300)
        wait_until(lambda: fleet.check() and stores_complete(oracles, jobs.expected), 120,
                   what="every store complete")  # fmt: skip
    finally:
        fleet.stop()
        if miner is not None:
            miner.stop()
    kills = fleet.crashes(point.name)
    assert fleet.unexpected == [], fleet.unexpected
    # every crash line is one SIGKILL exit, and every SIGKILL exit had its line
    assert fleet.exits[SIGKILL_EXIT] == kills, (dict(fleet.exits), kills)
    check_outcome(net, oracles, jobs.expected)
    check_invariants(net, jobs.expected, campaign)
    campaign.figure(f"sigkills_{point.name}", kills, asked)
    campaign.figure("jobs", len(jobs.expected))
    fleet.startup_figures(campaign)
    if miner is not None and point.blockade:
        campaign.figure("transactions_dropped_from_pool", miner.removed)
        campaign.figure("replacements", fleet.count("tx_replaced"))
    campaign.note(f"kills per oracle: {[t.points[point.name] for t in fleet.tails.values()]}")
    campaign.report()


def test_sigkill_campaign_at_random_instants__every_job_settled_exactly_once(
    make_net: Callable[..., Any],
) -> None:
    asked = scaled(200)
    campaign = Campaign(
        "oracle-sigkill-random", "Oracle: SIGKILL at random instants (3 oracles, from outside)"
    )
    net = make_net()
    # A backup's turn counts from its own start (in memory): at 2 s, one that lives 2 s on
    # average would seldom reach it.
    oracles = warm_set(net, "0.5")
    net.oracles += oracles
    jobs = Jobs(net, seed=2000)
    # Each oracle is killed at a random instant 0.3..4 s after it has started: mid-tick,
    # mid-verification, mid-send, mid-ingest; about half the time two are up together.
    fleet = Fleet(oracles, lifetime=(0.3, 4.0), seed=11).start()
    try:
        fleet.killing.set()
        jobs.feed(lambda: fleet.external_kills >= asked, fleet, in_flight=6,
                  max_jobs=asked + 20, what=f"{asked} random kills", timeout=900)  # fmt: skip
        fleet.killing.clear()
        jobs.settled()
        settled_while_killing = len(jobs.expected) - len(jobs.open)
        jobs.wait_settled(fleet, timeout=300)
        wait_until(lambda: fleet.check() and stores_complete(oracles, jobs.expected), 120,
                   what="every store complete")  # fmt: skip
    finally:
        fleet.stop()
    kills = fleet.external_kills
    assert fleet.unexpected == [], fleet.unexpected
    assert fleet.exits[SIGKILL_EXIT] == kills, (dict(fleet.exits), kills)
    assert fleet.count("crash_injected") == 0
    check_outcome(net, oracles, jobs.expected)
    check_invariants(net, jobs.expected, campaign)
    campaign.figure("sigkills_random", kills, asked)
    campaign.figure("jobs", len(jobs.expected))
    campaign.figure("jobs_settled_while_killing", settled_while_killing)
    fleet.startup_figures(campaign)
    campaign.report()


# ---------------------------------------------------------------------------- PostgreSQL


def settled_at_least(jobs: Jobs, count: int) -> bool:
    return len(jobs.expected) - len(jobs.open) >= count


def failed_ticks(
    fleet: Fleet, oracles: list[WarmOracleProcess], since: list[int] | None = None
) -> list[int]:
    """Each oracle's ``tick_failed`` lines (since `since`, the counts at an earlier time)."""
    now = [fleet.count_of(o.name, "tick_failed") for o in oracles]
    return now if since is None else [n - b for n, b in zip(now, since, strict=True)]


def all_noticed(fleet: Fleet, oracles: list[WarmOracleProcess], since: list[int]) -> bool:
    """Every oracle failed `OUTAGE_TICKS` ticks since `since`: the server is down for a few
    seconds (ticks come every 0.25 s and more slowly while failing)."""
    return all(n >= OUTAGE_TICKS for n in failed_ticks(fleet, oracles, since))


def test_postgresql_restarted_under_running_oracles__they_carry_on_and_settle_once(
    make_net: Callable[..., Any],
    own_postgres: TempPostgres,  # noqa: F811 (the fixture imported above)
) -> None:
    asked = scaled(5)
    campaign = Campaign(
        "oracle-postgresql-restarts",
        "Oracle: PostgreSQL stopped and started under three running oracles",
    )
    net = make_net()
    oracles = warm_set(net, "2")
    for o in oracles:
        o.database_url = own_postgres.create_database()
    net.oracles += oracles
    jobs = Jobs(net, seed=3000)
    fleet = Fleet(oracles).start()
    restarts = 0
    modes = ["fast", "immediate"]
    failed: list[int] = []
    try:
        wait_until(lambda: fleet.count("oracle_started") >= 3, 120, what="three oracles up")
        while restarts < asked:
            # jobs in flight, and one more settled since the last restart
            target = len(jobs.expected) - len(jobs.open) + 1
            jobs.feed(partial(settled_at_least, jobs, target), fleet, in_flight=4,
                      max_jobs=10 * asked + 10, what="a job settled", timeout=300)  # fmt: skip
            before = failed_ticks(fleet, oracles)
            own_postgres.stop_server(modes[restarts % 2])
            # down until every oracle has noticed (failed ticks each); one is SIGKILLed and
            # restarted meanwhile: it waits for the database; then the server is up again
            wait_until(partial(all_noticed, fleet, oracles, before), 60,
                       what="each oracle to notice the database gone")  # fmt: skip
            victim = oracles[restarts % len(oracles)]
            waited = fleet.count_of(victim.name, "database_unavailable")
            fleet.kill(victim)
            wait_until(lambda: fleet.count_of(victim.name, "database_unavailable") > waited,  # noqa: B023
                       60, what=f"{victim.name} restarted to wait for the database")  # fmt: skip
            own_postgres.start_server()
            restarts += 1
            failed.append(sum(failed_ticks(fleet, oracles, before)))
            fleet.check()
        # two more jobs after the last restart, then every one settled
        posted = len(jobs.expected)
        jobs.feed(lambda: len(jobs.expected) >= posted + 2, fleet, in_flight=4,
                  max_jobs=posted + 2, what="jobs after the restarts", timeout=300)  # fmt: skip
        jobs.wait_settled(fleet, timeout=300)
        wait_until(lambda: fleet.check() and stores_complete(oracles, jobs.expected), 120,
                   what="every store complete")  # fmt: skip
        # nobody died but the oracles killed on purpose, each restarted once
        assert fleet.starts() == 3 + restarts, (fleet.starts(), restarts)
        assert fleet.exits == Counter({SIGKILL_EXIT: restarts}), (dict(fleet.exits), restarts)
    finally:
        fleet.stop()
    assert fleet.unexpected == [], fleet.unexpected
    check_outcome(net, oracles, jobs.expected)
    check_invariants(net, jobs.expected, campaign)
    campaign.figure("postgresql_restarts", restarts, asked)
    campaign.figure("jobs", len(jobs.expected))
    campaign.figure("failed_ticks_while_down", sum(failed))
    campaign.figure("oracles_restarted_while_down", fleet.external_kills)
    campaign.note(f"stop modes alternated: {modes}; failed ticks per outage: {failed}")
    campaign.report()
