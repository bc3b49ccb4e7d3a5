"""Owner-only settings: the oracle set, the threshold, the fee, fee withdrawal, ownership,
and the constructor's checks; governance never reaches into a live job."""

from __future__ import annotations

from dataclasses import dataclass, replace

import ape
import pytest
from eth_account import Account

from tests.constants import (
    FEE_BPS,
    MIN_VERDICT_WINDOW,
    PAID,
    PAYMENT,
    UNBONDING_DELAY,
    ZERO_ADDRESS,
)
from tests.market.conftest import event_args

MAX_FEE_BPS = 1_000
MAX_UNBONDING_DELAY = 90 * 24 * 3600


@dataclass(frozen=True)
class Key:
    """A key that signs verdicts (it never sends a transaction)."""

    address: str
    private_key: str


def fresh_oracles(count: int) -> list[Key]:
    """The owner's own oracle keys."""
    keys = [Account.create() for _ in range(count)]
    return [Key(k.address, k.key.hex()) for k in keys]


def test_deploy__records_settings(market, token, owner, oracles):
    assert market.token() == token.address
    assert market.owner() == owner.address
    assert market.unbondingDelay() == UNBONDING_DELAY
    assert market.feeBps() == FEE_BPS
    assert market.threshold() == 2
    assert len(market.oracles()) == 3
    assert all(market.isOracle(o) for o in oracles)
    assert sorted(market.oracles()) == sorted(o.address for o in oracles)
    assert market.nextJobId() == 1
    assert market.MAX_FEE_BPS() == MAX_FEE_BPS
    assert market.SLASH_TO_CLIENT_BPS() == 5_000


def test_deploy__emits_oracle_threshold_and_fee_events(project, token, owner, oracles):
    contract = project.ComputeMarket.deploy(
        token, owner, 0, 100, oracles[:2], 2, MIN_VERDICT_WINDOW, 0, sender=owner
    )
    receipt = contract.creation_metadata.receipt
    added = [log.event_arguments["oracle"] for log in receipt.events.filter(contract.OracleAdded)]
    assert added == [o.address for o in oracles[:2]]
    assert event_args(receipt, contract.ThresholdSet) == {"oldThreshold": 0, "newThreshold": 2}
    assert event_args(receipt, contract.FeeSet) == {"oldFeeBps": 0, "newFeeBps": 100}


@pytest.mark.parametrize(
    ("case", "error", "kwargs"),
    [
        ("zero_token", "MarketZeroAddress", {}),
        ("long_delay", "MarketUnbondingDelayTooLong", {"delay": MAX_UNBONDING_DELAY + 1}),
        ("high_fee", "MarketFeeTooHigh", {"feeBps": MAX_FEE_BPS + 1}),
        ("zero_oracle", "MarketZeroAddress", {}),
        ("duplicate_oracle", "MarketOracleAlreadyAdded", {}),
        ("zero_threshold", "MarketInvalidThreshold", {"threshold": 0, "oracleCount": 2}),
        ("threshold_above_set", "MarketInvalidThreshold", {"threshold": 3, "oracleCount": 2}),
        ("threshold_at_half", "MarketInvalidThreshold", {"threshold": 1, "oracleCount": 2}),
        ("short_window", "MarketInvalidVerdictWindow", {"window": 59}),
        ("window_over_a_year", "MarketInvalidVerdictWindow", {"window": 365 * 86400 + 1}),
        ("randao_delay_over_max", "MarketInvalidRandaoDelay", {"delay": 65}),
        ("window_short_for_randao", "MarketInvalidRandaoDelay", {"minVerdictWindow": 443}),
    ],
)
def test_deploy__invalid_settings__reverts(project, token, owner, oracles, case, error, kwargs):
    args = {
        "token": token.address,
        "delay": UNBONDING_DELAY,
        "fee": FEE_BPS,
        "oracles": [o.address for o in oracles[:2]],
        "threshold": 2,
        "window": MIN_VERDICT_WINDOW,
        "randao": 0,
    }
    if case == "zero_token":
        args["token"] = ZERO_ADDRESS
    elif case == "long_delay":
        args["delay"] = MAX_UNBONDING_DELAY + 1
    elif case == "high_fee":
        args["fee"] = MAX_FEE_BPS + 1
    elif case == "zero_oracle":
        args["oracles"] = [ZERO_ADDRESS]
        args["threshold"] = 1
    elif case == "duplicate_oracle":
        args["oracles"] = [oracles[0].address, oracles[0].address]
    elif case == "zero_threshold":
        args["threshold"] = 0
    elif case == "threshold_above_set":
        args["threshold"] = 3
    elif case == "threshold_at_half":
        args["threshold"] = 1
    elif case == "short_window":
        args["window"] = 59
    elif case == "window_over_a_year":
        args["window"] = 365 * 86400 + 1
    elif case == "randao_delay_over_max":
        args["randao"] = 65
    elif case == "window_short_for_randao":  # 1 minute + 32 blocks of 12 s is 444 s
        args["randao"], args["window"] = 32, 443
    contract_type = project.ComputeMarket
    with ape.reverts(getattr(contract_type, error), **kwargs):
        contract_type.deploy(
            args["token"],
            owner,
            args["delay"],
            args["fee"],
            args["oracles"],
            args["threshold"],
            args["window"],
            args["randao"],
            sender=owner,
        )


