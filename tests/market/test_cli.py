"""`ape run market ...`: each subcommand's body on the test chain, and the messages a user
gets for mistakes. (ape's ConnectedProviderCommand would start an anvil of its own, so the
bodies are called directly, the `friendly` error wrapper included.)"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import ape
import click
import pytest
from click.testing import CliRunner

from neurotoken.chain import deployments
from neurotoken.chain.cli import ADDRESS
from neurotoken.chain.explain import explain_error
from neurotoken.errors import InputError
from neurotoken.market.acceptance import quoted_job, sign_acceptance
from neurotoken.market.ops import (
    MarketOperationError,
    QuoteRequest,
    parse_bytes32,
    parse_duration,
    preflight,
)
from neurotoken.market.records import JobReader
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_batch
from neurotoken.units import NTK, format_duration, parse_ntk
from tests.constants import (
    ACCEPTED,
    CANCELLED,
    COLLATERAL,
    PAID,
    PAYMENT,
    POSTED,
    REJECTED,
    SHARDS,
    STAKE,
    SUBMITTED,
)
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
    "request_out": None,
    "request_file": None,
    "acceptance": None,
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


def test_preflight__refusal__explained_without_sending(m, market, provider, chain):
    record = m.rec(m.post())  # a real record, sent for a job id never posted
    before = chain.blocks.head.number
    with pytest.raises(
        MarketOperationError,
        match=r"^job 9 is not open on this market: it was never posted, or it has ended "
        r"\(an ended job keeps only its events; `ape run market status 9` shows how it ended\)$",
    ):
        preflight(market, "acceptJob", 9, record, sender=provider.address)
    assert chain.blocks.head.number == before


RUN_AGAIN = (
    r"the record of job \d+ sent with the call is not its current one: the job changed since "
    r"it was read \(another transaction about it came first\), or the record was altered; run "
    r"the command again, it reads the job afresh from its events"
)


def test_preflight__stale_forged_or_borrowed_record__mismatch_explained(
    m, market, client, stranger, provider
):
    """Every record but the current one is refused, and the sentence says what to do."""
    job_id = m.post()
    other = m.post(paymentNtk=PAYMENT + 1)  # a genuine record, of another job
    posted = m.job(job_id)
    m.register()
    market.acceptJob(job_id, posted.record(), sender=provider)
    attempts = [
        ("cancelJob", posted.record(), client),  # stale: the Posted record after acceptance
        ("expireJob", m.rec(other), stranger),  # another job's current record
        # forged: the stranger names itself the client, to be refunded the escrow
        ("cancelJob", replace(m.job(job_id), client=stranger.address).record(), stranger),
        # forged: more collateral than was locked, to slash more of it
        ("expireJob", replace(m.job(job_id), collateral_ntk=STAKE).record(), stranger),
    ]
    for method, record, sender in attempts:
        with pytest.raises(MarketOperationError, match=f"^{RUN_AGAIN}$"):
            preflight(market, method, job_id, record, sender=sender.address)
        with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
            getattr(market, method)(job_id, record, sender=sender)
    assert m.job(job_id).state == ACCEPTED  # untouched


def test_preflight__ended_job__not_open_explained(m, market, client):
    job_id = m.post()
    last = m.rec(job_id)
    market.cancelJob(job_id, last, sender=client)
    with pytest.raises(MarketOperationError, match=f"^job {job_id} is not open on this market"):
        preflight(market, "cancelJob", job_id, last, sender=client.address)


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
        randao_delay=32,
        yes=True,
    )
    every = json.loads((deployments_dir / "ethereum-local.json").read_text())
    recorded = every["ComputeMarket"]
    deployed = project.ComputeMarket.at(recorded["address"])
    assert deployed.token() == token.address and deployed.threshold() == 2
    assert deployed.unbondingDelay() == 7 * 86_400
    assert deployed.minVerdictWindow() == 2 * 3600
    assert deployed.randaoDelay() == recorded["randao_delay"] == 32
    recorder = every["RandaoRecorder"]["address"]
    assert deployed.randaoRecorder() == recorder == recorded["randao_recorder"]
    assert chain.provider.get_code(recorder)
    assert recorded["oracles"] == [o.address for o in oracles]
    # the block that created it, where an oracle starts reading events
    assert recorded["block"] == chain.blocks.head.number
    assert chain.provider.get_code(recorded["address"], block_id=recorded["block"])
    assert not chain.provider.get_code(recorded["address"], block_id=recorded["block"] - 1)


@pytest.mark.parametrize(
    ("oracle_count", "randao_delay", "window", "message"),
    [
        (1, 0, "1h", "more than half of the oracles"),  # a threshold of 2 with 1 oracle
        (3, 65, "1h", "the RANDAO delay is 0 .block-hash seeds. to 64 blocks, got 65"),
        (3, 32, "5m", "a RANDAO delay of 32 blocks needs a minimum verdict window of at least 444"),
    ],
)
def test_deploy__settings_the_contract_refuses__explained(
    token, owner, oracles, chain, oracle_count, randao_delay, window, message
):
    with pytest.raises(click.ClickException, match=message):
        run(
            market_cli.deploy,
            provider=chain.provider,
            account=owner,
            token_address=token.address,
            owner=None,
            oracles=tuple(o.address for o in oracles[:oracle_count]),
            threshold=2,
            fee_bps=250,
            unbonding_delay="7d",
            min_verdict_window=window,
            randao_delay=randao_delay,
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


def test_post__plain_and_with_permit(m, market, token, client, capsys):
    post(market, client)
    token.approve(market, 0, sender=client)
    post(market, client, permit=True)
    assert [m.job(j).state for j in (1, 2)] == [POSTED, POSTED]
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


def test_post__collateral_min__asks_for_the_contract_minimum(m, market, client):
    post(market, client, collateral="min")
    assert m.job(1).collateral_ntk == market.minimumCollateral(100 * NTK, SHARDS, 8)


def test_post__verdict_window_below_the_market_minimum__explained(market, client):
    with pytest.raises(click.ClickException, match="--verdict-within must be at least 3600s"):
        post(market, client, verdict_within="59m")


# ---------------------------------------------------------------- quoted jobs

REQUEST_FLAGS = ("spec_hash", "spec_uri", "payment", "collateral", "shards", "challenges")
QUOTE = {**POST, **dict.fromkeys(REQUEST_FLAGS, None)}
QUOTE.update(dict.fromkeys(("accept_within", "deliver_within", "verdict_within"), None))
"""`post`'s parameters when the request comes from a file (`--request`): no request flags."""


