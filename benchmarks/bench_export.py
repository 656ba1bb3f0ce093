"""`kldiv export` of the issue's sweep (2 losses x 3 learning rates x 2 optimizers x N seeds) to
every format and table, each as a `kldiv` process as a user runs it: wall time (process start
included) and the size of what it wrote. Needs the extras kldiv[parquet] and kldiv[mlflow].

    python benchmarks/bench_export.py [--seeds 100] [--epochs 100] [--sweep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
GRID = ["--grid", "loss=kl,ce", "--grid", "learning_rate=0.001,0.01,0.1"]
GRID += ["--grid", "optimizer=sgd,adam"]
CASES = [
    ("csv runs", ["--to", "csv"], "runs.csv"),
    ("parquet runs", ["--to", "parquet"], "runs.parquet"),
    ("csv history", ["--to", "csv", "--table", "history"], "history.csv"),
    ("parquet history", ["--to", "parquet", "--table", "history"], "history.parquet"),
    ("mlflow (new sqlite store)", ["--to", "mlflow"], "mlflow.db"),
    ("mlflow (same store, new experiment)", ["--to", "mlflow", "--experiment", "b"], "mlflow.db"),
]


def kldiv(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kldiv", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--sweep", type=Path, default=None, help="an existing sweep directory")
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": SRC}
    with tempfile.TemporaryDirectory() as out:
        if args.sweep is None:
            cmd = ["sweep", *GRID, "--seeds", str(args.seeds), "--epochs", str(args.epochs)]
            wall = kldiv([*cmd, "--out", out, "--no-plot", "--quiet"], env)
            (sweep,) = Path(out).glob("*-sweep")
            print(f"sweep of {12 * args.seeds} runs x {args.epochs} epochs: {wall:.1f} s")
        else:
            sweep = args.sweep
        target = Path(out) / "exports"
        target.mkdir()
        wall = kldiv(["export", "--help"], {**env})
        print(f"{'kldiv export --help (process start)':<38} {wall:6.2f} s")
        for name, flags, filename in CASES:
            extra = ["--out", str(target / filename)] if "mlflow" not in flags else []
            if "mlflow" in flags:
                extra = ["--tracking-uri", f"sqlite:///{target / filename}"]
            wall = kldiv(["export", str(sweep), *flags, *extra, "--quiet"], env)
            size = (target / filename).stat().st_size / 1e6
            print(f"{name:<38} {wall:6.2f} s  {size:7.2f} MB")


if __name__ == "__main__":
    main()
