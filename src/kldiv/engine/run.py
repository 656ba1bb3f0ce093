"""What one run computes, written once: the model, the objective, the optimizer and the epoch loop.

`Run` is the static description (hashable, a jit static argument): an `MLP`, an objective
(`kldiv.objectives`), an optimizer config whose Optax transformation updates the weights, the batch
size and whether to shuffle. The functions below are one run's semantics in plain JAX; the runner
vmaps them over a chunk of runs, and the run-axis-last accelerator (`kldiv.engine.lanes`) computes
the same thing another way and is tested against them.

Semantics follow Keras `fit`, which the tutorial used:
  * each epoch draws a fresh permutation of the training rows (from fold_in(shuffle_key, epoch));
    the last ragged batch (500 = 15 * 32 + 20) is padded and masked, so every step minimises the
    mean loss over its real rows only;
  * history[m] for each metric m of the objective (loss, accuracy): the epoch's running mean over
    batches weighted by batch size, i.e. the per-example sum over the epoch divided by n_train,
    measured with the weights each batch saw; history[f"val_{m}"]: the whole validation set with
    the weights the epoch ends with.

Randomness: seed s gives key(s), split into (init, shuffle, noise) keys; the weights come from the
first, epoch e's order from fold_in(shuffle, e), step i of epoch e's objective key (only for
objectives that need one) from fold_in(fold_in(noise, e), i), its validation's from
fold_in(fold_in(noise, e), 2**31 - 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from kldiv.config import TrainConfig
from kldiv.data import Dataset
from kldiv.engine.shuffle import epoch_order
from kldiv.model import MLP, VAE, Params
from kldiv.objectives import Objective, objective_of
from kldiv.optimizers import Optimizer


@dataclass(frozen=True)
class Run:
    """What one run computes (static). `Run.of(config, n_features, n_classes)` builds it, and
    `Run.for_data(config, data)` for the arrays it trains on."""

    model: MLP | VAE
    objective: Objective
    optimizer: Optimizer
    batch_size: int
    shuffle: bool

    @classmethod
    def of(cls, config: TrainConfig, n_features: int, n_classes: int) -> Run:
        """`n_classes`: the width of the model's output (a VAE's decoder output)."""
        inits = (config.activation, config.hidden_init, config.output_init)
        if config.vae is not None:
            model: MLP | VAE = VAE(n_features, config.hidden, config.vae.latent, n_classes, *inits)
        else:
            model = MLP((n_features, *config.hidden, n_classes), *inits)
        return cls(model, objective_of(config), config.optimizer, config.batch_size, config.shuffle)

    @classmethod
    def for_data(cls, config: TrainConfig, data: Dataset) -> Run:
        """`Run.of` with the features of `data` and the classes its objective reads from the
        targets' width (the targets are the class probabilities for a classifier, and hold more
        than them for a distilled student)."""
        classes = objective_of(config).n_classes(int(data.y_train.shape[1]))
        return cls.of(config, data.n_features, classes)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.objective.metric_names

    def transformation(self, **hyperparameters: Any) -> optax.GradientTransformation:
        """The optimizer's Optax transformation (`hyperparameters` override its numbers)."""
        return self.optimizer.transformation(**hyperparameters)


class State(NamedTuple):
    """Everything one run carries from epoch to epoch."""

    params: Params
    opt_state: optax.OptState  # the optimizer's state; its hyperparameters are per-run arrays
    shuffle_key: jax.Array  # typed PRNG key
    noise_key: jax.Array  # typed PRNG key, for objectives that need randomness per step
    epoch: jax.Array  # () int32, epochs completed


class Batch(NamedTuple):
    x: jax.Array  # (B, features)
    y: jax.Array  # (B, ...) targets
    weight: jax.Array  # (B,) 1 for real rows, 0 for padding


def init(run: Run, seed: jax.Array, hyperparameters: dict[str, jax.Array]) -> State:
    """A run's initial state from its integer seed and its optimizer numbers (scalars)."""
    init_key, shuffle_key, noise_key = jax.random.split(jax.random.key(seed), 3)
    params = run.model.init(init_key)
    opt_state = run.transformation(**hyperparameters).init(params)
    return State(params, opt_state, shuffle_key, noise_key, jnp.zeros((), jnp.int32))


def batch_sums(
    run: Run, params: Params, batch: Batch, key: jax.Array | None, epoch: jax.Array | None
) -> dict[str, jax.Array]:
    """Each metric summed over the batch's real rows: sum_i w_i m_i (padding rows count 0)."""
    per_example = run.objective(run.model, params, batch.x, batch.y, key, epoch)
    real = batch.weight > 0
    return {k: jnp.sum(jnp.where(real, v, 0.0) * batch.weight) for k, v in per_example.items()}


