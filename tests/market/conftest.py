"""Compute-market fixtures: a token and a market deployed once per module, and builders for
jobs in each lifecycle state and for oracle signatures (the accounts: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from neurotoken.market.job import OnChainJob
from neurotoken.market.records import ape_reader
from neurotoken.market.verdicts import (
    MarketDomain,
    Verdict,
    sign_batch,
    sign_verdict,
)
from neurotoken.units import NTK
from tests.constants import (
    CHALLENGES,
    COLLATERAL,
    MAX_UINT256,
    PAYMENT,
    SHARDS,
    STAKE,
    ZERO_ADDRESS,
)

# tests/market/test_demo.py reads these three from here.
from tests.constants import DEFAULTED as DEFAULTED
from tests.constants import PAID as PAID
from tests.constants import REJECTED as REJECTED
from tests.helpers import deploy_market, deploy_token, sorted_signatures

SPEC_HASH = b"\x5e" * 32
RESULT_ROOT = b"\x7a" * 32


@pytest.fixture(scope="module")
def token(project: Any, owner: Any, minter: Any) -> Any:
    """This module's NeuroToken (`minter` holds the minter role), deployed once per module
    like the market below."""
    return deploy_token(project, owner, minter)


@pytest.fixture(scope="module")
def market(
    project: Any,
    owner: Any,
    token: Any,
    minter: Any,
    oracles: list[Any],
    client: Any,
    provider: Any,
    provider2: Any,
) -> Any:
    """A market with 3 oracles, threshold 2, fee 2.5%; client and providers funded and approved.
    Deployed once per module: ape restores the chain after every test, so each test starts
    from this freshly deployed state (and deploying nine transactions per test was a minute
    of the suite)."""
    return funded(
        deploy_market(project, token, owner, oracles), token, minter, client, provider, provider2
    )


def funded(market: Any, token: Any, minter: Any, *accounts: Any) -> Any:
    """`market`, once each account holds 100,000 NTK and has approved the market for all."""
    for account in accounts:
        token.mint(account, 100_000 * NTK, sender=minter)
        token.approve(market, MAX_UINT256, sender=account)
    return market


@dataclass
class Market:
    """Builders around one deployed market."""

    contract: Any
    chain: Any
    client: Any
    provider: Any
    oracles: list[Any]

    @property
    def domain(self) -> MarketDomain:
        return MarketDomain(self.chain.chain_id, self.contract.address)

    def request(self, **overrides: Any) -> dict[str, Any]:
        return job_request(self.chain, **overrides)

    def job(self, job_id: int) -> OnChainJob:
        """The job's record (its final one once it has ended), rebuilt from its events and
        checked against the digest the market stores."""
        return ape_reader(self.contract).get(job_id)

    def rec(self, job_id: int) -> tuple[Any, ...]:
        """The job's current record as the market's calls take it (IComputeMarket.Job)."""
        return self.job(job_id).record()

    def register(self, provider: Any | None = None, stake: int = STAKE) -> Any:
        return self.contract.registerProvider(
            stake, "https://gpu.example/provider.json", sender=provider or self.provider
        )

    def post(self, client: Any | None = None, **overrides: Any) -> int:
        tx = self.contract.postJob(self.request(**overrides), sender=client or self.client)
        return int(tx.return_value)

    def accepted(self, provider: Any | None = None, **overrides: Any) -> int:
        provider = provider or self.provider
        if not self.contract.getProvider(provider).registered:
            self.register(provider)
        job_id = self.post(**overrides)
        self.contract.acceptJob(job_id, self.rec(job_id), sender=provider)
        return job_id

    def submitted(
        self, provider: Any | None = None, root: bytes = RESULT_ROOT, **overrides: Any
    ) -> int:
        provider = provider or self.provider
        job_id = self.accepted(provider, **overrides)
        self.contract.submitResult(
            job_id, self.rec(job_id), root, SHARDS, "ipfs://bundle", sender=provider
        )
        # The seed block, then one more: a view sees the seed block's hash only from the next.
        self.chain.mine(2)
        return job_id

    def sign(
        self,
        job_id: int,
        accepted: bool,
        signers: Sequence[Any],
        root: bytes | None = None,
        seed: bytes | None = None,
    ) -> list[bytes]:
        """Signatures of `signers` over the job's verdict, sorted by signer address."""
        root = root if root is not None else self.job(job_id).result_root
        seed = seed if seed is not None else self.seed(job_id)
        signed = [
            sign_verdict(s.private_key, self.domain, Verdict(job_id, root, seed, accepted))
            for s in signers
        ]
        return sorted_signatures(signed)

    def seed(self, job_id: int) -> bytes:
        """The job's challenge seed, as the contract reads it."""
        return bytes(self.contract.challengeSeed(job_id, self.job(job_id).seed_block))

    def sign_batch(
        self, entries: Sequence[tuple[int, bool]], signers: Sequence[Any]
    ) -> list[bytes]:
        verdicts = [
            Verdict(job_id, self.job(job_id).result_root, self.seed(job_id), accepted)
            for job_id, accepted in entries
        ]
        return sorted_signatures(
            [sign_batch(s.private_key, self.domain, verdicts) for s in signers]
        )


def job_request(chain: Any, **overrides: Any) -> dict[str, Any]:
    """postJob's request: a job open to any provider on the market defaults, its deadlines an
    hour apart from the next block on; `overrides` replace fields."""
    now = chain.pending_timestamp
    fields: dict[str, Any] = {
        "specHash": SPEC_HASH,
        "specURI": "ipfs://spec",
        "paymentNtk": PAYMENT,
        "provider": ZERO_ADDRESS,
        "collateralNtk": COLLATERAL,
        "shardCount": SHARDS,
        "challengeCount": CHALLENGES,
        "acceptBy": now + 3600,
        "deliverBy": now + 7200,
        "verdictBy": now + 10800,
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def m(market: Any, chain: Any, client: Any, provider: Any, oracles: list[Any]) -> Market:
    return Market(market, chain, client, provider, oracles)


@pytest.fixture
def balance_of(token: Any) -> Callable[[Any], int]:
    return lambda account: int(token.balanceOf(account))


def event_args(tx: Any, event: Any) -> dict[str, Any]:
    """The arguments of the single `event` log in `tx` (asserting there is exactly one)."""
    logs = tx.events.filter(event)
    assert len(logs) == 1, f"expected one {event.name}, got {len(logs)}"
    return dict(logs[0].event_arguments)
