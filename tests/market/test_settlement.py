"""Settlement by m-of-n oracle verdicts: payouts, every way a signature is refused, oracle-set
changes, batches, and settlement racing a timeout in the same block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ape
import pytest
from eth_account import Account

from neurotoken.market.verdicts import MarketDomain, Verdict, malleate, sign_batch, sign_verdict
from tests.constants import (
    ACCEPTED,
    COLLATERAL,
    FEE_BPS,
    LAPSED,
    PAID,
    PAYMENT,
    REJECTED,
    SHARDS,
    STAKE,
    SUBMITTED,
)
from tests.helpers import sorted_signatures
from tests.market.conftest import RESULT_ROOT, event_args


def fee_of(payment: int) -> int:
    return -(-payment * FEE_BPS // 10_000)  # rounded up, in integers


def signer_of(account: Any) -> str:
    return str(account.address)


# ---------------------------------------------------------------- accept / reject


def test_settle__accepted__credits_provider_and_fee(
    m, market, provider, stranger, oracles, balance_of
):
    job_id = m.submitted()
    tx = market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=stranger)
    fee = fee_of(PAYMENT)
    assert event_args(tx, market.JobPaid) == {
        "jobId": job_id,
        "provider": provider.address,
        "providerNtk": PAYMENT - fee,
        "feeNtk": fee,
        "collateralNtk": COLLATERAL,
    }
    assert market.getJob(job_id).state == PAID
    account = market.getProvider(provider)
    assert (account.stakeNtk, account.earnedNtk) == (STAKE, PAYMENT - fee)
    assert market.feesNtk() == fee
    assert balance_of(market) == STAKE + PAYMENT  # stake + earnings + fee


def test_settle__fee_rounds_up_in_the_markets_favour(m, market, oracles):
    job_id = m.submitted(paymentNtk=41)  # 41 * 2.5% = 1.025 -> 2
    tx = market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    assert event_args(tx, market.JobPaid)["feeNtk"] == 2
    assert event_args(tx, market.JobPaid)["providerNtk"] == 39


def test_settle__fee_is_the_one_in_force_when_posted(m, market, owner, oracles):
    job_id = m.submitted()
    market.setFeeBps(1_000, sender=owner)
    tx = market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    assert event_args(tx, market.JobPaid)["feeNtk"] == fee_of(PAYMENT)


def test_settle__rejected__refunds_client_and_slashes(
    m, market, token, client, provider, oracles, balance_of
):
    job_id = m.submitted()
    before, supply = balance_of(client), token.totalSupply()
    tx = market.settle(job_id, False, m.sign(job_id, False, oracles[1:]), sender=oracles[2])
    half = COLLATERAL // 2
    assert event_args(tx, market.JobRejected) == {
        "jobId": job_id,
        "provider": provider.address,
        "refundNtk": PAYMENT + half,
        "compensationNtk": half,
        "burnedNtk": COLLATERAL - half,
    }
    assert market.getJob(job_id).state == REJECTED
    assert balance_of(client) == before + PAYMENT + half
    assert token.totalSupply() == supply - (COLLATERAL - half)
    account = market.getProvider(provider)
    assert (account.stakeNtk, account.earnedNtk) == (STAKE - COLLATERAL, 0)
    assert market.feesNtk() == 0
    assert balance_of(market) == STAKE - COLLATERAL


def test_settle__all_three_oracles__accepted(m, market, oracles):
    job_id = m.submitted()
    market.settle(job_id, True, m.sign(job_id, True, oracles), sender=oracles[0])
    assert market.getJob(job_id).state == PAID


# ---------------------------------------------------------------- refused signatures


def test_settle__one_signature_below_threshold__reverts(m, market, oracles):
    job_id = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=1, threshold=2):
        market.settle(job_id, True, m.sign(job_id, True, oracles[:1]), sender=oracles[0])


def test_settle__no_signatures__reverts(m, market, stranger):
    job_id = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=0, threshold=2):
        market.settle(job_id, True, [], sender=stranger)


def test_settle__with_non_oracle_signer__reverts(m, market, oracles, outsider_key):
    job_id = m.submitted()
    signatures = m.sign(job_id, True, [oracles[0], outsider_key])
    with ape.reverts(market.MarketSignerNotOracle, signer=outsider_key.address):
        market.settle(job_id, True, signatures, sender=oracles[0])


def test_settle__with_duplicate_signer__reverts(m, market, oracles):
    job_id = m.submitted()
    signature = m.sign(job_id, True, oracles[:1])[0]
    with ape.reverts(market.MarketDuplicateSigner, signer=oracles[0].address):
        market.settle(job_id, True, [signature, signature], sender=oracles[0])


def test_settle__with_signers_out_of_order__reverts(m, market, oracles):
    job_id = m.submitted()
    low, high = m.sign(job_id, True, oracles[:2])
    low_addr, high_addr = sorted((o.address for o in oracles[:2]), key=lambda a: int(a, 16))
    with ape.reverts(market.MarketSignersNotAscending, previous=high_addr, signer=low_addr):
        market.settle(job_id, True, [high, low], sender=oracles[0])


def test_settle__with_malleable_signature__reverts(m, market, oracles):
    """s' = n - s (v flipped) recovers the same oracle; OpenZeppelin's ECDSA refuses it."""
    job_id = m.submitted()
    low, high = m.sign(job_id, True, oracles[:2])
    twin = malleate(high)
    with ape.reverts(market.ECDSAInvalidSignatureS, s=twin[32:64]):
        market.settle(job_id, True, [low, twin], sender=oracles[0])


def test_settle__with_malleable_twin_as_second_vote__reverts(m, market, oracles):
    """One oracle cannot count twice by sending its signature and the signature's twin."""
    job_id = m.submitted()
    (signature,) = m.sign(job_id, True, oracles[:1])
    with ape.reverts(market.ECDSAInvalidSignatureS):
        market.settle(job_id, True, [signature, malleate(signature)], sender=oracles[0])


