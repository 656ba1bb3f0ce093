"""kldiv.distill: the teacher's predictions (one seed or an ensemble), the labelled rows, the
student's targets, fidelity, and the paired arms (the scratch arm is the plain classifier)."""

import dataclasses
import math

import jax
import numpy as np
import pytest
import scipy.special

from kldiv.checks import ConfigError
from kldiv.config import Distillation, TrainConfig
from kldiv.data import DataConfig, load_data
from kldiv.distill import (
    DistillExperiment,
    distill,
    fidelity,
    labelled_rows,
    load_teacher,
    prepare,
    split_mismatch,
    teacher_log_probabilities,
)
from kldiv.engine import train
from kldiv.evaluation import log_probabilities
from kldiv.experiment import Experiment, run
from kldiv.records import save_run

DIGITS = DataConfig("digits", seed=0, standardize=True)
STUDENT = TrainConfig(loss="ce", hidden=(8,), epochs=2, distillation=Distillation())


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A two-seed digits teacher (an ensemble), saved as `kldiv run` saves it."""
    exp = Experiment(data=DIGITS, train=TrainConfig(hidden=(16,), epochs=3), seeds=(0, 1))
    data = load_data(exp.data)
    return save_run(
        tmp_path_factory.mktemp("teacher"), exp, run(exp, data=data), data=data, command="test"
    )


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    return load_teacher(teacher_dir)


def _experiment(teacher_dir, **changes):
    return DistillExperiment(teacher=str(teacher_dir), data=DIGITS, train=STUDENT, **changes)


def test_labelled_rows_are_a_stratified_seeded_draw():
    labels = np.repeat(np.arange(3), [10, 21, 3])
    keep = labelled_rows(labels, 0.1, seed=5)
    # round_half_up(0.1 n_c), at least one per class: 1, 2 (2.1), 1 (0.3)
    assert [int(keep[labels == c].sum()) for c in range(3)] == [1, 2, 1]
    np.testing.assert_array_equal(keep, labelled_rows(labels, 0.1, seed=5))
    assert not np.array_equal(keep, labelled_rows(labels, 0.1, seed=6))
    assert labelled_rows(labels, 1.0, seed=5).all()
    half = labelled_rows(labels, 0.5, seed=5)
    assert [int(half[labels == c].sum()) for c in range(3)] == [5, 11, 2]


def test_teacher_predictions_are_its_ensemble_from_raw_features(teacher):
    raw = load_data(dataclasses.replace(DIGITS, standardize=False))
    x = raw.dataset.x_val
    got = teacher_log_probabilities(teacher, x)
    each = log_probabilities(teacher.model, teacher.params, teacher.standardizer.apply(x))
    assert each.shape[0] == 2
    want = scipy.special.logsumexp(each, axis=0) - math.log(2)  # log of the mean probability
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(got).sum(axis=1), 1.0, rtol=1e-12)
    one = dataclasses.replace(
        teacher, params=tuple((w[:1], b[:1]) for w, b in teacher.params), seeds=(0,)
    )
    np.testing.assert_array_equal(teacher_log_probabilities(one, x), each[0])


def test_prepare_packs_the_teacher_the_classes_and_the_label_weights(teacher_dir, teacher):
    exp = _experiment(teacher_dir, label_frac=0.1)
    data = prepare(exp, teacher)
    standardized = load_data(DIGITS)
    ds = data.loaded.dataset
    # the student's inputs are exactly what `kldiv run --standardize` trains on
    np.testing.assert_array_equal(ds.x_train, standardized.dataset.x_train)
    np.testing.assert_array_equal(ds.x_val, standardized.dataset.x_val)
    k = 10
    assert ds.y_train.shape == (ds.x_train.shape[0], 2 * k + 1)
    np.testing.assert_array_equal(ds.y_train[:, :k], np.float32(data.teacher_train))
    np.testing.assert_array_equal(ds.y_val[:, k : 2 * k], standardized.dataset.y_val)
    np.testing.assert_array_equal(ds.y_train[:, k : 2 * k], standardized.dataset.y_train)
    n, n_labelled = data.labelled.size, int(data.labelled.sum())
    assert n_labelled == sum(
        max(1, math.floor(0.1 * c + 0.5)) for c in np.bincount(data.loaded.labels_train)
    )
    np.testing.assert_array_equal(
        ds.y_train[:, -1], np.where(data.labelled, np.float32(n / n_labelled), 0.0)
    )
    np.testing.assert_array_equal(ds.y_val[:, -1], 1.0)
    record = data.record()
    assert record["labelled_rows"] == n_labelled and sum(record["labelled_per_class"]) == n_labelled
    assert record["teacher_seeds"] == [0, 1]
    assert record["teacher_test_accuracy"] == data.teacher_accuracy


def test_fidelity_of_the_teacher_to_itself_is_perfect(teacher):
    raw = load_data(dataclasses.replace(DIGITS, standardize=False))
    x = raw.dataset.x_val
    one = dataclasses.replace(
        teacher, params=tuple((w[:1], b[:1]) for w, b in teacher.params), seeds=(0,)
    )
    lp = teacher_log_probabilities(one, x)
    got = fidelity(one.model, one.params, one.standardizer.apply(x), lp)
    np.testing.assert_array_equal(got["test_teacher_agreement"], [1.0])
    np.testing.assert_array_equal(got["test_teacher_kl"], [0.0])
    # against the other seed: the NumPy formula
    other = log_probabilities(one.model, teacher.params, one.standardizer.apply(x))[1:]
    got = fidelity(
        one.model, tuple((w[1:], b[1:]) for w, b in teacher.params), one.standardizer.apply(x), lp
    )
    p = np.exp(lp)
    want_kl = (p * (lp - other[0])).sum(1).mean()
    want_agree = (lp.argmax(1) == other[0].argmax(1)).mean()
    np.testing.assert_allclose(got["test_teacher_kl"], [want_kl], rtol=1e-12)
    np.testing.assert_array_equal(got["test_teacher_agreement"], [want_agree])


def test_the_scratch_arm_with_every_label_is_the_plain_classifier(teacher_dir, teacher):
    """Soft weight 0 on fully labelled rows trains exactly what `kldiv run --loss ce` trains: the
    same initial weights, data order and updates, so the pairing is the classifier's own."""
    exp = _experiment(teacher_dir, seeds=(0, 1, 2))
    data = prepare(exp, teacher)
    results = distill(exp, data)
    assert list(results) == ["scratch", "distilled"]
    plain = train(STUDENT.replace(distillation=None), load_data(DIGITS).dataset, [0, 1, 2])
    scratch = results["scratch"]
    for a, b in zip(jax.tree.leaves(scratch.params), jax.tree.leaves(plain.params), strict=True):
        np.testing.assert_array_equal(a, b)
    for key in ("train_accuracy", "test_accuracy", "test_log_loss", "test_brier", "test_ece"):
        np.testing.assert_array_equal(scratch.final[key], plain.final[key], err_msg=key)
    for result in results.values():
        assert {"test_teacher_agreement", "test_teacher_kl"} <= set(result.final)
        assert result.final["test_soft_loss"].shape == (3,)
    assert not np.array_equal(results["distilled"].final["test_loss"], scratch.final["test_loss"])


