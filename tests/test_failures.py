"""kldiv.failures: the stuck rule against its formula, the issue's anchor runs, and the tutorial's
chance level."""

import numpy as np
import pytest

from kldiv.failures import (
    DIVERGED_RULE,
    FAILURE_RULES,
    STUCK_RULE,
    chance_accuracy,
    failed_seeds,
    stuck_runs,
)

CHANCE = 0.334


def stuck_oracle(acc: dict[str, list[float]], chance: float) -> dict[str, list[bool]]:
    """The rule written out: best = the largest median over arms; stuck when the run gained less
    than half of best - chance."""
    best = max(float(np.median(v)) for v in acc.values())
    return {arm: [a - chance < 0.5 * (best - chance) for a in v] for arm, v in acc.items()}


def anchor_runs() -> dict[str, np.ndarray]:
    """Shaped like the measured runs (100 seeds of the tutorial): healthy runs about 0.83; JS with
    collapsed seeds at 0.542-0.552 and one below chance, its healthy runs from 0.766; keras_kl with
    two stuck seeds at 0.50 and 0.54; one run at chance accuracy."""
    rng = np.random.default_rng(0)
    ce = np.round(rng.normal(0.828, 0.01, 30) * 500) / 500
    js = np.round(rng.normal(0.81, 0.015, 30) * 500) / 500
    js[:10] = rng.choice([0.542, 0.544, 0.548, 0.55, 0.552], 10)
    js[10] = 0.766
    js[11] = 0.324
    keras = ce.copy()
    keras[[5, 9]] = [0.502, 0.54]
    reverse = ce.copy()
    reverse[0] = 0.334
    return {"ce": ce, "js": js, "keras_kl": keras, "reverse_kl": reverse}


def test_stuck_runs_flag_the_anchor_cases_and_nothing_healthy():
    acc = anchor_runs()
    stuck = stuck_runs(acc, CHANCE)
    assert list(stuck) == list(acc)
    assert np.flatnonzero(stuck["js"]).tolist() == [*range(10), 11]
    assert np.flatnonzero(stuck["keras_kl"]).tolist() == [5, 9]
    assert np.flatnonzero(stuck["reverse_kl"]).tolist() == [0]
    assert not stuck["ce"].any()
    assert {arm: s.tolist() for arm, s in stuck.items()} == stuck_oracle(
        {arm: v.tolist() for arm, v in acc.items()}, CHANCE
    )


def test_stuck_rule_matches_the_formula_on_random_arms():
    rng = np.random.default_rng(1)
    for _ in range(50):
        chance = float(rng.uniform(0.1, 0.6))
        acc = {
            f"arm{i}": rng.uniform(chance - 0.1, 1.0, int(rng.integers(1, 12))) for i in range(3)
        }
        got = {arm: s.tolist() for arm, s in stuck_runs(acc, chance).items()}
        assert got == stuck_oracle({arm: v.tolist() for arm, v in acc.items()}, chance)


def test_a_run_missing_one_of_three_classes_is_stuck_at_any_best_accuracy():
    # With 3 balanced classes a run that never predicts one class reaches at most 2/3 of the best
    # accuracy b: a gain of (2b - 1)/(3b - 1) of the best gain, below one half for every b < 1.
    for best in np.linspace(0.4, 0.995, 60):
        acc = {"healthy": np.full(5, best), "collapsed": np.array([2 * best / 3])}
        assert stuck_runs(acc, 1 / 3)["collapsed"][0], best


def test_stuck_is_strict_and_skips_non_finite_runs():
    # Binary fractions, so the threshold is exact: best 0.75, chance 0.25, threshold 0.5.
    acc = {"a": np.array([0.75, 0.75, 0.75]), "b": np.array([0.5, 0.5 - 2**-20, np.nan])}
    assert stuck_runs(acc, 0.25)["b"].tolist() == [False, True, False]
    assert stuck_runs(acc, 0.25)["b"].dtype == bool
    assert stuck_runs({"a": [0.3, 0.9, np.inf]}, 0.2)["a"].tolist() == [True, False, False]


