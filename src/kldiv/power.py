"""How many seeds: the power of the paired equivalence test (TOST) and the seeds it needs.

A comparison asks whether the mean paired difference E[d] lies within ±δ (the margin) by two
one-sided t-tests at level α on n differences (TOST: equivalence shown when the (1 - 2α) t interval
of d̄ lies inside ±δ). With d ~ Normal(Δ, σ²) its power is exact by one integral over the sample SD
(Owen 1965, "A special case of a bivariate non-central t-distribution"); this module computes that
integral, the smallest n reaching a target power, and the smallest margin a sample demonstrates.
Planning uses the observed SD, so a seeds-needed number is as good as the SD it was given.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special
from scipy import stats as sps

__all__ = ["SEEDS_POWER", "seeds_for_power", "smallest_margin", "tost_power"]

# The target power of "how many seeds" (the usual planning value).
SEEDS_POWER = 0.8

# seeds_for_power gives up above this many seeds (σ/δ above ~1e4 at 80% power).
_MAX_SEEDS = 10**9


def _check(sd: float, margin: float, alpha: float) -> None:
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd: expected a finite number > 0, got {sd!r}")
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: expected a finite number > 0, got {margin!r}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha: expected a level in (0, 0.5), got {alpha!r}")


def tost_power(
    sd: float, margin: float, n: int, alpha: float = 0.05, true_difference: float = 0.0
) -> float:
    """Power of the paired TOST at level α on n differences d ~ Normal(Δ, σ²), exactly.

    TOST shows equivalence when t₁ = (d̄ + δ)/(s/√n) > c and t₂ = (d̄ - δ)/(s/√n) < -c with
    c = t_{1-α, n-1}, i.e. when |d̄ - 0| is inside ±(δ - c·s/√n). Given s, d̄ ~ N(Δ, σ²/n) is
    independent of it, so

        power = E_s[ Φ((δ - Δ - c·s/√n)·√n/σ) - Φ((-δ - Δ + c·s/√n)·√n/σ) ]⁺,
        (n - 1)s²/σ² ~ χ²_{n-1},

    the one-dimensional form of Owen's bivariate non-central t. The expectation is integrated
    by adaptive quadrature (`scipy.integrate.quad`, relative error 1e-9) over w = √(n - 1)·s/σ,
    which is χ-distributed (a density finite at 0 for every n), from its 1e-15 quantile to the
    smaller of its 1 - 1e-15 quantile and w_max = √(n - 1)·δ√n/(c·σ), the largest s that can
    still show equivalence, with a break at the mode √(n - 2).

    Args:
      sd: σ > 0, the SD of the paired differences, in the metric's units.
      margin: δ > 0, in the same units.
      n: number of pairs, at least 2.
      alpha: level of each one-sided test, in (0, 0.5).
      true_difference: Δ, the true mean difference.

    Returns:
      The probability that TOST shows |E[d]| < δ; below α when |Δ| ≥ δ.

    Raises:
      ValueError: sd or margin not finite and positive, n < 2, alpha outside (0, 0.5), Δ not
        finite.
    """
    _check(sd, margin, alpha)
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n: expected an integer number of pairs >= 2, got {n!r}")
    if not math.isfinite(true_difference):
        raise ValueError(f"true_difference: expected a finite number, got {true_difference!r}")
    n = int(n)
    df = n - 1
    c = float(sps.t.ppf(1.0 - alpha, df))
    root_n = math.sqrt(n)
    hi = (margin - true_difference) * root_n / sd
    lo = (-margin - true_difference) * root_n / sd
    # Over w = √((n - 1)s²/σ²), χ-distributed with n - 1 degrees of freedom: its density
    # w^(n-2)·exp(-w²/2) is finite at 0 for every n (the χ² density is not at n = 2).
    w_max = math.sqrt(df) * margin * root_n / (c * sd)  # the largest w that can still show it
    # The χ mass outside [w_lo, w_hi] is below 1e-15 and is left out.
    w_lo = math.sqrt(2.0 * float(special.gammainccinv(df / 2, 1.0 - 1e-15)))
    w_hi = min(w_max, math.sqrt(2.0 * float(special.gammainccinv(df / 2, 1e-15))))
    if w_hi <= w_lo:
        return 0.0
    log_norm = -(df / 2 - 1) * math.log(2.0) - float(special.gammaln(df / 2))

    def integrand(w: float) -> float:
        # χ density (in logs: no overflow at large n) times P(equivalence shown | s).
        density = math.exp(float(special.xlogy(df - 1, w)) - w * w / 2 + log_norm)
        shrink = c * w / math.sqrt(df)  # c·s/√n in units of σ/√n
        upper, lower = hi - shrink, lo + shrink
        if upper <= lower:
            return 0.0
        # Φ(upper) - Φ(lower) without cancellation when both are near 1.
        if lower > 0:
            return density * float(special.ndtr(-lower) - special.ndtr(-upper))
        return density * float(special.ndtr(upper) - special.ndtr(lower))

    mode = math.sqrt(df - 1.0)
    points = [mode] if w_lo < mode < w_hi else None
    value, _ = integrate.quad(
        integrand, w_lo, w_hi, points=points, epsabs=1e-12, epsrel=1e-9, limit=200
    )
    return min(1.0, max(0.0, value))


def seeds_for_power(
    sd: float,
    margin: float,
    power: float = SEEDS_POWER,
    alpha: float = 0.05,
    true_difference: float = 0.0,
) -> int:
    """The smallest n ≥ 2 whose paired TOST at level α reaches `power` (see `tost_power`).

    The search starts from the normal approximation n ≈ (z_{1-α} + z_{1-β'})²σ²/(δ - |Δ|)²
    (β' = (1 - power)/2 at Δ = 0, else 1 - power), brackets it by doubling and bisects, assuming
    power grows with n (it does for |Δ| < δ).

    Args:
      sd, margin, alpha, true_difference: as in `tost_power`.
      power: the target, in (0, 1).

    Returns:
      n, an int ≥ 2.

    Raises:
      ValueError: invalid sd, margin, alpha; power outside (0, 1); |Δ| ≥ δ (equivalence is then
        false and no n reaches the power); more than 10^9 seeds needed (σ/δ above about 10^4).
    """
    _check(sd, margin, alpha)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected a probability in (0, 1), got {power!r}")
    if not (math.isfinite(true_difference) and abs(true_difference) < margin):
        raise ValueError(
            f"true_difference: expected |Δ| below the margin {margin!r}, got {true_difference!r}"
        )
    beta = (1.0 - power) / 2 if true_difference == 0 else 1.0 - power
    z = float(sps.norm.ppf(1.0 - alpha) + sps.norm.ppf(1.0 - beta))
    guess = max(2, math.ceil((z * sd / (margin - abs(true_difference))) ** 2))

    def reaches(n: int) -> bool:
        if n > _MAX_SEEDS:
            raise ValueError(
                f"sd: expected a power of {power} reachable with at most {_MAX_SEEDS:,} seeds, "
                f"got sd {sd!r} for margin {margin!r}"
            )
        return tost_power(sd, margin, n, alpha, true_difference) >= power

    # Invariant: not reaches(low) (n = 1 never does), reaches(high).
    low, high = 1, guess
    if not reaches(guess):
        # The t quantile makes the exact n a little above the normal guess: look there first.
        low, high = guess, guess + 2 + guess // 8
        while not reaches(high):
            low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        if mid >= 2 and reaches(mid):
            high = mid
        else:
            low = mid
    return high


def smallest_margin(d: np.ndarray | list[float], alpha: float = 0.05) -> float:
    """The smallest margin these differences demonstrate equivalence for: max(|low|, |high|) of
    the (1 - 2α) t interval of d̄ (TOST at α shows |E[d]| < δ for every δ above it).

    Raises:
      ValueError: fewer than 2 differences, non-finite values, or alpha outside (0, 0.5).
    """
    x = np.asarray(d, dtype=float)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"d: expected at least 2 finite differences, got shape {x.shape}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha: expected a level in (0, 0.5), got {alpha!r}")
    n = x.size
    half = float(sps.t.ppf(1.0 - alpha, n - 1)) * float(np.std(x, ddof=1)) / math.sqrt(n)
    mean = float(np.mean(x))
    return max(abs(mean - half), abs(mean + half))
