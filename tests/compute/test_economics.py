"""Stake and k: the numbers behind 'cheating has negative expected value'."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotoken.proofs import (
    cheating_gain,
    detection_probability,
    detection_probability_exact,
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
    assert minimum_stake(1, compute_cost=100, payment=120) == 0


def test_minimum_stake__shrinks_as_k_grows() -> None:
    stakes = [
        minimum_stake(k, 100, 120, outside_value=10_000, min_fraction=0.05) for k in (4, 8, 16)
    ]
    assert stakes[0] > stakes[1] > stakes[2] > 0
