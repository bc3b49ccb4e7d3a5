"""Faults around the oracle: the fault proxy's wrong answers, reorgs shallower and deeper
than the confirmation depth (one taking a settlement the oracle had seen mined), a settlement
stuck behind a raised base fee, an unreachable bundle, a designated transmitter back so late
that a backup already sent, and a node whose logs lag its state. Each on a real anvil node;
nothing is lost and nothing is paid twice. The campaigns at scale (thousands of RPC faults,
tens of reorgs, node restarts) are in test_soak_faults.py, under `make soak`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError, TransactionNotFound
from web3.types import Wei

from devchain.anvil import Miner
from devchain.localnet import (
    Anvil,
    Client,
    FaultyRpcProxy,
    Market,
    load_artifact,
    running,
    setup_local_market,
    small_spec,
    wait_until,
)
from devchain.parties import AnySpec
from neurotoken.chain.fees import GWEI
from neurotoken.chain.reverts import ErrorDecoder
from neurotoken.market.records import JobReader, JobRecordError
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_verdict
from oracle.chain import revert_data
from oracle.store import SETTLED, SIGNED, TX_MINED, TX_REVERTED
from oracle.transmit_turns import transmit_order
from tests.constants import PAID, REJECTED
from tests.oracle.helpers import (
    assert_settled_once,
    events_of,
    oracle_cli,
    store_of,
    wait_ingested,
    wait_settled,
)

LONE_TRANSMITTER = [
    {"ORACLE_TRANSMIT_BACKUP_DELAY_S": "0"},
    {"ORACLE_TRANSMIT": "false"},
    {"ORACLE_TRANSMIT": "false"},
]
"""`per_oracle_env` of a set where the first oracle transmits at once and no backup ever
does: whatever happens to its transaction, nobody else hides it."""


def accepted_and_built(net: Any, seed: int) -> tuple[AnySpec, int, bytes]:
    """A job of `small_spec(seed)` posted, accepted by the honest provider and its result
    built (published, not yet submitted): (spec, job id, root)."""
    spec = small_spec(seed=seed)
    job = net.client.post(spec)
    net.honest.accept(job)
    return spec, job, net.honest.build(job, spec)


def wait_ended(m: Market, expected: dict[int, int], timeout: float = 90) -> None:
    """`wait_settled` for a chain that reorgs: a job's record read while a block is being
    replaced may not match its digest for a moment (`JobRecordError`): not settled yet."""

    def state(job: int) -> int | None:
        try:
            return m.state(job)
        except JobRecordError:
            return None

    wait_until(
        lambda: all(state(j) == s for j, s in expected.items()),
        timeout,
        what=f"jobs {expected} to settle",
    )


def test_fault_proxy__wrong_answers__transient_and_counted_only_when_wrong(tmp_path) -> None:
    """The proxy's wrong answers, each at odds 1: a head 1 to 3 blocks behind (the block
    itself a true one), a mined transaction's receipt missing, a job's logs missing; an
    answer that was not changed (a receipt that does not exist) is not counted, and every
    wrong answer stops with its odds."""
    with Anvil() as anvil:
        m = setup_local_market(anvil.web3())
        job = Client(m, tmp_path / "specs").post(small_spec(seed=51))
        w3 = anvil.web3()
        mined = w3.eth.send_transaction({"from": m.owner, "to": m.client, "value": Wei(1)})
        anvil.mine(5)
        head = int(w3.eth.block_number)
        proxy = FaultyRpcProxy(
            anvil.url, drop=0, delay=0, error=0,
            stale_head=1.0, missing_receipt=1.0, empty_logs=1.0,
        ).start()  # fmt: skip
        try:
            faulty = Web3(HTTPProvider(proxy.url))
            assert head - 3 <= faulty.eth.block_number < head
            latest = faulty.eth.get_block("latest")
            assert head - 3 <= latest["number"] < head
            assert latest["hash"] == w3.eth.get_block(latest["number"])["hash"]
            assert faulty.eth.get_block(2)["hash"] == w3.eth.get_block(2)["hash"]  # by number: true
            with pytest.raises(TransactionNotFound):
                faulty.eth.get_transaction_receipt(mined)
            with pytest.raises(TransactionNotFound):  # none to hide: not counted
                faulty.eth.get_transaction_receipt(HexBytes("0x" + "ab" * 32))
            reader = JobReader(faulty, m.market.address, load_artifact("ComputeMarket")[0])
            with pytest.raises(JobRecordError):  # a reader can tell
                reader.get(job, head)
            assert len(faulty.eth.get_logs({"address": m.market.address, "fromBlock": 0})) > 0
            c = proxy.counts
            assert (c.stale_head, c.missing_receipt, c.empty_logs) == (2, 1, 1), c
            assert c.faults == 4 and c.requests > 4
            proxy.stale_head = proxy.missing_receipt = proxy.empty_logs = 0.0  # transient
            assert faulty.eth.block_number == head
            assert faulty.eth.get_transaction_receipt(mined)["status"] == 1
            assert reader.get(job, head).job_id == job
            assert proxy.counts.faults == 4
        finally:
            proxy.stop()


def test_reorg_shallower_than_confirmations__oracle_never_acts_on_the_lost_commitment(
    make_net,
) -> None:
    net = make_net(block_time=None)  # automine: this test makes every other block
    m = net.market
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(env={"ORACLE_CONFIRMATIONS": "3"})
    try:
        with running(oracles):
            for o in oracles:
                o.wait_ready()
            spec, job, honest_root = accepted_and_built(net, seed=41)
            miner.pause()
            block = net.honest.submit(job, honest_root, spec.shard_count)
            assert m.state(job) == 3
            net.anvil.rpc("anvil_reorg", 1, [])  # replace the submission's block: gone
            assert m.state(job) == 2 and net.anvil.web3().eth.block_number == block
            miner.resume()
            wait_until(lambda: net.anvil.web3().eth.block_number >= block + 8, 30)
            wait_ingested(oracles, block + 2)  # past the replaced block, confirmed
            for o in oracles:
                store = store_of(o)
                assert store.job(job) is None, o.name
                assert store.verdict(job, honest_root) is None
                assert store.signatures(job) == []
            # the provider commits again, a forged result this time: judged on its own
            net.honest.cheat_fraction = 1.0
            forged_root = net.honest.build(job, spec)
            net.honest.submit(job, forged_root, spec.shard_count)
            wait_settled(m, {job: REJECTED})
            assert_settled_once(m, [job])
            for o in oracles:
                assert store_of(o).verdict(job, honest_root) is None
    finally:
        miner.stop()


def test_reorg_shallower_than_confirmations__takes_the_oracles_mined_settlement__sent_again(
    make_net,
) -> None:
    """A reorg shallower than the confirmations takes the block that held the transmitter's
    settlement, which it had already seen mined (its receipt). Ingestion never sees such a
    reorg; the oracle must still notice its transaction is gone and send it again (same
    nonce): otherwise the job waits for nobody (the other oracles do not transmit here) and
    the nonce stays unused, every later transaction of the key stuck behind it."""
    net = make_net(block_time=None)
    m = net.market
    w3 = net.anvil.web3()
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(
        env={"ORACLE_CONFIRMATIONS": "2"},
        per_oracle_env=LONE_TRANSMITTER,
    )
    transmitter = oracles[0]
    try:
        with running(oracles):
            for o in oracles:
                o.wait_ready()
            spec, job, root = accepted_and_built(net, seed=50)
            miner.pause()
            block = net.honest.submit(job, root, spec.shard_count)
            net.anvil.mine(3)  # the seed block is confirmed; the settlement mines on its own
            wait_ended(m, {job: PAID}, timeout=90)
            ((_, _, first),) = m.settlement_logs(job)
            settled_block = int(w3.eth.get_transaction_receipt(first)["blockNumber"])
            assert settled_block == w3.eth.block_number == block + 4
            wait_until(
                lambda: [t.status for t in store_of(transmitter).txs()] == [TX_MINED], 30,
                what="the transmitter to see its receipt",
            )  # fmt: skip
            net.anvil.rpc("anvil_reorg", 1, [])  # shallower than the 2 confirmations
            assert m.state(job) == 3 and not m.settlement_logs(job)
            wait_ended(m, {job: PAID}, timeout=60)  # sent again: nobody else would
            ((_, _, again),) = m.settlement_logs(job)
            assert again == first  # the same signed transaction, at the same nonce
            (vanished,) = transmitter.events("mined_tx_vanished")
            assert [t["hash"] for t in vanished["txs"]] == [first]
            miner.resume()
            wait_until(
                lambda: (row := store_of(transmitter).job(job)) is not None and row.final
                and row.settled_tx == first,
                30, what="the settlement to be final in the store",
            )  # fmt: skip
            (row,) = store_of(transmitter).txs()
            assert row.status == TX_MINED and row.mined_hash == first
        assert_settled_once(m, [job])
        assert len(transmitter.events("tx_recorded")) == 1
    finally:
        miner.stop()


def test_reorg_deeper_than_confirmations__forgotten_commitment_is_never_settled(
    make_net,
) -> None:
    net = make_net(block_time=None)
    m = net.market
    miner = Miner(net.anvil).start()
    signers = net.oracle_set(
        keys=m.oracle_keys[:2], env={"ORACLE_CONFIRMATIONS": "1", "ORACLE_TRANSMIT": "false"}
    )
    try:
        with running(signers):
            for o in signers:
                o.wait_ready()
            spec, job, honest_root = accepted_and_built(net, seed=42)
            block = net.honest.submit(job, honest_root, spec.shard_count)
            wait_until(
                lambda: all(
                    (row := store_of(o).job(job)) is not None and row.state == SIGNED
                    for o in signers
                ),
                60,
                what="both oracles to sign",
            )
            miner.pause()
            head = net.anvil.web3().eth.block_number
            depth = head - block + 1
            net.anvil.rpc("anvil_reorg", depth, [])  # deeper than the 1-block confirmation
            assert m.state(job) == 2
            miner.resume()
            wait_until(
                lambda: all(store_of(o).job(job) is None for o in signers),
                30,
                what="the oracles to undo the vanished commitment",
            )
            rollbacks = events_of(signers, "reorg_rolled_back")
            assert rollbacks and all(e["depth"] >= 2 for e in rollbacks)
            # the accept they signed stays bound to the vanished root; the provider now
            # commits a forged root, which they reject
            net.honest.cheat_fraction = 1.0
            forged_root = net.honest.build(job, spec)
            net.honest.submit(job, forged_root, spec.shard_count)
            wait_until(
                lambda: all(
                    (row := store_of(o).job(job)) is not None and row.state == SIGNED
                    and row.result_root == forged_root
                    for o in signers
                ),
                60,
                what="both oracles to sign the new commitment",
            )  # fmt: skip
            result = oracle_cli(
                "settle", f"--job={job}", *[f"--peer={o.url}" for o in signers],
                f"--rpc-url={net.anvil.url}", f"--market={m.market.address}", "--dry-run",
            )  # fmt: skip
            (entry,) = json.loads(result.stdout)
            assert entry["result"] == "quorum" and entry["accepted"] is False
            for o in signers:
                store = store_of(o)
                assert store.verdict(job, honest_root).accepted is True  # type: ignore[union-attr]
                assert store.verdict(job, forged_root).accepted is False  # type: ignore[union-attr]
            assert m.state(job) == 3 and not m.settlement_logs(job)
    finally:
        miner.stop()


def test_reorg_deeper_than_confirmations__vanished_settlement__is_settled_again_once(
    make_net,
) -> None:
    net = make_net(block_time=None)
    m = net.market
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(env={"ORACLE_CONFIRMATIONS": "1"})
    try:
        with running(oracles):
            spec = small_spec(seed=43)
            job = net.client.post(spec)
            net.honest.fulfil(job, spec)
            wait_settled(m, {job: PAID})
            ((_, _, first_tx),) = m.settlement_logs(job)
            settled_block = int(
                net.anvil.web3().eth.get_transaction_receipt(first_tx)["blockNumber"]
            )
            wait_until(
                lambda: all(
                    (row := store_of(o).job(job)) is not None and row.final for o in oracles
                ),
                30,
                what="the settlement to be final in every store",
            )
            miner.pause()
            depth = net.anvil.web3().eth.block_number - settled_block + 1
            net.anvil.rpc("anvil_reorg", depth, [])  # the settlement vanishes
            assert m.state(job) == 3 and not m.settlement_logs(job)
            miner.resume()
            wait_settled(m, {job: PAID}, timeout=60)
            assert_settled_once(m, [job])
            assert events_of(oracles, "reorg_rolled_back")
    finally:
        miner.stop()


def test_stuck_settlement__base_fee_raised_while_pending__is_replaced_and_lands_once(
    make_net,
) -> None:
    net = make_net(block_time=None)
    m = net.market
    w3 = net.anvil.web3()
    net.anvil.rpc("evm_setAutomine", False)
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(
        env={"ORACLE_CONFIRMATIONS": "1", "ORACLE_STUCK_AFTER_BLOCKS": "2"},
        per_oracle_env=LONE_TRANSMITTER,
    )
    transmitter = oracles[0]
    try:
        with running(oracles):
            spec, job, root = accepted_and_built(net, seed=44)
            tx = m.market.functions.submitResult(
                job, m.record(job), root, spec.shard_count, net.honest.url
            )
            tx_hash = tx.transact({"from": net.honest.address})
            block = int(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["blockNumber"])
            miner.pause()
            while w3.eth.block_number < block + 2:  # the seed block is confirmed: the oracles
                net.anvil.rpc("evm_mine")  # act, and nothing mines the settlement
            wait_until(lambda: bool(transmitter.events("tx_recorded")), 60, what="a settlement")
            assert m.state(job) == 3
            base = int(w3.eth.get_block("latest")["baseFeePerGas"])
            net.anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(base * 200))
            net.anvil.rpc("evm_mine")  # the pending settlement cannot pay this base fee
            assert m.state(job) == 3
            miner.resume()
            wait_settled(m, {job: PAID}, timeout=60)
            assert_settled_once(m, [job])
            # Which check fires first depends on when the oracle polls: the node refusing the
            # re-broadcast ('underpriced') or `stuck_after_blocks` passing ('stuck').
            reasons = {e["reason"] for e in transmitter.events("tx_replaced")}
            assert reasons and reasons <= {"underpriced", "stuck"}
            wait_until(
                lambda: store_of(transmitter).txs()[0].status == TX_MINED, 30, what="the receipt"
            )
            (row,) = store_of(transmitter).txs()
            assert row.status == TX_MINED and len(row.attempts) >= 2
            assert row.mined_hash != transmitter.events("tx_recorded")[0]["hash"]
            ((_, _, landed),) = m.settlement_logs(job)
            assert landed == row.mined_hash
    finally:
        miner.stop()


def test_stuck_settlement__pending_for_blocks__is_replaced_and_lands_once(make_net) -> None:
    """A node that keeps the transaction pending (here: it no longer fits in a block) while
    blocks go by: after `stuck_after_blocks` it is re-signed with higher fees."""
    net = make_net(block_time=None)
    m = net.market
    w3 = net.anvil.web3()
    net.anvil.rpc("evm_setAutomine", False)
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(
        env={"ORACLE_CONFIRMATIONS": "1", "ORACLE_STUCK_AFTER_BLOCKS": "3"},
        per_oracle_env=LONE_TRANSMITTER,
    )
    transmitter = oracles[0]

    def broadcast(tx_hash: str) -> bool:
        return any(e["hash"] == tx_hash for e in transmitter.events("tx_broadcast"))

    try:
        with running(oracles):
            spec, job, root = accepted_and_built(net, seed=46)
            tx = m.market.functions.submitResult(
                job, m.record(job), root, spec.shard_count, net.honest.url
            )
            tx_hash = tx.transact({"from": net.honest.address})
            block = int(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["blockNumber"])
            miner.pause()
            while w3.eth.block_number < block + 2:  # the seed block is confirmed: the oracles
                net.anvil.rpc("evm_mine")  # act, and the settlement waits in the pool
            wait_until(lambda: bool(transmitter.events("tx_recorded")), 60, what="a settlement")
            (recorded,) = transmitter.events("tx_recorded")
            wait_until(lambda: broadcast(recorded["hash"]), 30, what="the broadcast")
            net.anvil.rpc("evm_setBlockGasLimit", hex(50_000))  # the settlement no longer fits
            miner.resume()
            wait_until(lambda: bool(transmitter.events("tx_replaced")), 60, what="a replacement")
            miner.pause()
            (replaced, *_) = transmitter.events("tx_replaced")
            assert replaced["reason"] == "stuck" and replaced["max_fee"] > recorded["max_fee"]
            assert replaced["old"] == recorded["hash"]
            assert m.state(job) == 3
            # While the block gas limit is below the transaction's gas the node refuses the
            # replacement outright; the oracle broadcasts it again on a later poll.
            net.anvil.rpc("evm_setBlockGasLimit", hex(30_000_000))
            wait_until(lambda: broadcast(replaced["new"]), 30, what="the replacement broadcast")
            miner.resume()
            wait_settled(m, {job: PAID}, timeout=60)
            assert_settled_once(m, [job])
            wait_until(
                lambda: store_of(transmitter).txs()[0].status == TX_MINED, 30, what="the receipt"
            )
            (row,) = store_of(transmitter).txs()
            assert [a.hash for a in row.attempts][:2] == [recorded["hash"], replaced["new"]]
            assert row.mined_hash == replaced["new"]
            ((_, _, landed),) = m.settlement_logs(job)
            assert landed == row.mined_hash
    finally:
        miner.stop()


def test_unreachable_bundle__rejected_once_the_deadline_is_close(make_net) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set(env={"ORACLE_GIVE_UP_MARGIN_S": "9000", "ORACLE_FETCH_TIMEOUT_S": "1"})
    with running(oracles):
        spec = small_spec(seed=45)
        job = net.client.post(spec, verdict_window_s=600)
        dead = "http://127.0.0.1:9"  # nothing listens on the discard port
        net.honest.fulfil(job, spec, bundle_uri=dead)
        wait_settled(m, {job: REJECTED}, timeout=120)
        assert_settled_once(m, [job])
        verdict = store_of(oracles[0]).verdict(job, m.job(job).result_root)
        if verdict is not None:
            assert any(r.startswith("GAVE_UP") for r in verdict.reasons)
        assert events_of(oracles, "verified")


def test_designated_transmitter_back_late__defers_to_the_backups_pending_settlement(
    make_net,
) -> None:
    """The job's designated transmitter was down; the backup's turn came and its settlement
    waits in the pool when the designated one comes back, verifies, signs and has a quorum.
    It must not send next to it: it looks at the pool first, and records the backup's
    settlement once mined."""
    net = make_net(block_time=None)
    m = net.market
    net.anvil.rpc("evm_setAutomine", False)
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(
        env={"ORACLE_CONFIRMATIONS": "1", "ORACLE_TRANSMIT_BACKUP_DELAY_S": "5"}
    )
    try:
        spec = small_spec(seed=47)
        job = net.client.post(spec)
        by_address = {o.address: o for o in oracles}
        order = transmit_order(list(m.oracle_addresses), job)
        designated, backup = by_address[order[0]], by_address[order[1]]
        with running([by_address[a] for a in order[1:]]) as first:
            for o in first:
                o.wait_ready()
            net.honest.fulfil(job, spec)
            wait_until(
                lambda: (row := store_of(backup).job(job)) is not None and row.state == SIGNED,
                90, what="the backup to sign",
            )  # fmt: skip
            miner.pause()  # its settlement goes out a backup delay after its quorum, not sooner
            wait_until(lambda: bool(backup.events("tx_broadcast")), 60, what="the backup's send")
            assert m.state(job) == 3
            with running([designated]):
                designated.wait_ready()
                wait_until(
                    lambda: bool(designated.events("transmit_deferred")), 60,
                    what="the designated transmitter to look at the pool",
                )  # fmt: skip
                (deferred, *_) = designated.events("transmit_deferred")
                assert deferred["job"] == job and backup.address in deferred["pending"]
                miner.resume()
                wait_settled(m, {job: PAID}, timeout=60)
                wait_until(
                    lambda: (row := store_of(designated).job(job)) is not None
                    and row.state == SETTLED,
                    60, what="the designated transmitter to record the settlement",
                )  # fmt: skip
        assert_settled_once(m, [job])
        assert not designated.events("tx_recorded")  # it never sent one
        assert len(backup.events("tx_recorded")) == 1
        assert not events_of(oracles, "tx_reverted")
    finally:
        miner.stop()


def test_node_logs_lag_its_state__records_unreadable__nothing_sent__settled_once_caught_up(
    make_net,
) -> None:
    """The oracles' node answers a job's log query from an index that lags its state (the
    result is there, its ResultSubmitted log is not yet): the record they rebuild no longer
    hashes to the digest the market stores. They send nothing with a record they cannot
    check and no tick fails over it; once the node catches up the job settles, once."""
    net = make_net()
    m = net.market
    proxy = FaultyRpcProxy(net.anvil.url, drop=0, delay=0, error=0).start()
    try:
        oracles = net.oracle_set(rpc_url=proxy.url, env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "1"})
        with running(oracles):
            for o in oracles:
                o.wait_ready()
            spec, job, root = accepted_and_built(net, seed=48)
            proxy.job_logs_until = net.anvil.web3().eth.block_number  # the index stops here
            net.honest.submit(job, root, spec.shard_count)
            wait_until(
                lambda: all((row := store_of(o).job(job)) is not None and row.state == SIGNED
                            for o in oracles),
                60, what="every oracle to sign",
            )  # fmt: skip
            wait_until(
                lambda: len(events_of(oracles, "job_record_unavailable")) >= 6,
                30, what="the oracles to find the record unreadable",
            )  # fmt: skip
            assert m.state(job) == 3 and not m.settlement_logs(job)
            assert not events_of(oracles, "settlement_sent")
            assert proxy.lagged > 0
            unreadable = events_of(oracles, "job_record_unavailable")
            assert all(e["job"] == job and "digest" in e["error"] for e in unreadable)
            proxy.job_logs_until = None  # the node catches up
            wait_settled(m, {job: PAID})
            assert_settled_once(m, [job])
            wait_until(
                lambda: all((row := store_of(o).job(job)) is not None and row.final
                            and row.outcome == "paid" for o in oracles),
                30, what="every store to see the settlement",
            )  # fmt: skip
        assert len(events_of(oracles, "settlement_sent")) == 1
        assert not events_of(oracles, "tick_failed")
    finally:
        proxy.stop()


def test_settlement_race__another_lands_first__ours_reverts_job_not_found__recorded_once(
    make_net,
) -> None:
    """Someone else's settlement (the oracles' own signatures, relayed with a higher tip)
    lands in the same block as the oracle's, ahead of it: the oracle's reverts with
    MarketJobNotFound (the job has ended, its digest is cleared). That is the benign end of
    a race: the oracle records the job settled by the other transaction and never sends
    again."""
    net = make_net(block_time=None)
    m = net.market
    w3 = net.anvil.web3()
    net.anvil.rpc("evm_setAutomine", False)
    miner = Miner(net.anvil).start()
    oracles = net.oracle_set(
        env={"ORACLE_CONFIRMATIONS": "1"},
        per_oracle_env=LONE_TRANSMITTER,
    )
    transmitter = oracles[0]
    try:
        with running(oracles):
            spec, job, root = accepted_and_built(net, seed=49)
            tx = m.market.functions.submitResult(
                job, m.record(job), root, spec.shard_count, net.honest.url
            )
            tx_hash = tx.transact({"from": net.honest.address})
            block = int(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["blockNumber"])
            miner.pause()
            while w3.eth.block_number < block + 2:  # the seed block is confirmed: the oracles
                net.anvil.rpc("evm_mine")  # act, and nothing mines the settlement
            wait_until(lambda: bool(transmitter.events("tx_broadcast")), 60, what="a settlement")
            (recorded,) = transmitter.events("tx_recorded")
            # a relayer settles with the same quorum, paying a higher tip
            record = m.job(job)
            seed = bytes(m.market.functions.challengeSeed(job, record.seed_block).call())
            domain = MarketDomain(int(w3.eth.chain_id), m.market.address)
            signed = [
                sign_verdict(k, domain, Verdict(job, root, seed, True)) for k in m.oracle_keys[:2]
            ]
            sigs = [s.signature for s in sorted(signed, key=lambda s: int(s.signer, 16))]
            relayed = m.market.functions.settle(job, record.record(), True, sigs).transact(
                {"from": m.owner, "maxPriorityFeePerGas": 100 * GWEI, "maxFeePerGas": 500 * GWEI}
            )
            net.anvil.rpc("evm_mine")  # both in one block, the relayer's first
            ((_, _, landed),) = m.settlement_logs(job)
            assert landed == "0x" + bytes(relayed).hex()
            ours = w3.eth.get_transaction_receipt(recorded["hash"])
            assert ours["status"] == 0 and ours["blockNumber"] == w3.eth.block_number
            data = w3.eth.get_transaction(recorded["hash"])["input"]
            with pytest.raises(ContractCustomError) as revert:  # why it reverted
                w3.eth.call({"from": transmitter.address, "to": m.market.address, "data": data})
            decoded = ErrorDecoder(load_artifact("ComputeMarket")[0]).decode(
                revert_data(revert.value)
            )
            assert decoded is not None and decoded.name == "MarketJobNotFound", decoded
            miner.resume()
            wait_until(
                lambda: (row := store_of(transmitter).job(job)) is not None and row.final
                and row.state == SETTLED and row.outcome == "paid",
                60, what="the transmitter to record the settlement",
            )  # fmt: skip
            # three more blocks ingested after it recorded the settlement: nothing is sent again
            wait_ingested([transmitter], w3.eth.block_number + 3)
        assert_settled_once(m, [job])
        assert len(transmitter.events("tx_recorded")) == 1
        assert transmitter.events("tx_reverted") and transmitter.events("settled_by_other")
        (row,) = store_of(transmitter).txs()
        assert row.status == TX_REVERTED
        assert not events_of(oracles, "tick_failed")
    finally:
        miner.stop()
