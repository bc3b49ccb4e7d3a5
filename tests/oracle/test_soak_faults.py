"""Fault campaigns around the node (issue 13, `make soak`): three oracles behind an RPC
proxy that drops, delays and breaks requests and gives transient wrong answers (a stale
head, a missing receipt, a job's logs missing); reorgs shallower and deeper than the
confirmation depth, taking settlements and accepts with them; the anvil node stopped and
started again from its state dump while jobs flow.

Each campaign counts what it injected from the injector itself (the proxy's counters, the
reorgs whose removed block held the transaction as the chain showed before and after, the
node's restarts), asks `scaled(...)` of each, and ends with the market's invariants and
`Campaign.report`. Whatever the faults, every job ends settled exactly once on the final
chain and every oracle's store agrees with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from web3.exceptions import TransactionNotFound

from devchain.anvil import Miner
from devchain.contracts import transact
from devchain.faults import FaultyRpcProxy
from devchain.invariants import check_market_invariants
from devchain.oracles import OracleProcess, running
from devchain.parties import AnySpec, small_spec
from devchain.waits import wait_until
from neurotoken.market.states import JobState
from oracle.store import SETTLED, TX_PENDING
from tests.constants import PAID, REJECTED
from tests.oracle.helpers import assert_settled_once, events_of, store_of, wait_settled
from tests.oracle.test_faults import wait_ended
from tests.soak import Campaign, scaled

pytestmark = pytest.mark.soak

CONFIRMATIONS = 2
"""The oracles' confirmation depth in these campaigns (OracleProcess's default)."""


# ---------------------------------------------------------------- shared checks


def outcome_of(state: int) -> str:
    return {PAID: "paid", REJECTED: "rejected"}[state]


def assert_stores_agree(net: Any, oracles: list[OracleProcess], jobs: dict[int, int]) -> None:
    """Every oracle's store has every job settled, final, with the outcome and the
    settlement transaction the final chain holds (waits for the last confirmations)."""
    on_chain = {job: tx for _, job, tx in net.market.settlement_logs()}

    def agree() -> bool:
        for o in oracles:
            store = store_of(o)
            for job, state in jobs.items():
                row = store.job(job)
                if (
                    row is None
                    or row.state != SETTLED
                    or not row.final
                    or row.outcome != outcome_of(state)
                    or row.settled_tx != on_chain[job]
                ):
                    return False
        return True

    wait_until(agree, 120, what="every store to agree with the chain")
    # and every transaction an oracle sent reached an end: none is stuck (behind a nonce a
    # fault left unused, say), so each oracle can still transmit
    wait_until(
        lambda: not any(store_of(o).txs([TX_PENDING]) for o in oracles), 120,
        what="every oracle's transactions to reach an end",
    )  # fmt: skip


def check_invariants(net: Any, jobs: list[int], campaign: Campaign) -> None:
    """The market's invariants from its events (devchain.invariants), with their figures."""
    figures = check_market_invariants(net.anvil.web3(), net.market.market.address, jobs)
    for name, value in figures.items():
        campaign.figure(f"invariants: {name}", value)


def post_and_fulfil(net: Any, seed: int, cheat: bool) -> tuple[int, int]:
    """Posts a job and has a provider fulfil it: (job id, the state it must end in)."""
    spec = small_spec(seed=seed)
    job = net.client.post(spec)
    (net.cheat if cheat else net.honest).fulfil(job, spec)
    return job, REJECTED if cheat else PAID


# ---------------------------------------------------------------- the RPC campaign

RPC_FAULTS = 1000
"""Faults of all kinds through the proxy, at size 1 (issue 13)."""
RPC_KIND_SHARE = {
    "dropped": 100,
    "delayed": 100,
    "errored": 100,
    "stale_head": 100,
    "missing_receipt": 20,
    "empty_logs": 30,
}
"""The least of each kind at size 1: every kind is a real share of the thousand."""


