"""`kldiv stats FILE.csv`: the comparison's statistics, tables, figures and report for per-seed
results produced anywhere (columns `arm`, `seed` and one column per metric; see
`kldiv.results_table`)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from kldiv.checks import ConfigError
from kldiv.cli import guard, options
from kldiv.cli.compare import add_margin_option, margins, save_report


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "stats",
        help="paired multi-seed statistics for per-seed results from anywhere (a CSV)",
        description="Read a CSV of per-seed results (columns arm, seed and one per metric; "
        "metrics named ...loss, ...error, ...brier, ...ece or ...kl are lower-is-better, others "
        "higher) and report what kldiv compare reports: means, medians, intervals, the paired "
        "sign-flip test (Holm-adjusted on the primary metric), t and Wilcoxon tests, "
        "equivalence within a margin and the seeds needed; as tables, stats.json, figures and "
        "report.html.",
    )
    p.add_argument("results", metavar="FILE.csv", help="per-seed results: arm, seed, metrics...")
    p.add_argument(
        "--baseline", default=None, help="the arm the others are compared with (default: first)"
    )
    p.add_argument(
        "--primary",
        default=None,
        help="the primary metric, whose sign-flip p-values are Holm-adjusted (default: "
        "test_accuracy if present, else the first metric column)",
    )
    add_margin_option(p)
    options.add_output_options(p)


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv.report import stats_table
    from kldiv.results_table import read_results_csv
    from kldiv.stats import compare_arms

    try:
        finals, seeds = read_results_csv(args.results)
    except ConfigError as err:  # name the file the user gave, not the argument's placeholder
        message = str(err).removeprefix(f"{err.field}: ").removeprefix(f"{args.results}: ")
        raise options.UsageError(f"kldiv stats: error: {args.results}: {message}") from None
    if args.baseline is not None and args.baseline not in finals:
        raise ConfigError(
            "baseline", f"expected one of the arms {list(finals)}, got {args.baseline!r}"
        )
    metrics = list(next(iter(finals.values())))
    margin_of = margins(args, metrics)
    if args.primary is not None and args.primary not in metrics:
        raise ConfigError("primary", f"expected one of the metrics {metrics}, got {args.primary!r}")
    guard.prepare_out(args.out)
    stats = compare_arms(
        finals,
        baseline=args.baseline,
        margins=margin_of,
        seed=0,
        seeds=seeds,
        primary_metric=args.primary,
    )
    table = stats_table(stats)
    figures: dict[str, bytes] = {}
    if not args.no_plot:
        from kldiv.plot import comparison_figures, figure_png

        figures = {
            name: figure_png(fig)
            for name, fig in comparison_figures({}, finals, stats.baseline).items()
        }
    content = Path(args.results).read_bytes()
    record = {
        "command": guard.command_line(),
        "results": {
            "path": args.results,
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        },
        "arms": list(finals),
        "baseline": stats.baseline,
        "seeds": [int(s) for s in seeds],
        "margins": dict(stats.margins),
    }
    title = f"kldiv stats: {' vs '.join(finals)}, {len(seeds)} seeds"
    path = save_report(args.out, title, record, {}, stats, figures, kind="stats")
    console.result(table)
    console.info(f"statistics saved to {path} (open {path / 'report.html'})")
    return 0
