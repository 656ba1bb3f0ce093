"""Which data a run trains on (`DataConfig`) and the one function that loads it (`load_data`).

>>> loaded = load_data(DataConfig("digits", test_frac=0.2, standardize=True))
>>> loaded.dataset.x_train.shape, loaded.class_names[:3]
((1438, 64), ('0', '1', '2'))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from kldiv.checks import ConfigError, ConfigTypeError, check_int, check_real
from kldiv.config import BlobsConfig
from kldiv.data.blobs import blobs_dataset
from kldiv.data.dataset import Dataset, one_hot
from kldiv.data.digits import digits_table
from kldiv.data.files import (
    Table,
    csv_table,
    file_kind,
    npz_table,
    parse_csv,
    read_file,
    resolve_columns,
)
from kldiv.data.split import Standardizer, stratified_split

BUILTIN_SOURCES = ("blobs", "digits")
DEFAULT_TEST_FRAC = 0.25
"""The test fraction of digits and of a file source when neither test_data nor test_frac is given."""


@dataclass(frozen=True)
class DataConfig:
    """The data a run trains and validates on, and how it is split and scaled.

    source: 'blobs' (the tutorial's make_blobs data, its first 500 rows train, the last 500 test),
      'digits' (the 8x8 handwritten digits, bundled), or a path ending in .csv or .npz (stored as
      given; see `kldiv.data.files` for the formats).
    seed: the data seed: make_blobs' random_state for blobs (the tutorial's 2), the stratified
      split's draw otherwise.
    test_data: a .csv or .npz file of test rows (the per-epoch validation set), with the source's
      feature and target columns.
    test_frac: the fraction of each class drawn from the source as test rows, in (0, 1); without
      test_data it defaults to `DEFAULT_TEST_FRAC` (0.25), resolved here so records state it.
    label_col: the CSV column of integer class labels (default: the last column).
    prob_cols: the CSV columns of class probabilities (soft targets), comma-separated names or
      globs such as 'p_*'; the column names are the class names.
    standardize: centre and scale each feature by the training split's mean and standard
      deviation (`Standardizer`), stored with the model.

    Blobs keep the tutorial's split and targets: test_data, test_frac, label_col and prob_cols are
    refused with them, as are test_data with test_frac, label_col with prob_cols, and CSV columns
    when no file is a CSV.
    """

    source: str = "blobs"
    seed: int = BlobsConfig.random_state
    test_data: str | None = None
    test_frac: float | None = None
    label_col: str | None = None
    prob_cols: str | None = None
    standardize: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise ConfigTypeError("source", f"expected a string, got {self.source!r}")
        if self.source not in BUILTIN_SOURCES:
            _check_path("source", self.source)
        check_int("seed", self.seed, 0, 2**32 - 1)
        if self.test_data is not None:
            _check_path("test_data", self.test_data)
        if self.test_frac is not None:
            check_real("test_frac", self.test_frac, 0.0, 1.0, open_low=True, open_high=True)
        for name in ("label_col", "prob_cols"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigTypeError(name, f"expected a column name, got {value!r}")
        if self.prob_cols is not None and not all(p.strip() for p in self.prob_cols.split(",")):
            raise ConfigError(
                "prob_cols", f"expected comma-separated column names, got {self.prob_cols!r}"
            )
        if not isinstance(self.standardize, bool):
            raise ConfigTypeError(
                "standardize", f"expected True or False, got {self.standardize!r}"
            )

        if self.source == "blobs":
            for name in ("test_data", "test_frac", "label_col", "prob_cols"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        name,
                        "blobs keep the tutorial's split (first 500 rows train, last 500 test) "
                        f"and labels; expected no {name} with the blobs data, "
                        f"got {getattr(self, name)!r}",
                    )
            return
        if self.test_data is not None and self.test_frac is not None:
            raise ConfigError(
                "test_frac",
                f"expected either test_data or test_frac, got both (test_data={self.test_data!r})",
            )
        if self.label_col is not None and self.prob_cols is not None:
            raise ConfigError(
                "prob_cols",
                "expected either label_col (class labels) or prob_cols (class probabilities), "
                "got both",
            )
        csv_files = [p for p in (self.source, self.test_data) if p and file_kind(p) == "csv"]
        for name in ("label_col", "prob_cols"):
            if getattr(self, name) is not None and not csv_files:
                raise ConfigError(
                    name, f"names CSV columns, but no data file is a .csv (source={self.source!r})"
                )
        if self.test_data is None and self.test_frac is None:
            object.__setattr__(self, "test_frac", DEFAULT_TEST_FRAC)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        """Inverse of `to_dict`; also reads the record of older runs, a `BlobsConfig` mapping
        (`{"n_samples": 1000, ..., "random_state": 2}`), as blobs with seed = random_state."""
        if not isinstance(d, dict):
            raise ConfigTypeError("data", f"expected a mapping of fields, got {d!r}")
        blobs_fields = {f.name for f in dataclasses.fields(BlobsConfig)}
        if d and set(d) <= blobs_fields:
            blobs = BlobsConfig.from_dict(d)
            tutorial = BlobsConfig(random_state=blobs.random_state)
            if blobs != tutorial:
                changed = [
                    f"{f.name}={getattr(blobs, f.name)!r}"
                    for f in dataclasses.fields(BlobsConfig)
                    if getattr(blobs, f.name) != getattr(tutorial, f.name)
                ]
                raise ConfigError(
                    "data",
                    "expected the tutorial's blobs (only random_state may differ), "
                    f"got {', '.join(changed)}",
                )
            return cls(source="blobs", seed=blobs.random_state)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError("data", f"expected fields among {sorted(names)}, got {unknown[0]!r}")
        return cls(**d)


@dataclass(frozen=True, eq=False)
class LoadedData:
    """What `load_data` returns: the arrays to train on and what a run records about them.

    dataset: float32 arrays (standardized when asked); targets (rows, classes), one-hot for labels,
      the given probabilities for soft targets.
    feature_names, class_names: one per feature column and per class.
    standardizer: fitted on the training split when `standardize`, else None.
    soft_targets: the targets are class probabilities rather than labels.
    labels_train, labels_test: (rows,) int64 true class of each row (the most probable class, the
      first on ties, for soft targets).
    fingerprint: JSON-ready, {"files": [{"role", "path", "bytes", "sha256"}, ...], "train_rows",
      "test_rows"}: every file read (the bundled archive for digits; none for blobs).
    """

    dataset: Dataset
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    standardizer: Standardizer | None
    soft_targets: bool
    labels_train: np.ndarray
    labels_test: np.ndarray
    fingerprint: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def load_data(config: DataConfig) -> LoadedData:
    """Read, check, split and (optionally) standardize the data `config` names.

    Raises:
      ConfigError: one line naming the config field (source, test_data, label_col, prob_cols,
        test_frac), the file, the row or column, what was expected and what was found.
    """
    if not isinstance(config, DataConfig):
        raise ConfigTypeError("data", f"expected a DataConfig, got {config!r}")
    if config.source == "blobs":
        data = blobs_dataset(BlobsConfig(random_state=config.seed))
        labels = (data.y_train.argmax(axis=1), data.y_val.argmax(axis=1))
        names = (("x0", "x1"), ("0", "1", "2"))
        return _finish(config, data, *labels, *names, soft=False, files=[])

    source = digits_table() if config.source == "digits" else _read_table(config, None)
    if config.test_data is not None:
        test = _match(source, _read_table(config, source))
        train = source
        files = [source.file.record("source"), test.file.record("test_data")]
    else:
        try:
            train_idx, test_idx = stratified_split(
                source.true_labels(), config.test_frac, config.seed
            )
        except ConfigError as err:  # name the file the rows are in
            message = str(err).removeprefix(f"{err.field}: ")
            raise ConfigError(err.field, f"{source.file.path}: {message}") from None
        train, test = source.take(train_idx), source.take(test_idx)
        files = [source.file.record("source")]

    if source.soft:
        class_names = source.class_names or tuple(str(k) for k in range(source.probs.shape[1]))
        _check_soft_classes(train, class_names)
        targets = (train.probs.astype(np.float32), test.probs.astype(np.float32))
    else:
        class_names = _label_classes(source, test)
        _check_label_classes(config, source, train, test, len(class_names))
        targets = (one_hot(train.labels, len(class_names)), one_hot(test.labels, len(class_names)))
    data = Dataset(train.x, targets[0], test.x, targets[1])
    return _finish(
        config,
        data,
        train.true_labels(),
        test.true_labels(),
        source.feature_names,
        class_names,
        soft=source.soft,
        files=files,
    )


def _finish(
    config: DataConfig,
    data: Dataset,
    labels_train: np.ndarray,
    labels_test: np.ndarray,
    feature_names: tuple[str, ...],
    class_names: tuple[str, ...],
    *,
    soft: bool,
    files: list[dict[str, Any]],
) -> LoadedData:
    fingerprint = {
        "files": files,
        "train_rows": int(data.x_train.shape[0]),
        "test_rows": int(data.x_val.shape[0]),
    }
    loaded = LoadedData(
        dataset=data,
        feature_names=tuple(feature_names),
        class_names=tuple(class_names),
        standardizer=None,
        soft_targets=soft,
        labels_train=np.asarray(labels_train, dtype=np.int64),
        labels_test=np.asarray(labels_test, dtype=np.int64),
        fingerprint=fingerprint,
    )
    return standardized(loaded) if config.standardize else loaded


def standardized(loaded: LoadedData) -> LoadedData:
    """`loaded` (unstandardized) with its features centred and scaled by a `Standardizer` fitted
    on its training rows, recorded in `standardizer`: what `load_data` returns for a config with
    `standardize`, so a caller that needs the raw features too can load once."""
    if loaded.standardizer is not None:
        raise ValueError("loaded: expected unstandardized data, got data already standardized")
    data = loaded.dataset
    standardizer = Standardizer.fit(data.x_train)
    data = data._replace(
        x_train=standardizer.apply(data.x_train), x_val=standardizer.apply(data.x_val)
    )
    return dataclasses.replace(loaded, dataset=data, standardizer=standardizer)


def _read_table(config: DataConfig, source: Table | None) -> Table:
    """The source file's table (`source` None) or the test file's, read with the source's target
    columns and class range."""
    field = "source" if source is None else "test_data"
    path = config.source if source is None else config.test_data
    file = read_file(path, field)
    max_label, label_range = None, ""
    if source is not None and not source.soft:
        if source.class_names is not None:
            max_label = len(source.class_names) - 1
            label_range = f" (the classes of {source.file.path})"
        else:
            max_label = source.n_rows - 1
            label_range = (
                f" ({source.file.path} has {source.n_rows} rows, and each class needs a "
                "training row)"
            )
    if file_kind(path) == "npz":
        return npz_table(file, field, max_label=max_label, label_range=label_range)
    text = parse_csv(file, field)
    label_col, prob_cols = None, None
    if source is not None and source.lines is not None:  # a CSV source: the same target columns
        user_field = "prob_cols" if source.soft else "label_col"
        named_by = user_field if getattr(config, user_field) is not None else "test_data"
        why = f" (a target column of {source.file.path})"
        for name in source.target_names:
            text.column(name, named_by, why)
        if source.soft:
            prob_cols = source.target_names
        else:
            label_col = source.target_names[0]
    elif config.prob_cols is not None:
        prob_cols = resolve_columns(text, config.prob_cols, "prob_cols")
    elif config.label_col is not None:
        label_col = text.header[text.column(config.label_col, "label_col")]
    return csv_table(
        text,
        field,
        label_col=label_col,
        prob_cols=prob_cols,
        max_label=max_label,
        label_range=label_range,
    )


def _match(source: Table, test: Table) -> Table:
    """The test table with the source's feature columns, in the source's order, and targets of
    the same kind and classes."""
    here, there = test.file.path, source.file.path
    if source.names_given and test.names_given:
        if set(test.feature_names) != set(source.feature_names):
            missing = [n for n in source.feature_names if n not in test.feature_names]
            extra = [n for n in test.feature_names if n not in source.feature_names]
            parts = [f"missing {_names(missing)}"] if missing else []
            parts += [f"extra {_names(extra)}"] if extra else []
            raise ConfigError(
                "test_data",
                f"{here}: expected the feature columns of {there}, got {'; '.join(parts)}",
            )
        test = test.select_features(source.feature_names)
    elif test.x.shape[1] != source.x.shape[1]:
        raise ConfigError(
            "test_data",
            f"{here}: expected {source.x.shape[1]} features like {there}, got {test.x.shape[1]}",
        )
    else:
        test = dataclasses.replace(test, feature_names=source.feature_names)

    kind = {False: "class labels", True: "class probabilities"}
    if test.soft != source.soft:
        hint = " (name its probability columns with prob_cols)" if test.lines is not None else ""
        raise ConfigError(
            "test_data",
            f"{here}: expected {kind[source.soft]} like {there}, got {kind[test.soft]}{hint}",
        )
    if source.soft:
        k_source, k_test = source.probs.shape[1], test.probs.shape[1]
        if k_test != k_source:
            raise ConfigError(
                "test_data",
                f"{here}: expected {k_source} class probability columns like {there}, got {k_test}",
            )
        if source.class_names and test.class_names and source.class_names != test.class_names:
            raise ConfigError(
                "test_data",
                f"{here}: expected the classes {_names(source.class_names)} of {there}, "
                f"got {_names(test.class_names)}",
            )
    return test


def _label_classes(source: Table, test: Table) -> tuple[str, ...]:
    """The class names: the source's, or "0".."K-1" with K one more than the largest label."""
    if source.class_names is not None:
        return source.class_names
    n_classes = int(max(source.labels.max(), test.labels.max())) + 1
    if n_classes < 2:
        raise ConfigError(
            "source", f"{source.where_class(0)}: expected at least 2 classes, got only class 0"
        )
    return tuple(str(k) for k in range(n_classes))


