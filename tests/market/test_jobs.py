"""Job lifecycle up to the verdict: post (plain and with permit), accept, submit, cancel and
the three timeouts; and the job record: the market stores only its digest, so every call
passes the record, and a stale, forged or foreign record, or a call on an ended job, is
refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import ape
import pytest

from neurotoken.market.job import ENDINGS, OnChainJob
from neurotoken.market.ops import (
    minimum_collateral,
)
from neurotoken.market.records import JobRecordError, ape_reader
from neurotoken.market.states import JobState
from tests.constants import (
    ACCEPTED,
    CANCELLED,
    CHALLENGES,
    COLLATERAL,
    DAY,
    DEFAULTED,
    EXPIRED,
    FEE_BPS,
    LAPSED,
    MIN_VERDICT_WINDOW,
    PAID,
    PAYMENT,
    POSTED,
    REJECTED,
    SHARDS,
    STAKE,
    SUBMITTED,
    ZERO_ADDRESS,
)
from tests.market.conftest import RESULT_ROOT, SPEC_HASH, Market, event_args

MAX_JOB_DURATION = 365 * 24 * 3600
ZERO_DIGEST = b"\x00" * 32
ZERO_RECORD = (0, 0, 0, ZERO_DIGEST, ZERO_DIGEST)

ENTRY_POINTS = (
    "acceptJob",
    "submitResult",
    "settle",
    "settleBatch",
    "cancelJob",
    "expireJob",
    "fixChallengeSeed",
)
"""Every market function that takes a job's record and checks it against the digest."""


def posted(tx: Any, market: Any) -> OnChainJob:
    """The record that `tx`'s JobPosted carries (the job's first record)."""
    args = event_args(tx, market.JobPosted)
    return OnChainJob.from_record(args["jobId"], args["job"])


def expect_current(m: Market, job_id: int, expected: OnChainJob) -> None:
    """The market holds `expected` as the job's current record: its stored digest is the
    market's own hash of the record and the Python one (never zero), and the record rebuilt
    from the job's events is `expected`."""
    stored = bytes(m.contract.jobDigest(job_id))
    assert stored != ZERO_DIGEST
    assert stored == bytes(m.contract.hashJob(expected.record())) == expected.digest()
    assert m.job(job_id) == expected


def expect_ended(m: Market, job_id: int, state: int) -> None:
    """The job has ended in `state`: the market cleared its digest, and its events fold to
    its last record with that state."""
    assert bytes(m.contract.jobDigest(job_id)) == ZERO_DIGEST
    final = m.job(job_id)
    assert final.state == state
    assert not final.is_open


def verdict_signatures(m: Market, job_id: int, batch: bool) -> list[bytes]:
    """Two oracles' signatures accepting the job's result if it awaits a verdict, else none
    (a call that must fail before the quorum check needs none)."""
    try:
        job = m.job(job_id)
    except JobRecordError:
        return []
    if job.state != SUBMITTED:
        return []
    if batch:
        return m.sign_batch([(job_id, True)], m.oracles[:2])
    return m.sign(job_id, True, m.oracles[:2])


def call(
    m: Market,
    entry: str,
    job_id: int,
    record: Sequence[Any],
    sender: Any | None = None,
    signatures: list[bytes] | None = None,
) -> Any:
    """Calls `entry` about `job_id` with `record`, and the other arguments and the sender a
    genuine call on a job in the right state would have (`sender` replaces the sender)."""
    market = m.contract
    record = tuple(record)
    if entry == "acceptJob":
        return market.acceptJob(job_id, record, sender=sender or m.provider)
    if entry == "submitResult":
        return market.submitResult(
            job_id, record, RESULT_ROOT, SHARDS, "ipfs://bundle", sender=sender or m.provider
        )
    if entry == "settle":
        sigs = verdict_signatures(m, job_id, False) if signatures is None else signatures
        return market.settle(job_id, record, True, sigs, sender=sender or m.oracles[0])
    if entry == "settleBatch":
        sigs = verdict_signatures(m, job_id, True) if signatures is None else signatures
        return market.settleBatch([(job_id, record, True)], sigs, sender=sender or m.oracles[0])
    if entry == "cancelJob":
        return market.cancelJob(job_id, record, sender=sender or m.client)
    if entry == "expireJob":
        return market.expireJob(job_id, record, sender=sender or m.oracles[2])
    if entry == "fixChallengeSeed":
        return market.fixChallengeSeed(job_id, record, sender=sender or m.oracles[0])
    raise ValueError(entry)


# ---------------------------------------------------------------- post


