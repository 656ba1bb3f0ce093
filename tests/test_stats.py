"""kldiv.stats against independent oracles (textbook formulas, brute force) and invariants.

pytest turns warnings into errors, so every test here also checks that degenerate data do not warn.
"""

import itertools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from kldiv import stats as kstats
from kldiv.checks import ConfigError
from kldiv.stats import (
    DEFAULT_MARGINS,
    compare_arms,
    compare_paired,
    higher_is_better,
    summarize,
    to_jsonable,
)

METRICS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss")
FAST = {"n_boot": 500}


def t_oracle(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """mean ± t_{(1+c)/2, n-1} · s / √n."""
    n = x.size
    half = sps.t.ppf((1 + confidence) / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n)
    return float(np.mean(x) - half), float(np.mean(x) + half)


def wilcoxon_exact_oracle(d: np.ndarray) -> float:
    """Two-sided exact signed-rank p-value by enumerating all 2^n sign assignments (no ties/zeros)."""
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = np.array(
        [
            sum(r for r, s in zip(ranks, signs, strict=True) if s)
            for signs in itertools.product((0, 1), repeat=d.size)
        ]
    )
    return min(1.0, 2 * min(np.mean(sums <= observed), np.mean(sums >= observed)))


def prob_oracle(a: np.ndarray, b: np.ndarray, higher: bool = True) -> float:
    wins = 0.0
    for x, y in zip(a, b, strict=True):
        if x == y:
            wins += 0.5
        elif (x > y) == higher:
            wins += 1.0
    return wins / len(a)


def tost_oracle(d: np.ndarray, margin: float) -> float:
    """max of the two one-sided t-test p-values: H0 mean <= -margin, H0 mean >= +margin."""
    se = np.std(d, ddof=1) / math.sqrt(d.size)
    p_low = sps.t.sf((np.mean(d) + margin) / se, d.size - 1)
    p_high = sps.t.cdf((np.mean(d) - margin) / se, d.size - 1)
    return float(max(p_low, p_high))


def finals_for(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {m: rng.normal(0.8 if m.endswith("accuracy") else 0.4, 0.01, n) for m in METRICS}


# --- summarize ---------------------------------------------------------------------------------


def test_summarize_matches_textbook_formulas():
    x = np.random.default_rng(0).normal(0.82, 0.01, 40)
    s = summarize(x, **FAST)
    assert s.n == 40
    assert s.mean == pytest.approx(np.mean(x), rel=1e-12)
    assert s.std == pytest.approx(np.sqrt(np.sum((x - x.mean()) ** 2) / 39), rel=1e-12)
    assert s.t_interval == pytest.approx(t_oracle(x), rel=1e-12)
    assert s.bootstrap_method == "BCa"
    assert s.note is None


def test_bootstrap_is_seeded_and_agrees_with_normal_theory():
    x = np.random.default_rng(1).normal(0.0, 1.0, 200)
    a, b = summarize(x, seed=3), summarize(x, seed=3)
    assert a.bootstrap_interval == b.bootstrap_interval
    assert summarize(x, seed=4).bootstrap_interval != a.bootstrap_interval
    low, high = a.bootstrap_interval
    assert low < a.mean < high
    # For 200 normal values the bootstrap and t intervals agree to within a few percent of their width.
    width = a.t_interval[1] - a.t_interval[0]
    assert low == pytest.approx(a.t_interval[0], abs=0.1 * width)
    assert high == pytest.approx(a.t_interval[1], abs=0.1 * width)
    assert (a.seed, a.n_boot) == (3, 10_000)


def test_summarize_one_value_has_no_interval():
    s = summarize([0.8])
    assert (s.n, s.mean, s.std, s.t_interval, s.bootstrap_interval) == (1, 0.8, None, None, None)
    assert "n = 1" in s.note


def test_summarize_two_values():
    s = summarize([1.0, 2.0], **FAST)
    assert s.t_interval == pytest.approx(t_oracle(np.array([1.0, 2.0])))
    # BCa at n = 2 is the data range and covers about half the time: left out, and said so.
    assert s.bootstrap_interval is None and s.bootstrap_method is None
    assert "left out below n = 20" in s.bootstrap_note


def test_summarize_constant_values_have_no_interval():
    s = summarize([0.3] * 5)
    assert s.std == 0.0 and s.mean == s.median == 0.3
    # A zero-width interval is not a 95% confidence interval: none, and the note says why.
    assert s.t_interval is None and s.bootstrap_interval is None
    assert "all 5 values equal" in s.note


def test_summarize_near_constant_values_do_not_warn():
    s = summarize([0.3, 0.3, 0.3, 0.3 + 1e-16], **FAST)
    assert s.t_interval[0] <= s.mean <= s.t_interval[1]


@pytest.mark.parametrize(
    ("values", "match"),
    [([], "values"), ([[1.0, 2.0]], "1-D"), ([1.0, np.nan], "finite")],
)
def test_summarize_rejects_bad_values(values, match):
    with pytest.raises(ValueError, match=match):
        summarize(values)


def test_summarize_rejects_bad_options():
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        summarize([1.0, 2.0], n_boot=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=15), st.floats(0.5, 0.99))
def test_summarize_property_interval_contains_mean(values, confidence):
    s = summarize(values, confidence=confidence, n_boot=100)
    if s.n == 1 or len(set(values)) == 1:
        assert s.t_interval is None and s.note
    else:
        low, high = s.t_interval
        assert low <= s.mean <= high


# --- compare_paired ----------------------------------------------------------------------------


def test_paired_tests_match_oracles():
    rng = np.random.default_rng(2)
    b = rng.normal(0.8, 0.02, 9)
    a = b + rng.normal(0.004, 0.003, 9)
    d = a - b
    c = compare_paired(a, b, margin=0.01, **FAST)
    t = np.mean(d) / (np.std(d, ddof=1) / 3)
    assert c.t_test_p == pytest.approx(2 * sps.t.sf(abs(t), 8), rel=1e-9)
    assert c.wilcoxon_p == pytest.approx(wilcoxon_exact_oracle(d), rel=1e-12)
    assert c.prob_a_beats_b == prob_oracle(a, b)
    assert c.tost_p == pytest.approx(tost_oracle(d, 0.01), rel=1e-9)
    assert c.difference.mean == pytest.approx(np.mean(d))
    assert c.difference.t_interval == pytest.approx(t_oracle(d))
    assert c.n_identical == 0
    assert c.note is None


def test_tost_verdict_is_the_90_percent_interval_inside_the_margin():
    rng = np.random.default_rng(3)
    for shift, margin in [(0.0, 0.01), (0.008, 0.01), (0.0, 0.001), (0.02, 0.01)]:
        b = rng.normal(0.8, 0.02, 30)
        a = b + rng.normal(shift, 0.004, 30)
        c = compare_paired(a, b, margin=margin, **FAST)
        low, high = t_oracle(a - b, confidence=0.90)
        assert c.equivalent == (-margin < low and high < margin)
        assert c.equivalent == (c.tost_p < 0.05)


def test_identical_pairs_are_reported_not_tested():
    a = np.random.default_rng(4).normal(0.8, 0.01, 100)
    c = compare_paired(a, a.copy(), margin=0.01)
    assert c.n_identical == 100
    assert c.all_identical
    assert "identical in all 100 pairs" in c.note
    assert c.t_test_p is None and c.wilcoxon_p is None and c.tost_p is None
    assert c.prob_a_beats_b == 0.5
    assert c.equivalent
    assert c.difference.mean == 0.0
    assert c.difference.t_interval is None
    assert c.verdict == "identical"
    # Rule of three: (1 - p)^100 = 0.05 at the bound; 1 - 0.05^(1/20) = 13.9% at N = 20.
    assert c.identical_share_bound == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-12)
    assert (1 - c.identical_share_bound) ** 100 == pytest.approx(0.05, rel=1e-9)
    assert "at most 3.0% of seeds would give different runs" in c.note
    assert kstats.identical_share_bound(20) == pytest.approx(0.1391, abs=1e-4)


