"""Adversarial buyers: re-entry on every ETH transfer, rejected transfers, extreme values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_utils.crypto import keccak

from neurotoken.sale.allowlist import Allowlist
from neurotoken.sale.terms import SaleState, Stage, wei_for_tokens
from neurotoken.units import NTK
from tests.constants import ETH
from tests.sale.conftest import SaleEnv
from tests.sale.helpers import reverts

REENTRANT_CALL = keccak(text="ReentrancyGuardReentrantCall()")[:4]
SMALL_CAP = 2300 * NTK  # 2 ETH worth in week 1


@pytest.fixture
def small(deploy: Callable[..., SaleEnv]) -> SaleEnv:
    """A sale that sells out for 2 ETH in week 1 (soft cap 1 ETH)."""
    return deploy(hard_cap_tokens=SMALL_CAP, soft_cap_wei=ETH)


@pytest.fixture
def attacker(project: Any, small: SaleEnv, owner: Any) -> Any:
    return project.ReentrantBuyer.deploy(small.sale, sender=owner)


def test_partial_fill__reentering_buy_on_the_returned_eth__is_blocked(
    small: SaleEnv, attacker: Any, owner: Any
) -> None:
    small.warp(Stage.ICO_WEEK1)
    attacker.arm(small.sale.buy.encode_input([]), ETH, False, sender=owner)
    attacker.buy([], sender=owner, value=5 * ETH)

    assert attacker.reentries() == 1
    assert not attacker.lastReentrySucceeded()
    assert bytes(attacker.lastReentryError()) == REENTRANT_CALL
    # One purchase, 2 ETH kept, 3 ETH back; the sale's books match its balance.
    assert small.sale.contributionOf(attacker) == (2 * ETH, SMALL_CAP)
    assert attacker.received() == 3 * ETH
    assert small.sale.balance == small.sale.weiRaised() == 2 * ETH


def test_partial_fill__reentry_bubbled_up__reverts_the_whole_purchase(
    small: SaleEnv, attacker: Any, owner: Any
) -> None:
    small.warp(Stage.ICO_WEEK1)
    attacker.arm(small.sale.buy.encode_input([]), ETH, True, sender=owner)
    # The attacker's receive reverts with the guard's error; the sale reports the failed return.
    with reverts(small.sale.SaleTransferFailed, to=attacker, amountWei=3 * ETH):
        attacker.buy([], sender=owner, value=5 * ETH)
    assert small.sale.weiRaised() == 0
    assert small.sale.contributionOf(attacker) == (0, 0)


def test_partial_fill__to_a_buyer_that_rejects_eth__reverts(
    small: SaleEnv, attacker: Any, owner: Any
) -> None:
    small.warp(Stage.ICO_WEEK1)
    attacker.setRejectEth(True, sender=owner)
    with reverts(small.sale.SaleTransferFailed, to=attacker, amountWei=3 * ETH):
        attacker.buy([], sender=owner, value=5 * ETH)
    attacker.buy([], sender=owner, value=2 * ETH)  # an exact fill needs no transfer back
    assert small.sale.tokensLeft() == 0


@pytest.fixture
def failed_with_attacker(
    small: SaleEnv, attacker: Any, owner: Any, alice: Any, erin: Any
) -> SaleEnv:
    """The attacker and alice paid 0.4 ETH each; the 1 ETH soft cap was missed."""
    small.warp(Stage.ICO_WEEK1)
    attacker.buy([], sender=owner, value=4 * ETH // 10)
    small.buy(alice, 4 * ETH // 10)
    small.warp(Stage.ENDED)
    small.sale.finalize(sender=erin)
    assert small.sale.state() == SaleState.FAILED
    return small


@pytest.mark.parametrize("target", ["itself", "another buyer"])
def test_refund__reentering_refund__is_blocked_and_pays_once(
    failed_with_attacker: SaleEnv, attacker: Any, owner: Any, alice: Any, target: str
) -> None:
    env = failed_with_attacker
    victim = attacker if target == "itself" else alice
    attacker.arm(env.sale.refund.encode_input(victim), 0, False, sender=owner)
    attacker.refund(sender=owner)

    assert attacker.reentries() == 1
    assert bytes(attacker.lastReentryError()) == REENTRANT_CALL
    assert attacker.received() == 4 * ETH // 10
    assert env.sale.balance == 4 * ETH // 10  # alice's ETH is still there for her
    assert tuple(env.sale.contributionOf(attacker)) == (0, 0)  # settled: the record is cleared
    assert int(env.sale.contributionOf(alice).paidWei) > 0


def test_refund__to_a_buyer_that_rejects_eth__reverts_and_leaves_it_refundable(
    failed_with_attacker: SaleEnv, attacker: Any, owner: Any, alice: Any, erin: Any
) -> None:
    env = failed_with_attacker
    attacker.setRejectEth(True, sender=owner)
    with reverts(env.sale.SaleTransferFailed, to=attacker, amountWei=4 * ETH // 10):
        env.sale.refund(attacker, sender=erin)
    assert int(env.sale.contributionOf(attacker).paidWei) == 4 * ETH // 10  # still refundable
    env.sale.refund(alice, sender=erin)  # others are not held up
    attacker.setRejectEth(False, sender=owner)
    env.sale.refund(attacker, sender=erin)
    assert attacker.received() == 4 * ETH // 10
    assert env.sale.balance == 0


def test_finalize__a_treasury_reentering_claim__is_blocked(
    project: Any, deploy: Callable[..., SaleEnv], owner: Any, carol: Any, erin: Any
) -> None:
    treasury = project.ReentrantBuyer.deploy(
        "0x0000000000000000000000000000000000000001", sender=owner
    )
    env = deploy(treasury=treasury.address, hard_cap_tokens=SMALL_CAP, soft_cap_wei=ETH)
    treasury.setSale(env.sale, sender=owner)
    treasury.arm(env.sale.claim.encode_input(carol), 0, False, sender=owner)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 2 * ETH)
    receipt = env.sale.finalize(sender=erin)
    assert bytes(treasury.lastReentryError()) == REENTRANT_CALL
    assert [log.amountWei for log in env.sale.FundsForwarded.from_receipt(receipt)] == [2 * ETH]
    assert env.token.balanceOf(carol) == 0  # the re-entered claim did nothing
    env.sale.claim(carol, sender=carol)
    assert env.token.balanceOf(carol) == SMALL_CAP


def test_finalize__a_treasury_whose_reentry_reverts__holds_the_eth_for_forward_funds(
    project: Any, deploy: Callable[..., SaleEnv], owner: Any, carol: Any, erin: Any
) -> None:
    treasury = project.ReentrantBuyer.deploy(
        "0x0000000000000000000000000000000000000001", sender=owner
    )
    env = deploy(treasury=treasury.address, hard_cap_tokens=SMALL_CAP, soft_cap_wei=ETH)
    treasury.setSale(env.sale, sender=owner)
    treasury.arm(env.sale.claim.encode_input(carol), 0, True, sender=owner)
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 2 * ETH)
    receipt = env.sale.finalize(sender=erin)
    assert [log.amountWei for log in env.sale.FundsForwardFailed.from_receipt(receipt)] == [2 * ETH]
    assert env.sale.state() == SaleState.SUCCEEDED
    with reverts(env.sale.SaleTransferFailed, to=treasury, amountWei=2 * ETH):
        env.sale.forwardFunds(sender=erin)  # still armed: its revert undid the disarming
    treasury.disarm(sender=owner)
    env.sale.forwardFunds(sender=erin)
    assert treasury.balance == 2 * ETH


# --- proofs -------------------------------------------------------------------------------


def test_buy__with_a_valid_proof_from_another_allowlist__reverts(env: SaleEnv, carol: Any) -> None:
    other = Allowlist.build([carol.address, "0x" + "11" * 20])
    env.warp(Stage.PRESALE)
    assert other.proof(carol.address)
    with reverts(env.sale.SaleNotAllowlisted, buyer=carol):
        env.buy(carol, ETH, other.proof(carol.address))


def test_buy__with_an_internal_node_as_proof_by_a_listed_buyer__reverts(
    env: SaleEnv, alice: Any
) -> None:
    # Skipping a level of alice's proof cannot reach the root.
    env.warp(Stage.PRESALE)
    with reverts(env.sale.SaleNotAllowlisted, buyer=alice):
        env.buy(alice, ETH, env.proof(alice)[1:])


# --- extreme values -----------------------------------------------------------------------


def test_buy__with_a_huge_value__fills_the_rest_and_returns_the_excess_exactly(
    deploy: Callable[..., SaleEnv], chain: Any, carol: Any
) -> None:
    env = deploy(max_contribution_wei=2**128 - 1)
    # anvil refuses values of 2**128 wei and more; 2**127 is far beyond any real balance.
    chain.provider.set_balance(carol.address, 2**127 + ETH)
    env.warp(Stage.ICO_WEEK1)
    receipt = env.buy(carol, 2**127)
    accepted = wei_for_tokens(env.terms.hard_cap_tokens, 1000, 1500)
    [log] = list(env.sale.TokensPurchased.from_receipt(receipt))
    assert (log.paidWei, log.tokens, log.returnedWei) == (
        accepted,
        env.terms.hard_cap_tokens,
        2**127 - accepted,
    )
    assert env.sale.balance == accepted
    assert carol.balance == 2**127 + ETH - accepted - int(receipt.gas_used) * int(receipt.gas_price)


def test_buy__of_one_wei_at_a_one_wei_minimum__buys_the_rate(
    deploy: Callable[..., SaleEnv], carol: Any
) -> None:
    env = deploy(min_contribution_wei=1)
    env.warp(Stage.ICO_FINAL)
    env.buy(carol, 1)
    assert env.sale.contributionOf(carol) == (1, 1000)


def test_finalize__with_one_wei_raised_at_a_one_wei_soft_cap__succeeds(
    deploy: Callable[..., SaleEnv], carol: Any, erin: Any
) -> None:
    env = deploy(min_contribution_wei=1, soft_cap_wei=1)
    env.warp(Stage.ICO_FINAL)
    env.buy(carol, 1)
    env.warp(Stage.ENDED)
    env.sale.finalize(sender=erin)
    assert env.sale.state() == SaleState.SUCCEEDED
    env.sale.claim(carol, sender=carol)
    # 1,000 units sold: allocations floor(1000 * bps / 6000).
    assert env.token.totalSupply() == 1000 + 166 + 200 + 200 + 100
