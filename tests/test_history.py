import csv
import io
import json

import numpy as np

from kldiv.history import history_csv, history_json, load_history_json
from kldiv.train import HISTORY_KEYS


def make_history(runs, epochs):
    rng = np.random.default_rng(0)
    return {k: rng.random((runs, epochs)).astype(np.float32) for k in HISTORY_KEYS}


def test_single_run_json_is_keras_history_layout():
    history = make_history(1, 4)
    doc = json.loads(history_json(history, [3]))
    assert doc["seeds"] == [3] and doc["epochs"] == 4
    for key in HISTORY_KEYS:
        assert doc[key] == [float(v) for v in history[key][0]]


def test_many_runs_json_round_trips():
    history = make_history(3, 5)
    history["val_loss"][1, 2] = np.nan
    text = history_json(history, [0, 1, 2])
    assert json.loads(text)["val_loss"][1][2] is None  # strict JSON, no NaN literal
    loaded, seeds = load_history_json(text)
    assert seeds == [0, 1, 2]
    for key in HISTORY_KEYS:
        np.testing.assert_array_equal(loaded[key], history[key].astype(np.float64))


def test_csv_has_one_row_per_seed_and_epoch():
    history = make_history(2, 3)
    rows = list(csv.DictReader(io.StringIO(history_csv(history, [10, 11]))))
    assert len(rows) == 6
    assert list(rows[0]) == ["seed", "epoch", *HISTORY_KEYS]
    assert rows[4]["seed"] == "11" and rows[4]["epoch"] == "1"
    assert float(rows[4]["val_accuracy"]) == float(history["val_accuracy"][1, 1])
