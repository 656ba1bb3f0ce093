"""The training program against a plain reference loop, Optax, and its own invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kldiv.config import BlobsConfig, TrainConfig
from kldiv.data import blobs_dataset
from kldiv.losses import get_loss
from kldiv.model import apply_mlp
from kldiv.train import (
    FINAL_KEYS,
    HISTORY_KEYS,
    NonFiniteLossError,
    epoch_order,
    init_state,
    train,
)

SMALL = TrainConfig(epochs=3, hidden=(8,))


@pytest.fixture(scope="module")
def data():
    return blobs_dataset()


def reference_history(config, data, seed):
    """A plain Python loop: unpadded batches, jax.grad of the batch mean, Keras' momentum."""
    state = init_state(config, data, jnp.uint32(seed))
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), state.params)
    velocity = jax.tree.map(np.zeros_like, params)
    loss_fn = get_loss(config.loss)

    def batch_loss(p, x, y):
        return jnp.mean(loss_fn(apply_mlp(p, x, config.activation), y))

    def metrics(p, x, y):
        logits = apply_mlp(p, x, config.activation)
        hits = np.argmax(logits, -1) == np.argmax(y, -1)
        return float(jnp.mean(loss_fn(logits, y))), float(np.mean(hits))

    n = data.x_train.shape[0]
    history = {k: [] for k in HISTORY_KEYS}
    with jax.enable_x64(True):
        for epoch in range(config.epochs):
            key = jax.random.fold_in(state.shuffle_key, epoch)
            order = np.asarray(epoch_order(key, n, config.shuffle))
            loss_sum = hit_sum = 0.0
            for start in range(0, n, config.batch_size):
                rows = order[start : start + config.batch_size]
                x, y = np.asarray(data.x_train[rows], np.float64), data.y_train[rows]
                y = np.asarray(y, np.float64)
                batch_mean, acc = metrics(params, x, y)
                loss_sum += batch_mean * len(rows)
                hit_sum += acc * len(rows)
                grads = jax.grad(batch_loss)(params, x, y)
                velocity = jax.tree.map(
                    lambda v, g: config.momentum * v - config.learning_rate * np.asarray(g),
                    velocity,
                    grads,
                )
                params = jax.tree.map(np.add, params, velocity)
            history["loss"].append(loss_sum / n)
            history["accuracy"].append(hit_sum / n)
            val = metrics(params, np.float64(data.x_val), np.float64(data.y_val))
            history["val_loss"].append(val[0])
            history["val_accuracy"].append(val[1])
    return {k: np.array(v) for k, v in history.items()}, params


