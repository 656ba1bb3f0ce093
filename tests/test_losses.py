"""kldiv.losses against oracles (SciPy, NumPy, Optax, a Keras emulation), invariants, edge cases."""

import decimal
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.spatial.distance
import scipy.special
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kldiv import losses

LOG2 = math.log(2.0)
PROPERTY = settings(max_examples=25, deadline=None)
# Tolerances for comparisons against float64 oracles.
TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-11, "atol": 1e-12}}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _simplex(rng, shape, zeros=0.0):
    """float64 probabilities along the last axis; `zeros` is the chance of an exact zero."""
    w = rng.gamma(1.0, size=shape)
    w[rng.random(shape) < zeros] = 0.0
    w[..., 0] += 1e-3  # no all-zero rows
    return w / w.sum(-1, keepdims=True)


def _np_log_softmax(z):
    return scipy.special.log_softmax(np.asarray(z, np.float64), axis=-1)


def _keras_kl_numpy(y_true, y_pred, epsilon=1e-7):
    """Keras 3 `losses.kl_divergence`: y_true cast to y_pred's dtype, both clipped, divide, log."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true, y_pred.dtype)
    eps = y_pred.dtype.type(epsilon)
    one = y_pred.dtype.type(1)
    y_true = np.clip(y_true, eps, one)
    y_pred = np.clip(y_pred, eps, one)
    return np.sum(y_true * np.log(y_true / y_pred), axis=-1)


@functools.cache
def _compiled(fn, argnum=None, **kwargs):
    """`fn` (or the gradient of its sum w.r.t. `argnum`) compiled once per function and options.

    One `jax.jit` per shape is much cheaper than eager op-by-op dispatch, which compiles every
    primitive for every new shape; eager use is covered by `test_works_under_jit_and_vmap`.
    """
    f = functools.partial(fn, **kwargs)
    if argnum is not None:
        f = jax.grad(lambda *a: jnp.sum(functools.partial(fn, **kwargs)(*a)), argnums=argnum)
    return jax.jit(f)


def _call(fn, *args, **kwargs):
    return _compiled(fn, **kwargs)(*args)


def _grad(fn, argnum, *args, **kwargs):
    return np.asarray(_compiled(fn, argnum, **kwargs)(*args))


# --------------------------------------------------------------------------------------------------
# Oracles


def test_kl_divergence_matches_scipy_rel_entr(dtype):
    rng = _rng(1)
    p = _simplex(rng, (6, 5), zeros=0.3)
    q = _simplex(rng, (6, 5))
    got = _call(losses.kl_divergence, jnp.asarray(np.log(q), dtype), jnp.asarray(p, dtype))
    assert got.dtype == dtype and got.shape == (6,)
    expected = scipy.special.rel_entr(p, q).sum(-1)
    np.testing.assert_allclose(np.asarray(got), expected, **TOL[dtype])


def test_kl_divergence_matches_optax_on_ordinary_inputs(dtype):
    rng = _rng(2)
    log_q = jnp.asarray(np.log(_simplex(rng, (4, 7))), dtype)
    p = _simplex(rng, (4, 7))
    ours = _call(losses.kl_divergence, log_q, jnp.asarray(p, dtype))
    theirs = optax.losses.kl_divergence(log_q, jnp.asarray(p, dtype))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), **TOL[dtype])
    log_p = jnp.asarray(np.log(p), dtype)
    ours = _call(losses.kl_divergence_with_log_targets, log_q, log_p)
    theirs = optax.losses.kl_divergence_with_log_targets(log_q, log_p)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), **TOL[dtype])


def test_from_logits_and_cross_entropy_match_numpy(dtype):
    rng = _rng(3)
    z = rng.normal(scale=3.0, size=(5, 4))
    t = _simplex(rng, (5, 4), zeros=0.3)
    log_q = _np_log_softmax(z)
    zj, tj = jnp.asarray(z, dtype), jnp.asarray(t, dtype)
    kl = _call(losses.kl_divergence_from_logits, zj, tj)
    np.testing.assert_allclose(
        np.asarray(kl), scipy.special.rel_entr(t, np.exp(log_q)).sum(-1), **TOL[dtype]
    )
    ce = _call(losses.softmax_cross_entropy, zj, tj)
    np.testing.assert_allclose(np.asarray(ce), -(t * log_q).sum(-1), **TOL[dtype])
    np.testing.assert_allclose(
        np.asarray(ce), np.asarray(optax.losses.softmax_cross_entropy(zj, tj)), **TOL[dtype]
    )


def test_entropy_matches_scipy_entr(dtype):
    p = _simplex(_rng(4), (3, 6), zeros=0.4)
    got = _call(losses.entropy, jnp.asarray(p, dtype))
    np.testing.assert_allclose(np.asarray(got), scipy.special.entr(p).sum(-1), **TOL[dtype])


def test_generalized_kl_matches_scipy_kl_div_on_unnormalised_inputs(dtype):
    rng = _rng(5)
    t = rng.gamma(1.0, size=(4, 5)) * 3.0
    t[rng.random(t.shape) < 0.3] = 0.0
    q = rng.gamma(1.0, size=(4, 5)) * 0.5
    got = _call(
        losses.generalized_kl_divergence, jnp.asarray(np.log(q), dtype), jnp.asarray(t, dtype)
    )
    np.testing.assert_allclose(
        np.asarray(got), scipy.special.kl_div(t, q).sum(-1), rtol=TOL[dtype]["rtol"], atol=1e-5
    )


def test_generalized_kl_equals_kl_on_normalised_inputs():
    with jax.enable_x64(True):
        rng = _rng(6)
        log_q = jnp.asarray(np.log(_simplex(rng, (3, 4))))
        t = jnp.asarray(_simplex(rng, (3, 4), zeros=0.3))
        np.testing.assert_allclose(
            np.asarray(_call(losses.generalized_kl_divergence, log_q, t)),
            np.asarray(_call(losses.kl_divergence, log_q, t)),
            rtol=1e-12,
            atol=1e-14,
        )


def test_reverse_kl_matches_scipy(dtype):
    rng = _rng(7)
    z = rng.normal(size=(4, 3))
    t = _simplex(rng, (4, 3))
    q = np.exp(_np_log_softmax(z))
    got = _call(
        losses.reverse_kl_divergence_from_logits, jnp.asarray(z, dtype), jnp.asarray(t, dtype)
    )
    np.testing.assert_allclose(np.asarray(got), scipy.special.rel_entr(q, t).sum(-1), **TOL[dtype])


def test_jensen_shannon_matches_scipy(dtype):
    rng = _rng(8)
    p = _simplex(rng, (5, 4), zeros=0.3)
    q = _simplex(rng, (5, 4), zeros=0.3)
    expected = scipy.spatial.distance.jensenshannon(p, q, axis=-1) ** 2
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(p), np.log(q)
    got = _call(
        losses.jensen_shannon_divergence, jnp.asarray(log_p, dtype), jnp.asarray(log_q, dtype)
    )
    np.testing.assert_allclose(np.asarray(got), expected, **TOL[dtype])
    z = rng.normal(size=(5, 4))
    got = _call(
        losses.jensen_shannon_divergence_from_logits, jnp.asarray(z, dtype), jnp.asarray(p, dtype)
    )
    expected = scipy.spatial.distance.jensenshannon(np.exp(_np_log_softmax(z)), p, axis=-1) ** 2
    np.testing.assert_allclose(np.asarray(got), expected, **TOL[dtype])


def _js_decimal(log_p, log_q):
    """Jensen-Shannon divergence of one pair of log-distributions, in 60-digit decimal arithmetic."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        total = decimal.Decimal(0)
        for lp, lq in zip(log_p.tolist(), log_q.tolist(), strict=True):
            p, q = decimal.Decimal(lp).exp(), decimal.Decimal(lq).exp()
            m = (p + q) / 2
            total += p * (p / m).ln() + q * (q / m).ln()
        return float(total / 2)


