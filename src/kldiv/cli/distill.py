"""`kldiv distill`: a student MLP trained on a saved teacher's softened predictions.

One seed: the distilled student, its accuracy and its fidelity to the teacher, saved as a run
directory (`kldiv predict` reads it). Several seeds: the student is also trained from scratch on
the same seeds (same initial weights, same data order, the hard-label term alone), and the two
arms are compared with `kldiv compare`'s statistics, report and figures, plus fidelity to the
teacher, with a verdict on whether distillation helped and by how much.
"""

from __future__ import annotations

import argparse
from typing import Any

from kldiv.cli import guard, options
from kldiv.cli.compare import add_margin_option, comparison_pngs, margins, paired_statistics
from kldiv.cli.run import divergence_line, stuck_line


def add_parser(sub: Any) -> None:
    from kldiv.config import Distillation
    from kldiv.losses import DISTILLATION_DIRECTIONS

    d = Distillation()
    p = sub.add_parser(
        "distill",
        help="train a small student on a saved teacher's predictions, against training from "
        "scratch",
        description="Train a student MLP on the softened predictions of a teacher (a run "
        "directory of kldiv run; several seeds are an ensemble). Per training row the loss is "
        "W * T^2 * D(teacher_T, student_T) + (1 - W) * h * CE(label, student), W = "
        "--soft-weight, T = --temperature, D = --direction, h the row's label weight (0 for the "
        "rows --label-frac leaves unlabelled, so the hard term is the mean over the labelled "
        "rows). With several seeds the same student is also trained from scratch (same seeds, "
        "initial weights and data order; the hard term alone) and compared: accuracy, log loss, "
        "calibration and fidelity to the teacher, with paired tests and a verdict.",
    )
    p.add_argument(
        "--teacher",
        required=True,
        help="the teacher: a run directory written by kldiv run, on the same features and "
        "classes as --data",
    )
    options.add_seed_options(
        p,
        "one student: training seed (default 0), in [0, 2**32); no scratch arm",
        "distilled and from scratch on each seed, compared",
    )
    g = p.add_argument_group("distillation")
    g.add_argument(
        "--temperature",
        type=options.parse_float,
        default=d.temperature,
        help=f"softmax temperature T > 0 of teacher and student in the soft term, which is "
        f"scaled by T^2 ({d.temperature:g})",
    )
    g.add_argument(
        "--soft-weight",
        type=options.parse_float,
        default=d.soft_weight,
        help="weight W in [0, 1] of the SOFT (teacher) term; 1 - W weighs the hard-label "
        f"cross-entropy ({d.soft_weight:g})",
    )
    g.add_argument(
        "--direction",
        choices=DISTILLATION_DIRECTIONS,
        default=d.direction,
        help="the soft term's divergence: forward KL(teacher || student) (Hinton), reverse "
        "KL(student || teacher), or jsd, GKD's generalized Jensen-Shannon divergence with --beta "
        f"({d.direction})",
    )
    g.add_argument(
        "--beta",
        type=options.parse_float,
        default=None,
        help="with --direction jsd only: the teacher's weight in [0, 1] in the mixture, "
        "normalized so that 0 is forward and 1 reverse KL (0.5)",
    )
    g.add_argument(
        "--label-frac",
        type=options.parse_float,
        default=1.0,
        help="share F in (0, 1] of the training rows whose label the student sees, a stratified "
        "draw from --data-seed (the teacher's soft targets are used on every row) (1)",
    )
    add_margin_option(p)
    options.add_data_options(p)
    options.add_training_options(p, defaults={"hidden": (16,)}, label_smoothing=False)
    options.add_output_options(p)


def _experiment(args: argparse.Namespace) -> Any:
    from kldiv.config import Distillation, TrainConfig
    from kldiv.distill import DistillExperiment

    seeds = options.seeds_of(args)
    beta = 0.5 if args.beta is None and args.direction == "jsd" else args.beta
    distillation = Distillation(
        temperature=args.temperature,
        soft_weight=args.soft_weight,
        direction=args.direction,
        beta=beta,
    )
    train = TrainConfig(
        loss="ce",
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=options.optimizer(args),
        distillation=distillation,
    )
    return DistillExperiment(
        teacher=args.teacher,
        data=options.data_config(args),
        train=train,
        seeds=seeds,
        label_frac=args.label_frac,
    )


