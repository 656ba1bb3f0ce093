"""In-process training time of one tutorial run (after compilation) and its throughput against the
arithmetic floor. The whole-process rows (`kldiv run` beside scikit-learn, Keras and numba) are
`bench_peers.py`.

    .venv/bin/python benchmarks/bench_run.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

# Multiply-adds of one tutorial run: per training row forward 2*50 + 50*3, backward about twice
# that; per validation row forward only. FLOPs = 2 * MACs.
TRAIN_MACS_PER_ROW = 3 * (2 * 50 + 50 * 3)
VAL_MACS_PER_ROW = 2 * 50 + 50 * 3
FLOP_PER_RUN = 2 * 100 * (500 * TRAIN_MACS_PER_ROW + 500 * VAL_MACS_PER_ROW)


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
    args = parser.parse_args()

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
