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
        "client wrote its request for farm A to quote:",
        "farm A signed its acceptance (EIP-712, fee 250 bps, oracle epoch 1, threshold 2)",
        "client checked the signature and posted job 1 with it and a permit: one transaction",
        "the job starts Accepted, 40 NTK of farm A's stake locked",
        "provider accepted job 1 (quoted: accepted when posted) committed root",
        "job 1 (quoted) took 3 transactions: post, submit, settle; job 2 took 4",
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
    # The quoted job: the request the client wrote for farm A, and the market stage's checks.
    request = json.loads((tmp_path / "out" / "quote-request.json").read_text())
    assert (request["provider"], request["client"]) == (cast.farm_a.address, cast.client.address)
    assert request["market"] == market.address and request["paymentNtk"] == 100 * NTK
    quote_checks = [c["name"] for c in stages["market"]["checks"] if c["name"].startswith("job 1")]
    assert quote_checks == [
        "job 1 (quoted) starts Accepted",
        "job 1: farm A's collateral locked by the client's post",
        "job 1: the record farm A signed is the record stored",
        "job 1: the seed is its seed block's RANDAO mix",
        "job 1: Python derives the contract's challenge",
        "job 1 (quoted) took 3 transactions: post, submit, settle",
        "job 1 took one transaction fewer than job 2",
    ]
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
