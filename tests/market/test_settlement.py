"""Settlement by m-of-n oracle verdicts: payouts, every way a signature is refused, oracle-set
changes, batches, and settlement racing a timeout in the same block."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import ape
import pytest
from eth_account import Account

from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, Verdict, malleate, sign_batch, sign_verdict
from tests.constants import (
    ACCEPTED,
    CANCELLED,
    COLLATERAL,
    FEE_BPS,
    LAPSED,
    PAID,
    PAYMENT,
    REJECTED,
    SHARDS,
    STAKE,
)
from tests.helpers import sorted_signatures
from tests.market.conftest import RESULT_ROOT, Market, event_args


def fee_of(payment: int) -> int:
    return -(-payment * FEE_BPS // 10_000)  # rounded up, in integers


def signer_of(account: Any) -> str:
    return str(account.address)


def ended(m: Market, job_id: int) -> JobState:
    """The state an ended job was left in, from its events, after checking that the market
    has forgotten it (its digest is cleared)."""
    assert bytes(m.contract.jobDigest(job_id)) == bytes(32), f"job {job_id} is still open"
    return m.job(job_id).state


def still_open(m: Market, job_id: int, record: OnChainJob) -> None:
    """The job's record is still `record` (the market stores its digest): nothing happened."""
    assert bytes(m.contract.jobDigest(job_id)) == record.digest()
    assert m.job(job_id) == record


def entries_of(m: Market, verdicts: Sequence[tuple[int, bool]]) -> list[tuple[Any, ...]]:
    """settleBatch's entries (IComputeMarket.BatchEntry) for (job id, accepted) pairs, each
    with the job's current record."""
    return [(job_id, m.rec(job_id), accepted) for job_id, accepted in verdicts]


# ---------------------------------------------------------------- accept / reject


def test_settle__accepted__credits_provider_and_fee(
    m, market, provider, stranger, oracles, balance_of
):
    job_id = m.submitted()
    tx = market.settle(
        job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=stranger
    )
    fee = fee_of(PAYMENT)
    assert event_args(tx, market.JobPaid) == {
        "jobId": job_id,
        "provider": provider.address,
        "providerNtk": PAYMENT - fee,
        "feeNtk": fee,
    }
    assert ended(m, job_id) == PAID
    account = market.getProvider(provider)
    assert (account.stakeNtk, account.earnedNtk) == (STAKE, PAYMENT - fee)
    assert market.feesNtk() == fee
    assert balance_of(market) == STAKE + PAYMENT  # stake + earnings + fee


def test_settle__fee_rounds_up_in_the_markets_favour(m, market, oracles):
    job_id = m.submitted(paymentNtk=41)  # 41 * 2.5% = 1.025 -> 2
    tx = market.settle(
        job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0]
    )
    assert event_args(tx, market.JobPaid)["feeNtk"] == 2
    assert event_args(tx, market.JobPaid)["providerNtk"] == 39


def test_settle__fee_is_the_one_in_force_when_posted(m, market, owner, oracles):
    job_id = m.submitted()
    market.setFeeBps(1_000, sender=owner)
    tx = market.settle(
        job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0]
    )
    assert event_args(tx, market.JobPaid)["feeNtk"] == fee_of(PAYMENT)


def test_settle__rejected__refunds_client_and_slashes(
    m, market, token, client, provider, oracles, balance_of
):
    job_id = m.submitted()
    before, supply = balance_of(client), token.totalSupply()
    tx = market.settle(
        job_id, m.rec(job_id), False, m.sign(job_id, False, oracles[1:]), sender=oracles[2]
    )
    half = COLLATERAL // 2
    assert event_args(tx, market.JobRejected) == {
        "jobId": job_id,
        "provider": provider.address,
        "refundNtk": PAYMENT + half,
        "compensationNtk": half,
        "burnedNtk": COLLATERAL - half,
    }
    assert ended(m, job_id) == REJECTED
    assert balance_of(client) == before + PAYMENT + half
    assert token.totalSupply() == supply - (COLLATERAL - half)
    account = market.getProvider(provider)
    assert (account.stakeNtk, account.earnedNtk) == (STAKE - COLLATERAL, 0)
    assert market.feesNtk() == 0
    assert balance_of(market) == STAKE - COLLATERAL


