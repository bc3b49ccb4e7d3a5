"""The verifier: fetch the challenged shards of a committed result and re-execute them.

`verify_job` is the whole procedure an oracle runs for one job:

1. derive the k challenged indices from the challenge seed and the job id;
2. fetch the manifest, and for each challenged shard (and the checkpoint it starts from)
   its inclusion proof and its output, every object checked against its keccak256, each
   fetch bounded in size, time and rate, with bounded retries for transient failures;
3. check the manifest against the commitment (job id, spec hash, shard count, and the root
   recomputed from its leaves), every proof against the committed root, every output
   against its leaf;
4. check that the whole result is available: every other shard output the manifest lists
   is fetched (once; challenged shards are not fetched twice) and hashed against its leaf,
   not re-executed, and not kept;
5. re-execute each challenged shard from its dependencies and compare: bit for bit, or for
   float32 training within `FLOAT32_TOLERANCE`.

It accepts only when nothing at all is wrong. Every problem becomes a `Finding` with a
`Reason`. A verdict whose only findings are transient (timeouts, an unreachable server) is
marked `retryable`: reject now, or try again before the verdict deadline.

Totality: no bytes a provider serves make `verify_job` or `fetch_bundle` raise. The parsers
turn every failure into `BundleError`; re-execution that raises on a shard's bytes is
`SHARD_MALFORMED`; and a last-resort guard turns any other exception met while judging the
provider's data into a `MALFORMED` finding. Only the oracle's own trouble passes through
(`ORACLE_SIDE`: running out of memory under its own limit, OS errors of its own machine,
`OracleSideError` such as failing to start a thread), so the caller can retry instead of
signing a verdict on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from neurotoken.errors import NeurotokenError
from neurotoken.jobs.canonical import keccak256
from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, spec_hash
from neurotoken.proofs.bundle import (
    MAX_MANIFEST_BYTES,
    MAX_PROOF_BYTES,
    BundleError,
    InclusionProof,
    Manifest,
    from_hex,
    parse_manifest,
    parse_proof,
)
from neurotoken.proofs.challenge import challenge_indices
from neurotoken.proofs.merkle import shard_leaf, verify
from neurotoken.proofs.store import (
    BundleSource,
    FetchError,
    FetchFailure,
    HttpSource,
    check_objects,
    fetch_object,
)
from neurotoken.workloads import CheckFailure, check_shard, dependencies, max_shard_bytes

AnySpec = ShelfImagesSpec | TrainingSpec
_T = TypeVar("_T")

MAX_AVAILABILITY_FINDINGS = 8
"""The availability check stops after this many unavailable shards (the verdict is a reject
either way; listing thousands of missing shards helps nobody)."""
MAX_DETAIL_CHARS = 300
AVAILABILITY_BATCH = 64
"""Unchallenged shards checked per task (one connection each, reused across the batch)."""


class OracleSideError(NeurotokenError):
    """Trouble on the oracle's own side (threads, file descriptors), not the provider's."""


ORACLE_SIDE: tuple[type[BaseException], ...] = (MemoryError, OSError, OracleSideError)
"""Exceptions that are the oracle's own failure: they pass through `verify_job` (a worker
turns them into a retry), everything else met while judging a provider's data is a finding."""


