"""Stake and k: the numbers behind 'cheating has negative expected value'."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from neurotoken.proofs import (
    cheating_gain,
    detection_probability,
    detection_probability_exact,
    minimum_collateral,
    minimum_stake,
    samples_needed,
)


def test_detection_probability__known_values() -> None:
    assert detection_probability(0.25, 8) == pytest.approx(0.8999, abs=1e-4)
    assert detection_probability(0.1, 16) == pytest.approx(0.8147, abs=1e-4)
    assert detection_probability(0.0, 16) == 0.0
    assert detection_probability(1.0, 1) == 1.0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), data=st.data())
def test_exact_detection__is_never_below_the_formula(n: int, data: st.DataObject) -> None:
    faked = data.draw(st.integers(0, n))
    k = data.draw(st.integers(0, n))
    assert detection_probability_exact(n, faked, k) >= detection_probability(faked / n, k) - 1e-12


@pytest.mark.parametrize(("f", "confidence", "k"), [(0.25, 0.9, 9), (0.1, 0.99, 44), (0.5, 0.5, 1)])
def test_samples_needed__is_the_least_k_reaching_the_confidence(
    f: float, confidence: float, k: int
) -> None:
    assert samples_needed(f, confidence) == k
    assert detection_probability(f, k) >= confidence
    assert k == 1 or detection_probability(f, k - 1) < confidence


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 32),
    cost=st.integers(1, 10**21),
    margin=st.integers(0, 10**20),
    outside=st.integers(0, 10**22),
    min_fraction=st.floats(0.01, 1.0),
)
def test_minimum_stake__makes_every_cheat_unprofitable(
    k: int, cost: int, margin: int, outside: int, min_fraction: float
) -> None:
    payment = cost + margin
    stake = minimum_stake(k, cost, payment, outside, min_fraction)
    for step in range(101):
        f = min(1.0, min_fraction + (1 - min_fraction) * step / 100)
        assert cheating_gain(f, k, cost, payment, stake, outside) < 0 or math.isclose(
            cheating_gain(f, k, cost, payment, stake, outside),
            0,
            abs_tol=1e-6 * max(cost, outside, 1),
        )


def test_minimum_stake__without_outside_value__is_zero_when_paid_above_cost() -> None:
    assert minimum_stake(1, compute_cost=100, payment=120, shard_count=16) == 0


def test_minimum_stake__defaults_to_one_faked_shard() -> None:
    """Chained training: one faked segment of 256 replaces the final model. f_min = 0.01 (the
    old default) priced that stake 2.6 times too low."""
    one_shard = minimum_stake(8, 100, 120, outside_value=10_000, shard_count=256)
    assert one_shard == minimum_stake(8, 100, 120, outside_value=10_000, min_fraction=1 / 256)
    assert one_shard > 2.5 * minimum_stake(8, 100, 120, outside_value=10_000, min_fraction=0.01)
    with pytest.raises(ValueError, match="shard_count"):
        minimum_stake(8, 100, 120)


def test_minimum_stake__shrinks_as_k_grows() -> None:
    stakes = [
        minimum_stake(k, 100, 120, outside_value=10_000, min_fraction=0.05) for k in (4, 8, 16)
    ]
    assert stakes[0] > stakes[1] > stakes[2] > 0


# --- the on-chain minimum collateral: f = 1/N is the case to check ---------------------------


def _worse_than_one_faked_shard(n: int, k: int) -> list[int]:
    """The faked counts j in 2..n whose stake bound exceeds that of j = 1, exactly.

    With f = j/n, the exact detection chance d_j = 1 - C(n-j, k)/C(n, k), outside value
    V = P and compute cost C = P, cheating is deterred when S > g(j) * P with
    g(j) = (j/n + 1 - 2 d_j) / d_j. At j = 1, d_1 = k/n and g(1) = (n + 1 - 2k)/k. Stakes
    are never negative, so j = 1 suffices iff g(j) <= max(g(1), 0) for every j. Integers only:
    with A = C(n, k) and B_j = C(n-j, k), g(j) = (jA - nA + 2n B_j) / (n (A - B_j)).
    """
    a = math.comb(n, k)
    m = max(n + 1 - 2 * k, 0)
    worse: list[int] = []
    b = math.comb(n - 1, k)
    for j in range(1, n + 1):
        if j > 1:
            b = b * (n - j + 1 - k) // (n - j + 1) if n - j + 1 - k > 0 else 0
        if b == 0:
            break  # d_j = 1 from here on: g(j) = j/n - 1 <= 0
        if (j * a - n * a + 2 * n * b) * k > m * n * (a - b):
            worse.append(j)
    return worse


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 65536), data=st.data())
@example(n=65536, data=None)
@example(n=1, data=None)
@example(n=128, data=None)
@example(n=129, data=None)
def test_stake_bound__with_exact_hypergeometric_detection__is_largest_at_one_faked_shard(
    n: int, data: st.DataObject | None
) -> None:
    """Chained training: faking one segment replaces the final model, so f_min = 1/N. The
    market's minimum collateral S_min = floor(P (N + 1 - 2k) / k) + 1 (1 when N + 1 < 2k)
    deters that cheat (G(1/N) < 0 with d = k/N exactly, V = P, C = P), and it deters every
    larger fraction too: over j = 1..N faked shards, the exact bound is largest at j = 1.
    (C = P is the worst case: for C < P the j-term grows less, see `_worse_than...`.)"""
    ks = [1, min(n, 64)] if data is None else [data.draw(st.integers(1, min(n, 64)), label="k")]
    for k in ks:
        assert _worse_than_one_faked_shard(n, k) == [], (n, k)
        payment = 10**18
        s_min = minimum_collateral(payment, n, k)
        d = Fraction(k, n)
        gains = [
            Fraction(payment, n) + (1 - d) * payment - d * (payment + stake)
            for stake in (s_min, s_min - 1)
        ]
        if n + 1 >= 2 * k:
            assert gains[0] < 0 <= gains[1]  # the least stake that deters
        else:  # one faked shard loses anyway; the wei is for faking them all (below)
            assert s_min == 1 and gains[0] < 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 96), data=st.data())
@example(n=8, data=None)
def test_minimum_collateral__every_faked_count_loses_money(
    n: int, data: st.DataObject | None
) -> None:
    """At the market's minimum collateral, faking any number j = 1..N of the N shards has a
    negative expected gain (exact fractions; C = V = P). Faking all of them is always caught,
    so it gains C - P - S: a zero floor (once the rule when k > (N + 1) / 2) left that break-
    even, and the state machine in tests/oracle/test_hostile_machine.py found it."""
    ks = range(1, min(n, 64) + 1) if data is None else [data.draw(st.integers(1, min(n, 64)))]
    payment = 10**18
    for k in ks:
        stake = minimum_collateral(payment, n, k)
        for j in range(1, n + 1):
            d = 1 - Fraction(math.comb(n - j, k), math.comb(n, k))
            gain = Fraction(j, n) * payment + (1 - d) * payment - d * (payment + stake)
            assert gain < 0, (n, k, j, stake)