def test_constant_nonzero_difference_is_exact_not_tested():
    b = np.array([0.1, 0.5, 0.9])
    c = compare_paired(b + 0.25, b, margin=0.01)
    assert c.t_test_p is None and c.tost_p is None
    assert not c.equivalent
    assert "no spread" in c.note


def test_near_constant_difference_does_not_warn():
    c = compare_paired([0.3, 0.3, 0.3, 0.3 + 1e-16], [0.0] * 4, margin=0.01)
    assert c.t_test_p is None
    assert "float64 resolution" in c.note
    assert not c.equivalent


def test_one_pair_has_no_tests():
    c = compare_paired([0.8], [0.8], margin=0.01)
    assert c.n == 1 and c.all_identical
    assert c.t_test_p is None and c.tost_p is None
    assert not c.equivalent
    assert "at least 2" in c.note


def test_two_pairs_are_tested():
    c = compare_paired([1.0, 2.0], [0.5, 1.0], margin=0.01, **FAST)
    assert c.t_test_p == pytest.approx(sps.ttest_rel([1.0, 2.0], [0.5, 1.0]).pvalue)
    assert c.wilcoxon_p == pytest.approx(0.5)
    assert c.prob_a_beats_b == 1.0


def test_swap_flips_the_difference_and_the_probability():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.8, 0.01, 25), rng.normal(0.8, 0.01, 25)
    b[:5] = a[:5]
    ab, ba = compare_paired(a, b, margin=0.01, **FAST), compare_paired(b, a, margin=0.01, **FAST)
    assert ba.difference.mean == pytest.approx(-ab.difference.mean)
    assert ba.difference.t_interval == pytest.approx(
        tuple(-x for x in reversed(ab.difference.t_interval))
    )
    assert ba.prob_a_beats_b == pytest.approx(1 - ab.prob_a_beats_b)
    assert ba.t_test_p == pytest.approx(ab.t_test_p)
    assert ba.wilcoxon_p == pytest.approx(ab.wilcoxon_p)
    assert ba.tost_p == pytest.approx(ab.tost_p)
    assert ab.n_identical == ba.n_identical == 5


def test_lower_is_better_reverses_the_probability():
    a, b = np.array([0.3, 0.5, 0.4]), np.array([0.4, 0.4, 0.4])
    c = compare_paired(a, b, margin=0.01, higher_is_better=False, **FAST)
    assert c.prob_a_beats_b == prob_oracle(a, b, higher=False) == 0.5
    assert not c.higher_is_better


def test_compare_paired_validates():
    with pytest.raises(ValueError, match=r"b: expected the same number of seeds as a \(3\), got 2"):
        compare_paired([1.0, 2.0, 3.0], [1.0, 2.0], margin=0.1)
    with pytest.raises(ValueError, match="a: expected a non-empty"):
        compare_paired([], [], margin=0.1)
    with pytest.raises(ValueError, match="margin"):
        compare_paired([1.0, 2.0], [1.0, 2.0], margin=0.0)


