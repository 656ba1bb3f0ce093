"""kldiv.plot: what is drawn on the Axes, PNG rendering, and no matplotlib at import time."""

import math
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats as sps

from kldiv.plot import (
    comparison_figures,
    figure_png,
    history_figure,
    new_figure,
    plot_curves_by_arm,
    plot_final_by_arm,
    plot_history,
    plot_paired_differences,
)

PNG = b"\x89PNG\r\n\x1a\n"
KEYS = ("loss", "val_loss", "accuracy", "val_accuracy")
METRICS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss")


def history(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {k: rng.uniform(0.3, 0.9, shape) for k in KEYS}


def finals(
    rng: np.random.Generator, arms: tuple[str, ...], n: int
) -> dict[str, dict[str, np.ndarray]]:
    return {arm: {m: rng.uniform(0.3, 0.9, n) for m in METRICS} for arm in arms}


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_import_does_not_load_matplotlib_or_scipy():
    code = (
        "import sys, kldiv.plot; "
        "print(sorted(m for m in sys.modules if m.startswith(('matplotlib', 'scipy.stats'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_figures_never_touch_pyplot():
    code = (
        "import sys, numpy as np, kldiv.plot as p\n"
        "h = {k: np.ones((2, 3)) for k in ('loss', 'val_loss', 'accuracy', 'val_accuracy')}\n"
        "p.figure_png(p.history_figure(h))\n"
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_history_single_run():
    fig = new_figure(2, 1)
    ax_loss, ax_acc = fig.axes
    plot_history(
        ax_loss, ax_acc, history(np.random.default_rng(0), (7,)), loss_label="KL divergence"
    )
    assert ax_loss.get_title() == "Loss" and ax_acc.get_title() == "Accuracy"
    for ax in (ax_loss, ax_acc):
        assert len(ax.get_lines()) == 2
        assert len(ax.collections) == 0
        assert ax.get_xlabel() == "epoch"
        assert legend_texts(ax) == ["train", "test"]
        np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.arange(1, 8))
    assert ax_loss.get_ylabel() == "KL divergence (nats)"
    assert ax_acc.get_ylabel() == "accuracy"


def test_plot_history_one_seed_row_is_a_plain_line():
    fig = new_figure(2, 1)
    plot_history(*fig.axes, history(np.random.default_rng(1), (1, 5)))
    assert all(len(ax.collections) == 0 and len(ax.get_lines()) == 2 for ax in fig.axes)


def test_plot_history_many_seeds_draws_mean_and_t_band():
    h = history(np.random.default_rng(2), (6, 5))
    fig = new_figure(2, 1)
    ax_loss, ax_acc = fig.axes
    plot_history(ax_loss, ax_acc, h)
    for ax in (ax_loss, ax_acc):
        assert len(ax.get_lines()) == 2 and len(ax.collections) == 2
        assert all("mean of 6 seeds, 95% t CI" in t for t in legend_texts(ax))
    x = h["loss"]
    mean = x.mean(axis=0)
    half = sps.t.ppf(0.975, 5) * x.std(axis=0, ddof=1) / math.sqrt(6)
    np.testing.assert_allclose(ax_loss.get_lines()[0].get_ydata(), mean)
    vertices = ax_loss.collections[0].get_paths()[0].vertices
    for epoch in range(5):
        ys = vertices[np.isclose(vertices[:, 0], epoch + 1), 1]
        assert np.isclose(ys, mean[epoch] - half[epoch]).any()
        assert np.isclose(ys, mean[epoch] + half[epoch]).any()


def test_plot_history_validates():
    fig = new_figure(2, 1)
    with pytest.raises(ValueError, match=r"history: expected keys \[.*\], got \['loss'\]"):
        plot_history(*fig.axes, {"loss": np.ones(3)})
    bad = {k: np.ones((2, 2, 2)) for k in KEYS}
    with pytest.raises(ValueError, match=r"history\['loss'\]: expected shape"):
        plot_history(*fig.axes, bad)


def test_plot_curves_by_arm():
    rng = np.random.default_rng(3)
    fig = new_figure()
    (ax,) = fig.axes
    plot_curves_by_arm(ax, {"kl": history(rng, (4, 6)), "ce": history(rng, (4, 6))}, "val_accuracy")
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 2
    assert ax.get_title() == "Test accuracy"
    assert [t.split(" ")[0] for t in legend_texts(ax)] == ["kl", "ce"]
    with pytest.raises(ValueError, match=r"key: expected one of \[.*\], got 'acc'"):
        plot_curves_by_arm(ax, {"kl": history(rng, (4, 6))}, "acc")


def test_curves_identical_to_an_earlier_arm_are_labelled_and_dashed():
    rng = np.random.default_rng(4)
    same = history(rng, (4, 6))
    fig = new_figure()
    (ax,) = fig.axes
    plot_curves_by_arm(ax, {"kl": same, "ce": dict(same), "js": history(rng, (4, 6))}, "loss")
    labels = [t.split(" (mean")[0] for t in legend_texts(ax)]
    assert labels == ["kl", "ce (identical to kl)", "js"]
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--", "-"]


def test_plot_final_by_arm_is_reproducible():
    data = finals(np.random.default_rng(4), ("kl", "ce", "js"), 9)
    offsets = []
    for _ in range(2):
        fig = new_figure()
        (ax,) = fig.axes
        plot_final_by_arm(ax, data, "test_accuracy")
        points = ax.collections
        assert len(points) == 3 and all(len(p.get_offsets()) == 9 for p in points)
        offsets.append(np.concatenate([p.get_offsets() for p in points]))
        assert [t.get_text() for t in ax.get_xticklabels()] == ["kl", "ce", "js"]
        assert ax.get_title() == "Test accuracy" and ax.get_ylabel() == "accuracy"
        assert ax.get_xlabel() == "arm"
    np.testing.assert_array_equal(offsets[0], offsets[1])


def test_plot_paired_differences():
    data = finals(np.random.default_rng(5), ("ce", "kl", "js"), 8)
    fig = new_figure()
    (ax,) = fig.axes
    plot_paired_differences(ax, data, "train_loss", "ce")
    assert len(ax.collections) == 2
    np.testing.assert_allclose(
        ax.collections[0].get_offsets()[:, 1], data["kl"]["train_loss"] - data["ce"]["train_loss"]
    )
    zero_lines = [ln for ln in ax.get_lines() if np.all(np.asarray(ln.get_ydata()) == 0)]
    assert len(zero_lines) == 1
    assert legend_texts(ax) == ["kl − ce", "js − ce"]
    assert not ax.texts


def test_plot_paired_differences_all_zero_renders():
    kl = finals(np.random.default_rng(6), ("kl",), 10)["kl"]
    data = {"kl": kl, "ce": {m: v.copy() for m, v in kl.items()}}
    fig = new_figure()
    (ax,) = fig.axes
    plot_paired_differences(ax, data, "test_accuracy", "kl")
    assert [t.get_text() for t in ax.texts] == ["identical in all 10 pairs"]
    assert legend_texts(ax) == ["ce − kl (identical in all 10)"]
    low, high = ax.get_ylim()
    assert low < 0 < high
    assert figure_png(fig).startswith(PNG)


def test_plot_paired_differences_validates():
    data = finals(np.random.default_rng(7), ("kl", "ce"), 3)
    ax = new_figure().axes[0]
    with pytest.raises(ValueError, match="baseline: expected one of"):
        plot_paired_differences(ax, data, "test_loss", "mse")
    with pytest.raises(ValueError, match="expected an arm besides the baseline 'kl', got none"):
        plot_paired_differences(ax, {"kl": data["kl"]}, "test_loss", "kl")


def test_new_figure_and_png():
    fig = new_figure(2, 3, figsize=(6.0, 4.0))
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    assert len(fig.axes) == 6
    png = figure_png(fig, dpi=50)
    assert png.startswith(PNG)
    # IHDR width and height: figsize x dpi.
    assert int.from_bytes(png[16:20], "big") == 300 and int.from_bytes(png[20:24], "big") == 200


def test_history_figure():
    fig = history_figure(history(np.random.default_rng(8), (3, 4)), title="kl, 3 seeds")
    assert fig.get_suptitle() == "kl, 3 seeds"
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    assert figure_png(fig).startswith(PNG)


def test_comparison_figures():
    rng = np.random.default_rng(9)
    arms = ("kl", "ce")
    figs = comparison_figures(
        {arm: history(rng, (5, 6)) for arm in arms}, finals(rng, arms, 5), "ce"
    )
    assert list(figs) == ["curves", "finals", "differences"]
    assert [ax.get_title() for ax in figs["curves"].axes] == [
        "Train loss",
        "Test loss",
        "Train accuracy",
        "Test accuracy",
    ]
    assert all(len(ax.texts) == 0 for ax in figs["differences"].axes)
    assert all(
        ax.get_legend().get_texts()[0].get_text() == "kl − ce" for ax in figs["differences"].axes
    )
    assert all(figure_png(f).startswith(PNG) for f in figs.values())
    single = comparison_figures({"kl": history(rng, (5, 6))}, finals(rng, ("kl",), 5))
    assert list(single) == ["curves", "finals"]
