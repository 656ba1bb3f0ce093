"""`kldiv sweep`: a grid of configurations x seeds, in this process or on Ray, resumable, summarized.

The sweep directory is created (with its plan and an empty store) before anything trains, and its
path is printed first; every finished task is committed to the store at once, so an interrupted
sweep (Ctrl-C, a signal, kill -9, a lost machine) keeps every task it finished and
`kldiv sweep --resume DIR` trains only what is missing; interrupted by a signal, it says so and
prints that command. Diverged runs are results: they are stored with their epoch and named in the
summary, never an error.
"""

from __future__ import annotations

import argparse
import shlex
import tomllib
from pathlib import Path
from typing import Any

from kldiv.checks import ConfigError
from kldiv.cli import guard, options
from kldiv.cli.compare import add_margin_option, margins, save_report

_PARSER: list[argparse.ArgumentParser] = []  # the sweep parser, for its defaults
# Flags that describe the plan: refused with --resume, whose plan is in the directory.
_PLAN_FLAGS = ("grid", "config", "seeds", "chunk", "loss", "data", "test_data", "test_frac")
_PLAN_FLAGS += ("label_col", "prob_cols", "standardize", "data_seed", "epochs", "batch_size")
_PLAN_FLAGS += ("hidden", "label_smoothing", "optimizer")


def add_parser(sub: Any) -> None:
    from kldiv.config import TrainConfig
    from kldiv.sweep.backends import BACKENDS, MAX_RETRIES
    from kldiv.sweep.plan import DEFAULT_CHUNK, GRID_NAMES

    p = sub.add_parser(
        "sweep",
        help="train a grid of configurations x seeds (here or on Ray), resumable, and compare them",
        description="Train every configuration of a grid on the same seeds, in this process or "
        "as Ray tasks, storing every run in DIR/results.sqlite as it finishes; --resume DIR "
        "trains only what is missing. Prints and saves compare's statistics per configuration "
        "with the best one (mean test accuracy) as the baseline.",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=None,
        metavar="NAME=V1,V2,...",
        help=f"one grid dimension (repeat the flag for more); names: {', '.join(GRID_NAMES)}; "
        "hidden layers as 64/32",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="SWEEP.toml",
        help="a TOML file with a [grid] table (name = [values]) and optionally seeds and chunk",
    )
    p.add_argument(
        "--seeds",
        type=options.parse_seeds,
        default=None,
        help="N (seeds 0..N-1), a range A-B or a list a,b,c (default 10); every configuration "
        "trains every seed",
    )
    p.add_argument(
        "--chunk",
        type=options.parse_int,
        default=None,
        help=f"seeds per task, times the configurations sharing its program ({DEFAULT_CHUNK})",
    )
    p.add_argument("--backend", choices=BACKENDS, default="local", help="where tasks run (local)")
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --backend ray (default $RAY_ADDRESS, else a local Ray "
        "instance started for the sweep)",
    )
    p.add_argument(
        "--max-retries",
        type=options.parse_int,
        default=MAX_RETRIES,
        help=f"Ray: times a task is retried when its worker dies ({MAX_RETRIES})",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue the sweep in DIR: train only the (configuration, seed) pairs it misses",
    )
    default_loss = options.default(TrainConfig, "loss")
    p.add_argument(
        "--loss", default=default_loss, help=f"loss where the grid has none ({default_loss})"
    )
    add_margin_option(p)
    options.add_data_options(p)
    options.add_training_options(p)
    options.add_output_options(p)
    _PARSER[:] = [p]


def _grid_entries(args: argparse.Namespace) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """Grid entries from --config then --grid, and the TOML file's other settings."""
    from kldiv.sweep.plan import parse_grid_flag

    entries: list[tuple[str, Any]] = []
    settings: dict[str, Any] = {}
    if args.config is not None:
        try:
            doc = tomllib.loads(Path(args.config).read_text())
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                "config", f"expected a readable TOML file, got {str(args.config)!r} ({err})"
            ) from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("config", f"{str(args.config)!r}: expected TOML ({err})") from None
        unknown = sorted(set(doc) - {"grid", "seeds", "chunk"})
        if unknown or not isinstance(doc.get("grid"), dict):
            raise ConfigError(
                "config",
                f"expected a [grid] table and optionally seeds and chunk, got "
                f"{unknown[0] if unknown else 'no [grid] table'!r}",
            )
        for name, values in doc["grid"].items():
            entries.append((name, values if isinstance(values, list) else [values]))
        settings = {k: doc[k] for k in ("seeds", "chunk") if k in doc}
    for text in args.grid or []:
        entries.append(parse_grid_flag(text))
    return entries, settings


