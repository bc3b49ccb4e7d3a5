"""Job lifecycle up to the verdict: post (plain and with permit), accept, submit, cancel,
and the three timeouts."""

from __future__ import annotations

import ape
import pytest

from neurotoken.market.ops import (
    minimum_collateral,
)
from tests.constants import (
    ACCEPTED,
    CANCELLED,
    CHALLENGES,
    COLLATERAL,
    DEFAULTED,
    EXPIRED,
    FEE_BPS,
    LAPSED,
    MIN_VERDICT_WINDOW,
    PAYMENT,
    POSTED,
    SHARDS,
    STAKE,
    SUBMITTED,
    ZERO_ADDRESS,
)
from tests.market.conftest import RESULT_ROOT, SPEC_HASH, event_args

MAX_JOB_DURATION = 365 * 24 * 3600

# ---------------------------------------------------------------- post


def test_post__escrows_payment_and_stores_job(m, market, client, balance_of):
    request = m.request()
    before = balance_of(client)
    tx = market.postJob(request, sender=client)
    assert tx.return_value == 1
    assert event_args(tx, market.JobPosted) == {
        "jobId": 1,
        "client": client.address,
        "provider": ZERO_ADDRESS,
        "specHash": SPEC_HASH,
        "specURI": "ipfs://spec",
        "paymentNtk": PAYMENT,
        "collateralNtk": COLLATERAL,
        "shardCount": SHARDS,
        "challengeCount": CHALLENGES,
        "acceptBy": request["acceptBy"],
        "deliverBy": request["deliverBy"],
        "verdictBy": request["verdictBy"],
    }
    job = market.getJob(1)
    assert (job.client, job.paymentNtk, job.provider, job.collateralNtk) == (
        client.address,
        PAYMENT,
        ZERO_ADDRESS,
        COLLATERAL,
    )
    assert (job.specHash, job.resultRoot, job.state) == (SPEC_HASH, b"\x00" * 32, POSTED)
    assert (job.acceptBy, job.deliverBy, job.verdictBy, job.seedBlock) == (
        request["acceptBy"],
        request["deliverBy"],
        request["verdictBy"],
        0,
    )
    assert (job.shardCount, job.challengeCount, job.feeBps) == (SHARDS, CHALLENGES, FEE_BPS)
    assert balance_of(client) == before - PAYMENT
    assert balance_of(market) == PAYMENT
    assert market.nextJobId() == 2


def test_post__ids_increase(m):
    assert [m.post(), m.post(), m.post()] == [1, 2, 3]


def test_post__with_chosen_provider__records_it(m, market, provider):
    job_id = m.post(provider=provider.address)
    assert market.getJob(job_id).provider == provider.address


def test_post__zero_payment__reverts(m, market, client):
    with ape.reverts(market.MarketZeroAmount):
        market.postJob(m.request(paymentNtk=0), sender=client)


def test_post__zero_spec_hash__reverts(m, market, client):
    with ape.reverts(market.MarketZeroSpecHash):
        market.postJob(m.request(specHash=b"\x00" * 32), sender=client)


@pytest.mark.parametrize(
    ("shards", "challenges"), [(0, 0), (4, 0), (4, 5), (1000, 257), (1000, 65), (65_537, 1)]
)
def test_post__invalid_shard_counts__reverts(m, market, client, shards, challenges):
    with ape.reverts(market.MarketInvalidShardCounts, shardCount=shards, challengeCount=challenges):
        market.postJob(m.request(shardCount=shards, challengeCount=challenges), sender=client)


def test_post__challenge_all_shards__accepted(m, market):
    job_id = m.post(shardCount=3, challengeCount=3)
    assert market.getJob(job_id).challengeCount == 3


def test_post__largest_counts__accepted(m, market):
    job_id = m.post(shardCount=65_536, challengeCount=64, collateralNtk=PAYMENT * 1024)
    assert (market.getJob(job_id).shardCount, market.getJob(job_id).challengeCount) == (65_536, 64)


