import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.model import apply_mlp, init_limit, init_mlp, layer_sizes


def test_init_limits_are_keras_definitions():
    assert init_limit("he_uniform", 2, 50) == pytest.approx(np.sqrt(6 / 2))
    assert init_limit("glorot_uniform", 50, 3) == pytest.approx(np.sqrt(6 / 53))
    assert init_limit("lecun_uniform", 8, 3) == pytest.approx(np.sqrt(3 / 8))
    with pytest.raises(ValueError, match="initializer: expected"):
        init_limit("normal", 1, 1)


def test_init_shapes_bounds_and_zero_biases():
    sizes = layer_sizes(2, (50,), 3)
    assert sizes == (2, 50, 3)
    params = init_mlp(jax.random.key(0), sizes, "he_uniform", "glorot_uniform")
    (w1, b1), (w2, b2) = params
    assert w1.shape == (2, 50) and w2.shape == (50, 3) and w1.dtype == jnp.float32
    assert np.all(np.abs(w1) <= np.sqrt(6 / 2)) and np.all(np.abs(w2) <= np.sqrt(6 / 53))
    # a uniform draw fills its range: the extremes come close to the limits
    assert np.abs(w1).max() > 0.9 * np.sqrt(6 / 2)
    np.testing.assert_array_equal(b1, np.zeros(50, np.float32))
    np.testing.assert_array_equal(b2, np.zeros(3, np.float32))


def test_init_depends_only_on_the_key():
    sizes = (3, 8, 8, 2)
    a = init_mlp(jax.random.key(1), sizes, "he_uniform", "glorot_uniform")
    b = init_mlp(jax.random.key(1), sizes, "he_uniform", "glorot_uniform")
    c = init_mlp(jax.random.key(2), sizes, "he_uniform", "glorot_uniform")
    assert len(a) == 3
    for (wa, _), (wb, _), (wc, _) in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_apply_matches_a_numpy_forward_pass(activation):
    params = init_mlp(jax.random.key(3), (2, 5, 4, 3), "he_uniform", "glorot_uniform")
    x = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    act = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    }[activation]
    h = x.astype(np.float64)
    for w, b in params[:-1]:
        h = act(h @ np.asarray(w, np.float64) + np.asarray(b, np.float64))
    w, b = params[-1]
    expected = h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
    got = apply_mlp(params, jnp.asarray(x), activation)
    assert got.shape == (7, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