def test_settle__all_three_oracles__accepted(m, market, oracles):
    job_id = m.submitted()
    tx = market.settle(
        job_id, m.rec(job_id), True, m.sign(job_id, True, oracles), sender=oracles[0]
    )
    assert event_args(tx, market.JobPaid)["jobId"] == job_id
    assert ended(m, job_id) == PAID


# ---------------------------------------------------------------- refused signatures


def test_settle__one_signature_below_threshold__reverts(m, market, oracles):
    job_id = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=1, threshold=2):
        market.settle(
            job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:1]), sender=oracles[0]
        )


def test_settle__no_signatures__reverts(m, market, stranger):
    job_id = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=0, threshold=2):
        market.settle(job_id, m.rec(job_id), True, [], sender=stranger)


def test_settle__with_non_oracle_signer__reverts(m, market, oracles, outsider_key):
    job_id = m.submitted()
    signatures = m.sign(job_id, True, [oracles[0], outsider_key])
    with ape.reverts(market.MarketSignerNotOracle, signer=outsider_key.address):
        market.settle(job_id, m.rec(job_id), True, signatures, sender=oracles[0])


def test_settle__with_duplicate_signer__reverts(m, market, oracles):
    job_id = m.submitted()
    signature = m.sign(job_id, True, oracles[:1])[0]
    with ape.reverts(market.MarketDuplicateSigner, signer=oracles[0].address):
        market.settle(job_id, m.rec(job_id), True, [signature, signature], sender=oracles[0])


def test_settle__with_signers_out_of_order__reverts(m, market, oracles):
    job_id = m.submitted()
    low, high = m.sign(job_id, True, oracles[:2])
    low_addr, high_addr = sorted((o.address for o in oracles[:2]), key=lambda a: int(a, 16))
    with ape.reverts(market.MarketSignersNotAscending, previous=high_addr, signer=low_addr):
        market.settle(job_id, m.rec(job_id), True, [high, low], sender=oracles[0])


def test_settle__with_malleable_signature__reverts(m, market, oracles):
    """s' = n - s (v flipped) recovers the same oracle; OpenZeppelin's ECDSA refuses it."""
    job_id = m.submitted()
    low, high = m.sign(job_id, True, oracles[:2])
    twin = malleate(high)
    with ape.reverts(market.ECDSAInvalidSignatureS, s=twin[32:64]):
        market.settle(job_id, m.rec(job_id), True, [low, twin], sender=oracles[0])


def test_settle__with_malleable_twin_as_second_vote__reverts(m, market, oracles):
    """One oracle cannot count twice by sending its signature and the signature's twin."""
    job_id = m.submitted()
    (signature,) = m.sign(job_id, True, oracles[:1])
    with ape.reverts(market.ECDSAInvalidSignatureS):
        market.settle(
            job_id, m.rec(job_id), True, [signature, malleate(signature)], sender=oracles[0]
        )


def test_settle__with_short_signature__reverts(m, market, oracles):
    job_id = m.submitted()
    low, high = m.sign(job_id, True, oracles[:2])
    with ape.reverts(market.ECDSAInvalidSignatureLength, length=64):
        market.settle(job_id, m.rec(job_id), True, [low, high[:64]], sender=oracles[0])


def test_settle__with_garbage_signature__reverts(m, market, oracles):
    job_id = m.submitted()
    low, _ = m.sign(job_id, True, oracles[:2])
    with ape.reverts(market.ECDSAInvalidSignature):
        market.settle(job_id, m.rec(job_id), True, [low, b"\x00" * 64 + b"\x1b"], sender=oracles[0])