def header_lines(exp: Any, data: Any) -> list[str]:
    """What was distilled: the teacher, the student's loss, the labels."""
    from kldiv.engine.run import Run

    n_seeds = len(data.teacher_seeds)
    kind = "1 seed" if n_seeds == 1 else f"ensemble of {n_seeds} seeds"
    sizes = "-".join(map(str, Run.for_data(exp.train, data.loaded.dataset).model.sizes))
    n_labelled, n_rows = int(data.labelled.sum()), data.labelled.size
    labels = (
        f"all {n_rows} training rows"
        if n_labelled == n_rows
        else f"{n_labelled} of {n_rows} training rows (--label-frac {exp.label_frac:g}, "
        f"stratified by class, data seed {exp.data.seed}); the teacher's soft targets on all"
    )
    lines = [
        f"Teacher: {exp.teacher} ({kind}), test accuracy {data.teacher_accuracy:.4f}",
        f"Student: {sizes} MLP; loss per row: {exp.train.distillation.formula}",
        f"Labels: {labels}",
    ]
    if len(exp.seeds) > 1:
        lines.append(
            "Scratch: the same student, seeds, initial weights and data order on the hard term "
            "alone (h · CE(y, q): cross-entropy averaged over the labelled rows)"
        )
    return lines


def verdict_lines(stats: Any) -> list[str]:
    """Whether distillation helped (the paired test on test accuracy) and by how much, and how
    the two arms' fidelity to the teacher compares; each a paragraph wrapped at 100 columns."""
    import textwrap

    import numpy as np

    c = stats.comparison("distilled", "test_accuracy")
    a = np.asarray(stats.values["distilled"]["test_accuracy"])
    b = np.asarray(stats.values["scratch"]["test_accuracy"])
    n, d = c.n, c.difference
    counts = (
        f"better on {int((a > b).sum())}, worse on {int((a < b).sum())}, equal on "
        f"{int((a == b).sum())} of {n} seeds"
    )
    if c.difference_found is None:
        answer = f"no test ({c.note})"
    elif c.difference_found:
        answer = "distillation helped" if d.mean > 0 else "distillation hurt"
    else:
        answer = "no difference shown"
    interval = ""
    if d.t_interval is not None:
        low, high = d.t_interval
        interval = f" (95% t interval {100 * low:+.2f} to {100 * high:+.2f})"
    holm = stats.primary_p_holm.get("distilled")
    p = "" if holm is None else f"; {c.test_method}: p = {holm:.2g}"
    margin = "" if c.margin is None else f" at the margin ±{c.margin:g}"
    lines = [
        f"Distilled vs scratch, test accuracy: {100 * d.mean:+.2f} percentage points{interval}, "
        f"{counts}{p}. Verdict: {answer} (the comparison's verdict{margin}: {c.verdict})."
    ]
    parts = []
    for metric, what, fmt in (
        ("test_teacher_agreement", "agreement with the teacher's class", "{:.4f}"),
        ("test_teacher_kl", "KL(teacher ‖ student), nats", "{:.4f}"),
    ):
        s_mean = stats.summary("scratch", metric).mean
        d_mean = stats.summary("distilled", metric).mean
        verdict = stats.comparison("distilled", metric).verdict
        parts.append(
            f"{what}: scratch {fmt.format(s_mean)}, distilled {fmt.format(d_mean)} ({verdict})"
        )
    lines.append("Fidelity on the test rows (means over seeds): " + "; ".join(parts) + ".")
    return [textwrap.fill(line, 100) for line in lines]


def command(args: argparse.Namespace, console: Any) -> int:
    from kldiv.cli.compare import SHARED_METRICS
    from kldiv.distill import FIDELITY_METRICS, distill, load_teacher, prepare, split_mismatch
    from kldiv.engine.runner import check

    exp = _experiment(args)
    margin_of = margins(args, (*SHARED_METRICS, *FIDELITY_METRICS))
    teacher = load_teacher(exp.teacher)
    data = prepare(exp, teacher)
    several = len(exp.seeds) > 1
    arms = exp.arms if several else {"distilled": exp.train}
    for config in arms.values():  # refused before --out is touched
        check(config, data.loaded.dataset, exp.seeds)
    mismatch = split_mismatch(exp.teacher, exp.data)
    guard.prepare_out(args.out)
    if mismatch:
        guard.stderr(f"kldiv distill: warning: {mismatch}")
    what = f"{len(arms)} arms x {len(exp.seeds)} seeds" if several else "1 student"
    with console.progress(f"distilling: {what}") as progress:
        results = distill(
            exp,
            data,
            scratch=several,
            epoch_chunk=None if several else 10,
            on_progress=guard.checking(progress),
        )
    if several:
        return _comparison(args, console, exp, data, results, margin_of)
    return _single(args, console, exp, data, results["distilled"])