def test_post__collateral_below_the_deterrent_minimum__reverts(m, market, client):
    """The underpriced-stake attack: with k = 4 of 16 shards a provider faking one shard is
    caught only 1 time in 4; a 40 NTK collateral on a 100 NTK job would make that pay."""
    required = PAYMENT * (SHARDS + 1 - 8) // 4 + 1
    assert market.minimumCollateral(PAYMENT, SHARDS, 4) == required
    with ape.reverts(market.MarketCollateralTooLow, required=required, offered=COLLATERAL):
        market.postJob(m.request(challengeCount=4), sender=client)
    market.postJob(m.request(challengeCount=4, collateralNtk=required), sender=client)


def test_post__zero_collateral_with_few_challenges__reverts(m, market, client):
    required = market.minimumCollateral(PAYMENT, SHARDS, CHALLENGES)
    with ape.reverts(market.MarketCollateralTooLow, required=required, offered=0):
        market.postJob(m.request(collateralNtk=0), sender=client)


def test_post__verdict_window_below_the_minimum__reverts(m, market, chain, client):
    """The short-window attack: a verdict deadline one second after delivery leaves no block
    for a verdict, so a provider that commits junk at the last moment would only lapse."""
    now = chain.pending_timestamp
    chain.pending_timestamp = now
    with ape.reverts(market.MarketVerdictWindowTooShort, window=1, minimum=MIN_VERDICT_WINDOW):
        market.postJob(
            m.request(acceptBy=now + 10, deliverBy=now + 20, verdictBy=now + 21), sender=client
        )
    assert market.minVerdictWindow() == MIN_VERDICT_WINDOW


@pytest.mark.parametrize(
    ("payment", "shards", "k", "expected"),
    [
        (100, 16, 8, 13),  # 100 * 1 / 8 = 12.5 -> 13 (strictly above)
        (100, 16, 4, 226),  # 100 * 9 / 4 = 225 -> 226
        (100, 15, 8, 1),  # N + 1 = 2k: a zero stake would break even; one wei makes it lose
        (100, 14, 8, 1),  # N + 1 < 2k: one wei, so that faking every shard still loses
        (100, 1, 1, 1),
        (7, 256, 8, 211),  # 7 * 241 / 8 = 210.875 -> 211
        (2**96 - 1, 65_536, 1, (2**96 - 1) * 65_535 + 1),
    ],
)
def test_minimum_collateral__formula(market, payment, shards, k, expected):
    assert market.minimumCollateral(payment, shards, k) == expected
    assert minimum_collateral(payment, shards, k) == expected


def test_minimum_collateral__invalid_counts__reverts(market):
    with ape.reverts(market.MarketInvalidShardCounts, shardCount=4, challengeCount=5):
        market.minimumCollateral(1, 4, 5)


@pytest.mark.parametrize(
    "case", ["accept_in_past", "deliver_not_after_accept", "verdict_not_after_deliver", "too_long"]
)
def test_post__invalid_deadlines__reverts(m, market, chain, client, case):
    now = chain.pending_timestamp
    deadlines = {
        "accept_in_past": (now - 1, now + 10, now + 20),
        "deliver_not_after_accept": (now + 10, now + 10, now + 20),
        "verdict_not_after_deliver": (now + 10, now + 20, now + 20),
        "too_long": (now + 10, now + 20, now + MAX_JOB_DURATION + 1),
    }[case]
    chain.pending_timestamp = now
    with ape.reverts(
        market.MarketInvalidDeadlines,
        timestamp=now,
        acceptBy=deadlines[0],
        deliverBy=deadlines[1],
        verdictBy=deadlines[2],
    ):
        market.postJob(
            m.request(acceptBy=deadlines[0], deliverBy=deadlines[1], verdictBy=deadlines[2]),
            sender=client,
        )


