"""Figures of a trained VAE (`kldiv vae`): training curves, KL per latent dimension over training,
and, for square images (64 = 8 x 8 pixels), reconstructions, samples from the prior and a latent
traversal. Each function returns a `matplotlib.figure.Figure` (`kldiv.plot.new_figure`); the CLI
renders them with `kldiv.plot.figure_png`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from kldiv.plot import new_figure


def image_side(n_values: int) -> int | None:
    """The side of a square image of `n_values` pixels, or None if it is not a square."""
    side = math.isqrt(n_values)
    return side if side * side == n_values and side > 1 else None


def curves_figure(
    history: Mapping[str, np.ndarray], latent: int, title: str, run: int = 0, seed: int = 0
) -> Any:
    """Left: -ELBO, reconstruction and KL per epoch (median over runs; training running means
    dashed, validation solid). Right: each latent dimension's validation KL per epoch in run `run`
    (of seed `seed`: dimensions are not the same across runs), the active threshold dotted."""
    from kldiv.vae import ACTIVE_THRESHOLD

    fig = new_figure(1, 2, figsize=(11.0, 4.2))
    ax, ax_kl = fig.axes
    epochs = np.arange(1, np.shape(history["neg_elbo"])[1] + 1)
    for name, color in (("neg_elbo", "C0"), ("reconstruction", "C1"), ("kl", "C2")):
        label = "-ELBO" if name == "neg_elbo" else name
        ax.plot(epochs, np.nanmedian(history[name], axis=0), color=color, ls="--", lw=1)
        ax.plot(epochs, np.nanmedian(history[f"val_{name}"], axis=0), color=color, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.set_title("test (solid) and training (dashed)")
    ax.legend()
    for j in range(latent):
        ax_kl.plot(epochs, history[f"val_kl_{j}"][run], lw=1, label=f"z{j}")
    ax_kl.axhline(ACTIVE_THRESHOLD, color="k", ls=":", lw=1)
    ax_kl.set_yscale("symlog", linthresh=ACTIVE_THRESHOLD)
    ax_kl.set_xlabel("epoch")
    ax_kl.set_ylabel("KL of the dimension (nats, test)")
    ax_kl.set_title(f"KL per latent dimension, seed {seed}")
    if latent <= 16:
        ax_kl.legend(ncols=2, fontsize="small")
    fig.suptitle(title)
    return fig


def _images(ax: Any, rows: np.ndarray, side: int, label: str) -> None:
    """One strip of images (n, side*side) values in [0, 1], gray, no ticks."""
    strip = np.concatenate([r.reshape(side, side) for r in rows], axis=1)
    ax.imshow(strip, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center")


def images_figure(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    samples: np.ndarray,
    traversal: np.ndarray,
    traversed: tuple[int, ...],
    side: int,
    title: str,
) -> Any:
    """Rows: test inputs, their reconstructions (decoded posterior means), decodings of codes drawn
    from the prior N(0, I), and for each dimension in `traversed` its traversal from -3 to 3 with
    the others at 0. Arrays are (n, side*side) in [0, 1]; traversal (len(traversed), steps, ...)."""
    n_rows = 3 + len(traversed)
    fig = new_figure(n_rows, 1, figsize=(10.0, 0.9 * n_rows + 0.8))
    axes = fig.axes
    _images(axes[0], originals, side, "test")
    _images(axes[1], reconstructions, side, "reconstructed")
    _images(axes[2], samples, side, "prior samples")
    for ax, j, row in zip(axes[3:], traversed, traversal, strict=True):
        _images(ax, row, side, f"z{j}: -3 … 3")
    fig.suptitle(title)
    return fig
