"""Frozen configuration for the tutorial experiment: every default is the tutorial's, as a named field.

`BlobsConfig` describes the data, `TrainConfig` the model, its objective and its training, with the
optimizer as a nested config (`kldiv.optimizers`). All are validated on construction, so a bad value
fails at the edge with one message naming the field, what was expected and what was received
(`kldiv.checks.ConfigError`); all are hashable, so a `TrainConfig` can be a static argument of a
jitted program, and `to_dict`/`from_dict` round-trip them through JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kldiv.checks import ConfigError, ConfigTypeError, check_choice, check_int, check_real
from kldiv.optimizers import SGD, Optimizer, optimizer_from_dict


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
        check_int("n_samples", self.n_samples, 2)
        check_int("centers", self.centers, 2)
        check_int("n_features", self.n_features, 1)
        check_real("cluster_std", self.cluster_std, 0.0, float("inf"), open_low=True)
        check_int("random_state", self.random_state, 0, 2**32 - 1)
        check_int("n_train", self.n_train, 1)
        if self.n_train >= self.n_samples:
            raise ConfigError(
                "n_train",
                f"expected fewer than n_samples={self.n_samples} rows, got {self.n_train}",
            )
        if not isinstance(self.center_box, tuple) or len(self.center_box) != 2:
            raise ConfigTypeError("center_box", f"expected (low, high), got {self.center_box!r}")
        low, high = self.center_box
        if not low < high:
            raise ConfigError(
                "center_box", f"expected (low, high) with low < high, got {self.center_box}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlobsConfig:
        """Inverse of `to_dict`."""
        fields = _known_fields(cls, d, "data")
        if "center_box" in fields:
            fields["center_box"] = tuple(fields["center_box"])
        return cls(**fields)


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation: the student's loss mixes the teacher's soft targets with labels.

    Per training row, with the student's logits z, the teacher's probabilities p, and the row's
    one-hot label y with its weight h (`kldiv.objectives.Distiller`):

        loss = soft_weight · T² · D(p_T, q_T) + (1 - soft_weight) · h · hard(y, q)

    temperature T > 0: both sides' softmax at T (p_T, q_T); T² keeps the soft term's gradient
      independent of T (Hinton et al. 2015).
    soft_weight in [0, 1]: the weight of the soft (teacher) term; 1 - soft_weight weighs the
      hard-label term (Keras' `student_loss_weight` and torchdistill's `alpha` weigh the hard
      term instead, many repositories' `alpha` the soft one: this name says which).
    direction: D is "forward" KL(p_T || q_T) (Hinton's), "reverse" KL(q_T || p_T), or "jsd", GKD's
      generalized Jensen-Shannon divergence with `beta`, normalized so that beta = 0 is forward and
      beta = 1 reverse KL (`kldiv.losses.jsd_distillation_loss`).
    beta in [0, 1]: the teacher's weight in the JSD's mixture; only with direction "jsd" (None
      otherwise, so it can never be set and silently ignored).
    """

    temperature: float = 4.0
    soft_weight: float = 0.9
    direction: str = "forward"
    beta: float | None = None

    def __post_init__(self) -> None:
        from kldiv.losses import DISTILLATION_DIRECTIONS

        check_real("temperature", self.temperature, 0.0, float("inf"), open_low=True)
        check_real("soft_weight", self.soft_weight, 0.0, 1.0, open_low=False)
        check_choice("direction", self.direction, DISTILLATION_DIRECTIONS)
        if self.direction == "jsd":
            if self.beta is None:
                raise ConfigError(
                    "beta", "expected a number in [0, 1] with direction 'jsd', got none"
                )
            check_real("beta", self.beta, 0.0, 1.0, open_low=False)
        elif self.beta is not None:
            raise ConfigError(
                "beta",
                f"expected no beta with direction {self.direction!r} (it weighs the 'jsd' "
                f"mixture only), got {self.beta!r}",
            )

    def replace(self, **changes: Any) -> Distillation:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Distillation:
        """Inverse of `to_dict`."""
        return cls(**_known_fields(cls, d, "distillation"))

    @property
    def formula(self) -> str:
        """The loss per row, in words and symbols, with this config's numbers."""
        if self.direction == "jsd":
            d = f"JSD_β(p_T ‖ q_T) / (β(1 − β)), β = {self.beta:g}"
        else:
            d = "KL(p_T ‖ q_T)" if self.direction == "forward" else "KL(q_T ‖ p_T)"
        w = self.soft_weight
        return (
            f"{w:g} · T² · {d} + {1 - w:g} · h · CE(y, q), T = {self.temperature:g}; p: teacher, "
            "q: student, y: the row's label, h: its weight (mean over labelled rows)"
        )


