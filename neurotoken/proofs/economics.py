"""How many shards to challenge (k) and how much stake to demand, so cheating does not pay.

Model (risk-neutral provider, one job). The provider fakes a fraction f of the N shards and
saves f*C of its compute cost C. k distinct shards are challenged; the cheat is caught when
any challenged shard is faked, with probability

    d(f, k) = 1 - C(N - fN, k) / C(N, k)  >=  1 - (1 - f)**k          (sampling without
                                                                        replacement)
If caught, the job is rejected: the provider loses the payment P and its stake S. If not,
it is paid and may also pocket an outside value V for the corrupted output (a bribe, a
poisoned dataset). Compared with honest work, cheating gains in expectation

    G(f) = f*C + (1 - d)*V - d*(P + S).

Cheating has negative expected value for every f >= f_min iff

    S > max_{f >= f_min} [ (f*C + (1 - d)*V) / d ] - P.

Two consequences shape the defaults:

* With no outside value (V = 0), f/d <= 1 for any k >= 1, so S >= C - P suffices: a rational
  provider that only saves compute never gains, even with k = 1. Stake then mainly covers the
  client's cost of a failed job (the deadline it lost).
* With an outside value, small faked fractions are the danger: d ~ k*f, so the stake must
  reach about V / (k * f_min). k buys this down linearly; k is also the client's own
  assurance, catching a fraction f with probability 1 - (1 - f)**k (k = 8 catches f = 25%
  with 90%, k = 16 catches f = 10% with 81%). Verification cost grows with k (each oracle
  re-executes k shards, about k/N of the job), which is why k stays small.

`minimum_stake` evaluates the bound on a fine grid of f in [f_min, 1] (G is smooth in f).
f_min defaults to 1/N, one shard: for chained training a single faked segment replaces the
final model, so nothing smaller than one shard is harmless.

`minimum_collateral` is the market contract's own floor (`ComputeMarket.minimumCollateral`),
which the contract enforces on every job: f = 1/N (caught with probability exactly k/N),
outside value V = P and compute cost C <= P. Then G(1/N) < 0 iff S > P (N + 1 - 2k) / k, and
(exactly, over every j = 1..N faked shards) no larger fraction needs more, as long as the
stake is positive: faking all N shards is always caught (d = 1) and gains C - P - S, zero at
S = 0 and C = P, so the floor is never below one wei.
"""

from __future__ import annotations

import math


def detection_probability(fraction_faked: float, k: int) -> float:
    """1 - (1 - f)**k: the chance k independent samples hit a faked shard."""
    if not 0.0 <= fraction_faked <= 1.0 or k < 0:
        raise ValueError("need 0 <= f <= 1 and k >= 0")
    return 1.0 - (1.0 - fraction_faked) ** k


def detection_probability_exact(shard_count: int, faked: int, k: int) -> float:
    """The exact chance for k distinct indices (hypergeometric); never below the formula."""
    if not (0 <= faked <= shard_count and 0 <= k <= shard_count):
        raise ValueError("need 0 <= faked <= shard_count and 0 <= k <= shard_count")
    return 1.0 - math.comb(shard_count - faked, k) / math.comb(shard_count, k)


def samples_needed(fraction_faked: float, confidence: float) -> int:
    """The least k with 1 - (1 - f)**k >= confidence."""
    if not 0.0 < fraction_faked <= 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError("need 0 < f <= 1 and 0 < confidence < 1")
    if fraction_faked == 1.0:
        return 1
    return math.ceil(math.log(1.0 - confidence) / math.log(1.0 - fraction_faked))


def cheating_gain(
    fraction_faked: float,
    k: int,
    compute_cost: int,
    payment: int,
    stake: int,
    outside_value: int = 0,
) -> float:
    """G(f): the expected gain of faking fraction f over honest work (negative = deterred)."""
    d = detection_probability(fraction_faked, k)
    return fraction_faked * compute_cost + (1.0 - d) * outside_value - d * (payment + stake)


def minimum_stake(
    k: int,
    compute_cost: int,
    payment: int,
    outside_value: int = 0,
    min_fraction: float | None = None,
    grid: int = 10_000,
    *,
    shard_count: int | None = None,
) -> int:
    """The least whole stake with G(f) < 0 for every f in [min_fraction, 1] (0 if none
    needed); min_fraction defaults to one shard, 1 / shard_count."""
    if min_fraction is None:
        if shard_count is None or shard_count < 1:
            raise ValueError("give min_fraction or shard_count (f_min is then 1/shard_count)")
        min_fraction = 1.0 / shard_count
    if k < 1 or not 0.0 < min_fraction <= 1.0:
        raise ValueError("need k >= 1 and 0 < min_fraction <= 1")
    worst = 0.0
    for step in range(grid + 1):
        f = min(1.0, min_fraction + (1.0 - min_fraction) * step / grid)
        d = detection_probability(f, k)
        worst = max(worst, (f * compute_cost + (1.0 - d) * outside_value) / d)
    return max(0, math.floor(worst - payment) + 1)


def minimum_collateral(payment: int, shard_count: int, challenge_count: int) -> int:
    """The market's least collateral for a job (`ComputeMarket.minimumCollateral`):
    floor(P (N + 1 - 2k) / k) + 1 when N + 1 >= 2k, else 1. One more wei than the break-even
    stake, so that faking even one shard has a negative expected value; never zero, since
    faking every shard (always caught) would otherwise break even at C = P."""
    if not 1 <= challenge_count <= shard_count:
        raise ValueError(f"need 1 <= challenges <= shards, got {challenge_count} of {shard_count}")
    excess = shard_count + 1 - 2 * challenge_count
    return 1 if excess < 0 else payment * excess // challenge_count + 1
