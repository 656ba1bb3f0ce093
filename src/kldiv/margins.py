"""What a metric name says for a comparison: its direction and its default equivalence margin,
and margins from the command line. Kept apart from the statistics so the CLI can describe and
parse margins without importing SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from kldiv.checks import ConfigError

# Equivalence margins by metric kind (the suffix of the metric name), reported with the results.
# Accuracy: 0.01, about the seed-to-seed spread of the tutorial's final accuracy (5 of 500).
# Error: 0.01, as accuracy (an error rate is 1 - accuracy, so the same difference).
# Loss: 0.01 nats, a few percent of the tutorial's final loss (~0.4 nats).
# Brier: 0.01, about 4% of the multiclass Brier score Σ(q - y)² of a model at the tutorial's 82%
#   accuracy (~0.25), the same relative size as the loss margin.
# ECE: 0.01, one percentage point of calibration error, in the units of accuracy it is measured in.
# KL: 0.01 nats, as loss (a KL divergence from a reference is an excess log loss, e.g. a student's
#   from its teacher).
# Any other metric has no default (AUC, F1, a regression error in the user's units, ...): its margin
# questions are not asked unless a margin is given; `smallest_margin` still says what the data show.
DEFAULT_MARGINS: Mapping[str, float] = {
    "accuracy": 0.01,
    "error": 0.01,
    "loss": 0.01,
    "brier": 0.01,
    "ece": 0.01,
    "kl": 0.01,
}

# Metric names ending in one of these are lower-is-better; every other metric is higher-is-better.
LOWER_IS_BETTER: tuple[str, ...] = ("loss", "error", "brier", "ece", "kl")


def higher_is_better(metric: str) -> bool:
    """Direction of a metric by name: lower is better for names ending in one of `LOWER_IS_BETTER`
    ("loss", "error", "brier", "ece", "kl"), else higher."""
    return not metric.endswith(LOWER_IS_BETTER)


def parse_margins(text: str) -> dict[str, float]:
    """Equivalence margins from a command-line value.

    "0.01" is the margin for accuracies ({"accuracy": 0.01}); "accuracy=0.01,loss=0.02,
    test_brier=0.005" sets one margin per key, a metric name or a name suffix (see `compare_arms`:
    an exact name wins over a suffix, a longer suffix over a shorter one). Margins are finite
    numbers > 0 in the metric's units.

    Raises:
      ConfigError: (field "margin", a ValueError) an empty value or entry, a key that is not a
        name of letters, digits and underscores, a repeated key, or a margin that is not a finite
        number > 0; the message names what was expected and what was got.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError("margin", f"expected a number or metric=number pairs, got {text!r}")
    if "=" not in raw:
        return {"accuracy": _margin_value("accuracy", raw)}
    out: dict[str, float] = {}
    for entry in raw.split(","):
        key, eq, value = (part.strip() for part in entry.partition("="))
        if not eq or not key or not value:
            raise ConfigError(
                "margin", f"expected metric=number pairs separated by commas, got {entry.strip()!r}"
            )
        if not key.replace("_", "a").isalnum() or not key.isascii():
            raise ConfigError(
                "margin", f"expected a metric name (letters, digits, _) before '=', got {key!r}"
            )
        if key in out:
            raise ConfigError("margin", f"expected each metric once, got {key!r} twice")
        out[key] = _margin_value(key, value)
    return out


def _margin_value(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError("margin", f"expected a finite number > 0 for {key}, got {text!r}")
    return value


# Metrics that are shares (in [0, 1]): a margin of 1 or more cannot be exceeded. Agreement: the
# share of rows where two models (a student and its teacher) predict the same class.
SHARE_METRICS: tuple[str, ...] = ("accuracy", "error", "ece", "agreement")


def check_margins(margins: Mapping[str, float], metrics: tuple[str, ...] | list[str]) -> None:
    """Every key of `margins` names one of `metrics` or ends some of them, and a share's margin
    is below 1.

    Raises:
      ConfigError: (field "margin") a key that matches no metric (a misspelling would otherwise be
        ignored silently), or a margin of a share metric that is >= 1.
    """
    for key, value in margins.items():
        matched = [m for m in metrics if m == key or m.endswith(key)]
        if not matched:
            raise ConfigError(
                "margin",
                f"expected metric names or name endings among {', '.join(metrics)}, got {key!r}",
            )
        if any(m.endswith(SHARE_METRICS) for m in matched) and value >= 1:
            raise ConfigError(
                "margin", f"expected a margin below 1 for {key} (a share), got {value:g}"
            )
