"""The speed table: each `kldiv run` row beside its peer, whole processes, interleaved repeats.

    .venv/bin/python benchmarks/bench_peers.py --sklearn-python /tmp/peer-sk/bin/python \\
        --numba-python /tmp/peer-numba/bin/python --keras-python /tmp/peer-keras/bin/python

Every command is a fresh process (`os.wait4` gives its wall time and peak resident memory). One
round runs every command once, in an order that reverses every other round, so a change in the
machine's load (it is shared) hits a row's two sides alike; after a warm-up round (which fills
kldiv's caches) `--repeat` rounds are timed. A row's ratio is kldiv's median over the peer's
median, and "paired" is the median of the per-round ratios. Rows:

  warm     `kldiv run` (cached executables, figure, run directory) / scikit-learn MLPClassifier,
           same experiment with per-epoch validation and the figure (`tutorial_sklearn.py`)
  keras    `kldiv run` / the tutorial on Keras 3 + TensorFlow (`tutorial_keras.py`)
  first    `kldiv run` with an empty cache directory (a first run after install) / scikit-learn
  seeds    `kldiv run --seeds 1000` / the numba kernel with prange over seeds, 1000 seeds in one
           process, its compile included (`numba_reference.py --seeds 1000 --repeat 1`)
  digits   `kldiv run --data digits` / MLPClassifier with kldiv's defaults (hidden 50, 100
           epochs, batch 32, SGD 0.01, momentum 0.9) on the very split kldiv trains on, written
           to an .npz here, with per-epoch validation and the figure
  jax      `kldiv run` / `import jax` plus a first array (how close a warm run is to JAX's floor)
  no-plot  `kldiv run --no-plot` / `kldiv run` (what the figure costs)
  before   `kldiv run` / the same command of another kldiv install (`--baseline-kldiv`, e.g. the
           main branch's venv), warm, each with its own cache: what the changes bought
  before-first  the same, both with an empty cache

A peer interpreter is an option (scikit-learn, numba and Keras are not kldiv dependencies; make a
venv for each); a row whose interpreter is not given, or cannot import its peer, is skipped with
the reason. scikit-learn defaults to this interpreter when it has scikit-learn and matplotlib.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
KLDIV = str(Path(sys.executable).parent / "kldiv")
ROWS = ("warm", "keras", "first", "seeds", "digits", "jax", "no-plot", "before", "before-first")
ASKED = {"warm": 0.6, "keras": 0.08, "first": 1.0, "seeds": 0.8, "digits": 0.5}


@dataclass
class Command:
    """A whole-process command; `fresh` gives it an empty kldiv cache directory every time."""

    name: str
    argv: list[str]
    env: dict[str, str]
    fresh: bool = False
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def measure(command: Command, tmp: Path) -> None:
    """Run `command` once; append its wall seconds and peak RSS (MB). Fails loudly on error."""
    env = dict(command.env)
    if command.fresh:
        env["KLDIV_CACHE_DIR"] = tempfile.mkdtemp(prefix="cold-", dir=tmp)
    with tempfile.TemporaryFile(dir=tmp) as err:  # a file: a full pipe would block the child
        start = time.perf_counter()
        proc = subprocess.Popen(command.argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            detail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"{command.name} failed (exit {code}):\n{detail}")
    if command.fresh:
        shutil.rmtree(env["KLDIV_CACHE_DIR"], ignore_errors=True)
    command.seconds.append(seconds)
    command.peak_mb.append(usage.ru_maxrss / 1024)  # Linux: KiB
    command.cpu.append(usage.ru_utime + usage.ru_stime)


def peer_python(given: str | None, modules: str, fallback: bool = False) -> tuple[str | None, str]:
    """(interpreter, "") when it imports `modules`, else (None, why not)."""
    python = given or (sys.executable if fallback else None)
    if python is None:
        return None, "no interpreter given"
    check = subprocess.run([python, "-c", f"import {modules}"], capture_output=True, text=True)
    if check.returncode != 0:
        return None, f"{python} cannot import {modules}"
    return python, ""


def write_digits_split(path: Path) -> None:
    """The digits split `kldiv run --data digits` trains on, as integer labels for the peer."""
    import numpy as np

    from kldiv.data import DataConfig
    from kldiv.experiment import Experiment, load

    data = load(Experiment(data=DataConfig("digits"))).dataset
    np.savez(
        path,
        x_train=data.x_train,
        y_train=data.y_train.argmax(axis=1),
        x_test=data.x_val,
        y_test=data.y_val.argmax(axis=1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated: {ROWS}")
    parser.add_argument("--sklearn-python", default=None)
    parser.add_argument("--numba-python", default=None)
    parser.add_argument("--keras-python", default=None)
    parser.add_argument("--baseline-kldiv", default=None, help="another install's kldiv script")
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"--rows: unknown {sorted(unknown)}; expected some of {ROWS}")

    tmp = Path(tempfile.mkdtemp(prefix="kldiv-peers-"))
    env = {**os.environ, "KLDIV_CACHE_DIR": str(tmp / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = str(tmp / "runs")
    kldiv_run = [KLDIV, "run", "--quiet", "--out", runs]
    sk, sk_why = peer_python(args.sklearn_python, "sklearn, matplotlib", fallback=True)
    numba, numba_why = peer_python(args.numba_python, "numba, numpy")
    keras, keras_why = peer_python(args.keras_python, "keras, tensorflow, sklearn, matplotlib")
    split = tmp / "digits-split.npz"
    write_digits_split(split)

    def sklearn(*extra: str) -> list[str] | None:
        png = str(tmp / f"sklearn-{len(extra)}.png")
        return None if sk is None else [sk, str(HERE / "tutorial_sklearn.py"), png, *extra]

    commands = {
        "kldiv run": kldiv_run,
        "kldiv run, empty cache": kldiv_run,
        "kldiv run --no-plot": [*kldiv_run, "--no-plot"],
        "kldiv run --seeds 1000": [*kldiv_run, "--seeds", "1000"],
        "kldiv run --data digits": [*kldiv_run, "--data", "digits"],
        "import jax + first array": [
            sys.executable,
            "-c",
            "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()",
        ],
        "scikit-learn": sklearn(),
        "scikit-learn, digits": sklearn(str(split)),
        "numba, 1000 seeds": None
        if numba is None
        else [numba, str(HERE / "numba_reference.py"), "--seeds", "1000", "--repeat", "1"],
        "Keras 3 + TensorFlow": None
        if keras is None
        else [keras, str(HERE / "tutorial_keras.py"), str(tmp / "keras.png")],
        "baseline kldiv run": None
        if args.baseline_kldiv is None
        else [args.baseline_kldiv, *kldiv_run[1:]],
    }
    commands["baseline, empty cache"] = commands["baseline kldiv run"]
    why = {
        "scikit-learn": sk_why,
        "scikit-learn, digits": sk_why,
        "numba, 1000 seeds": numba_why,
        "Keras 3 + TensorFlow": keras_why,
        "baseline kldiv run": "no --baseline-kldiv given",
        "baseline, empty cache": "no --baseline-kldiv given",
    }
    pairs = {
        "warm": ("kldiv run", "scikit-learn"),
        "keras": ("kldiv run", "Keras 3 + TensorFlow"),
        "first": ("kldiv run, empty cache", "scikit-learn"),
        "seeds": ("kldiv run --seeds 1000", "numba, 1000 seeds"),
        "digits": ("kldiv run --data digits", "scikit-learn, digits"),
        "jax": ("kldiv run", "import jax + first array"),
        "no-plot": ("kldiv run --no-plot", "kldiv run"),
        "before": ("kldiv run", "baseline kldiv run"),
        "before-first": ("kldiv run, empty cache", "baseline, empty cache"),
    }
    skipped = {row: why[pairs[row][1]] for row in rows if commands[pairs[row][1]] is None}
    for row, reason in skipped.items():
        print(f"skipping row {row!r}: {reason}")
    needed = [n for row in rows if row not in skipped for n in pairs[row]]
    base_env = {**env, "KLDIV_CACHE_DIR": str(tmp / "baseline-cache")}
    table = {
        name: Command(
            name,
            commands[name],
            base_env if name.startswith("baseline") else env,
            fresh=name.endswith("empty cache"),
        )
        for name in dict.fromkeys(needed)
    }

    print(f"warm-up round, then {args.repeat} timed rounds of {len(table)} commands", flush=True)
    for command in table.values():
        measure(command, tmp)
        command.seconds.clear()
        command.peak_mb.clear()
        command.cpu.clear()
    for r in range(args.repeat):
        order = list(table.values())
        for command in order if r % 2 == 0 else order[::-1]:
            measure(command, tmp)
        print(f"  round {r + 1} done", flush=True)

    print(f"\nwhole process, medians of {args.repeat} interleaved rounds: wall, CPU, peak RSS")
    for command in table.values():
        print(
            f"  {command.name:26s} {statistics.median(command.seconds):7.3f} s"
            f"  {statistics.median(command.cpu):7.3f} s CPU"
            f"  {statistics.median(command.peak_mb):6.0f} MB"
        )
    print("\n| row | kldiv | peer | kldiv / peer (medians) | paired | asked |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        if row in skipped:
            continue
        ours, theirs = (table[n] for n in pairs[row])
        ratio = statistics.median(ours.seconds) / statistics.median(theirs.seconds)
        paired = statistics.median(a / b for a, b in zip(ours.seconds, theirs.seconds, strict=True))
        asked = f"<= {ASKED[row]}" if row in ASKED else ""
        print(f"| {row} | {ours.name} | {theirs.name} | {ratio:.2f} | {paired:.2f} | {asked} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
