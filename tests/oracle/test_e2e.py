"""End to end on a real anvil node: oracle processes verify real proof bundles, sign,
collect each other's signatures and settle; nothing is mocked."""

from __future__ import annotations

import json

import pytest
import requests
from eth_account import Account

from devchain.localnet import running, small_spec, wait_until
from neurotoken.proofs.results import ResultError, fetch_result
from oracle.store import SETTLED, SIGNED
from tests.constants import PAID, REJECTED
from tests.oracle.helpers import (
    GarbagePeer,
    RogueOracle,
    assert_settled_once,
    events_of,
    metrics,
    oracle_cli,
    store_of,
    wait_settled,
)


def test_happy_path__honest_paid_cheater_slashed__each_settled_once(make_net) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set()
    with running(oracles):
        for o in oracles:
            o.wait_ready()
        honest_job = net.client.post(small_spec(seed=1))
        cheat_job = net.client.post(small_spec(seed=2))
        net.honest.fulfil(honest_job, small_spec(seed=1))
        net.cheat.fulfil(cheat_job, small_spec(seed=2))
        wait_settled(m, {honest_job: PAID, cheat_job: REJECTED})
        assert_settled_once(m, [honest_job, cheat_job])
        # the honest provider earned the payment less the 2.5% fee
        assert (
            m.market.functions.getProvider(net.honest.address).call()[1]
            == 97_500_000_000_000_000_000
        )
        rejected = m.market.events.JobRejected().get_logs(from_block=m.deploy_block)
        assert rejected[0]["args"]["burnedNtk"] == 200 * 10**18  # half the 400 NTK collateral
        # the oracles read the bundles with their tokens; the client takes its result, a
        # stranger who knows the URL gets nothing
        root = m.job(honest_job).result_root
        chain_id = int(m.w3.eth.chain_id)
        got = fetch_result(
            net.honest.url, root, m.client_key, chain_id, m.market.address, net.folder / "r"
        )
        assert len(got.shards) == small_spec(seed=1).shard_count
        with pytest.raises(ResultError, match="403"):
            stranger = "0x" + "77" * 32
            fetch_result(
                net.honest.url, root, stranger, chain_id, m.market.address, net.folder / "s"
            )
        # every oracle's store ends with both jobs settled and its verdicts served
        wait_until(
            lambda: all(
                {j.job_id: j.state for j in store_of(o).jobs()} == {1: SETTLED, 2: SETTLED}
                for o in oracles
            ),
            30,
            what="stores to catch up",
        )
        for o in oracles:
            got = requests.get(f"{o.url}/signatures/{cheat_job}", timeout=5).json()
            (sig,) = got["signatures"]
            assert sig["signer"] == o.address and sig["verdicts"][0]["accepted"] is False
            sample = metrics(o)
            assert sample['oracle_jobs{state="settled"}'] == 2
            assert sample["oracle_verification_seconds_count"] >= 2
            assert sample["oracle_pending_transactions"] == 0
            health = requests.get(f"{o.url}/healthz", timeout=5).json()
            assert health["ok"] and health["lag"] <= 3
        # the designated transmitter sent each settlement; nobody wasted a reverted one
        assert not events_of(oracles, "tx_reverted")
    # key material and passwords never reach a log; every line is JSON
    for o, key in zip(oracles, m.oracle_keys, strict=True):
        text = o.log_path.read_text()
        assert key[2:] not in text.lower() and "demo-password" not in text
        assert all(line.startswith("{") for line in text.splitlines() if line.strip())
    status = oracle_cli("status", f"--database-url=sqlite:///{oracles[0].folder / 'oracle.sqlite'}")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["jobs_by_state"]["settled"] == 2 and report["pending_transactions"] == []
    assert report["cursor"] > m.deploy_block


def test_threshold_two_of_three__one_oracle_down__still_settles(make_net) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set(env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "1"})
    up = oracles[:2]  # oracle3 is never started: its URL refuses connections
    with running(up):
        for o in up:
            o.wait_ready()
        jobs = [net.client.post(small_spec(seed=s)) for s in (3, 4, 5)]
        for job, seed in zip(jobs, (3, 4, 5), strict=True):
            net.honest.fulfil(job, small_spec(seed=seed))
        wait_settled(m, dict.fromkeys(jobs, PAID))
        assert_settled_once(m, jobs)
    assert {tuple(sorted(e["signers"])) for e in events_of(up, "settlement_sent")} == {
        tuple(sorted(o.address for o in up))
    }


def test_always_accept_oracle__outvoted_on_cheating_provider(make_net) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set()
    honest_pair, rogue_slot = oracles[:2], oracles[2]
    rogue = RogueOracle(m, m.oracle_keys[2])
    for o in honest_pair:  # the honest ones ask the rogue like any peer
        o.peers = [p.url for p in honest_pair if p is not o] + [rogue.url]
    try:
        with running(honest_pair):
            for o in honest_pair:
                o.wait_ready()
            job = net.client.post(small_spec(seed=6))
            net.cheat.fulfil(job, small_spec(seed=6))
            wait_settled(m, {job: REJECTED})
            assert_settled_once(m, [job])
            # the rogue's accept was collected and stored by whoever gathered, and lost the vote
            gathered = {
                (s.signer, s.accepted)
                for o in honest_pair
                for s in store_of(o).signatures(job, own=False)
            }
            assert (rogue.address, True) in gathered
            assert rogue.hits > 0
    finally:
        rogue.stop()
    assert rogue_slot.address == rogue.address


