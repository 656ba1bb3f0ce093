"""The sweep plan: grid parsing, configurations, programs and tasks (each pair exactly once)."""

import itertools

import pytest

from kldiv.checks import ConfigError
from kldiv.config import TrainConfig
from kldiv.optimizers import SGD, Adam
from kldiv.sweep.plan import SweepPlan, parse_grid, parse_grid_flag, tasks

ISSUE_GRID = [
    ("loss", ["kl", "ce"]),
    ("learning_rate", ["0.001", "0.01", "0.1"]),
    ("optimizer", ["sgd", "adam"]),
]


def test_the_issue_grid_has_12_configurations_named_by_their_values_in_order():
    plan = SweepPlan(parse_grid(ISSUE_GRID), seeds=tuple(range(5)))
    names = [c.name for c in plan.configurations]
    expected = [
        f"loss={loss},learning_rate={lr},optimizer={opt}"
        for loss, lr, opt in itertools.product(
            ["kl", "ce"], ["0.001", "0.01", "0.1"], ["sgd", "adam"]
        )
    ]
    assert names == expected
    first = plan.configurations[0].train
    assert first.loss == "kl" and first.optimizer == SGD(learning_rate=0.001)
    assert plan.configurations[1].train.optimizer == Adam(learning_rate=0.001)


def test_numeric_hyperparameters_share_a_program_and_structural_choices_do_not():
    plan = SweepPlan(parse_grid(ISSUE_GRID), seeds=tuple(range(5)))
    programs = {c.program for c in plan.configurations}
    assert len(programs) == 4  # loss x optimizer
    for c in plan.configurations:
        assert c.program.optimizer == type(c.train.optimizer)()


def test_tasks_cover_every_pair_exactly_once_and_skip_what_is_done():
    plan = SweepPlan(parse_grid(ISSUE_GRID), seeds=tuple(range(7)), chunk=3)
    every = {(c.name, s) for c in plan.configurations for s in plan.seeds}

    def pairs(ts):
        out = [(name, s) for t in ts for name, seeds in t.pieces for s in seeds]
        assert len(out) == len(set(out))
        return set(out)

    all_tasks = tasks(plan)
    assert pairs(all_tasks) == every
    assert len(all_tasks) == 4 * 3  # programs x seed ranges (3 + 3 + 1)
    for t in all_tasks:  # one program per task
        assert {
            plan_c.program for plan_c in plan.configurations if plan_c.name in dict(t.pieces)
        } == {t.program}
    done = set(sorted(every)[::3])
    assert pairs(tasks(plan, done)) == every - done
    assert tasks(plan, every) == []


def test_flag_defaults_apply_to_the_optimizers_that_have_them_and_the_grid_wins():
    grid = parse_grid([("optimizer", ["sgd", "adam"]), ("loss", ["kl"])])
    plan = SweepPlan(grid, defaults={"learning_rate": 0.05, "momentum": 0.5}, seeds=(0,))
    sgd, adam = (c.train.optimizer for c in plan.configurations)
    assert sgd == SGD(learning_rate=0.05, momentum=0.5)
    assert adam == Adam(learning_rate=0.05)
    grid = parse_grid([("learning_rate", ["0.2"])])
    plan = SweepPlan(grid, defaults={"learning_rate": 0.05}, seeds=(0,))
    assert plan.configurations[0].train.optimizer.learning_rate == 0.2


def test_plan_round_trips_through_its_dict():
    grid = parse_grid([*ISSUE_GRID, ("hidden", ["50", "64/32"]), ("shuffle", ["true", "false"])])
    plan = SweepPlan(grid, base=TrainConfig(epochs=3), seeds=(3, 1, 2), chunk=2)
    again = SweepPlan.from_dict(plan.to_dict())
    assert again == plan
    assert [c.train for c in again.configurations] == [c.train for c in plan.configurations]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("nonsense", ["1"])], "grid: expected names among"),
        ([("loss", ["kl", "nope"])], "grid: loss=nope:"),
        ([("learning_rate", ["fast"])], "grid: learning_rate=fast: expected a number"),
        (
            [("learning_rate", ["-1"])],
            "grid: learning_rate=-1.0: learning_rate: expected a number in (0, inf)",
        ),
        ([("epochs", ["1.5"])], "grid: epochs=1.5: expected an integer"),
        ([("hidden", ["0"])], "grid: hidden=0: expected layer widths"),
        (
            [("loss", ["kl", "kullback_leibler_divergence"])],
            "expected distinct values, got kl twice",
        ),
        ([("loss", ["kl"]), ("loss", ["ce"])], "grid: loss: expected once, given twice"),
        (
            [("momentum", ["0.5"]), ("optimizer", ["sgd", "adam"])],
            "momentum: not a hyperparameter of adam",
        ),
    ],
)
def test_bad_grids_name_the_entry(entries, message):
    with pytest.raises(ConfigError) as err:
        SweepPlan(parse_grid(entries), seeds=(0,))
    assert message in str(err.value)


def test_grid_flag_parsing():
    assert parse_grid_flag("loss=kl,ce") == ("loss", ["kl", "ce"])
    for bad in ("loss", "loss=", "=kl", "loss=kl,,ce"):
        with pytest.raises(ConfigError):
            parse_grid_flag(bad)


def test_a_failed_task_is_described_by_its_configurations_and_seeds():
    from kldiv.sweep.backends import describe
    from kldiv.sweep.task import payload

    plan = SweepPlan(parse_grid(ISSUE_GRID[:2]), seeds=(0, 1, 2, 3, 7), chunk=3)
    first, *_, last = [payload(t, plan) for t in tasks(plan)]
    names = [p["config"] for p in first["pieces"]]
    assert len(names) == 3  # the three learning rates of loss=kl share a program
    assert describe(first) == f"3 configurations ({names[0]}, ...): seeds 0-2"
    assert describe(last) == "3 configurations (loss=ce,learning_rate=0.001, ...): seeds 3, 7"
    done = {(c.name, s) for c in plan.configurations for s in plan.seeds}
    done -= {("loss=ce,learning_rate=0.1", 3), ("loss=ce,learning_rate=0.1", 7)}
    (only,) = [payload(t, plan) for t in tasks(plan, done)]
    assert describe(only) == "loss=ce,learning_rate=0.1: seeds 3, 7"