def safe_text(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Printable ASCII of bounded length (details quote provider data: lone surrogates,
    control characters and megabytes of text must not reach logs, stores or signatures)."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Reason(StrEnum):
    SPEC_MISMATCH = "the spec does not match the committed spec hash or shard count"
    CHALLENGE_INVALID = "the challenge cannot be drawn for this job"
    MANIFEST_MISSING = "the manifest is not served"
    MANIFEST_TOO_LARGE = "the manifest is larger than any valid one"
    MANIFEST_MALFORMED = "the manifest is malformed"
    MANIFEST_MISMATCH = "the manifest is for another job, spec or shard count"
    ROOT_MISMATCH = "the manifest's leaves do not hash to the committed root"
    PROOF_MISSING = "an inclusion proof is not served"
    PROOF_MALFORMED = "an inclusion proof is malformed"
    PROOF_INVALID = "an inclusion proof does not lead to the committed root"
    SHARD_MISSING = "a shard output is not served"
    SHARD_TOO_LARGE = "a shard output is larger than the spec allows"
    SHARD_HASH_MISMATCH = "a shard output does not match its leaf"
    SHARD_MALFORMED = "a shard output is malformed"
    RECOMPUTE_MISMATCH = "a re-executed shard differs from the committed output"
    OUT_OF_TOLERANCE = "a re-executed shard differs beyond the stated tolerance"
    BAD_CHECKPOINT = "the committed checkpoint a shard starts from is unusable"
    TOO_SLOW = "the bundle server sent bytes slower than the minimum rate"
    MALFORMED = "the provider's data broke the verifier (an unexpected error judging it)"
    SPEC_NOT_SERVED = "neither the client nor the provider's bundle serves the committed spec"
    SPEC_INVALID = "the spec hashes to the committed spec hash but is not a valid spec"
    SPEC_UNPAYABLE = "the spec is valid but the market cannot verify or pay for the job"
    UNAVAILABLE = "the bundle server failed or timed out (after retries)"
    DEADLINE_EXCEEDED = "fetching took longer than the verification deadline"


TRANSIENT = frozenset({Reason.UNAVAILABLE, Reason.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class Commitment:
    """What the chain says about a job's result."""

    job_id: int
    spec_hash: bytes
    shard_count: int
    root: bytes


@dataclass(frozen=True)
class VerifierLimits:
    deadline_s: float = 300.0
    """Wall-clock budget for all fetches of one verification."""
    max_manifest_bytes: int = MAX_MANIFEST_BYTES
    max_proof_bytes: int = MAX_PROOF_BYTES
    fetch_concurrency: int = 8
    """Shards (proof and output) fetched at once; 1 fetches them one after another."""


@dataclass(frozen=True)
class Finding:
    reason: Reason
    shard: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", safe_text(self.detail))

    def __str__(self) -> str:
        where = f"shard {self.shard}: " if self.shard is not None else ""
        return f"{self.reason.name}: {where}{self.reason.value}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(frozen=True)
class VerificationResult:
    accepted: bool
    findings: tuple[Finding, ...]
    challenged: tuple[int, ...]

    @property
    def retryable(self) -> bool:
        """Rejected only for transient reasons: the oracle may try again later."""
        return bool(self.findings) and all(f.reason in TRANSIENT for f in self.findings)

    @property
    def reasons(self) -> set[Reason]:
        return {f.reason for f in self.findings}

    def summary(self) -> str:
        if self.accepted:
            return f"accepted: {len(self.challenged)} challenged shards re-executed and matched"
        return "rejected: " + "; ".join(str(f) for f in self.findings)


@dataclass
class FetchedShard:
    index: int
    output: bytes | None = None
    proof: InclusionProof | None = None


@dataclass
class FetchedBundle:
    """What was fetched for one verification, with the problems met on the way."""

    manifest: Manifest | None = None
    shards: dict[int, FetchedShard] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


_FETCH_REASON = {
    "manifest": {
        FetchFailure.MISSING: Reason.MANIFEST_MISSING,
        FetchFailure.TOO_LARGE: Reason.MANIFEST_TOO_LARGE,
        FetchFailure.TOO_SLOW: Reason.TOO_SLOW,
    },
    "proof": {
        FetchFailure.MISSING: Reason.PROOF_MISSING,
        FetchFailure.TOO_LARGE: Reason.PROOF_MALFORMED,
        FetchFailure.TOO_SLOW: Reason.TOO_SLOW,
    },
    "shard": {
        FetchFailure.MISSING: Reason.SHARD_MISSING,
        FetchFailure.TOO_LARGE: Reason.SHARD_TOO_LARGE,
        FetchFailure.HASH_MISMATCH: Reason.SHARD_HASH_MISMATCH,
        FetchFailure.TOO_SLOW: Reason.TOO_SLOW,
    },
}


def _from_fetch(kind: str, exc: FetchError, shard: int | None) -> Finding:
    reason = _FETCH_REASON[kind].get(exc.failure)
    if reason is None:
        # a non-transient failure this kind of fetch does not name is still final
        reason = Reason.UNAVAILABLE if exc.transient else Reason.MALFORMED
    return Finding(reason, shard, str(exc))


def needed_shards(spec: AnySpec, challenged: Sequence[int]) -> list[int]:
    """The challenged shards and the shards they are computed from, in ascending order."""
    out = set(challenged)
    for i in challenged:
        out.update(dependencies(spec, i))
    return sorted(out)


def _bounded(source: BundleSource, deadline: float) -> BundleSource:
    """`source` with every fetch ending by `deadline` (remote sources; local reads are quick)."""
    return source.until(deadline) if isinstance(source, HttpSource) else source


def _submit(pool: ThreadPoolExecutor, fn: Callable[..., _T], *args: object) -> Future[_T]:
    try:
        return pool.submit(fn, *args)
    except RuntimeError as exc:  # "can't start new thread": the oracle's machine, not the data
        raise OracleSideError(f"cannot start a fetch thread: {exc}") from exc


def fetch_bundle(
    spec: AnySpec,
    commitment: Commitment,
    challenged: Sequence[int],
    source: BundleSource,
    limits: VerifierLimits | None = None,
) -> FetchedBundle:
    """Fetches the manifest, what the challenged shards need (proofs and outputs) and, to
    check the whole result is available, every other shard output (hashed, not kept).

    Never raises on bad data; only `ORACLE_SIDE` exceptions pass through."""
    limits = limits or VerifierLimits()
    deadline = time.monotonic() + limits.deadline_s
    got = FetchedBundle()
    if limits.deadline_s <= 0:
        got.findings.append(Finding(Reason.DEADLINE_EXCEEDED, None, f"{limits.deadline_s}s"))
        return got
    source = _bounded(source, deadline)
    try:
        got.manifest = parse_manifest(source.manifest(commitment.root, limits.max_manifest_bytes))
    except FetchError as exc:
        got.findings.append(_from_fetch("manifest", exc, None))
        return got
    except BundleError as exc:
        got.findings.append(Finding(Reason.MANIFEST_MALFORMED, None, str(exc)))
        return got
    leaves = got.manifest.leaves
    needed = needed_shards(spec, challenged)
    # The rest of the result is only checked against a manifest that matches the commitment
    # (otherwise the verdict is a reject already, and its leaves name nothing committed).
    rest: list[int] = []
    if not _check_manifest(commitment, got.manifest):
        chosen = set(needed)
        rest = [i for i in range(len(leaves)) if i not in chosen]
    size_bound = max_shard_bytes(spec)
    workers = max(1, min(limits.fetch_concurrency, len(needed) + len(rest)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    try:
        futures = [
            _submit(pool, _fetch_shard, spec, commitment, leaves, index, source, limits)
            for index in needed
        ]
        batches = [
            rest[i : i + AVAILABILITY_BATCH] for i in range(0, len(rest), AVAILABILITY_BATCH)
        ]
        checks = [
            _submit(pool, _check_available, leaves, batch, source, size_bound) for batch in batches
        ]
        for index, future in zip(needed, futures, strict=True):
            try:
                shard, findings = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                got.findings.append(
                    Finding(Reason.DEADLINE_EXCEEDED, index, f"{limits.deadline_s}s")
                )
                return got
            got.shards[index] = shard
            got.findings += findings
        unavailable: list[Finding] = []
        for batch, check in zip(batches, checks, strict=True):
            try:
                unavailable += check.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                got.findings.append(
                    Finding(Reason.DEADLINE_EXCEEDED, batch[0], f"{limits.deadline_s}s")
                )
                return got
            if len(unavailable) > MAX_AVAILABILITY_FINDINGS:
                break  # a reject either way; the rest need not be fetched
        got.findings += unavailable[:MAX_AVAILABILITY_FINDINGS]
        if len(unavailable) > MAX_AVAILABILITY_FINDINGS:
            got.findings.append(
                Finding(
                    unavailable[MAX_AVAILABILITY_FINDINGS].reason,
                    None,
                    "more shards unavailable; the availability check stopped",
                )
            )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return got


def _fetch_shard(
    spec: AnySpec,
    commitment: Commitment,
    leaves: Sequence[str],
    index: int,
    source: BundleSource,
    limits: VerifierLimits,
) -> tuple[FetchedShard, list[Finding]]:
    """One shard's inclusion proof and output, with the problems met fetching them."""
    shard = FetchedShard(index)
    findings: list[Finding] = []
    try:
        shard.proof = parse_proof(source.proof(commitment.root, index, limits.max_proof_bytes))
    except FetchError as exc:
        findings.append(_from_fetch("proof", exc, index))
    except BundleError as exc:
        findings.append(Finding(Reason.PROOF_MALFORMED, index, str(exc)))
    if index >= len(leaves):
        return shard, findings  # the manifest check reports the wrong shard count
    try:
        shard.output = fetch_object(source, from_hex(leaves[index]), max_shard_bytes(spec))
    except FetchError as exc:
        findings.append(_from_fetch("shard", exc, index))
    return shard, findings


def _check_available(
    leaves: Sequence[str], indices: Sequence[int], source: BundleSource, max_bytes: int
) -> list[Finding]:
    """The problems met checking that shards `indices` are served and hash to their leaves
    (nothing kept but the findings)."""
    failures = check_objects(source, [from_hex(leaves[i]) for i in indices], max_bytes)
    return [
        _from_fetch("shard", exc, index)
        for index, exc in zip(indices, failures, strict=True)
        if exc is not None
    ]


def _check_manifest(commitment: Commitment, manifest: Manifest) -> list[Finding]:
    found = []
    if manifest.job_id != commitment.job_id:
        found.append(Finding(Reason.MANIFEST_MISMATCH, None, f"job id {manifest.job_id}"))
    if from_hex(manifest.spec_hash) != commitment.spec_hash:
        found.append(Finding(Reason.MANIFEST_MISMATCH, None, f"spec hash {manifest.spec_hash}"))
    if manifest.shard_count != commitment.shard_count:
        found.append(Finding(Reason.MANIFEST_MISMATCH, None, f"{manifest.shard_count} shards"))
    if from_hex(manifest.root) != commitment.root:
        found.append(Finding(Reason.ROOT_MISMATCH, None, f"manifest names root {manifest.root}"))
    elif not found and manifest.recomputed_root() != commitment.root:
        found.append(Finding(Reason.ROOT_MISMATCH, None, "recomputed from the leaves"))
    return found


def _check_inclusion(
    commitment: Commitment, manifest: Manifest, shard: FetchedShard
) -> list[Finding]:
    """Whether shard's proof and output are consistent with the root and its leaf."""
    i = shard.index
    leaf = from_hex(manifest.leaves[i])
    found = []
    if shard.proof is not None:
        proof = shard.proof
        if proof.index != i or from_hex(proof.leaf) != leaf:
            found.append(Finding(Reason.PROOF_INVALID, i, f"proof is for shard {proof.index}"))
        elif not verify(proof.nodes(), commitment.root, shard_leaf(i, leaf)):
            found.append(Finding(Reason.PROOF_INVALID, i))
    if shard.output is not None and keccak256(shard.output) != leaf:
        found.append(Finding(Reason.SHARD_HASH_MISMATCH, i))
    return found


def verify_fetched(
    spec: AnySpec,
    commitment: Commitment,
    challenged: Sequence[int],
    fetched: FetchedBundle,
) -> VerificationResult:
    """The verdict on a committed result, from what was fetched for the challenge."""
    findings = list(fetched.findings)
    done = tuple(challenged)
    if spec_hash(spec) != commitment.spec_hash or spec.shard_count != commitment.shard_count:
        findings.append(Finding(Reason.SPEC_MISMATCH))
        return VerificationResult(False, tuple(findings), done)
    manifest = fetched.manifest
    if manifest is None or any(f.reason == Reason.DEADLINE_EXCEEDED for f in findings):
        return VerificationResult(False, tuple(findings), done)
    manifest_findings = _check_manifest(commitment, manifest)
    if manifest_findings:
        return VerificationResult(False, tuple(findings + manifest_findings), done)
    usable: dict[int, bytes] = {}
    for index in needed_shards(spec, challenged):
        shard = fetched.shards.get(index)
        if shard is None or shard.output is None or shard.proof is None:
            if not any(f.shard == index for f in findings):
                findings.append(Finding(Reason.SHARD_MISSING, index, "not fetched"))
            continue
        problems = _check_inclusion(commitment, manifest, shard)
        findings += problems
        if not problems:
            usable[index] = shard.output
    for index in challenged:
        deps = dependencies(spec, index)
        if index not in usable or any(d not in usable for d in deps):
            continue  # already reported
        try:
            check = check_shard(spec, index, usable[index], {d: usable[d] for d in deps})
        except ORACLE_SIDE:
            raise
        except Exception as exc:  # the bytes broke re-execution: they are not a valid shard
            findings.append(Finding(Reason.SHARD_MALFORMED, index, _describe(exc)))
            continue
        if check.ok:
            continue
        reason = {
            CheckFailure.MISMATCH: Reason.RECOMPUTE_MISMATCH,
            CheckFailure.OUT_OF_TOLERANCE: Reason.OUT_OF_TOLERANCE,
            CheckFailure.MALFORMED: Reason.SHARD_MALFORMED,
            CheckFailure.BAD_DEPENDENCY: Reason.BAD_CHECKPOINT,
        }[check.failure or CheckFailure.MISMATCH]
        findings.append(Finding(reason, index, check.detail))
    return VerificationResult(not findings, tuple(findings), done)


def verify_job(
    spec: AnySpec,
    commitment: Commitment,
    seed: bytes,
    k: int,
    source: BundleSource,
    limits: VerifierLimits | None = None,
) -> VerificationResult:
    """Challenges k shards of a committed result and returns the verdict.

    Never raises on anything the provider serves; only `ORACLE_SIDE` exceptions (the
    oracle's own memory, machine or threads) pass through."""
    try:
        challenged = challenge_indices(seed, commitment.job_id, commitment.shard_count, k)
    except ValueError as exc:
        return VerificationResult(False, (Finding(Reason.CHALLENGE_INVALID, None, str(exc)),), ())
    if spec_hash(spec) != commitment.spec_hash or spec.shard_count != commitment.shard_count:
        return VerificationResult(False, (Finding(Reason.SPEC_MISMATCH),), tuple(challenged))
    try:
        fetched = fetch_bundle(spec, commitment, challenged, source, limits)
        return verify_fetched(spec, commitment, challenged, fetched)
    except ORACLE_SIDE:
        raise
    except Exception as exc:  # last resort: whatever the bundle provoked, it is no accept
        return VerificationResult(
            False, (Finding(Reason.MALFORMED, None, _describe(exc)),), tuple(challenged)
        )
