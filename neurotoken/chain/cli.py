"""Helpers shared by the command lines: the one error boundary (`friendly`), network keys and
confirmations for the ape scripts."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click

from neurotoken.errors import NeurotokenError

P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """The error boundary of every command: the project's own errors (NeurotokenError) and
    ape's (a reverted call, explained in words; a bad address, an unknown account) become one
    line and exit status 1, never a traceback. Anything else is a bug and propagates."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NeurotokenError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            message = _ape_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None

    return wrapper


def settings_problems(exc: Any, env_name: Callable[[str], str]) -> str:
    """What is wrong with settings, from a pydantic ValidationError: each problem's variable
    (`env_name(field)`) and message, never the value (pydantic's own text quotes every input,
    passwords in URLs among them)."""
    from neurotoken.redact import redact_urls

    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        name = f"{env_name(field)}: " if field else ""
        problems.append(redact_urls(f"{name}{message}"))
    return "; ".join(problems)


def _ape_message(exc: Exception) -> str | None:
    if "ape.exceptions" not in sys.modules:  # ape not loaded: not one of its errors
        return None
    from ape.exceptions import ApeException, ContractLogicError

    from neurotoken.chain.explain import explain

    if isinstance(exc, ContractLogicError):
        return explain(exc)
    if isinstance(exc, ApeException):
        return str(exc)
    return None


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


class AddressType(click.ParamType):
    """A command-line address: 0x and 40 hex digits (any case), given back checksummed; a
    mixed-case address with a wrong EIP-55 checksum is refused (a typo, most likely)."""

    name = "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

        text = str(value).strip()
        if not is_hex_address(text):
            self.fail(f"{text!r} is not an address: 0x and 40 hex digits", param, ctx)
        hex_part = text[2:]
        mixed = hex_part not in (hex_part.lower(), hex_part.upper())
        if mixed and not is_checksum_address(text):
            self.fail(
                f"{text} has a wrong EIP-55 checksum (mixed case): check it for a typo", param, ctx
            )
        return str(to_checksum_address(text))


ADDRESS = AddressType()


def yes_option() -> Any:
    """`--yes`: skip the confirmation before irreversible actions."""
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
