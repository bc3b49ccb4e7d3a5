"""Quoted jobs, the provider's side: `agent quote` checks a client's job request as the agent
checks a posted job and signs its acceptance; the client posts it with `postAcceptedJob`, and
`agent run` computes, submits and gets paid for the job it never sent acceptJob for - after a
restart too, and even when it would not take the job any more (its collateral is locked)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from eth_utils.address import to_checksum_address

from neurotoken.jobs import keccak256
from neurotoken.market.acceptance import acceptance_signer
from neurotoken.market.ops import QuoteRequest, parse_acceptance
from neurotoken.market.states import JobState
from neurotoken.provider import account as acct
from neurotoken.provider.agent import ProviderAgent
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.policy import Policy
from neurotoken.provider.quote import Quote, QuoteRefusedError, make_quote
from neurotoken.provider.spec_fetch import Refusal
from neurotoken.provider.state import JobStatus
from neurotoken.units import NTK
from tests.agent.conftest import FAST_POLICY, Jobs, spec_bytes
from tests.constants import (
    AGENT_PAYMENT,
    AGENT_SHARDS,
    COLLATERAL,
    FEE_BPS,
    HOUR,
    STAKE,
    ZERO_ADDRESS,
)

AgentFactory = Callable[..., ProviderAgent]
NO_PERMIT = (0, 0, b"\x00" * 32, b"\x00" * 32)


def request_for(
    jobs: Jobs, provider: str, raw: bytes | None = None, **overrides: Any
) -> dict[str, Any]:
    """A job request as the client's file has it (JSON: hex spec hash, absolute deadlines),
    for the spec `raw` (written where its URI points)."""
    raw = spec_bytes() if raw is None else raw
    now = jobs.chain.pending_timestamp
    request: dict[str, Any] = {
        "specHash": "0x" + keccak256(raw).hex(),
        "specURI": str(jobs.write_spec(raw)),
        "paymentNtk": AGENT_PAYMENT,
        "provider": provider,
        "collateralNtk": COLLATERAL,
        "shardCount": AGENT_SHARDS,
        "challengeCount": 4,
        "acceptBy": now + 1800,
        "deliverBy": now + 7200,
        "verdictBy": now + 10800,
    }
    request.update(overrides)
    read: dict[str, Any] = json.loads(json.dumps(request))  # exactly what a file would give
    return read


def post(jobs: Jobs, signed: Quote | dict[str, Any]) -> int:
    """The client posts a quote (a `Quote`, or the JSON `agent quote` wrote) as it was signed."""
    if isinstance(signed, Quote):
        request, acceptance = signed.request, signed.acceptance
    else:
        request = dict(signed["request"], specHash=bytes.fromhex(signed["request"]["specHash"][2:]))
        acceptance = bytes.fromhex(signed["acceptance"][2:])
    tx = jobs.market.postAcceptedJob(request, acceptance, *NO_PERMIT, sender=jobs.client)
    return int(tx.return_value)


def events(market: Any, name: str, job_id: int) -> list[Any]:
    stop = market.chain_manager.blocks.height + 1
    return list(getattr(market, name).range(0, stop, search_topics={"jobId": job_id}))


def nonce(farm: MarketClient) -> int:
    return int(farm.w3.eth.get_transaction_count(to_checksum_address(farm.address)))


def refusal(agent: ProviderAgent, document: dict[str, Any], client: str) -> QuoteRefusedError:
    before = agent.state.outstanding_quotes(0)
    with pytest.raises(QuoteRefusedError) as caught:
        make_quote(agent, document, client)
    assert agent.state.outstanding_quotes(0) == before  # nothing more promised
    return caught.value


# ---------------------------------------------------------------------- signed and run


def test_quote__verifies_on_chain__and_the_agent_runs_the_job_to_payment(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory, stranger: Any
) -> None:
    acct.register(farm, STAKE)
    agent = make_agent()
    agent.step()
    signed = make_quote(agent, request_for(jobs, farm.address), jobs.client.address)
    assert acceptance_signer(farm.domain(), signed.job, signed.acceptance) == farm.address
    assert (signed.job.fee_bps, signed.job.oracle_epoch, signed.job.threshold) == (
        FEE_BPS, int(market.oracleEpoch()), int(market.threshold()),
    )  # fmt: skip

    job_id = post(jobs, signed)  # the market checks the acceptance against the provider
    assert jobs.job(job_id) == replace(signed.job, job_id=job_id)
    assert farm.get_provider().stake_ntk == STAKE - COLLATERAL
    sent = nonce(farm)
    report = agent.step()
    assert report.posted == [job_id] and report.accepted == [] and report.submitted == [job_id]
    assert nonce(farm) == sent + 1  # submitResult only: no acceptJob
    assert len(events(market, "JobAccepted", job_id)) == 1
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.SUBMITTED
    quote = agent.state.quote("0x" + signed.job.digest().hex())
    assert quote is not None and quote.job_id == job_id
    assert agent.state.outstanding_quotes(0) == []

    jobs.settle(job_id, True, sender=stranger)
    assert agent.step().settled == {job_id: JobStatus.PAID}
    fee = AGENT_PAYMENT * FEE_BPS // 10_000
    account = farm.get_provider()
    assert (account.stake_ntk, account.earned_ntk) == (STAKE, AGENT_PAYMENT - fee)


def test_cli_quote__file_posted_by_the_client__run_delivers_it(
    cli: Callable[..., Result], farm: MarketClient, jobs: Jobs, tmp_path: Path, provider2: Any
) -> None:
    assert cli("register", "--stake", "1000").exit_code == 0
    state = ["--state", str(tmp_path / "st")]
    request_file = tmp_path / "request.json"

    request_file.write_text(json.dumps(request_for(jobs, provider2.address)))
    result = cli("quote", str(request_file), "--client", jobs.client.address, *state)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"RESERVED_FOR_OTHER: the request names {provider2.address}" in result.output
    assert "set the request's provider to this provider's address" in result.output

    request_file.write_text(json.dumps(request_for(jobs, farm.address)))
    result = cli("quote", str(request_file), "--client", "0x12", *state)
    assert result.exit_code == 2 and "not an address" in result.output
    out = tmp_path / "quote.json"
    args = ["quote", str(request_file), "--client", jobs.client.address, "--out", str(out)]
    result = cli(*args, *state)
    assert result.exit_code == 0, result.output
    signed = json.loads(out.read_text())
    assert f"acceptance {signed['acceptance']}" in result.output
    assert signed["provider"] == farm.address and signed["client"] == jobs.client.address
    assert signed["terms"] == {
        "state": "ACCEPTED", "feeBps": FEE_BPS, "oracleEpoch": 1, "threshold": 2,
    }  # fmt: skip
    assert signed["validUntil"] == signed["request"]["acceptBy"]

    assert first_block(tmp_path / "st") is None  # quote scans nothing: left to `run`

    start = jobs.chain.blocks.height
    job_id = post(jobs, signed)
    assert "0x" + jobs.job(job_id).digest().hex() == signed["digest"]
    work = [*state, "--store", str(tmp_path / "b"), "--confirmations", "0"]
    run = ["run", *work, "--from-block", str(start), "--once", "--no-serve", "--quiet"]
    result = cli(*run, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert f"job {job_id}: its quote was posted - 8 shards for 80 NTK" in result.output
    assert f"job {job_id}: result submitted" in result.output
    assert jobs.job(job_id).state is JobState.SUBMITTED
    assert first_block(tmp_path / "st") == start


def first_block(state_dir: Path) -> int | None:
    """The first block stored in the agent's state file (None: not fixed yet)."""
    db = sqlite3.connect(state_dir / "agent.sqlite3")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'first_block'").fetchone()
    finally:
        db.close()
    return None if row is None else int(row[0])


