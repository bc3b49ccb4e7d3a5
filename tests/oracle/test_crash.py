"""Crash injection: oracle processes SIGKILLed after verifying, after signing, and after
sending a settlement but before its receipt; restarted each time. Every job must end settled
exactly once, with the right outcome, and every oracle's store must end complete, with at
most one signature of its own per job.

This is the short check `make test` runs; the campaigns (hundreds of SIGKILLs at each crash
point, after a fee replacement and mid-ingest too, and at random instants) are in
tests/oracle/test_soak_crash.py, under `make soak`."""

from __future__ import annotations

import time
from collections.abc import Callable

from devchain.localnet import OracleProcess, small_spec
from oracle.store import SETTLED
from tests.oracle.helpers import PAID, REJECTED, assert_settled_once, store_of


def supervise(oracles: list[OracleProcess], done: Callable[[], bool], timeout: float) -> None:
    """Restarts any oracle that died until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("jobs did not all settle: " + " | ".join(o.tail(5) for o in oracles))
        for o in oracles:
            if not o.running():
                o.start()
        time.sleep(0.2)


def run_jobs(net, oracles: list[OracleProcess], jobs: int) -> dict[int, int]:
    """Posts and fulfils `jobs` jobs (odd ones by the cheat) and waits for them to settle,
    restarting dead oracles."""
    m = net.market
    expected: dict[int, int] = {}
    for o in oracles:
        o.start()
    for i in range(jobs):
        spec = small_spec(seed=100 + i)
        job = net.client.post(spec)
        cheat = i % 2 == 1
        (net.cheat if cheat else net.honest).fulfil(job, spec)
        expected[job] = REJECTED if cheat else PAID
    supervise(oracles, lambda: all(m.state(j) == s for j, s in expected.items()), timeout=240)
    return expected


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
    # Three jobs (two honest, one cheat): every oracle meets its point on each; the campaigns
    # of `make soak` repeat this a hundred times per point.
    expected = run_jobs(net, oracles, jobs=3)
    assert_settled_once(net.market, list(expected))
    check_stores(oracles, expected)
    crashes = {o.name: len(o.events("crash_injected")) for o in oracles}
    print(f"\nSIGKILLs injected: {crashes}, starts {sum(o.starts for o in oracles)}")
    assert all(n >= 1 for n in crashes.values()) and sum(crashes.values()) >= 3, crashes
