r"""KL divergence between diagonal Gaussians, the regulariser of a VAE, as pure JAX functions.

Re-exported from :mod:`kldiv.losses`, whose contract these follow: each function reduces over one
``axis`` (the latent axis, default ``-1``) and returns one value per example; values are in nats and
come back in the inputs' floating-point dtype (float16/bfloat16 are computed in float32); inputs
must have equal shapes; nothing averages over the batch.

Gaussians are given by mean and **log-variance** :math:`\ell = \log \sigma^2`, the parametrisation
of Kingma and Welling's encoder (PyTorch and TFP ``Normal`` take the scale :math:`\sigma =
e^{\ell/2}` instead).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["effective_beta", "gaussian_kl_divergence", "gaussian_kl_divergence_between"]

# 1 / (2 (k + 2)!) for k = 0..19: (e^x - 1 - x) / 2 = x^2 (c_0 + c_1 x + ...). At |x| <= 1 the
# first omitted term is below 1e-19 of the sum, under float64 rounding.
_SERIES = tuple(1.0 / (2.0 * math.factorial(k + 2)) for k in range(20))
_SERIES_LIMIT = 1.0


def _overflow_limit(x: jax.Array) -> float:
    """Beyond this, e^x overflows (or nearly) in x's dtype: 87.7 in float32, 708.8 in float64."""
    return math.log(float(jnp.finfo(x.dtype).max)) - 1.0


def _half_exp(x: jax.Array) -> jax.Array:
    """e^x / 2 without overflowing where the result is representable (x/2 is exact)."""
    h = jnp.exp(0.5 * x)
    return (0.5 * h) * h


@jax.custom_jvp
def _half_expm1mx(x: jax.Array) -> jax.Array:
    r"""(e^x - 1 - x) / 2, accurate to a few ulps for every x.

    ``jnp.exp(x) - 1 - x`` loses everything to cancellation at small x (float32: x = 1e-8 gives
    -1e-8, a negative KL), and ``jnp.expm1(x) - x`` still cancels the leading x (relative error
    about eps / |x|: 1e-8 in float64 at x = 1e-8); a Taylor series is exact there. Beyond the
    series (|x| > 1), ``expm1(x) - x`` loses under 2 bits; near overflow e^x / 2 is formed from
    e^{x/2}, so the value overflows only where it is not representable (float32: x > 89.4, not
    88.7).
    """
    small = jnp.abs(x) <= _SERIES_LIMIT
    xs = jnp.where(small, x, 0.0)
    series = jnp.zeros_like(xs)
    for c in reversed(_SERIES):
        series = series * xs + c
    series = xs * xs * series
    huge = x > _overflow_limit(x)
    moderate = 0.5 * (jnp.expm1(jnp.where(huge, 0.0, x)) - x)
    near_overflow = jnp.where(x == jnp.inf, jnp.inf, _half_exp(x) - 0.5 * (1.0 + x))
    return jnp.where(small, series, jnp.where(huge, near_overflow, moderate))


@_half_expm1mx.defjvp
def _half_expm1mx_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple:
    (x,), (dx,) = primals, tangents
    # d/dx = (e^x - 1) / 2: exact via expm1, and finite wherever the value is.
    huge = x > _overflow_limit(x)
    slope = jnp.where(huge, _half_exp(x) - 0.5, 0.5 * jnp.expm1(jnp.where(huge, 0.0, x)))
    return _half_expm1mx(x), slope * dx


