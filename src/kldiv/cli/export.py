"""`kldiv export DIR --to csv`: a sweep's stored runs for spreadsheets, pandas and the like."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kldiv.cli import guard


def add_parser(sub: Any) -> None:
    from kldiv.sweep.export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a sweep's stored runs as CSV",
        description="Write every stored run of a sweep directory (configuration, grid values, "
        "seed, status, final metrics, where it trained) in the given format.",
    )
    p.add_argument("sweep", metavar="DIR", type=Path, help="a sweep directory (kldiv sweep)")
    p.add_argument("--to", choices=FORMATS, default="csv", help="format (csv)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a new file to write (default DIR/runs.csv); an existing file is never replaced",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv.checks import ConfigError
    from kldiv.records import write_atomic
    from kldiv.sweep.export import runs_csv
    from kldiv.sweep.store import read_plan

    try:
        read_plan(args.sweep)
    except ConfigError as err:  # named after the argument here, not --resume
        raise ConfigError("DIR", str(err).removeprefix(f"{err.field}: ")) from None
    target = args.out if args.out is not None else args.sweep / "runs.csv"
    if target.exists():
        raise guard.OutError(f"--out: expected a new file, got {str(target)!r}, which exists")
    text = runs_csv(args.sweep)
    try:
        write_atomic(target, text)
    except OSError as err:
        raise guard.OutError(
            f"--out: could not write {str(target)!r} ({err.strerror or err})"
        ) from None
    console.info(f"{text.count(chr(10)) - 1} runs written to {target}")
    return 0
