"""`kldiv export`: the Parquet tables read back with pyarrow against the CSV export and the store;
MLflow runs read back from a real sqlite-backed store with `MlflowClient` against the sweep's
summary and plain NumPy/SciPy statistics; missing extras, refusals and bad flags."""

import csv
import io
import math
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from kldiv.cli import main
from kldiv.sweep.store import Store, read_data, read_plan
from kldiv.sweep.summary import summarize_with

# 8 configurations (a string, a float and an int grid column), 3 seeds; learning rate 50
# diverges on every seed: null metrics, diverged counts, configurations left out of the statistics
ARGS = ["--grid", "loss=kl,ce", "--grid", "learning_rate=0.01,50", "--grid", "epochs=2,3"]
ARGS += ["--seeds", "3", "--no-plot"]


def need(module: str, variable: str):
    """The module, or a skip when its extra is not installed (never where `variable` is 1: CI)."""
    if os.environ.get(variable) == "1":
        return __import__(module)
    return pytest.importorskip(module, reason=f"the optional extra for {module} is not installed")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", *ARGS, "--out", str(out), "--quiet"]) == 0
    (directory,) = out.glob("*-sweep")
    return directory


@pytest.fixture
def fresh(sweep, tmp_path) -> Path:
    """A copy of the sweep directory, for a test that writes into it."""
    return Path(shutil.copytree(sweep, tmp_path / sweep.name))


def stored(directory):
    with Store(directory) as store:
        return store.runs()


def typed(cell: str, arrow_type) -> object:
    """A CSV cell as the value the Parquet column should hold."""
    import pyarrow as pa

    if cell == "":
        return None
    if pa.types.is_integer(arrow_type):
        return int(cell)
    if pa.types.is_boolean(arrow_type):
        return {"true": True, "false": False}[cell]
    if pa.types.is_float32(arrow_type):
        return float(np.float32(cell))
    if pa.types.is_floating(arrow_type):
        return float(cell)
    return cell


@pytest.mark.parametrize("table", ["runs", "history"])
def test_parquet_holds_the_csv_values_column_by_column(cli, fresh, table):
    pa = need("pyarrow", "KLDIV_REQUIRE_PARQUET")
    import pyarrow.parquet as pq

    flags = [] if table == "runs" else ["--table", "history"]
    code, _, err = cli(["export", str(fresh), "--to", "csv", *flags])
    assert code == 0, err
    code, out, err = cli(["export", str(fresh), "--to", "parquet", *flags])
    assert code == 0, err
    rows = list(csv.reader(io.StringIO((fresh / f"{table}.csv").read_text())))
    read = pq.read_table(fresh / f"{table}.parquet")
    assert read.column_names == rows[0]
    assert read.num_rows == len(rows) - 1 and f"{read.num_rows} " in out
    for i, name in enumerate(rows[0]):
        column = read.column(name)
        assert column.to_pylist() == [typed(r[i], column.type) for r in rows[1:]], name
    types = {f.name: f.type for f in read.schema}
    assert types["seed"] == pa.int64() and types["epochs"] == pa.int64()
    assert types["loss"] == pa.string() and types["learning_rate"] == pa.float64()
    runs = stored(fresh)
    assert sum(r.seeds.size for r in runs.values()) == 8 * 3
    if table == "runs":
        assert types["test_accuracy"] == pa.float64() and types["diverged_epoch"] == pa.int64()
        # the store's values, non-finite as nulls
        for config, seed, value in zip(
            read["configuration"].to_pylist(),
            read["seed"].to_pylist(),
            read["test_accuracy"].to_pylist(),
            strict=True,
        ):
            expected = runs[config].final["test_accuracy"][seed]
            assert value == (None if math.isnan(expected) else expected)
        assert read["test_loss"].null_count == 4 * 3  # the 4 diverging configurations
    else:
        assert types["history_val_accuracy"] == pa.float32()
        assert read.num_rows == sum(
            r.seeds.size * e for r, e in zip(runs.values(), [2, 3] * 4, strict=True)
        )
        config, seed = "loss=ce,learning_rate=0.01,epochs=3", 2
        mine = read.filter(
            pa.compute.and_(
                pa.compute.equal(read["configuration"], config),
                pa.compute.equal(read["seed"], seed),
            )
        )
        assert mine["epoch"].to_pylist() == [1, 2, 3]
        np.testing.assert_array_equal(
            mine["history_val_accuracy"].to_numpy(), runs[config].history["val_accuracy"][seed]
        )


def test_an_existing_file_is_never_replaced_and_a_new_out_path_works(cli, fresh, tmp_path):
    need("pyarrow", "KLDIV_REQUIRE_PARQUET")
    target = fresh / "runs.parquet"
    target.write_bytes(b"mine")
    code, _, err = cli(["export", str(fresh), "--to", "parquet"])
    assert code == 2 and err.count("\n") == 1 and "--out: expected a new file" in err
    assert target.read_bytes() == b"mine"
    other = tmp_path / "elsewhere.parquet"
    code, _, err = cli(["export", str(fresh), "--to", "parquet", "--out", str(other)])
    assert code == 0, err
    assert other.read_bytes()[:4] == b"PAR1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["elsewhere.parquet", fresh.name])


