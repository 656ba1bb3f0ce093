"""A sweep's store as tidy tables for users' viewers, in CSV (stdlib) or Parquet (pyarrow, the
optional extra `kldiv[parquet]`, imported only when written).

Two tables, both in grid order then seed:
  runs     one row per (configuration, seed): the configuration's name, one column per grid name,
           the seed, the status and diverged epoch, every final metric, and where the run trained
           (backend, host, device)
  history  one row per (configuration, seed, epoch): the configuration's name, its grid values,
           the seed, the epoch (1-based) and every history metric, named `history_<key>`
           (`history_loss`, `history_val_accuracy`, ...: the grid's `loss` is the loss's name)

Columns are typed (`Column.kind`): "str", "int", "bool", "float" (float64) and "float32" (the
stored history's precision). A missing value, a non-finite number included (the store keeps final
metrics as null where non-finite), is an empty CSV cell and a Parquet null.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.sweep.plan import STRUCTURAL, SweepPlan, value_text
from kldiv.sweep.store import Store, read_plan

FORMATS = ("csv", "parquet", "mlflow")
TABLES = ("runs", "history")
# Grid value kinds (`kldiv.sweep.plan.STRUCTURAL`; optimizer numbers are floats) -> column kind;
# hidden layer widths are text such as "64/32", as in configuration names.
_GRID_KIND = {"loss": "str", "str": "str", "optimizer": "str", "hidden": "str", "int": "int"}
_GRID_KIND |= {"bool": "bool", "float": "float"}


@dataclass(frozen=True)
class Column:
    """One typed column. kind "str", "int", "bool": a list (None = missing); "float", "float32":
    a numpy array of that precision, NaN where missing."""

    name: str
    kind: str
    values: Sequence[Any]


@dataclass(frozen=True)
class Table:
    """Columns of equal length, in order."""

    columns: tuple[Column, ...]

    @property
    def n_rows(self) -> int:
        return len(self.columns[0].values) if self.columns else 0

    def column(self, name: str) -> Column:
        """The column called `name`. Raises KeyError(name) if there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _grid_columns(plan: SweepPlan, configs: Sequence[str]) -> list[Column]:
    """The configuration name and one column per grid name, for rows of `configs`."""
    grid = {c.name: dict(c.values) for c in plan.configurations}
    columns = [Column("configuration", "str", list(configs))]
    for name, _ in plan.grid:
        kind = _GRID_KIND[STRUCTURAL.get(name, "float")]
        values = [grid[c][name] for c in configs]
        if kind == "str":
            values = [value_text(v) for v in values]
        elif kind == "float":
            values = np.array(values, np.float64)
        columns.append(Column(name, kind, values))
    return columns


def _in_order(names: list[str], new: Sequence[str]) -> None:
    names += [n for n in new if n not in names]


def runs_table(directory: Path) -> Table:
    """Every stored run of the sweep in `directory` (see the module docstring).

    Raises ConfigError("resume", ...): not a sweep directory, or its store is in use.
    """
    plan, _ = read_plan(directory)
    with Store(directory) as store:
        rows = store.db.execute(  # type: ignore[union-attr]
            "SELECT r.config, r.seed, r.status, r.diverged_epoch, r.final, c.backend, c.host, "
            "c.device FROM runs r JOIN chunks c USING (chunk_id) JOIN configs g "
            "ON g.name = r.config ORDER BY g.position, r.seed"
        ).fetchall()
    finals = [json.loads(row[4]) for row in rows]
    metrics: list[str] = []
    for final in finals:
        _in_order(metrics, final)
    columns = _grid_columns(plan, [row[0] for row in rows])
    columns += [
        Column("seed", "int", [int(row[1]) for row in rows]),
        Column("status", "str", [row[2] for row in rows]),
        Column("diverged_epoch", "int", [int(row[3]) for row in rows]),
    ]
    for m in metrics:
        values = [np.nan if f.get(m) is None else float(f[m]) for f in finals]
        columns.append(Column(m, "float", np.array(values, np.float64)))
    for i, name in enumerate(("backend", "host", "device"), start=5):
        columns.append(Column(name, "str", [row[i] for row in rows]))
    return Table(tuple(columns))


