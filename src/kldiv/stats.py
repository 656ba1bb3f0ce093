"""Statistics for multi-seed comparisons: summaries, paired tests, equivalence, JSON output.

A comparison has arms: the things compared (losses, configurations, ...), each run on the same
seeds, so that every other arm can be paired seed by seed with a baseline arm.

Statistics come from SciPy (`t.interval`, `bootstrap`, `ttest_1samp`, `wilcoxon` for large n);
this module adds the paired design, the degenerate cases and one result shape, and what SciPy does
not do right for this data: the primary test is a sign-flip permutation test of the mean
difference (`sign_flip_test`: exact for counts at any n, for floats up to `SIGN_FLIP_EXACT_MAX`
pairs, Monte Carlo beyond), which needs no normality, so failed seeds do not break it; the
Wilcoxon test drops zero differences before choosing its method and is exact (with ties) for up to
`WILCOXON_EXACT_MAX` non-zero differences; accuracies that are counts k/N are made exact
(`exact_fractions`) so float32 rounding does not break ties or fake a spread; the BCa bootstrap is
left out below `BOOTSTRAP_MIN_N` values, where it covers far less than its nominal level
(benchmarks/coverage.py); one primary metric and test is Holm-adjusted over the arms (`holm`).
Each comparison also says how many seeds its margin needs (`kldiv.power`), and a comparison keeps
the failed runs (stuck, diverged) it is given, with their rules (`kldiv.failures`): they stay in
every statistic, since dropping them would bias it.

Degenerate inputs never raise or warn. A statistic that does not exist for the data is `None` and
the result's `note` says why: one value (no spread, no interval), all values equal ("all n values
equal": no interval rather than one of zero width; the tests are undefined), and the case that
matters here, KL and cross-entropy trained from the same seed, where every paired difference is
exactly zero ("identical in all N pairs", with the upper bound 1 - α^(1/N) on the share of seeds
whose runs could still differ).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from kldiv.intervals import t_interval
from kldiv.margins import (
    DEFAULT_MARGINS,
    LOWER_IS_BETTER,
    SHARE_METRICS,
    higher_is_better,
    parse_margins,
)
from kldiv.power import SEEDS_POWER, seeds_for_power

__all__ = [
    "BOOTSTRAP_MIN_N",
    "DEFAULT_MARGINS",
    "LOWER_IS_BETTER",
    "PRIMARY_METRIC",
    "PRIMARY_TEST",
    "ArmComparison",
    "ArmSummary",
    "ComparisonStats",
    "PairedComparison",
    "Summary",
    "compare_arms",
    "compare_paired",
    "exact_fractions",
    "higher_is_better",
    "holm",
    "identical_share_bound",
    "metric_bounds",
    "parse_margins",
    "sign_flip_test",
    "summarize",
    "t_interval",
    "to_jsonable",
    "verdict",
    "wilcoxon_signed_rank",
]


# Below this many values the bootstrap interval is left out: BCa undercovers at small n (a coverage
# simulation of the mean of normal data, benchmarks/coverage.py, measures about 51% at n = 2, 72% at
# n = 3, 84% at n = 5 and 91% at n = 10 for a nominal 95%). The t interval is shown at every n.
BOOTSTRAP_MIN_N = 20

# Up to this many non-zero differences the Wilcoxon p-value is the exact permutation distribution of
# the signed-rank statistic (with midranks for ties); above it, the normal approximation.
WILCOXON_EXACT_MAX = 200

# The sign-flip test is exact by enumeration (meet in the middle: 2 x 2^(n/2) half sums) up to this
# many non-zero float differences; counts (integer multiples of 1/N) are exact at any n through the
# distribution of the integer sum, up to `SIGN_FLIP_MAX_CELLS` (pairs x possible sums) of work.
SIGN_FLIP_EXACT_MAX = 36
SIGN_FLIP_MAX_CELLS = 200_000_000
# Above both: Monte Carlo with this many random sign patterns (SE of p at p = 0.05: 0.0007).
SIGN_FLIP_RESAMPLES = 100_000
# Float sums that are equal in exact arithmetic can differ by rounding: a pattern counts as at least
# as extreme when |S| >= |S_obs| - SIGN_FLIP_RTOL * Σ|d|. Rounding in these sums (thousands of
# terms at most) is below 1e-13 * Σ|d|; the extra patterns the tolerance may admit where sums are
# truly distinct move p by about 1e-12.
SIGN_FLIP_RTOL = 1e-12

# The metric with the primary test when the data have it; its p-values are Holm-adjusted over the
# arms, every other p-value is unadjusted. The sign-flip test is exact for paired seeds at any n and
# assumes only that, with no difference between the arms, each pair's difference is as likely to
# be d as -d; the t-test adds normality, which failed seeds break.
PRIMARY_METRIC = "test_accuracy"
PRIMARY_TEST = "sign-flip permutation test"


@dataclass(frozen=True)
class Summary:
    """One sample of per-seed values, summarized.

    Attributes:
      n: number of values.
      mean: sample mean, x̄ = Σx / n.
      std: sample standard deviation (ddof = 1), s = sqrt(Σ(x - x̄)² / (n - 1)); `None` when n = 1.
      t_interval: x̄ ± t_{(1+c)/2, n-1} · s / √n, the `confidence`-level t interval for the mean;
        `None` when n = 1 or all values are equal (no spread: "all n values equal", not a
        zero-width confidence interval).
      bootstrap_interval: `scipy.stats.bootstrap` interval for the mean (`bootstrap_method`);
        `None` when n = 1, all values are equal, or n < `BOOTSTRAP_MIN_N`.
      bootstrap_method: "BCa", or "percentile" where BCa is undefined for the data; `None` if not
        run.
      confidence: confidence level of both intervals.
      n_boot: bootstrap resamples.
      seed: seed of the bootstrap's `numpy.random.default_rng`.
      note: why a statistic is missing or degenerate; `None` when everything was computed.
      median: sample median (a share of failed seeds moves the mean, not the median).
      bounds: the range the values can take, e.g. (0, 1) for accuracies; the intervals are clipped
        to it (`clipped` says whether that changed them). `None`: unbounded.
      clipped: an interval was clipped to `bounds`.
      bootstrap_note: why the bootstrap interval is left out (n < `BOOTSTRAP_MIN_N`).
      denominator: N when the values are counts k/N (see `exact_fractions`), else `None`.
    """

    n: int
    mean: float
    std: float | None
    t_interval: tuple[float, float] | None
    bootstrap_interval: tuple[float, float] | None
    bootstrap_method: str | None
    confidence: float
    n_boot: int
    seed: int
    note: str | None = None
    median: float | None = None
    bounds: tuple[float, float] | None = None
    clipped: bool = False
    bootstrap_note: str | None = None
    denominator: int | None = None


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of A against B over the same seeds, on the differences d = a - b.

    Attributes:
      difference: `Summary` of d (mean difference, its t and bootstrap intervals).
      n_identical: number of pairs with a == b exactly (bit-identical runs).
      t_test_p: two-sided paired t-test p-value (`scipy.stats.ttest_rel`), t = d̄ / (s_d / √n); a
        secondary test (it assumes normal differences), unadjusted.
      wilcoxon_p: two-sided Wilcoxon signed-rank p-value (`scipy.stats.wilcoxon`, zero differences
        dropped); a secondary test, unadjusted.
      prob_a_beats_b: P(A beats B) = mean(1[A better] + ½·1[a == b]); "better" is a > b when
        `higher_is_better`, else a < b.
      margin: equivalence margin δ > 0, in the metric's units; `None` when the metric has none
        (the margin questions are then not asked: `tost_p`, `margin_result` are `None`).
      tost_p: two one-sided tests p-value, max(p₁, p₂) with p₁ from H₀: E[d] ≤ -δ and p₂ from
        H₀: E[d] ≥ +δ (`scipy.stats.ttest_1samp`, one-sided).
      equivalent: True when tost_p < α = 1 - confidence (the (1 - 2α) interval of d̄ lies inside ±δ).
        When all N ≥ 2 differences equal one constant c (e.g. all zero) there is no spread to test
        and this is the exact statement |c| < δ about the data; `note` says so. False for one pair
        and without a margin.
      higher_is_better: the direction used for `prob_a_beats_b`.
      note: why tests are not applicable, e.g. "identical in all 100 pairs"; `None` otherwise.
      wilcoxon_n: pairs that entered the Wilcoxon test (the non-zero differences).
      wilcoxon_method: "exact" (permutation distribution of the signed-rank sum, midranks for
        ties, up to `WILCOXON_EXACT_MAX` non-zero differences) or "normal approximation".
      median_difference: median of d.
      alpha: 1 - confidence, the level of every test and verdict here.
      test_method: the test that answers "is there a difference": `PRIMARY_TEST` with its method
        ("sign-flip permutation test (exact, all 2^30 sign patterns)"), and on the primary metric
        of `compare_arms` ", Holm-adjusted over k arm(s)".
      difference_found: the sign-flip p (Holm-adjusted on the primary metric) < alpha; `None`
        when there is no test (then `note` says why).
      tost_interval: the (1 - 2α) t interval of d̄ (90% at α = 0.05) that the margin questions use:
        inside ±δ is TOST at α ("within"), entirely beyond +δ or -δ ("outside"), else "straddles".
      margin_result: "within", "outside", "straddles", or `None` for one pair.
      verdict: both answers in a few words; see `compare_paired`.
      identical_share_bound: when all N ≥ 1 pairs are identical, the upper confidence bound on the
        share of seeds whose runs could still differ, 1 - α^(1/N) (13.9% at N = 20, α = 0.05).
      sign_flip_p: two-sided sign-flip permutation p of the mean difference (`sign_flip_test`),
        unadjusted: the primary test.
      sign_flip_n: the non-zero differences it used (zeros do not change it).
      sign_flip_method: "exact, all 2^n sign patterns" or "Monte Carlo, R resamples".
      smallest_margin: the smallest δ these seeds show equivalence for at α,
        max(|low|, |high|) of `tost_interval` (TOST shows |E[d]| < δ for every δ above it);
        with no spread, |c| for the constant difference c (exact); `None` for one pair.
      seeds_needed: the smallest number of seeds for which TOST at α has power `seeds_power` to
        show |E[d]| < margin when the true difference is 0 and the SD of d is the observed
        `difference.std` (`kldiv.power.seeds_for_power`); `None` without a margin or a spread.
      seeds_power: the target power of `seeds_needed`.
    """

    difference: Summary
    n_identical: int
    t_test_p: float | None
    wilcoxon_p: float | None
    prob_a_beats_b: float
    margin: float | None
    tost_p: float | None
    equivalent: bool
    higher_is_better: bool
    note: str | None = None
    wilcoxon_n: int = 0
    wilcoxon_method: str | None = None
    median_difference: float | None = None
    alpha: float = 0.05
    test_method: str = PRIMARY_TEST
    difference_found: bool | None = None
    tost_interval: tuple[float, float] | None = None
    margin_result: str | None = None
    verdict: str = "n/a"
    identical_share_bound: float | None = None
    sign_flip_p: float | None = None
    sign_flip_n: int = 0
    sign_flip_method: str | None = None
    smallest_margin: float | None = None
    seeds_needed: int | None = None
    seeds_power: float = SEEDS_POWER

    @property
    def n(self) -> int:
        """Number of pairs."""
        return self.difference.n

    @property
    def difference_sd(self) -> float | None:
        """SD (ddof 1) of the paired differences, `difference.std`; `None` for one pair."""
        return self.difference.std

    @property
    def all_identical(self) -> bool:
        """Every pair is bit-identical."""
        return self.n_identical == self.n