def test_settle__with_short_signature__reverts(m, market, oracles):
    job_id = m.submitted()
    low, high = m.sign(job_id, True, oracles[:2])
    with ape.reverts(market.ECDSAInvalidSignatureLength, length=64):
        market.settle(job_id, True, [low, high[:64]], sender=oracles[0])


def test_settle__with_garbage_signature__reverts(m, market, oracles):
    job_id = m.submitted()
    low, _ = m.sign(job_id, True, oracles[:2])
    with ape.reverts(market.ECDSAInvalidSignature):
        market.settle(job_id, True, [low, b"\x00" * 64 + b"\x1b"], sender=oracles[0])


def _forged(m: Any, oracles: list[Any], job_id: int, case: str) -> list[bytes]:
    """Signatures by real oracles, but over a message other than the one being settled."""
    root = bytes(m.contract.getJob(job_id).resultRoot)
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
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(job_id, True, _forged(m, oracles, job_id, case), sender=oracles[0])
    assert market.getJob(job_id).state == SUBMITTED


def test_settle__replayed_after_settlement__reverts(m, market, oracles):
    job_id = m.submitted()
    signatures = m.sign(job_id, True, oracles[:2])
    market.settle(job_id, True, signatures, sender=oracles[0])
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=PAID):
        market.settle(job_id, True, signatures, sender=oracles[0])


def test_settle__replayed_on_a_job_with_the_same_root__reverts(m, market, oracles):
    """Two jobs with the same result root: job 1's signatures do not settle job 2."""
    first = m.submitted()
    second = m.submitted()
    signatures = m.sign(first, True, oracles[:2])
    market.settle(first, True, signatures, sender=oracles[0])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(second, True, signatures, sender=oracles[0])


def test_settle__job_not_submitted__reverts(m, market, oracles):
    job_id = m.accepted()
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=ACCEPTED):
        market.settle(
            job_id, True, m.sign(job_id, True, oracles[:2], root=RESULT_ROOT), sender=oracles[0]
        )


