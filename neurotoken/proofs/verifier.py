"""The verifier: fetch the challenged shards of a committed result and re-execute them.

`verify_job` is the whole procedure an oracle runs for one job:

1. derive the k challenged indices from the challenge seed and the job id;
2. fetch the manifest, and for each challenged shard (and the checkpoint it starts from)
   its inclusion proof and its output, every object checked against its keccak256, each
   fetch bounded in size and time, with bounded retries for transient failures;
3. check the manifest against the commitment (job id, spec hash, shard count, and the root
   recomputed from its leaves), every proof against the committed root, every output
   against its leaf;
4. re-execute each challenged shard from its dependencies and compare: bit for bit, or for
   float32 training within `FLOAT32_TOLERANCE`.

It accepts only when nothing at all is wrong. Every problem becomes a `Finding` with a
`Reason`; hostile input never raises out of `verify_job`. A verdict whose only findings are
transient (timeouts, an unreachable server) is marked `retryable`: reject now, or try again
before the verdict deadline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum

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
from neurotoken.proofs.store import BundleSource, FetchError, FetchFailure, fetch_object
from neurotoken.workloads import CheckFailure, check_shard, dependencies, max_shard_bytes

AnySpec = ShelfImagesSpec | TrainingSpec


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

    def __str__(self) -> str:
        where = f"shard {self.shard}: " if self.shard is not None else ""
        return f"{self.reason.name}: {where}{self.reason.value}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass(frozen=True)
class Verdict:
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
    },
    "proof": {
        FetchFailure.MISSING: Reason.PROOF_MISSING,
        FetchFailure.TOO_LARGE: Reason.PROOF_MALFORMED,
    },
    "shard": {
        FetchFailure.MISSING: Reason.SHARD_MISSING,
        FetchFailure.TOO_LARGE: Reason.SHARD_TOO_LARGE,
        FetchFailure.HASH_MISMATCH: Reason.SHARD_HASH_MISMATCH,
    },
}


def _from_fetch(kind: str, exc: FetchError, shard: int | None) -> Finding:
    reason = _FETCH_REASON[kind].get(exc.failure, Reason.UNAVAILABLE)
    return Finding(reason, shard, str(exc))


def needed_shards(spec: AnySpec, challenged: Sequence[int]) -> list[int]:
    """The challenged shards and the shards they are computed from, in ascending order."""
    out = set(challenged)
    for i in challenged:
        out.update(dependencies(spec, i))
    return sorted(out)


def fetch_bundle(
    spec: AnySpec,
    commitment: Commitment,
    challenged: Sequence[int],
    source: BundleSource,
    limits: VerifierLimits | None = None,
) -> FetchedBundle:
    """Fetches the manifest and what the challenged shards need; never raises on bad data."""
    limits = limits or VerifierLimits()
    deadline = time.monotonic() + limits.deadline_s
    got = FetchedBundle()
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
    pool = ThreadPoolExecutor(max_workers=max(1, min(limits.fetch_concurrency, len(needed))))
    try:
        futures: list[Future[tuple[FetchedShard, list[Finding]]]] = [
            pool.submit(_fetch_shard, spec, commitment, leaves, index, source, limits)
            for index in needed
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
) -> Verdict:
    """The verdict on a committed result, from what was fetched for the challenge."""
    findings = list(fetched.findings)
    done = tuple(challenged)
    if spec_hash(spec) != commitment.spec_hash or spec.shard_count != commitment.shard_count:
        findings.append(Finding(Reason.SPEC_MISMATCH))
        return Verdict(False, tuple(findings), done)
    manifest = fetched.manifest
    if manifest is None or any(f.reason == Reason.DEADLINE_EXCEEDED for f in findings):
        return Verdict(False, tuple(findings), done)
    manifest_findings = _check_manifest(commitment, manifest)
    if manifest_findings:
        return Verdict(False, tuple(findings + manifest_findings), done)
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
        check = check_shard(spec, index, usable[index], {d: usable[d] for d in deps})
        if check.ok:
            continue
        reason = {
            CheckFailure.MISMATCH: Reason.RECOMPUTE_MISMATCH,
            CheckFailure.OUT_OF_TOLERANCE: Reason.OUT_OF_TOLERANCE,
            CheckFailure.MALFORMED: Reason.SHARD_MALFORMED,
            CheckFailure.BAD_DEPENDENCY: Reason.BAD_CHECKPOINT,
        }[check.failure or CheckFailure.MISMATCH]
        findings.append(Finding(reason, index, check.detail))
    return Verdict(not findings, tuple(findings), done)


def verify_job(
    spec: AnySpec,
    commitment: Commitment,
    seed: bytes,
    k: int,
    source: BundleSource,
    limits: VerifierLimits | None = None,
) -> Verdict:
    """Challenges k shards of a committed result and returns the verdict (never raises)."""
    try:
        challenged = challenge_indices(seed, commitment.job_id, commitment.shard_count, k)
    except ValueError as exc:
        return Verdict(False, (Finding(Reason.CHALLENGE_INVALID, None, str(exc)),), ())
    if spec_hash(spec) != commitment.spec_hash or spec.shard_count != commitment.shard_count:
        return Verdict(False, (Finding(Reason.SPEC_MISMATCH),), tuple(challenged))
    fetched = fetch_bundle(spec, commitment, challenged, source, limits)
    return verify_fetched(spec, commitment, challenged, fetched)
