"""Per-seed results from anywhere: a CSV of final metrics per arm and seed (a user's PyTorch or
Keras runs), read into the shape `kldiv.stats.compare_arms` takes.

The file has a header line with the columns `arm`, `seed` and one column per metric, then one
row per run:

    arm,seed,test_accuracy,test_loss
    adam,0,0.912,0.281
    sgd,0,0.905,0.297
    ...

Metric direction and margins follow the metric names (`kldiv.margins.higher_is_better`,
`kldiv.margins.DEFAULT_MARGINS`: names ending in loss, error, brier, ece or kl are lower-is-better).
Every problem is one `ConfigError("results", ...)` line that says where (line numbers as an
editor shows them: the header is line 1) and what was expected.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from kldiv.checks import ConfigError
from kldiv.margins import SHARE_METRICS

__all__ = ["read_results_csv"]

_FIELD = "results"
_SHOWN_SEEDS = 5  # missing seeds listed in an unpaired-seeds message
_SNIFF_BYTES = 8192


def _fail(message: str) -> ConfigError:
    return ConfigError(_FIELD, message)


def _text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise _fail(f"expected a CSV file, got the directory {str(path)!r}") from None
    except OSError as err:
        raise _fail(f"expected a readable CSV file, got {str(path)!r}: {err.strerror}") from None
    if not raw.strip():
        raise _fail(
            f"expected a CSV with a header line 'arm,seed,<metric>,...', got an empty file "
            f"{str(path)!r}"
        )
    nul = raw.find(b"\0", 0, _SNIFF_BYTES)
    if nul >= 0:
        raise _fail(f"expected a text CSV file, got binary data (a NUL byte at offset {nul})")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise _fail(
            f"expected a UTF-8 text CSV file, got byte 0x{raw[err.start]:02x} on line {line} "
            f"(offset {err.start})"
        ) from None


def _delimiter(header: str) -> str:
    """Comma, else tab or semicolon when the header has no comma (spreadsheet exports)."""
    for candidate in (",", "\t", ";"):
        if candidate in header:
            return candidate
    return ","


def _number(text: str, line: int, column: str) -> float:
    where = f"line {line}, column {column!r}"
    if not text.strip():
        raise _fail(f"{where}: expected a number, got an empty cell")
    try:
        value = float(text)
    except ValueError:
        raise _fail(f"{where}: expected a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise _fail(f"{where}: expected a finite number, got {text.strip()!r}")
    low, high = _range(column)
    if not low <= value <= high:
        raise _fail(f"{where}: expected a number in [{low:g}, {high:g}], got {text.strip()!r}")
    return value


def _range(metric: str) -> tuple[float, float]:
    """The values a metric can take, by its name: shares (accuracy, error, ECE) in [0, 1], the
    multi-class Brier score in [0, 2]; any other metric is unbounded here."""
    if metric.endswith(SHARE_METRICS):
        return 0.0, 1.0
    if metric.endswith("brier"):
        return 0.0, 2.0
    return -math.inf, math.inf


def _seed(text: str, line: int) -> int:
    where = f"line {line}, column 'seed'"
    try:
        value = int(text)
    except ValueError:
        try:  # 3.0, as spreadsheets write integers; exact below 2**53
            number = float(text)
        except ValueError:
            number = math.nan
        exact = math.isfinite(number) and number == int(number) and abs(number) < 2**53
        value = int(number) if exact else None
    if value is None or not -(2**63) <= value < 2**63:
        shown = text.strip()
        got = "an empty cell" if not shown else repr(shown[:40])
        raise _fail(f"{where}: expected an integer seed in [-2**63, 2**63), got {got}")
    return value


def read_results_csv(
    path: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Reads per-seed final metrics from a CSV with columns `arm`, `seed` and metric columns.

    Rules: UTF-8 text (a byte-order mark is fine), comma-separated (tab or semicolon when the
    header has no comma); names and cells are stripped of surrounding spaces; blank lines are
    skipped; every row has the header's number of fields; seeds are integers (3 or 3.0);
    metric values are finite numbers; each (arm, seed) appears once; every arm has exactly the
    same seeds (runs are paired by seed); at least 2 arms.

    Args:
      path: the CSV file.

    Returns:
      (finals, seeds): finals is arm -> metric -> float64 values, shape (seeds,), arms in order
      of first appearance and metrics in column order; seeds is the sorted int64 array, shape
      (seeds,), that orders every value array.

    Raises:
      ConfigError: (field "results") one line per problem: unreadable, empty or binary file; no
        `arm` or `seed` column, no metric column, an empty or repeated column name; a row with
        the wrong number of fields, an empty arm, a seed that is not an integer, a value that is
        not a finite number (named by line and column); a repeated (arm, seed); an arm missing
        seeds that others have (up to 5 named); fewer than 2 arms.
    """
    text = _text(Path(path))
    lines = text.splitlines()
    header_line = next((i for i, line in enumerate(lines) if line.strip()), 0)
    # newline="": the csv module sees \r\n, \r and \n as line ends and counts lines like an editor.
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=_delimiter(lines[header_line]),
        skipinitialspace=True,
        strict=True,
    )
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as err:
        raise _fail(f"line {reader.line_num}: expected CSV fields, got {err}") from None
    numbered = [(line, [cell.strip() for cell in row]) for line, row in rows if any(row)]
    (header_at, header), body = numbered[0], numbered[1:]
    for name in ("arm", "seed"):
        if name not in header:
            raise _fail(
                f"line {header_at}: expected a column named {name!r} (and 'arm', 'seed', one "
                f"column per metric), got columns {header}"
            )
    if "" in header:
        raise _fail(f"line {header_at}: expected a name for every column, got columns {header}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise _fail(f"line {header_at}: expected each column once, got {repeated} repeated")
    metrics = [name for name in header if name not in ("arm", "seed")]
    if not metrics:
        raise _fail(
            f"line {header_at}: expected at least one metric column besides 'arm' and 'seed', "
            f"got columns {header}"
        )
    arm_at, seed_at = header.index("arm"), header.index("seed")
    at = {m: header.index(m) for m in metrics}
    values: dict[str, dict[int, list[float]]] = {}
    first_line: dict[tuple[str, int], int] = {}
    for line, row in body:
        if len(row) != len(header):
            raise _fail(
                f"line {line}: expected {len(header)} fields (as the header), got {len(row)}"
            )
        arm = row[arm_at]
        if not arm:
            raise _fail(f"line {line}, column 'arm': expected an arm name, got an empty cell")
        seed = _seed(row[seed_at], line)
        if (arm, seed) in first_line:
            raise _fail(
                f"line {line}: expected one row per arm and seed, got arm {arm!r} seed {seed} "
                f"again (first on line {first_line[arm, seed]})"
            )
        first_line[arm, seed] = line
        values.setdefault(arm, {})[seed] = [_number(row[at[m]], line, m) for m in metrics]
    if len(values) < 2:
        got = "no rows" if not values else f"1 arm ({next(iter(values))!r})"
        raise _fail(f"expected rows of at least 2 arms to compare, got {got}")
    every = sorted(set().union(*(set(by_seed) for by_seed in values.values())))
    for arm, by_seed in values.items():
        missing = [s for s in every if s not in by_seed]
        if missing:
            shown = ", ".join(map(str, missing[:_SHOWN_SEEDS]))
            more = f" and {len(missing) - _SHOWN_SEEDS} more" if len(missing) > _SHOWN_SEEDS else ""
            raise _fail(
                f"expected every arm to have the same seeds (runs are paired by seed), got arm "
                f"{arm!r} without seeds {shown}{more} ({len(missing)} of {len(every)} missing)"
            )
    seeds = np.array(every, dtype=np.int64)
    finals = {
        arm: {
            m: np.array([by_seed[s][j] for s in every], dtype=np.float64)
            for j, m in enumerate(metrics)
        }
        for arm, by_seed in values.items()
    }
    return finals, seeds