def _toml_seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    try:
        return options.parse_seeds(str(value))
    except argparse.ArgumentTypeError as err:
        raise ConfigError("config", f"seeds: {err}") from None


def _plan(args: argparse.Namespace) -> Any:
    """The plan the flags (and --config) describe."""
    from kldiv.optimizers import OPTIMIZERS
    from kldiv.sweep.plan import DEFAULT_CHUNK, SweepPlan, parse_grid

    entries, settings = _grid_entries(args)
    grid = parse_grid(entries)
    seeds = args.seeds or (
        _toml_seeds(settings["seeds"]) if "seeds" in settings else tuple(range(10))
    )
    chunk = args.chunk if args.chunk is not None else settings.get("chunk", DEFAULT_CHUNK)
    from kldiv.sweep.plan import HYPERPARAMETERS

    # optimizer numbers given as flags: defaults for every optimizer of the sweep that has them
    given = {h: getattr(args, h) for h in HYPERPARAMETERS if getattr(args, h, None) is not None}
    unset = argparse.Namespace(**{**vars(args), **dict.fromkeys(given)})
    base = options.experiment(unset, args.loss, seeds)
    own = OPTIMIZERS[args.optimizer]().hyperparameters
    base_optimizer = OPTIMIZERS[args.optimizer]().replace(
        **{k: v for k, v in given.items() if k in own}
    )
    return SweepPlan(
        grid=grid,
        base=base.train.replace(optimizer=base_optimizer),
        defaults=given,
        data=_absolute_paths(base.data),
        seeds=seeds,
        chunk=chunk,
    )


def _absolute_paths(data: Any) -> Any:
    """`data` (a `DataConfig`) with its files as absolute paths: `--resume` reads them again,
    from whatever directory it is run in."""
    import dataclasses
    import os

    from kldiv.data.source import BUILTIN_SOURCES

    source = data.source if data.source in BUILTIN_SOURCES else os.path.abspath(data.source)
    test = None if data.test_data is None else os.path.abspath(data.test_data)
    return dataclasses.replace(data, source=source, test_data=test)


def resume_command(directory: Path) -> str:
    """The command that continues the sweep in `directory`, quoted for a POSIX shell."""
    return shlex.join(["kldiv", "sweep", "--resume", str(directory)])


def _refuse_plan_flags(args: argparse.Namespace) -> None:
    parser = _PARSER[0]
    for name in _PLAN_FLAGS:
        if getattr(args, name) != parser.get_default(name):
            raise ConfigError(
                "resume", f"expected no {options.flag_of(name)} (the plan is in the directory)"
            )


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.engine.runner import check
    from kldiv.experiment import Experiment
    from kldiv.sweep.store import create_sweep, read_data, read_plan

    if args.max_retries < 0:  # Ray reads -1 as "retry forever"
        raise ConfigError("max_retries", f"expected an integer >= 0, got {args.max_retries}")
    if args.address is not None and args.backend != "ray":
        raise ConfigError(
            "address", f"expected --backend ray with it, got --backend {args.backend}"
        )
    if args.resume is not None:
        _refuse_plan_flags(args)
        plan, record = read_plan(args.resume)
        data = read_data(plan, record)
        directory = Path(args.resume)
    else:
        if not args.grid and args.config is None:
            raise ConfigError("grid", "expected --grid NAME=V1,V2,... or --config SWEEP.toml")
        plan = _plan(args)
        data = ex.load(Experiment(data=plan.data))
        for c in plan.configurations:  # every configuration is checked before any trains
            check(c.train, data.dataset, plan.seeds[: plan.chunk])
        guard.prepare_out(args.out)
        directory = guard.save(
            args.out,
            create_sweep,
            plan,
            guard.command_line(),
            {"data_files": data.fingerprint},
        )
    console.info(f"sweep directory: {directory}")
    # from here on, an interrupted sweep keeps every finished task and says how to go on
    guard.resumable[:] = [(directory, resume_command(directory))]
    return _run_and_summarize(args, console, plan, data, directory)