def _record(exp: Any, data: Any) -> dict[str, Any]:
    from kldiv.distill import arms_record

    return {
        "teacher": exp.teacher,
        "label_frac": exp.label_frac,
        "distillation": data.record(),
        "arms": arms_record(exp),
    }


def _single(args: argparse.Namespace, console: Any, exp: Any, data: Any, result: Any) -> int:
    from kldiv.cli.run import history_png, stuck_flags
    from kldiv.records import save_run

    if not result.healthy.any():
        raise guard.RunFailed(
            f"training diverged: non-finite loss or weights at epoch {int(result.diverged[0])} "
            f"for seed {exp.seeds[0]}; try a smaller learning rate"
        )
    d = exp.train.distillation
    what = f"distilled student (T = {d.temperature:g}, soft weight {d.soft_weight:g})"
    png = history_png(result, what) if not args.no_plot else None
    record = _record(exp, data)
    del record["arms"]["scratch"]
    path = guard.save(
        args.out,
        save_run,
        exp.experiment,
        result,
        data=data.loaded,
        command=guard.command_line(),
        figure_png=png,
        extra=record,
    )
    stuck = stuck_flags(result, data.loaded)
    if stuck.any():
        guard.stderr(f"kldiv distill: warning: {stuck_line(result, stuck, data.loaded)}")
    final = result.final
    for line in header_lines(exp, data):
        console.info(line)
    console.result(
        f"Train: {final['train_accuracy'][0]:.3f}, Test: {final['test_accuracy'][0]:.3f}"
    )
    console.result(
        f"Fidelity on the test rows: agreement with the teacher "
        f"{final['test_teacher_agreement'][0]:.4f}, KL(teacher ‖ student) "
        f"{final['test_teacher_kl'][0]:.4f} nats (T = 1)"
    )
    console.info(f"run saved to {path}")
    return 1 if stuck.all() else 0


def _comparison(
    args: argparse.Namespace,
    console: Any,
    exp: Any,
    data: Any,
    results: dict[str, Any],
    margin_of: dict[str, float],
) -> int:
    from kldiv.cli.compare import SHARED_METRICS, save_report
    from kldiv.distill import FIDELITY_METRICS
    from kldiv.margins import DEFAULT_MARGINS
    from kldiv.records import comparison_record
    from kldiv.report import stats_table

    n_test = data.loaded.dataset.x_val.shape[0]
    # Agreement with the teacher is a share of the test rows, like accuracy: the same margin.
    agreement = margin_of.get("accuracy", DEFAULT_MARGINS["accuracy"])
    outcome = paired_statistics(
        results,
        data.loaded,
        {"teacher_agreement": agreement} | margin_of,
        metrics=(*SHARED_METRICS, *FIDELITY_METRICS),
        denominators={"test_teacher_agreement": n_test},
    )
    stats = outcome.stats
    header = header_lines(exp, data)
    complete = stats.arms == ("scratch", "distilled")
    verdict = verdict_lines(stats) if complete else []
    table = "\n".join(header) + "\n\n"
    if outcome.notes:
        table += "\n".join(outcome.notes) + "\n\n"
    table += stats_table(stats) + ("\n" + "\n".join(verdict) if verdict else "")
    figures = {} if args.no_plot else comparison_pngs(results, outcome)
    record = comparison_record(
        exp.experiment,
        guard.command_line(),
        results,
        data.loaded,
        **_record(exp, data),
        margins=dict(stats.margins),
    )
    if outcome.failed:
        record |= {
            "compared_arms": outcome.compared,
            "baseline": stats.baseline,
            "excluded_seeds": outcome.excluded,
        }
    title = f"kldiv distill: distilled vs scratch, {len(exp.seeds)} seeds"
    path = save_report(
        args.out,
        title,
        record,
        results,
        stats,
        figures,
        kind="distill",
        summary="\n\n".join(["\n".join(header), *verdict]),
    )
    for name in outcome.failed:
        guard.stderr(f"kldiv distill: error: arm {name}: {divergence_line(results[name])}")
    console.result(table)
    console.info(f"comparison saved to {path} (open {path / 'report.html'})")
    return 1 if outcome.failed else 0
