"""The one training function: minibatch SGD with momentum as a single compiled JAX program.

One run is `lax.scan` over epochs around `lax.scan` over batches; the per-epoch shuffle, the ragged last
batch and the per-epoch validation all happen inside the program, and the history is what the epoch
scan stacks. Many runs are the same training with a run axis: seeds (and the numbers in `Hyper`) ride
along it, in chunks of runs, one chunk per local device per compiled call.

Two gradient engines sit behind `train`, chosen automatically:
  * plain: the per-run functions below (`sgd_step` differentiates with `jax.grad`) under `jax.vmap`.
    Batched kernels choose their order of operations by shape, so chunks have one fixed size
    (SEED_CHUNK, padded) and `--seed s` alone equals seed s inside any batch.
  * fast (`kldiv.fastmlp`, the default on CPU): run axis last, hand-written backward around
    `jax.vjp` of the registry loss, and no operation that mixes runs, so a run's bits do not depend
    on the chunk size at all and one seed compiles and runs a program for one run.

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

from kldiv import fastmlp
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
    """(n,) int32 row order for one epoch: a uniform random permutation, or 0..n-1 without shuffle.

    See `kldiv.fastmlp.epoch_order` (one single-operand sort of random words tagged with the row).
    """
    return fastmlp.epoch_order(key, n, shuffle)


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
    hits = (jnp.argmax(logits, axis=-1) == jnp.argmax(y, axis=-1)).astype(weight.dtype)
    return loss_sum, jnp.sum(hits * weight)


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


# Per-chunk programs of the two engines (traced inside `_program`, which compiles them once for a
# set of devices). The plain engine: `train_epochs` under `jax.vmap` (run axis first), gradients by
# `jax.grad`; batched kernels pick their order of operations by shape, so its chunks have one fixed
# size. The fast engine: `kldiv.fastmlp` (run axis last, hand-written backward, nothing mixes runs).
# An epochs program also evaluates the training set with the weights it ends with, so the last call
# gives the final metrics (the test set's are the last validation row) without a program of its own.
def _plain_init(seeds: jax.Array, data: Dataset, *, config: TrainConfig) -> TrainState:
    return jax.vmap(init_state, in_axes=(None, None, 0))(config, data, seeds)


def _plain_epochs(
    state: TrainState, hyper: Hyper, data: Dataset, *, config: TrainConfig, n_epochs: int
) -> tuple[TrainState, dict[str, jax.Array], tuple[jax.Array, jax.Array]]:
    run = jax.vmap(train_epochs, in_axes=(0, 0, None, None, None), out_axes=(0, 0))
    state, history = run(state, hyper, data, config, n_epochs)
    on_train = jax.vmap(evaluate, in_axes=(0, None, None, None))
    return state, history, on_train(state.params, data.x_train, data.y_train, config)


def _fast_init(seeds: jax.Array, data: Dataset, *, config: TrainConfig) -> fastmlp.StateT:
    state = _plain_init(seeds, data, config=config)
    return fastmlp.StateT(
        fastmlp.to_runs_last(state.params),
        fastmlp.to_runs_last(state.velocity),
        state.shuffle_key,
        jnp.zeros((), jnp.int32),
    )


def _fast_epochs(
    state: fastmlp.StateT, hyper: Hyper, data: Dataset, *, config: TrainConfig, n_epochs: int
) -> tuple[fastmlp.StateT, dict[str, jax.Array], tuple[jax.Array, jax.Array]]:
    state, history = fastmlp.train_epochs(
        state, hyper.learning_rate, hyper.momentum, tuple(data), config, n_epochs
    )
    on_train = fastmlp.evaluate(
        state.params, data.x_train, data.y_train, config.loss, config.activation
    )
    return state, {k: v.T for k, v in history.items()}, on_train  # history (runs, epochs)


def _runs_first(engine: str, params: Params) -> Params:
    """Host copy of the programs' params, (devices, chunk, ...) per leaf whatever the engine."""
    if engine == "fast":  # (devices, ..., chunk): the run axis is last on the device
        return jax.tree.map(lambda a: np.moveaxis(a, -1, 1), params)
    return params


# Runs per compiled call of the fast engine. Its results do not depend on the chunk size, so small
# requests use a smaller power of two (one seed compiles and runs a program for one run).
FAST_CHUNK = 64

_PROGRAMS = {
    "plain": {"init": _plain_init, "epochs": _plain_epochs},
    "fast": {"init": _fast_init, "epochs": _fast_epochs},
}
_COMPILER_OPTIONS = {"plain": None, "fast": fastmlp.COMPILER_OPTIONS}


def _chunk_size(engine: str, n_runs: int, n_devices: int) -> int:
    if engine == "plain":
        return SEED_CHUNK
    per_device = -(-n_runs // n_devices)
    return min(FAST_CHUNK, 1 << max(0, per_device - 1).bit_length())


@functools.lru_cache(maxsize=64)
def _program(
    engine: str, kind: str, config: TrainConfig, n_devices: int, **static: int
) -> Callable:
    """One chunk's `kind` program compiled once for `n_devices` devices, each running one chunk.

    Per-chunk arguments and results carry a leading (n_devices,) axis split over the devices; the
    data (the last argument of every program) is replicated.
    """
    fn = functools.partial(_PROGRAMS[engine][kind], config=config, **static)
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:n_devices]), ("chunk",))
    split, whole = jax.sharding.PartitionSpec("chunk"), jax.sharding.PartitionSpec()

    def per_device(*args: object) -> object:
        *chunked, data = args
        chunked = jax.tree.map(lambda a: a[0], chunked)  # this device's chunk
        return jax.tree.map(lambda a: a[None], fn(*chunked, data))

    n_chunked = {"init": 1, "epochs": 2}[kind]
    spread = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(split,) * n_chunked + (whole,),
        out_specs=split,
        check_vma=False,  # per-device programs: no collectives
    )
    return jax.jit(spread, compiler_options=_COMPILER_OPTIONS[engine])