def test_post__escrows_payment_and_emits_the_record(m, market, client, balance_of):
    request = m.request()
    before = balance_of(client)
    tx = market.postJob(request, sender=client)
    assert tx.return_value == 1
    args = event_args(tx, market.JobPosted)
    assert set(args) == {"jobId", "client", "provider", "job", "specURI"}
    assert (args["jobId"], args["client"], args["provider"], args["specURI"]) == (
        1,
        client.address,
        ZERO_ADDRESS,
        "ipfs://spec",
    )
    # The fee, oracle epoch and threshold in force: the deployment's.
    assert (market.feeBps(), market.oracleEpoch(), market.threshold()) == (FEE_BPS, 1, 2)
    record = posted(tx, market)
    assert record == OnChainJob(
        job_id=1,
        client=client.address,
        payment_ntk=PAYMENT,
        provider=ZERO_ADDRESS,
        collateral_ntk=COLLATERAL,
        spec_hash=SPEC_HASH,
        result_root=ZERO_DIGEST,
        state=JobState.POSTED,
        accept_by=request["acceptBy"],
        deliver_by=request["deliverBy"],
        verdict_by=request["verdictBy"],
        seed_block=0,
        shard_count=SHARDS,
        challenge_count=CHALLENGES,
        fee_bps=FEE_BPS,
        oracle_epoch=1,
        threshold=2,
    )
    expect_current(m, 1, record)
    assert balance_of(client) == before - PAYMENT
    assert balance_of(market) == PAYMENT
    assert market.nextJobId() == 2


def test_post__record_carries_the_terms_in_force_when_posted(
    m, market, owner, client, provider, outsider_key
):
    """Every field of the posted record: the request's (none at its default here) plus the
    fee, oracle epoch and threshold in force at that moment, which later changes leave alone."""
    market.setFeeBps(400, sender=owner)
    market.updateOracles([outsider_key], [], 3, sender=owner)
    assert (market.feeBps(), market.oracleEpoch(), market.threshold()) == (400, 2, 3)
    now = m.chain.pending_timestamp
    request = m.request(
        specHash=b"\x42" * 32,
        paymentNtk=PAYMENT + 7,
        provider=provider.address,
        collateralNtk=PAYMENT * 12,
        shardCount=64,
        challengeCount=5,
        acceptBy=now + 100,
        deliverBy=now + 200,
        verdictBy=now + 200 + MIN_VERDICT_WINDOW + 5,
    )
    tx = market.postJob(request, sender=client)
    args = event_args(tx, market.JobPosted)
    assert (args["client"], args["provider"]) == (client.address, provider.address)
    record = posted(tx, market)
    assert record == OnChainJob(
        job_id=1,
        client=client.address,
        payment_ntk=PAYMENT + 7,
        provider=provider.address,
        collateral_ntk=PAYMENT * 12,
        spec_hash=b"\x42" * 32,
        result_root=ZERO_DIGEST,
        state=JobState.POSTED,
        accept_by=now + 100,
        deliver_by=now + 200,
        verdict_by=now + 200 + MIN_VERDICT_WINDOW + 5,
        seed_block=0,
        shard_count=64,
        challenge_count=5,
        fee_bps=400,
        oracle_epoch=2,
        threshold=3,
    )
    market.setFeeBps(0, sender=owner)
    market.setThreshold(4, sender=owner)
    expect_current(m, 1, record)


def test_post__ids_increase(m):
    assert [m.post(), m.post(), m.post()] == [1, 2, 3]


def test_post__with_chosen_provider__records_it(m, market, provider):
    job_id = m.post(provider=provider.address)
    assert m.job(job_id).provider == provider.address


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
    assert m.job(job_id).challenge_count == 3


def test_post__largest_counts__accepted(m, market):
    job_id = m.post(shardCount=65_536, challengeCount=64, collateralNtk=PAYMENT * 1024)
    job = m.job(job_id)
    assert (job.shard_count, job.challenge_count) == (65_536, 64)


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
    assert posted(tx, market).payment_ntk == PAYMENT
    assert balance_of(client) == before - PAYMENT
    assert token.allowance(client, market) == 0
    expect_current(m, tx.return_value, posted(tx, market))
    assert m.job(tx.return_value).state == POSTED


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
    assert m.job(tx.return_value).payment_ntk == PAYMENT


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
    before = m.job(job_id)
    tx = market.acceptJob(job_id, m.rec(job_id), sender=provider)
    assert event_args(tx, market.JobAccepted) == {
        "jobId": job_id,
        "provider": provider.address,
        "collateralNtk": COLLATERAL,
    }
    expect_current(
        m, job_id, dataclasses.replace(before, provider=provider.address, state=JobState.ACCEPTED)
    )
    assert market.getProvider(provider).stakeNtk == STAKE - COLLATERAL