@pytest.mark.parametrize(
    ("hidden", "args", "message"),
    [
        (
            "pyarrow",
            ["--to", "parquet"],
            "--to: expected pyarrow to be installed for 'parquet': pip install 'kldiv[parquet]'",
        ),
        (
            "mlflow",
            ["--to", "mlflow"],
            "--to: expected mlflow to be installed for 'mlflow': pip install 'kldiv[mlflow]'",
        ),
        (
            "sqlalchemy",
            ["--to", "mlflow"],
            "--tracking-uri: expected sqlalchemy to be installed for 'sqlite': "
            "pip install 'kldiv[mlflow]'",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(cli, fresh, monkeypatch, hidden, args, message):
    before = sorted(p.name for p in fresh.iterdir())
    monkeypatch.setitem(sys.modules, hidden, None)  # `import hidden` raises ImportError
    code, out, err = cli(["export", str(fresh), *args])
    assert code == 2 and out == ""
    assert err == f"kldiv export: error: {message}\n"
    assert sorted(p.name for p in fresh.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--to", "csv", "--experiment", "x"],
            "--experiment: expected no --experiment with --to csv",
        ),
        (["--to", "parquet", "--tracking-uri", "sqlite:///x.db"], "--tracking-uri: expected no"),
        (["--to", "mlflow", "--out", "x.csv"], "--out: expected no --out with --to mlflow"),
        (["--to", "mlflow", "--table", "history"], "--table: expected no --table with --to mlflow"),
        (["--to", "mlflow", "--experiment", " "], "--experiment: expected a name, got ' '"),
        (["--to", "mlflow", "--tracking-uri", ""], "--tracking-uri: expected a URI, got ''"),
        (["--to", "csv", "--out", ""], "--out: expected a file, got ''"),
    ],
)
def test_flags_of_another_format_are_refused(cli, fresh, args, message):
    before = sorted(p.name for p in fresh.iterdir())
    code, _, err = cli(["export", str(fresh), *args])
    assert code == 2 and err.startswith(f"kldiv export: error: {message}") and err.count("\n") == 1
    assert sorted(p.name for p in fresh.iterdir()) == before


@pytest.mark.parametrize("uri", ["nonsense://x", "a/plain/path"])
def test_a_tracking_uri_mlflow_cannot_open_is_one_line(cli, fresh, tmp_path, monkeypatch, uri):
    need("mlflow", "KLDIV_REQUIRE_MLFLOW")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["export", str(fresh), "--to", "mlflow", "--tracking-uri", uri])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(
        f"kldiv export: error: --tracking-uri: expected an MLflow tracking store, got {uri!r} ("
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name]


@pytest.mark.parametrize(("given", "after"), [(None, "true"), ("false", "false")])
def test_mlflow_telemetry_is_off_unless_the_environment_says(cli, fresh, monkeypatch, given, after):
    need("mlflow", "KLDIV_REQUIRE_MLFLOW")
    if given is None:
        monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", given)
    code, _, _ = cli(["export", str(fresh), "--to", "mlflow", "--tracking-uri", "nonsense://x"])
    assert code == 2 and os.environ["MLFLOW_DISABLE_TELEMETRY"] == after