def history_table(directory: Path) -> Table:
    """Every stored run's per-epoch history (see the module docstring); a metric a run did not
    record is missing in its rows.

    Raises ConfigError("resume", ...): not a sweep directory, or its store is in use.
    """
    plan, _ = read_plan(directory)
    with Store(directory) as store:
        rows = store.db.execute(  # type: ignore[union-attr]
            "SELECT r.config, r.seed, r.history, c.history_keys FROM runs r JOIN chunks c "
            "USING (chunk_id) JOIN configs g ON g.name = r.config ORDER BY g.position, r.seed"
        ).fetchall()
    keys = [json.loads(row[3]) for row in rows]
    # one (history keys, epochs) block per run
    blocks = [
        np.frombuffer(r[2], "<f4").reshape(len(k), -1) for r, k in zip(rows, keys, strict=True)
    ]
    metrics: list[str] = []
    for k in keys:
        _in_order(metrics, k)
    epochs = np.array([b.shape[1] for b in blocks], np.int64)  # (runs,)
    configs = [row[0] for row, n in zip(rows, epochs, strict=True) for _ in range(n)]
    columns = _grid_columns(plan, configs)
    seeds = np.repeat(np.array([row[1] for row in rows], np.int64), epochs)
    columns.append(Column("seed", "int", seeds.tolist()))
    columns.append(Column("epoch", "int", [e + 1 for n in epochs for e in range(n)]))
    for m in metrics:
        parts = [
            b[k.index(m)] if m in k else np.full(b.shape[1], np.nan, np.float32)
            for b, k in zip(blocks, keys, strict=True)
        ]
        values = np.concatenate(parts) if parts else np.zeros(0, np.float32)  # (rows,)
        values = np.where(np.isfinite(values), values, np.float32(np.nan)).astype(np.float32)
        columns.append(Column(f"history_{m}", "float32", values))
    return Table(tuple(columns))


TABLE_FUNCTIONS = {"runs": runs_table, "history": history_table}


def _cells(column: Column) -> list[str]:
    """The CSV text of a column: shortest exact floats (float32's own shortest for float32),
    booleans as true/false, missing values empty."""
    if column.kind in ("float", "float32"):
        values = np.asarray(column.values)
        text = [repr(float(v)) if column.kind == "float" else str(v) for v in values]
        return [t if np.isfinite(v) else "" for t, v in zip(text, values, strict=True)]
    if column.kind == "bool":
        return ["" if v is None else str(bool(v)).lower() for v in column.values]
    return ["" if v is None else str(v) for v in column.values]


def csv_text(table: Table) -> str:
    """The table as CSV: a header of column names, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    writer.writerows(zip(*(_cells(c) for c in table.columns), strict=True))
    return out.getvalue()


def runs_csv(directory: Path) -> str:
    """The CSV text of every stored run of the sweep in `directory`, in grid order then seed."""
    return csv_text(runs_table(directory))


def parquet_bytes(table: Table, metadata: dict[str, str] | None = None) -> bytes:
    """The table as a Parquet file (pyarrow; zstd-compressed), with `metadata` in its schema.

    Raises ModuleNotFoundError("pyarrow"): the extra kldiv[parquet] is not installed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "str": pa.string(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "float": pa.float64(),
        "float32": pa.float32(),
    }
    arrays = []
    for c in table.columns:
        if c.kind in ("float", "float32"):
            values = np.asarray(c.values)
            arrays.append(pa.array(values, types[c.kind], mask=~np.isfinite(values)))
        else:
            arrays.append(pa.array(list(c.values), types[c.kind]))
    schema = pa.schema(
        [pa.field(c.name, types[c.kind]) for c in table.columns], metadata=metadata or None
    )
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