def test_accept__at_deadline__succeeds(m, market, chain, provider):
    m.register()
    job_id = m.post()
    chain.pending_timestamp = m.job(job_id).accept_by
    market.acceptJob(job_id, m.rec(job_id), sender=provider)
    assert m.job(job_id).state == ACCEPTED


def test_accept__after_deadline__reverts(m, market, chain, provider):
    m.register()
    job_id = m.post()
    accept_by = m.job(job_id).accept_by
    chain.pending_timestamp = accept_by + 1
    with ape.reverts(
        market.MarketDeadlinePassed, jobId=job_id, deadline=accept_by, timestamp=accept_by + 1
    ):
        market.acceptJob(job_id, m.rec(job_id), sender=provider)


def test_accept__unknown_job__reverts(m, market, provider):
    m.register()
    real = m.rec(m.post())  # a genuine record, of another job
    for record in (real, ZERO_RECORD):
        with ape.reverts(market.MarketJobNotFound, jobId=42):
            market.acceptJob(42, record, sender=provider)


def test_accept__twice__reverts(m, market, provider, provider2):
    job_id = m.accepted()
    m.register(provider2)
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.acceptJob(job_id, m.rec(job_id), sender=provider2)


def test_accept__by_other_than_chosen_provider__reverts(m, market, provider, provider2):
    m.register(provider2)
    job_id = m.post(provider=provider.address)
    with ape.reverts(
        market.MarketNotChosenProvider,
        jobId=job_id,
        chosen=provider.address,
        caller=provider2.address,
    ):
        market.acceptJob(job_id, m.rec(job_id), sender=provider2)


def test_accept__by_other_than_chosen_provider_with_the_choice_erased__reverts(
    m, market, provider, provider2
):
    """The snatch attack: another provider passes the record with the chosen provider zeroed
    (open to anyone); it does not hash to the job's digest."""
    m.register(provider2)
    job_id = m.post(provider=provider.address)
    open_to_all = dataclasses.replace(m.job(job_id), provider=ZERO_ADDRESS)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.acceptJob(job_id, open_to_all.record(), sender=provider2)
    assert m.job(job_id).state == POSTED


def test_accept__by_chosen_provider__succeeds(m, market, provider):
    m.register()
    job_id = m.post(provider=provider.address)
    market.acceptJob(job_id, m.rec(job_id), sender=provider)
    assert m.job(job_id).state == ACCEPTED


def test_accept__unregistered__reverts(m, market, stranger):
    job_id = m.post()
    with ape.reverts(market.MarketProviderNotRegistered, provider=stranger.address):
        market.acceptJob(job_id, m.rec(job_id), sender=stranger)


def test_accept__insufficient_free_stake__reverts(m, market, provider):
    m.register(stake=COLLATERAL - 1)
    job_id = m.post()
    with ape.reverts(
        market.MarketInsufficientStake,
        provider=provider.address,
        available=COLLATERAL - 1,
        required=COLLATERAL,
    ):
        market.acceptJob(job_id, m.rec(job_id), sender=provider)


def test_accept__insufficient_stake_with_collateral_forged_down__reverts(m, market, provider):
    """A provider short of stake passes the record with the collateral lowered to what it has."""
    m.register(stake=COLLATERAL - 1)
    job_id = m.post()
    cheaper = dataclasses.replace(m.job(job_id), collateral_ntk=COLLATERAL - 1)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.acceptJob(job_id, cheaper.record(), sender=provider)
    assert market.getProvider(provider).stakeNtk == COLLATERAL - 1


def test_accept__unbonding_stake_does_not_back_jobs(m, market, provider):
    m.register(stake=COLLATERAL)
    market.requestUnbond(1, sender=provider)
    job_id = m.post()
    with ape.reverts(market.MarketInsufficientStake, available=COLLATERAL - 1, required=COLLATERAL):
        market.acceptJob(job_id, m.rec(job_id), sender=provider)


def test_post__zero_collateral_even_with_every_shard_challenged__reverts(m, market, client):
    """Every shard challenged: a cheat is always caught, yet at zero collateral faking them
    all would cost the provider nothing (the hostile state machine found it)."""
    with ape.reverts(market.MarketCollateralTooLow, required=1, offered=0):
        market.postJob(m.request(collateralNtk=0, challengeCount=SHARDS), sender=client)


def test_accept__one_wei_collateral_job__needs_one_wei_of_stake(m, market, provider):
    m.register(stake=1)
    job_id = m.post(collateralNtk=1, challengeCount=SHARDS)
    market.acceptJob(job_id, m.rec(job_id), sender=provider)
    assert m.job(job_id).provider == provider.address
    assert market.getProvider(provider).stakeNtk == 0


# ---------------------------------------------------------------- submit