paired = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.0, 0.5, 0.8, 0.8 + 1e-12, 1.0]), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 0.5, 0.8, 1.0]), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(paired)
def test_compare_paired_property_never_warns_and_is_antisymmetric(pair):
    a, b = pair
    ab = compare_paired(a, b, margin=0.05, n_boot=100)
    ba = compare_paired(b, a, margin=0.05, n_boot=100)
    assert ab.prob_a_beats_b == pytest.approx(1 - ba.prob_a_beats_b)
    assert ab.n_identical == ba.n_identical == sum(x == y for x, y in zip(a, b, strict=True))
    for p in (ab.t_test_p, ab.wilcoxon_p, ab.tost_p, ab.sign_flip_p):
        assert p is None or 0.0 <= p <= 1.0
    if ab.t_test_p is None:
        assert ab.note
    assert ab.equivalent == ba.equivalent
    assert ab.sign_flip_p == ba.sign_flip_p and ab.difference_found == ba.difference_found
    assert (ab.smallest_margin is None) == (ba.smallest_margin is None)
    if ab.smallest_margin is not None:
        assert ab.smallest_margin == pytest.approx(ba.smallest_margin, rel=1e-12)


# --- compare_arms ------------------------------------------------------------------------------


def test_compare_arms_covers_every_arm_and_metric():
    rng = np.random.default_rng(6)
    finals = {"kl": finals_for(rng, 12), "ce": finals_for(rng, 12), "js": finals_for(rng, 12)}
    s = compare_arms(finals, baseline="ce", **FAST)
    assert s.arms == ("kl", "ce", "js") and s.baseline == "ce" and s.metrics == METRICS
    assert s.n_seeds == 12
    assert {(x.arm, x.metric) for x in s.summaries} == {(arm, m) for arm in finals for m in METRICS}
    assert {(x.arm, x.baseline, x.metric) for x in s.comparisons} == {
        (arm, "ce", m) for arm in ("kl", "js") for m in METRICS
    }
    assert s.summary("js", "test_loss").mean == pytest.approx(np.mean(finals["js"]["test_loss"]))
    c = s.comparison("kl", "train_loss")
    assert c.prob_a_beats_b == prob_oracle(
        finals["kl"]["train_loss"], finals["ce"]["train_loss"], higher=False
    )
    assert not c.higher_is_better
    assert s.comparison("kl", "train_accuracy").higher_is_better
    assert s.margins == dict.fromkeys(METRICS, 0.01)
    with pytest.raises(KeyError):
        s.comparison("ce", "test_loss")  # the baseline is not compared with itself
    with pytest.raises(KeyError):
        s.summary("mse", "test_loss")


def test_compare_arms_defaults_and_margin_overrides():
    rng = np.random.default_rng(7)
    finals = {"kl": finals_for(rng, 5), "ce": finals_for(rng, 5)}
    s = compare_arms(finals, margins={"loss": 0.05, "test_accuracy": 0.02}, **FAST)
    assert s.baseline == "kl"
    assert s.margins == {
        "train_accuracy": 0.01,
        "test_accuracy": 0.02,
        "train_loss": 0.05,
        "test_loss": 0.05,
    }
    assert s.comparison("ce", "test_accuracy").margin == 0.02
    assert DEFAULT_MARGINS == {
        "accuracy": 0.01,
        "error": 0.01,
        "loss": 0.01,
        "brier": 0.01,
        "ece": 0.01,
        "kl": 0.01,
    }
    assert higher_is_better("val_accuracy") and not higher_is_better("val_loss")


def test_compare_arms_identical_kl_and_ce():
    rng = np.random.default_rng(8)
    kl = finals_for(rng, 100)
    s = compare_arms({"kl": kl, "ce": {m: v.copy() for m, v in kl.items()}}, baseline="ce")
    for ac in s.comparisons:
        assert ac.comparison.all_identical
        assert "identical in all 100 pairs" in ac.comparison.note


def test_compare_arms_validates():
    rng = np.random.default_rng(9)
    good = {"kl": finals_for(rng, 4), "ce": finals_for(rng, 4)}
    with pytest.raises(ValueError, match=r"baseline: expected one of \['kl', 'ce'\], got 'mse'"):
        compare_arms(good, baseline="mse")
    with pytest.raises(ValueError, match="finals: expected at least one arm, got none"):
        compare_arms({})
    short = {"kl": good["kl"], "ce": {**good["ce"], "test_loss": np.zeros(3)}}
    with pytest.raises(
        ValueError, match=r"finals\['ce'\]\['test_loss'\]: expected 4 seeds .*, got 3"
    ):
        compare_arms(short)
    missing = {"kl": good["kl"], "ce": {m: v for m, v in good["ce"].items() if m != "test_loss"}}
    with pytest.raises(ValueError, match=r"finals\['ce'\]: expected metrics"):
        compare_arms(missing)


# --- JSON ---------------------------------------------------------------------------------------


def test_to_dict_is_strict_json():
    rng = np.random.default_rng(10)
    kl = finals_for(rng, 1)
    s = compare_arms({"kl": kl, "ce": {m: v.copy() for m, v in kl.items()}})
    d = s.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["arms"] == ["kl", "ce"] and back["baseline"] == "kl"
    assert [(r["arm"], r["metric"]) for r in back["summaries"]] == [
        (arm, m) for arm in ("kl", "ce") for m in METRICS
    ]
    assert [(r["arm"], r["baseline"], r["metric"]) for r in back["comparisons"]] == [
        ("ce", "kl", m) for m in METRICS
    ]
    assert back["summaries"][0]["summary"]["t_interval"] is None
    assert back["comparisons"][0]["comparison"]["note"].startswith("identical")
    assert back["margins"] == {m: 0.01 for m in METRICS}


def test_to_jsonable_converts_numpy_and_non_finite():
    converted = to_jsonable(
        {
            1: (np.float64(np.nan), np.int64(3), np.bool_(True)),
            "p": Path("/x"),
            "a": np.array([1.5, np.inf]),
        }
    )
    assert converted == {"1": [None, 3, True], "p": "/x", "a": [1.5, None]}
    assert type(converted["1"][1]) is int
    with pytest.raises(TypeError, match="obj"):
        to_jsonable({"f": object()})


