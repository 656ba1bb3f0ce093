"""The sweep directory and its results store (SQLite), which is also the resume journal.

A sweep directory is long-lived and appended to, unlike a run directory:
  config.json      the plan (grid, defaults, data, seeds, seeds per task) and the command; written
                   once, when the directory is created, and never changed
  environment.json the driver's environment when the sweep was created
  results.sqlite   the store (schema below), in WAL mode, written by the driver process only
  <stamp>-summary/ the statistics, figures and report.html, written once every run is stored

"Never a partial or overwritten file" means here: the directory appears complete (config.json,
environment.json and an empty store with its configurations) by the rename of a staging
directory; afterwards the only file that changes is the store, and it changes only by SQLite
transactions, one per finished task, each inserting every run of the task or none. A `kill -9` at
any moment leaves the store at the last committed task; the summary directory is renamed into
place whole, like a run directory. One driver at a time holds the store (an exclusive lock on
results.sqlite), so two `--resume`s of one directory cannot both train.

Schema (every (configuration, seed) at most once: the primary key of `runs`):
  sweep(key, value)           "schema" -> "1", "plan" -> the plan's JSON
  configs(name, position, train)    configuration name, grid order, its TrainConfig as JSON
  chunks(chunk_id, backend, host, pid, device, path, n_runs, history_keys, started, seconds,
         stored)              one row per finished task: where and how long it ran
  runs(config, seed, status, diverged_epoch, final, history, chunk_id)
                              status 'ok' or 'diverged' (diverged_epoch: the first non-finite
                              epoch, 0 if none); final: JSON metric -> value (null where
                              non-finite); history: float32 little-endian (history keys, epochs),
                              the keys listed in the chunk's history_keys
"""

from __future__ import annotations

import fcntl
import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.checks import ConfigError
from kldiv.config import to_dict
from kldiv.sweep.plan import SweepPlan

STORE = "results.sqlite"
SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE sweep(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE configs(name TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE, train TEXT NOT NULL);
CREATE TABLE chunks(
  chunk_id INTEGER PRIMARY KEY, backend TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
  device TEXT NOT NULL, path TEXT NOT NULL, n_runs INTEGER NOT NULL, history_keys TEXT NOT NULL,
  started REAL NOT NULL, seconds REAL NOT NULL, stored REAL NOT NULL);
CREATE TABLE runs(
  config TEXT NOT NULL REFERENCES configs(name), seed INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'diverged')), diverged_epoch INTEGER NOT NULL,
  final TEXT NOT NULL, history BLOB NOT NULL,
  chunk_id INTEGER NOT NULL REFERENCES chunks(chunk_id),
  PRIMARY KEY (config, seed));
