"""Objectives: what a run minimises and what it measures, per example.

An objective names its metrics (`metric_names`, the first is always "loss", the value minimised);
those names become the history keys (`loss`, `accuracy`, `val_loss`, `val_accuracy` for the
classifier, Keras' names) and the final metrics (`train_loss`, ..., `test_accuracy`). Called as
`objective(model, params, x, y, key)` it returns each metric per example, shape (rows,); the
training step averages them over a batch's real rows and differentiates the mean "loss". `key` is a
per-step typed PRNG key for objectives with `needs_key` (a VAE's reparameterisation), else None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from kldiv.checks import ConfigError
from kldiv.losses import get_loss
from kldiv.model import MLP, Params

# Losses that are +inf wherever a target probability is 0, whatever the logits: a softmax is never
# exactly 0, so KL(q || t) has a term q_i log(q_i / 0) = +inf for every zero target t_i.
FULL_SUPPORT_LOSSES = frozenset({"reverse_kl"})


@dataclass(frozen=True)
class Classifier:
    """Softmax classification against target distributions (one-hot or soft).

    loss: a training-loss name from `kldiv.losses.LOSSES` (canonical), applied to the logits and
    the target probabilities: `loss(logits, targets, axis=axis)` per row. accuracy: 1 where the
    predicted class is the target's most probable class (ties: the lowest index), else 0.
    """

    loss: str
    metric_names: ClassVar[tuple[str, ...]] = ("loss", "accuracy")
    # Metrics whose per-example values are 0 or 1: their means are counts over the rows, k / n.
    count_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    needs_key: ClassVar[bool] = False

    def metrics(self, logits: jax.Array, targets: jax.Array, *, axis: int = -1) -> dict[str, Any]:
        """Per-example metrics from logits and targets of equal shape; `axis` is the class axis."""
        per_example = get_loss(self.loss)(logits, targets, axis=axis)
        hits = jnp.argmax(logits, axis=axis) == jnp.argmax(targets, axis=axis)
        return {"loss": per_example, "accuracy": hits.astype(per_example.dtype)}

    def check_targets(self, targets: Any) -> None:
        """Refuse targets this loss cannot train on: a loss in FULL_SUPPORT_LOSSES is infinite on
        every row with a zero probability (one-hot labels have them on every row), so no learning
        rate trains it.

        Raises:
          ConfigError("loss", ...): the loss needs full support and some target probability is 0.
        """
        if self.loss in FULL_SUPPORT_LOSSES and bool(np.any(np.asarray(targets) == 0)):
            raise ConfigError(
                "loss",
                f"{self.loss} is infinite where a target probability is 0 (one-hot labels); it "
                "trains only on targets with full support, such as soft labels",
            )

    def __call__(
        self, model: MLP, params: Params, x: jax.Array, y: jax.Array, key: jax.Array | None
    ) -> dict[str, Any]:
        del key  # deterministic
        return self.metrics(model.apply(params, x), y)


def history_keys(metric_names: tuple[str, ...]) -> tuple[str, ...]:
    """Keras' history names: the training running means, then `val_` of each."""
    return (*metric_names, *(f"val_{m}" for m in metric_names))


def final_keys(metric_names: tuple[str, ...]) -> tuple[str, ...]:
    """Final metrics of the returned weights: `train_` of each, then `test_` of each."""
    return (*(f"train_{m}" for m in metric_names), *(f"test_{m}" for m in metric_names))
