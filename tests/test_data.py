import numpy as np
import pytest
from sklearn.datasets import make_blobs as sklearn_make_blobs

from kldiv.config import BlobsConfig
from kldiv.data import blobs_dataset, make_blobs, one_hot


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_samples=1000, centers=3, n_features=2, cluster_std=2.0, random_state=2),
        dict(n_samples=101, centers=4, n_features=5, cluster_std=0.5, random_state=7),
        dict(n_samples=10, centers=3, n_features=1, cluster_std=3.0, random_state=0),
        dict(
            n_samples=50,
            centers=2,
            n_features=3,
            cluster_std=1.0,
            center_box=(-1.0, 5.0),
            random_state=11,
        ),
    ],
)
def test_make_blobs_equals_scikit_learn_bit_for_bit(kwargs):
    x, y = make_blobs(**kwargs)
    x_ref, y_ref = sklearn_make_blobs(**kwargs)
    assert x.dtype == x_ref.dtype and y.dtype == y_ref.dtype
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_one_hot_rows_are_unit_vectors_at_the_label():
    labels = np.array([2, 0, 1, 2])
    targets = one_hot(labels, 3)
    assert targets.dtype == np.float32
    np.testing.assert_array_equal(targets.argmax(axis=1), labels)
    np.testing.assert_array_equal(targets.sum(axis=1), np.ones(4, np.float32))


def test_blobs_dataset_is_the_tutorial_split():
    data = blobs_dataset()
    x, y = sklearn_make_blobs(
        n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2
    )
    assert data.x_train.shape == (500, 2) and data.x_val.shape == (500, 2)
    assert data.y_train.shape == (500, 3) and data.y_val.shape == (500, 3)
    assert data.n_features == 2 and data.n_classes == 3
    np.testing.assert_array_equal(data.x_train, x[:500].astype(np.float32))
    np.testing.assert_array_equal(data.x_val, x[500:].astype(np.float32))
    np.testing.assert_array_equal(data.y_train.argmax(1), y[:500])
    np.testing.assert_array_equal(data.y_val.argmax(1), y[500:])


def test_blobs_dataset_follows_its_config():
    data = blobs_dataset(BlobsConfig(n_samples=60, centers=4, n_features=3, n_train=40))
    assert data.x_train.shape == (40, 3) and data.y_val.shape == (20, 4)
