"""What a trained classifier predicts, and the metrics every arm shares whatever loss it trained on.

A comparison of losses can only test numbers in the same units. Each arm's own training loss
(`train_loss`, `test_loss`) is in that loss's units (KL and cross-entropy differ by H(y) on soft
targets, JS is bounded by log 2), so arms are compared on what their predicted probabilities q
score against the true targets y (one-hot labels or the given soft targets, never smoothed):

  accuracy     mean 1[argmax q = argmax y]                       (higher is better)
  log_loss     mean -Σ_k y_k log q_k, nats (cross-entropy)       (lower)
  brier        mean Σ_k (q_k - y_k)²  (multi-class Brier, in [0, 2])  (lower)
  ece          Σ_b (n_b / n) |acc_b - conf_b| over ECE_BINS equal-width bins of the confidence
               max_k q_k (bin b holds confidences in ((b-1)/B, b/B]); conf_b is the bin's mean
               confidence, acc_b its mean of y_k̂, the target probability of the predicted class
               k̂ (on one-hot targets: the bin's accuracy; on soft targets: how often the
               predicted class is right in expectation, so a model with q = y scores 0)  (lower)
  excess_loss  log_loss - H(y) = mean KL(y || q), nats: what is left to learn; 0 only at q = y.
               Reported for soft targets (on one-hot targets it equals log_loss).

Probabilities are computed in float32 by the model (logits) and turned into float64 with a float64
log-softmax, so log q is finite wherever the logits are. `probabilities` is the one function that
computes them, at the end of training and in `kldiv predict`, so a saved model predicts exactly
the probabilities its run reported.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from kldiv.model import MLP, Params

ECE_BINS = 15
SHARED_METRICS = ("accuracy", "log_loss", "brier", "ece")
SOFT_METRICS = ("excess_loss",)


@functools.lru_cache(maxsize=16)
def _logits(model: MLP) -> Any:
    """jit(params (runs, ...), x (rows, features)) -> logits (runs, rows, classes), its compiled
    executables kept on disk beside the training programs' (`kldiv.engine.executables`)."""
    from kldiv import runtime
    from kldiv.engine import executables

    # lax.map compiles one run's forward pass and loops it over the run axis, so a run's logits do
    # not depend on how many runs are evaluated together (a vmapped matmul may choose another
    # kernel, and another order of additions, for another batch shape).
    jitted = jax.jit(lambda params, x: jax.lax.map(lambda p: model.apply(p, x), params))
    devices = jax.local_devices()[:1]
    return executables.cached(jitted, f"logits {model!r}", devices, runtime.executable_cache_dir())