@dataclass(frozen=True)
class VAEConfig:
    """A variational autoencoder: what its loss is made of, per example, in nats.

    With the encoder's posterior q(z | x) = N(mean, diag exp(log_variance)), one reparameterised
    sample z and the decoder's likelihood p(x | z) over P outputs, the negative ELBO is

        R + K,  R = -sum_i log p(x_i | z) (summed over the P outputs),
                K = sum_j KL_j,  KL_j = KL(q(z_j | x) || N(0, 1)) (summed over the latent dims),

    and the loss trained on is R' + w(e) · K', where

        R' = R, or R / P with reconstruction = "mean";
        K' = sum_j max(free_bits, KL_j), divided by latent with kl = "mean";
        w(e) = beta · min(1, e / warmup) in epoch e + 1 (e epochs done), beta without warm-up.

    latent >= 1: latent dimensions. beta > 0: the KL weight (1: the ELBO; > 1: a beta-VAE).
    warmup >= 0: epochs of a linear ramp of the KL weight from 0 (0: none). free_bits >= 0: nats per
    latent dimension below which KL_j is not pushed down (Kingma et al. 2016, applied per example).
    decoder: "bernoulli" (outputs are logits of targets in [0, 1]) or "gaussian" (a mean and a
    log-variance per output, for real-valued targets). reconstruction, kl: "sum" (the ELBO's
    reductions) or "mean", to reproduce a loss whose author averaged a term instead; their effect
    is a KL weight of `effective_beta` (`kldiv.losses.effective_beta`).
    """

    latent: int = 8
    beta: float = 1.0
    warmup: int = 0
    free_bits: float = 0.0
    decoder: str = "bernoulli"
    reconstruction: str = "sum"
    kl: str = "sum"

    def __post_init__(self) -> None:
        check_int("latent", self.latent, 1)
        check_real("beta", self.beta, 0.0, float("inf"), open_low=True)
        check_int("warmup", self.warmup, 0)
        check_real("free_bits", self.free_bits, 0.0, float("inf"), open_low=False)
        check_choice("decoder", self.decoder, DECODERS)
        check_choice("reconstruction", self.reconstruction, REDUCTIONS)
        check_choice("kl", self.kl, REDUCTIONS)

    def effective_beta(self, n_outputs: int) -> float:
        """The weight of the summed KL relative to the summed reconstruction that this loss's
        reductions give, for `n_outputs` reconstructed values per example (after warm-up, and
        where free bits do not bind)."""
        from kldiv.gaussian import effective_beta

        return effective_beta(
            n_outputs, self.latent, reconstruction=self.reconstruction, kl=self.kl, beta=self.beta
        )

    def replace(self, **changes: Any) -> VAEConfig:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        """Inverse of `to_dict`."""
        return cls(**_known_fields(cls, d, "vae"))


