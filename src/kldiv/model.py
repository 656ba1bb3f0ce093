"""The multilayer perceptron: initialisation and forward pass for one example batch.

Parameters are a tuple of `(W, b)` layers with `W` shaped (fan_in, fan_out) and `b` (fan_out,), float32,
so a whole model is a plain pytree that `jax.vmap` can stack along a leading seed axis.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp

Layer = tuple[jax.Array, jax.Array]
Params = tuple[Layer, ...]

ACTIVATION_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def init_limit(name: str, fan_in: int, fan_out: int) -> float:
    """Half-width of the uniform initialiser `name` (Keras' definitions).

    he_uniform: sqrt(6 / fan_in); glorot_uniform: sqrt(6 / (fan_in + fan_out)); lecun_uniform:
    sqrt(3 / fan_in).
    """
    if name == "he_uniform":
        return (6.0 / fan_in) ** 0.5
    if name == "glorot_uniform":
        return (6.0 / (fan_in + fan_out)) ** 0.5
    if name == "lecun_uniform":
        return (3.0 / fan_in) ** 0.5
    raise ValueError(
        f"initializer: expected 'he_uniform', 'glorot_uniform' or 'lecun_uniform', got {name!r}"
    )


def layer_sizes(n_features: int, hidden: tuple[int, ...], n_classes: int) -> tuple[int, ...]:
    """Widths from input to output, e.g. (2, 50, 3) for the tutorial."""
    return (n_features, *hidden, n_classes)


def init_mlp(key: jax.Array, sizes: tuple[int, ...], hidden_init: str, output_init: str) -> Params:
    """Uniform weights (hidden layers `hidden_init`, last layer `output_init`), zero biases.

    One draw of U(-1, 1) for all kernels, in layer order, each slice scaled by its layer's limit:
    a single random-bits call, which keeps the compiled program small (each call site of
    `jax.random` costs XLA:CPU about half a second of compilation).
    """
    shapes = list(itertools.pairwise(sizes))
    u = jax.random.uniform(key, (sum(i * o for i, o in shapes),), jnp.float32, -1.0, 1.0)
    layers, start = [], 0
    for i, (fan_in, fan_out) in enumerate(shapes):
        name = output_init if i == len(shapes) - 1 else hidden_init
        limit = init_limit(name, fan_in, fan_out)
        w = limit * u[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
        layers.append((w, jnp.zeros((fan_out,), jnp.float32)))
        start += fan_in * fan_out
    return tuple(layers)


def apply_mlp(params: Params, x: jax.Array, activation: str = "relu") -> jax.Array:
    """Logits (..., classes) for inputs x (..., features); the softmax belongs to the loss."""
    act = ACTIVATION_FNS[activation]
    h = x
    for w, b in params[:-1]:
        h = act(_affine(h, w, b))
    return _affine(h, *params[-1])


def _affine(h: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """h @ w + b for h (..., fan_in); the bias gets explicit leading axes (no implicit rank promotion)."""
    return h @ w + b[(None,) * (h.ndim - 1)]
