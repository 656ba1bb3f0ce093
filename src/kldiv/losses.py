r"""Kullback-Leibler divergence and its relatives, as pure JAX functions.

Every function reduces over one ``axis`` (the distribution axis, default ``-1``) and returns one
value per distribution: an ``(N, C)`` input gives ``(N,)``, an ``(N, T, C)`` input gives ``(N, T)``.
Nothing averages over the batch; the caller takes the mean once, where it is used. Values are in
nats (divide by ``log 2`` for bits) and come back in the inputs' floating-point dtype: float64 stays
float64, float32 stays float32, and float16/bfloat16 are computed in float32 and cast back. Inputs
of different float dtypes are computed in the wider of the two.

Direction and argument order follow Optax: ``kl_divergence(log_predictions, targets)`` is
:math:`\mathrm{KL}(\text{targets} \,\|\, \text{predictions})`, the information lost when the
predictions are used in place of the targets.

The exact limits, in every input space:

* a target probability of exactly 0 (or a log target of ``-inf``) contributes exactly 0, also where
  the prediction is 0 (log prediction ``-inf``, e.g. a masked logit), and its gradients are 0;
* a positive target where the prediction is 0 gives ``+inf``;
* a negative target probability gives NaN, and a NaN input gives NaN;
* gradients are finite wherever the value is finite. At a zero target the gradient with respect to
  the target probability is 0, SciPy's ``rel_entr`` convention (the one-sided derivative
  ``log t - log q + 1`` is ``-inf`` there); with respect to a log target :math:`\ell_t` it is
  :math:`e^{\ell_t}(\ell_t - \ell_q + 1)`, which is 0 at :math:`\ell_t = -\infty`.

Where our values deliberately differ from the peers, and why:

* **Keras** (``keras.losses.kl_divergence(y_true, y_pred)``) clips both arguments to ``[1e-7, 1]``.
  That biases every zero target by ``1e-7 * log(1e-7 / q)``, caps ``KL`` at ``p * log(p / 1e-7)``
  where ``q = 0`` (exact: ``+inf``), turns negative inputs into finite numbers (exact: NaN) and
  values above 1 into possibly negative KL, and zeroes the gradient of saturated softmax outputs
  (logits of +-100 stop learning). We do none of that, so one-hot KL equals cross-entropy exactly
  instead of to a few 1e-6. The Keras numbers are available on request as
  :func:`keras_kl_divergence` and the ``"keras_kl"`` training loss. The Keras class form also
  computes float64 input in float32; we keep float64.
* **PyTorch** (``F.kl_div(input=log_predictions, target=targets, reduction='none').sum(-1)`` equals
  our ``kl_divergence``) gives NaN for a zero target against ``input = -inf`` and for a log target
  of ``-inf``, and a NaN gradient with respect to zero targets; we give 0 for all three. It also
  broadcasts mismatched shapes silently and its default ``reduction='mean'`` divides by the number
  of classes too; we raise on mismatched shapes and never reduce over the batch.
* **Optax** (``optax.losses.kl_divergence``, same argument order and values on ordinary inputs)
  gives NaN for a zero target against a ``-inf`` log prediction and for any ``-inf`` log target, and
  a NaN gradient with respect to zero targets; we give 0. Optax accepts a tuple ``axis`` and a
  ``where`` mask and broadcasts shapes; we take one integer axis and require equal shapes.
* **SciPy**'s ``rel_entr`` and ``kl_div`` return ``+inf`` for negative inputs; we return NaN,
  because a negative probability is a bug upstream, not an infinitely bad prediction.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "ALIASES",
    "DISTILLATION_DIRECTIONS",
    "LOSSES",
    "canonical_loss_name",
    "distillation_loss",
    "effective_beta",
    "entropy",
    "gaussian_kl_divergence",
    "gaussian_kl_divergence_between",
    "generalized_jensen_shannon_divergence",
    "generalized_kl_divergence",
    "get_distillation_loss",
    "get_loss",
    "jensen_shannon_divergence",
    "jensen_shannon_divergence_from_logits",
    "jsd_distillation_loss",
    "keras_kl_divergence",
    "kl_divergence",
    "kl_divergence_from_logits",
    "kl_divergence_with_log_targets",
    "loss_names",
    "reverse_distillation_loss",
    "reverse_kl_divergence_from_logits",
    "softmax_cross_entropy",
]

# --------------------------------------------------------------------------------------------------
# Validation and dtype policy


def _float_array(name: str, x: ArrayLike) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: expected a floating-point array, got {x.dtype}")
    return x


def _prepare(axis: int, **named: ArrayLike) -> tuple[list[jax.Array], jnp.dtype, int]:
    """Validates the inputs; returns them in the compute dtype, with the output dtype and the axis.

    Shapes and dtypes are static under `jax.jit`, so these checks raise at trace time.
    """
    names = list(named)
    arrays = [_float_array(name, value) for name, value in named.items()]
    first = arrays[0]
    for name, array in zip(names[1:], arrays[1:], strict=True):
        if array.shape != first.shape:
            raise ValueError(
                f"{name}: expected the same shape as {names[0]} {first.shape}, got {array.shape}"
            )
    if isinstance(axis, bool) or not isinstance(axis, int) or not -first.ndim <= axis < first.ndim:
        raise ValueError(
            f"axis: expected an integer in [{-first.ndim}, {first.ndim}) for {first.ndim}-d "
            f"inputs, got {axis!r}"
        )
    # Explicit widening, not jnp.result_type: the policy must not depend on the promotion mode.
    out_dtype = max((a.dtype for a in arrays), key=lambda d: jnp.finfo(d).bits)
    if any(
        jnp.finfo(a.dtype).bits == jnp.finfo(out_dtype).bits and a.dtype != out_dtype
        for a in arrays
    ):
        out_dtype = jnp.dtype(jnp.float32)  # float16 with bfloat16
    compute_dtype = jnp.float32 if jnp.finfo(out_dtype).bits < 32 else out_dtype
    return [a.astype(compute_dtype) for a in arrays], out_dtype, axis


# --------------------------------------------------------------------------------------------------
# Elementwise terms with exact limits


def _safe_log(p: jax.Array) -> jax.Array:
    """log(p) with log(0) = -inf, NaN for p < 0, and a zero (not NaN) gradient wherever p <= 0."""
    positive = p > 0
    log_p = jnp.log(jnp.where(positive, p, 1.0))
    return jnp.where(positive, log_p, jnp.where(p == 0, -jnp.inf, jnp.nan))


def _xlogratio(p: jax.Array, log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """Elementwise p * (log_p - log_q): one term of KL(p || q), exact at the boundaries.

    `p` and `log_p` describe the same probability and are both passed so neither is recomputed from
    the other; callers may put 0 in the `log_p` slot on the support to get the cross-entropy term
    -p * log_q.

    * `log_p == -inf` (p == 0): 0 whatever `log_q` is, including -inf; NaN if `log_q` is NaN.
    * `log_p > -inf` and `log_q == -inf`: +inf, also when exp(log_p) underflowed to 0.
    * NaN in `p`, `log_p` or `log_q`: NaN.

    Both boundary branches are constants computed from sanitised operands (the double-`where`
    trick), so their gradients are 0 rather than 0 * inf = NaN.
    """
    absent = (log_p == -jnp.inf) & ~jnp.isnan(log_q)
    impossible = (log_p > -jnp.inf) & (log_q == -jnp.inf)
    ordinary = ~(absent | impossible)
    safe_p = jnp.where(ordinary, p, 0.0)
    safe_log_p = jnp.where(ordinary, log_p, 0.0)
    safe_log_q = jnp.where(ordinary, log_q, 0.0)
    term = safe_p * (safe_log_p - safe_log_q)
    return jnp.where(absent, 0.0, jnp.where(impossible, jnp.inf, term))


def _clip_like_tf(x: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
    # tf.clip_by_value passes the full gradient at the bounds; jnp.clip would pass half there.
    return jnp.where(x < low, low, jnp.where(x > high, high, x))


# --------------------------------------------------------------------------------------------------
# Divergences


def kl_divergence(log_predictions: ArrayLike, targets: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Kullback-Leibler divergence of the predictions from the targets, KL(targets || predictions).

    .. math::
      \mathrm{KL}(t \,\|\, q) = \sum_i t_i (\log t_i - \log q_i)

    with :math:`0 \log 0 = 0` exactly, also where :math:`\log q_i = -\infty`; a positive :math:`t_i`
    against :math:`q_i = 0` gives ``+inf``; a negative :math:`t_i` gives NaN. The inputs need not be
    normalised (the value is then not guaranteed to be non-negative; see
    :func:`generalized_kl_divergence`).

    Gradients: :math:`\partial/\partial \log q_i = -t_i`;
    :math:`\partial/\partial t_i = \log t_i - \log q_i + 1` for :math:`t_i > 0` and 0 at
    :math:`t_i = 0` (SciPy's ``rel_entr`` convention, finite where PyTorch and Optax give NaN).

    Peer conventions: PyTorch ``F.kl_div(input=log_predictions, target=targets,
    reduction='none').sum(-1)``; Optax ``optax.losses.kl_divergence(log_predictions, targets)``;
    Keras ``keras.losses.kl_divergence(y_true=targets, y_pred=exp(log_predictions))`` up to Keras'
    clipping.

    Args:
      log_predictions: log-probabilities of the predicted distribution, shape ``[..., C, ...]``. Use
        ``jax.nn.log_softmax`` (or :func:`kl_divergence_from_logits`), never ``log(softmax(...))``.
      targets: probabilities of the target distribution, same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.

    References:
      Kullback and Leibler, `On Information and Sufficiency
      <https://doi.org/10.1214/aoms/1177729694>`_, 1951.
    """
    (log_q, t), out_dtype, axis = _prepare(axis, log_predictions=log_predictions, targets=targets)
    return jnp.sum(_xlogratio(t, _safe_log(t), log_q), axis=axis).astype(out_dtype)


