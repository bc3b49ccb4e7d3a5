"""The market's invariants, checked from the chain alone after a fault campaign.

`Books` rebuilds what the market owes from its events (each event's amounts checked against
what the books already hold); `check_market_invariants` reads every event of a market, books
them in chain order and asserts:

* the market's NTK balance equals its books (escrowed payments of open jobs + locked
  collateral + free and unbonding stake + unwithdrawn earnings + fees), and the books agree
  with `getProvider` and `feesNtk`;
* nobody is paid twice: no job has more than one ending event (JobPaid, JobRejected,
  JobCancelled, JobExpired, JobDefaulted, JobLapsed);
* every job of the campaign reached exactly one final state (its ending event; its record
  folded from its events ends there, and the market cleared its digest);
* no accepted job is left unworked: each accepted job of the campaign has its result
  submitted, unless the campaign allows defaults.

The hostile-market state machine (tests/oracle/test_hostile_machine.py) books each step with
the same `Books`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3

from devchain.contracts import load_artifact
from neurotoken.market.job import ENDINGS, fold
from neurotoken.market.states import PAYOUT_EVENTS

BOOKED_EVENTS = (
    "ProviderRegistered",
    "StakeAdded",
    "UnbondRequested",
    "UnbondWithdrawn",
    "EarningsWithdrawn",
    "FeesWithdrawn",
    "JobPosted",
    "JobAccepted",
    "ResultSubmitted",
    *ENDINGS,
)
"""The market events that move NTK or change a job's life."""


@dataclass
class Books:
    """What the market owes, rebuilt from its events alone."""

    escrow: dict[int, int] = field(default_factory=dict)  # open job -> payment
    locked: dict[int, int] = field(default_factory=dict)  # accepted job -> collateral
    stake: Counter[str] = field(default_factory=Counter)
    unbonding: Counter[str] = field(default_factory=Counter)
    earned: Counter[str] = field(default_factory=Counter)
    fees: int = 0
    burned: int = 0
    payouts: Counter[int] = field(default_factory=Counter)

    def total(self) -> int:
        return (
            sum(self.escrow.values())
            + sum(self.locked.values())
            + sum(self.stake.values())
            + sum(self.unbonding.values())
            + sum(self.earned.values())
            + self.fees
        )

    def apply(self, name: str, a: dict[str, Any]) -> None:
        """Books one market event; its amounts must agree with what the books hold."""
        if name in PAYOUT_EVENTS:
            self.payouts[int(a["jobId"])] += 1
        if name == "ProviderRegistered":
            self.stake[a["provider"]] += a["stakeNtk"]
        elif name == "StakeAdded":
            self.stake[a["provider"]] += a["amountNtk"]
            assert self.stake[a["provider"]] == a["stakeNtk"], a
        elif name == "UnbondRequested":
            self.stake[a["provider"]] -= a["amountNtk"]
            self.unbonding[a["provider"]] += a["amountNtk"]
            assert self.unbonding[a["provider"]] == a["unbondingNtk"], a
        elif name == "UnbondWithdrawn":
            assert self.unbonding[a["provider"]] == a["amountNtk"], a
            self.unbonding[a["provider"]] = 0
        elif name == "EarningsWithdrawn":
            assert self.earned[a["provider"]] == a["amountNtk"], a
            self.earned[a["provider"]] = 0
        elif name == "FeesWithdrawn":
            assert self.fees == a["amountNtk"], a
            self.fees = 0
        elif name == "JobPosted":
            posted = fold(int(a["jobId"]), [(name, a)])
            assert posted is not None, a
            self.escrow[a["jobId"]] = posted.payment_ntk
        elif name == "JobAccepted":
            self.stake[a["provider"]] -= a["collateralNtk"]
            assert self.stake[a["provider"]] >= 0, a
            self.locked[a["jobId"]] = a["collateralNtk"]
        elif name == "JobPaid":
            payment, collateral = self.escrow.pop(a["jobId"]), self.locked.pop(a["jobId"])
            assert a["providerNtk"] + a["feeNtk"] == payment, a
            self.earned[a["provider"]] += a["providerNtk"]
            self.fees += a["feeNtk"]
            self.stake[a["provider"]] += collateral
        elif name in ("JobRejected", "JobDefaulted"):
            payment, collateral = self.escrow.pop(a["jobId"]), self.locked.pop(a["jobId"])
            assert a["refundNtk"] == payment + a["compensationNtk"], a
            assert a["compensationNtk"] + a["burnedNtk"] == collateral, a
            self.burned += a["burnedNtk"]
        elif name == "JobLapsed":
            payment, collateral = self.escrow.pop(a["jobId"]), self.locked.pop(a["jobId"])
            assert a["refundNtk"] == payment and a["collateralNtk"] == collateral, a
            self.stake[a["provider"]] += collateral
        elif name in ("JobCancelled", "JobExpired"):
            assert a["refundNtk"] == self.escrow.pop(a["jobId"]), a


