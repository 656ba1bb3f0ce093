"""The command line through `main(argv)`: outputs, files, and one-line errors with exit codes."""

import json
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.cli import main, parse_seeds
from kldiv.data import blobs_dataset
from kldiv.model import apply_mlp
from kldiv.runs import load_params

FAST = ["--epochs", "2", "--no-plot"]


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def only_run_dir(root):
    dirs = [p for p in root.iterdir()]
    assert len(dirs) == 1
    return dirs[0]


def test_run_prints_the_tutorial_line_and_writes_a_run_directory(tmp_path, capsys):
    code, out, err = run_cli(
        ["run", "--epochs", "3", "--seed", "4", "--out", str(tmp_path)], capsys
    )
    assert code == 0, err
    assert re.search(r"^Train: 0\.\d{3}, Test: 0\.\d{3}$", out, re.M)
    run = only_run_dir(tmp_path)
    names = {p.name for p in run.iterdir()}
    assert names == {
        "config.json",
        "environment.json",
        "history.json",
        "history.csv",
        "metrics.json",
        "model.safetensors",
        "plot.png",
    }
    config = json.loads((run / "config.json").read_text())
    assert config["seeds"] == [4] and config["data"]["random_state"] == 2
    assert config["train"]["loss"] == "kl" and config["train"]["epochs"] == 3
    history = json.loads((run / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    assert len(history["val_accuracy"]) == 3
    assert (run / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the saved weights reproduce the printed test accuracy
    metrics = json.loads((run / "metrics.json").read_text())
    params = load_params(run / "model.safetensors")
    data = blobs_dataset()
    logits = apply_mlp(tuple((jnp.asarray(w), jnp.asarray(b)) for w, b in params), data.x_val)
    accuracy = float(np.mean(np.argmax(logits, 1) == np.argmax(data.y_val, 1)))
    assert accuracy == pytest.approx(metrics["test_accuracy"][0], abs=1e-6)
    assert f"Test: {metrics['test_accuracy'][0]:.3f}" in out


def test_quiet_prints_only_the_result(tmp_path, capsys):
    code, out, _ = run_cli(["run", *FAST, "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert out.count("\n") == 1 and out.startswith("Train: ")


def test_many_seeds_report_mean_and_interval(tmp_path, capsys):
    code, out, _ = run_cli(["run", *FAST, "--seeds", "3-5", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "mean ± std over 3 seeds" in out and "95% t interval" in out
    metrics = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    assert metrics["seeds"] == [3, 4, 5]


def test_runs_never_overwrite_each_other(tmp_path, capsys):
    for _ in range(2):
        assert run_cli(["run", *FAST, "--quiet", "--out", str(tmp_path)], capsys)[0] == 0
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["run", "--epochs", "0"], r"argument --epochs: expected an integer >= 1, got '0'"),
        (["run", "--learning-rate", "abc"], r"argument --learning-rate: expected a number in"),
        (["run", "--momentum", "2"], r"argument --momentum: expected a number in \[0, 1\]"),
        (["run", "--loss", "nope"], r"loss: expected one of 'ce', .*; got 'nope'"),
        (["run", "--seeds", "5-2"], r"argument --seeds: expected a count N, a range A-B"),
        (["run", "--hidden", "50,x"], r"argument --hidden: expected comma-separated layer widths"),
        (["run", "--seed", "1", "--seeds", "3"], r"not allowed with argument"),
        (["run", "--bogus"], r"unrecognized arguments: --bogus"),
        (["compare", "--losses", "kl"], r"losses: expected at least two different losses"),
        (["fly"], r"invalid choice: 'fly'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, pattern):
    code, _, err = run_cli([*args, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err
    assert not list(tmp_path.iterdir())


def test_divergence_is_one_line_exit_1_and_saves_nothing(tmp_path, capsys):
    args = ["run", "--epochs", "20", "--learning-rate", "1e6", "--out", str(tmp_path)]
    code, _, err = run_cli(args, capsys)
    assert code == 1
    assert err.count("\n") == 1 and "non-finite loss" in err
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert not list(tmp_path.iterdir())


def test_parse_seeds_forms():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("100-102") == (100, 101, 102)
    assert parse_seeds("7,1,9") == (7, 1, 9)


def test_compare_writes_stats_figures_and_report(tmp_path, capsys):
    args = ["compare", "--losses", "kl,ce", "--seeds", "4", "--epochs", "3", "--out", str(tmp_path)]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    run = only_run_dir(tmp_path)
    names = {p.name for p in run.iterdir()}
    assert {"stats.json", "report.html", "config.json", "environment.json"} <= names
    assert {"history-kl.json", "history-ce.json"} <= names
    assert any(name.endswith(".png") for name in names)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["arms"] == ["kl", "ce"] and stats["n_seeds"] == 4
    # on one-hot targets KL and CE are the same function: every paired run agrees exactly
    assert "identical in all 4 pairs" in out
    html = (run / "report.html").read_text()
    assert "kldiv compare" in html and "data:image/png;base64," in html


def test_help_and_python_dash_m(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kldiv", "run", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for flag in ["--loss", "--seed", "--seeds", "--epochs", "--batch-size", "--learning-rate"]:
        assert flag in result.stdout
    for flag in ["--momentum", "--hidden", "--out", "--no-plot", "--quiet"]:
        assert flag in result.stdout
