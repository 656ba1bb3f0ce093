"""Epoch orders: permutations, uniform positions, and the lane-wise sort against the per-run order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.engine.shuffle import BITONIC_MIN_COLUMNS, epoch_order, epoch_orders, sort_lanes


@pytest.mark.parametrize("n", [1, 2, 20, 500, 513])
def test_epoch_order_is_a_permutation_that_changes_with_the_key(n):
    a = epoch_order(jax.random.key(1), n, True)
    b = epoch_order(jax.random.key(2), n, True)
    assert a.dtype == jnp.int32
    np.testing.assert_array_equal(np.sort(a), np.arange(n))
    if n >= 20:
        assert not np.array_equal(a, b)
    np.testing.assert_array_equal(epoch_order(jax.random.key(1), n, False), np.arange(n))


def test_epoch_order_positions_are_roughly_uniform():
    keys = jax.random.split(jax.random.key(0), 2000)
    orders = np.asarray(jax.vmap(lambda k: epoch_order(k, 10, True))(keys))
    counts = np.stack([(orders == row).sum(0) for row in range(10)])  # (row, position)
    assert counts.min() > 140 and counts.max() < 270  # expected 200 each


@pytest.mark.parametrize("n", [1, 2, 3, 20, 500, 512])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("runs", [5, BITONIC_MIN_COLUMNS])  # either sort
def test_epoch_orders_equal_the_per_run_order(n, shuffle, runs):
    keys = jax.random.split(jax.random.key(7), runs)
    batched = epoch_orders(keys, n, shuffle)
    assert batched.shape == (n, runs)
    for s, key in enumerate(keys):
        np.testing.assert_array_equal(batched[:, s], epoch_order(key, n, shuffle))


@pytest.mark.parametrize("size", [2, 8, 64])
@pytest.mark.parametrize("columns", [6, BITONIC_MIN_COLUMNS - 1, BITONIC_MIN_COLUMNS, 128])
def test_sort_lanes_sorts_every_column(size, columns):
    words = np.random.default_rng(size).integers(0, 2**32, (size, columns), dtype=np.uint32)
    np.testing.assert_array_equal(sort_lanes(jnp.asarray(words)), np.sort(words, axis=0))
