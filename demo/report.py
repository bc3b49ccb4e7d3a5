"""The demo's machine-readable report: every stage's figures and reconciliation checks.

`make demo` writes it as JSON next to its images (`demo-output/report.json`) and exits
non-zero when a check fails or a stage stops. Amounts are integers in wei; in the JSON they are
decimal strings (JSON readers that parse numbers as doubles lose precision past 2**53).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurotoken.errors import NeurotokenError
from neurotoken.reconcile import Check

REPORT_VERSION = 1


class DemoFailedError(NeurotokenError):
    """A check did not hold or a stage stopped; the report says which."""


@dataclass
class StageReport:
    """What one stage did: named figures (wei amounts, counts, addresses) and its checks."""

    name: str
    figures: dict[str, int | str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    """Set when the stage stopped with an exception: its type and message."""

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    def check(self, name: str, expected: int, actual: int) -> bool:
        """Records a check; returns whether it held (the stage goes on either way)."""
        c = Check(name, int(expected), int(actual))
        self.checks.append(c)
        return c.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "error": self.error,
            "figures": {k: v if isinstance(v, str) else str(v) for k, v in self.figures.items()},
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass
class DemoReport:
    """The whole run: the chain, the contracts every stage shared, and each stage's report."""

    chain_id: int
    contracts: dict[str, str] = field(default_factory=dict)
    stages: list[StageReport] = field(default_factory=list)

    def stage(self, name: str) -> StageReport:
        report = StageReport(name)
        self.stages.append(report)
        return report

    @property
    def checks(self) -> list[Check]:
        return [c for s in self.stages for c in s.checks]

    @property
    def failures(self) -> list[str]:
        """One line per failed check or stopped stage."""
        out = []
        for s in self.stages:
            if s.error is not None:
                out.append(f"stage {s.name} stopped: {s.error}")
            out += [
                f"{s.name}: {c.name}: expected {c.expected}, got {c.actual}"
                for c in s.checks
                if not c.ok
            ]
        return out

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(s.ok for s in self.stages)

    def summary(self) -> str:
        n = len(self.checks)
        exact = sum(c.ok for c in self.checks)
        stopped = sum(s.error is not None for s in self.stages)
        tail = f"; {stopped} stage(s) stopped" if stopped else ""
        return f"{exact}/{n} checks exact to the wei over {len(self.stages)} stages{tail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "ok": self.ok,
            "summary": self.summary(),
            "chain_id": self.chain_id,
            "contracts": dict(self.contracts),
            "stages": [s.to_json() for s in self.stages],
            "failures": self.failures,
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def finish(report: DemoReport, path: Path, echo: Any = print) -> Path:
    """Writes the report to `path`, prints its summary and each failure, and raises DemoFailedError
    (the command then exits 1) when anything failed."""
    report.write(path)
    echo(f"report: {path} ({report.summary()})")
    if not report.ok:
        for line in report.failures:
            echo(f"  {line}")
        raise DemoFailedError(
            f"the demo did not reconcile: {len(report.failures)} failure(s); see {path}"
        )
    return path
