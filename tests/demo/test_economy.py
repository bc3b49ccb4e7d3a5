"""`make demo`'s stages as one economy on the test chain: the sale's NTK is what the client
escrows, the farms stake and earn and the fee is paid in; every check of the report holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from demo import STAGES
from demo.economy import Economy, run_stages
from demo.report import finish
from neurotoken.units import NTK


def test_demo__one_economy_from_sale_to_books__every_check_holds(
    project: Any, chain: Any, accounts: Any, tmp_path: Path
) -> None:
    lines: list[str] = []
    economy = Economy.of(project, chain, accounts, lines.append, tmp_path / "out")
    report = run_stages(economy, STAGES)
    text = "\n".join(lines)
    assert report.ok, "\n".join(report.failures) + "\n" + text[-3000:]
    data = json.loads(finish(report, tmp_path / "report.json", lines.append).read_text())
    stages = {s["name"]: s for s in data["stages"]}
    assert list(stages) == ["sale", "token", "market", "compute", "agent", "oracle", "ledger"]

    # One token: every contract the stages used is on the NTK the sale deployed.
    token = project.NeuroToken.at(data["contracts"]["NeuroToken"])
    market = project.ComputeMarket.at(data["contracts"]["ComputeMarket"])
    assert market.token() == token.address
    assert token.mintingFinished()
    cast = economy.cast
    for farm in cast.farms:  # each farm's stake came out of what it claimed in the sale
        assert int(stages["sale"]["figures"][f"farm_{'abc'[cast.farms.index(farm)]}_claimed_ntk"])
        assert market.getProvider(farm).registered

    # The story each stage tells.
    for phrase in (
        "with a permit, one transaction",
        "(Python agrees)",
        "settled both jobs in one transaction",
        "replaying the same signatures is refused: job",
        "anyone expired it",
        "= the providers' remaining stake",
        "a provider faking one pixel of shard 3: rejected",
        "agent: job 4: accepted - 16 shards for 160.00 NTK",
        "client downloaded all 16 outputs",
        "a stranger with the bundle URL gets nothing (refused: HTTP 403)",
        "gross paid by clients 160 NTK; protocol fees 4 NTK; net earned 156 NTK",
        "withdrew 156 NTK of earnings",
        "400.00 NTK slashed",
    ):
        assert phrase in text, phrase
    # a quorum of two settles each job; the third oracle may not have finished verifying it
    assert 2 <= sum(line.endswith(": accept") for line in lines) <= 3
    assert 2 <= sum(": reject (" in line for line in lines) <= 3
    folder = Path(stages["oracle"]["figures"]["folder"])
    assert len(list(folder.glob("oracles/oracle*/oracle.sqlite"))) == 3

    # The books: 40 NTK burned by hand, 20 + 20 in the market stage, 200 by the oracles.
    ledger = stages["ledger"]["figures"]
    assert int(ledger["burned_ntk"]) == 280 * NTK
    assert int(ledger["supply_ntk"]) == int(ledger["minted_ntk"]) - 280 * NTK
    assert int(ledger["fees_to_treasury_ntk"]) == 2_500 * NTK // 1000
    assert int(ledger["fees_charged_ntk"]) == (2_500 + 4_000 + 2_500) * NTK // 1000
    assert len(list((tmp_path / "out").glob("*/*.png"))) == 6