def test_cli_quote__the_market_clis_request_file__binds_its_client_chain_and_market(
    cli: Callable[..., Result], farm: MarketClient, jobs: Jobs, tmp_path: Path, stranger: Any
) -> None:
    """The file `ape run market post --request-out` writes names the client, chain and market
    beside the request: the quote is for that client unless --client says otherwise (then it
    is refused, as is a file for another market), and `post --acceptance` reads the quote."""
    assert cli("register", "--stake", "1000").exit_code == 0
    document = request_for(jobs, farm.address)
    written = QuoteRequest(
        dict(document, specHash=bytes.fromhex(document["specHash"][2:])),
        jobs.client.address,
        farm.chain_id,
        farm.market_address,
    )
    request_file, out = tmp_path / "request.json", tmp_path / "quote.json"
    request_file.write_text(written.to_json())
    state = ["--state", str(tmp_path / "st")]

    result = cli("quote", str(request_file), "--client", stranger.address, *state)
    assert result.exit_code == 1
    assert f"written for client {jobs.client.address}, not {stranger.address}" in result.output
    other_market = json.loads(written.to_json())
    other_market["market"] = stranger.address
    (tmp_path / "other.json").write_text(json.dumps(other_market))
    result = cli("quote", str(tmp_path / "other.json"), *state)
    assert result.exit_code == 1 and f"written for market {stranger.address}" in result.output

    result = cli("quote", str(request_file), "--out", str(out), *state)
    assert result.exit_code == 0, result.output
    signed = json.loads(out.read_text())
    assert signed["client"] == jobs.client.address
    assert parse_acceptance(str(out)) == bytes.fromhex(signed["acceptance"][2:])
    job_id = post(jobs, signed)
    assert jobs.job(job_id).state is JobState.ACCEPTED


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("change", "policy", "codes"),
    [
        ({}, Policy(deadline_margin_s=60, min_price_per_shard_ntk=10 * NTK), ["PRICE_TOO_LOW"]),
        ({"specHash": "0x" + "11" * 32}, FAST_POLICY, ["SPEC_HASH_MISMATCH"]),
        ({"collateralNtk": STAKE + 1}, FAST_POLICY, ["STAKE_TOO_LOW"]),
        (
            {"acceptBy": 3 * HOUR, "deliverBy": 3 * HOUR, "verdictBy": 3 * HOUR},
            FAST_POLICY,
            ["QUOTE_TOO_LONG"],
        ),
        ({"acceptBy": -1800 - 10}, FAST_POLICY, ["ACCEPT_WINDOW_CLOSED"]),
        ({"deliverBy": -7200 + 1800 + 30}, FAST_POLICY, ["DEADLINE_TOO_SOON"]),
        ({"collateralNtk": 1}, FAST_POLICY, ["REQUEST_INVALID"]),
    ],
    ids=["price", "spec-hash", "stake", "too-long", "past", "deadline-from-acceptBy", "invalid"],
)
def test_quote__refused__says_why_and_what_to_do(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory, change: dict[str, Any],
    policy: Policy, codes: list[str],
) -> None:  # fmt: skip
    """Every reason an accept would fail, and those of a quote only (a request the market
    would refuse; acceptBy passed, or too far ahead; deliverBy judged from acceptBy, the
    latest the job can land). Deadlines in `change` move by the seconds given."""
    acct.register(farm, STAKE)
    agent = make_agent(policy=policy)
    document = request_for(jobs, farm.address)
    for key, value in change.items():
        document[key] = document[key] + value if key.endswith("By") else value
    caught = refusal(agent, document, jobs.client.address)
    assert [code.value for code in caught.codes] == codes
    assert str(caught).startswith("no quote:\n  " + codes[0])
    assert " -> " in str(caught)


