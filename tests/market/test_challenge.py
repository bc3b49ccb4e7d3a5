"""The challenge: a seed from a block that did not exist at commit time, fixed for good and
never drawn twice, and the index derivation mirrored in Python."""

from __future__ import annotations

from dataclasses import replace

import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurotoken.market.verdicts import VerdictError, challenged_indices
from tests.constants import (
    ACCEPTED,
    CHALLENGES,
    HISTORY_STORAGE,
    LAPSED,
    PAYMENT,
    POSTED,
    SHARDS,
)
from tests.market.conftest import RESULT_ROOT, event_args


@pytest.fixture
def harness(project, owner):
    """The market's challenge derivation on any input."""
    return project.ChallengeHarness.deploy(sender=owner)


def drop_block_history(chain) -> None:
    """Empties the EIP-2935 history contract, as on a chain without it: a block hash is then
    out of reach after 256 blocks instead of 8,191 (which would take anvil minutes to mine)."""
    chain.provider.make_request("anvil_setCode", [HISTORY_STORAGE, "0x"])


@pytest.mark.parametrize("state", [POSTED, ACCEPTED])
def test_challenged_shards__before_result__reverts(m, market, state):
    """No challenge before a result: a record without a root and a seed block has none."""
    job_id = m.post() if state == POSTED else m.accepted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=state):
        market.challengedShards(job_id, m.rec(job_id))


def test_challenge_seed__in_the_submit_block__is_pending(m, market, provider):
    job_id = m.accepted()
    tx = market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "", sender=provider)
    seed_block = tx.block_number + 1
    assert m.job(job_id).seed_block == seed_block
    with ape.reverts(market.MarketChallengeSeedPending, jobId=job_id, seedBlock=seed_block):
        market.challengeSeed(job_id, seed_block)
    with ape.reverts(market.MarketChallengeSeedPending, jobId=job_id, seedBlock=seed_block):
        market.challengedShards(job_id, m.rec(job_id))


def test_challenge_seed__is_the_hash_of_the_block_after_the_commit(m, market, chain):
    job_id = m.submitted()
    seed_block = m.job(job_id).seed_block
    assert bytes(market.challengeSeed(job_id, seed_block)) == bytes(chain.blocks[seed_block].hash)


def test_challenged_shards__match_python_mirror(m, market):
    job_id = m.submitted()
    seed = m.seed(job_id)
    on_chain = list(market.challengedShards(job_id, m.rec(job_id)))
    assert on_chain == challenged_indices(seed, job_id, SHARDS, CHALLENGES)
    assert len(set(on_chain)) == CHALLENGES
    assert all(0 <= i < SHARDS for i in on_chain)


def test_challenged_shards__all_shards__is_a_permutation(m, market):
    job_id = m.submitted(shardCount=SHARDS, challengeCount=SHARDS)
    assert sorted(market.challengedShards(job_id, m.rec(job_id))) == list(range(SHARDS))


def test_challenge_seed__after_256_blocks__read_from_history(m, market, chain):
    """Past the BLOCKHASH window the seed is read from the EIP-2935 history contract."""
    job_id = m.submitted()
    seed_block = m.job(job_id).seed_block
    chain.mine(300)
    assert bytes(market.challengeSeed(job_id, seed_block)) == bytes(chain.blocks[seed_block].hash)


def test_fix_challenge_seed__stores_it_for_good(m, market, chain, stranger):
    job_id = m.submitted()
    record = m.job(job_id)
    seed_block = record.seed_block
    expected = bytes(chain.blocks[seed_block].hash)
    tx = market.fixChallengeSeed(job_id, record.record(), sender=stranger)
    assert event_args(tx, market.ChallengeSeedFixed) == {
        "jobId": job_id,
        "seedBlock": seed_block,
        "seed": expected,
    }
    # Fixing the seed leaves the record alone.
    assert bytes(market.jobDigest(job_id)) == record.digest()
    drop_block_history(chain)
    chain.mine(260)
    assert bytes(market.challengeSeed(job_id, seed_block)) == expected
    assert list(market.challengedShards(job_id, record.record())) == challenged_indices(
        expected, job_id, SHARDS, CHALLENGES
    )


def test_fixed_seed__after_history_is_gone__verdict_over_it_settles(m, market, chain, oracles):
    job_id = m.submitted()
    market.fixChallengeSeed(job_id, m.rec(job_id), sender=oracles[0])
    drop_block_history(chain)
    chain.mine(260)
    tx = market.settle(
        job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0]
    )
    assert len(tx.events.filter(market.JobPaid)) == 1


