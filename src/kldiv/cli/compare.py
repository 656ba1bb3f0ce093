"""`kldiv compare`: several losses on the same seeds, paired statistics, a saved report.

It keeps what trained: an arm whose runs diverged is named on stderr with its diverged seeds, the
seeds where any compared arm diverged are left out of the paired statistics (the table says how
many), an arm that diverged on every seed is left out of them entirely, and the comparison of the
rest is still saved and printed. The exit code is then 1: the comparison asked for was not fully
computed, and scripts must not mistake it for a complete one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from kldiv.arms import OWN_METRICS, SHARED_METRICS, failures
from kldiv.checks import ConfigError
from kldiv.cli import guard, options
from kldiv.cli.run import divergence_line

__all__ = [
    "OWN_METRICS",
    "SHARED_METRICS",
    "PairedOutcome",
    "comparison_pngs",
    "failures",
    "margins",
    "paired_statistics",
    "save_report",
]


def add_parser(sub: Any) -> None:
    from kldiv.losses import loss_names

    comp = sub.add_parser(
        "compare",
        help="run several losses on the same seeds and compare them statistically",
        description="Train every loss on the same seeds (paired: same initial weights and data "
        "order per seed) and report means, intervals, paired tests, P(A>B) and an equivalence "
        "test, as a table, stats.json, figures and a self-contained report.html.",
    )
    comp.add_argument(
        "--losses",
        type=options.parse_losses,
        default="kl,ce",
        help="comma-separated loss names, the first is the baseline (default kl,ce); from: "
        + ", ".join(loss_names()),
    )
    comp.add_argument(
        "--seeds",
        type=options.parse_seeds,
        default=tuple(range(30)),
        help=f"N (seeds 0..N-1), a range A-B, or a list a,b,c (default 30); at most "
        f"{options.MAX_SEEDS:,} seeds",
    )
    add_margin_option(comp)
    options.add_data_options(comp)
    options.add_training_options(comp)
    options.add_output_options(comp)


def save_report(
    out: Any,
    title: str,
    record: dict[str, Any],
    results: dict[str, Any],
    stats: Any,
    figures: dict[str, bytes],
    kind: str = "compare",
    summary: str | None = None,
) -> Any:
    """Write the comparison directory (config, stats.json, per-arm records, figures, report.html
    with `summary` above the statistics) under --out and return its path."""
    from kldiv.records import save_comparison
    from kldiv.report import html_report

    page = html_report(
        title=title,
        command=record["command"],
        config=record,
        stats=stats,
        figures=figures,
        summary=summary,
    )
    return guard.save(
        out,
        save_comparison,
        record,
        results,
        stats=stats.to_dict(),
        figures=figures,
        report_html=page,
        kind=kind,
    )


def add_margin_option(p: argparse.ArgumentParser) -> None:
    """--margin, shared with `kldiv stats`."""
    from kldiv.margins import DEFAULT_MARGINS

    defaults = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_MARGINS.items())
    p.add_argument(
        "--margin",
        default=None,
        help="equivalence margins (TOST): a number for accuracies, or metric=number pairs such "
        f"as 'accuracy=0.01,log_loss=0.02' (a metric name or a name suffix); defaults: {defaults}",
    )


def margins(args: argparse.Namespace, metrics: Any = SHARED_METRICS) -> dict[str, float]:
    """--margin as metric (or suffix) -> margin, {} when not given (the defaults apply); every key
    must name or end one of `metrics`."""
    from kldiv.margins import check_margins, parse_margins

    given = {} if args.margin is None else parse_margins(args.margin)
    check_margins(given, list(metrics))
    return given


@dataclass(frozen=True, eq=False)
class PairedOutcome:
    """The statistics of trained arms (`paired_statistics`), and what they leave out.

    stats: `kldiv.stats.ComparisonStats` over the paired seeds; compared: the arms with a run that
    trained (the first is the baseline); failed: the arms with a diverged run; paired: (seeds,)
    bool, the seeds every compared arm trained; excluded: the other seeds; notes: lines saying
    which arms and seeds are left out and why; finals: compared arm -> metric -> paired values.
    """

    stats: Any
    compared: list[str]
    failed: list[str]
    paired: Any
    excluded: list[int]
    notes: list[str]
    finals: dict[str, dict[str, Any]]


def paired_statistics(
    results: dict[str, Any],
    data: Any,
    margin_of: dict[str, float],
    metrics: tuple[str, ...] = SHARED_METRICS,
    denominators: dict[str, int] | None = None,
) -> PairedOutcome:
    """`kldiv.stats.compare_arms` over the arms of `results` (name -> `TrainResult`, the first the
    baseline) on `metrics` (those present), on the seeds where no arm that trained at all
    diverged, with the stuck and diverged runs and their rules and exact accuracy denominators
    from `data` (`LoadedData`), and any other count metric's denominator in `denominators`.

    Raises:
      guard.RunFailed: every arm diverged on every seed, or no seed trained in every arm.
    """
    import numpy as np

    from kldiv.failures import FAILURE_RULES, chance_accuracy
    from kldiv.stats import compare_arms

    names = list(results)
    failed = [name for name, r in results.items() if not r.healthy.all()]
    compared = [name for name, r in results.items() if r.healthy.any()]
    if not compared:
        raise guard.RunFailed(
            "training diverged in every run of every arm; "
            + "; ".join(f"arm {n}: {divergence_line(r)}" for n, r in results.items())
        )
    # Paired statistics need the same seeds in every arm: those where no compared arm diverged.
    paired = np.logical_and.reduce([results[n].healthy for n in compared])
    if not paired.any():
        raise guard.RunFailed(
            "no seed trained in every arm that trained at all; "
            + "; ".join(f"arm {n}: {divergence_line(results[n])}" for n in failed)
        )
    baseline = compared[0]
    finals = {
        n: {k: results[n].final[k][paired] for k in metrics if k in results[n].final}
        for n in compared
    }
    failed_runs, _ = failures(results, chance_accuracy(data.labels_train), paired)
    n_rows = {"train": data.dataset.x_train.shape[0], "test": data.dataset.x_val.shape[0]}
    stats = compare_arms(
        finals,
        baseline=baseline,
        margins=margin_of,
        seed=0,
        denominators={f"{s}_accuracy": n for s, n in n_rows.items()} | (denominators or {}),
        seeds=results[baseline].seeds[paired],
        failures={n: failed_runs[n] for n in compared},
        failure_rules=FAILURE_RULES,
    )
    excluded = [int(s) for s in results[names[0]].seeds[~paired]]
    notes = _exclusion_notes(names, compared, baseline, len(paired), excluded)
    return PairedOutcome(stats, compared, failed, paired, excluded, notes, finals)


def comparison_pngs(results: dict[str, Any], outcome: PairedOutcome) -> dict[str, bytes]:
    """The comparison's figures as PNG bytes (`kldiv.plot.comparison_figures`), paired seeds."""
    from kldiv.plot import comparison_figures, figure_png

    histories = {
        n: {k: v[outcome.paired] for k, v in results[n].history.items()} for n in outcome.compared
    }
    figures = comparison_figures(histories, outcome.finals, outcome.stats.baseline)
    return {name: figure_png(fig) for name, fig in figures.items()}


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv import experiment as ex
    from kldiv.config import canonical_loss
    from kldiv.records import comparison_record
    from kldiv.report import stats_table, theory_note

    try:
        names = [canonical_loss(n) for n in args.losses.split(",") if n.strip()]
    except ConfigError as err:  # a name in --losses, not --loss
        raise ConfigError("arms", str(err).removeprefix(f"{err.field}: ")) from None
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError("arms", f"expected at least two different losses, got {args.losses!r}")
    exp = options.experiment(args, names[0], args.seeds)
    arms = {name: exp.train.replace(loss=name) for name in names}
    margin_of = margins(args)
    data = ex.load(exp)
    guard.prepare_out(args.out)
    with console.progress(f"training {len(names)} losses x {len(args.seeds)} seeds") as progress:
        results = ex.compare(exp, arms, data=data, on_progress=guard.checking(progress))
    outcome = paired_statistics(results, data, margin_of)
    stats, compared, failed, paired = (
        outcome.stats,
        outcome.compared,
        outcome.failed,
        outcome.paired,
    )
    note = theory_note(stats)
    own = _own_loss_lines({n: results[n].final for n in compared}, paired)
    if "kl" in compared and "ce" in compared:
        own += "\n" + _entropy_line(results, paired, data, exp.train.label_smoothing)
    table = stats_table(stats) + "\n" + own + ("\n\n" + note if note else "")
    if outcome.notes:
        table = "\n".join(outcome.notes) + "\n\n" + table
    figures = {} if args.no_plot else comparison_pngs(results, outcome)
    record = comparison_record(
        exp, guard.command_line(), results, data, losses=names, margins=dict(stats.margins)
    )
    if failed:
        record |= {
            "compared_arms": compared,
            "baseline": stats.baseline,
            "excluded_seeds": outcome.excluded,
        }
    path = save_report(
        args.out,
        f"kldiv compare: {' vs '.join(names)}, {len(exp.seeds)} seeds",
        record,
        results,
        stats,
        figures,
    )
    for name in failed:
        guard.stderr(f"kldiv compare: error: arm {name}: {divergence_line(results[name])}")
    console.result(table)
    console.info(f"comparison saved to {path} (open {path / 'report.html'})")
    return 1 if failed else 0


