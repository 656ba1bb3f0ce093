import csv
import io
import json
import os

import jax
import numpy as np
import pytest

from kldiv.config import TrainConfig
from kldiv.data import load_data
from kldiv.engine import TrainResult
from kldiv.experiment import Experiment, run
from kldiv.model import MLP
from kldiv.objectives import Classifier, history_keys
from kldiv.records import (
    RunDir,
    environment,
    history_csv,
    history_json,
    load_history_json,
    load_params,
    load_run,
    metrics_record,
    save_params,
    save_run,
    write_atomic,
    write_json,
)

HISTORY_KEYS = history_keys(Classifier.metric_names)


# --------------------------------------------------------------------------------------------------
# Files and directories


def test_write_atomic_writes_text_in_pieces_and_leaves_nothing_when_they_fail(tmp_path):
    write_atomic(tmp_path / "a.txt", (piece for piece in ["one ", "two ", "thr\u00e9e"]))
    assert (tmp_path / "a.txt").read_text() == "one two thr\u00e9e"

    def failing():
        yield "half"
        raise RuntimeError("the pieces stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        write_atomic(tmp_path / "b.txt", failing())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_atomic_never_replaces_a_file(tmp_path):
    path = tmp_path / "a.txt"
    write_atomic(path, "one")
    with pytest.raises(FileExistsError, match=r"a\.txt: expected a new file"):
        write_atomic(path, "two")
    assert path.read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]  # no temporary file left behind


def test_write_json_is_strict_json(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1.5, None]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1.5, None]}
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(tmp_path / "b.json", {"x": float("nan")})
    assert not (tmp_path / "b.json").exists()


def test_run_dirs_never_collide(tmp_path):
    paths = []
    for _ in range(3):
        with RunDir(tmp_path, "run") as rd:
            write_json(rd.staging / "x.json", {"a": 1})
        paths.append(rd.path)
    assert len(set(paths)) == 3
    assert all(json.loads((p / "x.json").read_text()) == {"a": 1} for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_run_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), RunDir(tmp_path, "run") as rd:
        write_json(rd.staging / "x.json", {"a": 1})
        raise RuntimeError("boom")
    assert rd.path is None
    assert list(tmp_path.iterdir()) == []


def test_params_round_trip_through_safetensors_without_pickle(tmp_path):
    params = MLP((2, 50, 3)).init(jax.random.key(0))
    path = tmp_path / "model.safetensors"
    save_params(path, params, {"note": "x"})
    assert path.read_bytes()[8:9] == b"{"  # safetensors: 8-byte length, then a JSON header
    loaded = load_params(path)
    assert len(loaded) == len(params)
    for (w, b), (w0, b0) in zip(loaded, params, strict=True):
        assert w.dtype == np.float32 and w.shape == w0.shape
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)


