"""Evidence only: `kldiv.train` as of commit dc574cc (plain vmap, `jax.random.permutation`).

Kept so benchmarks/bench_seeds.py can time the starting point (`--engines baseline`).

The one training function: minibatch SGD with momentum as a single compiled JAX program.

One run is `lax.scan` over epochs around `lax.scan` over batches; the per-epoch shuffle, the ragged last
batch and the per-epoch validation all happen inside the program, and the history is what the epoch
scan stacks. Many runs are the same function under `jax.vmap`: seeds (and the numbers in `Hyper`) ride
along a leading run axis. Seeds are evaluated in fixed-size chunks, so a seed's result does not depend
on which other seeds were computed with it (`--seed s` alone equals seed s inside any batch).

Semantics follow Keras `fit`, which the tutorial used:
  * SGD with momentum in Keras' form: v <- mu * v - lr * g;  w <- w + v.
  * Each epoch draws a fresh permutation of the training rows; the last ragged batch (500 = 15 * 32 + 20)
    is padded and masked so every step averages over its real rows only.
  * history['loss'] / ['accuracy']: means over the epoch's batches weighted by batch size (Keras'
    running mean), i.e. the per-example sum over the epoch divided by n_train, measured with the weights
    each batch saw. history['val_loss'] / ['val_accuracy']: the whole validation set, at epoch end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kldiv.config import TrainConfig
from kldiv.data import Dataset
from kldiv.losses import get_loss
from kldiv.model import Params, apply_mlp, init_mlp, layer_sizes

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
FINAL_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")

# Runs per compiled call. Fixed, so XLA compiles one program whatever the number of seeds and a seed's
# arithmetic never depends on its companions (padding fills the last chunk).
SEED_CHUNK = 25


class Hyper(NamedTuple):
    """Per-run numbers that only change values, traced (one compiled program serves a grid of them)."""

    learning_rate: jax.Array  # () float32
    momentum: jax.Array  # () float32


class TrainState(NamedTuple):
    """Everything one run carries from epoch to epoch."""

    params: Params
    velocity: Params
    shuffle_key: jax.Array  # typed PRNG key; epoch e shuffles with fold_in(shuffle_key, e)
    epoch: jax.Array  # () int32, epochs completed


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss; the message names the epoch and the seeds."""


def init_state(config: TrainConfig, data: Dataset, seed: jax.Array) -> TrainState:
    """Initial weights, zero velocity and the shuffle key, all derived from the integer `seed`."""
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    sizes = layer_sizes(data.n_features, config.hidden, data.n_classes)
    params = init_mlp(init_key, sizes, config.hidden_init, config.output_init)
    velocity = jax.tree.map(jnp.zeros_like, params)
    return TrainState(params, velocity, shuffle_key, jnp.zeros((), jnp.int32))


def epoch_order(key: jax.Array, n: int, shuffle: bool) -> jax.Array:
    """(n,) int32 row order for one epoch: a uniform random permutation, or 0..n-1 without shuffle."""
    if not shuffle:
        return jnp.arange(n, dtype=jnp.int32)
    return jax.random.permutation(key, n).astype(jnp.int32)


def batch_metrics(
    params: Params, x: jax.Array, y: jax.Array, weight: jax.Array, config: TrainConfig
) -> tuple[jax.Array, jax.Array]:
    """Weighted sums over a batch: (sum_i w_i * loss_i, sum_i w_i * [argmax logits_i == argmax y_i]).

    x (B, features), y (B, classes), weight (B,) in {0, 1}; rows with weight 0 are padding.
    """
    logits = apply_mlp(params, x, config.activation)
    per_example = get_loss(config.loss)(logits, y)  # (B,)
    real = weight > 0
    loss_sum = jnp.sum(jnp.where(real, per_example, 0.0) * weight)
    hits = jnp.argmax(logits, axis=-1) == jnp.argmax(y, axis=-1)
    return loss_sum, jnp.sum(jnp.where(real, hits, False) * weight)


def evaluate(
    params: Params, x: jax.Array, y: jax.Array, config: TrainConfig
) -> tuple[jax.Array, jax.Array]:
    """Mean loss (nats) and accuracy of `params` on the whole of (x, y)."""
    weight = jnp.ones(x.shape[:1], jnp.float32)
    loss_sum, hits = batch_metrics(params, x, y, weight, config)
    n = jnp.float32(x.shape[0])
    return loss_sum / n, hits / n


def sgd_step(
    state: TrainState,
    hyper: Hyper,
    x: jax.Array,
    y: jax.Array,
    weight: jax.Array,
    config: TrainConfig,
) -> tuple[TrainState, tuple[jax.Array, jax.Array]]:
    """One Keras SGD-momentum step on the batch's mean loss; returns the batch's weighted sums."""

    def objective(params: Params) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        loss_sum, hits = batch_metrics(params, x, y, weight, config)
        return loss_sum / jnp.sum(weight), (loss_sum, hits)

    grads, sums = jax.grad(objective, has_aux=True)(state.params)
    velocity = jax.tree.map(
        lambda v, g: hyper.momentum * v - hyper.learning_rate * g, state.velocity, grads
    )
    params = jax.tree.map(jnp.add, state.params, velocity)
    return state._replace(params=params, velocity=velocity), sums