def test_scipy_warnings_become_notes_or_surface(monkeypatch):
    real = kstats.sps.ttest_1samp

    def degenerate(*args, **kwargs):
        warnings.warn("invalid value encountered", RuntimeWarning, stacklevel=2)
        return real(*args, **kwargs)

    def deprecated(*args, **kwargs):
        warnings.warn("argument renamed", DeprecationWarning, stacklevel=2)
        return real(*args, **kwargs)

    a, b = [0.1, 0.4, 0.2, 0.9], [0.0, 0.5, 0.1, 0.7]
    monkeypatch.setattr(kstats.sps, "ttest_1samp", degenerate)
    c = compare_paired(a, b, margin=0.5, **FAST)
    assert c.t_test_p is None and c.tost_p is None and c.wilcoxon_p is not None
    assert c.note == (
        "t-test not applicable: invalid value encountered; "
        "TOST not applicable: invalid value encountered"
    )
    # The primary test does not depend on SciPy's t-test.
    # d = 0.1, -0.1, 0.1, 0.2: 8 of the 16 sign patterns have |sum| >= 0.3.
    assert c.sign_flip_p == pytest.approx(0.5) and c.difference_found is False
    monkeypatch.setattr(kstats.sps, "ttest_1samp", deprecated)
    with pytest.raises(DeprecationWarning, match="argument renamed"):
        compare_paired(a, b, margin=0.5, **FAST)


# --- issue 15: Wilcoxon with zero differences and ties -----------------------------------------


def signflip_oracle(d: np.ndarray) -> float:
    """Two-sided signed-rank p by brute force: drop zeros, midranks of |d|, all 2^n sign flips."""
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = [
        sum(r for r, positive in zip(ranks, signs, strict=True) if positive)
        for signs in itertools.product((False, True), repeat=d.size)
    ]
    sums = np.array(sums)
    low, high = np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9)
    return min(1.0, 2 * min(low, high))


def test_wilcoxon_drops_identical_pairs_and_is_exact():
    b = np.arange(400, 420) / 500
    a = b.copy()
    a[:5] += 1 / 500  # five pairs differ by one test example, all the same way
    c = compare_paired(a, b, margin=0.01, denominator=500, **FAST)
    assert c.wilcoxon_p == 2 / 2**5 == 0.0625
    assert (c.wilcoxon_n, c.wilcoxon_method) == (5, "exact")
    assert c.n_identical == 15
    one = b.copy()
    one[7] += 3 / 500
    c = compare_paired(one, b, margin=0.01, denominator=500, **FAST)
    assert c.wilcoxon_p == 1.0 and c.wilcoxon_n == 1


def test_wilcoxon_matches_brute_force_with_ties_and_zeros():
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(2, 11))
        d = rng.integers(-3, 4, n).astype(float)
        if not np.any(d):
            continue
        p, used, method = kstats.wilcoxon_signed_rank(d)
        assert used == np.count_nonzero(d) and method == "exact"
        assert p == pytest.approx(signflip_oracle(d), rel=1e-12)


def test_wilcoxon_without_ties_matches_scipy_exact():
    d = np.random.default_rng(12).normal(size=14)
    assert kstats.wilcoxon_signed_rank(d)[0] == pytest.approx(
        sps.wilcoxon(d, method="exact").pvalue, rel=1e-12
    )


def test_wilcoxon_large_n_uses_the_normal_approximation_on_non_zero_differences():
    d = np.random.default_rng(13).integers(-5, 6, 400).astype(float)
    p, used, method = kstats.wilcoxon_signed_rank(d)
    nz = d[d != 0]
    assert (used, method) == (nz.size, "normal approximation")
    assert p == pytest.approx(sps.wilcoxon(nz, method="approx", correction=False).pvalue)


# --- issue 15: accuracies are counts ------------------------------------------------------------


def test_exact_fractions_undo_float32_rounding():
    k = np.arange(0, 501)
    stored = (k / 500).astype(np.float32)
    assert np.array_equal(kstats.exact_fractions(stored, 500), k / 500)
    with pytest.raises(ValueError, match="counts over N = 500"):
        kstats.exact_fractions([0.1234567], 500)
    with pytest.raises(ValueError, match="denominator"):
        kstats.exact_fractions([0.5], 0)


def test_constant_one_example_difference_has_no_spread():
    k = np.array([410, 402, 415, 398, 420, 405, 409, 411, 400, 417])
    b, a = (k / 500).astype(np.float32), ((k + 1) / 500).astype(np.float32)
    raw = compare_paired(a, b, margin=0.01, **FAST)
    assert raw.t_test_p is not None and raw.t_test_p < 1e-10  # float32 noise looks like a signal
    s = compare_arms(
        {"ce": {"test_accuracy": b}, "kl": {"test_accuracy": a}},
        denominators={"accuracy": 500},
        **FAST,
    )
    c = s.comparison("kl", "test_accuracy")
    # No spread: the t statistic is undefined; the permutation tests are exact, 2 of 2^10 patterns.
    assert c.t_test_p is None and c.tost_p is None
    assert c.sign_flip_p == c.wilcoxon_p == 2 / 2**10
    assert "all 10 differences equal 0.002: no spread" in c.note
    assert c.margin_result == "within" and c.verdict == "different, within margin"
    assert c.smallest_margin == 1 / 500 and c.seeds_needed is None
    assert c.difference.mean == 1 / 500
    assert s.denominators == {"test_accuracy": 500}
    assert s.values["kl"]["test_accuracy"] == tuple((k + 1) / 500)