def test_post__without_allowance__reverts_with_token_error(m, market, token, client):
    token.approve(market, 0, sender=client)
    with ape.reverts(
        token.ERC20InsufficientAllowance, spender=market.address, allowance=0, needed=PAYMENT
    ):
        market.postJob(m.request(), sender=client)


# ---------------------------------------------------------------- post with permit


def test_post_with_permit__pulls_payment_in_one_call(
    m, market, token, client, chain, make_permit, balance_of
):
    token.approve(market, 0, sender=client)
    deadline = chain.pending_timestamp + 600
    permit = make_permit(token, client, market, PAYMENT, deadline)
    before = balance_of(client)
    tx = market.postJobWithPermit(
        m.request(), deadline, permit.v, permit.r, permit.s, sender=client
    )
    assert event_args(tx, market.JobPosted)["paymentNtk"] == PAYMENT
    assert balance_of(client) == before - PAYMENT
    assert token.allowance(client, market) == 0
    assert market.getJob(tx.return_value).state == POSTED


def test_post_with_permit__front_run_permit__still_posts(
    m, market, token, client, stranger, chain, make_permit
):
    """Someone submits the permit first: the allowance is set, so the post still succeeds."""
    token.approve(market, 0, sender=client)
    deadline = chain.pending_timestamp + 600
    permit = make_permit(token, client, market, PAYMENT, deadline)
    token.permit(client, market, PAYMENT, deadline, permit.v, permit.r, permit.s, sender=stranger)
    tx = market.postJobWithPermit(
        m.request(), deadline, permit.v, permit.r, permit.s, sender=client
    )
    assert market.getJob(tx.return_value).paymentNtk == PAYMENT


def test_post_with_permit__bad_permit_and_no_allowance__reverts(
    m, market, token, client, chain, make_permit
):
    token.approve(market, 0, sender=client)
    deadline = chain.pending_timestamp + 600
    permit = make_permit(token, client, market, PAYMENT - 1, deadline)  # signed for another value
    with ape.reverts(token.ERC20InsufficientAllowance):
        market.postJobWithPermit(m.request(), deadline, permit.v, permit.r, permit.s, sender=client)


# ---------------------------------------------------------------- accept


def test_accept__locks_collateral(m, market, provider):
    m.register()
    job_id = m.post()
    tx = market.acceptJob(job_id, sender=provider)
    assert event_args(tx, market.JobAccepted) == {
        "jobId": job_id,
        "provider": provider.address,
        "collateralNtk": COLLATERAL,
    }
    job = market.getJob(job_id)
    assert (job.state, job.provider) == (ACCEPTED, provider.address)
    assert market.getProvider(provider).stakeNtk == STAKE - COLLATERAL


def test_accept__at_deadline__succeeds(m, market, chain, provider):
    m.register()
    job_id = m.post()
    chain.pending_timestamp = market.getJob(job_id).acceptBy
    market.acceptJob(job_id, sender=provider)
    assert market.getJob(job_id).state == ACCEPTED


def test_accept__after_deadline__reverts(m, market, chain, provider):
    m.register()
    job_id = m.post()
    accept_by = market.getJob(job_id).acceptBy
    chain.pending_timestamp = accept_by + 1
    with ape.reverts(
        market.MarketDeadlinePassed, jobId=job_id, deadline=accept_by, timestamp=accept_by + 1
    ):
        market.acceptJob(job_id, sender=provider)


def test_accept__unknown_job__reverts(market, provider):
    with ape.reverts(market.MarketJobNotFound, jobId=42):
        market.acceptJob(42, sender=provider)


def test_accept__twice__reverts(m, market, provider, provider2):
    job_id = m.accepted()
    m.register(provider2)
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.acceptJob(job_id, sender=provider2)


def test_accept__by_other_than_chosen_provider__reverts(m, market, provider, provider2):
    m.register(provider2)
    job_id = m.post(provider=provider.address)
    with ape.reverts(
        market.MarketNotChosenProvider,
        jobId=job_id,
        chosen=provider.address,
        caller=provider2.address,
    ):
        market.acceptJob(job_id, sender=provider2)


