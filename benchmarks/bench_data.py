"""Seconds to load a CSV of 100,000 rows x 20 columns (19 features, 1 label) with `load_data`.

    .venv/bin/python benchmarks/bench_data.py              # 100000 rows, best of 3
    .venv/bin/python benchmarks/bench_data.py --rows 1000000 --repeat 1

The file holds `repr` of float64 normal draws (17 significant digits, the worst case for parsing).
Printed: `load_data` end to end (read, sha256, parse, check, stratified split, one-hot), with
`--standardize`, `load_features` on the same file, and NumPy's `np.loadtxt` on it for scale.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=19)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from kldiv.data import DataConfig, load_data, load_features

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.features))
    y = rng.integers(0, 5, size=args.rows)
    names = tuple(f"f{j}" for j in range(args.features))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write(",".join([*names, "label"]) + "\n")
            for row, label in zip(x.tolist(), y.tolist(), strict=True):
                f.write(",".join(map(repr, row)) + f",{label}\n")
        size = os.path.getsize(path) / 1e6
        print(f"{args.rows} rows x {args.features + 1} columns, {size:.1f} MB")
        timings = {
            "load_data": lambda: load_data(DataConfig(path)),
            "load_data --standardize": lambda: load_data(DataConfig(path, standardize=True)),
            "load_features": lambda: load_features(path, names),
            "np.loadtxt (reference)": lambda: np.loadtxt(path, delimiter=",", skiprows=1),
        }
        for name, fn in timings.items():
            best = min(_seconds(fn) for _ in range(args.repeat))
            print(f"{name:<26} {best:6.2f} s")


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
