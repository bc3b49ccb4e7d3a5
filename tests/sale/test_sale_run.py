"""The scripted sale: both endings reconcile to the wei, and a mismatch is reported."""

from __future__ import annotations

from typing import Any

from neurotoken.sale.config import SaleConfig
from neurotoken.sale.run import SaleReport, run_sale
from neurotoken.sale.terms import SaleState, Stage


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


def test_report__with_one_wei_off__is_not_ok_and_names_the_check() -> None:
    terms = SaleConfig().to_terms(now=0, allowlist_root=bytes(32), default_wallet="0x" + "11" * 20)
    report = SaleReport("t", terms, "0x1", "0x2", "0x3", 1)
    report.check("treasury received the ETH raised", 10**18, 10**18)
    assert report.ok
    report.check("buyer refunded exactly", 10**18, 10**18 - 1)
    assert not report.ok
    assert [c.name for c in report.failures] == ["buyer refunded exactly"]
    assert "1 MISMATCHED" in report.summary()