@pytest.mark.parametrize(
    ("dtype", "spread", "rtol"), [(np.float32, 1e-2, 1e-4), (np.float64, 1e-5, 1e-9)]
)
def test_jensen_shannon_is_accurate_for_nearly_equal_distributions(dtype, spread, rtol):
    # The naive log p - (logaddexp(log p, log q) - log 2) loses about |log p| * eps / spread^2 of
    # relative accuracy here (all of it in float32); the log1p/expm1 form keeps eps / spread.
    rng = _rng(10)
    log_p = _np_log_softmax(rng.normal(size=(4, 6))).astype(dtype)
    log_q = _np_log_softmax(log_p + spread * rng.normal(size=(4, 6))).astype(dtype)
    expected = [_js_decimal(a, b) for a, b in zip(log_p, log_q, strict=True)]
    with jax.enable_x64(dtype is np.float64):
        got = _call(losses.jensen_shannon_divergence, jnp.asarray(log_p), jnp.asarray(log_q))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=rtol)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_distillation_loss_matches_numpy(dtype, temperature):
    rng = _rng(9)
    zs, zt = rng.normal(scale=2.0, size=(2, 3, 5))
    p = np.exp(_np_log_softmax(zt / temperature))
    q = np.exp(_np_log_softmax(zs / temperature))
    expected = temperature**2 * scipy.special.rel_entr(p, q).sum(-1)
    got = _call(
        losses.distillation_loss,
        jnp.asarray(zs, dtype),
        jnp.asarray(zt, dtype),
        temperature=temperature,
    )
    np.testing.assert_allclose(np.asarray(got), expected, **TOL[dtype])


