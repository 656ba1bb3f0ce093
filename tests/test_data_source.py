"""DataConfig (validation, records old and new) and load_data: blobs exactly as the tutorial, files
split and standardized from the training rows only."""

import json

import numpy as np
import pytest

from kldiv.checks import ConfigError
from kldiv.config import BlobsConfig, to_dict
from kldiv.data import (
    DEFAULT_TEST_FRAC,
    DataConfig,
    Standardizer,
    blobs_dataset,
    load_data,
    stratified_split,
)

# ------------------------------------------------------------------------------------ DataConfig


def test_defaults_are_the_tutorial_blobs():
    c = DataConfig()
    assert (c.source, c.seed, c.standardize) == ("blobs", BlobsConfig().random_state, False)
    assert c.test_data is c.test_frac is c.label_col is c.prob_cols is None


def test_the_default_test_fraction_is_resolved_so_records_state_it():
    assert DataConfig("digits").test_frac == DEFAULT_TEST_FRAC == 0.25
    assert DataConfig("d.csv") == DataConfig("d.csv", test_frac=0.25)
    assert DataConfig("d.csv", test_data="t.csv").test_frac is None
    assert DataConfig("D.CSV").source == "D.CSV"  # stored as given; the suffix in any case


@pytest.mark.parametrize(
    ("kwargs", "field", "pattern"),
    [
        ({"source": "data.txt"}, "source", r"expected 'blobs', 'digits' or a path ending in .csv"),
        ({"source": "iris"}, "source", r"got 'iris'"),
        ({"source": 3}, "source", r"expected a string"),
        ({"source": "a\nb.csv"}, "source", r"without control characters"),
        ({"source": "d.csv", "test_data": "digits"}, "test_data", r"a path ending in .csv"),
        ({"seed": -1}, "seed", r"\[0, 4294967295\]"),
        ({"seed": True}, "seed", r"integer"),
        ({"source": "d.csv", "test_frac": 1.0}, "test_frac", r"\(0, 1\)"),
        ({"source": "d.csv", "test_frac": 0}, "test_frac", r"\(0, 1\)"),
        ({"source": "d.csv", "label_col": ""}, "label_col", r"expected a column name"),
        ({"source": "d.csv", "prob_cols": "a,,b"}, "prob_cols", r"comma-separated"),
        ({"standardize": 1}, "standardize", r"True or False"),
        ({"test_frac": 0.2}, "test_frac", r"blobs keep the tutorial's split"),
        ({"test_data": "t.csv"}, "test_data", r"blobs keep the tutorial's split"),
        ({"label_col": "y"}, "label_col", r"blobs keep"),
        ({"prob_cols": "p*"}, "prob_cols", r"blobs keep"),
        ({"source": "d.csv", "test_data": "t.csv", "test_frac": 0.2}, "test_frac", r"either"),
        ({"source": "d.csv", "label_col": "y", "prob_cols": "p*"}, "prob_cols", r"either"),
        ({"source": "d.npz", "label_col": "y"}, "label_col", r"no data file is a .csv"),
        ({"source": "digits", "prob_cols": "p*"}, "prob_cols", r"no data file is a .csv"),
    ],
)
def test_bad_configs_name_the_field(kwargs, field, pattern):
    with pytest.raises(ConfigError, match=rf"^{field}: .*{pattern}") as caught:
        DataConfig(**kwargs)
    assert caught.value.field == field


def test_csv_columns_may_name_a_csv_test_file_of_a_non_csv_source():
    assert DataConfig("d.npz", test_data="t.csv", label_col="y").label_col == "y"


@pytest.mark.parametrize(
    "config",
    [
        DataConfig(),
        DataConfig(seed=9, standardize=True),
        DataConfig("digits", test_frac=0.1),
        DataConfig("data.csv", test_data="t.npz", prob_cols="p_*", seed=4),
    ],
)
def test_to_dict_round_trips_through_json(config):
    assert DataConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_from_dict_reads_older_blobs_records():
    assert DataConfig.from_dict(to_dict(BlobsConfig(random_state=7))) == DataConfig(seed=7)
    assert DataConfig.from_dict({"random_state": 3}) == DataConfig(seed=3)
    assert DataConfig.from_dict({}) == DataConfig()


@pytest.mark.parametrize(
    ("d", "pattern"),
    [
        (
            {"n_samples": 600, "random_state": 2},
            r"only random_state may differ\), got n_samples=600",
        ),
        ({"source": "blobs", "random_state": 2}, r"got 'random_state'"),
        ({"sauce": "blobs"}, r"got 'sauce'"),
        ("blobs", r"expected a mapping"),
    ],
)
def test_from_dict_refuses_what_it_cannot_represent(d, pattern):
    with pytest.raises(ConfigError, match=rf"^data: .*{pattern}"):
        DataConfig.from_dict(d)


# ------------------------------------------------------------------------------------- blobs