def test_settle__unknown_job__reverts(m, market, oracles):
    with ape.reverts(market.MarketJobNotFound, jobId=77):
        market.settle(77, True, m.sign(77, True, oracles[:2], root=RESULT_ROOT), sender=oracles[0])


def test_settle__before_seed_block_exists__reverts(m, market, provider, oracles):
    job_id = m.accepted()
    tx = market.submitResult(job_id, RESULT_ROOT, SHARDS, "", sender=provider)
    with ape.reverts(
        market.MarketChallengeSeedPending, jobId=job_id, seedBlock=tx.block_number + 1
    ):
        market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])


def test_junk_root_committed_at_the_delivery_deadline__is_rejected_before_the_verdict_deadline(
    m, market, chain, provider, oracles, balance_of, client
):
    """The last-second attack: a provider that did no work commits a junk root in the very
    block of `deliverBy`, hoping no verdict can land before `verdictBy` so that the job lapses
    and its collateral comes back. Every job's verdict window is at least the market's
    minimum, so twelve-second blocks leave room for the seed block, confirmations and the
    reject."""
    job_id = m.accepted()
    job = market.getJob(job_id)
    assert job.verdictBy - job.deliverBy >= market.minVerdictWindow()
    chain.pending_timestamp = job.deliverBy
    market.submitResult(job_id, b"\x0b" * 32, SHARDS, "ipfs://junk", sender=provider)
    for _ in range(12):  # the seed block, two confirmations and then some, 12 s apart
        chain.mine(1, deltatime=12)
    before = balance_of(client)
    tx = market.settle(job_id, False, m.sign(job_id, False, oracles[:2]), sender=oracles[0])
    assert chain.blocks.head.timestamp < job.verdictBy
    assert market.getJob(job_id).state == REJECTED
    assert balance_of(client) - before == event_args(tx, market.JobRejected)["refundNtk"]


def test_settle__at_verdict_deadline__succeeds(m, market, chain, oracles):
    job_id = m.submitted()
    chain.pending_timestamp = market.getJob(job_id).verdictBy
    market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    assert market.getJob(job_id).state == PAID


def test_settle__after_verdict_deadline__reverts(m, market, chain, oracles):
    job_id = m.submitted()
    verdict_by = market.getJob(job_id).verdictBy
    chain.pending_timestamp = verdict_by + 1
    with ape.reverts(
        market.MarketDeadlinePassed, jobId=job_id, deadline=verdict_by, timestamp=verdict_by + 1
    ):
        market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])


# ---------------------------------------------------------------- oracle-set changes


def test_settle__removed_oracles_signature__counts_for_jobs_posted_before(
    m, market, owner, oracles
):
    job_id = m.submitted()
    signatures = m.sign(job_id, True, oracles[:2])  # signed while both were oracles
    market.removeOracle(oracles[0], sender=owner)
    later = m.submitted()
    with ape.reverts(market.MarketSignerNotOracle, signer=oracles[0].address):
        market.settle(later, True, m.sign(later, True, oracles[:2]), sender=oracles[1])
    market.settle(job_id, True, signatures, sender=oracles[1])
    assert market.getJob(job_id).state == PAID


def test_settle__newly_added_oracle__counts_only_for_jobs_posted_after(
    m, market, owner, oracles, outsider_key
):
    job_id = m.submitted()
    market.updateOracles([outsider_key], [], 3, sender=owner)
    with ape.reverts(market.MarketSignerNotOracle, signer=outsider_key.address):
        market.settle(
            job_id, True, m.sign(job_id, True, [oracles[0], outsider_key]), sender=oracles[0]
        )
    later = m.submitted()
    market.settle(later, True, m.sign(later, True, [*oracles[:2], outsider_key]), sender=oracles[0])
    assert market.getJob(later).state == PAID