KERAS_CASES = {
    "soft": ([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]], [[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]),
    "onehot": ([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [[0.05, 0.7, 0.25], [0.9, 0.05, 0.05]]),
    "zeros_in_pred": ([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    "greater_than_one": ([[2.0, 0.5, 0.0], [1.5, 0.2, 0.3]], [[0.5, 1.5, 0.1], [0.3, 0.3, 0.4]]),
    "negative": ([[-0.5, 1.0, 0.5], [0.3, -0.2, 0.9]], [[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]),
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_kl_divergence_matches_keras_formula(dtype, case):
    y_true, y_pred = (np.asarray(a, dtype) for a in KERAS_CASES[case])
    got = _call(losses.keras_kl_divergence, jnp.asarray(y_true), jnp.asarray(y_pred))
    assert got.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(got), _keras_kl_numpy(y_true, y_pred), rtol=4 * np.finfo(dtype).eps, atol=1e-12
    )


def test_keras_kl_divergence_custom_epsilon_and_float32_epsilon_value():
    y_true = np.asarray([[0.0, 1.0]], np.float32)
    y_pred = np.asarray([[0.5, 0.5]], np.float32)
    got = _call(losses.keras_kl_divergence, jnp.asarray(y_true), jnp.asarray(y_pred), epsilon=1e-4)
    np.testing.assert_allclose(np.asarray(got), _keras_kl_numpy(y_true, y_pred, 1e-4), rtol=1e-6)
    # The zero target becomes float32(1e-7) = 1.0000000116860974e-07, as in Keras.
    eps32 = float(np.float32(1e-7))
    assert eps32 == 1.0000000116860974e-07
    expected = eps32 * math.log(eps32 / 0.5) + math.log(2.0)
    got = _call(losses.keras_kl_divergence, jnp.asarray(y_true), jnp.asarray(y_pred))
    np.testing.assert_allclose(np.asarray(got), [expected], rtol=1e-6)


def test_keras_numbers_differ_from_exact_where_documented():
    with jax.enable_x64(True):
        t, q = (jnp.asarray(a) for a in KERAS_CASES["onehot"])
        exact = _call(losses.kl_divergence, jnp.log(q), t)
        keras = _call(losses.keras_kl_divergence, t, q)
        # Every zero target adds eps * log(eps / q_j) < 0: a bias of a few 1e-6 below the exact KL.
        bias = np.asarray(keras - exact)
        assert np.all(bias < 0) and np.all(bias > -1e-5)
        t, q = (jnp.asarray(a) for a in KERAS_CASES["zeros_in_pred"])
        assert np.isinf(np.asarray(_call(losses.kl_divergence, jnp.log(q), t))[0])
        assert np.isfinite(np.asarray(_call(losses.keras_kl_divergence, t, q))[0])
        t, q = (jnp.asarray(a) for a in KERAS_CASES["negative"])
        assert np.all(np.isnan(np.asarray(_call(losses.kl_divergence, jnp.log(q), t))))
        assert np.all(np.isfinite(np.asarray(_call(losses.keras_kl_divergence, t, q))))


# --------------------------------------------------------------------------------------------------
# Properties


@st.composite
def _distribution_pairs(draw, zeros=True):
    """Two float64 distributions of the same shape, (C,) or (N, C), possibly with exact zeros."""
    shape = draw(st.sampled_from([(3,), (2, 4)]))
    low = 0.0 if zeros else 1e-3
    elements = st.floats(low, 1.0, allow_subnormal=False)
    a = draw(hnp.arrays(np.float64, shape, elements=elements))
    b = draw(hnp.arrays(np.float64, shape, elements=elements))
    assume(np.all(a.sum(-1) > 1e-3) and np.all(b.sum(-1) > 1e-3))
    return _normalise(a), _normalise(b)


def _normalise(w):
    # XLA on CPU flushes subnormals to zero, so a subnormal probability would be an exact zero to
    # the code under test but not to the NumPy oracle: flush them here too.
    p = w / w.sum(-1, keepdims=True)
    return np.where(p < np.finfo(np.float64).tiny, 0.0, p)


@st.composite
def _logits_and_targets(draw, zeros=True):
    p, _ = draw(_distribution_pairs(zeros=zeros))
    z = draw(hnp.arrays(np.float64, p.shape, elements=st.floats(-30.0, 30.0)))
    return z, p


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(p)


@PROPERTY
@given(_distribution_pairs())
def test_kl_is_non_negative_on_normalised_inputs(pair):
    p, q = pair
    with jax.enable_x64(True):
        kl = np.asarray(_call(losses.kl_divergence, jnp.asarray(_log(q)), jnp.asarray(p)))
        assert np.all(kl >= -1e-12)
        js = np.asarray(
            _call(losses.jensen_shannon_divergence, jnp.asarray(_log(p)), jnp.asarray(_log(q)))
        )
        assert np.all(js >= -1e-12)


@PROPERTY
@given(_logits_and_targets())
def test_kl_from_logits_is_non_negative(zt):
    z, t = zt
    for dtype, tol in [(np.float32, 1e-5), (np.float64, 1e-12)]:
        with jax.enable_x64(dtype is np.float64):
            kl = _call(
                losses.kl_divergence_from_logits, jnp.asarray(z, dtype), jnp.asarray(t, dtype)
            )
            assert np.all(np.asarray(kl) >= -tol)


@PROPERTY
@given(_distribution_pairs())
def test_kl_of_a_distribution_with_itself_is_exactly_zero(pair):
    p, _ = pair
    with jax.enable_x64(True):
        pj = jnp.asarray(p)
        np.testing.assert_array_equal(np.asarray(_call(losses.kl_divergence, jnp.log(pj), pj)), 0.0)
        log_p = jnp.log(pj)  # contains -inf where p == 0
        np.testing.assert_array_equal(
            np.asarray(_call(losses.kl_divergence_with_log_targets, log_p, log_p)), 0.0
        )
        np.testing.assert_array_equal(
            np.asarray(_call(losses.jensen_shannon_divergence, log_p, log_p)), 0.0
        )


@PROPERTY
@given(_logits_and_targets())
def test_cross_entropy_is_entropy_plus_kl(zt):
    z, t = zt
    with jax.enable_x64(True):
        zj, tj = jnp.asarray(z), jnp.asarray(t)
        ce = np.asarray(_call(losses.softmax_cross_entropy, zj, tj))
        h_plus_kl = np.asarray(
            _call(losses.entropy, tj) + _call(losses.kl_divergence_from_logits, zj, tj)
        )
        np.testing.assert_allclose(ce, h_plus_kl, rtol=1e-12, atol=1e-12)


@PROPERTY
@given(
    hnp.arrays(np.float64, (4, 3), elements=st.floats(-30.0, 30.0)),
    hnp.arrays(np.int64, (4,), elements=st.integers(0, 2)),
)
def test_kl_equals_cross_entropy_exactly_on_one_hot_targets(z, labels):
    for dtype in (np.float32, np.float64):
        with jax.enable_x64(dtype is np.float64):
            zj = jnp.asarray(z, dtype)
            t = jax.nn.one_hot(jnp.asarray(labels), 3, dtype=dtype)
            kl = _call(losses.kl_divergence_from_logits, zj, t)
            ce = _call(losses.softmax_cross_entropy, zj, t)
            np.testing.assert_array_equal(np.asarray(kl), np.asarray(ce))
            np.testing.assert_array_equal(np.asarray(_call(losses.entropy, t)), 0.0)
            np.testing.assert_array_equal(
                _grad(losses.kl_divergence_from_logits, 0, zj, t),
                _grad(losses.softmax_cross_entropy, 0, zj, t),
            )


@PROPERTY
@given(_distribution_pairs())
def test_jensen_shannon_is_symmetric_and_bounded_by_log_2(pair):
    p, q = pair
    with jax.enable_x64(True):
        lp, lq = jnp.asarray(_log(p)), jnp.asarray(_log(q))
        pq = np.asarray(_call(losses.jensen_shannon_divergence, lp, lq))
        qp = np.asarray(_call(losses.jensen_shannon_divergence, lq, lp))
        np.testing.assert_array_equal(pq, qp)
        assert np.all(pq >= -1e-12) and np.all(pq <= LOG2 + 1e-12)


@PROPERTY
@given(_logits_and_targets(), st.floats(0.1, 3.0))
def test_gradient_wrt_logits_is_softmax_times_mass_minus_targets(zt, mass):
    z, t = zt
    t = t * mass  # unnormalised targets: the identity carries sum(t)
    with jax.enable_x64(True):
        zj, tj = jnp.asarray(z), jnp.asarray(t)
        expected = np.exp(_np_log_softmax(z)) * t.sum(-1, keepdims=True) - t
        for fn in (losses.kl_divergence_from_logits, losses.softmax_cross_entropy):
            np.testing.assert_allclose(_grad(fn, 0, zj, tj), expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            _grad(losses.kl_divergence_from_logits, 0, zj, tj),
            _grad(losses.softmax_cross_entropy, 0, zj, tj),
            rtol=1e-12,
            atol=1e-15,
        )


@PROPERTY
@given(_logits_and_targets())
def test_gradient_wrt_targets_is_log_ratio_plus_one_and_zero_at_zero(zt):
    z, t = zt
    with jax.enable_x64(True):
        log_q = _np_log_softmax(z)
        g = _grad(losses.kl_divergence, 1, jnp.asarray(log_q), jnp.asarray(t))
        expected = np.where(t > 0, _log(np.where(t > 0, t, 1.0)) - log_q + 1.0, 0.0)
        np.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-12)
        g_logits = _grad(losses.kl_divergence_from_logits, 1, jnp.asarray(z), jnp.asarray(t))
        np.testing.assert_allclose(g_logits, expected, rtol=1e-9, atol=1e-12)
        # d(-sum t log q)/dt = -log q on the support, 0 off it.
        g_ce = _grad(losses.softmax_cross_entropy, 1, jnp.asarray(z), jnp.asarray(t))
        np.testing.assert_allclose(g_ce, np.where(t > 0, -log_q, 0.0), rtol=1e-9, atol=1e-12)


@PROPERTY
@given(_distribution_pairs())
def test_gradients_wrt_log_targets_and_log_predictions(pair):
    p, q = pair
    with jax.enable_x64(True):
        lp, lq = _log(p), np.log(q + 1e-300)  # predictions strictly positive
        lpj, lqj = jnp.asarray(lp), jnp.asarray(lq)
        g_lt = _grad(losses.kl_divergence_with_log_targets, 1, lqj, lpj)
        safe_lp = np.where(p > 0, lp, 0.0)
        np.testing.assert_allclose(g_lt, np.where(p > 0, p * (safe_lp - lq + 1.0), 0.0), atol=1e-12)
        g_lq = _grad(losses.kl_divergence_with_log_targets, 0, lqj, lpj)
        np.testing.assert_allclose(g_lq, -p, atol=1e-15)
        # JS: d/d log p_i = p_i (log p_i - log m_i) / 2.
        log_m = np.logaddexp(lp, lq) - LOG2
        g_js = _grad(losses.jensen_shannon_divergence, 0, lpj, lqj)
        np.testing.assert_allclose(
            g_js, np.where(p > 0, 0.5 * p * (safe_lp - log_m), 0.0), atol=1e-12
        )


@PROPERTY
@given(_logits_and_targets(zeros=False))
def test_reverse_kl_gradient_wrt_logits(zt):
    z, t = zt
    with jax.enable_x64(True):
        log_q = _np_log_softmax(z)
        q = np.exp(log_q)
        kl = (q * (log_q - np.log(t))).sum(-1, keepdims=True)
        g = _grad(losses.reverse_kl_divergence_from_logits, 0, jnp.asarray(z), jnp.asarray(t))
        np.testing.assert_allclose(g, q * (log_q - np.log(t) - kl), rtol=1e-8, atol=1e-12)


@PROPERTY
@given(
    hnp.arrays(np.float64, (2, 2, 4), elements=st.floats(-20.0, 20.0)),
    st.sampled_from([0.5, 1.0, 2.0, 5.0]),
)
def test_distillation_gradients_at_temperature(logits, temperature):
    zs, zt = logits
    with jax.enable_x64(True):
        p = np.exp(_np_log_softmax(zt / temperature))
        log_q = _np_log_softmax(zs / temperature)
        log_p = _np_log_softmax(zt / temperature)
        kl = (p * (log_p - log_q)).sum(-1, keepdims=True)
        args = (jnp.asarray(zs), jnp.asarray(zt))
        g_s = _grad(losses.distillation_loss, 0, *args, temperature=temperature)
        g_t = _grad(losses.distillation_loss, 1, *args, temperature=temperature)
        np.testing.assert_allclose(g_s, temperature * (np.exp(log_q) - p), atol=1e-12)
        np.testing.assert_allclose(g_t, temperature * p * (log_p - log_q - kl), atol=1e-10)


def test_distillation_t_squared_makes_the_gradient_temperature_free():
    with jax.enable_x64(True):
        zs = jnp.asarray([[1.0, -2.0, 0.5, 3.0]])
        zt = jnp.asarray([[0.0, 1.0, -1.0, 2.0]])
        # As T grows, T (q_T - p_T) -> ((zs - mean zs) - (zt - mean zt)) / C.
        limit = np.asarray(((zs - zs.mean()) - (zt - zt.mean())) / 4.0)
        for temperature in (100.0, 1000.0):
            g = _grad(losses.distillation_loss, 0, zs, zt, temperature=temperature)
            np.testing.assert_allclose(g, limit, atol=20.0 / temperature)
        # Without the T^2 factor the gradient would shrink like 1/T^2 (Hinton et al., section 2).
        g_unscaled = [
            _grad(losses.distillation_loss, 0, zs, zt, temperature=t) / t**2
            for t in (100.0, 1000.0)
        ]
        ratio = np.linalg.norm(g_unscaled[0]) / np.linalg.norm(g_unscaled[1])
        assert 95.0 < ratio < 105.0


# --------------------------------------------------------------------------------------------------
# Generalized Jensen-Shannon divergence and the distillation directions


def _gjsd_numpy(p, q, beta):
    """GKD's JSD_beta(p || q) in float64 from SciPy's rel_entr: beta KL(p || m) + (1 - beta) KL(q || m)."""
    m = beta * p + (1.0 - beta) * q
    return beta * scipy.special.rel_entr(p, m).sum(-1) + (1.0 - beta) * scipy.special.rel_entr(
        q, m
    ).sum(-1)


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("normalized", [False, True], ids=["raw", "normalized"])
def test_generalized_jsd_matches_scipy(dtype, beta, normalized):
    rng = _rng(20)
    p = _simplex(rng, (6, 5), zeros=0.3)
    q = _simplex(rng, (6, 5), zeros=0.3)
    expected = _gjsd_numpy(p, q, beta) / (beta * (1.0 - beta) if normalized else 1.0)
    got = _call(
        losses.generalized_jensen_shannon_divergence,
        jnp.asarray(_log(p), dtype),
        jnp.asarray(_log(q), dtype),
        beta=beta,
        normalized=normalized,
    )
    assert got.dtype == dtype and got.shape == (6,)
    # (the float32 sum of terms ~1 loses ~eps to cancellation where JSD is small: an atol)
    tol = TOL[dtype] | ({"atol": 2e-6 / (beta * (1 - beta))} if normalized else {})
    np.testing.assert_allclose(np.asarray(got), expected, **tol)


def test_generalized_jsd_at_one_half_is_jensen_shannon(dtype):
    rng = _rng(21)
    lp = jnp.asarray(_log(_simplex(rng, (5, 4), zeros=0.3)), dtype)
    lq = jnp.asarray(_log(_simplex(rng, (5, 4), zeros=0.3)), dtype)
    got = _call(losses.generalized_jensen_shannon_divergence, lp, lq, beta=0.5)
    np.testing.assert_array_equal(
        np.asarray(got), np.asarray(_call(losses.jensen_shannon_divergence, lp, lq))
    )


def test_generalized_jsd_endpoints_are_zero_or_forward_and_reverse_kl(dtype):
    rng = _rng(22)
    p = _simplex(rng, (6, 5), zeros=0.3)
    q = _simplex(rng, (6, 5), zeros=0.3)
    lp, lq = jnp.asarray(_log(p), dtype), jnp.asarray(_log(q), dtype)
    fn = losses.generalized_jensen_shannon_divergence
    forward = scipy.special.rel_entr(p, q).sum(-1)  # +inf where q = 0 < p
    reverse = scipy.special.rel_entr(q, p).sum(-1)
    assert np.isinf(forward).any() and np.isfinite(forward).any()
    np.testing.assert_allclose(
        np.asarray(_call(fn, lp, lq, beta=0.0, normalized=True)), forward, **TOL[dtype]
    )
    np.testing.assert_allclose(
        np.asarray(_call(fn, lp, lq, beta=1.0, normalized=True)), reverse, **TOL[dtype]
    )
    for beta in (0.0, 1.0):
        np.testing.assert_array_equal(np.asarray(_call(fn, lp, lq, beta=beta)), 0.0)


def test_normalized_jsd_tends_to_forward_and_reverse_kl_at_the_ends():
    with jax.enable_x64(True):
        rng = _rng(23)
        lp = _np_log_softmax(rng.normal(size=(4, 6)))
        lq = _np_log_softmax(rng.normal(size=(4, 6)))
        p, q = np.exp(lp), np.exp(lq)
        ends = {
            0.0: scipy.special.rel_entr(p, q).sum(-1),
            1.0: scipy.special.rel_entr(q, p).sum(-1),
        }
        for end, kl in ends.items():
            errors = []
            for distance in (1e-2, 1e-4, 1e-6, 1e-8):
                beta = abs(end - distance)
                got = _call(
                    losses.generalized_jensen_shannon_divergence,
                    jnp.asarray(lp),
                    jnp.asarray(lq),
                    beta=beta,
                    normalized=True,
                )
                errors.append(np.max(np.abs(np.asarray(got) - kl) / kl))
            # O(beta) convergence: each 100x step closer shrinks the error about 100x
            assert all(b < a / 30 for a, b in itertools.pairwise(errors)), errors
            assert errors[-1] < 1e-6, errors


@PROPERTY
@given(_distribution_pairs(), st.floats(0.0, 1.0))
def test_generalized_jsd_is_bounded_by_the_binary_entropy_and_mirror_symmetric(pair, beta):
    p, q = pair
    with jax.enable_x64(True):
        lp, lq = jnp.asarray(_log(p)), jnp.asarray(_log(q))
        fn = losses.generalized_jensen_shannon_divergence
        value = np.asarray(_call(fn, lp, lq, beta=beta))
        mirrored = np.asarray(_call(fn, lq, lp, beta=1.0 - beta))
        h = float(scipy.special.entr(beta) + scipy.special.entr(1.0 - beta))
        assert np.all(value >= -1e-12) and np.all(value <= h + 1e-12)
        np.testing.assert_allclose(value, mirrored, rtol=1e-9, atol=1e-12)
        # a distribution against itself: exactly 0, zeros (-inf) included
        np.testing.assert_array_equal(np.asarray(_call(fn, lp, lp, beta=beta)), 0.0)


@pytest.mark.parametrize("beta", [0.2, 0.5, 0.97])
def test_generalized_jsd_gradients_match_finite_differences(beta):
    with jax.enable_x64(True):
        rng = _rng(24)
        lp = _np_log_softmax(rng.normal(size=(3, 4)))
        lq = _np_log_softmax(rng.normal(scale=2.0, size=(3, 4)))
        fn = losses.generalized_jensen_shannon_divergence
        for argnum in (0, 1):
            got = _grad(fn, argnum, jnp.asarray(lp), jnp.asarray(lq), beta=beta, normalized=True)
            h = 1e-6
            numeric = np.zeros_like(lp)
            for idx in np.ndindex(lp.shape):
                args_plus, args_minus = [lp.copy(), lq.copy()], [lp.copy(), lq.copy()]
                args_plus[argnum][idx] += h
                args_minus[argnum][idx] -= h
                plus = np.sum(_call(fn, *map(jnp.asarray, args_plus), beta=beta, normalized=True))
                minus = np.sum(_call(fn, *map(jnp.asarray, args_minus), beta=beta, normalized=True))
                numeric[idx] = (plus - minus) / (2 * h)
            np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


def _distillation_numpy(direction, zs, zt, temperature, beta=None):
    """T^2 D(p_T, q_T) in float64 from SciPy: the teacher's p_T, the student's q_T."""
    p = np.exp(_np_log_softmax(zt / temperature))
    q = np.exp(_np_log_softmax(zs / temperature))
    if direction == "forward":
        d = scipy.special.rel_entr(p, q).sum(-1)
    elif direction == "reverse":
        d = scipy.special.rel_entr(q, p).sum(-1)
    else:
        d = _gjsd_numpy(p, q, beta) / (beta * (1.0 - beta))
    return temperature**2 * d


DIRECTIONS = [("forward", None), ("reverse", None), ("jsd", 0.2), ("jsd", 0.5), ("jsd", 0.8)]
DIRECTION_IDS = [d if b is None else f"{d}-{b}" for d, b in DIRECTIONS]


@pytest.mark.parametrize(("direction", "beta"), DIRECTIONS, ids=DIRECTION_IDS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_distillation_directions_match_numpy(dtype, direction, beta, temperature):
    rng = _rng(25)
    zs, zt = rng.normal(scale=2.0, size=(2, 4, 6))
    fn = losses.get_distillation_loss(direction, beta)
    got = _call(fn, jnp.asarray(zs, dtype), jnp.asarray(zt, dtype), temperature=temperature)
    assert got.dtype == dtype and got.shape == (4,)
    expected = _distillation_numpy(direction, zs, zt, temperature, beta)
    np.testing.assert_allclose(np.asarray(got), expected, **TOL[dtype])


def test_jsd_distillation_endpoints_are_forward_and_reverse_distillation(dtype):
    rng = _rng(26)
    zs, zt = (jnp.asarray(z, dtype) for z in rng.normal(scale=3.0, size=(2, 5, 4)))
    for beta, same in ((0.0, losses.distillation_loss), (1.0, losses.reverse_distillation_loss)):
        for temperature in (1.0, 4.0):
            got = _call(losses.jsd_distillation_loss, zs, zt, beta=beta, temperature=temperature)
            want = _call(same, zs, zt, temperature=temperature)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize(("direction", "beta"), DIRECTIONS, ids=DIRECTION_IDS)
def test_t_squared_makes_every_directions_gradient_temperature_free(direction, beta):
    """The gradient of T^2 D(p_T, q_T) with respect to the student logits tends to one T-free limit
    for every direction (all are chi^2 / 2 to second order): ((zs - mean zs) - (zt - mean zt)) / C."""
    fn = losses.get_distillation_loss(direction, beta)
    with jax.enable_x64(True):
        zs = jnp.asarray([[1.0, -2.0, 0.5, 3.0], [0.0, 0.0, 1.0, -1.0]])
        zt = jnp.asarray([[0.0, 1.0, -1.0, 2.0], [2.0, -1.0, 0.0, 0.5]])
        centred = (zs - zs.mean(-1, keepdims=True)) - (zt - zt.mean(-1, keepdims=True))
        limit = np.asarray(centred / 4.0)
        grads = {t: _grad(fn, 0, zs, zt, temperature=t) for t in (10.0, 100.0, 1000.0)}
        for t, g in grads.items():
            np.testing.assert_allclose(g, limit, atol=20.0 / t)
        # without the T^2 factor the gradient would shrink like 1/T^2
        ratio = np.linalg.norm(grads[100.0] / 100.0**2) / np.linalg.norm(grads[1000.0] / 1000.0**2)
        assert 95.0 < ratio < 105.0


@PROPERTY
@given(
    hnp.arrays(np.float64, (2, 2, 4), elements=st.floats(-20.0, 20.0)),
    st.sampled_from([0.5, 1.0, 2.0, 5.0]),
)
def test_reverse_distillation_gradient_at_temperature(logits, temperature):
    zs, zt = logits
    with jax.enable_x64(True):
        log_q = _np_log_softmax(zs / temperature)
        log_p = _np_log_softmax(zt / temperature)
        q = np.exp(log_q)
        kl = (q * (log_q - log_p)).sum(-1, keepdims=True)
        g = _grad(
            losses.reverse_distillation_loss,
            0,
            jnp.asarray(zs),
            jnp.asarray(zt),
            temperature=temperature,
        )
        np.testing.assert_allclose(g, temperature * q * (log_q - log_p - kl), atol=1e-10)


@pytest.mark.parametrize(("direction", "beta"), DIRECTIONS[1:], ids=DIRECTION_IDS[1:])
def test_distillation_directions_with_saturated_logits_have_finite_gradients(direction, beta):
    fn = losses.get_distillation_loss(direction, beta)
    zs = jnp.asarray([[100.0, -100.0, 0.0]], jnp.float32)
    zt = jnp.asarray([[-100.0, 100.0, 0.0]], jnp.float32)
    for temperature in (1.0, 2.0):
        value = float(_call(fn, zs, zt, temperature=temperature)[0])
        assert math.isfinite(value) and value > 0
        for argnum in (0, 1):
            assert np.all(np.isfinite(_grad(fn, argnum, zs, zt, temperature=temperature)))


@pytest.mark.parametrize(
    ("direction", "beta", "message"),
    [
        ("sideways", None, r"direction: expected one of 'forward', 'reverse', 'jsd', got"),
        ("jsd", None, r"beta: expected a number in \[0, 1\] with direction 'jsd', got None"),
        ("forward", 0.5, r"beta: expected none with direction 'forward', got 0.5"),
        ("jsd", 1.5, r"beta: expected a number in \[0, 1\], got 1.5"),
        ("jsd", math.nan, r"beta: expected a number in \[0, 1\], got nan"),
        ("jsd", True, r"beta: expected a number in \[0, 1\], got True"),
    ],
)
def test_bad_distillation_directions_raise(direction, beta, message):
    with pytest.raises(ValueError, match=message):
        losses.get_distillation_loss(direction, beta)


# --------------------------------------------------------------------------------------------------
# Edge cases


def test_zero_targets_against_minus_inf_log_predictions_contribute_zero(dtype):
    log_q = jnp.asarray([-jnp.inf, 0.0, -jnp.inf], dtype)
    t = jnp.asarray([0.0, 1.0, 0.0], dtype)
    assert float(_call(losses.kl_divergence, log_q, t)) == 0.0
    assert float(_call(losses.generalized_kl_divergence, log_q, t)) == 0.0
    for argnum in (0, 1):
        g = _grad(losses.kl_divergence, argnum, log_q, t)
        assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(_grad(losses.kl_divergence, 0, log_q, t), [0.0, -1.0, 0.0])
    np.testing.assert_array_equal(_grad(losses.kl_divergence, 1, log_q, t), [0.0, 1.0, 0.0])
    # The same with masked logits.
    z = jnp.asarray([-jnp.inf, 2.0, -jnp.inf], dtype)
    for fn in (
        losses.kl_divergence_from_logits,
        losses.softmax_cross_entropy,
        losses.jensen_shannon_divergence_from_logits,
    ):
        assert float(_call(fn, z, t)) == 0.0
        for argnum in (0, 1):
            assert np.all(np.isfinite(_grad(fn, argnum, z, t)))


def test_positive_target_against_zero_prediction_is_infinite(dtype):
    log_q = jnp.asarray([[-jnp.inf, 0.0]], dtype)
    t = jnp.asarray([[0.5, 0.5]], dtype)
    assert np.isposinf(np.asarray(_call(losses.kl_divergence, log_q, t))).all()
    assert np.isposinf(np.asarray(_call(losses.generalized_kl_divergence, log_q, t))).all()
    assert np.isposinf(
        np.asarray(_call(losses.kl_divergence_with_log_targets, log_q, jnp.log(t)))
    ).all()
    assert np.isposinf(np.asarray(_call(losses.kl_divergence_from_logits, log_q, t))).all()
    assert np.isposinf(np.asarray(_call(losses.softmax_cross_entropy, log_q, t))).all()
    # A log target whose exp underflows is still a positive probability: +inf, not 0 or NaN.
    log_t = jnp.asarray([-800.0, 0.0], dtype)
    assert np.isposinf(float(_call(losses.kl_divergence_with_log_targets, log_q[0], log_t)))


def test_reverse_kl_is_infinite_for_targets_with_zeros():
    z = jnp.asarray([[1.0, 2.0, 3.0], [100.0, -100.0, 0.0]])
    t = jnp.asarray([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert np.isposinf(np.asarray(_call(losses.reverse_kl_divergence_from_logits, z, t))).all()


def test_negative_probabilities_give_nan(dtype):
    t = jnp.asarray([[-0.1, 0.6, 0.5], [0.2, 0.3, 0.5]], dtype)
    log_q = jnp.log(jnp.asarray([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]], dtype))
    for fn in (
        losses.kl_divergence,
        losses.generalized_kl_divergence,
        losses.kl_divergence_from_logits,
        losses.softmax_cross_entropy,
        losses.reverse_kl_divergence_from_logits,
        losses.jensen_shannon_divergence_from_logits,
    ):
        value = np.asarray(_call(fn, log_q, t))
        assert np.isnan(value[0]) and np.isfinite(value[1]), fn.__name__
    value = np.asarray(_call(losses.entropy, t))
    assert np.isnan(value[0]) and np.isfinite(value[1])


def test_nan_inputs_propagate():
    log_q = jnp.asarray([jnp.nan, 0.0])
    assert np.isnan(float(_call(losses.kl_divergence, log_q, jnp.asarray([0.0, 1.0]))))
    assert np.isnan(
        float(_call(losses.kl_divergence, jnp.asarray([0.0, 0.0]), jnp.asarray([jnp.nan, 1.0])))
    )


def test_saturated_logits_in_float32_have_the_exact_gradient_where_keras_has_none():
    z = jnp.asarray([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]], jnp.float32)
    t = jnp.asarray([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], jnp.float32)
    expected = np.asarray([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]], np.float32)
    for name in ("kl", "ce"):
        value = np.asarray(_call(losses.get_loss(name), z, t))
        np.testing.assert_allclose(value, [200.0, 200.0], rtol=1e-6)
        np.testing.assert_allclose(_grad(losses.get_loss(name), 0, z, t), expected, atol=1e-6)
    # JS is bounded: at saturation it is log 2 and its true gradient is of order e^-100.
    js = losses.get_loss("js")
    np.testing.assert_allclose(np.asarray(_call(js, z, t)), [LOG2, LOG2], rtol=1e-6)
    np.testing.assert_allclose(_grad(js, 0, z, t), 0.0, atol=1e-30)
    # Keras' clipped loss saturates at -log(1e-7) and its gradient vanishes: training stops there.
    keras = losses.get_loss("keras_kl")
    np.testing.assert_allclose(
        np.asarray(_call(keras, z, t)), -math.log(float(np.float32(1e-7))), rtol=1e-5
    )
    np.testing.assert_array_equal(_grad(keras, 0, z, t), 0.0)


def test_minus_inf_log_targets_have_zero_value_and_finite_gradients(dtype):
    log_t = jnp.asarray([-jnp.inf, math.log(0.25), math.log(0.75)], dtype)
    log_q = jnp.log(jnp.asarray([0.5, 0.25, 0.25], dtype))
    p = np.asarray([0.0, 0.25, 0.75])
    lq = np.log([0.5, 0.25, 0.25])
    with np.errstate(divide="ignore"):
        expected = scipy.special.rel_entr(p, np.exp(lq)).sum()
    np.testing.assert_allclose(
        float(_call(losses.kl_divergence_with_log_targets, log_q, log_t)), expected, **TOL[dtype]
    )
    g_t = _grad(losses.kl_divergence_with_log_targets, 1, log_q, log_t)
    safe = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    np.testing.assert_allclose(g_t, np.where(p > 0, p * (safe - lq + 1.0), 0.0), **TOL[dtype])
    assert g_t[0] == 0.0
    g_q = _grad(losses.kl_divergence_with_log_targets, 0, log_q, log_t)
    np.testing.assert_allclose(g_q, -p, **TOL[dtype])


def test_both_sides_zero_in_log_space_is_exactly_zero_with_finite_gradients(dtype):
    log_p = jnp.asarray([[-jnp.inf, 0.0], [-jnp.inf, -jnp.inf]], dtype)
    for fn in (losses.kl_divergence_with_log_targets, losses.jensen_shannon_divergence):
        np.testing.assert_array_equal(np.asarray(_call(fn, log_p, log_p)), [0.0, 0.0])
        for argnum in (0, 1):
            g = _grad(fn, argnum, log_p, log_p)
            np.testing.assert_array_equal(g[:, 0], 0.0)
            assert np.all(np.isfinite(g))


def test_distillation_with_saturated_logits_has_finite_gradients():
    zs = jnp.asarray([[100.0, -100.0, 0.0]], jnp.float32)
    zt = jnp.asarray([[-100.0, 100.0, 0.0]], jnp.float32)
    for temperature in (1.0, 2.0):
        value = float(_call(losses.distillation_loss, zs, zt, temperature=temperature)[0])
        assert math.isfinite(value) and value > 0
        g_s = _grad(losses.distillation_loss, 0, zs, zt, temperature=temperature)
        g_t = _grad(losses.distillation_loss, 1, zs, zt, temperature=temperature)
        assert np.all(np.isfinite(g_s)) and np.all(np.isfinite(g_t))
        np.testing.assert_allclose(g_s, temperature * np.asarray([[1.0, -1.0, 0.0]]), atol=1e-6)


def test_zero_target_gradient_is_finite_in_probability_space():
    log_q = jnp.log(jnp.asarray([0.5, 0.5]))
    t = jnp.asarray([0.0, 1.0])
    np.testing.assert_allclose(_grad(losses.kl_divergence, 1, log_q, t), [0.0, 1.0 + math.log(2.0)])
    # The generalised KL adds -t + q: its gradient at t = 0 is -1, still finite.
    np.testing.assert_allclose(
        _grad(losses.generalized_kl_divergence, 1, log_q, t), [-1.0, math.log(2.0)], atol=1e-7
    )
    np.testing.assert_allclose(_grad(losses.entropy, 0, t), [0.0, -1.0])


# --------------------------------------------------------------------------------------------------
# Shapes, axes and dtypes


def _generalized_jsd_03(log_p, log_q, *, axis=-1):
    return losses.generalized_jensen_shannon_divergence(log_p, log_q, beta=0.3, axis=axis)


def _jsd_distillation_03(student_logits, teacher_logits, *, axis=-1):
    return losses.jsd_distillation_loss(student_logits, teacher_logits, beta=0.3, axis=axis)


# Each function with the input space of its two arguments.
TWO_ARGUMENT = [
    (losses.kl_divergence, "log", "prob"),
    (losses.kl_divergence_with_log_targets, "log", "log"),
    (losses.kl_divergence_from_logits, "logit", "prob"),
    (losses.softmax_cross_entropy, "logit", "prob"),
    (losses.reverse_kl_divergence_from_logits, "logit", "prob"),
    (losses.jensen_shannon_divergence, "log", "log"),
    (losses.jensen_shannon_divergence_from_logits, "logit", "prob"),
    (losses.generalized_kl_divergence, "log", "prob"),
    (losses.distillation_loss, "logit", "logit"),
    (losses.reverse_distillation_loss, "logit", "logit"),
    (_generalized_jsd_03, "log", "log"),
    (_jsd_distillation_03, "logit", "logit"),
]
IDS = [fn.__name__ for fn, _, _ in TWO_ARGUMENT]


def _inputs(kinds, shape, seed=0):
    rng = _rng(seed)
    out = []
    for kind in kinds:
        z = rng.normal(size=shape)
        p = np.exp(_np_log_softmax(z))
        out.append({"logit": z, "log": np.log(p), "prob": p}[kind].astype(np.float32))
    return out


@pytest.mark.parametrize(("fn", "kind_a", "kind_b"), TWO_ARGUMENT, ids=IDS)
@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 5)], ids=["C", "NC", "NTC"])
def test_one_value_per_distribution(fn, kind_a, kind_b, shape):
    a, b = _inputs((kind_a, kind_b), shape)
    out = _call(fn, jnp.asarray(a), jnp.asarray(b))
    assert out.shape == shape[:-1] and out.dtype == jnp.float32
    # Row by row: no batch reduction and no mixing between distributions.
    flat_a, flat_b = a.reshape(-1, 5), b.reshape(-1, 5)
    rows = [
        float(_call(fn, jnp.asarray(x), jnp.asarray(y)))
        for x, y in zip(flat_a, flat_b, strict=True)
    ]
    np.testing.assert_allclose(np.asarray(out).reshape(-1), rows, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("fn", "kind_a", "kind_b"), TWO_ARGUMENT, ids=IDS)
