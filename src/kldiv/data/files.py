"""The user's data files, CSV and .npz, read into checked tables; every bad input gets one line.

A file is read once: the same bytes are parsed and fingerprinted (size, sha256), so a run records
exactly what it trained on. Errors are `kldiv.checks.ConfigError(field, message)`, where `field`
is the config field that named the file or column and the message names the file, the row or
column, what was expected and what was found, on one line. CSV rows are numbered as an editor
shows them (the header is row 1); .npz entries by their NumPy index (`y[17]`, `x[3, 0]`).

CSV: UTF-8 (an optional byte-order mark is skipped), comma-separated, a header row of unique,
non-empty column names (surrounding spaces dropped), then one row per sample with one value per
column; blank lines are skipped. The target is either one integer label column (values such as
`3` or `3.0`, >= 0) or one probability column per class, each row non-negative and summing to 1
within `PROB_TOLERANCE` (absolute). Every other column is a feature, in file order, and must hold
finite numbers that float32 can hold.

.npz (`numpy.savez`, loaded with `allow_pickle=False`, so no code in the file ever runs): `x`
(rows, features) numeric and finite; `y` either (rows,) integer labels >= 0 or (rows, classes)
probabilities checked as for CSV; optional `feature_names` and `class_names` string arrays. Other
arrays are ignored.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.checks import F32_MAX, ConfigError

PROB_TOLERANCE = 1e-6
"""How far from 1 (absolute) a row of class probabilities may sum."""

FILE_SUFFIXES = (".csv", ".npz")


def file_kind(path: str) -> str | None:
    """'csv' or 'npz' from the path's suffix (any case), None for anything else."""
    suffix = Path(path).suffix.lower()
    return suffix[1:] if suffix in FILE_SUFFIXES else None


@dataclass(frozen=True, eq=False)
class DataFile:
    """A file's bytes, read once: what is parsed is what is fingerprinted."""

    path: str
    content: bytes
    bundled: bool = False  # shipped with kldiv (digits): `path` is a name, not a place

    def record(self, role: str) -> dict[str, Any]:
        """JSON-ready fingerprint: role ('source', 'test_data'), path as given and, for a user's
        file, absolute (a relative path means nothing without the directory it was typed in),
        size, sha256."""
        where = {} if self.bundled else {"absolute_path": os.path.abspath(self.path)}
        return {
            "role": role,
            "path": self.path,
            **where,
            "bytes": len(self.content),
            "sha256": hashlib.sha256(self.content).hexdigest(),
        }


def read_file(path: str, field: str) -> DataFile:
    """The bytes of the file at `path`; a missing, unreadable or empty file, or a directory, is a
    ConfigError naming `field`."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(field, f"{path}: expected a file, got a directory")
    try:
        content = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(field, f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(field, f"{path}: cannot be read (permission denied)") from None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(field, f"{path}: cannot be read ({reason})") from None
    if not content:
        raise ConfigError(field, f"{path}: expected data, got an empty file")
    return DataFile(path, content)


@dataclass(frozen=True, eq=False)
class Table:
    """One file's samples, checked: features and either labels or class probabilities.

    x: (rows, features) float32. labels: (rows,) int64 >= 0, or None. probs: (rows, classes)
    float64 rows of probabilities, or None (exactly one of labels and probs is set).
    feature_names: one per column of x. class_names: the classes' names when the file gives them
    (probability columns, an .npz `class_names`), else None. target_names: the target columns
    (the label column, the probability columns; ('y',) for .npz). lines: the CSV row number of
    each sample (None for .npz). names_given: the feature names come from the file.
    """

    file: DataFile
    x: np.ndarray
    feature_names: tuple[str, ...]
    labels: np.ndarray | None
    probs: np.ndarray | None
    class_names: tuple[str, ...] | None
    target_names: tuple[str, ...]
    lines: np.ndarray | None
    names_given: bool = True

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def soft(self) -> bool:
        return self.probs is not None

    def true_labels(self) -> np.ndarray:
        """(rows,) int64: the label, or the most probable class (the first one on ties)."""
        if self.labels is not None:
            return self.labels
        return np.argmax(self.probs, axis=1).astype(np.int64)

    def take(self, rows: np.ndarray) -> Table:
        """The table restricted to `rows` (indices), in that order."""
        return replace(
            self,
            x=self.x[rows],
            labels=None if self.labels is None else self.labels[rows],
            probs=None if self.probs is None else self.probs[rows],
            lines=None if self.lines is None else self.lines[rows],
        )

    def select_features(self, names: tuple[str, ...]) -> Table:
        """The table with its feature columns in the order of `names` (a permutation of them)."""
        order = [self.feature_names.index(name) for name in names]
        return replace(self, x=self.x[:, order], feature_names=names)

    def where_target(self, row: int) -> str:
        """Where sample `row`'s target is, as a message names it."""
        if self.lines is None:
            return f"{self.file.path} y[{row}]"
        return f"{self.file.path} row {self.lines[row]}, column {self.target_names[0]!r}"

    def where_class(self, k: int) -> str:
        """Where class `k`'s targets are, as a message names it."""
        if self.lines is None:
            return f"{self.file.path} y" if self.probs is None else f"{self.file.path} y[:, {k}]"
        column = self.target_names[0] if self.probs is None else self.target_names[k]
        return f"{self.file.path} column {column!r}"


