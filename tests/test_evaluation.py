"""The shared metrics against scikit-learn, SciPy and brute-force loops; the probabilities against a
NumPy forward pass; a run's probabilities independent of the runs evaluated with it."""

import jax
import numpy as np
import pytest
from scipy.special import log_softmax, rel_entr, softmax
from scipy.stats import entropy
from sklearn.metrics import brier_score_loss, log_loss

from kldiv.evaluation import (
    ECE_BINS,
    expected_calibration_error,
    is_one_hot,
    log_probabilities,
    prediction_metrics,
    probabilities,
)
from kldiv.model import MLP


def random_logits(rng, runs, rows, classes, scale=3.0):
    return rng.normal(size=(runs, rows, classes)) * scale


def ece_loop(q, hits, bins=ECE_BINS):
    """Textbook ECE: bin by confidence into ((b-1)/B, b/B], weight |acc - conf| by the bin share."""
    conf = q.max(axis=-1)
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (conf > low) & (conf <= high)
        if inside.any():
            total += inside.mean() * abs(hits[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_one_hot_metrics_match_scikit_learn_and_a_loop(classes):
    rng = np.random.default_rng(classes)
    logits = random_logits(rng, 4, 200, classes)
    labels = rng.integers(0, classes, 200)
    y = np.eye(classes)[labels]
    got = prediction_metrics(log_softmax(logits, axis=-1), y)
    assert set(got) == {"accuracy", "log_loss", "brier", "ece"}
    for r in range(4):
        q = softmax(logits[r], axis=-1)
        hits = q.argmax(axis=-1) == labels
        assert got["accuracy"][r] == hits.sum() / 200
        np.testing.assert_allclose(
            got["log_loss"][r], log_loss(labels, q, labels=range(classes)), rtol=1e-12
        )
        # scikit-learn's multi-class Brier: mean over rows of the squared distance to one-hot
        np.testing.assert_allclose(
            got["brier"][r],
            brier_score_loss(labels, q, labels=range(classes), scale_by_half=False),
            rtol=1e-12,
        )
        np.testing.assert_allclose(got["ece"][r], ece_loop(q, hits), rtol=1e-12, atol=1e-15)


def test_soft_targets_add_the_excess_loss_kl_of_targets_to_predictions():
    rng = np.random.default_rng(0)
    logits = random_logits(rng, 3, 50, 4)
    y = rng.dirichlet(np.ones(4), size=50)
    y[0] = [0.5, 0.5, 0.0, 0.0]  # zeros in a soft row contribute 0·log 0 = 0
    got = prediction_metrics(log_softmax(logits, axis=-1), y)
    q = softmax(logits, axis=-1)
    np.testing.assert_allclose(got["excess_loss"], rel_entr(y, q).sum(-1).mean(-1), rtol=1e-12)
    cross = -(y * log_softmax(logits, axis=-1)).sum(-1).mean(-1)
    np.testing.assert_allclose(got["log_loss"], cross, rtol=1e-12)
    # CE = H(y) + KL(y || q): the excess is what the cross-entropy has above the targets' entropy
    np.testing.assert_allclose(
        got["log_loss"] - got["excess_loss"], entropy(y, axis=-1).mean(), rtol=1e-10
    )
    np.testing.assert_allclose(got["brier"], ((q - y) ** 2).sum(-1).mean(-1), rtol=1e-12)


def test_perfect_and_uniform_predictions():
    y = np.eye(3)[[0, 1, 2, 0]]
    sure = np.where(y > 0, 0.0, -800.0)[None]  # log q: 0 for the true class, q = e^-800 ~ 0 else
    got = prediction_metrics(sure, y)
    assert got["accuracy"][0] == 1 and got["log_loss"][0] == 0 and got["ece"][0] == 0
    uniform = np.log(np.full((1, 4, 3), 1 / 3))
    got = prediction_metrics(uniform, y)
    np.testing.assert_allclose(got["log_loss"], np.log(3))
    np.testing.assert_allclose(got["brier"], 2 / 3)


def test_ece_bins_are_right_closed():
    # a confidence of exactly b/B belongs to bin ((b-1)/B, b/B], alone here in each bin
    conf = np.array([1 / 15, 2 / 15, 1.0])
    hits = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        expected_calibration_error(conf, hits),
        (abs(1 - 1 / 15) + abs(0 - 2 / 15) + abs(1 - 1.0)) / 3,
    )


def test_is_one_hot():
    assert is_one_hot(np.eye(3)[[0, 2]])
    assert not is_one_hot(np.array([[0.5, 0.5, 0.0]]))
    assert not is_one_hot(np.array([[1.0, 1.0, 0.0]]))


def test_a_diverged_run_gives_nan_metrics_without_warnings():
    log_q = np.full((2, 5, 3), np.log(1 / 3))
    log_q[1, 2] = np.nan
    got = prediction_metrics(log_q, np.eye(3)[[0, 1, 2, 0, 1]])
    assert np.isfinite(got["log_loss"][0]) and np.isnan(got["log_loss"][1])


def numpy_forward(params, x, activation=lambda h: np.maximum(h, 0)):
    h = x.astype(np.float64)
    for w, b in params[:-1]:
        h = activation(h @ np.asarray(w, np.float64) + np.asarray(b, np.float64))
    w, b = params[-1]
    return h @ np.asarray(w, np.float64) + np.asarray(b, np.float64)


def stacked(model, seeds):
    keys = [jax.random.key(s) for s in seeds]
    per_run = [model.init(k) for k in keys]
    return jax.tree.map(lambda *a: np.stack(a), *per_run)


def test_probabilities_match_a_numpy_forward_pass_and_sum_to_one():
    model = MLP((5, 7, 4))
    params = stacked(model, [0, 1, 2])
    x = np.random.default_rng(1).normal(size=(20, 5)).astype(np.float32)
    q = probabilities(model, params, x)
    assert q.shape == (3, 20, 4) and q.dtype == np.float64
    np.testing.assert_allclose(q.sum(-1), 1.0, rtol=1e-12)
    for r in range(3):
        run = jax.tree.map(lambda a, r=r: a[r], params)
        np.testing.assert_allclose(q[r], softmax(numpy_forward(run, x), axis=-1), rtol=1e-5)


def test_a_runs_probabilities_do_not_depend_on_the_runs_evaluated_with_it():
    model = MLP((2, 50, 3))
    params = stacked(model, range(9))
    x = np.random.default_rng(2).normal(size=(500, 2)).astype(np.float32)
    together = log_probabilities(model, params, x)
    for r in (0, 4, 8):
        alone = log_probabilities(model, jax.tree.map(lambda a, r=r: a[r : r + 1], params), x)
        np.testing.assert_array_equal(alone[0], together[r])


def test_soft_target_ece_scores_the_predicted_class_probability_and_is_zero_at_q_equals_y():
    rng = np.random.default_rng(5)
    y = rng.dirichlet(np.ones(3), size=400)
    assert prediction_metrics(np.log(y)[None], y)["ece"][0] == pytest.approx(0, abs=1e-15)
    logits = random_logits(rng, 2, 400, 3)
    got = prediction_metrics(log_softmax(logits, axis=-1), y)["ece"]
    for r in range(2):
        q = softmax(logits[r], axis=-1)
        right = y[np.arange(400), q.argmax(axis=-1)]  # expected accuracy of the prediction
        np.testing.assert_allclose(got[r], ece_loop(q, right), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("soft", [False, True])
def test_shared_metrics_in_blocks_of_runs_are_the_same_bits(monkeypatch, soft):
    from kldiv import evaluation

    model = MLP((2, 50, 3))
    params = stacked(model, range(7))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = rng.dirichlet(np.ones(3), size=60) if soft else np.eye(3)[rng.integers(0, 3, 60)]
    sets = {"train": (x, y), "test": (x[:40], y[:40])}
    whole = evaluation.shared_metrics(model, params, sets)
    monkeypatch.setattr(evaluation, "RUNS_AT_ONCE", 3)  # blocks 3, 3, 1 padded to 3
    blocked = evaluation.shared_metrics(model, params, sets)
    assert whole.keys() == blocked.keys()
    for k in whole:
        assert whole[k].shape == (7,)
        np.testing.assert_array_equal(whole[k], blocked[k])
