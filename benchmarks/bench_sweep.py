"""Sweep throughput of both backends: the issue's grid (2 losses x 3 learning rates x 2 optimizers)
over N seeds, as `kldiv sweep` processes, one after the other. Prints wall time and runs/s per
backend, and the time the store says the tasks trained for.

    python benchmarks/bench_sweep.py [--seeds 100] [--epochs 100]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
GRID = ["--grid", "loss=kl,ce", "--grid", "learning_rate=0.001,0.01,0.1"]
GRID += ["--grid", "optimizer=sgd,adam"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--backends", default="local,ray")
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("RAY_ADDRESS", None)
    n_runs = 12 * args.seeds
    print(
        f"grid 2 losses x 3 learning rates x 2 optimizers x {args.seeds} seeds = {n_runs} runs, "
        f"{args.epochs} epochs, {os.cpu_count()} cores"
    )
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "kldiv", "sweep", *GRID, "--seeds", str(args.seeds)]
            cmd += ["--epochs", str(args.epochs), "--backend", backend, "--out", out, "--no-plot"]
            start = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(f"{backend}: failed ({done.returncode}): {done.stderr.strip()[-500:]}")
                continue
            (db,) = Path(out).glob("*-sweep/results.sqlite")
            with sqlite3.connect(db) as con:
                first, last, busy = con.execute(
                    "SELECT MIN(started), MAX(stored), SUM(seconds) FROM chunks"
                ).fetchone()
            init = next((ln for ln in done.stdout.splitlines() if ln.startswith("ray:")), "")
            print(
                f"{backend:>5}: {wall:6.1f} s wall, {n_runs / wall:6.1f} runs/s end to end; "
                f"first task start to last stored {last - first:6.1f} s "
                f"({n_runs / (last - first):6.1f} runs/s); task time summed {busy:6.1f} s"
                + (f"; {init}" if init else "")
            )


if __name__ == "__main__":
    main()
