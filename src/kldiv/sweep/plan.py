"""The plan of a sweep: a grid of training choices, its configurations, and the tasks that train them.

A grid maps a name to the values it takes. Names are `TrainConfig` fields that change code or
shapes (loss, hidden, activation, initialisers, epochs, batch_size, shuffle, label_smoothing,
optimizer) and the optimizers' numeric hyperparameters (learning_rate, momentum, b1, ...).
Every combination is one configuration, named by its grid values in grid order
(`loss=kl,learning_rate=0.01,optimizer=sgd`).

Configurations that differ only in optimizer numbers share one compiled program: their numbers
ride along as per-run traced values (`kldiv.engine.train(..., hyperparameters=...)`). A task is
one train call: one program, a range of the sweep's seeds, and every configuration of that
program on the seeds of the range it still misses. A seed's result does not depend on the runs it
is trained with (`kldiv.engine.runner`), so a task's composition never changes a number.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kldiv.checks import ConfigError
from kldiv.config import TrainConfig, canonical_loss, to_dict
from kldiv.data import DataConfig
from kldiv.optimizers import OPTIMIZERS

# Grid names that are TrainConfig fields (each changes code or shapes), with their value kind.
STRUCTURAL = {
    "loss": "loss",
    "hidden": "hidden",
    "activation": "str",
    "hidden_init": "str",
    "output_init": "str",
    "epochs": "int",
    "batch_size": "int",
    "shuffle": "bool",
    "label_smoothing": "float",
    "optimizer": "optimizer",
}
# The optimizers' numeric hyperparameters (traced per run), in the order first declared.
HYPERPARAMETERS = tuple(dict.fromkeys(h for o in OPTIMIZERS.values() for h in o().hyperparameters))
GRID_NAMES = (*STRUCTURAL, *HYPERPARAMETERS)
DEFAULT_CHUNK = 25  # seeds per task (times the configurations sharing its program)

Grid = tuple[tuple[str, tuple[Any, ...]], ...]


def _grid_error(name: str, raw: Any, message: str) -> ConfigError:
    return ConfigError("grid", f"{name}={raw}: {message}")


def parse_value(name: str, raw: Any) -> Any:
    """One grid value of `name` from a command-line string or a TOML value, typed.

    hidden takes a width (50), widths separated by '/' ("64/32", since ',' separates values) or a
    TOML list ([64, 32]). Raises ConfigError("grid", ...) naming the name and the value.
    """
    kind = STRUCTURAL.get(name, "float")
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if kind == "loss":
            return canonical_loss(str(text))
        if kind == "str":
            if not isinstance(text, str) or not text:
                raise ValueError("expected a name")
            return text
        if kind == "optimizer":
            if text not in OPTIMIZERS:
                raise ValueError(f"expected one of {', '.join(OPTIMIZERS)}")
            return text
        if kind == "hidden":
            parts = text if isinstance(text, list) else str(text).split("/")
            widths = tuple(int(p) for p in parts)
            if not widths or min(widths) < 1 or any(isinstance(p, bool | float) for p in parts):
                raise ValueError("expected layer widths >= 1 such as 50 or 64/32")
            return widths
        if kind == "int":
            if isinstance(text, bool) or isinstance(text, float):
                raise ValueError("expected an integer")
            return int(text)
        if kind == "bool":
            if isinstance(text, bool):
                return text
            if str(text).lower() in ("true", "false"):
                return str(text).lower() == "true"
            raise ValueError("expected true or false")
        if isinstance(text, bool):
            raise ValueError("expected a number")
        return float(text)
    except ConfigError as err:
        raise _grid_error(name, raw, str(err).removeprefix(f"{err.field}: ")) from None
    except (ValueError, TypeError) as err:
        what = {"int": "an integer", "float": "a number"}.get(kind, f"a {kind} value")
        detail = str(err) if str(err).startswith("expected") else f"expected {what}"
        raise _grid_error(name, raw, detail) from None


def value_text(value: Any) -> str:
    """A grid value as it appears in a configuration's name (shortest exact float repr)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "/".join(map(str, value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_grid(entries: Iterable[tuple[str, Sequence[Any]]]) -> Grid:
    """(name, raw values) pairs -> a typed grid, in the given order.

    Raises ConfigError("grid", ...): an unknown name, a name given twice, no values, a value that
    does not parse, or a value given twice.
    """
    grid: list[tuple[str, tuple[Any, ...]]] = []
    for name, raw_values in entries:
        if name not in GRID_NAMES:
            raise ConfigError("grid", f"expected names among {', '.join(GRID_NAMES)}, got {name!r}")
        if any(name == n for n, _ in grid):
            raise ConfigError("grid", f"{name}: expected once, given twice")
        if isinstance(raw_values, str | bytes) or not raw_values:
            raise ConfigError("grid", f"{name}: expected one or more values, got {raw_values!r}")
        values = tuple(parse_value(name, v) for v in raw_values)
        seen = [value_text(v) for v in values]
        for text in seen:
            if seen.count(text) > 1:
                raise ConfigError("grid", f"{name}: expected distinct values, got {text} twice")
        grid.append((name, values))
    if not grid:
        raise ConfigError("grid", "expected at least one name=v1,v2,... entry, got none")
    return tuple(grid)