def market_events(w3: Web3, market: str, from_block: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Every booked event of the market at `market`, in chain order, as (name, args)."""
    abi, _ = load_artifact("ComputeMarket")
    contract = w3.eth.contract(address=to_checksum_address(market), abi=abi)
    found: list[tuple[int, int, str, dict[str, Any]]] = []
    for name in BOOKED_EVENTS:
        for log in contract.events[name]().get_logs(from_block=from_block):
            found.append((log["blockNumber"], log["logIndex"], name, dict(log["args"])))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(name, args) for _, _, name, args in found]


def check_market_invariants(
    w3: Web3,
    market: str,
    job_ids: Iterable[int] | None = None,
    *,
    from_block: int = 0,
    defaults_allowed: bool = False,
) -> dict[str, int]:
    """Asserts the market's invariants from the chain (see the module's docstring) for the
    jobs `job_ids` (default: every job ever posted) and returns the campaign's figures:
    jobs checked, and how many ended in each way.

    `from_block` must be at or before the market's deployment: the books start from nothing.
    """
    abi, _ = load_artifact("ComputeMarket")
    contract = w3.eth.contract(address=to_checksum_address(market), abi=abi)
    token_abi, _ = load_artifact("NeuroToken")
    token = w3.eth.contract(address=contract.functions.token().call(), abi=token_abi)

    events = market_events(w3, market, from_block)
    books = Books()
    endings: dict[int, list[str]] = {}
    accepted: set[int] = set()
    submitted: set[int] = set()
    posted: set[int] = set()
    for name, args in events:
        books.apply(name, args)
        job = int(args.get("jobId", -1))
        if name == "JobPosted":
            posted.add(job)
        elif name == "JobAccepted":
            accepted.add(job)
        elif name == "ResultSubmitted":
            submitted.add(job)
        elif name in ENDINGS:
            endings.setdefault(job, []).append(name)

    # the market's NTK equals its books, and the books agree with the market's own views
    balance = int(token.functions.balanceOf(contract.address).call())
    assert balance == books.total(), f"market holds {balance} NTK, its books {books.total()}"
    assert int(contract.functions.feesNtk().call()) == books.fees
    for provider in set(books.stake) | set(books.unbonding) | set(books.earned):
        record = contract.functions.getProvider(provider).call()
        stake, earned, unbonding = int(record[0]), int(record[1]), int(record[4])
        assert (stake, earned, unbonding) == (
            books.stake[provider],
            books.earned[provider],
            books.unbonding[provider],
        ), (provider, record)

    # nobody paid twice: at most one ending per job, market-wide
    twice = {job: names for job, names in endings.items() if len(names) > 1}
    assert not twice, f"jobs that ended more than once: {twice}"
    assert all(count == 1 for count in books.payouts.values()), books.payouts

    # every job of the campaign reached exactly one final state, and the market agrees
    jobs = sorted(posted if job_ids is None else set(job_ids))
    missing = [job for job in jobs if job not in posted]
    assert not missing, f"jobs never posted: {missing}"
    open_jobs = [job for job in jobs if job not in endings]
    assert not open_jobs, f"jobs that never reached a final state: {open_jobs}"
    for job in jobs:
        ending = endings[job][0]
        record = fold(job, events)
        assert record is not None and record.state == ENDINGS[ending], (job, ending, record)
        # an ended job's digest is cleared: no call can touch it again
        assert bytes(contract.functions.jobDigest(job).call()) == bytes(32), (job, ending)

    # no accepted job left unworked
    unworked = sorted(job for job in jobs if job in accepted and job not in submitted)
    if not defaults_allowed:
        assert not unworked, f"accepted jobs never submitted: {unworked}"

    figures: dict[str, int] = {"jobs": len(jobs), "market events": len(events)}
    for ending in ENDINGS:
        figures[ending] = sum(1 for job in jobs if endings[job][0] == ending)
    return figures
