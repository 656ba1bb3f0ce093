"""The multilayer perceptron: a frozen description (`MLP`) with `init` and `apply`.

Parameters are a tuple of `(W, b)` layers with `W` shaped (fan_in, fan_out) and `b` (fan_out,),
float32: a plain pytree that `jax.vmap` stacks along a leading run axis. The description (widths,
activation, initialisers) is static and hashable; it travels with the weights in every run record.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

Layer = tuple[jax.Array, jax.Array]
Params = tuple[Layer, ...]

ACTIVATION_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}

# Half-width of each uniform initialiser, Keras' definitions, from (fan_in, fan_out).
INIT_LIMITS: dict[str, Callable[[int, int], float]] = {
    "he_uniform": lambda fan_in, fan_out: (6.0 / fan_in) ** 0.5,
    "glorot_uniform": lambda fan_in, fan_out: (6.0 / (fan_in + fan_out)) ** 0.5,
    "lecun_uniform": lambda fan_in, fan_out: (3.0 / fan_in) ** 0.5,
}


@dataclass(frozen=True)
class MLP:
    """Dense layers of widths `sizes` (input first, e.g. (2, 50, 3)), `activation` between them and
    none after the last (logits; the softmax belongs to the loss). Kernels are uniform with the
    `hidden_init` / `output_init` limits, biases zero."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    hidden_init: str = "he_uniform"
    output_init: str = "glorot_uniform"

    @property
    def n_weights(self) -> int:
        """How many kernel entries the layers have (biases not counted)."""
        return sum(i * o for i, o in itertools.pairwise(self.sizes))

    def init(self, key: jax.Array) -> Params:
        """Initial weights from one typed PRNG key.

        One draw of U(-1, 1) for all kernels, in layer order, each slice scaled by its layer's
        limit (`from_uniform`): a single random-bits call, which keeps the compiled program small
        (each call site of `jax.random` costs XLA:CPU about half a second of compilation).
        """
        return self.from_uniform(
            jax.random.uniform(key, (self.n_weights,), jnp.float32, -1.0, 1.0), jnp
        )

    def from_uniform(self, u: Any, xp: Any = jnp) -> Params:
        """The layers from a float32 draw u (..., n_weights) of U(-1, 1): kernel l is the next
        fan_in * fan_out entries of u in row-major order, times its initialiser's limit; biases
        zero. Leading axes of u lead every array; `xp` (jax.numpy or numpy) makes the zeros, so the
        host computes the same float32 products (`kldiv.engine.host_init`)."""
        shapes = list(itertools.pairwise(self.sizes))
        lead, layers, start = u.shape[:-1], [], 0
        for i, (fan_in, fan_out) in enumerate(shapes):
            name = self.output_init if i == len(shapes) - 1 else self.hidden_init
            w = INIT_LIMITS[name](fan_in, fan_out) * u[..., start : start + fan_in * fan_out]
            layers.append(
                (w.reshape(*lead, fan_in, fan_out), xp.zeros((*lead, fan_out), xp.float32))
            )
            start += fan_in * fan_out
        return tuple(layers)

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        """Logits (..., classes) for inputs x (..., features)."""
        act = ACTIVATION_FNS[self.activation]
        h = x
        for w, b in params[:-1]:
            h = act(_affine(h, w, b))
        return _affine(h, *params[-1])


def _affine(h: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """h @ w + b for h (..., fan_in); the bias gets explicit leading axes (no implicit rank promotion)."""
    return h @ w + b[(None,) * (h.ndim - 1)]


@dataclass(frozen=True)
class VAE:
    """A variational autoencoder of two MLPs, its weights one flat tuple of layers: the encoder's
    (`n_inputs`, *hidden, 2 * latent), then the decoder's (latent, *reversed(hidden), `n_outputs`).

    The encoder's last layer gives the posterior's mean (first `latent` units) and log-variance
    (the rest), per example; the decoder maps a latent code to `n_outputs` values, the parameters
    of the reconstruction's distribution (Bernoulli logits, or Gaussian means and log-variances:
    `kldiv.objectives.VariationalBound` reads them). Initialisers and activation as for `MLP`.
    """

    n_inputs: int
    hidden: tuple[int, ...]
    latent: int
    n_outputs: int
    activation: str = "relu"
    hidden_init: str = "he_uniform"
    output_init: str = "glorot_uniform"

    @property
    def encoder(self) -> MLP:
        sizes = (self.n_inputs, *self.hidden, 2 * self.latent)
        return MLP(sizes, self.activation, self.hidden_init, self.output_init)

    @property
    def decoder(self) -> MLP:
        sizes = (self.latent, *reversed(self.hidden), self.n_outputs)
        return MLP(sizes, self.activation, self.hidden_init, self.output_init)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths a training step passes through, encoder then decoder (for memory estimates;
        consecutive pairs over-count the weights by one latent x hidden block)."""
        return (*self.encoder.sizes, *self.decoder.sizes[1:])

    def init(self, key: jax.Array) -> Params:
        """Encoder then decoder layers, each MLP drawn from its own half of `key`."""
        enc_key, dec_key = jax.random.split(key)
        return (*self.encoder.init(enc_key), *self.decoder.init(dec_key))

    def split(self, params: Params) -> tuple[Params, Params]:
        """(encoder layers, decoder layers) of the flat tuple."""
        n = len(self.hidden) + 1
        return params[:n], params[n:]

    def encode(self, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The posterior q(z | x): mean and log-variance, each (..., latent)."""
        out = self.encoder.apply(self.split(params)[0], x)
        return out[..., : self.latent], out[..., self.latent :]

    def decode(self, params: Params, z: jax.Array) -> jax.Array:
        """The reconstruction's distribution parameters (..., n_outputs) for codes z (..., latent)."""
        return self.decoder.apply(self.split(params)[1], z)
