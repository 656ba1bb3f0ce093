"""kldiv.gaussian (re-exported by kldiv.losses) against mpmath at 50 digits, Monte-Carlo estimates,
numerical integration of the per-dimension PyTorch/TFP convention, analytic gradients, invariants."""

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kldiv import losses

PROPERTY = settings(max_examples=25, deadline=None)
EDGES = [1e-8, -1e-8, 1e-4, -1e-4, 0.3, -0.3, 0.51, -0.51, 1.0, -1.0, 1.01, -1.01]
LOG_VARIANCES = sorted({*np.linspace(-30.0, 30.0, 61).tolist(), *EDGES})
MEANS = [0.0, 1e-3, -1.0, 7.5, -1e3]


def _mp_term(m, lv):
    """0.5 (e^lv - 1 - lv + m^2) at 50 digits, from the exact binary values of the inputs."""
    with mpmath.workdps(50):
        m, lv = mpmath.mpf(float(m)), mpmath.mpf(float(lv))
        return 0.5 * (mpmath.exp(lv) - 1 - lv + m * m)


def _mp_between_term(mp_, lvp, mq, lvq):
    """The per-dimension closed form log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2."""
    with mpmath.workdps(50):
        mp_, lvp, mq, lvq = (mpmath.mpf(float(v)) for v in (mp_, lvp, mq, lvq))
        var_p, var_q = mpmath.exp(lvp), mpmath.exp(lvq)
        return (lvq - lvp) / 2 + (var_p + (mp_ - mq) ** 2) / (2 * var_q) - mpmath.mpf(1) / 2


def _grid(dtype):
    """(n, 1) means and log-variances over MEANS x LOG_VARIANCES, rounded to `dtype`."""
    m, lv = np.meshgrid(np.array(MEANS), np.array(LOG_VARIANCES), indexing="ij")
    return m.reshape(-1, 1).astype(dtype), lv.reshape(-1, 1).astype(dtype)


# --------------------------------------------------------------------------------------------------
# Values against mpmath


def test_matches_mpmath_elementwise(dtype):
    m, lv = _grid(dtype)
    got = np.asarray(losses.gaussian_kl_divergence(m, lv))
    assert got.dtype == dtype and got.shape == (m.shape[0],)
    want = np.array([float(_mp_term(a, b)) for a, b in zip(m[:, 0], lv[:, 0], strict=True)])
    rtol = 4e-15 if dtype is np.float64 else 6e-7
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def test_matches_mpmath_summed_over_the_latent_axis(dtype):
    rng = np.random.default_rng(1)
    m = rng.normal(0.0, 2.0, size=(20, 8)).astype(dtype)
    lv = rng.uniform(-12.0, 12.0, size=(20, 8)).astype(dtype)
    lv[::3, 2] = 1e-7  # tiny log-variances among ordinary ones
    got = np.asarray(losses.gaussian_kl_divergence(m, lv))
    want = [
        float(mpmath.fsum(_mp_term(a, b) for a, b in zip(mr, lr, strict=True)))
        for mr, lr in zip(m, lv, strict=True)
    ]
    rtol = 1e-14 if dtype is np.float64 else 1e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


@pytest.mark.parametrize("lv", [1e-8, -1e-8, 1e-6, -1e-5, 1e-4, 1e-3, -1e-3])
def test_small_log_variances_beat_the_naive_formula_in_float32(lv):
    lv32 = np.float32(lv)
    want = float(_mp_term(0.0, lv32))
    ours = float(losses.gaussian_kl_divergence(jnp.zeros((1,), jnp.float32), jnp.array([lv32])))
    naive = 0.5 * float(jnp.exp(lv32) - 1.0 - lv32)  # the Flax / pytorch/examples expression
    expm1 = 0.5 * float(jnp.expm1(lv32) - lv32)
    assert abs(ours - want) / want < 1e-6
    assert abs(naive - want) / want > 1e-2  # 0, negative, or a few per cent off
    assert abs(expm1 - want) >= abs(ours - want)


def test_float64_tiny_log_variance_is_exact_where_expm1_minus_x_is_not():
    with jax.enable_x64(True):
        lv = np.array([1e-8, -1e-8, 3e-12])
        got = np.asarray(losses.gaussian_kl_divergence(np.zeros((3, 1)), lv.reshape(3, 1)))
        want = np.array([float(_mp_term(0.0, v)) for v in lv])
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
        expm1 = 0.5 * (np.expm1(lv) - lv)
        assert np.all(np.abs(expm1 - want) / want > 1e-10)