@dataclass(frozen=True)
class ArmSummary:
    """`Summary` of one metric for one arm."""

    arm: str
    metric: str
    summary: Summary


@dataclass(frozen=True)
class ArmComparison:
    """`PairedComparison` of one arm (A) against the baseline arm (B) on one metric."""

    arm: str
    baseline: str
    metric: str
    comparison: PairedComparison


@dataclass(frozen=True)
class ComparisonStats:
    """Every metric summarized for every arm, and every other arm compared with the baseline.

    Attributes:
      arms: arm names in input order; the baseline is among them.
      baseline: the arm the others are compared against (B in every comparison).
      metrics: metric names, in the order of the first arm's mapping.
      margins: equivalence margin per metric; `None` for a metric with no margin.
      n_seeds: number of paired seeds.
      confidence, n_boot, seed: as passed to `summarize` / `compare_paired`.
      summaries: one `ArmSummary` per (arm, metric), arms outer.
      comparisons: one `ArmComparison` per (other arm, metric), arms outer.
      denominators: N per metric whose values are counts k/N (exact, see `exact_fractions`).
      values: arm -> metric -> the per-seed values used (exact k/N where a denominator is given).
      primary_metric, primary_test: the one metric and test whose p-values are Holm-adjusted
        over the arms (`primary_p_holm`); every other p-value is unadjusted.
      primary_p_holm: arm -> Holm-adjusted p of `primary_test` on `primary_metric`.
      seeds: the seed of each position of the per-seed values (shape (n_seeds,)).
      failures: arm -> kind ("stuck", "diverged", ...) -> seeds of the failed runs, as given; a
        failed run with finite values stays in every statistic (dropping it would bias them).
      failure_rules: kind -> the rule that defines it (see `kldiv.failures`).
      seeds_power: the target power of every `seeds_needed`.
    """

    arms: tuple[str, ...]
    baseline: str
    metrics: tuple[str, ...]
    margins: Mapping[str, float | None]
    n_seeds: int
    confidence: float
    n_boot: int
    seed: int
    summaries: tuple[ArmSummary, ...]
    comparisons: tuple[ArmComparison, ...]
    denominators: Mapping[str, int] = dataclasses.field(default_factory=dict)
    values: Mapping[str, Mapping[str, tuple[float, ...]]] = dataclasses.field(default_factory=dict)
    primary_metric: str | None = None
    primary_test: str = PRIMARY_TEST
    primary_p_holm: Mapping[str, float | None] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    failures: Mapping[str, Mapping[str, tuple[int, ...]]] = dataclasses.field(default_factory=dict)
    failure_rules: Mapping[str, str] = dataclasses.field(default_factory=dict)
    seeds_power: float = SEEDS_POWER

    # The records keep the order and the JSON shape; lookups go through (arm, metric) dicts built
    # on first use (cached in the instance's __dict__, not fields, so `to_dict` does not see them).
    @functools.cached_property
    def _summary_index(self) -> dict[tuple[str, str], Summary]:
        return {(s.arm, s.metric): s.summary for s in self.summaries}

    @functools.cached_property
    def _comparison_index(self) -> dict[tuple[str, str], PairedComparison]:
        return {(c.arm, c.metric): c.comparison for c in self.comparisons}

    def summary(self, arm: str, metric: str) -> Summary:
        """The summary of `metric` for `arm`.

        Raises:
          KeyError: `(arm, metric)`, when there is no such arm or metric.
        """
        return self._summary_index[arm, metric]

    def comparison(self, arm: str, metric: str) -> PairedComparison:
        """The comparison of `arm` against the baseline on `metric`.

        Raises:
          KeyError: `(arm, metric)`, when there is no such arm or metric, or `arm` is the baseline.
        """
        return self._comparison_index[arm, metric]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (see `to_jsonable`): the fields by name, summaries and comparisons as
        lists of records with "arm" and "metric"."""
        return to_jsonable(self)


def _checked(name: str, values: Any) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"{name}: expected a non-empty 1-D array of per-seed values, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{name}: expected finite values, got {bad} non-finite of {x.size}")
    return x


def _check_options(confidence: float, n_boot: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot: expected at least 1 resample, got {n_boot!r}")


def _quietly(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """Runs a SciPy call; a RuntimeWarning (degenerate data) becomes `(None, message)`.

    Other warnings (deprecations, ...) are about the code, not the data: they are re-issued.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    problems = []
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            problems.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return (None, problems[0]) if problems else (result, None)


