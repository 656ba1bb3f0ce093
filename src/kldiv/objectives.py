"""Objectives: what a run minimises and what it measures, per example.

`Classifier` trains on target probabilities; `Distiller` trains a student on a teacher's soft
targets and hard labels (`objective_of` picks one for a `kldiv.config.TrainConfig`). Each reads
the number of classes from its targets' width (`n_classes`) and says which targets the metrics
every objective shares are scored against (`evaluation_targets`).

An objective names its metrics (`metric_names`, the first is always "loss", the value minimised);
those names become the history keys (`loss`, `accuracy`, `val_loss`, `val_accuracy` for the
classifier, Keras' names) and the final metrics (`train_loss`, ..., `test_accuracy`). Called as
`objective(model, params, x, y, key, epoch)` it returns each metric per example, shape (rows,);
the training step averages them over a batch's real rows and differentiates the mean "loss". `key`
is a typed PRNG key per step and per evaluation for objectives with `needs_key` (a VAE's
reparameterisation), else None; `epoch` is the number of epochs completed before a training step
((), int32; a schedule such as a VAE's KL warm-up reads it), None in an evaluation.

`VariationalBound` is not a classifier (`classifies` is False): it reconstructs its inputs, and
the metrics every classifier shares (`kldiv.evaluation`) do not apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from kldiv.checks import ConfigError
from kldiv.config import VAEConfig
from kldiv.gaussian import gaussian_kl_divergence
from kldiv.losses import get_distillation_loss, get_loss
from kldiv.model import MLP, VAE, Params

# A classifier's runs per chunk on the generic path: one. A run alone through XLA's dot kernels is
# about as fast per run as chunks of 25 vmapped runs (one core, per run: 2-200-3 40 and 50 ms,
# 64-200-10 284 and 259 ms, 2-1000-3 158 and 154 ms), and a seed alone pays for no padding runs.
GENERIC_CHUNK = 1
# Losses that are +inf wherever a target probability is 0, whatever the logits: a softmax is never
# exactly 0, so KL(q || t) has a term q_i log(q_i / 0) = +inf for every zero target t_i.
FULL_SUPPORT_LOSSES = frozenset({"reverse_kl"})


class _OnLogits:
    """An objective computed from an MLP's logits alone: deterministic, the same in every epoch."""

    def __call__(
        self,
        model: MLP,
        params: Params,
        x: jax.Array,
        y: jax.Array,
        key: jax.Array | None,
        epoch: jax.Array | None,
    ) -> dict[str, Any]:
        del key, epoch
        return self.metrics(model.apply(params, x), y)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Classifier(_OnLogits):
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
    classifies: ClassVar[bool] = True
    # runs per chunk on the generic path (fixed: it decides the order of a batched kernel's sums)
    generic_chunk: ClassVar[int] = GENERIC_CHUNK

    @staticmethod
    def n_classes(width: int) -> int:
        """K, from the targets' width: the targets are class probabilities."""
        return width

    def evaluation_targets(self, targets: np.ndarray) -> np.ndarray:
        """What the shared metrics score against (`kldiv.evaluation`): the targets themselves."""
        return targets

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


