"""The MLP training program for many runs at once: run axis last, hand-written backward.

Same training as the plain engine in `kldiv.train` (Keras SGD momentum, per-epoch shuffle, masked
ragged last batch, running-mean history, per-epoch validation on the whole validation set), written
for XLA:CPU, where a batched `jax.grad` program runs at a fraction of the machine's speed:

  * Layout: every per-run array carries the run axis LAST: W (fan_in, fan_out, S), b (fan_out, S),
    activations (rows, width, S). The runs are the vector lanes of every loop.
  * Contractions are explicit chains of elementwise multiply-adds over the contracted index
    (`_dense`, `_dense_t`, and `_outer_sum`/`_chain_rows` for the gradients' sums over the
    batch), other sums over rows are fixed pairwise trees of slices (`_sum_rows`), and the
    registry loss reduces over the class axis, which is not the minor one
    (`_per_example_loss`). No dot, no reduce over a run's rows, nothing that mixes runs: the
    operations applied to a run, and their order, do not depend on S, so a seed gives the same
    bits alone or inside any batch.
  * The epoch's shuffles of all S runs are sorted together by a bitonic network that is
    elementwise across runs (`epoch_orders`), not by S comparison sorts.
  * Backward: z_l = a_{l-1} W_l + b_l, a_l = f(z_l); the loss gradient with respect to the logits
    comes from `jax.vjp` of the registry loss and f' from `jax.vjp` of the activation; then
    dW_l = sum_rows a_{l-1}^T delta_l, db_l = sum_rows delta_l, delta_{l-1} = f'(z_{l-1}) *
    (delta_l W_l^T).
  * Fusion control: the loss block sits behind a conditional (`_fence`) so its inputs (the logits)
    are computed once rather than inside every consumer, and each step's batch arrives in the loop
    carry rather than as a dynamic slice, which keeps LLVM from vectorising the fusions reading it.

tests/test_fastmlp.py checks the steps against `jax.grad` and the bitwise independence of S.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from kldiv.config import TrainConfig
from kldiv.losses import TrainingLoss, get_loss
from kldiv.model import ACTIVATION_FNS

# Compile with these (`jax.jit(..., compiler_options=COMPILER_OPTIONS)`): YNNPACK library fusions
# off, because their kernels choose vector code paths by shape (an `exp` over (500, 3) and over
# (16000, 3) differ in the last bit), which would make a run's bits depend on the chunk size.
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}

# (W (fan_in, fan_out, S), b (fan_out, S)) per layer, run axis last.
LayerT = tuple[jax.Array, jax.Array]
ParamsT = tuple[LayerT, ...]


class StateT(NamedTuple):
    """A chunk of runs, run axis last; `keys` (S,) typed PRNG keys, `epoch` () int32 (shared)."""

    params: ParamsT
    velocity: ParamsT
    keys: jax.Array
    epoch: jax.Array


def to_runs_last(params: tuple) -> ParamsT:
    """Params with a leading run axis (S, ...) -> run axis last (..., S)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), params)


