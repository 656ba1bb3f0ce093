"""The run-axis-last accelerator against the generic path, its capability table, and the bitwise
independence of a run from the number of runs compiled with it."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.config import Distillation, TrainConfig
from kldiv.data import Dataset, blobs_dataset
from kldiv.engine import lanes
from kldiv.engine.run import Batch, Run, step
from kldiv.engine.runner import (
    LANES_CHUNK,
    _generic_init,
    _lanes_epochs,
    _lanes_init,
    choose_path,
    chunk_size,
    train,
)
from kldiv.losses import loss_names
from kldiv.model import ACTIVATION_FNS
from kldiv.objectives import distillation_targets
from kldiv.optimizers import OPTIMIZERS, SGD, Adam, AdamW, RMSProp


@pytest.fixture(scope="module")
def data():
    return blobs_dataset()


@pytest.fixture(scope="module")
def distill_data(data):
    """Blobs with a distilled student's targets: a made-up teacher's log-probabilities, the true
    classes, and hard-label weights on a fifth of the training rows."""
    rng = np.random.default_rng(0)

    def teacher(y):
        z = 3.0 * y + rng.normal(size=y.shape)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    labelled = rng.random(data.y_train.shape[0]) < 0.2
    weights = np.where(labelled, labelled.size / labelled.sum(), 0.0)
    y_train = distillation_targets(teacher(data.y_train), data.y_train.argmax(1), weights)
    y_val = distillation_targets(teacher(data.y_val), data.y_val.argmax(1), np.ones(500))
    return data._replace(y_train=y_train, y_val=y_val)


def test_capabilities_name_every_config_field():
    """A new TrainConfig field needs a decision here before the accelerator may run it."""
    assert set(lanes.CAPABILITIES) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_every_optimizer_is_decided():
    assert set(lanes.OPTIMIZERS) <= set(OPTIMIZERS.values())


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (TrainConfig(hidden=(200,)), "hidden widths above 128"),
        (TrainConfig(batch_size=600), "batch_size above 512"),
    ],
)
def test_unsupported_configs_fall_back_to_the_generic_path(data, config, reason):
    assert lanes.unsupported(config, data) == reason
    small = config.replace(epochs=1)
    assert train(small, data, [0]).path == "generic"
    with pytest.raises(ValueError, match=f"path: 'lanes' does not support {reason}"):
        train(small, data, [0], path="lanes")


def test_supported_configs_take_the_lanes_path(data):
    assert lanes.unsupported(TrainConfig(), data) is None
    assert train(TrainConfig(epochs=1), data, [0]).path == "lanes"


@pytest.mark.parametrize(("hidden", "features", "classes"), [((50,), 2, 3), ((100, 7), 64, 10)])
def test_multiply_adds_count_the_weights(hidden, features, classes):
    config = TrainConfig(hidden=hidden)
    data = Dataset(*(np.zeros((4, n), np.float32) for n in (features, classes) * 2))
    params = Run.for_data(config, data).model.init(jax.random.key(0))
    assert lanes.multiply_adds(config, data) == sum(w.size for w, _ in params)


@pytest.mark.parametrize(
    ("hidden", "features", "classes", "auto"),
    [
        ((50,), 2, 3, "lanes"),  # the tutorial's: 250 multiply-adds per example
        ((102,), 2, 3, "lanes"),  # 510
        ((103,), 2, 3, "generic"),  # 515, supported, but lanes cost more per run at many seeds
        ((50,), 64, 10, "generic"),  # the digits: 3,700
    ],
)
def test_auto_takes_the_lanes_path_for_small_networks_only(hidden, features, classes, auto):
    config = TrainConfig(hidden=hidden)
    data = Dataset(*(np.zeros((4, n), np.float32) for n in (features, classes) * 2))
    assert lanes.unsupported(config, data) is None
    assert choose_path("auto", config, data) == auto
    assert choose_path("lanes", config, data) == "lanes"
    assert choose_path("generic", config, data) == "generic"


STEP_CONFIGS = (
    [TrainConfig(loss=name, hidden=(6,)) for name in loss_names()]
    + [
        TrainConfig(activation=a, hidden=(8, 6), hidden_init="glorot_uniform")
        for a in ACTIVATION_FNS
    ]
    + [
        TrainConfig(hidden=(7,), optimizer=o)
        for o in (SGD(0.05, 0.5), Adam(), AdamW(weight_decay=0.1), RMSProp(decay=0.8))
    ]
)


def _config_id(c):
    return f"{c.loss}-{c.activation}-{c.hidden}-{c.optimizer.name}"


DISTILL_CONFIGS = [
    TrainConfig(loss="ce", hidden=(6,), distillation=d, optimizer=Adam(learning_rate=0.01))
    for d in (
        Distillation(),
        Distillation(temperature=2.0, soft_weight=0.0),
        Distillation(temperature=1.0, soft_weight=1.0, direction="reverse"),
        Distillation(temperature=3.0, soft_weight=0.5, direction="jsd", beta=0.3),
    )
]


def _distill_id(c):
    d = c.distillation
    return f"{d.direction}-w{d.soft_weight}-T{d.temperature}"


@pytest.mark.parametrize("config", STEP_CONFIGS, ids=_config_id)
def test_step_matches_the_generic_step(data, config):
    _steps_match(data, config)


@pytest.mark.parametrize("config", DISTILL_CONFIGS, ids=_distill_id)
def test_distilled_students_step_matches_the_generic_step(distill_data, config):
    _steps_match(distill_data, config)


def _steps_match(data, config):
    runs, size = 5, config.batch_size
    run = Run.for_data(config, data)
    seeds = jnp.arange(runs, dtype=jnp.uint32)
    hyper = {
        k: jnp.full((runs,), v, jnp.float32) for k, v in config.optimizer.hyperparameters.items()
    }
    state = _generic_init(seeds, hyper, run=run)
    generic = jax.jit(jax.vmap(functools.partial(step, run, key=None, epoch=jnp.int32(0))))
    fast = jax.jit(functools.partial(lanes.step, run))
    params_t, opt_t = lanes.to_runs_last(state.params), lanes.to_runs_last(state.opt_state)
    params, opt_state = state.params, state.opt_state
    # A few steps, so the optimizer state is not zero; the last batch is ragged (weight 0 rows).
    keys = jax.random.split(jax.random.key(0), 3)
    rows = [jax.random.randint(k, (runs, size), 0, data.x_train.shape[0]) for k in keys]
    weights = [jnp.ones((size,), jnp.float32)] * 2 + [(jnp.arange(size) < 20).astype(jnp.float32)]
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    for r, w in zip(rows, weights, strict=True):
        x, y = x_train[r], y_train[r]  # (runs, batch, features)
        batch = Batch(x, y, jnp.broadcast_to(w, (runs, size)))
        params, opt_state, sums = generic(params, opt_state, batch)
        params_t, opt_t, fast_sums = fast(
            params_t, opt_t, jnp.moveaxis(x, 0, -1), jnp.moveaxis(y, 0, -1), w
        )
        for name in run.metric_names:
            if name == "accuracy":
                np.testing.assert_array_equal(fast_sums[name], sums[name])
            else:
                np.testing.assert_allclose(fast_sums[name], sums[name], rtol=1e-5, atol=1e-6)
        for name, got_tree, want_tree in (
            ("params", params_t, params),
            ("opt_state", opt_t, opt_state),
        ):
            for got, want in zip(
                jax.tree.leaves(lanes.to_runs_first(got_tree)),
                jax.tree.leaves(want_tree),
                strict=True,
            ):
                # Float32 sums over the batch in another order: errors scale with the largest term.
                scale = np.abs(np.asarray(want, np.float64)).max() if np.size(want) else 0.0
                np.testing.assert_allclose(
                    got, want, rtol=1e-4, atol=1e-5 * scale + 1e-7, err_msg=name
                )


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(epochs=3),
        TrainConfig(epochs=3, optimizer=Adam(learning_rate=0.01)),
        TrainConfig(epochs=3, optimizer=RMSProp(learning_rate=0.003)),
    ],
    ids=["tutorial", "adam", "rmsprop"],
)
def test_whole_runs_match_the_generic_path(data, config):
    # Training is chaotic (rounding differences grow ~40x per epoch early on): compare 3 epochs.
    seeds = [0, 1, 2]
    fast = train(config, data, seeds, path="lanes")
    generic = train(config, data, seeds, path="generic")
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(fast.history[key], generic.history[key], rtol=2e-3)
    for key in ("accuracy", "val_accuracy"):
        np.testing.assert_allclose(fast.history[key], generic.history[key], atol=0.01)
    for key in fast.final:
        np.testing.assert_allclose(fast.final[key], generic.final[key], rtol=2e-3, atol=0.01)


def test_evaluate_matches_a_numpy_formula(data):
    config = TrainConfig()
    run = Run.of(config, data.n_features, data.n_classes)
    hyper = {k: jnp.full((3,), v, jnp.float32) for k, v in config.optimizer.hyperparameters.items()}
    state = _generic_init(jnp.arange(3, dtype=jnp.uint32), hyper, run=run)
    means = lanes.evaluate(run, lanes.to_runs_last(state.params), data.x_val, data.y_val)
    for i in range(3):
        w1, b1 = (np.asarray(a[i]) for a in state.params[0])
        w2, b2 = (np.asarray(a[i]) for a in state.params[1])
        logits = np.maximum(data.x_val @ w1 + b1, 0) @ w2 + b2
        log_q = logits - logits.max(1, keepdims=True)
        log_q -= np.log(np.exp(log_q).sum(1, keepdims=True))
        want = -(data.y_val * log_q).sum(1).mean()  # one-hot targets: KL = cross-entropy
        np.testing.assert_allclose(means["loss"][i], want, rtol=1e-5)
        want_acc = (logits.argmax(1) == data.y_val.argmax(1)).mean()
        np.testing.assert_allclose(means["accuracy"][i], want_acc, rtol=1e-6)


@pytest.mark.parametrize("rows", [1, 2, 5, 32, 500])
def test_sum_rows_is_a_sum(rows):
    values = np.random.default_rng(rows).normal(size=(rows, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(lanes._sum_rows(jnp.asarray(values)), values.sum(0), rtol=1e-5)


def _lanes_program(seeds, hyper, data, run, n_epochs):
    """Init and epochs for len(seeds) runs, compiled with the runner's options for that chunk."""
    return _compiled_for(len(seeds))(seeds, hyper, data, run, n_epochs)