def test_submit__commits_root_and_fixes_seed_block(m, market, chain, provider):
    job_id = m.accepted()
    before = m.job(job_id)
    tx = market.submitResult(
        job_id, before.record(), RESULT_ROOT, SHARDS, "ipfs://bundle", sender=provider
    )
    assert event_args(tx, market.ResultSubmitted) == {
        "jobId": job_id,
        "provider": provider.address,
        "resultRoot": RESULT_ROOT,
        "shardCount": SHARDS,
        "seedBlock": tx.block_number + 1,
        "bundleURI": "ipfs://bundle",
    }
    expect_current(
        m,
        job_id,
        dataclasses.replace(
            before,
            state=JobState.SUBMITTED,
            result_root=RESULT_ROOT,
            seed_block=tx.block_number + 1,
        ),
    )


def test_submit__by_other_account__reverts(m, market, provider, stranger):
    job_id = m.accepted()
    with ape.reverts(
        market.MarketNotJobProvider,
        jobId=job_id,
        provider=provider.address,
        caller=stranger.address,
    ):
        market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "", sender=stranger)


def test_submit__by_other_account_naming_itself_provider__reverts(m, market, provider, provider2):
    """The hijack attack: another account passes the record with itself as the provider."""
    job_id = m.accepted()
    hijacked = dataclasses.replace(m.job(job_id), provider=provider2.address)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.submitResult(job_id, hijacked.record(), RESULT_ROOT, SHARDS, "", sender=provider2)
    assert m.job(job_id).state == ACCEPTED


def test_submit__before_accept__reverts(m, market, provider):
    job_id = m.post()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=POSTED):
        market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "", sender=provider)


def test_submit__twice__reverts(m, market, provider):
    job_id = m.submitted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=SUBMITTED):
        market.submitResult(job_id, m.rec(job_id), b"\x01" * 32, SHARDS, "", sender=provider)


def test_submit__after_deliver_by__reverts(m, market, chain, provider):
    job_id = m.accepted()
    deliver_by = m.job(job_id).deliver_by
    chain.pending_timestamp = deliver_by + 1
    with ape.reverts(
        market.MarketDeadlinePassed, jobId=job_id, deadline=deliver_by, timestamp=deliver_by + 1
    ):
        market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "", sender=provider)


def test_submit__after_deliver_by_with_the_deadline_forged_later__reverts(
    m, market, chain, provider
):
    """A late provider passes the record with its delivery deadline pushed back."""
    job_id = m.accepted()
    job = m.job(job_id)
    chain.pending_timestamp = job.deliver_by + 1
    later = dataclasses.replace(job, deliver_by=job.deliver_by + DAY)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.submitResult(job_id, later.record(), RESULT_ROOT, SHARDS, "", sender=provider)


def test_submit__zero_root__reverts(m, market, provider):
    job_id = m.accepted()
    with ape.reverts(market.MarketZeroResultRoot, jobId=job_id):
        market.submitResult(job_id, m.rec(job_id), b"\x00" * 32, SHARDS, "", sender=provider)


def test_submit__wrong_shard_count__reverts(m, market, provider):
    job_id = m.accepted()
    with ape.reverts(
        market.MarketShardCountMismatch, jobId=job_id, expected=SHARDS, submitted=SHARDS + 1
    ):
        market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS + 1, "", sender=provider)


# ---------------------------------------------------------------- cancel


def test_cancel__by_client_before_accept__refunds(m, market, client, balance_of):
    job_id = m.post()
    before = balance_of(client)
    tx = market.cancelJob(job_id, m.rec(job_id), sender=client)
    assert event_args(tx, market.JobCancelled) == {
        "jobId": job_id,
        "client": client.address,
        "refundNtk": PAYMENT,
    }
    expect_ended(m, job_id, CANCELLED)
    assert balance_of(client) == before + PAYMENT
    assert balance_of(market) == 0


def test_cancel__with_a_higher_payment_forged__reverts(m, market, client, balance_of):
    """The drain attack: a client cancels its job with a record claiming a bigger payment, to
    be refunded from the escrow of other jobs."""
    job_id = m.post()
    m.post(paymentNtk=PAYMENT * 5, collateralNtk=PAYMENT)  # another job's escrow: the loot
    inflated = dataclasses.replace(m.job(job_id), payment_ntk=PAYMENT * 6)
    before = balance_of(client)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.cancelJob(job_id, inflated.record(), sender=client)
    assert balance_of(client) == before
    assert balance_of(market) == PAYMENT * 6
    market.cancelJob(job_id, m.rec(job_id), sender=client)
    assert balance_of(client) == before + PAYMENT


def test_cancel__by_stranger__reverts(m, market, client, stranger):
    job_id = m.post()
    with ape.reverts(
        market.MarketNotJobClient, jobId=job_id, client=client.address, caller=stranger.address
    ):
        market.cancelJob(job_id, m.rec(job_id), sender=stranger)