def test_large_log_variances_overflow_only_where_the_value_does():
    lv = jnp.array([88.0, 89.0, 89.4, 89.5, 200.0, jnp.inf], jnp.float32)
    got = np.asarray(losses.gaussian_kl_divergence(jnp.zeros((6, 1), jnp.float32), lv[:, None]))
    want = np.array([float(_mp_term(0.0, v)) for v in np.asarray(lv[:4])])
    np.testing.assert_allclose(got[:3], want[:3], rtol=1e-6)
    assert want[3] > np.finfo(np.float32).max and np.all(got[3:] == np.inf)


def test_float64_large_log_variances_overflow_only_where_the_value_does():
    with jax.enable_x64(True):
        lv = np.array([[700.0], [709.0], [710.0], [710.5]])
        got = np.asarray(losses.gaussian_kl_divergence(np.zeros((4, 1)), lv))
        want = [float(_mp_term(0.0, v)) for v in lv[:3, 0]]
        np.testing.assert_allclose(got[:3], want, rtol=1e-15)
        assert got[3] == np.inf


def test_limits_and_nan():
    lv = jnp.array([[-jnp.inf], [jnp.inf], [jnp.nan], [0.0]])
    m = jnp.array([[0.0], [0.0], [0.0], [jnp.nan]])
    got = np.asarray(losses.gaussian_kl_divergence(m, lv))
    assert got[0] == np.inf and got[1] == np.inf and np.isnan(got[2]) and np.isnan(got[3])
    big_mean = losses.gaussian_kl_divergence(jnp.array([1e20], jnp.float32), jnp.zeros(1))
    assert big_mean == np.inf


def test_between_matches_mpmath(dtype):
    rng = np.random.default_rng(2)
    shape = (30, 5)
    mp_, mq = rng.normal(0, 3, shape).astype(dtype), rng.normal(0, 3, shape).astype(dtype)
    lvp, lvq = rng.uniform(-20, 20, shape).astype(dtype), rng.uniform(-20, 20, shape).astype(dtype)
    lvp[::4, 0] = lvq[::4, 0] + dtype(1e-6)  # nearly equal variances
    got = np.asarray(losses.gaussian_kl_divergence_between(mp_, lvp, mq, lvq))
    assert got.dtype == dtype and got.shape == (30,)
    want = [
        float(mpmath.fsum(_mp_between_term(*t) for t in zip(*rows, strict=True)))
        for rows in zip(mp_, lvp, mq, lvq, strict=True)
    ]
    rtol = 1e-13 if dtype is np.float64 else 2e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


# --------------------------------------------------------------------------------------------------
# Monte Carlo and the per-dimension peer convention


def _monte_carlo(mp_, lvp, mq, lvq, n=10**6, seed=0):
    """E_p[log p(z) - log q(z)] from n draws: (estimate, standard error)."""
    rng = np.random.default_rng(seed)
    sp, sq = np.exp(0.5 * lvp), np.exp(0.5 * lvq)
    z = mp_ + sp * rng.standard_normal((n, mp_.size))
    log_ratio = scipy.stats.norm.logpdf(z, mp_, sp) - scipy.stats.norm.logpdf(z, mq, sq)
    per_draw = log_ratio.sum(axis=1)
    return per_draw.mean(), per_draw.std(ddof=1) / math.sqrt(n)


def test_standard_normal_kl_agrees_with_monte_carlo():
    with jax.enable_x64(True):
        m, lv = np.array([0.3, -1.2, 0.0]), np.array([-0.7, 0.4, 1e-3])
        estimate, se = _monte_carlo(m, lv, np.zeros(3), np.zeros(3))
        value = float(losses.gaussian_kl_divergence(m, lv))
    assert abs(value - estimate) < 5 * se


def test_between_agrees_with_monte_carlo():
    with jax.enable_x64(True):
        mp_, lvp = np.array([0.3, -1.2, 2.0]), np.array([-0.7, 0.4, 0.1])
        mq, lvq = np.array([-0.5, 0.0, 1.5]), np.array([0.2, -0.3, 0.6])
        estimate, se = _monte_carlo(mp_, lvp, mq, lvq, seed=1)
        value = float(losses.gaussian_kl_divergence_between(mp_, lvp, mq, lvq))
    assert abs(value - estimate) < 5 * se


