"""The provider agent's SIGKILL campaign (issue 13): the agent process killed while
accepting, computing, submitting and serving, scaled(100) times each, restarted after every
kill; every job must end accepted once, submitted once, settled once and Paid.

The agent runs as `python -m neurotoken.provider agent run` (`tests/agent/agent_lives.py`:
most lives forked from a process that imported the agent's modules once, every 25th one a
fresh interpreter) with its fault injection (`neurotoken/provider/faults.py`): it SIGKILLs
itself at the points a life is armed with, after logging `crash_injected point=...`; the kills
are counted from those lines and each killed life's exit status (-SIGKILL).

Jobs come in batches of BATCH. For each batch:

1. work lives, armed at after_accept_sent, mid_compute and after_submit_sent (probability 1),
   one after another: each life dies at the first point it reaches, and each job meets each
   point once (a job has two shards: mid_compute fires after the first is journalled, not
   after the last), so three lives per job (and one more to follow the last submission)
   leave every job of the batch submitted. Only the test mines blocks meanwhile: every
   acceptJob and submitResult is still pending when its life dies, and the next life must
   follow it to its receipt rather than send another (it says so; the test then mines);
2. serve lives, armed at mid_serve: for each job the test, as an oracle, verifies the job's
   bundle from the agent's server with the oracle's own access token; the agent dies while
   answering the first proof or object request (the oracle already has the manifest), and the
   verification ends retryable;
3. one clean life (nothing armed) serves every bundle of the batch: the test verifies each
   one as two oracles would, settles it with their signatures (as tests/agent/conftest.py
   `Jobs.settle` does), and waits for the agent to record it paid.

Then the invariants: per job one JobAccepted, one ResultSubmitted, one JobPaid and nothing
else final (devchain/invariants.py: the market's NTK equals its books, nobody paid twice);
each pending transaction followed once, by the life after the one that sent it; each job's
shards computed once in all (the log's "N computed, M reused": 1 and 1, the first shard
journalled by the life that died); the agent's state file says paid for every job; the
provider's earnings are the jobs' net payments.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import pytest
import requests
from eth_account import Account
from hexbytes import HexBytes

from devchain.anvil import Anvil, anvil_keys
from devchain.contracts import Market, setup_local_market, transact
from devchain.invariants import check_market_invariants
from devchain.parties import Client, small_spec
from devchain.waits import wait_until
from neurotoken.chain.keystore import write_keystore
from neurotoken.jobs.spec import spec_hash
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_verdict
from neurotoken.ports import free_port
from neurotoken.proofs import Commitment, HttpLimits, HttpSource, verify_job
from neurotoken.proofs.access import BundleAccess
from neurotoken.provider.state import AgentState, JobStatus
from neurotoken.units import NTK
from tests.agent.agent_lives import Life, Lives
from tests.helpers import sorted_signatures
from tests.soak import Campaign, scaled

pytestmark = pytest.mark.soak

KILLS_PER_POINT = 100
"""The issue's count for each phase at size 1."""
BATCH = 4
"""Jobs posted at once (the agent's default policy holds at most 4 unsubmitted; a larger
batch makes every step read more jobs: each life costs more)."""
SHARDS = 2
CHALLENGES = 2
PAYMENT = 5 * NTK
COLLATERAL = 10 * NTK
FEE_BPS = 250  # setup_local_market's protocol fee
COLD_EVERY = 25
"""Every 25th life is a fresh interpreter (the others are forked, see agent_lives.py)."""
LIFE_TIMEOUT_S = 120.0
"""The longest a life may take to reach its point (two loaded cores; seconds are usual)."""
POINTS = ("after_accept_sent", "mid_compute", "after_submit_sent", "mid_serve")
WORK_POINTS = ",".join(POINTS[:3])
FIGURES = {
    "after_accept_sent": "SIGKILLs accepting (acceptJob broadcast, no receipt seen)",
    "mid_compute": "SIGKILLs computing (a shard journalled, one left)",
    "after_submit_sent": "SIGKILLs submitting (submitResult broadcast, no receipt seen)",
    "mid_serve": "SIGKILLs serving (an oracle fetching the bundle)",
}
PASSWORD_ENV = "SOAK_FARM_PASSWORD"
FAST = HttpLimits(timeout_s=10.0, retries=0)

