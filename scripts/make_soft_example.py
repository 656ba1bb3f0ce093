"""Write examples/soft-blobs.csv: the tutorial's blobs with soft targets, for the README.

Each row's targets are the posterior class probabilities of the three Gaussian clusters that
generated the blobs (equal priors, isotropic, the clusters' true centres and spread): p(k | x) =
softmax_k(-|x - c_k|² / (2 σ²)). These are the distributions a perfect model would predict, so KL
can reach 0 on them while cross-entropy cannot go below their entropy.

    python scripts/make_soft_example.py     # rewrites examples/soft-blobs.csv, byte for byte
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kldiv.config import BlobsConfig
from kldiv.data import make_blobs

OUT = Path(__file__).resolve().parent.parent / "examples" / "soft-blobs.csv"


def main() -> None:
    config = BlobsConfig()
    x, _ = make_blobs(
        n_samples=config.n_samples,
        n_features=config.n_features,
        centers=config.centers,
        cluster_std=config.cluster_std,
        center_box=config.center_box,
        random_state=config.random_state,
    )
    # make_blobs draws the centres first from the same RandomState
    rng = np.random.RandomState(config.random_state)
    centres = rng.uniform(*config.center_box, size=(config.centers, config.n_features))
    logits = -((x[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * config.cluster_std**2)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["x0", "x1", *(f"p_{k}" for k in range(config.centers))])
        for xi, pi in zip(x, probs, strict=True):
            # 17 significant digits: the float64 values exactly; rows sum to 1 within 1e-15
            writer.writerow([f"{v:.17g}" for v in xi] + [f"{v:.17g}" for v in pi])


if __name__ == "__main__":
    main()