def test_add_oracle__joins_the_set_in_a_new_epoch(market, owner, outsider_key):
    market.setThreshold(3, sender=owner)
    assert market.oracleEpoch() == 1
    tx = market.addOracle(outsider_key, sender=owner)
    assert event_args(tx, market.OracleAdded) == {
        "oracle": outsider_key.address,
        "oracleCount": 4,
        "epoch": 2,
    }
    assert market.oracleEpoch() == 2
    assert market.isOracle(outsider_key) and len(market.oracles()) == 4
    assert outsider_key.address in market.oracles() and len(market.oracles()) == 4


def test_add_oracle__leaving_the_threshold_at_half__reverts(market, owner, outsider_key):
    with ape.reverts(market.MarketInvalidThreshold, threshold=2, oracleCount=4):
        market.addOracle(outsider_key, sender=owner)


def test_update_oracles__adds_retires_and_sets_threshold_in_one_epoch(
    market, owner, oracles, outsider_key
):
    tx = market.updateOracles([outsider_key], [oracles[0]], 3, sender=owner)
    assert market.oracleEpoch() == 2
    assert event_args(tx, market.OracleRemoved)["epoch"] == 2
    assert event_args(tx, market.OracleAdded)["epoch"] == 2
    assert sorted(market.oracles()) == sorted(
        [oracles[1].address, oracles[2].address, outsider_key.address]
    )
    assert market.threshold() == 3


def test_update_oracles__by_non_owner__reverts(market, stranger):
    with ape.reverts(market.OwnableUnauthorizedAccount, account=stranger.address):
        market.updateOracles([stranger], [], 2, sender=stranger)


def test_removed_oracle__cannot_be_added_back(market, owner, oracles):
    market.removeOracle(oracles[2], sender=owner)
    with ape.reverts(market.MarketOracleRetired, oracle=oracles[2].address):
        market.updateOracles([oracles[2]], [], 2, sender=owner)


def test_owner_adds_own_oracles__cannot_settle_a_job_submitted_before(m, market, owner, oracles):
    """The governance attack: the owner packs the set with its own keys (a majority of the new
    set). A job posted before keeps its oracles and threshold: the new keys cannot settle it,
    not even with the job's record moved to the new epoch, and the old ones still can."""
    job_id = m.submitted()
    job = m.job(job_id)
    packed = fresh_oracles(4)
    market.updateOracles([o.address for o in packed], [], 4, sender=owner)
    assert not market.isEpochOracle(job.oracle_epoch, packed[0].address)
    assert market.isEpochOracle(job.oracle_epoch, oracles[0])
    assert market.isEpochOracle(market.oracleEpoch(), packed[0].address)
    with ape.reverts(market.MarketSignerNotOracle):
        market.settle(job_id, job.record(), False, m.sign(job_id, False, packed), sender=owner)
    moved = replace(job, oracle_epoch=int(market.oracleEpoch()), threshold=4)
    with ape.reverts(market.MarketJobRecordMismatch, jobId=job_id):
        market.settle(job_id, moved.record(), False, m.sign(job_id, False, packed), sender=owner)
    tx = market.settle(job_id, job.record(), True, m.sign(job_id, True, oracles[:2]), sender=owner)
    assert len(tx.events.filter(market.JobPaid)) == 1
    assert bytes(market.jobDigest(job_id)) == b"\x00" * 32
    assert m.job(job_id).state == PAID


def test_owner_raises_threshold__a_live_job_keeps_its_own(m, market, owner, oracles):
    job_id = m.submitted()
    market.setThreshold(3, sender=owner)
    assert m.job(job_id).threshold == 2
    market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=owner)
    assert m.job(job_id).state == PAID


def test_removed_oracle__still_settles_jobs_posted_during_its_term(m, market, owner, oracles):
    job_id = m.submitted()
    market.removeOracle(oracles[2], sender=owner)
    later = m.submitted()
    assert market.isEpochOracle(m.job(job_id).oracle_epoch, oracles[2])
    assert not market.isEpochOracle(m.job(later).oracle_epoch, oracles[2])
    market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[1:]), sender=owner)
    with ape.reverts(market.MarketSignerNotOracle, signer=oracles[2].address):
        market.settle(later, m.rec(later), True, m.sign(later, True, oracles[1:]), sender=owner)


def test_batch__jobs_of_two_oracle_epochs__reverts(m, market, owner, oracles, outsider_key):
    first = m.submitted()
    market.updateOracles([outsider_key], [], 3, sender=owner)
    second = m.submitted()
    with ape.reverts(market.MarketBatchEpochMismatch, jobId=second, epoch=2, expected=1):
        market.settleBatch(
            [(first, m.rec(first), True), (second, m.rec(second), True)],
            m.sign_batch([(first, True), (second, True)], oracles),
            sender=owner,
        )


