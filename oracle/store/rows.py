"""The rows the store hands out: frozen dataclasses for chain events, specs, jobs,
verdicts, signatures, transactions (their attempts are `neurotoken.chain.sender.Attempt`s),
rollback reports, and the converter from a database row to a `JobRow`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurotoken.chain.sender import Attempt
from oracle.store.schema import unhex


@dataclass(frozen=True)
class ChainEvent:
    """One decoded market log, as ingestion hands it to the store."""

    block_number: int
    log_index: int
    block_hash: str
    tx_hash: str
    name: str
    job_id: int | None
    data: dict[str, Any]


@dataclass(frozen=True)
class SpecRow:
    job_id: int
    spec_hash: bytes
    spec_uri: str
    shard_count: int
    challenge_count: int
    verdict_by: int
    accept_by: int | None = None
    deliver_by: int | None = None


@dataclass(frozen=True)
class Unsubmitted:
    """A job whose acceptance deadline has passed with no result seen and no end recorded:
    expired if nobody accepted it, defaulted once its delivery deadline passes."""

    job_id: int
    accept_by: int
    deliver_by: int


@dataclass(frozen=True)
class JobRow:
    job_id: int
    result_root: bytes | None
    bundle_uri: str | None
    seed_block: int | None
    submitted_block: int | None
    provider: str | None
    state: str
    accepted: bool | None
    reasons: str | None
    attempts: int
    next_attempt_at: float
    seen_at: float
    verify_started_at: float | None
    verified_at: float | None
    tx_id: int | None
    outcome: str | None
    settled_tx: str | None
    settled_block: int | None
    final: bool


@dataclass(frozen=True)
class VerdictRow:
    job_id: int
    result_root: bytes
    accepted: bool
    reasons: list[str]
    challenged: list[int]
    latency_s: float | None
    seed: bytes | None
    """The challenge seed the verdict judged (None only for verdicts stored before
    migration 3, which are never signed)."""


@dataclass(frozen=True)
class SignatureRow:
    job_id: int
    result_root: bytes
    signer: str
    accepted: bool
    signature: bytes
    own: bool


@dataclass(frozen=True)
class TxRow:
    id: int
    sender: str
    nonce: int
    kind: str
    job_ids: list[int]
    to_address: str
    data: bytes
    gas: int
    status: str
    mined_hash: str | None
    block_number: int | None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class RollbackReport:
    ancestor: int
    events_removed: int
    jobs_touched: list[int]


def _job(row: Any) -> JobRow:
    m = row._mapping
    return JobRow(
        job_id=int(m["job_id"]),
        result_root=unhex(m["result_root"]) if m["result_root"] else None,
        bundle_uri=m["bundle_uri"],
        seed_block=m["seed_block"],
        submitted_block=m["submitted_block"],
        provider=m["provider"],
        state=m["state"],
        accepted=m["accepted"],
        reasons=m["reasons"],
        attempts=int(m["attempts"]),
        next_attempt_at=float(m["next_attempt_at"]),
        seen_at=float(m["seen_at"]),
        verify_started_at=m["verify_started_at"],
        verified_at=m["verified_at"],
        tx_id=m["tx_id"],
        outcome=m["outcome"],
        settled_tx=m["settled_tx"],
        settled_block=m["settled_block"],
        final=bool(m["final"]),
    )