@pytest.mark.parametrize("seed", [2, 5])
def test_blobs_are_exactly_the_tutorial_arrays(seed):
    loaded = load_data(DataConfig(seed=seed))
    expected = blobs_dataset(BlobsConfig(random_state=seed))
    for got, want in zip(loaded.dataset, expected, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert loaded.feature_names == ("x0", "x1") and loaded.class_names == ("0", "1", "2")
    np.testing.assert_array_equal(loaded.labels_train, expected.y_train.argmax(axis=1))
    np.testing.assert_array_equal(loaded.labels_test, expected.y_val.argmax(axis=1))
    assert loaded.standardizer is None and not loaded.soft_targets
    assert loaded.fingerprint == {"files": [], "train_rows": 500, "test_rows": 500}


def test_standardized_blobs_use_the_first_500_rows_only():
    loaded = load_data(DataConfig(standardize=True))
    raw = blobs_dataset()
    x = raw.x_train.astype(np.float64)
    np.testing.assert_array_equal(loaded.standardizer.mean, x.mean(axis=0).astype(np.float32))
    np.testing.assert_array_equal(loaded.standardizer.scale, x.std(axis=0).astype(np.float32))
    mean, scale = loaded.standardizer.mean, loaded.standardizer.scale
    np.testing.assert_array_equal(loaded.dataset.x_val, (raw.x_val - mean) / scale)
    np.testing.assert_array_equal(loaded.dataset.y_val, raw.y_val)


# -------------------------------------------------------------------------------------- files


def _write_csv(path, x, y, names=("a", "b", "c")):
    lines = [",".join([*names, "label"])]
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(k)]) for row, k in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_a_csv_split_is_the_stratified_split_of_its_rows(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 3))
    y = rng.integers(0, 3, size=90)
    _write_csv(tmp_path / "d.csv", x, y)
    source = str(tmp_path / "d.csv")
    loaded = load_data(DataConfig(source, test_frac=0.3, seed=11))
    train, test = stratified_split(y, 0.3, 11)
    np.testing.assert_array_equal(loaded.dataset.x_train, x[train].astype(np.float32))
    np.testing.assert_array_equal(loaded.dataset.x_val, x[test].astype(np.float32))
    np.testing.assert_array_equal(loaded.labels_test, y[test])
    assert loaded.fingerprint["train_rows"] == train.size
    assert loaded.fingerprint["test_rows"] == test.size
    assert loaded.fingerprint["files"][0]["path"] == source  # as given
    again = load_data(DataConfig(source, test_frac=0.3, seed=11))
    np.testing.assert_array_equal(again.dataset.x_val, loaded.dataset.x_val)
    other = load_data(DataConfig(source, test_frac=0.3, seed=12))
    assert not np.array_equal(other.labels_test, loaded.labels_test) or not np.array_equal(
        other.dataset.x_val, loaded.dataset.x_val
    )


def test_standardize_is_fitted_on_the_training_rows_and_applied_to_both(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(5.0, 3.0, size=(60, 3))
    y = np.arange(60) % 2
    _write_csv(tmp_path / "d.csv", x[:40], y[:40])
    _write_csv(tmp_path / "t.csv", x[40:] * 10, y[40:])
    loaded = load_data(
        DataConfig(str(tmp_path / "d.csv"), test_data=str(tmp_path / "t.csv"), standardize=True)
    )
    reference = Standardizer.fit(x[:40].astype(np.float32))
    np.testing.assert_array_equal(loaded.standardizer.mean, reference.mean)
    np.testing.assert_array_equal(loaded.standardizer.scale, reference.scale)
    x32 = (x * np.r_[[1.0] * 40, [10.0] * 20][:, None]).astype(np.float32)
    np.testing.assert_array_equal(loaded.dataset.x_train, reference.apply(x32[:40]))
    np.testing.assert_array_equal(loaded.dataset.x_val, reference.apply(x32[40:]))
    assert loaded.dataset.x_train.dtype == np.float32
    assert abs(float(loaded.dataset.x_val.mean())) > 1.0  # test rows keep their own offset


def test_a_test_file_with_a_class_the_source_lacks_is_refused_even_with_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 1)), y=np.array([0, 1, 0, 1]))
    (tmp_path / "t.csv").write_text("x0,label\n1,5\n")
    with pytest.raises(ConfigError, match=r"^test_data: .*t.csv row 2, column 'label'"):
        load_data(DataConfig(str(tmp_path / "d.npz"), test_data=str(tmp_path / "t.csv")))
    (tmp_path / "digits_test.csv").write_text(
        ",".join([f"pixel_{r}_{c}" for r in range(8) for c in range(8)] + ["digit"])
        + "\n"
        + ",".join(["0"] * 64 + ["10"])
        + "\n"
    )
    with pytest.raises(ConfigError, match=r"expected a class label from 0 to 9 \(the classes of"):
        load_data(DataConfig("digits", test_data=str(tmp_path / "digits_test.csv")))


def test_load_data_refuses_what_is_not_a_data_config():
    with pytest.raises(ConfigError, match=r"^data: expected a DataConfig"):
        load_data(BlobsConfig())