def test_axis_argument_equals_moveaxis(fn, kind_a, kind_b):
    a, b = _inputs((kind_a, kind_b), (2, 3, 4), seed=1)
    ref = np.asarray(_call(fn, jnp.asarray(a), jnp.asarray(b)))
    moved = _call(
        fn, jnp.asarray(np.moveaxis(a, -1, 1)), jnp.asarray(np.moveaxis(b, -1, 1)), axis=1
    )
    np.testing.assert_allclose(np.asarray(moved), ref, rtol=1e-6, atol=1e-7)
    a2, b2 = a[:, 0], b[:, 0]
    ref2 = np.asarray(_call(fn, jnp.asarray(a2), jnp.asarray(b2)))
    np.testing.assert_allclose(
        np.asarray(_call(fn, jnp.asarray(a2.T), jnp.asarray(b2.T), axis=0)),
        ref2,
        rtol=1e-6,
        atol=1e-7,
    )


def test_entropy_axis_and_shape():
    p = np.exp(_np_log_softmax(_rng(2).normal(size=(2, 3, 4)))).astype(np.float32)
    ref = np.asarray(_call(losses.entropy, jnp.asarray(p)))
    assert ref.shape == (2, 3)
    np.testing.assert_allclose(
        np.asarray(_call(losses.entropy, jnp.asarray(np.moveaxis(p, -1, 0)), axis=0)),
        ref,
        rtol=1e-6,
    )