def test_accept__by_chosen_provider__succeeds(m, market, provider):
    m.register()
    job_id = m.post(provider=provider.address)
    market.acceptJob(job_id, sender=provider)
    assert market.getJob(job_id).state == ACCEPTED


def test_accept__unregistered__reverts(m, market, stranger):
    job_id = m.post()
    with ape.reverts(market.MarketProviderNotRegistered, provider=stranger.address):
        market.acceptJob(job_id, sender=stranger)


def test_accept__insufficient_free_stake__reverts(m, market, provider):
    m.register(stake=COLLATERAL - 1)
    job_id = m.post()
    with ape.reverts(
        market.MarketInsufficientStake,
        provider=provider.address,
        available=COLLATERAL - 1,
        required=COLLATERAL,
    ):
        market.acceptJob(job_id, sender=provider)


def test_accept__unbonding_stake_does_not_back_jobs(m, market, provider):
    m.register(stake=COLLATERAL)
    market.requestUnbond(1, sender=provider)
    job_id = m.post()
    with ape.reverts(market.MarketInsufficientStake, available=COLLATERAL - 1, required=COLLATERAL):
        market.acceptJob(job_id, sender=provider)


def test_post__zero_collateral_even_with_every_shard_challenged__reverts(m, market, client):
    """Every shard challenged: a cheat is always caught, yet at zero collateral faking them
    all would cost the provider nothing (the hostile state machine found it)."""
    with ape.reverts(market.MarketCollateralTooLow, required=1, offered=0):
        market.postJob(m.request(collateralNtk=0, challengeCount=SHARDS), sender=client)


def test_accept__one_wei_collateral_job__needs_one_wei_of_stake(m, market, provider):
    m.register(stake=1)
    job_id = m.post(collateralNtk=1, challengeCount=SHARDS)
    market.acceptJob(job_id, sender=provider)
    assert market.getJob(job_id).provider == provider.address
    assert market.getProvider(provider).stakeNtk == 0


# ---------------------------------------------------------------- submit


def test_submit__commits_root_and_fixes_seed_block(m, market, chain, provider):
    job_id = m.accepted()
    tx = market.submitResult(job_id, RESULT_ROOT, SHARDS, "ipfs://bundle", sender=provider)
    assert event_args(tx, market.ResultSubmitted) == {
        "jobId": job_id,
        "provider": provider.address,
        "resultRoot": RESULT_ROOT,
        "shardCount": SHARDS,
        "seedBlock": tx.block_number + 1,
        "bundleURI": "ipfs://bundle",
    }
    job = market.getJob(job_id)
    assert (job.state, job.resultRoot, job.seedBlock) == (
        SUBMITTED,
        RESULT_ROOT,
        tx.block_number + 1,
    )


def test_submit__by_other_account__reverts(m, market, provider, stranger):
    job_id = m.accepted()
    with ape.reverts(
        market.MarketNotJobProvider,
        jobId=job_id,
        provider=provider.address,
        caller=stranger.address,
    ):
        market.submitResult(job_id, RESULT_ROOT, SHARDS, "", sender=stranger)


def test_submit__before_accept__reverts(m, market, provider):
    job_id = m.post()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=POSTED):
        market.submitResult(job_id, RESULT_ROOT, SHARDS, "", sender=provider)


def test_submit__twice__reverts(m, market, provider):
    job_id = m.submitted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=SUBMITTED):
        market.submitResult(job_id, b"\x01" * 32, SHARDS, "", sender=provider)


def test_submit__after_deliver_by__reverts(m, market, chain, provider):
    job_id = m.accepted()
    deliver_by = market.getJob(job_id).deliverBy
    chain.pending_timestamp = deliver_by + 1
    with ape.reverts(
        market.MarketDeadlinePassed, jobId=job_id, deadline=deliver_by, timestamp=deliver_by + 1
    ):
        market.submitResult(job_id, RESULT_ROOT, SHARDS, "", sender=provider)