def parse_grid_flag(text: str) -> tuple[str, list[str]]:
    """'loss=kl,ce' -> ('loss', ['kl', 'ce'])."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise ConfigError("grid", f"expected name=v1,v2,..., got {text!r}")
    parts = values.split(",")
    if not all(p.strip() for p in parts):
        raise ConfigError("grid", f"{name.strip()}: expected comma-separated values, got {text!r}")
    return name.strip(), parts


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: its name, its grid values and the full training config."""

    name: str
    values: tuple[tuple[str, Any], ...]
    train: TrainConfig

    @property
    def program(self) -> TrainConfig:
        """The config compiled for it: the same, with the optimizer's numbers at their defaults
        (the numbers ride along per run)."""
        return self.train.replace(optimizer=type(self.train.optimizer)())

    @property
    def hyperparameters(self) -> dict[str, float]:
        return self.train.optimizer.hyperparameters


@dataclass(frozen=True)
class Task:
    """One train call: `program` on the runs of `pieces`, each (configuration name, seeds)."""

    program: TrainConfig
    pieces: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def n_runs(self) -> int:
        return sum(len(seeds) for _, seeds in self.pieces)


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep trains: the grid, the defaults every configuration starts from, the
    data, the seeds (each configuration trains every seed) and the seeds per task.

    base: the training flags (its optimizer is used where the grid has no `optimizer`);
    defaults: optimizer numbers given as flags, applied to every optimizer of the sweep that has
    them (the grid's values win).

    Raises ConfigError on construction: a value no configuration can take (field "grid"), a
    default that no optimizer of the sweep has, no seeds or repeated seeds, a bad chunk.
    """

    grid: Grid
    base: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    defaults: Mapping[str, float] = dataclasses.field(default_factory=dict)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    seeds: tuple[int, ...] = tuple(range(10))
    chunk: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", dict(self.defaults))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds", f"expected distinct seeds, got {len(self.seeds)} values")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise ConfigError("chunk", f"expected an integer >= 1, got {self.chunk!r}")
        optimizers = self.optimizers
        for name in self.defaults:
            if not any(name in OPTIMIZERS[o]().hyperparameters for o in optimizers):
                raise ConfigError(
                    name,
                    f"not a hyperparameter of any optimizer of the sweep ({', '.join(optimizers)})",
                )
        for name, _ in self.grid:
            if name in HYPERPARAMETERS:
                for o in optimizers:
                    if name not in OPTIMIZERS[o]().hyperparameters:
                        raise ConfigError(
                            "grid", f"{name}: not a hyperparameter of {o}, which the sweep trains"
                        )
        self.configurations  # noqa: B018 (validates every configuration)

    @property
    def optimizers(self) -> tuple[str, ...]:
        grid = dict(self.grid)
        return tuple(grid.get("optimizer", (self.base.optimizer.name,)))

    @property
    def configurations(self) -> tuple[Configuration, ...]:
        """Every combination of the grid, the first name varying slowest."""
        names = [n for n, _ in self.grid]
        out = []
        for combo in itertools.product(*(values for _, values in self.grid)):
            chosen = dict(zip(names, combo, strict=True))
            name = ",".join(f"{n}={value_text(v)}" for n, v in chosen.items())
            structural = {k: v for k, v in chosen.items() if k in STRUCTURAL and k != "optimizer"}
            optimizer = OPTIMIZERS[chosen.get("optimizer", self.base.optimizer.name)]
            fields = optimizer().hyperparameters
            if optimizer.name == self.base.optimizer.name:
                numbers = self.base.optimizer.hyperparameters
            else:
                numbers = {}
            numbers |= {k: v for k, v in self.defaults.items() if k in fields}
            numbers |= {k: v for k, v in chosen.items() if k in HYPERPARAMETERS}
            try:
                train = self.base.replace(**structural, optimizer=optimizer(**numbers))
            except ConfigError as err:
                message = str(err).removeprefix(f"{err.field}: ")
                raise ConfigError("grid", f"{name}: {err.field}: {message}") from None
            out.append(Configuration(name, tuple(chosen.items()), train))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the grid's hidden values as lists."""
        return {
            "grid": {
                n: [list(v) if isinstance(v, tuple) else v for v in vs] for n, vs in self.grid
            },
            "base": to_dict(self.base),
            "defaults": dict(self.defaults),
            "data": self.data.to_dict(),
            "seeds": list(self.seeds),
            "chunk": self.chunk,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepPlan:
        """Inverse of `to_dict`."""
        return cls(
            grid=parse_grid(d["grid"].items()),
            base=TrainConfig.from_dict(d["base"]),
            defaults=d.get("defaults", {}),
            data=DataConfig.from_dict(d["data"]),
            seeds=tuple(int(s) for s in d["seeds"]),
            chunk=int(d.get("chunk", DEFAULT_CHUNK)),
        )


def tasks(plan: SweepPlan, done: Iterable[tuple[str, int]] = ()) -> list[Task]:
    """The tasks that train every (configuration, seed) of `plan` not in `done`, each pair once.

    Per program (configurations that differ only in optimizer numbers), the sweep's seeds are cut
    into ranges of `plan.chunk`; a task holds, for one range, every configuration of the program
    with the seeds of the range it still misses. Order: programs as first met, then seed ranges.
    """
    done = set(done)
    programs: dict[TrainConfig, list[Configuration]] = {}
    for c in plan.configurations:
        programs.setdefault(c.program, []).append(c)
    out = []
    for program, configurations in programs.items():
        for lo in range(0, len(plan.seeds), plan.chunk):
            seed_range = plan.seeds[lo : lo + plan.chunk]
            pieces = []
            for c in configurations:
                missing = tuple(s for s in seed_range if (c.name, s) not in done)
                if missing:
                    pieces.append((c.name, missing))
            if pieces:
                out.append(Task(program, tuple(pieces)))
    return out
