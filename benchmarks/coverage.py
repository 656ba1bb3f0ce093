"""Measured coverage of the 95% intervals `kldiv.stats.summarize` shows, by number of seeds.

    .venv/bin/python benchmarks/coverage.py               # 2000 samples per n, 2000 resamples
    .venv/bin/python benchmarks/coverage.py --reps 500    # quicker, noisier

For each n in 2, 3, 5, 10, 20, 30 it draws `--reps` seeded samples of n values from a distribution
with a known mean, and counts how often each interval contains that mean: the t interval (shown at
every n), the BCa bootstrap interval (computed here at every n, but shown by `summarize` only from
n = `BOOTSTRAP_MIN_N`), and the column "shown" is the bootstrap interval as `summarize` reports it
(n/a where it is left out). Distributions: normal (the t interval is exact there), and a mixture
like a loss whose seeds sometimes fail (30% of values 0.25 lower), where neither is exact. The
standard error of a coverage near 95% is about sqrt(0.95·0.05/reps): 0.5 points at 2000.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from kldiv import stats

SIZES = (2, 3, 5, 10, 20, 30)


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.82, 0.01, n)


def with_failures(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.82, 0.01, n) - 0.25 * (rng.random(n) < 0.3)


DISTRIBUTIONS = {"normal": (normal, 0.82), "30% failed seeds": (with_failures, 0.82 - 0.075)}


def covers(interval: tuple[float, float] | None, mean: float) -> bool | None:
    return None if interval is None else interval[0] <= mean <= interval[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="samples per n (default 2000)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"nominal 95%; {args.reps} samples per n, {args.n_boot} resamples, seed {args.seed}")
    print(f"bootstrap shown from n = {stats.BOOTSTRAP_MIN_N}")
    for name, (draw, true_mean) in DISTRIBUTIONS.items():
        print(f"\n{name}")
        print(f"{'n':>4}  {'t':>6}  {'BCa':>6}  {'shown':>6}")
        for n in SIZES:
            rng = np.random.default_rng([args.seed, n])
            t_hits, boot_hits, tried = 0, 0, 0
            for rep in range(args.reps):
                x = draw(rng, n)
                t_hits += bool(covers(stats.summarize(x, n_boot=1).t_interval, true_mean))
                interval, _, _ = stats._bootstrap(x, 0.95, args.n_boot, rep)
                if interval is not None:
                    tried += 1
                    boot_hits += bool(covers(interval, true_mean))
            boot = boot_hits / tried if tried else math.nan
            shown = f"{100 * boot:5.1f}%" if n >= stats.BOOTSTRAP_MIN_N else "   n/a"
            print(f"{n:>4}  {100 * t_hits / args.reps:5.1f}%  {100 * boot:5.1f}%  {shown}")


if __name__ == "__main__":
    main()
