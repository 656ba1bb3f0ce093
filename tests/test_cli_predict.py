"""`kldiv predict`: a saved model predicts exactly the probabilities its training computed, with
its standardization, one seed or the ensemble; bad runs, inputs and outputs are one line."""

import csv
import io
import json

import numpy as np
import pytest
from scipy.special import softmax

from kldiv.data import DataConfig, blobs_dataset, load_data
from kldiv.evaluation import log_probabilities
from kldiv.experiment import Experiment, run
from kldiv.records import load_model, save_run

FAST = ["--epochs", "3", "--no-plot", "--quiet"]


def read_predictions(text):
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    probs = np.array([[float(v) for v in r[:-1]] for r in body])
    return header, probs, [r[-1] for r in body]


def write_csv(path, x, names, labels=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, *(["label"] if labels is not None else [])])
        for i, row in enumerate(x):
            extra = [int(labels[i])] if labels is not None else []
            w.writerow([repr(float(v)) for v in row] + extra)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A 3-seed digits run with standardization, saved, with its in-memory result."""
    root = tmp_path_factory.mktemp("runs")
    from kldiv.config import TrainConfig

    exp = Experiment(
        data=DataConfig("digits", standardize=True, test_frac=0.2),
        train=TrainConfig(epochs=3, hidden=(16,)),
        seeds=(4, 5, 6),
    )
    data = load_data(exp.data)
    result = run(exp, data=data)
    path = save_run(root, exp, result, data=data, command="test")
    return path, exp, data, result


@pytest.fixture(scope="module")
def digits_test_csv(saved_run, tmp_path_factory):
    """The run's test rows, raw (unstandardized), as a CSV with the model's column names."""
    _, _, data, _ = saved_run
    st = data.standardizer
    raw = data.dataset.x_val * st.scale + st.mean  # approximately the raw pixels
    path = tmp_path_factory.mktemp("inputs") / "digits_test.csv"
    write_csv(path, raw, data.feature_names, labels=data.labels_test)
    return path, raw.astype(np.float32)


def test_a_saved_model_predicts_exactly_what_its_training_computed(saved_run, digits_test_csv, cli):
    path, _, data, result = saved_run
    csv_path, raw = digits_test_csv
    saved = load_model(path)
    assert saved.feature_names == data.feature_names and saved.class_names == data.class_names
    expected = np.exp(log_probabilities(saved.model, result.params, data.standardizer.apply(raw)))
    for i, seed in enumerate((4, 5, 6)):
        code, out, err = cli(
            ["predict", "--run", str(path), "--data", str(csv_path), "--seed", str(seed)]
        )
        assert code == 0 and err == ""
        header, probs, predicted = read_predictions(out)
        assert header == [*(f"p_{c}" for c in data.class_names), "predicted"]
        np.testing.assert_array_equal(probs, expected[i])  # bit for bit, through the CSV text
        assert predicted == [data.class_names[k] for k in expected[i].argmax(axis=1)]


def test_the_training_probabilities_are_what_the_shared_metrics_scored(saved_run):
    path, _, data, result = saved_run
    saved = load_model(path)
    log_q = log_probabilities(saved.model, result.params, data.dataset.x_val)
    hits = log_q.argmax(axis=-1) == data.labels_test
    np.testing.assert_array_equal(hits.mean(axis=-1), result.final["test_accuracy"])
    nll = -np.take_along_axis(log_q, data.labels_test[None, :, None], axis=-1).mean(axis=(1, 2))
    np.testing.assert_allclose(nll, result.final["test_log_loss"], rtol=1e-12)


def test_standardization_is_applied_from_the_record(saved_run, digits_test_csv):
    path, _, data, _ = saved_run
    saved = load_model(path)
    np.testing.assert_array_equal(saved.standardizer.mean, data.standardizer.mean)
    np.testing.assert_array_equal(saved.standardizer.scale, data.standardizer.scale)
    # against an independent forward pass on inputs standardized by hand
    _, raw = digits_test_csv
    x = (raw - data.standardizer.mean) / data.standardizer.scale
    h = x.astype(np.float64)
    (w1, b1), (w2, b2) = ((np.float64(w[0]), np.float64(b[0])) for w, b in saved.params)
    q = softmax(np.maximum(h @ w1 + b1, 0) @ w2 + b2, axis=-1)
    np.testing.assert_allclose(saved.probabilities(raw)[0], q, rtol=1e-4, atol=1e-7)


def test_the_ensemble_averages_the_seeds(saved_run, digits_test_csv, cli):
    path, *_ = saved_run
    csv_path, raw = digits_test_csv
    code, out, _ = cli(["predict", "--run", str(path), "--data", str(csv_path), "--ensemble"])
    assert code == 0
    _, probs, _ = read_predictions(out)
    np.testing.assert_allclose(probs, load_model(path).probabilities(raw).mean(axis=0), rtol=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_predictions_to_a_new_file(saved_run, digits_test_csv, cli, tmp_path):
    path, *_ = saved_run
    csv_path, _ = digits_test_csv
    out = tmp_path / "p.csv"
    args = [
        "predict",
        "--run",
        str(path),
        "--data",
        str(csv_path),
        "--seed",
        "5",
        "--out",
        str(out),
    ]
    code, stdout, _ = cli(args)
    assert code == 0 and stdout == f"359 predictions saved to {out}\n"
    code, again, _ = cli(args[:-2])
    assert out.read_text() == again


def test_a_single_seed_blobs_run_predicts_without_choosing(tmp_path, cli):
    code, _, _ = cli(["run", *FAST, "--out", str(tmp_path / "runs")])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    d = blobs_dataset()
    write_csv(tmp_path / "x.csv", d.x_val[:7], ("x0", "x1"))
    np.savez(tmp_path / "x.npz", x=d.x_val[:7])
    outs = []
    for name in ("x.csv", "x.npz"):
        code, out, err = cli(["predict", "--run", str(run_dir), "--data", str(tmp_path / name)])
        assert code == 0 and err == ""
        outs.append(out)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 8


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--seed", "9"], r"--seed: expected one of the run's seeds \(4, 5, 6\), got 9$"),
        ([], r"--seed: expected --seed S or --ensemble: the run has 3 seeds"),
        (["--data", "{tmp}/narrow.csv", "--seed", "4"], r"--data: .*narrow\.csv has no column "),
        (["--data", "{tmp}/narrow.npz", "--seed", "4"], r"--data: .*expected 64 columns"),
        (["--data", "{tmp}/missing.csv", "--seed", "4"], r"--data: .*missing\.csv"),
        (["--run", "{tmp}", "--seed", "4"], r"--run: expected a run directory written by kldiv"),
        (["--seed", "4", "--out", "{tmp}/exists.csv"], r"--out: expected a new file, got '.*"),
        (["--seed", "4", "--out", "{tmp}/no/dir.csv"], r"--out: expected a file in an existing"),
    ],
)
def test_bad_predict_input_is_one_line(saved_run, digits_test_csv, cli, tmp_path, args, pattern):
    import re

    path, *_ = saved_run
    write_csv(tmp_path / "narrow.csv", np.zeros((2, 3)), ("a", "b", "c"))
    np.savez(tmp_path / "narrow.npz", x=np.zeros((2, 3)))
    (tmp_path / "exists.csv").write_text("keep")
    base = {"--run": str(path), "--data": str(digits_test_csv[0])}
    given = [a.format(tmp=tmp_path) for a in args]
    for flag in ("--run", "--data"):
        if flag not in given:
            given = [flag, base[flag], *given]
    code, out, err = cli(["predict", *given])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err
    assert (tmp_path / "exists.csv").read_text() == "keep"
    assert not (tmp_path / "no").exists()


def test_a_run_saved_before_model_records_is_refused_clearly(saved_run, tmp_path, cli):
    from safetensors.numpy import load_file, save_file

    path, *_ = saved_run
    old = tmp_path / "old"
    old.mkdir()
    meta = {"kldiv_config": json.dumps({"seeds": [0]}), "run_axis": "True"}
    save_file(load_file(str(path / "model.safetensors")), str(old / "model.safetensors"), meta)
    code, _, err = cli(["predict", "--run", str(old), "--data", "x.csv", "--seed", "0"])
    assert code == 2 and "older kldiv" in err and err.count("\n") == 1


def test_probability_columns_keep_names_that_already_say_p():
    from kldiv.cli.predict import probability_columns

    assert probability_columns(("0", "cat")) == ["p_0", "p_cat"]
    assert probability_columns(("p_cat", "p_dog")) == ["p_cat", "p_dog"]
    # kept names would collide with a prefixed one: every name is prefixed
    assert probability_columns(("p_a", "a")) == ["p_p_a", "p_a"]
