"""Text and HTML rendering of comparison statistics; no file I/O.

`stats_table` is the terminal view of a comparison of arms (losses, configurations, ...): the
summaries per arm (with failed runs and the rules that define them), the paired differences, the
tests (the sign-flip permutation test first), the verdicts and how many seeds each margin needs;
`theory_note` puts the KL = CE − H(y) identity next to the numbers when the KL and cross-entropy arms
are both present, and `html_report` is one self-contained page (figures as data: URIs, no external
resources, no scripts). Both views draw on the same `Table`s, so the numbers in the terminal and in
the page are the same strings.
"""

from __future__ import annotations

import base64
import html
import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kldiv.stats import (
    BOOTSTRAP_MIN_N,
    ComparisonStats,
    PairedComparison,
    Summary,
    compare_paired,
    higher_is_better,
    metric_bounds,
    to_jsonable,
)

__all__ = [
    "Table",
    "comparison_tables",
    "html_report",
    "html_table",
    "seeds_table",
    "stats_table",
    "summary_table",
    "text_table",
    "theory_note",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GAP = "  "
_WIDTH = 100
_NUM_CLASS = ' class="num"'


@dataclass(frozen=True)
class Table:
    """A titled table of strings; the first `label_columns` columns are labels (left-aligned), the
    rest values (right-aligned). `notes` are printed under it."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    label_columns: int = 2


def _num(x: float | None, scale: float | None = None) -> str:
    """4 decimals; 3 significant digits in exponent form when `scale` (default |x|) is below 1e-3
    or at least 1e4, so numbers shown together share one form; n/a for None."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    scale = abs(x) if scale is None else scale
    return f"{x:.2e}" if scale < 1e-3 or scale >= 1e4 else f"{x:.4f}"


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def _ci(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "n/a"
    scale = max(abs(interval[0]), abs(interval[1]))
    return f"[{_num(interval[0], scale)}, {_num(interval[1], scale)}]"


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _grouped(items: Sequence[tuple[str, str, str | None]], metrics: Sequence[str]) -> list[str]:
    """Notes with what they apply to, from (group, metric, note) items: "note (kl: all metrics)"."""
    by_note: dict[str, dict[str, list[str]]] = {}
    for group, metric, note in items:
        if note:
            by_note.setdefault(note, {}).setdefault(group, []).append(metric)
    out = []
    for note, groups in by_note.items():
        where = [
            f"{g}: {'all metrics' if len(ms) == len(metrics) else ', '.join(ms)}"
            for g, ms in groups.items()
        ]
        out.append(f"{note} ({'; '.join(where)})")
    return out


def _spread_ci(m: Summary, interval: tuple[float, float] | None) -> str:
    """An interval, or what the data allow instead: one value, all values equal."""
    if m.n == 1:
        return "n = 1"
    if m.std == 0.0 and interval is None:
        return f"all {m.n} equal"
    return _ci(interval)


def _seed_list(seeds: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, seeds[:limit]))
    return shown + (f", … ({len(seeds) - limit} more)" if len(seeds) > limit else "")


def _failures(stats: ComparisonStats) -> tuple[dict[str, str], list[str]]:
    """arm -> the "failed" cell ("11/30 stuck", "0 (+2)"), and the notes: per arm and kind the
    seeds, then each kind's rule. Runs in the statistics count against n_seeds; the others
    (diverged runs, whose values are not finite) are counted as (+k) and named as left out."""
    in_stats = set(stats.seeds)
    cells: dict[str, str] = {}
    lines, kinds = [], []
    for arm in stats.arms:
        parts, left_out = [], 0
        for kind, seeds in stats.failures.get(arm, {}).items():
            if not seeds:
                continue
            if kind not in kinds:
                kinds.append(kind)
            inside = [s for s in seeds if s in in_stats]
            outside = [s for s in seeds if s not in in_stats]
            if inside:
                parts.append(f"{len(inside)}/{stats.n_seeds} {kind}")
                lines.append(
                    f"{arm}: {len(inside)} of {stats.n_seeds} runs {kind} (seeds "
                    f"{_seed_list(inside)}), kept in every statistic"
                )
            if outside:
                left_out += len(outside)
                lines.append(
                    f"{arm}: {len(outside)} more runs {kind} (seeds {_seed_list(outside)}), left "
                    "out of the statistics (no finite values)"
                )
        cells[arm] = (", ".join(parts) or "0") + (f" (+{left_out})" if left_out else "")
    if not lines:
        return {}, []
    rules = [f"Rule, {kind}: {stats.failure_rules[kind]}." for kind in kinds]
    lead = (
        "Failed runs stay in the means, tests and intervals (dropping the runs an arm fails on "
        "would flatter it); the medians show the typical run. (+k): k more failed runs, left out "
        "of the statistics."
    )
    return cells, [lead, *lines, *rules]


def summary_table(stats: ComparisonStats) -> Table:
    """Per arm and metric: mean ± std, median, failed runs (when any are given), t interval and
    bootstrap interval of the mean."""
    pct = _pct(stats.confidence)
    rows, notes, methods = [], [], set()
    clipped, left_out = False, False
    failed, failure_notes = _failures(stats)
    for s in stats.summaries:
        m = s.summary
        std = "" if m.std is None else f" ± {_num(m.std)}"
        boot = _spread_ci(m, m.bootstrap_interval)
        if m.bootstrap_note and m.std:
            boot, left_out = f"n < {BOOTSTRAP_MIN_N}", True
        median = "n/a" if m.median is None else _num(m.median)
        extra = (failed.get(s.arm, "0"),) if failed else ()
        rows.append(
            (
                s.arm,
                s.metric,
                f"{_num(m.mean)}{std}",
                median,
                *extra,
                _spread_ci(m, m.t_interval),
                boot,
            )
        )
        notes.append((s.arm, s.metric, m.note))
        clipped = clipped or m.clipped
        if m.bootstrap_method:
            methods.add(m.bootstrap_method)
    boot_name = "/".join(sorted(methods)) or "n/a"
    seeds = "1 seed" if stats.n_seeds == 1 else f"{stats.n_seeds} seeds"
    footer = [
        f"{seeds}; mean ± std (ddof 1); bootstrap {boot_name}, {stats.n_boot} resamples, "
        f"seed {stats.seed}",
        "The intervals cover seed-to-seed variation (initialisation, data order) on one fixed "
        "test set, not the sampling of the test set.",
    ]
    if methods:
        footer.append(
            f"Bootstrap CI: nominal {pct}, measured coverage of a normal mean about 93% at "
            "n = 20-30 (benchmarks/coverage.py); the t interval covers 95% there."
        )
    if left_out:
        footer.append(
            f"Bootstrap interval left out below n = {BOOTSTRAP_MIN_N} seeds: BCa covers far less "
            f"than {pct} there (measured for a normal mean: about 53% at n = 2, 72% at n = 3, 85% at "
            "n = 5, 90% at n = 10; benchmarks/coverage.py); the t interval is shown instead."
        )
    if clipped:
        footer.append("Accuracy intervals are clipped to [0, 1] (the t interval is not bounded).")
    if stats.denominators:
        exact = ", ".join(f"{m} k/{n}" for m, n in stats.denominators.items())
        footer.append(f"Counts kept exact (no float32 rounding): {exact}.")
    columns = ("arm", "metric", "mean ± std", "median", *(("failed",) if failed else ()))
    return Table(
        title="Final metrics per arm",
        columns=(*columns, f"{pct} t CI", "bootstrap CI"),
        rows=tuple(rows),
        notes=(*footer, *failure_notes, *_grouped(notes, stats.metrics)),
    )


def _pairs(n: int) -> str:
    return "the 1 pair" if n == 1 else f"all {n} pairs"


def _tests_row(c: PairedComparison) -> tuple[str, ...]:
    wilcoxon = _p(c.wilcoxon_p) + (f" ({c.wilcoxon_n})" if c.wilcoxon_p is not None else "")
    monte_carlo = c.sign_flip_method is not None and c.sign_flip_method.startswith("Monte")
    sign_flip = _p(c.sign_flip_p) + (" MC" if monte_carlo else "")
    tost = _p(c.tost_p) if c.margin is not None else "no margin"
    return (sign_flip, _p(c.t_test_p), wilcoxon, f"{c.prob_a_beats_b:.2f}", tost)


def _difference_answer(c: PairedComparison, holm_p: float | None) -> str:
    if c.difference_found is None:
        return "n/a"
    p = c.sign_flip_p if holm_p is None else holm_p
    return f"{'yes' if c.difference_found else 'no'}, p {_p(p)}"


def _margin(margin: float | None) -> str:
    return "none" if margin is None else f"±{margin:g}"


def comparison_tables(stats: ComparisonStats) -> tuple[Table, Table, Table]:
    """Each other arm A against the baseline arm B, paired by seed: the differences, the tests
    (primary: the sign-flip permutation test; the t-test and Wilcoxon secondary), then the
    verdicts (is there a difference; is it within the margin)."""
    pct, b = _pct(stats.confidence), stats.baseline
    alpha = f"{round(1 - stats.confidence, 12):g}"
    tost_pct = _pct(round(1 - 2 * (1 - stats.confidence), 12))
    diffs, tests, verdicts, notes = [], [], [], []
    for ac in stats.comparisons:
        c, d = ac.comparison, ac.comparison.difference
        boot = _spread_ci(d, d.bootstrap_interval)
        if d.bootstrap_note and d.std:
            boot = f"n < {BOOTSTRAP_MIN_N}"
        median = "n/a" if c.median_difference is None else _num(c.median_difference)
        diffs.append(
            (
                ac.arm,
                ac.metric,
                _num(d.mean),
                median,
                _spread_ci(d, d.t_interval),
                boot,
                f"{c.n_identical}/{c.n}",
            )
        )
        primary = ac.metric == stats.primary_metric
        holm_p = stats.primary_p_holm.get(ac.arm) if primary else None
        holm = _p(holm_p) if primary else ""
        tests.append((ac.arm, ac.metric, *_tests_row(c), holm))
        tost_ci = "n/a" if c.tost_interval is None else _ci(c.tost_interval)
        verdicts.append(
            (
                ac.arm,
                ac.metric,
                _difference_answer(c, holm_p),
                tost_ci,
                _margin(c.margin),
                c.margin_result or "n/a",
                c.verdict,
            )
        )
        notes.append((ac.arm, ac.metric, c.note))
    differences = Table(
        title=f"Paired differences A − {b} (same seed)",
        columns=(
            "A",
            "metric",
            "mean diff",
            "median",
            f"{pct} t CI",
            "bootstrap CI",
            "identical",
        ),
        rows=tuple(diffs),
    )
    family = sum(1 for p in stats.primary_p_holm.values() if p is not None)
    methods = sorted({c.comparison.sign_flip_method for c in stats.comparisons} - {None})
    monte_carlo = [m for m in methods if m.startswith("Monte")]
    how = "exact over all 2^n sign patterns of the non-zero differences"
    if monte_carlo:
        how += f" ({', '.join(monte_carlo)} where marked MC)"
    legend = (
        f"Primary: sign-flip p on {stats.primary_metric}, Holm-adjusted over {family} arm(s) "
        "(Holm p); every other p-value is unadjusted.",
        "Sign-flip: two-sided permutation test of the mean difference, each seed's difference as "
        f"likely + as −, no normality assumed; {how}.",
        "t-test (assumes normal differences) and Wilcoxon (signed ranks of the non-zero "
        "differences, pairs used in parentheses, exact with ties): secondary.",
        f"P(A>B): share of these seeds where A beats {b} (higher accuracy, lower loss), ties "
        "count ½; a description of these seeds, no interval.",
        f"TOST: two one-sided t-tests of |E[A − B]| < margin at α = {alpha}.",
    )
    tests_table = Table(
        title=f"Paired tests A vs {b}",
        columns=(
            "A",
            "metric",
            "sign-flip p",
            "t-test p",
            "Wilcoxon p",
            "P(A>B)",
            "TOST p",
            "Holm p",
        ),
        rows=tuple(tests),
        notes=legend,
    )
    verdict_legend = (
        f"Two questions, each at α = {alpha}: is there a difference (sign-flip test; Holm p on "
        f"the primary metric), and is it within the margin ({tost_pct} t interval of A − B, the "
        "one TOST uses: inside ±margin 'within', beyond it 'outside', else 'straddles').",
        "Verdicts: equivalent (within, no difference shown); different, within margin (a real but "
        "small difference); different (beyond the margin); different, margin unclear; inconclusive "
        "(neither question answered); identical (every pair bit-identical); without a margin, "
        "different or no difference shown.",
    )
    verdict_table = Table(
        title=f"Verdicts A vs {b}",
        columns=(
            "A",
            "metric",
            "difference?",
            f"{tost_pct} t CI",
            "margin",
            "vs margin",
            "verdict",
        ),
        rows=tuple(verdicts),
        notes=(*verdict_legend, *_grouped(notes, stats.metrics)),
    )
    return differences, tests_table, verdict_table


def seeds_table(stats: ComparisonStats) -> Table:
    """How many seeds: per comparison the SD of the paired differences, the smallest margin these
    seeds demonstrate, the margin, and the seeds a TOST needs for it at `stats.seeds_power`."""
    alpha = f"{round(1 - stats.confidence, 12):g}"
    tost_pct = _pct(round(1 - 2 * (1 - stats.confidence), 12))
    power = _pct(stats.seeds_power)
    rows = []
    for ac in stats.comparisons:
        c = ac.comparison
        sd = c.difference_sd
        needed = "n/a" if c.seeds_needed is None else f"{c.seeds_needed:,}"
        rows.append(
            (
                ac.arm,
                ac.metric,
                str(c.n),
                "n/a" if sd is None else _num(sd),
                "n/a" if c.smallest_margin is None else f"±{_num(c.smallest_margin)}",
                _margin(c.margin),
                needed,
            )
        )
    notes = (
        "SD: standard deviation (ddof 1) of the paired differences A − B.",
        f"Shown margin: the smallest margin these seeds show equivalence for (TOST at α = {alpha}: "
        f"the larger end, in absolute value, of the {tost_pct} t interval).",
        f"Seeds needed: the smallest number of seeds whose TOST at α = {alpha} has {power} power "
        "to show |E[A − B]| < margin when the true difference is 0 and the SD is the one "
        "measured here (exact power of the t-based TOST for normal differences, "
        "kldiv.power.seeds_for_power); an estimate, as good as the SD. n/a: no margin, no spread "
        "to estimate from, or over 10^9 seeds.",
    )
    return Table(
        title=f"How many seeds: A vs {stats.baseline}",
        columns=("A", "metric", "n", "SD", "shown margin", "margin", f"seeds for {power}"),
        rows=tuple(rows),
        notes=notes,
    )


def _tables(stats: ComparisonStats) -> list[Table]:
    if not stats.comparisons:
        return [summary_table(stats)]
    return [summary_table(stats), *comparison_tables(stats), seeds_table(stats)]


def text_table(table: Table) -> str:
    """The table as aligned plain text: title, header, rule, rows, then notes."""
    widths = [
        max(len(r[i]) for r in (table.columns, *table.rows)) for i in range(len(table.columns))
    ]

    def line(cells: Sequence[str]) -> str:
        return _GAP.join(
            c.ljust(w) if i < table.label_columns else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = _GAP.join("-" * w for w in widths)
    body = [line(r) for r in table.rows]
    notes = [
        textwrap.fill(n, _WIDTH, initial_indent="  ", subsequent_indent="    ") for n in table.notes
    ]
    return "\n".join([table.title, line(table.columns), rule, *body, *notes])


def stats_table(stats: ComparisonStats) -> str:
    """The terminal report: per-arm summaries, the paired differences, tests and verdicts, and how
    many seeds.

    Fits 100 columns for arm and metric names of ordinary length (the tutorial's).
    """
    return "\n\n".join(text_table(t) for t in _tables(stats)) + "\n"


_THEORY = (
    "Theory: for any fixed targets y (one-hot or soft), KL(y‖q) = Σ y·log(y/q) = CE(y, q) − H(y), "
    "and the entropy H(y) does not depend on the logits: KL divergence and cross-entropy have the "
    "same gradient for any targets, and their values differ by H(y), which is 0 on one-hot "
    "targets. Trained from the same seed (same initialisation, same data order), their runs "
    "should agree up to floating-point rounding."
)
_WHY_DIFFERENT = (
    "Why runs of the same gradient can still differ: a KL that is only nearly KL, like Keras' "
    "(keras_kl), which clips the predictions q to [1e-7, 1]: wherever a predicted probability "
    "falls below 1e-7 the clipped loss passes no gradient to it, and that is where its stuck runs "
    "come from (it clips the targets too, which only shifts the value); floating-point rounding "
    "that differs between Σ y·(log y − log q) and −Σ y·log q, which many SGD steps can amplify "
    "from one ulp to a different prediction; or non-deterministic parallel reductions (GPUs), "
    "under which even a run and its repeat differ."
)


def _direct_pairs(stats: ComparisonStats, kl: str, ce: str) -> list[tuple[str, PairedComparison]]:
    """kl against ce on every metric, from the per-seed values the stats keep (when neither is
    the baseline), with the same margins, denominators and options."""
    out = []
    for metric in stats.metrics:
        den = stats.denominators.get(metric)
        smallest = min(min(stats.values[kl][metric]), min(stats.values[ce][metric]))
        out.append(
            (
                metric,
                compare_paired(
                    stats.values[kl][metric],
                    stats.values[ce][metric],
                    margin=stats.margins[metric],
                    higher_is_better=higher_is_better(metric),
                    confidence=stats.confidence,
                    n_boot=stats.n_boot,
                    seed=stats.seed,
                    denominator=den,
                    bounds=metric_bounds(metric, den, smallest),
                ),
            )
        )
    return out


def theory_note(stats: ComparisonStats, *, kl: str = "kl", ce: str = "ce") -> str:
    """The identity KL = CE − H(y), and whether the runs of arms `kl` and `ce` agreed.

    Args:
      stats: the comparison.
      kl, ce: the names of the arms trained with KL divergence and with cross-entropy.

    Returns:
      "" when `kl` and `ce` are not both among `stats.arms`. Otherwise paragraphs wrapped at 100
      columns, separated by blank lines, with a final newline: the theory; then "identical in all N
      pairs" with the bound on the share of seeds that could still differ, or the identical counts
      per metric with the verdicts and the reasons runs can differ. When neither arm is the
      baseline, kl and ce are compared directly from the per-seed values in `stats.values`
      (paired by seed, unadjusted).
    """
    if kl not in stats.arms or ce not in stats.arms:
        return ""
    pairs = [
        (ac.metric, ac.comparison) for ac in stats.comparisons if {ac.arm, ac.baseline} == {kl, ce}
    ]
    n = stats.n_seeds
    lead = ""
    if not pairs and kl in stats.values and ce in stats.values:
        pairs = _direct_pairs(stats, kl, ce)
        lead = (
            f"{kl} vs {ce}, compared directly (paired by seed; the baseline of the tables is "
            f"{stats.baseline}; p-values unadjusted): "
        )
    if not pairs:
        outcome = [
            f"{kl} and {ce} were each compared with the baseline {stats.baseline}, not with each "
            "other; make one of them the baseline to compare them directly."
        ]
    elif all(c.all_identical for _, c in pairs):
        bound = pairs[0][1].identical_share_bound
        pct = _pct(stats.confidence)
        limit = (
            ""
            if bound is None
            else f" With {n} identical pairs, at {pct} confidence at most {100 * bound:.1f}% of "
            "seeds would give different runs."
        )
        outcome = [
            f"{lead}They did: {kl} and {ce} were identical in {_pairs(n)}, for every metric.{limit}"
        ]
    else:
        counts = ", ".join(f"{metric} {c.n_identical} of {n}" for metric, c in pairs)
        verdicts = ", ".join(f"{metric} {c.verdict} ({_margin(c.margin)})" for metric, c in pairs)
        outcome = [
            f"{lead}They did not all agree. Identical pairs: {counts}. "
            f"Verdicts at the stated margins: {verdicts}.",
            _WHY_DIFFERENT,
        ]
    return "\n\n".join(textwrap.fill(p, _WIDTH) for p in (_THEORY, *outcome)) + "\n"


def html_table(table: Table) -> str:
    """The table as an HTML <table> (escaped), with its notes in a list below."""
    e = html.escape

    def cells(tag: str, row: Sequence[str]) -> str:
        return "".join(
            f"<{tag}{'' if i < table.label_columns else _NUM_CLASS}>{e(c)}</{tag}>"
            for i, c in enumerate(row)
        )

    head = f"<thead><tr>{cells('th', table.columns)}</tr></thead>"
    body = "\n".join(f"<tr>{cells('td', r)}</tr>" for r in table.rows)
    notes = "".join(f"<li>{e(n)}</li>" for n in table.notes)
    return (
        f"<table>\n<caption>{e(table.title)}</caption>\n{head}\n<tbody>\n{body}\n</tbody>\n</table>\n"
        + (f'<ul class="notes">{notes}</ul>\n' if notes else "")
    )


_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1d1d1f; background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.6rem; border-bottom: 1px solid #ddd; }
pre { background: #f5f5f7; padding: 0.75rem; overflow-x: auto; font-size: 13px; }
table { border-collapse: collapse; margin: 1rem 0 0.3rem; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { padding: 0.2rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: left; }
th { border-bottom: 2px solid #999; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
ul.notes { margin: 0 0 1rem; padding-left: 1.2rem; color: #555; font-size: 13px; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
"""


def _figure(name: str, png: bytes) -> str:
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError(f"figures[{name!r}]: expected PNG bytes, got {png[:8]!r}...")
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    e = html.escape(name)
    return f'<figure><img src="{uri}" alt="{e}"><figcaption>{e}</figcaption></figure>'


def html_report(
    *,
    title: str,
    command: str,
    config: Mapping[str, Any],
    stats: ComparisonStats | None = None,
    figures: Mapping[str, bytes] | None = None,
    summary: str | None = None,
    tables: Sequence[Table] = (),
) -> str:
    """One self-contained HTML5 page: title, command, summary, statistics, theory note, figures,
    config.

    Args:
      title: page title and heading.
      command: the exact command line that produced the run.
      config: the resolved configuration, shown as JSON (via `kldiv.stats.to_jsonable`).
      stats: comparison statistics (their tables, and `theory_note` where it applies); None for a
        single run.
      figures: caption -> PNG bytes, embedded as data: URIs in this order.
      summary: text shown before the statistics, paragraphs separated by blank lines (e.g. a
        verdict in words); None for none.
      tables: more results (e.g. per seed), shown after the statistics.

    Returns:
      The page; every text is escaped with `html.escape`, and nothing is loaded from elsewhere.

    Raises:
      ValueError: a figure is not PNG bytes.
      TypeError: the config holds a value JSON cannot represent.
    """
    e = html.escape
    parts = [f"<h1>{e(title)}</h1>", "<h2>Command</h2>", f"<pre><code>{e(command)}</code></pre>"]
    if summary:
        paragraphs = summary.strip().split("\n\n")
        parts += ["<h2>Summary</h2>", *(f"<p>{e(p)}</p>" for p in paragraphs)]
    if stats is not None:
        parts += ["<h2>Results</h2>", *(html_table(t) for t in _tables(stats))]
        note = theory_note(stats)
        if note:
            paragraphs = note.strip().split("\n\n")
            parts += ["<h2>Theory</h2>", *(f"<p>{e(p)}</p>" for p in paragraphs)]
    if tables:
        parts += ["<h2>Per seed</h2>", *(html_table(t) for t in tables)]
    if figures:
        parts += ["<h2>Figures</h2>", *(_figure(name, png) for name, png in figures.items())]
    config_json = json.dumps(to_jsonable(config), indent=2)
    parts += ["<h2>Configuration</h2>", f"<pre>{e(config_json)}</pre>"]
    body = "\n".join(parts)
    # The empty data: icon stops the browser asking the file system for /favicon.ico.
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