def _forged(m: Market, oracles: list[Any], job_id: int, case: str) -> list[bytes]:
    """Signatures by real oracles, but over a message other than the one being settled."""
    root = m.job(job_id).result_root
    domain = m.domain
    seed = m.seed(job_id)
    verdict = Verdict(job_id, root, seed, True)
    if case == "other_root":
        verdict = Verdict(job_id, b"\x01" * 32, seed, True)
    elif case == "other_job":
        verdict = Verdict(job_id + 1, root, seed, True)
    elif case == "other_seed":
        verdict = Verdict(job_id, root, b"\x02" * 32, True)
    elif case == "other_verdict":
        verdict = Verdict(job_id, root, seed, False)
    elif case == "other_contract":
        domain = MarketDomain(domain.chain_id, "0x" + "11" * 20)
    elif case == "other_chain":
        domain = MarketDomain(1, domain.market)
    return sorted_signatures([sign_verdict(o.private_key, domain, verdict) for o in oracles[:2]])


@pytest.mark.parametrize(
    "case",
    ["other_root", "other_job", "other_seed", "other_verdict", "other_contract", "other_chain"],
)
def test_settle__signed_for_another_message__reverts(m, market, oracles, case):
    """A signature over another root, job, verdict, contract or chain recovers to a stranger."""
    job_id = m.submitted()
    record = m.job(job_id)
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(
            job_id, record.record(), True, _forged(m, oracles, job_id, case), sender=oracles[0]
        )
    still_open(m, job_id, record)


@pytest.mark.parametrize("replayed", ["record_it_was_settled_with", "final_record"])
def test_settle__replayed_after_settlement__reverts(m, market, oracles, replayed):
    """A settled job is forgotten (its digest cleared): neither the record it was settled
    with nor its final one (state Paid, rebuilt from the events) reaches it again, with the
    same verdict or the opposite one."""
    job_id = m.submitted()
    settled = m.rec(job_id)
    signatures = m.sign(job_id, True, oracles[:2])
    market.settle(job_id, settled, True, signatures, sender=oracles[0])
    record = settled if replayed == "record_it_was_settled_with" else m.rec(job_id)
    with ape.reverts(market.MarketJobNotFound, jobId=job_id):
        market.settle(job_id, record, True, signatures, sender=oracles[0])
    with ape.reverts(market.MarketJobNotFound, jobId=job_id):
        market.settle(job_id, record, False, m.sign(job_id, False, oracles[1:]), sender=oracles[0])
    assert ended(m, job_id) == PAID


def test_settle__replayed_on_a_job_with_the_same_root__reverts(m, market, oracles):
    """Two jobs with the same result root: job 1's signatures do not settle job 2."""
    first = m.submitted()
    second = m.submitted()
    signatures = m.sign(first, True, oracles[:2])
    market.settle(first, m.rec(first), True, signatures, sender=oracles[0])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(second, m.rec(second), True, signatures, sender=oracles[0])


def test_settle__with_another_jobs_record__reverts(m, market, oracles):
    """Job 1's current record does not pass for job 2, though both have the same client,
    provider, payment, spec and root: the digest is per job and binds every field."""
    first = m.submitted()
    second = m.submitted()
    record = m.job(second)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=second):
        market.settle(
            second, m.rec(first), True, m.sign(second, True, oracles[:2]), sender=oracles[0]
        )
    still_open(m, second, record)


def test_settle__job_not_submitted__reverts(m, market, oracles):
    job_id = m.accepted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.settle(
            job_id,
            m.rec(job_id),
            True,
            m.sign(job_id, True, oracles[:2], root=RESULT_ROOT, seed=b"\x01" * 32),
            sender=oracles[0],
        )


def test_settle__unknown_job__reverts(m, market, oracles):
    """An id never posted has no digest: even a real job's record does not settle it."""
    real = m.submitted()
    with ape.reverts(market.MarketJobNotFound, jobId=77):
        market.settle(
            77,
            m.rec(real),
            True,
            m.sign(77, True, oracles[:2], root=RESULT_ROOT, seed=m.seed(real)),
            sender=oracles[0],
        )


def test_settle__before_seed_block_exists__reverts(m, market, provider, oracles):
    job_id = m.accepted()
    tx = market.submitResult(job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "", sender=provider)
    seed_block = tx.block_number + 1
    assert m.job(job_id).seed_block == seed_block
    with ape.reverts(market.MarketChallengeSeedPending, jobId=job_id, seedBlock=seed_block):
        market.settle(
            job_id,
            m.rec(job_id),
            True,
            m.sign(job_id, True, oracles[:2], seed=b"\x01" * 32),  # no seed yet to sign over
            sender=oracles[0],
        )