def _quad_kl(mp_, sp, mq, sq):
    """One dimension, by quadrature of p (log p - log q) with scipy.stats densities."""

    def integrand(x):
        return scipy.stats.norm.pdf(x, mp_, sp) * (
            scipy.stats.norm.logpdf(x, mp_, sp) - scipy.stats.norm.logpdf(x, mq, sq)
        )

    lo, hi = mp_ - 40 * sp, mp_ + 40 * sp
    value, _ = scipy.integrate.quad(integrand, lo, hi, points=[mp_], epsabs=0, epsrel=1e-12)
    return value


def test_per_dimension_convention_of_pytorch_and_tfp():
    # torch.distributions.kl_divergence(Normal(m_p, s_p), Normal(m_q, s_q)) and TFP's Normal pair
    # give one value per dimension, with scales s = exp(lv / 2); ours is their sum over the axis.
    with jax.enable_x64(True):
        mp_, lvp = np.array([0.3, -1.2, 2.0, 0.0]), np.array([-0.7, 0.4, 0.1, 0.0])
        mq, lvq = np.array([-0.5, 0.0, 1.5, 0.0]), np.array([0.2, -0.3, 0.6, 0.0])
        per_dim = np.array(
            [
                _quad_kl(a, math.exp(b / 2), c, math.exp(d / 2))
                for a, b, c, d in zip(mp_, lvp, mq, lvq, strict=True)
            ]
        )
        ones = np.asarray(
            losses.gaussian_kl_divergence_between(
                mp_[:, None], lvp[:, None], mq[:, None], lvq[:, None]
            )
        )
        summed = float(losses.gaussian_kl_divergence_between(mp_, lvp, mq, lvq))
        standard = np.asarray(losses.gaussian_kl_divergence(mp_[:, None], lvp[:, None]))
        standard_quad = [
            _quad_kl(a, math.exp(b / 2), 0.0, 1.0) for a, b in zip(mp_, lvp, strict=True)
        ]
    np.testing.assert_allclose(ones, per_dim, rtol=1e-9, atol=1e-14)
    assert summed == pytest.approx(per_dim.sum(), rel=1e-9)
    np.testing.assert_allclose(standard, standard_quad, rtol=1e-9, atol=1e-14)


# --------------------------------------------------------------------------------------------------
# Gradients


def test_gradients_are_finite_wherever_the_value_is_float32():
    lv = jnp.concatenate(
        [jnp.linspace(-80.0, 80.0, 161), jnp.array([1e-8, -1e-8, 89.0, 89.4])]
    ).astype(jnp.float32)
    m = jnp.linspace(-5.0, 5.0, lv.shape[0]).astype(jnp.float32)

    def per_element(m, lv):
        return losses.gaussian_kl_divergence(m[:, None], lv[:, None])

    values = per_element(m, lv)
    grad_m, grad_lv = jax.grad(lambda a, b: per_element(a, b).sum(), argnums=(0, 1))(m, lv)
    assert bool(jnp.all(jnp.isfinite(values)))
    assert bool(jnp.all(jnp.isfinite(grad_m))) and bool(jnp.all(jnp.isfinite(grad_lv)))
    np.testing.assert_array_equal(grad_m, m)
    want = np.array([float(0.5 * mpmath.expm1(mpmath.mpf(float(v)))) for v in np.asarray(lv)])
    np.testing.assert_allclose(grad_lv, want, rtol=2e-6, atol=0)