def write_request(
    market: Any, client: Any, provider: Any, path: Path, **overrides: Any
) -> dict[str, Any]:
    """`post --provider P --request-out path` by `client`; the file's contents."""
    post(market, client, chosen=provider.address, request_out=path, **overrides)
    return dict(json.loads(path.read_text()))


def sign_quote(market: Any, path: Path, signer: Any) -> str:
    """What a provider does with the request file: sign its acceptance of the record the job
    will get, under the market's current fee, oracle epoch and threshold."""
    quote = QuoteRequest.read(path)
    assert quote.client is not None and quote.chain_id is not None and quote.market is not None
    job = quoted_job(
        quote.request,
        quote.client,
        fee_bps=int(market.feeBps()),
        oracle_epoch=int(market.oracleEpoch()),
        threshold=int(market.threshold()),
    )
    domain = MarketDomain(quote.chain_id, quote.market)
    return "0x" + sign_acceptance(signer.private_key, domain, job).hex()


def post_quoted(market: Any, client: Any, path: Path, acceptance: str | None, **flags: Any) -> None:
    run(
        market_cli.post,
        account=client,
        market_address=market.address,
        **{**QUOTE, "request_file": path, "acceptance": acceptance, **flags},
    )


def test_post__request_out__writes_the_whole_request_and_sends_nothing(
    m, market, chain, client, provider, tmp_path, capsys
):
    path = tmp_path / "request.json"
    start = chain.pending_timestamp
    before = chain.blocks.head.number
    written = write_request(market, client, provider, path, collateral="min")
    assert chain.blocks.head.number == before and market.nextJobId() == 1
    accept_by = written["acceptBy"]
    assert start <= accept_by - 3600 <= start + 5  # absolute, from the time it was written
    assert written == {
        "specHash": "0x" + SPEC_HASH.hex(),
        "specURI": "ipfs://spec",
        "paymentNtk": PAYMENT,
        "provider": provider.address,
        "collateralNtk": int(market.minimumCollateral(PAYMENT, SHARDS, 8)),
        "shardCount": SHARDS,
        "challengeCount": 8,
        "acceptBy": accept_by,
        "deliverBy": accept_by + 86_400,
        "verdictBy": accept_by + 2 * 86_400,
        "client": client.address,
        "chainId": chain.chain_id,
        "market": market.address,
    }
    out = capsys.readouterr().out
    assert f"wrote the request to {path} for {provider.address} to quote (nothing sent)" in out
    assert (
        f"post it with --request {path} --acceptance QUOTE (the provider's signature, 0x..., or "
        "its quote file)" in out
    )


