"""The run-axis-last accelerator: the same runs as `kldiv.engine.run`, formulated for XLA:CPU.

A batched `jax.grad` program runs at a fraction of the machine's speed on XLA:CPU; this path
computes the same training for S runs at once, for exactly the configurations in `CAPABILITIES`
(every `TrainConfig` field has an entry; a test fails when a field is added without one), and the
runner falls back to the generic path for everything else (`unsupported`).

  * Layout: every per-run array carries the run axis LAST: W (fan_in, fan_out, S), b (fan_out, S),
    activations (rows, width, S). The runs are the vector lanes of every loop.
  * Contractions are explicit chains of elementwise multiply-adds over the contracted index
    (`_dense`, `_dense_t`, and `_outer_sum`/`_chain_rows` for the gradients' sums over the
    batch), other sums over rows are fixed pairwise trees of slices (`_sum_rows`), and the
    objective reduces over the class axis, which is not the minor one (axis=1). No dot, no reduce
    over a run's rows, nothing that mixes runs: the operations applied to a run, and their order,
    do not depend on S, so a seed gives the same bits alone or inside any batch.
  * Backward: z_l = a_{l-1} W_l + b_l, a_l = f(z_l); the loss gradient with respect to the logits
    comes from `jax.vjp` of the objective's loss and f' from `jax.vjp` of the activation; then
    dW_l = sum_rows a_{l-1}^T delta_l, db_l = sum_rows delta_l, delta_{l-1} = f'(z_{l-1}) *
    (delta_l W_l^T).
  * The optimizer is the run's own Optax transformation, vmapped over the last axis: its updates
    are elementwise (the supported optimizers are listed), so each lane is updated alone.
  * Fusion control: the loss block sits behind a conditional (`_fence`) so its inputs (the logits)
    are computed once rather than inside every consumer, and each step's batch arrives in the loop
    carry rather than as a dynamic slice, which keeps LLVM from vectorising the fusions reading it.

tests/test_lanes.py checks the steps and whole runs against the generic path, and the bitwise
independence of S.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from kldiv.config import TrainConfig
from kldiv.data import Dataset
from kldiv.engine.run import Run, State
from kldiv.engine.shuffle import epoch_orders
from kldiv.model import ACTIVATION_FNS
from kldiv.objectives import history_keys
from kldiv.optimizers import SGD, Adam, AdamW, RMSProp

# Compile with these (`compiler_options`): YNNPACK library fusions off, because their kernels
# choose vector code paths by shape (an `exp` over (500, 3) and over (16000, 3) differ in the last
# bit), which would make a run's bits depend on the chunk size.
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
# Chunks of up to this many runs are compiled with LLVM at -O1 rather than XLA's default -O2: the
# tutorial's epochs program, measured alone (medians of 4 alternated compiles), compiles in 0.80
# against 0.83 s at 2 lanes, 0.89 against 1.01 s at 4 and 0.93 against 0.99 s at 8, and trains its
# 100 epochs in 32 against 39 ms at 2 lanes (8 lanes: 66 against 78 ms). At 64 lanes -O1 trains
# slower: `kldiv run --seeds 1000` took 5.6 against 4.9 s. LLVM is not allowed to reassociate or
# contract floating-point operations at either level, so the bits are the same: every chunk size
# at its own level against 64 runs at -O2, over 13 configurations, natively and with XLA limited
# to AVX2 and to SSE4.2 (tests/test_lanes.py and tests/test_runner.py check chunk sizes).
SMALL_CHUNK = 8


def compiler_options(chunk: int) -> dict[str, Any]:
    """XLA's options for a program of `chunk` runs per device (see `SMALL_CHUNK`)."""
    if chunk <= SMALL_CHUNK:
        return {**COMPILER_OPTIONS, "xla_backend_optimization_level": 1}
    return dict(COMPILER_OPTIONS)


# Widest layer the chains are unrolled for: the program grows with the widths, and beyond this the
# compile time outweighs the gain.
MAX_WIDTH = 128
MAX_BATCH = 512
# `path='auto'` takes this path only up to this many multiply-adds per example (`multiply_adds`).
# A lane's chains load both operands of every term, so per run this path loses to XLA's dots as
# the network grows. Measured per run (one core, SGD, batch 32), generic alone / lanes in chunks
# of 16 / of 64: 2-50-3 (250) 20 / 13 / 5 ms; 2-128-3 (640) 28 / 36 / 36 ms; 2-50-50-3 (2,750)
# 44 / 42 / 33 ms; 64-20-10 (1,480) 80 / 102 / 92 ms; 64-50-10 (3,700) 145 / 149 / 167 ms. (A
# lone seed was then padded to 16 runs, now to `runner.MIN_LANES`.)
AUTO_MAX_MULTIPLY_ADDS = 512
# Their updates are elementwise per parameter, so vmapping them over the run axis keeps lanes apart.
OPTIMIZERS = (SGD, Adam, AdamW, RMSProp)


