"""A lanes chunk's initial state computed on the host with NumPy: the bits of the lanes init
program (`runner._lanes_init`: `run.init` vmapped over the chunk, run axis last), without compiling
that program.

Why by hand: on a first run the init program's compile (10 kernels, about 0.35 s of CPU) competes
with the epochs program's for the machine's cores, and a run waits for both; NumPy computes the
tutorial's initial state in well under a millisecond. What it reproduces is JAX's default PRNG
(Threefry-2x32 with partitionable counters) and `jax.random.uniform`, which JAX offers only as
traced operations:

  * key(s) = (0, s) for a uint32 seed s (`jax.random.key`);
  * split(k, n)[i] = hash_k(0, i), both output words (`jax.random.split`);
  * uniform(k, (n,), -1, 1)[j] = max(-1, (f - 1) * 2 - 1), where f is the float32 with sign 0,
    exponent 0 and mantissa bits (b1 ^ b2) >> 9 of (b1, b2) = hash_k(0, j) (`jax.random.uniform`);

with hash the Threefry-2x32 of `kldiv.threefry`. The weights then come from `MLP.from_uniform`,
the model's own code, and the optimizer's state from its Optax init traced once (`_optimizer_state`).

`initial_state` supports: an `MLP` run, under JAX's default `threefry2x32` PRNG with
`jax_threefry_partitionable` on, and an optimizer whose init sets every leaf to a constant, one
of its hyperparameters or a weight (all of `lanes.OPTIMIZERS`); it returns None for anything else,
and the caller runs the init program instead. tests/test_host_init.py checks it against that program bit
for bit.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.extend.core import Literal

from kldiv.engine.run import Run, State
from kldiv.model import MLP
from kldiv.threefry import hash_2x32

_ONE = np.array(1.0, np.float32).view(np.uint32)


def supported(run: Run) -> bool:
    """Whether `initial_state` can compute `run`'s state (the optimizer is checked there)."""
    return (
        type(run.model) is MLP
        and jax.config.jax_default_prng_impl == "threefry2x32"
        and bool(jax.config.jax_threefry_partitionable)
    )


def _hash(key: np.ndarray, counters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 of the counters (0, c) under each key: key (R, 2) uint32, counters (n,)
    uint32 -> the two output words, each (R, n)."""
    k1, k2 = key[:, :1], key[:, 1:]
    return hash_2x32(k1, k2, np.zeros_like(counters)[None], counters[None])


def split(key: np.ndarray, n: int) -> np.ndarray:
    """`jax.random.split` of each key's data: (R, 2) uint32 -> (R, n, 2)."""
    return np.stack(_hash(key, np.arange(n, dtype=np.uint32)), axis=-1)


def uniform(key: np.ndarray, n: int) -> np.ndarray:
    """`jax.random.uniform(k, (n,), float32, -1.0, 1.0)` for each key's data: (R, 2) -> (R, n)."""
    b1, b2 = _hash(key, np.arange(n, dtype=np.uint32))
    floats = (((b1 ^ b2) >> np.uint32(9)) | _ONE).view(np.float32) - np.float32(1.0)
    return np.maximum(np.float32(-1.0), floats * np.float32(2.0) + np.float32(-1.0))


@functools.lru_cache(maxsize=64)
def _optimizer_init(run: Run) -> tuple[Any, list[tuple[Any, Any]]] | None:
    """The optimizer's Optax init for one run, traced once: its output tree and, per output leaf,
    (source, aval), where source is the index of the input leaf it returns (of (params,
    hyperparameters), flattened) or a `_Fill` for a constant (a literal, a broadcast literal or a
    captured array). None when an output is computed any other way."""
    params = run.model.from_uniform(np.zeros(run.model.n_weights, np.float32), np)
    hyper = dict.fromkeys(run.optimizer.hyperparameters, np.float32(0))
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), (params, hyper))
    closed, shapes = jax.make_jaxpr(
        lambda p, h: run.transformation(**h).init(p), return_shape=True
    )(*one)
    jaxpr = closed.jaxpr
    sources: dict[Any, Any] = {v: i for i, v in enumerate(jaxpr.invars)}
    sources |= {v: _Fill(c) for v, c in zip(jaxpr.constvars, closed.consts, strict=True)}
    for eqn in jaxpr.eqns:
        operand = eqn.invars[0] if eqn.invars else None
        if eqn.primitive.name == "broadcast_in_dim" and isinstance(operand, Literal):
            sources[eqn.outvars[0]] = _Fill(operand.val)
    leaves = []
    for v, aval in zip(jaxpr.outvars, jax.tree.leaves(shapes), strict=True):
        source = _Fill(v.val) if isinstance(v, Literal) else sources.get(v)
        if source is None:
            return None
        leaves.append((source, aval))
    return jax.tree.structure(shapes), leaves


class _Fill(NamedTuple):
    value: Any  # a constant, broadcast to the leaf's shape


def _optimizer_state(run: Run, params: Any, hyper: dict[str, np.ndarray]) -> Any | None:
    """The optimizer's initial state for R runs, leaves (R, ...), from `_optimizer_init`; None
    where that is None. params: leaves (R, ...); hyper: name -> (R,) float32."""
    traced = _optimizer_init(run)
    if traced is None:
        return None
    tree, recipe = traced
    inputs = jax.tree.leaves((params, hyper))
    n_runs = inputs[0].shape[0]

    def leaf(source: Any, aval: Any) -> np.ndarray:
        if isinstance(source, _Fill):
            value = np.asarray(source.value, aval.dtype)
            return np.array(np.broadcast_to(value, (n_runs, *aval.shape)))
        return np.asarray(inputs[source], aval.dtype)

    return jax.tree.unflatten(tree, [leaf(*r) for r in recipe])


def initial_state(run: Run, seeds: np.ndarray, hyper: dict[str, np.ndarray]) -> State | None:
    """The lanes init program's result for one round, as host arrays (typed keys as JAX key
    arrays): seeds (devices, chunk) uint32 and hyper name -> (devices, chunk) float32 give leaves
    (devices, ..., chunk). None where `supported(run)` is false or the optimizer's init is not a
    constant (`_optimizer_state`)."""
    if not supported(run):
        return None
    n_devices, chunk = seeds.shape
    flat = {k: np.asarray(v, np.float32).reshape(-1) for k, v in hyper.items()}
    key = np.stack([np.zeros(seeds.size, np.uint32), seeds.reshape(-1).astype(np.uint32)], -1)
    init_key, shuffle_key, noise_key = np.moveaxis(split(key, 3), 1, 0)
    params = run.model.from_uniform(uniform(init_key, run.model.n_weights), np)
    opt_state = _optimizer_state(run, params, flat)
    if opt_state is None:
        return None

    def lanes(a: np.ndarray) -> np.ndarray:  # (R, ...) -> (devices, ..., chunk)
        return np.moveaxis(a.reshape(n_devices, chunk, *a.shape[1:]), 1, -1)

    def keys(data: np.ndarray) -> jax.Array:  # (R, 2) -> typed keys (devices, chunk)
        return jax.random.wrap_key_data(data.reshape(n_devices, chunk, 2))

    return State(
        jax.tree.map(lanes, params),
        jax.tree.map(lanes, opt_state),
        keys(shuffle_key),
        keys(noise_key),
        np.zeros((n_devices, chunk), np.int32),
    )