def test_post__request_out_without_a_provider_or_with_sending_flags__refused(
    market, client, provider, tmp_path
):
    path = tmp_path / "request.json"
    with pytest.raises(
        click.ClickException, match="a quote is one provider's: name it with --provider"
    ):
        post(market, client, request_out=path)
    with pytest.raises(
        click.ClickException,
        match=r"^--request-out only writes the request; give --permit when posting it",
    ):
        post(market, client, chosen=provider.address, request_out=path, permit=True)
    assert not path.exists()


@pytest.mark.parametrize("permit", [True, False], ids=["permit", "allowance"])
def test_post__quoted__lands_accepted_in_one_transaction_and_status_shows_it(
    m, market, token, chain, client, provider, tmp_path, capsys, permit
):
    m.register()
    path = tmp_path / "request.json"
    written = write_request(market, client, provider, path)
    acceptance = sign_quote(market, path, provider)  # the provider, off chain
    token.approve(market, 0 if permit else PAYMENT, sender=client)  # the permit, or this, pays
    client_before, block = int(token.balanceOf(client)), chain.blocks.head.number
    post_quoted(market, client, path, acceptance, permit=permit)
    assert chain.blocks.head.number == block + 1  # post and accept: one transaction
    job = m.job(1)
    assert job.state == ACCEPTED and job.provider == provider.address
    assert (job.accept_by, job.deliver_by) == (written["acceptBy"], written["deliverBy"])
    assert market.getProvider(provider).stakeNtk == STAKE - COLLATERAL  # locked at post
    assert int(token.balanceOf(client)) == client_before - PAYMENT
    assert token.allowance(client, market) == 0
    (posted,) = market.JobPosted.range(block + 1, block + 2)
    (accepted,) = market.JobAccepted.range(block + 1, block + 2)
    assert posted.transaction_hash == accepted.transaction_hash
    run(market_cli.status, market_address=market.address, job_id=1)
    out = capsys.readouterr().out
    assert f"posted job 1, already accepted by {provider.address}: 100 NTK escrowed, 40 NTK" in out
    assert "job 1: Accepted" in out and f"provider    {provider.address}" in out
    assert "next: the provider must submit a result by" in out
    # then like any accepted job
    run(
        market_cli.submit,
        account=provider,
        market_address=market.address,
        job_id=1,
        root="0x" + RESULT_ROOT.hex(),
        shards=SHARDS,
        bundle_uri="https://bundles.example/1",
    )
    assert m.job(1).state == SUBMITTED


def test_post__acceptance_from_the_providers_quote_file__lands(
    m, market, client, provider, tmp_path
):
    """`--acceptance quote.json`: the file `agent quote --out` writes, its "acceptance" read."""
    m.register()
    path, quote = tmp_path / "request.json", tmp_path / "quote.json"
    write_request(market, client, provider, path)
    quote.write_text(json.dumps({"provider": provider.address}))
    with pytest.raises(click.ClickException, match=rf'^{quote} holds no "acceptance" \(0x hex\)$'):
        post_quoted(market, client, path, str(quote))
    quote.write_text(json.dumps({"acceptance": sign_quote(market, path, provider)}))
    post_quoted(market, client, path, str(quote))
    assert m.job(1).state == ACCEPTED


def test_post__quoted_acceptance_by_another_key__refused_before_sending(
    m, market, chain, client, provider, provider2, tmp_path
):
    """Another provider (or anyone) cannot commit the named provider's stake."""
    m.register()
    m.register(provider2)
    path = tmp_path / "request.json"
    write_request(market, client, provider, path)
    forged = sign_quote(market, path, provider2)
    before = chain.blocks.head.number
    with pytest.raises(
        click.ClickException,
        match=rf"^the acceptance was signed by {provider2.address}, not by {provider.address}, "
        r"the provider the request names: only the provider's own signature commits its "
        rf"stake; ask {provider.address} for its quote$",
    ):
        post_quoted(market, client, path, forged)
    assert chain.blocks.head.number == before
    request = QuoteRequest.read(path).request
    with ape.reverts(market.MarketAcceptanceNotByProvider, provider=provider, signer=provider2):
        market.postAcceptedJob(request, forged, 0, 0, bytes(32), bytes(32), sender=client)


