"""Knowledge distillation: a student trained on a saved teacher's predictions, and the same student
trained from scratch next to it.

>>> exp = DistillExperiment(teacher="runs/20261130-101500-run", data=DataConfig("digits",
...     standardize=True), seeds=tuple(range(30)), label_frac=0.1)
>>> teacher = load_teacher(exp.teacher)
>>> data = prepare(exp, teacher)            # the teacher's predictions, computed once
>>> results = distill(exp, data)            # {"scratch": TrainResult, "distilled": TrainResult}

The teacher is a run directory of `kldiv run` (`kldiv.records.load_model`): one seed, or several,
whose ensemble prediction is the mean of their probabilities. It predicts every training and test
row once, in float64, from the raw features (it applies its own standardization), matched to the
data by feature and class names. The student (`TrainConfig.distillation`, the `Distiller`
objective) trains on targets that carry those log-probabilities, each row's true class and its
hard-label weight, and validates on the test rows with the same objective.

Labels: with `label_frac` F < 1 a stratified draw keeps the label of round(F n_c) rows of each
class c (at least one), from `np.random.default_rng([data seed, 1])`, so it is recorded by the
data seed; the student sees the teacher's soft targets on every row and labels on those only.

Scratch: the same student, seeds, initial weights, batches and data order, trained on the hard
term alone (soft weight 0): cross-entropy on the labelled rows, averaged over them. Both arms are
scored against the true classes of the test rows (`kldiv.evaluation`) and for fidelity to the
teacher (`fidelity`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kldiv.checks import ConfigError, ConfigTypeError, check_real
from kldiv.config import Distillation, TrainConfig, to_dict
from kldiv.data import DataConfig, LoadedData, load_data, standardized
from kldiv.engine import ProgressFn, TrainResult
from kldiv.engine.run import Run
from kldiv.evaluation import log_probabilities
from kldiv.experiment import Experiment, train_arms
from kldiv.model import MLP, Params
from kldiv.objectives import distillation_targets
from kldiv.records import SavedModel, load_model, load_run

__all__ = [
    "FIDELITY_METRICS",
    "DistillData",
    "DistillExperiment",
    "arms_record",
    "distill",
    "fidelity",
    "labelled_rows",
    "load_teacher",
    "prepare",
    "split_mismatch",
    "teacher_log_probabilities",
]

# Final metrics `distill` adds to every arm: the test rows' top-1 agreement with the teacher and
# the mean KL(teacher || student) at temperature 1, in nats.
FIDELITY_METRICS = ("test_teacher_agreement", "test_teacher_kl")
ARMS = ("scratch", "distilled")


def _student() -> TrainConfig:
    return TrainConfig(loss="ce", hidden=(16,), distillation=Distillation())


@dataclass(frozen=True)
class DistillExperiment:
    """What to distil: the teacher's run directory, the data, the student and its training, the
    seeds, and the share of training rows whose label the student sees.

    train: the student, with `distillation` set (default: 16 hidden units, T = 4, soft weight 0.9,
    forward KL, cross-entropy as the hard term, the tutorial's optimizer and epochs).
    label_frac in (0, 1]: the stratified share of training rows that keep their label (the scratch
    arm trains on those alone, so some are needed).
    """

    teacher: str
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=_student)
    seeds: tuple[int, ...] = (0,)
    label_frac: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, str) or not self.teacher:
            raise ConfigTypeError("teacher", f"expected a run directory, got {self.teacher!r}")
        if not isinstance(self.train, TrainConfig) or self.train.distillation is None:
            raise ConfigError(
                "distillation", f"expected a TrainConfig with a Distillation, got {self.train!r}"
            )
        Experiment(self.data, self.train, self.seeds)  # validates the seeds
        check_real("label_frac", self.label_frac, 0.0, 1.0, open_low=True)

    @property
    def experiment(self) -> Experiment:
        """The distilled student as an `Experiment` (for the records)."""
        return Experiment(self.data, self.train, self.seeds)

    @property
    def scratch(self) -> TrainConfig:
        """The student from scratch: the same config with soft weight 0 (the hard term alone)."""
        assert self.train.distillation is not None
        return self.train.replace(distillation=self.train.distillation.replace(soft_weight=0.0))

    @property
    def arms(self) -> dict[str, TrainConfig]:
        """ "scratch" (the baseline of a comparison) and "distilled"."""
        return {"scratch": self.scratch, "distilled": self.train}

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            **self.experiment.to_dict(),
            "label_frac": self.label_frac,
        }


@dataclass(frozen=True, eq=False)
class DistillData:
    """What `prepare` returns.

    loaded: the data the student trains on, its dataset's targets the `Distiller`'s (the teacher's
      log-probabilities, the true class, the hard-label weight); names, labels and fingerprint.
    teacher_train, teacher_test: (rows, K) float64, the teacher's log-probabilities at T = 1, in
      the data's class order.
    labelled: (train rows,) bool, the rows whose label the student sees.
    teacher_seeds: the teacher's seeds (several: an ensemble).
    """

    loaded: LoadedData
    teacher_train: np.ndarray
    teacher_test: np.ndarray
    labelled: np.ndarray
    teacher_seeds: tuple[int, ...]

    @property
    def teacher_accuracy(self) -> float:
        """The teacher's test accuracy against the true classes (its argmax; ties: lowest)."""
        hits = self.teacher_test.argmax(axis=1) == self.loaded.labels_test
        return float(hits.sum() / hits.size)

    def record(self) -> dict[str, Any]:
        """JSON-ready: the labelled rows (count, per class, indices into the training rows) and
        the teacher's seeds and test accuracy."""
        labels = self.loaded.labels_train
        k = self.loaded.n_classes
        return {
            "teacher_seeds": list(self.teacher_seeds),
            "teacher_test_accuracy": self.teacher_accuracy,
            "labelled_rows": int(self.labelled.sum()),
            "train_rows": int(self.labelled.size),
            "labelled_per_class": np.bincount(labels[self.labelled], minlength=k).tolist(),
            "labelled_indices": np.flatnonzero(self.labelled).tolist(),
        }


def load_teacher(path: str | Path) -> SavedModel:
    """The teacher's model from a run directory written by `kldiv run`.

    Raises:
      ConfigError("teacher", ...): the directory does not exist, or holds no kldiv model.
    """
    p = Path(path)
    expected = "expected a run directory written by kldiv run"
    if not p.exists():
        raise ConfigError("teacher", f"{expected}, got {str(p)!r}, which does not exist")
    if not p.is_dir():
        raise ConfigError("teacher", f"{expected}, got {str(p)!r}, which is not a directory")
    try:
        return load_model(p)
    except ValueError as err:
        raise ConfigError("teacher", f"{expected}: {err}") from None


_SPLIT_FIELDS = ("source", "seed", "test_data", "test_frac")


def split_mismatch(teacher: str | Path, data: DataConfig) -> str | None:
    """Why the teacher may have trained on some of the data's test rows: its run records another
    source or split (source, data seed, test data or test fraction); None when they agree.

    A warning, not an error: a teacher from elsewhere is allowed, but its view of the test rows
    then flatters its students' accuracy and fidelity.
    """
    try:
        experiment, _ = load_run(Path(teacher))
    except (ValueError, KeyError, TypeError) as err:  # a record this version cannot read
        return f"the teacher's data split could not be read from its run ({err})"
    theirs = experiment.data
    differ = [f for f in _SPLIT_FIELDS if getattr(theirs, f) != getattr(data, f)]
    if not differ:
        return None
    shown = ", ".join(f"{f} {getattr(theirs, f)!r} (here {getattr(data, f)!r})" for f in differ)
    return (
        f"the teacher was trained on another split of the data ({shown}): some test rows may "
        "be among its training rows"
    )


def teacher_log_probabilities(teacher: SavedModel, x: np.ndarray) -> np.ndarray:
    """log p, float64 (rows, classes in the teacher's order), for raw inputs x (rows, the
    teacher's features in its order): one seed's log-softmax, or for several seeds the log of the
    mean of their probabilities (the ensemble).

    Raises:
      ConfigError("teacher", ...): a seed's predictions are not finite (a diverged run).
    """
    inputs = x if teacher.standardizer is None else teacher.standardizer.apply(x)
    log_p = log_probabilities(teacher.model, teacher.params, inputs)  # (runs, rows, K)
    bad = ~np.isfinite(log_p).all(axis=(1, 2))
    if bad.any():
        seeds = [s for s, b in zip(teacher.seeds, bad, strict=True) if b]
        raise ConfigError(
            "teacher",
            f"expected finite predictions, got non-finite ones from seed(s) {seeds} (a diverged "
            "run cannot teach)",
        )
    runs = log_p.shape[0]
    top = log_p.max(axis=0)
    mean = top + np.log(np.exp(log_p - top).sum(axis=0)) - math.log(runs)
    return np.minimum(mean, 0.0)  # a log-probability above 0 is rounding (a certain class)


def labelled_rows(labels: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """(rows,) bool: the rows that keep their label, a stratified draw.

    Within each class c (ascending) of n_c rows, a permutation from
    `np.random.default_rng([seed, 1])` picks max(1, round_half_up(frac * n_c)) rows; frac = 1
    keeps every row. The same labels, fraction and seed give the same rows on every machine.
    """
    labels = np.asarray(labels)
    keep = np.zeros(labels.size, dtype=bool)
    if frac >= 1.0:
        keep[:] = True
        return keep
    rng = np.random.default_rng([seed, 1])
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n = max(1, math.floor(frac * rows.size + 0.5))
        keep[rng.permutation(rows)[:n]] = True
    return keep


def _names(names: Any, limit: int = 6) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _match(teacher: SavedModel, data: LoadedData, where: str) -> tuple[list[int], list[int]]:
    """(the data's feature column of each teacher input, the teacher's output of each data
    class), matched by name.

    Raises:
      ConfigError("teacher", ...): the features or classes differ.
    """
    if set(teacher.feature_names) != set(data.feature_names):
        missing = [n for n in data.feature_names if n not in teacher.feature_names]
        extra = [n for n in teacher.feature_names if n not in data.feature_names]
        parts = ([f"the data's {_names(missing)} missing"] if missing else []) + (
            [f"{_names(extra)} not in the data"] if extra else []
        )
        raise ConfigError(
            "teacher",
            f"expected a teacher of the data's {len(data.feature_names)} features, got {where} "
            f"trained on {len(teacher.feature_names)} ({'; '.join(parts)})",
        )
    if set(teacher.class_names) != set(data.class_names):
        raise ConfigError(
            "teacher",
            f"expected a teacher of the data's {len(data.class_names)} classes "
            f"({_names(data.class_names)}), got {where} trained on {len(teacher.class_names)} "
            f"({_names(teacher.class_names)})",
        )
    columns = [data.feature_names.index(n) for n in teacher.feature_names]
    outputs = [teacher.class_names.index(n) for n in data.class_names]
    return columns, outputs


def prepare(experiment: DistillExperiment, teacher: SavedModel) -> DistillData:
    """The student's data: loaded once raw (the teacher predicts from raw features), standardized
    for the student when `experiment.data.standardize`, with the `Distiller`'s targets.

    Raises:
      ConfigError: the data cannot be loaded ("source", ...), has soft targets ("prob_cols": the
        hard labels must be classes), or does not match the teacher's features or classes
        ("teacher").
    """
    raw = load_data(dataclasses.replace(experiment.data, standardize=False))
    if raw.soft_targets:
        raise ConfigError(
            "prob_cols",
            "expected class labels for distillation (the student's hard labels), got class "
            "probabilities",
        )
    columns, outputs = _match(teacher, raw, repr(experiment.teacher))
    lp_train, lp_test = (
        teacher_log_probabilities(teacher, x[:, columns])[:, outputs]
        for x in (raw.dataset.x_train, raw.dataset.x_val)
    )
    student = standardized(raw) if experiment.data.standardize else raw
    labels_train, labels_test = student.labels_train, student.labels_test
    keep = labelled_rows(labels_train, experiment.label_frac, experiment.data.seed)
    weights = np.where(keep, keep.size / keep.sum(), 0.0)
    dataset = student.dataset._replace(
        y_train=distillation_targets(lp_train, labels_train, weights),
        y_val=distillation_targets(lp_test, labels_test, np.ones(labels_test.size)),
    )
    loaded = dataclasses.replace(student, dataset=dataset)
    return DistillData(loaded, lp_train, lp_test, keep, tuple(teacher.seeds))


def fidelity(
    model: MLP, params: Params, x: np.ndarray, teacher_log_probs: np.ndarray, prefix: str = "test"
) -> dict[str, np.ndarray]:
    """How closely each run's student follows the teacher on rows x (the student's inputs).

    Returns:
      f"{prefix}_teacher_agreement" (runs,): the exact share of rows where the student's and the
      teacher's most probable classes agree; f"{prefix}_teacher_kl" (runs,): the mean over rows
      of KL(teacher || student) at temperature 1, in nats (float64).
    """
    log_q = log_probabilities(model, params, x)  # (runs, rows, K)
    log_p = np.asarray(teacher_log_probs, np.float64)
    n = log_p.shape[0]
    with np.errstate(invalid="ignore"):  # a diverged run's NaN rows: NaN out
        agree = (log_q.argmax(axis=-1) == log_p.argmax(axis=-1)).sum(axis=-1) / n
        p = np.exp(log_p)
        kl = np.where(p > 0, p * (log_p - log_q), 0.0).sum(axis=-1).mean(axis=-1)
        agree = np.where(np.isfinite(log_q).all(axis=(1, 2)), agree, np.nan)
    return {f"{prefix}_teacher_agreement": agree, f"{prefix}_teacher_kl": kl}


def distill(
    experiment: DistillExperiment,
    data: DistillData,
    *,
    scratch: bool = True,
    epoch_chunk: int | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, TrainResult]:
    """Train the student on every seed, distilled, and (with `scratch`) from scratch first, paired:
    the same seed gives both arms the same initial weights and data order.

    Returns:
      "scratch" (when trained) then "distilled" -> `TrainResult`, each with `FIDELITY_METRICS`
      added to its final metrics.

    Raises:
      ValueError, ConfigError: what `kldiv.engine.train` raises, for either arm, before any trains.
    """
    arms: Mapping[str, TrainConfig] = (
        experiment.arms if scratch else {"distilled": experiment.train}
    )
    dataset = data.loaded.dataset
    results = train_arms(
        arms, dataset, experiment.seeds, epoch_chunk=epoch_chunk, on_progress=on_progress
    )
    for name, result in results.items():
        model = Run.for_data(arms[name], dataset).model
        final = result.final | fidelity(model, result.params, dataset.x_val, data.teacher_test)
        results[name] = dataclasses.replace(result, final=final)
    return results


def arms_record(experiment: DistillExperiment) -> dict[str, Any]:
    """JSON-ready: each arm's training config and its loss as a formula."""
    out = {}
    for name, config in experiment.arms.items():
        assert config.distillation is not None
        out[name] = {"train": to_dict(config), "formula": config.distillation.formula}
    return out
