"""`ape run market ...`: each subcommand's body on the test chain, and the messages a user
gets for mistakes. (ape's ConnectedProviderCommand would start an anvil of its own, so the
bodies are called directly, the `friendly` error wrapper included.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from neurotoken.chain import deployments
from neurotoken.chain.cli import ADDRESS
from neurotoken.chain.explain import explain_error
from neurotoken.errors import InputError
from neurotoken.market.ops import (
    MarketOperationError,
    parse_bytes32,
    parse_duration,
    preflight,
)
from neurotoken.units import NTK, parse_ntk
from tests.constants import PAID, POSTED, SHARDS
from tests.helpers import load_script, run
from tests.market.conftest import RESULT_ROOT, SPEC_HASH

ROOT = Path(__file__).resolve().parents[2]
market_cli = load_script("market")
pytestmark = pytest.mark.usefixtures("deployments_dir")


POST = {
    "spec_hash": "0x" + SPEC_HASH.hex(),
    "spec_uri": "ipfs://spec",
    "payment": "100",
    "collateral": "40",
    "chosen": None,
    "shards": SHARDS,
    "challenges": 8,
    "accept_within": "1h",
    "deliver_within": "1d",
    "verdict_within": "1d",
    "permit": False,
    "approve": False,
}


def post(market: Any, client: Any, **overrides: Any) -> None:
    run(market_cli.post, account=client, market_address=market.address, **{**POST, **overrides})


# ---------------------------------------------------------------- parsing and explanations


@pytest.mark.parametrize(
    ("text", "wei"), [("12.5", 12_500_000_000_000_000_000), ("0", 0), ("1e-18", 1)]
)
def test_parse_ntk__amounts(text, wei):
    assert parse_ntk(text) == wei


@pytest.mark.parametrize("text", ["-1", "abc", "1e-19", "nan", "inf", ""])
def test_parse_ntk__mistakes__raise_one_clear_error(text):
    with pytest.raises(InputError, match=r"not an NTK amount.*write it like 12\.5"):
        parse_ntk(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30m", 1800), ("6h", 21_600), ("7d", 604_800)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_parse_duration__mistake__says_how():
    with pytest.raises(MarketOperationError, match="like 90s, 30m, 6h or 7d"):
        parse_duration("soon")


def test_parse_bytes32__wrong_length__raises():
    with pytest.raises(MarketOperationError, match="32 bytes"):
        parse_bytes32("0x1234", "--root")


def test_explain__known_error__plain_words():
    text = explain_error(
        "MarketInsufficientStake", {"provider": "0xP", "available": 10**18, "required": 2 * 10**18}
    )
    assert (
        text == "0xP has 1 NTK of free stake, 2 NTK is needed "
        "(stake locked by accepted jobs is not free)"
    )


def test_preflight__refusal__explained_without_sending(market, provider, chain):
    before = chain.blocks.head.number
    with pytest.raises(MarketOperationError, match=r"^there is no job 9$"):
        preflight(market, "acceptJob", 9, sender=provider.address)
    assert chain.blocks.head.number == before


# ---------------------------------------------------------------- deploy


def test_deploy__records_the_market(project, token, owner, oracles, chain, deployments_dir):
    deployments.record("ethereum-local", "NeuroToken", token.address)
    run(
        market_cli.deploy,
        provider=chain.provider,
        account=owner,
        token_address=None,
        owner=None,
        oracles=tuple(o.address for o in oracles),
        threshold=2,
        fee_bps=250,
        unbonding_delay="7d",
        min_verdict_window="2h",
        yes=True,
    )
    recorded = json.loads((deployments_dir / "ethereum-local.json").read_text())["ComputeMarket"]
    deployed = project.ComputeMarket.at(recorded["address"])
    assert deployed.token() == token.address and deployed.threshold() == 2
    assert deployed.unbondingDelay() == 7 * 86_400
    assert deployed.minVerdictWindow() == 2 * 3600
    assert recorded["oracles"] == [o.address for o in oracles]
    # the block that created it, where an oracle starts reading events
    assert recorded["block"] == chain.blocks.head.number
    assert chain.provider.get_code(recorded["address"], block_id=recorded["block"])
    assert not chain.provider.get_code(recorded["address"], block_id=recorded["block"] - 1)


def test_deploy__threshold_above_oracles__explained(token, owner, oracles, chain):
    with pytest.raises(click.ClickException, match="more than half of the oracles"):
        run(
            market_cli.deploy,
            provider=chain.provider,
            account=owner,
            token_address=token.address,
            owner=None,
            oracles=(oracles[0].address,),
            threshold=2,
            fee_bps=250,
            unbonding_delay="7d",
            min_verdict_window="1h",
            yes=True,
        )


def test_commands__without_a_recorded_market__say_to_deploy(provider):
    with pytest.raises(click.ClickException, match="No ComputeMarket recorded"):
        run(market_cli.status, market_address=None, job_id=1)


# ---------------------------------------------------------------- providers


def test_provider_register__with_approve__stakes(market, token, provider, capsys):
    token.approve(market, 0, sender=provider)
    run(
        market_cli.provider_register,
        account=provider,
        market_address=market.address,
        stake="250",
        metadata="https://gpu.example/a.json",
        approve=True,
    )
    assert market.getProvider(provider).stakeNtk == 250 * 10**18
    run(market_cli.provider_info, market_address=market.address, address=provider.address)
    out = capsys.readouterr().out
    assert "free stake  250 NTK" in out and "https://gpu.example/a.json" in out


def test_provider_register__without_allowance__says_approve(market, token, provider):
    token.approve(market, 0, sender=provider)
    with pytest.raises(click.ClickException, match="pass --approve"):
        run(
            market_cli.provider_register,
            account=provider,
            market_address=market.address,
            stake="250",
            metadata="m",
            approve=False,
        )


def test_provider_register__twice__says_add_stake(m, market, provider):
    m.register()
    with pytest.raises(click.ClickException, match="already registered; use add-stake"):
        run(
            market_cli.provider_register,
            account=provider,
            market_address=market.address,
            stake="1",
            metadata="m",
            approve=False,
        )


def test_provider_unbond__locked_stake__explained(m, market, provider):
    m.accepted()
    with pytest.raises(click.ClickException, match="960 NTK of free stake, 1,000 NTK is needed"):
        run(
            market_cli.provider_unbond,
            account=provider,
            market_address=market.address,
            amount="1000",
        )


def test_provider_withdraw_stake__too_early__says_when(m, market, provider):
    m.register()
    run(market_cli.provider_unbond, account=provider, market_address=market.address, amount="10")
    with pytest.raises(click.ClickException, match="withdrawable from"):
        run(market_cli.provider_withdraw_stake, account=provider, market_address=market.address)


def test_provider_info__unregistered__explained(market, stranger):
    with pytest.raises(click.ClickException, match="is not a registered provider"):
        run(market_cli.provider_info, market_address=market.address, address=stranger.address)


# ---------------------------------------------------------------- jobs end to end


def test_post__plain_and_with_permit(market, token, client, capsys):
    post(market, client)
    token.approve(market, 0, sender=client)
    post(market, client, permit=True)
    assert [market.getJob(j).state for j in (1, 2)] == [POSTED, POSTED]
    assert token.allowance(client, market) == 0
    assert "posted job 2: 100 NTK escrowed" in capsys.readouterr().out


def test_post__without_allowance__suggests_permit_or_approve(market, token, client):
    token.approve(market, 0, sender=client)
    with pytest.raises(click.ClickException, match=r"--approve .* or --permit"):
        post(market, client)


def test_post__more_challenges_than_shards__explained(market, client):
    with pytest.raises(click.ClickException, match="--challenges must be between 1 and --shards"):
        post(market, client, challenges=SHARDS + 1)


def test_post__more_than_the_balance__explained(market, client):
    with pytest.raises(click.ClickException, match="less than the 1,000,000 NTK needed"):
        post(market, client, payment="1000000", collateral="min")


def test_post__collateral_below_the_deterrent_minimum__explained(market, client):
    with pytest.raises(
        click.ClickException,
        match=r"--collateral must be at least 12\.500000000000000001 NTK for 100 NTK over 16 "
        r"shards with 8 challenged",
    ):
        post(market, client, collateral="12.5")


def test_post__collateral_min__asks_for_the_contract_minimum(market, client):
    post(market, client, collateral="min")
    assert market.getJob(1).collateralNtk == market.minimumCollateral(100 * NTK, SHARDS, 8)


def test_post__verdict_window_below_the_market_minimum__explained(market, client):
    with pytest.raises(click.ClickException, match="--verdict-within must be at least 3600s"):
        post(market, client, verdict_within="59m")


def test_job_flow__accept_submit_sign_settle_status(
    m, market, client, provider, oracles, stranger, tmp_path, capsys
):
    m.register()
    post(market, client)
    run(market_cli.accept, account=provider, market_address=market.address, job_id=1)
    with pytest.raises(click.ClickException, match="has 16 shards, not 15"):
        run(
            market_cli.submit,
            account=provider,
            market_address=market.address,
            job_id=1,
            root="0x" + RESULT_ROOT.hex(),
            shards=15,
            bundle_uri="u",
        )
    run(
        market_cli.submit,
        account=provider,
        market_address=market.address,
        job_id=1,
        root="0x" + RESULT_ROOT.hex(),
        shards=SHARDS,
        bundle_uri="https://bundles.example/1",
    )
    m.chain.mine(2)
    files = []
    for i, oracle in enumerate(oracles[:2]):
        out = tmp_path / f"verdict-{i}.json"
        run(
            market_cli.sign,
            account=oracle,
            market_address=market.address,
            job_id=1,
            accepted=True,
            out=out,
        )
        files.append(out)
    with pytest.raises(click.ClickException, match="no quorum: 1 valid oracle signature"):
        run(market_cli.settle, account=stranger, market_address=market.address, files=(files[0],))
    run(market_cli.settle, account=stranger, market_address=market.address, files=(tmp_path,))
    assert market.getJob(1).state == PAID
    run(market_cli.status, market_address=market.address, job_id=1)
    out = capsys.readouterr().out
    assert "settled with 2 oracle signatures: 1 paid" in out
    assert "job 1: Paid" in out and "challenge   seed 0x" in out
    # deadlines as dates a person reads, not unix timestamps
    assert re.search(r"accept by   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", out), out
    assert re.search(r"verdict by  \d{4}-\d\d-\d\d .* UTC \(now \d{4}-", out), out


def test_settle__non_oracle_signatures__dropped_and_named(
    m, market, oracles, outsider_key, stranger, tmp_path
):
    job_id = m.submitted()
    for i, signer in enumerate((oracles[0], outsider_key)):
        run(
            market_cli.sign,
            account=signer,
            market_address=market.address,
            job_id=job_id,
            accepted=True,
            out=tmp_path / f"{i}.json",
        )
    with pytest.raises(click.ClickException, match=f"not oracles: {outsider_key.address}"):
        run(market_cli.settle, account=stranger, market_address=market.address, files=(tmp_path,))


def test_settle__verdict_over_another_root__refused(m, market, oracles, stranger, tmp_path):
    job_id = m.submitted()
    path = tmp_path / "v.json"
    run(
        market_cli.sign,
        account=oracles[0],
        market_address=market.address,
        job_id=job_id,
        accepted=True,
        out=path,
    )
    data = json.loads(path.read_text())
    data["verdicts"][0]["resultRoot"] = "0x" + "01" * 32
    path.write_text(json.dumps(data))
    with pytest.raises(click.ClickException, match="but the job committed"):
        run(market_cli.settle, account=stranger, market_address=market.address, files=(path,))


def test_sign__job_not_submitted__refused(m, market, oracles, tmp_path):
    job_id = m.accepted()
    with pytest.raises(click.ClickException, match="only a submitted job gets a verdict"):
        run(
            market_cli.sign,
            account=oracles[0],
            market_address=market.address,
            job_id=job_id,
            accepted=True,
            out=tmp_path / "v.json",
        )


def test_cancel__by_someone_else__refused(m, market, stranger):
    job_id = m.post()
    with pytest.raises(click.ClickException, match="only the client"):
        run(
            market_cli.cancel,
            account=stranger,
            market_address=market.address,
            job_id=job_id,
            yes=True,
        )


def test_expire__too_early__says_when_then_works(m, market, chain, stranger, capsys):
    job_id = m.post()
    with pytest.raises(
        click.ClickException,
        match=r"can be expired after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(1h 0m from now\)",
    ):
        run(market_cli.expire, account=stranger, market_address=market.address, job_id=job_id)
    chain.mine(deltatime=3_700)
    run(market_cli.expire, account=stranger, market_address=market.address, job_id=job_id)
    assert "now Expired" in capsys.readouterr().out


def test_accept__reserved_for_another__explained_by_preflight(m, market, provider, provider2):
    m.register(provider2)
    job_id = m.post(provider=provider.address)
    with pytest.raises(click.ClickException, match=f"reserved for {provider.address}"):
        run(market_cli.accept, account=provider2, market_address=market.address, job_id=job_id)


def test_status__unknown_job__explained(market):
    with pytest.raises(click.ClickException, match="no job has been posted"):
        run(market_cli.status, market_address=market.address, job_id=1)


def test_commands__without_account__say_how(market):
    with pytest.raises(click.ClickException, match="--account"):
        run(market_cli.accept, account=None, market_address=market.address, job_id=1)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("0xnope", "'0xnope' is not an address: 0x and 40 hex digits"),
        ("0x1234", "'0x1234' is not an address"),
        ("0x5FbDB2315678afecb367f032d93F642f64180aA3", "wrong EIP-55 checksum"),
    ],
)
def test_address_options__bad_or_mistyped__one_line_exit_2(given: str, said: str) -> None:
    """--market, --oracle, --token, --owner, --provider, --sale and --buyer take ADDRESS."""

    @click.command()
    @click.option("--market", type=ADDRESS)
    def command(market: str) -> None:
        click.echo(market)

    result = CliRunner().invoke(command, ["--market", given])
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
    ok = CliRunner().invoke(command, ["--market", "0x5fbdb2315678afecb367f032d93f642f64180aa3"])
    assert ok.output.strip() == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