@pytest.mark.parametrize("loss", ["kl", "ce", "keras_kl"])
def test_matches_a_plain_reference_loop(data, loss):
    config = SMALL.replace(loss=loss)
    result = train(config, data, [4])
    expected, params = reference_history(config, data, 4)
    for key in HISTORY_KEYS:
        np.testing.assert_allclose(result.history[key][0], expected[key], rtol=2e-4, atol=2e-4)
    for (w, b), (w_ref, b_ref) in zip(result.params, params, strict=True):
        np.testing.assert_allclose(w[0], w_ref, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(b[0], b_ref, rtol=1e-3, atol=1e-4)


def test_keras_momentum_equals_optax_sgd_at_constant_learning_rate():
    """Keras: v <- m v - lr g; w <- w + v.  Optax: t <- g + m t; w <- w - lr t."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=4).astype(np.float32) for _ in range(5)]
    w = np.ones(4, np.float32)
    v = np.zeros(4, np.float32)
    opt = optax.sgd(0.01, momentum=0.9)
    w_optax = jnp.ones(4, jnp.float32)
    opt_state = opt.init(w_optax)
    for g in grads:
        v = np.float32(0.9) * v - np.float32(0.01) * g
        w = w + v
        updates, opt_state = opt.update(jnp.asarray(g), opt_state)
        w_optax = optax.apply_updates(w_optax, updates)
    np.testing.assert_allclose(w, w_optax, rtol=1e-6)


def test_result_shapes_and_history_keys(data):
    result = train(SMALL, data, [0, 1, 2])
    assert list(result.history) == list(HISTORY_KEYS)
    assert all(v.shape == (3, 3) for v in result.history.values())
    assert list(result.final) == list(FINAL_KEYS)
    assert all(v.shape == (3,) for v in result.final.values())
    (w1, _), (_, b2) = result.params
    assert w1.shape == (3, 2, 8) and b2.shape == (3, 3)
    np.testing.assert_array_equal(result.seeds, [0, 1, 2])


@pytest.mark.parametrize("engine", ["fast", "plain"])
def test_final_metrics_evaluate_the_returned_weights(data, engine):
    result = train(SMALL, data, [0, 1, 2], engine=engine)
    loss_fn = get_loss(SMALL.loss)
    splits = {"train": (data.x_train, data.y_train), "test": (data.x_val, data.y_val)}
    for run in range(3):
        params = jax.tree.map(lambda a, run=run: a[run], result.params)
        for split, (x, y) in splits.items():
            logits = apply_mlp(params, jnp.asarray(x), SMALL.activation)
            loss = float(jnp.mean(loss_fn(logits, jnp.asarray(y))))
            logits = np.asarray(logits)
            accuracy = np.mean(np.argmax(logits, -1) == np.argmax(y, -1))
            np.testing.assert_allclose(result.final[f"{split}_loss"][run], loss, rtol=1e-5)
            assert result.final[f"{split}_accuracy"][run] == pytest.approx(accuracy, abs=1e-6)
    np.testing.assert_array_equal(result.final["test_loss"], result.history["val_loss"][:, -1])


def test_same_seed_same_run_and_different_seeds_differ(data):
    a, b = train(SMALL, data, [7]), train(SMALL, data, [7])
    c = train(SMALL, data, [8])
    for key in HISTORY_KEYS:
        np.testing.assert_array_equal(a.history[key], b.history[key])
    assert not np.array_equal(a.history["loss"], c.history["loss"])


def test_a_seed_gives_the_same_bits_alone_and_inside_any_batch(data):
    alone = train(SMALL, data, [5])
    for seeds in ([5, 6], [1, 2, 3, 4, 5], list(range(40))):
        inside = train(SMALL, data, seeds).run(seeds.index(5))
        for key in HISTORY_KEYS:
            np.testing.assert_array_equal(inside.history[key], alone.history[key])
        for key in FINAL_KEYS:
            np.testing.assert_array_equal(inside.final[key], alone.final[key])
        for (w, b), (w0, b0) in zip(inside.params, alone.params, strict=True):
            np.testing.assert_array_equal(w, w0)
            np.testing.assert_array_equal(b, b0)


def test_epoch_chunks_do_not_change_results(data):
    config = SMALL.replace(epochs=7)
    whole = train(config, data, [3, 9])
    calls = []
    chunked = train(config, data, [3, 9], epoch_chunk=3, on_progress=lambda d, t: calls.append(d))
    for key in HISTORY_KEYS:
        np.testing.assert_array_equal(whole.history[key], chunked.history[key])
    chunks = calls[-1] // 7  # a unit is one epoch of one chunk of runs
    assert calls == [3 * chunks, 6 * chunks, 7 * chunks]


def test_per_run_learning_rates_equal_separate_runs(data):
    together = train(SMALL, data, [1, 2], learning_rates=[0.01, 0.05], momenta=[0.9, 0.5])
    second = train(SMALL.replace(learning_rate=0.05, momentum=0.5), data, [2])
    np.testing.assert_allclose(together.history["loss"][1], second.history["loss"][0], rtol=1e-6)


def test_epoch_order_is_a_permutation_and_changes_with_the_key():
    a = np.asarray(epoch_order(jax.random.key(0), 500, True))
    b = np.asarray(epoch_order(jax.random.key(1), 500, True))
    np.testing.assert_array_equal(np.sort(a), np.arange(500))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(epoch_order(jax.random.key(0), 5, False), np.arange(5))


def test_shuffles_differ_between_epochs(data):
    """Without shuffling, a full-batch run is deterministic in the data order: compare per-epoch
    shuffles directly through their effect: two epochs of the shuffled run see different orders."""
    state = init_state(SMALL, data, jnp.uint32(0))
    orders = [
        np.asarray(epoch_order(jax.random.fold_in(state.shuffle_key, e), 500, True))
        for e in range(2)
    ]
    assert not np.array_equal(orders[0], orders[1])


def test_divergence_raises_a_clear_error(data):
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch \d+ for seed\(s\) 0"):
        train(SMALL.replace(learning_rate=1e6, epochs=20), data, [0])


def test_bad_seeds_are_rejected(data):
    with pytest.raises(ValueError, match="seeds: expected"):
        train(SMALL, data, [])
    with pytest.raises(ValueError, match="seeds: expected"):
        train(SMALL, data, [-1])
    with pytest.raises(ValueError, match="learning_rates: expected 2 values"):
        train(SMALL, data, [0, 1], learning_rates=[0.1])


def test_other_shapes_train(data):
    small = blobs_dataset(BlobsConfig(n_samples=90, centers=4, n_features=3, n_train=50))
    result = train(TrainConfig(epochs=2, hidden=(6, 5), batch_size=7), small, [0])
    assert result.params[0][0].shape == (1, 3, 6) and result.params[2][0].shape == (1, 5, 4)
    assert np.all(np.isfinite(result.history["loss"]))


def test_tutorial_accuracy_lands_in_the_tutorial_band(data):
    """Over 20 seeds: train about 0.826, test about 0.820, each with a spread of about 0.01."""
    result = train(TrainConfig(), data, list(range(20)))
    train_acc, test_acc = result.final["train_accuracy"], result.final["test_accuracy"]
    assert 0.81 < train_acc.mean() < 0.84 and 0.80 < test_acc.mean() < 0.835
    assert 0.003 < test_acc.std() < 0.03
