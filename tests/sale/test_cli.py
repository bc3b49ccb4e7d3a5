"""The operator CLI: each subcommand against a live sale, and the messages for user mistakes.

The subcommands' bodies are called directly on the test chain (ape's ConnectedProviderCommand
would connect a fresh anvil of its own); the command line itself is run end to end for
`allowlist` and `simulate`, in a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from neurotoken.chain import deployments
from neurotoken.sale.allowlist import Allowlist
from neurotoken.sale.terms import SaleState, Stage
from neurotoken.units import NTK
from tests.constants import ETH
from tests.helpers import load_script, run
from tests.sale.conftest import SaleEnv

ROOT = Path(__file__).resolve().parents[2]
sale_cli = load_script("sale")
pytestmark = pytest.mark.usefixtures("deployments_dir")  # nothing reads or records the real ones


@pytest.fixture
def allowlist_file(tmp_path: Path, env: SaleEnv) -> Path:
    path = tmp_path / "allowlist.json"
    env.allowlist.write(path)
    return path


def test_status__shows_stage_bonus_raised_sold_and_time_left(
    env: SaleEnv, alice: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env.warp(Stage.PRESALE)
    env.buy(alice, 2 * ETH, env.proof(alice))
    run(sale_cli.status, sale_address=env.sale.address, buyer=alice.address)
    out = capsys.readouterr().out
    assert "stage         presale (next stage in 6d 2" in out
    assert "bonus         10%" in out
    assert "raised        2 ETH (soft cap 20 ETH: not reached)" in out
    assert "sold          2,200 of 100,000 NTK (97,800 left)" in out
    assert f"buyer         {alice.address}: paid 2 ETH for 2,200 NTK" in out


def test_status__without_a_recorded_sale__says_to_deploy_first(env: SaleEnv) -> None:
    with pytest.raises(click.ClickException, match="ape run sale deploy"):
        run(sale_cli.status, sale_address=None, buyer=None)


def test_status__finds_the_recorded_sale(
    env: SaleEnv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployments.record(sale_cli.network_name(), "TokenSale", env.sale.address)
    run(sale_cli.status, sale_address=None, buyer=None)
    assert "presale opens in" in capsys.readouterr().out


def test_buy__in_presale__looks_up_the_proof(
    env: SaleEnv, alice: Any, allowlist_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.warp(Stage.PRESALE)
    run(
        sale_cli.buy,
        account=alice,
        sale_address=env.sale.address,
        amount_eth="1.5",
        allowlist_file=allowlist_file,
        yes=True,
    )
    assert "Bought 1,650 NTK for 1.5 ETH" in capsys.readouterr().out
    assert env.sale.contributionOf(alice).tokens == 1650 * NTK


def test_buy__in_presale_off_the_list__says_to_ask_the_operator(
    env: SaleEnv, carol: Any, allowlist_file: Path
) -> None:
    env.warp(Stage.PRESALE)
    with pytest.raises(
        click.ClickException, match=r"not on the presale allow-list.*Ask the sale operator"
    ):
        run(
            sale_cli.buy,
            account=carol,
            sale_address=env.sale.address,
            amount_eth="1",
            allowlist_file=allowlist_file,
            yes=True,
        )


def test_buy__in_presale_without_the_list_file__says_to_pass_it(env: SaleEnv, alice: Any) -> None:
    env.warp(Stage.PRESALE)
    with pytest.raises(click.ClickException, match="pass --allowlist"):
        run(
            sale_cli.buy,
            account=alice,
            sale_address=env.sale.address,
            amount_eth="1",
            allowlist_file=None,
            yes=True,
        )


@pytest.mark.parametrize(
    ("amount", "stage", "message"),
    [
        ("1", Stage.NOT_STARTED, "has not started: the presale opens"),
        ("1", Stage.ENDED, "the sale ended"),
        ("0.01", Stage.ICO_WEEK1, "below the minimum purchase of 0.1 ETH"),
        ("51", Stage.ICO_WEEK1, "above the 50 ETH per-buyer maximum: you can add at most 50 ETH"),
        ("one", Stage.ICO_WEEK1, "is not an ETH amount"),
        ("-1", Stage.ICO_WEEK1, "not a positive whole number of wei"),
    ],
)
def test_buy__a_purchase_the_sale_would_refuse__explains_why(
    env: SaleEnv, carol: Any, amount: str, stage: Stage, message: str
) -> None:
    if stage != Stage.NOT_STARTED:
        env.warp(stage)
    with pytest.raises(click.ClickException, match=message):
        run(
            sale_cli.buy,
            account=carol,
            sale_address=env.sale.address,
            amount_eth=amount,
            allowlist_file=None,
            yes=True,
        )


def test_buy__while_paused__explains_why(env: SaleEnv, owner: Any, carol: Any) -> None:
    env.warp(Stage.ICO_WEEK1)
    run(sale_cli.pause, account=owner, sale_address=env.sale.address)
    with pytest.raises(click.ClickException, match="paused by the sale's owner"):
        run(
            sale_cli.buy,
            account=carol,
            sale_address=env.sale.address,
            amount_eth="1",
            allowlist_file=None,
            yes=True,
        )
    run(sale_cli.unpause, account=owner, sale_address=env.sale.address)
    run(
        sale_cli.buy,
        account=carol,
        sale_address=env.sale.address,
        amount_eth="1",
        allowlist_file=None,
        yes=True,
    )


def test_pause__by_someone_else__explains_who_may(env: SaleEnv, carol: Any) -> None:
    nonce = carol.nonce
    with pytest.raises(click.ClickException, match="is not the contract's owner"):
        run(sale_cli.pause, account=carol, sale_address=env.sale.address)
    assert carol.nonce == nonce  # refused before signing: no gas spent


@pytest.mark.parametrize("command", ["claim", "refund"])
def test_claim_or_refund__while_the_sale_is_open__refused_before_signing(
    env: SaleEnv, alice: Any, command: str
) -> None:
    env.warp(Stage.PRESALE)
    env.buy(alice, 2 * ETH, env.proof(alice))
    nonce = alice.nonce
    with pytest.raises(click.ClickException, match="the sale is open"):
        run(getattr(sale_cli, command), account=alice, sale_address=env.sale.address, buyer=None)
    assert alice.nonce == nonce  # nothing was mined: the buyer paid no gas for the mistake


def test_finalize__too_early__explains_when(env: SaleEnv, erin: Any) -> None:
    with pytest.raises(click.ClickException, match="finalize it when it ends or sells out"):
        run(sale_cli.finalize, account=erin, sale_address=env.sale.address, yes=True)


def test_finalize_claim_refund__through_the_cli(
    env: SaleEnv, alice: Any, carol: Any, erin: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env.warp(Stage.ICO_WEEK1)
    run(
        sale_cli.buy,
        account=carol,
        sale_address=env.sale.address,
        amount_eth="30",
        allowlist_file=None,
        yes=True,
    )
    env.warp(Stage.ENDED)
    with pytest.raises(click.ClickException, match="refunds are only possible after a failed sale"):
        run(sale_cli.refund, account=carol, sale_address=env.sale.address, buyer=None)
    run(sale_cli.finalize, account=erin, sale_address=env.sale.address, yes=True)
    assert env.sale.state() == SaleState.SUCCEEDED
    run(sale_cli.claim, account=erin, sale_address=env.sale.address, buyer=carol.address)
    assert "Delivered 34,500 NTK" in capsys.readouterr().out
    with pytest.raises(click.ClickException, match="no tokens to claim"):
        run(sale_cli.claim, account=carol, sale_address=env.sale.address, buyer=None)
    with pytest.raises(click.ClickException, match="already finalized"):
        run(sale_cli.finalize, account=erin, sale_address=env.sale.address, yes=True)


def test_refund__after_a_failed_sale__returns_the_eth(
    env: SaleEnv, carol: Any, erin: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env.warp(Stage.ICO_WEEK1)
    env.buy(carol, 3 * ETH)
    env.warp(Stage.ENDED)
    run(sale_cli.finalize, account=erin, sale_address=env.sale.address, yes=True)
    run(sale_cli.refund, account=erin, sale_address=env.sale.address, buyer=carol.address)
    assert f"Refunded 3 ETH to {carol.address}" in capsys.readouterr().out


def test_deploy__from_the_config__records_and_hands_over_minting(
    project: Any, owner: Any, allowlist_file: Path
) -> None:
    run(
        sale_cli.deploy,
        account=owner,
        config_path=ROOT / "config" / "sale.toml",
        allowlist_file=allowlist_file,
        owner=None,
        allow_past_start=False,
        replace=False,
        yes=True,
    )
    recorded = deployments.load(sale_cli.network_name())
    sale = project.TokenSale.at(recorded["TokenSale"]["address"])
    token = project.NeuroToken.at(recorded["NeuroToken"]["address"])
    assert sale.token() == token.address
    assert recorded["TeamVestingWallet"]["address"] == sale.teamVesting()
    assert sale.terms().allowlistRoot == Allowlist.read(allowlist_file).root
    assert sale.tokensLeft() == 60_000_000 * NTK
    assert token.hasRole(token.MINTER_ROLE(), sale)
    assert not token.hasRole(token.DEFAULT_ADMIN_ROLE(), owner)


def _ape_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APE_DISABLE_TELEMETRY": "1"}
    ape = str(Path(sys.executable).parent / "ape")
    return subprocess.run(
        [ape, "run", "sale", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_cli__allowlist_command__writes_the_tree_and_proofs(tmp_path: Path) -> None:
    csv = tmp_path / "presale.csv"
    addresses = [f"0x{0xBEEF00 + i:040x}" for i in range(5)]
    csv.write_text("address\n" + "\n".join(addresses) + "\n")
    done = _ape_run(
        "allowlist",
        str(csv),
        "--out",
        str(tmp_path / "a.json"),
        "--proofs",
        str(tmp_path / "p.json"),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    tree = Allowlist.read(tmp_path / "a.json")
    assert f"root 0x{tree.root.hex()}" in done.stdout
    proofs = json.loads((tmp_path / "p.json").read_text())
    assert proofs["root"] == "0x" + tree.root.hex()
    assert len(proofs["proofs"]) == 5


def test_cli__allowlist_command_with_a_bad_csv__prints_the_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    csv = tmp_path / "presale.csv"
    csv.write_text("0x1234\n")
    done = _ape_run("allowlist", str(csv), "--out", str(tmp_path / "a.json"), cwd=ROOT)
    assert done.returncode == 1
    assert "presale.csv:1: '0x1234' is not an address" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_cli__simulate__runs_both_endings_on_sepolias_chain_id_and_reconciles(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.md"
    done = _ape_run(
        "simulate",
        "--buyers",
        "6",
        "--report",
        str(report),
        "--network",
        "ethereum:local:foundry",
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert text.count("chain id 11155111") == 2
    assert "outcome: **succeeded**" in text
    assert "outcome: **failed**" in text
    assert text.count("MISMATCHED") == 0


def test_status__of_an_address_without_a_sale__says_to_check_it(env: SaleEnv, erin: Any) -> None:
    with pytest.raises(click.ClickException, match=f"no TokenSale at {erin.address}"):
        run(sale_cli.status, sale_address=erin.address, buyer=None)


def _deploy(owner: Any, config: Path, **flags: Any) -> None:
    options = {"allow_past_start": False, "replace": False, **flags}
    run(sale_cli.deploy, account=owner, config_path=config, allowlist_file=None, owner=None,
        yes=True, **options)  # fmt: skip


@pytest.mark.parametrize(
    ("replacements", "said"),
    [
        ({'soft_cap_eth = "5000"': 'soft_cap_eth = "60001"'}, "more than selling every token"),
        ({'min_contribution_eth = "0.1"': 'min_contribution_eth = "6000"'}, "is above the maximum"),
        ({"liquidity = 1000": "liquidity = 9000"}, "buyers must keep some"),
        ({"cliff_days = 365": "cliff_days = 2000"}, "cliff is longer than its whole vesting"),
    ],
)
def test_deploy__terms_the_contract_would_refuse__refused_before_anything_is_deployed(
    owner: Any, tmp_path: Path,
    replacements: dict[str, str], said: str,
) -> None:  # fmt: skip
    text = (ROOT / "config" / "sale.toml").read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "sale.toml"
    config.write_text(text)
    nonce = owner.nonce
    with pytest.raises(click.ClickException, match="nothing was deployed") as info:
        _deploy(owner, config)
    assert said in info.value.message and "0x" not in info.value.message
    assert owner.nonce == nonce  # not even the token
    assert deployments.load(sale_cli.network_name()) == {}


def test_deploy__start_in_the_past__needs_allow_past_start(owner: Any, tmp_path: Path) -> None:
    text = (ROOT / "config" / "sale.toml").read_text()
    text = text.replace("# start = 2026-03-01T12:00:00Z", "start = 2020-03-01T12:00:00Z")
    config = tmp_path / "sale.toml"
    config.write_text(text)
    nonce = owner.nonce
    with pytest.raises(click.ClickException, match=r"is already past.*--allow-past-start"):
        _deploy(owner, config)
    assert owner.nonce == nonce
    _deploy(owner, config, allow_past_start=True)
    assert "TokenSale" in deployments.load(sale_cli.network_name())


def test_deploy__over_a_recorded_sale__needs_replace(owner: Any) -> None:
    config = ROOT / "config" / "sale.toml"
    _deploy(owner, config)
    first = deployments.address_of(sale_cli.network_name(), "TokenSale")
    nonce = owner.nonce
    with pytest.raises(click.ClickException, match=rf"already recorded.*{first}.*--replace"):
        _deploy(owner, config)
    assert owner.nonce == nonce
    _deploy(owner, config, replace=True)
    assert deployments.address_of(sale_cli.network_name(), "TokenSale") != first


def test_deploy__empty_config__refused_not_silently_defaulted(owner: Any, tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("# nothing here\n")
    with pytest.raises(click.ClickException, match="is empty: every term would silently take"):
        _deploy(owner, config)
