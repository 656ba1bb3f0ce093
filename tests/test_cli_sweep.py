"""`kldiv sweep` through the CLI: results against the engine, the store, kill -9 and resume, errors."""

import csv
import io
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kldiv.data import DataConfig, load_data
from kldiv.engine import train
from kldiv.sweep.store import Store, read_plan

SRC = str(Path(__file__).resolve().parents[1] / "src")
GRID = ["--grid", "loss=kl,ce", "--grid", "learning_rate=0.01,0.1"]


def sweep_dir(out):
    (d,) = [p for p in Path(out).iterdir() if p.name.endswith("-sweep")]
    return d


def stored(directory):
    with Store(directory) as store:
        return store.runs(), store.chunks()


def test_every_run_equals_the_engine_training_that_configuration_alone(cli, tmp_path):
    args = ["sweep", *GRID, "--seeds", "5", "--chunk", "2", "--epochs", "4"]
    code, out, err = cli([*args, "--out", str(tmp_path), "--no-plot"])
    assert code == 0, err
    directory = sweep_dir(tmp_path)
    plan, _ = read_plan(directory)
    runs, chunks = stored(directory)
    assert list(runs) == [c.name for c in plan.configurations]
    assert sum(c["n_runs"] for c in chunks) == 4 * 5
    data = load_data(DataConfig()).dataset
    for c in plan.configurations:  # an oracle: each configuration trained alone, all seeds at once
        alone = train(c.train, data, plan.seeds)
        r = runs[c.name]
        np.testing.assert_array_equal(r.seeds, np.arange(5))
        for k, v in alone.final.items():
            np.testing.assert_array_equal(r.final[k], v, err_msg=f"{c.name} {k}")
        for k, v in alone.history.items():
            np.testing.assert_array_equal(r.history[k], v.astype(np.float32), err_msg=k)
    assert "winner: " in out

    # the CSV export: one row per (configuration, seed), the stored values
    code, _, err = cli(["export", str(directory), "--to", "csv"])
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO((directory / "runs.csv").read_text())))
    assert len(rows) == 4 * 5
    for row in rows:
        r = runs[row["configuration"]]
        assert float(row["test_accuracy"]) == r.final["test_accuracy"][int(row["seed"])]
        assert row["loss"] in ("kl", "ce") and row["status"] == "ok" and row["host"]
    code, _, err = cli(["export", str(directory), "--to", "csv"])
    assert code == 2 and "expected a new file" in err  # never replaced
    code, _, err = cli(["export", str(tmp_path), "--to", "csv"])
    assert code == 2 and err.startswith("kldiv export: error: DIR: expected a sweep directory")


def test_a_diverging_learning_rate_is_a_stored_result_not_an_error(cli, tmp_path):
    args = ["sweep", "--grid", "learning_rate=0.01,50", "--seeds", "3", "--epochs", "3"]
    code, out, err = cli([*args, "--out", str(tmp_path), "--no-plot"])
    assert code == 0, err
    runs, _ = stored(sweep_dir(tmp_path))
    bad = runs["learning_rate=50.0"]
    assert (bad.diverged >= 1).all() and (bad.diverged <= 3).all()
    assert runs["learning_rate=0.01"].healthy.all()
    assert "diverged on every seed, left out of the statistics: learning_rate=50.0" in out
    assert "winner: learning_rate=0.01" in out


