"""Quoted jobs: a provider accepts a job off chain (an EIP-712 Acceptance of the record the
job will have), and the client posts it already Accepted with `postAcceptedJob`: one
transaction instead of a post and an accept. Attacks: a forged or borrowed acceptance, terms
changed after signing, governance changes between the quote and the post, a provider short of
stake, a replayed quote."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from neurotoken.market.acceptance import (
    AcceptanceError,
    acceptance_signer,
    quoted_job,
    sign_acceptance,
)
from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain
from tests.constants import (
    CHALLENGES,
    COLLATERAL,
    FEE_BPS,
    MAX_UINT256,
    PAYMENT,
    SHARDS,
    STAKE,
    ZERO_ADDRESS,
)
from tests.market.conftest import Market, event_args

RESULT = b"\x7a" * 32
NO_PERMIT = (0, 0, b"\x00" * 32, b"\x00" * 32)


def quote(
    m: Market, client: Any, provider: Any, signer: Any = None, **overrides: Any
) -> tuple[dict[str, Any], bytes]:
    """(request, acceptance) for `client`, quoted by `provider` (signed by `signer`)."""
    request = m.request(provider=provider.address, **overrides)
    job = quoted_job(
        request,
        client.address,
        fee_bps=int(m.contract.feeBps()),
        oracle_epoch=int(m.contract.oracleEpoch()),
        threshold=int(m.contract.threshold()),
    )
    return request, sign_acceptance((signer or provider).private_key, m.domain, job)


def post_quoted(m: Market, client: Any, request: Any, acceptance: bytes) -> Any:
    return m.contract.postAcceptedJob(request, acceptance, *NO_PERMIT, sender=client)


@pytest.fixture
def registered(m: Market, provider: Any) -> Any:
    m.register(provider)
    return provider


def test_quoted_post__starts_accepted_with_collateral_locked(
    m: Market, market: Any, client: Any, registered: Any, balance_of: Any
) -> None:
    request, acceptance = quote(m, client, registered)
    before = balance_of(client)
    tx = post_quoted(m, client, request, acceptance)
    job_id = int(tx.return_value)
    posted = OnChainJob.from_record(job_id, event_args(tx, market.JobPosted)["job"])
    assert posted.state == JobState.ACCEPTED and posted.provider == registered.address
    assert posted.result_root == b"\x00" * 32 and posted.seed_block == 0
    assert event_args(tx, market.JobAccepted) == {
        "jobId": job_id,
        "provider": registered.address,
        "collateralNtk": COLLATERAL,
    }
    assert market.getProvider(registered).stakeNtk == STAKE - COLLATERAL
    assert balance_of(client) == before - PAYMENT
    assert m.job(job_id) == posted
    assert bytes(market.jobDigest(job_id)) == posted.digest()


def test_quoted_job__runs_to_payment_like_any_accepted_job(
    m: Market, market: Any, client: Any, registered: Any, oracles: list[Any]
) -> None:
    request, acceptance = quote(m, client, registered)
    job_id = int(post_quoted(m, client, request, acceptance).return_value)
    market.submitResult(job_id, m.rec(job_id), RESULT, SHARDS, "ipfs://b", sender=registered)
    m.chain.mine(2)
    sigs = m.sign(job_id, True, oracles[:2])
    tx = market.settle(job_id, m.rec(job_id), True, sigs, sender=client)
    assert event_args(tx, market.JobPaid)["provider"] == registered.address
    assert market.getProvider(registered).stakeNtk == STAKE
    assert bytes(market.jobDigest(job_id)) == b"\x00" * 32


def test_quoted_post__with_a_permit__needs_no_allowance(
    m: Market, market: Any, token: Any, client: Any, registered: Any, make_permit: Any
) -> None:
    token.approve(market, 0, sender=client)
    deadline = m.chain.pending_timestamp + 600
    permit = make_permit(token, client, market, PAYMENT, deadline)
    request, acceptance = quote(m, client, registered)
    tx = market.postAcceptedJob(
        request, acceptance, deadline, permit.v, permit.r, permit.s, sender=client
    )
    assert m.job(int(tx.return_value)).state == JobState.ACCEPTED
    assert token.allowance(client, market) == 0


def test_quoted_post__no_permit_and_no_allowance__reverts(
    m: Market, market: Any, token: Any, client: Any, registered: Any
) -> None:
    token.approve(market, 0, sender=client)
    request, acceptance = quote(m, client, registered)
    with ape.reverts(token.ERC20InsufficientAllowance):
        post_quoted(m, client, request, acceptance)


def test_quoted_post__acceptance_by_another_key__reverts(
    m: Market, market: Any, client: Any, registered: Any, stranger: Any
) -> None:
    """A stranger cannot commit a provider (and its stake) to a job."""
    request, forged = quote(m, client, registered, signer=stranger)
    with ape.reverts(market.MarketAcceptanceNotByProvider, provider=registered, signer=stranger):
        post_quoted(m, client, request, forged)
    assert market.getProvider(registered).stakeNtk == STAKE


@pytest.mark.parametrize(
    "change",
    [
        {"paymentNtk": PAYMENT - 1},
        {"collateralNtk": COLLATERAL * 2},
        {"specHash": b"\x11" * 32},
        {"shardCount": SHARDS - 1},
        {"challengeCount": CHALLENGES + 1},
        {"deliverBy": -60},
        {"verdictBy": 60},
    ],
    ids=["payment", "collateral", "spec", "shards", "challenges", "deliverBy", "verdictBy"],
)
def test_quoted_post__terms_changed_after_signing__reverts(
    m: Market, market: Any, client: Any, registered: Any, change: dict[str, Any]
) -> None:
    """The client cannot post the provider's quote with terms the provider did not sign (each
    change keeps the request valid otherwise; deadlines move by the given seconds)."""
    request, acceptance = quote(m, client, registered)
    for key, value in change.items():
        request[key] = request[key] + value if key.endswith("By") else value
    with ape.reverts(market.MarketAcceptanceNotByProvider):
        post_quoted(m, client, request, acceptance)


def test_quoted_post__quote_made_for_another_client__reverts(
    m: Market, market: Any, client: Any, registered: Any, stranger: Any, token: Any, minter: Any
) -> None:
    """A quote binds its client: someone else cannot take it (and its price)."""
    token.mint(stranger, PAYMENT, sender=minter)
    token.approve(market, MAX_UINT256, sender=stranger)
    request, acceptance = quote(m, client, registered)
    with ape.reverts(market.MarketAcceptanceNotByProvider):
        post_quoted(m, stranger, request, acceptance)


def test_quoted_post__fee_raised_since_the_quote__reverts(
    m: Market, market: Any, client: Any, registered: Any, owner: Any
) -> None:
    """The acceptance covers the fee, oracle epoch and threshold in force: governance cannot
    change the provider's terms between its quote and the post."""
    request, acceptance = quote(m, client, registered)
    market.setFeeBps(int(market.feeBps()) + 100, sender=owner)
    with ape.reverts(market.MarketAcceptanceNotByProvider):
        post_quoted(m, client, request, acceptance)