@dataclass(frozen=True)
class Distiller(_OnLogits):
    """A student distilled from a teacher's soft targets, mixed with (some of) the hard labels.

    Targets: (rows, 2K + 1) for K classes (`distillation_targets` packs them; the class axis is
    `axis`): the teacher's log-probabilities at temperature 1 (K), the row's true class one-hot
    (K), and the row's hard-label weight h (1). Per row, with the student's logits z:

        soft = T² · D(softmax(ℓ/T), softmax(z/T))      (`kldiv.losses.get_distillation_loss`)
        hard = h · hard_loss(z, y)
        loss = soft_weight · soft + (1 - soft_weight) · hard

    (ℓ/T gives the teacher's softmax at T: a softmax ignores the log-partition shift.) The weight h
    puts the hard term on the labelled rows only: h = n / n_labelled on the n_labelled rows whose
    label the student may see, 0 on the others, so the mean of `loss` over all n rows is
    soft_weight · mean(soft) + (1 - soft_weight) · (the mean of hard_loss over the labelled rows);
    on a set where every row is labelled h = 1. The true class of an unlabelled row is never
    trained on; it scores `accuracy` (1 where the predicted class is the true class) and the
    shared metrics (`evaluation_targets`). With soft_weight 0 the loss is the hard term alone (the
    same student trained from scratch on the labelled rows, same data order); with soft_weight 1
    the soft term alone. Metrics: "loss", "accuracy", "soft_loss" (T² · D), "hard_loss" (h ·
    hard_loss), each per row.
    """

    hard_loss: str
    temperature: float
    soft_weight: float
    direction: str
    beta: float | None = None
    metric_names: ClassVar[tuple[str, ...]] = ("loss", "accuracy", "soft_loss", "hard_loss")
    count_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    needs_key: ClassVar[bool] = False
    classifies: ClassVar[bool] = True
    # runs per chunk on the generic path (fixed: it decides the order of a batched kernel's sums)
    generic_chunk: ClassVar[int] = GENERIC_CHUNK

    @classmethod
    def of(cls, loss: str, distillation: Any) -> Distiller:
        """From a hard-label loss name and a `kldiv.config.Distillation`."""
        d = distillation
        return cls(loss, d.temperature, d.soft_weight, d.direction, d.beta)

    @staticmethod
    def n_classes(width: int) -> int:
        """K, from the targets' width 2K + 1."""
        return (width - 1) // 2

    def evaluation_targets(self, targets: np.ndarray) -> np.ndarray:
        """The true classes, one-hot (rows, K), from (rows, 2K + 1) targets."""
        k = self.n_classes(targets.shape[1])
        return targets[:, k : 2 * k]

    def metrics(self, logits: jax.Array, targets: jax.Array, *, axis: int = -1) -> dict[str, Any]:
        """Per-example metrics from logits (..., K, ...) and targets (..., 2K + 1, ...); `axis` is
        the class axis of both."""
        k = logits.shape[axis]
        teacher = jax.lax.slice_in_dim(targets, 0, k, axis=axis)
        labels = jax.lax.slice_in_dim(targets, k, 2 * k, axis=axis)
        weight = jnp.squeeze(jax.lax.slice_in_dim(targets, 2 * k, 2 * k + 1, axis=axis), axis)
        distill = get_distillation_loss(self.direction, self.beta)
        soft = distill(logits, teacher, temperature=self.temperature, axis=axis)
        hard = weight * get_loss(self.hard_loss)(logits, labels, axis=axis)
        # Static weights of 0 or 1 leave the other term out (no 0 · term in the gradient).
        w = self.soft_weight
        loss = hard if w == 0 else soft if w == 1 else w * soft + (1.0 - w) * hard
        hits = jnp.argmax(logits, axis=axis) == jnp.argmax(labels, axis=axis)
        return {
            "loss": loss,
            "accuracy": hits.astype(loss.dtype),
            "soft_loss": soft,
            "hard_loss": hard,
        }

    def check_targets(self, targets: Any) -> None:
        """Targets are (rows, 2K + 1) with K >= 2: finite teacher log-probabilities, one-hot true
        classes and hard-label weights >= 0.

        Raises:
          ValueError: naming what is wrong (targets are built by `distillation_targets`, not by
            hand, so this is a programming error rather than a user's).
        """
        t = np.asarray(targets)
        if t.ndim != 2 or t.shape[1] < 5 or t.shape[1] % 2 == 0:
            raise ValueError(f"targets: expected (rows, 2K + 1) with K >= 2, got {t.shape}")
        k = self.n_classes(t.shape[1])
        teacher, labels, weight = t[:, :k], t[:, k : 2 * k], t[:, 2 * k]
        if not np.isfinite(teacher).all() or (teacher > 0).any():
            raise ValueError("targets: expected finite teacher log-probabilities <= 0")
        if not (np.isin(labels, (0.0, 1.0)).all() and (labels.sum(axis=1) == 1).all()):
            raise ValueError("targets: expected one-hot true classes")
        if not (np.isfinite(weight).all() and (weight >= 0).all()):
            raise ValueError("targets: expected hard-label weights >= 0")