# ---------------------------------------------------------------------------------------- CSV


@dataclass(frozen=True, eq=False)
class CsvText:
    """A CSV file split into cells: header names, rows of strings, each row's editor line."""

    file: DataFile
    header: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]

    @property
    def path(self) -> str:
        return self.file.path

    def column(self, name: str, field: str, why: str = "") -> int:
        """The index of column `name`; an unknown name is a ConfigError naming `field` that lists
        the columns there are (and a close match). `why` says what the column is for."""
        if name in self.header:
            return self.header.index(name)
        close = difflib.get_close_matches(name, self.header, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            field,
            f"{self.path} has no column {name!r}{why}{hint}; its columns are "
            f"{_listed(self.header)}",
        )

    def cell(self, row: int, col: int) -> str:
        """Where cell (row, col) is, as a message names it."""
        return f"{self.path} row {self.lines[row]}, column {self.header[col]!r}"


def parse_csv(file: DataFile, field: str) -> CsvText:
    """Split `file` into a header and rows of cells: UTF-8 text, a header row of unique non-empty
    names (not numbers: a file without a header would lose its first row), at least one data row,
    every row as wide as the header."""
    path, content = file.path, file.content
    if content[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise ConfigError(field, f"{path}: expected UTF-8 text, got UTF-16 (save it as UTF-8)")
    if content.startswith(codecs.BOM_UTF8):
        content = content[len(codecs.BOM_UTF8) :]
    nul = content.find(b"\0")
    if nul >= 0:
        line = content.count(b"\n", 0, nul) + 1
        raise ConfigError(
            field,
            f"{path}: expected a CSV text file, got binary data (a NUL byte on line {line})",
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        line = content.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            field,
            f"{path} row {line}: expected UTF-8 text, got the byte 0x{content[err.start]:02x}",
        ) from None

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1  # the line a row starts on (a quoted cell may span lines; line_num is the last)
    try:
        for row in reader:
            if len(row) > 1 or (row and row[0].strip()):  # blank lines are skipped
                rows.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        raise ConfigError(
            field, f"{path} row {reader.line_num}: expected CSV text, got a malformed row ({err})"
        ) from None
    if not rows:
        raise ConfigError(field, f"{path}: expected a header row and data rows, got no rows")

    header = tuple(name.strip() for name in rows[0])
    where = f"{path} row {lines[0]}"
    if all(_is_number(name) for name in header):
        raise ConfigError(
            field,
            f"{where}: expected a header row of column names, got numbers ({_listed(header)})",
        )
    for j, name in enumerate(header):
        if not name:
            raise ConfigError(
                field, f"{where}, column {j + 1}: expected a column name, got an empty cell"
            )
        if name in header[:j]:
            raise ConfigError(
                field,
                f"{where}: expected unique column names, got {name!r} as columns "
                f"{header.index(name) + 1} and {j + 1}",
            )
    if len(rows) == 1:
        raise ConfigError(field, f"{path}: expected data rows after the header, got none")
    width = len(header)
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            raise ConfigError(
                field,
                f"{path} row {line}: expected {width} values (one per header column), "
                f"got {len(row)}",
            )
    return CsvText(file, header, rows[1:], lines[1:])


def resolve_columns(text: CsvText, spec: str, field: str) -> tuple[str, ...]:
    """The columns named by `spec`: comma-separated names or `fnmatch` globs (`p_*`), each glob
    expanding to the matching columns in file order; no column twice."""
    names: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if any(ch in item for ch in "*?["):
            matches = [name for name in text.header if fnmatchcase(name, item)]
            if not matches:
                raise ConfigError(
                    field,
                    f"{text.path} has no column matching {item!r}; its columns are "
                    f"{_listed(text.header)}",
                )
        else:
            matches = [text.header[text.column(item, field)]]
        for name in matches:
            if name in names:
                raise ConfigError(field, f"expected each column once, got {name!r} twice")
            names.append(name)
    return tuple(names)


def csv_table(
    text: CsvText,
    field: str,
    *,
    label_col: str | None = None,
    prob_cols: tuple[str, ...] | None = None,
    max_label: int | None = None,
    label_range: str = "",
) -> Table:
    """The samples of a parsed CSV file.

    Targets: the probability columns `prob_cols` (existing column names, at least two), or else the
    label column `label_col` (an existing column name; None: the last column). Labels must be
    integers in [0, max_label]; `label_range` says why, for the message. By default max_label is
    one less than the number of rows: a class needs a training row, so there are at most as many
    classes as rows (a guard against an ID column taken for labels).
    Features: every other column, in file order (at least one).
    """
    if prob_cols is not None:
        target_names = prob_cols
        if len(prob_cols) < 2:
            raise ConfigError(
                field,
                f"{text.path}: expected at least 2 probability columns (one per class), "
                f"got {_listed(prob_cols)}",
            )
    else:
        target_names = (label_col if label_col is not None else text.header[-1],)
    target_idx = [text.header.index(name) for name in target_names]
    feature_idx = [j for j in range(len(text.header)) if j not in target_idx]
    if not feature_idx:
        hint = " (is it comma-separated?)" if len(text.header) == 1 else ""
        raise ConfigError(
            field,
            f"{text.path}: expected at least one feature column besides the target "
            f"{_listed(target_names)}, got none{hint}",
        )

    values = _numbers(text, field, target_idx if prob_cols is None else [])  # (rows, columns)
    _check_finite(text, field, values, [j for j in range(values.shape[1]) if j not in target_idx])
    x = values[:, feature_idx].astype(np.float32)
    feature_names = tuple(text.header[j] for j in feature_idx)
    lines = np.asarray(text.lines, dtype=np.int64)
    if max_label is None:
        max_label = len(text.rows) - 1
        label_range = f" ({text.path} has {len(text.rows)} rows, and each class needs one)"
    if prob_cols is None:
        labels = _check_labels(
            text, field, values[:, target_idx[0]], target_idx[0], max_label, label_range
        )
        return Table(text.file, x, feature_names, labels, None, None, target_names, lines)
    probs = values[:, target_idx]
    bad = np.argwhere(probs < 0)
    if bad.size:
        i, k = bad[0]
        raise ConfigError(
            field,
            f"{text.cell(i, target_idx[k])}: expected a probability >= 0, "
            f"got {_shown(text.rows[i][target_idx[k]])}",
        )
    _check_sums(field, probs, lambda i: f"{text.path} row {text.lines[i]}", target_names)
    return Table(text.file, x, feature_names, None, probs, target_names, target_names, lines)


def _numbers(text: CsvText, field: str, label_idx: list[int]) -> np.ndarray:
    """(rows, columns) float64 of every cell; the first cell that is not a number is a ConfigError
    (a label column, `label_idx`, gets the label message)."""
    if not _may_hide_numbers(text):
        try:
            return np.array(text.rows, dtype=np.float64)
        except ValueError:
            pass
    for i, row in enumerate(text.rows):  # the slow path finds the first bad cell, in file order
        for j, cell in enumerate(row):
            if not _is_number(cell):
                expected = "an integer class label" if j in label_idx else "a finite number"
                raise ConfigError(
                    field, f"{text.cell(i, j)}: expected {expected}, got {_shown(cell)}"
                )
    return np.array([[float(cell) for cell in row] for row in text.rows], dtype=np.float64)


def _check_finite(text: CsvText, field: str, values: np.ndarray, columns: list[int]) -> None:
    """Every value in `columns` is finite and float32 holds it."""
    block = values[:, columns]
    bad = np.argwhere(~np.isfinite(block) | (np.abs(block) > F32_MAX))
    if bad.size:
        i, j = bad[0][0], columns[bad[0][1]]
        got = text.rows[i][j]
        expected = (
            "a finite number"
            if not np.isfinite(values[i, j])
            else f"a number float32 can hold (magnitude up to {F32_MAX:.4g})"
        )
        raise ConfigError(field, f"{text.cell(i, j)}: expected {expected}, got {_shown(got)}")


def _check_labels(
    text: CsvText, field: str, column: np.ndarray, j: int, max_label: int, label_range: str
) -> np.ndarray:
    """(rows,) int64 labels from a column of parsed numbers: integers in [0, max_label]."""
    whole = np.isfinite(column) & (column == np.floor(column))
    in_range = whole & (column >= 0) & (column <= max_label)
    if not in_range.all():
        i = int(np.argmin(in_range))
        got = text.rows[i][j]
        if not whole[i]:
            expected = "an integer class label"
        elif column[i] < 0:
            expected = "an integer class label >= 0"
        else:
            expected = f"a class label from 0 to {max_label}{label_range}"
        raise ConfigError(field, f"{text.cell(i, j)}: expected {expected}, got {got!r}")
    return column.astype(np.int64)


# ---------------------------------------------------------------------------------------- npz


def npz_arrays(file: DataFile, field: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays `names` of an .npz archive that has them (any missing one is left out), loaded
    without pickle; not an archive, corrupt, pickled or object arrays: a ConfigError."""
    path = file.path
    corrupt = f"{path}: expected an .npz archive (numpy.savez), got a corrupt or truncated file"
    try:
        archive = np.load(io.BytesIO(file.content), allow_pickle=False)
    except ValueError:
        if file.content[:1] == b"\x80":  # the pickle protocol's opcode
            raise ConfigError(
                field, f"{path}: expected an .npz archive, got pickled data (never loaded)"
            ) from None
        raise ConfigError(
            field, f"{path}: expected an .npz archive (numpy.savez), got another kind of file"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        raise ConfigError(field, corrupt) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ConfigError(
            field, f"{path}: expected an .npz archive (numpy.savez), got a single .npy array"
        )
    out = {}
    with archive:
        for name in names:
            if name not in archive.files:
                continue
            try:
                out[name] = archive[name]
            except ValueError as err:
                if "allow_pickle" not in str(err):
                    raise ConfigError(field, corrupt) from None
                raise ConfigError(
                    field,
                    f"{path} array {name!r}: expected numbers, got an object array "
                    "(Python objects need pickle, which kldiv never loads)",
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
                raise ConfigError(field, corrupt) from None
    return out


def npz_table(
    file: DataFile, field: str, *, max_label: int | None = None, label_range: str = ""
) -> Table:
    """The samples of an .npz archive (see the module docstring). Labels must be < the number of
    `class_names` when the archive has them, else <= `max_label` (`label_range` says why; by
    default, one less than the number of rows, as for CSV)."""
    path = file.path
    arrays = npz_arrays(file, field, ("x", "y", "feature_names", "class_names"))
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise ConfigError(
            field,
            f"{path}: expected arrays 'x' (features) and 'y' (targets), "
            f"got no {' or '.join(repr(m) for m in missing)}",
        )
    x = npz_features(arrays["x"], path, field)
    y = arrays["y"]
    if y.ndim == 1 and y.dtype.kind in "iu":
        soft = False
    elif y.ndim == 2 and y.dtype.kind in "biuf":
        soft = True
    else:
        raise ConfigError(
            field,
            f"{path} array 'y': expected 1-D integer class labels or 2-D class probabilities, "
            f"got a {y.ndim}-D {y.dtype} array",
        )
    if y.shape[0] != x.shape[0]:
        raise ConfigError(
            field,
            f"{path}: expected 'y' with one entry per row of 'x' ({x.shape[0]}), got {y.shape[0]}",
        )
    feature_names = _npz_names(arrays, "feature_names", x.shape[1], path, field)
    n_classes = y.shape[1] if soft else None
    class_names = _npz_names(arrays, "class_names", n_classes, path, field)
    lines = None
    if soft:
        probs = y.astype(np.float64)
        if probs.shape[1] < 2:
            raise ConfigError(
                field,
                f"{path} array 'y': expected at least 2 probability columns (one per class), "
                f"got {probs.shape[1]}",
            )
        bad = np.argwhere(~np.isfinite(probs) | (probs < 0))
        if bad.size:
            i, k = bad[0]
            raise ConfigError(
                field, f"{path} y[{i}, {k}]: expected a probability >= 0, got {probs[i, k]}"
            )
        _check_sums(field, probs, lambda i: f"{path} y[{i}]", None)
        return Table(
            file,
            x,
            feature_names or _default_names(x),
            None,
            probs,
            class_names,
            ("y",),
            lines,
            feature_names is not None,
        )
    if class_names is not None:
        max_label = len(class_names) - 1
        label_range = f" (the {len(class_names)} class_names)"
    elif max_label is None:
        max_label = x.shape[0] - 1
        label_range = f" ({path} has {x.shape[0]} rows, and each class needs one)"
    below = np.argwhere(y < 0)
    above = np.argwhere(y > max_label)
    if below.size:
        i = int(below[0][0])
        raise ConfigError(field, f"{path} y[{i}]: expected an integer class label >= 0, got {y[i]}")
    if above.size:
        i = int(above[0][0])
        raise ConfigError(
            field,
            f"{path} y[{i}]: expected a class label from 0 to {max_label}{label_range}, got {y[i]}",
        )
    return Table(
        file,
        x,
        feature_names or _default_names(x),
        y.astype(np.int64),
        None,
        class_names,
        ("y",),
        lines,
        feature_names is not None,
    )


def npz_features(x: np.ndarray, path: str, field: str) -> np.ndarray:
    """An .npz `x`, checked: 2-D, numeric, at least one row and one column, finite numbers that
    float32 can hold; returned as float32."""
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise ConfigError(
            field,
            f"{path} array 'x': expected a 2-D array of numbers (rows, features), "
            f"got a {x.ndim}-D {x.dtype} array",
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ConfigError(
            field, f"{path} array 'x': expected at least one row and one column, got {x.shape}"
        )
    values = x.astype(np.float64)
    finite = np.isfinite(values)
    bad = np.argwhere(~finite | (np.abs(values) > F32_MAX))
    if bad.size:
        i, j = bad[0]
        expected = (
            "a finite number"
            if not finite[i, j]
            else f"a number float32 can hold (magnitude up to {F32_MAX:.4g})"
        )
        raise ConfigError(field, f"{path} x[{i}, {j}]: expected {expected}, got {values[i, j]}")
    return values.astype(np.float32)


def _npz_names(
    arrays: dict[str, np.ndarray], name: str, count: int | None, path: str, field: str
) -> tuple[str, ...] | None:
    if name not in arrays:
        return None
    names = arrays[name]
    values = tuple(str(v) for v in names.ravel()) if names.dtype.kind == "U" else ()
    wanted = len(values) == count if count is not None else len(values) >= 2
    if names.ndim != 1 or not wanted or len(set(values)) != len(values) or not all(values):
        what = f"{count}" if count is not None else "at least 2"
        raise ConfigError(
            field,
            f"{path} array {name!r}: expected a 1-D array of {what} distinct non-empty strings, "
            f"got a {names.ndim}-D {names.dtype} array of {names.size}",
        )
    return values


def _default_names(x: np.ndarray) -> tuple[str, ...]:
    return tuple(f"x{j}" for j in range(x.shape[1]))


# ---------------------------------------------------------------------------- prediction inputs


def load_features(path: str, feature_names: tuple[str, ...], field: str = "data") -> np.ndarray:
    """(rows, features) float32: the inputs of a trained model, read from a .csv or .npz file.

    CSV: the columns `feature_names`, picked by name in that order (other columns, such as a label
    column, are ignored; a missing one is an error naming it). npz: `x`, with one column per
    feature (and, when the archive has `feature_names`, the same names in the same order).
    Errors are ConfigErrors naming `field`.
    """
    kind = file_kind(path)
    if kind is None:
        raise ConfigError(field, f"expected a path ending in .csv or .npz, got {path!r}")
    file = read_file(path, field)
    if kind == "csv":
        text = parse_csv(file, field)
        columns = [text.column(name, field, " (a feature of the model)") for name in feature_names]
        picked = CsvText(
            file,
            tuple(text.header[j] for j in columns),
            [[row[j] for j in columns] for row in text.rows],
            text.lines,
        )
        values = _numbers(picked, field, [])
        _check_finite(picked, field, values, list(range(len(columns))))
        return values.astype(np.float32)
    arrays = npz_arrays(file, field, ("x", "feature_names"))
    if "x" not in arrays:
        raise ConfigError(field, f"{path}: expected an array 'x' (features), got none")
    x = npz_features(arrays["x"], path, field)
    if x.shape[1] != len(feature_names):
        raise ConfigError(
            field,
            f"{path} array 'x': expected {len(feature_names)} columns (features "
            f"{_listed(feature_names)}), got {x.shape[1]}",
        )
    given = _npz_names(arrays, "feature_names", x.shape[1], path, field)
    if (
        given is not None
        and sorted(given) == sorted(feature_names)
        and len(set(given)) == len(given)
    ):
        return x[:, [given.index(name) for name in feature_names]]  # matched by name, as a CSV
    if given is not None and given != tuple(feature_names):
        raise ConfigError(
            field,
            f"{path} array 'feature_names': expected {_listed(feature_names)}, "
            f"got {_listed(given)}",
        )
    return x


# ------------------------------------------------------------------------------------- helpers


def _check_sums(field: str, probs: np.ndarray, where: Any, names: tuple[str, ...] | None) -> None:
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_TOLERANCE)
    if bad.size:
        i = int(bad[0])
        columns = f" in {_listed(names)}" if names is not None else ""
        raise ConfigError(
            field,
            f"{where(i)}: expected class probabilities{columns} summing to 1 "
            f"(within {PROB_TOLERANCE:g}), got a sum of {sums[i]:.9g}",
        )


def _may_hide_numbers(text: CsvText) -> bool:
    """Whether the file has an underscore or a non-ASCII character anywhere (cheap, on the bytes):
    only then can a cell be one that Python and NumPy read as a number but a person does not
    write as one ('1_0' is 10, '١' is 1), which `_is_number` refuses cell by cell."""
    content = text.file.content
    return b"_" in content or not content.isascii()


def _is_number(cell: str) -> bool:
    """A decimal number written in ASCII, as a CSV holds it: no digit-group underscores, no
    digits of other scripts (which `float` accepts)."""
    if "_" in cell or not cell.isascii():
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _shown(cell: str) -> str:
    if not cell.strip():
        return "an empty cell"
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _listed(names: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"
