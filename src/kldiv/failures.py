"""Failed runs, by a stated rule: stuck (never learned) and diverged (became non-finite).

A comparison's mean ± std can hide failed seeds (11 of 30 runs collapsed to 0.55 accuracy moved
the mean by 0.1 while the median moved by 0.004). The report names them, per arm and kind, with
the rule that defines the kind; the failed runs stay in every statistic, since dropping the runs
an arm fails on would make it look better than it is. This module has the rules and the
classification; `kldiv.stats.compare_arms` takes the result (`failures`, `failure_rules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "DIVERGED_RULE",
    "FAILURE_RULES",
    "STUCK_FRACTION",
    "STUCK_RULE",
    "chance_accuracy",
    "failed_seeds",
    "stuck_runs",
]

# Half the gain: with 3 balanced classes a run that never predicts one class reaches at most
# (2/3)·b of a best accuracy b, a gain over chance of (2b - 1)/(3b - 1) of the best gain, which is
# below 1/2 for every b < 1 (0.44 at the tutorial's b = 0.83; its collapsed runs sit at 0.54-0.55,
# below the rule's 0.58, and its healthy runs at 0.77 and above). A healthy but weaker arm needs
# to lose half of what the best arm learned before it counts as stuck.
STUCK_FRACTION = 0.5

STUCK_RULE = (
    "final training accuracy gained less than half of what the median run of the best arm "
    "gained over chance: acc − chance < ½·(best median − chance), chance = the share of the "
    "most common class in the training set"
)
DIVERGED_RULE = (
    "a history value, a final metric or a weight became non-finite (NaN or ±inf) during training"
)
FAILURE_RULES: Mapping[str, str] = {"stuck": STUCK_RULE, "diverged": DIVERGED_RULE}


def chance_accuracy(labels: Any) -> float:
    """The accuracy of always predicting the most common class: its share of `labels`.

    Args:
      labels: class labels, shape (examples,) of ints, or one-hot/probability targets, shape
        (examples, classes) (the class of a row is its argmax).

    Raises:
      ValueError: no labels, or more than two dimensions.
    """
    y = np.asarray(labels)
    if y.ndim == 2:
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(
            f"labels: expected shape (examples,) or (examples, classes), got {np.shape(labels)}"
        )
    _, counts = np.unique(y, return_counts=True)
    return float(counts.max()) / y.size


def stuck_runs(
    train_accuracy: Mapping[str, Any], chance: float, *, fraction: float = STUCK_FRACTION
) -> dict[str, np.ndarray]:
    """Which runs are stuck: final training accuracy gained less than `fraction` of what the median
    run of the best arm gained over chance (`STUCK_RULE`).

        stuck = acc - chance < fraction·(best - chance),
        best = max over arms of the median final training accuracy (finite runs only).

    When no arm's median run beats chance (best ≤ chance) there is no learned reference, and a run
    is stuck when it does not beat chance (acc ≤ chance). Non-finite accuracies (diverged runs)
    are not stuck: they are a failure of their own kind.

    Args:
      train_accuracy: arm -> final training accuracy per run, shape (runs,), in [0, 1].
      chance: the share of the most common class in the training set (`chance_accuracy`), in
        [0, 1]; at 1 (every row's most probable class is the same) accuracy cannot tell a run
        that learned from one that did not, and no run is stuck.
      fraction: the share of the best arm's gain a run must reach, in (0, 1).

    Returns:
      arm -> bool array, shape (runs,), in the input order.

    Raises:
      ValueError: no arms, a non-1-D or empty array, no finite accuracy at all, chance outside
        [0, 1], fraction outside (0, 1).
    """
    if not 0.0 <= chance <= 1.0:
        raise ValueError(f"chance: expected a share in [0, 1], got {chance!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a share in (0, 1), got {fraction!r}")
    if not train_accuracy:
        raise ValueError("train_accuracy: expected at least one arm, got none")
    acc = {}
    for arm, values in train_accuracy.items():
        x = np.asarray(values, dtype=float)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(
                f"train_accuracy[{arm!r}]: expected a non-empty 1-D array, got shape {x.shape}"
            )
        acc[arm] = x
    medians = [float(np.median(x[np.isfinite(x)])) for x in acc.values() if np.isfinite(x).any()]
    if not medians:
        raise ValueError("train_accuracy: expected some finite accuracy, got none in any arm")
    gain = max(medians) - chance
    if chance == 1.0:
        return {arm: np.zeros(x.shape, bool) for arm, x in acc.items()}
    out = {}
    for arm, x in acc.items():
        finite = np.isfinite(x)
        below = x - chance < fraction * gain if gain > 0 else x <= chance
        out[arm] = finite & below
    return out


def failed_seeds(flags: Mapping[str, Any], seeds: Any) -> dict[str, tuple[int, ...]]:
    """arm -> the seeds whose runs are flagged, from arm -> bool array in seed order.

    Args:
      flags: arm -> bool array, shape (runs,) (e.g. from `stuck_runs`, or a runner's
        `diverged != 0`).
      seeds: the seed of each run, shape (runs,), the same for every arm.

    Raises:
      ValueError: a flag array whose shape is not that of `seeds`.
    """
    s = np.asarray(seeds).reshape(-1)
    out = {}
    for arm, f in flags.items():
        mask = np.asarray(f, dtype=bool)
        if mask.shape != s.shape:
            raise ValueError(
                f"flags[{arm!r}]: expected shape {s.shape} (one flag per seed), got {mask.shape}"
            )
        out[arm] = tuple(int(x) for x in s[mask])
    return out
