"""Buying: windows, the allow-list, bonuses, limits, pause, the hard cap and the rounding rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ape.exceptions import ContractLogicError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurotoken.sale.terms import BUYING_STAGES, SaleTerms, Stage, tokens_for, wei_for_tokens
from neurotoken.units import NTK
from tests.constants import ETH
from tests.sale.conftest import HARD_CAP, MAX_WEI, MIN_WEI, SaleEnv
from tests.sale.helpers import reverts


def paid_gas(receipt: Any) -> int:
    return int(receipt.gas_used) * int(receipt.gas_price)


def purchase_log(env: SaleEnv, receipt: Any) -> Any:
    logs = list(env.sale.TokensPurchased.from_receipt(receipt))
    assert len(logs) == 1
    return logs[0]


# --- the schedule -------------------------------------------------------------------------


def test_stage__follows_the_schedule_to_the_second(env: SaleEnv, chain: Any) -> None:
    terms = env.terms
    assert env.sale.stage() == Stage.NOT_STARTED
    previous = Stage.NOT_STARTED
    for stage in (*BUYING_STAGES, Stage.ENDED):
        start = terms.stage_start(stage)
        chain.mine(timestamp=start - 1)
        assert env.sale.stage() == previous
        chain.mine(timestamp=start)
        assert env.sale.stage() == stage == terms.stage_at(start)
        previous = stage


def test_bonus_bps__is_each_stages_bonus_and_zero_outside(env: SaleEnv) -> None:
    expected = {
        Stage.NOT_STARTED: 0,
        Stage.PRESALE: 1000,
        Stage.ICO_WEEK1: 1500,
        Stage.ICO_WEEK2: 1000,
        Stage.ICO_WEEK3: 500,
        Stage.ICO_FINAL: 0,
        Stage.ENDED: 0,
    }
    assert {stage: env.sale.bonusBps(stage) for stage in Stage} == expected


def test_buy__before_the_presale__reverts(env: SaleEnv, alice: Any) -> None:
    with reverts(env.sale.SaleNotStarted, startsAt=env.terms.stage_starts[0]):
        env.buy(alice, ETH, env.proof(alice))


def test_buy__at_the_end__reverts(env: SaleEnv, chain: Any, carol: Any) -> None:
    chain.mine(timestamp=env.terms.ends_at - 5)
    chain.pending_timestamp = env.terms.ends_at
    with reverts(env.sale.SaleEnded, endedAt=env.terms.ends_at):
        env.buy(carol, ETH)


def test_buy__in_the_last_second__succeeds(env: SaleEnv, chain: Any, carol: Any) -> None:
    chain.mine(timestamp=env.terms.ends_at - 5)
    chain.pending_timestamp = env.terms.ends_at - 1
    receipt = env.buy(carol, ETH)
    assert purchase_log(env, receipt).stage == Stage.ICO_FINAL


def test_buy__with_plain_eth_transfer__reverts(env: SaleEnv, carol: Any) -> None:
    env.warp(Stage.ICO_WEEK1)
    with pytest.raises(ContractLogicError):
        carol.transfer(env.sale, ETH)


# --- presale and the allow-list -----------------------------------------------------------


def test_buy__in_presale_with_a_proof__records_the_purchase_with_the_presale_bonus(
    env: SaleEnv, alice: Any
) -> None:
    env.warp(Stage.PRESALE)
    before = alice.balance
    receipt = env.buy(alice, 2 * ETH, env.proof(alice))

    expected = 2 * 1000 * 11_000 // 10_000 * NTK  # 2 ETH at 1,000 NTK/ETH + 10%
    log = purchase_log(env, receipt)
    assert log.buyer == alice.address
    assert log.stage == Stage.PRESALE
    assert log.paidWei == 2 * ETH
    assert log.tokens == expected
    assert log.returnedWei == 0
    assert receipt.return_value == expected
    assert env.sale.contributionOf(alice) == (2 * ETH, expected)
    assert env.sale.weiRaised() == 2 * ETH
    assert env.sale.tokensSold() == expected
    assert env.sale.tokensLeft() == HARD_CAP - expected
    assert env.sale.balance == 2 * ETH
    assert alice.balance == before - 2 * ETH - paid_gas(receipt)
    assert env.token.totalSupply() == 0  # post-delivery: nothing minted yet


def test_buy__in_presale_without_a_proof__reverts(env: SaleEnv, carol: Any) -> None:
    env.warp(Stage.PRESALE)
    with reverts(env.sale.SaleNotAllowlisted, buyer=carol):
        env.buy(carol, ETH)


def test_buy__in_presale_by_a_listed_buyer_without_a_proof__reverts(
    env: SaleEnv, alice: Any
) -> None:
    env.warp(Stage.PRESALE)
    with reverts(env.sale.SaleNotAllowlisted, buyer=alice):
        env.buy(alice, ETH, [])


def test_buy__in_presale_with_someone_elses_proof__reverts(
    env: SaleEnv, alice: Any, carol: Any
) -> None:
    env.warp(Stage.PRESALE)
    with reverts(env.sale.SaleNotAllowlisted, buyer=carol):
        env.buy(carol, ETH, env.proof(alice))


def test_buy__in_presale_with_a_tampered_proof__reverts(env: SaleEnv, alice: Any) -> None:
    env.warp(Stage.PRESALE)
    proof = env.proof(alice)
    proof[-1] = bytes(31) + b"\x01"
    with reverts(env.sale.SaleNotAllowlisted, buyer=alice):
        env.buy(alice, ETH, proof)


def test_buy__in_presale_with_the_root_as_proof__reverts(env: SaleEnv, carol: Any) -> None:
    env.warp(Stage.PRESALE)
    with reverts(env.sale.SaleNotAllowlisted, buyer=carol):
        env.buy(carol, ETH, [env.allowlist.root])


def test_buy__replaying_ones_own_proof__buys_again(env: SaleEnv, alice: Any) -> None:
    # A proof is membership of the list, not a one-time ticket: the maximum bounds the buyer.
    env.warp(Stage.PRESALE)
    proof = env.proof(alice)
    env.buy(alice, ETH, proof)
    env.buy(alice, ETH, proof)
    assert env.sale.contributionOf(alice).paidWei == 2 * ETH


def test_is_allowlisted__checks_the_proof_against_the_account(
    env: SaleEnv, alice: Any, carol: Any
) -> None:
    assert env.sale.isAllowlisted(alice, env.proof(alice))
    assert not env.sale.isAllowlisted(carol, env.proof(alice))
    assert not env.sale.isAllowlisted(alice, [])


@pytest.mark.parametrize("proof_of", ["nobody", "alice"])
def test_buy__in_the_ico__ignores_the_proof(
    env: SaleEnv, alice: Any, carol: Any, proof_of: str
) -> None:
    env.warp(Stage.ICO_WEEK1)
    proof = env.proof(alice) if proof_of == "alice" else []
    receipt = env.buy(carol, ETH, proof)
    assert purchase_log(env, receipt).tokens == 1150 * NTK


# --- bonuses and rounding -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "ntk_per_eth"),
    [
        (Stage.ICO_WEEK1, 1150),
        (Stage.ICO_WEEK2, 1100),
        (Stage.ICO_WEEK3, 1050),
        (Stage.ICO_FINAL, 1000),
    ],
)
def test_buy__in_each_ico_stage__applies_its_bonus(
    env: SaleEnv, carol: Any, stage: Stage, ntk_per_eth: int
) -> None:
    env.warp(stage)
    receipt = env.buy(carol, 3 * ETH)
    log = purchase_log(env, receipt)
    assert log.stage == stage
    assert log.tokens == 3 * ntk_per_eth * NTK


@pytest.fixture
def odd_env(deploy: Callable[..., SaleEnv]) -> SaleEnv:
    """Terms where rounding shows: 3 token units per wei, +3.33% in week 1, 100 units offered."""
    return deploy(
        ntk_per_eth=3,
        bonus_bps=(1000, 333, 1000, 500, 0),
        hard_cap_tokens=100,
        soft_cap_wei=1,
        min_contribution_wei=1,
        max_contribution_wei=10**6,
    )


def test_buy__rounds_the_tokens_down(odd_env: SaleEnv, carol: Any) -> None:
    odd_env.warp(Stage.ICO_WEEK1)
    receipt = odd_env.buy(carol, 7)
    # 7 wei * 3 * 1.0333 = 21.6993 units: the buyer gets 21.
    assert purchase_log(odd_env, receipt).tokens == 21 == tokens_for(7, 3, 333)


def test_buy__crossing_the_cap__rounds_the_price_up_and_never_overpays_in_tokens(
    odd_env: SaleEnv, carol: Any
) -> None:
    odd_env.warp(Stage.ICO_WEEK1)
    receipt = odd_env.buy(carol, 1000)
    log = purchase_log(odd_env, receipt)
    # 100 units at 3.0999 units/wei cost 32.26 wei: the buyer pays 33 and gets exactly 100.
    assert (log.paidWei, log.tokens, log.returnedWei) == (33, 100, 967)
    assert wei_for_tokens(100, 3, 333) == 33
    assert log.tokens <= tokens_for(log.paidWei, 3, 333)  # never more than the price allows
    assert odd_env.sale.balance == 33


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stage=st.sampled_from(BUYING_STAGES),
    sent=st.one_of(st.integers(0, 10**6), st.integers(0, 2**200)),
)
def test_quote__matches_the_stated_formula(odd_env: SaleEnv, stage: Stage, sent: int) -> None:
    expected = odd_env.terms.quote(stage, sent, tokens_left=100)
    assert tuple(odd_env.sale.quote(stage, sent)) == expected
    tokens, accepted = expected
    assert accepted <= sent
    assert tokens <= tokens_for(accepted, 3, odd_env.terms.bonus_of(stage))


def test_quote__outside_the_buying_stages__is_zero(env: SaleEnv) -> None:
    assert tuple(env.sale.quote(Stage.NOT_STARTED, ETH)) == (0, 0)
    assert tuple(env.sale.quote(Stage.ENDED, ETH)) == (0, 0)


# --- contribution limits ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, MIN_WEI - 1])
def test_buy__below_the_minimum__reverts(env: SaleEnv, carol: Any, value: int) -> None:
    env.warp(Stage.ICO_WEEK1)
    with reverts(env.sale.SaleContributionBelowMin, sentWei=value, minContributionWei=MIN_WEI):
        env.buy(carol, value)


def test_buy__at_the_minimum__succeeds(env: SaleEnv, carol: Any) -> None:
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, MIN_WEI)
    assert env.sale.contributionOf(carol).paidWei == MIN_WEI


def test_buy__up_to_the_maximum_in_total__succeeds(env: SaleEnv, carol: Any) -> None:
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, MAX_WEI - ETH)
    env.buy(carol, ETH)
    assert env.sale.contributionOf(carol).paidWei == MAX_WEI


def test_buy__past_the_maximum_in_total__reverts(env: SaleEnv, carol: Any) -> None:
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, MAX_WEI - ETH)
    with reverts(
        env.sale.SaleContributionAboveMax,
        buyer=carol,
        totalWei=MAX_WEI + 1,
        maxContributionWei=MAX_WEI,
    ):
        env.buy(carol, ETH + 1)


# --- pause --------------------------------------------------------------------------------


def test_pause__by_the_owner__stops_buying_until_unpaused(
    env: SaleEnv, owner: Any, carol: Any
) -> None:
    env.warp(Stage.ICO_WEEK1)
    receipt = env.sale.pause(sender=owner)
    assert [log.account for log in env.sale.BuyingPaused.from_receipt(receipt)] == [owner.address]
    assert env.sale.paused()
    with reverts(env.sale.SaleBuyingPaused):
        env.buy(carol, ETH)
    receipt = env.sale.unpause(sender=owner)
    assert [log.account for log in env.sale.BuyingUnpaused.from_receipt(receipt)] == [owner.address]
    env.buy(carol, ETH)
    assert env.sale.contributionOf(carol).paidWei == ETH


def test_pause__by_anyone_else__reverts(env: SaleEnv, carol: Any) -> None:
    with reverts(env.sale.OwnableUnauthorizedAccount, account=carol):
        env.sale.pause(sender=carol)


def test_unpause__by_anyone_else__reverts(env: SaleEnv, owner: Any, carol: Any) -> None:
    env.sale.pause(sender=owner)
    with reverts(env.sale.OwnableUnauthorizedAccount, account=carol):
        env.sale.unpause(sender=carol)


def test_pause__twice__reverts(env: SaleEnv, owner: Any) -> None:
    env.sale.pause(sender=owner)
    with reverts(env.sale.SalePauseUnchanged, paused=True):
        env.sale.pause(sender=owner)


def test_unpause__when_not_paused__reverts(env: SaleEnv, owner: Any) -> None:
    with reverts(env.sale.SalePauseUnchanged, paused=False):
        env.sale.unpause(sender=owner)


def test_ownership__moves_in_two_steps(env: SaleEnv, owner: Any, carol: Any) -> None:
    env.sale.transferOwnership(carol, sender=owner)
    assert env.sale.owner() == owner.address  # not until accepted
    env.sale.acceptOwnership(sender=carol)
    env.sale.pause(sender=carol)
    with reverts(env.sale.OwnableUnauthorizedAccount, account=owner):
        env.sale.unpause(sender=owner)


# --- the hard cap -------------------------------------------------------------------------


@pytest.fixture
def nearly_sold_out(env: SaleEnv, alice: Any, bob: Any, dave: Any) -> SaleEnv:
    """Week 1 (+15%): 86 ETH sold of the 100,000 NTK, 1,100 NTK left."""
    env.warp(Stage.ICO_WEEK1)
    env.buy(alice, 40 * ETH)
    env.buy(bob, 40 * ETH)
    env.buy(dave, 6 * ETH)
    assert env.left() == HARD_CAP - 86 * 1150 * NTK == 1100 * NTK
    return env


def test_buy__crossing_the_hard_cap__fills_partly_and_returns_the_rest(
    nearly_sold_out: SaleEnv, carol: Any
) -> None:
    env = nearly_sold_out
    before = carol.balance
    receipt = env.buy(carol, 5 * ETH)

    accepted = wei_for_tokens(1100 * NTK, 1000, 1500)  # ceil(1,100 NTK / 1,150 NTK per ETH)
    log = purchase_log(env, receipt)
    assert (log.paidWei, log.tokens, log.returnedWei) == (accepted, 1100 * NTK, 5 * ETH - accepted)
    assert carol.balance == before - accepted - paid_gas(receipt)
    assert env.sale.balance == env.sale.weiRaised() == 86 * ETH + accepted
    assert env.sale.tokensSold() == HARD_CAP
    assert env.sale.contributionOf(carol) == (accepted, 1100 * NTK)


def test_buy__after_selling_out__reverts(nearly_sold_out: SaleEnv, carol: Any, erin: Any) -> None:
    nearly_sold_out.buy(carol, 5 * ETH)
    with reverts(nearly_sold_out.sale.SaleSoldOut):
        nearly_sold_out.buy(erin, ETH)


def test_buy__crossing_the_cap_past_the_maximum__reverts_on_the_kept_eth(
    deploy: Callable[..., SaleEnv], make_terms: Callable[..., SaleTerms], carol: Any
) -> None:
    # Only 2 ETH worth left; carol may keep at most 1 ETH in the sale.
    env = deploy(hard_cap_tokens=2300 * NTK, soft_cap_wei=ETH, max_contribution_wei=ETH)
    env.warp(Stage.ICO_WEEK1)
    with reverts(env.sale.SaleContributionAboveMax, buyer=carol, totalWei=2 * ETH):
        env.buy(carol, 5 * ETH)