DECODERS = ("bernoulli", "gaussian")
REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class TrainConfig:
    """The model, its objective and how it is trained.

    Every field changes shapes or code and is compiled into the program, except the optimizer's
    numbers, which are the defaults of per-run values that ride along as traced arrays.

    Defaults: the tutorial's Keras model, Dense(50, relu, he_uniform) -> Dense(3, softmax,
    glorot_uniform), zero biases, SGD(learning_rate=0.01, momentum=0.9) in Keras' form, batch 32
    reshuffled each epoch, 100 epochs, loss 'kullback_leibler_divergence' (stored by its canonical
    name, 'kl').

    label_smoothing ε in [0, 1): the runs train on (1 - ε)·y + ε/K instead of the targets y (K
    classes); validation and the shared metrics (`kldiv.evaluation`) use y, except that a loss
    infinite at zero targets (reverse KL) is validated on smoothed targets too.

    distillation: None (a classifier trained on the targets with `loss`), or a `Distillation`: the
    student of a teacher, trained on targets that carry the teacher's log-probabilities, the
    labels and their weights (`kldiv.objectives.Distiller`), with `loss` as the hard-label term
    (finite on one-hot labels; no label smoothing: the teacher's soft targets take its place).

    vae: None, or a `VAEConfig`: a variational autoencoder whose encoder and decoder have the
    `hidden` widths (the decoder's reversed), trained on targets that are the inputs to
    reconstruct (`kldiv.objectives.VariationalBound`); `loss` is not used, and the other fields
    apply as to a classifier.
    """

    loss: str = "kullback_leibler_divergence"
    hidden: tuple[int, ...] = (50,)
    activation: str = "relu"
    hidden_init: str = "he_uniform"
    output_init: str = "glorot_uniform"
    epochs: int = 100
    batch_size: int = 32
    shuffle: bool = True
    optimizer: Optimizer = field(default_factory=SGD)
    label_smoothing: float = 0.0
    distillation: Distillation | None = None
    vae: VAEConfig | None = None

    def __post_init__(self) -> None:
        from kldiv.model import ACTIVATION_FNS, INIT_LIMITS

        # Aliases are resolved once, here: equal configs are equal programs and equal records.
        object.__setattr__(self, "loss", canonical_loss(self.loss))
        if not isinstance(self.hidden, tuple):
            raise ConfigTypeError(
                "hidden", f"expected a tuple of layer widths, got {self.hidden!r}"
            )
        for width in self.hidden:
            check_int("hidden", width, 1)
        check_choice("activation", self.activation, tuple(ACTIVATION_FNS))
        check_choice("hidden_init", self.hidden_init, tuple(INIT_LIMITS))
        check_choice("output_init", self.output_init, tuple(INIT_LIMITS))
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        if not isinstance(self.shuffle, bool):
            raise ConfigTypeError("shuffle", f"expected True or False, got {self.shuffle!r}")
        check_real(
            "label_smoothing", self.label_smoothing, 0.0, 1.0, open_low=False, open_high=True
        )
        if not isinstance(self.optimizer, Optimizer):
            raise ConfigTypeError(
                "optimizer", f"expected a kldiv.optimizers config, got {self.optimizer!r}"
            )
        if self.distillation is not None:
            self._check_distillation()
        if self.vae is not None:
            self._check_vae()

    def _check_distillation(self) -> None:
        from kldiv.objectives import FULL_SUPPORT_LOSSES

        if not isinstance(self.distillation, Distillation):
            raise ConfigTypeError(
                "distillation", f"expected a Distillation config or None, got {self.distillation!r}"
            )
        if self.label_smoothing != 0:
            raise ConfigError(
                "label_smoothing",
                "expected 0 with distillation (the teacher's soft targets take its place), "
                f"got {self.label_smoothing!r}",
            )
        if self.loss in FULL_SUPPORT_LOSSES:
            raise ConfigError(
                "loss",
                f"expected a hard-label loss that is finite on one-hot labels for distillation, "
                f"got {self.loss!r}",
            )

    def _check_vae(self) -> None:
        if not isinstance(self.vae, VAEConfig):
            raise ConfigTypeError("vae", f"expected a VAEConfig or None, got {self.vae!r}")
        for name in ("label_smoothing", "distillation"):
            if getattr(self, name) not in (0.0, None):
                raise ConfigError(
                    name,
                    f"expected {'0' if name == 'label_smoothing' else 'None'} for a VAE (its "
                    f"targets are the inputs), got {getattr(self, name)!r}",
                )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`."""
        fields = _known_fields(cls, d, "train")
        if "hidden" in fields:
            fields["hidden"] = tuple(fields["hidden"])
        if "optimizer" in fields:
            fields["optimizer"] = optimizer_from_dict(fields["optimizer"])
        if fields.get("distillation") is not None:
            fields["distillation"] = Distillation.from_dict(fields["distillation"])
        if fields.get("vae") is not None:
            fields["vae"] = VAEConfig.from_dict(fields["vae"])
        return cls(**fields)


def canonical_loss(name: str) -> str:
    """The canonical training-loss name of `name` or an alias (`kldiv.losses.canonical_loss_name`).

    Raises:
      ConfigError: not a loss name; the message lists the choices (ConfigTypeError: not a string).
    """
    from kldiv.losses import canonical_loss_name

    try:
        return canonical_loss_name(name)
    except TypeError as err:
        raise ConfigTypeError("loss", str(err).removeprefix("loss: ")) from None
    except ValueError as err:
        raise ConfigError("loss", str(err).removeprefix("loss: ")) from None


def to_dict(config: BlobsConfig | TrainConfig) -> dict[str, Any]:
    """JSON-ready fields of a config (tuples become lists, the optimizer a mapping with its name)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Optimizer | Distillation | VAEConfig):
            value = value.to_dict()
        out[f.name] = value
    return out


def _known_fields(cls: type, d: Any, what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigTypeError(what, f"expected a mapping of fields, got {d!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(what, f"expected fields among {sorted(names)}, got {unknown[0]!r}")
    return dict(d)
