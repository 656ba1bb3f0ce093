"""Statistics for multi-seed comparisons: summaries, paired tests, equivalence, JSON output.

A comparison has arms: the things compared (losses, configurations, ...), each run on the same
seeds, so that every other arm can be paired seed by seed with a baseline arm.

Statistics come from SciPy (`t.interval`, `bootstrap`, `ttest_1samp`, `wilcoxon` for large n);
this module adds the paired design, the degenerate cases and one result shape, and what SciPy does
not do right for this data: the Wilcoxon test drops zero differences before choosing its method
and is exact (with ties) for up to `WILCOXON_EXACT_MAX` non-zero differences; accuracies that are
counts k/N are made exact (`exact_fractions`) so float32 rounding does not break ties or fake a
spread; the BCa bootstrap is left out below `BOOTSTRAP_MIN_N` values, where it covers far less than
its nominal level (benchmarks/coverage.py); one primary metric and test is Holm-adjusted over the
arms (`holm`).

Degenerate inputs never raise or warn. A statistic that does not exist for the data is `None` and
the result's `note` says why: one value (no spread, no interval), all values equal ("all n values
equal": no interval rather than one of zero width; the tests are undefined), and the case that
matters here, KL and cross-entropy trained from the same seed, where every paired difference is
exactly zero ("identical in all N pairs", with the upper bound 1 - α^(1/N) on the share of seeds
whose runs could still differ).
"""

from __future__ import annotations

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

__all__ = [
    "BOOTSTRAP_MIN_N",
    "DEFAULT_MARGINS",
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
    "summarize",
    "t_interval",
    "to_jsonable",
    "verdict",
    "wilcoxon_signed_rank",
]

# Equivalence margins by metric kind (the suffix of the metric name), reported with the results.
# Accuracy: 0.01, about the seed-to-seed spread of the tutorial's final accuracy (5 of 500).
# Loss: 0.01 nats, a few percent of the tutorial's final loss (~0.4 nats).
DEFAULT_MARGINS: Mapping[str, float] = {"accuracy": 0.01, "loss": 0.01}

# Below this many values the bootstrap interval is left out: BCa undercovers at small n (a coverage
# simulation of the mean of normal data, benchmarks/coverage.py, measures about 51% at n = 2, 72% at
# n = 3, 84% at n = 5 and 91% at n = 10 for a nominal 95%). The t interval is shown at every n.
BOOTSTRAP_MIN_N = 20

# Up to this many non-zero differences the Wilcoxon p-value is the exact permutation distribution of
# the signed-rank statistic (with midranks for ties); above it, the normal approximation.
WILCOXON_EXACT_MAX = 200