def test_quoted_post__for_another_market__reverts(
    m: Market, market: Any, client: Any, registered: Any, chain: Any
) -> None:
    request = m.request(provider=registered.address)
    job = quoted_job(
        request,
        client.address,
        fee_bps=int(market.feeBps()),
        oracle_epoch=int(market.oracleEpoch()),
        threshold=int(market.threshold()),
    )
    elsewhere = MarketDomain(chain.chain_id, registered.address)  # any other contract
    with ape.reverts(market.MarketAcceptanceNotByProvider):
        post_quoted(m, client, request, sign_acceptance(registered.private_key, elsewhere, job))


def test_quoted_post__no_provider_or_no_acceptance__reverts(
    m: Market, market: Any, client: Any, registered: Any
) -> None:
    request, acceptance = quote(m, client, registered)
    with ape.reverts(
        market.MarketAcceptanceNotByProvider, provider=registered, signer=ZERO_ADDRESS
    ):
        post_quoted(m, client, request, b"")
    with ape.reverts(market.MarketAcceptanceNotByProvider, provider=ZERO_ADDRESS):
        post_quoted(m, client, {**request, "provider": ZERO_ADDRESS}, acceptance)


def test_quoted_post__malformed_or_malleable_acceptance__reverts(
    m: Market, market: Any, client: Any, registered: Any
) -> None:
    request, acceptance = quote(m, client, registered)
    with ape.reverts():
        post_quoted(m, client, request, acceptance[:64])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(acceptance[32:64], "big")
    flipped = acceptance[:32] + (n - s).to_bytes(32, "big") + bytes([27 + 28 - acceptance[64]])
    with ape.reverts():
        post_quoted(m, client, request, flipped)


