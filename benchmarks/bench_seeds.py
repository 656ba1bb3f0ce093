"""Runs per second of `kldiv.engine.train` on the tutorial experiment, lanes path vs generic path.

    .venv/bin/python benchmarks/bench_seeds.py            # 1, 100, 1000 seeds; 2 CPU devices
    .venv/bin/python benchmarks/bench_seeds.py --quick    # 1, 100, 200 seeds
    .venv/bin/python benchmarks/bench_seeds.py --devices 1 --paths lanes

Both paths are timed in the same process, alternating, best of `--repeat` calls after a first call
that compiles; the machine may be shared, so compare the ratios printed by one run. Compile time is
the first call minus the best later call. The accuracy line is the first path over the largest seed
count (the tutorial's band: train 0.826 +- 0.011, test 0.820 +- 0.010).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1, 100 and 200 seeds")
    parser.add_argument("--devices", type=int, default=2, help="XLA CPU devices (default 2)")
    parser.add_argument(
        "--paths",
        default="lanes,generic",
        help="comma-separated paths: lanes (run axis last), generic (jax.grad under vmap)",
    )
    parser.add_argument(
        "--optimizer", default="sgd", help="sgd (the tutorial) or another kldiv optimizer"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", default=None, help="comma-separated seed counts")
    args = parser.parse_args()
    # XLA reads its flags when the backend starts, so they go in before jax is imported.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
    )
    import jax
    import numpy as np

    from kldiv.config import TrainConfig
    from kldiv.data import blobs_dataset
    from kldiv.engine import train
    from kldiv.optimizers import OPTIMIZERS

    def run(config: TrainConfig, data: object, seeds: list[int], path: str) -> object:
        return train(config, data, seeds, path=path)

    counts = [1, 100, 200] if args.quick else [1, 100, 1000]
    if args.seeds:
        counts = [int(c) for c in args.seeds.split(",")]
    paths = args.paths.split(",")
    config = TrainConfig(optimizer=OPTIMIZERS[args.optimizer]())
    data = blobs_dataset()
    print(
        f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s), "
        f"python {sys.version.split()[0]}"
    )

    best: dict[tuple[str, int], float] = {}
    results = {}
    for n in counts:
        seeds = list(range(n))
        first = {}
        for path in paths:
            start = time.perf_counter()
            results[path, n] = run(config, data, seeds, path)
            first[path] = time.perf_counter() - start
        times: dict[str, list[float]] = {e: [] for e in paths}
        for _ in range(args.repeat):
            for path in paths:  # alternate, so load changes hit both paths alike
                start = time.perf_counter()
                run(config, data, seeds, path)
                times[path].append(time.perf_counter() - start)
        for path in paths:
            best[path, n] = min(times[path])
            compile_s = first[path] - best[path, n]
            print(
                f"{path:8s} {n:5d} seeds: {best[path, n] * 1e3:9.1f} ms  "
                f"{n / best[path, n]:7.1f} runs/s  (first call {first[path]:.2f} s, "
                f"compile ~{compile_s:.2f} s)",
                flush=True,
            )
        for other in paths[1:]:
            ratio = best[other, n] / best[paths[0], n]
            print(f"         {n:5d} seeds: {paths[0]} is {ratio:.2f}x as fast as {other}")

    n = counts[-1]
    final = results[paths[0], n].final
    for split in ("train", "test"):
        acc = np.asarray(final[f"{split}_accuracy"])
        print(f"{paths[0]} accuracy over {n} seeds, {split}: {acc.mean():.3f} +- {acc.std():.3f}")


if __name__ == "__main__":
    main()
