"""The `kldiv` command: argv in, one library call, files and lines out, an exit code.

Every error a user can cause (a bad flag value, an unknown loss, a diverging run) ends as one line on
stderr and a non-zero exit code: 2 for bad input, 1 for a failed run, 130 for Ctrl-C. Defaults and
ranges come from the config dataclasses; the CLI restates none of them. No flag is ever abbreviated.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kldiv.checks import ConfigError

EPILOG = "Run 'kldiv COMMAND --help' for a command's options."

# Config fields whose flag is not `--` + the field name with dashes.
_FLAGS = {"random_state": "--data-seed", "arms": "--losses"}


def flag_of(field: str) -> str:
    """The command-line flag that sets config field `field` (an environment variable such as
    XLA_FLAGS, named by `kldiv.runtime.configure`, is named as it is)."""
    if field.isupper():
        return field
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


class UsageError(Exception):
    """Bad input from the command line; the message is shown as is."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2, and no abbreviated flags (a
    prefix such as `--seed` for `--seeds` would silently run another experiment)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required: COMMAND"):
            raise UsageError(f"{self.prog}: error: no command given; run 'kldiv --help' for help")
        # "argument --epochs: expected ..." -> "--epochs: expected ...", the format of every error
        raise UsageError(f"{self.prog}: error: {message.removeprefix('argument ')}")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._join_number_values(args), namespace)

    def _join_number_values(self, args: list[str]) -> list[str]:
        """`--learning-rate -inf` -> `--learning-rate=-inf`: a value that starts with '-' but is a
        number (-inf, -nan, -1e-3) goes to the flag before it rather than reading as an unknown
        option (argparse takes only plain negative numbers such as -1 or -0.5 as values)."""
        out: list[str] = []
        i = 0
        while i < len(args):
            token = args[i]
            action = self._option_string_actions.get(token)
            if token == "--":
                return out + args[i:]
            if (
                action is not None
                and action.nargs is None
                and i + 1 < len(args)
                and args[i + 1].startswith("-")
                and _is_number(args[i + 1])
            ):
                out.append(f"{token}={args[i + 1]}")
                i += 2
                continue
            out.append(token)
            i += 1
        return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def parse_hidden(text: str) -> tuple[int, ...]:
    """'50' -> (50,); '64,32' -> (64, 32)."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths >= 1 such as '50' or '64,32', got {text!r}"
        )
    return widths


MAX_SEEDS = 10**6


def parse_seeds(text: str) -> tuple[int, ...]:
    """'N' -> seeds 0..N-1; 'A-B' -> A..B inclusive; 'a,b,c' -> those seeds; at most MAX_SEEDS
    of them (counted before any range is built)."""
    expected = (
        f"expected a count N, a range A-B or a list a,b,c of 1 to {MAX_SEEDS:,} distinct seeds "
        "in [0, 2**32)"
    )
    try:
        if "," in text:
            parts = text.split(",")
            if len(parts) > MAX_SEEDS:
                raise ValueError
            seeds = tuple(int(part) for part in parts)
        elif "-" in text.strip("-"):
            first, last = (int(part) for part in text.split("-"))
            if not 0 <= first <= last < 2**32 or last - first + 1 > MAX_SEEDS:
                raise ValueError
            seeds = tuple(range(first, last + 1))
        else:
            count = int(text)
            if not 1 <= count <= MAX_SEEDS:
                raise ValueError
            seeds = tuple(range(count))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not seeds or min(seeds) < 0 or max(seeds) >= 2**32 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    return seeds


def _seed(text: str) -> int:
    """One seed, an integer in [0, 2**32)."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 4294967295], got {text!r}")
    return seed


def parse_losses(text: str) -> str:
    """'kl,ce' as given, once every comma-separated part is a name (no empty parts)."""
    if not all(part.strip() for part in text.split(",")):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated loss names such as 'kl,ce', got {text!r}"
        )
    return text


