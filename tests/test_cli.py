"""The command line through `main(argv)`: outputs, files, and one-line errors with exit codes."""

import json
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from kldiv.cli import flag_of, parse_seeds
from kldiv.data import blobs_dataset
from kldiv.model import MLP
from kldiv.records import load_params, load_run

FAST = ["--epochs", "2", "--no-plot"]


def only_run_dir(root):
    dirs = list(root.iterdir())
    assert len(dirs) == 1
    return dirs[0]


def test_run_prints_the_tutorial_line_and_writes_a_run_directory(tmp_path, cli):
    code, out, err = cli(["run", "--epochs", "3", "--seed", "4", "--out", str(tmp_path)])
    assert code == 0, err
    assert err == ""
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
    assert config["seeds"] == [4] and config["data"]["seed"] == 2
    assert config["train"]["loss"] == "kl" and config["train"]["epochs"] == 3
    assert config["train"]["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    assert config["command"].startswith("kldiv")
    history = json.loads((run / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    assert len(history["val_accuracy"]) == 3
    # the helper process drew the figure of the saved history, as drawing it here does
    from kldiv.figure_process import draw

    keys = ("loss", "val_loss", "accuracy", "val_accuracy")
    drawn = draw({k: np.asarray(history[k]) for k in keys}, "kl, 1 seed")
    assert (run / "plot.png").read_bytes() == drawn

    # the saved weights reproduce the printed test accuracy
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["diverged"] == []
    params = load_params(run / "model.safetensors")
    data = blobs_dataset()
    model = MLP((2, 50, 3))
    logits = model.apply(tuple((jnp.asarray(w), jnp.asarray(b)) for w, b in params), data.x_val)
    accuracy = float(np.mean(np.argmax(logits, 1) == np.argmax(data.y_val, 1)))
    assert accuracy == pytest.approx(metrics["test_accuracy"][0], abs=1e-6)
    assert f"Test: {metrics['test_accuracy'][0]:.3f}" in out
    experiment, _ = load_run(run)
    assert experiment.seeds == (4,) and experiment.train.epochs == 3


def test_quiet_prints_only_the_result(tmp_path, cli):
    code, out, _ = cli(["run", *FAST, "--quiet", "--out", str(tmp_path)])
    assert code == 0
    assert out.count("\n") == 1 and out.startswith("Train: ")


def test_many_seeds_report_mean_and_interval(tmp_path, cli):
    code, out, _ = cli(["run", *FAST, "--seeds", "3-5", "--out", str(tmp_path)])
    assert code == 0
    assert "mean ± std over 3 seeds" in out and "95% t interval" in out
    metrics = json.loads((only_run_dir(tmp_path) / "metrics.json").read_text())
    assert metrics["seeds"] == [3, 4, 5]


def test_runs_never_overwrite_each_other(tmp_path, cli):
    for _ in range(2):
        assert cli(["run", *FAST, "--quiet", "--out", str(tmp_path)])[0] == 0
    assert len(list(tmp_path.iterdir())) == 2


def test_flags_set_the_config(tmp_path, cli):
    args = ["run", *FAST, "--hidden", "8,4", "--batch-size", "50", "--data-seed", "7"]
    args += ["--loss", "kld", "--learning-rate", "0.05", "--momentum", "0.5"]
    code, _, err = cli([*args, "--out", str(tmp_path)])
    assert code == 0, err
    config = json.loads((only_run_dir(tmp_path) / "config.json").read_text())
    assert config["data"]["seed"] == 7
    train = config["train"]
    assert (train["hidden"], train["batch_size"], train["epochs"]) == ([8, 4], 50, 2)
    assert train["loss"] == "kl"  # the alias is recorded by its canonical name
    assert train["optimizer"] == {"name": "sgd", "learning_rate": 0.05, "momentum": 0.5}


def test_adam_with_its_own_numbers_is_recorded(tmp_path, cli):
    args = ["run", *FAST, "--optimizer", "adam", "--learning-rate", "0.002", "--b2", "0.99"]
    code, out, err = cli([*args, "--out", str(tmp_path)])
    assert code == 0, err
    assert "Train: " in out
    config = json.loads((only_run_dir(tmp_path) / "config.json").read_text())
    assert config["train"]["optimizer"] == {
        "name": "adam",
        "learning_rate": 0.002,
        "b1": 0.9,
        "b2": 0.99,
        "eps": 1e-8,
    }


def test_flags_are_named_after_config_fields():
    assert flag_of("learning_rate") == "--learning-rate"
    assert flag_of("random_state") == "--data-seed"
    assert flag_of("arms") == "--losses"
    assert flag_of("weight_decay") == "--weight-decay"


def test_divergence_of_a_single_run_is_one_line_exit_1_and_saves_nothing(tmp_path, cli):
    args = ["run", "--epochs", "20", "--learning-rate", "1e6", "--out", str(tmp_path)]
    code, out, err = cli(args)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.match(
        r"kldiv run: error: training diverged: non-finite loss or weights at epoch \d+ for seed 0",
        err,
    )
    assert "Train" not in out
    assert not list(tmp_path.iterdir())


def test_some_diverging_seeds_warn_and_the_rest_are_saved(tmp_path, cli):
    # SGD at learning rate 10 for 4 epochs sits at the edge of stability: about a third of the
    # seeds diverge (7 of 20 here, with AVX2 and AVX-512 alike), so some do and some do not.
    args = [
        "run",
        "--epochs",
        "4",
        "--learning-rate",
        "10",
        "--seeds",
        "20",
        "--out",
        str(tmp_path),
    ]
    code, out, err = cli(args)
    assert code == 0, err
    # one line for the diverged runs, one for runs that stayed finite but learned nothing
    diverged, stuck = err.splitlines()
    assert stuck.startswith("kldiv run: warning: ") and " runs stuck, " in stuck
    match = re.match(
        r"kldiv run: warning: (\d+) of 20 runs diverged \(non-finite values\): seeds (.*)$",
        diverged,
    )
    assert match, err
    k = int(match.group(1))
    assert 2 < k < 18
    run = only_run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    diverged = metrics["diverged"]
    assert len(diverged) == k and all(1 <= d["epoch"] <= 4 for d in diverged)
    bad = {d["seed"] for d in diverged}
    listed = ", ".join(f"{d['seed']} (epoch {d['epoch']})" for d in diverged[:10])
    assert match.group(2) == listed + (" ..." if k > 10 else "")
    healthy = [i for i, s in enumerate(metrics["seeds"]) if s not in bad]
    for i, s in enumerate(metrics["seeds"]):
        assert (metrics["test_loss"][i] is None) == (s in bad)  # NaN loss, recorded as null
    expected_mean = np.mean([metrics["test_accuracy"][i] for i in healthy])
    assert metrics["mean"]["test_accuracy"] == pytest.approx(expected_mean, rel=1e-9)
    assert (run / "plot.png").stat().st_size > 1000  # drawn from the healthy runs
    if len(healthy) == 1:
        assert re.search(r"^Train: 0\.\d{3}, Test: 0\.\d{3}$", out, re.M)
    else:
        assert f"mean ± std over {len(healthy)} seeds" in out


def test_parse_seeds_forms():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("100-102") == (100, 101, 102)
    assert parse_seeds("7,1,9") == (7, 1, 9)


def test_compare_writes_stats_figures_and_report(tmp_path, cli):
    args = ["compare", "--losses", "kl,ce", "--seeds", "4", "--epochs", "3", "--out", str(tmp_path)]
    code, out, err = cli(args)
    assert code == 0, err
    run = only_run_dir(tmp_path)
    names = {p.name for p in run.iterdir()}
    assert {"stats.json", "report.html", "config.json", "environment.json"} <= names
    assert {"history-kl.json", "history-ce.json", "metrics-kl.json", "metrics-ce.json"} <= names
    assert any(name.endswith(".png") for name in names)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["arms"] == ["kl", "ce"] and stats["n_seeds"] == 4
    config = json.loads((run / "config.json").read_text())
    assert config["losses"] == ["kl", "ce"] and config["seeds"] == [0, 1, 2, 3]
    # on one-hot targets KL and CE are the same function: every paired run agrees exactly
    assert "identical in all 4 pairs" in out
    html = (run / "report.html").read_text()
    assert "kldiv compare" in html and "data:image/png;base64," in html


def test_help_and_python_dash_m(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kldiv", "run", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    flags = ["--loss", "--seed", "--seeds", "--epochs", "--batch-size", "--hidden", "--data-seed"]
    flags += ["--optimizer", "--learning-rate", "--momentum", "--b1", "--b2", "--eps"]
    flags += ["--weight-decay", "--decay", "--out", "--no-plot", "--quiet"]
    for flag in flags:
        assert re.search(rf"^\s+{re.escape(flag)}\b", result.stdout, re.M), flag
    assert "sgd, adam, adamw, rmsprop" in result.stdout


def test_the_console_script_runs_a_command_with_the_collector_on_and_startup_frozen():
    """`console_main` holds the cyclic garbage collector off while modules load; the command
    itself runs with it on, its loaded objects frozen out of its scans."""
    script = (
        "import gc, importlib, sys\n"
        "m = importlib.import_module('kldiv.cli.main')\n"
        "def command(args, console):\n"
        "    print(gc.isenabled(), gc.get_freeze_count() > 10000)\n"
        "    return 0\n"
        "m.COMMANDS['run'].command = command\n"
        "sys.argv = ['kldiv', 'run']\n"
        "m.console_main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_main_leaves_the_collector_alone():
    import gc

    from kldiv.cli.main import _modules_loaded

    frozen = gc.get_freeze_count()
    _modules_loaded()  # the collector is on, as for every caller but the console script
    assert gc.isenabled() and gc.get_freeze_count() == frozen
