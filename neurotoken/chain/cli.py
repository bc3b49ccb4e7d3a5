"""Helpers shared by the ape click scripts: network keys, confirmations, friendly errors."""

from __future__ import annotations

from typing import Any

import click


def current_network_key(provider: Any) -> str:
    """The deployments-file key of the connected network, e.g. 'ethereum-sepolia'."""
    from neurotoken.chain.deployments import network_key

    return network_key(provider.network.ecosystem.name, provider.network.name)


def confirm_irreversible(what: str, yes: bool) -> None:
    """Asks before an irreversible action unless `--yes` was given; aborts on 'no'."""
    if yes:
        return
    if not click.confirm(f"{what}\nThis cannot be undone. Go ahead?", default=False):
        raise click.Abort()


def is_live(provider: Any) -> bool:
    """True on a public network (anything other than a local dev chain)."""
    return str(provider.network.name) not in {"local"} and not provider.network.is_dev


def yes_option() -> Any:
    """`--yes`: skip the confirmation before irreversible actions."""
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
