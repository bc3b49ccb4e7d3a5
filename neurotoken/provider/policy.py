"""Which posted jobs the agent takes: a farm owner's policy, applied to a job and its spec.

A job is accepted only if every rule holds (all failures are reported, the first one is the
stored reason):

- the job is open to this provider (posted to anyone, or to it) and still inside acceptBy;
- the spec behind the spec URI hashes to the posted spec hash, parses, has the posted shard
  count (see `spec_fetch`), and its kind is one the policy offers;
- oracles can verify and pay the job (`neurotoken.jobs.market_problems`, the same check the
  oracles make: within their CPU, download and memory budgets at the job's challenge count,
  and not float32 training, whose tolerance a cheat can walk under): an oracle rejects a job
  with problems, so the provider would be slashed, however honest its work;
- shard count <= `max_shards`;
- the net price per shard, payment x (1 - fee) / shards, is at least `min_price_per_shard_ntk`
  (the fee is the job's own, fixed when it was posted: this is what the provider is paid);
- collateral <= `max_collateral_ntk` (a risk limit) and <= the provider's free stake;
- the estimated finish, chain time now + work already queued + this job's estimate x
  `safety_factor` + `deadline_margin_s`, is no later than deliverBy.

A quote (`quote.py`) is judged by the same rules, with the work starting at the request's
acceptBy (the latest it can be posted), and is refused when acceptBy is more than
`max_quote_s` ahead.

The estimate uses measured throughput (`shelf_mpixels_per_s_per_core`, per core, shards run in
parallel; `training_mmacs_per_s`, one core, segments form a chain) - measure them on the farm
(`make bench` prints shards per second) and set them in the policy file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from neurotoken.errors import ConfigError
from neurotoken.jobs.spec import (
    KINDS,
    ShelfImagesSpec,
    TrainingSpec,
    market_problems,
    segment_macs,
)
from neurotoken.market.job import OnChainJob
from neurotoken.provider.chain import ZERO_ADDRESS
from neurotoken.provider.spec_fetch import Refusal
from neurotoken.units import format_ntk

AnySpec = ShelfImagesSpec | TrainingSpec
BPS = 10_000


class Policy(BaseModel):
    """A provider's acceptance rules (amounts in NTK wei; JSON-loadable with `load_policy`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: frozenset[str] = frozenset(KINDS)
    """Job kinds offered."""
    min_price_per_shard_ntk: Annotated[int, Field(ge=0)] = 0
    """Least net payment per shard (after the protocol fee), in NTK wei."""
    max_shards: Annotated[int, Field(ge=1)] = 4096
    max_collateral_ntk: Annotated[int, Field(ge=0)] = 10**9 * 10**18
    """The most stake one job may lock (a risk limit on top of the free stake)."""
    max_active_jobs: Annotated[int, Field(ge=1)] = 4
    """Jobs accepted but not yet submitted, at most."""
    deadline_margin_s: Annotated[int, Field(ge=0)] = 300
    """Time kept in hand before deliverBy (publishing, the submit transaction, slow blocks)."""
    safety_factor: Annotated[float, Field(ge=1.0)] = 2.0
    """The work estimate is multiplied by this."""
    shelf_mpixels_per_s_per_core: Annotated[float, Field(gt=0)] = 0.5
    training_mmacs_per_s: Annotated[float, Field(gt=0)] = 500.0
    max_quote_s: Annotated[int, Field(ge=0)] = 7200
    """How long a quote may stand: a request whose acceptBy is further ahead is not quoted
    (until its acceptBy, a quote holds capacity and stake for a job that may never come)."""

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: frozenset[str]) -> frozenset[str]:
        unknown = sorted(kinds - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
        return kinds


def load_policy(path: Path) -> Policy:
    """A policy from a JSON file; ConfigError naming the bad field."""
    try:
        return Policy.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"no policy file at {path}") from None
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"policy {path}: field '{where}': {first['msg']}") from None
        raise ConfigError(f"policy {path} is not JSON: {exc}") from None


def estimate_seconds(spec: AnySpec, policy: Policy, workers: int) -> float:
    """Seconds this farm needs to compute every shard of `spec` (before the safety factor)."""
    pixels = spec.scene.width * spec.scene.height
    render_rate = policy.shelf_mpixels_per_s_per_core * 1e6
    if isinstance(spec, ShelfImagesSpec):
        total = pixels * spec.images_per_shard * spec.shard_count
        return total / (render_rate * max(1, workers))
    render = pixels * spec.images_per_segment / (render_rate * max(1, workers))
    return spec.shard_count * (render + segment_macs(spec) / (policy.training_mmacs_per_s * 1e6))


