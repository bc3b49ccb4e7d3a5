"""Upkeep on a real anvil node: the oracles store the challenge seed of a job still unsettled
when its seed block grows old (one draw, kept for good), never draw again for a seed that
aged out unseen (the job lapses), lapse a job whose verdict deadline passed without a quorum,
and expire jobs nobody accepted or delivered in time, taking turns so that each call goes
out once."""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import ContractCustomError

from devchain.localnet import OracleProcess, load_artifact, running, small_spec, wait_until
from oracle.store import EXPIRED, SIGNED
from tests.constants import ACCEPTED as ACCEPTED_ONCHAIN
from tests.constants import DEFAULTED as DEFAULTED_ONCHAIN
from tests.constants import EXPIRED as EXPIRED_ONCHAIN
from tests.constants import HISTORY_STORAGE, LAPSED, PAID, REJECTED
from tests.oracle.helpers import assert_settled_once, events_of, store_of, wait_settled


def upkeep_sent(oracles: list[OracleProcess], kind: str) -> list[dict[str, Any]]:
    return [e for e in events_of(oracles, "upkeep_sent") if e["kind"] == kind]


def test_unsettled_job_with_an_old_seed_block__seed_fixed_once__settles_after_history_is_gone(
    make_net,
) -> None:
    net = make_net(oracles=3, threshold=3)
    m = net.market
    env = {"ORACLE_TRANSMIT_BACKUP_DELAY_S": "4", "ORACLE_SEED_FIX_AFTER_BLOCKS": "20"}
    # two of three oracles run: they verify and sign, but three signatures are needed
    two = net.oracle_set(keys=m.oracle_keys[:2], env=env)
    with running(two):
        for o in two:
            o.wait_ready()
        spec = small_spec(seed=61)
        job = net.client.post(spec)
        net.honest.fulfil(job, spec)
        seed_block = m.job(job).seed_block
        wait_until(
            lambda: all((r := store_of(o).job(job)) is not None and r.state == SIGNED
                        for o in two),
            60, what="both oracles to sign",
        )  # fmt: skip
        net.anvil.mine(25)
        wait_until(
            lambda: bool(m.market.events.ChallengeSeedFixed().get_logs(from_block=m.deploy_block)),
            60,
            what="the seed to be fixed",
        )
    (fixed,) = m.market.events.ChallengeSeedFixed().get_logs(from_block=m.deploy_block)
    assert fixed["args"]["jobId"] == job and fixed["args"]["seedBlock"] == seed_block
    assert len(upkeep_sent(two, "fix_seed")) == 1
    # the seed block's hash goes out of reach (EIP-2935 history emptied, as on a chain
    # without it, so that 260 blocks do instead of 8,191); the fixed seed still judges
    net.anvil.rpc("anvil_setCode", HISTORY_STORAGE, "0x")
    net.anvil.mine(260)
    oracles = net.oracle_set(env=env)
    with running(oracles):
        for o in oracles:
            o.wait_ready()
        wait_settled(m, {job: PAID}, timeout=120)
        assert_settled_once(m, [job])
    assert m.job(job).seed_block == seed_block  # one draw, never moved


def test_seed_aged_out_before_any_oracle_saw_it__no_second_draw__lapsed_once(make_net) -> None:
    net = make_net()
    m = net.market
    spec = small_spec(seed=65)
    job = net.client.post(spec, verdict_window_s=600)
    net.honest.fulfil(job, spec)
    seed_block = m.job(job).seed_block
    # every oracle was down while the seed block's hash went out of reach
    net.anvil.rpc("anvil_setCode", HISTORY_STORAGE, "0x")
    net.anvil.mine(260)
    with pytest.raises(ContractCustomError) as revert:
        m.market.functions.challengeSeed(job, seed_block).call()
    assert revert.value.data is not None
    oracles = net.oracle_set(env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "4"})
    with running(oracles):
        for o in oracles:
            o.wait_ready()
        wait_until(
            lambda: any("MarketChallengeSeedUnavailable" in e["error"]
                        for e in events_of(oracles, "seed_unavailable")),
            60, what="the oracles to find the seed lost",
        )  # fmt: skip
        net.anvil.rpc("evm_increaseTime", 7200 + 600 + 60)  # past the verdict deadline
        net.anvil.mine(1)
        wait_until(lambda: m.state(job) == LAPSED, 60, what="the job to lapse")
    assert not events_of(oracles, "verified")  # nobody judged another draw
    assert not upkeep_sent(oracles, "fix_seed")  # fixing a lost seed would revert: not sent
    assert m.job(job).seed_block == seed_block
    assert len(m.market.events.JobLapsed().get_logs(from_block=m.deploy_block)) == 1


