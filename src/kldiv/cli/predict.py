"""`kldiv predict`: class probabilities of a saved run's model for new rows, as CSV.

The output has one row per input row: `p_<class>` for every class (the probability, written with
the shortest decimal that reads back as the same float64; a model trained on probability columns
named `p_...` keeps their names), then `predicted` (the class name of the
most probable class, the first on ties). A run of several seeds predicts with one of them
(`--seed`) or with their average (`--ensemble`: the mean of the seeds' probabilities).

For a VAE's run directory (`kldiv vae`) it encodes instead: `z_mean_<j>` and
`z_log_variance_<j>` of the posterior for every latent dimension j, from one seed (latent codes
of different seeds are not aligned, so there is no ensemble).
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.checks import ConfigError
from kldiv.cli import guard, options


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="class probabilities of a saved run's model for new rows (a VAE's latent code), "
        "as CSV",
        description="Read a run directory's model (weights, input columns, classes, "
        "standardization), predict every row of --data and write one CSV row per input: the "
        "probability of each class (p_<class>) and the predicted class. For a VAE (kldiv vae): "
        "the posterior's mean and log-variance per latent dimension (z_mean_<j>, "
        "z_log_variance_<j>).",
    )
    p.add_argument(
        "--run", type=Path, required=True, help="a run directory written by kldiv run or kldiv vae"
    )
    p.add_argument(
        "--data",
        required=True,
        help="a .csv (the model's feature columns, by name; other columns are ignored) or .npz "
        "(array x) file of rows to predict",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--seed",
        type=options.parse_seed,
        default=None,
        help="the seed whose model predicts, for a run of several seeds",
    )
    which.add_argument(
        "--ensemble",
        action="store_true",
        help="average the probabilities of every seed of the run",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a new CSV file to write (default: standard output); never overwritten",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but the predictions")


def probability_columns(class_names: tuple[str, ...]) -> list[str]:
    """`p_<class>` per class; names that already start with `p_` (a model trained on probability
    columns such as `p_cat`) are kept, unless that would make two columns alike."""
    kept = [n if n.startswith("p_") else f"p_{n}" for n in class_names]
    if len(set(kept)) == len(kept) and "predicted" not in kept:
        return kept
    return [f"p_{n}" for n in class_names]


def predictions_csv(probabilities: np.ndarray, class_names: tuple[str, ...]) -> str:
    """(rows, classes) float64 probabilities -> CSV text with a header, `p_<class>` columns and
    `predicted`; floats as `repr` (shortest round-trip form), so reading them back is exact."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*probability_columns(class_names), "predicted"])
    predicted = probabilities.argmax(axis=1)
    for row, k in zip(probabilities, predicted, strict=True):
        writer.writerow([*(repr(float(v)) for v in row), class_names[k]])
    return out.getvalue()


def _runs(saved: Any, args: argparse.Namespace) -> slice | list[int]:
    """Which runs predict: the one of --seed, every one with --ensemble, the only one by default."""
    if args.ensemble:
        return slice(None)
    if args.seed is not None:
        if args.seed not in saved.seeds:
            raise ConfigError(
                "--seed", f"expected one of the run's seeds {_seeds(saved)}, got {args.seed}"
            )
        return [saved.seeds.index(args.seed)]
    if len(saved.seeds) > 1:
        raise ConfigError(
            "--seed",
            f"expected --seed S or --ensemble: the run has {len(saved.seeds)} seeds "
            f"{_seeds(saved)}, got neither",
        )
    return [0]


def _seeds(saved: Any) -> str:
    shown = ", ".join(map(str, saved.seeds[:10]))
    return f"({shown}{', ...' if len(saved.seeds) > 10 else ''})"


def _check_new_file(out: Path) -> None:
    """--out must be a new file in an existing directory (a prediction never replaces a file)."""
    if out.exists():
        raise guard.OutError(
            f"--out: expected a new file, got {str(out)!r} (it exists; predictions never "
            "overwrite a file)"
        )
    if not out.parent.is_dir():
        raise guard.OutError(
            f"--out: expected a file in an existing directory, got {str(out)!r} (no directory "
            f"{str(out.parent)!r})"
        )


def _print(text: str) -> None:
    """The predictions on stdout: they are the command's only result, so a stream that cannot
    take them (a full disk) is a failed command; a reader that closed the pipe (`| head`) is not.
    """
    import sys

    from kldiv.console import ascii_fallback, silence_stdout

    try:
        try:
            sys.stdout.write(text)
        except UnicodeEncodeError:
            sys.stdout.write(ascii_fallback(text, sys.stdout.encoding or "ascii"))
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        silence_stdout()
        raise guard.RunFailed(
            f"could not write the predictions to standard output ({reason})"
        ) from None


def _write(path: Path, text: str) -> Path:
    from kldiv.records import write_atomic

    write_atomic(path, text)
    return path


def command(args: argparse.Namespace, console: Any) -> int:
    import dataclasses

    from kldiv.data import load_features
    from kldiv.records import load_model, model_kind

    try:
        if model_kind(args.run) == "vae":
            return _encode(args, console)
        saved = load_model(args.run)
    except ValueError as err:
        raise ConfigError(
            "--run", f"expected a run directory written by kldiv run: {err}"
        ) from None
    runs = _runs(saved, args)
    if args.out is not None:
        _check_new_file(args.out)
    x = load_features(args.data, saved.feature_names, field="--data")
    params = tuple((w[runs], b[runs]) for w, b in saved.params)
    probabilities = dataclasses.replace(saved, params=params).probabilities(x).mean(axis=0)
    bad = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
    if bad.size:
        rows = ", ".join(str(i + 1) for i in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise ConfigError(
            "--data",
            f"expected inputs the model gives finite probabilities for, got {bad.size} input "
            f"row(s) whose outputs overflow (data rows {rows}, counted from 1)",
        )
    return _output(args, console, predictions_csv(probabilities, saved.class_names), x.shape[0])


def _output(args: argparse.Namespace, console: Any, text: str, rows: int) -> int:
    if args.out is None:
        _print(text)
        return 0
    guard.save(args.out, _write, text)
    console.info(f"{rows} predictions saved to {args.out}")
    return 0


def latent_csv(mean: np.ndarray, log_variance: np.ndarray) -> str:
    """(rows, latent) posterior means and log-variances -> CSV text, `z_mean_<j>` then
    `z_log_variance_<j>` columns, floats in their shortest round-trip form."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    latent = range(mean.shape[1])
    writer.writerow([*(f"z_mean_{j}" for j in latent), *(f"z_log_variance_{j}" for j in latent)])
    for m, v in zip(mean, log_variance, strict=True):
        writer.writerow([repr(float(a)) for a in (*m, *v)])
    return out.getvalue()


def _encode(args: argparse.Namespace, console: Any) -> int:
    """`predict` of a VAE's run directory: the posterior of one seed for every row."""
    from kldiv.data import load_features
    from kldiv.vae import load_vae

    saved = load_vae(args.run)
    if args.ensemble:
        raise ConfigError(
            "--ensemble",
            "expected --seed S for a VAE (the latent codes of different seeds are not aligned, "
            "so they do not average), got --ensemble",
        )
    (run,) = _runs(saved, args)
    if args.out is not None:
        _check_new_file(args.out)
    x = load_features(args.data, saved.feature_names, field="--data")
    mean, log_variance = saved.encode(x)
    return _output(args, console, latent_csv(mean[run], log_variance[run]), x.shape[0])
