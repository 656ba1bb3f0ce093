"""kldiv.report: the terminal tables carry the numbers, the HTML page is self-contained and escaped."""

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from kldiv.report import Table, html_report, html_table, stats_table, text_table, theory_note
from kldiv.stats import compare_arms

METRICS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss")
PNG = b"\x89PNG\r\n\x1a\n"
# Smallest valid PNG: 1x1 grey pixel.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def make_finals(n: int, *, kl_offset: float = 0.0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ce = {m: rng.normal(0.82 if m.endswith("accuracy") else 0.41, 0.01, n) for m in METRICS}
    kl = {m: v + kl_offset * rng.normal(size=n) for m, v in ce.items()}
    js = {m: v + 0.02 + 0.01 * rng.normal(size=n) for m, v in ce.items()}
    return {"ce": ce, "kl": kl, "js": js}


@pytest.fixture(scope="module")
def identical_stats():
    return compare_arms(make_finals(50), n_boot=500)


@pytest.fixture(scope="module")
def nearly_stats():
    return compare_arms(make_finals(50, kl_offset=1e-6), n_boot=500)


class Collector(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Collector:
    c = Collector()
    c.feed(page)
    return c


def test_stats_table_contains_the_numbers(identical_stats):
    text = stats_table(identical_stats)
    assert text.startswith("Final metrics per arm\narm ")
    for s in identical_stats.summaries:
        m = s.summary
        row = next(
            line
            for line in text.splitlines()
            if line.startswith(f"{s.arm} ") and f" {s.metric} " in line
        )
        assert f"{m.mean:.4f} ± {m.std:.4f}" in row
        assert f"[{m.t_interval[0]:.4f}, {m.t_interval[1]:.4f}]" in row
        assert f"[{m.bootstrap_interval[0]:.4f}, {m.bootstrap_interval[1]:.4f}]" in row
    js = identical_stats.comparison("js", "test_accuracy")
    test_rows = text.split("Paired tests")[1].split("Verdicts")[0].splitlines()
    js_row = next(line for line in test_rows if line.startswith("js ") and "test_accuracy" in line)
    assert f"{js.prob_a_beats_b:.2f}" in js_row
    assert f"{js.wilcoxon_p:.1e} (50)" in js_row  # the pairs that entered the Wilcoxon test
    holm = identical_stats.primary_p_holm["js"]
    assert js_row.endswith(f"{holm:.1e}" if holm < 1e-4 else f"{holm:.4f}")
    verdict_rows = text.split("Verdicts A vs")[1].split("How many seeds")[0].splitlines()
    js_verdict = next(r for r in verdict_rows if r.startswith("js ") and "test_accuracy" in r)
    low, high = js.tost_interval
    assert f"[{low:.4f}, {high:.4f}]" in js_verdict and "±0.01" in js_verdict
    assert js_verdict.endswith(js.verdict) and js.verdict == "different"
    kl_tests = [line for line in verdict_rows if line.startswith("kl ")]
    assert len(kl_tests) == 4 and all(r.endswith("identical") for r in kl_tests)
    assert "Primary: sign-flip p on test_accuracy, Holm-adjusted over 1 arm(s)" in text
    assert "every other p-value" in text and "is unadjusted" in text
    diff_rows = text.split("Paired differences")[1].split("Paired tests")[0].splitlines()
    kl_diffs = [line for line in diff_rows if line.startswith("kl ")]
    assert len(kl_diffs) == 4 and all(r.endswith("50/50") for r in kl_diffs)
    assert "identical in all 50 pairs" in text
    flat = " ".join(text.split())
    assert "at most 5.8% of seeds would give different runs" in flat
    assert "not the sampling of the test set" in flat
    assert "nominal 95%, measured coverage of a normal mean about 93% at n = 20-30" in flat
    assert max(len(line) for line in text.splitlines()) <= 100


def test_stats_table_single_seed_says_no_interval():
    text = stats_table(compare_arms(make_finals(1)))
    assert "n = 1: no spread and no interval" in text
    assert "1 seed;" in text
    assert "n/a" in text


def test_text_table_alignment():
    table = Table(
        "T", ("name", "metric", "value"), (("a", "m", "1.5"), ("bb", "mm", "10.25")), notes=("n",)
    )
    assert text_table(table).splitlines() == [
        "T",
        "name  metric  value",
        "----  ------  -----",
        "a     m         1.5",
        "bb    mm      10.25",
        "  n",
    ]


def test_theory_note_identical(identical_stats):
    note = theory_note(identical_stats)
    assert "KL(y‖q) = Σ y·log(y/q) = CE(y, q) − H(y)" in note
    assert "identical in all 50 pairs" in note


def test_theory_note_nearly(nearly_stats):
    note = theory_note(nearly_stats)
    assert "did not all agree" in note
    assert "train_accuracy 0 of 50" in note
    assert "clips the predictions q to [1e-7, 1]" in note
    assert "equivalent" in note
    flat = " ".join(note.split())
    assert "same gradient for any targets" in flat and "0 on one-hot" in flat
    assert "1,600" not in flat and "SGD steps" in flat  # no step count from one configuration


def test_theory_note_without_the_pair(identical_stats):
    assert theory_note(identical_stats, kl="keras_kl") == ""
    assert theory_note(identical_stats, ce="xent") == ""


def test_theory_note_takes_the_arm_names():
    finals = make_finals(20)
    renamed = compare_arms({"xent": finals["ce"], "exact_kl": finals["kl"]}, n_boot=200)
    assert theory_note(renamed) == ""
    note = theory_note(renamed, kl="exact_kl", ce="xent")
    assert "exact_kl and xent were identical in all 20 pairs" in note


def test_theory_note_when_neither_is_the_baseline():
    note = " ".join(theory_note(compare_arms(make_finals(20), baseline="js", n_boot=200)).split())
    assert "KL(y‖q)" in note
    assert "kl vs ce, compared directly (paired by seed; the baseline of the tables is js" in note
    assert "kl and ce were identical in all 20 pairs" in note
    assert "at most 13.9% of seeds" in note  # 1 - 0.05^(1/20)
    finals = make_finals(20, kl_offset=0.02)
    note = " ".join(theory_note(compare_arms(finals, baseline="js", n_boot=200)).split())
    assert "did not all agree" in note and "test_accuracy 0 of 20" in note


def test_html_report_is_self_contained(identical_stats):
    figures = {"curves": TINY_PNG, "finals": TINY_PNG}
    page = html_report(
        title="kldiv compare",
        command="kldiv compare --losses kl,ce,js --seeds 50",
        config={"losses": ("ce", "kl", "js"), "seeds": np.int64(50), "lr": np.float64(0.01)},
        stats=identical_stats,
        figures=figures,
    )
    assert page.startswith("<!DOCTYPE html>")
    doc = parse(page)
    tags = [t for t, _ in doc.tags]
    assert ("meta", {"charset": "utf-8"}) in doc.tags
    assert "script" not in tags
    for _, attrs in doc.tags:
        for key in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(key) or ""), attrs
    images = [attrs for tag, attrs in doc.tags if tag == "img"]
    assert [a["alt"] for a in images] == ["curves", "finals"]
    for a in images:
        prefix = "data:image/png;base64,"
        assert a["src"].startswith(prefix)
        assert base64.b64decode(a["src"][len(prefix) :]) == TINY_PNG
    assert tags.count("table") == 5
    text = "".join(doc.text)
    assert "kldiv compare --losses kl,ce,js --seeds 50" in text
    assert '"seeds": 50' in text and '"lr": 0.01' in text
    assert "identical in all 50 pairs" in text
    assert "<h2>Theory</h2>" in page
    m = identical_stats.summary("js", "test_loss")
    assert f"{m.mean:.4f} ± {m.std:.4f}" in text