def to_runs_first(params: ParamsT) -> tuple:
    """Inverse of `to_runs_last`."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), params)


def _sum_rows(t: jax.Array) -> jax.Array:
    """Sum over axis 0 as a fixed pairwise tree of slices: (R, ...) -> (...).

    The order of the additions depends on R only, never on the other axes, so the result for one
    run is the same whatever the number of runs (XLA's reduce kernels choose their order by shape).
    """
    while t.shape[0] > 1:
        if t.shape[0] % 2:
            t = jnp.concatenate([t, jnp.zeros_like(t[:1])])
        half = t.shape[0] // 2
        t = t[:half] + t[half:]
    return t[0]


def _chain_rows(t: jax.Array) -> jax.Array:
    """Sum over axis 0 as one chain, t[0] + t[1] + ...: (R, ...) -> (...)."""
    out = t[0]
    for r in range(1, t.shape[0]):
        out = out + t[r]
    return out


def _outer_sum(a: jax.Array, delta: jax.Array) -> jax.Array:
    """sum_r a[r]^T delta[r] per run as one chain over rows: a (R, K, S), delta (R, J, S) -> (K, J, S)."""
    out = a[0, :, None, :] * delta[0, None, :, :]
    for r in range(1, a.shape[0]):
        out = out + a[r, :, None, :] * delta[r, None, :, :]
    return out


def _dense(a: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """a W + b per run: a (R, K, S or 1), w (K, J, S), b (J, S) -> (R, J, S).

    z[r, j, s] = (...(a[r, 0, s] w[0, j, s] + a[r, 1, s] w[1, j, s]) + ...) + b[j, s].
    """
    z = a[:, 0:1, :] * w[0][None]
    for k in range(1, w.shape[0]):
        z = z + a[:, k : k + 1, :] * w[k][None]
    return z + b[None]


def _dense_t(delta: jax.Array, w: jax.Array) -> jax.Array:
    """delta W^T per run: delta (R, J, S), w (K, J, S) -> (R, K, S), a chain over j."""
    out = delta[:, 0:1, :] * w[:, 0][None]
    for j in range(1, w.shape[1]):
        out = out + delta[:, j : j + 1, :] * w[:, j][None]
    return out


def _per_example_loss(loss: TrainingLoss, logits: jax.Array, targets: jax.Array) -> jax.Array:
    """The registry loss per row and run: logits, targets (R, C, S) -> (R, S).

    The class axis is not the minor one, so the loss's reductions over it run as a plain loop
    over the classes for each (row, run), vectorised across runs: the same order for any S.
    """
    return loss(logits, targets, axis=1)


def _forward(
    params: ParamsT, x: jax.Array, act: Callable[[jax.Array], jax.Array]
) -> tuple[jax.Array, list[jax.Array], list[Callable]]:
    """Logits (R, C, S), the input of each layer, and the activations' vjp functions."""
    inputs, act_vjps = [], []
    a = x
    for w, b in params[:-1]:
        inputs.append(a)
        a, act_vjp = jax.vjp(act, _dense(a, w, b))
        act_vjps.append(act_vjp)
    inputs.append(a)
    w, b = params[-1]
    logits = _dense(a, w, b)
    return logits, inputs, act_vjps


def _hits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """(R, S) float32: 1 where the predicted class is the target's most probable class.

    argmax is exact in any evaluation order (ties go to the lowest index), so its reduce is safe.
    """
    return (jnp.argmax(logits, axis=1) == jnp.argmax(targets, axis=1)).astype(jnp.float32)


def _fence(fn: Callable, *args: jax.Array) -> tuple:
    """fn(*args) with its inputs and outputs materialised in memory.

    XLA:CPU otherwise fuses cheap producers into every consumer, recomputing them (a 50-term chain
    per logit, once per use). A conditional is a fusion boundary; both branches are `fn`, so the
    predicate (data-dependent, so XLA cannot fold it) never changes the result.
    """
    pred = args[0].ravel()[0] == args[0].ravel()[0]
    return jax.lax.cond(pred, fn, fn, *args)


def _momentum(
    p: jax.Array, v: jax.Array, g: jax.Array, lr: jax.Array, mu: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Keras SGD momentum for one parameter (..., S): v <- mu v - lr g; p <- p + v."""
    lanes = (1,) * (p.ndim - 1) + (-1,)  # lr, mu (S,) broadcast over the parameter's own axes
    v = mu.reshape(lanes) * v - lr.reshape(lanes) * g
    return p + v, v


def step(
    params: ParamsT,
    velocity: ParamsT,
    learning_rate: jax.Array,
    momentum: jax.Array,
    x: jax.Array,
    y: jax.Array,
    weight: jax.Array,
    loss_name: str,
    activation: str,
) -> tuple[ParamsT, ParamsT, jax.Array, jax.Array]:
    """One Keras SGD-momentum step for S runs on their own batches.

    x (B, K, S), y (B, C, S) the runs' batches; weight (B,) in {0, 1} (0 marks padding rows, shared
    by all runs); learning_rate, momentum (S,). The objective of run s is
    sum_r weight[r] loss(r, s) / sum_r weight[r]; v <- mu v - lr g; w <- w + v.
    Returns the new params and velocity and the batch's weighted loss and hit sums, each (S,).
    """
    loss = get_loss(loss_name)
    act = ACTIVATION_FNS[activation]
    logits, inputs, act_vjps = _forward(params, x, act)

    def loss_block(logits: jax.Array, y: jax.Array, weight: jax.Array) -> tuple:
        per_example, loss_vjp = jax.vjp(lambda z: _per_example_loss(loss, z, y), logits)
        scale = (weight / jnp.sum(weight))[:, None]  # (B, 1); shared by all runs, (B,) for any S
        (delta,) = loss_vjp(jnp.broadcast_to(scale, per_example.shape))  # (B, C, S)
        real = weight[:, None]  # (B, 1)
        loss_sum = _sum_rows(jnp.where(real > 0, per_example, 0.0) * real)
        hit_sum = _sum_rows(_hits(logits, y) * real)
        return delta, loss_sum, hit_sum

    delta, loss_sum, hit_sum = _fence(loss_block, logits, y, weight)
    grads = []
    for i in range(len(params) - 1, -1, -1):
        w, _ = params[i]
        a = inputs[i]  # (B, K, S)
        grads.append((_outer_sum(a, delta), _chain_rows(delta)))
        if i > 0:
            (delta,) = act_vjps[i - 1](_dense_t(delta, w))
    grads.reverse()
    new_params, new_velocity = [], []
    for layer, layer_velocity, layer_grads in zip(params, velocity, grads, strict=True):
        updated = [
            _momentum(p, v, g, learning_rate, momentum)
            for p, v, g in zip(layer, layer_velocity, layer_grads, strict=True)
        ]
        new_params.append(tuple(p for p, _ in updated))
        new_velocity.append(tuple(v for _, v in updated))
    return tuple(new_params), tuple(new_velocity), loss_sum, hit_sum


def evaluate(
    params: ParamsT, x: jax.Array, y: jax.Array, loss_name: str, activation: str
) -> tuple[jax.Array, jax.Array]:
    """Mean loss and accuracy of S runs on the shared rows x (R, K), y (R, C): two (S,) arrays."""
    logits, _, _ = _forward(params, x[:, :, None], ACTIVATION_FNS[activation])  # (R, C, S)

    def metrics(logits: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        y = jnp.broadcast_to(y[:, :, None], logits.shape)
        per_example = _per_example_loss(get_loss(loss_name), logits, y)  # (R, S)
        n = jnp.float32(x.shape[0])
        return _sum_rows(per_example) / n, _sum_rows(_hits(logits, y)) / n

    return _fence(metrics, logits, y)


# Above this many rows the random high bits of a tagged word get too few (see `epoch_order`).
MAX_TAGGED_ROWS = 1 << 16


def _tag_bits(n: int) -> int:
    """Low bits that hold a row index in [0, n)."""
    return max(1, (n - 1).bit_length())


def _tagged_words(key: jax.Array, n: int) -> jax.Array:
    """(n,) uint32 random words with the row index in their low `_tag_bits(n)` bits."""
    mask = jnp.uint32((1 << _tag_bits(n)) - 1)
    words = jax.random.bits(key, (n,), jnp.uint32)
    return (words & ~mask) | jnp.arange(n, dtype=jnp.uint32)


def epoch_order(key: jax.Array, n: int, shuffle: bool) -> jax.Array:
    """(n,) int32 row order for one epoch: a uniform random permutation, or 0..n-1 without shuffle.

    Random 32-bit words get the row index in their low ceil(log2 n) bits and go through one
    single-operand sort (several times cheaper on XLA:CPU than `jax.random.permutation`'s key-value
    sort); the low bits of the sorted words are the permutation. The keys are distinct, so the result
    is exact, and rows whose random high bits tie keep their index order (probability ~ n^2 / 2^33
    per epoch at n = 500). Above 2**16 rows the high bits get too few, and the key-value sort is used.
    """
    if not shuffle:
        return jnp.arange(n, dtype=jnp.int32)
    if n > MAX_TAGGED_ROWS:
        return jax.random.permutation(key, n).astype(jnp.int32)
    mask = jnp.uint32((1 << _tag_bits(n)) - 1)
    return (jax.lax.sort(_tagged_words(key, n)) & mask).astype(jnp.int32)


def epoch_orders(keys: jax.Array, n: int, shuffle: bool) -> jax.Array:
    """(n, S) int32: `epoch_order(keys[s], n, shuffle)` for each of the S keys, run axis last.

    The same permutations, sorted by `_sort_lanes` (a bitonic network of elementwise min/max
    across the runs) rather than by one comparison sort per run, which costs XLA:CPU about 20 ns
    per element.
    """
    if not shuffle or n > MAX_TAGGED_ROWS:
        return jax.vmap(lambda k: epoch_order(k, n, shuffle), out_axes=1)(keys)
    words = jax.vmap(lambda k: _tagged_words(k, n), out_axes=1)(keys)  # (n, S)
    size = 1 << _tag_bits(n)
    # Padding words sort last: all ones, whose low bits (size - 1 >= n) name no real row.
    words = jnp.pad(words, ((0, size - n), (0, 0)), constant_values=jnp.uint32(0xFFFFFFFF))
    mask = jnp.uint32(size - 1)
    return (_sort_lanes(words)[:n] & mask).astype(jnp.int32)


def _sort_lanes(a: jax.Array) -> jax.Array:
    """Sort (2**m, S) along axis 0, every column on its own: a bitonic network of min/max stages.

    Stage (k, j), for k = 2, 4, ..., 2**m and j = k/2, ..., 1, compares rows i and i ^ j; the pair
    is put in ascending order where bit k of i is 0, else descending. Each stage is elementwise
    across the S columns; the m (m + 1) / 2 stages run in a loop, so the program stays small.
    """
    size = a.shape[0]
    stages = [(1 << p, 1 << q) for p in range(1, size.bit_length()) for q in range(p - 1, -1, -1)]
    ks, js = (jnp.array(column, jnp.int32) for column in zip(*stages, strict=True))
    rows = jnp.arange(size, dtype=jnp.int32)

    def stage(t: jax.Array, a: jax.Array) -> jax.Array:
        partner = a[rows ^ js[t]]
        keep_min = ((rows & ks[t]) == 0) == ((rows & js[t]) == 0)  # (size,)
        low, high = jnp.minimum(a, partner), jnp.maximum(a, partner)
        return jnp.where(keep_min[:, None], low, high)

    return jax.lax.fori_loop(0, len(stages), stage, a)


def train_epochs(
    state: StateT,
    learning_rate: jax.Array,
    momentum: jax.Array,
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    config: TrainConfig,
    n_epochs: int,
) -> tuple[StateT, dict[str, jax.Array]]:
    """`n_epochs` epochs of S runs; history values shaped (n_epochs, S).

    data = (x_train (n, K), y_train (n, C), x_val, y_val), shared by the runs; config a
    `kldiv.config.TrainConfig` (static). Epoch e of run s shuffles with fold_in(keys[s], e).
    """
    x_train, y_train, x_val, y_val = data
    n, batch = x_train.shape[0], config.batch_size
    steps = -(-n // batch)
    runs = state.keys.shape[0]
    # Padding rows repeat row 0 with weight 0, shared by every run.
    weight = (jnp.arange(steps * batch) < n).astype(jnp.float32).reshape(steps, batch)

    def one_step(i: jax.Array, carry: tuple) -> tuple:
        params, velocity, loss_total, hit_total, batch_now, table = carry
        params, velocity, loss_sum, hit_sum = step(
            params, velocity, learning_rate, momentum, *batch_now, config.loss, config.activation
        )
        # The next batch rides in the carry: the compute fusions then read loop parameters, not a
        # dynamic slice whose index load (not marked invariant) keeps LLVM from vectorizing them.
        following = jnp.minimum(i + 1, steps - 1)
        batch_next = tuple(
            jax.lax.dynamic_index_in_dim(a, following, keepdims=False) for a in table
        )
        return params, velocity, loss_total + loss_sum, hit_total + hit_sum, batch_next, table

    def one_epoch(state: StateT, _: None) -> tuple[StateT, dict[str, jax.Array]]:
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(state.keys, state.epoch)
        orders = epoch_orders(keys, n, config.shuffle)  # (n, S)
        rows = jnp.pad(orders, ((0, steps * batch - n), (0, 0)))  # (steps * batch, S)

        def batches(table: jax.Array) -> jax.Array:
            # (steps * batch, S, F) -> (steps, batch, F, S)
            picked = jnp.swapaxes(table[rows], 1, 2)
            return picked.reshape(steps, batch, table.shape[1], runs)

        table = (batches(x_train), batches(y_train), weight)
        zeros = jnp.zeros((runs,), jnp.float32)
        carry = (state.params, state.velocity, zeros, zeros, tuple(a[0] for a in table), table)
        params, velocity, loss_total, hit_total, _, _ = jax.lax.fori_loop(0, steps, one_step, carry)
        val_loss, val_accuracy = evaluate(params, x_val, y_val, config.loss, config.activation)
        row = {
            "loss": loss_total / jnp.float32(n),
            "accuracy": hit_total / jnp.float32(n),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        return StateT(params, velocity, state.keys, state.epoch + 1), row

    return jax.lax.scan(one_epoch, state, None, length=n_epochs)


# Widest layer the chains are unrolled for: the program grows with the widths, and beyond this the
# compile time outweighs the gain.
MAX_WIDTH = 128


def supports(sizes: tuple[int, ...], batch_size: int) -> bool:
    """Whether this formulation is worth it for layer widths `sizes` and `batch_size`."""
    return max(sizes) <= MAX_WIDTH and batch_size <= 512