def kl_divergence_with_log_targets(
    log_predictions: ArrayLike, log_targets: ArrayLike, *, axis: int = -1
) -> jax.Array:
    r"""Kullback-Leibler divergence KL(targets || predictions) with both sides in log space.

    .. math::
      \mathrm{KL}(t \,\|\, q) = \sum_i e^{\ell_{t,i}} (\ell_{t,i} - \ell_{q,i})

    A log target of ``-inf`` (zero probability) contributes exactly 0, also against a log prediction
    of ``-inf``; identical inputs give exactly 0. Gradients: :math:`\partial/\partial \ell_{t,i} =
    e^{\ell_{t,i}} (\ell_{t,i} - \ell_{q,i} + 1)`, which is 0 at :math:`\ell_{t,i} = -\infty`
    (PyTorch and Optax give NaN there), and :math:`\partial/\partial \ell_{q,i} = -e^{\ell_{t,i}}`.

    Peer conventions: PyTorch ``F.kl_div(input=log_predictions, target=log_targets,
    reduction='none', log_target=True).sum(-1)``; Optax
    ``optax.losses.kl_divergence_with_log_targets(log_predictions, log_targets)``; Keras
    ``kl_divergence(y_true=exp(log_targets), y_pred=exp(log_predictions))`` up to its clipping.

    Args:
      log_predictions: log-probabilities of the predicted distribution, shape ``[..., C, ...]``.
      log_targets: log-probabilities of the target distribution, same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.
    """
    (log_q, log_t), out_dtype, axis = _prepare(
        axis, log_predictions=log_predictions, log_targets=log_targets
    )
    return jnp.sum(_xlogratio(jnp.exp(log_t), log_t, log_q), axis=axis).astype(out_dtype)


