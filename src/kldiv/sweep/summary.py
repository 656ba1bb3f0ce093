"""A sweep's statistics per configuration: `kldiv compare`'s statistics over the stored runs, with
the best configuration (highest mean test accuracy over the paired seeds) as the baseline, so every
comparison reads "how much worse than the winner, and is that difference real".

Rules as in `kldiv compare`: a configuration that diverged on every seed is left out; the paired
statistics use the seeds where no compared configuration diverged; stuck and diverged runs are
named per configuration with their rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kldiv.sweep.store import StoredRuns

PRIMARY = "test_accuracy"


@dataclass(frozen=True)
class SweepSummary:
    """stats: `kldiv.stats.ComparisonStats` (baseline = winner); compared: configurations in the
    statistics, grid order; dropped: those that diverged on every seed; paired: (seeds,) bool over
    the stored seeds; failures: configuration -> {"stuck", "diverged"} -> seeds; finals: what the
    statistics used, configuration -> metric -> (paired seeds,)."""

    stats: Any
    compared: tuple[str, ...]
    dropped: tuple[str, ...]
    seeds: np.ndarray
    paired: np.ndarray
    failures: dict[str, dict[str, tuple[int, ...]]]
    finals: dict[str, dict[str, np.ndarray]]

    @property
    def winner(self) -> str:
        return self.stats.baseline

    @property
    def runner_up(self) -> str | None:
        """The configuration with the second-highest mean of the primary metric."""
        others = [c for c in self.compared if c != self.winner]
        if not others:
            return None
        return max(others, key=lambda c: (self.stats.summary(c, PRIMARY).mean, -others.index(c)))

    def winner_line(self) -> str:
        """'winner: NAME, test_accuracy 0.8240; ahead of the runner-up NAME (0.8200) by 0.0040
        (95% interval [..]; sign-flip p (Holm) = ..), over N paired seeds'."""
        best = self.stats.summary(self.winner, PRIMARY)
        line = f"winner: {self.winner}, mean {PRIMARY} {best.mean:.4f}"
        second = self.runner_up
        if second is None:
            return line + f" over {self.stats.n_seeds} seeds (the only configuration compared)"
        c = self.stats.comparison(second, PRIMARY)
        # the comparison is runner-up minus winner: the lead is its negation
        lead = 0.0 - c.difference.mean
        interval = c.difference.t_interval
        shown = f"[{-interval[1]:.4f}, {-interval[0]:.4f}]" if interval is not None else "no spread"
        p = self.stats.primary_p_holm.get(second)
        p_text = "n/a" if p is None else f"{p:.3g}"
        return (
            f"{line}; ahead of the runner-up {second} "
            f"({self.stats.summary(second, PRIMARY).mean:.4f}) by {lead:.4f} "
            f"(95% t interval {shown}; sign-flip p, Holm-adjusted = {p_text}; "
            f"{c.verdict}) over {self.stats.n_seeds} paired seeds"
        )


def summarize(
    runs: Mapping[str, StoredRuns],
    *,
    chance: float,
    n_rows: Mapping[str, int],
    margins: Mapping[str, float] | None = None,
) -> SweepSummary:
    """Statistics of every configuration's stored runs (every configuration on the same seeds).

    chance: the training set's most-common-class share (stuck rule); n_rows: {"train": N,
    "test": N}, the accuracies' denominators.

    Raises ValueError: configurations on different seeds, or no seed where every configuration
    that trained at all is healthy (the message says which).
    """
    from kldiv.arms import SHARED_METRICS, failures
    from kldiv.failures import FAILURE_RULES
    from kldiv.stats import compare_arms

    names = list(runs)
    seeds = runs[names[0]].seeds
    for name in names:
        if not np.array_equal(runs[name].seeds, seeds):
            raise ValueError(f"{name}: expected the seeds of {names[0]}, got other seeds")
    compared = [n for n in names if runs[n].healthy.any()]
    if not compared:
        raise ValueError(
            "every run of every configuration diverged: "
            + "; ".join(f"{n} at {_epochs(runs[n].diverged)}" for n in names)
        )
    paired = np.logical_and.reduce([runs[n].healthy for n in compared])
    if not paired.any():
        raise ValueError("no seed trained without diverging in every configuration that trained")
    metrics = [m for m in SHARED_METRICS if all(m in runs[n].final for n in compared)]
    finals = {n: {m: runs[n].final[m][paired] for m in metrics} for n in compared}
    means = {n: float(np.mean(finals[n][PRIMARY])) for n in compared}
    best = max(compared, key=lambda n: (means[n], -compared.index(n)))
    failed, _ = failures(dict(runs), chance, paired)
    stats = compare_arms(
        finals,
        baseline=best,
        margins=margins,
        seed=0,
        denominators={f"{s}_accuracy": n for s, n in n_rows.items()},
        primary_metric=PRIMARY,
        seeds=seeds[paired],
        failures={n: failed[n] for n in compared},
        failure_rules=FAILURE_RULES,
    )
    return SweepSummary(
        stats=stats,
        compared=tuple(compared),
        dropped=tuple(n for n in names if n not in compared),
        seeds=seeds,
        paired=paired,
        failures=failed,
        finals=finals,
    )