def test_add_oracle__already_member__reverts(market, owner, oracles):
    with ape.reverts(market.MarketOracleAlreadyAdded, oracle=oracles[0].address):
        market.addOracle(oracles[0], sender=owner)


def test_add_oracle__zero_address__reverts(market, owner):
    with ape.reverts(market.MarketZeroAddress):
        market.addOracle(ZERO_ADDRESS, sender=owner)


def test_add_oracle__by_non_owner__reverts(market, stranger):
    with ape.reverts(market.OwnableUnauthorizedAccount, account=stranger.address):
        market.addOracle(stranger, sender=stranger)


def test_remove_oracle__leaves_the_set(market, owner, oracles):
    tx = market.removeOracle(oracles[2], sender=owner)
    assert event_args(tx, market.OracleRemoved) == {
        "oracle": oracles[2].address,
        "oracleCount": 2,
        "epoch": 2,
    }
    assert not market.isOracle(oracles[2]) and len(market.oracles()) == 2
    assert sorted(market.oracles()) == sorted(o.address for o in oracles[:2])


def test_remove_oracle__below_threshold__reverts(market, owner, oracles):
    market.removeOracle(oracles[2], sender=owner)
    with ape.reverts(market.MarketInvalidThreshold, threshold=2, oracleCount=1):
        market.removeOracle(oracles[1], sender=owner)


def test_remove_oracle__not_member__reverts(market, owner, stranger):
    with ape.reverts(market.MarketOracleNotFound, oracle=stranger.address):
        market.removeOracle(stranger, sender=owner)


def test_remove_oracle__by_non_owner__reverts(market, oracles):
    with ape.reverts(market.OwnableUnauthorizedAccount, account=oracles[0].address):
        market.removeOracle(oracles[1], sender=oracles[0])


def test_set_threshold__changes_it(market, owner):
    tx = market.setThreshold(3, sender=owner)
    assert event_args(tx, market.ThresholdSet) == {"oldThreshold": 2, "newThreshold": 3}
    assert market.threshold() == 3


@pytest.mark.parametrize("value", [0, 1, 4])
def test_set_threshold__not_a_majority_or_above_the_set__reverts(market, owner, value):
    with ape.reverts(market.MarketInvalidThreshold, threshold=value, oracleCount=3):
        market.setThreshold(value, sender=owner)


def test_set_threshold__by_non_owner__reverts(market, stranger):
    with ape.reverts(market.OwnableUnauthorizedAccount, account=stranger.address):
        market.setThreshold(1, sender=stranger)


def test_set_fee__changes_it_for_new_jobs(m, market, owner):
    tx = market.setFeeBps(MAX_FEE_BPS, sender=owner)
    assert event_args(tx, market.FeeSet) == {"oldFeeBps": FEE_BPS, "newFeeBps": MAX_FEE_BPS}
    assert m.job(m.post()).fee_bps == MAX_FEE_BPS


def test_set_fee__above_cap__reverts(market, owner):
    with ape.reverts(market.MarketFeeTooHigh, feeBps=MAX_FEE_BPS + 1, maxFeeBps=MAX_FEE_BPS):
        market.setFeeBps(MAX_FEE_BPS + 1, sender=owner)


def test_set_fee__by_non_owner__reverts(market, stranger):
    with ape.reverts(market.OwnableUnauthorizedAccount, account=stranger.address):
        market.setFeeBps(0, sender=stranger)


def test_withdraw_fees__sends_pot_to_treasury(m, market, owner, oracles, treasury, balance_of):
    job_id = m.submitted()
    market.settle(job_id, m.rec(job_id), True, m.sign(job_id, True, oracles[:2]), sender=oracles[0])
    fee = market.feesNtk()
    assert fee == PAYMENT * FEE_BPS // 10_000
    tx = market.withdrawFees(treasury, sender=owner)
    assert event_args(tx, market.FeesWithdrawn) == {"treasury": treasury.address, "amountNtk": fee}
    assert balance_of(treasury) == fee
    assert market.feesNtk() == 0


def test_withdraw_fees__empty_pot__reverts(market, owner, treasury):
    with ape.reverts(market.MarketNothingToWithdraw, account=treasury.address):
        market.withdrawFees(treasury, sender=owner)


def test_withdraw_fees__to_zero_address__reverts(market, owner):
    with ape.reverts(market.MarketZeroAddress):
        market.withdrawFees(ZERO_ADDRESS, sender=owner)


def test_withdraw_fees__by_non_owner__reverts(market, stranger):
    with ape.reverts(market.OwnableUnauthorizedAccount, account=stranger.address):
        market.withdrawFees(stranger, sender=stranger)


def test_ownership__transfers_in_two_steps(market, owner, stranger):
    market.transferOwnership(stranger, sender=owner)
    assert market.owner() == owner.address
    assert market.pendingOwner() == stranger.address
    market.acceptOwnership(sender=stranger)
    assert market.owner() == stranger.address
    with ape.reverts(market.OwnableUnauthorizedAccount, account=owner.address):
        market.setFeeBps(0, sender=owner)