def net_price_per_shard(job: OnChainJob) -> int:
    """What the provider is paid per shard if the job is accepted: payment less the fee."""
    net = job.payment_ntk * (BPS - job.fee_bps) // BPS
    return net // max(1, job.shard_count)


@dataclass(frozen=True)
class Decision:
    job_id: int
    accept: bool
    reasons: tuple[tuple[Refusal, str], ...] = ()
    estimate_s: float = 0.0

    @property
    def code(self) -> Refusal | None:
        return self.reasons[0][0] if self.reasons else None

    def summary(self) -> str:
        if self.accept:
            return f"job {self.job_id}: accept (estimated {self.estimate_s:.1f} s of work)"
        shown = "; ".join(f"{code.value}: {text}" for code, text in self.reasons)
        return f"job {self.job_id}: refuse ({shown})"


@dataclass
class Capacity:
    """What the provider has to offer right now."""

    provider: str
    free_stake_ntk: int
    active_jobs: int = 0
    queued_seconds: float = 0.0
    """Estimated work of accepted jobs not yet submitted (already multiplied by the factor)."""
    workers: int = 1
    promised_ntk: int = 0
    """Collateral of outstanding quotes, already taken off `free_stake_ntk` (for messages)."""


def evaluate(
    job: OnChainJob,
    spec: AnySpec,
    policy: Policy,
    capacity: Capacity,
    now: int,
    start: int | None = None,
) -> Decision:
    """Applies `policy` to a posted `job` whose spec (already hash-checked) is `spec`. The work
    starts at `start` (default `now`; a quote's job may land as late as its acceptBy)."""
    reasons: list[tuple[Refusal, str]] = []
    if job.provider != ZERO_ADDRESS and job.provider.lower() != capacity.provider.lower():
        reasons.append((Refusal.RESERVED_FOR_OTHER, f"posted for {job.provider}"))
    if now > job.accept_by:
        reasons.append((Refusal.ACCEPT_WINDOW_CLOSED, f"acceptBy {job.accept_by} < now {now}"))
    if spec.kind not in policy.kinds:
        offered = ", ".join(sorted(policy.kinds))
        reasons.append((Refusal.KIND_NOT_OFFERED, f"kind {spec.kind!r} (offered: {offered})"))
    reasons += [(Refusal.SPEC_UNPAYABLE, p) for p in market_problems(spec, job.challenge_count)]
    if job.shard_count > policy.max_shards:
        reasons.append(
            (Refusal.TOO_MANY_SHARDS, f"{job.shard_count} shards > max {policy.max_shards}")
        )
    price = net_price_per_shard(job)
    if price < policy.min_price_per_shard_ntk:
        reasons.append(
            (
                Refusal.PRICE_TOO_LOW,
                f"{format_ntk(price)} per shard after the {job.fee_bps / 100:g}% fee "
                f"< minimum {format_ntk(policy.min_price_per_shard_ntk)}",
            )
        )
    if job.collateral_ntk > policy.max_collateral_ntk:
        reasons.append(
            (
                Refusal.COLLATERAL_TOO_HIGH,
                f"collateral {format_ntk(job.collateral_ntk)} > limit "
                f"{format_ntk(policy.max_collateral_ntk)}",
            )
        )
    if job.collateral_ntk > capacity.free_stake_ntk:
        promised = (
            f" ({format_ntk(capacity.promised_ntk)} more held for outstanding quotes)"
            if capacity.promised_ntk
            else ""
        )
        reasons.append(
            (
                Refusal.STAKE_TOO_LOW,
                f"collateral {format_ntk(job.collateral_ntk)} > free stake "
                f"{format_ntk(capacity.free_stake_ntk)}{promised}",
            )
        )
    if capacity.active_jobs >= policy.max_active_jobs:
        reasons.append((Refusal.BUSY, f"{capacity.active_jobs} jobs in progress"))
    estimate = estimate_seconds(spec, policy, capacity.workers) * policy.safety_factor
    begin = now if start is None else max(now, start)
    finish = begin + capacity.queued_seconds + estimate + policy.deadline_margin_s
    if finish > job.deliver_by:
        since = "from now" if begin == now else "after acceptBy, when it may be posted"
        reasons.append(
            (
                Refusal.DEADLINE_TOO_SOON,
                f"would finish about {finish - begin:.0f} s {since}, deliverBy is "
                f"{job.deliver_by - begin} s {'away' if begin == now else 'after it'}",
            )
        )
    return Decision(job.job_id, not reasons, tuple(reasons), estimate)
