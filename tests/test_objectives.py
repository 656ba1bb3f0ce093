"""Objectives: the classifier's and the distilled student's per-row metrics against NumPy/SciPy
formulas, their invariants (the mean over rows, the ends of the soft weight), and the targets'
layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from kldiv.config import Distillation, TrainConfig
from kldiv.objectives import Classifier, Distiller, distillation_targets, objective_of

K = 4


def _log_softmax(z):
    return scipy.special.log_softmax(np.asarray(z, np.float64), axis=-1)


@pytest.fixture(scope="module")
def rows():
    """Student logits, a teacher's log-probabilities, true classes and weights (n / n_labelled on
    2 labelled rows of 8, 0 on the rest: exact in float32)."""
    rng = np.random.default_rng(0)
    n = 8
    logits = rng.normal(scale=2.0, size=(n, K))
    teacher = _log_softmax(rng.normal(scale=3.0, size=(n, K)))
    labels = rng.integers(0, K, size=n)
    labelled = np.zeros(n, bool)
    labelled[[1, 6]] = True
    weights = np.where(labelled, n / labelled.sum(), 0.0)
    return logits, teacher, labels, weights, labelled


def _soft_numpy(direction, beta, logits, teacher, temperature):
    p = np.exp(_log_softmax(teacher / temperature))
    q = np.exp(_log_softmax(logits / temperature))
    if direction == "forward":
        d = scipy.special.rel_entr(p, q).sum(-1)
    elif direction == "reverse":
        d = scipy.special.rel_entr(q, p).sum(-1)
    else:
        m = beta * p + (1 - beta) * q
        raw = beta * scipy.special.rel_entr(p, m).sum(-1)
        raw += (1 - beta) * scipy.special.rel_entr(q, m).sum(-1)
        d = raw / (beta * (1 - beta))
    return temperature**2 * d


@pytest.mark.parametrize(
    ("direction", "beta"), [("forward", None), ("reverse", None), ("jsd", 0.3)]
)
@pytest.mark.parametrize("soft_weight", [0.0, 0.3, 0.9, 1.0])
def test_distiller_metrics_match_the_numpy_formula(rows, direction, beta, soft_weight):
    logits, teacher, labels, weights, _ = rows
    distiller = Distiller("ce", 2.5, soft_weight, direction, beta)
    targets = distillation_targets(teacher, labels, weights)
    with jax.enable_x64(True):
        got = distiller.metrics(jnp.asarray(logits), jnp.asarray(targets, jnp.float64))
        got = {k: np.asarray(v) for k, v in got.items()}
    soft = _soft_numpy(direction, beta, logits, np.float64(teacher.astype(np.float32)), 2.5)
    hard = -weights * _log_softmax(logits)[np.arange(len(labels)), labels]
    np.testing.assert_allclose(got["soft_loss"], soft, rtol=1e-10)
    np.testing.assert_allclose(got["hard_loss"], hard, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        got["loss"], soft_weight * soft + (1 - soft_weight) * hard, rtol=1e-10, atol=1e-15
    )
    np.testing.assert_array_equal(got["accuracy"], logits.argmax(1) == labels)


def test_mean_loss_is_the_soft_mean_plus_the_hard_mean_over_labelled_rows(rows):
    logits, teacher, labels, weights, labelled = rows
    distiller = Distiller("ce", 4.0, 0.7, "forward")
    with jax.enable_x64(True):
        targets = jnp.asarray(distillation_targets(teacher, labels, weights), jnp.float64)
        m = distiller.metrics(jnp.asarray(logits), targets)
        mean = float(jnp.mean(m["loss"]))
    ce = -_log_softmax(logits)[np.arange(len(labels)), labels]
    want = 0.7 * np.mean(np.asarray(m["soft_loss"])) + 0.3 * ce[labelled].mean()
    np.testing.assert_allclose(mean, want, rtol=1e-12)


def test_soft_weight_zero_is_the_plain_classifier_bit_for_bit():
    """The scratch arm: with every row labelled (weight 1) and soft weight 0, the distilled
    student's loss and gradient are cross-entropy's, exactly."""
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(6, K)), jnp.float32)
    labels = rng.integers(0, K, size=6)
    teacher = _log_softmax(rng.normal(size=(6, K)))
    targets = jnp.asarray(distillation_targets(teacher, labels, np.ones(6)))
    one_hot = jnp.asarray(np.eye(K, dtype=np.float32)[labels])
    distiller, classifier = Distiller("ce", 4.0, 0.0, "forward"), Classifier("ce")

    def mean_loss(objective, y):
        return lambda z: jnp.mean(objective.metrics(z, y)["loss"])

    np.testing.assert_array_equal(
        distiller.metrics(logits, targets)["loss"], classifier.metrics(logits, one_hot)["loss"]
    )
    np.testing.assert_array_equal(
        jax.grad(mean_loss(distiller, targets))(logits),
        jax.grad(mean_loss(classifier, one_hot))(logits),
    )


def test_soft_weight_one_ignores_the_labels(rows):
    logits, teacher, labels, weights, _ = rows
    distiller = Distiller("ce", 3.0, 1.0, "reverse")
    a = distiller.metrics(
        jnp.asarray(logits, jnp.float32),
        jnp.asarray(distillation_targets(teacher, labels, weights)),
    )
    b = distiller.metrics(
        jnp.asarray(logits, jnp.float32),
        jnp.asarray(distillation_targets(teacher, (labels + 1) % K, np.ones_like(weights))),
    )
    np.testing.assert_array_equal(a["loss"], b["loss"])


def test_the_class_axis_may_be_any_axis(rows):
    logits, teacher, labels, weights, _ = rows
    distiller = Distiller("kl", 2.0, 0.5, "jsd", 0.5)
    targets = distillation_targets(teacher, labels, weights)
    z = jnp.asarray(logits, jnp.float32)
    first = distiller.metrics(z, jnp.asarray(targets))
    # (rows, classes, runs) as the run-axis-last path lays them out
    moved = distiller.metrics(
        jnp.stack([z, z], -1), jnp.stack([jnp.asarray(targets)] * 2, -1), axis=1
    )
    for k, v in first.items():
        np.testing.assert_allclose(np.asarray(moved[k])[:, 1], np.asarray(v), rtol=1e-6)


def test_targets_layout_classes_and_evaluation_targets(rows):
    _, teacher, labels, weights, _ = rows
    targets = distillation_targets(teacher, labels, weights)
    assert targets.shape == (8, 2 * K + 1) and targets.dtype == np.float32
    distiller = Distiller("ce", 4.0, 0.9, "forward")
    assert distiller.n_classes(targets.shape[1]) == K
    np.testing.assert_array_equal(distiller.evaluation_targets(targets), np.eye(K)[labels])
    np.testing.assert_array_equal(targets[:, -1], np.float32(weights))
    np.testing.assert_array_equal(targets[:, :K], np.float32(teacher))
    classifier = Classifier("kl")
    assert classifier.n_classes(K) == K and classifier.evaluation_targets(targets) is targets
    distiller.check_targets(targets)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[:, :-1], r"expected \(rows, 2K \+ 1\) with K >= 2"),
        (lambda t: t.__setitem__((0, 0), 0.5) or t, "expected finite teacher log-probabilities"),
        (lambda t: t.__setitem__((0, K), 0.5) or t, "expected one-hot true classes"),
        (lambda t: t.__setitem__((0, -1), -1.0) or t, "expected hard-label weights >= 0"),
    ],
)
def test_check_targets_refuses_malformed_targets(rows, change, message):
    _, teacher, labels, weights, _ = rows
    targets = distillation_targets(teacher, labels, weights)
    with pytest.raises(ValueError, match=message):
        Distiller("ce", 4.0, 0.9, "forward").check_targets(change(targets.copy()))


def test_objective_of_follows_the_config():
    assert objective_of(TrainConfig(loss="ce")) == Classifier("ce")
    config = TrainConfig(loss="ce", distillation=Distillation(2.0, 0.8, "jsd", 0.2))
    assert objective_of(config) == Distiller("ce", 2.0, 0.8, "jsd", 0.2)