"""


def create_sweep(
    root: Path, plan: SweepPlan, command: str, extra: Mapping[str, Any] | None = None
) -> Path:
    """Create a new sweep directory under `root` (`<stamp>-sweep`) holding the plan, the
    environment and an empty store, all at once (staging directory, then rename); return it."""
    from kldiv.records import RunDir, environment, write_json

    record = {"kind": "sweep", "command": command, **plan.to_dict(), **dict(extra or {})}
    with RunDir(root, "sweep") as run:
        write_json(run.staging / "config.json", record)
        write_json(run.staging / "environment.json", environment())
        db = sqlite3.connect(run.staging / STORE, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            db.execute("INSERT INTO sweep VALUES ('schema', ?)", (SCHEMA_VERSION,))
            db.execute("INSERT INTO sweep VALUES ('plan', ?)", (json.dumps(plan.to_dict()),))
            db.executemany(
                "INSERT INTO configs VALUES (?, ?, ?)",
                [
                    (c.name, i, json.dumps(to_dict(c.train)))
                    for i, c in enumerate(plan.configurations)
                ],
            )
            db.execute("COMMIT")
        finally:
            db.close()
    assert run.path is not None
    return run.path


def read_plan(path: Path) -> tuple[SweepPlan, dict[str, Any]]:
    """The plan and config.json of the sweep directory `path`.

    Raises ConfigError("resume", ...): `path` is not a sweep directory, or its plan is unreadable.
    """
    path = Path(path)
    config, store = path / "config.json", path / STORE
    if not path.is_dir() or not config.is_file() or not store.is_file():
        raise ConfigError(
            "resume", f"expected a sweep directory (config.json, {STORE}), got {str(path)!r}"
        )
    try:
        record = json.loads(config.read_text())
        if record.get("kind") != "sweep":
            raise ValueError("not a sweep's config.json")
        return SweepPlan.from_dict(record), record
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError("resume", f"{str(config)!r}: expected a sweep's plan ({err})") from None


def read_data(plan: SweepPlan, record: Mapping[str, Any]) -> Any:
    """The data the sweep trained on (`kldiv.experiment.load` of its plan), checked against the
    fingerprint the sweep recorded when it started.

    Raises ConfigError("resume", ...): the data cannot be read, or its files changed.
    """
    from kldiv import experiment as ex

    try:
        data = ex.load(ex.Experiment(data=plan.data))
    except ConfigError as err:
        detail = str(err).removeprefix(f"{err.field}: ")
        raise ConfigError(
            "resume", f"expected the sweep's data to be readable ({detail})"
        ) from None
    if record.get("data_files") != json.loads(json.dumps(data.fingerprint)):
        raise ConfigError("resume", "expected the data the sweep started with; its files changed")
    return data


@dataclass(frozen=True)
class StoredRuns:
    """One configuration's stored runs, seeds in ascending order: seeds (n,) int64; final: metric
    -> (n,) float64 (NaN where non-finite); history: key -> (n, epochs) float32; diverged (n,)."""

    seeds: np.ndarray
    final: dict[str, np.ndarray]
    history: dict[str, np.ndarray]
    diverged: np.ndarray

    @property
    def healthy(self) -> np.ndarray:
        return self.diverged == 0


class Store:
    """The results store of a sweep directory, held exclusively while open (context manager).

    Raises ConfigError("resume", ...) on entry when another process holds it.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / STORE
        self._lock: Any = None
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> Store:
        self._lock = open(self.path, "rb")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigError(
                "resume", f"{str(self.path.parent)!r} is in use by another kldiv sweep"
            ) from None
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        return self

    def __exit__(self, *_: object) -> None:
        if self.db is not None:
            self.db.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock

    @property
    def _db(self) -> sqlite3.Connection:
        assert self.db is not None, "use Store as a context manager"
        return self.db

    def done(self) -> set[tuple[str, int]]:
        """Every stored (configuration name, seed)."""
        return {(c, int(s)) for c, s in self._db.execute("SELECT config, seed FROM runs")}

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def add(self, result: Mapping[str, Any], backend: str) -> int:
        """Store a finished task (`kldiv.sweep.task.run_task`'s result) in one transaction and
        return its chunk id. A (configuration, seed) already stored raises sqlite3.IntegrityError
        and stores nothing of the task."""
        keys = list(result["history_keys"])
        rows = []
        for piece in result["pieces"]:
            history = np.stack([np.asarray(piece["history"][k], "<f4") for k in keys], axis=1)
            for i, seed in enumerate(piece["seeds"]):
                final = {k: _finite(v[i]) for k, v in piece["final"].items()}
                epoch = int(piece["diverged"][i])
                status = "diverged" if epoch else "ok"
                rows.append(
                    (piece["config"], int(seed), status, epoch, json.dumps(final), history[i])
                )
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "INSERT INTO chunks(backend, host, pid, device, path, n_runs, history_keys, "
                "started, seconds, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    backend,
                    str(result["host"]),
                    int(result["pid"]),
                    str(result["device"]),
                    str(result["path"]),
                    len(rows),
                    json.dumps(keys),
                    float(result["started"]),
                    float(result["seconds"]),
                    time.time(),
                ),
            )
            chunk_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*r[:5], r[5].tobytes(), chunk_id) for r in rows],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return chunk_id

    def configurations(self) -> list[str]:
        """Configuration names in grid order."""
        return [n for (n,) in self._db.execute("SELECT name FROM configs ORDER BY position")]

    def runs(self) -> dict[str, StoredRuns]:
        """Every configuration with at least one stored run, in grid order."""
        out = {}
        for name in self.configurations():
            rows = list(self._rows(name))
            if not rows:
                continue
            seeds, finals, histories, diverged = zip(*rows, strict=True)
            metrics = list(finals[0])
            out[name] = StoredRuns(
                seeds=np.array(seeds, np.int64),
                final={m: np.array([f[m] for f in finals], np.float64) for m in metrics},
                history={k: np.stack([h[k] for h in histories]) for k in histories[0]},
                diverged=np.array(diverged, np.int64),
            )
        return out

    def _rows(self, name: str) -> Iterator[tuple[int, dict, dict, int]]:
        query = (
            "SELECT r.seed, r.final, r.history, r.diverged_epoch, c.history_keys FROM runs r "
            "JOIN chunks c USING (chunk_id) WHERE r.config = ? ORDER BY r.seed"
        )
        for seed, final, blob, epoch, keys in self._db.execute(query, (name,)):
            keys = json.loads(keys)
            values = np.frombuffer(blob, "<f4").reshape(len(keys), -1)
            final = {k: math.nan if v is None else v for k, v in json.loads(final).items()}
            yield int(seed), final, dict(zip(keys, values, strict=True)), int(epoch)

    def chunks(self) -> list[dict[str, Any]]:
        """Every stored task's row, in the order stored."""
        cursor = self._db.execute("SELECT * FROM chunks ORDER BY chunk_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def _finite(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None