def test_cancel__by_stranger_naming_itself_client__reverts(m, market, stranger, balance_of):
    """A stranger passes the record with itself as the client, to be refunded."""
    job_id = m.post()
    stolen = dataclasses.replace(m.job(job_id), client=stranger.address)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.cancelJob(job_id, stolen.record(), sender=stranger)
    assert balance_of(market) == PAYMENT


def test_cancel__after_accept__reverts(m, market, client):
    job_id = m.accepted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.cancelJob(job_id, m.rec(job_id), sender=client)


def test_cancel__twice__reverts(m, market, client):
    """The second cancel finds no job: the first cleared its digest, whichever record is
    passed (the one that was current, or the ended one its events give)."""
    job_id = m.post()
    record = m.rec(job_id)
    market.cancelJob(job_id, record, sender=client)
    for again in (record, m.rec(job_id)):
        with ape.reverts(market.MarketJobNotFound, jobId=job_id):
            market.cancelJob(job_id, again, sender=client)
    expect_ended(m, job_id, CANCELLED)


def test_cancel__unknown_job__reverts(market, client):
    with ape.reverts(market.MarketJobNotFound, jobId=9):
        market.cancelJob(9, ZERO_RECORD, sender=client)


# ---------------------------------------------------------------- timeouts


def test_expire__posted_job_after_accept_by__refunds_anyone_may_call(
    m, market, chain, client, stranger, balance_of
):
    job_id = m.post()
    chain.pending_timestamp = m.job(job_id).accept_by + 1
    before = balance_of(client)
    tx = market.expireJob(job_id, m.rec(job_id), sender=stranger)
    assert event_args(tx, market.JobExpired) == {
        "jobId": job_id,
        "client": client.address,
        "refundNtk": PAYMENT,
    }
    expect_ended(m, job_id, EXPIRED)
    assert balance_of(client) == before + PAYMENT


def test_expire__posted_job_at_accept_by__reverts(m, market, chain, stranger):
    job_id = m.post()
    accept_by = m.job(job_id).accept_by
    chain.pending_timestamp = accept_by
    with ape.reverts(
        market.MarketDeadlineNotReached, jobId=job_id, deadline=accept_by, timestamp=accept_by
    ):
        market.expireJob(job_id, m.rec(job_id), sender=stranger)


def test_expire__undelivered_job__refunds_and_slashes(
    m, market, token, chain, client, provider, stranger, balance_of
):
    job_id = m.accepted()
    chain.pending_timestamp = m.job(job_id).deliver_by + 1
    before, supply = balance_of(client), token.totalSupply()
    tx = market.expireJob(job_id, m.rec(job_id), sender=stranger)
    half = COLLATERAL // 2
    assert event_args(tx, market.JobDefaulted) == {
        "jobId": job_id,
        "provider": provider.address,
        "refundNtk": PAYMENT + half,
        "compensationNtk": half,
        "burnedNtk": COLLATERAL - half,
    }
    expect_ended(m, job_id, DEFAULTED)
    assert balance_of(client) == before + PAYMENT + half
    assert token.totalSupply() == supply - (COLLATERAL - half)
    assert market.getProvider(provider).stakeNtk == STAKE - COLLATERAL
    assert balance_of(market) == STAKE - COLLATERAL


def test_expire__undelivered_job_with_odd_collateral__rounds_compensation_down(
    m, market, chain, stranger
):
    job_id = m.accepted(collateralNtk=3, challengeCount=SHARDS)
    chain.pending_timestamp = m.job(job_id).deliver_by + 1
    log = event_args(market.expireJob(job_id, m.rec(job_id), sender=stranger), market.JobDefaulted)
    assert (log["compensationNtk"], log["burnedNtk"]) == (1, 2)


def test_expire__undelivered_one_wei_collateral__burns_the_wei(m, market, token, chain, stranger):
    m.register(stake=1)
    job_id = m.accepted(collateralNtk=1, challengeCount=SHARDS)
    chain.pending_timestamp = m.job(job_id).deliver_by + 1
    tx = market.expireJob(job_id, m.rec(job_id), sender=stranger)
    log = event_args(tx, market.JobDefaulted)
    assert (log["compensationNtk"], log["burnedNtk"], log["refundNtk"]) == (0, 1, PAYMENT)


def test_expire__accepted_job_at_deliver_by__reverts(m, market, chain, stranger):
    job_id = m.accepted()
    deliver_by = m.job(job_id).deliver_by
    chain.pending_timestamp = deliver_by
    with ape.reverts(
        market.MarketDeadlineNotReached, jobId=job_id, deadline=deliver_by, timestamp=deliver_by
    ):
        market.expireJob(job_id, m.rec(job_id), sender=stranger)


