"""The arrays the trainer consumes, whatever the source: features and target probabilities."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    """Arrays the trainer consumes (a pytree, so it can be a jit argument).

    x_train: (n_train, features) float32; y_train: (n_train, classes) float32 target probabilities
    (one-hot or soft); x_val, y_val likewise for the validation (the tutorial's test) set.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.y_train.shape[1])


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) integer labels -> (n, n_classes) float32 one-hot rows."""
    return np.eye(n_classes, dtype=np.float32)[labels]
