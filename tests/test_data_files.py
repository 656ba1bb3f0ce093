"""Reading CSV and .npz data: values against NumPy's own readers, and one clean line for every bad
input, naming the config field, the file and the row or column."""

import hashlib
import io
import os
import pathlib
import re
import zipfile

import numpy as np
import pytest

from kldiv.checks import ConfigError
from kldiv.data import DataConfig, load_data, load_features
from kldiv.data.files import PROB_TOLERANCE, csv_table, parse_csv, read_file


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Every test works in its own directory and names files relatively, as a user would."""
    monkeypatch.chdir(tmp_path)


def write(name, content):
    with open(name, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return name


def savez(name, **arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write(name, buffer.getvalue())


def csv_of(header, rows):
    return "\n".join([",".join(header), *(",".join(str(v) for v in row) for row in rows)]) + "\n"


def labelled(n=12, classes=3):
    """n rows: features x1, x2 and a label column y cycling through the classes."""
    return csv_of(["x1", "x2", "y"], [(i, 2 * i + 0.5, i % classes) for i in range(n)])


# ------------------------------------------------------------------------------- reading values


def test_csv_values_equal_numpy_loadtxt_and_targets_are_one_hot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)) * 10.0 ** rng.integers(-5, 5, size=(40, 3))
    y = np.arange(40) % 4
    write(
        "train.csv",
        csv_of(
            ["a", "b", "c", "label"],
            [(*(repr(float(v)) for v in r), k) for r, k in zip(x, y, strict=True)],
        ),
    )
    write(
        "test.csv",
        csv_of(
            ["a", "b", "c", "label"],
            [(*(repr(float(v)) for v in r), k) for r, k in zip(x, y, strict=True)],
        ),
    )
    loaded = load_data(DataConfig("train.csv", test_data="test.csv"))
    oracle = np.loadtxt("train.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(loaded.dataset.x_train, oracle[:, :3].astype(np.float32))
    np.testing.assert_array_equal(loaded.dataset.x_val, oracle[:, :3].astype(np.float32))
    np.testing.assert_array_equal(loaded.dataset.y_train, np.eye(4, dtype=np.float32)[y])
    np.testing.assert_array_equal(loaded.labels_train, y)
    assert loaded.dataset.x_train.dtype == np.float32 and loaded.dataset.y_train.dtype == np.float32
    assert loaded.feature_names == ("a", "b", "c")
    assert loaded.class_names == ("0", "1", "2", "3")
    assert not loaded.soft_targets


def test_csv_label_column_anywhere_integers_written_as_floats_bom_crlf_quotes_and_blank_lines():
    text = '\ufeff y ,"x 1",x2\r\n1.0,"1.5",2\r\n\r\n0,3,4\r\n1,5,6\r\n0,7,8\r\n\r\n'
    write("data.csv", text)
    write("test.csv", "x2,y,x 1\n10,1,9\n")  # same columns, another order
    loaded = load_data(DataConfig("data.csv", test_data="test.csv", label_col="y"))
    np.testing.assert_array_equal(loaded.dataset.x_train, [[1.5, 2], [3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(loaded.labels_train, [1, 0, 1, 0])
    np.testing.assert_array_equal(loaded.dataset.x_val, [[9, 10]])  # the source's column order
    assert loaded.feature_names == ("x 1", "x2")


def test_csv_probability_columns_by_glob_and_by_list_are_the_classes():
    rows = [(0.1, 0.9, 0.0, 1.5), (0.5, 0.25, 0.25, -2.0), (0.0, 0.0, 1.0, 3.0), (1, 0, 0, 4)]
    write("soft.csv", csv_of(["p_a", "p_b", "p_c", "x"], rows))
    write("soft_test.csv", csv_of(["p_a", "p_b", "p_c", "x"], rows[:2]))
    by_glob = load_data(DataConfig("soft.csv", test_data="soft_test.csv", prob_cols="p_*"))
    by_list = load_data(DataConfig("soft.csv", test_data="soft_test.csv", prob_cols="p_a, p_b,p_c"))
    for loaded in (by_glob, by_list):
        assert loaded.soft_targets and loaded.class_names == ("p_a", "p_b", "p_c")
        assert loaded.feature_names == ("x",)
        np.testing.assert_array_equal(
            loaded.dataset.y_train, np.array([r[:3] for r in rows], np.float32)
        )
        np.testing.assert_array_equal(loaded.labels_train, [1, 0, 2, 0])  # argmax, first on ties
        np.testing.assert_array_equal(loaded.labels_test, [1, 0])


def test_probability_rows_may_miss_one_by_the_stated_tolerance_and_no_more():
    ok = 1.0 - 0.9 * PROB_TOLERANCE
    write("a.csv", csv_of(["x", "p0", "p1"], [(1, 0.5, 0.5 - (1 - ok)), (2, 0, 1)] * 4))
    assert load_data(DataConfig("a.csv", prob_cols="p0,p1")).soft_targets
    bad = 1.0 - 1.1 * PROB_TOLERANCE
    write("b.csv", csv_of(["x", "p0", "p1"], [(2, 0, 1), (1, 0.5, 0.5 - (1 - bad))] * 4))
    with pytest.raises(ConfigError, match=r"b.csv row 3: .*summing to 1 \(within 1e-06\)"):
        load_data(DataConfig("b.csv", prob_cols="p0,p1"))


def test_npz_labels_and_probabilities_with_and_without_names():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3)).astype(np.float64)
    y = np.arange(20) % 2
    savez("plain.npz", x=x, y=y)
    savez("test.npz", x=x[:5], y=y[:5])
    loaded = load_data(DataConfig("plain.npz", test_data="test.npz"))
    np.testing.assert_array_equal(loaded.dataset.x_train, x.astype(np.float32))
    np.testing.assert_array_equal(loaded.dataset.y_val, np.eye(2, dtype=np.float32)[y[:5]])
    assert loaded.feature_names == ("x0", "x1", "x2") and loaded.class_names == ("0", "1")

    probs = rng.dirichlet(np.ones(3), size=20)
    savez(
        "named.npz",
        x=x,
        y=probs,
        feature_names=np.array(["a", "b", "c"]),
        class_names=np.array(["cat", "dog", "eel"]),
    )
    soft = load_data(DataConfig("named.npz", test_frac=0.5, seed=3))
    assert soft.soft_targets and soft.class_names == ("cat", "dog", "eel")
    assert soft.feature_names == ("a", "b", "c")
    rows = np.concatenate([soft.dataset.y_train, soft.dataset.y_val])
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(probs.astype(np.float32), axis=0))


def test_npz_class_names_bound_the_labels_even_when_a_class_is_rare():
    savez("a.npz", x=np.ones((4, 1)), y=np.array([0, 1, 0, 1]), class_names=np.array(["no", "yes"]))
    assert load_data(DataConfig("a.npz", test_data="a.npz")).class_names == ("no", "yes")


def test_csv_source_and_npz_test_and_the_reverse_share_features_and_classes():
    write("train.csv", labelled(9))
    savez("test.npz", x=np.array([[1.0, 2.0]]), y=np.array([2]))
    loaded = load_data(DataConfig("train.csv", test_data="test.npz"))
    assert loaded.feature_names == ("x1", "x2") and loaded.labels_test.tolist() == [2]
    savez("train.npz", x=np.arange(12.0).reshape(6, 2), y=np.arange(6) % 3)
    write("test.csv", "x0,x1,label\n1,2,1\n")
    assert load_data(DataConfig("train.npz", test_data="test.csv")).labels_test.tolist() == [1]


def test_the_fingerprint_is_the_bytes_that_were_parsed():
    write("data.csv", labelled(12))
    write("test.csv", labelled(3))
    loaded = load_data(DataConfig("data.csv", test_data="test.csv"))
    expected = [
        {
            "role": role,
            "path": name,
            "absolute_path": os.path.abspath(name),
            "bytes": os.path.getsize(name),
            "sha256": hashlib.sha256(pathlib.Path(name).read_bytes()).hexdigest(),
        }
        for role, name in (("source", "data.csv"), ("test_data", "test.csv"))
    ]
    assert loaded.fingerprint == {"files": expected, "train_rows": 12, "test_rows": 3}


def test_a_large_csv_is_read_through_the_fast_path_and_matches_loadtxt():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 5))
    write("big.csv", csv_of(["a", "b", "c", "d", "e", "y"], [(*r, i % 3) for i, r in enumerate(x)]))
    text = parse_csv(read_file("big.csv", "source"), "source")
    table = csv_table(text, "source")
    np.testing.assert_array_equal(table.x, x.astype(np.float32))
    np.testing.assert_array_equal(table.lines, np.arange(2, 3002))


# --------------------------------------------------------------------------- prediction inputs


def test_load_features_picks_the_named_columns_in_order_and_ignores_the_rest():
    write("new.csv", "id,x2,label,x1\nA,1,cat,2\nB,3,dog,4\n")
    x = load_features("new.csv", ("x1", "x2"))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[2, 1], [4, 3]])
    savez("new.npz", x=np.array([[2, 1], [4, 3]]))
    np.testing.assert_array_equal(load_features("new.npz", ("x1", "x2")), [[2, 1], [4, 3]])
    # an npz with feature_names is matched by name too, like a CSV
    savez("named.npz", x=np.array([[1, 2], [3, 4]]), feature_names=np.array(["x2", "x1"]))
    np.testing.assert_array_equal(load_features("named.npz", ("x1", "x2")), [[2, 1], [4, 3]])


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("new.csv", "x1,y\n1,0\n", r"^data: new.csv has no column 'x2' \(a feature of the model"),
        ("new.csv", "x1,x2\n1,\n", r"^data: new.csv row 2, column 'x2': expected a finite"),
        ("new.npz", {"x": np.ones((2, 3))}, r"^data: new.npz array 'x': expected 2 columns"),
        (
            "new.npz",
            {"x": np.ones((2, 2)), "feature_names": np.array(["x2", "x3"])},
            r"^data: new.npz array 'feature_names': expected 'x1', 'x2', got 'x2', 'x3'",
        ),
        ("new.npz", {"y": np.ones(2)}, r"^data: new.npz: expected an array 'x'"),
        ("new.txt", "x1,x2\n1,2\n", r"^data: expected a path ending in .csv or .npz"),
    ],
)
def test_load_features_names_what_is_wrong(name, content, expected):
    if isinstance(content, dict):
        savez(name, **content)
    else:
        write(name, content)
    with pytest.raises(ConfigError, match=expected):
        load_features(name, ("x1", "x2"))


# ------------------------------------------------------------------------------ bad inputs


def _corrupt_npz():
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((4, 2)), y=np.arange(4))
    return buffer.getvalue()[:-40]


def _flipped_npz():
    buffer = io.BytesIO()
    np.savez(buffer, x=np.arange(400.0).reshape(200, 2), y=np.arange(200) % 2)
    data = bytearray(buffer.getvalue())
    data[300] ^= 0xFF
    return bytes(data)


def _npy():
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 2)))
    return buffer.getvalue()


OK_X = np.arange(8.0).reshape(4, 2)
OK_Y = np.array([0, 1, 0, 1])

# (id, {file: content}, DataConfig kwargs, field, pattern the message must match)
BAD = [
    ("missing file", {}, {}, "source", r"data.csv: no such file"),
    ("empty file", {"data.csv": ""}, {}, "source", r"data.csv: expected data, got an empty file"),
    ("blank lines only", {"data.csv": "\n\n"}, {}, "source", r"data.csv: expected a header row"),
    ("binary", {"data.csv": b"x,y\n1,\x00\n"}, {}, "source", r"data.csv: .*binary.*line 2"),
    (
        "not utf-8",
        {"data.csv": b"x,y\n1,0\n\xe9,1\n"},
        {},
        "source",
        r"data.csv row 3: .*UTF-8.*0xe9",
    ),
    ("utf-16", {"data.csv": "x,y\n1,0\n".encode("utf-16")}, {}, "source", r"data.csv: .*UTF-16"),
    ("header only", {"data.csv": "x,y\n"}, {}, "source", r"data.csv: expected data rows after"),
    ("no header", {"data.csv": "1,2\n3,0\n"}, {}, "source", r"data.csv row 1: expected a header"),
    ("empty name", {"data.csv": "x,,y\n1,2,0\n"}, {}, "source", r"data.csv row 1, column 2: "),
    ("duplicate name", {"data.csv": "x,x,y\n1,2,0\n"}, {}, "source", r"'x' as columns 1 and 2"),
    (
        "bad quoting",
        {"data.csv": 'x,y\n1,0\n"2,1\n'},
        {},
        "source",
        r"data.csv row 3: .*malformed row \(unexpected end of data\)",
    ),
    (
        "ragged",
        {"data.csv": "x1,x2,y\n1,2,0\n3,1\n"},
        {},
        "source",
        r"data.csv row 3: expected 3 values .*got 2",
    ),
    (
        "ragged row whose quoted cell spans lines: named by its first line",
        {"data.csv": 'x,y\n1,0\n"2\n\n",3,1\n4,0\n'},
        {},
        "source",
        r"data.csv row 3: expected 2 values .*got 3",
    ),
    (
        "ragged after a blank line",
        {"data.csv": "x1,x2,y\n1,2,0\n\n3,4,1,5\n"},
        {},
        "source",
        r"data.csv row 4: expected 3 values .*got 4",
    ),
    (
        "only a label",
        {"data.csv": "y\n0\n1\n"},
        {},
        "source",
        r"data.csv: expected at least one feature column",
    ),
    (
        "semicolons",
        {"data.csv": "x;y\n1;0\n"},
        {},
        "source",
        r"data.csv: expected at least one feature .*comma-separated",
    ),
    (
        "unknown label_col",
        {"data.csv": labelled()},
        {"label_col": "yy"},
        "label_col",
        r"data.csv has no column 'yy' \(did you mean 'y'\?\); its columns are 'x1', 'x2', 'y'",
    ),
    (
        "unknown prob col",
        {"data.csv": "x,p0,p1\n1,0,1\n"},
        {"prob_cols": "p0,p2"},
        "prob_cols",
        r"data.csv has no column 'p2'",
    ),
    (
        "glob without match",
        {"data.csv": "x,p0,p1\n1,0,1\n"},
        {"prob_cols": "q_*"},
        "prob_cols",
        r"data.csv has no column matching 'q_\*'",
    ),
    (
        "one prob col",
        {"data.csv": "x,p0,p1\n1,0,1\n"},
        {"prob_cols": "p1"},
        "source",
        r"data.csv: expected at least 2 probability columns",
    ),
    (
        "column twice",
        {"data.csv": "x,p0,p1\n1,0,1\n"},
        {"prob_cols": "p*,p1"},
        "prob_cols",
        r"'p1' twice",
    ),
    (
        "text",
        {"data.csv": "x1,x2,y\n1,2,0\n1,abc,1\n"},
        {},
        "source",
        r"data.csv row 3, column 'x2': expected a finite number, got 'abc'",
    ),
    (
        "empty cell",
        {"data.csv": "x1,x2,y\n1,2,0\n1,,1\n"},
        {},
        "source",
        r"data.csv row 3, column 'x2': expected a finite number, got an empty cell",
    ),
    (
        "nan",
        {"data.csv": "x1,x2,y\n1,2,0\nnan,2,1\n"},
        {},
        "source",
        r"data.csv row 3, column 'x1': expected a finite number, got 'nan'",
    ),
    (
        "infinity",
        {"data.csv": "x1,x2,y\n1,2,0\n1,-inf,1\n"},
        {},
        "source",
        r"row 3, column 'x2': expected a finite number, got '-inf'",
    ),
    (
        "beyond float32",
        {"data.csv": "x1,x2,y\n1,2,0\n1,1e39,1\n"},
        {},
        "source",
        r"row 3, column 'x2': expected a number float32 can hold .*got '1e39'",
    ),
    (
        "label 1.5",
        {"data.csv": "x,y\n1,0\n2,1.5\n"},
        {},
        "source",
        r"data.csv row 3, column 'y': expected an integer class label, got '1.5'",
    ),
    (
        "label -1",
        {"data.csv": "x,y\n1,0\n2,-1\n"},
        {},
        "source",
        r"data.csv row 3, column 'y': expected an integer class label >= 0, got '-1'",
    ),
    (
        "label cat",
        {"data.csv": "x,y\n1,0\n2,cat\n"},
        {},
        "source",
        r"data.csv row 3, column 'y': expected an integer class label, got 'cat'",
    ),
    (
        "label with a digit-group underscore (Python reads 1_0 as 10)",
        {"data.csv": "x,y\n1,0\n2,1_0\n"},
        {},
        "source",
        r"data.csv row 3, column 'y': expected an integer class label, got '1_0'",
    ),
    (
        "a feature in Arabic-Indic digits (Python reads it as 3)",
        {"data.csv": "x,y\n1,0\n\u0663,1\n"},
        {},
        "source",
        r"data.csv row 3, column 'x': expected a finite number, got '\u0663'",
    ),
    (
        "label nan",
        {"data.csv": "x,y\n1,0\n2,nan\n"},
        {},
        "source",
        r"row 3, column 'y': expected an integer class label, got 'nan'",
    ),
    (
        "label too large",
        {"data.csv": "x,y\n1,0\n2,1\n3,1e9\n"},
        {},
        "source",
        r"row 4, column 'y': expected a class label from 0 to 2 \(data.csv has 3 rows",
    ),
    (
        "probability < 0",
        {"data.csv": "x,p0,p1\n1,0,1\n1,-0.5,1.5\n"},
        {"prob_cols": "p0,p1"},
        "source",
        r"data.csv row 3, column 'p0': expected a probability >= 0, got '-0.5'",
    ),
    (
        "probabilities sum",
        {"data.csv": "x,p0,p1\n1,0,1\n1,0.5,0.4\n"},
        {"prob_cols": "p*"},
        "source",
        r"data.csv row 3: expected class probabilities in 'p0', 'p1' summing to 1 \(within 1e-06\), got a sum of 0.9",
    ),
    (
        "npz without x",
        {"data.npz": {"y": OK_Y}},
        {},
        "source",
        r"data.npz: expected arrays 'x' .*got no 'x'",
    ),
    (
        "npz without y",
        {"data.npz": {"x": OK_X}},
        {},
        "source",
        r"data.npz: expected arrays .*got no 'y'",
    ),
    ("npz empty", {"data.npz": {}}, {}, "source", r"data.npz: expected arrays .*got no 'x' or 'y'"),
    (
        "npz lengths",
        {"data.npz": {"x": OK_X, "y": OK_Y[:3]}},
        {},
        "source",
        r"data.npz: expected 'y' with one entry per row of 'x' \(4\), got 3",
    ),
    (
        "npz object array",
        {"data.npz": {"x": OK_X.astype(object), "y": OK_Y}},
        {},
        "source",
        r"data.npz array 'x': expected numbers, got an object array",
    ),
    (
        "npz truncated",
        {"data.npz": _corrupt_npz()},
        {},
        "source",
        r"data.npz: .*corrupt or truncated",
    ),
    (
        "npz bit flip",
        {"data.npz": _flipped_npz()},
        {},
        "source",
        r"data.npz: .*corrupt or truncated",
    ),
    (
        "npz is text",
        {"data.npz": "x,y\n1,0\n"},
        {},
        "source",
        r"data.npz: expected an .npz archive .*another kind of file",
    ),
    ("npz is a pickle", {"data.npz": b"\x80\x04K\x01."}, {}, "source", r"data.npz: .*pickled data"),
    ("npz is .npy", {"data.npz": _npy()}, {}, "source", r"data.npz: .*single .npy array"),
    (
        "npz x nan",
        {"data.npz": {"x": np.where(OK_X == 3, np.nan, OK_X), "y": OK_Y}},
        {},
        "source",
        r"data.npz x\[1, 1\]: expected a finite number, got nan",
    ),
    (
        "npz x text",
        {"data.npz": {"x": OK_X.astype(str), "y": OK_Y}},
        {},
        "source",
        r"data.npz array 'x': expected a 2-D array of numbers",
    ),
    (
        "npz x 1-D",
        {"data.npz": {"x": OK_Y, "y": OK_Y}},
        {},
        "source",
        r"data.npz array 'x': expected a 2-D array .*got a 1-D",
    ),
    (
        "npz y float",
        {"data.npz": {"x": OK_X, "y": OK_Y * 1.0}},
        {},
        "source",
        r"data.npz array 'y': expected 1-D integer class labels or 2-D class probabilities, got a 1-D float64",
    ),
    (
        "npz y < 0",
        {"data.npz": {"x": OK_X, "y": np.array([0, 1, -1, 1])}},
        {},
        "source",
        r"data.npz y\[2\]: expected an integer class label >= 0, got -1",
    ),
    (
        "npz y too large",
        {"data.npz": {"x": OK_X, "y": np.array([0, 1, 9, 1])}},
        {},
        "source",
        r"data.npz y\[2\]: expected a class label from 0 to 3",
    ),
    (
        "npz y beyond class_names",
        {"data.npz": {"x": OK_X, "y": np.array([0, 1, 2, 1]), "class_names": np.array(["a", "b"])}},
        {},
        "source",
        r"data.npz y\[2\]: expected a class label from 0 to 1 \(the 2 class_names\)",
    ),
    (
        "npz probabilities sum",
        {"data.npz": {"x": OK_X, "y": np.array([[1, 0], [0.5, 0.6], [0, 1], [1, 0]])}},
        {},
        "source",
        r"data.npz y\[1\]: expected class probabilities summing to 1",
    ),
    (
        "npz probability < 0",
        {"data.npz": {"x": OK_X, "y": np.array([[1, 0], [-0.5, 1.5], [0, 1], [1, 0]])}},
        {},
        "source",
        r"data.npz y\[1, 0\]: expected a probability >= 0",
    ),
    (
        "npz feature_names",
        {"data.npz": {"x": OK_X, "y": OK_Y, "feature_names": np.array(["a"])}},
        {},
        "source",
        r"data.npz array 'feature_names': expected a 1-D array of 2 distinct",
    ),
    (
        "too few rows",
        {"data.csv": "x,y\n1,0\n2,1\n"},
        {},
        "test_frac",
        r"data.csv: expected a fraction that leaves at least one test row .*got 0.25 of 2 rows \(classes of 1, 1 rows\)",
    ),
    (
        "a class with no rows",
        {"data.csv": "x,y\n1,0\n2,2\n3,0\n4,2\n"},
        {"test_frac": 0.5},
        "source",
        r"data.csv column 'y': expected training rows of every class from 0 to 2 .*got none of class 1",
    ),
    (
        "one class",
        {"data.csv": "x,y\n1,0\n2,0\n3,0\n"},
        {},
        "source",
        r"data.csv column 'y': expected at least 2 classes, got only class 0",
    ),
    (
        "soft class never probable",
        {"data.csv": "x,p0,p1,p2\n1,1,0,0\n2,0,1,0\n3,1,0,0\n4,0,1,0\n"},
        {"prob_cols": "p*", "test_frac": 0.5},
        "source",
        r"data.csv column 'p2': expected class 'p2' to have probability > 0",
    ),
    ("directory", {"data.csv/": None}, {}, "source", r"data.csv: expected a file, got a directory"),
    (
        "test class unseen in training",
        {"data.csv": labelled(6, 2), "test.csv": "x1,x2,y\n1,2,0\n3,4,2\n"},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv row 3, column 'y': expected a class with training rows, got class 2",
    ),
    (
        "test label too large",
        {"data.csv": labelled(6, 2), "test.csv": "x1,x2,y\n1,2,0\n3,4,6\n"},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv row 3, column 'y': expected a class label from 0 to 5 \(data.csv has 6 rows",
    ),
    (
        "test missing feature",
        {"data.csv": labelled(), "test.csv": "x1,y\n1,0\n"},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv: expected the feature columns of data.csv, got missing 'x2'",
    ),
    (
        "test extra feature",
        {"data.csv": labelled(), "test.csv": "x1,x2,x3,y\n1,2,3,0\n"},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv: expected the feature columns of data.csv, got extra 'x3'",
    ),
    (
        "test without label column",
        {"data.csv": labelled(), "test.csv": "x1,x2,z\n1,2,0\n"},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv has no column 'y' \(a target column of data.csv\)",
    ),
    (
        "test without label_col",
        {"data.csv": "y,x1\n0,1\n1,2\n", "test.csv": "x1,z\n1,0\n"},
        {"test_data": "test.csv", "label_col": "y"},
        "label_col",
        r"test.csv has no column 'y'",
    ),
    (
        "test soft, source labels",
        {"data.npz": {"x": OK_X, "y": OK_Y}, "test.npz": {"x": OK_X, "y": np.eye(2)[OK_Y]}},
        {"test_data": "test.npz"},
        "test_data",
        r"test.npz: expected class labels like data.npz, got class probabilities",
    ),
    (
        "test width",
        {"data.npz": {"x": OK_X, "y": OK_Y}, "test.npz": {"x": np.ones((2, 3)), "y": OK_Y[:2]}},
        {"test_data": "test.npz"},
        "test_data",
        r"test.npz: expected 2 features like data.npz, got 3",
    ),
    (
        "test classes",
        {
            "data.npz": {"x": OK_X, "y": np.eye(2)[OK_Y], "class_names": np.array(["a", "b"])},
            "test.npz": {"x": OK_X, "y": np.eye(2)[OK_Y], "class_names": np.array(["a", "c"])},
        },
        {"test_data": "test.npz"},
        "test_data",
        r"test.npz: expected the classes 'a', 'b' of data.npz, got 'a', 'c'",
    ),
    (
        "test file missing",
        {"data.csv": labelled()},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv: no such file",
    ),
    (
        "test header only",
        {"data.csv": labelled(), "test.csv": "x1,x2,y\n"},
        {"test_data": "test.csv"},
        "test_data",
        r"test.csv: expected data rows after the header",
    ),
]


@pytest.mark.parametrize(
    ("files", "kwargs", "field", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_every_bad_input_gets_one_line_naming_the_file_and_where(
    tmp_path, files, kwargs, field, pattern
):
    for name, content in files.items():
        if content is None:
            os.mkdir(name)
        elif isinstance(content, dict):
            savez(name, **content)
        else:
            write(name, content)
    source = next((n.rstrip("/") for n in files if n.startswith("data.")), "data.csv")
    with pytest.raises(ConfigError) as caught:
        load_data(DataConfig(source, **kwargs))
    message = str(caught.value)
    assert caught.value.field == field
    assert message.startswith(f"{field}: ")
    assert "\n" not in message and str(tmp_path) not in message and os.sep + "kldiv" not in message
    assert re.search(pattern, message), message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermissionError(13, "Permission denied"), r"cannot be read \(permission denied\)"),
        (OSError(5, "Input/output error"), r"cannot be read \(Input/output error\)"),
    ],
)
def test_an_unreadable_file_says_why(monkeypatch, error, expected):
    write("data.csv", labelled())

    def fail(self):
        raise error

    monkeypatch.setattr(pathlib.Path, "read_bytes", fail)
    with pytest.raises(ConfigError, match=rf"^source: data.csv: {expected}$"):
        load_data(DataConfig("data.csv"))


def test_a_zip_that_is_not_an_npz_is_refused_without_guessing():
    with zipfile.ZipFile("data.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ConfigError, match=r"^source: data.npz: expected arrays 'x'"):
        load_data(DataConfig("data.npz"))
