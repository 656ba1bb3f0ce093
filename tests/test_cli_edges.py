"""Edge cases found by using the commands from the outside: each reproduction fails on the code
before its fix."""

import errno
import json
import re
import signal
import sys

import numpy as np
import pytest

from kldiv.cli import guard

FAST = ["--epochs", "2", "--no-plot", "--quiet"]


def one_line(err):
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def only_dir(root):
    (path,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    return path


@pytest.fixture
def soft_one_class(tmp_path):
    """Valid soft targets whose most probable class is the same on every row (chance = 1)."""
    rows = ["a,b,p0,p1"]
    for i in range(60):
        p = (0.0, 1.0) if i % 3 == 0 else (0.3, 0.7)
        rows.append(f"{i},{i * 7 % 11},{p[0]},{p[1]}")
    path = tmp_path / "soft.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("command", [["run"], ["compare", "--seeds", "2", "--losses", "kl,ce"]])
def test_soft_targets_with_one_most_probable_class_train_and_save(
    tmp_path, cli, soft_one_class, command
):
    args = [*command, "--data", str(soft_one_class), "--prob-cols", "p0,p1", *FAST]
    code, _, err = cli([*args, "--out", str(tmp_path / "o")])
    assert code == 0, err
    assert only_dir(tmp_path / "o").is_dir()


def test_seed_zero_with_seeds_is_refused_like_any_seed(tmp_path, cli):
    code, _, err = cli(["run", "--seed", "0", "--seeds", "3", *FAST, "--out", str(tmp_path)])
    assert code == 2 and "not allowed with argument" in one_line(err)


@pytest.mark.parametrize(
    "margin, pattern",
    [
        ("foo=0.05", r"--margin: expected metric names or name endings among .*, got 'foo'$"),
        ("ACCURACY=0.05", r"got 'ACCURACY'$"),
        ("1.5", r"--margin: expected a margin below 1 for accuracy \(a share\), got 1.5$"),
    ],
)
def test_a_margin_that_names_no_metric_is_refused(tmp_path, cli, margin, pattern):
    code, out, err = cli(
        ["compare", "--seeds", "2", "--margin", margin, *FAST, "--out", str(tmp_path)]
    )
    assert code == 2 and out == ""
    assert re.search(pattern, one_line(err)), err
    assert not any(tmp_path.iterdir())


def test_stats_margin_on_a_file_without_accuracies(tmp_path, cli):
    (tmp_path / "r.csv").write_text("arm,seed,auc\na,0,0.8\na,1,0.82\nb,0,0.79\nb,1,0.8\n")
    code, _, err = cli(["stats", str(tmp_path / "r.csv"), "--margin", "0.05", "--no-plot"])
    assert code == 2 and "among auc, got 'accuracy'" in one_line(err)


@pytest.mark.parametrize("seed", ["99999999999999999999999", "9223372036854775808", "1e300"])
def test_stats_seeds_beyond_int64_are_one_line_naming_the_file(tmp_path, cli, seed):
    path = tmp_path / "big.csv"
    path.write_text(f"arm,seed,test_accuracy\na,{seed},0.8\nb,{seed},0.79\na,1,0.8\nb,1,0.7\n")
    code, _, err = cli(["stats", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert one_line(err).startswith(f"kldiv stats: error: {path}: line 2, column 'seed': ")


def test_stats_refuses_accuracies_outside_zero_one(tmp_path, cli):
    path = tmp_path / "r.csv"
    path.write_text("arm,seed,test_accuracy\na,0,1.5\na,1,0.7\nb,0,0.7\nb,1,0.7\n")
    code, _, err = cli(["stats", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert re.search(r"line 2, column 'test_accuracy': expected a number in \[0, 1\]", err)


def test_compare_names_the_losses_flag_for_an_unknown_loss(tmp_path, cli):
    code, _, err = cli(["compare", "--losses", "kl,foo", *FAST, "--out", str(tmp_path)])
    assert code == 2 and one_line(err).startswith("kldiv compare: error: --losses: ")


def test_predict_out_empty_asks_for_a_file(tmp_path, cli):
    code, _, err = cli(["predict", "--run", str(tmp_path), "--data", "x.csv", "--out", ""])
    assert code == 2 and one_line(err).endswith("--out: expected a file, got ''")


@pytest.fixture(scope="module")
def a_run(tmp_path_factory):
    from kldiv.cli import main

    root = tmp_path_factory.mktemp("runs")
    assert main(["run", *FAST, "--out", str(root)]) == 0
    return only_dir(root)


def test_predictions_that_cannot_be_written_fail(a_run, tmp_path, cli, monkeypatch):
    # `> /dev/full`: the predictions are the command's only result
    inputs = tmp_path / "x.csv"
    inputs.write_text("x0,x1\n1.0,2.0\n")

    class Full:
        encoding = "utf-8"

        def write(self, text):
            return len(text)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            raise OSError("no descriptor")

    monkeypatch.setattr(sys, "stdout", Full())
    code, _, err = cli(["predict", "--run", str(a_run), "--data", str(inputs)])
    assert code == 1
    assert one_line(err).endswith("(No space left on device)")


def test_inputs_whose_outputs_overflow_are_refused(a_run, tmp_path, cli):
    inputs = tmp_path / "x.csv"
    inputs.write_text("x0,x1\n1.0,2.0\n3e38,3e38\n")
    code, out, err = cli(["predict", "--run", str(a_run), "--data", str(inputs)])
    assert code == 2 and out == ""
    assert "(data rows 2, counted from 1)" in one_line(err)


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda r: r.update(activation="evil"), "unknown activation 'evil'"),
        (lambda r: r.update(feature_names=["a", "b", "c"]), "3 feature names for 2 inputs"),
        (lambda r: r.update(standardizer={"mean": [0.0, 0.0], "scale": [0.0, 1.0]}), "scale"),
    ],
)
def test_a_model_record_edited_by_hand_is_one_line(a_run, tmp_path, cli, change, pattern):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(a_run / "model.safetensors"), framework="numpy") as f:
        meta = dict(f.metadata())
    record = json.loads(meta["kldiv_model"])
    change(record)
    meta["kldiv_model"] = json.dumps(record)
    edited = tmp_path / "edited"
    edited.mkdir()
    save_file(load_file(str(a_run / "model.safetensors")), str(edited / "model.safetensors"), meta)
    (tmp_path / "x.csv").write_text("x0,x1\n1.0,2.0\n")
    code, _, err = cli(["predict", "--run", str(edited), "--data", str(tmp_path / "x.csv")])
    assert code == 2 and pattern in one_line(err)
    assert one_line(err).startswith("kldiv predict: error: --run: ")


def test_an_interrupt_inside_a_callback_that_cannot_raise_prints_no_traceback(capsys):
    # As when SIGTERM lands in JAX's garbage-collection callback: Python reports the exception
    # through sys.unraisablehook, which must stay quiet for our interrupt.
    class Finalizer:
        def __del__(self):
            raise guard.Interrupted(signal.SIGTERM)

    with guard.signal_handlers():
        obj = Finalizer()
        del obj
    assert capsys.readouterr().err == ""


def test_long_cells_are_shortened_in_messages(tmp_path, cli):
    path = tmp_path / "big.csv"
    path.write_text("x0,x1,label\n1.0," + "9" * 100_000 + ",0\n2.0,3.0,1\n")
    code, _, err = cli(["run", "--data", str(path), *FAST, "--out", str(tmp_path / "o")])
    assert code == 2 and len(one_line(err)) < 300


def test_one_hot_entropy_is_not_negative_zero(tmp_path, cli):
    code, out, _ = cli(["compare", "--seeds", "2", *FAST, "--out", str(tmp_path)])
    assert code == 0 and "H(y) = 0.0000 nats" in out and "-0.0000" not in out


def test_interval_ends_stay_in_the_metrics_range():
    from kldiv.stats import compare_arms

    rng = np.random.default_rng(0)
    finals = {
        arm: {
            "test_log_loss": rng.uniform(0.0, 3.0, 2),
            "test_brier": rng.uniform(0.0, 1.9, 2),
            "test_ece": rng.uniform(0.0, 0.6, 2),
            "test_accuracy": rng.uniform(0.3, 1.0, 2),
        }
        for arm in ("a", "b")
    }
    stats = compare_arms(finals, seed=0)
    limits = {"test_log_loss": (0, np.inf), "test_brier": (0, 2), "test_ece": (0, 1)}
    limits["test_accuracy"] = (0, 1)
    for s in stats.summaries:
        low, high = s.summary.t_interval
        assert limits[s.metric][0] <= low <= high <= limits[s.metric][1], (s.metric, low, high)
    for c in stats.comparisons:
        # the 90% interval the verdict uses lies inside the 95% interval shown beside it
        lo95, hi95 = c.comparison.difference.t_interval
        lo90, hi90 = c.comparison.tost_interval
        assert lo95 <= lo90 <= hi90 <= hi95, c.metric


def test_messages_name_the_flags_a_user_typed(tmp_path, cli):
    data = tmp_path / "s.csv"
    data.write_text("x,y,p_0,p_1\n1,0,0.5,0.5\n")
    code, _, err = cli(["run", "--data", str(data), "--prob-cols", "p_*", "--label-col", "y"])
    assert code == 2
    assert one_line(err) == (
        "kldiv run: error: --prob-cols: expected either --label-col (class labels) or "
        "--prob-cols (class probabilities), got both"
    )
    # a file named like a field keeps its name
    code, _, err = cli(["run", "--test-data", "test_data.csv", *FAST, "--out", str(tmp_path)])
    assert code == 2 and "'test_data.csv'" in one_line(err)


def test_unknown_arguments_name_the_command(cli):
    code, _, err = cli(["run", "--bogus", "1"])
    assert code == 2 and one_line(err) == "kldiv run: error: unrecognized arguments: --bogus 1"