def test_submit__zero_root__reverts(m, market, provider):
    job_id = m.accepted()
    with ape.reverts(market.MarketZeroResultRoot, jobId=job_id):
        market.submitResult(job_id, b"\x00" * 32, SHARDS, "", sender=provider)


def test_submit__wrong_shard_count__reverts(m, market, provider):
    job_id = m.accepted()
    with ape.reverts(
        market.MarketShardCountMismatch, jobId=job_id, expected=SHARDS, submitted=SHARDS + 1
    ):
        market.submitResult(job_id, RESULT_ROOT, SHARDS + 1, "", sender=provider)


# ---------------------------------------------------------------- cancel


def test_cancel__by_client_before_accept__refunds(m, market, client, balance_of):
    job_id = m.post()
    before = balance_of(client)
    tx = market.cancelJob(job_id, sender=client)
    assert event_args(tx, market.JobCancelled) == {
        "jobId": job_id,
        "client": client.address,
        "refundNtk": PAYMENT,
    }
    assert market.getJob(job_id).state == CANCELLED
    assert balance_of(client) == before + PAYMENT
    assert balance_of(market) == 0


def test_cancel__by_stranger__reverts(m, market, client, stranger):
    job_id = m.post()
    with ape.reverts(
        market.MarketNotJobClient, jobId=job_id, client=client.address, caller=stranger.address
    ):
        market.cancelJob(job_id, sender=stranger)


def test_cancel__after_accept__reverts(m, market, client):
    job_id = m.accepted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.cancelJob(job_id, sender=client)


def test_cancel__twice__reverts(m, market, client):
    job_id = m.post()
    market.cancelJob(job_id, sender=client)
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=CANCELLED):
        market.cancelJob(job_id, sender=client)


def test_cancel__unknown_job__reverts(market, client):
    with ape.reverts(market.MarketJobNotFound, jobId=9):
        market.cancelJob(9, sender=client)


# ---------------------------------------------------------------- timeouts


def test_expire__posted_job_after_accept_by__refunds_anyone_may_call(
    m, market, chain, client, stranger, balance_of
):
    job_id = m.post()
    chain.pending_timestamp = market.getJob(job_id).acceptBy + 1
    before = balance_of(client)
    tx = market.expireJob(job_id, sender=stranger)
    assert event_args(tx, market.JobExpired) == {
        "jobId": job_id,
        "client": client.address,
        "refundNtk": PAYMENT,
    }
    assert market.getJob(job_id).state == EXPIRED
    assert balance_of(client) == before + PAYMENT


def test_expire__posted_job_at_accept_by__reverts(m, market, chain, stranger):
    job_id = m.post()
    accept_by = market.getJob(job_id).acceptBy
    chain.pending_timestamp = accept_by
    with ape.reverts(
        market.MarketDeadlineNotReached, jobId=job_id, deadline=accept_by, timestamp=accept_by
    ):
        market.expireJob(job_id, sender=stranger)


def test_expire__undelivered_job__refunds_and_slashes(
    m, market, token, chain, client, provider, stranger, balance_of
):
    job_id = m.accepted()
    chain.pending_timestamp = market.getJob(job_id).deliverBy + 1
    before, supply = balance_of(client), token.totalSupply()
    tx = market.expireJob(job_id, sender=stranger)
    half = COLLATERAL // 2
    assert event_args(tx, market.JobDefaulted) == {
        "jobId": job_id,
        "provider": provider.address,
        "refundNtk": PAYMENT + half,
        "compensationNtk": half,
        "burnedNtk": COLLATERAL - half,
    }
    assert market.getJob(job_id).state == DEFAULTED
    assert balance_of(client) == before + PAYMENT + half
    assert token.totalSupply() == supply - (COLLATERAL - half)
    assert market.getProvider(provider).stakeNtk == STAKE - COLLATERAL
    assert balance_of(market) == STAKE - COLLATERAL


