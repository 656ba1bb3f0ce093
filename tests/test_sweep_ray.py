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