def test_count_ties_are_ties():
    # One-example differences at different accuracies: in float32 their sizes differ by rounding.
    rng = np.random.default_rng(14)
    kb = rng.integers(380, 440, 16)
    step = np.array([1, -1, 1, 1, 0, 2, -2, 1, 1, -1, 0, 1, 1, 3, -1, 1])
    a32, b32 = ((kb + step) / 500).astype(np.float32), (kb / 500).astype(np.float32)
    assert len(set(np.abs(a32.astype(float) - b32.astype(float))[step == 1])) > 1
    s = compare_arms(
        {"ce": {"test_accuracy": b32}, "kl": {"test_accuracy": a32}},
        denominators={"test_accuracy": 500},
        **FAST,
    )
    c = s.comparison("kl", "test_accuracy")
    assert c.wilcoxon_p == pytest.approx(signflip_oracle(step.astype(float)), rel=1e-12)
    assert c.t_test_p == pytest.approx(sps.ttest_1samp(step / 500, 0.0).pvalue, rel=1e-9)
    assert c.n_identical == 2


# --- issue 15: verdicts answer two questions -----------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "sd", "margin", "expected"),
    [
        (0.0, 0.004, 0.01, "equivalent"),
        (0.004, 0.002, 0.01, "different, within margin"),
        (0.03, 0.004, 0.01, "different"),
        (0.009, 0.004, 0.01, "different, margin unclear"),
        (0.0, 0.05, 0.01, "inconclusive"),
    ],
)
def test_verdict_answers_difference_and_margin(shift, sd, margin, expected):
    rng = np.random.default_rng(15)
    b = rng.normal(0.8, 0.02, 30)
    a = b + shift + rng.normal(0, sd, 30)
    d = a - b
    c = compare_paired(a, b, margin=margin, **FAST)
    low, high = t_oracle(d, confidence=0.90)
    assert c.tost_interval == pytest.approx((low, high), rel=1e-9)
    # The primary test is the sign-flip test: against SciPy's Monte Carlo sign flips (2^30 is too
    # many to enumerate here), within 5 standard errors.
    mc = sps.permutation_test(
        (d,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        n_resamples=20_000,
        rng=np.random.default_rng(0),
    ).pvalue
    assert c.sign_flip_p == pytest.approx(mc, abs=5 * math.sqrt(mc * (1 - mc) / 20_000) + 1e-4)
    found = mc < 0.05
    within, outside = -margin < low and high < margin, low >= margin or high <= -margin
    assert c.difference_found == found
    assert c.margin_result == ("within" if within else "outside" if outside else "straddles")
    assert c.verdict == expected
    assert c.alpha == 0.05
    assert c.test_method == "sign-flip permutation test (exact, all 2^30 sign patterns)"


# --- issue 15: one primary test, Holm over the family ----------------------------------------------


def holm_closed_testing_oracle(p: list[float]) -> list[float]:
    """Closed testing with Bonferroni tests of every intersection: adjusted p_i is the largest
    min(1, |S|·min_{j∈S} p_j) over the index sets S that contain i."""
    m = len(p)
    out = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p[j] for j in subset)))
        out.append(worst)
    return out


def test_holm_matches_closed_testing():
    rng = np.random.default_rng(16)
    for _ in range(30):
        p = list(rng.uniform(0, 0.2, int(rng.integers(1, 7))))
        assert kstats.holm(p) == pytest.approx(holm_closed_testing_oracle(p), rel=1e-12)


def test_compare_arms_holm_adjusts_the_primary_metric_only():
    rng = np.random.default_rng(17)
    base = finals_for(rng, 12)
    finals = {"ce": base}
    for arm, shift in (("kl", 0.0), ("js", 0.012), ("mse", 0.006)):
        finals[arm] = {m: v + shift + rng.normal(0, 0.01, 12) for m, v in base.items()}
    s = compare_arms(finals, baseline="ce", **FAST)
    assert s.primary_metric == "test_accuracy" and s.primary_test == "sign-flip permutation test"
    raw = [s.comparison(arm, "test_accuracy").sign_flip_p for arm in ("kl", "js", "mse")]
    expected = holm_closed_testing_oracle(raw)
    assert [s.primary_p_holm[arm] for arm in ("kl", "js", "mse")] == pytest.approx(expected)
    for arm, p in zip(("kl", "js", "mse"), expected, strict=True):
        c = s.comparison(arm, "test_accuracy")
        assert c.difference_found == (p < 0.05)
        assert "Holm" in c.test_method
        assert "Holm" not in s.comparison(arm, "test_loss").test_method
    with pytest.raises(ValueError, match="primary_metric"):
        compare_arms(finals, primary_metric="auc")


# --- issue 15: medians, bounded intervals --------------------------------------------------------


def test_median_and_median_difference_show_failed_seeds():
    rng = np.random.default_rng(18)
    b = rng.normal(0.82, 0.005, 30)
    a = b + rng.normal(-0.004, 0.002, 30)
    a[:11] = 0.55  # collapsed seeds
    c = compare_paired(a, b, margin=0.01, **FAST)
    assert c.median_difference == pytest.approx(np.median(a - b))
    assert c.median_difference > -0.01 > c.difference.mean
    assert summarize(a, **FAST).median == pytest.approx(np.median(a))


def test_accuracy_intervals_are_clipped_to_0_1():
    s = compare_arms({"a": {"test_accuracy": [0.99, 1.0]}}, **FAST)
    m = s.summary("a", "test_accuracy")
    low, high = t_oracle(np.array([0.99, 1.0]))
    assert high > 1
    assert m.t_interval == pytest.approx((low, 1.0)) and m.clipped and m.bounds == (0.0, 1.0)
    loss = compare_arms({"a": {"test_loss": [0.99, 1.0]}}, **FAST).summary("a", "test_loss")
    assert loss.t_interval == pytest.approx((low, high)) and not loss.clipped