def test_gradients_equal_the_analytic_ones_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        m = rng.normal(0, 2, (6, 4))
        lv = rng.uniform(-30, 30, (6, 4))
        lv[0] = [1e-9, -1e-9, 0.5, -0.5]
        grad_m, grad_lv = jax.grad(
            lambda a, b: losses.gaussian_kl_divergence(a, b).sum(), argnums=(0, 1)
        )(m, lv)
        np.testing.assert_array_equal(grad_m, m)
        np.testing.assert_allclose(grad_lv, 0.5 * np.expm1(lv), rtol=1e-14, atol=0)

        mq, lvq = rng.normal(0, 2, (6, 4)), rng.uniform(-30, 30, (6, 4))
        grads = jax.grad(
            lambda *a: losses.gaussian_kl_divergence_between(*a).sum(), argnums=(0, 1, 2, 3)
        )(m, lv, mq, lvq)
        pull = (m - mq) * np.exp(-lvq)
        ratio = 0.5 * np.expm1(lv - lvq)
        want = (pull, ratio, -pull, -ratio - 0.5 * (m - mq) ** 2 * np.exp(-lvq))
        for got, expected in zip(grads, want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_second_derivative_is_finite_and_exact():
    with jax.enable_x64(True):
        lv = np.array([-3.0, 1e-7, 0.2, 0.6, 40.0])
        hessian_diag = jax.vmap(
            jax.grad(jax.grad(lambda x: losses.gaussian_kl_divergence(jnp.zeros(1), x[None])))
        )(lv)
        np.testing.assert_allclose(hessian_diag, 0.5 * np.exp(lv), rtol=1e-14)


def test_between_equal_means_with_a_tiny_prior_variance_has_zero_value_and_gradients():
    m = jnp.array([0.5, -2.0], jnp.float32)
    lv = jnp.array([-200.0, -150.0], jnp.float32)  # e^{-lv/2} overflows float32
    value, grads = jax.value_and_grad(
        lambda *a: losses.gaussian_kl_divergence_between(*a), argnums=(0, 1, 2, 3)
    )(m, lv, m, lv)
    assert value == 0.0
    for g in grads:
        np.testing.assert_array_equal(g, np.zeros(2, np.float32))


# --------------------------------------------------------------------------------------------------
# Invariants, shapes, dtypes


@PROPERTY
@given(
    hnp.arrays(np.float64, (3, 4), elements=st.floats(-50, 50)),
    hnp.arrays(np.float64, (3, 4), elements=st.floats(-40, 40)),
    hnp.arrays(np.float64, (3, 4), elements=st.floats(-50, 50)),
    hnp.arrays(np.float64, (3, 4), elements=st.floats(-40, 40)),
)
def test_non_negative_and_between_self_is_zero(mp_, lvp, mq, lvq):
    for dt in (np.float32, np.float64):
        with jax.enable_x64(dt is np.float64):
            a, b, c, d = (x.astype(dt) for x in (mp_, lvp, mq, lvq))
            assert np.all(np.asarray(losses.gaussian_kl_divergence(a, b)) >= 0)
            assert np.all(np.asarray(losses.gaussian_kl_divergence_between(a, b, c, d)) >= 0)
            np.testing.assert_array_equal(
                losses.gaussian_kl_divergence_between(a, b, a, b), np.zeros(3, dt)
            )
            np.testing.assert_array_equal(
                losses.gaussian_kl_divergence_between(a, b, np.zeros_like(a), np.zeros_like(b)),
                losses.gaussian_kl_divergence(a, b),
            )


def test_zero_exactly_at_the_standard_normal_and_positive_elsewhere(dtype):
    zeros = np.zeros((4, 3), dtype)
    np.testing.assert_array_equal(losses.gaussian_kl_divergence(zeros, zeros), np.zeros(4, dtype))
    m, lv = zeros.copy(), zeros.copy()
    m[0, 1], lv[1, 0], lv[2, 2], m[3, 0] = 1e-6, 1e-8, -1e-8, -1e-6
    assert np.all(np.asarray(losses.gaussian_kl_divergence(m, lv)) > 0)


@pytest.mark.parametrize(
    ("shape", "axis", "out"),
    [((5,), -1, ()), ((4, 5), -1, (4,)), ((3, 4, 5), -1, (3, 4)), ((3, 4, 5), 1, (3, 5))],
)
def test_shapes_and_axis(shape, axis, out):
    rng = np.random.default_rng(4)
    m, lv, mq, lvq = (rng.normal(size=shape).astype(np.float32) for _ in range(4))
    got = losses.gaussian_kl_divergence(m, lv, axis=axis)
    assert got.shape == out
    moved = losses.gaussian_kl_divergence(np.moveaxis(m, axis, -1), np.moveaxis(lv, axis, -1))
    np.testing.assert_array_equal(got, moved)
    assert losses.gaussian_kl_divergence_between(m, lv, mq, lvq, axis=axis).shape == out


@pytest.mark.parametrize("low", [jnp.float16, jnp.bfloat16])
def test_half_precision_is_computed_in_float32(low):
    m = jnp.array([[0.5, -1.0, 2.0]], low)
    lv = jnp.array([[1e-3, -4.0, 3.0]], low)
    got = losses.gaussian_kl_divergence(m, lv)
    assert got.dtype == low
    want = losses.gaussian_kl_divergence(m.astype(jnp.float32), lv.astype(jnp.float32))
    np.testing.assert_array_equal(got, want.astype(low))
    assert losses.gaussian_kl_divergence_between(m, lv, m, lv).dtype == low


def test_invalid_inputs_name_the_parameter():
    with pytest.raises(ValueError, match="log_variance: expected the same shape"):
        losses.gaussian_kl_divergence(jnp.zeros((2, 3)), jnp.zeros((3,)))
    with pytest.raises(TypeError, match="mean: expected a floating-point array"):
        losses.gaussian_kl_divergence(jnp.zeros(3, jnp.int32), jnp.zeros(3))
    with pytest.raises(ValueError, match="log_variance_q: expected the same shape"):
        losses.gaussian_kl_divergence_between(
            jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.zeros(2)
        )
    with pytest.raises(ValueError, match="axis"):
        losses.gaussian_kl_divergence(jnp.zeros(3), jnp.zeros(3), axis=1)


def test_jit_and_vmap():
    m, lv = jnp.ones((2, 3, 4)), jnp.full((2, 3, 4), 0.25)
    eager = losses.gaussian_kl_divergence(m, lv)
    np.testing.assert_array_equal(jax.jit(losses.gaussian_kl_divergence)(m, lv), eager)
    np.testing.assert_array_equal(jax.vmap(losses.gaussian_kl_divergence)(m, lv), eager)


# --------------------------------------------------------------------------------------------------
# Effective beta


def test_effective_beta_traps():
    assert losses.effective_beta(64, 8, reconstruction="sum", kl="sum") == 1.0
    assert losses.effective_beta(784, 20, reconstruction="mean", kl="sum") == 784.0
    assert losses.effective_beta(784, 20, reconstruction="sum", kl="mean") == 1 / 20
    assert losses.effective_beta(64, 8, reconstruction="mean", kl="mean", beta=4.0) == 32.0
    assert losses.effective_beta(64, 8, reconstruction="sum", kl="sum", beta=0) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_pixels": 0}, "n_pixels: expected a positive integer"),
        ({"n_latent": 2.0}, "n_latent: expected a positive integer"),
        ({"reconstruction": "batchmean"}, "reconstruction: expected 'sum' or 'mean'"),
        ({"kl": None}, "kl: expected 'sum' or 'mean'"),
        ({"beta": -1.0}, "beta: expected a finite non-negative number"),
        ({"beta": math.inf}, "beta: expected a finite non-negative number"),
    ],
)
def test_effective_beta_rejects(kwargs, message):
    args = {"n_pixels": 64, "n_latent": 8, "reconstruction": "sum", "kl": "sum", **kwargs}
    with pytest.raises(ValueError, match=message):
        losses.effective_beta(**args)