def summarize_with(
    runs: Mapping[str, StoredRuns], data: Any, margins: Mapping[str, float] | None = None
) -> SweepSummary:
    """`summarize` with the stuck rule's chance accuracy and the accuracies' denominators taken
    from the sweep's data (`kldiv.experiment.load`'s result; `kldiv.sweep.store.read_data`)."""
    from kldiv.failures import chance_accuracy

    n_rows = {"train": data.dataset.x_train.shape[0], "test": data.dataset.x_val.shape[0]}
    return summarize(
        runs, chance=chance_accuracy(data.labels_train), n_rows=n_rows, margins=margins
    )


def configuration_table(summary: SweepSummary, runs: Mapping[str, StoredRuns]) -> str:
    """One line per configuration (#k: its grid position, as in the figures): runs, diverged,
    stuck, mean and 95% t interval of the primary metric, its difference from the winner; the
    winner first, then by mean, then the configurations that diverged on every seed, marked so
    with their epochs."""
    stats = summary.stats
    order = sorted(summary.compared, key=lambda c: -stats.summary(c, PRIMARY).mean)
    width = max(len(n) for n in runs)
    header = (
        f"{'#':>3} {'configuration':<{width}}  {'runs':>5} {'div':>4} {'stuck':>5}  "
        f"{PRIMARY + ' mean':>18}  {'95% t interval':>17}  {'vs winner':>9}  p (Holm)"
    )
    lines = [header, "-" * len(header)]
    number = {n: f"#{i + 1}" for i, n in enumerate(runs)}
    for name in [*order, *summary.dropped]:
        r = runs[name]
        tag = f"{number[name]:>3} {name:<{width}}"
        n_div = int((~r.healthy).sum())
        n_stuck = len(summary.failures.get(name, {}).get("stuck", ()))
        if name in summary.dropped:
            lines.append(
                f"{tag}  {r.seeds.size:>5} {n_div:>4} {n_stuck:>5}  all diverged "
                f"({_epochs(r.diverged)}), left out"
            )
            continue
        s = stats.summary(name, PRIMARY)
        ci = "-" if s.t_interval is None else f"[{s.t_interval[0]:.4f}, {s.t_interval[1]:.4f}]"
        if name == summary.winner:
            diff, p = "winner", ""
        else:
            diff = f"{stats.comparison(name, PRIMARY).difference.mean:+.4f}"
            holm = stats.primary_p_holm.get(name)
            p = "n/a" if holm is None else f"{holm:.3g}"
        lines.append(
            f"{tag}  {r.seeds.size:>5} {n_div:>4} {n_stuck:>5}  {s.mean:>18.4f}  "
            f"{ci:>17}  {diff:>9}  {p}"
        )
    return "\n".join(lines)


def failure_lines(summary: SweepSummary, runs: Mapping[str, StoredRuns]) -> list[str]:
    """The failed runs named per configuration and kind with their seeds, then each kind's rule
    (`kldiv.failures`), as `kldiv compare` names them; empty when no run failed.

    Stuck runs on the paired seeds stay in every statistic; diverged runs (no finite values) and
    runs on seeds another configuration diverged on are left out of the statistics.
    """
    from kldiv.failures import FAILURE_RULES

    in_stats = {int(s) for s in summary.seeds[summary.paired]}
    lines: list[str] = []
    kinds: list[str] = []
    for name, r in runs.items():
        for kind, seeds in summary.failures.get(name, {}).items():
            if not seeds:
                continue
            if kind not in kinds:
                kinds.append(kind)
            if name in summary.dropped:
                lines.append(
                    f"{name}: all {r.seeds.size} runs {kind} ({_epochs(r.diverged)}), left out of "
                    "the statistics"
                )
                continue
            inside = [s for s in seeds if s in in_stats]
            outside = [s for s in seeds if s not in in_stats]
            if inside:
                lines.append(
                    f"{name}: {len(inside)} of {len(in_stats)} runs {kind} (seeds "
                    f"{_seed_list(inside)}), kept in every statistic"
                )
            if outside:
                lines.append(
                    f"{name}: {len(outside)} runs {kind} (seeds {_seed_list(outside)}), left "
                    "out of the statistics"
                )
    if not lines:
        return []
    rules = [f"Rule, {kind}: {FAILURE_RULES[kind]}." for kind in kinds]
    return ["Failed runs per configuration:", *[f"  {line}" for line in lines], *rules]


def _epochs(diverged: np.ndarray) -> str:
    """'epoch 3' or 'epochs 1-4': where runs became non-finite (`diverged`, 0 = healthy)."""
    at = diverged[diverged != 0]
    lo, hi = int(at.min()), int(at.max())
    return f"epoch {lo}" if lo == hi else f"epochs {lo}-{hi}"


def _seed_list(seeds: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, seeds[:limit]))
    return shown + (f", ... ({len(seeds) - limit} more)" if len(seeds) > limit else "")