def test_to_dict_stores_verdicts_with_alpha_and_method():
    rng = np.random.default_rng(19)
    s = compare_arms({"ce": finals_for(rng, 8), "js": finals_for(rng, 8)}, **FAST)
    back = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    for r in back["comparisons"]:
        c = r["comparison"]
        assert c["verdict"] and c["alpha"] == 0.05
        assert c["test_method"].startswith("sign-flip permutation test (exact, all 2^8 sign")
        assert 0 < c["sign_flip_p"] <= 1 and c["sign_flip_n"] == 8
        assert len(c["tost_interval"]) == 2 and c["wilcoxon_method"] == "exact"
    assert back["primary_metric"] == "test_accuracy" and "js" in back["primary_p_holm"]


def test_shown_intervals_cover_small_seeded_simulation():
    """A small seeded coverage check (benchmarks/coverage.py is the full one): the t interval
    covers about 95% of normal means at n = 3, BCa far less, which is why it is left out there."""
    rng = np.random.default_rng(20)
    reps, t_hits, boot_hits = 400, 0, 0
    for rep in range(reps):
        x = rng.normal(0.82, 0.01, 3)
        s = summarize(x, n_boot=1)
        assert s.bootstrap_interval is None
        t_hits += s.t_interval[0] <= 0.82 <= s.t_interval[1]
        boot, _, _ = kstats._bootstrap(x, 0.95, 500, rep)
        boot_hits += boot[0] <= 0.82 <= boot[1]
    assert 0.92 <= t_hits / reps <= 0.98
    assert boot_hits / reps < 0.8


# --- issue 15: the sign-flip permutation test ----------------------------------------------------


def sign_flip_brute_force(d: np.ndarray) -> float:
    """Two-sided sign-flip p by listing all 2^n patterns, zeros kept: #{|S| >= |S_obs| - tol}/2^n,
    every sum correctly rounded (math.fsum), tol = 1e-12·Σ|d| as documented."""
    d = np.asarray(d, dtype=float)
    observed = abs(math.fsum(d))
    tol = 1e-12 * math.fsum(np.abs(d))
    hits = sum(
        abs(math.fsum(s * x for s, x in zip(signs, d, strict=True))) >= observed - tol
        for signs in itertools.product((1.0, -1.0), repeat=d.size)
    )
    return hits / 2**d.size


def test_sign_flip_matches_brute_force_on_integers_with_ties_and_zeros():
    rng = np.random.default_rng(21)
    for _ in range(80):
        n = int(rng.integers(1, 13))
        d = rng.integers(-4, 5, n).astype(float)
        p, used, method = kstats.sign_flip_test(d)
        if not np.any(d):
            assert (p, used, method) == (None, 0, None)
            continue
        assert used == np.count_nonzero(d)
        assert method == f"exact, all 2^{used} sign patterns"
        assert p == pytest.approx(sign_flip_brute_force(d), rel=1e-12, abs=1e-15)


def test_sign_flip_matches_brute_force_on_floats_with_ties_and_zeros():
    rng = np.random.default_rng(22)
    for _ in range(80):
        n = int(rng.integers(2, 13))
        # Values whose sums tie in exact arithmetic but not in floating point (0.1 + 0.2 vs 0.3),
        # exact zeros, and continuous values.
        pool = rng.choice([0.0, 0.1, -0.1, 0.2, -0.2, 0.3, -0.3, 0.7], n)
        d = np.where(rng.random(n) < 0.3, rng.normal(0.05, 0.2, n), pool)
        p, used, method = kstats.sign_flip_test(d)
        if not np.any(d):
            continue
        assert used == np.count_nonzero(d) and method.startswith("exact")
        assert p == pytest.approx(sign_flip_brute_force(d), rel=1e-12, abs=1e-15)


def test_sign_flip_matches_scipy_exact_permutation_test():
    rng = np.random.default_rng(23)
    for n in (2, 3, 5, 8, 11):
        a, b = rng.normal(0.8, 0.01, n), rng.normal(0.8, 0.01, n)
        res = sps.permutation_test(
            (a, b),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            n_resamples=np.inf,
            alternative="two-sided",
        )
        assert kstats.sign_flip_test(a - b)[0] == pytest.approx(min(1.0, res.pvalue), rel=1e-9)


def test_sign_flip_zero_differences_do_not_change_p():
    rng = np.random.default_rng(24)
    d = rng.normal(0.01, 0.02, 9)
    p, used, _ = kstats.sign_flip_test(d)
    p0, used0, _ = kstats.sign_flip_test(np.concatenate([d, np.zeros(4)]))
    assert used == used0 == 9
    assert p0 == p == pytest.approx(sign_flip_brute_force(np.concatenate([d, np.zeros(4)])))


def test_sign_flip_counts_are_exact_for_many_seeds():
    # 300 seeds of accuracy differences k/500 in float32: exact through the integer sum. Oracle:
    # the same p from the enumeration path on a scaled subset, and Monte Carlo on all of them.
    rng = np.random.default_rng(25)
    k = rng.integers(-6, 8, 300)
    a32 = ((400 + k) / 500).astype(np.float32)
    b32 = np.full(300, 400 / 500, dtype=np.float32)
    d = a32.astype(float) - b32.astype(float)
    p, used, method = kstats.sign_flip_test(kstats.exact_fractions(a32, 500) - 0.8, denominator=500)
    assert (used, method) == (np.count_nonzero(k), f"exact, all 2^{used} sign patterns")
    mc, _, mc_method = kstats.sign_flip_test(k * math.pi, n_resamples=200_000, seed=1)
    assert mc_method == "Monte Carlo, 200000 resamples"
    assert p == pytest.approx(mc, abs=5 * math.sqrt(p * (1 - p) / 200_000) + 1e-5)
    # float32 rounding noise would break the exact path; the counts keep it exact.
    assert not np.all(d * 500 == np.rint(d * 500))
    small = k[:12]
    p_counts = kstats.sign_flip_test(small / 500, denominator=500)[0]
    p_floats = kstats.sign_flip_test(small * math.pi)[0]  # same p, float path with rounding ties
    assert p_counts == pytest.approx(p_floats, rel=1e-12)
    assert p_counts == pytest.approx(sign_flip_brute_force(small.astype(float)), rel=1e-12)


