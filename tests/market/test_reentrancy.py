"""A hostile token that calls back into the market in the middle of a transfer is refused by
the reentrancy guard (NTK itself has no hooks; this checks the guard is really there)."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from neurotoken.market.records import ape_reader
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_verdict
from tests.constants import MAX_UINT256, POSTED, SHARDS
from tests.helpers import deploy_market, sorted_signatures
from tests.market.conftest import job_request


@pytest.fixture
def hostile(
    project: Any, owner: Any, client: Any, provider: Any, oracles: list[Any]
) -> tuple[Any, Any]:
    token = project.ReentrantToken.deploy(sender=owner)
    market = deploy_market(project, token, owner, oracles)
    for account in (client, provider):
        token.mint(account, 10_000 * 10**18, sender=owner)
        token.approve(market, MAX_UINT256, sender=account)
    return token, market


def test_cancel__token_reenters_cancel__refused_by_guard(hostile, chain, client):
    token, market = hostile
    market.postJob(job_request(chain), sender=client)
    record = ape_reader(market).get(1).record()
    token.arm(market, market.cancelJob.encode_input(1, record), sender=client)
    with ape.reverts(market.ReentrancyGuardReentrantCall):
        market.cancelJob(1, record, sender=client)
    # Still Posted, with the same record: nothing was refunded.
    assert bytes(market.jobDigest(1)) == bytes(market.hashJob(record))
    assert ape_reader(market).get(1).state == POSTED


def test_post__token_reenters_post__refused_by_guard(hostile, chain, client):
    token, market = hostile
    token.arm(market, market.postJob.encode_input(job_request(chain)), sender=client)
    with ape.reverts(market.ReentrancyGuardReentrantCall):
        market.postJob(job_request(chain), sender=client)
    assert market.nextJobId() == 1


def test_withdraw_earnings__token_reenters_withdraw__refused_by_guard(
    hostile, chain, client, provider, oracles
):
    token, market = hostile
    market.registerProvider(1_000 * 10**18, "uri", sender=provider)
    market.postJob(job_request(chain), sender=client)
    reader = ape_reader(market)
    market.acceptJob(1, reader.get(1).record(), sender=provider)
    market.submitResult(1, reader.get(1).record(), b"\x01" * 32, SHARDS, "", sender=provider)
    chain.mine(2)
    domain = MarketDomain(chain.chain_id, market.address)
    job = reader.get(1)
    seed = bytes(market.challengeSeed(1, job.seed_block))
    signed = [
        sign_verdict(o.private_key, domain, Verdict(1, b"\x01" * 32, seed, True))
        for o in oracles[:2]
    ]
    market.settle(1, job.record(), True, sorted_signatures(signed), sender=provider)
    earned = market.getProvider(provider).earnedNtk
    token.arm(market, market.withdrawEarnings.encode_input(), sender=provider)
    with ape.reverts(market.ReentrancyGuardReentrantCall):
        market.withdrawEarnings(sender=provider)
    assert market.getProvider(provider).earnedNtk == earned