# The metric with the primary test (paired t-test) when the data have it; its p-values are
# Holm-adjusted over the arms, every other p-value is unadjusted.
PRIMARY_METRIC = "test_accuracy"
PRIMARY_TEST = "paired t-test"


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
      t_test_p: two-sided paired t-test p-value (`scipy.stats.ttest_rel`), t = d̄ / (s_d / √n).
      wilcoxon_p: two-sided Wilcoxon signed-rank p-value (`scipy.stats.wilcoxon`, zero differences
        dropped).
      prob_a_beats_b: P(A beats B) = mean(1[A better] + ½·1[a == b]); "better" is a > b when
        `higher_is_better`, else a < b.
      margin: equivalence margin δ > 0, in the metric's units.
      tost_p: two one-sided tests p-value, max(p₁, p₂) with p₁ from H₀: E[d] ≤ -δ and p₂ from
        H₀: E[d] ≥ +δ (`scipy.stats.ttest_1samp`, one-sided).
      equivalent: True when tost_p < α = 1 - confidence (the (1 - 2α) interval of d̄ lies inside ±δ).
        When all N ≥ 2 differences equal one constant c (e.g. all zero) there is no spread to test
        and this is the exact statement |c| < δ about the data; `note` says so. False for one pair.
      higher_is_better: the direction used for `prob_a_beats_b`.
      note: why tests are not applicable, e.g. "identical in all 100 pairs"; `None` otherwise.
      wilcoxon_n: pairs that entered the Wilcoxon test (the non-zero differences).
      wilcoxon_method: "exact" (permutation distribution of the signed-rank sum, midranks for
        ties, up to `WILCOXON_EXACT_MAX` non-zero differences) or "normal approximation".
      median_difference: median of d.
      alpha: 1 - confidence, the level of every test and verdict here.
      test_method: the test that answers "is there a difference" (`PRIMARY_TEST`).
      difference_found: t_test_p < alpha; `None` when there is no test (then `note` says why).
      tost_interval: the (1 - 2α) t interval of d̄ (90% at α = 0.05) that the margin questions use:
        inside ±δ is TOST at α ("within"), entirely beyond +δ or -δ ("outside"), else "straddles".
      margin_result: "within", "outside", "straddles", or `None` for one pair.
      verdict: both answers in a few words; see `compare_paired`.
      identical_share_bound: when all N ≥ 1 pairs are identical, the upper confidence bound on the
        share of seeds whose runs could still differ, 1 - α^(1/N) (13.9% at N = 20, α = 0.05).
    """

    difference: Summary
    n_identical: int
    t_test_p: float | None
    wilcoxon_p: float | None
    prob_a_beats_b: float
    margin: float
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

    @property
    def n(self) -> int:
        """Number of pairs."""
        return self.difference.n

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
      margins: equivalence margin per metric.
      n_seeds: number of paired seeds.
      confidence, n_boot, seed: as passed to `summarize` / `compare_paired`.
      summaries: one `ArmSummary` per (arm, metric), arms outer.
      comparisons: one `ArmComparison` per (other arm, metric), arms outer.
      denominators: N per metric whose values are counts k/N (exact, see `exact_fractions`).
      values: arm -> metric -> the per-seed values used (exact k/N where a denominator is given).
      primary_metric, primary_test: the one metric and test whose p-values are Holm-adjusted
        over the arms (`primary_p_holm`); every other p-value is unadjusted.
      primary_p_holm: arm -> Holm-adjusted p of `primary_test` on `primary_metric`.
    """

    arms: tuple[str, ...]
    baseline: str
    metrics: tuple[str, ...]
    margins: Mapping[str, float]
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


def higher_is_better(metric: str) -> bool:
    """Direction of a metric by name: lower is better for names ending in "loss", else higher."""
    return not metric.endswith("loss")