def test_expire__undelivered_job_with_odd_collateral__rounds_compensation_down(
    m, market, chain, stranger
):
    job_id = m.accepted(collateralNtk=3, challengeCount=SHARDS)
    chain.pending_timestamp = market.getJob(job_id).deliverBy + 1
    log = event_args(market.expireJob(job_id, sender=stranger), market.JobDefaulted)
    assert (log["compensationNtk"], log["burnedNtk"]) == (1, 2)


def test_expire__undelivered_one_wei_collateral__burns_the_wei(m, market, token, chain, stranger):
    m.register(stake=1)
    job_id = m.accepted(collateralNtk=1, challengeCount=SHARDS)
    chain.pending_timestamp = market.getJob(job_id).deliverBy + 1
    tx = market.expireJob(job_id, sender=stranger)
    log = event_args(tx, market.JobDefaulted)
    assert (log["compensationNtk"], log["burnedNtk"], log["refundNtk"]) == (0, 1, PAYMENT)


def test_expire__accepted_job_at_deliver_by__reverts(m, market, chain, stranger):
    job_id = m.accepted()
    deliver_by = market.getJob(job_id).deliverBy
    chain.pending_timestamp = deliver_by
    with ape.reverts(
        market.MarketDeadlineNotReached, jobId=job_id, deadline=deliver_by, timestamp=deliver_by
    ):
        market.expireJob(job_id, sender=stranger)


def test_expire__submitted_job_without_quorum__refunds_and_unlocks(
    m, market, chain, client, provider, stranger, balance_of
):
    job_id = m.submitted()
    chain.pending_timestamp = market.getJob(job_id).verdictBy + 1
    before = balance_of(client)
    tx = market.expireJob(job_id, sender=stranger)
    assert event_args(tx, market.JobLapsed) == {
        "jobId": job_id,
        "provider": provider.address,
        "refundNtk": PAYMENT,
        "collateralNtk": COLLATERAL,
    }
    assert market.getJob(job_id).state == LAPSED
    assert balance_of(client) == before + PAYMENT
    assert market.getProvider(provider).stakeNtk == STAKE


def test_expire__submitted_job_at_verdict_by__reverts(m, market, chain, stranger):
    job_id = m.submitted()
    verdict_by = market.getJob(job_id).verdictBy
    chain.pending_timestamp = verdict_by
    with ape.reverts(
        market.MarketDeadlineNotReached, jobId=job_id, deadline=verdict_by, timestamp=verdict_by
    ):
        market.expireJob(job_id, sender=stranger)


def test_expire__terminal_job__reverts(m, market, client, stranger):
    job_id = m.post()
    market.cancelJob(job_id, sender=client)
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=CANCELLED):
        market.expireJob(job_id, sender=stranger)


def test_expire__unknown_job__reverts(market, stranger):
    with ape.reverts(market.MarketJobNotFound, jobId=0):
        market.expireJob(0, sender=stranger)


def test_expire__twice__pays_once(m, market, chain, stranger):
    job_id = m.post()
    chain.pending_timestamp = market.getJob(job_id).acceptBy + 1
    market.expireJob(job_id, sender=stranger)
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=EXPIRED):
        market.expireJob(job_id, sender=stranger)


def test_get_job__unknown__reverts(market):
    with ape.reverts(market.MarketJobNotFound, jobId=1):
        market.getJob(1)


def test_lapsed_collateral__can_back_a_new_job(m, market, chain, provider, stranger):
    """After a no-fault lapse, the unlocked collateral is free stake again."""
    m.register(stake=COLLATERAL)
    job_id = m.submitted()
    chain.pending_timestamp = market.getJob(job_id).verdictBy + 1
    market.expireJob(job_id, sender=stranger)
    market.acceptJob(m.post(), sender=provider)
    assert market.getProvider(provider).stakeNtk == 0
