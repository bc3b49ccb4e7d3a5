"""Finalization, claims and refunds: success delivers, failure refunds, nothing blocks either."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from neurotoken.sale.terms import Allocation, SaleState, Stage
from neurotoken.units import NTK
from tests.constants import ETH, WEEK
from tests.sale.conftest import HARD_CAP, LIQUIDITY, PARTNERS, RESEARCHERS, TREASURY, SaleEnv
from tests.sale.helpers import reverts

SOLD = 10 * 1100 * NTK + 15 * 1150 * NTK  # alice 10 ETH in presale, carol 15 ETH in week 1


@pytest.fixture
def funded(env: SaleEnv, alice: Any, carol: Any) -> SaleEnv:
    """25 ETH raised (soft cap 20), sale not ended."""
    env.warp(Stage.PRESALE)
    env.buy(alice, 10 * ETH, env.proof(alice))
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 15 * ETH)
    return env


@pytest.fixture
def succeeded(funded: SaleEnv, erin: Any) -> SaleEnv:
    funded.warp(Stage.ENDED)
    funded.sale.finalize(sender=erin)
    return funded


@pytest.fixture
def failed(env: SaleEnv, alice: Any, carol: Any, erin: Any) -> SaleEnv:
    """5 ETH raised, below the 20 ETH soft cap; finalized."""
    env.warp(Stage.PRESALE)
    env.buy(alice, 2 * ETH, env.proof(alice))
    env.warp(Stage.ICO_WEEK2)
    env.buy(carol, 3 * ETH)
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    return env


# --- finalize -----------------------------------------------------------------------------


def test_finalize__before_the_end_and_not_sold_out__reverts(funded: SaleEnv, erin: Any) -> None:
    with reverts(
        funded.sale.SaleNotFinalizable, endsAt=funded.terms.ends_at, tokensLeft=HARD_CAP - SOLD
    ):
        funded.sale.finalize(sender=erin)


def test_finalize__after_success__mints_allocations_closes_minting_and_forwards_the_eth(
    funded: SaleEnv, chain: Any, erin: Any
) -> None:
    env = funded
    env.warp(Stage.ENDED)
    treasury_before = chain.get_balance(TREASURY)
    receipt = env.sale.finalize(sender=erin)

    expected = env.terms.allocations(SOLD)
    wallets = env.terms.allocation_wallets(env.deployment.team_vesting)
    [final] = list(env.sale.SaleFinalized.from_receipt(receipt))
    assert (final.outcome, final.weiRaised, final.tokensSold) == (
        SaleState.SUCCEEDED,
        25 * ETH,
        SOLD,
    )
    minted = {
        Allocation(log.allocation): (log.wallet, log.amount)
        for log in env.sale.AllocationMinted.from_receipt(receipt)
    }
    assert minted == {kind: (wallets[kind], expected[kind]) for kind in Allocation}
    [forwarded] = list(env.sale.FundsForwarded.from_receipt(receipt))
    assert (forwarded.treasury, forwarded.amountWei) == (TREASURY, 25 * ETH)

    token = env.token
    assert env.sale.state() == SaleState.SUCCEEDED
    assert chain.get_balance(TREASURY) == treasury_before + 25 * ETH
    assert env.sale.balance == 0
    assert token.balanceOf(env.sale) == SOLD
    for kind in Allocation:
        assert token.balanceOf(wallets[kind]) == expected[kind]
    assert token.totalSupply() == SOLD + sum(expected.values())
    assert token.mintingFinished()
    # Buyers hold 60% (allocations round down, so never less).
    assert 6_000 * token.totalSupply() <= SOLD * 10_000
    assert expected[Allocation.LIQUIDITY] == SOLD * 1000 // 6000
    assert expected[Allocation.TEAM] == expected[Allocation.PARTNERS] == SOLD * 1200 // 6000
    assert expected[Allocation.RESEARCHERS] == SOLD * 600 // 6000


def test_finalize__twice__reverts(succeeded: SaleEnv, erin: Any) -> None:
    with reverts(succeeded.sale.SaleAlreadyFinalized, state=SaleState.SUCCEEDED):
        succeeded.sale.finalize(sender=erin)


def test_finalize__while_paused__still_works(funded: SaleEnv, owner: Any, erin: Any) -> None:
    funded.sale.pause(sender=owner)
    funded.warp(Stage.ENDED)
    funded.sale.finalize(sender=erin)
    assert funded.sale.state() == SaleState.SUCCEEDED


def test_pause__after_finalization__reverts(succeeded: SaleEnv, owner: Any) -> None:
    with reverts(succeeded.sale.SaleClosed, state=SaleState.SUCCEEDED):
        succeeded.sale.pause(sender=owner)


def test_buy__after_finalization__reverts(
    deploy: Callable[..., SaleEnv], carol: Any, erin: Any
) -> None:
    # Sold out in week 1, finalized at once; the sale is still inside its schedule.
    env = deploy(hard_cap_tokens=2300 * NTK, soft_cap_wei=ETH)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 2 * ETH)
    env.sale.finalize(sender=erin)
    with reverts(env.sale.SaleClosed, state=SaleState.SUCCEEDED):
        env.buy(erin, ETH)


def test_finalize__when_sold_out_before_the_end__succeeds_at_once(
    deploy: Callable[..., SaleEnv], carol: Any, erin: Any
) -> None:
    env = deploy(hard_cap_tokens=2300 * NTK, soft_cap_wei=ETH)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 3 * ETH)  # 2 ETH kept, 1 ETH returned
    assert env.sale.tokensLeft() == 0
    env.sale.finalize(sender=erin)
    assert env.sale.state() == SaleState.SUCCEEDED
    env.sale.claim(carol, sender=carol)
    assert env.token.balanceOf(carol) == 2300 * NTK


def test_finalize__below_the_soft_cap__fails_mints_nothing_and_closes_minting(
    env: SaleEnv, alice: Any, erin: Any
) -> None:
    env.warp(Stage.PRESALE)
    env.buy(alice, 5 * ETH, env.proof(alice))
    env.warp(Stage.ENDED)
    receipt = env.sale.finalize(sender=erin)
    [final] = list(env.sale.SaleFinalized.from_receipt(receipt))
    assert (final.outcome, final.weiRaised) == (SaleState.FAILED, 5 * ETH)
    assert list(env.sale.AllocationMinted.from_receipt(receipt)) == []
    assert list(env.sale.FundsForwarded.from_receipt(receipt)) == []
    assert env.sale.state() == SaleState.FAILED
    assert env.token.totalSupply() == 0
    assert env.token.mintingFinished()
    assert env.sale.balance == 5 * ETH


def test_finalize__with_nothing_sold__fails(env: SaleEnv, erin: Any) -> None:
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    assert env.sale.state() == SaleState.FAILED
    with reverts(env.sale.SaleNothingToRefund, buyer=erin):
        env.sale.refund(erin, sender=erin)


def test_finalize__when_the_sale_lost_the_minter_role__fails_and_refunds(
    deploy: Callable[..., SaleEnv], owner: Any, carol: Any, erin: Any
) -> None:
    env = deploy(renounce_admin=False)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 30 * ETH)
    env.token.revokeRole(env.token.MINTER_ROLE(), env.sale, sender=owner)
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    assert env.sale.softCapReached()
    assert env.sale.state() == SaleState.FAILED
    assert not env.token.mintingFinished()  # the sale can no longer close it
    before = carol.balance
    env.sale.refund(carol, sender=erin)
    assert carol.balance == before + 30 * ETH


def test_finalize__when_minting_was_closed_by_another_minter__fails(
    deploy: Callable[..., SaleEnv], owner: Any, carol: Any, erin: Any
) -> None:
    env = deploy(renounce_admin=False)
    env.token.grantRole(env.token.MINTER_ROLE(), owner, sender=owner)
    env.token.finishMinting(sender=owner)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 30 * ETH)
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    assert env.sale.state() == SaleState.FAILED


def test_finalize__when_another_minter_used_up_the_cap__fails(
    deploy: Callable[..., SaleEnv], owner: Any, carol: Any, erin: Any
) -> None:
    env = deploy(renounce_admin=False)
    env.token.grantRole(env.token.MINTER_ROLE(), owner, sender=owner)
    env.token.mint(owner, 99_990_000 * NTK, sender=owner)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 30 * ETH)  # 34,500 NTK + allocations > the 10,000 NTK of room
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    assert env.sale.state() == SaleState.FAILED
    assert env.token.mintingFinished()
    assert env.token.totalSupply() == 99_990_000 * NTK


# --- the treasury -------------------------------------------------------------------------


@pytest.fixture
def rejecting_treasury(project: Any, owner: Any) -> Any:
    contract = project.ReentrantBuyer.deploy(
        "0x0000000000000000000000000000000000000001", sender=owner
    )
    contract.setRejectEth(True, sender=owner)
    return contract


def test_finalize__when_the_treasury_rejects_eth__still_succeeds_and_holds_the_eth(
    deploy: Callable[..., SaleEnv], rejecting_treasury: Any, owner: Any, carol: Any, erin: Any
) -> None:
    env = deploy(treasury=rejecting_treasury.address)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 30 * ETH)
    env.warp(Stage.ENDED)
    receipt = env.sale.finalize(sender=erin)
    [held] = list(env.sale.FundsForwardFailed.from_receipt(receipt))
    assert (held.treasury, held.amountWei) == (rejecting_treasury.address, 30 * ETH)
    assert env.sale.state() == SaleState.SUCCEEDED
    assert env.sale.balance == 30 * ETH
    env.sale.claim(carol, sender=carol)  # claims are not held up
    with reverts(env.sale.SaleTransferFailed, to=rejecting_treasury, amountWei=30 * ETH):
        env.sale.forwardFunds(sender=erin)

    rejecting_treasury.setRejectEth(False, sender=owner)
    receipt = env.sale.forwardFunds(sender=erin)
    [forwarded] = list(env.sale.FundsForwarded.from_receipt(receipt))
    assert forwarded.amountWei == 30 * ETH
    assert rejecting_treasury.balance == 30 * ETH
    assert env.sale.balance == 0
    with reverts(env.sale.SaleNothingToForward):
        env.sale.forwardFunds(sender=erin)


def test_forward_funds__before_success__reverts(funded: SaleEnv, erin: Any) -> None:
    with reverts(funded.sale.SaleNotSucceeded, state=SaleState.OPEN):
        funded.sale.forwardFunds(sender=erin)


# --- claim --------------------------------------------------------------------------------


def test_claim__before_finalization__reverts(funded: SaleEnv, alice: Any) -> None:
    with reverts(funded.sale.SaleNotSucceeded, state=SaleState.OPEN):
        funded.sale.claim(alice, sender=alice)


def test_claim__after_failure__reverts(failed: SaleEnv, alice: Any) -> None:
    with reverts(failed.sale.SaleNotSucceeded, state=SaleState.FAILED):
        failed.sale.claim(alice, sender=alice)


def test_claim__delivers_the_tokens_bought_once(succeeded: SaleEnv, alice: Any) -> None:
    receipt = succeeded.sale.claim(alice, sender=alice)
    [log] = list(succeeded.sale.TokensClaimed.from_receipt(receipt))
    assert (log.buyer, log.caller, log.amount) == (alice.address, alice.address, 11_000 * NTK)
    assert succeeded.token.balanceOf(alice) == 11_000 * NTK
    assert succeeded.sale.contributionOf(alice) == (0, 0)  # settled: the record is cleared
    with reverts(succeeded.sale.SaleNothingToClaim, buyer=alice):
        succeeded.sale.claim(alice, sender=alice)


def test_claim__by_someone_else__delivers_to_the_buyer(
    succeeded: SaleEnv, carol: Any, erin: Any
) -> None:
    receipt = succeeded.sale.claim(carol, sender=erin)
    [log] = list(succeeded.sale.TokensClaimed.from_receipt(receipt))
    assert (log.buyer, log.caller) == (carol.address, erin.address)
    assert succeeded.token.balanceOf(carol) == 17_250 * NTK
    assert succeeded.token.balanceOf(erin) == 0


def test_claim__by_a_non_buyer__reverts(succeeded: SaleEnv, erin: Any) -> None:
    with reverts(succeeded.sale.SaleNothingToClaim, buyer=erin):
        succeeded.sale.claim(erin, sender=erin)


def test_claim__while_paused__still_works(
    funded: SaleEnv, owner: Any, alice: Any, erin: Any
) -> None:
    funded.sale.pause(sender=owner)
    funded.warp(Stage.ENDED)
    funded.sale.finalize(sender=erin)
    funded.sale.claim(alice, sender=alice)
    assert funded.token.balanceOf(alice) == 11_000 * NTK


def test_claim__by_every_buyer__empties_the_sale(
    succeeded: SaleEnv, alice: Any, carol: Any
) -> None:
    succeeded.sale.claim(alice, sender=alice)
    succeeded.sale.claim(carol, sender=carol)
    assert succeeded.token.balanceOf(succeeded.sale) == 0
    assert succeeded.token.balanceOf(alice) + succeeded.token.balanceOf(carol) == SOLD


def test_refund__after_success__reverts(succeeded: SaleEnv, alice: Any) -> None:
    with reverts(succeeded.sale.SaleNotFailed, state=SaleState.SUCCEEDED):
        succeeded.sale.refund(alice, sender=alice)


# --- refund -------------------------------------------------------------------------------


def test_refund__before_finalization__reverts(funded: SaleEnv, alice: Any) -> None:
    with reverts(funded.sale.SaleNotFailed, state=SaleState.OPEN):
        funded.sale.refund(alice, sender=alice)


def test_refund__returns_exactly_the_eth_paid_once(failed: SaleEnv, alice: Any) -> None:
    before = alice.balance
    receipt = failed.sale.refund(alice, sender=alice)
    [log] = list(failed.sale.Refunded.from_receipt(receipt))
    assert (log.buyer, log.caller, log.amountWei) == (alice.address, alice.address, 2 * ETH)
    assert alice.balance == before + 2 * ETH - int(receipt.gas_used) * int(receipt.gas_price)
    assert failed.sale.contributionOf(alice) == (0, 0)  # settled: the record is cleared
    with reverts(failed.sale.SaleNothingToRefund, buyer=alice):
        failed.sale.refund(alice, sender=alice)


def test_refund__by_someone_else__pays_the_buyer(failed: SaleEnv, carol: Any, erin: Any) -> None:
    before = carol.balance
    failed.sale.refund(carol, sender=erin)
    assert carol.balance == before + 3 * ETH


def test_refund__by_every_buyer__empties_the_sale(failed: SaleEnv, alice: Any, carol: Any) -> None:
    failed.sale.refund(alice, sender=alice)
    failed.sale.refund(carol, sender=carol)
    assert failed.sale.balance == 0
    assert failed.token.totalSupply() == 0


def test_refund__by_a_non_buyer__reverts(failed: SaleEnv, erin: Any) -> None:
    with reverts(failed.sale.SaleNothingToRefund, buyer=erin):
        failed.sale.refund(erin, sender=erin)


def test_refund__while_paused__still_works(env: SaleEnv, owner: Any, alice: Any, erin: Any) -> None:
    env.warp(Stage.PRESALE)
    env.buy(alice, 2 * ETH, env.proof(alice))
    env.sale.pause(sender=owner)
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    env.sale.refund(alice, sender=alice)
    assert env.sale.balance == 0


# --- team vesting -------------------------------------------------------------------------


def test_team_vesting__releases_nothing_before_the_cliff_then_vests_linearly(
    project: Any, succeeded: SaleEnv, chain: Any, erin: Any
) -> None:
    env = succeeded
    wallet = project.TeamVestingWallet.at(env.deployment.team_vesting)
    team_total = env.terms.allocations(SOLD)[Allocation.TEAM]
    token = env.token.address
    cliff = env.terms.team_vesting_start + env.terms.team_cliff_seconds

    chain.mine(timestamp=cliff - 10)
    assert wallet.releasable(token) == 0
    chain.mine(timestamp=cliff)
    # At the cliff a third of the three-year vesting has passed.
    assert wallet.releasable(token) == team_total * (52 * WEEK) // (156 * WEEK)
    chain.mine(timestamp=env.terms.team_vesting_start + env.terms.team_vesting_seconds)
    wallet.release(token, sender=erin)
    assert env.token.balanceOf(env.terms.team_beneficiary) == team_total


def test_allocations__go_to_the_configured_wallets(succeeded: SaleEnv) -> None:
    token = succeeded.token
    alloc = succeeded.terms.allocations(SOLD)
    assert token.balanceOf(LIQUIDITY) == alloc[Allocation.LIQUIDITY]
    assert token.balanceOf(PARTNERS) == alloc[Allocation.PARTNERS]
    assert token.balanceOf(RESEARCHERS) == alloc[Allocation.RESEARCHERS]
    assert tuple(succeeded.sale.allocationsFor(SOLD)) == tuple(alloc[k] for k in Allocation)
