"""What a comparison of arms (`kldiv compare`, `kldiv sweep`) compares, and which of its runs failed.

An arm is any set of runs on shared seeds: a loss in `compare`, a configuration in `sweep`. Its
results need `seeds`, `final` (metric -> (seeds,)) and `diverged` ((seeds,), 0 = healthy), as a
`kldiv.engine.TrainResult` or a sweep's stored runs have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kldiv.failures import failed_seeds, stuck_runs

# Metrics every arm is tested on (`kldiv.evaluation`), whatever loss it trained with; an arm's own
# loss ("train_loss", "test_loss") is in that loss's units and is only summarized.
SHARED_METRICS = (
    "train_accuracy",
    "test_accuracy",
    "test_log_loss",
    "test_brier",
    "test_ece",
    "test_excess_loss",
)
OWN_METRICS = ("train_loss", "test_loss")


def shared(final: Mapping[str, Any]) -> list[str]:
    """The shared metrics present in `final`, in SHARED_METRICS order."""
    return [k for k in SHARED_METRICS if k in final]


def accuracy_of_healthy(result: Any) -> np.ndarray:
    """(runs,) final training accuracy, NaN for diverged runs: what the stuck rule reads (a
    diverged run's accuracy can be finite, the argmax of non-finite outputs picking a class, and
    it is a failure of its own kind, not a stuck run)."""
    accuracy = np.asarray(result.final["train_accuracy"], np.float64)
    return np.where(np.asarray(result.diverged) != 0, np.nan, accuracy)


def failures(
    results: Mapping[str, Any], chance: float, paired: Any
) -> tuple[dict[str, dict[str, tuple[int, ...]]], dict[str, np.ndarray]]:
    """arm -> {"stuck": seeds, "diverged": seeds} (`kldiv.failures`' rules), and the stuck flags
    per arm over the paired seeds (`paired`: (seeds,) bool).

    A run is one kind or the other, never both (`accuracy_of_healthy`): a diverged run is neither
    flagged stuck nor counted in the best arm's median.

    Raises ValueError: every run of every arm diverged (no accuracy for the stuck rule).
    """
    stuck = stuck_runs({n: accuracy_of_healthy(r) for n, r in results.items()}, chance)
    seeds = next(iter(results.values())).seeds
    diverged = failed_seeds({n: r.diverged != 0 for n, r in results.items()}, seeds)
    stuck_seeds = failed_seeds(stuck, seeds)
    out = {n: {"stuck": stuck_seeds[n], "diverged": diverged[n]} for n in results}
    return out, {n: np.asarray(f)[paired] for n, f in stuck.items()}
