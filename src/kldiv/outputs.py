"""What a command leaves behind: result lines and the files of a run or comparison directory.

Layout of a run directory (`kldiv run`):
  config.json        the experiment (data, training, seeds) and the command that ran it
  environment.json   Python, platform, package versions, JAX devices
  history.json/.csv  per-epoch loss, accuracy, val_loss, val_accuracy (Keras' names)
  metrics.json       final train/test loss and accuracy per seed, with their summary
  model.safetensors  the weights (a leading run axis when several seeds ran)
  plot.png           loss (top) and accuracy (bottom), train and test
A comparison directory (`kldiv compare`) holds config.json, environment.json, stats.json, one
history per loss, the figures and report.html.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.experiment import Experiment
from kldiv.history import history_csv, history_json
from kldiv.runs import RunDir, environment, save_params, write_atomic, write_json
from kldiv.train import FINAL_KEYS, SEED_CHUNK, TrainResult


def summary_lines(result: TrainResult) -> list[str]:
    """'Train: 0.822, Test: 0.822' for one run; mean ± std and 95% t intervals for several."""
    train_acc, test_acc = result.final["train_accuracy"], result.final["test_accuracy"]
    if train_acc.size == 1:
        return [f"Train: {float(train_acc[0]):.3f}, Test: {float(test_acc[0]):.3f}"]
    from kldiv.stats import t_interval

    n = train_acc.size
    mean = np.array([train_acc.mean(), test_acc.mean()], np.float64)
    std = np.array([train_acc.std(ddof=1), test_acc.std(ddof=1)], np.float64)
    low, high = t_interval(mean, std / np.sqrt(n), n)
    return [
        f"Train: {mean[0]:.3f} ± {std[0]:.3f}, Test: {mean[1]:.3f} ± {std[1]:.3f}  "
        f"(mean ± std over {n} seeds)",
        f"95% t interval of the mean: train [{low[0]:.4f}, {high[0]:.4f}], "
        f"test [{low[1]:.4f}, {high[1]:.4f}]",
    ]


def _record(experiment: Experiment, command: str, engine: str) -> dict[str, Any]:
    # The plain engine's results depend on its fixed chunk size, the fast engine's on nothing else.
    chunk = {"seed_chunk": SEED_CHUNK} if engine == "plain" else {}
    return {"command": command, **experiment.to_dict(), "engine": engine, **chunk}


def _metrics(result: TrainResult) -> dict[str, Any]:
    return {
        "seeds": [int(s) for s in result.seeds],
        **{k: [float(v) for v in result.final[k]] for k in FINAL_KEYS},
        "mean": {k: float(np.mean(result.final[k])) for k in FINAL_KEYS},
    }


def save_run(
    root: Path, experiment: Experiment, result: TrainResult, *, command: str, plot: bool = True
) -> Path:
    """Write a new run directory under `root` and return its path."""
    single = result.seeds.size == 1
    seeds = [int(s) for s in result.seeds]
    params = tuple((w[0], b[0]) for w, b in result.params) if single else result.params
    png = _history_png(result.history, experiment) if plot else None
    with RunDir(root, "run") as run:
        d = run.staging
        write_json(d / "config.json", _record(experiment, command, result.engine))
        write_json(d / "environment.json", environment())
        write_atomic(d / "history.json", history_json(result.history, seeds))
        write_atomic(d / "history.csv", history_csv(result.history, seeds))
        write_json(d / "metrics.json", _metrics(result))
        save_params(
            d / "model.safetensors",
            params,
            {"kldiv_config": json.dumps(experiment.to_dict()), "run_axis": str(not single)},
        )
        if png is not None:
            write_atomic(d / "plot.png", png)
    assert run.path is not None
    return run.path


def _history_png(history: Mapping[str, np.ndarray], experiment: Experiment) -> bytes:
    from kldiv.plot import figure_png, history_figure

    runs = history["loss"].shape[0]
    title = f"{experiment.train.loss}, {runs} seed{'s' if runs > 1 else ''}"
    return figure_png(history_figure(history, title=title))


def save_comparison(
    root: Path,
    experiment: Experiment,
    results: Mapping[str, TrainResult],
    *,
    margin: float,
    command: str,
    plot: bool = True,
) -> tuple[Path, str]:
    """Statistics, figures and report.html for a paired comparison; returns (path, terminal table)."""
    from kldiv.report import html_report, stats_table, theory_note
    from kldiv.stats import compare_arms

    names = list(results)
    finals = {name: r.final for name, r in results.items()}
    histories = {name: r.history for name, r in results.items()}
    margins = {"accuracy": margin}  # losses keep the stated default margin (nats)
    stats = compare_arms(finals, baseline=names[0], margins=margins, seed=0)
    note = theory_note(stats)
    table = stats_table(stats) + ("\n\n" + note if note else "")
    figures: dict[str, bytes] = {}
    if plot:
        from kldiv.plot import comparison_figures, figure_png

        figures = {
            name: figure_png(fig)
            for name, fig in comparison_figures(histories, finals, names[0]).items()
        }
    engine = next(iter(results.values())).engine
    record = _record(experiment, command, engine) | {"losses": names, "margin": margin}
    page = html_report(
        title=f"kldiv compare: {' vs '.join(names)}, {len(experiment.seeds)} seeds",
        command=command,
        config=record,
        stats=stats,
        figures=figures,
    )
    seeds = [int(s) for s in experiment.seeds]
    with RunDir(root, "compare") as run:
        d = run.staging
        write_json(d / "config.json", record)
        write_json(d / "environment.json", environment())
        write_json(d / "stats.json", stats.to_dict())
        for name, r in results.items():
            write_atomic(d / f"history-{name}.json", history_json(r.history, seeds))
            write_json(d / f"metrics-{name}.json", _metrics(r))
        for name, png in figures.items():
            write_atomic(d / f"{name}.png", png)
        write_atomic(d / "report.html", page)
    assert run.path is not None
    return run.path, table
