"""devchain.invariants, the check every fault campaign ends with: it holds on a market whose
jobs ended each in one way, and it fails on each thing it is there to catch."""

from __future__ import annotations

from typing import Any

import pytest

from devchain.invariants import check_market_invariants
from neurotoken.units import NTK


def check(market: Any, chain: Any, *args: Any, **kwargs: Any) -> dict[str, int]:
    return check_market_invariants(chain.provider.web3, market.address, *args, **kwargs)


def test_invariants__paid_rejected_cancelled_jobs__hold_with_their_figures(
    m, market, chain, client, oracles
) -> None:
    paid, rejected = m.submitted(), m.submitted()
    market.settle(paid, m.rec(paid), True, m.sign(paid, True, oracles[:2]), sender=client)
    market.settle(
        rejected, m.rec(rejected), False, m.sign(rejected, False, oracles[:2]), sender=client
    )
    cancelled = m.post()
    market.cancelJob(cancelled, m.rec(cancelled), sender=client)
    figures = check(market, chain, [paid, rejected, cancelled])
    assert figures["jobs"] == 3
    assert (figures["JobPaid"], figures["JobRejected"], figures["JobCancelled"]) == (1, 1, 1)


def test_invariants__a_job_still_open__fails(m, market, chain) -> None:
    job = m.submitted()
    with pytest.raises(AssertionError, match="never reached a final state"):
        check(market, chain, [job])


def test_invariants__ntk_sent_to_the_market_outside_its_books__fails(
    m, market, chain, token, client
) -> None:
    m.post()
    check(market, chain, [])  # an open job's payment is in the books: they balance
    token.transfer(market, 1 * NTK, sender=client)
    with pytest.raises(AssertionError, match="its books"):
        check(market, chain, [])


def test_invariants__an_accepted_job_defaulted__fails_unless_defaults_are_allowed(
    m, market, chain, stranger
) -> None:
    job = m.accepted()
    chain.mine(timestamp=m.job(job).deliver_by + 1)
    market.expireJob(job, m.rec(job), sender=stranger)
    with pytest.raises(AssertionError, match="never submitted"):
        check(market, chain, [job])
    assert check(market, chain, [job], defaults_allowed=True)["JobDefaulted"] == 1