def _widths(c: TrainConfig) -> str | None:
    return None if max(c.hidden) <= MAX_WIDTH else f"hidden widths above {MAX_WIDTH}"


def _batch(c: TrainConfig) -> str | None:
    return None if c.batch_size <= MAX_BATCH else f"batch_size above {MAX_BATCH}"


def _optimizer(c: TrainConfig) -> str | None:
    return None if isinstance(c.optimizer, OPTIMIZERS) else f"optimizer {c.optimizer.name}"


def _any(c: TrainConfig) -> None:
    return None


# What this path does with each TrainConfig field: a check that returns why a value is not
# supported, or None. `_any` means every valid value is computed exactly as the generic path does.
CAPABILITIES: dict[str, Callable[[TrainConfig], str | None]] = {
    "loss": _any,  # any registry loss: reduced over axis=1 by its own ops, gradient by jax.vjp
    "hidden": _widths,
    "activation": _any,  # every ACTIVATION_FNS entry is elementwise; f' by jax.vjp
    "hidden_init": _any,  # the initial state is the generic path's, moved to run-last
    "output_init": _any,
    "epochs": _any,
    "batch_size": _batch,
    "shuffle": _any,  # epoch_orders gives the same permutations as epoch_order
    "optimizer": _optimizer,
    "label_smoothing": _any,  # applied to the targets before training, on either path
    # the Distiller reduces over axis=1 with its own ops, elementwise over rows: gradient by jax.vjp
    "distillation": _any,
    "vae": lambda config: None if config.vae is None else "a VAE (not a classifier)",
}


def unsupported(config: TrainConfig, data: Dataset) -> str | None:
    """Why this path cannot train `config` on `data` (a short phrase), or None if it can."""
    if jax.default_backend() != "cpu":
        return f"the {jax.default_backend()} backend (this path is for CPU)"
    if max(data.n_features, data.n_classes) > MAX_WIDTH:
        return f"inputs or targets wider than {MAX_WIDTH}"
    if data.y_train.ndim != 2:
        return "targets that are not (rows, classes)"
    for check in CAPABILITIES.values():
        reason = check(config)
        if reason is not None:
            return reason
    return None


def multiply_adds(config: TrainConfig, data: Dataset) -> int:
    """Multiply-adds of one example's forward pass: sum of fan_in * fan_out over the layers
    (the tutorial's 2-50-3: 250; the digits' 64-50-10: 3,700)."""
    sizes = Run.for_data(config, data).model.sizes
    return sum(a * b for a, b in itertools.pairwise(sizes))


def to_runs_last(tree: Any) -> Any:
    """Leaves with a leading run axis (S, ...) -> run axis last (..., S)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), tree)


def to_runs_first(tree: Any) -> Any:
    """Inverse of `to_runs_last`."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), tree)


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