def test_quoted_post__provider_short_of_stake__reverts(
    m: Market, market: Any, client: Any, provider: Any
) -> None:
    m.register(provider, stake=COLLATERAL - 1)
    request, acceptance = quote(m, client, provider)
    with ape.reverts(
        market.MarketInsufficientStake,
        provider=provider,
        available=COLLATERAL - 1,
        required=COLLATERAL,
    ):
        post_quoted(m, client, request, acceptance)


def test_quoted_post__unregistered_provider__reverts(
    m: Market, market: Any, client: Any, provider: Any
) -> None:
    request, acceptance = quote(m, client, provider)
    with ape.reverts(market.MarketProviderNotRegistered, provider=provider):
        post_quoted(m, client, request, acceptance)


def test_quoted_post__replayed__gives_two_identical_jobs_one_result_serves(
    m: Market, market: Any, client: Any, registered: Any, oracles: list[Any], balance_of: Any
) -> None:
    """A quote carries no nonce: a client that posts it twice gets, and pays for, two
    identical jobs. The provider is not harmed: its stake covers both or the second post
    reverts, and one computation serves both (the outputs depend only on the spec)."""
    request, acceptance = quote(m, client, registered)
    before = balance_of(client)
    first = int(post_quoted(m, client, request, acceptance).return_value)
    second = int(post_quoted(m, client, request, acceptance).return_value)
    assert balance_of(client) == before - 2 * PAYMENT
    assert market.getProvider(registered).stakeNtk == STAKE - 2 * COLLATERAL
    for job_id in (first, second):
        market.submitResult(job_id, m.rec(job_id), RESULT, SHARDS, "ipfs://b", sender=registered)
    m.chain.mine(2)
    for job_id in (first, second):
        market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=client)
    assert market.getProvider(registered).stakeNtk == STAKE
    fee = -(-PAYMENT * FEE_BPS // 10_000)
    assert market.getProvider(registered).earnedNtk == 2 * (PAYMENT - fee)  # both paid


def test_quoted_post__after_its_accept_by__reverts(
    m: Market, market: Any, client: Any, registered: Any
) -> None:
    """A quote lives until its acceptBy: after it, nobody can post it."""
    request, acceptance = quote(m, client, registered)
    m.chain.mine(timestamp=request["acceptBy"] + 1)
    with ape.reverts(market.MarketInvalidDeadlines):
        post_quoted(m, client, request, acceptance)


def test_acceptance__python_signer_matches_the_contract(
    m: Market, client: Any, registered: Any
) -> None:
    request, acceptance = quote(m, client, registered)
    job = quoted_job(
        request,
        client.address,
        fee_bps=int(m.contract.feeBps()),
        oracle_epoch=int(m.contract.oracleEpoch()),
        threshold=int(m.contract.threshold()),
    )
    assert acceptance_signer(m.domain, job, acceptance) == registered.address
    with pytest.raises(AcceptanceError):
        quoted_job(
            {**request, "provider": ZERO_ADDRESS},
            client.address,
            fee_bps=0,
            oracle_epoch=1,
            threshold=1,
        )