@dataclass(frozen=True)
class VariationalBound:
    """A VAE's negative ELBO and the loss it trains on (`kldiv.config.VAEConfig` states the
    formula), for a `kldiv.model.VAE`; targets are what it reconstructs, (rows, P), the inputs or a
    transform of them (binarised pixels).

    Per example, with one reparameterised sample z = mean + exp(log_variance / 2) · ε, ε ~ N(0, I)
    from the step's key: reconstruction R = -sum_i log p(y_i | z) over the P targets (Bernoulli:
    softplus(o_i) - y_i o_i for the decoder's logit o_i, exact for y_i in [0, 1]; Gaussian:
    (log 2π + v_i + (y_i - m_i)² e^(-v_i)) / 2 for the decoder's mean m_i and log-variance v_i),
    KL_j in closed form (`kldiv.losses.gaussian_kl_divergence`), K = sum_j KL_j.

    Metrics: "loss" (what is minimised, with this config's reductions, free bits and KL weight; in
    an evaluation the weight after warm-up), "neg_elbo" (R + K, nats), "reconstruction" (R), "kl"
    (K), and "kl_0" ... "kl_{latent-1}" (each KL_j).
    """

    vae: VAEConfig  # the loss's numbers and reductions
    count_metrics: ClassVar[tuple[str, ...]] = ()
    needs_key: ClassVar[bool] = True
    classifies: ClassVar[bool] = False
    # A step is ~10x a classifier's (two MLPs, 64 outputs): chunks of 5 pad 10 seeds to 10, not
    # 25, and spread them over two cores (3.5x faster for `kldiv vae --seeds 10`).
    generic_chunk: ClassVar[int] = 5

    @property
    def latent(self) -> int:
        return self.vae.latent

    @property
    def decoder(self) -> str:
        return self.vae.decoder

    @property
    def metric_names(self) -> tuple[str, ...]:
        dims = tuple(f"kl_{j}" for j in range(self.latent))
        return ("loss", "neg_elbo", "reconstruction", "kl", *dims)

    def n_classes(self, width: int) -> int:
        """The decoder's output width for targets of `width` values: one logit each (Bernoulli),
        or a mean and a log-variance each (Gaussian)."""
        return width if self.decoder == "bernoulli" else 2 * width

    def evaluation_targets(self, targets: np.ndarray) -> np.ndarray:
        """The targets themselves (there are no classes to score)."""
        return targets

    def check_targets(self, targets: Any) -> None:
        """Bernoulli targets must lie in [0, 1].

        Raises:
          ConfigError("decoder", ...): a Bernoulli target outside [0, 1].
        """
        t = np.asarray(targets)
        if self.decoder == "bernoulli" and t.size and (t.min() < 0 or t.max() > 1):
            raise ConfigError(
                "decoder",
                f"expected targets in [0, 1] for a Bernoulli decoder, got values in "
                f"[{t.min():g}, {t.max():g}]; scale them or use the gaussian decoder",
            )

    def reconstruction_nll(self, out: jax.Array, y: jax.Array) -> jax.Array:
        """-log p(y | decoder output) per target value, (..., P), nats."""
        if self.decoder == "bernoulli":
            return jax.nn.softplus(out) - y * out
        p = y.shape[-1]
        mean, log_var = out[..., :p], out[..., p:]
        return 0.5 * (jnp.log(2 * jnp.pi) + log_var + jnp.square(y - mean) * jnp.exp(-log_var))

    def kl_weight(self, epoch: jax.Array | None) -> jax.Array | float:
        """beta · min(1, epoch / warmup) in training (epoch: epochs done), beta in an evaluation."""
        v = self.vae
        if epoch is None or v.warmup == 0:
            return v.beta
        return v.beta * jnp.minimum(1.0, epoch.astype(jnp.float32) / v.warmup)

    def __call__(
        self,
        model: VAE,
        params: Params,
        x: jax.Array,
        y: jax.Array,
        key: jax.Array | None,
        epoch: jax.Array | None,
    ) -> dict[str, Any]:
        if key is None:
            raise ValueError("VariationalBound needs a key: it samples the latent code")
        mean, log_var = model.encode(params, x)
        eps = jax.random.normal(key, mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * log_var) * eps
        nll = self.reconstruction_nll(model.decode(params, z), y)
        rec = jnp.sum(nll, axis=-1)
        kl_dims = gaussian_kl_divergence(mean[..., None], log_var[..., None])  # (rows, latent)
        kl = jnp.sum(kl_dims, axis=-1)
        v = self.vae
        rec_term = rec / nll.shape[-1] if v.reconstruction == "mean" else rec
        # static: at free_bits 0 the max would halve the gradient of any KL_j that is exactly 0
        floored = jnp.maximum(v.free_bits, kl_dims) if v.free_bits > 0 else kl_dims
        kl_term = jnp.sum(floored, axis=-1)
        kl_term = kl_term / v.latent if v.kl == "mean" else kl_term
        out = {
            "loss": rec_term + self.kl_weight(epoch) * kl_term,
            "neg_elbo": rec + kl,
            "reconstruction": rec,
            "kl": kl,
        }
        return out | {f"kl_{j}": kl_dims[..., j] for j in range(self.latent)}


def distillation_targets(
    teacher_log_probs: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The `Distiller`'s targets: [teacher log-probabilities | one-hot true class | weight].

    Args:
      teacher_log_probs: (rows, K) the teacher's log-probabilities at temperature 1 (finite).
      labels: (rows,) the true class of each row, in 0..K-1.
      weights: (rows,) each row's hard-label weight (n / n_labelled or 0 on training rows, 1 on
        a fully labelled set).

    Returns:
      (rows, 2K + 1) float32.
    """
    log_p = np.asarray(teacher_log_probs, np.float64)
    rows, k = log_p.shape
    one_hot = np.eye(k)[np.asarray(labels)]
    out = np.concatenate([log_p, one_hot, np.asarray(weights, np.float64).reshape(rows, 1)], 1)
    return out.astype(np.float32)


Objective = Classifier | Distiller | VariationalBound


def objective_of(config: Any) -> Objective:
    """The objective a `kldiv.config.TrainConfig` trains: a `VariationalBound` for a VAE, a
    `Distiller` when it has a distillation config, else a `Classifier` with its loss."""
    if config.vae is not None:
        return VariationalBound(config.vae)
    if config.distillation is not None:
        return Distiller.of(config.loss, config.distillation)
    return Classifier(config.loss)


def history_keys(metric_names: tuple[str, ...]) -> tuple[str, ...]:
    """Keras' history names: the training running means, then `val_` of each."""
    return (*metric_names, *(f"val_{m}" for m in metric_names))


def final_keys(metric_names: tuple[str, ...]) -> tuple[str, ...]:
    """Final metrics of the returned weights: `train_` of each, then `test_` of each."""
    return (*(f"train_{m}" for m in metric_names), *(f"test_{m}" for m in metric_names))
