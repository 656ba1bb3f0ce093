"""`kldiv stats FILE.csv` end to end, the failure rules through `run` and `compare`, and --margin."""

import json
import re

import numpy as np
import pytest
from scipy import stats as sps

FAST = ["--no-plot", "--quiet"]


def results_csv(path, arms=("torch_kl", "torch_ce"), n=8, shift=0.004):
    rng = np.random.default_rng(0)
    lines = ["arm,seed,test_accuracy,test_log_loss"]
    base = rng.normal(0.82, 0.01, n)
    for i, arm in enumerate(arms):
        for s in range(n):
            acc = base[s] + i * shift + rng.normal(0, 0.002)
            lines.append(f"{arm},{s},{float(acc)!r},{float(1 - acc)!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def only_dir(root):
    (path,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    return path


def test_stats_reports_and_saves_a_comparison_of_outside_results(tmp_path, cli):
    data = results_csv(tmp_path / "r.csv")
    code, out, err = cli(["stats", str(data), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 0, err
    assert "Paired tests A vs torch_kl" in out and "sign-flip p" in out
    d = only_dir(tmp_path / "o")
    assert d.name.endswith("-stats")
    assert {p.name for p in d.iterdir()} >= {"config.json", "stats.json", "report.html"}
    stats = json.loads((d / "stats.json").read_text())
    (c,) = [c for c in stats["comparisons"] if c["metric"] == "test_accuracy"]
    # the paired t-test p against SciPy on the same columns
    rows = [line.split(",") for line in data.read_text().splitlines()[1:]]
    a = np.array([float(r[2]) for r in rows if r[0] == "torch_ce"])
    b = np.array([float(r[2]) for r in rows if r[0] == "torch_kl"])
    np.testing.assert_allclose(c["comparison"]["t_test_p"], sps.ttest_rel(a, b).pvalue, rtol=1e-9)
    config = json.loads((d / "config.json").read_text())
    assert len(config["results"]["sha256"]) == 64 and config["baseline"] == "torch_kl"


def test_stats_baseline_primary_and_margins(tmp_path, cli):
    data = results_csv(tmp_path / "r.csv", arms=("a", "b", "c"))
    code, out, err = cli(
        ["stats", str(data), "--baseline", "b", "--primary", "test_log_loss",
         "--margin", "accuracy=0.02,log_loss=0.03", "--out", str(tmp_path / "o"), *FAST]
    )  # fmt: skip
    assert code == 0, err
    assert "A − b" in out and "Primary: sign-flip p on test_log_loss" in out
    stats = json.loads((only_dir(tmp_path / "o") / "stats.json").read_text())
    assert stats["margins"] == {"test_accuracy": 0.02, "test_log_loss": 0.03}


@pytest.mark.parametrize(
    "text, args, pattern",
    [
        ("arm,seed,acc\na,0,0.5\nb,0,x\n", [], r"r\.csv: .*line 3.*'acc'"),
        ("arm,seed,acc\na,0,0.5\na,1,0.6\nb,0,0.4\n", [], r"r\.csv: .*arm 'b'.*1"),
        ("seed,acc\n0,0.5\n", [], r"r\.csv: .*'arm'"),
        ("arm,seed,acc\na,0,0.5\nb,0,0.4\n", ["--baseline", "z"], r"--baseline: expected one"),
        ("arm,seed,acc\na,0,0.5\nb,0,0.4\n", ["--margin", "acc=-1"], r"--margin: expected"),
        ("arm,seed,acc\na,0,0.5\nb,0,0.4\n", ["--primary", "z"], r"--primary: expected one"),
    ],
)
def test_bad_results_are_one_line_and_leave_nothing(tmp_path, cli, text, args, pattern):
    (tmp_path / "r.csv").write_text(text)
    code, out, err = cli(["stats", str(tmp_path / "r.csv"), *args, "--out", str(tmp_path / "o")])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_run_that_learned_nothing_is_named_and_fails(tmp_path, cli):
    # finite weights near 1e11 at chance accuracy: not diverged, but stuck by the rule
    code, out, err = cli(
        ["run", "--loss", "keras_kl", "--learning-rate", "1e10", "--epochs", "5", *FAST,
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 1 and out.startswith("Train: ")
    assert re.search(r"warning: 1 of 1 runs stuck, training accuracy no better than always", err)
    assert only_dir(tmp_path).is_dir()  # saved for inspection


def test_compare_names_stuck_runs_with_the_rule(tmp_path, cli):
    code, out, err = cli(
        ["compare", "--losses", "ce,js", "--seeds", "0-11", "--epochs", "30", *FAST,
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, err
    stats = json.loads((only_dir(tmp_path) / "stats.json").read_text())
    stuck = stats["failures"]["js"]["stuck"]
    assert stuck and stats["failures"]["ce"]["stuck"] == []
    assert f"js: {len(stuck)} of 12 runs stuck" in out and "Rule, stuck:" in out
    # the rule, recomputed from the saved per-seed values
    metrics = json.loads((only_dir(tmp_path) / "metrics-js.json").read_text())
    ce = json.loads((only_dir(tmp_path) / "metrics-ce.json").read_text())
    from kldiv.data import blobs_dataset
    from kldiv.failures import chance_accuracy

    chance = chance_accuracy(blobs_dataset().y_train)
    best = max(np.median(ce["train_accuracy"]), np.median(metrics["train_accuracy"]))
    expected = [
        s
        for s, a in zip(metrics["seeds"], metrics["train_accuracy"], strict=True)
        if a - chance < 0.5 * (best - chance)
    ]
    assert stuck == expected
