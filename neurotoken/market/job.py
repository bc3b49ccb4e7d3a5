"""IComputeMarket.Job as every Python reader of the market sees it: one record, decoded once.

The market stores only the keccak256 of a job's record (`jobDigest(jobId)`); every call about a
job passes the record, and the events carry every change. `OnChainJob` is the record unpacked
(`from_record` / `record`), and `fold` rebuilds it from a job's events: JobPosted carries the
first record, JobAccepted, ResultSubmitted and the event that ends the job each change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from neurotoken.market.states import JobState

ZERO_ADDRESS = "0x" + "00" * 20
_ADDRESS_MASK = (1 << 160) - 1

# Bit offsets of IComputeMarket.Job.terms.
_FIELDS = (
    ("state", 0, 8),
    ("accept_by", 8, 40),
    ("deliver_by", 48, 40),
    ("verdict_by", 88, 40),
    ("seed_block", 128, 40),
    ("shard_count", 168, 24),
    ("challenge_count", 192, 16),
    ("fee_bps", 208, 16),
    ("oracle_epoch", 224, 24),
    ("threshold", 248, 8),
)

ENDINGS: Mapping[str, JobState] = {
    "JobPaid": JobState.PAID,
    "JobRejected": JobState.REJECTED,
    "JobCancelled": JobState.CANCELLED,
    "JobExpired": JobState.EXPIRED,
    "JobDefaulted": JobState.DEFAULTED,
    "JobLapsed": JobState.LAPSED,
}
"""The events that end a job, and the state each leaves."""

RECORD_EVENTS = ("JobPosted", "JobAccepted", "ResultSubmitted", *ENDINGS)
"""Every event that creates or changes a job's record, in lifecycle order."""


@dataclass(frozen=True)
class OnChainJob:
    """IComputeMarket.Job, unpacked, plus its id."""

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
    def from_record(cls, job_id: int, raw: Sequence[Any]) -> OnChainJob:
        """Unpacks a record (IComputeMarket.Job's five words, as a call or an event has it)."""
        if len(raw) != 5:
            raise ValueError(f"a job record has 5 words, got {len(raw)}")
        client_payment, provider_collateral, terms = (int(w) for w in raw[:3])
        fields = {name: (terms >> shift) & ((1 << bits) - 1) for name, shift, bits in _FIELDS}
        return cls(
            job_id=int(job_id),
            client=_address(client_payment),
            payment_ntk=client_payment >> 160,
            provider=_address(provider_collateral),
            collateral_ntk=provider_collateral >> 160,
            spec_hash=bytes(raw[3]),
            result_root=bytes(raw[4]),
            state=JobState(fields.pop("state")),
            **fields,
        )

    def record(self) -> tuple[int, int, int, bytes, bytes]:
        """The five words the market's calls take (IComputeMarket.Job)."""
        terms = 0
        for name, shift, bits in _FIELDS:
            value = int(getattr(self, name))
            if not 0 <= value < 1 << bits:
                raise ValueError(f"{name} = {value} does not fit {bits} bits")
            terms |= value << shift
        return (
            (self.payment_ntk << 160) | int(self.client, 16),
            (self.collateral_ntk << 160) | int(self.provider, 16),
            terms,
            bytes(self.spec_hash),
            bytes(self.result_root),
        )

    def digest(self) -> bytes:
        """keccak256(abi.encode(record)): what `jobDigest(jobId)` holds while it is current."""
        return keccak(
            encode(["uint256", "uint256", "uint256", "bytes32", "bytes32"], self.record())
        )

    @property
    def is_open(self) -> bool:
        return self.state in (JobState.POSTED, JobState.ACCEPTED, JobState.SUBMITTED)

    def apply(self, name: str, args: Mapping[str, Any]) -> OnChainJob:
        """The record after event `name` (decoded `args`) of this job."""
        if name == "JobAccepted":
            return replace(
                self, provider=to_checksum_address(args["provider"]), state=JobState.ACCEPTED
            )
        if name == "ResultSubmitted":
            return replace(
                self,
                result_root=_bytes32(args["resultRoot"]),
                seed_block=int(args["seedBlock"]),
                state=JobState.SUBMITTED,
            )
        if name in ENDINGS:
            return replace(self, state=ENDINGS[name])
        raise ValueError(f"{name} does not change a job record")


def fold(job_id: int, events: Iterable[tuple[str, Mapping[str, Any]]]) -> OnChainJob | None:
    """A job's record from its events in chain order ((name, decoded args) pairs; other
    jobs' events and unrelated events are skipped). None if the job was never posted."""
    job: OnChainJob | None = None
    for name, args in events:
        if name not in RECORD_EVENTS or int(args.get("jobId", -1)) != job_id:
            continue
        if name == "JobPosted":
            job = OnChainJob.from_record(job_id, _words(args["job"]))
        elif job is not None:
            job = job.apply(name, args)
    return job


def _address(word: int) -> str:
    return to_checksum_address((word & _ADDRESS_MASK).to_bytes(20, "big"))


def _words(raw: Any) -> Sequence[Any]:
    if isinstance(raw, Mapping):
        keys = ("clientAndPayment", "providerAndCollateral", "terms", "specHash", "resultRoot")
        return [raw[k] for k in keys]
    return [_bytes32(w) if i >= 3 else w for i, w in enumerate(raw)]


def _bytes32(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)
