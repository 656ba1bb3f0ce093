import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.model import INIT_LIMITS, MLP


def test_init_limits_are_keras_definitions():
    assert INIT_LIMITS["he_uniform"](2, 50) == pytest.approx(np.sqrt(6 / 2))
    assert INIT_LIMITS["glorot_uniform"](50, 3) == pytest.approx(np.sqrt(6 / 53))
    assert INIT_LIMITS["lecun_uniform"](8, 3) == pytest.approx(np.sqrt(3 / 8))
    assert set(INIT_LIMITS) == {"he_uniform", "glorot_uniform", "lecun_uniform"}


def test_the_description_is_static_and_hashable():
    m = MLP((2, 50, 3))
    assert (m.activation, m.hidden_init, m.output_init) == ("relu", "he_uniform", "glorot_uniform")
    assert m == MLP((2, 50, 3)) and hash(m) == hash(MLP((2, 50, 3)))
    assert m != MLP((2, 50, 3), "tanh")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.sizes = (1, 1)  # type: ignore[misc]


def test_init_shapes_bounds_and_zero_biases():
    params = MLP((2, 50, 3), "relu", "he_uniform", "glorot_uniform").init(jax.random.key(0))
    (w1, b1), (w2, b2) = params
    assert w1.shape == (2, 50) and w2.shape == (50, 3)
    assert w1.dtype == jnp.float32 and b1.dtype == jnp.float32
    assert np.all(np.abs(w1) <= np.sqrt(6 / 2)) and np.all(np.abs(w2) <= np.sqrt(6 / 53))
    # a uniform draw fills its range: the extremes come close to the limits
    assert np.abs(w1).max() > 0.9 * np.sqrt(6 / 2) and np.abs(w2).max() > 0.9 * np.sqrt(6 / 53)
    np.testing.assert_array_equal(b1, np.zeros(50, np.float32))
    np.testing.assert_array_equal(b2, np.zeros(3, np.float32))


@pytest.mark.parametrize(
    ("hidden_init", "output_init"),
    [("lecun_uniform", "he_uniform"), ("glorot_uniform", "lecun_uniform")],
)
def test_each_layer_uses_its_initialiser_limit(hidden_init, output_init):
    sizes = (4, 64, 32, 5)
    params = MLP(sizes, "relu", hidden_init, output_init).init(jax.random.key(5))
    names = [hidden_init, hidden_init, output_init]
    for (w, _), (fan_in, fan_out), name in zip(
        params, itertools.pairwise(sizes), names, strict=True
    ):
        limit = INIT_LIMITS[name](fan_in, fan_out)
        assert w.shape == (fan_in, fan_out)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
        # uniform on [-limit, limit]: variance limit^2 / 3
        assert np.var(np.asarray(w, np.float64)) == pytest.approx(limit**2 / 3, rel=0.25)


def test_init_depends_only_on_the_key():
    model = MLP((3, 8, 8, 2))
    a, b, c = (model.init(jax.random.key(k)) for k in (1, 1, 2))
    assert len(a) == 3
    for (wa, _), (wb, _), (wc, _) in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


def test_init_under_vmap_equals_separate_inits():
    model = MLP((2, 6, 3))
    keys = jax.random.split(jax.random.key(9), 3)
    stacked = jax.vmap(model.init)(keys)
    for r in range(3):
        for (w, b), (w1, b1) in zip(stacked, model.init(keys[r]), strict=True):
            np.testing.assert_array_equal(w[r], w1)
            np.testing.assert_array_equal(b[r], b1)


def numpy_forward(params, x, activation):
    act = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    }[activation]
    h = np.asarray(x, np.float64)
    for w, b in params[:-1]:
        h = act(h @ np.asarray(w, np.float64) + np.asarray(b, np.float64))
    w, b = params[-1]
    return h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_apply_matches_a_numpy_forward_pass(activation):
    model = MLP((2, 5, 4, 3), activation)
    rng = np.random.default_rng(0)
    # non-zero biases, so a missing or misplaced bias shows
    params = tuple(
        (w, jnp.asarray(rng.normal(size=b.shape), jnp.float32))
        for w, b in model.init(jax.random.key(3))
    )
    x = rng.normal(size=(7, 2)).astype(np.float32)
    got = model.apply(params, jnp.asarray(x))
    assert got.shape == (7, 3) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, numpy_forward(params, x, activation), rtol=1e-5, atol=1e-5)


def test_apply_takes_any_leading_axes():
    model = MLP((2, 5, 3), "tanh")
    params = model.init(jax.random.key(4))
    x = np.random.default_rng(1).normal(size=(2, 4, 2)).astype(np.float32)
    got = model.apply(params, jnp.asarray(x))
    assert got.shape == (2, 4, 3)
    np.testing.assert_allclose(
        got.reshape(8, 3), numpy_forward(params, x.reshape(8, 2), "tanh"), rtol=1e-5, atol=1e-5
    )
    one = model.apply(params, jnp.asarray(x[0, 0]))  # a single example, no batch axis
    assert one.shape == (3,)
    np.testing.assert_allclose(one, got[0, 0], rtol=1e-6, atol=1e-6)