CRASH_LINE = re.compile(r"crash_injected point=(\w+) job=(\S+) pid=(\d+)")
FOLLOWING = re.compile(
    r"job (\d+): following (acceptJob|submitResult)\(\d+\), sent before a restart"
)
PUBLISHED = re.compile(r"job (\d+): (\d+) shards computed, (\d+) reused from the journal")


@dataclass
class Kill:
    point: str
    job: str
    life: int


class Campaigner:
    """The chain, the agent's command line, its lives, and what they said."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.anvil = Anvil(log_path=folder / "anvil.log").start()
        self.w3 = self.anvil.web3()
        self.m: Market = setup_local_market(self.w3, fee_bps=FEE_BPS)
        self.client = Client(self.m, folder / "specs")
        keys = anvil_keys(20)
        self.provider_key = next(
            k for k in keys if Account.from_key(k).address == self.m.providers[0]
        )
        self.keystore = write_keystore(
            folder / "farm.json", HexBytes(self.provider_key), "soak", iterations=2
        )
        self.port = free_port()
        self.state = folder / "state"
        self.lives = Lives(folder / "lives")
        self.kills: list[Kill] = []
        self.clean_exits = 0
        self.ready_s: list[tuple[Life, float]] = []
        self.index_of: dict[int, int] = {}
        self.domain = MarketDomain(int(self.w3.eth.chain_id), self.m.market.address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            "agent", "--rpc", self.anvil.url, "--market", self.m.market.address,
            "--keystore", str(self.keystore), "--password-env", PASSWORD_ENV,
            "run", "--state", str(self.state), "--store", str(self.folder / "bundles"),
            "--confirmations", "0", "--from-block", str(self.m.deploy_block),
            "--serve-port", str(self.port), "--workers", "1", "--poll", "0.5", "--quiet",
        ]  # fmt: skip

    def start(self, points: str, cold: bool = False) -> Life:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROTOKEN_")}
        env.update({PASSWORD_ENV: "soak", "PYTHONUNBUFFERED": "1", "no_proxy": "127.0.0.1"})
        if points:
            env["NEUROTOKEN_AGENT_CRASH_AT"] = points
        cold = cold or len(self.lives.started) % COLD_EVERY == 0
        return self.lives.start(self.argv(), env, cold=cold)

    def mine_what_it_follows(self, life: Life, mined: int) -> int:
        """Mines a block for each transaction `life` said it follows (sent by a life before it,
        which died with it pending) beyond the `mined` already; returns the new count."""
        following = len(FOLLOWING.findall(life.text()))
        if following > mined:
            self.anvil.mine(following - mined)
        return following

    def ended(self, life: Life, timeout: float = LIFE_TIMEOUT_S) -> Kill:
        """Waits for `life` to die of an injected crash (mining what it follows, see
        `mine_what_it_follows`); its kill, as its log says."""
        deadline = time.monotonic() + timeout
        mined = 0
        while life.wait(0.1) is None and time.monotonic() < deadline:
            mined = self.mine_what_it_follows(life, mined)
        code = life.exitcode
        if code is None:
            life.signal_group(signal.SIGKILL)
            life.wait(10)
            raise AssertionError(f"life {life.log.name} reached no crash point:\n{life.text()}")
        found = CRASH_LINE.findall(life.text())
        assert code == -signal.SIGKILL and len(found) == 1, (code, found, life.text())
        point, job, pid = found[0]
        assert int(pid) == life.pid, (pid, life.pid)
        kill = Kill(point, job, len(self.lives.started))
        self.kills.append(kill)
        return kill

    def stop(self, life: Life) -> None:
        """SIGTERM: the agent ends its step and exits 0."""
        life.signal_group(signal.SIGTERM)
        code = life.wait(LIFE_TIMEOUT_S)
        assert code == 0, (code, life.text())
        assert "crash_injected" not in life.text()
        self.clean_exits += 1

    # ------------------------------------------------------------------ the chain

    def post(self, index: int) -> int:
        spec = small_spec(seed=5000 + index, shards=SHARDS)
        return self.client.post(spec, k=CHALLENGES, payment=PAYMENT, collateral=COLLATERAL)

    def count(self, event: str, since: int) -> Counter[int]:
        logs = self.m.market.events[event]().get_logs(from_block=since)
        return Counter(int(log["args"]["jobId"]) for log in logs)

    def all_submitted(self, ids: list[int], since: int) -> bool:
        return set(ids) <= set(self.count("ResultSubmitted", since))

    def verify(self, job_id: int) -> Any:
        """Verifies the job's bundle from the agent's server as oracle 1 would."""
        job = self.m.job(job_id)
        spec = small_spec(seed=5000 + self.index_of[job_id], shards=SHARDS)
        seed = bytes(self.m.market.functions.challengeSeed(job_id, job.seed_block).call())
        access = BundleAccess.sign(
            self.m.oracle_keys[0], self.domain.chain_id, self.m.market.address, job.result_root
        )
        commitment = Commitment(job_id, spec_hash(spec), SHARDS, job.result_root)
        return verify_job(
            spec, commitment, seed, CHALLENGES, HttpSource(self.url, FAST, access=access)
        )

    def settle(self, job_id: int) -> None:
        job = self.m.job(job_id)
        seed = bytes(self.m.market.functions.challengeSeed(job_id, job.seed_block).call())
        signed = [
            sign_verdict(k, self.domain, Verdict(job_id, job.result_root, seed, True))
            for k in self.m.oracle_keys[:2]
        ]
        fn = self.m.market.functions.settle(job_id, job.record(), True, sorted_signatures(signed))
        transact(self.w3, fn, self.m.owner)

    def wait_serving(self, life: Life) -> None:
        """Waits until the life's bundle server answers; its time from start is kept."""

        def serving() -> bool:
            assert life.alive(), life.text()
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(serving, LIFE_TIMEOUT_S, 0.05, f"{life.log.name} to serve")
        self.ready_s.append((life, time.monotonic() - life.started))

    def close(self) -> None:
        self.lives.close()
        self.anvil.stop()


