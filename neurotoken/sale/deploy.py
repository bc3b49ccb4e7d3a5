"""Deploying the token and its sale the one safe way.

The flow (the only one in which nobody but the sale can ever mint):
1. deploy NeuroToken with the deployer as admin;
2. deploy TokenSale with the terms (the sale deploys the team's vesting wallet itself);
3. grant the token's MINTER_ROLE to the sale;
4. the deployer renounces the token's DEFAULT_ADMIN_ROLE, so no one can grant minting again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from neurotoken.sale.config import SaleConfigError
from neurotoken.sale.terms import TOKEN_CAP, SaleTerms


@dataclass(frozen=True)
class SaleDeployment:
    """The deployed contracts (ape contract instances) and the terms they hold."""

    token: Any
    sale: Any
    terms: SaleTerms

    @property
    def team_vesting(self) -> str:
        return str(self.sale.teamVesting())


def deploy_sale(
    project: Any,
    deployer: Any,
    terms: SaleTerms,
    *,
    owner: Any = None,
    token: Any = None,
    renounce_admin: bool = True,
    echo: Callable[[str], None] | None = None,
    **tx: Any,
) -> SaleDeployment:
    """Deploys (or reuses `token`), deploys the sale for `terms` and hands it the minter role.

    `terms.token` is replaced by the token's address. `owner` (default: the deployer) may pause
    buying. With `renounce_admin` the deployer gives up the token's admin role at the end;
    only skip it in tests that need to tamper with roles.
    """
    say = echo or (lambda _msg: None)
    # The contract's own rules, before anything exists: a refused sale must not leave a
    # token behind (nor spend gas on one).
    problems = terms.problems(TOKEN_CAP if token is None else int(token.cap()))
    if problems:
        raise SaleConfigError(
            "the sale contract would refuse these terms, so nothing was deployed: "
            + "; ".join(problems)
        )
    if token is None:
        token = project.NeuroToken.deploy(deployer, sender=deployer, **tx)
        say(f"NeuroToken deployed at {token.address}")
    terms = replace(terms, token=str(token.address))
    sale = project.TokenSale.deploy(terms.as_tuple(), owner or deployer, sender=deployer, **tx)
    say(f"TokenSale deployed at {sale.address} (team vesting wallet {sale.teamVesting()})")
    token.grantRole(token.MINTER_ROLE(), sale, sender=deployer, **tx)
    say("MINTER_ROLE granted to the sale")
    if renounce_admin:
        token.renounceRole(token.DEFAULT_ADMIN_ROLE(), deployer, sender=deployer, **tx)
        say("deployer renounced the token's admin role: only the sale can ever mint")
    return SaleDeployment(token=token, sale=sale, terms=terms)
