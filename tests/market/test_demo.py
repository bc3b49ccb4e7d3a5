"""The market demo stage runs end to end and tells the story it claims."""

from __future__ import annotations

from typing import Any

from demo.market import run_market_demo
from tests.market.conftest import DEFAULTED, PAID, REJECTED


def test_market_demo__runs_every_step(project: Any, chain: Any, accounts: Any) -> None:
    lines: list[str] = []
    result = run_market_demo(project, chain, accounts, echo=lines.append)
    market = project.ComputeMarket.at(result.market)
    assert [
        int(market.getJob(j).state)
        for j in (result.paid_job, result.rejected_job, result.defaulted_job)
    ] == [
        PAID,
        REJECTED,
        DEFAULTED,
    ]
    text = "\n".join(lines)
    for phrase in (
        "with a permit, one transaction",
        "(Python agrees)",
        "all hold",
        "a shard does not match",
        "settled both jobs in one transaction",
        "replaying the same signatures is refused: job",
        "anyone expired it",
        "= the providers' remaining stake",
    ):
        assert phrase in text, phrase
    assert result.provider_earned == 100 * 10**18 - result.fees
    assert market.feesNtk() == 0
