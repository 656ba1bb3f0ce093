"""`kldiv export DIR --to csv|parquet|mlflow`: a sweep's stored runs for spreadsheets, pandas,
Arrow tools and MLflow's UI. pyarrow and MLflow are optional extras, imported only here, when
asked for."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

from kldiv.checks import ConfigError
from kldiv.cli import guard

# Tracking URI schemes served by MLflow's SQL store, which needs SQLAlchemy and Alembic.
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def add_parser(sub: Any) -> None:
    from kldiv.sweep.export import FORMATS, TABLES

    p = sub.add_parser(
        "export",
        help="write a sweep's stored runs as CSV or Parquet, or its statistics to MLflow",
        description="Write every stored run of a sweep directory (configuration, grid values, "
        "seed, status, final metrics, where it trained), or every epoch of every run "
        "(--table history), as CSV or Parquet; or log one MLflow run per configuration "
        "(grid values as params; each metric's mean over the seeds and 95% t interval, and the "
        "counts of diverged and stuck runs, as metrics). Parquet needs kldiv[parquet] (pyarrow), "
        "MLflow needs kldiv[mlflow].",
    )
    p.add_argument("sweep", metavar="DIR", type=Path, help="a sweep directory (kldiv sweep)")
    p.add_argument("--to", choices=FORMATS, default="csv", help="format (csv)")
    p.add_argument(
        "--table",
        choices=TABLES,
        default=None,
        help="csv, parquet: runs (one row per configuration and seed; the default) or history "
        "(one row per configuration, seed and epoch)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="csv, parquet: a new file to write (default DIR/TABLE.csv or DIR/TABLE.parquet); "
        "an existing file is never replaced",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="mlflow: the tracking store (default sqlite:///DIR/mlflow.db, a SQLite file in the "
        "sweep directory); runs are added to it, and a sweep already exported to the experiment "
        "is refused",
    )
    p.add_argument(
        "--experiment",
        default=None,
        metavar="NAME",
        help="mlflow: the experiment, created if missing (default: DIR's name)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _import(module: str, field: str, what: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            field, f"expected {module} to be installed for {what!r}: pip install 'kldiv[{extra}]'"
        ) from None


def _require(fmt: str, tracking_uri: str) -> None:
    """Import what `fmt` needs, or say which extra installs it. A SQL tracking store's modules
    come first: MLflow registers its stores once, by what it can import then."""
    if fmt == "parquet":
        _import("pyarrow", "to", fmt, "parquet")
    elif fmt == "mlflow":
        scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0]
        if scheme in _SQL_SCHEMES:
            for module in ("sqlalchemy", "alembic"):
                _import(module, "tracking_uri", scheme, "mlflow")
        # MLflow sends usage telemetry unless told not to; a local export sends nothing unless
        # the user's environment says otherwise
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        _import("mlflow", "to", fmt, "mlflow")


def _check_flags(args: argparse.Namespace) -> None:
    mlflow_only = {"tracking_uri": args.tracking_uri, "experiment": args.experiment}
    file_only = {"table": args.table, "out": args.out}
    wrong = file_only if args.to == "mlflow" else mlflow_only
    for name, value in wrong.items():
        if value is not None:
            raise ConfigError(name, f"expected no --{name.replace('_', '-')} with --to {args.to}")
    for name in ("experiment", "tracking_uri"):
        value = getattr(args, name)
        if value is not None and not value.strip():
            what = "a name" if name == "experiment" else "a URI"
            raise ConfigError(name, f"expected {what}, got {value!r}")


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv.sweep.store import read_plan

    _check_flags(args)
    try:
        plan, record = read_plan(args.sweep)
    except ConfigError as err:  # named after the argument here, not --resume
        raise ConfigError("DIR", str(err).removeprefix(f"{err.field}: ")) from None
    if args.to == "mlflow":
        from kldiv.sweep.tracking import default_tracking_uri

        uri = args.tracking_uri or default_tracking_uri(args.sweep)
        _require(args.to, uri)
        return _to_mlflow(args, console, plan, record, uri)
    _require(args.to, "")
    return _to_file(args, console)


def _as_dir_error(err: ConfigError) -> ConfigError:
    return ConfigError("DIR", str(err).removeprefix(f"{err.field}: "))


def _to_file(args: argparse.Namespace, console: Any) -> int:
    from kldiv.records import write_atomic
    from kldiv.sweep.export import TABLE_FUNCTIONS, csv_text, parquet_bytes

    table_name = args.table or "runs"
    target = args.out if args.out is not None else args.sweep / f"{table_name}.{args.to}"
    if target.exists():
        raise guard.OutError(f"--out: expected a new file, got {str(target)!r}, which exists")
    try:
        table = TABLE_FUNCTIONS[table_name](args.sweep)
    except ConfigError as err:  # the store is in use by a running sweep
        raise _as_dir_error(err) from None
    if args.to == "csv":
        data: bytes | str = csv_text(table)
    else:
        data = parquet_bytes(table, {"kldiv.sweep": str(args.sweep.resolve())})
    guard.check_interrupted()
    try:
        write_atomic(target, data)
    except OSError as err:
        raise guard.OutError(
            f"--out: could not write {str(target)!r} ({err.strerror or err})"
        ) from None
    what = "runs" if table_name == "runs" else "epochs of runs"
    console.info(f"{table.n_rows} {what} written to {target}")
    return 0


def _to_mlflow(args: argparse.Namespace, console: Any, plan: Any, record: Any, uri: str) -> int:
    from kldiv.cli.sweep import resume_command
    from kldiv.sweep.store import Store, read_data
    from kldiv.sweep.summary import summarize_with
    from kldiv.sweep.tracking import log_runs, run_records

    # the default store keeps MLflow's artifact root beside it, not in the working directory
    artifacts = None
    if args.tracking_uri is None:
        artifacts = (args.sweep.resolve() / "mlflow-artifacts").as_uri()
    experiment = args.experiment if args.experiment is not None else args.sweep.resolve().name
    try:
        with Store(args.sweep) as store:
            runs = store.runs()
        data = read_data(plan, record)
    except ConfigError as err:
        raise _as_dir_error(err) from None
    total = len(plan.configurations) * len(plan.seeds)
    stored = sum(r.seeds.size for r in runs.values())
    if stored != total:
        raise ConfigError(
            "DIR",
            f"expected a finished sweep ({total} runs), got {stored} stored; "
            f"finish it with: {resume_command(args.sweep)}",
        )
    try:
        summary = summarize_with(runs, data)
    except ValueError as err:
        raise guard.RunFailed(f"no statistics to export: {err}") from None
    records = run_records(args.sweep, plan, summary, runs)
    guard.check_interrupted()
    experiment_id, run_ids = log_runs(
        records, tracking_uri=uri, experiment=experiment, artifact_location=artifacts
    )
    console.info(
        f"{len(run_ids)} MLflow runs (one per configuration) logged to experiment "
        f"{experiment!r} (id {experiment_id}) in {uri}"
    )
    console.info(
        f"view them with full MLflow (pip install mlflow): mlflow ui --backend-store-uri {uri}"
    )
    return 0
