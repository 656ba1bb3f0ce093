"""Flags the commands share, parsed strictly, and the configs they build.

`Parser` never abbreviates a flag (a prefix such as `--seed` for `--seeds` would silently run
another experiment), reports errors as one line (no usage dump) and reads a value such as `-inf`
after a flag as that flag's value. Defaults come from the config dataclasses' fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

# Config fields whose flag is not `--` + the field name with dashes.
_FLAGS = {
    "random_state": "--data-seed",
    "seed": "--data-seed",
    "source": "--data",
    "arms": "--losses",
    "results": "FILE.csv",
}

MAX_SEEDS = 10**6


def flag_of(field: str) -> str:
    """The command-line flag that sets config field `field` (an environment variable such as
    XLA_FLAGS, named by `kldiv.runtime.configure`, and a flag such as `--seed`, named by a command,
    are named as they are)."""
    if field.isupper() or field.startswith("--"):
        return field
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


# Config fields that library messages mention beside the one they are about, and the words that
# stand for them: not after a path separator or a dot, nor before a dot ('test_data.csv').
_MENTIONED = re.compile(r"(?<![\w./\\-])(label_col|prob_cols|test_data|test_frac)(?![\w.])")


def flags_in(message: str) -> str:
    """A library message as a command-line user reads it: config fields it mentions (e.g.
    'expected either label_col ... or prob_cols') named by their flags."""
    return _MENTIONED.sub(lambda m: flag_of(m.group(1)), message)


class UsageError(Exception):
    """Bad input from the command line; the message is shown as is."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2, and no abbreviated flags."""

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


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def parse_float(text: str) -> float:
    if not _is_number(text):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return float(text)


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


def parse_seed(text: str) -> int:
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


def default(cls: type, name: str) -> Any:
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


def add_training_options(
    p: argparse.ArgumentParser,
    *,
    defaults: Mapping[str, Any] | None = None,
    label_smoothing: bool = True,
) -> None:
    """--epochs, --batch-size, --hidden, --label-smoothing (unless `label_smoothing` is False) and
    the optimizer's flags; defaults are the tutorial's `TrainConfig` fields, or `defaults` (field
    name -> value, the optimizer as a config)."""
    from kldiv.config import TrainConfig
    from kldiv.optimizers import OPTIMIZERS

    def train_default(name: str) -> Any:
        if defaults is not None and name in defaults:
            return defaults[name]
        return default(TrainConfig, name)

    title = "training" + (" (defaults: the tutorial's)" if not defaults else "")
    g = p.add_argument_group(title)
    g.add_argument(
        "--epochs",
        type=parse_int,
        default=train_default("epochs"),
        help=f"epochs ({train_default('epochs')})",
    )
    g.add_argument(
        "--batch-size",
        type=parse_int,
        default=train_default("batch_size"),
        help=f"minibatch size ({train_default('batch_size')})",
    )
    g.add_argument(
        "--hidden",
        type=parse_hidden,
        default=train_default("hidden"),
        help="hidden layer widths, comma-separated ("
        + ",".join(map(str, train_default("hidden")))
        + ")",
    )
    if label_smoothing:
        g.add_argument(
            "--label-smoothing",
            type=parse_float,
            default=train_default("label_smoothing"),
            help="train on (1 - EPS) * y + EPS / K instead of the targets y (0: none); metrics "
            "use y",
        )
    o = p.add_argument_group("optimizer (Optax; unset numbers take the optimizer's default)")
    o.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default=train_default("optimizer").name,
        help=f"{', '.join(OPTIMIZERS)} ({train_default('optimizer').name}"
        + (
            ""
            if train_default("optimizer").name != "sgd"
            else ": Keras' SGD momentum form v = m*v - lr*g"
        )
        + ")",
    )
    for name, text in _optimizer_help().items():
        o.add_argument(flag_of(name), dest=name, type=parse_float, default=None, help=text)