@functools.cache
def _compiled_for(chunk):
    def program(seeds, hyper, data, run, n_epochs):
        state = _lanes_init(seeds, hyper, run=run)
        state, history, on_train = _lanes_epochs(state, data, run=run, n_epochs=n_epochs)
        return lanes.to_runs_first((state.params, history)), on_train

    return jax.jit(
        program,
        static_argnames=("run", "n_epochs"),
        compiler_options=lanes.compiler_options(chunk),
    )


BITWISE_CONFIGS = [TrainConfig(epochs=3, loss=name) for name in loss_names()] + [
    TrainConfig(epochs=3, hidden=(7, 5), activation="tanh", optimizer=Adam(learning_rate=0.01)),
    TrainConfig(epochs=3, hidden=(6,), activation="sigmoid", optimizer=RMSProp()),
    TrainConfig(epochs=3, hidden=(9,), optimizer=AdamW(learning_rate=0.01)),
    TrainConfig(epochs=3, hidden=(8,), optimizer=SGD(0.05, 0.5)),
]


@pytest.mark.parametrize("config", BITWISE_CONFIGS, ids=_config_id)
def test_program_bits_do_not_depend_on_the_number_of_runs(data, config):
    """Every chunk size the runner compiles (`chunk_size`) gives each run the same bits;
    the optimizer's numbers are runtime arguments, as in the runner, not folded constants."""
    _bits_do_not_depend_on_the_number_of_runs(data, config)