def test_junk_root_committed_at_the_delivery_deadline__is_rejected_before_the_verdict_deadline(
    m, market, chain, provider, oracles, balance_of, client
):
    """The last-second attack: a provider that did no work commits a junk root in the very
    block of `deliverBy`, hoping no verdict can land before `verdictBy` so that the job lapses
    and its collateral comes back. Every job's verdict window is at least the market's
    minimum, so twelve-second blocks leave room for the seed block, confirmations and the
    reject."""
    job_id = m.accepted()
    job = m.job(job_id)
    assert job.verdict_by - job.deliver_by >= market.minVerdictWindow()
    chain.pending_timestamp = job.deliver_by
    market.submitResult(job_id, job.record(), b"\x0b" * 32, SHARDS, "ipfs://junk", sender=provider)
    for _ in range(12):  # the seed block, two confirmations and then some, 12 s apart
        chain.mine(1, deltatime=12)
    before = balance_of(client)
    tx = market.settle(
        job_id, m.rec(job_id), False, m.sign(job_id, False, oracles[:2]), sender=oracles[0]
    )
    assert chain.blocks.head.timestamp < job.verdict_by
    assert ended(m, job_id) == REJECTED
    assert balance_of(client) - before == event_args(tx, market.JobRejected)["refundNtk"]


def test_settle__at_verdict_deadline__succeeds(m, market, chain, oracles):
    job_id = m.submitted()
    chain.pending_timestamp = m.job(job_id).verdict_by
    tx = market.settle(
        job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0]
    )
    assert event_args(tx, market.JobPaid)["jobId"] == job_id
    assert ended(m, job_id) == PAID


def test_settle__after_verdict_deadline__reverts(m, market, chain, oracles):
    job_id = m.submitted()
    verdict_by = m.job(job_id).verdict_by
    chain.pending_timestamp = verdict_by + 1
    with ape.reverts(
        market.MarketDeadlinePassed, jobId=job_id, deadline=verdict_by, timestamp=verdict_by + 1
    ):
        market.settle(
            job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0]
        )


# ---------------------------------------------------------------- oracle-set changes


def test_settle__removed_oracles_signature__counts_for_jobs_posted_before(
    m, market, owner, oracles
):
    job_id = m.submitted()
    signatures = m.sign(job_id, True, oracles[:2])  # signed while both were oracles
    market.removeOracle(oracles[0], sender=owner)
    later = m.submitted()
    assert m.job(later).oracle_epoch == m.job(job_id).oracle_epoch + 1
    with ape.reverts(market.MarketSignerNotOracle, signer=oracles[0].address):
        market.settle(
            later, m.rec(later), True, m.sign(later, True, oracles[:2]), sender=oracles[1]
        )
    market.settle(job_id, m.rec(job_id), True, signatures, sender=oracles[1])
    assert ended(m, job_id) == PAID


def test_settle__newly_added_oracle__counts_only_for_jobs_posted_after(
    m, market, owner, oracles, outsider_key
):
    job_id = m.submitted()
    market.updateOracles([outsider_key], [], 3, sender=owner)
    with ape.reverts(market.MarketSignerNotOracle, signer=outsider_key.address):
        market.settle(
            job_id,
            m.rec(job_id),
            True,
            m.sign(job_id, True, [oracles[0], outsider_key]),
            sender=oracles[0],
        )
    later = m.submitted()
    market.settle(
        later,
        m.rec(later),
        True,
        m.sign(later, True, [*oracles[:2], outsider_key]),
        sender=oracles[0],
    )
    assert ended(m, later) == PAID


def test_settle__with_the_epoch_and_threshold_of_a_record_forged__reverts(
    m, market, owner, oracles, outsider_key
):
    """The oracle epoch and threshold a job settles under are the record's, and the record is
    bound by its digest: a job posted before the outsider joined cannot be moved into the
    outsider's epoch, nor have its threshold lowered to what one signature meets."""
    job_id = m.submitted()
    market.updateOracles([outsider_key], [], 3, sender=owner)
    record = m.job(job_id)
    for forged in (
        dataclasses.replace(record, oracle_epoch=int(market.oracleEpoch())),
        dataclasses.replace(record, threshold=1),
    ):
        with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
            market.settle(
                job_id,
                forged.record(),
                True,
                m.sign(job_id, True, [outsider_key]),
                sender=outsider_key,
            )
    still_open(m, job_id, record)