def add_seed_options(
    p: argparse.ArgumentParser,
    seed_help: str = "training seed: init and shuffles (default 0), in [0, 2**32)",
    seeds_help: str = "many runs at once",
) -> None:
    """--seed S or --seeds N|A-B|a,b,c (exclusive), both default None; `seeds_help` leads the
    --seeds help, followed by its forms and the limit."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--seed", type=parse_seed, default=None, help=seed_help)
    group.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help=f"{seeds_help}: N (seeds 0..N-1), a range A-B, or a list a,b,c; at most "
        f"{MAX_SEEDS:,} seeds",
    )


def seeds_of(args: argparse.Namespace) -> tuple[int, ...]:
    """The seeds --seed/--seeds select: --seeds, else (--seed,), else (0,)."""
    return args.seeds if args.seeds is not None else (0 if args.seed is None else args.seed,)


def add_data_options(p: argparse.ArgumentParser) -> None:
    """--data, its split, its columns, --standardize and --data-seed."""
    from kldiv.data import DEFAULT_TEST_FRAC, PROB_TOLERANCE, DataConfig

    def data_default(name: str) -> Any:
        return default(DataConfig, name)

    d = p.add_argument_group("data (default: the tutorial's blobs)")
    d.add_argument(
        "--data",
        default=data_default("source"),
        help="blobs (the tutorial's, first 500 rows train, last 500 test), digits (8x8 "
        "handwritten digits, bundled), or a .csv or .npz file",
    )
    d.add_argument(
        "--test-data",
        default=None,
        help="a .csv or .npz file of test rows, with the same columns as --data",
    )
    d.add_argument(
        "--test-frac",
        type=parse_float,
        default=None,
        help=f"share of each class drawn from --data as test rows (default {DEFAULT_TEST_FRAC} "
        "unless --test-data is given)",
    )
    d.add_argument(
        "--label-col",
        default=None,
        help="CSV column of integer class labels 0..K-1 (default: the last column)",
    )
    d.add_argument(
        "--prob-cols",
        default=None,
        help="CSV columns of class probabilities (soft targets), comma-separated names or globs "
        f"such as 'p_*'; each row non-negative, summing to 1 within {PROB_TOLERANCE:g}",
    )
    d.add_argument(
        "--standardize",
        action="store_true",
        help="centre and scale each feature by the training rows' mean and standard deviation "
        "(stored with the model)",
    )
    d.add_argument(
        "--data-seed",
        type=parse_seed,
        default=data_default("seed"),
        help=f"blobs' make_blobs random_state ({data_default('seed')}, the tutorial's), or the "
        "seed of the stratified train/test split",
    )


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--out, --no-plot, --quiet."""
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="directory that receives a new run directory (default ./runs)",
    )
    out.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    out.add_argument("--quiet", action="store_true", help="print only the results")


def optimizer(args: argparse.Namespace) -> Any:
    """The optimizer config the flags select, unset numbers at its defaults."""
    from kldiv.optimizers import OPTIMIZERS

    given = {
        name: getattr(args, name)
        for name in _optimizer_help()
        if getattr(args, name, None) is not None
    }
    return OPTIMIZERS[args.optimizer]().replace(**given)


def data_config(args: argparse.Namespace) -> Any:
    """The `DataConfig` the data flags describe."""
    from kldiv.data import DataConfig

    return DataConfig(
        source=args.data,
        seed=args.data_seed,
        test_data=args.test_data,
        test_frac=args.test_frac,
        label_col=args.label_col,
        prob_cols=args.prob_cols,
        standardize=args.standardize,
    )


def experiment(args: argparse.Namespace, loss: str, seeds: tuple[int, ...]) -> Any:
    """The `Experiment` the training flags describe, trained with `loss` on `seeds`."""
    from kldiv.config import TrainConfig
    from kldiv.experiment import Experiment

    return Experiment(
        data=data_config(args),
        train=TrainConfig(
            loss=loss,
            hidden=args.hidden,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=optimizer(args),
            label_smoothing=args.label_smoothing,
        ),
        seeds=seeds,
    )
