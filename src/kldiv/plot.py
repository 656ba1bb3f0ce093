"""Figures for single runs and multi-seed comparisons of arms, drawn on Axes the caller gives.

Nothing here saves or shows a figure, and nothing touches pyplot's global state: `new_figure`
builds a `matplotlib.figure.Figure` on an Agg canvas and `figure_png` renders it to bytes.
Matplotlib (and SciPy, via kldiv.intervals) are imported inside the functions, so `import kldiv.plot`
loads neither.

Histories use the Keras key names ("loss", "accuracy", "val_loss", "val_accuracy"); the tutorial
calls the validation set "test", and so do the labels here. Values are (epochs,) for one run or
(seeds, epochs) for many; bands are 95% t intervals of the mean over seeds. A comparison's arms
(losses, configurations, ...) are the keys of its `histories` and `finals` mappings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "comparison_figures",
    "figure_png",
    "history_figure",
    "new_figure",
    "plot_curves_by_arm",
    "plot_final_by_arm",
    "plot_history",
    "plot_paired_differences",
]

# history key -> (split, quantity)
_SERIES: Mapping[str, tuple[str, str]] = {
    "loss": ("train", "loss"),
    "val_loss": ("test", "loss"),
    "accuracy": ("train", "accuracy"),
    "val_accuracy": ("test", "accuracy"),
}
_CONFIDENCE = 0.95
# the history figure's panels, as fractions of its 6.4 x 7.2 in: room for 7-character tick labels
_HISTORY_MARGINS = {"left": 0.13, "right": 0.97, "bottom": 0.07, "top": 0.9, "hspace": 0.3}


def _ylabel(name: str, loss_label: str = "loss") -> str:
    """Axis label for a quantity or metric name: 'test_loss' -> 'loss (nats)'."""
    if name.endswith("loss"):
        return f"{loss_label} (nats)"
    return "accuracy" if name.endswith("accuracy") else name.replace("_", " ")


def _metric_title(metric: str) -> str:
    """'test_accuracy' -> 'Test accuracy'."""
    return metric.replace("_", " ").capitalize()


def _runs(name: str, values: Any) -> np.ndarray:
    """Per-epoch values as (seeds, epochs)."""
    x = np.asarray(values, dtype=float)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"{name}: expected shape (epochs,) or (seeds, epochs), got {x.shape}")
    return x.reshape(1, -1) if x.ndim == 1 else x


def _draw_runs(ax: Axes, runs: np.ndarray, label: str, color: str, linestyle: str = "-") -> None:
    """One line for one run; for several, the mean over seeds with its t-interval band."""
    epochs = np.arange(1, runs.shape[1] + 1)
    n = runs.shape[0]
    if n == 1:
        ax.plot(epochs, runs[0], color=color, label=label, linestyle=linestyle)
        return
    from kldiv.intervals import t_interval  # scipy.special: not needed for a single run

    mean = runs.mean(axis=0)
    low, high = t_interval(mean, runs.std(axis=0, ddof=1) / math.sqrt(n), n, _CONFIDENCE)
    ax.plot(
        epochs,
        mean,
        color=color,
        linestyle=linestyle,
        label=f"{label} (mean of {n} seeds, 95% t CI)",
    )
    ax.fill_between(epochs, low, high, color=color, alpha=0.25, linewidth=0)


def _need_keys(name: str, mapping: Mapping[str, Any], keys: list[str]) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"{name}: expected keys {keys}, got {sorted(mapping)}")


def plot_history(
    ax_loss: Axes, ax_acc: Axes, history: Mapping[str, Any], *, loss_label: str = "loss"
) -> None:
    """The tutorial's figure for one run: train and test loss on `ax_loss`, accuracy on `ax_acc`.

    Args:
      ax_loss, ax_acc: the Axes to draw on (titles 'Loss' and 'Accuracy').
      history: "loss", "val_loss", "accuracy", "val_accuracy", each (epochs,) or (seeds, epochs);
        with more than one seed each curve is the mean with a 95% t-interval band.
      loss_label: the loss's name for the y axis, e.g. "KL divergence"; the unit is nats.
    """
    _need_keys("history", history, list(_SERIES))
    panels = (
        (ax_loss, "loss", ("loss", "val_loss")),
        (ax_acc, "accuracy", ("accuracy", "val_accuracy")),
    )
    for ax, quantity, keys in panels:
        for i, key in enumerate(keys):
            _draw_runs(ax, _runs(f"history[{key!r}]", history[key]), _SERIES[key][0], f"C{i}")
        # y given: matplotlib then skips measuring the axes to lift the title over top tick
        # labels (there are none); the same pixels, 0.096 -> 0.087 s for the figure.
        ax.set_title(quantity.capitalize(), y=1.0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_ylabel(quantity, loss_label))
        ax.legend()


def plot_curves_by_arm(ax: Axes, histories: Mapping[str, Mapping[str, Any]], key: str) -> None:
    """One history key for every arm: mean over seeds with a 95% t-interval band per arm.

    A curve equal to an earlier arm's is dashed and labelled "(identical to <arm>)".

    Args:
      ax: the Axes to draw on.
      histories: arm name -> history; `histories[arm][key]` is (seeds, epochs) or (epochs,).
      key: one of "loss", "val_loss", "accuracy", "val_accuracy".
    """
    if key not in _SERIES:
        raise ValueError(f"key: expected one of {list(_SERIES)}, got {key!r}")
    if not histories:
        raise ValueError("histories: expected at least one arm, got none")
    split, quantity = _SERIES[key]
    drawn: dict[str, np.ndarray] = {}
    for i, (arm, history) in enumerate(histories.items()):
        _need_keys(f"histories[{arm!r}]", history, [key])
        runs = _runs(f"histories[{arm!r}][{key!r}]", history[key])
        # A curve equal to one already drawn would hide it: say so, and dash it so both show.
        twin = next((name for name, other in drawn.items() if np.array_equal(runs, other)), None)
        label = arm if twin is None else f"{arm} (identical to {twin})"
        _draw_runs(ax, runs, label, f"C{i}", "-" if twin is None else "--")
        drawn[arm] = runs
    ax.set_title(f"{split.capitalize()} {quantity}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(_ylabel(quantity))
    ax.legend()


def _finals(finals: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, np.ndarray]:
    """arm -> (seeds,) values of one metric, checked."""
    if not finals:
        raise ValueError("finals: expected at least one arm, got none")
    out = {}
    for arm, metrics in finals.items():
        _need_keys(f"finals[{arm!r}]", metrics, [metric])
        out[arm] = np.asarray(metrics[metric], dtype=float).reshape(-1)
    return out


def plot_final_by_arm(
    ax: Axes, finals: Mapping[str, Mapping[str, Any]], metric: str, *, seed: int = 0
) -> None:
    """Final values of one metric per arm: a box plot with every seed drawn as a jittered point.

    Args:
      ax: the Axes to draw on.
      finals: arm name -> metric name -> (seeds,) values.
      metric: e.g. "test_accuracy".
      seed: seed of the jitter's `numpy.random.default_rng`, so figures are reproducible.
    """
    values = _finals(finals, metric)
    rng = np.random.default_rng(seed)
    positions = np.arange(len(values))
    # Points carry every seed, so the boxes leave outliers to them.
    ax.boxplot(
        list(values.values()),
        positions=positions,
        widths=0.5,
        showfliers=False,
        tick_labels=list(values),
        medianprops={"color": "black"},
    )
    for i, v in enumerate(values.values()):
        jitter = rng.uniform(-0.15, 0.15, size=v.size)
        ax.scatter(positions[i] + jitter, v, s=12, color=f"C{i}", alpha=0.6, zorder=3)
    ax.set_title(_metric_title(metric))
    ax.set_xlabel("arm")
    ax.set_ylabel(_ylabel(metric))


def plot_paired_differences(
    ax: Axes, finals: Mapping[str, Mapping[str, Any]], metric: str, baseline: str
) -> None:
    """Per-seed differences (other arm - baseline) of one metric, against seed, with a zero line.

    An arm whose differences are all exactly zero is labelled "(identical in all N)"; when that holds
    for every arm, the points lie on the zero line and the Axes also say "identical in all N pairs".

    Args:
      ax: the Axes to draw on.
      finals: arm name -> metric name -> (seeds,) values, the same seed order for every arm.
      metric: e.g. "test_accuracy".
      baseline: the arm subtracted; at least one other arm must be present.
    """
    from matplotlib.ticker import MaxNLocator

    values = _finals(finals, metric)
    if baseline not in values:
        raise ValueError(f"baseline: expected one of {list(values)}, got {baseline!r}")
    others = [arm for arm in values if arm != baseline]
    if not others:
        raise ValueError(f"finals: expected an arm besides the baseline {baseline!r}, got none")
    base = values[baseline]
    ax.axhline(0.0, color="0.3", linewidth=1)
    all_zero = True
    for arm in others:
        if values[arm].shape != base.shape:
            raise ValueError(
                f"finals[{arm!r}][{metric!r}]: expected {base.size} seeds (as the baseline), "
                f"got {values[arm].size}"
            )
        d = values[arm] - base
        zero = not np.any(d)
        all_zero = all_zero and zero
        label = f"{arm} − {baseline}" + (f" (identical in all {d.size})" if zero else "")
        color = f"C{list(values).index(arm)}"
        ax.scatter(np.arange(d.size), d, s=14, color=color, label=label, zorder=3)
    if all_zero:
        ax.text(
            0.5,
            0.85,
            f"identical in all {base.size} pairs",
            transform=ax.transAxes,
            ha="center",
            va="center",
        )
    ax.set_title(f"{_metric_title(metric)}: paired differences")
    ax.set_xlabel("seed (index)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"difference ({_ylabel(metric)})")
    ax.legend()


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] = (6.4, 4.8),
    margins: Mapping[str, float] | None = None,
) -> Figure:
    """A `Figure` with an (nrows, ncols) grid of Axes (`fig.axes`, row-major) on an Agg canvas.

    Laid out by matplotlib's constrained layout, or, given `margins` (`Figure.subplots_adjust`
    arguments), at those fixed positions. No pyplot: the figure is garbage-collected like any
    object and never shown.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=None if margins else "constrained")
    if margins:
        fig.subplots_adjust(**margins)
    FigureCanvasAgg(fig)
    fig.subplots(nrows, ncols, squeeze=False)
    return fig


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """The figure rendered as PNG bytes."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def history_figure(
    history: Mapping[str, Any], *, title: str | None = None, loss_label: str = "loss"
) -> Figure:
    """The tutorial's two-panel figure (loss above accuracy) for one history; see `plot_history`.

    Its layout is fixed: every `kldiv run` draws it after training, and constrained layout took
    a third of the drawing time (0.06 of 0.18 s).
    """
    fig = new_figure(2, 1, figsize=(6.4, 7.2), margins=_HISTORY_MARGINS)
    ax_loss, ax_acc = fig.axes
    plot_history(ax_loss, ax_acc, history, loss_label=loss_label)
    if title is not None:
        fig.suptitle(title)
    return fig


def _grid(n: int) -> Figure:
    """A figure with n panels, two per row; unused panels removed."""
    nrows = math.ceil(n / 2)
    fig = new_figure(nrows, 2, figsize=(11.0, 4.0 * nrows))
    for ax in fig.axes[n:]:
        ax.remove()
    return fig


def comparison_figures(
    histories: Mapping[str, Mapping[str, Any]],
    finals: Mapping[str, Mapping[str, Any]],
    baseline: str | None = None,
) -> dict[str, Figure]:
    """The figures of a comparison of arms, by name.

    Args:
      histories: arm name -> history, as in `plot_curves_by_arm`; empty for per-seed results
        without curves (`kldiv stats`).
      finals: arm name -> metric name -> (seeds,) values, as in `plot_final_by_arm`.
      baseline: the arm the differences are taken against; default the first arm.

    Returns:
      "curves": every history key per arm (`plot_curves_by_arm`); "finals": every final metric
      per arm (`plot_final_by_arm`); and, with two or more arms, "differences": every final
      metric's per-seed differences against `baseline` (`plot_paired_differences`).
    """
    if not finals:
        raise ValueError("finals: expected at least one arm, got none")
    metrics = list(next(iter(finals.values())))
    figures = {}
    if histories:
        keys = [k for k in _SERIES if k in next(iter(histories.values()))]
        figures["curves"] = _grid(len(keys))
        for ax, key in zip(figures["curves"].axes, keys, strict=True):
            plot_curves_by_arm(ax, histories, key)
    figures["finals"] = _grid(len(metrics))
    for ax, metric in zip(figures["finals"].axes, metrics, strict=True):
        plot_final_by_arm(ax, finals, metric)
    if len(finals) > 1:
        baseline = next(iter(finals)) if baseline is None else baseline
        figures["differences"] = _grid(len(metrics))
        for ax, metric in zip(figures["differences"].axes, metrics, strict=True):
            plot_paired_differences(ax, finals, metric, baseline)
    return figures