def _bootstrap(
    x: np.ndarray, confidence: float, n_boot: int, seed: int
) -> tuple[tuple[float, float] | None, str | None, str | None]:
    """(interval, method, problem): BCa, falling back to percentile where BCa is undefined."""
    problem = None
    for method in ("BCa", "percentile"):
        res, problem = _quietly(
            lambda m=method: sps.bootstrap(
                (x,),
                np.mean,
                n_resamples=n_boot,
                confidence_level=confidence,
                method=m,
                rng=np.random.default_rng(seed),
            )
        )
        if res is not None:
            ci = res.confidence_interval
            if math.isfinite(ci.low) and math.isfinite(ci.high):
                return (float(ci.low), float(ci.high)), method, None
            problem = f"{method} bootstrap interval is not finite"
    return None, None, problem


def exact_fractions(values: Any, denominator: int) -> np.ndarray:
    """Values that are counts over `denominator` (k/N, e.g. hits/500 stored in float32), as the
    float64 of k/N: the nearest multiple of 1/N, so equal counts give equal values and a
    difference of one example is the same number in every seed.

    Raises:
      ValueError: N < 1, or a value further than 1e-6·N + 1e-9 examples from a multiple of 1/N
        (more than float32 rounding of k/N can explain: the values are not counts over N).
    """
    return _counts("values", values, denominator) / denominator


def _counts(name: str, values: Any, denominator: int) -> np.ndarray:
    if int(denominator) != denominator or denominator < 1:
        raise ValueError(f"denominator: expected an integer N >= 1, got {denominator!r}")
    x = _checked(name, values)
    scaled = x * denominator
    k = np.rint(scaled)
    worst = float(np.max(np.abs(scaled - k)))
    if worst > 1e-6 * denominator + 1e-9:
        raise ValueError(
            f"{name}: expected counts over N = {denominator} (multiples of 1/{denominator}), got a "
            f"value {worst:.3g} examples from the nearest one"
        )
    return k.astype(np.int64)