def log_probabilities(model: MLP, params: Params, x: np.ndarray) -> np.ndarray:
    """log q, float64 (runs, rows, classes), for params with a leading run axis and x (rows,
    features); the logits are the model's (float32), the log-softmax is float64."""
    logits = np.asarray(_logits(model)(params, np.asarray(x, np.float32)), np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged run's logits: NaN out
        shifted = logits - logits.max(axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def probabilities(model: MLP, params: Params, x: np.ndarray) -> np.ndarray:
    """q = softmax(model(x)), float64 (runs, rows, classes); see `log_probabilities`."""
    return np.exp(log_probabilities(model, params, x))


def is_one_hot(targets: np.ndarray) -> bool:
    """Every row of (rows, classes) targets is one 1 and zeros."""
    t = np.asarray(targets)
    return bool(np.all((t == 0) | (t == 1)) and np.all(t.sum(axis=-1) == 1))


def prediction_metrics(log_q: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """The shared metrics of the module docstring, per run.

    Args:
      log_q: (runs, rows, classes) float64 log-probabilities (`log_probabilities`).
      targets: (rows, classes) true target probabilities (one-hot or soft, unsmoothed).

    Returns:
      name -> (runs,) float64: "accuracy" (an exact k / rows), "log_loss", "brier", "ece", and for
      targets that are not one-hot also "excess_loss".
    """
    with np.errstate(invalid="ignore", over="ignore"):  # NaN rows of a diverged run: NaN out
        return _prediction_metrics(log_q, targets)


def _prediction_metrics(log_q: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    y = np.asarray(targets, np.float64)
    q = np.exp(log_q)
    n = y.shape[0]
    predicted = log_q.argmax(axis=-1)  # ties: the lowest index, as argmax of the targets
    hits = predicted == y.argmax(axis=-1)
    # y_k̂: the target probability of the predicted class (1 or 0 on one-hot targets)
    right = np.take_along_axis(np.broadcast_to(y, q.shape), predicted[..., None], axis=-1)[..., 0]
    # 0·log q = 0 where the target is 0, also where q underflowed to 0 (log q = -inf)
    cross = -np.where(y > 0, y * log_q, 0.0).sum(axis=-1)
    out = {
        "accuracy": hits.sum(axis=-1) / n,
        "log_loss": cross.mean(axis=-1),
        "brier": ((q - y) ** 2).sum(axis=-1).mean(axis=-1),
        "ece": expected_calibration_error(q.max(axis=-1), right),
    }
    if not is_one_hot(y):
        entropy = -np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0).sum(axis=-1)
        out["excess_loss"] = (cross - entropy).mean(axis=-1)
    return out


def expected_calibration_error(
    confidence: np.ndarray, hits: np.ndarray, bins: int = ECE_BINS
) -> np.ndarray:
    """Σ_b (n_b / n) |mean(hits in b) - mean(confidence in b)| over `bins` equal-width bins of
    (0, 1], bin b holding confidences in ((b-1)/bins, b/bins]; (..., rows) -> (...). `hits` are
    0/1, or for soft targets the target probability of the predicted class."""
    n = confidence.shape[-1]
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    in_bin = index[..., None] == np.arange(bins)  # (..., rows, bins)
    # (n_b / n) |acc_b - conf_b| = |Σ_{i in b} (hit_i - conf_i)| / n
    gap = np.abs((in_bin * (hits - confidence)[..., None]).sum(axis=-2))
    return gap.sum(axis=-1) / n


# Runs evaluated at once by `shared_metrics`: its (runs, rows, classes) float64 temporaries for
# 10,000 runs took ~1.2 GB, the peak of a `kldiv run --seeds 10000`.
RUNS_AT_ONCE = 512


def logits_ahead(model: MLP, n_runs: int, xs: Sequence[np.ndarray]) -> None:
    """Compile now the logits programs `shared_metrics` will call for `n_runs` runs on each of
    `xs` (rows, features), where they are kept on disk and not stored yet: a first run does this
    on another thread while it trains (`kldiv.engine.runner`)."""
    from kldiv.engine.executables import Cached

    program = _logits(model)
    if not isinstance(program, Cached):
        return
    block = min(n_runs, RUNS_AT_ONCE)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0)))  # traced, never run
    params = jax.tree.map(lambda a: np.zeros((block, *a.shape), a.dtype), shapes)
    for x in xs:
        finish = program.ahead(params, np.asarray(x, np.float32))
        if finish is not None:
            finish()


def shared_metrics(
    model: MLP, params: Params, sets: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """`prediction_metrics` on each named set: {"train": (x, y), "test": (x, y)} ->
    {"train_log_loss": (runs,), ..., "test_ece": (runs,)} (accuracy excluded: the objective
    reports it, with the same definition). Evaluated RUNS_AT_ONCE runs at a time (every metric is
    per run, so the values do not depend on it), the last block padded to the same shape."""
    n_runs = jax.tree.leaves(params)[0].shape[0]
    block = min(n_runs, RUNS_AT_ONCE)
    pieces = []
    for start in range(0, n_runs, block):
        rows = np.minimum(np.arange(start, start + block), n_runs - 1)  # pad: repeat the last
        part = jax.tree.map(lambda a, rows=rows: np.asarray(a)[rows], params)
        out = {}
        for name, (x, y) in sets.items():
            metrics = prediction_metrics(log_probabilities(model, part, x), y)
            out |= {f"{name}_{m}": v for m, v in metrics.items() if m != "accuracy"}
        pieces.append(out)
    return {k: np.concatenate([p[k] for p in pieces])[:n_runs] for k in pieces[0]}
