"""What one task computes, in plain values, so that any backend can carry it: a payload of JSON-ready
dicts and the data as NumPy arrays in, NumPy arrays and dicts out. No pickle is written anywhere;
Ray moves these values between processes with its own serializer.

A diverged run is a result (its epoch in `diverged`), never an exception; an exception means the
task could not run at all (and a backend may retry it).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from kldiv.config import TrainConfig, to_dict
from kldiv.sweep.plan import Configuration, SweepPlan, Task


def payload(task: Task, plan: SweepPlan) -> dict[str, Any]:
    """The task as JSON-ready values: the program, and per piece the configuration's name, seeds
    and optimizer numbers."""
    by_name: dict[str, Configuration] = {c.name: c for c in plan.configurations}
    return {
        "program": to_dict(task.program),
        "pieces": [
            {
                "config": name,
                "seeds": list(seeds),
                "hyperparameters": by_name[name].hyperparameters,
            }
            for name, seeds in task.pieces
        ],
    }


def dataset_arrays(dataset: Any) -> dict[str, np.ndarray]:
    """A `kldiv.data.Dataset` as a dict of arrays (what crosses to a worker)."""
    return {k: np.asarray(v) for k, v in dataset._asdict().items()}


def run_task(
    task: Mapping[str, Any],
    data: Mapping[str, np.ndarray],
    *,
    on_progress: Any = None,
    devices: Any = None,
) -> dict[str, Any]:
    """Train a task's runs in one `kldiv.engine.train` call and split the result per piece.

    Returns {"pieces": [{"config", "seeds" (n,) int64, "final": metric -> (n,) float64,
    "history": key -> (n, epochs) float32, "diverged": (n,) int64}], "history_keys", "path",
    "host", "pid", "device", "started", "seconds"} where `device` lists the devices used.
    """
    import jax

    from kldiv.data import Dataset
    from kldiv.engine import train

    started = time.time()
    clock = time.perf_counter()
    program = TrainConfig.from_dict(dict(task["program"]))
    pieces = task["pieces"]
    seeds = [int(s) for p in pieces for s in p["seeds"]]
    names = list(program.optimizer.hyperparameters)
    hyper = {h: [float(p["hyperparameters"][h]) for p in pieces for _ in p["seeds"]] for h in names}
    used = tuple(jax.local_devices() if devices is None else devices)
    result = train(
        program,
        Dataset(**{k: np.asarray(v) for k, v in data.items()}),
        seeds,
        hyperparameters=hyper,
        on_progress=on_progress,
        devices=used,
    )
    out_pieces = []
    lo = 0
    for p in pieces:
        pick = slice(lo, lo + len(p["seeds"]))
        lo = pick.stop
        out_pieces.append(
            {
                "config": p["config"],
                "seeds": result.seeds[pick],
                "final": {k: np.asarray(v[pick], np.float64) for k, v in result.final.items()},
                "history": {k: np.asarray(v[pick], np.float32) for k, v in result.history.items()},
                "diverged": result.diverged[pick],
            }
        )
    return {
        "pieces": out_pieces,
        "history_keys": list(result.history),
        "path": result.path,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": ", ".join(str(d) for d in used),
        "started": started,
        "seconds": time.perf_counter() - clock,
    }
