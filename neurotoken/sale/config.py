"""Sale terms in human units, from a TOML file (config/sale.toml holds the 2017 defaults).

ETH amounts are decimal strings or numbers (converted exactly to wei), NTK amounts whole
tokens, durations days, shares basis points. `to_terms` turns them into the contract's
`SaleTerms` once the start time, the wallets and the allow-list root are known.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from eth_utils.address import is_hex_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from neurotoken.errors import InputError
from neurotoken.sale.terms import SaleTerms

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "sale.toml"
DAY = 86_400
WEI_PER_ETH = Decimal(10) ** 18


class SaleConfigError(InputError):
    """The sale configuration is unusable; the message says which key and why."""


def eth_to_wei(value: Decimal, name: str) -> int:
    wei = value * WEI_PER_ETH
    if wei != wei.to_integral_value() or wei < 0:
        raise SaleConfigError(f"{name} = {value} ETH is not a whole number of wei")
    return int(wei)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleConfig(_Section):
    start: datetime | None = None
    """When the presale opens (UTC); when absent, `start_delay_seconds` after deployment."""
    start_delay_seconds: int = Field(default=3600, ge=0)
    presale_days: float = Field(default=7, ge=0)
    ico_week_days: float = Field(default=7, ge=0)
    """Length of each of the three bonus weeks."""
    final_days: float = Field(default=7, gt=0)
    """Length of the last stage, without bonus."""


class BonusConfig(_Section):
    presale: int = Field(default=1000, ge=0, lt=10_000)
    ico_week1: int = Field(default=1500, ge=0, lt=10_000)
    ico_week2: int = Field(default=1000, ge=0, lt=10_000)
    ico_week3: int = Field(default=500, ge=0, lt=10_000)
    ico_final: int = Field(default=0, ge=0, lt=10_000)


class AllocationConfig(_Section):
    liquidity: int = Field(default=1000, ge=0)
    team: int = Field(default=1200, ge=0)
    partners: int = Field(default=1200, ge=0)
    researchers: int = Field(default=600, ge=0)


class TeamVestingConfig(_Section):
    cliff_days: float = Field(default=365, ge=0)
    duration_days: float = Field(default=3 * 365, ge=0)
    """From the end of the sale; the cliff is part of it."""


class WalletsConfig(_Section):
    """Addresses; an empty one means the deploying account (refused on live networks)."""

    treasury: str = ""
    liquidity: str = ""
    partners: str = ""
    researchers: str = ""
    team_beneficiary: str = ""

    @field_validator("*")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value and not is_hex_address(value):
            raise ValueError(f"{value!r} is not an address (0x and 40 hex digits)")
        return to_checksum_address(value) if value else ""


class SaleConfig(_Section):
    ntk_per_eth: int = Field(default=1000, gt=0)
    offered_ntk: Decimal = Field(default=Decimal(60_000_000), gt=0)
    soft_cap_eth: Decimal = Field(default=Decimal(5000), gt=0)
    min_contribution_eth: Decimal = Field(default=Decimal("0.1"), gt=0)
    max_contribution_eth: Decimal = Field(default=Decimal(5000), gt=0)
    allowlist: str = ""
    """The allow-list JSON made by `ape run sale allowlist` (relative to the config file)."""
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    bonus_bps: BonusConfig = Field(default_factory=BonusConfig)
    allocation_bps: AllocationConfig = Field(default_factory=AllocationConfig)
    team_vesting: TeamVestingConfig = Field(default_factory=TeamVestingConfig)
    wallets: WalletsConfig = Field(default_factory=WalletsConfig)

    source: Path | None = Field(default=None, exclude=True)

    @classmethod
    def load(cls, path: Path) -> SaleConfig:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise SaleConfigError(f"cannot read the sale config {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SaleConfigError(f"{path} is not valid TOML: {exc}") from exc
        if not data:
            raise SaleConfigError(
                f"the sale config {path} is empty: every term would silently take its default. "
                "Start from config/sale.toml and set the terms you mean"
            )
        return cls.parse(data, source=path)

    @classmethod
    def parse(cls, data: dict[str, Any], source: Path | None = None) -> SaleConfig:
        try:
            config = cls.model_validate({**data, "source": source})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            where = f" in {source}" if source else ""
            raise SaleConfigError(f"invalid sale config{where}: {problems}") from exc
        except InvalidOperation as exc:
            raise SaleConfigError(f"invalid number in the sale config: {exc}") from exc
        return config

    def allowlist_path(self) -> Path | None:
        if not self.allowlist:
            return None
        path = Path(self.allowlist)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path

    def missing_wallets(self) -> list[str]:
        return [name for name, value in self.wallets.model_dump().items() if not value]

    def to_terms(
        self, *, now: int, allowlist_root: bytes, default_wallet: str | None = None
    ) -> SaleTerms:
        """The contract terms, the schedule starting from `start` or `now + start_delay`."""
        missing = self.missing_wallets()
        if missing and not default_wallet:
            raise SaleConfigError(
                f"set wallets.{', wallets.'.join(missing)} in the sale config: "
                "on a live network no wallet defaults to the deploying account"
            )

        def wallet(value: str) -> str:
            return value or to_checksum_address(str(default_wallet))

        sched = self.schedule
        start = (
            int(sched.start.astimezone(UTC).timestamp())
            if sched.start
            else now + sched.start_delay_seconds
        )
        week = round(sched.ico_week_days * DAY)
        starts = [start, start + round(sched.presale_days * DAY)]
        starts += [starts[1] + week, starts[1] + 2 * week, starts[1] + 3 * week]
        ends_at = starts[4] + round(sched.final_days * DAY)
        offered = self.offered_ntk * WEI_PER_ETH
        if offered != offered.to_integral_value():
            raise SaleConfigError(f"offered_ntk = {self.offered_ntk} is finer than 18 decimals")
        return SaleTerms(
            token="0x0000000000000000000000000000000000000000",
            treasury=wallet(self.wallets.treasury),
            ntk_per_eth=self.ntk_per_eth,
            hard_cap_tokens=int(offered),
            soft_cap_wei=eth_to_wei(self.soft_cap_eth, "soft_cap_eth"),
            min_contribution_wei=eth_to_wei(self.min_contribution_eth, "min_contribution_eth"),
            max_contribution_wei=eth_to_wei(self.max_contribution_eth, "max_contribution_eth"),
            allowlist_root=allowlist_root,
            stage_starts=(starts[0], starts[1], starts[2], starts[3], starts[4]),
            ends_at=ends_at,
            bonus_bps=(
                self.bonus_bps.presale,
                self.bonus_bps.ico_week1,
                self.bonus_bps.ico_week2,
                self.bonus_bps.ico_week3,
                self.bonus_bps.ico_final,
            ),
            liquidity_wallet=wallet(self.wallets.liquidity),
            partners_wallet=wallet(self.wallets.partners),
            researchers_wallet=wallet(self.wallets.researchers),
            liquidity_bps=self.allocation_bps.liquidity,
            team_bps=self.allocation_bps.team,
            partners_bps=self.allocation_bps.partners,
            researchers_bps=self.allocation_bps.researchers,
            team_beneficiary=wallet(self.wallets.team_beneficiary),
            team_vesting_start=ends_at,
            team_cliff_seconds=round(self.team_vesting.cliff_days * DAY),
            team_vesting_seconds=round(self.team_vesting.duration_days * DAY),
        )