def test_rpc_campaign__faults_and_wrong_answers__every_job_settled_once(make_net) -> None:
    campaign = Campaign("rpc-faults", "RPC faults through the proxy (three oracles)")
    net = make_net()
    m = net.market
    proxy = FaultyRpcProxy(
        net.anvil.url, drop=0.05, delay=0.05, error=0.05, max_delay_s=1.0, seed=13,
        stale_head=0.2, stale_depth=3, missing_receipt=0.5, empty_logs=0.25,
    ).start()  # fmt: skip
    asked = {kind: scaled(n) for kind, n in RPC_KIND_SHARE.items()}
    total = scaled(RPC_FAULTS)
    min_jobs = scaled(20)
    jobs: dict[int, int] = {}

    def any_settled(some: list[int]) -> bool:
        return any(m.state(j) in (PAID, REJECTED) for j in some)

    def enough() -> bool:
        c = proxy.counts.as_dict()
        return (
            c["faults"] >= total and all(c[k] >= n for k, n in asked.items())
            and len(jobs) >= min_jobs
        )  # fmt: skip

    try:
        oracles = net.oracle_set(rpc_url=proxy.url, env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "2"})
        with running(oracles):
            for o in oracles:
                o.wait_ready()
            deadline = time.monotonic() + max(600.0, 1200 * scaled(1000) / 1000)
            seed = 1000
            while not enough():
                assert time.monotonic() < deadline, f"too slow: {proxy.counts}, {len(jobs)} jobs"
                open_jobs = [j for j in jobs if m.state(j) not in (PAID, REJECTED)]
                if len(open_jobs) >= 4:  # a bounded window of jobs in flight
                    wait_until(partial(any_settled, open_jobs), 180, what="a job to settle")
                    continue
                seed += 1
                job, end = post_and_fulfil(net, seed, cheat=seed % 3 == 0)
                jobs[job] = end
            wait_settled(m, jobs, timeout=300)
            assert_settled_once(m, list(jobs))
            assert_stores_agree(net, oracles, jobs)
            for o in oracles:
                assert o.running(), f"{o.name} died: {o.tail()}"
        counts = proxy.counts.as_dict()  # the oracles, its only clients, have stopped
        failed_ticks = len(events_of(oracles, "tick_failed"))
        unavailable = len(events_of(oracles, "job_record_unavailable"))
        sent = len(events_of(oracles, "settlement_sent"))
        dropped_txs = len(events_of(oracles, "tx_dropped"))
        looked_again = len(events_of(oracles, "mined_tx_vanished"))
        campaign.figure("faults (all kinds)", counts["faults"], total)
        for kind, n in asked.items():
            campaign.figure(kind, counts[kind], n)
        campaign.figure("requests through the proxy", counts["requests"])
        campaign.figure("jobs", len(jobs), min_jobs)
        campaign.figure("settlements on chain", len(m.settlement_logs()), len(jobs))
        campaign.figure("settlement transactions sent", sent)
        campaign.figure("oracle ticks that failed (and were retried)", failed_ticks)
        campaign.figure("job records unreadable (read again)", unavailable)
        campaign.figure("settlement transactions given up as dropped", dropped_txs)
        campaign.figure("mined transactions followed again (receipt missing)", looked_again)
        check_invariants(net, list(jobs), campaign)
    finally:
        proxy.stop()
    campaign.report()


# ---------------------------------------------------------------- the reorg campaign

REORGS = 20
"""Reorgs at size 1 (issue 13); half of them deeper than the confirmation depth."""


@dataclass
class ReorgFigures:
    reorgs: int = 0
    deep: int = 0
    took_settlement: int = 0
    took_accept: int = 0
    took_submission: int = 0


