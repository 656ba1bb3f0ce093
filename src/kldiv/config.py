"""Frozen configuration for the tutorial experiment: every default is the tutorial's, as a named field.

`BlobsConfig` describes the data, `TrainConfig` the model and its training. Both are validated on
construction, so a bad value fails at the edge with one message naming the field, what was expected and
what was received; both are hashable, so a `TrainConfig` can be a static argument of a jitted program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

INITIALIZERS = ("he_uniform", "glorot_uniform", "lecun_uniform")
ACTIVATIONS = ("relu", "tanh", "sigmoid")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value}")


def _check_real(name: str, value: Any, low: float, high: float, *, open_low: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    bad_low = value <= low if open_low else value < low
    if bad_low or value > high or value != value:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name}: expected a number in {bracket}{low}, {high}], got {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: expected one of {listed}; got {value!r}")


@dataclass(frozen=True)
class BlobsConfig:
    """`sklearn.datasets.make_blobs` arguments and the train/test split of the tutorial.

    The first `n_train` rows train; the rest are the test set, which is also the per-epoch validation set.
    """

    n_samples: int = 1000
    centers: int = 3
    n_features: int = 2
    cluster_std: float = 2.0
    center_box: tuple[float, float] = (-10.0, 10.0)
    random_state: int = 2
    n_train: int = 500

    def __post_init__(self) -> None:
        _check_int("n_samples", self.n_samples, 2)
        _check_int("centers", self.centers, 2)
        _check_int("n_features", self.n_features, 1)
        _check_real("cluster_std", self.cluster_std, 0.0, float("inf"), open_low=True)
        _check_int("random_state", self.random_state, 0)
        _check_int("n_train", self.n_train, 1)
        if self.n_train >= self.n_samples:
            raise ValueError(
                f"n_train: expected fewer than n_samples={self.n_samples} rows, got {self.n_train}"
            )
        low, high = self.center_box
        if not low < high:
            raise ValueError(
                f"center_box: expected (low, high) with low < high, got {self.center_box}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """The model and how it is trained.

    Fields that change shapes or code (`loss`, `hidden`, `batch_size`, `epochs`, initialisers,
    `activation`) are compiled into the program; `learning_rate` and `momentum` are only the defaults of
    the per-run numbers that ride along as traced values (`kldiv.train.Hyper`).

    Defaults: the tutorial's Keras model, Dense(50, relu, he_uniform) -> Dense(3, softmax,
    glorot_uniform), zero biases, SGD(learning_rate=0.01, momentum=0.9), batch 32 reshuffled each
    epoch, 100 epochs, loss 'kullback_leibler_divergence'.
    """

    loss: str = "kullback_leibler_divergence"
    hidden: tuple[int, ...] = (50,)
    activation: str = "relu"
    hidden_init: str = "he_uniform"
    output_init: str = "glorot_uniform"
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 0.01
    momentum: float = 0.9
    shuffle: bool = True

    def __post_init__(self) -> None:
        from kldiv.losses import canonical_loss_name

        canonical_loss_name(self.loss)  # raises with the list of choices
        if not isinstance(self.hidden, tuple):
            raise TypeError(f"hidden: expected a tuple of layer widths, got {self.hidden!r}")
        for width in self.hidden:
            _check_int("hidden", width, 1)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("hidden_init", self.hidden_init, INITIALIZERS)
        _check_choice("output_init", self.output_init, INITIALIZERS)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_real("learning_rate", self.learning_rate, 0.0, float("inf"), open_low=True)
        _check_real("momentum", self.momentum, 0.0, 1.0, open_low=False)
        if not isinstance(self.shuffle, bool):
            raise TypeError(f"shuffle: expected True or False, got {self.shuffle!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def to_dict(config: BlobsConfig | TrainConfig) -> dict[str, Any]:
    """JSON-ready fields of a config (tuples become lists)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }
