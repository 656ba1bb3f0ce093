"""kldiv.engine.host_init: the host's initial state against JAX's random functions and the lanes
init program, bit for bit, and the runs it declines."""

import dataclasses
import functools
from typing import ClassVar

import jax
import numpy as np
import optax
import pytest

from kldiv.config import TrainConfig, VAEConfig
from kldiv.engine import host_init, lanes, runner
from kldiv.engine.run import Run
from kldiv.optimizers import SGD, Optimizer

SEEDS = np.array([0, 1, 7, 2024, 2**31, 2**32 - 1], np.uint32)


def _key_data(seeds):
    return np.stack([np.zeros_like(seeds), seeds], -1)


def _bytes(tree):
    """Every leaf's dtype, shape and bytes (typed keys as their key data)."""

    def leaf(a):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.random.key_data(a)
        a = np.asarray(a)
        return a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()

    leaves, structure = jax.tree.flatten(tree)
    return structure, [leaf(a) for a in leaves]


def test_the_key_of_a_seed_is_jax_random_key():
    want = jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(SEEDS)
    np.testing.assert_array_equal(_key_data(SEEDS), want)


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_split_is_jax_random_split(n):
    want = jax.vmap(lambda s: jax.random.key_data(jax.random.split(jax.random.key(s), n)))(SEEDS)
    np.testing.assert_array_equal(host_init.split(_key_data(SEEDS), n), want)


@pytest.mark.parametrize("n", [1, 7, 250, 3700])
def test_uniform_is_jax_random_uniform_bit_for_bit(n):
    def draw(s):
        return jax.random.uniform(jax.random.key(s), (n,), np.float32, -1.0, 1.0)

    want = np.asarray(jax.vmap(draw)(SEEDS))
    got = host_init.uniform(_key_data(SEEDS), n)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got.min() >= -1.0 and got.max() < 1.0


def _init_program(run, seeds, hyper):
    """The lanes init program, one chunk per leading row (as `runner` runs it per device)."""
    return jax.vmap(jax.jit(functools.partial(runner._lanes_init, run=run)))(seeds, hyper)


CONFIGS = [
    TrainConfig(),
    TrainConfig(hidden=(20, 30), activation="tanh", hidden_init="lecun_uniform"),
    TrainConfig(hidden=(5,), output_init="he_uniform"),
]


@pytest.mark.parametrize("optimizer", lanes.OPTIMIZERS, ids=lambda o: o.name)
@pytest.mark.parametrize("config", CONFIGS, ids=["tutorial", "two-layers", "narrow"])
@pytest.mark.parametrize("shape", [(1, 2), (2, 3)], ids=["one-device", "two-devices"])
def test_the_initial_state_is_the_init_programs_bit_for_bit(optimizer, config, shape):
    config = dataclasses.replace(config, optimizer=optimizer())
    run = Run.of(
        config, 64 if config.hidden == (20, 30) else 2, 10 if len(config.hidden) > 1 else 3
    )
    rng = np.random.default_rng(3)
    seeds = rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
    hyper = {  # a grid of per-run values inside each parameter's range
        k: (v * rng.uniform(0.5, 1.0, shape)).astype(np.float32)
        for k, v in config.optimizer.hyperparameters.items()
    }
    got = host_init.initial_state(run, seeds, hyper)
    assert got is not None
    assert _bytes(got) == _bytes(_init_program(run, seeds, hyper))


def test_a_vae_is_left_to_the_init_program():
    config = TrainConfig(vae=VAEConfig(latent=2))
    run = Run.of(config, 2, 2)
    seeds = np.zeros((1, 2), np.uint32)
    hyper = {k: np.full((1, 2), v, np.float32) for k, v in config.optimizer.hyperparameters.items()}
    assert host_init.initial_state(run, seeds, hyper) is None


def test_another_prng_is_left_to_the_init_program():
    run = Run.of(TrainConfig(), 2, 3)
    seeds = np.zeros((1, 2), np.uint32)
    hyper = {k: np.full((1, 2), v, np.float32) for k, v in SGD().hyperparameters.items()}
    with jax.default_prng_impl("rbg"):
        assert host_init.initial_state(run, seeds, hyper) is None
    assert host_init.initial_state(run, seeds, hyper) is not None


@dataclasses.dataclass(frozen=True)
class _Doubling(Optimizer):
    """An optimizer whose state starts as twice the weights: computed, not a constant."""

    learning_rate: float = 0.1
    name: ClassVar[str] = "doubling"
    _ranges: ClassVar = {"learning_rate": (0.0, float("inf"), True, False)}

    def _factory(self):
        def doubling(learning_rate):
            return optax.GradientTransformation(
                lambda params: jax.tree.map(lambda p: 2 * p, params),
                lambda updates, state, params=None: (updates, state),
            )

        return doubling


@dataclasses.dataclass(frozen=True)
class _Keeping(_Doubling):
    """An optimizer whose state starts as the weights themselves: an input, which the host has."""

    name: ClassVar[str] = "keeping"

    def _factory(self):
        def keeping(learning_rate):
            return optax.GradientTransformation(
                lambda params: params, lambda updates, state, params=None: (updates, state)
            )

        return keeping


def test_an_optimizer_state_computed_from_the_weights_is_left_to_the_init_program():
    seeds = np.array([[3, 4]], np.uint32)
    hyper = {"learning_rate": np.full((1, 2), 0.1, np.float32)}
    doubling = Run.of(TrainConfig(optimizer=_Doubling()), 2, 3)
    assert host_init.initial_state(doubling, seeds, hyper) is None
    keeping = Run.of(TrainConfig(optimizer=_Keeping()), 2, 3)
    got = host_init.initial_state(keeping, seeds, hyper)
    assert _bytes(got) == _bytes(_init_program(keeping, seeds, hyper))