class Reorger:
    """Reorgs an automine node whose blocks a `Miner` makes, and says from the chain what
    each reorg took with it."""

    def __init__(self, net: Any, miner: Miner) -> None:
        self.net = net
        self.w3 = net.anvil.web3()
        self.miner = miner
        self.figures = ReorgFigures()
        self.depths: list[int] = []

    def receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def reorg_out(self, tx_hashes: list[str], min_depth: int = 1) -> tuple[int, list[str]]:
        """With the miner paused: replaces the blocks from the oldest block holding one of
        `tx_hashes` up to the head (at least `min_depth` blocks) by empty ones. Returns the
        depth and the hashes the chain no longer holds (their block replaced, no receipt).
        The chain stays still (automine off: what the oracles send waits in the pool) until
        `release`, so the caller can look at it as the reorg left it."""
        holders = {}
        for tx in tx_hashes:
            receipt = self.receipt(tx)
            assert receipt is not None, f"{tx} is not mined"
            holders[tx] = (int(receipt["blockNumber"]), bytes(receipt["blockHash"]))
        self.net.anvil.rpc("evm_setAutomine", False)
        head = int(self.w3.eth.block_number)
        oldest = min(number for number, _ in holders.values())
        depth = max(min_depth, head - oldest + 1)
        self.net.anvil.rpc("anvil_reorg", depth, [])
        assert int(self.w3.eth.block_number) == head, "anvil_reorg changed the height"
        gone = []
        for tx, (number, block_hash) in holders.items():
            replaced = bytes(self.w3.eth.get_block(number)["hash"]) != block_hash
            if replaced and self.receipt(tx) is None:
                gone.append(tx)
        self.figures.reorgs += 1
        self.depths.append(depth)
        if depth > CONFIRMATIONS:
            self.figures.deep += 1
        return depth, gone

    def release(self) -> None:
        """The chain moves again: automine on, the miner resumed."""
        self.net.anvil.rpc("evm_setAutomine", True)
        self.miner.resume()