def identical_share_bound(n: int, confidence: float = 0.95) -> float:
    """Upper `confidence` bound on the share of seeds whose runs differ, when all n pairs seen were
    identical: the p with (1 - p)^n = 1 - confidence, i.e. 1 - (1 - confidence)^(1/n)."""
    if n < 1:
        raise ValueError(f"n: expected at least 1 pair, got {n}")
    return 1.0 - (1.0 - confidence) ** (1.0 / n)


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: the k-th smallest of m becomes
    max over j ≤ k of min(1, (m - j + 1)·p_(j))."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def wilcoxon_signed_rank(d: Any) -> tuple[float | None, int, str | None]:
    """Two-sided Wilcoxon signed-rank test of the paired differences d: (p, pairs used, method).

    Zero differences are dropped first (Wilcox), and the method is chosen on the non-zero count:
    up to `WILCOXON_EXACT_MAX` the p-value is exact, from the permutation distribution of the sum of
    positive (mid)ranks over all 2^n sign assignments, so ties among |d| are handled exactly; above
    it SciPy's normal approximation with the tie correction. p is `None` when no difference is
    non-zero.
    """
    x = np.asarray(d, dtype=float)
    x = x[x != 0]
    n = int(x.size)
    if n == 0:
        return None, 0, None
    if n > WILCOXON_EXACT_MAX:
        res, _ = _quietly(lambda: sps.wilcoxon(x, method="approx", correction=False))
        return _p(res), n, "normal approximation"
    # Midranks are multiples of 1/2: doubled, they are integers and the distribution is a
    # convolution over the ranks, each in or out of the positive sum with probability 1/2.
    r2 = np.rint(2.0 * sps.rankdata(np.abs(x))).astype(np.int64)
    dist = np.zeros(int(r2.sum()) + 1)
    dist[0] = 1.0
    for r in r2:
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[: dist.size - r]
        dist = 0.5 * (dist + shifted)
    t = int(r2[x > 0].sum())
    p = 2.0 * min(float(dist[: t + 1].sum()), float(dist[t:].sum()))
    return min(1.0, p), n, "exact"


def sign_flip_test(
    d: Any,
    *,
    denominator: int | None = None,
    n_resamples: int = SIGN_FLIP_RESAMPLES,
    seed: int = 0,
) -> tuple[float | None, int, str | None]:
    """Two-sided exact paired permutation (sign-flip) test of the mean difference: (p, n, method).

    Under H₀ (no difference between the arms) each pair's difference is as likely to be +|dᵢ| as
    -|dᵢ|, so the 2^n sign patterns are equally likely. The statistic is the sum S = Σ dᵢ (the mean
    times n), and p = #{patterns: |S| ≥ |S_obs|} / 2^n (the observed pattern included, so
    p ≥ 2/2^n). Zero differences are dropped first: their sign does not change S, so they multiply
    both counts by the same 2^z and p is the same with or without them; `n` is the number of
    non-zero differences used.

    Methods, in this order:
      * integers: when the differences are integers kᵢ (kᵢ = dᵢ·N with `denominator` N, or dᵢ
        itself when every dᵢ is an integer), the null distribution of Σ ±|kᵢ| is computed exactly
        for any n by convolving each pair's {-|kᵢ|, +|kᵢ|}, up to `SIGN_FLIP_MAX_CELLS` pairs x
        possible sums (30 to 1000 seeds of accuracy differences are well inside); no tolerance
        is needed;
      * floats, n ≤ `SIGN_FLIP_EXACT_MAX`: every pattern is counted (the half sums of two halves,
        sorted and matched, so 2^36 patterns cost 2 x 2^18 sums); a pattern counts when
        |S| ≥ |S_obs| - `SIGN_FLIP_RTOL`·Σ|dᵢ|, so sums equal in exact arithmetic but not after
        rounding count as ties;
      * otherwise Monte Carlo: `n_resamples` random sign patterns (fair bits from
        `numpy.random.default_rng(seed)`), p = (b + 1)/(R + 1) with b the patterns counted as
        above, the observed one included (Phipson & Smyth 2010: never 0, valid at every R). It
        estimates the same p as `scipy.stats.permutation_test` with one sample and
        permutation_type="samples" (tested against it), several times faster at large n.

    Args:
      d: 1-D array of finite paired differences a - b, one per seed.
      denominator: N when d are differences of counts over N (k/N): the test runs on the integer
        k exactly.
      n_resamples, seed: for the Monte Carlo method only.

    Returns:
      (p, n, method) with method "exact, all 2^n sign patterns" or "Monte Carlo, R resamples";
      (None, 0, None) when every difference is zero (nothing to test).

    Raises:
      ValueError: empty or non-finite d, d not counts over `denominator`, n_resamples < 1.
    """
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples: expected an integer >= 1, got {n_resamples!r}")
    if denominator is not None:
        k = _counts("d", d, denominator)
        x = k[k != 0].astype(float)
    else:
        x = _checked("d", d)
        x = x[x != 0]
    n = int(x.size)
    if n == 0:
        return None, 0, None
    exact = f"exact, all 2^{n} sign patterns"
    integral = bool(np.all(np.abs(x) < 2.0**53) and np.all(x == np.rint(x)))
    if integral and n * (float(np.abs(x).sum()) + 1) <= SIGN_FLIP_MAX_CELLS:
        return _sign_flip_counts(np.abs(x).astype(np.int64), int(x.sum())), n, exact
    if n <= SIGN_FLIP_EXACT_MAX:
        return _sign_flip_enumerated(x), n, exact
    p = _sign_flip_monte_carlo(x, int(n_resamples), seed)
    return p, n, f"Monte Carlo, {int(n_resamples)} resamples"


