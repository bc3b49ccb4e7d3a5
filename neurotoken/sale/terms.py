"""The token sale's terms and token math, mirrored from contracts/TokenSale.sol.

One place for the sale's arithmetic on the Python side: the CLI quotes with it, the scripted
run reconciles with it and the tests model the contract with it. Every formula here is the
contract's, rounding included (see ITokenSale's NatSpec):

- tokens = floor(paid_wei * ntk_per_eth * (10_000 + bonus_bps) / 10_000)
- the purchase crossing the hard cap gets exactly the tokens left and pays
  ceil(tokens_left * 10_000 / (ntk_per_eth * (10_000 + bonus_bps))) wei
- each allocation = floor(tokens_sold * share_bps / buyers_bps)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

BPS = 10_000
TOKEN_CAP = 100_000_000 * 10**18
"""NeuroToken.CAP: the supply cap every sale must fit under (checked against the contract by
tests/sale/test_deploy.py)."""
_ZERO_ADDRESS = "0x" + "00" * 20
_UINT120_MAX = 2**120 - 1
_UINT128_MAX = 2**128 - 1


class Stage(IntEnum):
    """ITokenSale.Stage."""

    NOT_STARTED = 0
    PRESALE = 1
    ICO_WEEK1 = 2
    ICO_WEEK2 = 3
    ICO_WEEK3 = 4
    ICO_FINAL = 5
    ENDED = 6

    @property
    def label(self) -> str:
        return _STAGE_LABELS[self]


_STAGE_LABELS = {
    Stage.NOT_STARTED: "not started",
    Stage.PRESALE: "presale",
    Stage.ICO_WEEK1: "ICO week 1",
    Stage.ICO_WEEK2: "ICO week 2",
    Stage.ICO_WEEK3: "ICO week 3",
    Stage.ICO_FINAL: "ICO final",
    Stage.ENDED: "ended",
}

BUYING_STAGES: tuple[Stage, ...] = (
    Stage.PRESALE,
    Stage.ICO_WEEK1,
    Stage.ICO_WEEK2,
    Stage.ICO_WEEK3,
    Stage.ICO_FINAL,
)


class SaleState(IntEnum):
    """ITokenSale.SaleState."""

    OPEN = 0
    SUCCEEDED = 1
    FAILED = 2


class Allocation(IntEnum):
    """ITokenSale.Allocation."""

    LIQUIDITY = 0
    TEAM = 1
    PARTNERS = 2
    RESEARCHERS = 3


def tokens_for(paid_wei: int, ntk_per_eth: int, bonus_bps: int) -> int:
    """Tokens bought with `paid_wei` at `bonus_bps`, rounded down (the contract's formula)."""
    return paid_wei * ntk_per_eth * (BPS + bonus_bps) // BPS


def wei_for_tokens(tokens: int, ntk_per_eth: int, bonus_bps: int) -> int:
    """The ETH the hard-cap-crossing purchase pays for `tokens`, rounded up."""
    price = ntk_per_eth * (BPS + bonus_bps)
    return -(-tokens * BPS // price)


@dataclass(frozen=True)
class SaleTerms:
    """ITokenSale.Terms, field for field (addresses as checksummed strings, root as bytes)."""

    token: str
    treasury: str
    ntk_per_eth: int
    hard_cap_tokens: int
    soft_cap_wei: int
    min_contribution_wei: int
    max_contribution_wei: int
    allowlist_root: bytes
    stage_starts: tuple[int, int, int, int, int]
    ends_at: int
    bonus_bps: tuple[int, int, int, int, int]
    liquidity_wallet: str
    partners_wallet: str
    researchers_wallet: str
    liquidity_bps: int
    team_bps: int
    partners_bps: int
    researchers_bps: int
    team_beneficiary: str
    team_vesting_start: int
    team_cliff_seconds: int
    team_vesting_seconds: int

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as the contract's constructor takes it."""
        return tuple(
            list(v) if isinstance(v, tuple) else v
            for v in (getattr(self, f.name) for f in fields(self))
        )

    @classmethod
    def from_chain(cls, raw: Any) -> SaleTerms:
        """Builds terms from `sale.terms()` as ape returns it (a struct or a plain sequence)."""
        values = list(raw) if not hasattr(raw, "items") else list(raw.values())
        names = [f.name for f in fields(cls)]
        if len(values) != len(names):
            raise ValueError(f"expected {len(names)} term fields, got {len(values)}")
        data: dict[str, Any] = {}
        for name, value in zip(names, values, strict=True):
            if name in ("stage_starts", "bonus_bps"):
                data[name] = tuple(int(x) for x in value)
            elif name == "allowlist_root":
                data[name] = bytes(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                data[name] = int(value)
            else:
                data[name] = str(value)
        return cls(**data)

    def problems(self, token_cap: int = TOKEN_CAP) -> list[str]:
        """Why TokenSale's constructor would refuse these terms (its `_checkTerms`, the team
        vesting wallet's cliff check and the token-cap check, rule for rule), in words; empty
        when it would accept them. The token
        address is not judged: the deploy flow deploys the token first."""
        found = []
        wallets = {
            "treasury": self.treasury,
            "liquidity wallet": self.liquidity_wallet,
            "partners wallet": self.partners_wallet,
            "researchers wallet": self.researchers_wallet,
            "team beneficiary": self.team_beneficiary,
        }
        for name, address in wallets.items():
            if str(address).lower() == _ZERO_ADDRESS:
                found.append(f"the {name} is the zero address")
        if not 0 < self.ntk_per_eth <= _UINT128_MAX:
            found.append(f"the rate must be at least 1 NTK per ETH, not {self.ntk_per_eth}")
        if not 0 < self.hard_cap_tokens <= _UINT120_MAX:
            found.append("the hard cap (offered NTK) must be positive")
        elif self.soft_cap_wei == 0:
            found.append("the soft cap must be positive")
        elif self.ntk_per_eth > 0 and self.soft_cap_wei > self.hard_cap_tokens // self.ntk_per_eth:
            most = format_units(self.hard_cap_tokens // self.ntk_per_eth)
            found.append(
                f"the soft cap of {format_units(self.soft_cap_wei)} ETH is more than selling "
                f"every token can raise ({most} ETH at the base price)"
            )
        if self.min_contribution_wei == 0:
            found.append("the minimum contribution must be positive")
        elif self.min_contribution_wei > self.max_contribution_wei:
            found.append(
                f"the minimum contribution ({format_units(self.min_contribution_wei)} ETH) is "
                f"above the maximum ({format_units(self.max_contribution_wei)} ETH)"
            )
        if self.max_contribution_wei > _UINT128_MAX:
            found.append("the maximum contribution is too large")
        starts = self.stage_starts
        if any(starts[i] < starts[i - 1] for i in range(1, 5)) or self.ends_at <= starts[4]:
            found.append("the stages must start in order and the sale end after the last one")
        for stage, bonus in zip(BUYING_STAGES, self.bonus_bps, strict=True):
            if bonus >= BPS:
                found.append(f"the {stage.label} bonus of {bonus} bps is 100% or more")
        if self.team_cliff_seconds > self.team_vesting_seconds:
            found.append("the team's cliff is longer than its whole vesting period")
        allocated = self.liquidity_bps + self.team_bps + self.partners_bps + self.researchers_bps
        if allocated >= BPS:
            found.append(f"the allocations add up to {allocated} bps: buyers must keep some")
        elif not found:
            largest = self.hard_cap_tokens + sum(self.allocations(self.hard_cap_tokens).values())
            if largest > token_cap:
                found.append(
                    f"a sold-out sale would take the supply to {format_units(largest)} NTK, "
                    f"above the token's cap of {format_units(token_cap)} NTK"
                )
        return found

    @property
    def buyers_bps(self) -> int:
        return BPS - self.liquidity_bps - self.team_bps - self.partners_bps - self.researchers_bps

    def stage_at(self, timestamp: int) -> Stage:
        """The stage at block time `timestamp` (as `stage()` computes it)."""
        if timestamp >= self.ends_at:
            return Stage.ENDED
        for stage, start in reversed(list(zip(BUYING_STAGES, self.stage_starts, strict=True))):
            if timestamp >= start:
                return stage
        return Stage.NOT_STARTED

    def stage_start(self, stage: Stage) -> int:
        if stage == Stage.ENDED:
            return self.ends_at
        if stage == Stage.NOT_STARTED:
            raise ValueError("the sale has no start time for 'not started'")
        return self.stage_starts[BUYING_STAGES.index(stage)]

    def stage_end(self, stage: Stage) -> int:
        """When `stage` ends (the next non-empty stage's start, or the sale's end)."""
        if stage in (Stage.ENDED, Stage.NOT_STARTED):
            raise ValueError(f"'{stage.label}' has no end")
        later = [self.stage_start(s) for s in BUYING_STAGES if s > stage] + [self.ends_at]
        return min(later)

    def bonus_of(self, stage: Stage) -> int:
        if stage not in BUYING_STAGES:
            return 0
        return self.bonus_bps[BUYING_STAGES.index(stage)]

    def quote(self, stage: Stage, sent_wei: int, tokens_left: int) -> tuple[int, int]:
        """(tokens, accepted_wei) for `sent_wei` in `stage` with `tokens_left` on offer."""
        bonus = self.bonus_of(stage)
        tokens = tokens_for(sent_wei, self.ntk_per_eth, bonus)
        if tokens <= tokens_left:
            return tokens, sent_wei
        return tokens_left, wei_for_tokens(tokens_left, self.ntk_per_eth, bonus)

    def allocations(self, tokens_sold: int) -> dict[Allocation, int]:
        """What a successful finalization mints beside the buyers' tokens."""
        shares = {
            Allocation.LIQUIDITY: self.liquidity_bps,
            Allocation.TEAM: self.team_bps,
            Allocation.PARTNERS: self.partners_bps,
            Allocation.RESEARCHERS: self.researchers_bps,
        }
        return {kind: tokens_sold * bps // self.buyers_bps for kind, bps in shares.items()}

    def allocation_wallets(self, team_vesting: str) -> dict[Allocation, str]:
        return {
            Allocation.LIQUIDITY: self.liquidity_wallet,
            Allocation.TEAM: team_vesting,
            Allocation.PARTNERS: self.partners_wallet,
            Allocation.RESEARCHERS: self.researchers_wallet,
        }


def format_units(amount: int, decimals: int = 18, places: int = 6) -> str:
    """`amount` in whole units with up to `places` decimals, exact digits (no float), e.g. '1.5'."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    frac_text = f"{frac:0{decimals}d}"[:places].rstrip("0")
    return f"{sign}{whole:,}" + (f".{frac_text}" if frac_text else "")