def test_html_report_escapes_text():
    stats = compare_arms({"<b>extra</b>": {"<k>_accuracy": [0.5, 0.6, 0.7]}}, n_boot=100)
    page = html_report(
        title="<script>alert(1)</script>",
        command="kldiv run --out 'a&b' > log",
        config={"note": '<img src="http://example.com/x.png">'},
        stats=stats,
    )
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b&#x27; &gt; log" in page
    assert "<img" not in page and "&lt;img src=" in page
    assert "<b>" not in page and "<k>" not in page and "&lt;b&gt;extra&lt;/b&gt;" in page
    tags = [t for t, _ in parse(page).tags]
    assert tags.count("table") == 1 and "h2" in tags
    assert "Theory" not in page  # one arm: nothing compared, no theory note


def test_html_table_escapes_text():
    table = html_table(Table("<b>extra</b>", ("<k>", "v"), (("<i>", "1"),), notes=("<u>",)))
    assert "<b>" not in table and "<i>" not in table and "<k>" not in table and "<u>" not in table
    assert "&lt;b&gt;extra&lt;/b&gt;" in table and "&lt;u&gt;" in table
    assert [t for t, _ in parse(table).tags].count("table") == 1


def test_html_report_without_stats_has_no_results():
    page = html_report(title="kldiv run", command="kldiv run", config={"seeds": 1})
    assert "<table" not in page and "Results" not in page and "Theory" not in page