def train_epoch(
    state: TrainState, hyper: Hyper, data: Dataset, config: TrainConfig
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One epoch: shuffle, every batch once, then validation. Returns the epoch's history row."""
    n, batch = data.x_train.shape[0], config.batch_size
    steps = -(-n // batch)
    order = epoch_order(jax.random.fold_in(state.shuffle_key, state.epoch), n, config.shuffle)
    order = jnp.pad(order, (0, steps * batch - n))  # padding rows repeat row 0 with weight 0
    weight = (jnp.arange(steps * batch) < n).astype(jnp.float32).reshape(steps, batch)
    xs = data.x_train[order].reshape(steps, batch, -1)
    ys = data.y_train[order].reshape(steps, batch, -1)

    def step(carry: TrainState, batch_arrays: tuple[jax.Array, ...]) -> tuple[TrainState, tuple]:
        return sgd_step(carry, hyper, *batch_arrays, config)

    state, (loss_sums, hit_sums) = jax.lax.scan(step, state, (xs, ys, weight))
    val_loss, val_accuracy = evaluate(state.params, data.x_val, data.y_val, config)
    row = {
        "loss": jnp.sum(loss_sums) / n,
        "accuracy": jnp.sum(hit_sums) / n,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }
    return state._replace(epoch=state.epoch + 1), row


def train_epochs(
    state: TrainState, hyper: Hyper, data: Dataset, config: TrainConfig, n_epochs: int
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`n_epochs` epochs of one run; history values shaped (n_epochs,)."""

    def body(carry: TrainState, _: None) -> tuple[TrainState, dict[str, jax.Array]]:
        return train_epoch(carry, hyper, data, config)

    return jax.lax.scan(body, state, None, length=n_epochs)


def final_metrics(params: Params, data: Dataset, config: TrainConfig) -> dict[str, jax.Array]:
    """The tutorial's `model.evaluate` on train and test with the final weights."""
    train_loss, train_accuracy = evaluate(params, data.x_train, data.y_train, config)
    test_loss, test_accuracy = evaluate(params, data.x_val, data.y_val, config)
    return {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    }


# Compiled programs over a chunk of runs: data is shared (in_axes None), everything else is per run.
@functools.partial(jax.jit, static_argnames="config")
def _init_chunk(config: TrainConfig, data: Dataset, seeds: jax.Array) -> TrainState:
    return jax.vmap(init_state, in_axes=(None, None, 0))(config, data, seeds)


@functools.partial(jax.jit, static_argnames=("config", "n_epochs"))
def _epochs_chunk(
    state: TrainState, hyper: Hyper, data: Dataset, config: TrainConfig, n_epochs: int
) -> tuple[TrainState, dict[str, jax.Array]]:
    run = jax.vmap(train_epochs, in_axes=(0, 0, None, None, None), out_axes=(0, 0))
    return run(state, hyper, data, config, n_epochs)


@functools.partial(jax.jit, static_argnames="config")
def _final_chunk(params: Params, data: Dataset, config: TrainConfig) -> dict[str, jax.Array]:
    return jax.vmap(final_metrics, in_axes=(0, None, None))(params, data, config)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of `train` for S runs (numpy arrays, run axis first).

    seeds (S,); params: the model pytree with a leading (S,) axis; history: HISTORY_KEYS -> (S, epochs);
    final: FINAL_KEYS -> (S,), the final weights evaluated on the train and test sets.
    """

    seeds: np.ndarray
    params: Params
    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]

    def run(self, i: int) -> TrainResult:
        """The i-th run alone, keeping a run axis of length 1."""
        pick = slice(i, i + 1)
        return TrainResult(
            self.seeds[pick],
            jax.tree.map(lambda a: a[pick], self.params),
            {k: v[pick] for k, v in self.history.items()},
            {k: v[pick] for k, v in self.final.items()},
        )


ProgressFn = Callable[[int, int], None]


def _check_seeds(seeds: Sequence[int]) -> np.ndarray:
    array = np.asarray(seeds)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"seeds: expected a non-empty sequence of integers, got {seeds!r}")
    if array.min() < 0 or array.max() > np.iinfo(np.uint32).max:
        raise ValueError(f"seeds: expected integers in [0, 2**32), got {seeds!r}")
    return array.astype(np.uint32)


def _check_data(data: Dataset, config: TrainConfig) -> None:
    for name, array in data._asdict().items():
        if np.ndim(array) != 2:
            raise ValueError(f"data.{name}: expected a 2-D array, got shape {np.shape(array)}")
    if data.x_train.shape[1] != data.x_val.shape[1]:
        raise ValueError(
            f"data.x_val: expected {data.x_train.shape[1]} features like x_train, "
            f"got {data.x_val.shape[1]}"
        )
    if data.y_train.shape[1] != data.y_val.shape[1]:
        raise ValueError(
            f"data.y_val: expected {data.y_train.shape[1]} classes like y_train, "
            f"got {data.y_val.shape[1]}"
        )


def train(
    config: TrainConfig,
    data: Dataset,
    seeds: Sequence[int],
    *,
    learning_rates: Sequence[float] | None = None,
    momenta: Sequence[float] | None = None,
    epoch_chunk: int | None = None,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train one run per seed and return weights, history and final metrics.

    Args:
      config: model and training configuration (static: changing it recompiles).
      data: training and validation arrays, shared by every run.
      seeds: one integer per run in [0, 2**32); seed s derives the initial weights and every epoch's
        shuffle, so the same seed always gives the same run.
      learning_rates, momenta: optional per-run values (default: the config's), traced, so a grid of
        them reuses one compiled program.
      epoch_chunk: epochs per compiled call; smaller values give `on_progress` more ticks and stop
        sooner on a non-finite loss, without changing any result.
      on_progress: called as on_progress(units_done, units_total) after each call, where a unit is
        one epoch of one chunk of runs.

    Raises:
      NonFiniteLossError: a run's training loss became NaN or infinite.
    """
    seed_array = _check_seeds(seeds)
    _check_data(data, config)
    n_runs = seed_array.size

    def per_run(values: Sequence[float] | None, default: float, name: str) -> np.ndarray:
        out = np.full(n_runs, default, np.float32) if values is None else np.asarray(values)
        if out.shape != (n_runs,):
            raise ValueError(f"{name}: expected {n_runs} values (one per seed), got {out.shape}")
        return out.astype(np.float32)

    lrs = per_run(learning_rates, config.learning_rate, "learning_rates")
    mus = per_run(momenta, config.momentum, "momenta")
    step = config.epochs if epoch_chunk is None else max(1, min(epoch_chunk, config.epochs))
    data = Dataset(*(jnp.asarray(a, jnp.float32) for a in data))

    n_chunks = -(-n_runs // SEED_CHUNK)
    total = n_chunks * config.epochs
    pad = n_chunks * SEED_CHUNK - n_runs

    def padded(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.repeat(a[-1:], pad)])

    all_seeds, all_lrs, all_mus = padded(seed_array), padded(lrs), padded(mus)
    params_out, history_out, final_out = [], [], []
    for c in range(n_chunks):
        sl = slice(c * SEED_CHUNK, (c + 1) * SEED_CHUNK)
        state = _init_chunk(config, data, jnp.asarray(all_seeds[sl]))
        hyper = Hyper(jnp.asarray(all_lrs[sl]), jnp.asarray(all_mus[sl]))
        rows: list[dict[str, np.ndarray]] = []
        done = 0
        while done < config.epochs:
            n_epochs = min(step, config.epochs - done)
            state, chunk_history = _epochs_chunk(state, hyper, data, config, n_epochs)
            chunk_history = jax.device_get(chunk_history)
            rows.append(chunk_history)
            _raise_if_non_finite(
                chunk_history["loss"], all_seeds[sl], done, n_runs - c * SEED_CHUNK
            )
            done += n_epochs
            if on_progress is not None:
                on_progress(c * config.epochs + done, total)
        params_out.append(jax.device_get(state.params))
        history_out.append({k: np.concatenate([r[k] for r in rows], axis=1) for k in HISTORY_KEYS})
        final_out.append(jax.device_get(_final_chunk(state.params, data, config)))

    keep = slice(0, n_runs)
    return TrainResult(
        seeds=seed_array.astype(np.int64),
        params=jax.tree.map(lambda *a: np.concatenate(a)[keep], *params_out),
        history={k: np.concatenate([h[k] for h in history_out])[keep] for k in HISTORY_KEYS},
        final={k: np.concatenate([f[k] for f in final_out])[keep] for k in FINAL_KEYS},
    )


def _raise_if_non_finite(loss: np.ndarray, seeds: np.ndarray, start: int, n_real: int) -> None:
    """loss (runs, epochs) of one chunk; only the first `n_real` runs are real (the rest is padding)."""
    bad = ~np.isfinite(loss[:n_real])
    if bad.any():
        runs, epochs = np.nonzero(bad)
        first = int(epochs.min())
        bad_seeds = sorted({int(seeds[r]) for r in runs})
        shown = ", ".join(map(str, bad_seeds[:10])) + (" ..." if len(bad_seeds) > 10 else "")
        raise NonFiniteLossError(
            f"training diverged: non-finite loss at epoch {start + first + 1} for seed(s) {shown}; "
            "try a smaller learning rate"
        )
