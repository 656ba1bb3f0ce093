"""A sweep's store in the formats users' viewers read. CSV (stdlib): one row per
(configuration, seed), tidy: the configuration's name, one column per grid name, the seed, the
status and diverged epoch, every final metric, and where the run trained (backend, host, device).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from kldiv.sweep.plan import value_text
from kldiv.sweep.store import Store, read_plan

FORMATS = ("csv",)


def runs_csv(directory: Path) -> str:
    """The CSV text of every stored run of the sweep in `directory`, in grid order then seed.
    Non-finite metrics are empty cells."""
    plan, _ = read_plan(directory)
    grid = {c.name: dict(c.values) for c in plan.configurations}
    names = [n for n, _ in plan.grid]
    with Store(directory) as store:
        rows = store.db.execute(  # type: ignore[union-attr]
            "SELECT r.config, r.seed, r.status, r.diverged_epoch, r.final, c.backend, c.host, "
            "c.device FROM runs r JOIN chunks c USING (chunk_id) JOIN configs g "
            "ON g.name = r.config ORDER BY g.position, r.seed"
        ).fetchall()
    metrics: list[str] = []
    for row in rows:
        metrics += [m for m in json.loads(row[4]) if m not in metrics]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "configuration",
            *names,
            "seed",
            "status",
            "diverged_epoch",
            *metrics,
            "backend",
            "host",
            "device",
        ]
    )
    for config, seed, status, epoch, final, backend, host, device in rows:
        values = json.loads(final)
        writer.writerow(
            [
                config,
                *(value_text(grid[config][n]) for n in names),
                seed,
                status,
                epoch,
                *("" if values.get(m) is None else repr(float(values[m])) for m in metrics),
                backend,
                host,
                device,
            ]
        )
    return out.getvalue()