def test_settle__after_threshold_raised__jobs_posted_after_need_more(m, market, owner, oracles):
    job_id = m.submitted()
    market.setThreshold(3, sender=owner)
    later = m.submitted()
    assert (m.job(job_id).threshold, m.job(later).threshold) == (2, 3)
    with ape.reverts(market.MarketQuorumNotReached, signatures=2, threshold=3):
        market.settle(
            later, m.rec(later), True, m.sign(later, True, oracles[:2]), sender=oracles[0]
        )
    market.settle(later, m.rec(later), True, m.sign(later, True, oracles), sender=oracles[0])
    market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    assert ended(m, job_id) == ended(m, later) == PAID


def test_oracle_changes__leave_settled_jobs_untouched(
    m, market, owner, provider, oracles, outsider_key
):
    job_id = m.submitted()
    market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])

    def books() -> tuple[Any, ...]:
        return (
            bytes(market.jobDigest(job_id)),
            m.job(job_id),
            market.getProvider(provider),
            market.feesNtk(),
        )

    before = books()
    market.updateOracles([outsider_key], [], 3, sender=owner)
    market.removeOracle(oracles[0], sender=owner)
    assert books() == before
    assert ended(m, job_id) == PAID


# ---------------------------------------------------------------- batches


def test_settle_batch__mixed_verdicts__settles_each(
    m, market, token, client, provider, provider2, oracles, balance_of
):
    m.register(provider2)
    jobs = [m.submitted(), m.submitted(provider2), m.submitted(), m.submitted(provider2)]
    verdicts = [(jobs[0], True), (jobs[1], False), (jobs[2], True), (jobs[3], True)]
    signatures = m.sign_batch(verdicts, oracles[:2])
    before, supply = balance_of(client), token.totalSupply()
    tx = market.settleBatch(entries_of(m, verdicts), signatures, sender=oracles[0])

    paid = tx.events.filter(market.JobPaid)
    assert [log.event_arguments["jobId"] for log in paid] == [jobs[0], jobs[2], jobs[3]]
    assert event_args(tx, market.JobRejected)["jobId"] == jobs[1]
    assert [ended(m, j) for j in jobs] == [PAID, REJECTED, PAID, PAID]
    half = COLLATERAL // 2
    assert balance_of(client) == before + PAYMENT + half
    assert token.totalSupply() == supply - (COLLATERAL - half)
    assert market.feesNtk() == 3 * fee_of(PAYMENT)
    assert market.getProvider(provider).earnedNtk == 2 * (PAYMENT - fee_of(PAYMENT))
    assert market.getProvider(provider2).earnedNtk == PAYMENT - fee_of(PAYMENT)
    assert market.getProvider(provider2).stakeNtk == STAKE - COLLATERAL


def test_settle_batch__signed_over_the_python_digest__settles(m, market, oracles):
    """A batch signature made over `batch_digest` directly (not through eth-account's EIP-712
    encoder) is what the contract recovers: the Python digest equals the contract's."""
    from eth_account import Account

    from neurotoken.market.verdicts import batch_digest, recover_signer

    jobs = [m.submitted(), m.submitted()]
    verdicts = [(jobs[0], True), (jobs[1], False)]
    digest = batch_digest(m.domain, [Verdict(j, RESULT_ROOT, m.seed(j), a) for j, a in verdicts])
    signatures = sorted(
        (bytes(Account.unsafe_sign_hash(digest, o.private_key).signature) for o in oracles[:2]),
        key=lambda sig: int(recover_signer(digest, sig), 16),
    )
    market.settleBatch(entries_of(m, verdicts), signatures, sender=oracles[0])
    assert [ended(m, j) for j in jobs] == [PAID, REJECTED]


def test_settle_batch__empty__reverts(market, oracles):
    with ape.reverts(market.MarketEmptyBatch):
        market.settleBatch([], [], sender=oracles[0])


