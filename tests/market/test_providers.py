"""Provider registry: registration, stake, unbonding, earnings."""

from __future__ import annotations

import ape

from neurotoken.units import NTK
from tests.constants import STAKE, UNBONDING_DELAY
from tests.market.conftest import event_args


def test_register__pulls_stake_and_records_metadata(m, market, token, provider, balance_of):
    before = balance_of(provider)
    tx = market.registerProvider(STAKE, "https://gpu.example/a.json", sender=provider)
    assert event_args(tx, market.ProviderRegistered) == {
        "provider": provider.address,
        "stakeNtk": STAKE,
        "metadataURI": "https://gpu.example/a.json",
    }
    record = market.getProvider(provider)
    assert record.registered and record.stakeNtk == STAKE
    assert record.earnedNtk == record.unbondingNtk == record.unbondReadyAt == 0
    assert market.providerMetadataURI(provider) == "https://gpu.example/a.json"
    assert balance_of(provider) == before - STAKE
    assert balance_of(market) == STAKE


def test_register__with_zero_stake__registers_without_transfer(market, provider, balance_of):
    tx = market.registerProvider(0, "uri", sender=provider)
    assert not tx.events.filter(market.ProviderRegistered)[0].stakeNtk
    assert market.getProvider(provider).registered
    assert balance_of(market) == 0


def test_register__twice__reverts(m, market, provider):
    m.register()
    with ape.reverts(market.MarketProviderAlreadyRegistered, provider=provider.address):
        market.registerProvider(1, "again", sender=provider)


def test_update_metadata__replaces_uri(m, market, provider):
    m.register()
    tx = market.updateProviderMetadata("ipfs://new", sender=provider)
    assert event_args(tx, market.ProviderMetadataUpdated) == {
        "provider": provider.address,
        "metadataURI": "ipfs://new",
    }
    assert market.providerMetadataURI(provider) == "ipfs://new"


def test_update_metadata__unregistered__reverts(market, stranger):
    with ape.reverts(market.MarketProviderNotRegistered, provider=stranger.address):
        market.updateProviderMetadata("x", sender=stranger)


def test_add_stake__increases_free_stake(m, market, provider, balance_of):
    m.register()
    tx = market.addStake(5 * NTK, sender=provider)
    assert event_args(tx, market.StakeAdded) == {
        "provider": provider.address,
        "amountNtk": 5 * NTK,
        "stakeNtk": STAKE + 5 * NTK,
    }
    assert market.getProvider(provider).stakeNtk == STAKE + 5 * NTK
    assert balance_of(market) == STAKE + 5 * NTK


def test_add_stake__zero__reverts(m, market, provider):
    m.register()
    with ape.reverts(market.MarketZeroAmount):
        market.addStake(0, sender=provider)


def test_add_stake__unregistered__reverts(market, provider):
    with ape.reverts(market.MarketProviderNotRegistered, provider=provider.address):
        market.addStake(1, sender=provider)


def test_add_stake__beyond_uint96__reverts_with_safecast(m, market, provider):
    m.register()
    with ape.reverts(market.SafeCastOverflowedUintDowncast, bits=96, value=2**96):
        market.addStake(2**96, sender=provider)


def test_request_unbond__moves_free_stake_and_starts_clock(m, market, chain, provider):
    m.register()
    tx = market.requestUnbond(300 * NTK, sender=provider)
    ready_at = chain.blocks.head.timestamp + UNBONDING_DELAY
    assert event_args(tx, market.UnbondRequested) == {
        "provider": provider.address,
        "amountNtk": 300 * NTK,
        "unbondingNtk": 300 * NTK,
        "readyAt": ready_at,
    }
    record = market.getProvider(provider)
    assert (record.stakeNtk, record.unbondingNtk, record.unbondReadyAt) == (
        STAKE - 300 * NTK,
        300 * NTK,
        ready_at,
    )


def test_request_unbond__second_request__adds_and_restarts_clock(m, market, chain, provider):
    m.register()
    market.requestUnbond(100 * NTK, sender=provider)
    chain.mine(deltatime=1000)
    tx = market.requestUnbond(50 * NTK, sender=provider)
    log = event_args(tx, market.UnbondRequested)
    assert log["unbondingNtk"] == 150 * NTK
    assert log["readyAt"] == chain.blocks.head.timestamp + UNBONDING_DELAY


def test_request_unbond__more_than_free__reverts(m, market, provider):
    m.register()
    with ape.reverts(
        market.MarketInsufficientStake,
        provider=provider.address,
        available=STAKE,
        required=STAKE + 1,
    ):
        market.requestUnbond(STAKE + 1, sender=provider)


def test_request_unbond__of_locked_collateral__reverts(m, market, provider):
    """Stake locked as a job's collateral is not free: the provider cannot unbond it."""
    m.accepted(collateralNtk=STAKE - 10 * NTK)
    assert market.getProvider(provider).stakeNtk == 10 * NTK
    with ape.reverts(
        market.MarketInsufficientStake,
        provider=provider.address,
        available=10 * NTK,
        required=11 * NTK,
    ):
        market.requestUnbond(11 * NTK, sender=provider)


def test_request_unbond__zero__reverts(m, market, provider):
    m.register()
    with ape.reverts(market.MarketZeroAmount):
        market.requestUnbond(0, sender=provider)


def test_request_unbond__unregistered__reverts(market, stranger):
    with ape.reverts(market.MarketProviderNotRegistered, provider=stranger.address):
        market.requestUnbond(1, sender=stranger)


def test_withdraw_unbonded__before_delay__reverts(m, market, chain, provider):
    m.register()
    market.requestUnbond(NTK, sender=provider)
    ready_at = market.getProvider(provider).unbondReadyAt
    chain.pending_timestamp = ready_at - 1
    with ape.reverts(
        market.MarketUnbondNotReady,
        provider=provider.address,
        readyAt=ready_at,
        timestamp=ready_at - 1,
    ):
        market.withdrawUnbonded(sender=provider)


def test_withdraw_unbonded__at_ready_time__pays_out(m, market, chain, provider, balance_of):
    m.register()
    market.requestUnbond(300 * NTK, sender=provider)
    chain.pending_timestamp = market.getProvider(provider).unbondReadyAt
    before = balance_of(provider)
    tx = market.withdrawUnbonded(sender=provider)
    assert event_args(tx, market.UnbondWithdrawn) == {
        "provider": provider.address,
        "amountNtk": 300 * NTK,
    }
    assert balance_of(provider) == before + 300 * NTK
    assert market.getProvider(provider).unbondingNtk == 0
    assert balance_of(market) == STAKE - 300 * NTK


def test_withdraw_unbonded__nothing_unbonding__reverts(m, market, provider):
    m.register()
    with ape.reverts(market.MarketNothingToWithdraw, account=provider.address):
        market.withdrawUnbonded(sender=provider)


def test_withdraw_earnings__nothing_earned__reverts(market, provider):
    with ape.reverts(market.MarketNothingToWithdraw, account=provider.address):
        market.withdrawEarnings(sender=provider)


def test_withdraw_earnings__after_paid_job__pays_net_and_zeroes(
    m, market, provider, oracles, balance_of
):
    job_id = m.submitted()
    market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=provider)
    earned = market.getProvider(provider).earnedNtk
    assert earned > 0
    before = balance_of(provider)
    tx = market.withdrawEarnings(sender=provider)
    assert event_args(tx, market.EarningsWithdrawn) == {
        "provider": provider.address,
        "amountNtk": earned,
    }
    assert balance_of(provider) == before + earned
    assert market.getProvider(provider).earnedNtk == 0