def test_expire__accepted_job_with_the_deadline_forged_earlier__reverts(m, market, chain, client):
    """A client ends a job early, slashing a provider still in time, by passing the record
    with its delivery deadline moved to the past."""
    job_id = m.accepted()
    job = m.job(job_id)
    chain.pending_timestamp = job.accept_by + 1
    earlier = dataclasses.replace(job, deliver_by=job.accept_by)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.expireJob(job_id, earlier.record(), sender=client)
    assert m.job(job_id).state == ACCEPTED


def test_expire__submitted_job_without_quorum__refunds_and_unlocks(
    m, market, chain, client, provider, stranger, balance_of
):
    job_id = m.submitted()
    chain.pending_timestamp = m.job(job_id).verdict_by + 1
    before = balance_of(client)
    tx = market.expireJob(job_id, m.rec(job_id), sender=stranger)
    assert event_args(tx, market.JobLapsed) == {
        "jobId": job_id,
        "provider": provider.address,
        "refundNtk": PAYMENT,
        "collateralNtk": COLLATERAL,
    }
    expect_ended(m, job_id, LAPSED)
    assert balance_of(client) == before + PAYMENT
    assert market.getProvider(provider).stakeNtk == STAKE


def test_expire__submitted_job_at_verdict_by__reverts(m, market, chain, stranger):
    job_id = m.submitted()
    verdict_by = m.job(job_id).verdict_by
    chain.pending_timestamp = verdict_by
    with ape.reverts(
        market.MarketDeadlineNotReached, jobId=job_id, deadline=verdict_by, timestamp=verdict_by
    ):
        market.expireJob(job_id, m.rec(job_id), sender=stranger)


def test_expire__terminal_job__reverts(m, market, client, stranger):
    job_id = m.post()
    record = m.rec(job_id)
    market.cancelJob(job_id, record, sender=client)
    for ended in (record, m.rec(job_id)):
        with ape.reverts(market.MarketJobNotFound, jobId=job_id):
            market.expireJob(job_id, ended, sender=stranger)
    expect_ended(m, job_id, CANCELLED)


def test_expire__unknown_job__reverts(market, stranger):
    with ape.reverts(market.MarketJobNotFound, jobId=0):
        market.expireJob(0, ZERO_RECORD, sender=stranger)


def test_expire__twice__pays_once(m, market, chain, client, stranger, balance_of):
    job_id = m.post()
    chain.pending_timestamp = m.job(job_id).accept_by + 1
    record = m.rec(job_id)
    before = balance_of(client)
    market.expireJob(job_id, record, sender=stranger)
    with ape.reverts(market.MarketJobNotFound, jobId=job_id):
        market.expireJob(job_id, record, sender=stranger)
    assert balance_of(client) == before + PAYMENT
    expect_ended(m, job_id, EXPIRED)


def test_unknown_job__has_no_digest_and_no_record(m, market):
    assert bytes(market.jobDigest(1)) == ZERO_DIGEST
    with pytest.raises(JobRecordError):
        m.job(1)


def test_lapsed_collateral__can_back_a_new_job(m, market, chain, provider, stranger):
    """After a no-fault lapse, the unlocked collateral is free stake again."""
    m.register(stake=COLLATERAL)
    job_id = m.submitted()
    chain.pending_timestamp = m.job(job_id).verdict_by + 1
    market.expireJob(job_id, m.rec(job_id), sender=stranger)
    fresh = m.post()
    market.acceptJob(fresh, m.rec(fresh), sender=provider)
    assert market.getProvider(provider).stakeNtk == 0


# ---------------------------------------------------------------- the record, step by step


