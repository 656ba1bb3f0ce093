"""`kldiv run`: train one seed (the tutorial) or many, save the run directory, print the accuracies."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from kldiv.cli import guard, options


def early(argv: list[str]) -> None:
    """Before parsing `argv` (the arguments after 'run'): start the figure's helper process, so
    it imports matplotlib while this process imports JAX (`kldiv.figure_process.start_early`)."""
    if not {"--no-plot", "-h", "--help"} & set(argv):
        from kldiv import figure_process

        figure_process.start_early(band=any(a.split("=")[0] == "--seeds" for a in argv))


def add_parser(sub: Any) -> None:
    from kldiv.config import TrainConfig
    from kldiv.losses import loss_names

    default_loss = options.default(TrainConfig, "loss")
    run = sub.add_parser(
        "run",
        help="train an MLP (default: the tutorial's, on blobs) and print Train/Test accuracy",
        description="Train an MLP (default: the tutorial's 2-50-3 on make_blobs) with a "
        "KL-divergence loss, print 'Train: x, Test: y' and write a run directory (config, "
        "environment, history, metrics, model weights and what predicting needs, plot).",
    )
    run.add_argument(
        "--loss",
        default=default_loss,
        help=f"loss name ({default_loss}); one of: {', '.join(loss_names())}",
    )
    options.add_seed_options(run)
    options.add_data_options(run)
    options.add_training_options(run)
    options.add_output_options(run)


def summary_lines(final: dict[str, Any], healthy: Any) -> list[str]:
    """'Train: 0.822, Test: 0.822' for one run; mean ± std and 95% t intervals of the mean over
    the healthy runs for several (clipped to [0, 1]; "all N equal" where there is no spread).
    final: `train_accuracy`, `test_accuracy` -> (runs,); healthy (runs,) bool."""
    import numpy as np

    train_acc = np.asarray(final["train_accuracy"], np.float64)[healthy]
    test_acc = np.asarray(final["test_accuracy"], np.float64)[healthy]
    if train_acc.size == 1:
        return [f"Train: {train_acc[0]:.3f}, Test: {test_acc[0]:.3f}"]
    from kldiv.intervals import t_interval

    n = train_acc.size
    intervals = []
    for name, acc in (("train", train_acc), ("test", test_acc)):
        std = acc.std(ddof=1)
        if std == 0:
            intervals.append(f"{name} all {n} equal")
            continue
        low, high = np.clip(t_interval(acc.mean(), std / np.sqrt(n), n), 0.0, 1.0)
        intervals.append(f"{name} [{low:.4f}, {high:.4f}]")
    return [
        f"Train: {train_acc.mean():.3f} ± {train_acc.std(ddof=1):.3f}, "
        f"Test: {test_acc.mean():.3f} ± {test_acc.std(ddof=1):.3f}  (mean ± std over {n} seeds)",
        "95% t interval of the mean: " + ", ".join(intervals),
    ]


def divergence_line(result: Any) -> str:
    """'2 of 5 runs diverged (non-finite values): seeds 3 (epoch 7), 4 (epoch 1)'."""
    bad = [(int(s), int(e)) for s, e in zip(result.seeds, result.diverged, strict=True) if e]
    shown = ", ".join(f"{s} (epoch {e})" for s, e in bad[:10]) + (" ..." if len(bad) > 10 else "")
    return f"{len(bad)} of {result.seeds.size} runs diverged (non-finite values): seeds {shown}"


def history_figure(result: Any, what: str) -> tuple[dict[str, Any], str]:
    """The history of the healthy runs and the title (`what` and the seeds) of the tutorial's
    loss and accuracy figure."""
    runs = int(result.healthy.sum())
    history = {k: v[result.healthy] for k, v in result.history.items()}
    return history, f"{what}, {runs} seed{'s' if runs > 1 else ''}"


def history_png(result: Any, what: str) -> bytes:
    """`history_figure` drawn in this process, as PNG bytes."""
    from kldiv.figure_process import draw

    return draw(*history_figure(result, what))


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.records import save_run

    seeds = options.seeds_of(args)
    exp = options.experiment(args, args.loss, seeds)
    data = ex.load(exp)
    guard.prepare_out(args.out)
    from kldiv import figure_process

    # the figure's imports run in a helper process, on another core, while this one trains; it
    # draws while the other files are written, and is stopped if anything here fails
    figure = None if args.no_plot else figure_process.take(band=len(seeds) > 1)
    with contextlib.nullcontext() if figure is None else figure:
        with console.progress(f"training {len(seeds)} run(s)") as progress:
            result = ex.run(
                exp,
                data=data,
                epoch_chunk=None if len(seeds) > 1 else 10,
                on_progress=guard.checking(progress),
            )
        if not result.healthy.any():
            if len(seeds) == 1:
                epoch = int(result.diverged[0])
                raise guard.RunFailed(
                    f"training diverged: non-finite loss or weights at epoch {epoch} for seed "
                    f"{seeds[0]}; try a smaller learning rate"
                )
            raise guard.RunFailed(f"training diverged in every run; {divergence_line(result)}")
        if figure is not None:
            figure.send(*history_figure(result, exp.train.loss))
        path = guard.save(
            args.out,
            save_run,
            exp,
            result,
            data=data,
            command=guard.command_line(),
            figure_png=None if figure is None else figure.png,
        )
    if not result.healthy.all():
        guard.stderr(f"kldiv run: warning: {divergence_line(result)}")
    stuck = stuck_flags(result, data)
    if stuck.any():
        guard.stderr(f"kldiv run: warning: {stuck_line(result, stuck, data)}")
    for line in summary_lines(result.final, result.healthy):
        console.result(line)
    console.info(f"run saved to {path}")
    # every run failed (stuck or diverged): saved for inspection, but not a trained model
    return 1 if (stuck | ~result.healthy).all() else 0


def stuck_flags(result: Any, data: Any) -> Any:
    """(runs,) bool: the stuck runs of `result` on `data` (`kldiv.failures`' rule; a diverged
    run is not stuck)."""
    from kldiv.arms import accuracy_of_healthy
    from kldiv.failures import chance_accuracy, stuck_runs

    accuracy = accuracy_of_healthy(result)
    return stuck_runs({"run": accuracy}, chance_accuracy(data.labels_train))["run"]


def stuck_line(result: Any, stuck: Any, data: Any) -> str:
    """'1 of 1 runs stuck (...rule...): seeds 0 (train accuracy 0.334)'."""
    from kldiv.failures import chance_accuracy

    chance = chance_accuracy(data.labels_train)
    picked = [
        f"{int(s)} (train accuracy {a:.3f})"
        for s, a, bad in zip(result.seeds, result.final["train_accuracy"], stuck, strict=True)
        if bad
    ]
    rule = (
        f"no better than always predicting the most common class ({chance:.3f})"
        if result.seeds.size == 1
        else f"gained less than half of the median run's gain over the most common class's "
        f"share ({chance:.3f})"
    )
    shown = ", ".join(picked[:10]) + (" ..." if len(picked) > 10 else "")
    return (
        f"{len(picked)} of {result.seeds.size} runs stuck, training accuracy {rule}: seeds {shown}"
    )