def _sum_metrics(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """`_sum_rows` of each (R, S) metric, the metrics stacked (R, M, S) so that one tree of
    kernels sums them all (each element's additions, and so its bits, are those of its own tree)."""
    sums = _sum_rows(jnp.stack(list(metrics.values()), axis=1))  # (M, S)
    return dict(zip(metrics, sums, strict=True))


def _terms(x: jax.Array, axis: int) -> list[jax.Array]:
    """x's slices along `axis`, each keeping the axis (length 1): one `split` rather than a slice
    per term keeps the traced program small."""
    return jax.lax.split(x, [1] * x.shape[axis], axis=axis)


def _chain(terms: Iterable[jax.Array]) -> jax.Array:
    """(...(t0 + t1) + t2) + ...: the terms added in order, one at a time."""
    return functools.reduce(operator.add, terms)


def _chain_rows(t: jax.Array) -> jax.Array:
    """Sum over axis 0 as one chain, t[0] + t[1] + ...: (R, ...) -> (...)."""
    return _chain(_terms(t, 0))[0]


def _outer_sum(a: jax.Array, delta: jax.Array) -> jax.Array:
    """sum_r a[r]^T delta[r] per run as one chain over rows: a (R, K, S), delta (R, J, S) -> (K, J, S)."""
    (_, k, s), j = a.shape, delta.shape[1]
    rows = zip(_terms(a, 0), _terms(delta, 0), strict=True)  # (1, K, S), (1, J, S)
    # Each term as (K, 1, S) x (1, J, S): the same bits as indexing a[r] and delta[r]; the product
    # taken as one (R, K, J, S) array before the chain was measured to round differently.
    return _chain(jnp.reshape(ar, (k, 1, s)) * jnp.reshape(dr, (1, j, s)) for ar, dr in rows)


def _dense(a: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """a W + b per run: a (R, K, S or 1), w (K, J, S), b (J, S) -> (R, J, S).

    z[r, j, s] = (...(a[r, 0, s] w[0, j, s] + a[r, 1, s] w[1, j, s]) + ...) + b[j, s].
    """
    terms = zip(_terms(a, 1), _terms(w, 0), strict=True)  # (R, 1, S), (1, J, S)
    return _chain(ak * wk for ak, wk in terms) + b[None]


def _dense_t(delta: jax.Array, w: jax.Array) -> jax.Array:
    """delta W^T per run: delta (R, J, S), w (K, J, S) -> (R, K, S), a chain over j."""
    w_t = jnp.swapaxes(w, 0, 1)  # (J, K, S)
    terms = zip(_terms(delta, 1), _terms(w_t, 0), strict=True)  # (R, 1, S), (1, K, S)
    return _chain(dj * wj for dj, wj in terms)


def _forward(
    run: Run, params: Any, x: jax.Array
) -> tuple[jax.Array, list[jax.Array], list[Callable]]:
    """Logits (R, C, S), the input of each layer, and the activations' vjp functions."""
    act = ACTIVATION_FNS[run.model.activation]
    inputs, act_vjps = [], []
    a = x
    for w, b in params[:-1]:
        inputs.append(a)
        a, act_vjp = jax.vjp(act, _dense(a, w, b))
        act_vjps.append(act_vjp)
    inputs.append(a)
    w, b = params[-1]
    return _dense(a, w, b), inputs, act_vjps


def _fence(fn: Callable, *args: jax.Array) -> Any:
    """fn(*args) with its inputs and outputs materialised in memory.

    XLA:CPU otherwise fuses cheap producers into every consumer, recomputing them (a 50-term chain
    per logit, once per use). A conditional is a fusion boundary. Its predicate is true for every
    float (finite, infinite or NaN) but XLA cannot fold it, as it reads the last argument (data,
    not a constant); the other branch returns zeros and compiles to almost nothing. The predicate
    reads the last argument, not the first, because the first (the logits) would be fused into
    the predicate's kernel and compiled once more.
    """
    v = args[-1].ravel()[0]
    pred = jnp.isfinite(v) | jnp.isnan(v)
    fn = jax.jit(fn)  # traced once: eval_shape's trace is reused by the branch
    shapes = jax.eval_shape(fn, *args)

    def never(*_: jax.Array) -> Any:
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return jax.lax.cond(pred, fn, never, *args)


def step(
    run: Run, params: Any, opt_state: Any, x: jax.Array, y: jax.Array, weight: jax.Array
) -> tuple[Any, Any, dict[str, jax.Array]]:
    """One optimizer step for S runs on their own batches, run axis last.

    x (B, K, S), y (B, C, S) the runs' batches; weight (B,) in {0, 1} (0 marks padding rows, shared
    by all runs); params and opt_state with every leaf's run axis last. The objective of run s is
    sum_r weight[r] loss(r, s) / sum_r weight[r]. Returns the new params and optimizer state and
    the batch's weighted metric sums, each (S,).
    """
    logits, inputs, act_vjps = _forward(run, params, x)

    def loss_block(logits: jax.Array, y: jax.Array, weight: jax.Array) -> tuple:
        def split(z: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
            metrics = run.objective.metrics(z, y, axis=1)  # each (B, S)
            return metrics["loss"], metrics

        per_example, loss_vjp, metrics = jax.vjp(split, logits, has_aux=True)
        scale = (weight / jnp.sum(weight))[:, None]  # (B, 1); shared by all runs, (B,) for any S
        (delta,) = loss_vjp(jnp.broadcast_to(scale, per_example.shape))  # (B, C, S)
        real = weight[:, None]  # (B, 1)
        return delta, _sum_metrics(
            {k: jnp.where(real > 0, v, 0.0) * real for k, v in metrics.items()}
        )

    delta, sums = _fence(loss_block, logits, y, weight)
    grads = []
    for i in range(len(params) - 1, -1, -1):
        w, _ = params[i]
        grads.append((_outer_sum(inputs[i], delta), _chain_rows(delta)))
        if i > 0:
            (delta,) = act_vjps[i - 1](_dense_t(delta, w))
    grads = tuple(reversed(grads))
    update = jax.vmap(run.transformation().update, in_axes=-1, out_axes=-1)
    updates, opt_state = update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, sums


@functools.partial(jax.jit, static_argnames="run")
def evaluate(run: Run, params: Any, x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """Each metric's mean for S runs on the shared rows x (R, K), y (R, C): (S,) arrays.

    Jitted, so a program that evaluates twice on rows of one shape (each epoch's validation and
    the final training-set evaluation, when both sets have as many rows) traces and lowers it
    once."""
    logits, _, _ = _forward(run, params, x[:, :, None])  # (R, C, S)

    def means(logits: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
        y = jnp.broadcast_to(y[:, :, None], (*y.shape, logits.shape[-1]))
        sums = _sum_metrics(run.objective.metrics(logits, y, axis=1))
        return {k: v / jnp.float32(x.shape[0]) for k, v in sums.items()}

    return _fence(means, logits, y)


def train_epochs(run: Run, state: State, data: Dataset, n_epochs: int) -> tuple[State, jax.Array]:
    """`n_epochs` epochs of S runs whose params and opt_state are run-last, and their history
    (n_epochs, len(history_keys(run.metric_names)), S), run-last too.

    Epoch e of run s shuffles with fold_in(shuffle_key[s], e), as `kldiv.engine.run.train_epoch`.
    """
    x_train, y_train, x_val, y_val = data
    n, batch = x_train.shape[0], run.batch_size
    steps = -(-n // batch)
    runs, features = state.shuffle_key.shape[0], x_train.shape[1]
    # Padding rows repeat row 0 with weight 0, shared by every run.
    weight = (jnp.arange(steps * batch) < n).astype(jnp.float32).reshape(steps, batch)
    # Features and targets side by side, so that an epoch gathers and transposes one table.
    xy_train = jnp.concatenate([x_train, y_train], axis=1)  # (n, K + C)

    def one_step(i: jax.Array, carry: tuple) -> tuple:
        params, opt_state, totals, batch_now, table = carry
        xy, w = batch_now  # (B, K + C, S), (B,)
        x, y = xy[:, :features], xy[:, features:]
        params, opt_state, sums = step(run, params, opt_state, x, y, w)
        totals = {k: totals[k] + sums[k] for k in totals}
        # The next batch rides in the carry: the compute fusions then read loop parameters, not a
        # dynamic slice whose index load (not marked invariant) keeps LLVM from vectorizing them.
        following = jnp.minimum(i + 1, steps - 1)
        batch_next = tuple(
            jax.lax.dynamic_index_in_dim(a, following, keepdims=False) for a in table
        )
        return params, opt_state, totals, batch_next, table

    def one_epoch(state: State, _: None) -> tuple[State, jax.Array]:
        keys = jax.vmap(jax.random.fold_in)(state.shuffle_key, state.epoch)
        orders = epoch_orders(keys, n, run.shuffle)  # (n, S)
        rows = jnp.pad(orders, ((0, steps * batch - n), (0, 0)))  # (steps * batch, S)

        def batches(table: jax.Array) -> jax.Array:
            # (steps * batch, S, F) -> (steps, batch, F, S)
            picked = jnp.swapaxes(table[rows], 1, 2)
            return picked.reshape(steps, batch, table.shape[1], runs)

        table = (batches(xy_train), weight)
        totals = {m: jnp.zeros((runs,), jnp.float32) for m in run.metric_names}
        carry = (state.params, state.opt_state, totals, tuple(a[0] for a in table), table)
        params, opt_state, totals, _, _ = jax.lax.fori_loop(0, steps, one_step, carry)
        val = evaluate(run, params, x_val, y_val)
        row = {m: totals[m] / jnp.float32(n) for m in run.metric_names}
        row |= {f"val_{m}": val[m] for m in run.metric_names}
        state = state._replace(params=params, opt_state=opt_state, epoch=state.epoch + 1)
        # one array per epoch, one write rather than one per key, in the order the runner reads
        return state, jnp.stack([row[k] for k in history_keys(run.metric_names)])

    return jax.lax.scan(one_epoch, state, None, length=n_epochs)