@pytest.mark.parametrize(
    "config", [c.replace(epochs=3) for c in DISTILL_CONFIGS[::3]], ids=_distill_id
)
def test_distilled_students_bits_do_not_depend_on_the_number_of_runs(distill_data, config):
    _bits_do_not_depend_on_the_number_of_runs(distill_data, config)


@pytest.mark.parametrize(
    "config", [c.replace(epochs=3) for c in DISTILL_CONFIGS[:2]], ids=_distill_id
)
def test_whole_distilled_runs_match_the_generic_path(distill_data, config):
    seeds = [0, 1, 2]
    fast = train(config, distill_data, seeds, path="lanes")
    generic = train(config, distill_data, seeds, path="generic")
    for key in fast.history:
        np.testing.assert_allclose(fast.history[key], generic.history[key], rtol=2e-3, atol=0.01)
    for key in fast.final:
        np.testing.assert_allclose(fast.final[key], generic.final[key], rtol=2e-3, atol=0.01)


def _bits_do_not_depend_on_the_number_of_runs(data, config):
    data = Dataset(*(jnp.asarray(a) for a in data))
    run = Run.for_data(config, data)
    seeds = jnp.arange(LANES_CHUNK, dtype=jnp.uint32)
    hyper = {
        k: jnp.full((LANES_CHUNK,), v, jnp.float32)
        for k, v in config.optimizer.hyperparameters.items()
    }
    every = _lanes_program(seeds, hyper, data, run, config.epochs)
    for n in sorted({chunk_size("lanes", runs, 1) for runs in range(1, LANES_CHUNK)}):
        part = _lanes_program(
            seeds[:n], {k: v[:n] for k, v in hyper.items()}, data, run, config.epochs
        )
        for got, want in zip(jax.tree.leaves(part), jax.tree.leaves(every), strict=True):
            np.testing.assert_array_equal(got, want[:n])  # every leaf is run-first
