"""The stratified split (invariants, determinism) and the standardizer (against NumPy and
scikit-learn's StandardScaler, which uses the same formula)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import StandardScaler

from kldiv.checks import ConfigError
from kldiv.data import Standardizer, stratified_split


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    test_frac=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
    order_seed=st.integers(0, 1000),
)
def test_split_is_a_partition_with_each_class_in_proportion(counts, test_frac, seed, order_seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    labels = np.random.default_rng(order_seed).permutation(labels)
    try:
        train, test = stratified_split(labels, test_frac, seed)
    except ConfigError as err:  # only when no class can give a test row
        assert err.field == "test_frac"
        assert all(n <= 1 or np.floor(test_frac * n + 0.5) == 0 for n in counts)
        return
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, no repeats
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert test.size > 0
    for c, n in enumerate(counts):
        n_test = int(np.sum(labels[test] == c))
        if n:
            assert np.sum(labels[train] == c) >= 1  # every class keeps a training row
            assert abs(n_test - test_frac * n) <= 1  # within one row of the fraction
        else:
            assert n_test == 0


def test_split_rounds_half_up_and_keeps_a_training_row():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 1)
    _, test = stratified_split(labels, 0.25, 0)
    # 2.5 -> 3 of class 0, 0.75 -> 1 of class 1, 0.25 -> 0 of class 2
    assert np.bincount(labels[test], minlength=3).tolist() == [3, 1, 0]
    _, test = stratified_split(np.array([0, 0, 1, 1]), 0.9, 0)
    assert np.bincount(np.array([0, 0, 1, 1])[test]).tolist() == [1, 1]


def test_split_is_deterministic_per_seed_and_seeds_differ():
    labels = np.arange(300) % 3
    first = stratified_split(labels, 0.3, 7)
    again = stratified_split(labels, 0.3, 7)
    other = stratified_split(labels, 0.3, 8)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_split_draws_each_class_from_one_generator_in_class_order():
    """The documented recipe, written out: a regression guard for recorded splits."""
    labels = np.array([1, 0, 1, 1, 0, 2, 2, 0, 1, 2, 0, 0])
    rng = np.random.default_rng(5)
    expected = []
    for c in range(3):
        rows = np.flatnonzero(labels == c)
        n_test = min(int(np.floor(0.5 * rows.size + 0.5)), rows.size - 1)
        expected.extend(rng.permutation(rows)[:n_test])
    np.testing.assert_array_equal(stratified_split(labels, 0.5, 5)[1], np.sort(expected))


def test_split_without_a_possible_test_row_names_test_frac_and_the_counts():
    with pytest.raises(
        ConfigError, match=r"^test_frac: .*got 0.1 of 4 rows \(classes of 2, 2 rows\)"
    ):
        stratified_split(np.array([0, 0, 1, 1]), 0.1, 0)
    with pytest.raises(ConfigError, match=r"^test_frac: .*got 0.5 of 1 rows"):
        stratified_split(np.array([3]), 0.5, 0)


@pytest.mark.parametrize(
    ("labels", "test_frac", "seed", "field"),
    [
        (np.array([0, 1]), 1.0, 0, "test_frac"),
        (np.array([0, 1]), 0.0, 0, "test_frac"),
        (np.array([0, 1]), 0.5, -1, "seed"),
        (np.array([0.0, 1.0]), 0.5, 0, "labels"),
        (np.array([0, -1]), 0.5, 0, "labels"),
    ],
)
def test_split_arguments_are_checked(labels, test_frac, seed, field):
    with pytest.raises(ConfigError) as caught:
        stratified_split(labels, test_frac, seed)
    assert caught.value.field == field


def _data(rows=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 5.0, size=(rows, 4)) * np.array([1.0, 1e-3, 1e3, 1.0])
    x[:, 3] = 0.1  # a constant column
    return x.astype(np.float32)


def test_standardizer_is_the_numpy_formula_in_float64():
    x = _data()
    s = Standardizer.fit(x)
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(s.mean, x64.mean(axis=0).astype(np.float32))
    std = x64.std(axis=0, ddof=0)
    np.testing.assert_array_equal(s.scale[:3], std[:3].astype(np.float32))
    assert s.scale[3] == 1.0  # constant column
    assert s.mean.dtype == np.float32 and s.scale.dtype == np.float32
    z = s.apply(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :3].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, :3].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(z[:, 3], 0.0)


def test_standardizer_agrees_with_scikit_learn():
    x = _data(seed=1)
    ours = Standardizer.fit(x)
    theirs = StandardScaler().fit(x.astype(np.float64))
    # the same float64 formula, rounded once to float32: equal bits
    np.testing.assert_array_equal(ours.mean, theirs.mean_.astype(np.float32))
    np.testing.assert_array_equal(ours.scale, theirs.scale_.astype(np.float32))
    new = _data(rows=30, seed=2) * 1.5
    np.testing.assert_allclose(
        ours.apply(new), theirs.transform(new.astype(np.float64)), rtol=1e-5, atol=1e-5
    )


def test_standardizer_round_trips_exactly_through_json():
    s = Standardizer.fit(_data(seed=3))
    back = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(back.mean, s.mean)
    np.testing.assert_array_equal(back.scale, s.scale)
    assert back.mean.dtype == np.float32


@pytest.mark.parametrize(
    "d",
    [
        {"mean": [0.0]},
        {"mean": [0.0], "scale": [0.0]},
        {"mean": [0.0], "scale": [-1.0]},
        {"mean": [0.0, 1.0], "scale": [1.0]},
        {"mean": ["a"], "scale": [1.0]},
        {"mean": [1e300], "scale": [1.0]},
        [0.0],
    ],
)
def test_standardizer_from_dict_refuses_what_it_cannot_apply(d):
    with pytest.raises(ConfigError):
        Standardizer.from_dict(d)


def test_standardizer_refuses_the_wrong_width():
    s = Standardizer.fit(np.ones((3, 2), np.float32))
    with pytest.raises(ConfigError, match=r"expected \(rows, 2\) features"):
        s.apply(np.ones((3, 3), np.float32))