def _run_and_summarize(
    args: argparse.Namespace, console: Any, plan: Any, data: Any, directory: Path
) -> int:
    from kldiv.sweep import backends
    from kldiv.sweep.plan import tasks
    from kldiv.sweep.store import Store
    from kldiv.sweep.task import dataset_arrays, payload

    with Store(directory) as store:
        todo = [payload(t, plan) for t in tasks(plan, store.done())]
        total = len(plan.configurations) * len(plan.seeds)
        if todo:
            n_runs = sum(len(p["seeds"]) for t in todo for p in t["pieces"])
            console.info(
                f"{len(plan.configurations)} configurations x {len(plan.seeds)} seeds: "
                f"{total - n_runs} runs stored, {n_runs} to train in {len(todo)} tasks "
                f"({args.backend})"
            )
            arrays = dataset_arrays(data.dataset)

            def stored(result: dict[str, Any]) -> None:
                store.add(result, args.backend)

            with console.progress(f"sweeping {n_runs} runs") as progress:
                try:
                    if args.backend == "local":
                        backends.run_local(todo, arrays, stored, guard.checking(progress))
                    else:
                        info = backends.run_ray(
                            todo,
                            arrays,
                            stored,
                            progress,
                            address=args.address,
                            max_retries=args.max_retries,
                            check=guard.check_interrupted,
                        )
                except backends.TaskFailed as err:
                    raise guard.RunFailed(
                        f"{err}; {store.count()} of {total} runs stored; resume with: "
                        f"{resume_command(directory)}"
                    ) from None
                if args.backend == "ray":
                    where = info["address"] or "a local Ray instance"
                    console.info(f"ray: {where}, ray.init {info['init_seconds']:.1f} s")
        guard.check_interrupted()
        assert store.count() == total, (store.count(), total)
        runs = store.runs()
    return _summary(args, console, plan, data, directory, runs)


def _summary(
    args: argparse.Namespace, console: Any, plan: Any, data: Any, directory: Path, runs: Any
) -> int:
    from kldiv.sweep.summary import configuration_table, failure_lines, summarize_with

    try:
        summary = summarize_with(runs, data, margins=margins(args))
    except ValueError as err:
        raise guard.RunFailed(str(err)) from None
    table = configuration_table(summary, runs)
    notes = []
    if summary.dropped:
        notes.append(
            f"note: diverged on every seed, left out of the statistics: {', '.join(summary.dropped)}"
        )
    excluded = int((~summary.paired).sum())
    if excluded:
        notes.append(
            f"note: {excluded} of {summary.paired.size} seeds excluded from the paired statistics "
            "(a compared configuration diverged on them)"
        )
    existing = sorted(directory.glob("*-summary"))
    if existing:
        path = existing[0]
    else:
        figures: dict[str, bytes] = {}
        if not args.no_plot:
            from kldiv.plot import comparison_figures, figure_png

            # figures label configurations #1, #2, ... (grid order): full names do not fit an axis
            label = {n: f"#{i + 1}" for i, n in enumerate(runs)}
            histories = {
                label[n]: {k: v[summary.paired] for k, v in runs[n].history.items()}
                for n in summary.compared
            }
            finals = {label[n]: f for n, f in summary.finals.items()}
            figures = {
                name: figure_png(fig)
                for name, fig in comparison_figures(
                    histories, finals, label[summary.winner]
                ).items()
            }
        record = {
            "command": guard.command_line(),
            "sweep": str(directory),
            "configurations": {f"#{i + 1}": n for i, n in enumerate(runs)},
            "compared": list(summary.compared),
            "winner": summary.winner,
            "winner_line": summary.winner_line(),
            "excluded_seeds": [int(s) for s in summary.seeds[~summary.paired]],
            "margins": dict(summary.stats.margins),
        }
        title = f"kldiv sweep: {len(runs)} configurations, {len(plan.seeds)} seeds"
        path = save_report(directory, title, record, {}, summary.stats, figures, kind="summary")
    failed = failure_lines(summary, runs)
    for line in [*notes, table, *(["", *failed] if failed else []), "", summary.winner_line()]:
        console.result(line)
    console.info(f"summary saved to {path} (open {path / 'report.html'})")
    return 0