@pytest.mark.parametrize("second", [True, False], ids=["pay_twice", "pay_then_refund"])
def test_settle_batch__same_job_twice__reverts(m, market, oracles, second):
    """The first entry ends the job and clears its digest, so the second, with the same
    (then current) record, finds no job: one job cannot pay out twice in a batch."""
    job_id = m.submitted()
    record = m.job(job_id)
    verdicts = [(job_id, True), (job_id, second)]
    entries = [(job_id, record.record(), accepted) for _, accepted in verdicts]
    with ape.reverts(market.MarketJobNotFound, jobId=job_id):
        market.settleBatch(entries, m.sign_batch(verdicts, oracles[:2]), sender=oracles[0])
    still_open(m, job_id, record)


def test_settle_batch__signature_used_for_a_subset__reverts(m, market, oracles):
    jobs = [m.submitted(), m.submitted()]
    signatures = m.sign_batch([(jobs[0], True), (jobs[1], True)], oracles[:2])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch(entries_of(m, [(jobs[0], True)]), signatures, sender=oracles[0])


def test_settle_batch__entries_reordered__reverts(m, market, oracles):
    jobs = [m.submitted(), m.submitted()]
    signatures = m.sign_batch([(jobs[0], True), (jobs[1], True)], oracles[:2])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch(
            entries_of(m, [(jobs[1], True), (jobs[0], True)]), signatures, sender=oracles[0]
        )


def test_settle_batch__single_verdict_signatures__do_not_serve(m, market, oracles):
    """The Verdict and VerdictBatch types are distinct: one cannot stand in for the other."""
    job_id = m.submitted()
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch(
            entries_of(m, [(job_id, True)]),
            m.sign(job_id, True, oracles[:2]),
            sender=oracles[0],
        )
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(
            job_id,
            m.rec(job_id),
            True,
            m.sign_batch([(job_id, True)], oracles[:2]),
            sender=oracles[0],
        )


@pytest.mark.parametrize("other", ["settled", "accepted"])
def test_settle_batch__one_job_not_awaiting_verdict__reverts_all(m, market, oracles, other):
    """A batch with one job that awaits no verdict settles none: one already settled (its
    digest cleared: not found) or one still waiting for its result (wrong state)."""
    if other == "settled":
        late = m.submitted()
        late_record = m.rec(late)
        market.settle(late, late_record, True, m.sign(late, True, oracles[:2]), sender=oracles[0])
        refused = ape.reverts(market.MarketJobNotFound, jobId=late)
    else:
        late = m.accepted()
        late_record = m.rec(late)
        refused = ape.reverts(market.MarketJobWrongState, jobId=late, state=ACCEPTED)
    fresh = m.submitted()
    record = m.job(fresh)
    verdicts = [
        Verdict(fresh, RESULT_ROOT, m.seed(fresh), True),
        Verdict(late, RESULT_ROOT, b"\x01" * 32, True),
    ]
    signatures = sorted_signatures(
        [sign_batch(o.private_key, m.domain, verdicts) for o in oracles[:2]]
    )
    entries = [(fresh, record.record(), True), (late, late_record, True)]
    with refused:
        market.settleBatch(entries, signatures, sender=oracles[0])
    still_open(m, fresh, record)


def test_settle_batch__below_threshold__reverts(m, market, oracles):
    job_id = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=1, threshold=2):
        market.settleBatch(
            entries_of(m, [(job_id, True)]),
            m.sign_batch([(job_id, True)], oracles[:1]),
            sender=oracles[0],
        )


def test_settle_batch__with_oracle_removed_after_posting__still_settles(m, market, owner, oracles):
    job_id = m.submitted()
    signatures = m.sign_batch([(job_id, True)], oracles[:2])
    market.removeOracle(oracles[1], sender=owner)
    market.settleBatch(entries_of(m, [(job_id, True)]), signatures, sender=oracles[0])
    assert ended(m, job_id) == PAID


def test_settle_batch__signed_on_another_chain__reverts(m, market, oracles):
    job_id = m.submitted()
    verdicts = [Verdict(job_id, RESULT_ROOT, m.seed(job_id), True)]
    other = MarketDomain(5, m.contract.address)
    signatures = sorted_signatures(
        [sign_batch(o.private_key, other, verdicts) for o in oracles[:2]]
    )
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch(entries_of(m, [(job_id, True)]), signatures, sender=oracles[0])


