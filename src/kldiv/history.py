"""Training histories as files: Keras' key names, JSON and CSV.

A history maps each of `loss`, `accuracy`, `val_loss`, `val_accuracy` to an array shaped (epochs,) for
one run or (runs, epochs) for many. JSON keeps Keras' `History.history` layout (a list per key, a list
of lists for many runs, with the seeds alongside); CSV has one row per epoch (and run), as Keras'
CSVLogger writes it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

import numpy as np

from kldiv.train import HISTORY_KEYS


def _as_runs(history: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every key as a (runs, epochs) float64 array."""
    return {k: np.atleast_2d(np.asarray(history[k], np.float64)) for k in HISTORY_KEYS}


def history_json(history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> str:
    """JSON text: {"seeds": [...], "epochs": E, "loss": [...] or [[...], ...], ...}.

    With one seed each key holds a flat list (exactly Keras' `History.history`); with several, one list
    per seed in the order of `seeds`. Non-finite values become null.
    """
    runs = _as_runs(history)
    single = len(seeds) == 1

    def clean(row: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in row]

    doc: dict[str, object] = {"seeds": [int(s) for s in seeds], "epochs": runs["loss"].shape[1]}
    for key, values in runs.items():
        doc[key] = clean(values[0]) if single else [clean(row) for row in values]
    return json.dumps(doc, indent=1) + "\n"


def history_csv(history: Mapping[str, np.ndarray], seeds: Sequence[int]) -> str:
    """CSV text with header `seed,epoch,loss,accuracy,val_loss,val_accuracy`; epochs count from 0."""
    runs = _as_runs(history)
    out = io.StringIO()
    out.write(",".join(("seed", "epoch", *HISTORY_KEYS)) + "\n")
    for r, seed in enumerate(seeds):
        for e in range(runs["loss"].shape[1]):
            values = ",".join(repr(float(runs[k][r, e])) for k in HISTORY_KEYS)
            out.write(f"{int(seed)},{e},{values}\n")
    return out.getvalue()


def load_history_json(text: str) -> tuple[dict[str, np.ndarray], list[int]]:
    """Inverse of `history_json`: arrays shaped (runs, epochs) and the seeds."""
    doc = json.loads(text)
    seeds = [int(s) for s in doc["seeds"]]
    history = {}
    for key in HISTORY_KEYS:
        values = np.array(doc[key], dtype=np.float64)  # null -> nan
        history[key] = values.reshape(len(seeds), -1)
    return history, seeds