def test_failed_runs_are_named_per_configuration_and_an_all_diverged_one_is_listed(cli, tmp_path):
    # learning rate 1e-5 leaves runs stuck, 8 diverges on some seeds, 1e6 on every seed
    args = ["sweep", "--grid", "learning_rate=0.01,1e-5,8,1e6", "--grid", "optimizer=sgd"]
    code, out, err = cli(
        [*args, "--seeds", "6", "--epochs", "5", "--out", str(tmp_path), "--no-plot"]
    )
    assert code == 0, err
    runs, _ = stored(sweep_dir(tmp_path))
    dead = "learning_rate=1000000.0,optimizer=sgd"
    assert (runs[dead].diverged > 0).all()
    # the oracle: compare's rules written out in NumPy over the stored runs
    labels = np.argmax(load_data(DataConfig()).dataset.y_train, axis=1)
    chance = np.bincount(labels).max() / labels.size
    acc = {n: r.final["train_accuracy"] for n, r in runs.items()}
    best = max(float(np.median(acc[n][r.healthy])) for n, r in runs.items() if n != dead)
    stuck = {n: r.healthy & (acc[n] - chance < 0.5 * (best - chance)) for n, r in runs.items()}
    paired = np.logical_and.reduce([r.healthy for n, r in runs.items() if n != dead])
    assert any(s.any() for s in stuck.values()) and 0 < paired.sum() < 6  # every case is met

    def seeds(mask):
        return ", ".join(str(s) for s in np.flatnonzero(mask))

    lines = out.splitlines()
    rows = {line.split()[1]: line.split() for line in lines if line.startswith(" #")}
    assert list(rows) == [*[n for n in rows if n != dead], dead]  # the dropped one last
    for name, r in runs.items():
        counts = [str(r.seeds.size), str(int((~r.healthy).sum())), str(int(stuck[name].sum()))]
        assert rows[name][2:5] == counts, name
        inside, outside = stuck[name] & paired, stuck[name] & ~paired
        if inside.any():
            assert (
                f"  {name}: {inside.sum()} of {paired.sum()} runs stuck (seeds {seeds(inside)}), "
                "kept in every statistic"
            ) in lines
        if outside.any():
            assert (
                f"  {name}: {outside.sum()} runs stuck (seeds {seeds(outside)}), left out of the "
                "statistics"
            ) in lines
        if name != dead and not r.healthy.all():
            assert (
                f"  {name}: {(~r.healthy).sum()} runs diverged (seeds {seeds(~r.healthy)}), left "
                "out of the statistics"
            ) in lines
    epochs = sorted(set(runs[dead].diverged.tolist()))
    at = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {epochs[0]}-{epochs[-1]}"
    assert " ".join(rows[dead][5:]) == f"all diverged ({at}), left out"
    assert f"  {dead}: all 6 runs diverged ({at}), left out of the statistics" in lines
    assert "Rule, stuck: final training accuracy gained less than half" in out
    assert "Rule, diverged: " in out
    # the winner: the highest mean test accuracy over the paired seeds, the dropped one ignored
    means = {n: runs[n].final["test_accuracy"][paired].mean() for n in runs if n != dead}
    assert f"winner: {max(means, key=means.get)}, mean test_accuracy " in out


def test_a_sweep_where_every_run_diverged_keeps_its_runs_and_says_so_in_one_line(cli, tmp_path):
    args = ["sweep", "--grid", "learning_rate=1e6,1e7", "--grid", "optimizer=sgd", "--seeds", "2"]
    code, _, err = cli([*args, "--epochs", "2", "--out", str(tmp_path), "--no-plot"])
    directory = sweep_dir(tmp_path)
    runs, _ = stored(directory)
    assert code == 1 and err.count("\n") == 1, err
    at = {n: sorted(set(r.diverged.tolist())) for n, r in runs.items()}
    assert all(a[0] >= 1 for a in at.values())  # every run diverged, at a stored epoch
    said = [
        f"{n} at epoch {a[0]}" if len(a) == 1 else f"{n} at epochs {a[0]}-{a[-1]}"
        for n, a in at.items()
    ]
    assert err == (
        "kldiv sweep: error: every run of every configuration diverged: " + "; ".join(said) + "\n"
    )
    assert sum(r.seeds.size for r in runs.values()) == 4 and not list(directory.glob("*-summary"))


