"""Sale fixtures: terms on a short clock, a deployed token + sale, an allow-list, time travel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from neurotoken.sale.allowlist import Allowlist
from neurotoken.sale.deploy import SaleDeployment, deploy_sale
from neurotoken.sale.terms import SaleTerms, Stage
from neurotoken.units import NTK
from tests.constants import DAY, ETH, HOUR, WEEK, ZERO_ADDRESS

# Small figures so a test can sell out with a few accounts; the rate and bonuses are the defaults.
HARD_CAP = 100_000 * NTK
SOFT_CAP = 20 * ETH
MIN_WEI = ETH // 10
MAX_WEI = 50 * ETH

# Addresses that never sign: the allocation wallets.
LIQUIDITY = "0x0000000000000000000000000000000000001001"
PARTNERS = "0x0000000000000000000000000000000000001002"
RESEARCHERS = "0x0000000000000000000000000000000000001003"
TEAM = "0x0000000000000000000000000000000000001004"
TREASURY = "0x0000000000000000000000000000000000001005"
# Filler entries so the allow-list proofs have some depth.
FILLER = [f"0x{0xA110 + i:040x}" for i in range(14)]


@pytest.fixture(scope="session")
def allowlist(alice: Any, bob: Any, dave: Any) -> Allowlist:
    """alice, bob and dave are allow-listed; carol and erin are not."""
    return Allowlist.build([alice.address, bob.address, dave.address, *FILLER])


def default_terms(chain: Any, allowlist: Allowlist, **overrides: Any) -> SaleTerms:
    """The test terms: presale in a day, lasting a week; three ICO weeks; a final week."""
    start = chain.pending_timestamp + DAY
    base = SaleTerms(
        token=ZERO_ADDRESS,
        treasury=TREASURY,
        ntk_per_eth=1_000,
        hard_cap_tokens=HARD_CAP,
        soft_cap_wei=SOFT_CAP,
        min_contribution_wei=MIN_WEI,
        max_contribution_wei=MAX_WEI,
        allowlist_root=allowlist.root,
        stage_starts=(
            start,
            start + WEEK,
            start + 2 * WEEK,
            start + 3 * WEEK,
            start + 4 * WEEK,
        ),
        ends_at=start + 5 * WEEK,
        bonus_bps=(1000, 1500, 1000, 500, 0),
        liquidity_wallet=LIQUIDITY,
        partners_wallet=PARTNERS,
        researchers_wallet=RESEARCHERS,
        liquidity_bps=1000,
        team_bps=1200,
        partners_bps=1200,
        researchers_bps=600,
        team_beneficiary=TEAM,
        team_vesting_start=start + 5 * WEEK,
        team_cliff_seconds=52 * WEEK,
        team_vesting_seconds=156 * WEEK,
    )
    return replace(base, **overrides)


@pytest.fixture
def make_terms(chain: Any, allowlist: Allowlist) -> Callable[..., SaleTerms]:
    """make_terms(**overrides): `default_terms` from this block on, with the overrides."""

    def _make(**overrides: Any) -> SaleTerms:
        return default_terms(chain, allowlist, **overrides)

    return _make


@dataclass
class SaleEnv:
    """A deployed sale with helpers bound to it."""

    deployment: SaleDeployment
    allowlist: Allowlist
    chain: Any

    @property
    def token(self) -> Any:
        return self.deployment.token

    @property
    def sale(self) -> Any:
        return self.deployment.sale

    @property
    def terms(self) -> SaleTerms:
        return self.deployment.terms

    def proof(self, account: Any) -> list[bytes]:
        return self.allowlist.proof(account.address)

    def warp(self, stage: Stage, offset: int = HOUR) -> int:
        """Mines a block `offset` seconds into `stage`; returns its timestamp."""
        target = self.terms.stage_start(stage) + offset
        self.chain.mine(timestamp=target)
        return target

    def buy(self, buyer: Any, value: int, proof: list[bytes] | None = None) -> Any:
        return self.sale.buy(proof or [], sender=buyer, value=value)

    def left(self) -> int:
        return int(self.sale.tokensLeft())


@pytest.fixture
def deploy(
    project: Any, chain: Any, owner: Any, make_terms: Callable[..., SaleTerms], allowlist: Allowlist
) -> Callable[..., SaleEnv]:
    """deploy(renounce_admin=True, **term_overrides) -> SaleEnv, deployed by `owner`."""

    def _deploy(renounce_admin: bool = True, **overrides: Any) -> SaleEnv:
        terms = make_terms(**overrides)
        deployment = deploy_sale(project, owner, terms, renounce_admin=renounce_admin)
        return SaleEnv(deployment, allowlist, chain)

    return _deploy


@pytest.fixture(scope="module")
def env(project: Any, chain: Any, owner: Any, allowlist: Allowlist) -> SaleEnv:
    """A sale on the default test terms, not started yet. Deployed once per module (ape
    restores the chain, clock included, after every test, so each test still starts from it
    untouched); tests that need other terms use `deploy`."""
    deployment = deploy_sale(project, owner, default_terms(chain, allowlist))
    return SaleEnv(deployment, allowlist, chain)


@pytest.fixture
def sale(env: SaleEnv) -> Any:
    return env.sale


@pytest.fixture
def ntk(env: SaleEnv) -> Any:
    return env.token