def test_sign_flip_monte_carlo_above_the_enumeration_limit_agrees_with_scipy():
    rng = np.random.default_rng(26)
    d = rng.normal(0.004, 0.02, kstats.SIGN_FLIP_EXACT_MAX + 14)
    p, used, method = kstats.sign_flip_test(d, n_resamples=50_000, seed=3)
    assert (used, method) == (d.size, "Monte Carlo, 50000 resamples")
    assert kstats.sign_flip_test(d, n_resamples=50_000, seed=3)[0] == p  # seeded
    res = sps.permutation_test(
        (d,),
        lambda x, axis: np.sum(x, axis=axis),
        permutation_type="samples",
        n_resamples=50_000,
        rng=np.random.default_rng(0),
    )
    se = math.sqrt(p * (1 - p) / 50_000)
    assert p == pytest.approx(res.pvalue, abs=6 * se + 1e-4)
    assert 0 < p < 1


def test_sign_flip_validates():
    with pytest.raises(ValueError, match="d: expected finite values"):
        kstats.sign_flip_test([0.1, np.nan])
    with pytest.raises(ValueError, match="counts over N = 500"):
        kstats.sign_flip_test([0.1234567], denominator=500)
    with pytest.raises(ValueError, match="n_resamples"):
        kstats.sign_flip_test(np.arange(1.0, 60.0) * math.pi, n_resamples=0)


def test_paired_comparison_reports_the_sign_flip_test():
    rng = np.random.default_rng(27)
    b = rng.normal(0.8, 0.02, 10)
    a = b + rng.normal(0.004, 0.006, 10)
    c = compare_paired(a, b, margin=0.01, **FAST)
    assert c.sign_flip_p == pytest.approx(sign_flip_brute_force(a - b), rel=1e-12)
    assert (c.sign_flip_n, c.sign_flip_method) == (10, "exact, all 2^10 sign patterns")
    assert c.difference_found == (c.sign_flip_p < 0.05)
    assert c.test_method == "sign-flip permutation test (exact, all 2^10 sign patterns)"
    assert compare_paired([0.8], [0.7], margin=0.01).sign_flip_p is None
    same = compare_paired(a, a.copy(), margin=0.01)
    assert same.sign_flip_p is None and same.difference_found is None


# --- issue 15: how many seeds, per comparison -----------------------------------------------------


def test_smallest_margin_is_where_tost_turns():
    rng = np.random.default_rng(28)
    b = rng.normal(0.8, 0.02, 20)
    a = b + rng.normal(0.002, 0.005, 20)
    c = compare_paired(a, b, margin=0.01, **FAST)
    low, high = t_oracle(a - b, confidence=0.90)
    assert c.smallest_margin == pytest.approx(max(abs(low), abs(high)), rel=1e-12)
    assert tost_oracle(a - b, c.smallest_margin) == pytest.approx(0.05, rel=1e-9)
    above = compare_paired(a, b, margin=c.smallest_margin * (1 + 1e-9), **FAST)
    below = compare_paired(a, b, margin=c.smallest_margin * (1 - 1e-9), **FAST)
    assert above.equivalent and not below.equivalent
    assert c.difference_sd == pytest.approx(np.std(a - b, ddof=1))
    assert c.seeds_needed == kstats.seeds_for_power(c.difference_sd, 0.01, 0.8, 0.05)
    assert c.seeds_power == 0.8
    assert compare_paired(a, b, margin=0.01, power=0.9, **FAST).seeds_needed > c.seeds_needed


def test_no_margin_asks_only_whether_there_is_a_difference():
    rng = np.random.default_rng(29)
    b = rng.normal(0.8, 0.02, 12)
    for shift, expected in ((0.0, "no difference shown"), (0.05, "different")):
        a = b + shift + rng.normal(0, 0.004, 12)
        c = compare_paired(a, b, margin=None, **FAST)
        assert c.margin is None and c.tost_p is None and c.margin_result is None
        assert not c.equivalent and c.seeds_needed is None
        assert c.smallest_margin == pytest.approx(max(map(abs, t_oracle(a - b, 0.90))))
        assert c.verdict == expected


def test_compare_arms_unknown_metric_has_no_margin():
    rng = np.random.default_rng(30)
    finals = {
        arm: {"auc": rng.uniform(0.7, 0.9, 6), "val_ece": rng.uniform(0, 0.1, 6)}
        for arm in ("a", "b")
    }
    s = compare_arms(finals, **FAST)
    assert s.margins == {"auc": None, "val_ece": 0.01}
    c = s.comparison("b", "auc")
    assert c.margin is None and c.verdict in ("different", "no difference shown")
    assert not s.comparison("b", "val_ece").higher_is_better
    with_margin = compare_arms(finals, margins={"auc": 0.02}, **FAST)
    assert with_margin.comparison("b", "auc").margin == 0.02


def test_margins_take_the_name_then_the_longest_suffix():
    rng = np.random.default_rng(31)
    names = ("train_loss", "test_loss", "val_error", "test_brier")
    finals = {arm: {m: rng.normal(0.4, 0.01, 5) for m in names} for arm in ("a", "b")}
    s = compare_arms(
        finals, margins={"loss": 0.05, "_loss": 0.03, "test_loss": 0.02, "brier": 0.005}, **FAST
    )
    assert s.margins == {
        "train_loss": 0.03,
        "test_loss": 0.02,
        "val_error": 0.01,
        "test_brier": 0.005,
    }