def test_mlflow_runs_hold_the_summary_numbers(cli, fresh, tmp_path, monkeypatch):
    need("mlflow", "KLDIV_REQUIRE_MLFLOW")
    from mlflow.tracking import MlflowClient

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may land in the working directory (MLflow's ./mlruns)
    code, out, err = cli(["export", str(fresh), "--to", "mlflow"])
    assert code == 0, err
    uri = f"sqlite:///{fresh.resolve() / 'mlflow.db'}"
    assert f"8 MLflow runs (one per configuration) logged to experiment '{fresh.name}'" in out
    assert f"mlflow ui --backend-store-uri {uri}" in out and err == ""
    assert list(cwd.iterdir()) == []

    plan, record = read_plan(fresh)
    runs = stored(fresh)
    summary = summarize_with(runs, read_data(plan, record))
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(fresh.name)
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(found) == sorted(c.name for c in plan.configurations)
    paired = summary.paired
    assert paired.all()  # learning rate 50 diverges everywhere: its configurations are dropped
    for c in plan.configurations:
        run = found[c.name]
        assert run.info.status == "FINISHED"
        assert run.data.params == {
            "loss": dict(c.values)["loss"],
            "learning_rate": repr(dict(c.values)["learning_rate"]),
            "epochs": str(dict(c.values)["epochs"]),
            "seeds": "3",
            "data.source": "blobs",
            "data.seed": "2",
            "data.standardize": "false",
        }
        tags = run.data.tags
        assert tags["kldiv.sweep"] == str(fresh.resolve()) and tags["kldiv.version"]
        assert tags["kldiv.winner"] == str(c.name == summary.winner).lower()
        metrics = run.data.metrics
        r = runs[c.name]
        assert metrics["runs"] == 3
        assert metrics["diverged_runs"] == int((r.diverged > 0).sum())
        assert metrics["stuck_runs"] == len(summary.failures[c.name]["stuck"])
        if c.name in summary.dropped:
            assert tags["kldiv.compared"] == "false" and metrics["diverged_runs"] == 3
            assert not any(k.endswith("_mean") for k in metrics)
            continue
        assert tags["kldiv.compared"] == "true" and metrics["paired_seeds"] == 3
        for m in summary.stats.metrics:
            s = summary.stats.summary(c.name, m)
            assert metrics[f"{m}_mean"] == s.mean  # the summary's numbers, exactly
            assert (metrics[f"{m}_ci_low"], metrics[f"{m}_ci_high"]) == s.t_interval
            # and what they are: the mean and 95% t interval of the stored values
            # (clipped to the range the metric can take, as the summary states: a loss >= 0)
            values = r.final[m][paired]
            assert metrics[f"{m}_mean"] == pytest.approx(np.mean(values), rel=1e-12)
            low, high = scipy.stats.t.interval(
                0.95, values.size - 1, np.mean(values), scipy.stats.sem(values)
            )
            low, high = np.clip([low, high], *s.bounds)
            assert metrics[f"{m}_ci_low"] == pytest.approx(low, rel=1e-9, abs=1e-12)
            assert metrics[f"{m}_ci_high"] == pytest.approx(high, rel=1e-9, abs=1e-12)

    # a second export to the experiment is refused, and adds nothing
    code, out, err = cli(["export", str(fresh), "--to", "mlflow"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("kldiv export: error: --experiment: expected no runs of this sweep in")
    assert len(client.search_runs([experiment.experiment_id])) == 8
    # another experiment of the same store takes it again
    code, _, err = cli(["export", str(fresh), "--to", "mlflow", "--experiment", "again"])
    assert code == 0, err
    again = client.get_experiment_by_name("again")
    assert len(client.search_runs([again.experiment_id])) == 8


def test_mlflow_export_stopped_part_way_leaves_no_runs(cli, fresh, tmp_path, monkeypatch):
    need("mlflow", "KLDIV_REQUIRE_MLFLOW")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    real = MlflowClient.log_batch
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third run is logged
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", failing)
    code, _, err = cli(["export", str(fresh), "--to", "mlflow", "--tracking-uri", uri])
    assert code == 130 and "interrupted by SIGINT" in err
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(fresh.name)
    assert client.search_runs([experiment.experiment_id]) == []
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    code, _, err = cli(["export", str(fresh), "--to", "mlflow", "--tracking-uri", uri])
    assert code == 0, err
    assert len(client.search_runs([experiment.experiment_id])) == 8


def test_mlflow_refuses_an_unfinished_sweep(cli, fresh):
    need("mlflow", "KLDIV_REQUIRE_MLFLOW")
    with sqlite3.connect(fresh / "results.sqlite") as db:
        db.execute("DELETE FROM runs WHERE seed = 2 AND config LIKE 'loss=ce,%'")
    db.close()
    code, _, err = cli(["export", str(fresh), "--to", "mlflow"])
    assert code == 2 and err.count("\n") == 1
    assert err == (
        "kldiv export: error: DIR: expected a finished sweep (24 runs), got 20 stored; "
        f"finish it with: kldiv sweep --resume {fresh}\n"
    )
    assert not (fresh / "mlflow.db").exists()


def test_mlflow_and_resume_refuse_data_that_changed_since_the_sweep(cli, tmp_path):
    need("mlflow", "KLDIV_REQUIRE_MLFLOW")
    rng = np.random.default_rng(0)
    data = tmp_path / "data.csv"
    rows = [
        f"{float(a)!r},{float(b)!r},{i % 3}" for i, (a, b) in enumerate(rng.normal(size=(60, 2)))
    ]
    data.write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    args = ["sweep", "--grid", "learning_rate=0.01,0.1", "--seeds", "2", "--epochs", "2"]
    code, _, err = cli([*args, "--data", str(data), "--out", str(tmp_path), "--no-plot"])
    assert code == 0, err
    (directory,) = tmp_path.glob("*-sweep")
    data.write_text(data.read_text().replace(",0\n", ",1\n", 1))
    code, _, err = cli(["export", str(directory), "--to", "mlflow"])
    assert err == (
        "kldiv export: error: DIR: expected the data the sweep started with; its files changed\n"
    )
    assert code == 2 and not (directory / "mlflow.db").exists()
    code, _, err = cli(["sweep", "--resume", str(directory), "--no-plot"])
    assert code == 2 and err == (
        "kldiv sweep: error: --resume: expected the data the sweep started with; its files changed\n"
    )
    data.unlink()
    code, _, err = cli(["export", str(directory), "--to", "mlflow"])
    assert code == 2 and err.startswith(
        "kldiv export: error: DIR: expected the sweep's data to be readable ("
    )
    assert err.count("\n") == 1