@pytest.mark.parametrize(("fn", "kind_a", "kind_b"), TWO_ARGUMENT, ids=IDS)
@pytest.mark.parametrize("half", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32_and_returned_in_kind(fn, kind_a, kind_b, half):
    a, b = _inputs((kind_a, kind_b), (3, 4), seed=3)
    a_half, b_half = jnp.asarray(a, half), jnp.asarray(b, half)
    out = _call(fn, a_half, b_half)
    assert out.dtype == half
    ref = _call(fn, a_half.astype(jnp.float32), b_half.astype(jnp.float32))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref.astype(half)))


def test_float64_is_preserved_and_mixed_dtypes_widen():
    with jax.enable_x64(True):
        log_q = jnp.log(jnp.asarray([0.25, 0.75]))
        t = jnp.asarray([0.5, 0.5])
        assert _call(losses.kl_divergence, log_q, t).dtype == jnp.float64
        assert _call(losses.keras_kl_divergence, t, jnp.exp(log_q)).dtype == jnp.float64
        mixed = _call(losses.kl_divergence, log_q.astype(jnp.float32), t)
        assert mixed.dtype == jnp.float64
        mixed_half = _call(losses.kl_divergence, log_q.astype(jnp.float16), t.astype(jnp.bfloat16))
        assert mixed_half.dtype == jnp.float32