def test_toml_config_gives_the_grid_of_the_flags(cli, tmp_path):
    toml = tmp_path / "sweep.toml"
    toml.write_text('seeds = 2\n[grid]\nloss = ["kl", "ce"]\nhidden = [8, [4, 4]]\n')
    code, _, err = cli(
        ["sweep", "--config", str(toml), "--epochs", "2", "--out", str(tmp_path / "a"), "--no-plot"]
    )
    assert code == 0, err
    plan, record = read_plan(sweep_dir(tmp_path / "a"))
    assert [c.name for c in plan.configurations] == [
        "loss=kl,hidden=8",
        "loss=kl,hidden=4/4",
        "loss=ce,hidden=8",
        "loss=ce,hidden=4/4",
    ]
    assert plan.seeds == (0, 1) and record["kind"] == "sweep"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "nonsense=1"], "--grid: expected names among"),
        (["--grid", "learning_rate=fast"], "--grid: learning_rate=fast: expected a number"),
        (["--grid", "loss"], "--grid: expected name=v1,v2,..., got 'loss'"),
        ([], "--grid: expected --grid NAME=V1,V2,... or --config SWEEP.toml"),
        (["--grid", "loss=kl", "--max-retries", "-1"], "--max-retries: expected an integer >= 0"),
        (["--grid", "loss=kl", "--address", "h:1"], "--address: expected --backend ray with it"),
        (
            [
                "--grid",
                "loss=kl",
                "--momentum",
                "0.5",
                "--optimizer",
                "adam",
                "--grid",
                "optimizer=adam",
            ],
            "--momentum: not a hyperparameter of any optimizer of the sweep (adam)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    code, _, err = cli(["sweep", *args, "--out", str(tmp_path)])
    assert code == 2
    assert err.startswith("kldiv sweep: error: " + message) and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_bad_toml_and_bad_resume_dirs_are_one_line_and_exit_2(cli, tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("[grid\nloss = [")
    code, _, err = cli(["sweep", "--config", str(toml), "--out", str(tmp_path / "o")])
    assert code == 2 and err.startswith("kldiv sweep: error: --config: ") and err.count("\n") == 1
    code, _, err = cli(["sweep", "--resume", str(tmp_path)])
    assert code == 2 and err.startswith("kldiv sweep: error: --resume: expected a sweep directory")
    code, _, err = cli(["sweep", "--resume", str(tmp_path), "--grid", "loss=kl"])
    assert code == 2 and "--resume: expected no --grid" in err


def _count(db_path):
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_sweep_then_resume_loses_and_duplicates_nothing(cli, tmp_path):
    args = [*GRID, "--seeds", "40", "--chunk", "2", "--epochs", "30", "--no-plot"]
    total = 4 * 40
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": SRC}
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kldiv", "sweep", *args, "--out", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            dirs = list(out.glob("*-sweep")) if out.exists() else []
            if dirs and _count(dirs[0] / "results.sqlite") >= 30:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    directory = sweep_dir(out)
    before = _count(directory / "results.sqlite")
    assert 30 <= before < total, "the sweep was not killed mid-way"

    code, text, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 0, err
    assert f"{before} runs stored, {total - before} to train" in text
    resumed, chunks = stored(directory)
    assert sum(c["n_runs"] for c in chunks) == total  # every task stored once
    code, _, err = cli(["sweep", *args, "--out", str(tmp_path / "whole")])
    assert code == 0, err
    whole, _ = stored(sweep_dir(tmp_path / "whole"))
    assert list(resumed) == list(whole)
    for name, r in whole.items():
        np.testing.assert_array_equal(resumed[name].seeds, np.arange(40))
        np.testing.assert_array_equal(resumed[name].diverged, r.diverged)
        for k in r.final:
            np.testing.assert_array_equal(resumed[name].final[k], r.final[k], err_msg=k)
        for k in r.history:
            np.testing.assert_array_equal(resumed[name].history[k], r.history[k], err_msg=k)

    # a complete sweep resumes to its summary, training nothing and rewriting nothing
    summaries = sorted(directory.glob("*-summary"))
    code, text, _ = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 0 and "to train" not in text
    assert sorted(directory.glob("*-summary")) == summaries and len(summaries) == 1


def test_an_interrupted_sweep_says_how_to_resume_it(cli, tmp_path, monkeypatch):
    real = Store.add
    calls = []

    def add(self, result, backend):
        chunk = real(self, result, backend)
        calls.append(chunk)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
        return chunk

    monkeypatch.setattr(Store, "add", add)
    args = ["sweep", *GRID, "--seeds", "4", "--chunk", "1", "--epochs", "2", "--no-plot"]
    code, _, err = cli([*args, "--out", str(tmp_path / "has space")])
    directory = sweep_dir(tmp_path / "has space")
    assert code == 143
    assert err == (
        f"kldiv sweep: interrupted by SIGTERM; the finished work is kept in {directory}; "
        f"resume with: kldiv sweep --resume '{directory}'\n"
    )
    assert _count(directory / "results.sqlite") > 0 and not list(directory.glob("*-summary"))

    # interrupted again while resuming: the same advice; then the advice, followed, finishes it
    calls.clear()
    code, _, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 143 and err.endswith(f"resume with: kldiv sweep --resume '{directory}'\n")
    monkeypatch.setattr(Store, "add", real)
    code, out, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 0, err
    assert _count(directory / "results.sqlite") == 4 * 4 and "winner: " in out


def test_a_sweep_over_a_csv_file_resumes_on_the_same_data_and_refuses_a_changed_file(
    cli, tmp_path, monkeypatch
):
    rng = np.random.default_rng(1)
    centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    labels = np.arange(90) % 3
    x = centers[labels] + rng.normal(size=(90, 2))
    data = tmp_path / "my data.csv"
    rows = [f"{a!r},{b!r},{k}" for (a, b), k in zip(x.tolist(), labels.tolist(), strict=True)]
    data.write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    original = data.read_bytes()
    args = ["sweep", "--grid", "loss=kl,ce", "--grid", "learning_rate=0.01,0.1", "--seeds", "4"]
    # a path relative to where the sweep starts; it resumes from another directory
    args += ["--chunk", "1", "--epochs", "3", "--data", "my data.csv", "--no-plot"]
    monkeypatch.chdir(tmp_path)

    real = Store.add
    calls = []

    def add(self, result, backend):  # interrupted (SIGTERM) once the second task is stored
        chunk = real(self, result, backend)
        calls.append(chunk)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return chunk

    monkeypatch.setattr(Store, "add", add)
    code, _, err = cli([*args, "--out", str(tmp_path / "cut")])
    assert code == 143, err
    monkeypatch.setattr(Store, "add", real)
    directory = sweep_dir(tmp_path / "cut")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    before = _count(directory / "results.sqlite")
    assert 0 < before < 4 * 4

    # the file changed since: refused with one line, nothing trained
    data.write_bytes(original.replace(b",0\n", b",1\n", 1))
    code, _, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 2 and err == (
        "kldiv sweep: error: --resume: expected the data the sweep started with; its files changed\n"
    )
    assert _count(directory / "results.sqlite") == before

    # the same bytes again: resumed on them, equal to the sweep never interrupted
    data.write_bytes(original)
    code, text, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 0, err
    assert f"{before} runs stored, {16 - before} to train" in text
    monkeypatch.chdir(tmp_path)
    code, _, err = cli([*args, "--out", str(tmp_path / "whole")])
    assert code == 0, err
    resumed, chunks = stored(directory)
    whole, _ = stored(sweep_dir(tmp_path / "whole"))
    assert sum(c["n_runs"] for c in chunks) == 16
    assert list(resumed) == list(whole)
    for name, r in whole.items():
        np.testing.assert_array_equal(resumed[name].seeds, np.arange(4))
        for k in r.final:
            np.testing.assert_array_equal(resumed[name].final[k], r.final[k], err_msg=k)
        for k in r.history:
            np.testing.assert_array_equal(resumed[name].history[k], r.history[k], err_msg=k)
    # and both are the user's data: the engine training a configuration alone on the file
    plan, record = read_plan(directory)
    assert plan.data.source == record["data_files"]["files"][0]["path"] == str(data)
    loaded = load_data(plan.data).dataset
    assert loaded.x_train.shape[0] + loaded.x_val.shape[0] == 90
    first = plan.configurations[0]
    alone = train(first.train, loaded, plan.seeds)
    for k, v in alone.final.items():
        np.testing.assert_array_equal(resumed[first.name].final[k], v, err_msg=k)


def test_a_failing_local_task_is_one_line_keeps_the_finished_and_resumes(
    cli, tmp_path, monkeypatch
):
    from kldiv.sweep import task

    run_task, calls = task.run_task, []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return run_task(*args, **kwargs)

    monkeypatch.setattr(task, "run_task", second_fails)
    args = ["sweep", "--grid", "loss=kl,ce", "--seeds", "2", "--epochs", "2", "--no-plot"]
    code, _, err = cli([*args, "--out", str(tmp_path)])
    directory = sweep_dir(tmp_path)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "a task failed (loss=" in err and "RuntimeError: boom" in err
    resume = f"kldiv sweep --resume {shlex.quote(str(directory))}"
    assert err.endswith(f"; 2 of 4 runs stored; resume with: {resume}\n")
    runs, _ = stored(directory)
    assert sum(r.seeds.size for r in runs.values()) == 2
    monkeypatch.setattr(task, "run_task", run_task)
    code, _, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 0, err
    runs, _ = stored(directory)
    assert {n: sorted(r.seeds.tolist()) for n, r in runs.items()} == {
        "loss=kl": [0, 1],
        "loss=ce": [0, 1],
    }
