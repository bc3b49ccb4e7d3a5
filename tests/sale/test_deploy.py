"""Deployment: the terms are checked, stored exactly, and the team's vesting wallet is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from ape.exceptions import ContractLogicError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractLogicError as Web3ContractLogicError

from neurotoken.sale.terms import SaleState, SaleTerms, Stage
from tests.constants import WEEK, ZERO_ADDRESS
from tests.sale.conftest import HARD_CAP, MAX_WEI, TEAM, SaleEnv
from tests.sale.helpers import reverts


@pytest.fixture
def new_token(project: Any, owner: Any) -> Any:
    return project.NeuroToken.deploy(owner, sender=owner)


@pytest.fixture
def deploy_raw(
    project: Any, owner: Any, new_token: Any, make_terms: Callable[..., SaleTerms]
) -> Callable[..., Any]:
    """deploy_raw(**overrides): just the TokenSale constructor, for the checks."""

    def _deploy(**overrides: Any) -> Any:
        terms = make_terms(token=new_token.address, **overrides)
        return project.TokenSale.deploy(terms.as_tuple(), owner, sender=owner)

    return _deploy


def test_deploy__stores_the_terms_exactly(env: SaleEnv) -> None:
    assert SaleTerms.from_chain(env.sale.terms()) == env.terms
    assert env.sale.token() == env.token.address


def test_deploy__starts_open_unpaused_and_empty(env: SaleEnv, owner: Any) -> None:
    sale = env.sale
    assert sale.state() == SaleState.OPEN
    assert not sale.paused()
    assert sale.weiRaised() == 0
    assert sale.tokensSold() == 0
    assert sale.tokensLeft() == HARD_CAP
    assert not sale.softCapReached()
    assert sale.stage() == Stage.NOT_STARTED
    assert sale.owner() == owner.address


def test_deploy__hands_minting_to_the_sale_alone(env: SaleEnv, owner: Any) -> None:
    token = env.token
    assert token.hasRole(token.MINTER_ROLE(), env.sale)
    assert not token.hasRole(token.DEFAULT_ADMIN_ROLE(), owner)
    assert not token.hasRole(token.MINTER_ROLE(), owner)


def test_deploy__makes_the_team_vesting_wallet_with_a_cliff(project: Any, env: SaleEnv) -> None:
    wallet = project.TeamVestingWallet.at(env.sale.teamVesting())
    terms = env.terms
    assert wallet.owner() == TEAM
    assert wallet.start() == terms.team_vesting_start
    assert wallet.duration() == terms.team_vesting_seconds
    assert wallet.cliff() == terms.team_vesting_start + terms.team_cliff_seconds


@pytest.mark.parametrize(
    "field",
    ["treasury", "liquidity_wallet", "partners_wallet", "researchers_wallet", "team_beneficiary"],
)
def test_deploy__with_a_zero_address__reverts(project: Any, deploy_raw: Any, field: str) -> None:
    with reverts(project.TokenSale.SaleZeroAddress):
        deploy_raw(**{field: ZERO_ADDRESS})


def test_deploy__with_a_zero_token__reverts(
    project: Any, owner: Any, make_terms: Callable[..., SaleTerms]
) -> None:
    with reverts(project.TokenSale.SaleZeroAddress):
        project.TokenSale.deploy(make_terms(token=ZERO_ADDRESS).as_tuple(), owner, sender=owner)


@pytest.mark.parametrize("rate", [0, 2**128])
def test_deploy__with_an_unusable_rate__reverts(project: Any, deploy_raw: Any, rate: int) -> None:
    with reverts(project.TokenSale.SaleInvalidRate, ntkPerEth=rate):
        deploy_raw(ntk_per_eth=rate)


@pytest.mark.parametrize(
    ("hard_cap", "soft_cap"),
    [
        (0, 1),  # nothing offered
        (2**120, 1),  # beyond the packed 120-bit counter
        (HARD_CAP, 0),  # no soft cap
        (HARD_CAP, HARD_CAP // 1000 + 1),  # more ETH than selling out at the base price raises
    ],
)
def test_deploy__with_impossible_caps__reverts(
    project: Any, deploy_raw: Any, hard_cap: int, soft_cap: int
) -> None:
    with reverts(project.TokenSale.SaleInvalidCaps, hardCapTokens=hard_cap, softCapWei=soft_cap):
        deploy_raw(hard_cap_tokens=hard_cap, soft_cap_wei=soft_cap)


def test_deploy__with_the_soft_cap_at_the_sell_out_price__succeeds(deploy_raw: Any) -> None:
    sale = deploy_raw(soft_cap_wei=HARD_CAP // 1000)
    assert sale.terms().softCapWei == HARD_CAP // 1000


@pytest.mark.parametrize(
    ("min_wei", "max_wei"),
    [(0, MAX_WEI), (MAX_WEI + 1, MAX_WEI), (1, 2**128)],
)
def test_deploy__with_unusable_contribution_limits__reverts(
    project: Any, deploy_raw: Any, min_wei: int, max_wei: int
) -> None:
    with reverts(
        project.TokenSale.SaleInvalidContributionLimits,
        minContributionWei=min_wei,
        maxContributionWei=max_wei,
    ):
        deploy_raw(min_contribution_wei=min_wei, max_contribution_wei=max_wei)


def test_deploy__with_the_widest_contribution_limits__succeeds(deploy_raw: Any) -> None:
    sale = deploy_raw(min_contribution_wei=1, max_contribution_wei=2**128 - 1)
    assert sale.terms().maxContributionWei == 2**128 - 1


def test_deploy__with_decreasing_stage_starts__reverts(
    project: Any, deploy_raw: Any, make_terms: Callable[..., SaleTerms]
) -> None:
    s = make_terms().stage_starts
    with reverts(project.TokenSale.SaleInvalidSchedule):
        deploy_raw(stage_starts=(s[0], s[2], s[1], s[3], s[4]))


def test_deploy__ending_before_the_final_stage__reverts(
    project: Any, deploy_raw: Any, make_terms: Callable[..., SaleTerms]
) -> None:
    s = make_terms().stage_starts
    with reverts(project.TokenSale.SaleInvalidSchedule):
        deploy_raw(ends_at=s[4])


def test_deploy__with_empty_stages__skips_them(
    deploy: Callable[..., SaleEnv], make_terms: Callable[..., SaleTerms]
) -> None:
    s = make_terms().stage_starts
    # No presale and no third week: presale and week 1 start together, as do week 3 and final.
    env = deploy(stage_starts=(s[1], s[1], s[2], s[3], s[3]))
    env.chain.mine(timestamp=s[1] + 10)
    assert env.sale.stage() == Stage.ICO_WEEK1
    env.chain.mine(timestamp=s[3] + 10)
    assert env.sale.stage() == Stage.ICO_FINAL


@pytest.mark.parametrize("index", range(5))
def test_deploy__with_a_bonus_of_100_percent__reverts(
    project: Any, deploy_raw: Any, index: int
) -> None:
    bonuses = [1000, 1500, 1000, 500, 0]
    bonuses[index] = 10_000
    with reverts(project.TokenSale.SaleInvalidBonus, stage=index + 1, bonusBps=10_000):
        deploy_raw(bonus_bps=tuple(bonuses))


def test_deploy__with_allocations_leaving_nothing_to_buyers__reverts(
    project: Any, deploy_raw: Any
) -> None:
    with reverts(project.TokenSale.SaleInvalidAllocation, allocatedBps=10_000):
        deploy_raw(liquidity_bps=4000, team_bps=3000, partners_bps=2000, researchers_bps=1000)


def test_deploy__selling_60m_at_60_percent__fills_the_100m_cap_exactly(deploy_raw: Any) -> None:
    sale = deploy_raw(hard_cap_tokens=60_000_000 * 10**18, soft_cap_wei=10**18)
    assert sale.tokensLeft() == 60_000_000 * 10**18


def test_deploy__when_selling_out_would_pass_the_token_cap__reverts(
    project: Any, deploy_raw: Any
) -> None:
    # 60M + 1 token unit for buyers mints 100M + 1 unit (the allocations round down to 40M).
    hard_cap = 60_000_000 * 10**18 + 1
    with reverts(
        project.TokenSale.SaleSupplyExceedsCap,
        maxSupply=100_000_000 * 10**18 + 1,
        cap=100_000_000 * 10**18,
    ):
        deploy_raw(hard_cap_tokens=hard_cap, soft_cap_wei=10**18)


def test_deploy__with_a_cliff_longer_than_the_vesting__reverts(
    project: Any, deploy_raw: Any
) -> None:
    with reverts(project.TeamVestingWallet.InvalidCliffDuration):
        deploy_raw(team_cliff_seconds=10 * WEEK, team_vesting_seconds=9 * WEEK)


# ---------------------------------------------------------------- the same rules, offline

# Each change breaks one rule of the constructor, or sits right on its edge (still valid).
CHANGES: dict[str, Callable[[SaleTerms], dict[str, Any]]] = {
    "rate 0": lambda t: {"ntk_per_eth": 0},
    "rate over uint128": lambda t: {"ntk_per_eth": 2**128},
    "hard cap 0": lambda t: {"hard_cap_tokens": 0},
    "hard cap over uint120": lambda t: {"hard_cap_tokens": 2**120},
    "soft cap 0": lambda t: {"soft_cap_wei": 0},
    "soft cap over the sell-out": lambda t: {
        "soft_cap_wei": t.hard_cap_tokens // max(t.ntk_per_eth, 1) + 1
    },
    "soft cap at the sell-out (edge)": lambda t: {
        "soft_cap_wei": t.hard_cap_tokens // max(t.ntk_per_eth, 1)
    },
    "min 0": lambda t: {"min_contribution_wei": 0},
    "min over max": lambda t: {"min_contribution_wei": t.max_contribution_wei + 1},
    "min equal max (edge)": lambda t: {"min_contribution_wei": t.max_contribution_wei},
    "max over uint128": lambda t: {"max_contribution_wei": 2**128},
    "stages out of order": lambda t: {
        "stage_starts": (*t.stage_starts[:2], t.stage_starts[1] - 1, *t.stage_starts[3:])
    },
    "ends with the last stage": lambda t: {"ends_at": t.stage_starts[4]},
    "ends a second after it (edge)": lambda t: {"ends_at": t.stage_starts[4] + 1},
    "a 100% bonus": lambda t: {"bonus_bps": (*t.bonus_bps[:3], 10_000, t.bonus_bps[4])},
    "a 99.99% bonus (edge)": lambda t: {"bonus_bps": (9_999, *t.bonus_bps[1:])},
    "allocations of 100%": lambda t: {
        "team_bps": 10_000 - t.liquidity_bps - t.partners_bps - t.researchers_bps
    },
    "cliff longer than vesting": lambda t: {"team_cliff_seconds": t.team_vesting_seconds + 1},
    "cliff equal to vesting (edge)": lambda t: {"team_cliff_seconds": t.team_vesting_seconds},
    "zero treasury": lambda t: {"treasury": ZERO_ADDRESS},
    "zero team beneficiary": lambda t: {"team_beneficiary": ZERO_ADDRESS},
    "sold out passes the token cap": lambda t: {
        "hard_cap_tokens": 60_000_000 * 10**18 + 1,
        "soft_cap_wei": 10**18,
    },
    "sold out fills the token cap (edge)": lambda t: {
        "hard_cap_tokens": 60_000_000 * 10**18,
        "soft_cap_wei": 10**18,
    },
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(st.sampled_from(sorted(CHANGES)), max_size=2, unique=True))
def test_offline_check__agrees_with_the_constructor(
    chain: Any, project: Any, owner: Any, new_token: Any, make_terms: Any, changes: list[str]
) -> None:
    """`SaleTerms.problems()` is empty exactly when TokenSale's constructor accepts the terms,
    so the deploy command can refuse bad terms before it deploys anything."""
    terms = make_terms(token=new_token.address)
    for name in changes:
        terms = replace(terms, **CHANGES[name](terms))
    problems = terms.problems(int(new_token.cap()))
    # The constructor, run by eth_call (no block mined, nothing to undo): it accepts or reverts.
    w3 = chain.provider.web3
    factory = w3.eth.contract(
        abi=[a.model_dump(mode="json", by_alias=True) for a in project.TokenSale.contract_type.abi],
        bytecode=project.TokenSale.contract_type.deployment_bytecode.bytecode,
    )
    data = factory.constructor(terms.as_tuple(), owner.address).data_in_transaction
    try:
        w3.eth.call({"from": owner.address, "data": data})
        accepted = True
    except (ContractLogicError, Web3ContractLogicError):
        accepted = False
    event("accepted" if accepted else "refused")
    assert accepted == (problems == []), (changes, problems)
