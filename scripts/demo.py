"""`ape run demo` (what `make demo` runs): a guided tour on a local anvil chain.

Each stage (one module of the `demo` package) deploys what it needs, acts with the local test
accounts and prints what happened.
"""

from __future__ import annotations

from typing import Any

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, network_option

from demo import STAGES


@click.command(cls=ConnectedProviderCommand)
@network_option()
def cli(provider: Any) -> None:
    """Run the Neurotoken tour on a local chain (make demo)."""
    if not provider.network.is_dev:
        raise click.UsageError("The demo uses the local test accounts: run it on a local network.")
    click.echo(f"Connected to {provider.name} (chain id {chain.chain_id}).")
    for stage in STAGES:
        stage(click.echo)
        click.echo("")
    click.echo("Demo finished.")
