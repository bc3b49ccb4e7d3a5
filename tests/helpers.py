"""Helpers the test folders share: deploying the token and the market, ordering oracle
signatures as the market wants them, and calling an `ape run` script's subcommands on the test
chain."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from neurotoken.market.verdicts import SignedVerdict
from tests.constants import FEE_BPS, MIN_VERDICT_WINDOW, UNBONDING_DELAY

REPO_ROOT = Path(__file__).resolve().parents[1]


def deploy_token(project: Any, owner: Any, minter: Any) -> Any:
    """A NeuroToken deployed by `owner`, with `minter` holding the minter role."""
    ntk = project.NeuroToken.deploy(owner, sender=owner)
    ntk.grantRole(ntk.MINTER_ROLE(), minter, sender=owner)
    return ntk


def deploy_market(
    project: Any,
    token: Any,
    owner: Any,
    oracles: Sequence[Any],
    *,
    unbonding_delay: int = UNBONDING_DELAY,
    fee_bps: int = FEE_BPS,
    threshold: int = 2,
    min_verdict_window: int = MIN_VERDICT_WINDOW,
    randao_delay: int = 0,
) -> Any:
    """A ComputeMarket for `token`, deployed and governed by `owner`, with `oracles` and the
    shared market figures (tests/constants.py) unless given; `randao_delay` above 0:
    challenge seeds are RANDAO mixes (else block hashes)."""
    return project.ComputeMarket.deploy(
        token,
        owner,
        unbonding_delay,
        fee_bps,
        list(oracles),
        threshold,
        min_verdict_window,
        randao_delay,
        sender=owner,
    )


def sorted_signatures(signed: Sequence[SignedVerdict]) -> list[bytes]:
    """The signatures, sorted by signer address (the order settle wants them in)."""
    return [s.signature for s in sorted(signed, key=lambda s: int(s.signer, 16))]


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py (the `ape run NAME` command group) imported as a module."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_cli", REPO_ROOT / "scripts" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(command: click.Command, **params: Any) -> None:
    """Runs a subcommand's body (the friendly error wrapper included) on the connected chain:
    ape's ConnectedProviderCommand would start an anvil of its own."""
    assert command.callback is not None
    command.callback(**params)
