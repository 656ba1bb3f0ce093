"""The `kldiv` command: argv in, one library call, files and lines out, an exit code.

Every error a user can cause (a bad flag value, an unknown loss, a diverging run) ends as one line on
stderr and a non-zero exit code: 2 for bad input, 1 for a failed run, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

EPILOG = "Run 'kldiv COMMAND --help' for a command's options."


class UsageError(Exception):
    """Bad input from the command line; the message is shown as is."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {low}, got {text!r}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


def _real_in(low: float, high: float, *, open_low: bool) -> Callable[[str], float]:
    bracket = "(" if open_low else "["
    expected = f"expected a number in {bracket}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not (value > low if open_low else value >= low) or not value <= high:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


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


def parse_seeds(text: str) -> tuple[int, ...]:
    """'N' -> seeds 0..N-1; 'A-B' -> A..B inclusive; 'a,b,c' -> those seeds."""
    expected = "expected a count N, a range A-B or a list a,b,c of seeds in [0, 2**32)"
    try:
        if "," in text:
            seeds = tuple(int(part) for part in text.split(","))
        elif "-" in text.strip("-"):
            first, last = (int(part) for part in text.split("-"))
            seeds = tuple(range(first, last + 1))
        else:
            seeds = tuple(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not seeds or min(seeds) < 0 or max(seeds) >= 2**32 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{expected} (distinct, at least one), got {text!r}")
    return seeds


def _add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (defaults: the tutorial's)")
    g.add_argument("--epochs", type=_int_at_least(1), default=100, help="epochs (default 100)")
    g.add_argument(
        "--batch-size", type=_int_at_least(1), default=32, help="minibatch size (default 32)"
    )
    g.add_argument(
        "--learning-rate",
        type=_real_in(0, float("inf"), open_low=True),
        default=0.01,
        help="SGD learning rate (default 0.01)",
    )
    g.add_argument(
        "--momentum",
        type=_real_in(0, 1, open_low=False),
        default=0.9,
        help="SGD momentum, Keras' form v = m*v - lr*g (default 0.9)",
    )
    g.add_argument(
        "--hidden",
        type=parse_hidden,
        default=(50,),
        help="hidden layer widths, comma-separated (default 50)",
    )
    g.add_argument(
        "--data-seed",
        type=_int_at_least(0),
        default=2,
        help="make_blobs random_state (default 2, the tutorial's)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="directory that receives a new run directory (default ./runs)",
    )
    o.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    o.add_argument("--quiet", action="store_true", help="print only the results")


def build_parser() -> Parser:
    from kldiv.losses import loss_names

    parser = Parser(
        prog="kldiv",
        description="Exact KL-divergence losses and the classic KL-loss tutorial experiment.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    losses = ", ".join(loss_names())

    run = sub.add_parser(
        "run",
        help="train the tutorial MLP on blobs and print Train/Test accuracy",
        description="Train the tutorial's MLP (2-50-3) on make_blobs with a KL-divergence loss, "
        "print 'Train: x, Test: y' and write a run directory (config, environment, history, "
        "metrics, model weights, plot).",
    )
    run.add_argument(
        "--loss",
        default="kullback_leibler_divergence",
        help=f"loss name (default kullback_leibler_divergence); one of: {losses}",
    )
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed", type=_int_at_least(0), default=0, help="training seed: init and shuffles (0)"
    )
    seeds.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help="many runs at once: N (seeds 0..N-1), a range A-B, or a list a,b,c",
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
        default="kl,ce",
        help=f"comma-separated loss names, the first is the baseline (default kl,ce); from: {losses}",
    )
    comp.add_argument(
        "--seeds",
        type=parse_seeds,
        default=tuple(range(30)),
        help="N (seeds 0..N-1), a range A-B, or a list a,b,c (default 30)",
    )
    comp.add_argument(
        "--margin",
        type=_real_in(0, 1, open_low=True),
        default=0.01,
        help="equivalence margin for accuracies, TOST (default 0.01)",
    )
    _add_training_options(comp)
    return parser


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
            learning_rate=args.learning_rate,
            momentum=args.momentum,
        ),
        seeds=seeds,
    )


def command_run(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.outputs import save_run, summary_lines

    seeds = args.seeds if args.seeds is not None else (args.seed,)
    exp = _experiment(args, args.loss, seeds)
    with console.progress(f"training {len(seeds)} run(s)") as progress:
        result = ex.run(exp, epoch_chunk=None if len(seeds) > 1 else 10, on_progress=progress)
    for line in summary_lines(result):
        console.result(line)
    path = save_run(args.out, exp, result, command=_command_line(), plot=not args.no_plot)
    console.info(f"run saved to {path}")
    return 0


def command_compare(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.outputs import save_comparison

    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    exp = _experiment(args, losses[0], args.seeds)
    with console.progress(f"training {len(losses)} losses x {len(args.seeds)} seeds") as progress:
        results = ex.compare(exp, losses, on_progress=progress)
    path, table = save_comparison(
        args.out,
        exp,
        results,
        margin=args.margin,
        command=_command_line(),
        plot=not args.no_plot,
    )
    console.result(table)
    console.info(f"comparison saved to {path} (open {path / 'report.html'})")
    return 0


def _command_line() -> str:
    return shlex.join(["kldiv", *sys.argv[1:]])


def enable_compilation_cache() -> None:
    """Persist compiled XLA programs in the user's cache directory ($KLDIV_CACHE_DIR to move it,
    empty to disable), so a repeated command skips compilation."""
    import jax

    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kldiv" / "xla"
    cache = os.environ.get("KLDIV_CACHE_DIR", str(default))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def use_every_core() -> None:
    """One XLA CPU device per core, so many-seed runs train a chunk on each core at once.

    XLA reads the flag when its CPU backend starts, so this must run before the first
    computation; a device count already in $XLA_FLAGS is left as it is.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        count = f"--xla_force_host_platform_device_count={max(1, cores or 1)}"
        os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()


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
        use_every_core()
        enable_compilation_cache()
        return commands[args.command](args, console)
    except (ValueError, TypeError, FileExistsError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was saved", file=sys.stderr)
        return 130
    except Exception as err:  # a failed run (e.g. diverged): one line, no traceback
        from kldiv.train import NonFiniteLossError

        if isinstance(err, NonFiniteLossError | OSError):
            print(f"{prog}: error: {err}", file=sys.stderr)
            return 1
        raise


def console_main() -> NoReturn:
    """Console-script entry: run, flush, and exit at once (skipping slow interpreter teardown)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