def t_interval(
    mean: np.ndarray | float, sem: np.ndarray | float, n: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval mean ± t_{(1+c)/2, n-1} · sem, elementwise; zero width where sem == 0.

    `scipy.stats.t.interval` is undefined for scale 0 (it returns NaN and warns), but the limit of
    the formula is the point itself, which is what a sample of equal values gives.
    """
    if n < 2:
        raise ValueError(f"n: expected at least 2 values for a t interval, got {n}")
    mean, sem = np.asarray(mean, dtype=float), np.asarray(sem, dtype=float)
    positive = sem > 0
    low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=np.where(positive, sem, 1.0))
    return np.where(positive, low, mean), np.where(positive, high, mean)


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


def verdict(difference_found: bool | None, margin_result: str | None) -> str:
    """Both answers in a few words: is there a difference (the test at α), and is the difference
    within the margin (the (1 - 2α) interval inside ±δ, beyond it, or straddling it).

    "equivalent" (within, no difference shown), "different, within margin" (a real but small
    difference), "different" (significant and the interval beyond the margin), "different, margin
    unclear", "inconclusive" (neither), "outside margin, no difference shown" (rare).
    """
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
    margin: float,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    denominator: int | None = None,
    bounds: tuple[float, float] | None = None,
) -> PairedComparison:
    """Compares paired per-seed values a[i], b[i] (same seed i) through the differences d = a - b.

    Args:
      a, b: 1-D arrays of finite values of equal length, in the same seed order.
      margin: equivalence margin δ > 0 for the TOST, in the metric's units.
      higher_is_better: direction for P(A beats B).
      confidence: level of the intervals; α = 1 - confidence for every test and verdict.
      n_boot, seed: bootstrap resamples and seed, as in `summarize`.
      denominator: N when a and b are counts k/N: d is computed as (k_a - k_b)/N, exactly, so
        equal count differences are equal numbers (ties are ties, a constant shift has no spread).
      bounds: the range of the values (e.g. (0, 1)); the intervals of d are clipped to
        (lo - hi, hi - lo).

    Returns:
      A `PairedComparison`; see its attributes for the formulas. Two questions are answered
      separately: is there a difference (paired t-test at α: `difference_found`), and is it within
      the margin (the (1 - 2α) interval `tost_interval`: `margin_result`); `verdict` says both.
      With one pair, or when every difference is the same number to float64 resolution (in
      particular zero: "identical in all N pairs", with the bound on the share of seeds that could
      still differ), the tests are `None` and `note` gives the reason. Any other case SciPy finds
      degenerate also gives `None`, with SciPy's reason.

    Raises:
      ValueError: lengths differ, arrays empty or non-finite, not counts over `denominator`,
        margin not positive.
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
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: expected a finite number > 0, got {margin!r}")
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
    common = {
        "difference": difference,
        "n_identical": n_identical,
        "prob_a_beats_b": prob,
        "margin": float(margin),
        "higher_is_better": higher_is_better,
        "median_difference": difference.median,
        "alpha": alpha,
    }
    if n == 1 or _no_spread(d):
        c = difference.mean
        bound = None
        if n == 1:
            why = "identical in the 1 pair" if n_identical else f"1 pair, difference {c:.6g}"
            why += ": tests need at least 2 pairs"
        elif n_identical == n:
            bound = identical_share_bound(n, confidence)
            why = (
                f"identical in all {n} pairs: every difference is 0, tests not applicable; at "
                f"{100 * confidence:g}% confidence at most {100 * bound:.1f}% of seeds would give "
                f"different runs (1 − {alpha:g}^(1/{n}))"
            )
        else:
            exactly = "" if np.all(d == d[0]) else " to float64 resolution"
            why = f"all {n} differences equal {c:.6g}{exactly}: no spread, tests not applicable"
        if n == 1:
            label = "n/a"
        elif n_identical == n:
            label = "identical"
        else:
            label = f"same difference in every pair, {'within' if abs(c) < margin else 'outside'} margin"
        # With no spread the data settle the question exactly; one pair settles nothing.
        return PairedComparison(
            t_test_p=None,
            wilcoxon_p=None,
            tost_p=None,
            equivalent=n > 1 and abs(c) < margin,
            note=why,
            verdict=label,
            margin_result=None if n == 1 else ("within" if abs(c) < margin else "outside"),
            identical_share_bound=bound if n_identical == n and n > 1 else None,
            **common,
        )
    notes = []
    t_res, t_why = _quietly(lambda: sps.ttest_1samp(d, 0.0))
    w_p, w_n, w_method = wilcoxon_signed_rank(d)
    lower, lo_why = _quietly(lambda: sps.ttest_1samp(d, -margin, alternative="greater"))
    upper, up_why = _quietly(lambda: sps.ttest_1samp(d, margin, alternative="less"))
    for test, why in (("t-test", t_why), ("TOST", lo_why or up_why)):
        if why is not None:
            notes.append(f"{test} not applicable: {why}")
    p_lower, p_upper = _p(lower), _p(upper)
    tost = None if p_lower is None or p_upper is None else max(p_lower, p_upper)
    t_p = _p(t_res)
    sd = float(np.std(d, ddof=1))
    low, high = t_interval(float(np.mean(d)), sd / math.sqrt(n), n, 1.0 - 2.0 * alpha)
    tost_ci = (float(low), float(high))
    found = None if t_p is None else t_p < alpha
    margin_res = _margin_result(tost_ci, margin)
    return PairedComparison(
        t_test_p=t_p,
        wilcoxon_p=w_p,
        tost_p=tost,
        equivalent=tost is not None and tost < alpha,
        note="; ".join(notes) or None,
        wilcoxon_n=w_n,
        wilcoxon_method=w_method,
        difference_found=found,
        tost_interval=tost_ci,
        margin_result=margin_res,
        verdict=verdict(found, margin_res),
        **common,
    )


def _lookup(metric: str, table: Mapping[str, Any]) -> Any:
    """The entry for metric by its name, else by the first key it ends with; `None` if neither."""
    if metric in table:
        return table[metric]
    for kind, value in table.items():
        if metric.endswith(kind):
            return value
    return None


def _metric_margin(metric: str, margins: Mapping[str, float]) -> float:
    margin = _lookup(metric, margins)
    if margin is None:
        raise ValueError(
            f"margins: expected a margin for metric {metric!r} (by name or by a suffix such as "
            f"'accuracy'), got keys {sorted(margins)}"
        )
    return float(margin)


def _metric_bounds(metric: str, denominator: int | None) -> tuple[float, float] | None:
    """Accuracies (by name) and counts over N are shares, in [0, 1]."""
    return (0.0, 1.0) if denominator is not None or metric.endswith("accuracy") else None


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
) -> ComparisonStats:
    """Summarizes every metric of every arm; compares every other arm with the baseline, paired.

    Args:
      finals: arm name -> metric name -> per-seed values, shape (seeds,), the same seed order and
        the same metric names for every arm (e.g. "train_accuracy", "test_accuracy", "train_loss",
        "test_loss").
      baseline: the arm compared against (B); default the first arm.
      margins: equivalence margin per metric name or name suffix, merged over `DEFAULT_MARGINS`
        (0.01 for accuracies, 0.01 nats for losses).
      confidence, n_boot, seed: as in `summarize`.
      denominators: N per metric name or name suffix whose values are counts k/N (e.g.
        {"test_accuracy": 500}): the values are made exact (`exact_fractions`) before any
        statistic. Accuracies, and metrics with a denominator, have intervals clipped to [0, 1].
      primary_metric: the metric whose paired t-test p-values are Holm-adjusted over the arms;
        default `PRIMARY_METRIC` when present, else the first metric.

    Returns:
      A `ComparisonStats`. The direction of P(A beats B) follows `higher_is_better(metric)`. On the
      primary metric, `difference_found` and `verdict` use the Holm-adjusted p.

    Raises:
      ValueError: no arms, unknown baseline or primary metric, differing metric names or seed
        counts, a metric with no margin, non-finite values or values that are not counts over
        their denominator (the message names the arm and metric).
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
    if primary_metric is None:
        primary_metric = PRIMARY_METRIC if PRIMARY_METRIC in metrics else metrics[0]
    elif primary_metric not in metrics:
        raise ValueError(f"primary_metric: expected one of {list(metrics)}, got {primary_metric!r}")
    merged = {**DEFAULT_MARGINS, **(margins or {})}
    used = {m: _metric_margin(m, merged) for m in metrics}
    opts = {"confidence": confidence, "n_boot": n_boot, "seed": seed}
    summaries = tuple(
        ArmSummary(
            arm,
            m,
            summarize(
                arrays[arm, m],
                bounds=_metric_bounds(m, dens.get(m)),
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
                bounds=_metric_bounds(m, dens.get(m)),
                **opts,
            ),
        )
        for arm in arms
        if arm != baseline
        for m in metrics
    ]
    # Holm over the primary family: the primary test on the primary metric, one p per other arm.
    family = [i for i, ac in enumerate(comparisons) if ac.metric == primary_metric]
    tested = [i for i in family if comparisons[i].comparison.t_test_p is not None]
    adjusted = holm([comparisons[i].comparison.t_test_p for i in tested]) if tested else []
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
                verdict=verdict(found, c.margin_result),
                test_method=f"{PRIMARY_TEST}, Holm-adjusted over {len(tested)} arm(s)",
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