def test_load_params_rejects_foreign_tensors(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "other.safetensors"
    save_file({"weight": np.zeros(2, np.float32), "bias": np.zeros(2, np.float32)}, str(path))
    with pytest.raises(ValueError, match=r"other\.safetensors: expected kldiv layer tensors"):
        load_params(path)


def test_environment_names_versions_and_devices():
    env = environment()
    assert env["packages"]["jax"] == jax.__version__
    assert env["devices"] and env["python"].count(".") == 2
    json.dumps(env)


def test_files_and_run_dirs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with RunDir(tmp_path, "run") as rd:
            write_json(rd.staging / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert rd.path is not None
    assert rd.path.stat().st_mode & 0o777 == 0o755
    assert (rd.path / "x.json").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------------
# Histories


def make_history(runs, epochs):
    rng = np.random.default_rng(0)
    return {k: rng.random((runs, epochs)).astype(np.float32) for k in HISTORY_KEYS}


def test_history_keys_are_keras_names():
    assert HISTORY_KEYS == ("loss", "accuracy", "val_loss", "val_accuracy")


def test_single_run_json_is_keras_history_layout():
    history = make_history(1, 4)
    doc = json.loads(history_json(history, [3]))
    assert doc["seeds"] == [3] and doc["epochs"] == 4
    for key in HISTORY_KEYS:
        assert doc[key] == [float(v) for v in history[key][0]]


def test_many_runs_json_round_trips():
    history = make_history(3, 5)
    history["val_loss"][1, 2] = np.nan
    history["loss"][2, 0] = np.inf
    text = history_json(history, [0, 1, 2])
    assert json.loads(text)["val_loss"][1][2] is None  # strict JSON, no NaN literal
    loaded, seeds = load_history_json(text)
    assert seeds == [0, 1, 2]
    assert list(loaded) == list(HISTORY_KEYS)
    for key in HISTORY_KEYS:
        expected = history[key].astype(np.float64)
        expected[~np.isfinite(expected)] = np.nan  # non-finite values come back as NaN
        np.testing.assert_array_equal(loaded[key], expected)


def test_single_run_json_round_trips_with_a_run_axis():
    history = make_history(1, 3)
    loaded, seeds = load_history_json(history_json(history, [7]))
    assert seeds == [7]
    for key in HISTORY_KEYS:
        assert loaded[key].shape == (1, 3)
        np.testing.assert_array_equal(loaded[key], history[key].astype(np.float64))


def test_history_csv_is_the_text_csv_and_float_repr_give():
    """Written a run at a time from lists' reprs, each value is still float.__repr__ of it."""
    rng = np.random.default_rng(2)
    history = {k: rng.normal(size=(3, 5)) * 10.0 ** rng.integers(-20, 20, (3, 5)) for k in "abc"}
    history["a"][0, 1], history["b"][2, 4], history["c"][1, 0] = np.nan, np.inf, -np.inf
    history["d"] = rng.random((3, 5)).astype(np.float32)
    want = io.StringIO()
    writer = csv.writer(want, lineterminator="\n")
    writer.writerow(["seed", "epoch", *history])
    for r, seed in enumerate([4, 0, 9]):
        for e in range(5):
            writer.writerow([seed, e, *(repr(float(history[k][r, e])) for k in history)])
    assert history_csv(history, [4, 0, 9]) == want.getvalue()


def test_csv_has_one_row_per_seed_and_epoch():
    history = make_history(2, 3)
    rows = list(csv.DictReader(io.StringIO(history_csv(history, [10, 11]))))
    assert len(rows) == 6
    assert list(rows[0]) == ["seed", "epoch", *HISTORY_KEYS]
    assert rows[4]["seed"] == "11" and rows[4]["epoch"] == "1"
    assert float(rows[4]["val_accuracy"]) == float(history["val_accuracy"][1, 1])


# --------------------------------------------------------------------------------------------------
# Metrics and run directories


def hand_made_result(diverged):
    """A TrainResult of len(diverged) runs with known final metrics; diverged runs hold NaN."""
    diverged = np.asarray(diverged, np.int64)
    n = diverged.size
    rng = np.random.default_rng(1)
    final = {
        k: rng.random(n).astype(np.float32)
        for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    }
    for v in final.values():
        v[diverged > 0] = np.nan
    params = tuple(
        (np.zeros((n, i, o), np.float32), np.zeros((n, o), np.float32)) for i, o in ((2, 4), (4, 3))
    )
    history = {k: np.zeros((n, 3), np.float32) for k in HISTORY_KEYS}
    return TrainResult(
        seeds=np.arange(10, 10 + n, dtype=np.int64),
        params=params,
        history=history,
        final=final,
        hyperparameters={"learning_rate": np.full(n, 0.01, np.float32)},
        diverged=diverged,
        path="generic",
        chunk=25,
    )


def test_metrics_record_lists_diverged_runs_and_averages_healthy_runs_only():
    result = hand_made_result([0, 2, 0, 3])
    record = metrics_record(result)
    json.dumps(record, allow_nan=False)  # strict JSON
    assert record["seeds"] == [10, 11, 12, 13]
    assert record["diverged"] == [{"seed": 11, "epoch": 2}, {"seed": 13, "epoch": 3}]
    for key, values in result.final.items():
        assert record[key][1] is None and record[key][3] is None
        assert record[key][0] == float(values[0]) and record[key][2] == float(values[2])
        expected = (np.float64(values[0]) + np.float64(values[2])) / 2
        assert record["mean"][key] == pytest.approx(expected, rel=1e-6)


def test_metrics_record_of_healthy_and_of_all_diverged_runs():
    healthy = metrics_record(hand_made_result([0, 0, 0]))
    assert healthy["diverged"] == []
    for key, value in healthy["mean"].items():
        assert value == pytest.approx(np.mean(np.asarray(healthy[key], np.float64)), rel=1e-6)
    broken = metrics_record(hand_made_result([1, 4]))
    assert all(v is None for v in broken["mean"].values())
    assert [d["epoch"] for d in broken["diverged"]] == [1, 4]


SMALL = TrainConfig(epochs=2, hidden=(8,))


@pytest.fixture(scope="module")
def trained():
    """(experiment, result) for one seed and for two: small, trained once for the module."""
    out = {}
    for seeds in ((3,), (1, 2)):
        experiment = Experiment(train=SMALL, seeds=seeds)
        out[seeds] = (experiment, run(experiment))
    return out


@pytest.mark.parametrize("seeds", [(3,), (1, 2)])
def test_load_run_returns_the_experiment_and_the_weights_with_a_run_axis(tmp_path, trained, seeds):
    experiment, result = trained[seeds]
    path = save_run(
        tmp_path, experiment, result, data=load_data(experiment.data), command="kldiv run --test"
    )
    loaded, params = load_run(path)
    assert loaded == experiment
    assert len(params) == len(result.params) == 2
    for (w, b), (w0, b0) in zip(params, result.params, strict=True):
        assert w.shape == w0.shape and w.shape[0] == len(seeds)
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)
    # the loaded weights reproduce the recorded final test accuracy
    ds = load_data(experiment.data).dataset
    model = MLP((2, 8, 3))
    for r in range(len(seeds)):
        logits = np.asarray(model.apply(tuple((w[r], b[r]) for w, b in params), ds.x_val))
        accuracy = np.mean(np.argmax(logits, 1) == np.argmax(ds.y_val, 1))
        assert accuracy == pytest.approx(float(result.final["test_accuracy"][r]), abs=1e-6)


def test_save_run_writes_every_file_and_the_record(tmp_path, trained):
    experiment, result = trained[(1, 2)]
    path = save_run(
        tmp_path,
        experiment,
        result,
        data=load_data(experiment.data),
        command="kldiv run --x",
        figure_png=b"\x89PNG",
        extra={"teacher": "runs/t"},
    )
    assert {p.name for p in path.iterdir()} == {
        "config.json",
        "environment.json",
        "history.json",
        "history.csv",
        "metrics.json",
        "model.safetensors",
        "plot.png",
    }
    config = json.loads((path / "config.json").read_text())
    assert config["command"] == "kldiv run --x" and config["teacher"] == "runs/t"
    assert config["training"] == {"path": result.path, "chunk": result.chunk}
    assert Experiment.from_dict(config) == experiment  # other keys are ignored
    history, seeds = load_history_json((path / "history.json").read_text())
    assert seeds == [1, 2]
    for key in HISTORY_KEYS:
        np.testing.assert_array_equal(history[key], result.history[key].astype(np.float64))
    assert json.loads((path / "metrics.json").read_text()) == metrics_record(result)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_run_of_a_directory_without_a_model_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"model\.safetensors: expected a kldiv run's model file"):
        load_run(tmp_path)