def test_quote__for_another_provider_or_none__is_refused(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory, provider2: Any
) -> None:
    acct.register(farm, STAKE)
    agent = make_agent()
    for named, shown in ((provider2.address, provider2.address), (ZERO_ADDRESS, "no provider")):
        caught = refusal(agent, request_for(jobs, named), jobs.client.address)
        assert caught.codes == [Refusal.RESERVED_FOR_OTHER]
        assert f"the request names {shown}" in str(caught) and farm.address in str(caught)


def test_quote__outstanding__holds_capacity_and_stake(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    """A quote not posted yet counts as a job in hand, its collateral held back: a second
    quote, and a posted job, are refused while it stands; once posted it is a held job."""
    acct.register(farm, STAKE)
    agent = make_agent(policy=Policy(deadline_margin_s=60, max_active_jobs=1))
    big = request_for(jobs, farm.address, collateralNtk=600 * NTK)
    first = make_quote(agent, big, jobs.client.address)
    again = make_quote(agent, big, jobs.client.address)  # the same quote asked again: fine
    assert again.acceptance == first.acceptance

    other = request_for(jobs, farm.address, spec_bytes(seed=8), collateralNtk=600 * NTK)
    caught = refusal(make_agent(), other, jobs.client.address)  # no limit on jobs in hand
    assert caught.codes == [Refusal.STAKE_TOO_LOW]
    assert "600 NTK more held for outstanding quotes" in str(caught)
    assert refusal(agent, other, jobs.client.address).codes == [
        Refusal.STAKE_TOO_LOW, Refusal.BUSY,
    ]  # fmt: skip

    posted = jobs.post(spec_bytes(seed=9))
    report = agent.step()
    assert report.accepted == []
    record = agent.state.get(posted)
    assert (
        record is not None and record.status is JobStatus.DEFERRED and "BUSY" in str(record.reason)
    )

    quoted = post(jobs, first)
    report = agent.step()
    assert report.submitted == [quoted] and report.accepted == []
    assert agent.step().accepted == [posted]  # the quoted job delivered: capacity again


# ---------------------------------------------------------------------- run: held jobs


def test_restart__state_from_before_the_post__picks_up_the_quoted_job(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    first = make_agent()
    first.step()
    document = request_for(jobs, farm.address)
    signed = make_quote(first, document, jobs.client.address)
    first.close()  # the agent stops; the client posts while it is down

    Path(document["specURI"]).unlink()  # and stops serving the spec: the quote kept a copy
    job_id = post(jobs, signed)
    lines: list[str] = []
    again = make_agent(echo=lines.append)  # same state folder: the same installation
    report = again.step()
    assert report.posted == [job_id] and report.submitted == [job_id]
    assert not any("WARNING" in line for line in lines), lines
    assert len(events(market, "JobAccepted", job_id)) == 1
    assert len(events(market, "ResultSubmitted", job_id)) == 1
    assert again.step().submitted == []


def test_held_job__spec_unreachable__warned_kept_and_delivered_when_back(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory, tmp_path: Path
) -> None:
    """Quoted from another state folder (so no copy of the spec here) and its spec gone when
    posted: the agent would not take such a job, but it holds it - a warning, never dropped,
    and computed once the spec is back."""
    acct.register(farm, STAKE)
    elsewhere = make_agent(state_dir=tmp_path / "other-state")
    document = request_for(jobs, farm.address)
    signed = make_quote(elsewhere, document, jobs.client.address)
    spec_file = Path(document["specURI"])
    raw = spec_file.read_bytes()
    spec_file.unlink()
    job_id = post(jobs, signed)

    lines: list[str] = []
    agent = make_agent(echo=lines.append)
    for _ in range(2):  # the step survives, the job stays in hand
        report = agent.step()
        assert report.submitted == []
        record = agent.state.get(job_id)
        assert record is not None and record.status is JobStatus.ACCEPTED
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == 2, lines  # at taking it on, then once while it cannot be computed
    assert "found accepted by this provider on chain" in "\n".join(lines)
    assert "SPEC_UNAVAILABLE" in warnings[0] and "delivering it anyway" in warnings[0]
    assert "trying again each step until deliverBy" in warnings[1]

    spec_file.write_bytes(raw)
    assert agent.step().submitted == [job_id]


def test_refused_job__then_accepted_with_this_key_elsewhere__is_taken_on(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    """A job the policy refused, accepted afterwards with the provider's key by another
    program: the JobAccepted naming this provider brings it back, with a warning."""
    acct.register(farm, STAKE)
    lines: list[str] = []
    agent = make_agent(
        policy=Policy(deadline_margin_s=60, min_price_per_shard_ntk=10 * NTK), echo=lines.append
    )
    job_id = jobs.post()
    agent.step()
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.REFUSED
    farm.transact(farm.market.functions.acceptJob(job_id, jobs.rec(job_id)), "acceptJob")
    report = agent.step()
    assert report.submitted == [job_id]
    text = "\n".join(lines)
    assert f"job {job_id}: accepted on chain with this provider's key" in text
    assert "WARNING - this agent would not accept it now (PRICE_TOO_LOW" in text


def test_quote_posted_twice__two_jobs__one_computation_serves_both(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    """A quote has no nonce: the client that posts it twice pays for two identical jobs; the
    agent delivers both, and computes the shards once."""
    acct.register(farm, STAKE)
    agent = make_agent()
    signed = make_quote(agent, request_for(jobs, farm.address), jobs.client.address)
    first, second = post(jobs, signed), post(jobs, signed)
    assert jobs.job(first).record() == jobs.job(second).record()
    report = agent.step()
    assert sorted(report.submitted) == [first, second]
    assert sorted(report.computed[first].computed) == list(range(AGENT_SHARDS))
    assert sorted(report.computed[second].reused) == list(range(AGENT_SHARDS))
    assert report.computed[second].computed == []
    assert farm.get_provider().stake_ntk == STAKE - 2 * COLLATERAL


def test_jobs_listing__a_quoted_job__is_shown_held(
    cli: Callable[..., Result], farm: MarketClient, jobs: Jobs, tmp_path: Path
) -> None:
    assert cli("register", "--stake", "1000").exit_code == 0
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request_for(jobs, farm.address)))
    out = tmp_path / "quote.json"
    args = ["--client", jobs.client.address, "--out", str(out), "--state", str(tmp_path / "q")]
    quoted = cli("quote", str(request_file), *args)
    assert quoted.exit_code == 0, quoted.output
    job_id = post(jobs, json.loads(out.read_text()))
    result = cli("jobs", "--state", str(tmp_path / "st"), "--confirmations", "0")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"job {job_id}: held (quoted or accepted): `run` computes it"
