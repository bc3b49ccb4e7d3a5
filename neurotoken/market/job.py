"""IComputeMarket.Job as every Python reader of the market sees it: one record, decoded once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from neurotoken.market.states import JobState


@dataclass(frozen=True)
class OnChainJob:
    """IComputeMarket.Job, decoded (`getJob`'s tuple, in the struct's order, plus its id)."""

    job_id: int
    client: str
    payment_ntk: int
    provider: str
    collateral_ntk: int
    spec_hash: bytes
    result_root: bytes
    state: JobState
    accept_by: int
    deliver_by: int
    verdict_by: int
    seed_block: int
    shard_count: int
    challenge_count: int
    fee_bps: int
    oracle_epoch: int = 0
    """The oracle epoch the job was posted in: only that epoch's oracles settle it."""
    threshold: int = 0
    """Signatures its settlement needs (fixed when it was posted)."""

    @classmethod
    def from_struct(cls, job_id: int, raw: Sequence[Any]) -> OnChainJob:
        """Decodes `getJob(job_id)`'s answer (16 fields, IComputeMarket.Job's order)."""
        if len(raw) != 16:
            raise ValueError(f"getJob answered {len(raw)} fields, IComputeMarket.Job has 16")
        return cls(
            job_id=int(job_id),
            client=to_checksum_address(raw[0]),
            payment_ntk=int(raw[1]),
            provider=to_checksum_address(raw[2]),
            collateral_ntk=int(raw[3]),
            spec_hash=bytes(raw[4]),
            result_root=bytes(raw[5]),
            state=JobState(int(raw[6])),
            accept_by=int(raw[7]),
            deliver_by=int(raw[8]),
            verdict_by=int(raw[9]),
            seed_block=int(raw[10]),
            shard_count=int(raw[11]),
            challenge_count=int(raw[12]),
            fee_bps=int(raw[13]),
            oracle_epoch=int(raw[14]),
            threshold=int(raw[15]),
        )