def test_load_run_of_a_model_without_kldiv_metadata(tmp_path):
    save_params(tmp_path / "model.safetensors", MLP((2, 3)).init(jax.random.key(0)))
    with pytest.raises(ValueError, match=r"model\.safetensors: expected kldiv metadata"):
        load_run(tmp_path)


def _staging_of_a_process(root, code):
    """Start a Python process that enters a RunDir under `root` and waits; return it, its staging."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    script = (
        "import sys; from kldiv.records import RunDir\n"
        f"with RunDir(sys.argv[1], 'run') as rd:\n    print(rd.staging, flush=True)\n    {code}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    staging = Path(proc.stdout.readline().strip())
    deadline = time.monotonic() + 60
    while not staging.is_dir():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    return proc, staging


def test_stale_staging_of_a_killed_process_is_removed_a_live_ones_kept(tmp_path):
    killed, stale = _staging_of_a_process(tmp_path, "__import__('time').sleep(600)")
    killed.kill()  # SIGKILL: no cleanup runs
    killed.wait()
    killed.stdout.close()
    assert stale.is_dir() and stale.name.startswith(f".run-{killed.pid}-")
    live, kept = _staging_of_a_process(tmp_path, "__import__('time').sleep(600)")
    try:
        assert not stale.exists()  # the live process's RunDir removed it on entering
        mine = tmp_path / f".compare-{os.getpid()}-0a0b0c0d.partial"  # a live process's
        mine.mkdir()
        dead = tmp_path / f".distill-{killed.pid}-0a0b0c0d.partial"  # a killed process's
        dead.mkdir()
        with RunDir(tmp_path, "run") as rd:
            write_json(rd.staging / "x.json", {"a": 1})
        assert kept.is_dir() and mine.is_dir()  # concurrent runs' staging is never touched
        assert not dead.exists()  # every kind of directory the commands stage
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [rd.path.name, kept.name, mine.name]
        )
    finally:
        live.kill()
        live.wait()
        live.stdout.close()


def test_an_interrupt_while_moving_into_place_leaves_nothing(tmp_path, monkeypatch):
    real = os.replace

    def replace(src, dst):
        real(src, dst)
        if str(src).endswith(".partial"):
            raise KeyboardInterrupt  # as a signal arriving right after the rename

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), RunDir(tmp_path, "run") as rd:
        write_json(rd.staging / "x.json", {"a": 1})
    monkeypatch.undo()
    assert rd.path is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_history_json_is_the_text_json_dumps_gives(n_seeds):
    """Built a run at a time, the text is still `json.dumps(doc, indent=1)` byte for byte."""
    rng = np.random.default_rng(1)
    history = {
        k: rng.random((n_seeds, 4)).astype(np.float32)
        for k in ("loss", "accuracy", "val_loss", 'odd "key"\u00e9')
    }
    history["loss"][0, 1], history["accuracy"][-1, 2] = np.nan, np.inf
    seeds = [5, 9, 2][:n_seeds]
    runs = {k: np.asarray(v, np.float64) for k, v in history.items()}

    def clean(row):
        return [float(v) if np.isfinite(v) else None for v in row]

    doc = {"seeds": seeds, "epochs": 4}
    for k, v in runs.items():
        doc[k] = clean(v[0]) if n_seeds == 1 else [clean(r) for r in v]
    assert history_json(history, seeds) == json.dumps(doc, indent=1) + "\n"