def kl_divergence_from_logits(
    logits: ArrayLike, targets: ArrayLike, *, axis: int = -1
) -> jax.Array:
    r"""KL(targets || softmax(logits)), computed through a fused ``log_softmax``.

    Equals ``kl_divergence(jax.nn.log_softmax(logits, axis), targets)`` and
    ``softmax_cross_entropy(logits, targets) - entropy(targets)``; on one-hot targets it equals the
    cross-entropy exactly. The gradient with respect to the logits is :math:`\mathrm{softmax}(z)
    \sum_i t_i - t`, finite for any finite logits (also +-100 in float32, where Keras' clipped loss
    has a zero gradient) and identical to the cross-entropy gradient.

    Peer conventions: PyTorch ``F.kl_div(F.log_softmax(logits, -1), targets,
    reduction='none').sum(-1)``; Keras ``kl_divergence(y_true=targets, y_pred=softmax(logits))`` up
    to its clipping.

    Args:
      logits: unnormalised log-probabilities of the prediction, shape ``[..., C, ...]``.
      targets: probabilities of the target distribution (one-hot or soft), same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.
    """
    (z, t), out_dtype, axis = _prepare(axis, logits=logits, targets=targets)
    log_q = jax.nn.log_softmax(z, axis=axis)
    return jnp.sum(_xlogratio(t, _safe_log(t), log_q), axis=axis).astype(out_dtype)


