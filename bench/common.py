"""What every benchmark suite shares: the chain context, gas readings and Markdown tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """One Markdown table of figures, with notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += self.notes
        return "\n".join(lines) + "\n"


@dataclass
class BenchContext:
    """Handles on the connected chain, given to every suite."""

    project: Any
    chain: Any
    accounts: Any
    owner: Any
    _spare: list[Any] = field(default_factory=list)

    def fresh_accounts(self, n: int, eth: int = 10**19) -> list[Any]:
        """`n` newly generated accounts, each funded with `eth` wei by the owner."""
        out = []
        for _ in range(n):
            acct = self.accounts.test_accounts.generate_test_account()
            self.owner.transfer(acct, eth)
            out.append(acct)
        return out


def gas_used(receipt: Any) -> int:
    """Gas used by a transaction, from its receipt."""
    return int(receipt.gas_used)


def ratio(value: int | float, reference: int | float) -> str:
    """`value / reference` as a short figure, e.g. '1.07x'."""
    return f"{value / reference:.2f}x" if reference else "n/a"


def deploy_gas(chain: Any, contract: Any) -> int:
    """Gas used by the transaction that deployed `contract`."""
    return int(chain.provider.get_receipt(contract.txn_hash).gas_used)


def _marked(name: str, body: str) -> str:
    return f"<!-- suite:{name} -->\n{body.rstrip()}\n<!-- /suite:{name} -->\n"


def merge_results(previous: str, sections: dict[str, str], header: str, order: list[str]) -> str:
    """The results file with `sections` (suite name -> Markdown) put in place: a suite
    already in `previous` is replaced where it stands (with a line saying when it was
    measured), other suites there are kept, new ones are appended in `order`. A run of
    every suite in `order` writes the file afresh."""
    present = {
        m.group(1): m.group(0)
        for m in re.finditer(r"<!-- suite:(\w+) -->\n.*?<!-- /suite:\1 -->\n", previous, re.S)
    }
    if not present or set(order) <= set(sections):
        body = "\n".join(_marked(n, sections[n]) for n in order if n in sections)
        return f"# Benchmark results\n\n{header}\n\n{body}"
    text = previous
    for name in order:
        if name not in sections:
            continue
        block = _marked(name, f"_{header}_\n\n{sections[name]}")
        if name in present:
            text = text.replace(present[name], block)
        else:
            text = text.rstrip() + "\n\n" + block
    return text
