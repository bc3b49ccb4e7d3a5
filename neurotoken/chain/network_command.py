"""The click command class of the ape scripts: ape's ConnectedProviderCommand, whose
connection errors (a network's RPC URL variable unset, a node that cannot be reached) become
one line with what to do, instead of a traceback. Errors inside a command are `friendly`'s."""

from __future__ import annotations

import re
from typing import Any

import click
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ApeException

from neurotoken.redact import redact_urls

_UNSET_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def connection_problem(exc: BaseException) -> str:
    """One line for an error raised while ape connects to a network (no URL is repeated
    beyond its origin: node providers put API keys in paths)."""
    text = str(exc)
    unset = _UNSET_VARIABLE.search(text)
    if unset:
        name = unset.group(1)
        return (
            f"the network's RPC URL comes from ${name}, which is not set: export {name} with "
            "your node's HTTPS URL (README: Running on a testnet)"
        )
    return f"cannot connect to the network: {redact_urls(text)}; check its RPC URL and --network"


class NetworkCommand(ConnectedProviderCommand):
    """ConnectedProviderCommand with one-line connection errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException:
            raise
        except ApeException as exc:
            raise click.ClickException(connection_problem(exc)) from None
