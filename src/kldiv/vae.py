"""Variational autoencoders: the values a VAE reconstructs, what a trained VAE's latent code
carries, and a saved VAE's encoder and decoder.

The training itself is the runner's (`kldiv.engine.train` with a `TrainConfig` whose `vae` is set:
the objective `kldiv.objectives.VariationalBound`, the model `kldiv.model.VAE`), so many seeds
train in one compiled program and every seed's bits are the same alone or in a batch. This module
prepares its data (`Scaling`, `prepare`) and reads a trained VAE (`latent_summary`,
`importance_weighted_bound`, `SavedVAE`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kldiv.checks import ConfigError
from kldiv.data import Dataset, LoadedData
from kldiv.model import VAE, Params
from kldiv.objectives import VariationalBound

# A latent dimension is active when it carries more than this: its KL (nats, mean over the test
# rows), or the variance over the test rows of its posterior mean (Burda et al. 2016).
ACTIVE_THRESHOLD = 0.01
# Folded into a run's seed for the importance-weighted bound's samples, apart from training's keys.
IWAE_STREAM = 0x1A7E


@dataclass(frozen=True)
class Scaling:
    """How raw features become the values a VAE encodes and reconstructs: per value,
    u = (x - low) / (high - low), clipped to [0, 1] (rows outside the training range), then, with
    `binarize`, 1 where u >= binarize else 0. low and high are the training rows' smallest and
    largest feature values (one pair for all features: pixels share a scale)."""

    low: float
    high: float
    binarize: float | None

    @classmethod
    def fit(cls, x_train: np.ndarray, binarize: float | None) -> Scaling:
        low, high = float(np.min(x_train)), float(np.max(x_train))
        if not high > low:
            raise ConfigError(
                "data", f"expected features that vary over the training rows, got all {low:g}"
            )
        if binarize is not None and not 0 < binarize < 1:
            raise ConfigError("binarize", f"expected a threshold in (0, 1), got {binarize!r}")
        return cls(low, high, binarize)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(rows, features) raw -> (rows, features) float32 in [0, 1]."""
        u = np.clip((np.asarray(x, np.float64) - self.low) / (self.high - self.low), 0.0, 1.0)
        if self.binarize is not None:
            u = (u >= self.binarize).astype(np.float64)
        return u.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "binarize": self.binarize}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scaling:
        binarize = d["binarize"]
        return cls(float(d["low"]), float(d["high"]), None if binarize is None else float(binarize))


def prepare(loaded: LoadedData, binarize: float | None) -> tuple[Dataset, Scaling]:
    """The VAE's dataset from loaded data: inputs and targets both the scaled (and binarised)
    features, training rows then test rows; the labels are not used."""
    data = loaded.dataset
    scaling = Scaling.fit(data.x_train, binarize)
    train, test = scaling.apply(data.x_train), scaling.apply(data.x_val)
    return Dataset(train, train, test, test), scaling


def kl_per_dimension(final: Mapping[str, np.ndarray], split: str = "test") -> np.ndarray:
    """(runs, latent) each dimension's KL, nats, mean over the split's rows, from a
    `TrainResult.final` of a VAE (`test_kl_0`, ...)."""
    keys = sorted(
        (k for k in final if k.startswith(f"{split}_kl_")), key=lambda k: int(k.rsplit("_", 1)[1])
    )
    return np.stack([np.asarray(final[k], np.float64) for k in keys], axis=1)


def posterior_mean_variance(model: VAE, params: Params, x: np.ndarray) -> np.ndarray:
    """(runs, latent) the variance over the rows of x of each dimension's posterior mean,
    Cov_x(E_q[z_j]) (Burda et al.'s activity statistic), for weights with a leading run axis."""

    def one(p: Params) -> jax.Array:
        mean, _ = model.encode(p, jnp.asarray(x))
        return jnp.var(mean, axis=0)

    return np.asarray(jax.lax.map(one, params), np.float64)


@dataclass(frozen=True)
class LatentSummary:
    """What each run's latent code carries on a set of rows.

    kl: (runs, latent) KL per dimension, nats; active_by_kl, active_by_variance: (runs,) how many
    dimensions exceed ACTIVE_THRESHOLD by KL and by the variance of their posterior mean;
    collapsed: (runs,) bool, no dimension active by KL (the decoder ignores the code).
    """

    kl: np.ndarray
    active_by_kl: np.ndarray
    active_by_variance: np.ndarray
    collapsed: np.ndarray


def latent_summary(
    model: VAE, params: Params, final: Mapping[str, np.ndarray], x: np.ndarray
) -> LatentSummary:
    """The latent code of every run on rows x (the test set), from its final metrics and
    weights (leading run axis)."""
    kl = kl_per_dimension(final)
    by_kl = (kl > ACTIVE_THRESHOLD).sum(axis=1)
    by_var = (posterior_mean_variance(model, params, x) > ACTIVE_THRESHOLD).sum(axis=1)
    return LatentSummary(kl, by_kl, by_var, by_kl == 0)


