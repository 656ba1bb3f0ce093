"""The `kldiv` command: argv in, one library call, files and lines out, an exit code.

Every error a user can cause (a bad flag value, an unknown loss, a diverging run) ends as one line on
stderr and a non-zero exit code: 2 for bad input (an --out that cannot be written included, also
when that is found only at save time), 1 for a failed run, 128+n for signal n (130 Ctrl-C, 143
SIGTERM, 129 SIGHUP). Defaults and ranges come from the config dataclasses; the CLI restates none of
them. No flag is ever abbreviated.

Order of work: --out is checked (created and proven writable) before anything trains; results are
saved before they are printed, so output that cannot be shown (a closed pipe, an ASCII terminal)
never costs the run. SIGINT, SIGTERM and SIGHUP interrupt like Ctrl-C and leave nothing partial: the
handlers record the signal and raise; since JAX can swallow an exception raised inside one of its
callbacks, the recorded signal is also checked after every compiled call and before saving.

`kldiv compare` keeps what trained: an arm whose runs diverged is named on stderr with its diverged
seeds, the seeds where any compared arm diverged are left out of the paired statistics (the table
says how many), an arm that diverged on every seed is left out of them entirely, and the comparison
of the rest is still saved and printed. The exit code is then 1: the comparison asked for was not
fully computed, and scripts must not mistake it for a complete one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import tempfile
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


class OutError(Exception):
    """--out cannot receive the run; the message names --out, what was expected and why."""


class Interrupted(KeyboardInterrupt):
    """A signal that stops the command like Ctrl-C; `signum` is its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
_received: list[int] = []  # signals received while `main` runs, in order


def _on_signal(signum: int, _frame: Any) -> None:
    first = not _received
    _received.append(signum)
    if first:  # once: a second signal must not break the cleanup the first one started
        raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise `Interrupted` if a signal arrived, even if its exception was swallowed (an exception
    raised inside JAX's garbage-collection callback is only printed)."""
    if _received:
        raise Interrupted(_received[0])


@contextlib.contextmanager
def _signal_handlers() -> Any:
    """SIGINT, SIGTERM and SIGHUP raise `Interrupted` while the block runs (main thread only)."""
    _received.clear()
    previous = {}
    for signum in SIGNALS:
        with contextlib.suppress(
            ValueError, OSError
        ):  # not the main thread: leave them as they are
            previous[signum] = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _checking(progress: Any) -> Any:
    """`progress`, preceded by a check for a recorded signal (called after every compiled call)."""

    def on_progress(done: int, total: int) -> None:
        check_interrupted()
        progress(done, total)

    return on_progress


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def prepare_out(out: Path) -> None:
    """Create --out if missing and prove it writable (create and remove a probe file).

    Raises:
      OutError: it cannot be created or written; the message gives the OS reason.
    """
    expected = f"--out: expected a writable directory, got {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise OutError(f"{expected} (Not a directory)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".kldiv-probe-")
        try:
            os.close(fd)
        finally:
            os.unlink(probe)
    except OSError as err:
        raise OutError(f"{expected} ({_reason(err)})") from None


_saved: list[Path] = []  # the directory this command saved, once it is in place


def _save(out: Path, save: Any, *args: Any, **kwargs: Any) -> Path:
    """`save(out, ...)`, after a last check for a signal; a failure to write is an --out error."""
    check_interrupted()
    try:
        path = save(out, *args, **kwargs)
    except OSError as err:
        raise OutError(f"--out: could not save into {str(out)!r} ({_reason(err)})") from None
    _saved.append(path)
    return path


def _divergence_line(result: Any) -> str:
    bad = [(int(s), int(e)) for s, e in zip(result.seeds, result.diverged, strict=True) if e]
    shown = ", ".join(f"{s} (epoch {e})" for s, e in bad[:10]) + (" ..." if len(bad) > 10 else "")
    return f"{len(bad)} of {result.seeds.size} runs diverged (non-finite values): seeds {shown}"