DIFFERS = (
    r"^the acceptance is not {provider}'s signature of this request: the request \(its "
    r"amounts, spec, shards or deadlines\), the client or the market differ from what was "
    r"signed; "
)


@pytest.mark.parametrize(
    ("field", "value"),
    [("paymentNtk", PAYMENT + 1), ("collateralNtk", 2 * COLLATERAL), ("deliverBy", 60)],
    ids=["payment", "collateral", "deadline"],
)
def test_post__quoted_request_changed_after_signing__refused(
    m, market, chain, client, provider, tmp_path, field, value
):
    m.register()
    path = tmp_path / "request.json"
    written = write_request(market, client, provider, path)
    acceptance = sign_quote(market, path, provider)
    written[field] = written[field] + value if field == "deliverBy" else value
    path.write_text(json.dumps(written))
    before = chain.blocks.head.number
    with pytest.raises(
        click.ClickException,
        match=DIFFERS.format(provider=provider.address)
        + rf"post exactly the request it quoted, from the account it names \({client.address} "
        r"here\)$",
    ):
        post_quoted(market, client, path, acceptance)
    assert chain.blocks.head.number == before
    with ape.reverts(market.MarketAcceptanceNotByProvider):  # as the chain would
        market.postAcceptedJob(
            QuoteRequest.read(path).request, acceptance, 0, 0, bytes(32), bytes(32), sender=client
        )


def test_post__quoted_from_flags__new_deadlines__says_post_the_file(
    m, market, chain, client, provider, tmp_path
):
    """The same flags a second later give new absolute deadlines: not what was signed."""
    m.register()
    path = tmp_path / "request.json"
    write_request(market, client, provider, path)
    acceptance = sign_quote(market, path, provider)
    chain.mine(deltatime=5)
    with pytest.raises(
        click.ClickException,
        match=DIFFERS.format(provider=provider.address)
        + r"a request rebuilt from flags gets new deadlines and never matches a quote: post the "
        r"quoted file with --request FILE$",
    ):
        post(market, client, chosen=provider.address, acceptance=acceptance)
    with pytest.raises(
        click.ClickException, match=r"^a quoted job names its provider: pass --provider"
    ):
        post(market, client, acceptance=acceptance)
    assert market.nextJobId() == 1


@pytest.mark.parametrize(
    ("change", "argument", "now"),
    [
        ("setFeeBps", 300, "fee 300 bps, oracle epoch 1, threshold 2"),
        ("removeOracle", 2, "fee 250 bps, oracle epoch 2, threshold 2"),
        ("setThreshold", 3, "fee 250 bps, oracle epoch 1, threshold 3"),
    ],
    ids=["fee", "oracle-epoch", "threshold"],
)
def test_post__quoted_then_governance_changed__ask_for_a_new_quote(
    m, market, chain, owner, oracles, client, provider, tmp_path, change, argument, now
):
    m.register()
    path = tmp_path / "request.json"
    write_request(market, client, provider, path)
    acceptance = sign_quote(market, path, provider)
    getattr(market, change)(
        oracles[argument] if change == "removeOracle" else argument, sender=owner
    )
    before = chain.blocks.head.number
    with pytest.raises(
        click.ClickException,
        match=rf"^the market's terms changed since {provider.address} quoted: it signed for "
        rf"fee 250 bps, oracle epoch 1, threshold 2, the market now has {now} \(governance "
        r"changed them\); ask the provider "
        r"for a new quote$",
    ):
        post_quoted(market, client, path, acceptance)
    assert chain.blocks.head.number == before
    # a new quote under the new terms lands
    post_quoted(market, client, path, sign_quote(market, path, provider))
    assert m.job(1).state == ACCEPTED


def test_post__quote_past_its_accept_by__expired(m, market, chain, client, provider, tmp_path):
    m.register()
    path = tmp_path / "request.json"
    write_request(market, client, provider, path, accept_within="10m")
    acceptance = sign_quote(market, path, provider)
    chain.mine(deltatime=601)
    with pytest.raises(
        click.ClickException,
        match=r"^the quote has expired: its accept-by \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC has "
        r"passed \(now .* UTC\); ask the provider for a new quote on a new request "
        r"\(--request-out\)$",
    ):
        post_quoted(market, client, path, acceptance)
    assert market.nextJobId() == 1