def importance_weighted_bound(
    model: VAE,
    objective: VariationalBound,
    params: Params,
    seeds: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    samples: int,
) -> np.ndarray:
    """(runs,) the importance-weighted bound on -log p(y) (Burda et al. 2016), nats, mean over
    the rows: per row, -log (1/k) sum_i p(y | z_i) p(z_i) / q(z_i | x) over k = `samples` draws
    z_i ~ q(z | x), computed with a log-sum-exp. An upper bound on the negative log-likelihood that
    tightens with k (k = 1 is the -ELBO's estimate). Run r's draws come from
    fold_in(key(seeds[r]), IWAE_STREAM), one key per row.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)

    def one(args: tuple[Params, jax.Array]) -> jax.Array:
        p, seed = args
        mean, log_var = model.encode(p, x)  # (rows, latent)
        key = jax.random.fold_in(jax.random.key(seed), IWAE_STREAM)
        eps = jax.random.normal(key, (samples, *mean.shape), mean.dtype)
        z = mean[None] + jnp.exp(0.5 * log_var)[None] * eps  # (k, rows, latent)
        log_lik = -jnp.sum(objective.reconstruction_nll(model.decode(p, z), y[None]), axis=-1)
        log_prior = -0.5 * jnp.sum(jnp.square(z) + jnp.log(2 * jnp.pi), axis=-1)
        log_q = -0.5 * jnp.sum(jnp.square(eps) + log_var[None] + jnp.log(2 * jnp.pi), axis=-1)
        log_w = log_lik + log_prior - log_q  # (k, rows)
        bound = jax.nn.logsumexp(log_w, axis=0) - jnp.log(jnp.float32(samples))
        return -jnp.mean(bound)

    return np.asarray(jax.lax.map(one, (params, jnp.asarray(seeds, jnp.uint32))), np.float64)


def vae_record(
    model: VAE,
    objective: VariationalBound,
    scaling: Scaling,
    loaded: LoadedData,
    seeds: tuple[int, ...],
) -> dict[str, Any]:
    """What encoding and decoding need besides the weights (the run's `kldiv_model` record)."""
    return {
        "kind": "vae",
        "n_inputs": model.n_inputs,
        "hidden": list(model.hidden),
        "latent": model.latent,
        "n_outputs": model.n_outputs,
        "activation": model.activation,
        "hidden_init": model.hidden_init,
        "output_init": model.output_init,
        "decoder": objective.decoder,
        "feature_names": list(loaded.feature_names),
        "scaling": scaling.to_dict(),
        "standardizer": None if loaded.standardizer is None else loaded.standardizer.to_dict(),
        "seeds": list(seeds),
    }


@dataclass(frozen=True)
class SavedVAE:
    """A trained VAE read back from its run directory (`load_vae`).

    params carry a leading run axis, one entry per seed of `seeds`.
    """

    model: VAE
    decoder: str
    params: Params
    seeds: tuple[int, ...]
    feature_names: tuple[str, ...]
    scaling: Scaling
    standardizer: Any

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Raw features (rows, features) as the encoder sees them."""
        x = x if self.standardizer is None else self.standardizer.apply(x)
        return self.scaling.apply(x)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(runs, rows, latent) posterior mean and log-variance of every run for raw features x."""
        u = jnp.asarray(self.inputs(x))
        mean, log_var = jax.lax.map(lambda p: self.model.encode(p, u), self.params)
        return np.asarray(mean), np.asarray(log_var)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(runs, rows, features) the reconstruction's mean for codes z (rows, latent), in the
        scaled units of `inputs`: Bernoulli probabilities, or Gaussian means."""
        z = jnp.asarray(z, jnp.float32)
        out = jax.lax.map(lambda p: self.model.decode(p, z), self.params)
        p = self.model.n_inputs
        return np.asarray(jax.nn.sigmoid(out) if self.decoder == "bernoulli" else out[..., :p])


def load_vae(path: Path) -> SavedVAE:
    """The VAE of a run directory written by `kldiv vae` (safetensors, no pickle).

    Raises:
      ValueError: `path` holds no kldiv VAE; the message names the file.
    """
    from kldiv.records import _model_metadata, _with_run_axis, load_params

    model_file = Path(path) / "model.safetensors"
    meta = _model_metadata(model_file)
    try:
        record = json.loads(meta["kldiv_model"])
        if record.get("kind") != "vae":
            raise ValueError("not a VAE")
        model = VAE(
            int(record["n_inputs"]),
            tuple(int(h) for h in record["hidden"]),
            int(record["latent"]),
            int(record["n_outputs"]),
            record["activation"],
            record["hidden_init"],
            record["output_init"],
        )
        from kldiv.data import Standardizer

        standardizer = record["standardizer"]
        saved = SavedVAE(
            model=model,
            decoder=record["decoder"],
            params=_with_run_axis(load_params(model_file), meta),
            seeds=tuple(int(s) for s in record["seeds"]),
            feature_names=tuple(record["feature_names"]),
            scaling=Scaling.from_dict(record["scaling"]),
            standardizer=None if standardizer is None else Standardizer.from_dict(standardizer),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{model_file}: expected a kldiv VAE record, got one that fails ({err})"
        ) from None
    shapes = [tuple(w.shape[-2:]) for w, _ in saved.params]
    expected = [
        *zip(model.encoder.sizes, model.encoder.sizes[1:], strict=False),
        *zip(model.decoder.sizes, model.decoder.sizes[1:], strict=False),
    ]
    if shapes != expected:
        raise ValueError(f"{model_file}: weights of shapes {shapes} for layers {expected}")
    return saved
