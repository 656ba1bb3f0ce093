"""Statistics for multi-seed comparisons: summaries, paired tests, equivalence, JSON output.

A comparison has arms: the things compared (losses, configurations, ...), each run on the same
seeds, so that every other arm can be paired seed by seed with a baseline arm.

Every statistic that SciPy has comes from SciPy (`t.interval`, `bootstrap`, `ttest_rel`, `wilcoxon`,
`ttest_1samp`); this module adds the paired design, the degenerate cases and one result shape.

Degenerate inputs never raise or warn. A statistic that does not exist for the data is `None` and
the result's `note` says why: one value (no spread, no interval), all values equal (the intervals
collapse to the value, the tests are undefined), and the case that matters here, KL and
cross-entropy trained from the same seed, where every paired difference is exactly zero
("identical in all N pairs").
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
    "DEFAULT_MARGINS",
    "ArmComparison",
    "ArmSummary",
    "ComparisonStats",
    "PairedComparison",
    "Summary",
    "compare_arms",
    "compare_paired",
    "higher_is_better",
    "summarize",
    "t_interval",
    "to_jsonable",
]

# Equivalence margins by metric kind (the suffix of the metric name), reported with the results.
# Accuracy: 0.01, about the seed-to-seed spread of the tutorial's final accuracy (5 of 500).
# Loss: 0.01 nats, a few percent of the tutorial's final loss (~0.4 nats).
DEFAULT_MARGINS: Mapping[str, float] = {"accuracy": 0.01, "loss": 0.01}


@dataclass(frozen=True)
class Summary:
    """One sample of per-seed values, summarized.

    Attributes:
      n: number of values.
      mean: sample mean, x̄ = Σx / n.
      std: sample standard deviation (ddof = 1), s = sqrt(Σ(x - x̄)² / (n - 1)); `None` when n = 1.
      t_interval: x̄ ± t_{(1+c)/2, n-1} · s / √n, the `confidence`-level t interval for the mean;
        `None` when n = 1, (x̄, x̄) when all values are equal.
      bootstrap_interval: `scipy.stats.bootstrap` interval for the mean (`bootstrap_method`);
        `None` when n = 1, (x̄, x̄) when all values are equal.
      bootstrap_method: "BCa", or "percentile" where BCa is undefined for the data; `None` if not
        run.
      confidence: confidence level of both intervals.
      n_boot: bootstrap resamples.
      seed: seed of the bootstrap's `numpy.random.default_rng`.
      note: why a statistic is missing or degenerate; `None` when everything was computed.
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