def _check_label_classes(
    config: DataConfig, source: Table, train: Table, test: Table, n_classes: int
) -> None:
    counts = np.bincount(train.labels, minlength=n_classes)
    missing = np.flatnonzero(counts == 0)
    if not missing.size:
        return
    k = int(missing[0])
    in_test = np.flatnonzero(test.labels == k)
    if config.test_data is not None and in_test.size:
        raise ConfigError(
            "test_data",
            f"{test.where_target(int(in_test[0]))}: expected a class with training rows, got "
            f"class {k}, which {source.file.path} has no rows of",
        )
    raise ConfigError(
        "source",
        f"{source.where_class(k)}: expected training rows of every class from 0 to "
        f"{n_classes - 1} (labels count from 0), got none of class {k}",
    )


def _check_soft_classes(train: Table, class_names: tuple[str, ...]) -> None:
    mass = train.probs.sum(axis=0)
    empty = np.flatnonzero(mass == 0)
    if empty.size:
        k = int(empty[0])
        raise ConfigError(
            "source",
            f"{train.where_class(k)}: expected class {class_names[k]!r} to have probability > 0 "
            f"in some training row, got 0 in all {train.n_rows} training rows",
        )


def _check_path(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigTypeError(name, f"expected a path, got {value!r}")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ConfigError(name, f"expected a path without control characters, got {value!r}")
    if file_kind(value) is None:
        builtin = "'blobs', 'digits' or " if name == "source" else ""
        raise ConfigError(name, f"expected {builtin}a path ending in .csv or .npz, got {value!r}")


def _names(names: Any) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:8])
    return shown if len(names) <= 8 else f"{shown}, ... ({len(names)} in all)"