def test_post__quoted_request_from_another_account_or_with_flags__refused(
    m, market, client, client2, provider, tmp_path
):
    m.register()
    path = tmp_path / "request.json"
    write_request(market, client, provider, path)
    acceptance = sign_quote(market, path, provider)
    with pytest.raises(
        click.ClickException,
        match=rf"^{path} was written for client {client.address} \(the provider's acceptance "
        rf"binds it\), not {client2.address}: post it with that account$",
    ):
        post_quoted(market, client2, path, acceptance)
    with pytest.raises(
        click.ClickException, match=rf"^--request {path} holds the whole request: drop --payment$"
    ):
        post_quoted(market, client, path, acceptance, payment="100")
    for bad, said in (("0x1234", "got 2 bytes"), ("nope", "in hex")):
        with pytest.raises(click.ClickException, match=f"^--acceptance must be .*{said}"):
            post_quoted(market, client, path, bad)
    written = json.loads(path.read_text())
    del written["verdictBy"]
    path.write_text(json.dumps(written))
    with pytest.raises(
        click.ClickException, match=f"^{path} is not a whole job request: no verdictBy$"
    ):
        post_quoted(market, client, path, acceptance)
    assert market.nextJobId() == 1


def test_post__request_file_without_acceptance__posts_it_reserved(
    m, market, client, provider, tmp_path
):
    path = tmp_path / "request.json"
    written = write_request(market, client, provider, path)
    post_quoted(market, client, path, None)
    job = m.job(1)
    assert job.state == POSTED and job.provider == provider.address
    assert job.accept_by == written["acceptBy"]


def test_explain__acceptance_not_by_provider__says_what_to_do():
    text = explain_error(
        "MarketAcceptanceNotByProvider", {"provider": "0x" + "12" * 20, "signer": "0x" + "ab" * 20}
    )
    assert text is not None
    assert "(it recovers to 0x" in text and "ask the provider for a new quote" in text
    none = explain_error(
        "MarketAcceptanceNotByProvider", {"provider": "0x" + "12" * 20, "signer": "0x" + "00" * 20}
    )
    assert none is not None and "needs the provider's acceptance" in none


def test_preflight__quote_under_old_terms__explained(m, market, owner, client, provider, tmp_path):
    """Governance changes between the off-chain check and the send: the dry run says why."""
    m.register()
    path = tmp_path / "request.json"
    write_request(market, client, provider, path)
    acceptance = bytes.fromhex(sign_quote(market, path, provider)[2:])
    market.setFeeBps(300, sender=owner)
    with pytest.raises(
        MarketOperationError,
        match=rf"^the acceptance is not a signature by {provider.address}, the provider the job "
        r"names \(it recovers to 0x[0-9a-fA-F]{40}\): it was signed by another key",
    ):
        preflight(
            market,
            "postAcceptedJob",
            QuoteRequest.read(path).request,
            acceptance,
            0,
            0,
            bytes(32),
            bytes(32),
            sender=client.address,
        )


