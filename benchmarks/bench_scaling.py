"""Runs per second and peak memory of `kldiv run --seeds N`, N = 1 .. 10,000, beside numba.

    .venv/bin/python benchmarks/bench_scaling.py --numba-python /tmp/peer-numba/bin/python \\
        [--seeds 1,10,100,1000,10000] [--repeat 3] [--figure benchmarks/scaling.png]

For each N, whole processes: `kldiv run --seeds N --no-plot` after a warm-up process that fills
kldiv's cache (median of `--repeat`, interleaved with numba), and `numba_reference.py --seeds N
--repeat 1`, whose own kernel time (compile excluded: the best of the runs it times) is read from
its output as well. Peak resident memory comes from `os.wait4`. Prints a table and draws
runs/s against N (log-log) to `--figure`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KLDIV = str(Path(sys.executable).parent / "kldiv")


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one process; exits on failure."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,10,100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--numba-python", default=None)
    parser.add_argument("--figure", default=None, help="PNG path for the scaling figure")
    parser.add_argument(
        "--numba-max", type=int, default=1000, help="largest seed count numba runs (its time grows)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.seeds.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="kldiv-scaling-"))
    env = {**os.environ, "KLDIV_CACHE_DIR": str(tmp / "cache")}
    rows = []
    for n in counts:
        kldiv = [
            KLDIV,
            "run",
            "--quiet",
            "--no-plot",
            "--out",
            str(tmp / "runs"),
            "--seeds",
            str(n),
        ]
        if n == 1:
            kldiv = [*kldiv[:-2], "--seed", "0"]
        if n <= 1000:  # above, the programs are those of 1000 seeds (64 runs per chunk)
            run(kldiv, env)  # fills the cache
        numba = None
        if args.numba_python and n <= args.numba_max:
            numba = [args.numba_python, str(HERE / "numba_reference.py"), "--seeds", str(n)]
            numba += ["--repeat", "1"]
        ours, mine_mb, theirs, their_mb, kernel = [], [], [], [], []
        repeat = args.repeat if n <= 1000 else 1
        for _ in range(repeat):
            seconds, mb, _ = run(kldiv, env)
            ours.append(seconds)
            mine_mb.append(mb)
            if numba is not None:
                seconds, mb, text = run(numba, env)
                theirs.append(seconds)
                their_mb.append(mb)
                found = re.search(rf"numba\s+{n} seeds:\s+([\d.]+) ms", text)
                kernel.append(float(found.group(1)) / 1e3 if found else float("nan"))
        row = {
            "n": n,
            "kldiv_s": statistics.median(ours),
            "kldiv_mb": max(mine_mb),
            "numba_s": statistics.median(theirs) if theirs else float("nan"),
            "numba_mb": max(their_mb) if their_mb else float("nan"),
            "numba_kernel_s": statistics.median(kernel) if kernel else float("nan"),
        }
        rows.append(row)
        print(
            f"N={n:6d}  kldiv {row['kldiv_s']:7.2f} s {n / row['kldiv_s']:7.1f} runs/s "
            f"{row['kldiv_mb']:5.0f} MB | numba {row['numba_s']:7.2f} s "
            f"{n / row['numba_s']:7.1f} runs/s {row['numba_mb']:5.0f} MB, kernel only "
            f"{n / row['numba_kernel_s']:7.1f} runs/s",
            flush=True,
        )
    print(
        "\n| seeds | kldiv run (s) | runs/s | peak RSS | numba process (s) | runs/s | kernel runs/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n = r["n"]
        print(
            f"| {n:,} | {r['kldiv_s']:.2f} | {n / r['kldiv_s']:.0f} | {r['kldiv_mb']:.0f} MB | "
            f"{r['numba_s']:.2f} | {n / r['numba_s']:.0f} | {n / r['numba_kernel_s']:.0f} |"
        )
    if args.figure:
        from kldiv.plot import figure_png, new_figure

        fig = new_figure(figsize=(6.4, 4.2))
        ax = fig.axes[0]
        ns = [r["n"] for r in rows]
        ax.plot(ns, [r["n"] / r["kldiv_s"] for r in rows], "o-", label="kldiv run (process)")
        if args.numba_python:
            ax.plot(ns, [r["n"] / r["numba_s"] for r in rows], "s-", label="numba (process)")
            ax.plot(
                ns,
                [r["n"] / r["numba_kernel_s"] for r in rows],
                "s--",
                label="numba (kernel only)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("seeds (runs) in one command")
        ax.set_ylabel("runs per second")
        ax.set_title("Tutorial MLP, 100 epochs, 2-core CPU")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        Path(args.figure).write_bytes(figure_png(fig))
        print(f"figure written to {args.figure}")


if __name__ == "__main__":
    main()