def test_fix_challenge_seed__twice__reverts(m, market, stranger):
    job_id = m.submitted()
    market.fixChallengeSeed(job_id, m.rec(job_id), sender=stranger)
    seed = m.seed(job_id)
    with ape.reverts(market.MarketChallengeSeedAlreadyFixed, jobId=job_id, seed=seed):
        market.fixChallengeSeed(job_id, m.rec(job_id), sender=stranger)


def test_fix_challenge_seed__pending__reverts(m, market, provider):
    job_id = m.accepted()
    tx = market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "", sender=provider)
    with ape.reverts(
        market.MarketChallengeSeedPending, jobId=job_id, seedBlock=tx.block_number + 1
    ):
        market.fixChallengeSeed(job_id, m.rec(job_id), sender=provider)


def test_fix_challenge_seed__not_submitted__reverts(m, market, stranger):
    job_id = m.accepted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.fixChallengeSeed(job_id, m.rec(job_id), sender=stranger)


def test_fix_challenge_seed__unknown_job__reverts(m, market, stranger):
    record = m.rec(m.submitted())  # a genuine record, of another job
    with ape.reverts(market.MarketJobNotFound, jobId=3):
        market.fixChallengeSeed(3, record, sender=stranger)


def test_provider_withholds_until_seed_ages_out__gets_no_second_draw(
    m, market, chain, provider, oracles, balance_of, client
):
    """The re-roll attack: a provider that sees its challenge hit a faked shard waits for the
    seed to age out of history and asks for a fresh draw. The seed block never moves: fixing
    an aged-out seed reverts, so does settling, a record with the seed block moved to a fresh
    block does not hash to the job's digest, and the job can only lapse (no draw at all)."""
    job_id = m.submitted()
    job = m.job(job_id)
    seed_block = job.seed_block
    drop_block_history(chain)
    chain.mine(260)
    with ape.reverts(market.MarketChallengeSeedUnavailable, jobId=job_id, seedBlock=seed_block):
        market.challengeSeed(job_id, seed_block)
    for caller in (provider, oracles[0]):
        with ape.reverts(market.MarketChallengeSeedUnavailable, jobId=job_id, seedBlock=seed_block):
            market.fixChallengeSeed(job_id, job.record(), sender=caller)
    assert m.job(job_id).seed_block == seed_block
    with ape.reverts(market.MarketChallengeSeedUnavailable, jobId=job_id, seedBlock=seed_block):
        market.challengedShards(job_id, job.record())
    old_seed = bytes(chain.blocks[seed_block].hash)
    with ape.reverts(market.MarketChallengeSeedUnavailable, jobId=job_id, seedBlock=seed_block):
        market.settle(
            job_id,
            job.record(),
            True,
            m.sign(job_id, True, oracles[:2], seed=old_seed),
            sender=oracles[0],
        )
    # A fresh draw through the record: its seed block moved to a recent block.
    rerolled = replace(job, seed_block=chain.blocks.head.number - 1)
    fresh_seed = bytes(market.challengeSeed(job_id, rerolled.seed_block))
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.fixChallengeSeed(job_id, rerolled.record(), sender=provider)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.settle(
            job_id,
            rerolled.record(),
            True,
            m.sign(job_id, True, oracles[:2], seed=fresh_seed),
            sender=oracles[0],
        )
    assert bytes(market.jobDigest(job_id)) == job.digest()
    chain.mine(deltatime=4 * 3600)
    before = balance_of(client)
    tx = market.expireJob(job_id, job.record(), sender=provider)
    assert len(tx.events.filter(market.JobLapsed)) == 1
    assert bytes(market.jobDigest(job_id)) == b"\x00" * 32
    assert m.job(job_id).state == LAPSED
    assert balance_of(client) - before == PAYMENT


@pytest.mark.parametrize(("shards", "k"), [(0, 0), (5, 0), (5, 6)])
def test_derive__invalid_counts__reverts(harness, shards, k):
    with ape.reverts(harness.ChallengeHarnessInvalidCounts, shardCount=shards, challengeCount=k):
        harness.derive(b"\x00" * 32, 1, shards, k)


@pytest.mark.parametrize(("shards", "k"), [(0, 0), (5, 0), (5, 6)])
def test_python_derive__invalid_counts__raises(shards, k):
    with pytest.raises(VerdictError):
        challenged_indices(b"\x00" * 32, 1, shards, k)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.binary(min_size=32, max_size=32),
    job_id=st.integers(min_value=0, max_value=2**64),
    shards_and_k=st.integers(min_value=1, max_value=5000).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(min_value=1, max_value=min(n, 64)))
    ),
)
def test_python_derivation__equals_contract(harness, seed, job_id, shards_and_k):
    shards, k = shards_and_k
    assert list(harness.derive(seed, job_id, shards, k)) == challenged_indices(
        seed, job_id, shards, k
    )
