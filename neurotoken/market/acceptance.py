"""A provider's quote: its EIP-712 acceptance of a job before the client posts it.

A client that asks a provider for a quote gets back the provider's signature over
``Acceptance(uint256 clientAndPayment,uint256 providerAndCollateral,uint256 terms,bytes32
specHash)``: the record the job will have once posted by `postAcceptedJob` (state Accepted,
no result root, the fee, oracle epoch and threshold in force). The client posts the job with
that signature and the job starts Accepted: one transaction instead of a post and an accept.
The domain is the market's (`MarketDomain`), as for verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from neurotoken.eip712 import EIP712_DOMAIN_FIELDS
from neurotoken.market.job import ZERO_ADDRESS, OnChainJob
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain

ACCEPTANCE_TYPE = (
    "Acceptance(uint256 clientAndPayment,uint256 providerAndCollateral,uint256 terms,"
    "bytes32 specHash)"
)
ACCEPTANCE_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_FIELDS,
    "Acceptance": [
        {"name": "clientAndPayment", "type": "uint256"},
        {"name": "providerAndCollateral", "type": "uint256"},
        {"name": "terms", "type": "uint256"},
        {"name": "specHash", "type": "bytes32"},
    ],
}


REQUEST_FIELDS = (
    "specHash",
    "specURI",
    "paymentNtk",
    "provider",
    "collateralNtk",
    "shardCount",
    "challengeCount",
    "acceptBy",
    "deliverBy",
    "verdictBy",
)
"""IComputeMarket.JobRequest's fields, in order."""

REQUEST_UINT_BITS = {
    "paymentNtk": 96,
    "collateralNtk": 96,
    "shardCount": 32,
    "challengeCount": 32,
    "acceptBy": 64,
    "deliverBy": 64,
    "verdictBy": 64,
}
"""The widths of JobRequest's integer fields (what the market's ABI takes)."""


class AcceptanceError(ValueError):
    """A request that cannot be quoted (no provider named, or a field out of range)."""


def quoted_job(
    request: Mapping[str, Any],
    client: str,
    *,
    fee_bps: int,
    oracle_epoch: int,
    threshold: int,
) -> OnChainJob:
    """The record `postAcceptedJob(request, ...)` sent by `client` will store, given the
    market's fee, oracle epoch and threshold when it lands (its id is not part of it)."""
    provider = str(request["provider"])
    if int(provider, 16) == 0:
        raise AcceptanceError("a quote names its provider: request.provider is zero")
    return OnChainJob(
        job_id=0,
        client=client,
        payment_ntk=int(request["paymentNtk"]),
        provider=provider,
        collateral_ntk=int(request["collateralNtk"]),
        spec_hash=_bytes32(request["specHash"]),
        result_root=b"\x00" * 32,
        state=JobState.ACCEPTED,
        accept_by=int(request["acceptBy"]),
        deliver_by=int(request["deliverBy"]),
        verdict_by=int(request["verdictBy"]),
        seed_block=0,
        shard_count=int(request["shardCount"]),
        challenge_count=int(request["challengeCount"]),
        fee_bps=fee_bps,
        oracle_epoch=oracle_epoch,
        threshold=threshold,
    )


def acceptance_message(domain: MarketDomain, job: OnChainJob) -> dict[str, Any]:
    """The EIP-712 typed data a provider signs to accept `job` (a `quoted_job`)."""
    if job.state is not JobState.ACCEPTED or job.provider == ZERO_ADDRESS:
        raise AcceptanceError("an acceptance covers an Accepted record that names its provider")
    client_payment, provider_collateral, terms, spec_hash, _ = job.record()
    return {
        "types": ACCEPTANCE_TYPES,
        "primaryType": "Acceptance",
        "domain": domain.as_dict(),
        "message": {
            "clientAndPayment": client_payment,
            "providerAndCollateral": provider_collateral,
            "terms": terms,
            "specHash": spec_hash,
        },
    }


def sign_acceptance(private_key: Any, domain: MarketDomain, job: OnChainJob) -> bytes:
    """The provider's 65-byte acceptance signature of `job`."""
    signable = encode_typed_data(full_message=acceptance_message(domain, job))
    return bytes(Account.sign_message(signable, private_key).signature)


def acceptance_signer(domain: MarketDomain, job: OnChainJob, signature: bytes) -> str:
    """Who signed an acceptance of `job` (what the market checks against the provider)."""
    signable = encode_typed_data(full_message=acceptance_message(domain, job))
    return str(Account.recover_message(signable, signature=signature))


def _bytes32(value: Any) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise AcceptanceError(f"a spec hash is 32 bytes, got {len(raw)}")
    return raw