def test_job_flow__accept_submit_sign_settle_status(
    m, market, chain, client, provider, oracles, stranger, tmp_path, capsys
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
    # the job has ended: the market keeps only its events, which say how
    assert market.jobDigest(1) == bytes(32)
    assert [log.event_name for log in market.JobPaid.range(0, chain.blocks.head.number + 1)] == [
        "JobPaid"
    ]
    assert m.job(1).state == PAID
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
    # "from now" is from the head block's time, the posting block: an hour less the seconds
    # between building the request and mining it (on a loaded machine, 1h 0m or 59m)
    left = format_duration(m.job(job_id).accept_by - chain.blocks.head.timestamp)
    with pytest.raises(
        click.ClickException,
        match=rf"can be expired after \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC \({left} from now\)",
    ):
        run(market_cli.expire, account=stranger, market_address=market.address, job_id=job_id)
    chain.mine(deltatime=3_700)
    run(market_cli.expire, account=stranger, market_address=market.address, job_id=job_id)
    assert "now Expired" in capsys.readouterr().out


def test_cancel__then_status__the_ended_job_from_its_events(m, market, client, provider, capsys):
    job_id = m.post()
    run(market_cli.cancel, account=client, market_address=market.address, job_id=job_id, yes=True)
    assert market.jobDigest(job_id) == bytes(32)  # the market keeps nothing of it
    run(market_cli.status, market_address=market.address, job_id=job_id)
    out = capsys.readouterr().out
    assert f"cancelled job {job_id}" in out
    assert f"job {job_id}: Cancelled" in out and f"client      {client.address}" in out
    assert "payment     100 NTK" in out and "next: ended: nothing more can happen to it" in out
    assert m.job(job_id).state == CANCELLED
    m.register()
    for command, account in ((market_cli.accept, provider), (market_cli.fix_seed, provider)):
        with pytest.raises(
            click.ClickException,
            match=rf"^job {job_id} has ended \(Cancelled\): nothing more can happen to it "
            rf"\(`ape run market status {job_id}` shows it\)$",
        ):
            run(command, account=account, market_address=market.address, job_id=job_id)
    with pytest.raises(click.ClickException, match=f"job {job_id} is Cancelled: nothing to expire"):
        run(market_cli.expire, account=provider, market_address=market.address, job_id=job_id)


def test_cancel__job_accepted_after_it_was_read__run_again_then_the_reason(
    m, market, client, provider, monkeypatch
):
    """The record goes stale between the read and the send: the refusal says to run the
    command again; run again, it reads the current record and gets the real reason."""
    m.register()
    job_id = m.post()
    read = market_cli.view_of

    def read_then_accepted(contract: Any, jid: int) -> Any:
        view = read(contract, jid)
        market.acceptJob(jid, view.record(), sender=provider)  # lands in between
        return view

    monkeypatch.setattr(market_cli, "view_of", read_then_accepted)
    with pytest.raises(click.ClickException, match=f"^{RUN_AGAIN}$"):
        run(
            market_cli.cancel,
            account=client,
            market_address=market.address,
            job_id=job_id,
            yes=True,
        )
    monkeypatch.setattr(market_cli, "view_of", read)
    with pytest.raises(click.ClickException, match=f"^job {job_id} is Accepted, which does not"):
        run(
            market_cli.cancel,
            account=client,
            market_address=market.address,
            job_id=job_id,
            yes=True,
        )
    assert m.job(job_id).state == ACCEPTED


def test_accept__job_cancelled_after_it_was_read__not_open_then_ended(
    m, market, client, provider, monkeypatch
):
    m.register()
    job_id = m.post()
    read = market_cli.view_of

    def read_then_cancelled(contract: Any, jid: int) -> Any:
        view = read(contract, jid)
        market.cancelJob(jid, view.record(), sender=client)
        return view

    monkeypatch.setattr(market_cli, "view_of", read_then_cancelled)
    with pytest.raises(click.ClickException, match=f"^job {job_id} is not open on this market"):
        run(market_cli.accept, account=provider, market_address=market.address, job_id=job_id)
    monkeypatch.setattr(market_cli, "view_of", read)
    with pytest.raises(click.ClickException, match=rf"^job {job_id} has ended \(Cancelled\)"):
        run(market_cli.accept, account=provider, market_address=market.address, job_id=job_id)


def test_fix_seed__stores_the_seed__twice_explained(m, market, chain, stranger, capsys):
    job_id = m.submitted()
    seed_block = m.job(job_id).seed_block
    run(market_cli.fix_seed, account=stranger, market_address=market.address, job_id=job_id)
    assert f"seed of job {job_id} fixed: the hash of block {seed_block}" in capsys.readouterr().out
    (fixed,) = market.ChallengeSeedFixed.range(0, chain.blocks.head.number + 1)
    assert fixed.jobId == job_id and fixed.seedBlock == seed_block
    assert bytes(fixed.seed) == m.seed(job_id) == bytes(chain.provider.get_block(seed_block).hash)
    with pytest.raises(
        click.ClickException,
        match=rf"^job {job_id}'s challenge seed is already fixed \(0x{m.seed(job_id).hex()}\)",
    ):
        run(market_cli.fix_seed, account=stranger, market_address=market.address, job_id=job_id)


def test_sign_and_settle__oracle_retired_after_posting__still_counts_for_the_job(
    m, market, owner, oracles, stranger, tmp_path, capsys
):
    """A job keeps the oracle epoch it was posted in: an oracle retired since still signs it,
    one added since does not (its signature is named and dropped)."""
    job_id = m.submitted()
    market.removeOracle(oracles[0], sender=owner)
    market.addOracle(stranger, sender=owner)
    assert not market.isOracle(oracles[0]) and market.isOracle(stranger)
    for i, signer in enumerate((oracles[0], oracles[1], stranger)):
        run(
            market_cli.sign,
            account=signer,
            market_address=market.address,
            job_id=job_id,
            accepted=True,
            out=tmp_path / f"{i}.json",
        )
    err = capsys.readouterr().err
    assert f"warning: {stranger.address} is not an oracle of job {job_id}" in err
    assert oracles[0].address not in err and oracles[1].address not in err
    run(market_cli.settle, account=stranger, market_address=market.address, files=(tmp_path,))
    assert "settled with 2 oracle signatures: 1 paid" in capsys.readouterr().out
    assert m.job(job_id).state == PAID


def test_settle__batch_file__each_job_with_its_record(m, market, oracles, stranger, tmp_path):
    first, second = m.submitted(), m.submitted()
    verdicts = [
        Verdict(j, m.job(j).result_root, m.seed(j), accepted)
        for j, accepted in ((first, True), (second, False))
    ]
    for i, oracle in enumerate(oracles[:2]):
        signed = sign_batch(oracle.private_key, m.domain, verdicts)
        (tmp_path / f"{i}.json").write_text(signed.to_json())
    twice = tmp_path / "twice" / "batch.json"
    twice.parent.mkdir()
    twice.write_text(sign_batch(oracles[0].private_key, m.domain, verdicts * 2).to_json())
    with pytest.raises(click.ClickException, match=f"job {first} is in the batch twice"):
        run(market_cli.settle, account=stranger, market_address=market.address, files=(twice,))
    run(market_cli.settle, account=stranger, market_address=market.address, files=(tmp_path,))
    assert [m.job(j).state for j in (first, second)] == [PAID, REJECTED]
    assert [market.jobDigest(j) for j in (first, second)] == [bytes(32)] * 2


def test_settle__batch_of_jobs_from_two_oracle_epochs__refused(
    m, market, owner, oracles, stranger, tmp_path
):
    first = m.submitted()
    market.removeOracle(oracles[2], sender=owner)  # a new oracle epoch for the next job
    second = m.submitted()
    verdicts = [Verdict(j, m.job(j).result_root, m.seed(j), True) for j in (first, second)]
    path = tmp_path / "batch.json"
    path.write_text(sign_batch(oracles[0].private_key, m.domain, verdicts).to_json())
    with pytest.raises(
        click.ClickException,
        match=rf"job {second} is of oracle epoch \d+, job {first} of \d+: a batch settles jobs "
        "of one oracle epoch",
    ):
        run(market_cli.settle, account=stranger, market_address=market.address, files=(path,))
    assert m.job(first).state == m.job(second).state == SUBMITTED


def test_status_and_cancel__node_hides_an_event__refused_before_sending(
    m, market, chain, client, monkeypatch
):
    """A node whose logs lag its state (or hide an event) cannot make a command send a wrong
    record: the record rebuilt from the logs does not hash to the stored digest."""
    job_id = m.accepted()
    real = JobReader.events

    def without_acceptance(self: JobReader, jid: int, block: Any = "latest") -> Any:
        return [(name, args) for name, args in real(self, jid, block) if name != "JobAccepted"]

    monkeypatch.setattr(JobReader, "events", without_acceptance)
    before = chain.blocks.head.number
    for command, params in (
        (market_cli.status, {}),
        (market_cli.cancel, {"account": client, "yes": True}),
    ):
        with pytest.raises(click.ClickException, match="does not hash to the stored digest"):
            run(command, market_address=market.address, job_id=job_id, **params)
    assert chain.blocks.head.number == before
    monkeypatch.setattr(JobReader, "events", real)
    assert m.job(job_id).state == ACCEPTED


def test_accept__reserved_for_another__explained_by_preflight(m, market, provider, provider2):
    m.register(provider2)
    job_id = m.post(provider=provider.address)
    with pytest.raises(click.ClickException, match=f"reserved for {provider.address}"):
        run(market_cli.accept, account=provider2, market_address=market.address, job_id=job_id)


def test_status__unknown_job__explained(m, market):
    with pytest.raises(click.ClickException, match="no job has been posted"):
        run(market_cli.status, market_address=market.address, job_id=1)
    m.post()
    for job_id in (0, 2):
        with pytest.raises(
            click.ClickException, match=f"^there is no job {job_id}; job ids run from 1 to 1$"
        ):
            run(market_cli.status, market_address=market.address, job_id=job_id)


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