def test_works_under_jit_and_vmap():
    z = jnp.asarray(_rng(4).normal(size=(3, 4)), jnp.float32)
    t = jax.nn.softmax(z[::-1])
    eager = losses.kl_divergence_from_logits(z, t)
    jitted = jax.jit(losses.kl_divergence_from_logits)(z, t)
    vmapped = jax.vmap(losses.kl_divergence_from_logits)(z, t)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(vmapped), np.asarray(eager), rtol=1e-6)
    # The exact identities hold op by op too, not only in the compiled programs above.
    one_hot = jax.nn.one_hot(jnp.asarray([0, 3, 1]), 4, dtype=jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(losses.kl_divergence_from_logits(z, one_hot)),
        np.asarray(losses.softmax_cross_entropy(z, one_hot)),
    )
    np.testing.assert_array_equal(np.asarray(losses.kl_divergence(jnp.log(t), t)), 0.0)
    log_t = jax.nn.log_softmax(z)
    np.testing.assert_array_equal(np.asarray(losses.jensen_shannon_divergence(log_t, log_t)), 0.0)


# --------------------------------------------------------------------------------------------------
# Validation


def test_mismatched_shapes_raise_without_broadcasting():
    log_q = jnp.zeros((4, 3))
    t = jnp.full((3,), 1.0 / 3.0)
    with pytest.raises(
        ValueError,
        match=r"targets: expected the same shape as log_predictions \(4, 3\), got \(3,\)",
    ):
        losses.kl_divergence(log_q, t)
    with pytest.raises(ValueError, match="targets: expected the same shape as logits"):
        jax.jit(losses.kl_divergence_from_logits)(log_q, t)
    with pytest.raises(ValueError, match="y_pred: expected the same shape as y_true"):
        losses.keras_kl_divergence(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


@pytest.mark.parametrize(
    ("bad", "dtype_name"),
    [(np.asarray([0, 1, 0], np.int32), "int32"), (np.asarray([False, True, False]), "bool")],
)
def test_integer_and_bool_inputs_raise_type_error(bad, dtype_name):
    z = jnp.zeros(3)
    with pytest.raises(
        TypeError, match=f"targets: expected a floating-point array, got {dtype_name}"
    ):
        losses.kl_divergence_from_logits(z, bad)
    with pytest.raises(
        TypeError, match=f"targets: expected a floating-point array, got {dtype_name}"
    ):
        jax.jit(losses.kl_divergence)(z, bad)
    with pytest.raises(
        TypeError, match=f"logits: expected a floating-point array, got {dtype_name}"
    ):
        losses.get_loss("ce")(bad, z)
    with pytest.raises(
        TypeError, match=f"y_true: expected a floating-point array, got {dtype_name}"
    ):
        losses.keras_kl_divergence(bad, z)
    with pytest.raises(
        TypeError, match=f"probs: expected a floating-point array, got {dtype_name}"
    ):
        losses.entropy(bad)


@pytest.mark.parametrize("axis", [2, -3, 1.0, True])
def test_bad_axis_raises(axis):
    with pytest.raises(ValueError, match=r"axis: expected an integer in \[-2, 2\) for 2-d inputs"):
        losses.kl_divergence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), axis=axis)


