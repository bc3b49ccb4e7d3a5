"""A reconciliation check: what the rules say a figure must be against what the chain holds.

The scripted sale's report (`neurotoken.sale.run`) and the demo's report (`demo.report`) are
lists of these; a report is good only when every one holds to the wei.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """One reconciliation: `expected` (from the rules) against `actual` (from the chain)."""

    name: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual

    def to_json(self) -> dict[str, Any]:
        """Amounts as decimal strings: JSON readers that parse numbers as doubles lose
        precision past 2**53."""
        return {
            "name": self.name,
            "expected": str(self.expected),
            "actual": str(self.actual),
            "ok": self.ok,
        }
