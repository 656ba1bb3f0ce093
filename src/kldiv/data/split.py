"""Train/test splits and feature standardization, both fitted from the training data alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from kldiv.checks import ConfigError, ConfigTypeError, check_int, check_real


def stratified_split(
    labels: np.ndarray, test_frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and test so that each class is represented in proportion.

    Within each class c (ascending) of n_c rows, a permutation drawn from
    `np.random.default_rng(seed)` picks round_half_up(test_frac * n_c) test rows, but never all of
    them: every class keeps at least one training row. The same labels, fraction and seed give the
    same split on every machine.

    Args:
      labels: (rows,) integer class of each row, >= 0.
      test_frac: fraction of each class that goes to test, in (0, 1).
      seed: the data seed, an integer in [0, 2**32 - 1].

    Returns:
      (train_idx, test_idx): sorted int64 row indices, disjoint, together every row.

    Raises:
      ConfigError('test_frac'): the test set would be empty (too few rows for the fraction); the
        message gives the row counts.
    """
    check_real("test_frac", test_frac, 0.0, 1.0, open_low=True, open_high=True)
    check_int("seed", seed, 0, 2**32 - 1)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise ConfigTypeError(
            "labels", f"expected a 1-D array of integers >= 0, got {labels.dtype} {labels.shape}"
        )
    rng = np.random.default_rng(seed)
    test_parts = []
    counts = np.bincount(labels) if labels.size else np.zeros(0, np.int64)
    for c in np.flatnonzero(counts):
        rows = np.flatnonzero(labels == c)
        n_test = min(math.floor(test_frac * rows.size + 0.5), rows.size - 1)
        test_parts.append(rng.permutation(rows)[:n_test])
    test_idx = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, np.int64)
    if test_idx.size == 0:
        sizes = counts[counts > 0]
        shown = ", ".join(str(n) for n in sizes[:10]) + (", ..." if sizes.size > 10 else "")
        raise ConfigError(
            "test_frac",
            f"expected a fraction that leaves at least one test row while every class keeps a "
            f"training row, got {test_frac} of {labels.size} rows (classes of {shown} rows)",
        )
    in_test = np.zeros(labels.size, dtype=bool)
    in_test[test_idx] = True
    return np.flatnonzero(~in_test).astype(np.int64), test_idx.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature centring and scaling, x -> (x - mean) / scale, fitted on the training split.

    mean, scale: (features,) float32. Stored with the model (`to_dict`), so predictions transform
    their inputs exactly as training did.
    """

    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "scale"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.ndim != 1:
                raise ConfigTypeError(name, f"expected a 1-D float32 array, got {value!r}")
            if not np.isfinite(value).all():
                raise ConfigError(name, "expected finite numbers, got a NaN or infinity")
        if self.mean.shape != self.scale.shape:
            raise ConfigError(
                "scale", f"expected {self.mean.size} values (one per mean), got {self.scale.size}"
            )
        if not (self.scale > 0).all():
            raise ConfigError("scale", "expected numbers > 0")

    @classmethod
    def fit(cls, x_train: np.ndarray) -> Standardizer:
        """Mean and population standard deviation (ddof 0) of each column of (rows, features)
        `x_train`, computed in float64 and rounded to float32, the formula of scikit-learn's
        StandardScaler. A column whose training values are all equal gets scale 1: it carries no
        information, dividing by 0 would turn it into NaN, and with 1 it stays centred at 0 while a
        different value at prediction time stays finite."""
        x = np.asarray(x_train, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ConfigError("x_train", f"expected a (rows, features) array, got {x.shape}")
        std = x.std(axis=0)
        scale = np.where(std == 0, 1.0, std)
        return cls(x.mean(axis=0).astype(np.float32), scale.astype(np.float32))

    @property
    def n_features(self) -> int:
        return int(self.mean.size)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(rows, features) -> (rows, features) float32, (x - mean) / scale in float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ConfigError(
                "x", f"expected (rows, {self.n_features}) features to standardize, got {x.shape}"
            )
        return (x - self.mean) / self.scale

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists of floats (float32 -> float is exact, so `from_dict` restores the bits)."""
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        """Inverse of `to_dict`."""
        if not isinstance(d, dict) or set(d) != {"mean", "scale"}:
            raise ConfigTypeError("standardizer", f"expected keys 'mean' and 'scale', got {d!r}")
        arrays = {}
        for name in ("mean", "scale"):
            values = d[name]
            if not isinstance(values, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ):
                raise ConfigTypeError(name, f"expected a list of numbers, got {values!r}")
            with np.errstate(over="ignore"):  # beyond float32: infinite, refused just below
                arrays[name] = np.array(values, dtype=np.float32)
        return cls(arrays["mean"], arrays["scale"])