def test_html_report_summary_is_escaped_paragraphs_before_the_results(identical_stats):
    page = html_report(
        title="t", command="c", config={}, stats=identical_stats, summary="a <b>\n\nb & c\n"
    )
    assert "<h2>Summary</h2>\n<p>a &lt;b&gt;</p>\n<p>b &amp; c</p>" in page
    assert page.index("Summary") < page.index("Results")
    assert "Summary" not in html_report(title="t", command="c", config={})


def test_html_report_rejects_non_png():
    with pytest.raises(ValueError, match=r"figures\['curves'\]: expected PNG bytes, got b'GIF89a"):
        html_report(title="t", command="c", config={}, figures={"curves": b"GIF89a..."})


def test_equal_values_and_small_n_get_no_false_intervals():
    finals = {
        "ce": {"test_accuracy": [0.824, 0.824, 0.824]},
        "kl": {"test_accuracy": [0.824, 0.826, 0.822]},
    }
    text = stats_table(compare_arms(finals, n_boot=200))
    ce_row = next(r for r in text.splitlines() if r.startswith("ce "))
    assert "[0.8240, 0.8240]" not in text and ce_row.count("all 3 equal") == 2
    assert "all 3 values equal: no spread, no interval" in text
    kl_row = next(r for r in text.splitlines() if r.startswith("kl "))
    assert kl_row.endswith("n < 20")
    assert "Bootstrap interval left out below n = 20 seeds" in text


def test_accuracy_clipping_is_said():
    text = stats_table(compare_arms({"a": {"test_accuracy": [0.99, 1.0]}}, n_boot=200))
    assert "1.0000]" in text and "Accuracy intervals are clipped to [0, 1]" in text


def test_counts_are_said():
    finals = {"ce": {"test_accuracy": [0.824, 0.826]}, "kl": {"test_accuracy": [0.826, 0.828]}}
    stats = compare_arms(finals, n_boot=200, denominators={"accuracy": 500})
    assert "Counts kept exact (no float32 rounding): test_accuracy k/500." in stats_table(stats)


# --- issue 15: failures, how many seeds, the sign-flip test, metrics without a margin -------------


def js_collapse_finals() -> tuple[dict, list[int]]:
    """30 seeds; 11 JS runs collapse to about 0.55 accuracy, the rest track ce closely."""
    rng = np.random.default_rng(40)
    ce = np.round(rng.normal(0.823, 0.007, 30) * 500) / 500
    js = np.clip(ce + np.round(rng.normal(-0.002, 0.004, 30) * 500) / 500, 0, 1)
    js[:11] = np.round(rng.uniform(0.542, 0.552, 11) * 500) / 500
    return {"ce": {"test_accuracy": ce}, "js": {"test_accuracy": js}}, list(range(30))


