"""The tutorial's data: Gaussian blobs, generated with NumPy alone.

`make_blobs` reproduces `sklearn.datasets.make_blobs` bit for bit (same `RandomState` calls in the same
order) without importing scikit-learn, whose import alone takes longer than our whole training.
"""

from __future__ import annotations

import numpy as np

from kldiv.config import BlobsConfig
from kldiv.data.dataset import Dataset, one_hot


def make_blobs(
    n_samples: int = 100,
    n_features: int = 2,
    centers: int = 3,
    cluster_std: float = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs, identical to `sklearn.datasets.make_blobs(..., shuffle=True)`.

    Returns X (n_samples, n_features) float64 and y (n_samples,) int64 class labels in [0, centers).
    Centres are uniform in `center_box`; the first `n_samples % centers` clusters get one extra row.
    """
    rng = np.random.RandomState(random_state)
    centre_points = rng.uniform(center_box[0], center_box[1], size=(centers, n_features))
    counts = [n_samples // centers + (1 if i < n_samples % centers else 0) for i in range(centers)]
    x = np.concatenate(
        [
            rng.normal(loc=centre_points[i], scale=cluster_std, size=(n, n_features))
            for i, n in enumerate(counts)
        ]
    )
    y = np.repeat(np.arange(centers, dtype=np.int64), counts)
    order = np.arange(n_samples)
    rng.shuffle(order)
    return x[order], y[order]


def blobs_dataset(config: BlobsConfig | None = None) -> Dataset:
    """The tutorial's data: blobs, one-hot targets, first `n_train` rows train, the rest test."""
    config = BlobsConfig() if config is None else config
    x, y = make_blobs(
        n_samples=config.n_samples,
        n_features=config.n_features,
        centers=config.centers,
        cluster_std=config.cluster_std,
        center_box=config.center_box,
        random_state=config.random_state,
    )
    x = x.astype(np.float32)
    targets = one_hot(y, config.centers)
    n = config.n_train
    return Dataset(x[:n], targets[:n], x[n:], targets[n:])