def summarize(
    values: Any, *, confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> Summary:
    """Mean, standard deviation and two `confidence`-level intervals for the mean of values.

    Args:
      values: 1-D array of finite values, one per seed.
      confidence: level of both intervals.
      n_boot: bootstrap resamples.
      seed: seed of the bootstrap's `numpy.random.default_rng`; recorded in the result.

    Returns:
      A `Summary`: see its attributes for the formulas. With one value there is no spread and no
      interval (`None`, and `note` says so); with all values equal both intervals are (x̄, x̄).

    Raises:
      ValueError: empty, not 1-D, or non-finite values; confidence outside (0, 1); n_boot < 1.
    """
    x = _checked("values", values)
    _check_options(confidence, n_boot)
    n = x.size
    # Equal values: x[0] is their exact mean (np.mean may be an ulp off).
    constant = bool(np.all(x == x[0]))
    mean = float(x[0]) if constant else float(np.mean(x))
    common = {"n": n, "mean": mean, "confidence": confidence, "n_boot": n_boot, "seed": seed}
    if n == 1:
        return Summary(
            std=None,
            t_interval=None,
            bootstrap_interval=None,
            bootstrap_method=None,
            note="n = 1: no spread and no interval",
            **common,
        )
    std = float(np.std(x, ddof=1))
    if constant:
        # Every resample is the same sample: nothing to resample, the interval is the value.
        return Summary(
            std=0.0,
            t_interval=(mean, mean),
            bootstrap_interval=(mean, mean),
            bootstrap_method=None,
            note=f"all {n} values equal: intervals collapse to the value",
            **common,
        )
    low, high = t_interval(mean, std / math.sqrt(n), n, confidence)
    boot, method, problem = _bootstrap(x, confidence, n_boot, seed)
    return Summary(
        std=std,
        t_interval=(float(low), float(high)),
        bootstrap_interval=boot,
        bootstrap_method=method,
        note=None if problem is None else f"bootstrap not applicable: {problem}",
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


def compare_paired(
    a: Any,
    b: Any,
    *,
    margin: float,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compares paired per-seed values a[i], b[i] (same seed i) through the differences d = a - b.

    Args:
      a, b: 1-D arrays of finite values of equal length, in the same seed order.
      margin: equivalence margin δ > 0 for the TOST, in the metric's units.
      higher_is_better: direction for P(A beats B).
      confidence: level of the intervals; α = 1 - confidence for the TOST verdict.
      n_boot, seed: bootstrap resamples and seed, as in `summarize`.

    Returns:
      A `PairedComparison`; see its attributes for the formulas. With one pair, or when every
      difference is the same number to float64 resolution (in particular zero: "identical in all N
      pairs"), the tests are `None` and `note` gives the reason. Any other case SciPy finds
      degenerate also gives `None`, with SciPy's reason.

    Raises:
      ValueError: lengths differ, arrays empty or non-finite, margin not positive.
    """
    x, y = _checked("a", a), _checked("b", b)
    if x.shape != y.shape:
        raise ValueError(f"b: expected the same number of seeds as a ({x.size}), got {y.size}")
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: expected a finite number > 0, got {margin!r}")
    d = x - y
    n = d.size
    n_identical = int(np.count_nonzero(x == y))
    better = x > y if higher_is_better else x < y
    prob = float(np.mean(better + 0.5 * (x == y)))
    difference = summarize(d, confidence=confidence, n_boot=n_boot, seed=seed)
    common = {
        "difference": difference,
        "n_identical": n_identical,
        "prob_a_beats_b": prob,
        "margin": float(margin),
        "higher_is_better": higher_is_better,
    }
    if n == 1 or _no_spread(d):
        c = difference.mean
        if n == 1:
            why = "identical in the 1 pair" if n_identical else f"1 pair, difference {c:.6g}"
            why += ": tests need at least 2 pairs"
        elif n_identical == n:
            why = f"identical in all {n} pairs: every difference is 0, tests not applicable"
        else:
            exactly = "" if np.all(d == d[0]) else " to float64 resolution"
            why = f"all {n} differences equal {c:.6g}{exactly}: no spread, tests not applicable"
        # With no spread the data settle the question exactly; one pair settles nothing.
        return PairedComparison(
            t_test_p=None,
            wilcoxon_p=None,
            tost_p=None,
            equivalent=n > 1 and abs(c) < margin,
            note=why,
            **common,
        )
    notes = []
    t_res, t_why = _quietly(lambda: sps.ttest_rel(x, y))
    w_res, w_why = _quietly(lambda: sps.wilcoxon(d))
    lower, lo_why = _quietly(lambda: sps.ttest_1samp(d, -margin, alternative="greater"))
    upper, up_why = _quietly(lambda: sps.ttest_1samp(d, margin, alternative="less"))
    for test, why in (("t-test", t_why), ("Wilcoxon", w_why), ("TOST", lo_why or up_why)):
        if why is not None:
            notes.append(f"{test} not applicable: {why}")
    p_lower, p_upper = _p(lower), _p(upper)
    tost = None if p_lower is None or p_upper is None else max(p_lower, p_upper)
    return PairedComparison(
        t_test_p=_p(t_res),
        wilcoxon_p=_p(w_res),
        tost_p=tost,
        equivalent=tost is not None and tost < 1.0 - confidence,
        note="; ".join(notes) or None,
        **common,
    )


def _metric_margin(metric: str, margins: Mapping[str, float]) -> float:
    if metric in margins:
        return float(margins[metric])
    for kind, margin in margins.items():
        if metric.endswith(kind):
            return float(margin)
    raise ValueError(
        f"margins: expected a margin for metric {metric!r} (by name or by a suffix such as "
        f"'accuracy'), got keys {sorted(margins)}"
    )


def compare_arms(
    finals: Mapping[str, Mapping[str, Any]],
    *,
    baseline: str | None = None,
    margins: Mapping[str, float] | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
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

    Returns:
      A `ComparisonStats`. The direction of P(A beats B) follows `higher_is_better(metric)`.

    Raises:
      ValueError: no arms, unknown baseline, differing metric names or seed counts, a metric
        with no margin, or non-finite values (the message names the arm and metric).
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
    arrays = {
        (arm, m): _checked(f"finals[{arm!r}][{m!r}]", finals[arm][m])
        for arm in arms
        for m in metrics
    }
    n_seeds = arrays[arms[0], metrics[0]].size
    for key, arr in arrays.items():
        if arr.size != n_seeds:
            raise ValueError(
                f"finals[{key[0]!r}][{key[1]!r}]: expected {n_seeds} seeds (as "
                f"finals[{arms[0]!r}][{metrics[0]!r}]), got {arr.size}"
            )
    merged = {**DEFAULT_MARGINS, **(margins or {})}
    used = {m: _metric_margin(m, merged) for m in metrics}
    opts = {"confidence": confidence, "n_boot": n_boot, "seed": seed}
    summaries = tuple(
        ArmSummary(arm, m, summarize(arrays[arm, m], **opts)) for arm in arms for m in metrics
    )
    comparisons = tuple(
        ArmComparison(
            arm,
            baseline,
            m,
            compare_paired(
                arrays[arm, m],
                arrays[baseline, m],
                margin=used[m],
                higher_is_better=higher_is_better(m),
                **opts,
            ),
        )
        for arm in arms
        if arm != baseline
        for m in metrics
    )
    return ComparisonStats(
        arms=arms,
        baseline=baseline,
        metrics=metrics,
        margins=used,
        n_seeds=n_seeds,
        summaries=summaries,
        comparisons=comparisons,
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