def gaussian_kl_divergence(
    mean: ArrayLike, log_variance: ArrayLike, *, axis: int = -1
) -> jax.Array:
    r"""KL divergence of a diagonal Gaussian from the standard normal, KL(N(mean, diag σ²) || N(0, I)).

    .. math::
      \mathrm{KL} = \tfrac12 \sum_j \left(e^{\ell_j} - 1 - \ell_j + \mu_j^2\right),
      \qquad \ell_j = \log \sigma_j^2

    the VAE regulariser (Kingma and Welling, Appendix B), summed over the latent ``axis``: one
    value per example, in nats. Each term is non-negative, and the value is 0 exactly at
    :math:`\mu = 0, \ell = 0`.

    Numerics: :math:`e^{\ell} - 1 - \ell` is computed without cancellation (a series for
    :math:`|\ell| \le 1`, where the naive ``exp(lv) - 1 - lv`` in float32 is off by more than 1%
    for :math:`|\ell| \lesssim 10^{-3}` and often negative below :math:`10^{-4}`, and even
    ``expm1(lv) - lv`` has a relative error of about :math:`\epsilon / |\ell|`); the value is
    accurate to a few ulps for every :math:`\ell`. It is ``+inf`` where :math:`e^{\ell} / 2`
    exceeds the largest float (float32: :math:`\ell > 89.4`, not 88.7 where :math:`e^{\ell}`
    does) or :math:`\mu^2` does (float32: :math:`|\mu| > 1.8 \cdot 10^{19}`), at
    :math:`\ell = \pm\infty`, and NaN for NaN input. Gradients are the exact
    :math:`\partial/\partial \mu_j = \mu_j` and :math:`\partial/\partial \ell_j = \tfrac12
    (e^{\ell_j} - 1)`, finite wherever the value is.

    Peer conventions: PyTorch ``kl_divergence(Normal(mean, exp(0.5 * lv)), Normal(0, 1))`` and
    TFP ``tfd.kl_divergence(tfd.Normal(mean, exp(0.5 * lv)), tfd.Normal(0., 1.))`` are **per
    dimension**: sum them over the last axis (or wrap both sides in ``Independent(..., 1)``,
    ``tfd.MultivariateNormalDiag``) to get this value. The Flax and pytorch/examples VAEs write
    ``-0.5 * sum(1 + lv - mean**2 - exp(lv))``, the naive form of the same value.

    Args:
      mean: the means :math:`\mu`, shape ``[..., D, ...]`` with the latent dimension on ``axis``.
      log_variance: the log-variances :math:`\ell = \log \sigma^2`, same shape.
      axis: the latent axis, summed over.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.

    References:
      Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_,
      2014, Appendix B.
    """
    from kldiv.losses import _prepare  # here: kldiv.losses imports this module's functions

    (m, lv), out_dtype, axis = _prepare(axis, mean=mean, log_variance=log_variance)
    terms = _half_expm1mx(lv) + 0.5 * jnp.square(m)
    return jnp.sum(terms, axis=axis).astype(out_dtype)


def gaussian_kl_divergence_between(
    mean_p: ArrayLike,
    log_variance_p: ArrayLike,
    mean_q: ArrayLike,
    log_variance_q: ArrayLike,
    *,
    axis: int = -1,
) -> jax.Array:
    r"""KL divergence between diagonal Gaussians, KL(N_p || N_q).

    .. math::
      \mathrm{KL}(p \,\|\, q) = \tfrac12 \sum_j \left(e^{\delta_j} - 1 - \delta_j
      + (\mu_{p,j} - \mu_{q,j})^2 e^{-\ell_{q,j}}\right), \qquad \delta_j = \ell_{p,j} - \ell_{q,j}

    the per-dimension closed form :math:`\log(\sigma_q / \sigma_p) + (\sigma_p^2 + (\mu_p -
    \mu_q)^2) / (2 \sigma_q^2) - \tfrac12` summed over ``axis``, in nats. With ``mean_q = 0`` and
    ``log_variance_q = 0`` it is :func:`gaussian_kl_divergence` bit for bit; ``between(p, p)`` is
    exactly 0 for finite inputs (also where :math:`e^{-\ell_q}` overflows). The ratio term
    :math:`e^\delta - 1 - \delta` gets the same cancellation-free treatment as in
    :func:`gaussian_kl_divergence`, and the mean term is formed as :math:`((\mu_p - \mu_q)
    e^{-\ell_q/2})^2`, so it overflows only where the value does (or where
    :math:`e^{-\ell_q / 2}` itself overflows, a variance below ~1e-77 in float32). Gradients are
    finite wherever the value is.

    Peer conventions: PyTorch ``kl_divergence(Normal(m_p, s_p), Normal(m_q, s_q))`` and TFP
    ``tfd.kl_divergence(tfd.Normal(...), tfd.Normal(...))`` are per dimension (sum over the last
    axis, or use ``Independent``/``MultivariateNormalDiag``), with scales :math:`s = e^{\ell/2}`.
    Direction as there: the first distribution is the one the expectation is taken under (the
    VAE posterior), the second the prior.

    Args:
      mean_p: means of p, shape ``[..., D, ...]``.
      log_variance_p: log-variances of p, same shape.
      mean_q: means of q, same shape.
      log_variance_q: log-variances of q, same shape.
      axis: the latent axis, summed over.

    Returns:
      The divergence in nats, shape of the inputs without ``axis``.
    """
    from kldiv.losses import _prepare

    (mp, lvp, mq, lvq), out_dtype, axis = _prepare(
        axis,
        mean_p=mean_p,
        log_variance_p=log_variance_p,
        mean_q=mean_q,
        log_variance_q=log_variance_q,
    )
    diff = mp - mq
    # Double where: at equal means the term is 0 even where e^{-lv_q / 2} is inf (0 * inf), and its
    # gradient is 0 rather than NaN.
    offset = diff != 0
    scaled = jnp.where(offset, diff, 0.0) * jnp.exp(-0.5 * jnp.where(offset, lvq, 0.0))
    terms = _half_expm1mx(lvp - lvq) + 0.5 * jnp.square(jnp.where(offset, scaled, 0.0))
    return jnp.sum(terms, axis=axis).astype(out_dtype)