def _own_loss_lines(finals: dict[str, dict[str, Any]], paired: Any) -> str:
    """Each arm's own training loss, summarized but never tested (units differ between losses)."""
    import numpy as np

    lines = ["Each arm's own loss (its own units, not compared across arms): mean ± std, median"]
    for name, final in finals.items():
        parts = []
        for key in OWN_METRICS:
            v = np.asarray(final[key], np.float64)[paired]
            spread = f" ± {v.std(ddof=1):.4f}" if v.size > 1 else ""
            parts.append(f"{key} {v.mean():.4f}{spread}, median {np.median(v):.4f}")
        lines.append(f"  {name}: " + "; ".join(parts))
    return "\n".join(lines)


def _entropy_line(results: dict[str, Any], paired: Any, data: Any, eps: float) -> str:
    """ce's own training loss minus kl's, per seed, against the mean entropy H(y) of the training
    targets they trained on (KL = CE - H(y): the values differ by H(y), the gradients do not)."""
    import numpy as np

    from kldiv.engine.runner import smooth

    y = smooth(data.dataset.y_train, eps).astype(np.float64)
    entropy = 0.0 - np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0).sum(axis=1).mean()
    gap = (
        np.asarray(results["ce"].final["train_loss"], np.float64)
        - np.asarray(results["kl"].final["train_loss"], np.float64)
    )[paired]
    targets = "one-hot" if entropy == 0 else "smoothed" if eps > 0 else "soft"
    import textwrap

    return textwrap.fill(
        f"ce − kl, own final training loss: {gap.min():.4f} to {gap.max():.4f} nats over "
        f"{gap.size} seeds; the {targets} training targets' mean entropy H(y) = {entropy:.4f} "
        "nats (KL = CE − H(y): same gradient, values apart by H(y))",
        100,
        initial_indent="  ",
        subsequent_indent="    ",
    )


def _exclusion_notes(
    names: list[str], compared: list[str], baseline: str, n_seeds: int, excluded: list[int]
) -> list[str]:
    """Lines saying which arms and seeds the statistics leave out, and why."""
    notes = []
    dropped = [n for n in names if n not in compared]
    if dropped:
        notes.append(
            f"note: arm{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} diverged on every "
            "seed and "
            + ("are" if len(dropped) > 1 else "is")
            + " left out of the statistics"
            + (f"; the baseline is {baseline}" if baseline != names[0] else "")
        )
    if excluded:
        shown = ", ".join(map(str, excluded[:10])) + (" ..." if len(excluded) > 10 else "")
        notes.append(
            f"note: {len(excluded)} of {n_seeds} seeds excluded from the paired statistics "
            f"(an arm diverged on them): {shown}"
        )
    return notes
