"""`ape run deploy`: deploys NeuroToken and records its address for the network."""

from __future__ import annotations

from typing import Any

import click
from ape import project
from ape.cli import account_option, network_option

from neurotoken.chain import deployments
from neurotoken.chain.cli import (
    ADDRESS,
    confirm_irreversible,
    current_network_key,
    friendly,
    signs,
    yes_option,
)
from neurotoken.chain.network_command import NetworkCommand


@click.command(cls=NetworkCommand)
@network_option()
@account_option(prompt=False)
@click.option(
    "--admin",
    type=ADDRESS,
    default=None,
    help="Account that may grant the minter role (default: the deployer).",
)
@yes_option()
@friendly
@signs
def cli(provider: Any, account: Any, admin: str | None, yes: bool) -> None:
    """Deploy Neurotoken (NTK) and record its address in deployments/<network>.json."""
    if account is None:
        raise click.UsageError(
            "Choose the deploying account with --account ALIAS (an `ape accounts` alias) "
            "or --account TEST::0 on a local chain."
        )
    network = current_network_key(provider)
    admin_address = admin or account.address
    confirm_irreversible(
        f"Deploy NeuroToken on {network} from {account.address} with admin {admin_address}.",
        yes or provider.network.is_dev,
    )
    token = project.NeuroToken.deploy(admin_address, sender=account)
    path = deployments.record(
        network, "NeuroToken", token.address, admin=admin_address, deployer=account.address
    )
    click.echo(f"NeuroToken deployed at {token.address} (admin {admin_address})")
    click.echo(f"Recorded in {path}")