def step(
    run: Run,
    params: Params,
    opt_state: optax.OptState,
    batch: Batch,
    key: jax.Array | None,
    epoch: jax.Array,
) -> tuple[Params, optax.OptState, dict[str, jax.Array]]:
    """One optimizer step on the batch's mean loss in the epoch after `epoch` epochs; returns the
    new weights and optimizer state and the batch's metric sums (measured with the weights before
    the step)."""

    def objective(params: Params) -> tuple[jax.Array, dict[str, jax.Array]]:
        sums = batch_sums(run, params, batch, key, epoch)
        return sums["loss"] / jnp.sum(batch.weight), sums

    grads, sums = jax.grad(objective, has_aux=True)(params)
    updates, opt_state = run.transformation().update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, sums


def evaluate(
    run: Run, params: Params, x: jax.Array, y: jax.Array, key: jax.Array | None = None
) -> dict[str, jax.Array]:
    """Each metric's mean over all of (x, y) (`key`: for an objective that needs one)."""
    weight = jnp.ones(x.shape[:1], jnp.float32)
    sums = batch_sums(run, params, Batch(x, y, weight), key, None)
    return {k: v / jnp.float32(x.shape[0]) for k, v in sums.items()}


def epoch_batches(run: Run, order: jax.Array, x: jax.Array, y: jax.Array) -> Batch:
    """The epoch's batches stacked, (steps, batch, ...): rows in `order`, the last batch padded
    with row 0 at weight 0."""
    n, size = order.shape[0], run.batch_size
    steps = -(-n // size)
    rows = jnp.pad(order, (0, steps * size - n))
    weight = (jnp.arange(steps * size) < n).astype(jnp.float32).reshape(steps, size)
    return Batch(
        x[rows].reshape(steps, size, *x.shape[1:]),
        y[rows].reshape(steps, size, *y.shape[1:]),
        weight,
    )


def train_epoch(run: Run, state: State, data: Dataset) -> tuple[State, dict[str, jax.Array]]:
    """One epoch: shuffle, every batch once, then validation. Returns the epoch's history row."""
    n = data.x_train.shape[0]
    order = epoch_order(jax.random.fold_in(state.shuffle_key, state.epoch), n, run.shuffle)
    batches = epoch_batches(run, order, data.x_train, data.y_train)
    steps = batches.weight.shape[0]

    def one_step(carry: tuple, inputs: tuple) -> tuple[tuple, dict[str, jax.Array]]:
        params, opt_state = carry
        i, batch = inputs
        key = noise_key(run, state.noise_key, state.epoch, i)
        params, opt_state, sums = step(run, params, opt_state, batch, key, state.epoch)
        return (params, opt_state), sums

    (params, opt_state), sums = jax.lax.scan(
        one_step, (state.params, state.opt_state), (jnp.arange(steps), batches)
    )
    val_key = noise_key(run, state.noise_key, state.epoch, VALIDATION_STEP)
    val = evaluate(run, params, data.x_val, data.y_val, val_key)
    row = {m: jnp.sum(sums[m]) / jnp.float32(n) for m in run.metric_names}
    row |= {f"val_{m}": val[m] for m in run.metric_names}
    return state._replace(params=params, opt_state=opt_state, epoch=state.epoch + 1), row


# Keys of the evaluations, beyond any epoch's steps: the validation after an epoch, and the
# training set's evaluation with the final weights (at the last epoch's index).
VALIDATION_STEP = 2**31 - 1
FINAL_TRAIN_STEP = 2**31 - 2


def noise_key(run: Run, noise: jax.Array, epoch: jax.Array, i: Any) -> jax.Array | None:
    """Step i's key in epoch `epoch` (from 0): fold_in(fold_in(noise, epoch), i), for objectives
    that need one, else None."""
    if not run.objective.needs_key:
        return None
    return jax.random.fold_in(jax.random.fold_in(noise, epoch), i)


def evaluate_final_train(run: Run, state: State, data: Dataset) -> dict[str, jax.Array]:
    """Each metric's mean over the training set with the weights `state` ends with."""
    key = noise_key(run, state.noise_key, state.epoch - 1, FINAL_TRAIN_STEP)
    return evaluate(run, state.params, data.x_train, data.y_train, key)


def train_epochs(
    run: Run, state: State, data: Dataset, n_epochs: int
) -> tuple[State, dict[str, jax.Array]]:
    """`n_epochs` epochs of one run; history values shaped (n_epochs,)."""

    def body(carry: State, _: None) -> tuple[State, dict[str, jax.Array]]:
        return train_epoch(run, carry, data)

    return jax.lax.scan(body, state, None, length=n_epochs)
