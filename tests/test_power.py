"""kldiv.power against a seeded simulation of the TOST on normal data, and the issue's anchors."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from kldiv.power import seeds_for_power, smallest_margin, tost_power

REPS = 20_000


def simulated_power(sd: float, margin: float, n: int, delta: float, seed: int) -> float:
    """Share of REPS normal samples of n differences for which two one-sided t-tests at α = 0.05
    both reject (scipy.stats.ttest_1samp, vectorized over the replicates)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(delta, sd, size=(REPS, n))
    p_low = sps.ttest_1samp(d, -margin, axis=1, alternative="greater").pvalue
    p_high = sps.ttest_1samp(d, margin, axis=1, alternative="less").pvalue
    return float(np.mean(np.maximum(p_low, p_high) < 0.05))


@pytest.mark.parametrize(
    ("sd", "margin", "n", "delta"),
    [
        (0.0054, 0.01, 5, 0.0),
        (0.01, 0.01, 11, 0.0),
        (0.02, 0.01, 36, 0.0),
        (0.01, 0.01, 3, 0.0),  # small n: the SD estimate is poor and power is low
        (0.01, 0.01, 20, 0.004),
        (0.01, 0.01, 20, -0.007),
        (0.01, 0.01, 30, 0.01),  # at the margin: the test's size, about α
        (1.0, 0.5, 2, 0.0),
    ],
)
def test_tost_power_matches_simulation(sd, margin, n, delta):
    exact = tost_power(sd, margin, n, true_difference=delta)
    sim = simulated_power(sd, margin, n, delta, seed=n)
    se = math.sqrt(max(exact * (1 - exact), 1e-4) / REPS)
    assert sim == pytest.approx(exact, abs=4 * se)


def test_seeds_for_power_anchors_from_the_issue():
    # Issue 15: for a 0.01 margin at 80% TOST power, about 5 seeds at SD 0.0054, 11 at 0.01, 36 at
    # 0.02, 216 at 0.05.
    for sd, anchor in ((0.0054, 5), (0.01, 11), (0.02, 36), (0.05, 216)):
        n = seeds_for_power(sd, 0.01)
        assert n == anchor
        assert tost_power(sd, 0.01, n) >= 0.8 > tost_power(sd, 0.01, n - 1)


def test_seeds_for_power_is_minimal_against_simulation():
    n = seeds_for_power(0.01, 0.01, power=0.9)
    assert simulated_power(0.01, 0.01, n, 0.0, seed=1) >= 0.9 - 4 * math.sqrt(0.09 / REPS)
    assert simulated_power(0.01, 0.01, n - 1, 0.0, seed=2) < 0.9


def test_tost_power_invariants():
    assert tost_power(0.01, 0.01, 20, true_difference=0.003) == pytest.approx(
        tost_power(0.01, 0.01, 20, true_difference=-0.003), rel=1e-9
    )
    powers = [tost_power(0.01, 0.01, n) for n in (2, 3, 5, 10, 20, 50, 100)]
    assert powers == sorted(powers)
    assert tost_power(0.02, 0.01, 30) < tost_power(0.01, 0.01, 30)
    # Large n: the normal approximation 2Φ(δ√n/σ - z_{1-α}) - 1 becomes exact.
    n, sd, margin = 4000, 0.3, 0.01
    normal = 2 * sps.norm.cdf(margin * math.sqrt(n) / sd - sps.norm.ppf(0.95)) - 1
    assert tost_power(sd, margin, n) == pytest.approx(normal, abs=2e-3)
    # At |Δ| = δ the power is the size of the test, at most α, and tends to α.
    assert tost_power(0.01, 0.01, 10_000, true_difference=0.01) == pytest.approx(0.05, abs=1e-6)


def test_seeds_for_power_with_a_true_difference_needs_more():
    assert seeds_for_power(0.01, 0.01, true_difference=0.005) > seeds_for_power(0.01, 0.01)
    assert seeds_for_power(1e-6, 0.01) == 2


def test_smallest_margin_is_the_tost_boundary():
    d = np.random.default_rng(3).normal(0.001, 0.004, 15)
    m = smallest_margin(d)
    se = np.std(d, ddof=1) / math.sqrt(d.size)
    p_low = sps.t.sf((np.mean(d) + m) / se, d.size - 1)
    p_high = sps.t.cdf((np.mean(d) - m) / se, d.size - 1)
    assert max(p_low, p_high) == pytest.approx(0.05, rel=1e-9)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: tost_power(0.0, 0.01, 5), "sd: expected a finite number > 0, got 0.0"),
        (lambda: tost_power(0.01, -1.0, 5), "margin: expected a finite number > 0, got -1.0"),
        (lambda: tost_power(0.01, 0.01, 1), "n: expected an integer number of pairs >= 2, got 1"),
        (lambda: tost_power(0.01, 0.01, 5, alpha=0.5), "alpha: expected a level in"),
        (lambda: seeds_for_power(0.01, 0.01, power=1.0), "power: expected a probability"),
        (
            lambda: seeds_for_power(0.01, 0.01, true_difference=0.01),
            "true_difference: expected |Δ| below the margin",
        ),
        (lambda: seeds_for_power(1e6, 1e-6), "reachable with at most"),
        (lambda: smallest_margin([0.1]), "d: expected at least 2 finite differences"),
    ],
)
def test_power_validates(call, match):
    with pytest.raises(ValueError, match=match):
        call()