def softmax_cross_entropy(logits: ArrayLike, targets: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Cross-entropy of softmax(logits) relative to the targets, :math:`-\sum_i t_i \log q_i`.

    Equals ``entropy(targets) + kl_divergence_from_logits(logits, targets)``. A zero target
    contributes 0 also against a masked (``-inf``) logit; a negative target gives NaN, as in the KL
    functions.

    Peer conventions: Optax ``softmax_cross_entropy(logits, labels)``; Keras
    ``categorical_crossentropy(y_true=targets, y_pred=logits, from_logits=True)``; PyTorch
    ``F.cross_entropy(logits, targets, reduction='none')`` for probability targets along dim 1.

    Args:
      logits: unnormalised log-probabilities of the prediction, shape ``[..., C, ...]``.
      targets: probabilities of the target distribution, same shape.
      axis: the distribution axis.

    Returns:
      The cross-entropy in nats, shape of the inputs without ``axis``.
    """
    (z, t), out_dtype, axis = _prepare(axis, logits=logits, targets=targets)
    log_q = jax.nn.log_softmax(z, axis=axis)
    # 0 in the log_p slot on the support turns t * (log_p - log_q) into -t * log_q; the -inf / NaN
    # off the support keep the zero-target and negative-target rules.
    support_log = jnp.where(t > 0, 0.0, _safe_log(t))
    return jnp.sum(_xlogratio(t, support_log, log_q), axis=axis).astype(out_dtype)


def entropy(probs: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i`, with :math:`0 \log 0 = 0`.

    No normalisation (unlike ``scipy.stats.entropy``, which also defaults to ``axis=0``); a negative
    probability gives NaN. The gradient at :math:`p_i = 0` is 0 (``rel_entr`` convention).

    Peer conventions: ``scipy.stats.entropy(probs, axis=-1)`` for normalised input; PyTorch
    ``torch.distributions.Categorical(probs=probs).entropy()``; Keras has no entropy function.

    Args:
      probs: probabilities, shape ``[..., C, ...]``.
      axis: the distribution axis.

    Returns:
      The entropy in nats, shape of the input without ``axis``.
    """
    (p,), out_dtype, axis = _prepare(axis, probs=probs)
    # 0 - sum, not -sum: an entropy of zero is +0.0.
    return (0.0 - jnp.sum(_xlogratio(p, _safe_log(p), jnp.zeros_like(p)), axis=axis)).astype(
        out_dtype
    )


def reverse_kl_divergence_from_logits(
    logits: ArrayLike, targets: ArrayLike, *, axis: int = -1
) -> jax.Array:
    r"""Reverse (mode-seeking) divergence KL(softmax(logits) || targets).

    .. math::
      \mathrm{KL}(q \,\|\, t) = \sum_i q_i (\log q_i - \log t_i), \quad q = \mathrm{softmax}(z)

    A softmax probability is never exactly 0, so any zero target gives ``+inf`` (one-hot targets
    always do): use targets with full support, e.g. smoothed labels. The gradient with respect to
    the logits is :math:`q \odot (\log q - \log t - \mathrm{KL})`.

    Peer conventions: PyTorch ``F.kl_div(input=log(targets), target=F.log_softmax(logits, -1),
    reduction='none', log_target=True).sum(-1)``; Keras ``kl_divergence(y_true=softmax(logits),
    y_pred=targets)`` up to its clipping.

    Args:
      logits: unnormalised log-probabilities of the prediction, shape ``[..., C, ...]``.
      targets: probabilities of the target distribution, same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.
    """
    (z, t), out_dtype, axis = _prepare(axis, logits=logits, targets=targets)
    log_q = jax.nn.log_softmax(z, axis=axis)
    return jnp.sum(_xlogratio(jnp.exp(log_q), log_q, _safe_log(t)), axis=axis).astype(out_dtype)


def _log_ratio_to_mixture(
    log_p: jax.Array, log_q: jax.Array, weight: float = 0.5, rest: float = 0.5
) -> jax.Array:
    """log(p / m) with m = w p + r q (w = `weight`, r = `rest`: Python numbers > 0 with w + r = 1,
    each given exactly), from d = log q - log p: -log(w + r e^d).

    For |d| < 1 the log1p/expm1 form -log1p(r expm1(d)) is relatively accurate and exactly 0 at
    p == q. Elsewhere -logaddexp(log w, log r + d), with log w and log r exact constants, cannot
    overflow and keeps a tiny w or r that 1 - r or 1 - w would round away; there w + r e^d is
    bounded away from 1 (it equals 1 only at d = 0), so there is no cancellation. p == 0 < q
    gives -inf, q == 0 < p gives -log w. Both branches see sanitised operands so neither leaks a
    NaN gradient.
    """
    d = log_q - log_p
    near = jnp.abs(d) < 1.0
    d_near = jnp.where(near, d, 0.0)
    d_far = jnp.where(near, 1.0, d)
    far = -jnp.logaddexp(math.log(weight), math.log(rest) + d_far)
    return jnp.where(near, -jnp.log1p(rest * jnp.expm1(d_near)), far)


def _mixture_terms(
    log_p: jax.Array, log_q: jax.Array, axis: int, beta: float = 0.5
) -> tuple[jax.Array, jax.Array]:
    """(KL(p || m), KL(q || m)) with m = beta p + (1 - beta) q, beta a Python number in (0, 1)."""
    # Where both probabilities are 0, d would be NaN (-inf - -inf); such entries contribute 0.
    both_absent = (log_p == -jnp.inf) & (log_q == -jnp.inf)
    safe_log_p = jnp.where(both_absent, 0.0, log_p)
    safe_log_q = jnp.where(both_absent, 0.0, log_q)
    ratio_p = _log_ratio_to_mixture(safe_log_p, safe_log_q, beta, 1.0 - beta)
    ratio_q = _log_ratio_to_mixture(safe_log_q, safe_log_p, 1.0 - beta, beta)
    ratio_p = jnp.where(both_absent, -jnp.inf, ratio_p)
    ratio_q = jnp.where(both_absent, -jnp.inf, ratio_q)
    # _xlogratio(p, log(p/m), 0) = p log(p/m), with its exact p == 0 rule (ratio -inf there).
    zero = jnp.zeros_like(log_p)
    kl_pm = jnp.sum(_xlogratio(jnp.exp(log_p), ratio_p, zero), axis=axis)
    kl_qm = jnp.sum(_xlogratio(jnp.exp(log_q), ratio_q, zero), axis=axis)
    return kl_pm, kl_qm


def _js_from_logs(log_p: jax.Array, log_q: jax.Array, axis: int) -> jax.Array:
    kl_pm, kl_qm = _mixture_terms(log_p, log_q, axis)
    return 0.5 * (kl_pm + kl_qm)


def jensen_shannon_divergence(log_p: ArrayLike, log_q: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Jensen-Shannon divergence between two distributions given in log space.

    .. math::
      \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m), \quad
      \log m = \mathrm{logaddexp}(\log p, \log q) - \log 2

    Symmetric, finite, and in :math:`[0, \log 2]` for normalised inputs (divide by ``log 2`` for a
    value in bits in ``[0, 1]``). Zero probabilities (``-inf``) are exact, with finite gradients.
    The mixture is handled in log space in the input dtype: each :math:`\log(p_i / m_i)` is
    computed from :math:`\log q_i - \log p_i` with ``log1p``/``expm1`` (the same value as
    ``log p - (logaddexp(log p, log q) - log 2)``, but accurate when :math:`p \approx q` and
    exactly 0 for identical inputs). The gradient with respect to :math:`\log p_i` is
    :math:`\tfrac12 p_i (\log p_i - \log m_i)`.

    Peer conventions: ``scipy.spatial.distance.jensenshannon(p, q) ** 2`` (SciPy returns the
    distance, the square root); torchmetrics ``jensen_shannon_divergence(log_p, log_q,
    log_prob=True)`` before its batch reduction; Keras and ``torch.nn.functional`` have none.

    Args:
      log_p: log-probabilities of the first distribution, shape ``[..., C, ...]``.
      log_q: log-probabilities of the second distribution, same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.

    References:
      Lin, `Divergence measures based on the Shannon entropy <https://doi.org/10.1109/18.61115>`_,
      1991.
    """
    (lp, lq), out_dtype, axis = _prepare(axis, log_p=log_p, log_q=log_q)
    return _js_from_logs(lp, lq, axis).astype(out_dtype)


def jensen_shannon_divergence_from_logits(
    logits: ArrayLike, targets: ArrayLike, *, axis: int = -1
) -> jax.Array:
    """Jensen-Shannon divergence between softmax(logits) and target probabilities, for training.

    Equals ``jensen_shannon_divergence(jax.nn.log_softmax(logits, axis), log(targets))`` with
    ``log 0 = -inf`` handled exactly (finite gradients with respect to both arguments); a negative
    target gives NaN. Bounded by ``log 2`` nats, so unlike KL it stays finite for one-hot targets
    against any prediction.

    Args:
      logits: unnormalised log-probabilities of the prediction, shape ``[..., C, ...]``.
      targets: probabilities of the target distribution (one-hot or soft), same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.
    """
    (z, t), out_dtype, axis = _prepare(axis, logits=logits, targets=targets)
    return _js_from_logs(jax.nn.log_softmax(z, axis=axis), _safe_log(t), axis).astype(out_dtype)


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta: expected a number in [0, 1], got {beta!r}")
    return float(beta)


def _generalized_js_from_logs(
    log_p: jax.Array, log_q: jax.Array, beta: float, normalized: bool, axis: int
) -> jax.Array:
    if beta in (0.0, 1.0):
        if normalized:  # the limits, in closed form: KL(p || q) at 0, KL(q || p) at 1
            first, second = (log_p, log_q) if beta == 0.0 else (log_q, log_p)
            return jnp.sum(_xlogratio(jnp.exp(first), first, second), axis=axis)
        # m is q (or p) itself: both terms are 0 (NaN inputs stay NaN)
        return jnp.sum(jnp.where(jnp.isnan(log_p) | jnp.isnan(log_q), jnp.nan, 0.0), axis=axis)
    kl_pm, kl_qm = _mixture_terms(log_p, log_q, axis, beta)
    if normalized:  # (beta kl_pm + (1 - beta) kl_qm) / (beta (1 - beta)), without the product
        return kl_pm / (1.0 - beta) + kl_qm / beta
    return beta * kl_pm + (1.0 - beta) * kl_qm


def generalized_jensen_shannon_divergence(
    log_p: ArrayLike,
    log_q: ArrayLike,
    *,
    beta: float,
    normalized: bool = False,
    axis: int = -1,
) -> jax.Array:
    r"""Generalized (skewed) Jensen-Shannon divergence of GKD, from log-probabilities.

    .. math::
      \mathrm{JSD}_\beta(p \,\|\, q) = \beta\, \mathrm{KL}(p \,\|\, m) + (1 - \beta)\,
      \mathrm{KL}(q \,\|\, m), \quad m = \beta p + (1 - \beta) q

    :math:`\beta` weighs ``p`` (the target, e.g. a teacher) in the mixture. At :math:`\beta = 1/2`
    it is :func:`jensen_shannon_divergence`. It lies in :math:`[0, h(\beta)]`, with
    :math:`h(\beta) = -\beta \log \beta - (1 - \beta) \log(1 - \beta)` the binary entropy (it is
    the mutual information between a draw from m and which of p, q it came from), and
    :math:`\mathrm{JSD}_\beta(p \,\|\, q) = \mathrm{JSD}_{1-\beta}(q \,\|\, p)`.

    Both ends are 0 (m is then q or p itself). Near them it behaves like the two KL directions,
    :math:`\mathrm{JSD}_\beta \approx \beta\, \mathrm{KL}(p \,\|\, q)` as :math:`\beta \to 0` and
    :math:`\approx (1 - \beta)\, \mathrm{KL}(q \,\|\, p)` as :math:`\beta \to 1`. With
    ``normalized=True`` the value is divided by :math:`\beta (1 - \beta)`: continuous on
    :math:`[0, 1]`, on the scale of KL for every :math:`\beta` (both it and KL are
    :math:`\tfrac12 \chi^2` to second order for nearby distributions), and at the ends exactly
    forward :math:`\mathrm{KL}(p \,\|\, q)` (:math:`\beta = 0`) and reverse
    :math:`\mathrm{KL}(q \,\|\, p)` (:math:`\beta = 1`), computed there in closed form (the
    interior converges to them only like :math:`O(\beta)`).

    Zero probabilities (``-inf``) are exact, with finite gradients, as in
    :func:`jensen_shannon_divergence`; each :math:`\log(p_i / m_i)` is computed from
    :math:`\log q_i - \log p_i` with ``log1p``/``expm1``, accurate for :math:`p \approx q`.

    Peer conventions: GKD (Agarwal et al.) defines :math:`D_{\mathrm{JSD}(\beta)}(p_T \,\|\,
    p_S)` with the teacher first, as here; Hugging Face TRL's ``generalized_jsd_loss(
    student_logits, teacher_logits, beta)`` uses the same mixture weights and special-cases the
    ends to forward (``beta=0``) and reverse (``beta=1``) KL while its interior stays unnormalized
    (its interior tends to 0 at both ends: TRL #6780).

    Args:
      log_p: log-probabilities of the first (target) distribution, shape ``[..., C, ...]``.
      log_q: log-probabilities of the second distribution, same shape.
      beta: the weight of ``p`` in the mixture, a Python number in ``[0, 1]``.
      normalized: divide by :math:`\beta (1 - \beta)` (forward and reverse KL at the ends).
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.

    Raises:
      ValueError: ``beta`` is not a number in ``[0, 1]``.

    References:
      Agarwal et al., `On-Policy Distillation of Language Models: Learning from Self-Generated
      Mistakes <https://arxiv.org/abs/2306.13649>`_ (GKD), 2024.
    """
    beta = _check_beta(beta)
    (lp, lq), out_dtype, axis = _prepare(axis, log_p=log_p, log_q=log_q)
    return _generalized_js_from_logs(lp, lq, beta, normalized, axis).astype(out_dtype)


def generalized_kl_divergence(
    log_predictions: ArrayLike, targets: ArrayLike, *, axis: int = -1
) -> jax.Array:
    r"""Generalised KL divergence for unnormalised non-negative measures.

    .. math::
      D(t \,\|\, q) = \sum_i t_i \log \frac{t_i}{q_i} - t_i + q_i

    The Bregman divergence of :math:`x \log x - x`: non-negative termwise for any non-negative
    inputs, equal to :func:`kl_divergence` when both sides sum to 1, and equal to
    ``scipy.special.kl_div(targets, exp(log_predictions)).sum(axis)`` (except for negative targets:
    NaN here, ``+inf`` in SciPy). Same zero rules and gradients as :func:`kl_divergence`, plus
    :math:`q_i - t_i` with respect to :math:`\log q_i` overall.

    Peer conventions: Optax ``generalized_kl_divergence(log_predictions, targets)``; PyTorch
    ``F.kl_div(input=log_predictions, target=targets, reduction='none').sum(-1)`` plus
    ``(exp(log_predictions) - targets).sum(-1)``; Keras has none.

    Args:
      log_predictions: logs of the predicted measure, shape ``[..., C, ...]``.
      targets: the target measure (non-negative), same shape.
      axis: the distribution axis.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.

    References:
      Boyd and Vandenberghe, `Convex Optimization <https://stanford.edu/~boyd/cvxbook/>`_, 2004,
      p. 90.
    """
    (log_q, t), out_dtype, axis = _prepare(axis, log_predictions=log_predictions, targets=targets)
    terms = _xlogratio(t, _safe_log(t), log_q) - t + jnp.exp(log_q)
    return jnp.sum(terms, axis=axis).astype(out_dtype)


def distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    temperature: float | ArrayLike = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Knowledge-distillation loss :math:`T^2 \, \mathrm{KL}(\mathrm{softmax}(z_t/T) \,\|\,
    \mathrm{softmax}(z_s/T))`.

    Both sides go through ``log_softmax`` into :func:`kl_divergence_with_log_targets`, so teacher
    probabilities that underflow to 0 (saturated logits) stay exact and every gradient stays finite.
    The :math:`T^2` factor keeps the gradient magnitude independent of :math:`T`: the gradient with
    respect to the student logits is :math:`T (q_T - p_T)` with :math:`p_T =
    \mathrm{softmax}(z_t/T)`, :math:`q_T = \mathrm{softmax}(z_s/T)`, which tends to a :math:`T`-free
    limit as :math:`T` grows. The teacher receives a gradient too, :math:`T\, p_T \odot (\log p_T -
    \log q_T - \mathrm{KL}_T)`; wrap ``teacher_logits`` in ``jax.lax.stop_gradient`` to freeze it.

    Peer conventions: Keras 3 ``keras.distillation.LogitsDistillation(temperature)`` (same
    :math:`T^2`, but through its clipped KL); PyTorch's tutorial ``T**2 *
    F.kl_div(F.log_softmax(s/T), F.log_softmax(t/T), log_target=True, reduction='none').sum(-1)``.

    Args:
      student_logits: logits of the student (the prediction), shape ``[..., C, ...]``.
      teacher_logits: logits of the teacher (the target), same shape.
      temperature: softmax temperature :math:`T > 0`; a Python number is checked, an array is not.
      axis: the distribution axis.

    Returns:
      The scaled divergence in nats, shape of the inputs without ``axis``.

    References:
      Hinton, Vinyals and Dean, `Distilling the Knowledge in a Neural Network
      <https://arxiv.org/abs/1503.02531>`_, 2015.
    """
    log_q, log_p, temp, out_dtype, axis = _tempered(
        student_logits, teacher_logits, temperature, axis
    )
    return (temp**2 * kl_divergence_with_log_targets(log_q, log_p, axis=axis)).astype(out_dtype)


def reverse_distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    temperature: float | ArrayLike = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Reverse (mode-seeking) distillation loss :math:`T^2 \, \mathrm{KL}(q_T \,\|\, p_T)`,
    :math:`q_T = \mathrm{softmax}(z_s/T)` the student's, :math:`p_T = \mathrm{softmax}(z_t/T)`
    the teacher's.

    The student is the first argument of the KL: it is penalised for mass where the teacher has
    little, not for missing some of the teacher's modes (MiniLLM's direction; Hinton's is
    :func:`distillation_loss`). Both sides go through ``log_softmax``, so it is finite for any
    finite logits, with finite gradients. The gradient with respect to the student logits is
    :math:`T\, q_T \odot (\log q_T - \log p_T - \mathrm{KL}_T)`; as :math:`T` grows it tends
    to the same :math:`T`-free limit as the forward loss's, :math:`((z_s - \bar z_s) - (z_t -
    \bar z_t)) / C` (every divergence here is :math:`\tfrac12 \chi^2` to second order), which is
    what the :math:`T^2` factor buys.

    Peer conventions: PyTorch ``T**2 * F.kl_div(F.log_softmax(t/T, -1), F.log_softmax(s/T, -1),
    log_target=True, reduction='none').sum(-1)`` (note the teacher in the ``input`` slot); TRL's
    ``generalized_jsd_loss(..., beta=1)``, without the :math:`T^2`.

    Args:
      student_logits: logits of the student (the prediction), shape ``[..., C, ...]``.
      teacher_logits: logits of the teacher (the target), same shape; log-probabilities work as
        well (the softmax ignores a constant shift).
      temperature: softmax temperature :math:`T > 0`; a Python number is checked, an array is not.
      axis: the distribution axis.

    Returns:
      The scaled divergence in nats, shape of the inputs without ``axis``.
    """
    log_q, log_p, temp, out_dtype, axis = _tempered(
        student_logits, teacher_logits, temperature, axis
    )
    return (temp**2 * kl_divergence_with_log_targets(log_p, log_q, axis=axis)).astype(out_dtype)


def jsd_distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    beta: float,
    temperature: float | ArrayLike = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Generalized Jensen-Shannon distillation loss, normalized: :math:`T^2\,
    \mathrm{JSD}_\beta(p_T \,\|\, q_T) / (\beta (1 - \beta))`.

    :math:`p_T = \mathrm{softmax}(z_t/T)` (teacher), :math:`q_T = \mathrm{softmax}(z_s/T)`
    (student) and :math:`\mathrm{JSD}_\beta` is GKD's, with :math:`\beta` the teacher's weight in
    the mixture (:func:`generalized_jensen_shannon_divergence` with ``normalized=True``). The
    normalization makes :math:`\beta` a continuous direction knob on the scale of KL: exactly
    :func:`distillation_loss` (forward) at :math:`\beta = 0` and :func:`reverse_distillation_loss`
    at :math:`\beta = 1`, and for nearby distributions the same :math:`\tfrac12 \chi^2` as both,
    so a ``soft_weight`` means the same for every :math:`\beta`. GKD's unnormalized value is this
    times :math:`\beta (1 - \beta)` (a quarter of it at :math:`\beta = 1/2`); it vanishes at
    both ends instead. The gradient with respect to the student logits tends to the forward loss's
    :math:`T`-free limit as :math:`T` grows.

    Args:
      student_logits: logits of the student (the prediction), shape ``[..., C, ...]``.
      teacher_logits: logits (or log-probabilities) of the teacher (the target), same shape.
      beta: the teacher's weight in the mixture, a Python number in ``[0, 1]``.
      temperature: softmax temperature :math:`T > 0`; a Python number is checked, an array is not.
      axis: the distribution axis.

    Returns:
      The scaled divergence in nats, shape of the inputs without ``axis``.

    Raises:
      ValueError: ``beta`` outside ``[0, 1]`` or a Python temperature that is not a finite number
        > 0.
    """
    beta = _check_beta(beta)
    log_q, log_p, temp, out_dtype, axis = _tempered(
        student_logits, teacher_logits, temperature, axis
    )
    jsd = _generalized_js_from_logs(log_p, log_q, beta, True, axis)
    return (temp**2 * jsd).astype(out_dtype)


def _tempered(
    student_logits: ArrayLike, teacher_logits: ArrayLike, temperature: Any, axis: int
) -> tuple[jax.Array, jax.Array, jax.Array, jnp.dtype, int]:
    """(log q_T, log p_T, T, output dtype, axis): both sides' log_softmax at temperature T."""
    if isinstance(temperature, bool) or (
        isinstance(temperature, int | float) and not (0 < temperature < math.inf)
    ):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    (zs, zt), out_dtype, axis = _prepare(
        axis, student_logits=student_logits, teacher_logits=teacher_logits
    )
    temp = jnp.asarray(temperature, dtype=zs.dtype)
    log_q = jax.nn.log_softmax(zs / temp, axis=axis)
    log_p = jax.nn.log_softmax(zt / temp, axis=axis)
    return log_q, log_p, temp, out_dtype, axis


class DistillationLoss(Protocol):
    """A distillation loss: student and teacher logits of equal shape -> one value per row."""

    def __call__(
        self,
        student_logits: ArrayLike,
        teacher_logits: ArrayLike,
        *,
        temperature: float | ArrayLike = 1.0,
        axis: int = -1,
    ) -> jax.Array: ...


DISTILLATION_DIRECTIONS = ("forward", "reverse", "jsd")


def get_distillation_loss(direction: str, beta: float | None = None) -> DistillationLoss:
    """The distillation loss of a direction: "forward" (:func:`distillation_loss`, KL(teacher ||
    student), Hinton's), "reverse" (:func:`reverse_distillation_loss`, KL(student || teacher)) or
    "jsd" (:func:`jsd_distillation_loss` with ``beta``).

    Raises:
      ValueError: an unknown direction, "jsd" without a ``beta`` in [0, 1], or a ``beta`` with
        another direction (it would be ignored).
    """
    if direction not in DISTILLATION_DIRECTIONS:
        names = ", ".join(repr(d) for d in DISTILLATION_DIRECTIONS)
        raise ValueError(f"direction: expected one of {names}, got {direction!r}")
    if direction != "jsd":
        if beta is not None:
            raise ValueError(f"beta: expected none with direction {direction!r}, got {beta!r}")
        return distillation_loss if direction == "forward" else reverse_distillation_loss
    if beta is None:
        raise ValueError("beta: expected a number in [0, 1] with direction 'jsd', got None")
    return functools.partial(jsd_distillation_loss, beta=_check_beta(beta))


def keras_kl_divergence(
    y_true: ArrayLike, y_pred: ArrayLike, *, epsilon: float = 1e-7
) -> jax.Array:
    r"""Keras' ``kl_divergence(y_true, y_pred)``, reproduced exactly: the clipped formula.

    .. math::
      \sum_i \tilde y_i \log(\tilde y_i / \tilde p_i), \quad
      \tilde y = \mathrm{clip}(y_{\mathrm{true}}, \epsilon, 1), \;
      \tilde p = \mathrm{clip}(y_{\mathrm{pred}}, \epsilon, 1)

    over the last axis, with ``epsilon`` cast to the compute dtype (``1.0000000116860974e-07`` in
    float32) and a division before the log, as in Keras 3 and tf.keras. Keras' argument order:
    targets first. This is *not* the KL divergence at the boundaries: zero targets add ``eps *
    log(eps / q)``, ``q = 0`` gives a finite cap, negative inputs are clipped to ``eps`` (finite,
    not NaN), values above 1 to 1 (KL can be negative), and the gradient with respect to ``y_pred``
    is 0 wherever ``y_pred < eps`` or ``y_pred > 1`` (as with ``tf.clip_by_value``, the full
    gradient passes at the bounds themselves). Use it to reproduce Keras numbers; use
    :func:`kl_divergence` for the exact values. Unlike the Keras class form, float64 input is
    computed in float64; float16/bfloat16 are computed in float32 (Keras computes them in the half
    dtype, where 1e-7 is subnormal).

    Args:
      y_true: target probabilities, shape ``[..., C]``.
      y_pred: predicted probabilities (not logits, not logs), same shape.
      epsilon: the clipping bound, Keras' ``backend.epsilon()``.

    Returns:
      The Keras loss per distribution in nats, shape ``[...]``.
    """
    (t, q), out_dtype, _ = _prepare(-1, y_true=y_true, y_pred=y_pred)
    return _keras_kl(t, q, epsilon, -1).astype(out_dtype)


def _keras_kl(t: jax.Array, q: jax.Array, epsilon: float, axis: int) -> jax.Array:
    eps = jnp.asarray(epsilon, dtype=q.dtype)
    one = jnp.ones((), dtype=q.dtype)
    t = _clip_like_tf(t, eps, one)
    q = _clip_like_tf(q, eps, one)
    return jnp.sum(t * jnp.log(t / q), axis=axis)


# --------------------------------------------------------------------------------------------------
# Training registry: every entry is f(logits, targets, *, axis=-1) -> one value per distribution.


def keras_kl_divergence_from_logits(
    logits: ArrayLike, targets: ArrayLike, *, axis: int = -1, epsilon: float = 1e-7
) -> jax.Array:
    """Keras' clipped KL (:func:`keras_kl_divergence`) of ``softmax(logits)`` from the targets.

    What a Keras model with a softmax output and ``loss='kl_divergence'`` computes, including the
    zero gradient of saturated predictions; for reproducing Keras' numbers only.
    """
    (z, t), out_dtype, axis = _prepare(axis, logits=logits, targets=targets)
    # exp(log_softmax), not softmax's division by the row sum: XLA turns a division by a broadcast
    # row sum into a multiplication by its reciprocal in some compiled programs and not in others,
    # which would make a training run's bits depend on the device count.
    q = jnp.exp(jax.nn.log_softmax(z, axis=axis))
    return _keras_kl(t, q, epsilon, axis).astype(out_dtype)


class TrainingLoss(Protocol):
    """A registry loss: logits and targets of equal shape -> one value per distribution."""

    def __call__(self, logits: ArrayLike, targets: ArrayLike, *, axis: int = -1) -> jax.Array: ...


LOSSES: dict[str, TrainingLoss] = {
    "ce": softmax_cross_entropy,
    "js": jensen_shannon_divergence_from_logits,
    "keras_kl": keras_kl_divergence_from_logits,
    "kl": kl_divergence_from_logits,
    "reverse_kl": reverse_kl_divergence_from_logits,
}

ALIASES: dict[str, str] = {
    "categorical_crossentropy": "ce",
    "cross_entropy": "ce",
    "kl_divergence": "kl",
    "kld": "kl",
    "kullback_leibler_divergence": "kl",
}


def loss_names() -> tuple[str, ...]:
    """The canonical training-loss names, sorted."""
    return tuple(sorted(LOSSES))


def canonical_loss_name(name: str) -> str:
    """Maps a loss name or alias (case-insensitive, e.g. Keras' ``'KLD'``) to its canonical name.

    Raises:
      TypeError: `name` is not a string.
      ValueError: `name` is neither a loss name nor an alias; the message lists the choices.
    """
    if not isinstance(name, str):
        raise TypeError(f"loss: expected a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in LOSSES:
        names = ", ".join(repr(n) for n in loss_names())
        aliases = ", ".join(repr(a) for a in sorted(ALIASES))
        raise ValueError(f"loss: expected one of {names} or an alias ({aliases}); got {name!r}")
    return key


def get_loss(name: str) -> TrainingLoss:
    """The training loss ``f(logits, targets, *, axis=-1) -> per-distribution values`` for a name
    or alias; every entry reduces over ``axis`` only."""
    return LOSSES[canonical_loss_name(name)]


# The Gaussian (VAE) divergences live in their own module, which takes `_prepare` from this one
# when called (not when imported), so either module can be imported first.
from kldiv.gaussian import (  # noqa: E402
    effective_beta,
    gaussian_kl_divergence,
    gaussian_kl_divergence_between,
)