def _default(cls: type, name: str) -> Any:
    """A dataclass field's default, without constructing the class."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _optimizer_help() -> dict[str, str]:
    """hyperparameter -> 'default 0.01 (sgd), 0.001 (adam, ...)'."""
    from kldiv.optimizers import OPTIMIZERS

    defaults: dict[str, dict[float, list[str]]] = {}
    for name, cls in OPTIMIZERS.items():
        for f in dataclasses.fields(cls):
            defaults.setdefault(f.name, {}).setdefault(f.default, []).append(name)
    return {
        h: "default " + ", ".join(f"{v:g} ({', '.join(names)})" for v, names in by_value.items())
        for h, by_value in defaults.items()
    }


def _add_training_options(p: argparse.ArgumentParser) -> None:
    from kldiv.config import BlobsConfig, TrainConfig
    from kldiv.optimizers import OPTIMIZERS

    def default(name: str) -> Any:
        return _default(TrainConfig, name)

    g = p.add_argument_group("training (defaults: the tutorial's)")
    g.add_argument(
        "--epochs", type=_int, default=default("epochs"), help=f"epochs ({default('epochs')})"
    )
    g.add_argument(
        "--batch-size",
        type=_int,
        default=default("batch_size"),
        help=f"minibatch size ({default('batch_size')})",
    )
    g.add_argument(
        "--hidden",
        type=parse_hidden,
        default=default("hidden"),
        help="hidden layer widths, comma-separated (" + ",".join(map(str, default("hidden"))) + ")",
    )
    g.add_argument(
        "--data-seed",
        type=_seed,
        default=_default(BlobsConfig, "random_state"),
        help=f"make_blobs random_state ({_default(BlobsConfig, 'random_state')}, the tutorial's)",
    )
    o = p.add_argument_group("optimizer (Optax; unset numbers take the optimizer's default)")
    o.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default=default("optimizer").name,
        help=f"{', '.join(OPTIMIZERS)} ({default('optimizer').name}: Keras' SGD momentum form "
        "v = m*v - lr*g)",
    )
    for name, text in _optimizer_help().items():
        o.add_argument(flag_of(name), dest=name, type=_float, default=None, help=text)
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="directory that receives a new run directory (default ./runs)",
    )
    out.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    out.add_argument("--quiet", action="store_true", help="print only the results")


def build_parser() -> Parser:
    from kldiv import __version__
    from kldiv.config import TrainConfig
    from kldiv.losses import loss_names

    parser = Parser(
        prog="kldiv",
        description="Exact KL-divergence losses and the classic KL-loss tutorial experiment.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"kldiv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    losses = ", ".join(loss_names())
    default_loss = _default(TrainConfig, "loss")

    run = sub.add_parser(
        "run",
        help="train the tutorial MLP on blobs and print Train/Test accuracy",
        description="Train the tutorial's MLP (2-50-3) on make_blobs with a KL-divergence loss, "
        "print 'Train: x, Test: y' and write a run directory (config, environment, history, "
        "metrics, model weights, plot).",
    )
    run.add_argument(
        "--loss", default=default_loss, help=f"loss name ({default_loss}); one of: {losses}"
    )
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed", type=_seed, default=0, help="training seed: init and shuffles (0), in [0, 2**32)"
    )
    seeds.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help=f"many runs at once: N (seeds 0..N-1), a range A-B, or a list a,b,c; at most "
        f"{MAX_SEEDS:,} seeds",
    )
    _add_training_options(run)

    comp = sub.add_parser(
        "compare",
        help="run several losses on the same seeds and compare them statistically",
        description="Train every loss on the same seeds (paired: same initial weights and data "
        "order per seed) and report means, intervals, paired tests, P(A>B) and an equivalence "
        "test, as a table, stats.json, figures and a self-contained report.html.",
    )
    comp.add_argument(
        "--losses",
        type=parse_losses,
        default="kl,ce",
        help=f"comma-separated loss names, the first is the baseline (default kl,ce); from: {losses}",
    )
    comp.add_argument(
        "--seeds",
        type=parse_seeds,
        default=tuple(range(30)),
        help=f"N (seeds 0..N-1), a range A-B, or a list a,b,c (default 30); at most "
        f"{MAX_SEEDS:,} seeds",
    )
    comp.add_argument(
        "--margin",
        type=_float,
        default=0.01,
        help="equivalence margin for accuracies, TOST (default 0.01)",
    )
    _add_training_options(comp)
    return parser


def _optimizer(args: argparse.Namespace) -> Any:
    from kldiv.optimizers import OPTIMIZERS

    given = {
        name: getattr(args, name)
        for name in _optimizer_help()
        if getattr(args, name, None) is not None
    }
    return OPTIMIZERS[args.optimizer]().replace(**given)


def _experiment(args: argparse.Namespace, loss: str, seeds: tuple[int, ...]) -> Any:
    from kldiv.config import BlobsConfig, TrainConfig
    from kldiv.experiment import Experiment

    return Experiment(
        data=BlobsConfig(random_state=args.data_seed),
        train=TrainConfig(
            loss=loss,
            hidden=args.hidden,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=_optimizer(args),
        ),
        seeds=seeds,
    )


def summary_lines(final: dict[str, Any], healthy: Any) -> list[str]:
    """'Train: 0.822, Test: 0.822' for one run; mean ± std and 95% t intervals over the healthy
    runs for several. final: `train_accuracy`, `test_accuracy` -> (runs,); healthy (runs,) bool."""
    import numpy as np

    train_acc = np.asarray(final["train_accuracy"], np.float64)[healthy]
    test_acc = np.asarray(final["test_accuracy"], np.float64)[healthy]
    if train_acc.size == 1:
        return [f"Train: {train_acc[0]:.3f}, Test: {test_acc[0]:.3f}"]
    from kldiv.stats import t_interval

    n = train_acc.size
    mean = np.array([train_acc.mean(), test_acc.mean()])
    std = np.array([train_acc.std(ddof=1), test_acc.std(ddof=1)])
    low, high = t_interval(mean, std / np.sqrt(n), n)
    return [
        f"Train: {mean[0]:.3f} ± {std[0]:.3f}, Test: {mean[1]:.3f} ± {std[1]:.3f}  "
        f"(mean ± std over {n} seeds)",
        f"95% t interval of the mean: train [{low[0]:.4f}, {high[0]:.4f}], "
        f"test [{low[1]:.4f}, {high[1]:.4f}]",
    ]


class RunFailed(Exception):
    """The run could not produce results (every seed diverged); the message says why."""


def _divergence_line(result: Any) -> str:
    bad = [(int(s), int(e)) for s, e in zip(result.seeds, result.diverged, strict=True) if e]
    shown = ", ".join(f"{s} (epoch {e})" for s, e in bad[:10]) + (" ..." if len(bad) > 10 else "")
    return f"{len(bad)} of {result.seeds.size} runs diverged (non-finite values): seeds {shown}"


def command_run(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.records import save_run

    seeds = args.seeds if args.seeds is not None else (args.seed,)
    exp = _experiment(args, args.loss, seeds)
    with console.progress(f"training {len(seeds)} run(s)") as progress:
        result = ex.run(exp, epoch_chunk=None if len(seeds) > 1 else 10, on_progress=progress)
    if not result.healthy.any():
        if len(seeds) == 1:
            epoch = int(result.diverged[0])
            raise RunFailed(
                f"training diverged: non-finite loss or weights at epoch {epoch} for seed "
                f"{seeds[0]}; try a smaller learning rate"
            )
        raise RunFailed(f"training diverged in every run; {_divergence_line(result)}")
    png = _history_png(result, exp) if not args.no_plot else None
    path = save_run(args.out, exp, result, command=_command_line(), figure_png=png)
    if not result.healthy.all():
        print(f"kldiv run: warning: {_divergence_line(result)}", file=sys.stderr)
    for line in summary_lines(result.final, result.healthy):
        console.result(line)
    console.info(f"run saved to {path}")
    return 0


def _history_png(result: Any, exp: Any) -> bytes:
    from kldiv.plot import figure_png, history_figure

    history = {k: v[result.healthy] for k, v in result.history.items()}
    runs = int(result.healthy.sum())
    title = f"{exp.train.loss}, {runs} seed{'s' if runs > 1 else ''}"
    return figure_png(history_figure(history, title=title))


def command_compare(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.config import canonical_loss
    from kldiv.records import comparison_record, save_comparison
    from kldiv.report import html_report, stats_table, theory_note
    from kldiv.stats import compare_arms

    names = [canonical_loss(n) for n in args.losses.split(",") if n.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError("arms", f"expected at least two different losses, got {args.losses!r}")
    exp = _experiment(args, names[0], args.seeds)
    arms = {name: exp.train.replace(loss=name) for name in names}
    with console.progress(f"training {len(names)} losses x {len(args.seeds)} seeds") as progress:
        results = ex.compare(exp, arms, on_progress=progress)
    for name, r in results.items():
        if not r.healthy.all():
            raise RunFailed(f"arm {name}: {_divergence_line(r)}")
    finals = {name: r.final for name, r in results.items()}
    stats = compare_arms(finals, baseline=names[0], margins={"accuracy": args.margin}, seed=0)
    note = theory_note(stats)
    table = stats_table(stats) + ("\n\n" + note if note else "")
    figures: dict[str, bytes] = {}
    if not args.no_plot:
        from kldiv.plot import comparison_figures, figure_png

        histories = {name: r.history for name, r in results.items()}
        figures = {
            name: figure_png(fig)
            for name, fig in comparison_figures(histories, finals, names[0]).items()
        }
    record = comparison_record(exp, _command_line(), results, losses=names, margin=args.margin)
    page = html_report(
        title=f"kldiv compare: {' vs '.join(names)}, {len(exp.seeds)} seeds",
        command=record["command"],
        config=record,
        stats=stats,
        figures=figures,
    )
    path = save_comparison(
        args.out, record, results, stats=stats.to_dict(), figures=figures, report_html=page
    )
    console.result(table)
    console.info(f"comparison saved to {path} (open {path / 'report.html'})")
    return 0


def _command_line() -> str:
    return shlex.join(["kldiv", *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    from kldiv.console import Console

    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    console = Console(quiet=args.quiet)
    commands = {"run": command_run, "compare": command_compare}
    prog = f"kldiv {args.command}"
    try:
        from kldiv.runtime import configure

        configure()
        return commands[args.command](args, console)
    except ConfigError as err:
        message = str(err).removeprefix(f"{err.field}: ")
        print(f"{prog}: error: {flag_of(err.field)}: {message}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was saved", file=sys.stderr)
        return 130
    except (RunFailed, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1


def console_main() -> NoReturn:
    """Console-script entry: run, flush, and exit at once (skipping slow interpreter teardown)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(code)