@pytest.mark.parametrize("reconstruction", ["sum", "mean"])
@pytest.mark.parametrize("kl", ["sum", "mean"])
def test_effective_beta_is_the_weight_the_gradient_sees(reconstruction, kl):
    # A toy VAE loss with shared parameters: its gradient under the given reductions points the
    # same way as that of the summed ELBO with the KL weighted by effective_beta.
    n_pixels, n_latent, beta = 6, 3, 2.0
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        x = rng.uniform(size=n_pixels)
        decoder = rng.normal(size=(n_pixels, 4))
        enc_mean, enc_lv = rng.normal(size=(n_latent, 4)), rng.normal(size=(n_latent, 4))
        w = rng.normal(size=4)

        def terms(w):
            recon = (x - jnp.tanh(decoder @ w)) ** 2  # (pixels,)
            kl_terms = jax.vmap(losses.gaussian_kl_divergence)(  # (latent,)
                (enc_mean @ w)[:, None], (0.3 * enc_lv @ w)[:, None]
            )
            return recon, kl_terms

        def reduce(v, how):
            return jnp.mean(v) if how == "mean" else jnp.sum(v)

        def loss(w):
            recon, kl_terms = terms(w)
            return reduce(recon, reconstruction) + beta * reduce(kl_terms, kl)

        def elbo(w, weight):
            recon, kl_terms = terms(w)
            return jnp.sum(recon) + weight * jnp.sum(kl_terms)

        g = np.asarray(jax.grad(loss)(w))
        b_eff = losses.effective_beta(
            n_pixels, n_latent, reconstruction=reconstruction, kl=kl, beta=beta
        )
        ref = np.asarray(jax.grad(elbo)(w, b_eff))
        scale = g @ ref / (ref @ ref)
        np.testing.assert_allclose(g, scale * ref, rtol=1e-12, atol=1e-14)
        if b_eff != beta:
            naive = np.asarray(jax.grad(elbo)(w, beta))
            cosine = g @ naive / np.linalg.norm(g) / np.linalg.norm(naive)
            assert cosine < 1 - 1e-6


@pytest.mark.parametrize("module", ["kldiv.gaussian", "kldiv.objectives", "kldiv.losses"])
def test_each_module_imports_first_in_a_fresh_process(module):
    import subprocess
    import sys

    code = f"import {module}; from kldiv.losses import gaussian_kl_divergence"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
