"""Whole-process time of `kldiv run` (the tutorial) beside scikit-learn and Keras doing the same.

Each command runs `--repeat` times in turn (interleaved, so machine noise hits all alike); the
median wall time is printed with its ratio to kldiv's warm-cache run. Then the in-process training
time of one run (after compilation) and its throughput against the arithmetic floor.

    .venv/bin/python benchmarks/bench_run.py [--repeat 5] [--keras-python /path/to/python]

`--keras-python` names an interpreter with tensorflow + keras + scikit-learn installed (Keras is not
a kldiv dependency); without it the Keras row is skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

# Multiply-adds of one tutorial run: per training row forward 2*50 + 50*3, backward about twice
# that; per validation row forward only. FLOPs = 2 * MACs.
TRAIN_MACS_PER_ROW = 3 * (2 * 50 + 50 * 3)
VAL_MACS_PER_ROW = 2 * 50 + 50 * 3
FLOP_PER_RUN = 2 * 100 * (500 * TRAIN_MACS_PER_ROW + 500 * VAL_MACS_PER_ROW)


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def in_process_training(repeat: int) -> tuple[float, float]:
    """(compile + first run seconds, best seconds of later runs) for one tutorial run."""
    from kldiv.config import TrainConfig
    from kldiv.data import blobs_dataset
    from kldiv.engine import train

    data, config = blobs_dataset(), TrainConfig()
    start = time.perf_counter()
    train(config, data, [0])
    first = time.perf_counter() - start
    best = float("inf")
    for seed in range(repeat):
        start = time.perf_counter()
        train(config, data, [seed])
        best = min(best, time.perf_counter() - start)
    return first, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keras-python", default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kldiv-bench-"))
    env = {**os.environ, "KLDIV_CACHE_DIR": str(tmp / "cache")}
    kldiv = [str(BIN / "kldiv"), "run", "--quiet", "--out", str(tmp / "runs")]
    wall(kldiv, env)  # fill the compilation cache
    commands = {
        "kldiv run (warm compile cache)": (kldiv, env),
        "kldiv run (no compile cache)": (kldiv, {**env, "KLDIV_CACHE_DIR": ""}),
        "kldiv run --no-plot (warm)": ([*kldiv, "--no-plot"], env),
        "scikit-learn MLPClassifier": (
            [sys.executable, str(HERE / "tutorial_sklearn.py"), str(tmp / "sk.png")],
            env,
        ),
    }
    if args.keras_python:
        commands["Keras 3 (TF backend) tutorial"] = (
            [args.keras_python, str(HERE / "tutorial_keras.py"), str(tmp / "keras.png")],
            {**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, (cmd, cmd_env) in commands.items():
            times[name].append(wall(cmd, cmd_env))

    base = statistics.median(times["kldiv run (warm compile cache)"])
    print(f"whole process, median of {args.repeat} (interleaved):")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:34s} {med:7.3f} s   {med / base:6.2f} x kldiv warm")

    first, best = in_process_training(args.repeat)
    print("in-process, one tutorial run (100 epochs, validation every epoch):")
    print(f"  compile + first run  {first:.3f} s")
    print(f"  training after compile  {best * 1e3:.1f} ms")
    print(
        f"  arithmetic floor: {FLOP_PER_RUN / 1e6:.0f} MFLOP -> {FLOP_PER_RUN / best / 1e9:.2f} "
        "GFLOP/s achieved"
    )


if __name__ == "__main__":
    main()