def walk_to(m: Market, ending: JobState) -> tuple[int, list[OnChainJob], Any]:
    """Posts a job and takes it the genuine way to `ending`, checking after every step that
    the market's digest is the hash of the record that step must leave. Returns the job id,
    its records while it was open (in order) and the transaction that ended it."""
    market, chain = m.contract, m.chain
    tx = market.postJob(m.request(), sender=m.client)
    job_id = int(tx.return_value)
    history = [posted(tx, market)]
    expect_current(m, job_id, history[-1])
    if ending == JobState.CANCELLED:
        return job_id, history, market.cancelJob(job_id, history[-1].record(), sender=m.client)
    if ending == JobState.EXPIRED:
        chain.pending_timestamp = history[-1].accept_by + 1
        return job_id, history, market.expireJob(job_id, history[-1].record(), sender=m.client)
    if not market.getProvider(m.provider).registered:
        m.register()
    market.acceptJob(job_id, history[-1].record(), sender=m.provider)
    history.append(
        dataclasses.replace(history[-1], provider=m.provider.address, state=JobState.ACCEPTED)
    )
    expect_current(m, job_id, history[-1])
    if ending == JobState.DEFAULTED:
        chain.pending_timestamp = history[-1].deliver_by + 1
        return job_id, history, market.expireJob(job_id, history[-1].record(), sender=m.client)
    tx = market.submitResult(
        job_id, history[-1].record(), RESULT_ROOT, SHARDS, "ipfs://bundle", sender=m.provider
    )
    history.append(
        dataclasses.replace(
            history[-1],
            state=JobState.SUBMITTED,
            result_root=RESULT_ROOT,
            seed_block=tx.block_number + 1,
        )
    )
    expect_current(m, job_id, history[-1])
    chain.mine(2)
    if ending == JobState.LAPSED:
        chain.pending_timestamp = history[-1].verdict_by + 1
        return job_id, history, market.expireJob(job_id, history[-1].record(), sender=m.client)
    accepted = ending == JobState.PAID
    signatures = m.sign(job_id, accepted, m.oracles[:2])
    return (
        job_id,
        history,
        market.settle(job_id, history[-1].record(), accepted, signatures, sender=m.oracles[0]),
    )


@pytest.mark.parametrize(
    "ending",
    [PAID, REJECTED, CANCELLED, EXPIRED, DEFAULTED, LAPSED],
    ids=lambda state: JobState(state).label,
)
def test_ended_job__digest_cleared_and_every_call_reverts_not_found(m, market, ending):
    """After every step the digest is the hash of the step's record (the market's hashJob and
    the Python one agree); the ending clears it, the events fold to the last record with the
    terminal state, and every entry point then finds no job, whichever record it is given
    (any the job had while open, or its final one)."""
    job_id, history, tx = walk_to(m, JobState(ending))
    event = next(name for name, state in ENDINGS.items() if state == ending)
    assert len(tx.events.filter(getattr(market, event))) == 1
    expect_ended(m, job_id, ending)
    final = m.job(job_id)
    assert final == dataclasses.replace(history[-1], state=JobState(ending))
    names = [name for name, _ in ape_reader(market).events(job_id)]
    steps = ["JobPosted", "JobAccepted", "ResultSubmitted"][: len(history)]
    assert names == [*steps, event]
    for record in [*history, final]:
        for entry in ENTRY_POINTS:
            with ape.reverts(market.MarketJobNotFound, jobId=job_id):
                call(m, entry, job_id, record.record())
    expect_ended(m, job_id, ending)


def ready(m: Market, entry: str) -> int:
    """A job on which `entry`, called (see `call`) with the job's current record, succeeds."""
    if entry == "acceptJob":
        m.register()
        return m.post()
    if entry == "cancelJob":
        return m.post()
    if entry == "submitResult":
        return m.accepted()
    if entry == "expireJob":
        job_id = m.accepted()
        m.chain.pending_timestamp = m.job(job_id).deliver_by + 1
        return job_id
    return m.submitted()  # settle, settleBatch, fixChallengeSeed


SUCCESS_EVENTS = {
    "acceptJob": "JobAccepted",
    "submitResult": "ResultSubmitted",
    "settle": "JobPaid",
    "settleBatch": "JobPaid",
    "cancelJob": "JobCancelled",
    "expireJob": "JobDefaulted",
    "fixChallengeSeed": "ChallengeSeedFixed",
}


def forgeries(job: OnChainJob, other: str) -> dict[str, OnChainJob]:
    """The job's record with one field changed, each the way some party would like it."""
    flipped = JobState.ACCEPTED if job.state == JobState.POSTED else JobState.POSTED
    changes: dict[str, dict[str, Any]] = {
        "higher payment": {"payment_ntk": job.payment_ntk * 2},
        "another client": {"client": other},
        "another provider": {"provider": other},
        "lower collateral": {"collateral_ntk": job.collateral_ntk - 1},
        "state flipped": {"state": flipped},
        "state ended": {"state": JobState.PAID},
        "later accept_by": {"accept_by": job.accept_by + DAY},
        "earlier deliver_by": {"deliver_by": job.accept_by + 1},
        "later deliver_by": {"deliver_by": job.deliver_by + DAY},
        "later verdict_by": {"verdict_by": job.verdict_by + DAY},
        "seed block moved": {"seed_block": job.seed_block + 1},
        "more shards": {"shard_count": job.shard_count + 1},
        "fewer challenges": {"challenge_count": job.challenge_count - 1},
        "no fee": {"fee_bps": 0},
        "another oracle epoch": {"oracle_epoch": job.oracle_epoch + 1},
        "threshold one": {"threshold": 1},
        "another spec": {"spec_hash": b"\x01" * 32},
        "another result root": {"result_root": b"\x02" * 32},
    }
    return {name: dataclasses.replace(job, **change) for name, change in changes.items()}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_forged_record__reverts_on_every_entry_point(m, market, provider2, entry):
    """Every field of a job's record, changed: each forgery reverts MarketJobRecordMismatch and
    changes nothing; the genuine record then works, so it was the record that was refused."""
    job_id = ready(m, entry)
    job = m.job(job_id)
    signatures = (
        verdict_signatures(m, job_id, entry == "settleBatch")
        if entry in ("settle", "settleBatch")
        else None
    )
    for name, forged in forgeries(job, provider2.address).items():
        assert forged.digest() != job.digest(), name
        with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
            call(m, entry, job_id, forged.record(), signatures=signatures)
    expect_current(m, job_id, job)
    tx = call(m, entry, job_id, job.record(), signatures=signatures)
    assert len(tx.events.filter(getattr(market, SUCCESS_EVENTS[entry]))) == 1