def test_batch__several_ready_jobs__settle_in_one_transaction(make_net) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set(
        per_oracle_env=[
            {
                "ORACLE_TRANSMIT_BACKUP_DELAY_S": "0",
                "ORACLE_BATCH_WAIT_S": "10",
                "ORACLE_VERIFY_WORKERS": "2",
            },
            {"ORACLE_TRANSMIT": "false"},
            {"ORACLE_TRANSMIT": "false"},
        ]
    )
    seeds = (7, 8, 9, 10)
    jobs = [net.client.post(small_spec(seed=s)) for s in seeds]
    for job, seed in zip(jobs, seeds, strict=True):
        (net.honest if seed % 2 else net.cheat).fulfil(job, small_spec(seed=seed))
    net.anvil.mine(3)
    with running(oracles):  # all four are ready when the oracles come up
        wait_settled(m, {j: PAID if s % 2 else REJECTED for j, s in zip(jobs, seeds, strict=True)})
        assert_settled_once(m, jobs)
        tx_hashes = {tx for _, _, tx in m.settlement_logs()}
        assert len(tx_hashes) < len(jobs)  # at least one batch
        batches = [e for e in oracles[0].events("settlement_sent") if e.get("batch")]
        assert batches and all(len(e["jobs"]) >= 2 for e in batches)
        assert not oracles[1].events("settlement_sent") and not oracles[2].events("settlement_sent")


def test_settle_cli__collects_from_oracles_and_settles_without_a_transmitter(make_net) -> None:
    net = make_net()
    m = net.market
    signers = net.oracle_set(env={"ORACLE_TRANSMIT": "false"}, keys=m.oracle_keys[:2])
    watcher = net.oracle_set(keys=[None])[0]  # dry-run: verifies, signs nothing
    net.honest.restart(public=True)  # a keyless watcher cannot sign a bundle access token
    with running([*signers, watcher]):
        for o in (*signers, watcher):
            o.wait_ready()
        job = net.client.post(small_spec(seed=11))
        net.honest.fulfil(job, small_spec(seed=11))
        wait_until(
            lambda: all(store_of(o).job(job) is not None
                        and store_of(o).job(job).state == SIGNED for o in signers),  # type: ignore[union-attr]
            60, what="both oracles to sign",
        )  # fmt: skip
        wait_until(lambda: bool(watcher.events("dry_run_verdict")), 30, what="dry-run verdict")
        assert watcher.events("dry_run_verdict")[0]["accepted"] is True
        assert requests.get(f"{watcher.url}/signatures/{job}", timeout=5).status_code == 404
        assert m.state(job) == 3  # signed, but nobody transmits
        # the provider collects the signatures and settles the job itself
        keystore = net.folder / "provider-keystore.json"
        from neurotoken.chain.keystore import write_keystore

        provider_key = (
            "0x"
            + bytes(
                Account.from_mnemonic(
                    "test test test test test test test test test test test junk",
                    account_path="m/44'/60'/0'/0/2",
                ).key
            ).hex()
        )
        write_keystore(keystore, provider_key, "pw", iterations=1024)
        peers = [f"--peer={o.url}" for o in (*signers, watcher)]
        result = oracle_cli(
            "settle", f"--job={job}", *peers, f"--rpc-url={net.anvil.url}",
            f"--market={m.market.address}", f"--keystore={keystore}", "--password-env=PW",
            env={"PW": "pw"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        (entry,) = json.loads(result.stdout)
        assert entry["result"] == "settled" and entry["accepted"] is True
        assert sorted(entry["signers"]) == sorted(o.address for o in signers)
        assert m.state(job) == PAID
        assert_settled_once(m, [job])
        again = oracle_cli(
            "settle", f"--job={job}", *peers, f"--rpc-url={net.anvil.url}",
            f"--market={m.market.address}", "--dry-run",
        )  # fmt: skip
        assert json.loads(again.stdout)[0]["result"] == "already_settled"


def test_peer_garbage__is_ignored_logged_and_counted(make_net) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set(keys=m.oracle_keys[:2])
    stranger = "0x" + "77" * 32
    garbage = GarbagePeer(m, stranger)
    for o in oracles:
        o.peers = [*o.peers, garbage.url]
    try:
        with running(oracles):
            for o in oracles:
                o.wait_ready()
            jobs = [net.client.post(small_spec(seed=s)) for s in (12, 13)]
            net.honest.fulfil(jobs[0], small_spec(seed=12))
            net.cheat.fulfil(jobs[1], small_spec(seed=13))
            wait_settled(m, {jobs[0]: PAID, jobs[1]: REJECTED})
            assert_settled_once(m, jobs)
            assert garbage.hits > 0
            assert events_of(oracles, "peer_garbage")
            assert sum(metrics(o)["oracle_peer_garbage_total"] for o in oracles) > 0
            for o in oracles:  # nothing a stranger signed was stored
                signers = {s.signer for j in jobs for s in store_of(o).signatures(j)}
                assert Account.from_key(stranger).address not in signers
    finally:
        garbage.stop()
