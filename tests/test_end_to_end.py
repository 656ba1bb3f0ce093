"""The installed `kldiv` command, as a user runs it, on a tiny experiment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def kldiv_command() -> str:
    return str(Path(sys.executable).parent / "kldiv")


def test_the_installed_command_runs_the_pipeline(tmp_path):
    env = {**os.environ, "KLDIV_CACHE_DIR": str(tmp_path / "cache")}
    args = [kldiv_command(), "run", "--epochs", "4", "--seeds", "2", "--out", str(tmp_path / "r")]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Train: " in result.stdout and "Traceback" not in result.stderr
    (run,) = (tmp_path / "r").iterdir()
    history = json.loads((run / "history.json").read_text())
    assert history["seeds"] == [0, 1] and np.array(history["loss"]).shape == (2, 4)
    assert (run / "plot.png").stat().st_size > 1000
    assert any((tmp_path / "cache").iterdir())  # compiled programs were persisted

    # the same command again gives the same numbers (seeded), from the cache
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0
    assert again.stdout.splitlines()[-3:-1] == result.stdout.splitlines()[-3:-1]


def test_importing_kldiv_loads_neither_matplotlib_nor_the_cli():
    code = (
        "import sys, kldiv, kldiv.engine, kldiv.experiment, kldiv.plot, kldiv.records;"
        "bad = [m for m in ('matplotlib', 'rich', 'kldiv.cli', 'sklearn', 'scipy.stats') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_building_the_command_line_parser_does_not_load_scipy_stats():
    # a single `kldiv run` never needs SciPy's statistics: importing them costs ~0.6 s per run
    code = (
        "import sys; from kldiv.cli.main import build_parser; build_parser();"
        "print([m for m in ('scipy.stats', 'matplotlib', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