_REDUCTIONS = ("sum", "mean")


def effective_beta(
    n_pixels: int,
    n_latent: int,
    *,
    reconstruction: str,
    kl: str,
    beta: float = 1.0,
) -> float:
    r"""The KL weight a VAE loss actually has, given how its two terms are reduced.

    The negative ELBO of one example is :math:`R + \beta K` with both terms **summed**: the
    reconstruction :math:`R = \sum_{i=1}^{P} r_i` over the ``n_pixels`` outputs and
    :math:`K = \sum_{j=1}^{D} k_j` over the ``n_latent`` dimensions (``beta = 1`` is the ELBO,
    ``beta > 1`` a beta-VAE). Averaging a term instead divides it by its count, and multiplying a
    loss by a constant only rescales the learning rate, so

    .. math::
      \frac{R}{P} + \beta K \propto R + (\beta P) K, \qquad R + \beta \frac{K}{D},
      \qquad \frac{R}{P} + \beta \frac{K}{D} \propto R + \frac{\beta P}{D} K

    and the returned value is :math:`\beta \cdot (P \text{ if the reconstruction is averaged}) /
    (D \text{ if the KL is averaged})`. Averaging both terms over the batch (or summing both) is
    harmless: a common factor.

    The traps, all in well-known code: a per-pixel mean such as Keras' ``binary_crossentropy``
    (which averages over its last axis) or PyTorch's default ``reduction='mean'``, next to a
    summed KL gives :math:`\beta P` (784 on MNIST, the pytorch/examples VAE before PR #296 and
    the Keras example before it multiplied by ``original_dim``; the decoder is then pushed to
    ignore the latent code: posterior collapse); a KL averaged over the latent dimensions next to
    a summed reconstruction gives :math:`\beta / D` (keras-io#270, a weaker regulariser that looks
    like a better reconstruction).

    Args:
      n_pixels: the number of reconstruction terms per example (pixels, tokens), :math:`P`.
      n_latent: the number of latent dimensions, :math:`D`.
      reconstruction: ``"sum"`` or ``"mean"``, how the reconstruction is reduced per example.
      kl: ``"sum"`` or ``"mean"``, how the KL is reduced over the latent dimensions.
      beta: the KL weight written in the loss.

    Returns:
      The weight of the summed KL relative to the summed reconstruction, a Python float.

    Raises:
      ValueError: a count is not a positive integer, a reduction is not ``"sum"`` or
        ``"mean"``, or ``beta`` is not a finite non-negative number.
    """
    for name, count in (("n_pixels", n_pixels), ("n_latent", n_latent)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name}: expected a positive integer, got {count!r}")
    for name, reduction in (("reconstruction", reconstruction), ("kl", kl)):
        if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
            raise ValueError(f"{name}: expected 'sum' or 'mean', got {reduction!r}")
    if (
        isinstance(beta, bool)
        or not isinstance(beta, int | float)
        or not math.isfinite(beta)
        or beta < 0
    ):
        raise ValueError(f"beta: expected a finite non-negative number, got {beta!r}")
    weight = float(beta)
    if reconstruction == "mean":
        weight *= n_pixels
    if kl == "mean":
        weight /= n_latent
    return weight