def test_settle__after_threshold_raised__jobs_posted_after_need_more(m, market, owner, oracles):
    job_id = m.submitted()
    market.setThreshold(3, sender=owner)
    later = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=2, threshold=3):
        market.settle(later, True, m.sign(later, True, oracles[:2]), sender=oracles[0])
    market.settle(later, True, m.sign(later, True, oracles), sender=oracles[0])
    market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    assert market.getJob(job_id).state == market.getJob(later).state == PAID


def test_oracle_changes__leave_settled_jobs_untouched(
    m, market, owner, provider, oracles, outsider_key
):
    job_id = m.submitted()
    market.settle(job_id, True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    before = (market.getJob(job_id), market.getProvider(provider), market.feesNtk())
    market.updateOracles([outsider_key], [], 3, sender=owner)
    market.removeOracle(oracles[0], sender=owner)
    assert (market.getJob(job_id), market.getProvider(provider), market.feesNtk()) == before


# ---------------------------------------------------------------- batches


def test_settle_batch__mixed_verdicts__settles_each(
    m, market, token, client, provider, provider2, oracles, balance_of
):
    m.register(provider2)
    jobs = [m.submitted(), m.submitted(provider2), m.submitted(), m.submitted(provider2)]
    verdicts = [(jobs[0], True), (jobs[1], False), (jobs[2], True), (jobs[3], True)]
    signatures = m.sign_batch(verdicts, oracles[:2])
    before, supply = balance_of(client), token.totalSupply()
    tx = market.settleBatch(verdicts, signatures, sender=oracles[0])

    paid = tx.events.filter(market.JobPaid)
    assert [log.event_arguments["jobId"] for log in paid] == [jobs[0], jobs[2], jobs[3]]
    assert event_args(tx, market.JobRejected)["jobId"] == jobs[1]
    assert [market.getJob(j).state for j in jobs] == [PAID, REJECTED, PAID, PAID]
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
    entries = [(jobs[0], True), (jobs[1], False)]
    verdicts = [Verdict(j, RESULT_ROOT, m.seed(j), a) for j, a in entries]
    digest = batch_digest(m.domain, verdicts)
    signatures = sorted(
        (bytes(Account.unsafe_sign_hash(digest, o.private_key).signature) for o in oracles[:2]),
        key=lambda sig: int(recover_signer(digest, sig), 16),
    )
    market.settleBatch(entries, signatures, sender=oracles[0])
    assert market.getJob(jobs[0]).state == PAID


def test_settle_batch__empty__reverts(market, oracles):
    with ape.reverts(market.MarketEmptyBatch):
        market.settleBatch([], [], sender=oracles[0])


def test_settle_batch__same_job_twice__reverts(m, market, oracles):
    job_id = m.submitted()
    entries = [(job_id, True), (job_id, True)]
    with ape.reverts(market.MarketJobWrongState, jobId=job_id, state=PAID):
        market.settleBatch(entries, m.sign_batch(entries, oracles[:2]), sender=oracles[0])


def test_settle_batch__signature_used_for_a_subset__reverts(m, market, oracles):
    jobs = [m.submitted(), m.submitted()]
    signatures = m.sign_batch([(jobs[0], True), (jobs[1], True)], oracles[:2])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch([(jobs[0], True)], signatures, sender=oracles[0])


def test_settle_batch__entries_reordered__reverts(m, market, oracles):
    jobs = [m.submitted(), m.submitted()]
    signatures = m.sign_batch([(jobs[0], True), (jobs[1], True)], oracles[:2])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch([(jobs[1], True), (jobs[0], True)], signatures, sender=oracles[0])


def test_settle_batch__single_verdict_signatures__do_not_serve(m, market, oracles):
    """The Verdict and VerdictBatch types are distinct: one cannot stand in for the other."""
    job_id = m.submitted()
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch([(job_id, True)], m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(job_id, True, m.sign_batch([(job_id, True)], oracles[:2]), sender=oracles[0])


def test_settle_batch__one_job_not_awaiting_verdict__reverts_all(m, market, oracles):
    done = m.submitted()
    market.settle(done, True, m.sign(done, True, oracles[:2]), sender=oracles[0])
    fresh = m.submitted()
    entries = [(fresh, True), (done, True)]
    with ape.reverts(market.MarketJobWrongState, jobId=done, state=PAID):
        market.settleBatch(entries, m.sign_batch(entries, oracles[:2]), sender=oracles[0])
    assert market.getJob(fresh).state == SUBMITTED


def test_settle_batch__below_threshold__reverts(m, market, oracles):
    job_id = m.submitted()
    with ape.reverts(market.MarketQuorumNotReached, signatures=1, threshold=2):
        market.settleBatch(
            [(job_id, True)], m.sign_batch([(job_id, True)], oracles[:1]), sender=oracles[0]
        )


def test_settle_batch__with_oracle_removed_after_posting__still_settles(m, market, owner, oracles):
    job_id = m.submitted()
    signatures = m.sign_batch([(job_id, True)], oracles[:2])
    market.removeOracle(oracles[1], sender=owner)
    market.settleBatch([(job_id, True)], signatures, sender=oracles[0])
    assert market.getJob(job_id).state == PAID


def test_settle_batch__signed_on_another_chain__reverts(m, market, oracles):
    job_id = m.submitted()
    verdicts = [Verdict(job_id, RESULT_ROOT, m.seed(job_id), True)]
    other = MarketDomain(5, m.contract.address)
    signatures = sorted_signatures(
        [sign_batch(o.private_key, other, verdicts) for o in oracles[:2]]
    )
    with ape.reverts(market.MarketSignerNotOracle):
        market.settleBatch([(job_id, True)], signatures, sender=oracles[0])


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
    verdict_by = market.getJob(job_id).verdictBy
    client_before = balance_of(client)
    race = unmined
    tips = (2, 1) if settle_first else (1, 2)
    settle_tx = race.send(oracles[0], market, "settle", job_id, True, signatures, tip_gwei=tips[0])
    expire_tx = race.send(stranger, market, "expireJob", job_id, tip_gwei=tips[1])
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
        assert market.getJob(job_id).state == PAID
        assert balance_of(client) == client_before
    else:
        assert market.getJob(job_id).state == LAPSED
        assert balance_of(client) == client_before + PAYMENT


def test_race__accept_and_reject_verdicts_in_one_block__first_wins(
    m, market, oracles, unmined, provider, client, balance_of
):
    job_id = m.submitted()
    accept_sigs = m.sign(job_id, True, oracles[:2])
    reject_sigs = m.sign(job_id, False, oracles[1:])
    client_before = balance_of(client)
    first = unmined.send(oracles[0], market, "settle", job_id, False, reject_sigs, tip_gwei=3)
    second = unmined.send(oracles[1], market, "settle", job_id, True, accept_sigs, tip_gwei=1)
    unmined.mine(m.chain.pending_timestamp)
    assert (unmined.receipt(first).failed, unmined.receipt(second).failed) == (False, True)
    assert market.getJob(job_id).state == REJECTED
    assert market.getProvider(provider).earnedNtk == 0
    assert balance_of(client) == client_before + PAYMENT + COLLATERAL // 2


def test_race__accept_and_cancel_in_one_block__first_wins(
    m, market, provider, client, unmined, balance_of
):
    m.register()
    job_id = m.post()
    client_before = balance_of(client)
    cancel = unmined.send(client, market, "cancelJob", job_id, tip_gwei=5)
    accept = unmined.send(provider, market, "acceptJob", job_id, tip_gwei=1)
    unmined.mine(m.chain.pending_timestamp)
    assert (unmined.receipt(cancel).failed, unmined.receipt(accept).failed) == (False, True)
    assert balance_of(client) == client_before + PAYMENT
    assert market.getProvider(provider).stakeNtk == STAKE