def _stderr(line: str) -> None:
    """One line on stderr; a closed or broken stderr loses it, never the exit code."""
    try:
        print(line, file=sys.stderr, flush=True)
    except UnicodeEncodeError:
        from kldiv.console import ascii_fallback

        with contextlib.suppress(OSError, ValueError, AttributeError):
            print(ascii_fallback(line, "ascii"), file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def command_run(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.records import save_run

    seeds = args.seeds if args.seeds is not None else (args.seed,)
    exp = _experiment(args, args.loss, seeds)
    prepare_out(args.out)
    with console.progress(f"training {len(seeds)} run(s)") as progress:
        result = ex.run(
            exp, epoch_chunk=None if len(seeds) > 1 else 10, on_progress=_checking(progress)
        )
    if not result.healthy.any():
        if len(seeds) == 1:
            epoch = int(result.diverged[0])
            raise RunFailed(
                f"training diverged: non-finite loss or weights at epoch {epoch} for seed "
                f"{seeds[0]}; try a smaller learning rate"
            )
        raise RunFailed(f"training diverged in every run; {_divergence_line(result)}")
    png = _history_png(result, exp) if not args.no_plot else None
    path = _save(args.out, save_run, exp, result, command=_command_line(), figure_png=png)
    if not result.healthy.all():
        _stderr(f"kldiv run: warning: {_divergence_line(result)}")
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
    import numpy as np

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
    prepare_out(args.out)
    with console.progress(f"training {len(names)} losses x {len(args.seeds)} seeds") as progress:
        results = ex.compare(exp, arms, on_progress=_checking(progress))
    failed = [name for name, r in results.items() if not r.healthy.all()]
    compared = [name for name, r in results.items() if r.healthy.any()]
    if not compared:
        raise RunFailed(
            "training diverged in every run of every arm; "
            + "; ".join(f"arm {n}: {_divergence_line(r)}" for n, r in results.items())
        )
    # Paired statistics need the same seeds in every arm: those where no compared arm diverged.
    paired = np.logical_and.reduce([results[n].healthy for n in compared])
    if not paired.any():
        raise RunFailed(
            "no seed trained in every arm that trained at all; "
            + "; ".join(f"arm {n}: {_divergence_line(results[n])}" for n in failed)
        )
    baseline = compared[0]
    finals = {n: {k: v[paired] for k, v in results[n].final.items()} for n in compared}
    stats = compare_arms(finals, baseline=baseline, margins={"accuracy": args.margin}, seed=0)
    note = theory_note(stats)
    table = stats_table(stats) + ("\n\n" + note if note else "")
    excluded = [int(s) for s in results[names[0]].seeds[~paired]]
    notes = _exclusion_notes(names, compared, baseline, len(paired), excluded)
    if notes:
        table = "\n".join(notes) + "\n\n" + table
    figures: dict[str, bytes] = {}
    if not args.no_plot:
        from kldiv.plot import comparison_figures, figure_png

        histories = {n: {k: v[paired] for k, v in results[n].history.items()} for n in compared}
        figures = {
            name: figure_png(fig)
            for name, fig in comparison_figures(histories, finals, baseline).items()
        }
    record = comparison_record(exp, _command_line(), results, losses=names, margin=args.margin)
    if failed:
        record |= {"compared_arms": compared, "baseline": baseline, "excluded_seeds": excluded}
    page = html_report(
        title=f"kldiv compare: {' vs '.join(names)}, {len(exp.seeds)} seeds",
        command=record["command"],
        config=record,
        stats=stats,
        figures=figures,
    )
    path = _save(
        args.out,
        save_comparison,
        record,
        results,
        stats=stats.to_dict(),
        figures=figures,
        report_html=page,
    )
    for name in failed:
        _stderr(f"kldiv compare: error: arm {name}: {_divergence_line(results[name])}")
    console.result(table)
    console.info(f"comparison saved to {path} (open {path / 'report.html'})")
    return 1 if failed else 0


def _exclusion_notes(
    names: list[str], compared: list[str], baseline: str, n_seeds: int, excluded: list[int]
) -> list[str]:
    """Lines saying which arms and seeds the statistics leave out, and why."""
    notes = []
    dropped = [n for n in names if n not in compared]
    if dropped:
        notes.append(
            f"note: arm{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} diverged on every "
            "seed and "
            + ("are" if len(dropped) > 1 else "is")
            + " left out of the statistics"
            + (f"; the baseline is {baseline}" if baseline != names[0] else "")
        )
    if excluded:
        shown = ", ".join(map(str, excluded[:10])) + (" ..." if len(excluded) > 10 else "")
        notes.append(
            f"note: {len(excluded)} of {n_seeds} seeds excluded from the paired statistics "
            f"(an arm diverged on them): {shown}"
        )
    return notes


def _command_line() -> str:
    return shlex.join(["kldiv", *sys.argv[1:]])


def _empty_out(argv: Sequence[str]) -> bool:
    """`--out ""` (or `--out=`): Path("") would silently mean the current directory."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg == "--out=" or (arg == "--out" and i + 1 < len(argv) and argv[i + 1] == ""):
            return True
    return False


def _reopen_closed_std_streams() -> None:
    """Point a closed file descriptor 0, 1 or 2 (`>&-`) at the null device, so that no file this
    command opens takes its number and receives output meant for the terminal."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                opened = os.open(os.devnull, os.O_RDWR)
                if opened != fd:
                    os.dup2(opened, fd)
                    os.close(opened)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    from kldiv.console import Console

    _reopen_closed_std_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    with _signal_handlers():
        _saved.clear()
        prog = "kldiv"
        try:
            args = build_parser().parse_args(argv)
            prog = f"kldiv {args.command}"
            if _empty_out(argv):
                raise UsageError(f"{prog}: error: --out: expected a directory, got ''")
            console = Console(quiet=args.quiet)
            commands = {"run": command_run, "compare": command_compare}
            from kldiv.runtime import configure

            configure()
            code = commands[args.command](args, console)
            check_interrupted()  # a signal whose exception was swallowed still interrupts
            return code
        except UsageError as err:
            _stderr(str(err))
            return 2
        except ConfigError as err:
            message = str(err).removeprefix(f"{err.field}: ")
            _stderr(f"{prog}: error: {flag_of(err.field)}: {message}")
            return 2
        except OutError as err:
            _stderr(f"{prog}: error: {err}")
            return 2
        except KeyboardInterrupt as err:
            signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
            name = signal.Signals(signum).name
            done = f"the results were saved to {_saved[0]}" if _saved else "nothing was saved"
            _stderr(f"{prog}: interrupted by {name}; {done}")
            return 128 + signum
        except (RunFailed, OSError) as err:
            _stderr(f"{prog}: error: {err}")
            return 1


def console_main() -> NoReturn:
    """Console-script entry: run, flush, and exit at once (skipping slow interpreter teardown)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)
