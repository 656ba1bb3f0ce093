"""`kldiv sweep --backend ray` on a real local Ray instance (2 CPUs): the driver killed with
SIGKILL mid-way, resumed on Ray, gives exactly the local backend's numbers."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kldiv.sweep.store import Store

if os.environ.get("KLDIV_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="the optional extra kldiv[ray] is not installed")

SRC = str(Path(__file__).resolve().parents[1] / "src")
ARGS = ["--grid", "loss=kl,ce", "--grid", "learning_rate=0.01,0.1", "--seeds", "12"]
ARGS += ["--chunk", "2", "--epochs", "10", "--no-plot"]
TOTAL = 4 * 12


def kldiv(args, log):
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "kldiv", "sweep", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the driver and the Ray instance it starts: one process group
    )


def count(db_path):
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def stored(directory):
    with Store(directory) as store:
        return store.runs(), store.chunks()


def test_ray_killed_and_resumed_equals_the_local_backend(cli, tmp_path):
    out = tmp_path / "ray"
    with open(tmp_path / "log.txt", "wb") as log:
        proc = kldiv([*ARGS, "--backend", "ray", "--out", str(out)], log)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                dirs = list(out.glob("*-sweep")) if out.exists() else []
                if dirs and count(dirs[0] / "results.sqlite") >= 8:
                    break
                assert proc.poll() is None, (tmp_path / "log.txt").read_text()
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray instance
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        (directory,) = out.glob("*-sweep")
        before = count(directory / "results.sqlite")
        assert 8 <= before < TOTAL, "the sweep was not killed mid-way"
        proc = kldiv(["--resume", str(directory), "--backend", "ray"], log)
        assert proc.wait(timeout=600) == 0, (tmp_path / "log.txt").read_text()

    code, _, err = cli(["sweep", *ARGS, "--out", str(tmp_path / "local")])
    assert code == 0, err
    (local_dir,) = (tmp_path / "local").glob("*-sweep")
    local, _ = stored(local_dir)
    on_ray, chunks = stored(directory)
    assert sum(c["n_runs"] for c in chunks) == TOTAL
    ray_chunks = [c for c in chunks if c["backend"] == "ray"]
    assert ray_chunks and all(c["device"] == "cpu:0" and c["host"] for c in ray_chunks)
    assert list(on_ray) == list(local)
    for name, r in local.items():
        np.testing.assert_array_equal(on_ray[name].seeds, np.arange(12))
        np.testing.assert_array_equal(on_ray[name].diverged, r.diverged)
        for k in r.final:
            np.testing.assert_array_equal(on_ray[name].final[k], r.final[k], err_msg=k)
        for k in r.history:
            np.testing.assert_array_equal(on_ray[name].history[k], r.history[k], err_msg=k)


# Worker failures, in-process on a local Ray instance: the task function Ray runs is replaced by a
# closure (Ray serializes it by value) that kills its worker process before the real task runs.
FAIL_ARGS = ["--grid", "loss=kl,ce", "--seeds", "6", "--chunk", "2", "--epochs", "3", "--no-plot"]
FAIL_TOTAL = 2 * 6


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """The oracle: the same grid and seeds on the local backend."""
    from kldiv.cli import main

    out = tmp_path_factory.mktemp("local")
    assert main(["sweep", *FAIL_ARGS, "--out", str(out), "--quiet"]) == 0
    (directory,) = out.glob("*-sweep")
    return stored(directory)[0]


def assert_same_runs(runs, local):
    """The configurations and seeds stored in `runs` hold exactly the numbers of `local`."""
    assert list(runs) == list(local)
    for name, r in local.items():
        got = runs[name]
        pick = np.isin(r.seeds, got.seeds)
        np.testing.assert_array_equal(got.seeds, r.seeds[pick])
        assert set(got.seeds.tolist()) <= set(r.seeds.tolist())
        np.testing.assert_array_equal(got.diverged, r.diverged[pick])
        for k in r.final:
            np.testing.assert_array_equal(got.final[k], r.final[k][pick], err_msg=k)
        for k in r.history:
            np.testing.assert_array_equal(got.history[k], r.history[k][pick], err_msg=k)


def test_a_worker_dying_mid_task_is_retried_and_changes_no_number(
    cli, tmp_path, monkeypatch, local_runs
):
    from kldiv.sweep import backends

    marker = str(tmp_path / "crashed")

    def dies_once(task, data):
        from kldiv.sweep.backends import _worker  # the worker's own module: the real task

        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return _worker(task, data)
        os._exit(1)  # the first task to start dies with its worker, once in the sweep

    monkeypatch.setattr(backends, "_worker", dies_once)
    code, _, err = cli(["sweep", *FAIL_ARGS, "--backend", "ray", "--out", str(tmp_path / "r")])
    assert code == 0, err
    assert os.path.exists(marker)  # a worker did die holding a task
    (directory,) = (tmp_path / "r").glob("*-sweep")
    runs, chunks = stored(directory)
    assert len(chunks) == 2 * 3 and sum(c["n_runs"] for c in chunks) == FAIL_TOTAL
    assert all(c["backend"] == "ray" and c["device"] == "cpu:0" and c["host"] for c in chunks)
    for r in runs.values():  # every (configuration, seed) exactly once
        np.testing.assert_array_equal(r.seeds, np.arange(6))
    assert_same_runs(runs, local_runs)


def test_a_task_failing_on_every_attempt_stops_the_sweep_and_resume_finishes_it(
    cli, tmp_path, monkeypatch, local_runs
):
    from kldiv.sweep import backends

    out = tmp_path / "r"

    def always_dies(task, data):
        from kldiv.sweep.backends import _worker

        if not any(p["config"] == "loss=ce" and 2 in p["seeds"] for p in task["pieces"]):
            return _worker(task, data)
        import sqlite3
        import time

        # die only once another task is stored, so the stop has finished work to keep (nothing
        # from this test module: Ray imports nothing of it in the worker)
        (directory,) = out.glob("*-sweep")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with sqlite3.connect(f"file:{directory / 'results.sqlite'}?mode=ro", uri=True) as db:
                if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0:
                    break
            time.sleep(0.05)
        os._exit(1)

    monkeypatch.setattr(backends, "_worker", always_dies)
    args = ["sweep", *FAIL_ARGS, "--backend", "ray", "--max-retries", "1", "--out", str(out)]
    code, _, err = cli(args)
    (directory,) = out.glob("*-sweep")
    runs, chunks = stored(directory)
    n = sum(c["n_runs"] for c in chunks)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(
        "kldiv sweep: error: a Ray task failed (loss=ce: seeds 2, 3): its worker died on every "
        "attempt (2): "
    )
    assert err.endswith(
        f"; {n} of {FAIL_TOTAL} runs stored; resume with: kldiv sweep --resume {directory}\n"
    )
    assert 0 < n < FAIL_TOTAL and not list(directory.glob("*-summary"))
    if "loss=ce" in runs:  # nothing of the failed task
        assert not {2, 3} & set(runs["loss=ce"].seeds.tolist())
    assert_same_runs(runs, {k: v for k, v in local_runs.items() if k in runs})

    code, text, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 0, err
    assert f"{n} runs stored, {FAIL_TOTAL - n} to train" in text
    runs, chunks = stored(directory)
    assert sum(c["n_runs"] for c in chunks) == FAIL_TOTAL
    assert_same_runs(runs, local_runs)
    for r in runs.values():
        np.testing.assert_array_equal(r.seeds, np.arange(6))
