"""One run's semantics (`kldiv.engine.run`) against a plain reference loop and its own invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kldiv.config import TrainConfig
from kldiv.data import blobs_dataset
from kldiv.engine.run import Run, State, init, train_epochs
from kldiv.engine.shuffle import epoch_order
from kldiv.losses import get_loss
from kldiv.optimizers import SGD, Adam, RMSProp

SMALL = TrainConfig(epochs=3, hidden=(8,))


@pytest.fixture(scope="module")
def data():
    return blobs_dataset()


def _run(config, data):
    return Run.of(config, data.n_features, data.n_classes)


def _init(config, data, seed):
    run = _run(config, data)
    hyper = {k: jnp.float32(v) for k, v in config.optimizer.hyperparameters.items()}
    return run, init(run, jnp.uint32(seed), hyper)


def reference_history(config, data, seed, optimizer_step):
    """A plain Python loop in float64: unpadded batches, jax.grad of the batch mean.

    optimizer_step(grads, opt_state, params) -> (params, opt_state), with opt_state None at first.
    """
    run, state = _init(config, data, seed)
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), state.params)
    loss_fn = get_loss(config.loss)
    model = run.model

    def batch_loss(p, x, y):
        return jnp.mean(loss_fn(model.apply(p, x), y))

    def metrics(p, x, y):
        logits = model.apply(p, x)
        hits = np.argmax(logits, -1) == np.argmax(y, -1)
        return float(jnp.mean(loss_fn(logits, y))), float(np.mean(hits))

    n = data.x_train.shape[0]
    history = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    opt_state = None
    with jax.enable_x64(True):
        for epoch in range(config.epochs):
            key = jax.random.fold_in(state.shuffle_key, epoch)
            order = np.asarray(epoch_order(key, n, config.shuffle))
            loss_sum = hit_sum = 0.0
            for start in range(0, n, config.batch_size):
                rows = order[start : start + config.batch_size]
                x = np.asarray(data.x_train[rows], np.float64)
                y = np.asarray(data.y_train[rows], np.float64)
                batch_mean, acc = metrics(params, x, y)
                loss_sum += batch_mean * len(rows)
                hit_sum += acc * len(rows)
                grads = jax.tree.map(np.asarray, jax.grad(batch_loss)(params, x, y))
                params, opt_state = optimizer_step(grads, opt_state, params)
            history["loss"].append(loss_sum / n)
            history["accuracy"].append(hit_sum / n)
            val = metrics(params, np.float64(data.x_val), np.float64(data.y_val))
            history["val_loss"].append(val[0])
            history["val_accuracy"].append(val[1])
    return {k: np.array(v) for k, v in history.items()}, params


def keras_sgd_step(learning_rate, momentum):
    """Keras: v <- m v - lr g; w <- w + v, in NumPy."""

    def step(grads, velocity, params):
        velocity = jax.tree.map(np.zeros_like, params) if velocity is None else velocity
        velocity = jax.tree.map(lambda v, g: momentum * v - learning_rate * g, velocity, grads)
        return jax.tree.map(np.add, params, velocity), velocity

    return step


def optax_step(tx):
    """The optimizer from Optax directly (not through kldiv's configs), in float64."""

    def step(grads, opt_state, params):
        opt_state = tx.init(params) if opt_state is None else opt_state
        updates, opt_state = tx.update(grads, opt_state, params)
        return jax.tree.map(np.asarray, optax.apply_updates(params, updates)), opt_state

    return step


def _one_run(config, data, seed):
    run, state = _init(config, data, seed)
    state, history = jax.jit(train_epochs, static_argnums=(0, 3))(run, state, data, config.epochs)
    return state, history


CASES = [
    (SMALL.replace(loss="kl"), keras_sgd_step(0.01, 0.9)),
    (SMALL.replace(loss="ce"), keras_sgd_step(0.01, 0.9)),
    (SMALL.replace(loss="keras_kl"), keras_sgd_step(0.01, 0.9)),
    (SMALL.replace(optimizer=SGD(0.05, 0.0)), keras_sgd_step(0.05, 0.0)),
    (SMALL.replace(optimizer=Adam(learning_rate=0.003)), optax_step(optax.adam(0.003))),
    (
        SMALL.replace(optimizer=RMSProp(learning_rate=0.002, decay=0.8)),
        optax_step(optax.rmsprop(0.002, decay=0.8)),
    ),
]


@pytest.mark.parametrize(
    ("config", "optimizer_step"),
    CASES,
    ids=["kl", "ce", "keras_kl", "sgd-no-momentum", "adam", "rmsprop"],
)
def test_matches_a_plain_reference_loop(data, config, optimizer_step):
    state, history = _one_run(config, data, 4)
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes its int count with floats
        expected, params = reference_history(config, data, 4, optimizer_step)
    for key, values in expected.items():
        np.testing.assert_allclose(history[key], values, rtol=2e-4, atol=2e-4)
    for (w, b), (w_ref, b_ref) in zip(state.params, params, strict=True):
        np.testing.assert_allclose(w, w_ref, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(b, b_ref, rtol=1e-3, atol=1e-4)


def test_run_is_static_and_hashable(data):
    a, b = _run(SMALL, data), _run(SMALL.replace(loss="kld"), data)
    assert a == b and hash(a) == hash(b)
    assert a.model.sizes == (2, 8, 3) and a.metric_names == ("loss", "accuracy")


def test_initial_state_comes_from_the_seed_alone(data):
    _, a = _init(SMALL, data, 7)
    _, b = _init(SMALL, data, 7)
    _, c = _init(SMALL, data, 8)
    assert isinstance(a, State)
    for x, y, z in zip(
        jax.tree.leaves(a.params), jax.tree.leaves(b.params), jax.tree.leaves(c.params), strict=True
    ):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z) or not np.any(x)  # biases are zero in both
    assert int(a.epoch) == 0


def test_shuffles_differ_between_epochs_and_runs(data):
    _, a = _init(SMALL, data, 0)
    _, b = _init(SMALL, data, 1)
    orders = [
        np.asarray(epoch_order(jax.random.fold_in(s.shuffle_key, e), 500, True))
        for s in (a, b)
        for e in range(2)
    ]
    assert len({o.tobytes() for o in orders}) == 4
