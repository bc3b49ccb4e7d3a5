"""The scripted sale: both endings reconcile to the wei, and a mismatch is reported."""

from __future__ import annotations

from typing import Any

from neurotoken.sale_run import run_sale
from neurotoken.sale_terms import SaleState, Stage


def test_run_sale__to_success__reconciles_every_balance(
    project: Any, chain: Any, accounts: Any
) -> None:
    lines: list[str] = []
    report = run_sale(project, chain, accounts, n_buyers=10, succeed=True, echo=lines.append)
    assert report.ok, report.render()
    assert report.outcome == SaleState.SUCCEEDED
    assert {p.stage for p in report.purchases} == set(Stage) - {Stage.NOT_STARTED, Stage.ENDED}
    assert len(report.claims) == 10
    assert sum(report.claims.values()) == report.tokens_sold
    assert "reconciliation:" in report.render()
    print(report.render())


def test_run_sale__missing_the_soft_cap__refunds_everyone(
    project: Any, chain: Any, accounts: Any
) -> None:
    report = run_sale(project, chain, accounts, n_buyers=10, succeed=False, echo=lambda _m: None)
    assert report.ok, report.render()
    assert report.outcome == SaleState.FAILED
    assert sum(report.refunds.values()) == report.wei_raised > 0
    print(report.render())