def _tx(receipt: Any) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def test_reorg_campaign__shallow_and_deep_reorgs_take_settlements_and_accepts__settled_once(
    make_net,
) -> None:
    campaign = Campaign("reorgs", "Reorgs shallower and deeper than the confirmations")
    net = make_net(block_time=None)  # automine; the miner makes the other blocks
    m = net.market
    miner = Miner(net.anvil, interval=0.5).start()
    reorger = Reorger(net, miner)
    rounds = scaled(REORGS)
    jobs: dict[int, int] = {}
    oracles = net.oracle_set(
        env={"ORACLE_CONFIRMATIONS": str(CONFIRMATIONS), "ORACLE_TRANSMIT_BACKUP_DELAY_S": "2"}
    )

    def final_everywhere(job: int) -> Callable[[], bool]:
        return lambda: all((row := store_of(o).job(job)) is not None and row.final for o in oracles)

    def deepest(deep: bool, extra: int) -> int:
        """The least depth of a round's reorg: deep ones 1 to 4 blocks past the confirmations."""
        return CONFIRMATIONS + 1 + extra % 4 if deep else 1

    def settlement_round(seed: int, deep: bool) -> None:
        """A job settles; a reorg takes the settlement (deep: once every store has it final;
        shallow: at once, the settlement in the head block, before it is confirmed: the
        miner stops at the submission and the test mines just the blocks that confirm its
        seed); the oracles settle it again."""
        cheat = seed % 4 == 0
        spec = small_spec(seed=seed)
        job = net.client.post(spec)
        jobs[job] = REJECTED if cheat else PAID
        provider = net.cheat if cheat else net.honest
        if deep:
            submitted = provider.fulfil(job, spec)
        else:
            provider.accept(job)
            root = provider.build(job, spec)
            miner.pause()
            provider.submit(job, root, spec.shard_count)
            net.anvil.mine(CONFIRMATIONS + 1)  # the seed block confirmed, no block more
        wait_ended(m, {job: jobs[job]}, timeout=120)
        if deep:
            wait_until(final_everywhere(job), 60, what=f"job {job} final in every store")
            # the submission buried deeper than the reorg goes: it takes the settlement alone
            wait_until(
                lambda: int(m.w3.eth.block_number) > submitted + deepest(True, 3) + 1, 30,
                what="blocks over the submission",
            )  # fmt: skip
            miner.pause()
        ((_, _, tx),) = m.settlement_logs(job)
        _, gone = reorger.reorg_out([tx], min_depth=deepest(deep, seed))
        assert gone == [tx], f"the reorg did not take the settlement {tx}"
        assert m.state(job) == int(JobState.SUBMITTED)
        reorger.figures.took_settlement += 1
        reorger.release()

    def accept_round(seed: int, deep: bool) -> None:
        """A provider accepts; a reorg takes the accept (deep: after more blocks than the
        confirmations); the job is open again, accepted again and settled."""
        spec: AnySpec = small_spec(seed=seed)
        job = net.client.post(spec)
        jobs[job] = PAID
        fn = m.market.functions.acceptJob(job, m.record(job))
        if not deep:
            miner.pause()
        receipt = transact(m.w3, fn, net.honest.address)
        if deep:
            accepted = int(receipt["blockNumber"])
            wait_until(
                lambda: int(m.w3.eth.block_number) >= accepted + deepest(deep, seed) - 1, 30,
                what="blocks over the accept",
            )  # fmt: skip
            miner.pause()
        _, gone = reorger.reorg_out([_tx(receipt)], min_depth=deepest(deep, seed))
        assert gone == [_tx(receipt)], "the reorg did not take the accept"
        assert m.state(job) == int(JobState.POSTED)
        reorger.figures.took_accept += 1
        reorger.release()
        net.honest.fulfil(job, spec)  # accepts again, computes, submits

    def submission_round(seed: int, deep: bool) -> None:
        """A provider submits; a reorg takes the submission (deep: once the oracles have
        ingested it); it submits again and the job settles on the new commitment."""
        spec: AnySpec = small_spec(seed=seed)
        job = net.client.post(spec)
        jobs[job] = PAID
        net.honest.accept(job)
        accepted = int(m.w3.eth.block_number)
        root = net.honest.build(job, spec)
        # the accept buried deeper than any reorg of the campaign goes, so that the reorg
        # takes the submission alone (on a quiet machine it came a block or two before it)
        wait_until(
            lambda: int(m.w3.eth.block_number) > accepted + deepest(True, 3) + 1, 30,
            what="blocks over the accept",
        )  # fmt: skip
        if not deep:
            miner.pause()
        fn = m.market.functions.submitResult(job, m.record(job), root, spec.shard_count,
                                             net.honest.url)  # fmt: skip
        receipt = transact(m.w3, fn, net.honest.address)
        if deep:
            wait_until(
                lambda: all(store_of(o).job(job) is not None for o in oracles), 60,
                what="every oracle to ingest the submission",
            )  # fmt: skip
            miner.pause()
        _, gone = reorger.reorg_out([_tx(receipt)], min_depth=deepest(deep, seed))
        assert gone == [_tx(receipt)], "the reorg did not take the submission"
        assert m.state(job) == int(JobState.ACCEPTED)
        reorger.figures.took_submission += 1
        reorger.release()
        net.honest.submit(job, root, spec.shard_count)

    kinds = [settlement_round, accept_round, settlement_round, submission_round]
    try:
        with running(oracles):
            for o in oracles:
                o.wait_ready()
            for i in range(rounds):
                kinds[(i // 2) % len(kinds)](seed=2000 + i, deep=i % 2 == 0)
            wait_ended(m, jobs, timeout=300)
            assert_settled_once(m, list(jobs))
            assert_stores_agree(net, oracles, jobs)
            rollbacks = events_of(oracles, "reorg_rolled_back")
            vanished = events_of(oracles, "mined_tx_vanished")
            for o in oracles:
                assert o.running(), f"{o.name} died: {o.tail()}"
        f = reorger.figures
        campaign.figure("reorgs", f.reorgs, rounds)
        campaign.figure(f"deep reorgs (> {CONFIRMATIONS} confirmations)", f.deep, rounds // 2)
        campaign.figure("reorgs that took a settlement", f.took_settlement, max(1, rounds // 4))
        campaign.figure("reorgs that took an accept", f.took_accept, max(1, rounds // 5))
        campaign.figure("reorgs that took a submission", f.took_submission)
        campaign.figure("rollbacks in the oracles' logs", len(rollbacks))
        campaign.figure("oracle transactions seen mined, then gone (sent again)", len(vanished))
        campaign.note(f"reorg depths: {reorger.depths}")
        campaign.figure("jobs", len(jobs))
        check_invariants(net, list(jobs), campaign)
    finally:
        miner.stop()
    campaign.report()


# ---------------------------------------------------------------- the node restart campaign

RESTARTS = 3
"""Restarts of the node from its state dump at size 1 (issue 13)."""


def test_node_restart_campaign__anvil_back_from_its_state_dump__oracles_carry_on(
    make_net,
) -> None:
    campaign = Campaign("node-restarts", "The anvil node restarted from its state dump")
    net = make_net(block_time=1, mixed=False, restartable=True)  # a block a second: a
    # settlement waits in the pool for up to a second, and a restart may take it away
    m = net.market
    restarts = scaled(RESTARTS)
    jobs: dict[int, int] = {}
    oracles = net.oracle_set(env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "2"})
    in_pool = 0

    def sent(job: int) -> bool:
        return any(
            e.get("job") == job or job in e.get("jobs", ())  # one job, or a batch
            for e in events_of(oracles, "settlement_sent")
        )

    with running(oracles):
        for o in oracles:
            o.wait_ready()
        for i in range(restarts):
            # two jobs in flight across each restart: the node stops as soon as the first
            # one's settlement is sent (it waits in the pool for the next block), while the
            # second one is being verified
            first, end = post_and_fulfil(net, 3000 + 2 * i, cheat=i % 2 == 1)
            jobs[first] = end
            job, end = post_and_fulfil(net, 3001 + 2 * i, cheat=False)
            jobs[job] = end
            wait_until(partial(sent, first), 120, what=f"a settlement of job {first} to be sent")
            net.anvil.rpc("evm_setIntervalMining", 0)  # no block while the pool is counted
            head_before = int(m.w3.eth.block_number)
            in_pool += int(net.anvil.rpc("txpool_status")["pending"], 16)
            head_after = net.anvil.restart(clear_blockhash_window=True)
            # the chain came back whole (and 257 blocks longer: anvil's BLOCKHASH after a
            # load, see devchain.anvil.Anvil), the pool empty: what waited there is lost
            assert head_after == head_before + 257, (head_before, head_after)
            assert int(net.anvil.rpc("txpool_status")["pending"], 16) == 0
            assert all(m.state(j) != int(JobState.NONE) for j in jobs)
        wait_settled(m, jobs, timeout=300)
        assert_settled_once(m, list(jobs))
        assert_stores_agree(net, oracles, jobs)
        for o in oracles:
            assert o.running(), f"{o.name} died: {o.tail()}"
        failed = len(events_of(oracles, "tick_failed"))
    campaign.figure("node restarts from the state dump", net.anvil.restarts, restarts)
    campaign.figure("jobs", len(jobs))
    campaign.figure("transactions lost with the pool at a restart (sent again)", in_pool)
    campaign.figure("oracle ticks that failed (and were retried)", failed)
    campaign.note(
        "before each restart the pool is dropped and 257 empty blocks mined: after loading "
        "its dump anvil 1.7 answers BLOCKHASH wrongly for the blocks before the load"
    )
    check_invariants(net, list(jobs), campaign)
    campaign.report()