def test_scalar_inputs_have_no_distribution_axis():
    with pytest.raises(ValueError, match=r"axis: expected an integer in \[0, 0\) for 0-d inputs"):
        losses.entropy(jnp.asarray(0.5))


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.nan, math.inf, True])
def test_bad_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0, got"):
        losses.distillation_loss(jnp.zeros(3), jnp.zeros(3), temperature=temperature)


def test_temperature_may_be_traced():
    zs, zt = jnp.asarray([1.0, 0.0, -1.0]), jnp.asarray([0.0, 1.0, 0.0])
    traced = jax.jit(lambda t: losses.distillation_loss(zs, zt, temperature=t))(jnp.float32(2.0))
    np.testing.assert_allclose(
        float(traced), float(losses.distillation_loss(zs, zt, temperature=2.0)), rtol=1e-6
    )


# --------------------------------------------------------------------------------------------------
# Registry


def test_registry_names_and_aliases():
    assert losses.loss_names() == ("ce", "js", "keras_kl", "kl", "reverse_kl")
    assert set(losses.loss_names()) == set(losses.LOSSES)
    assert set(losses.ALIASES.values()) <= set(losses.LOSSES)
    expected = {
        "kl": "kl",
        "kullback_leibler_divergence": "kl",  # the tutorial's string, which Keras 3 rejects
        "kl_divergence": "kl",
        "kld": "kl",
        "KLD": "kl",
        "ce": "ce",
        "categorical_crossentropy": "ce",
        "cross_entropy": "ce",
        "keras_kl": "keras_kl",
        "reverse_kl": "reverse_kl",
        "js": "js",
    }
    for name, canonical in expected.items():
        assert losses.canonical_loss_name(name) == canonical
        assert losses.get_loss(name) is losses.LOSSES[canonical]
    assert losses.get_loss("kullback_leibler_divergence") is losses.kl_divergence_from_logits