def test_higher_is_better_by_name():
    for name in (
        "test_loss",
        "val_error",
        "error",
        "test_brier",
        "ece",
        "val_ece",
        "test_teacher_kl",
    ):
        assert not higher_is_better(name), name
    for name in ("test_accuracy", "auc", "f1", "loss_ratio"):
        assert higher_is_better(name), name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.01", {"accuracy": 0.01}),
        (" 2e-3 ", {"accuracy": 0.002}),
        (
            "accuracy=0.01,loss=0.02,test_brier=0.005",
            {"accuracy": 0.01, "loss": 0.02, "test_brier": 0.005},
        ),
        ("val_loss = 0.1", {"val_loss": 0.1}),
    ],
)
def test_parse_margins(text, expected):
    assert kstats.parse_margins(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"margin: expected a number or metric=number pairs, got ''"),
        ("0", r"margin: expected a finite number > 0 for accuracy, got '0'"),
        ("-0.1", r"expected a finite number > 0 for accuracy, got '-0.1'"),
        ("nan", r"expected a finite number > 0 for accuracy, got 'nan'"),
        ("abc", r"expected a finite number > 0 for accuracy, got 'abc'"),
        ("loss=inf", r"expected a finite number > 0 for loss, got 'inf'"),
        ("loss=0.1,", r"expected metric=number pairs separated by commas, got ''"),
        ("loss=", r"expected metric=number pairs separated by commas, got 'loss='"),
        ("=0.1", r"expected metric=number pairs separated by commas, got '=0.1'"),
        ("loss=0.1,0.2", r"expected metric=number pairs separated by commas, got '0.2'"),
        (
            "test loss=0.1",
            r"expected a metric name \(letters, digits, _\) before '=', got 'test loss'",
        ),
        ("loss=0.1,loss=0.2", r"expected each metric once, got 'loss' twice"),
    ],
)
def test_parse_margins_rejects(text, match):
    with pytest.raises(ConfigError, match=match) as err:
        kstats.parse_margins(text)
    assert err.value.field == "margin" and isinstance(err.value, ValueError)


# --- issue 15: failures are recorded, kept in the statistics, and in stats.json -----------------


def test_compare_arms_records_failures_and_keeps_the_runs():
    rng = np.random.default_rng(32)
    seeds = np.arange(100, 130)
    ce = {"test_accuracy": rng.normal(0.82, 0.007, 30)}
    js = {"test_accuracy": ce["test_accuracy"] + rng.normal(-0.003, 0.003, 30)}
    js["test_accuracy"][:11] = 0.55
    s = compare_arms(
        {"ce": ce, "js": js},
        seeds=seeds,
        failures={"js": {"stuck": seeds[:11]}, "ce": {"stuck": []}},
        failure_rules={"stuck": "a rule"},
        **FAST,
    )
    assert s.seeds == tuple(range(100, 130))
    assert s.failures == {"js": {"stuck": tuple(range(100, 111))}, "ce": {"stuck": ()}}
    assert s.failure_rules == {"stuck": "a rule"}
    # Kept in every statistic: the mean is over all 30 runs.
    assert s.summary("js", "test_accuracy").mean == pytest.approx(np.mean(js["test_accuracy"]))
    assert s.comparison("js", "test_accuracy").n == 30
    back = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert back["failures"] == {"js": {"stuck": list(range(100, 111))}, "ce": {"stuck": []}}
    assert back["failure_rules"] == {"stuck": "a rule"} and back["seeds"][0] == 100
    c = back["comparisons"][0]["comparison"]
    assert {"sign_flip_p", "sign_flip_method", "smallest_margin", "seeds_needed"} <= set(c)
    assert c["seeds_needed"] >= 2 and c["seeds_power"] == 0.8


def test_compare_arms_validates_failures_and_seeds():
    rng = np.random.default_rng(33)
    finals = {
        "a": {"test_accuracy": rng.uniform(0.7, 0.9, 4)},
        "b": {"test_accuracy": rng.uniform(0.7, 0.9, 4)},
    }
    rule = {"stuck": "r"}
    with pytest.raises(ValueError, match=r"failures: expected arms among \['a', 'b'\], got 'c'"):
        compare_arms(finals, failures={"c": {"stuck": [1]}}, failure_rules=rule)
    with pytest.raises(
        ValueError, match="failure_rules: expected the rule for failure kind 'stuck'"
    ):
        compare_arms(finals, failures={"a": {"stuck": [1]}})
    with pytest.raises(ValueError, match=r"failures\['a'\]\['stuck'\]: expected integer seeds"):
        compare_arms(finals, failures={"a": {"stuck": [1.5]}}, failure_rules=rule)
    with pytest.raises(ValueError, match=r"failures\['a'\]\['stuck'\]: expected each seed once"):
        compare_arms(finals, failures={"a": {"stuck": [1, 1]}}, failure_rules=rule)
    for bad in ([1, 2, 3], [1, 2, 3, 3], [0.5, 1, 2, 3]):
        with pytest.raises(ValueError, match="seeds: expected 4 different integer seeds"):
            compare_arms(finals, seeds=bad)


def test_metric_bounds_know_divergences_and_agreement():
    from kldiv.stats import metric_bounds

    assert metric_bounds("test_teacher_kl", None, 0.0) == (0.0, math.inf)
    assert metric_bounds("test_teacher_kl", None, -0.5) is None  # not a divergence after all
    assert metric_bounds("test_teacher_agreement", None, 0.3) == (0.0, 1.0)
    assert not higher_is_better("test_teacher_kl") and higher_is_better("test_teacher_agreement")