def test_verdict_deadline_passed_without_quorum__lapsed_once(make_net) -> None:
    net = make_net(oracles=3, threshold=3)
    m = net.market
    # two of three oracles run: they verify and sign, but three signatures are needed
    oracles = net.oracle_set(keys=m.oracle_keys[:2], env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "4"})
    with running(oracles):
        for o in oracles:
            o.wait_ready()
        spec = small_spec(seed=62)
        job = net.client.post(spec, verdict_window_s=600)
        net.honest.fulfil(job, spec)
        wait_until(
            lambda: all(store_of(o).job(job) is not None
                        and store_of(o).job(job).state == SIGNED for o in oracles),  # type: ignore[union-attr]
            60, what="both oracles to sign",
        )  # fmt: skip
        client_before = m.token.functions.balanceOf(m.client).call()
        stake_before = m.market.functions.getProvider(net.honest.address).call()[0]
        net.anvil.rpc("evm_increaseTime", 7200 + 600 + 60)  # past the verdict deadline
        net.anvil.mine(1)
        wait_until(lambda: m.state(job) == LAPSED, 60, what="the job to lapse")
        wait_until(
            lambda: all((r := store_of(o).job(job)) is not None and r.state == EXPIRED
                        and r.final and r.outcome == "lapsed" for o in oracles),
            60, what="the stores to see the lapse",
        )  # fmt: skip
        assert len(upkeep_sent(oracles, "expire")) == 1
    lapsed = m.market.events.JobLapsed().get_logs(from_block=m.deploy_block)
    assert len(lapsed) == 1
    assert m.token.functions.balanceOf(m.client).call() - client_before == 100 * 10**18
    stake_after = m.market.functions.getProvider(net.honest.address).call()[0]
    assert stake_after - stake_before == 400 * 10**18  # the collateral is free again


def test_job_not_accepted_in_time__expired__and_not_delivered_in_time__defaulted__once_each(
    make_net,
) -> None:
    net = make_net()
    m = net.market
    oracles = net.oracle_set(env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "4"})
    with running(oracles):
        for o in oracles:
            o.wait_ready()
        untaken = net.client.post(small_spec(seed=63))  # acceptBy now + 1 h, deliverBy + 2 h
        undelivered = net.client.post(small_spec(seed=64))
        net.honest.accept(undelivered)
        client_before = m.token.functions.balanceOf(m.client).call()
        net.anvil.rpc("evm_increaseTime", 3600 + 60)  # past acceptBy, before deliverBy
        net.anvil.mine(1)
        wait_until(lambda: m.state(untaken) == EXPIRED_ONCHAIN, 60, what="the expiry")
        assert m.state(undelivered) == ACCEPTED_ONCHAIN  # its delivery deadline is ahead
        net.anvil.rpc("evm_increaseTime", 3600)  # past deliverBy
        net.anvil.mine(1)
        wait_until(lambda: m.state(undelivered) == DEFAULTED_ONCHAIN, 60, what="the default")
        wait_until(
            lambda: all(store_of(o).unsubmitted_past(2**40) == [] for o in oracles),
            60, what="the stores to see both ends",
        )  # fmt: skip
        sent = upkeep_sent(oracles, "expire")
        assert sorted(e["job"] for e in sent) == [untaken, undelivered]  # one call each
    (expired,) = m.market.events.JobExpired().get_logs(from_block=m.deploy_block)
    (defaulted,) = m.market.events.JobDefaulted().get_logs(from_block=m.deploy_block)
    assert expired["args"]["jobId"] == untaken and expired["args"]["refundNtk"] == 100 * 10**18
    assert defaulted["args"]["jobId"] == undelivered
    # the client got both payments back and, for the default, compensation from the collateral
    refund = defaulted["args"]["refundNtk"]
    assert refund > 100 * 10**18
    got = m.token.functions.balanceOf(m.client).call() - client_before
    assert got == 100 * 10**18 + refund


def test_randao_market__oracles_record_each_seed_blocks_mix__honest_paid_cheat_rejected(
    make_net,
) -> None:
    """On a market seeding with RANDAO (4 blocks after the commit), the oracles record each
    seed block's mix from its header (in turn: once each, no `fixChallengeSeed`), verify
    against it and settle: the honest job paid, the faked one rejected."""
    net = make_net(randao_delay=4)
    m = net.market
    recorder = m.w3.eth.contract(
        address=m.market.functions.randaoRecorder().call(), abi=load_artifact("RandaoRecorder")[0]
    )
    oracles = net.oracle_set(env={"ORACLE_TRANSMIT_BACKUP_DELAY_S": "4"})
    with running(oracles):
        for o in oracles:
            o.wait_ready()
        honest_spec, cheat_spec = small_spec(seed=71), small_spec(seed=72)
        honest = net.client.post(honest_spec)
        cheat = net.client.post(cheat_spec, k=8)
        committed = {
            honest: net.honest.fulfil(honest, honest_spec),
            cheat: net.cheat.fulfil(cheat, cheat_spec),
        }
        wait_settled(m, {honest: PAID, cheat: REJECTED}, timeout=120)
        assert_settled_once(m, [honest, cheat])
    seed_blocks = {job: m.job(job).seed_block for job in committed}
    assert seed_blocks == {job: block + 4 for job, block in committed.items()}
    recorded = recorder.events.RandaoRecorded().get_logs(from_block=m.deploy_block)
    assert sorted(e["args"]["blockNumber"] for e in recorded) == sorted(set(seed_blocks.values()))
    for e in recorded:
        mix = m.w3.eth.get_block(e["args"]["blockNumber"])["mixHash"]
        assert bytes(e["args"]["mix"]) == bytes(mix) != bytes(32)
    assert upkeep_sent(oracles, "record_randao")
    assert not upkeep_sent(oracles, "fix_seed")
    assert not m.market.events.ChallengeSeedFixed().get_logs(from_block=m.deploy_block)