def test_nothing_learned_flags_the_runs_at_or_below_chance():
    acc = {"a": np.array([0.33, 0.34, 0.36]), "b": np.array([0.30, 0.34])}
    assert stuck_runs(acc, 0.34)["a"].tolist() == [True, True, False]
    assert stuck_runs(acc, 0.34)["b"].tolist() == [True, True]


def test_no_run_is_stuck_when_every_row_has_the_same_most_probable_class():
    # chance = 1: accuracy cannot tell learning from not learning (soft targets whose argmax is
    # the same class on every row)
    flags = stuck_runs({"kl": np.array([1.0, 1.0]), "ce": np.array([1.0, 0.9])}, 1.0)
    assert not flags["kl"].any() and not flags["ce"].any()


def test_chance_accuracy_of_the_tutorial_training_set():
    from kldiv.data import blobs_dataset

    data = blobs_dataset()
    labels = np.argmax(data.y_train, axis=1)
    assert chance_accuracy(data.y_train) == np.bincount(labels).max() / labels.size
    assert chance_accuracy(labels) == chance_accuracy(data.y_train) == pytest.approx(0.342)
    assert chance_accuracy([2, 2, 1]) == pytest.approx(2 / 3)


def test_failed_seeds_and_rules():
    flags = {"js": np.array([True, False, True]), "ce": np.zeros(3, bool)}
    assert failed_seeds(flags, [10, 11, 12]) == {"js": (10, 12), "ce": ()}
    assert FAILURE_RULES == {"stuck": STUCK_RULE, "diverged": DIVERGED_RULE}
    assert "half" in STUCK_RULE and "chance" in STUCK_RULE and "non-finite" in DIVERGED_RULE


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: stuck_runs({}, 0.3), "train_accuracy: expected at least one arm, got none"),
        (lambda: stuck_runs({"a": [0.5]}, 1.5), r"chance: expected a share in \[0, 1\], got 1.5"),
        (lambda: stuck_runs({"a": [0.5]}, 0.3, fraction=0.0), "fraction: expected a share"),
        (lambda: stuck_runs({"a": []}, 0.3), r"train_accuracy\['a'\]: expected a non-empty 1-D"),
        (lambda: stuck_runs({"a": [np.nan]}, 0.3), "expected some finite accuracy, got none"),
        (lambda: chance_accuracy([]), "labels: expected shape"),
        (lambda: failed_seeds({"a": [True]}, [1, 2]), r"flags\['a'\]: expected shape \(2,\)"),
    ],
)
def test_failures_validate(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_diverged_run_is_diverged_never_also_stuck():
    from types import SimpleNamespace

    from kldiv.arms import failures

    def arm(acc, diverged):
        return SimpleNamespace(
            seeds=np.arange(4),
            final={"train_accuracy": np.array(acc)},
            diverged=np.array(diverged),
        )

    # a diverged run's final accuracy is finite (the argmax of NaN outputs picks class 0): 0.342,
    # below the stuck line; it must count as diverged only
    results = {
        "ok": arm([0.84, 0.85, 0.40, 0.83], [0, 0, 0, 0]),
        "all_diverged": arm([0.342] * 4, [1, 1, 2, 1]),
        "some": arm([0.342, 0.84, 0.342, 0.35], [3, 0, 0, 0]),
    }
    paired = np.array([False, True, True, True])
    failed, flags = failures(results, CHANCE, paired)
    healthy = {
        n: [a for a, d in zip(r.final["train_accuracy"], r.diverged, strict=True) if not d]
        for n, r in results.items()
    }
    oracle = stuck_oracle({n: v for n, v in healthy.items() if v}, CHANCE)
    assert failed["ok"] == {"stuck": tuple(np.flatnonzero(oracle["ok"])), "diverged": ()}
    assert failed["ok"]["stuck"] == (2,)
    assert failed["all_diverged"] == {"stuck": (), "diverged": (0, 1, 2, 3)}
    assert failed["some"] == {"stuck": (2, 3), "diverged": (0,)}
    np.testing.assert_array_equal(flags["some"], [False, True, True])
    np.testing.assert_array_equal(flags["all_diverged"], [False, False, False])
