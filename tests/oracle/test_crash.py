"""Crash injection: oracle processes SIGKILLed after verifying, after signing, after
sending a settlement but before its receipt, and at random instants; restarted each time.
Every job must end settled exactly once, with the right outcome, and every oracle's store
must end complete, with at most one signature of its own per job."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from devchain.localnet import OracleProcess, small_spec, wait_until
from oracle.store import SETTLED
from tests.oracle.helpers import PAID, REJECTED, assert_settled_once, store_of


def supervise(
    oracles: list[OracleProcess],
    done: Callable[[], bool],
    timeout: float,
    kill_every: tuple[float, float] | None = None,
    rng: random.Random | None = None,
    max_kills: int = 10,
) -> int:
    """Restarts any oracle that died until `done()`; with `kill_every=(lo, hi)` also
    SIGKILLs a random running oracle every lo..hi seconds, `max_kills` times at most.
    Returns the number of external kills."""
    rng = rng or random.Random(7)
    kills = 0
    next_kill = time.monotonic() + (rng.uniform(*kill_every) if kill_every else 1e9)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("jobs did not all settle: " + " | ".join(o.tail(5) for o in oracles))
        for o in oracles:
            if not o.running():
                o.start()
        if kill_every and kills < max_kills and time.monotonic() >= next_kill:
            victim = rng.choice([o for o in oracles if o.running()] or oracles)
            victim.kill()
            kills += 1
            next_kill = time.monotonic() + rng.uniform(*kill_every)
        time.sleep(0.2)
    return kills


def run_jobs(
    net,
    oracles: list[OracleProcess],
    jobs: int,
    supervised: bool = True,
    spacing_s: float = 0.0,
    **supervise_kwargs: object,
) -> tuple[dict[int, int], int]:
    """Posts and fulfils `jobs` jobs (odd ones by the cheat) and waits for them to settle,
    restarting dead oracles (unless another thread is `supervised=False`'s supervisor)."""
    m = net.market
    expected: dict[int, int] = {}
    if supervised:
        for o in oracles:
            o.start()
    for i in range(jobs):
        spec = small_spec(seed=100 + i)
        job = net.client.post(spec)
        cheat = i % 2 == 1
        (net.cheat if cheat else net.honest).fulfil(job, spec)
        time.sleep(spacing_s)
        expected[job] = REJECTED if cheat else PAID
    settled = lambda: all(m.state(j) == s for j, s in expected.items())  # noqa: E731
    if not supervised:
        wait_until(settled, 240, what="jobs to settle")
        return expected, 0
    kills = supervise(oracles, settled, timeout=240, **supervise_kwargs)  # type: ignore[arg-type]
    return expected, kills


def check_stores(oracles: list[OracleProcess], expected: dict[int, int]) -> None:
    """Each oracle (restarted as long as it keeps dying) ends with every job settled and at most one
    signature of its own per job, for the right verdict."""
    supervise(
        oracles,
        lambda: all(
            {j.job_id: j.state for j in store_of(o).jobs()} == dict.fromkeys(expected, SETTLED)
            for o in oracles
        ),
        timeout=60,
    )
    for o in oracles:
        store = store_of(o)
        for job_id, state in expected.items():
            own = store.signatures(job_id, own=True)
            # none if the others settled it first while this one was down
            assert len(own) <= 1, (o.name, job_id, own)
            assert all(s.accepted == (state == PAID) for s in own)


def test_sigkill_after_verify_sign_and_send__every_job_settled_exactly_once(make_net) -> None:
    net = make_net()
    # Every oracle dies at its point each time it gets there (probability 1: each job is
    # verified, signed or sent once, so a restart never meets the same point for it again).
    # A probability below 1 left the count to chance: under load an oracle once got none.
    points = {"oracle1": ("after_verify", "1.0"), "oracle2": ("after_sign", "1.0"),
              "oracle3": ("after_send", "1.0")}  # fmt: skip
    oracles = net.oracle_set(
        env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "2"},
        per_oracle_env=[
            {"ORACLE_CRASH_AT": point, "ORACLE_CRASH_PROBABILITY": p}
            for point, p in points.values()
        ],
    )
    expected, _ = run_jobs(net, oracles, jobs=6)
    assert_settled_once(net.market, list(expected))
    check_stores(oracles, expected)
    crashes = {o.name: len(o.events("crash_injected")) for o in oracles}
    print(f"\nSIGKILLs injected: {crashes}, starts {sum(o.starts for o in oracles)}")
    assert all(n >= 1 for n in crashes.values()) and sum(crashes.values()) >= 6, crashes


@pytest.mark.soak
def test_sigkill_at_random_instants__every_job_settled_exactly_once(make_net) -> None:
    net = make_net()
    oracles = net.oracle_set(env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "2"})
    stop = threading.Event()
    kills: list[int] = []

    def chaos() -> None:  # from the first job to the last settlement
        kills.append(
            supervise(oracles, stop.is_set, timeout=600, kill_every=(1.0, 3.0), max_kills=12,
                      rng=random.Random(11))
        )  # fmt: skip

    for o in oracles:
        o.start()
    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    try:
        expected, _ = run_jobs(net, oracles, jobs=8, supervised=False, spacing_s=1.5)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert_settled_once(net.market, list(expected))
    check_stores(oracles, expected)
    print(f"\nrandom: {kills[0]} SIGKILLs from outside")
    assert kills[0] >= 6
