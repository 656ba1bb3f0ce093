"""A sweep's statistics as MLflow runs, one per configuration, for MLflow's UI and client.

MLflow is the optional extra `kldiv[mlflow]` (the tracking client and its SQL store), imported only
by `log_runs`. What a run holds is computed here from the sweep's summary
(`kldiv.sweep.summary.summarize`), never recomputed:

  run name  the configuration's name
  params    its grid values (as in its name), `seeds` (how many the sweep trained) and the data
            (`data.source`, `data.seed`, ... every DataConfig field that is set)
  metrics   for each metric of the statistics: `<metric>_mean` and the 95% t interval's bounds
            `<metric>_ci_low`, `<metric>_ci_high` over the paired seeds (no interval when there is
            no spread or one seed); `runs`, `paired_seeds`, `diverged_runs`, `stuck_runs`. A
            configuration left out of the statistics (diverged on every seed) has the counts only.
  tags      `kldiv.version`, `kldiv.sweep` (the sweep directory), `kldiv.sweep_id` (what
            identifies the sweep in a store), `kldiv.compared`, `kldiv.winner`

One sweep is exported to an experiment once: `log_runs` refuses an experiment that already holds
runs with the sweep's id, so a second export never doubles a sweep silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kldiv.checks import ConfigError
from kldiv.config import to_dict
from kldiv.sweep.plan import SweepPlan, value_text
from kldiv.sweep.store import StoredRuns
from kldiv.sweep.summary import SweepSummary

SWEEP_ID_TAG = "kldiv.sweep_id"


@dataclass(frozen=True)
class RunRecord:
    """What one MLflow run holds (see the module docstring)."""

    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def default_tracking_uri(directory: Path) -> str:
    """`sqlite:///<DIR>/mlflow.db`, DIR absolute."""
    return f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"


def sweep_id(directory: Path) -> str:
    """What identifies a sweep in a tracking store: a hash of its directory's name and its
    config.json (written once, never changed), so a moved directory keeps its id."""
    directory = Path(directory)
    digest = hashlib.sha256(directory.resolve().name.encode() + b"\0")
    digest.update((directory / "config.json").read_bytes())
    return digest.hexdigest()[:16]


def run_records(
    directory: Path, plan: SweepPlan, summary: SweepSummary, runs: Mapping[str, StoredRuns]
) -> list[RunRecord]:
    """One record per configuration with stored runs, in grid order."""
    from kldiv import __version__

    data = {f"data.{k}": value_text(v) for k, v in to_dict(plan.data).items() if v is not None}
    stats = summary.stats
    identity = sweep_id(directory)
    out = []
    for c in plan.configurations:
        if c.name not in runs:
            continue
        failed = summary.failures.get(c.name, {})
        metrics = {
            "runs": float(runs[c.name].seeds.size),
            "diverged_runs": float(len(failed.get("diverged", ()))),
            "stuck_runs": float(len(failed.get("stuck", ()))),
        }
        compared = c.name in summary.compared
        if compared:
            metrics["paired_seeds"] = float(stats.n_seeds)
            for m in stats.metrics:
                s = stats.summary(c.name, m)
                metrics[f"{m}_mean"] = s.mean
                if s.t_interval is not None:
                    metrics[f"{m}_ci_low"], metrics[f"{m}_ci_high"] = s.t_interval
        out.append(
            RunRecord(
                name=c.name,
                params={
                    **{n: value_text(v) for n, v in c.values},
                    "seeds": str(len(plan.seeds)),
                    **data,
                },
                metrics={k: float(v) for k, v in metrics.items() if math.isfinite(v)},
                tags={
                    "kldiv.version": __version__,
                    "kldiv.sweep": str(Path(directory).resolve()),
                    SWEEP_ID_TAG: identity,
                    "kldiv.compared": str(compared).lower(),
                    "kldiv.winner": str(c.name == summary.winner).lower(),
                },
            )
        )
    return out


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's own chatter off for the block: its INFO log lines (database creation and
    migration), and SQLAlchemy 2.1's deprecation of the `noload` loader strategy, which MLflow's
    SQL store (3.17) still asks for; nothing here reads the related rows that option affects."""
    import logging

    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"The ``noload`` loader strategy is deprecated",
                category=DeprecationWarning,
            )
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def log_runs(
    records: Sequence[RunRecord],
    *,
    tracking_uri: str,
    experiment: str,
    artifact_location: str | None = None,
) -> tuple[str, list[str]]:
    """Log `records` as finished runs of `experiment` (created if missing, with
    `artifact_location`) in the store at `tracking_uri`; return the experiment id and the run ids.

    All or nothing as far as MLflow allows: if logging stops part-way (an error, Ctrl-C), the runs
    created so far are deleted before the exception propagates.

    Raises:
      ConfigError("tracking-uri", ...): the store cannot be opened.
      ConfigError("experiment", ...): the experiment is deleted, or already holds runs of this
        sweep (the records' `kldiv.sweep_id` tag).
    """
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    identity = {r.tags[SWEEP_ID_TAG] for r in records}
    assert len(identity) == 1, identity
    (identity_value,) = identity
    with _quiet_mlflow():
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
            found = client.get_experiment_by_name(experiment)
        except MlflowException as err:
            reason = str(err.message).strip().splitlines()[0].split(". ")[0].strip()
            raise ConfigError(
                "tracking-uri",
                f"expected an MLflow tracking store, got {tracking_uri!r} ({reason})",
            ) from None
        if found is not None and found.lifecycle_stage != "active":
            raise ConfigError(
                "experiment",
                f"expected an active experiment, got {experiment!r}, which is deleted in "
                f"{tracking_uri} (restore it, or choose another name)",
            )
        if found is None:
            experiment_id = client.create_experiment(experiment, artifact_location)
        else:
            experiment_id = found.experiment_id
            earlier = client.search_runs(
                [experiment_id], f"tags.`{SWEEP_ID_TAG}` = '{identity_value}'", max_results=1000
            )
            if earlier:
                raise ConfigError(
                    "experiment",
                    f"expected no runs of this sweep in {experiment!r} of {tracking_uri}, got "
                    f"{len(earlier)} from an earlier export (kept as they are; choose another "
                    "--experiment to export again)",
                )
        created: list[str] = []
        try:
            for r in records:
                run = client.create_run(experiment_id, run_name=r.name, tags=r.tags)
                created.append(run.info.run_id)
                stamp = int(time.time() * 1000)
                client.log_batch(
                    run.info.run_id,
                    metrics=[Metric(k, v, stamp, 0) for k, v in r.metrics.items()],
                    params=[Param(k, v) for k, v in r.params.items()],
                )
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
        except BaseException:
            for run_id in created:
                with contextlib.suppress(Exception):
                    client.delete_run(run_id)
            raise
    return experiment_id, created