def _choose_engine(engine: str, config: TrainConfig, data: Dataset) -> str:
    if engine not in ("auto", "fast", "plain"):
        raise ValueError(f"engine: expected 'auto', 'fast' or 'plain', got {engine!r}")
    if engine != "auto":
        return engine
    sizes = layer_sizes(data.n_features, config.hidden, data.n_classes)
    fits = fastmlp.supports(sizes, config.batch_size) and jax.default_backend() == "cpu"
    return "fast" if fits else "plain"


@dataclass(frozen=True)
class TrainResult:
    """Outcome of `train` for S runs (numpy arrays, run axis first).

    seeds (S,); params: the model pytree with a leading (S,) axis; history: HISTORY_KEYS -> (S, epochs);
    final: FINAL_KEYS -> (S,), the final weights evaluated on the train and test sets; engine: the
    engine that computed them ('fast' or 'plain').
    """

    seeds: np.ndarray
    params: Params
    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    engine: str

    def run(self, i: int) -> TrainResult:
        """The i-th run alone, keeping a run axis of length 1."""
        pick = slice(i, i + 1)
        return TrainResult(
            self.seeds[pick],
            jax.tree.map(lambda a: a[pick], self.params),
            {k: v[pick] for k, v in self.history.items()},
            {k: v[pick] for k, v in self.final.items()},
            self.engine,
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
    engine: str = "auto",
) -> TrainResult:
    """Train one run per seed and return weights, history and final metrics.

    Runs are computed in chunks; one compiled call trains one chunk on each local device for a block
    of epochs, the devices concurrently (on CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=2`
    set before jax is imported gives one device per core). A seed's result never depends on the
    other seeds requested.

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
      engine: how gradients are computed: 'fast' (`kldiv.fastmlp`, run axis last, hand-written
        backward; bitwise independent of the chunk size), 'plain' (`jax.grad` under `jax.vmap`, in
        fixed chunks of SEED_CHUNK runs), or 'auto': 'fast' on CPU for the models it covers
        (`fastmlp.supports`), else 'plain'. The two agree to float32 rounding, not bitwise.

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
    data = Dataset(*(np.asarray(a, np.float32) for a in data))
    engine = _choose_engine(engine, config, data)
    n_devices = len(jax.local_devices())
    chunk = _chunk_size(engine, n_runs, n_devices)
    n_chunks = -(-n_runs // chunk)
    n_devices = min(n_devices, n_chunks)
    n_rounds = -(-n_chunks // n_devices)
    total = n_chunks * config.epochs
    pad = n_rounds * n_devices * chunk - n_runs

    def padded(a: np.ndarray) -> np.ndarray:
        # (rounds, devices, chunk): padding repeats the last run; its results are dropped
        return np.concatenate([a, np.repeat(a[-1:], pad)]).reshape(n_rounds, n_devices, chunk)

    all_seeds, all_lrs, all_mus = padded(seed_array), padded(lrs), padded(mus)
    init = _program(engine, "init", config, n_devices)
    params_out, history_out, final_out = [], [], []
    units_done = 0
    # One call computes one chunk per device, the devices concurrently.
    for r in range(n_rounds):
        state = init(all_seeds[r], data)
        hyper = Hyper(all_lrs[r], all_mus[r])
        rows: list[dict[str, np.ndarray]] = []
        done = 0
        while done < config.epochs:
            n_epochs = min(step, config.epochs - done)
            epochs = _program(engine, "epochs", config, n_devices, n_epochs=n_epochs)
            state, history, on_train = epochs(state, hyper, data)
            history = {
                k: v.reshape(n_devices * chunk, -1) for k, v in jax.device_get(history).items()
            }
            rows.append(history)
            first_run = r * n_devices * chunk
            _raise_if_non_finite(history["loss"], all_seeds[r].ravel(), done, n_runs - first_run)
            done += n_epochs
            real_chunks = min(n_devices, n_chunks - r * n_devices)
            units_done += n_epochs * real_chunks
            if on_progress is not None:
                on_progress(units_done, total)
        params = _runs_first(engine, jax.device_get(state.params))
        params_out.append(
            jax.tree.map(lambda a: a.reshape(n_devices * chunk, *a.shape[2:]), params)
        )
        history = {k: np.concatenate([h[k] for h in rows], axis=1) for k in HISTORY_KEYS}
        history_out.append(history)
        train_loss, train_accuracy = (np.reshape(v, -1) for v in jax.device_get(on_train))
        final_out.append(
            {
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "test_loss": history["val_loss"][:, -1],  # the validation set is the test set
                "test_accuracy": history["val_accuracy"][:, -1],
            }
        )

    keep = slice(0, n_runs)
    return TrainResult(
        seeds=seed_array.astype(np.int64),
        params=jax.tree.map(lambda *a: np.concatenate(a)[keep], *params_out),
        history={k: np.concatenate([h[k] for h in history_out])[keep] for k in HISTORY_KEYS},
        final={k: np.concatenate([f[k] for f in final_out])[keep] for k in FINAL_KEYS},
        engine=engine,
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