# ---------------------------------------------------------------- stale and forged records

#: How each attack changes the record of the job it targets (a submitted job of `provider`),
#: and the verdict the oracles signed for it: what the forger would gain if the market took it.
FORGERIES: dict[str, bool] = {
    "stale": True,  # the record from before the result (Accepted, no root)
    "root_swapped": True,  # a root the oracles did not judge
    "collateral_lowered": False,  # less slashed on the rejection
    "provider_changed": True,  # another account credited with the payment and collateral
    "client_changed": False,  # the rejection's refund sent elsewhere
    "another_jobs": True,  # the record of another job of the same client and provider
}


def _forge(
    m: Market, case: str, target: int, stale: OnChainJob, other: int, thief: Any
) -> OnChainJob:
    current = m.job(target)
    if case == "stale":
        return stale
    if case == "root_swapped":
        return dataclasses.replace(current, result_root=b"\x0c" * 32)
    if case == "collateral_lowered":
        return dataclasses.replace(current, collateral_ntk=1)
    if case == "provider_changed":
        return dataclasses.replace(current, provider=str(thief.address))
    if case == "client_changed":
        return dataclasses.replace(current, client=str(thief.address))
    assert case == "another_jobs"
    return m.job(other)


@pytest.mark.parametrize("via", ["settle", "settleBatch"])
@pytest.mark.parametrize("case", list(FORGERIES))
def test_settle__with_a_stale_or_forged_record__reverts_and_settles_nothing(
    m, market, token, client, provider, stranger, oracles, balance_of, case, via
):
    """Every field of the record is bound by the digest the market stores: a record that is
    not the job's current one, whatever field it changes, reverts MarketJobRecordMismatch,
    though the signatures are the oracles' real verdicts; in a batch, the honest entry before
    it is not settled either, and no token, stake, earning or fee moves."""
    accepted = FORGERIES[case]
    honest = m.submitted()
    target = m.accepted()
    stale = m.job(target)
    market.submitResult(
        target, stale.record(), RESULT_ROOT, SHARDS, "ipfs://bundle", sender=provider
    )
    m.chain.mine(2)
    records = {job_id: m.job(job_id) for job_id in (honest, target)}
    forged = _forge(m, case, target, stale, honest, stranger)
    assert forged.digest() != records[target].digest()

    def books() -> tuple[Any, ...]:
        return (
            balance_of(market),
            balance_of(client),
            balance_of(stranger),
            token.totalSupply(),
            market.feesNtk(),
            market.getProvider(provider),
            market.getProvider(stranger),
        )

    before = books()
    with ape.reverts(market.MarketJobRecordMismatch, jobId=target):
        if via == "settle":
            signatures = m.sign(target, accepted, oracles[:2])
            market.settle(target, forged.record(), accepted, signatures, sender=stranger)
        else:
            verdicts = [(honest, True), (target, accepted)]
            entries = [
                (honest, records[honest].record(), True),
                (target, forged.record(), accepted),
            ]
            market.settleBatch(entries, m.sign_batch(verdicts, oracles[:2]), sender=stranger)
    for job_id, record in records.items():
        still_open(m, job_id, record)
    assert books() == before


# ---------------------------------------------------------------- same-block races