@pytest.fixture
def campaigner(tmp_path: Path) -> Iterator[Campaigner]:
    c = Campaigner(tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_agent_sigkilled_accepting_computing_submitting_serving__every_job_paid_once(
    campaigner: Campaigner,
) -> None:
    c = campaigner
    campaign = Campaign("agent-sigkill", "Provider agent SIGKILLs")
    jobs_n = scaled(KILLS_PER_POINT)
    start_block = int(c.w3.eth.block_number)
    ids: list[int] = []
    work_lives = serve_lives = 0
    for first in range(0, jobs_n, BATCH):
        batch = [c.post(i) for i in range(first, min(first + BATCH, jobs_n))]
        c.index_of.update({j: first + n for n, j in enumerate(batch)})
        ids += batch

        # 1. accepting, computing, submitting: each life dies at the first point it reaches,
        # and each job meets each point once (its second shard is its last: no kill after it).
        # No block is mined but by the test: each acceptJob and submitResult is still pending
        # when its life dies, and the next life must follow it to its receipt, not send again
        # (the test mines a block when the life says it follows one).
        c.anvil.rpc("evm_setAutomine", False)
        for _ in range(len(WORK_POINTS.split(",")) * len(batch)):
            c.ended(c.start(WORK_POINTS))
            work_lives += 1
        # the last submission is still pending: one more life follows it, then has nothing to do
        life = c.start(WORK_POINTS)
        work_lives += 1
        mined = 0
        deadline = time.monotonic() + LIFE_TIMEOUT_S
        while not c.all_submitted(batch, start_block):
            assert life.alive() and time.monotonic() < deadline, life.text()
            mined = c.mine_what_it_follows(life, mined)
            life.wait(0.1)
        c.stop(life)
        c.anvil.rpc("evm_setAutomine", True)

        # 2. serving: the agent dies while an oracle is fetching each bundle
        c.anvil.mine(2)  # every seed block mined, and one more so its hash can be read
        for job_id in batch:
            life = c.start("mid_serve")
            serve_lives += 1
            c.wait_serving(life)
            verdict = c.verify(job_id)
            assert not verdict.accepted and verdict.retryable, verdict.summary()
            kill = c.ended(life)
            assert kill.point == "mid_serve", kill

        # 3. a clean life serves every bundle: verified and settled, recorded paid
        life = c.start("", cold=first == 0)  # the first one: start-up timed from scratch
        c.wait_serving(life)
        for job_id in batch:
            verdict = c.verify(job_id)
            assert verdict.accepted, verdict.summary()
            c.settle(job_id)
        paid = [f"job {j}: paid on chain" for j in batch]
        wait_until(
            lambda life=life, paid=paid: all(line in life.text() for line in paid),  # type: ignore[misc]
            LIFE_TIMEOUT_S, 0.2, "the agent to record the batch paid",
        )  # fmt: skip
        c.stop(life)

    # every kill where the design says: one per job at each point
    logs = "".join(life.text() for life in c.lives.started)
    roots = {"0x" + c.m.job(j).result_root.hex(): j for j in ids}
    per_point: dict[str, Counter[int]] = {}
    for kill in c.kills:
        job = roots[kill.job] if kill.point == "mid_serve" else int(kill.job)
        per_point.setdefault(kill.point, Counter())[job] += 1
    for point in POINTS:
        assert per_point.get(point) == Counter(dict.fromkeys(ids, 1)), (point, per_point)

    # each acceptJob and submitResult was left pending by its life and followed by the next
    followed = Counter((int(j), action) for j, action in FOLLOWING.findall(logs))
    assert followed == Counter(
        {(j, action): 1 for j in ids for action in ("acceptJob", "submitResult")}
    ), followed

    # the chain: accepted once, submitted once, paid once, nothing else final
    for event in ("JobAccepted", "ResultSubmitted", "JobPaid"):
        assert c.count(event, start_block) == Counter(dict.fromkeys(ids, 1)), event
    for event in ("JobRejected", "JobDefaulted", "JobLapsed"):
        assert not c.count(event, start_block), event
    assert all(c.m.state(j) == JobState.PAID for j in ids)

    # no journalled shard computed again: the restarted life computed the one left
    published = Counter((int(j), int(n), int(m)) for j, n, m in PUBLISHED.findall(logs))
    assert published == Counter({(j, SHARDS - 1, 1): 1 for j in ids}), published

    # the agent's own books: every job paid; its earnings on chain are the net payments
    state = AgentState(
        c.state / "agent.sqlite3", c.domain.chain_id, c.m.market.address, c.m.providers[0],
        read_only=True,
    )  # fmt: skip
    try:
        assert {j: state.get(j).status for j in ids} == dict.fromkeys(ids, JobStatus.PAID)  # type: ignore[union-attr]
    finally:
        state.close()
    net = PAYMENT - PAYMENT * FEE_BPS // 10_000
    earned = int(c.m.market.functions.getProvider(c.m.providers[0]).call()[1])
    assert earned == jobs_n * net, (earned, jobs_n * net)

    # the market's invariants, from the chain alone
    figures = check_market_invariants(c.w3, c.m.market.address, ids)
    assert figures["JobPaid"] == jobs_n, figures

    for point, name in FIGURES.items():
        campaign.figure(name, sum(per_point[point].values()), jobs_n)
    campaign.figure("jobs paid once", figures["JobPaid"], jobs_n)
    campaign.figure(
        "pending transactions followed after a restart (not resent)", sum(followed.values()),
        2 * jobs_n,
    )  # fmt: skip
    for name, value in figures.items():
        campaign.figure(f"invariants: {name}", value)
    campaign.figure("agent lives", len(c.lives.started))
    for cold, name in ((False, "forked"), (True, "fresh")):
        timed = [s for life, s in c.ready_s if life.cold == cold]
        campaign.figure(f"{name} life: start to serving, median s", round(median(timed), 2))
    campaign.note(
        f"{len(c.kills)} SIGKILLs in {len(c.lives.started)} lives ({work_lives} work, "
        f"{serve_lives} serve, {c.clean_exits} stopped cleanly; "
        f"{sum(1 for life in c.lives.started if life.cold)} of them fresh interpreters, the "
        "others forked from one that had imported the agent); every job accepted, submitted "
        "and paid once, each shard computed once"
    )
    campaign.report()
