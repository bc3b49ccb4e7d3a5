"""Helpers shared by the command lines: the one error boundary (`friendly`), network keys and
confirmations for the ape scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from neurotoken.errors import KeystoreError, NeurotokenError

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


def passphrase_for(alias: str) -> str | None:
    """The passphrase of ape account `alias` for unattended signing: the variable
    APE_ACCOUNTS_<alias>_PASSPHRASE, or the first line of the file named by
    APE_ACCOUNTS_<alias>_PASSPHRASE_FILE (for systemd credentials, Docker secrets)."""
    value = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
    if value:
        return value
    file_name = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE_FILE")
    if not file_name:
        return None
    try:
        lines = Path(file_name).read_text().splitlines()
    except OSError as exc:
        raise KeystoreError(
            f"cannot read the passphrase file of account '{alias}' "
            f"(APE_ACCOUNTS_{alias}_PASSPHRASE_FILE): {exc.strerror}"
        ) from None
    return lines[0] if lines else ""


def ready_to_sign(account: Any) -> Any:
    """Makes an ape keystore account sign without prompts when its passphrase is given (see
    `passphrase_for`): ape 0.8.51 reads the variable only on an explicit unlock, so every
    transaction would otherwise ask 'Sign:', the passphrase and 'Leave unlocked?'. Without a
    passphrase, a terminal keeps ape's prompts (the default on a live network); without a
    terminal, a clear error replaces click's bare 'Aborted!'. Test accounts pass through."""
    if account is None or not hasattr(account, "set_autosign") or not hasattr(account, "alias"):
        return account
    alias = str(account.alias)
    passphrase = passphrase_for(alias)
    if passphrase is not None:
        from ape.exceptions import AccountsError

        try:
            account.set_autosign(True, passphrase=passphrase)
        except AccountsError:
            raise KeystoreError(
                f"the passphrase given for account '{alias}' "
                f"(APE_ACCOUNTS_{alias}_PASSPHRASE[_FILE]) does not decrypt its keystore"
            ) from None
    elif not sys.stdin.isatty():
        raise KeystoreError(
            f"account '{alias}' needs its passphrase to sign without a terminal: set "
            f"APE_ACCOUNTS_{alias}_PASSPHRASE, or APE_ACCOUNTS_{alias}_PASSPHRASE_FILE to a "
            "file holding it"
        )
    return account


def signs(func: Callable[P, R]) -> Callable[P, R]:
    """For commands taking the sending ape `account`: readies it with `ready_to_sign` first
    (put under `@friendly`, so a bad passphrase is one line)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if "account" in kwargs:
            kwargs["account"] = ready_to_sign(kwargs["account"])
        return func(*args, **kwargs)

    return wrapper


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
