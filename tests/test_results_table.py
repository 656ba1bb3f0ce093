"""kldiv.results_table: per-seed CSVs from anywhere, read into compare_arms' shape; every bad file
is one line naming where and what."""

import csv
import re

import numpy as np
import pytest

from kldiv.checks import ConfigError
from kldiv.results_table import read_results_csv
from kldiv.stats import compare_arms


def write(tmp_path, text: str | bytes, name: str = "results.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def test_reads_arms_seeds_and_metrics(tmp_path):
    rng = np.random.default_rng(0)
    arms, seeds = ("sgd", "adam", "rmsprop"), [7, 3, 11, 5]
    expected = {a: {s: (rng.uniform(0.7, 0.9), rng.uniform(0.2, 0.5)) for s in seeds} for a in arms}
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seed", "test_accuracy", "arm", "val_loss"])  # any column order
        for s in seeds:  # rows interleaved, seeds unsorted
            for a in arms:
                acc, loss = expected[a][s]
                out.writerow([s, repr(acc), a, repr(loss)])
    finals, got_seeds = read_results_csv(path)
    assert list(finals) == list(arms)
    assert got_seeds.tolist() == sorted(seeds) and got_seeds.dtype == np.int64
    for a in arms:
        assert list(finals[a]) == ["test_accuracy", "val_loss"]
        for metric, j in (("test_accuracy", 0), ("val_loss", 1)):
            assert finals[a][metric].tolist() == [expected[a][s][j] for s in sorted(seeds)]
    stats = compare_arms(finals, seeds=got_seeds, n_boot=200)
    assert stats.baseline == "sgd" and stats.seeds == (3, 5, 7, 11)
    assert not stats.comparison("adam", "val_loss").higher_is_better


def test_tolerates_spreadsheet_habits(tmp_path):
    # Byte-order mark, CRLF line ends, spaces around cells, blank lines, seeds written as 1.0,
    # quoted cells.
    text = '\ufeffarm , seed, test_error\r\n"a", 1.0, "0.10"\r\n\r\na,2,0.2\r\n b ,1,0.3\r\nb,2 ,0.4\r\n\r\n'
    finals, seeds = read_results_csv(write(tmp_path, text))
    assert seeds.tolist() == [1, 2]
    assert finals == {
        "a": {"test_error": pytest.approx([0.1, 0.2])},
        "b": {"test_error": pytest.approx([0.3, 0.4])},
    }


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_tab_and_semicolon_separated(tmp_path, sep):
    text = (
        sep.join(["arm", "seed", "auc"])
        + "\n"
        + "\n".join(sep.join(row) for row in (["a", "0", "0.8"], ["b", "0", "0.7"]))
    )
    finals, _ = read_results_csv(write(tmp_path, text))
    assert finals["b"]["auc"].tolist() == [0.7]


HEADER = "arm,seed,test_accuracy\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a CSV with a header line 'arm,seed,<metric>,...', got an empty file"),
        ("\n  \n", "got an empty file"),
        (
            "name,seed,test_accuracy\na,1,0.5\n",
            "line 1: expected a column named 'arm' (and 'arm', 'seed', one column per metric), "
            "got columns ['name', 'seed', 'test_accuracy']",
        ),
        ("arm,run,acc\na,1,0.5\n", "line 1: expected a column named 'seed'"),
        (
            "arm,seed\na,1\nb,1\n",
            "line 1: expected at least one metric column besides 'arm' and 'seed', "
            "got columns ['arm', 'seed']",
        ),
        ("arm,seed,acc,acc\n", "line 1: expected each column once, got ['acc'] repeated"),
        ("arm,seed,,acc\n", "line 1: expected a name for every column"),
        (HEADER, "expected rows of at least 2 arms to compare, got no rows"),
        (
            HEADER + "a,1,0.5\na,2,0.6\n",
            "expected rows of at least 2 arms to compare, got 1 arm ('a')",
        ),
        (
            HEADER + "a,1,0.5\nb,1,n/a\n",
            "line 3, column 'test_accuracy': expected a number, got 'n/a'",
        ),
        (HEADER + "a,1,0.5\nb,1,0,5\n", "line 3: expected 3 fields (as the header), got 4"),
        (HEADER + "a,1,0.5\nb,1\n", "line 3: expected 3 fields (as the header), got 2"),
        (
            HEADER + "a,1,nan\nb,1,0.5\n",
            "line 2, column 'test_accuracy': expected a finite number, got 'nan'",
        ),
        (
            HEADER + "a,1,0.5\n\nb,1,-inf\n",
            "line 4, column 'test_accuracy': expected a finite number, got '-inf'",
        ),
        (
            HEADER + "a,1,\nb,1,0.5\n",
            "line 2, column 'test_accuracy': expected a number, got an empty cell",
        ),
        (
            HEADER + "a,x,0.5\n",
            "line 2, column 'seed': expected an integer seed in [-2**63, 2**63), got 'x'",
        ),
        (
            HEADER + "a,1.5,0.5\n",
            "line 2, column 'seed': expected an integer seed in [-2**63, 2**63), got '1.5'",
        ),
        (
            HEADER + "a,,0.5\n",
            "line 2, column 'seed': expected an integer seed in [-2**63, 2**63), got an empty cell",
        ),
        (HEADER + ",1,0.5\n", "line 2, column 'arm': expected an arm name, got an empty cell"),
        (
            HEADER + "a,1,0.5\nb,1,0.5\na,1,0.6\n",
            "line 4: expected one row per arm and seed, got arm 'a' seed 1 again (first on line 2)",
        ),
        (
            HEADER + "a,1,0.5\na,2,0.5\nb,1,0.5\n",
            "expected every arm to have the same seeds (runs are paired by seed), got arm 'b' "
            "without seeds 2 (1 of 2 missing)",
        ),
        (
            HEADER + "".join(f"a,{s},0.5\n" for s in range(10)) + "b,0,0.5\nb,9,0.5\n",
            "got arm 'b' without seeds 1, 2, 3, 4, 5 and 3 more (8 of 10 missing)",
        ),
        (
            HEADER + "a,1,0.5\nb,2,0.5\n",
            "got arm 'a' without seeds 2 (1 of 2 missing)",
        ),
        ('arm,seed,acc\n"a,1,0.5\n', "line 2: expected CSV fields, got unexpected end of data"),
    ],
)
def test_bad_files_are_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        read_results_csv(write(tmp_path, text))
    assert err.value.field == "results"
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "expected a text CSV file, got binary data (a NUL byte at offset 8)",
        ),
        (
            b"arm,seed,acc\na,1,0.5\nb,1,\xe9\n",
            "expected a UTF-8 text CSV file, got byte 0xe9 on line 3 (offset 25)",
        ),
    ],
)
def test_binary_files_are_refused(tmp_path, data, message):
    with pytest.raises(ConfigError, match="results: " + re.escape(message)):
        read_results_csv(write(tmp_path, data))


def test_unreadable_paths(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"results: expected a readable CSV file, got '.*missing\.csv': No such file",
    ):
        read_results_csv(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="results: expected a CSV file, got the directory"):
        read_results_csv(tmp_path)
