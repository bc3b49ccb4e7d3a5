"""What a transaction pays per gas: one fee policy for every sender in this repository (the
oracle, the provider agent, `oracle settle`), in integers (wei), with no node in sight.

First attempt (`FeePolicy.initial`), from the latest block:

    EIP-1559 (the block has a base fee):
        maxPriorityFeePerGas = the policy's tip, else the node's suggested tip
        maxFeePerGas         = 2 x base fee + tip
    legacy (no base fee):
        gasPrice             = the node's suggested gas price

Replacement of a stuck or refused attempt (`FeePolicy.bump`), with `bump_pct` (nodes, as
geth by default, refuse a replacement whose fees are not at least 10% higher):

    maxPriorityFeePerGas = max(ceil(old tip x (1 + bump)), the policy's tip)
    maxFeePerGas         = max(ceil(old max fee x (1 + bump)), 2 x current base fee + new tip)
    gasPrice (legacy)    = ceil(old gas price x (1 + bump))

No attempt, first or replacement, pays more per gas than the policy's cap (`max_fee`; None:
no cap), and no tip exceeds its max fee. `bump` answers None when the cap leaves no room for
a replacement nodes accept (every fee at least 10% up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neurotoken.errors import ConfigError

GWEI = 10**9
MIN_BUMP_PCT = 10
"""Nodes (geth's default price bump) refuse a replacement with fees less than 10% higher."""


def raised(value: int, pct: int) -> int:
    """ceil(value x (1 + pct/100)), in integers."""
    return -(-value * (100 + pct) // 100)


def gwei(value: int) -> str:
    """`value` wei in gwei, for people."""
    return f"{value / GWEI:.9g} gwei"


@dataclass(frozen=True)
class Fees:
    """An attempt's fees: EIP-1559 (`priority_fee` set) or legacy (`max_fee` is the gasPrice)."""

    max_fee: int
    priority_fee: int | None

    @property
    def legacy(self) -> bool:
        return self.priority_fee is None

    @classmethod
    def of(cls, tx: Mapping[str, Any]) -> Fees:
        """The fees of a transaction's fields (as a node returns them, or as signed)."""
        if tx.get("maxFeePerGas") is not None:
            return cls(int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"]))
        return cls(int(tx["gasPrice"]), None)

    def fields(self) -> dict[str, int]:
        """The transaction fields that carry these fees (the type too, for EIP-1559)."""
        if self.priority_fee is None:
            return {"gasPrice": self.max_fee}
        return {"type": 2, "maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.priority_fee}

    def __str__(self) -> str:
        if self.priority_fee is None:
            return f"gas price {gwei(self.max_fee)}"
        return f"max fee {gwei(self.max_fee)}, tip {gwei(self.priority_fee)}"


@dataclass(frozen=True)
class FeePolicy:
    """How much a sender offers, and how it raises a stuck transaction (module docstring)."""

    bump_pct: int = 25
    """How much each replacement raises the fees, in percent (nodes require 10 at least)."""
    max_fee: int | None = 500 * GWEI
    """No attempt pays more than this per gas, in wei (None: no cap)."""
    tip: int | None = None
    """The tip, in wei (None: what the node suggests, eth_maxPriorityFeePerGas)."""

    def __post_init__(self) -> None:
        if self.bump_pct < MIN_BUMP_PCT:
            raise ConfigError(
                f"a fee bump of {self.bump_pct}% is refused by nodes: {MIN_BUMP_PCT} at least"
            )
        if self.max_fee is not None and self.max_fee <= 0:
            raise ConfigError(f"the fee cap must be positive: {self.max_fee} wei")
        if self.tip is not None and self.tip < 0:
            raise ConfigError(f"the tip must not be negative: {self.tip} wei")

    def _capped(self, value: int) -> int:
        return value if self.max_fee is None else min(value, self.max_fee)

    def initial(self, base_fee: int | None, suggested: int) -> Fees:
        """The first attempt's fees. `base_fee`: the latest block's (None: the chain has none,
        the attempt is a legacy one); `suggested`: the node's tip (EIP-1559) or gas price
        (legacy), used where the policy sets no tip."""
        if base_fee is None:
            return Fees(self._capped(suggested), None)
        tip = suggested if self.tip is None else self.tip
        max_fee = self._capped(2 * base_fee + tip)
        return Fees(max_fee, min(tip, max_fee))

    def bump(self, old: Fees, base_fee: int) -> Fees | None:
        """The fees of a replacement for an attempt signed with `old`, or None when the cap
        leaves no room for one that nodes accept (every fee 10% up)."""
        if old.priority_fee is None:
            price = self._capped(raised(old.max_fee, self.bump_pct))
            return Fees(price, None) if price >= raised(old.max_fee, MIN_BUMP_PCT) else None
        tip = max(raised(old.priority_fee, self.bump_pct), self.tip or 0)
        max_fee = self._capped(max(raised(old.max_fee, self.bump_pct), 2 * base_fee + tip))
        tip = min(tip, max_fee)
        if max_fee < raised(old.max_fee, MIN_BUMP_PCT) or tip < raised(
            old.priority_fee, MIN_BUMP_PCT
        ):
            return None
        return Fees(max_fee, tip)

    def no_room(self, old: Fees) -> str:
        """Why `bump(old, ...)` answered None, for people."""
        cap = "none" if self.max_fee is None else gwei(self.max_fee)
        return f"the fee cap of {cap} leaves no room for a {MIN_BUMP_PCT}% bump over {old}"