@pytest.mark.parametrize("name", losses.loss_names())
def test_registry_losses_reduce_over_any_axis(name):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(4, 3, 6)).astype(np.float32)
    targets = rng.dirichlet(np.ones(3), size=(4, 6)).astype(np.float32)  # (4, 6, 3)
    loss = losses.get_loss(name)
    last = loss(np.swapaxes(logits, 1, 2), targets)  # (4, 6)
    middle = loss(logits, np.swapaxes(targets, 1, 2), axis=1)  # (4, 6)
    np.testing.assert_allclose(middle, last, rtol=1e-6, atol=1e-7)


def test_unknown_loss_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        losses.get_loss("foo")
    message = str(info.value)
    assert message.startswith("loss: expected one of 'ce', 'js', 'keras_kl', 'kl', 'reverse_kl'")
    assert "'kullback_leibler_divergence'" in message and message.endswith("got 'foo'")
    with pytest.raises(TypeError, match="loss: expected a string, got int"):
        losses.canonical_loss_name(3)


def test_registry_losses_are_per_example_functions_of_logits_and_targets():
    rng = _rng(5)
    z = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    soft = jnp.asarray(_simplex(rng, (8, 3)), jnp.float32)
    direct = {
        "ce": _call(losses.softmax_cross_entropy, z, soft),
        "js": _call(losses.jensen_shannon_divergence, jax.nn.log_softmax(z), jnp.log(soft)),
        "keras_kl": _call(losses.keras_kl_divergence, soft, jax.nn.softmax(z)),
        "kl": _call(losses.kl_divergence, jax.nn.log_softmax(z), soft),
        "reverse_kl": _call(
            losses.kl_divergence_with_log_targets, jnp.log(soft), jax.nn.log_softmax(z)
        ),
    }
    for name in losses.loss_names():
        fn = losses.get_loss(name)
        values = _call(fn, z, soft)
        assert values.shape == (8,)
        np.testing.assert_allclose(
            np.asarray(values), np.asarray(direct[name]), rtol=2e-6, atol=1e-7
        )
        assert np.all(np.isfinite(_grad(fn, 0, z, soft)))
