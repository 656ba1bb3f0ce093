"""The fast engine against the plain `jax.grad` engine, and a seed's independence of its companions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv import fastmlp
from kldiv.config import TrainConfig
from kldiv.data import Dataset, blobs_dataset
from kldiv.losses import loss_names
from kldiv.train import Hyper, init_state, sgd_step, train


@pytest.fixture(scope="module")
def data():
    return blobs_dataset()


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _same_run(alone, inside) -> bool:
    return (
        _leaves_equal(alone.params, inside.params)
        and all(np.array_equal(alone.history[k], inside.history[k]) for k in alone.history)
        and all(np.array_equal(alone.final[k], inside.final[k]) for k in alone.final)
    )


def test_seed_alone_equals_seed_in_any_batch_bitwise(data):
    config = TrainConfig(epochs=6)
    seeds = list(range(100, 170))  # 70 runs: a full chunk of 64 and a padded chunk of 6
    batch = train(config, data, seeds, engine="fast")
    for i in (0, 4, 63, 64, 69):
        alone = train(config, data, [seeds[i]], engine="fast")
        assert _same_run(alone, batch.run(i)), f"seed {seeds[i]} (position {i})"
    three = train(config, data, seeds[62:65], engine="fast")  # a chunk of 4 (3 + 1 padding)
    for i in range(3):
        assert _same_run(three.run(i), batch.run(62 + i))


@functools.partial(
    jax.jit, static_argnames=("config", "n_epochs"), compiler_options=fastmlp.COMPILER_OPTIONS
)
def _fast_program(seeds, data, config, n_epochs):
    state = jax.vmap(init_state, in_axes=(None, None, 0))(config, data, seeds)
    fast = fastmlp.StateT(
        fastmlp.to_runs_last(state.params),
        fastmlp.to_runs_last(state.velocity),
        state.shuffle_key,
        jnp.zeros((), jnp.int32),
    )
    lr = jnp.full(seeds.shape, config.learning_rate, jnp.float32)
    mu = jnp.full(seeds.shape, config.momentum, jnp.float32)
    fast, history = fastmlp.train_epochs(fast, lr, mu, tuple(data), config, n_epochs)
    return fastmlp.to_runs_first(fast.params), history


@pytest.mark.parametrize(
    "config",
    [TrainConfig(epochs=4), TrainConfig(epochs=3, hidden=(7, 5), loss="js")],
    ids=["tutorial", "js-7-5"],
)
def test_program_bits_do_not_depend_on_the_number_of_runs(data, config):
    # Odd run counts: vector loops over the run axis end in scalar remainders.
    data = Dataset(*(jnp.asarray(a) for a in data))
    seeds = jnp.arange(11, dtype=jnp.uint32)
    params_all, history_all = _fast_program(seeds, data, config, config.epochs)
    for n in (1, 3, 7):
        params, history = _fast_program(seeds[:n], data, config, config.epochs)
        assert _leaves_equal(params, jax.tree.map(lambda a, n=n: a[:n], params_all))
        for key, values in history.items():
            np.testing.assert_array_equal(values, history_all[key][:, :n])


CONFIGS = [
    TrainConfig(),
    TrainConfig(activation="tanh", hidden=(8, 6), hidden_init="glorot_uniform"),
    TrainConfig(activation="sigmoid", hidden=(5,)),
] + [TrainConfig(loss=name, hidden=(6,)) for name in loss_names()]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.loss}-{c.activation}-{c.hidden}")
def test_step_matches_jax_grad(data, config):
    runs, batch = 5, config.batch_size
    seeds = jnp.arange(runs, dtype=jnp.uint32)
    state = jax.vmap(init_state, in_axes=(None, None, 0))(config, data, seeds)
    # A few steps, so the velocity is not zero; the last batch is ragged (weight 0 rows).
    keys = jax.random.split(jax.random.key(0), 3)
    rows = [jax.random.randint(k, (runs, batch), 0, data.x_train.shape[0]) for k in keys]
    weights = [jnp.ones((batch,), jnp.float32)] * 2 + [(jnp.arange(batch) < 20).astype(jnp.float32)]
    hyper = Hyper(jnp.full((runs,), 0.05, jnp.float32), jnp.full((runs,), 0.9, jnp.float32))
    plain = jax.jit(
        jax.vmap(
            functools.partial(sgd_step, config=config),
            in_axes=(0, 0, 0, 0, None),
        )
    )
    fast = jax.jit(
        functools.partial(fastmlp.step, loss_name=config.loss, activation=config.activation)
    )
    params_t = fastmlp.to_runs_last(state.params)
    velocity_t = fastmlp.to_runs_last(state.velocity)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    for r, w in zip(rows, weights, strict=True):
        x, y = x_train[r], y_train[r]  # (runs, batch, features)
        state, (loss_sum, hit_sum) = plain(state, hyper, x, y, w)
        params_t, velocity_t, fast_loss, fast_hits = fast(
            params_t,
            velocity_t,
            hyper.learning_rate,
            hyper.momentum,
            jnp.moveaxis(x, 0, -1),
            jnp.moveaxis(y, 0, -1),
            w,
        )
        np.testing.assert_allclose(fast_loss, loss_sum, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(fast_hits, hit_sum)
        for got, want in zip(
            jax.tree.leaves(fastmlp.to_runs_first(params_t)),
            jax.tree.leaves(state.params),
            strict=True,
        ):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        for got, want in zip(
            jax.tree.leaves(fastmlp.to_runs_first(velocity_t)),
            jax.tree.leaves(state.velocity),
            strict=True,
        ):
            # Float32 sums over the batch in another order: errors scale with the largest term.
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_training_history_matches_the_plain_engine(data):
    # Training is chaotic (rounding differences grow ~40x per epoch early on): compare 3 epochs.
    config = TrainConfig(epochs=3)
    seeds = [0, 1, 2]
    fast = train(config, data, seeds, engine="fast")
    plain = train(config, data, seeds, engine="plain")
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(fast.history[key], plain.history[key], rtol=2e-3)
    for key in ("accuracy", "val_accuracy"):
        np.testing.assert_allclose(fast.history[key], plain.history[key], atol=0.01)
    for key in fast.final:
        np.testing.assert_allclose(fast.final[key], plain.final[key], rtol=2e-3, atol=0.01)


def test_evaluate_matches_the_plain_formula(data):
    config = TrainConfig()
    state = jax.vmap(init_state, in_axes=(None, None, 0))(
        config, data, jnp.arange(3, dtype=jnp.uint32)
    )
    loss, accuracy = fastmlp.evaluate(
        fastmlp.to_runs_last(state.params), data.x_val, data.y_val, config.loss, config.activation
    )
    for i in range(3):
        w1, b1 = (np.asarray(a[i]) for a in state.params[0])
        w2, b2 = (np.asarray(a[i]) for a in state.params[1])
        logits = np.maximum(data.x_val @ w1 + b1, 0) @ w2 + b2
        log_q = logits - logits.max(1, keepdims=True)
        log_q -= np.log(np.exp(log_q).sum(1, keepdims=True))
        want = -(data.y_val * log_q).sum(1).mean()  # one-hot targets: KL = cross-entropy
        np.testing.assert_allclose(loss[i], want, rtol=1e-5)
        want_acc = (logits.argmax(1) == data.y_val.argmax(1)).mean()
        np.testing.assert_allclose(accuracy[i], want_acc, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 20, 500, 513])
def test_epoch_order_is_a_permutation_that_changes_with_the_key(n):
    a = fastmlp.epoch_order(jax.random.key(1), n, True)
    b = fastmlp.epoch_order(jax.random.key(2), n, True)
    assert a.dtype == jnp.int32
    np.testing.assert_array_equal(np.sort(a), np.arange(n))
    if n >= 20:
        assert not np.array_equal(a, b)
    np.testing.assert_array_equal(fastmlp.epoch_order(jax.random.key(1), n, False), np.arange(n))


def test_epoch_order_positions_are_roughly_uniform():
    keys = jax.random.split(jax.random.key(0), 2000)
    orders = np.asarray(jax.vmap(lambda k: fastmlp.epoch_order(k, 10, True))(keys))
    counts = np.stack([(orders == row).sum(0) for row in range(10)])  # (row, position)
    assert counts.min() > 140 and counts.max() < 270  # expected 200 each


@pytest.mark.parametrize("rows", [1, 2, 5, 32, 500])
def test_sum_rows_is_a_sum(rows):
    values = np.random.default_rng(rows).normal(size=(rows, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(fastmlp._sum_rows(jnp.asarray(values)), values.sum(0), rtol=1e-5)


def test_supports_small_models_only():
    assert fastmlp.supports((2, 50, 3), 32)
    assert not fastmlp.supports((2, 1000, 3), 32)


@pytest.mark.parametrize("n", [1, 2, 3, 20, 500, 512])
@pytest.mark.parametrize("shuffle", [True, False])
def test_epoch_orders_equal_the_per_run_order(n, shuffle):
    keys = jax.random.split(jax.random.key(7), 5)
    batched = fastmlp.epoch_orders(keys, n, shuffle)
    assert batched.shape == (n, 5)
    for s, key in enumerate(keys):
        np.testing.assert_array_equal(batched[:, s], fastmlp.epoch_order(key, n, shuffle))


@pytest.mark.parametrize("size", [2, 8, 64])
def test_sort_lanes_sorts_every_column(size):
    words = np.random.default_rng(size).integers(0, 2**32, (size, 6), dtype=np.uint32)
    np.testing.assert_array_equal(fastmlp._sort_lanes(jnp.asarray(words)), np.sort(words, axis=0))