def test_stale_posted_record__after_acceptance__reverts_everywhere(
    m, market, chain, provider, provider2
):
    """Once a provider accepted, the Posted record is stale. Nobody can use it: not another
    provider to accept the job again, not the client to cancel it (refunded while the
    provider works), not anyone to expire it as unaccepted (refunding the client and leaving
    the collateral locked), and not the provider to submit or anyone to settle."""
    m.register()
    m.register(provider2)
    job_id = m.post()
    stale = m.job(job_id)
    market.acceptJob(job_id, stale.record(), sender=provider)
    accepted = dataclasses.replace(stale, provider=provider.address, state=JobState.ACCEPTED)
    expect_current(m, job_id, accepted)
    chain.pending_timestamp = stale.accept_by + 1
    for entry in ENTRY_POINTS:
        sender = provider2 if entry == "acceptJob" else None
        with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
            call(m, entry, job_id, stale.record(), sender=sender)
    expect_current(m, job_id, accepted)


def test_stale_accepted_record__after_submission__reverts_everywhere(m, market, chain, provider):
    """Once the result is committed, the Accepted record is stale: the provider cannot commit
    another root after seeing its challenge, and nobody can default the job after the delivery
    deadline (slashing a provider that delivered)."""
    job_id = m.accepted()
    stale = m.job(job_id)
    tx = market.submitResult(job_id, stale.record(), RESULT_ROOT, SHARDS, "", sender=provider)
    submitted = dataclasses.replace(
        stale, state=JobState.SUBMITTED, result_root=RESULT_ROOT, seed_block=tx.block_number + 1
    )
    chain.mine(2)
    chain.pending_timestamp = stale.deliver_by + 1
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.submitResult(job_id, stale.record(), b"\x01" * 32, SHARDS, "", sender=provider)
    for entry in ENTRY_POINTS:
        with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
            call(m, entry, job_id, stale.record())
    expect_current(m, job_id, submitted)


def test_another_jobs_record__reverts_everywhere(m, market):
    """A record is bound to its job by the digest slot: a submitted job's record passed for a
    bigger posted job, and the other way round, reverts on every entry point; for an id never
    posted the job is not found."""
    small = m.submitted()
    big = m.post(paymentNtk=PAYMENT * 3)
    records = {small: m.job(small), big: m.job(big)}
    for job_id, foreign in ((small, records[big]), (big, records[small])):
        for entry in ENTRY_POINTS:
            with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
                call(m, entry, job_id, foreign.record())
    for entry in ENTRY_POINTS:
        with ape.reverts(market.MarketJobNotFound, jobId=99):
            call(m, entry, 99, records[small].record())
    for job_id, record in records.items():
        expect_current(m, job_id, record)


def test_identical_jobs__share_a_record_yet_each_moves_alone(
    m, market, client, provider, balance_of
):
    """A record carries no job id: two jobs posted with the same request under the same terms
    have the same record and digest. Passing one's record for the other is then passing that
    job's own record, which acts on that job alone; once one of them moves, the shared record
    is stale for it and still current for the other."""
    m.register()
    request = m.request()
    first = int(market.postJob(request, sender=client).return_value)
    second = int(market.postJob(request, sender=client).return_value)
    shared = m.job(first).record()
    assert m.job(second).record() == shared
    assert bytes(market.jobDigest(first)) == bytes(market.jobDigest(second))
    market.acceptJob(first, shared, sender=provider)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=first):
        market.cancelJob(first, shared, sender=client)
    before = balance_of(client)
    market.cancelJob(second, shared, sender=client)
    assert balance_of(client) == before + PAYMENT
    expect_ended(m, second, CANCELLED)
    assert m.job(first).state == ACCEPTED
