"""`kldiv distill` through the CLI: one student saved as a run, several seeds compared with the
scratch arm, and bad input as one line with exit code 2 and nothing written."""

import json
import re

import numpy as np
import pytest

from kldiv.config import TrainConfig
from kldiv.data import DataConfig, load_data
from kldiv.experiment import Experiment, run
from kldiv.records import load_model, save_run

FAST = ["--data", "digits", "--standardize", "--data-seed", "0", "--epochs", "2", "--no-plot"]


def _teacher(root, data, seeds=(0,)):
    exp = Experiment(data=data, train=TrainConfig(hidden=(16,), epochs=3), seeds=seeds)
    loaded = load_data(exp.data)
    return save_run(root, exp, run(exp, data=loaded), data=loaded, command="test")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return _teacher(
        tmp_path_factory.mktemp("teacher"), DataConfig("digits", seed=0, standardize=True)
    )


@pytest.fixture(scope="module")
def three_class_teacher(tmp_path_factory):
    """A teacher on the digits' pixels (the same feature names) but only the classes 0-2."""
    root = tmp_path_factory.mktemp("three")
    from kldiv.data.digits import FEATURE_NAMES, load_digits

    x, y = load_digits()
    keep = y < 3
    path = root / "three.csv"
    lines = [",".join([*FEATURE_NAMES, "label"])]
    lines += [
        ",".join(map(str, [*row, label])) for row, label in zip(x[keep], y[keep], strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return _teacher(root, DataConfig(str(path), seed=0))


@pytest.fixture(scope="module")
def blobs_teacher(tmp_path_factory):
    return _teacher(tmp_path_factory.mktemp("blobs"), DataConfig())


def _only_dir(root):
    dirs = [p for p in root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_one_seed_prints_accuracy_and_fidelity_and_saves_a_predictable_run(
    tmp_path, cli, teacher_dir
):
    out = tmp_path / "runs"
    code, stdout, err = cli(["distill", "--teacher", str(teacher_dir), *FAST, "--out", str(out)])
    assert code == 0, err
    assert re.search(r"^Train: \d\.\d{3}, Test: \d\.\d{3}$", stdout, re.M), stdout
    assert re.search(
        r"^Fidelity on the test rows: agreement with the teacher \d\.\d{4}", stdout, re.M
    )
    assert "0.9 · T² · KL(p_T ‖ q_T) + 0.1 · h · CE(y, q), T = 4" in stdout
    assert "Labels: all 1346 training rows" in stdout
    run_dir = _only_dir(out)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["teacher"] == str(teacher_dir) and config["label_frac"] == 1.0
    assert config["train"]["distillation"] == {
        "temperature": 4.0,
        "soft_weight": 0.9,
        "direction": "forward",
        "beta": None,
    }
    assert config["train"]["hidden"] == [16] and config["train"]["loss"] == "ce"
    assert list(config["arms"]) == ["distilled"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test_teacher_agreement", "test_teacher_kl", "test_soft_loss"} <= set(metrics)
    model = load_model(run_dir)
    assert model.model.sizes == (64, 16, 10)
    x = load_data(DataConfig("digits", seed=0)).dataset.x_val  # raw pixels
    probs = model.probabilities(x)
    assert probs.shape == (1, 451, 10)
    accuracy = (probs[0].argmax(1) == load_data(DataConfig("digits", seed=0)).labels_test).mean()
    assert f"Test: {accuracy:.3f}" in stdout


def test_several_seeds_compare_distilled_with_scratch(tmp_path, cli, teacher_dir):
    args = ["distill", "--teacher", str(teacher_dir), *FAST, "--seeds", "3"]
    args += ["--label-frac", "0.1", "--direction", "jsd", "--out", str(tmp_path)]
    code, stdout, err = cli(args)
    assert code == 0, err
    assert "Labels: 136 of 1346 training rows (--label-frac 0.1, stratified by class" in stdout
    assert "JSD_β(p_T ‖ q_T) / (β(1 − β)), β = 0.5" in stdout
    assert re.search(
        r"^Distilled vs scratch, test accuracy: [+-]\d+\.\d\d percentage points", stdout, re.M
    )
    assert "Verdict: " in stdout and "Fidelity on the test rows" in stdout
    comparison = _only_dir(tmp_path)
    assert comparison.name.endswith("-distill")
    stats = json.loads((comparison / "stats.json").read_text())
    assert stats["arms"] == ["scratch", "distilled"] and stats["baseline"] == "scratch"
    assert "test_teacher_agreement" in stats["metrics"] and "test_teacher_kl" in stats["metrics"]
    assert stats["denominators"]["test_teacher_agreement"] == 451
    assert stats["margins"]["test_teacher_kl"] == 0.01
    config = json.loads((comparison / "config.json").read_text())
    assert config["arms"]["scratch"]["train"]["distillation"]["soft_weight"] == 0.0
    assert config["arms"]["distilled"]["train"]["distillation"]["beta"] == 0.5
    assert config["distillation"]["labelled_rows"] == 136
    assert len(config["distillation"]["labelled_indices"]) == 136
    html = (comparison / "report.html").read_text()
    assert "<h2>Summary</h2>" in html and "Distilled vs scratch" in html
    for arm in ("scratch", "distilled"):
        assert (comparison / f"metrics-{arm}.json").exists()


def test_help_text(capsys):
    from kldiv.cli import main

    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "weight W in [0, 1] of the SOFT (teacher) term; 1 - W weighs the hard-label" in text
    assert "--label-smoothing" not in text
    assert re.search(r"--hidden HIDDEN hidden layer widths, comma-separated \(16\)", text)


BAD = [
    (["--temperature", "0"], r"--temperature: expected a number in \(0, inf\), got 0\.0$"),
    (["--temperature", "-1"], r"--temperature: expected a number in \(0, inf\), got -1\.0$"),
    (["--soft-weight", "1.5"], r"--soft-weight: expected a number in \[0, 1\], got 1\.5$"),
    (["--soft-weight", "-0.1"], r"--soft-weight: expected a number in \[0, 1\], got -0\.1$"),
    (["--label-frac", "0"], r"--label-frac: expected a number in \(0, 1\], got 0\.0$"),
    (["--label-frac", "1.2"], r"--label-frac: expected a number in \(0, 1\], got 1\.2$"),
    (["--direction", "jsd", "--beta", "1.5"], r"--beta: expected a number in \[0, 1\], got 1\.5$"),
    (["--direction", "jsd", "--beta", "-0.5"], r"--beta: expected a number in \[0, 1\]"),
    (["--beta", "0.3"], r"--beta: expected no beta with direction 'forward'"),
    (["--direction", "up"], r"--direction: invalid choice: 'up'"),
    (["--label-smoothing", "0.1"], r"unrecognized arguments: --label-smoothing 0\.1"),
]


@pytest.mark.parametrize(("extra", "pattern"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_are_one_line_exit_2_and_nothing_written(
    tmp_path, cli, teacher_dir, extra, pattern
):
    out = tmp_path / "runs"
    code, stdout, err = cli(
        ["distill", "--teacher", str(teacher_dir), *FAST, *extra, "--out", str(out)]
    )
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err.rstrip("\n")), err
    assert re.match(r"kldiv( distill)?: error: ", err)
    assert not out.exists() and stdout == ""


def test_bad_teachers_are_one_line_exit_2_and_nothing_written(
    tmp_path, cli, blobs_teacher, three_class_teacher
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a run")
    cases = [
        (
            tmp_path / "missing",
            r"--teacher: expected a run directory written by kldiv run, got '.*missing', which does not exist$",
        ),
        (
            tmp_path / "empty",
            r"--teacher: expected a run directory written by kldiv run: .*model\.safetensors: expected a kldiv run's model file",
        ),
        (tmp_path / "file.txt", r"--teacher: .*which is not a directory$"),
        (
            blobs_teacher,
            r"--teacher: expected a teacher of the data's 64 features, got '.*' trained on 2 \(the data's 'pixel_0_0'",
        ),
        (
            three_class_teacher,
            r"--teacher: expected a teacher of the data's 10 classes \('0', '1', '2', '3', '4', '5', \.\.\. \(10 in all\)\), got '.*' trained on 3 \('0', '1', '2'\)$",
        ),
    ]
    out = tmp_path / "runs"
    for teacher, pattern in cases:
        code, stdout, err = cli(["distill", "--teacher", str(teacher), *FAST, "--out", str(out)])
        assert code == 2, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert re.search(pattern, err.rstrip("\n")), err
        assert not out.exists() and stdout == ""


def test_a_teacher_from_another_split_is_a_warning(tmp_path, cli, teacher_dir):
    args = ["distill", "--teacher", str(teacher_dir), *FAST, "--data-seed", "1"]
    code, _, err = cli([*args, "--out", str(tmp_path)])
    assert code == 0
    assert re.match(
        r"kldiv distill: warning: the teacher was trained on another split of the data \(seed 0 "
        r"\(here 1\)\): some test rows may be among its training rows",
        err,
    )


def test_an_ensemble_teacher_is_named(tmp_path, cli):
    teacher = _teacher(tmp_path / "t", DataConfig("digits", seed=0, standardize=True), (3, 4))
    code, stdout, err = cli(
        ["distill", "--teacher", str(teacher), *FAST, "--out", str(tmp_path / "r")]
    )
    assert code == 0, err
    assert re.search(r"^Teacher: .* \(ensemble of 2 seeds\), test accuracy 0\.\d{4}$", stdout, re.M)
    assert np.isfinite(
        json.loads((_only_dir(tmp_path / "r") / "metrics.json").read_text())["mean"][
            "test_teacher_kl"
        ]
    )