class Unmined:
    """Sends signed transactions to anvil with automine off (from the first send on), then
    mines them in one block. Ape's own transactions wait for receipts, so these go raw."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.web3 = chain.provider.web3
        self.nonces: dict[str, int] = {}

    def send(self, sender: Any, contract: Any, method: str, *args: Any, tip_gwei: int = 1) -> str:
        if not self.nonces:
            self.chain.provider.make_request("evm_setAutomine", [False])
        address = str(sender.address)
        nonce = self.nonces.get(address, self.web3.eth.get_transaction_count(address, "pending"))
        self.nonces[address] = nonce + 1
        tx = {
            "to": contract.address,
            "data": getattr(contract, method).encode_input(*args),
            "gas": 1_500_000,
            "nonce": nonce,
            "chainId": self.chain.chain_id,
            "maxFeePerGas": 200 * 10**9,
            "maxPriorityFeePerGas": tip_gwei * 10**9,
            "type": 2,
        }
        signed = Account.sign_transaction(tx, sender.private_key)
        tx_hash = self.web3.eth.send_raw_transaction(signed.raw_transaction)
        return "0x" + bytes(tx_hash).hex()

    def mine(self, timestamp: int) -> None:
        self.chain.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
        self.chain.provider.make_request("evm_mine", [])

    def receipt(self, tx_hash: str) -> Any:
        return self.chain.provider.get_receipt(tx_hash)


@pytest.fixture
def unmined(chain: Any) -> Iterator[Unmined]:
    try:
        yield Unmined(chain)
    finally:
        chain.provider.make_request("evm_setAutomine", [True])


@pytest.mark.parametrize(("offset", "winner"), [(0, "settle"), (1, "expire")])
@pytest.mark.parametrize("settle_first", [True, False])
def test_race__settle_and_expire_in_one_block__exactly_one_pays(
    m, market, oracles, stranger, client, offset, winner, settle_first, balance_of, unmined
):
    """At verdictBy the verdict wins; one second later only the timeout can; either way the
    job pays out once, whichever transaction comes first in the block."""
    job_id = m.submitted()
    signatures = m.sign(job_id, True, oracles[:2])
    record = m.job(job_id)
    verdict_by = record.verdict_by
    client_before = balance_of(client)
    race = unmined
    tips = (2, 1) if settle_first else (1, 2)
    settle_tx = race.send(
        oracles[0], market, "settle", job_id, record.record(), True, signatures, tip_gwei=tips[0]
    )
    expire_tx = race.send(stranger, market, "expireJob", job_id, record.record(), tip_gwei=tips[1])
    race.mine(verdict_by + offset)
    settled, expired = race.receipt(settle_tx), race.receipt(expire_tx)
    assert settled.block_number == expired.block_number
    assert [settled.failed, expired.failed] == (
        [False, True] if winner == "settle" else [True, False]
    )
    payouts = len(settled.events.filter(market.JobPaid)) + len(
        expired.events.filter(market.JobLapsed)
    )
    assert payouts == 1
    if winner == "settle":
        assert ended(m, job_id) == PAID
        assert balance_of(client) == client_before
    else:
        assert ended(m, job_id) == LAPSED
        assert balance_of(client) == client_before + PAYMENT


def test_race__accept_and_reject_verdicts_in_one_block__first_wins(
    m, market, oracles, unmined, provider, client, balance_of
):
    job_id = m.submitted()
    accept_sigs = m.sign(job_id, True, oracles[:2])
    reject_sigs = m.sign(job_id, False, oracles[1:])
    record = m.rec(job_id)
    client_before = balance_of(client)
    first = unmined.send(
        oracles[0], market, "settle", job_id, record, False, reject_sigs, tip_gwei=3
    )
    second = unmined.send(
        oracles[1], market, "settle", job_id, record, True, accept_sigs, tip_gwei=1
    )
    unmined.mine(m.chain.pending_timestamp)
    assert (unmined.receipt(first).failed, unmined.receipt(second).failed) == (False, True)
    assert ended(m, job_id) == REJECTED
    assert market.getProvider(provider).earnedNtk == 0
    assert balance_of(client) == client_before + PAYMENT + COLLATERAL // 2


def test_race__accept_and_cancel_in_one_block__first_wins(
    m, market, provider, client, unmined, balance_of
):
    m.register()
    job_id = m.post()
    client_before = balance_of(client)
    record = m.rec(job_id)
    cancel = unmined.send(client, market, "cancelJob", job_id, record, tip_gwei=5)
    accept = unmined.send(provider, market, "acceptJob", job_id, record, tip_gwei=1)
    unmined.mine(m.chain.pending_timestamp)
    assert (unmined.receipt(cancel).failed, unmined.receipt(accept).failed) == (False, True)
    assert ended(m, job_id) == CANCELLED
    assert balance_of(client) == client_before + PAYMENT
    assert market.getProvider(provider).stakeNtk == STAKE
