"""`--data` end to end through the CLI: digits, label CSVs, soft-target CSVs, npz, a separate test
file; what the run directory records; bad data is one line and leaves no run directory."""

import csv
import json
import re

import numpy as np
import pytest

from kldiv.data import blobs_dataset

FAST = ["--epochs", "3", "--no-plot", "--quiet"]


def only_run_dir(root):
    (path,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    return path


def blobs_csv(path, rows=slice(None), soft=False):
    """The tutorial's blobs as a CSV: x0, x1 and a label column (or p_0..p_2 soft targets)."""
    d = blobs_dataset()
    x = np.concatenate([d.x_train, d.x_val])[rows]
    y = np.concatenate([d.y_train, d.y_val])[rows]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        targets = ["p_0", "p_1", "p_2"] if soft else ["label"]
        w.writerow(["x0", "x1", *targets])
        for xi, yi in zip(x, y, strict=True):
            t = [repr(float(v)) for v in 0.8 * yi + 0.2 / 3] if soft else [int(yi.argmax())]
            w.writerow([repr(float(v)) for v in xi] + t)
    return path


def test_digits_trains_and_records_its_data(tmp_path, cli):
    code, out, err = cli(
        ["run", "--data", "digits", "--standardize", *FAST, "--out", str(tmp_path)]
    )
    assert code == 0, err
    assert re.match(r"^Train: 0\.\d{3}, Test: 0\.\d{3}$", out.strip())
    config = json.loads((only_run_dir(tmp_path) / "config.json").read_text())
    assert config["data"]["source"] == "digits" and config["data"]["test_frac"] == 0.25
    assert config["data_files"]["train_rows"] + config["data_files"]["test_rows"] == 1797


def test_a_label_csv_with_a_test_file_equals_the_tutorials_blobs(tmp_path, cli):
    # the same rows, the same split, the same seed: the same run as --data blobs, bit for bit
    train = blobs_csv(tmp_path / "train.csv", slice(0, 500))
    test = blobs_csv(tmp_path / "test.csv", slice(500, None))
    args = [*FAST, "--seed", "3"]
    code, from_files, _ = cli(
        ["run", "--data", str(train), "--test-data", str(test), *args, "--out", str(tmp_path / "a")]
    )
    assert code == 0
    code, from_blobs, _ = cli(["run", *args, "--out", str(tmp_path / "b")])
    assert from_files == from_blobs
    config = json.loads((only_run_dir(tmp_path / "a") / "config.json").read_text())
    roles = [f["role"] for f in config["data_files"]["files"]]
    assert roles == ["source", "test_data"]
    assert [f["absolute_path"] for f in config["data_files"]["files"]] == [str(train), str(test)]
    assert all(len(f["sha256"]) == 64 for f in config["data_files"]["files"])


def test_soft_targets_from_probability_columns(tmp_path, cli):
    data = blobs_csv(tmp_path / "soft.csv", soft=True)
    code, _, err = cli(
        ["run", "--data", str(data), "--prob-cols", "p_*", *FAST, "--out", str(tmp_path / "r")]
    )
    assert code == 0, err
    metrics = json.loads((only_run_dir(tmp_path / "r") / "metrics.json").read_text())
    # soft targets add the excess loss over the targets' entropy; KL's own loss is that excess
    assert metrics["test_excess_loss"][0] > 0
    np.testing.assert_allclose(metrics["test_loss"][0], metrics["test_excess_loss"][0], rtol=1e-5)


def test_reverse_kl_trains_on_soft_targets(tmp_path, cli):
    data = blobs_csv(tmp_path / "soft.csv", soft=True)
    code, out, err = cli(
        ["run", "--data", str(data), "--prob-cols", "p_0,p_1,p_2", "--loss", "reverse_kl", *FAST,
         "--out", str(tmp_path / "r")]
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("Train: ")


def test_npz_data(tmp_path, cli):
    d = blobs_dataset()
    np.savez(tmp_path / "d.npz", x=d.x_train, y=d.y_train.argmax(axis=1))
    code, _, err = cli(["run", "--data", str(tmp_path / "d.npz"), *FAST, "--out", str(tmp_path)])
    assert code == 0, err


def test_compare_on_a_csv(tmp_path, cli):
    data = blobs_csv(tmp_path / "b.csv")
    code, out, err = cli(
        ["compare", "--data", str(data), "--seeds", "3", "--losses", "kl,ce", "--epochs", "2",
         "--no-plot", "--quiet", "--out", str(tmp_path / "c")]
    )  # fmt: skip
    assert code == 0, err
    assert "test_log_loss" in out and "identical in all 3 pairs" in out


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--data", "{tmp}/missing.csv"], "--data"),
        (["--data", "{tmp}"], "--data"),
        (["--data", "{tmp}/b.csv", "--label-col", "nope"], "--label-col"),
        (["--data", "{tmp}/b.csv", "--prob-cols", "q_*"], "--prob-cols"),
        (["--data", "{tmp}/b.csv", "--test-frac", "1.5"], "--test-frac"),
        (["--data", "{tmp}/b.csv", "--test-data", "{tmp}/missing.csv"], "--test-data"),
        (["--data", "blobs", "--test-frac", "0.2"], "--test-frac"),
        (["--data", "{tmp}/bad.csv"], "--data"),
    ],
)
def test_bad_data_is_one_line_and_leaves_no_run(tmp_path, cli, args, flag):
    blobs_csv(tmp_path / "b.csv", slice(0, 60))
    (tmp_path / "bad.csv").write_text("x0,x1,label\n1.0,abc,0\n2.0,3.0,1\n")
    out_dir = tmp_path / "out"
    code, out, err = cli(
        ["run", *(a.format(tmp=tmp_path) for a in args), *FAST, "--out", str(out_dir)]
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"kldiv run: error: {flag}: "), err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_data_flag_is_never_read_as_data_seed(tmp_path, cli):
    code, _, err = cli(["run", "--dat", "digits", *FAST, "--out", str(tmp_path)])
    assert code == 2 and "unrecognized arguments: --dat" in err