def test_the_experiment_is_validated():
    with pytest.raises(ConfigError, match=r"^label_frac: expected a number in \(0, 1\], got 0.0"):
        DistillExperiment(teacher="t", label_frac=0.0)
    with pytest.raises(ConfigError, match=r"^label_frac: expected a number in \(0, 1\], got 1.5"):
        DistillExperiment(teacher="t", label_frac=1.5)
    with pytest.raises(ConfigError, match=r"^distillation: expected a TrainConfig with"):
        DistillExperiment(teacher="t", train=TrainConfig())
    with pytest.raises(ConfigError, match=r"^seeds: expected distinct seeds"):
        DistillExperiment(teacher="t", seeds=(1, 1))
    exp = DistillExperiment(teacher="t", train=STUDENT)
    assert exp.scratch.distillation.soft_weight == 0.0
    assert exp.scratch.replace(distillation=STUDENT.distillation) == STUDENT


def test_teachers_that_cannot_teach_this_data_are_refused(tmp_path, teacher_dir, teacher):
    with pytest.raises(ConfigError, match=r"^teacher: expected a run directory .* does not exist"):
        load_teacher(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^teacher: expected a run directory .* not a directory"):
        load_teacher(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"^teacher: expected a run directory written by kldiv"):
        load_teacher(tmp_path)
    blobs = DistillExperiment(teacher=str(teacher_dir), data=DataConfig(), train=STUDENT)
    with pytest.raises(ConfigError, match=r"^teacher: expected a teacher of the data's 2 features"):
        prepare(blobs, teacher)
    three = dataclasses.replace(teacher, class_names=("a", "b", "c", *teacher.class_names[3:]))
    with pytest.raises(ConfigError, match=r"^teacher: expected a teacher of the data's 10 classes"):
        prepare(_experiment(teacher_dir), three)


def test_features_and_classes_are_matched_by_name(teacher_dir, teacher):
    """A teacher whose columns and outputs come in another order predicts the same rows."""
    order = np.random.default_rng(0).permutation(64)
    classes = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
    (w0, b0), *rest = teacher.params
    *front, (w_out, b_out) = [(w0[:, order], b0), *rest]
    shuffled = dataclasses.replace(
        teacher,
        params=(*front, (w_out[..., classes], b_out[..., classes])),
        feature_names=tuple(teacher.feature_names[i] for i in order),
        class_names=tuple(teacher.class_names[i] for i in classes),
        standardizer=type(teacher.standardizer)(
            teacher.standardizer.mean[order], teacher.standardizer.scale[order]
        ),
    )
    exp = _experiment(teacher_dir)
    a, b = prepare(exp, teacher), prepare(exp, shuffled)
    np.testing.assert_allclose(a.teacher_test, b.teacher_test, rtol=1e-5, atol=1e-6)


def test_a_teacher_from_another_split_is_named(teacher_dir):
    assert split_mismatch(teacher_dir, DIGITS) is None
    assert split_mismatch(teacher_dir, dataclasses.replace(DIGITS, standardize=False)) is None
    message = split_mismatch(teacher_dir, dataclasses.replace(DIGITS, seed=1))
    assert message.startswith("the teacher was trained on another split of the data (seed 0")