def _sign_flip_counts(k: np.ndarray, observed: int) -> float:
    """P(|S| ≥ |observed|) for S = Σ ±kᵢ, fair independent signs, kᵢ > 0 integers.

    S = 2P - T with T = Σkᵢ and P the sum of the kᵢ with a + sign, whose distribution over
    0..T is the convolution of {0, kᵢ} with probability ½ each.
    """
    total = int(k.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    top = 0  # dist is zero above `top`
    for v in k.tolist():
        shifted = dist[: top + 1].copy()
        dist[: top + 1] *= 0.5
        dist[v : v + top + 1] += 0.5 * shifted
        top += v
    s = 2 * np.arange(total + 1) - total
    return min(1.0, float(dist[np.abs(s) >= abs(observed)].sum()))


def _sign_flip_monte_carlo(x: np.ndarray, n_resamples: int, seed: int) -> float:
    """(b + 1)/(R + 1), b = #{R random sign patterns: |S| ≥ |S_obs| - tol} (tol as enumerated).

    The +1 counts the observed pattern, which makes p a valid p-value (never 0); the signs are
    bits of `numpy.random.default_rng(seed)`, S = Σx - 2·Σ_{flipped} x.
    """
    rng = np.random.default_rng(seed)
    n, total = x.size, float(x.sum())
    threshold = abs(total) - SIGN_FLIP_RTOL * float(np.abs(x).sum())
    batch = max(1, 4_000_000 // n)  # (batch, n) bits: about 4 MB at a time
    count, done = 0, 0
    while done < n_resamples:
        m = min(batch, n_resamples - done)
        random_bytes = rng.integers(0, 256, size=(m, (n + 7) // 8), dtype=np.uint8)
        flipped = np.unpackbits(random_bytes, axis=1, count=n)
        sums = total - 2.0 * (flipped @ x)
        count += int(np.count_nonzero(np.abs(sums) >= threshold))
        done += m
    return min(1.0, (count + 1) / (n_resamples + 1))


def _half_sums(x: np.ndarray) -> np.ndarray:
    """Σ ±xᵢ over all 2^len(x) sign patterns."""
    sums = np.zeros(1)
    for v in x:
        sums = np.concatenate((sums + v, sums - v))
    return sums


def _sign_flip_enumerated(x: np.ndarray) -> float:
    """#{patterns: |S| ≥ |S_obs| - tol} / 2^n, every pattern counted, by meeting in the middle."""
    threshold = abs(float(x.sum())) - SIGN_FLIP_RTOL * float(np.abs(x).sum())
    if threshold <= 0:
        return 1.0
    half = x.size // 2
    left, right = _half_sums(x[:half]), np.sort(_half_sums(x[half:]))
    # With threshold > 0, S ≥ threshold and S ≤ -threshold are disjoint events.
    above = right.size - np.searchsorted(right, threshold - left, side="left")
    below = np.searchsorted(right, -threshold - left, side="right")
    count = int(above.sum()) + int(below.sum())
    return min(1.0, count / 2.0**x.size)


def _clip(
    interval: tuple[float, float], bounds: tuple[float, float] | None
) -> tuple[tuple[float, float], bool]:
    if bounds is None:
        return interval, False
    low, high = max(interval[0], bounds[0]), min(interval[1], bounds[1])
    return (low, high), (low, high) != interval


def summarize(
    values: Any,
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
    denominator: int | None = None,
) -> Summary:
    """Mean, standard deviation, median and `confidence`-level intervals for the mean of values.

    Args:
      values: 1-D array of finite values, one per seed.
      confidence: level of both intervals.
      n_boot: bootstrap resamples.
      seed: seed of the bootstrap's `numpy.random.default_rng`; recorded in the result.
      bounds: the range the values can take (e.g. (0, 1) for an accuracy); intervals are clipped
        to it, and `clipped` says when that happened.
      denominator: N when the values are counts k/N: they are made exact first
        (`exact_fractions`), so float32 rounding noise does not enter.

    Returns:
      A `Summary`: see its attributes for the formulas. With one value there is no spread and no
      interval; with all values equal neither (`note`: "all n values equal"): a zero-width
      interval would not be a confidence interval. The bootstrap interval is left out below
      `BOOTSTRAP_MIN_N` values (`bootstrap_note` says why).

    Raises:
      ValueError: empty, not 1-D, or non-finite values; values not counts over `denominator`;
        confidence outside (0, 1); n_boot < 1.
    """
    if denominator is not None:
        k = _counts("values", values, denominator)
        x = k / denominator
    else:
        x = _checked("values", values)
    _check_options(confidence, n_boot)
    n = x.size
    # Equal values: x[0] is their exact mean (np.mean may be an ulp off); counts: Σk / (nN).
    constant = bool(np.all(x == x[0]))
    if constant:
        mean = float(x[0])
    elif denominator is not None:
        mean = float(k.sum()) / (n * denominator)
    else:
        mean = float(np.mean(x))
    common = {
        "n": n,
        "mean": mean,
        "median": float(x[0]) if constant else float(np.median(x)),
        "confidence": confidence,
        "n_boot": n_boot,
        "seed": seed,
        "bounds": bounds,
        "denominator": denominator,
    }
    if n == 1:
        return Summary(
            std=None,
            t_interval=None,
            bootstrap_interval=None,
            bootstrap_method=None,
            note="n = 1: no spread and no interval",
            **common,
        )
    if constant:
        return Summary(
            std=0.0,
            t_interval=None,
            bootstrap_interval=None,
            bootstrap_method=None,
            note=f"all {n} values equal: no spread, no interval",
            **common,
        )
    std = float(np.std(x, ddof=1))
    low, high = t_interval(mean, std / math.sqrt(n), n, confidence)
    t_ci, clipped = _clip((float(low), float(high)), bounds)
    boot, method, problem, boot_note = None, None, None, None
    if n < BOOTSTRAP_MIN_N:
        boot_note = (
            f"bootstrap interval left out below n = {BOOTSTRAP_MIN_N}: BCa covers well under "
            f"{100 * confidence:g}% there (benchmarks/coverage.py)"
        )
    else:
        boot, method, problem = _bootstrap(x, confidence, n_boot, seed)
        if boot is not None:
            boot, boot_clipped = _clip(boot, bounds)
            clipped = clipped or boot_clipped
    return Summary(
        std=std,
        t_interval=t_ci,
        bootstrap_interval=boot,
        bootstrap_method=method,
        note=None if problem is None else f"bootstrap not applicable: {problem}",
        clipped=clipped,
        bootstrap_note=boot_note,
        **common,
    )


def _no_spread(d: np.ndarray) -> bool:
    """All values equal, or equal to float64 resolution: max |d - d̄| < 1e-14 |d̄|.

    The second is SciPy's own test for catastrophic cancellation in the variance; there the t
    statistic is rounding noise.
    """
    mean = float(np.mean(d))
    return bool(np.all(d == d[0])) or float(np.max(np.abs(d - mean))) < 1e-14 * abs(mean)


def _p(result: Any) -> float | None:
    p = None if result is None else float(result.pvalue)
    return p if p is not None and math.isfinite(p) else None


def verdict(
    difference_found: bool | None, margin_result: str | None, *, has_margin: bool = True
) -> str:
    """Both answers in a few words: is there a difference (the test at α), and is the difference
    within the margin (the (1 - 2α) interval inside ±δ, beyond it, or straddling it).

    "equivalent" (within, no difference shown), "different, within margin" (a real but small
    difference), "different" (significant and the interval beyond the margin), "different, margin
    unclear", "inconclusive" (neither), "outside margin, no difference shown" (rare). Without a
    margin (`has_margin` False) only the first question: "different" or "no difference shown".
    """
    if not has_margin:
        if difference_found is None:
            return "n/a"
        return "different" if difference_found else "no difference shown"
    if margin_result is None:
        return "n/a"
    if difference_found is None:
        return f"{margin_result} margin"
    return {
        ("within", False): "equivalent",
        ("within", True): "different, within margin",
        ("outside", True): "different",
        ("outside", False): "outside margin, no difference shown",
        ("straddles", True): "different, margin unclear",
        ("straddles", False): "inconclusive",
    }[margin_result, difference_found]


def _margin_result(interval: tuple[float, float], margin: float) -> str:
    low, high = interval
    if -margin < low and high < margin:
        return "within"
    if low >= margin or high <= -margin:
        return "outside"
    return "straddles"


def compare_paired(
    a: Any,
    b: Any,
    *,
    margin: float | None,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    denominator: int | None = None,
    bounds: tuple[float, float] | None = None,
    power: float = SEEDS_POWER,
) -> PairedComparison:
    """Compares paired per-seed values a[i], b[i] (same seed i) through the differences d = a - b.

    Args:
      a, b: 1-D arrays of finite values of equal length, in the same seed order.
      margin: equivalence margin δ > 0 for the TOST, in the metric's units; `None`: no margin,
        the margin questions are not asked (the verdict answers only "is there a difference").
      higher_is_better: direction for P(A beats B).
      confidence: level of the intervals; α = 1 - confidence for every test and verdict.
      n_boot, seed: bootstrap resamples and seed, as in `summarize`; `seed` also seeds the
        sign-flip test where it is Monte Carlo.
      denominator: N when a and b are counts k/N: d is computed as (k_a - k_b)/N, exactly, so
        equal count differences are equal numbers (ties are ties, a constant shift has no spread),
        and the sign-flip test is exact at any n.
      bounds: the range of the values (e.g. (0, 1)); the intervals of d are clipped to
        (lo - hi, hi - lo).
      power: the target power of `seeds_needed`.

    Returns:
      A `PairedComparison`; see its attributes for the formulas. Two questions are answered
      separately: is there a difference (the sign-flip permutation test at α: `difference_found`;
      the paired t-test and Wilcoxon p are secondary), and is it within the margin (the (1 - 2α)
      interval `tost_interval`: `margin_result`); `verdict` says both. With one pair there are no
      tests. When every difference is the same number c to float64 resolution there is no spread:
      in particular zero ("identical in all N pairs", with the bound on the share of seeds that
      could still differ) and nothing to test; for c ≠ 0 the sign-flip and Wilcoxon tests are
      exact (p = 2/2^N), the t-test and TOST undefined, and the margin answer is the exact
      |c| < δ. `note` gives the reason for any missing test; any other case SciPy finds
      degenerate also gives `None`, with SciPy's reason.

    Raises:
      ValueError: lengths differ, arrays empty or non-finite, not counts over `denominator`,
        margin not positive, power outside (0, 1).
    """
    if denominator is not None:
        ka, kb = _counts("a", a, denominator), _counts("b", b, denominator)
        if ka.shape != kb.shape:
            raise ValueError(
                f"b: expected the same number of seeds as a ({ka.size}), got {kb.size}"
            )
        x, y, d = ka / denominator, kb / denominator, (ka - kb) / denominator
    else:
        x, y = _checked("a", a), _checked("b", b)
        if x.shape != y.shape:
            raise ValueError(f"b: expected the same number of seeds as a ({x.size}), got {y.size}")
        d = x - y
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: expected a finite number > 0 or None, got {margin!r}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power: expected a probability in (0, 1), got {power!r}")
    alpha = round(1.0 - confidence, 12)  # 0.05, not 0.050000000000000044
    n = d.size
    n_identical = int(np.count_nonzero(x == y))
    better = x > y if higher_is_better else x < y
    prob = float(np.mean(better + 0.5 * (x == y)))
    d_bounds = None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])
    difference = summarize(
        d,
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
        bounds=d_bounds,
        denominator=denominator,
    )
    has_margin = margin is not None
    common = {
        "difference": difference,
        "n_identical": n_identical,
        "prob_a_beats_b": prob,
        "margin": None if margin is None else float(margin),
        "higher_is_better": higher_is_better,
        "median_difference": difference.median,
        "alpha": alpha,
        "seeds_power": power,
    }
    if n == 1:
        why = "identical in the 1 pair" if n_identical else f"1 pair, difference {d[0]:.6g}"
        return PairedComparison(
            t_test_p=None,
            wilcoxon_p=None,
            tost_p=None,
            equivalent=False,
            note=why + ": tests need at least 2 pairs",
            **common,
        )
    if _no_spread(d):
        c = difference.mean
        within = has_margin and abs(c) < margin
        margin_res = None if not has_margin else ("within" if within else "outside")
        if n_identical == n:
            bound = identical_share_bound(n, confidence)
            why = (
                f"identical in all {n} pairs: every difference is 0, tests not applicable; at "
                f"{100 * confidence:g}% confidence at most {100 * bound:.1f}% of seeds would give "
                f"different runs (1 − {alpha:g}^(1/{n}))"
            )
            return PairedComparison(
                t_test_p=None,
                wilcoxon_p=None,
                tost_p=None,
                equivalent=has_margin,
                note=why,
                verdict="identical",
                margin_result=margin_res,
                identical_share_bound=bound,
                smallest_margin=0.0,
                **common,
            )
        # Every pair moved the same way by the same amount: the permutation tests are exact
        # (p = 2/2^n), the t statistic is undefined, and the data settle the margin exactly.
        exactly = "" if np.all(d == d[0]) else " to float64 resolution"
        why = (
            f"all {n} differences equal {c:.6g}{exactly}: no spread, t-test and TOST not "
            "applicable; the margin answer is exact"
        )
        ranks, found = _rank_tests(d, denominator, seed, alpha)
        return PairedComparison(
            t_test_p=None,
            tost_p=None,
            equivalent=within,
            note=why,
            difference_found=found,
            margin_result=margin_res,
            verdict=verdict(found, margin_res, has_margin=has_margin),
            smallest_margin=abs(c),
            **ranks,
            **common,
        )
    notes = []
    t_res, t_why = _quietly(lambda: sps.ttest_1samp(d, 0.0))
    ranks, found = _rank_tests(d, denominator, seed, alpha)
    tost, tost_why = None, None
    if has_margin:
        lower, lo_why = _quietly(lambda: sps.ttest_1samp(d, -margin, alternative="greater"))
        upper, up_why = _quietly(lambda: sps.ttest_1samp(d, margin, alternative="less"))
        p_lower, p_upper = _p(lower), _p(upper)
        tost = None if p_lower is None or p_upper is None else max(p_lower, p_upper)
        tost_why = lo_why or up_why
    for test, why in (("t-test", t_why), ("TOST", tost_why)):
        if why is not None:
            notes.append(f"{test} not applicable: {why}")
    sd = float(np.std(d, ddof=1))
    low, high = t_interval(float(np.mean(d)), sd / math.sqrt(n), n, 1.0 - 2.0 * alpha)
    # clipped like the 95% interval of d, so the two never contradict; no margin below 1 of a
    # share changes its answer
    tost_ci, _ = _clip((float(low), float(high)), d_bounds)
    margin_res = _margin_result(tost_ci, margin) if has_margin else None
    needed = None
    if has_margin and sd > 0:
        with contextlib.suppress(ValueError):  # more seeds than seeds_for_power searches
            needed = seeds_for_power(sd, margin, power, alpha)
    return PairedComparison(
        t_test_p=_p(t_res),
        tost_p=tost,
        equivalent=tost is not None and tost < alpha,
        note="; ".join(notes) or None,
        difference_found=found,
        tost_interval=tost_ci,
        margin_result=margin_res,
        verdict=verdict(found, margin_res, has_margin=has_margin),
        smallest_margin=max(abs(tost_ci[0]), abs(tost_ci[1])),
        seeds_needed=needed,
        **ranks,
        **common,
    )


def _rank_tests(
    d: np.ndarray, denominator: int | None, seed: int, alpha: float
) -> tuple[dict[str, Any], bool | None]:
    """The permutation tests of differences d that have spread or not: the sign-flip test (the
    primary one) and Wilcoxon, as `PairedComparison` fields, and whether the primary test finds a
    difference at `alpha` (None when it cannot be run)."""
    sf_p, sf_n, sf_method = sign_flip_test(d, denominator=denominator, seed=seed)
    w_p, w_n, w_method = wilcoxon_signed_rank(d)
    fields = {
        "wilcoxon_p": w_p,
        "wilcoxon_n": w_n,
        "wilcoxon_method": w_method,
        "sign_flip_p": sf_p,
        "sign_flip_n": sf_n,
        "sign_flip_method": sf_method,
        "test_method": _test_method(sf_method),
    }
    return fields, None if sf_p is None else sf_p < alpha


def _test_method(sign_flip_method: str | None) -> str:
    return PRIMARY_TEST if sign_flip_method is None else f"{PRIMARY_TEST} ({sign_flip_method})"


def _lookup(metric: str, table: Mapping[str, Any]) -> Any:
    """The entry for metric by its name, else by the longest key it ends with; `None` if neither."""
    if metric in table:
        return table[metric]
    suffixes = [kind for kind in table if metric.endswith(kind)]
    return table[max(suffixes, key=len)] if suffixes else None


def metric_bounds(
    metric: str, denominator: int | None, smallest: float
) -> tuple[float, float] | None:
    """The range a metric's values can take, by its name: shares (counts over N, accuracy,
    error, ECE, agreement) in [0, 1], the multi-class Brier score in [0, 2], a loss or a KL
    divergence >= 0 when every value given is (a divergence or a log loss; a user's loss may be a
    negative log-likelihood); `smallest` is the smallest value given."""
    if denominator is not None or metric.endswith(SHARE_METRICS):
        return (0.0, 1.0)
    if metric.endswith("brier"):
        return (0.0, 2.0)
    if metric.endswith(("loss", "kl")) and smallest >= 0:
        return (0.0, math.inf)
    return None


def _checked_failures(
    failures: Mapping[str, Mapping[str, Any]] | None,
    rules: Mapping[str, str] | None,
    arms: tuple[str, ...],
) -> tuple[dict[str, dict[str, tuple[int, ...]]], dict[str, str]]:
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    rules = dict(rules or {})
    for arm, kinds in (failures or {}).items():
        if arm not in arms:
            raise ValueError(f"failures: expected arms among {list(arms)}, got {arm!r}")
        out[arm] = {}
        for kind, seeds in kinds.items():
            if kind not in rules:
                raise ValueError(
                    f"failure_rules: expected the rule for failure kind {kind!r} (failures of "
                    f"arm {arm!r}), got rules for {sorted(rules)}"
                )
            given = np.asarray(seeds).reshape(-1)
            if given.size and given.dtype.kind not in "iu":
                raise ValueError(
                    f"failures[{arm!r}][{kind!r}]: expected integer seeds, got {seeds!r}"
                )
            listed = [int(x) for x in given]
            if len(set(listed)) != len(listed):
                raise ValueError(
                    f"failures[{arm!r}][{kind!r}]: expected each seed once, got {listed}"
                )
            out[arm][kind] = tuple(listed)
    return out, rules


def compare_arms(
    finals: Mapping[str, Mapping[str, Any]],
    *,
    baseline: str | None = None,
    margins: Mapping[str, float] | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    denominators: Mapping[str, int] | None = None,
    primary_metric: str | None = None,
    seeds: Any = None,
    failures: Mapping[str, Mapping[str, Any]] | None = None,
    failure_rules: Mapping[str, str] | None = None,
    power: float = SEEDS_POWER,
) -> ComparisonStats:
    """Summarizes every metric of every arm; compares every other arm with the baseline, paired.

    Args:
      finals: arm name -> metric name -> per-seed values, shape (seeds,), the same seed order and
        the same metric names for every arm (e.g. "train_accuracy", "test_accuracy", "train_loss",
        "test_loss").
      baseline: the arm compared against (B); default the first arm.
      margins: equivalence margin per metric name or name suffix, merged over `DEFAULT_MARGINS`
        (0.01 for accuracies, errors, Brier scores and ECE; 0.01 nats for losses); a metric's own
        name wins over a suffix, a longer suffix over a shorter one (see `parse_margins`). A
        metric matching none has no margin: its margin questions are not asked (`margin` None,
        verdict "different" or "no difference shown").
      confidence, n_boot, seed: as in `summarize`.
      denominators: N per metric name or name suffix whose values are counts k/N (e.g.
        {"test_accuracy": 500}): the values are made exact (`exact_fractions`) before any
        statistic. Accuracies, and metrics with a denominator, have intervals clipped to [0, 1].
      primary_metric: the metric whose sign-flip p-values are Holm-adjusted over the arms;
        default `PRIMARY_METRIC` when present, else the first metric.
      seeds: the seed of each position, shape (seeds,); default 0, 1, ..., n - 1.
      failures: arm -> kind (e.g. "stuck", "diverged") -> seeds of the failed runs (see
        `kldiv.failures`). Recorded and reported; the runs stay in every statistic (their values
        are in `finals` if they are finite, and dropping them would bias the comparison).
      failure_rules: kind -> the rule that defines it, for every kind in `failures`.
      power: the target power of every comparison's `seeds_needed`.

    Returns:
      A `ComparisonStats`. The direction of P(A beats B) follows `higher_is_better(metric)`. On the
      primary metric, `difference_found` and `verdict` use the Holm-adjusted sign-flip p.

    Raises:
      ValueError: no arms, unknown baseline or primary metric, differing metric names or seed
        counts, non-finite values or values that are not counts over their denominator (the
        message names the arm and metric), seeds of the wrong length or repeated, failures of an
        unknown arm, with non-integer seeds or without a rule.
    """
    if not finals:
        raise ValueError("finals: expected at least one arm, got none")
    arms = tuple(finals)
    baseline = arms[0] if baseline is None else baseline
    if baseline not in finals:
        raise ValueError(f"baseline: expected one of {list(arms)}, got {baseline!r}")
    metrics = tuple(finals[arms[0]])
    if not metrics:
        raise ValueError(f"finals[{arms[0]!r}]: expected at least one metric, got none")
    for arm in arms:
        if set(finals[arm]) != set(metrics):
            raise ValueError(
                f"finals[{arm!r}]: expected metrics {sorted(metrics)}, got {sorted(finals[arm])}"
            )
    dens = {m: _lookup(m, denominators or {}) for m in metrics}
    dens = {m: int(v) for m, v in dens.items() if v is not None}

    def exact(arm: str, m: str) -> np.ndarray:
        name = f"finals[{arm!r}][{m!r}]"
        if m in dens:
            return _counts(name, finals[arm][m], dens[m]) / dens[m]
        return _checked(name, finals[arm][m])

    arrays = {(arm, m): exact(arm, m) for arm in arms for m in metrics}
    n_seeds = arrays[arms[0], metrics[0]].size
    for key, arr in arrays.items():
        if arr.size != n_seeds:
            raise ValueError(
                f"finals[{key[0]!r}][{key[1]!r}]: expected {n_seeds} seeds (as "
                f"finals[{arms[0]!r}][{metrics[0]!r}]), got {arr.size}"
            )
    given = np.arange(n_seeds) if seeds is None else np.asarray(seeds)
    if given.shape != (n_seeds,) or given.dtype.kind not in "iu" or np.unique(given).size < n_seeds:
        raise ValueError(
            f"seeds: expected {n_seeds} different integer seeds (one per value), got "
            f"{given.tolist()}"
        )
    seed_ids = tuple(int(x) for x in given)
    failed, rules = _checked_failures(failures, failure_rules, arms)
    if primary_metric is None:
        primary_metric = PRIMARY_METRIC if PRIMARY_METRIC in metrics else metrics[0]
    elif primary_metric not in metrics:
        raise ValueError(f"primary_metric: expected one of {list(metrics)}, got {primary_metric!r}")
    merged = {**DEFAULT_MARGINS, **(margins or {})}
    used = {m: _lookup(m, merged) for m in metrics}
    used = {m: None if v is None else float(v) for m, v in used.items()}
    opts = {"confidence": confidence, "n_boot": n_boot, "seed": seed}
    bounds = {
        m: metric_bounds(m, dens.get(m), min(float(arrays[arm, m].min()) for arm in arms))
        for m in metrics
    }
    summaries = tuple(
        ArmSummary(
            arm,
            m,
            summarize(
                arrays[arm, m],
                bounds=bounds[m],
                denominator=dens.get(m),
                **opts,
            ),
        )
        for arm in arms
        for m in metrics
    )
    comparisons = [
        ArmComparison(
            arm,
            baseline,
            m,
            compare_paired(
                arrays[arm, m],
                arrays[baseline, m],
                margin=used[m],
                higher_is_better=higher_is_better(m),
                denominator=dens.get(m),
                bounds=bounds[m],
                power=power,
                **opts,
            ),
        )
        for arm in arms
        if arm != baseline
        for m in metrics
    ]
    # Holm over the primary family: the primary test on the primary metric, one p per other arm.
    family = [i for i, ac in enumerate(comparisons) if ac.metric == primary_metric]
    tested = [i for i in family if comparisons[i].comparison.sign_flip_p is not None]
    adjusted = holm([comparisons[i].comparison.sign_flip_p for i in tested]) if tested else []
    holm_p: dict[str, float | None] = {comparisons[i].arm: None for i in family}
    for i, p in zip(tested, adjusted, strict=True):
        ac, c = comparisons[i], comparisons[i].comparison
        found = bool(p < c.alpha)
        holm_p[ac.arm] = float(p)
        comparisons[i] = dataclasses.replace(
            ac,
            comparison=dataclasses.replace(
                c,
                difference_found=found,
                verdict=verdict(found, c.margin_result, has_margin=c.margin is not None),
                test_method=f"{c.test_method}, Holm-adjusted over {len(tested)} arm(s)",
            ),
        )
    return ComparisonStats(
        arms=arms,
        baseline=baseline,
        metrics=metrics,
        margins=used,
        n_seeds=n_seeds,
        summaries=summaries,
        comparisons=tuple(comparisons),
        denominators=dens,
        values={arm: {m: tuple(map(float, arrays[arm, m])) for m in metrics} for arm in arms},
        primary_metric=primary_metric,
        primary_p_holm=holm_p,
        seeds=seed_ids,
        failures=failed,
        failure_rules=rules,
        seeds_power=power,
        **opts,
    )


def to_jsonable(obj: Any) -> Any:
    """Converts results to plain JSON types.

    Dataclasses and mappings become dicts with string keys; tuples, lists and arrays become lists;
    NumPy scalars become Python numbers; NaN and ±inf become None; paths become strings.

    Raises:
      TypeError: an object of any other type.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, str, np.bool_)):
        return bool(obj) if isinstance(obj, np.bool_) else obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(
        f"obj: expected results, mappings, sequences or numbers, got {type(obj).__name__}"
    )
