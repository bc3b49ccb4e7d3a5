"""The provider agent's settings, one typed model (as the oracle's `OracleSettings`).

Each setting comes from a command-line option, else its environment variable, else its
default; a bad value is refused here, with a message that names the variable and never
quotes a value (see `neurotoken.chain.cli.settings_problems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from neurotoken.chain.fees import MIN_BUMP_PCT
from neurotoken.provider.faults import parse_points
from neurotoken.provider.sending import TxSettings

DEFAULT_PASSWORD_ENV = "NEUROTOKEN_PROVIDER_PASSWORD"
"""Where the agent reads its keystore password unless --password-env names another variable."""


def _env(name: str) -> AliasChoices:
    # The field's own name (for options passed in) and its environment variable.
    return AliasChoices(name.removeprefix("NEUROTOKEN_").lower(), name)


class ProviderSettings(BaseSettings):
    """Everything `python -m neurotoken.provider agent ...` needs."""

    model_config = SettingsConfigDict(
        env_prefix="NEUROTOKEN_", case_sensitive=False, extra="ignore", validate_default=True
    )

    rpc_url: str = Field("http://127.0.0.1:8545", validation_alias=_env("NEUROTOKEN_RPC_URL"))
    """JSON-RPC endpoint of an Ethereum node."""
    market: str = Field("", validation_alias=_env("NEUROTOKEN_MARKET"))
    """The ComputeMarket's address; empty: read from the deployments file of `network`."""
    network: str = Field("ethereum-local", validation_alias=_env("NEUROTOKEN_NETWORK"))
    """Deployments file key used when `market` is not given."""
    keystore: str = Field(
        "", validation_alias=AliasChoices("keystore", "NEUROTOKEN_PROVIDER_KEYSTORE")
    )
    """Encrypted keystore: a path, or an ape account alias (~/.ape/accounts)."""
    password_env: str = Field(DEFAULT_PASSWORD_ENV, min_length=1)
    """The *name* of the environment variable holding the keystore password."""
    abi: Path | None = Field(None, validation_alias=AliasChoices("abi", "NEUROTOKEN_ABI_MANIFEST"))
    """Ape build manifest with the ABIs (default: .build/__local__.json)."""
    receipt_timeout_s: float = Field(
        TxSettings.receipt_timeout_s, gt=0, validation_alias=_env("NEUROTOKEN_RECEIPT_TIMEOUT_S")
    )
    """Seconds to wait for a transaction's receipt (replacements included)."""
    stuck_after_blocks: int = Field(
        TxSettings.stuck_after_blocks, ge=1, validation_alias=_env("NEUROTOKEN_STUCK_AFTER_BLOCKS")
    )
    """Blocks without a receipt before a transaction is re-signed with higher fees."""
    fee_bump_pct: int = Field(
        TxSettings.fee_bump_pct, validation_alias=_env("NEUROTOKEN_FEE_BUMP_PCT")
    )
    """How much each replacement raises the fees, in percent (nodes refuse less than 10)."""
    max_fee_gwei: float = Field(
        TxSettings.max_fee_gwei or 0.0, ge=0, validation_alias=_env("NEUROTOKEN_MAX_FEE_GWEI")
    )
    """No transaction pays more than this per gas, replacements included (0: no cap)."""
    backend: Literal["local", "ray"] = Field(
        "local", validation_alias=AliasChoices("backend", "NEUROTOKEN_PROVIDER_BACKEND")
    )
    """Where shards are computed: a local process pool, or a Ray cluster (the `ray` extra)."""
    ray_address: str = Field(
        "", validation_alias=AliasChoices("ray_address", "NEUROTOKEN_PROVIDER_RAY_ADDRESS")
    )
    """The Ray cluster's head (HOST:6379, or `auto`); empty: a Ray started in this process."""
    crash_at: str = Field(
        "", validation_alias=AliasChoices("crash_at", "NEUROTOKEN_AGENT_CRASH_AT")
    )
    """Fault injection for the crash campaigns only, never in production: `agent run`
    SIGKILLs itself at these points (comma-separated, of `faults.CRASH_POINTS`); empty (the
    default): nothing is injected."""
    crash_probability: float = Field(
        1.0,
        ge=0,
        le=1,
        validation_alias=AliasChoices("crash_probability", "NEUROTOKEN_AGENT_CRASH_PROBABILITY"),
    )
    """The chance of dying at each arrival at a `crash_at` point."""

    @field_validator("market")
    @classmethod
    def _checksum_market(cls, value: str) -> str:
        if not value:
            return ""
        if not is_address(value):
            raise ValueError("not an address (0x and 40 hex digits)")
        return to_checksum_address(value)

    @field_validator("crash_at")
    @classmethod
    def _known_points(cls, value: str) -> str:
        parse_points(value)
        return value

    @field_validator("fee_bump_pct")
    @classmethod
    def _bump_nodes_accept(cls, value: int) -> int:
        if value < MIN_BUMP_PCT:
            raise ValueError(f"a fee bump of {value}% is refused by nodes: {MIN_BUMP_PCT} at least")
        return value

    @field_validator("abi", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    def tx_settings(self) -> TxSettings:
        return TxSettings(
            self.receipt_timeout_s,
            self.stuck_after_blocks,
            self.fee_bump_pct,
            self.max_fee_gwei or None,
        )


def env_name(field: str) -> str:
    """The environment variable of setting `field` (for messages)."""
    alias = ProviderSettings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return f"NEUROTOKEN_{field.upper()}"