def test_failed_runs_are_counted_next_to_mean_and_median_with_their_rule():
    from kldiv.failures import FAILURE_RULES

    finals, seeds = js_collapse_finals()
    stats = compare_arms(
        finals,
        seeds=seeds,
        failures={"js": {"stuck": seeds[:11], "diverged": [30, 31]}},
        failure_rules=FAILURE_RULES,
        denominators={"accuracy": 500},
        n_boot=200,
    )
    text = stats_table(stats)
    header = text.splitlines()[1]
    assert header.split()[:6] == ["arm", "metric", "mean", "±", "std", "median"]
    assert "failed" in header
    js_row = next(r for r in text.splitlines() if r.startswith("js "))
    ce_row = next(r for r in text.splitlines() if r.startswith("ce "))
    m = stats.summary("js", "test_accuracy")
    assert m.mean == pytest.approx(np.mean(finals["js"]["test_accuracy"]))  # failed runs kept
    assert f"{m.mean:.4f} ± {m.std:.4f}  {m.median:.4f}" in js_row
    assert "11/30 stuck (+2)" in js_row and ce_row.split()[6] == "0"
    flat = " ".join(text.split())
    assert "js: 11 of 30 runs stuck (seeds 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, … (1 more))" in flat
    assert "js: 2 more runs diverged (seeds 30, 31), left out of the statistics" in flat
    assert f"Rule, stuck: {FAILURE_RULES['stuck']}." in flat
    assert f"Rule, diverged: {FAILURE_RULES['diverged']}." in flat
    assert "Failed runs stay in the means, tests and intervals" in flat
    assert max(len(line) for line in text.splitlines()) <= 100


def test_no_failures_no_column():
    finals, _ = js_collapse_finals()
    text = stats_table(compare_arms(finals, n_boot=200))
    assert "failed" not in text.splitlines()[1] and "Rule," not in text


def test_how_many_seeds_table():
    finals, _ = js_collapse_finals()
    finals["kl"] = {"test_accuracy": finals["ce"]["test_accuracy"].copy()}
    stats = compare_arms(finals, n_boot=200, denominators={"accuracy": 500})
    text = stats_table(stats)
    part = text.split("How many seeds: A vs ce")[1]
    header = part.splitlines()[1]
    assert header.split() == [
        "A",
        "metric",
        "n",
        "SD",
        "shown",
        "margin",
        "margin",
        "seeds",
        "for",
        "80%",
    ]
    js = stats.comparison("js", "test_accuracy")
    js_row = next(r for r in part.splitlines() if r.startswith("js "))
    assert js_row.split() == [
        "js",
        "test_accuracy",
        "30",
        f"{js.difference_sd:.4f}",
        f"±{js.smallest_margin:.4f}",
        "±0.01",
        f"{js.seeds_needed:,}",
    ]
    assert js.seeds_needed > 1000  # the collapsed seeds make the SD large
    kl_row = next(r for r in part.splitlines() if r.startswith("kl "))
    assert kl_row.split() == ["kl", "test_accuracy", "30", "0", "±0", "±0.01", "n/a"]
    flat = " ".join(part.split())
    assert "80% power to show |E[A − B]| < margin when the true difference is 0" in flat


def test_sign_flip_is_the_primary_column_and_monte_carlo_is_marked():
    rng = np.random.default_rng(41)
    n = 60  # float differences above the exact-enumeration limit
    ce = {"test_loss": rng.normal(0.4, 0.01, n)}
    finals = {"ce": ce, "kl": {"test_loss": ce["test_loss"] + rng.normal(0, 0.002, n)}}
    stats = compare_arms(finals, n_boot=200)
    text = stats_table(stats)
    tests = text.split("Paired tests")[1].split("Verdicts")[0]
    assert tests.splitlines()[1].split()[:4] == ["A", "metric", "sign-flip", "p"]
    c = stats.comparison("kl", "test_loss")
    row = next(r for r in tests.splitlines() if r.startswith("kl "))
    assert row.split()[2:4] == [f"{c.sign_flip_p:.4f}", "MC"]
    flat = " ".join(tests.split())
    assert "Primary: sign-flip p on test_loss" in flat
    assert "(Monte Carlo, 100000 resamples where marked MC)" in flat


def test_metrics_without_a_margin_say_so():
    rng = np.random.default_rng(42)
    finals = {arm: {"auc": rng.uniform(0.7, 0.9, 8)} for arm in ("a", "b")}
    text = stats_table(compare_arms(finals, n_boot=200))
    _, _, tests, verdict, seeds = [r for r in text.splitlines() if r.startswith("b ")]
    assert tests.split()[-3:-1] == ["no", "margin"]
    assert verdict.split()[-5:] == ["none", "n/a", "no", "difference", "shown"]
    assert seeds.endswith("none            n/a")
