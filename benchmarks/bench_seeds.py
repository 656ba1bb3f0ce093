"""Runs per second of `kldiv.train.train` on the tutorial experiment, fast engine vs plain engine.

    .venv/bin/python benchmarks/bench_seeds.py            # 1, 100, 1000 seeds; 2 CPU devices
    .venv/bin/python benchmarks/bench_seeds.py --quick    # 1, 100, 200 seeds
    .venv/bin/python benchmarks/bench_seeds.py --devices 1 --engines fast

Both engines are timed in the same process, alternating, best of `--repeat` calls after a first call
that compiles; the machine may be shared, so compare the ratios printed by one run. Compile time is
the first call minus the best later call. The accuracy line is the fast engine over the largest seed
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
        "--engines",
        default="fast,plain",
        help="comma-separated engines: fast (run axis last), plain (jax.grad under vmap)",
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
    from kldiv.train import train

    def run(config: TrainConfig, data: object, seeds: list[int], engine: str) -> object:
        return train(config, data, seeds, engine=engine)

    counts = [1, 100, 200] if args.quick else [1, 100, 1000]
    if args.seeds:
        counts = [int(c) for c in args.seeds.split(",")]
    engines = args.engines.split(",")
    config, data = TrainConfig(), blobs_dataset()
    print(
        f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s), "
        f"python {sys.version.split()[0]}"
    )

    best: dict[tuple[str, int], float] = {}
    results = {}
    for n in counts:
        seeds = list(range(n))
        first = {}
        for engine in engines:
            start = time.perf_counter()
            results[engine, n] = run(config, data, seeds, engine)
            first[engine] = time.perf_counter() - start
        times: dict[str, list[float]] = {e: [] for e in engines}
        for _ in range(args.repeat):
            for engine in engines:  # alternate, so load changes hit both engines alike
                start = time.perf_counter()
                run(config, data, seeds, engine)
                times[engine].append(time.perf_counter() - start)
        for engine in engines:
            best[engine, n] = min(times[engine])
            compile_s = first[engine] - best[engine, n]
            print(
                f"{engine:8s} {n:5d} seeds: {best[engine, n] * 1e3:9.1f} ms  "
                f"{n / best[engine, n]:7.1f} runs/s  (first call {first[engine]:.2f} s, "
                f"compile ~{compile_s:.2f} s)",
                flush=True,
            )
        for other in engines[1:]:
            ratio = best[other, n] / best[engines[0], n]
            print(f"         {n:5d} seeds: {engines[0]} is {ratio:.2f}x as fast as {other}")

    n = counts[-1]
    final = results[engines[0], n].final
    for split in ("train", "test"):
        acc = np.asarray(final[f"{split}_accuracy"])
        print(f"{engines[0]} accuracy over {n} seeds, {split}: {acc.mean():.3f} +- {acc.std():.3f}")


if __name__ == "__main__":
    main()
