"""The Python API behind `kldiv run` and `kldiv compare`: configs in, results out.

>>> from kldiv.experiment import Experiment, run
>>> result = run(Experiment(seeds=(0,)))                  # the tutorial, one seed
>>> result.final["test_accuracy"], result.history["val_loss"].shape
(array([0.8...]), (1, 100))
>>> digits = Experiment(data=DataConfig("digits", standardize=True), seeds=(0, 1, 2))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kldiv.checks import ConfigError
from kldiv.config import TrainConfig, to_dict
from kldiv.data import DataConfig, Dataset, LoadedData, load_data
from kldiv.engine import ProgressFn, TrainResult, train
from kldiv.engine.runner import check


@dataclass(frozen=True)
class Experiment:
    """What to train: the data, the model and its training, and the seeds (one run per seed).

    `data.seed` seeds the data (blobs, or the train/test split of other data); each training seed
    derives the initial weights and every epoch's shuffle. Defaults reproduce the tutorial with
    training seed 0.
    """

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.seeds, tuple)
            or not self.seeds
            or any(
                isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32
                for s in self.seeds
            )
        ):
            raise ConfigError(
                "seeds", f"expected a non-empty tuple of integers in [0, 2**32), got {self.seeds!r}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds", f"expected distinct seeds, got {self.seeds!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data.to_dict(),
            "train": to_dict(self.train),
            "seeds": list(self.seeds),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Experiment:
        """Inverse of `to_dict` (other keys, such as a record's "command", are ignored)."""
        return cls(
            data=DataConfig.from_dict(d.get("data", {})),
            train=TrainConfig.from_dict(d.get("train", {})),
            seeds=tuple(d.get("seeds", (0,))),
        )


def load(experiment: Experiment) -> LoadedData:
    """The data an experiment trains and validates on, with its names and fingerprint.

    Raises:
      ConfigError: the data cannot be read or split (the message names the file, row or column).
    """
    return load_data(experiment.data)


def run(
    experiment: Experiment,
    *,
    data: LoadedData | None = None,
    epoch_chunk: int | None = None,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train every seed of `experiment` (on `data` when already loaded by `load`); see
    `kldiv.engine.train` for the result's layout."""
    data = load(experiment) if data is None else data
    return train(
        experiment.train,
        data.dataset,
        experiment.seeds,
        epoch_chunk=epoch_chunk,
        on_progress=on_progress,
    )


def compare(
    experiment: Experiment,
    arms: Mapping[str, TrainConfig],
    *,
    data: LoadedData | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, TrainResult]:
    """Train every arm (name -> training config) on the experiment's data and seeds, paired: the
    same seed gives every arm the same initial weights and data order wherever their models have
    the same shapes. Keys keep the order of `arms`; the first is the baseline of a comparison."""
    if len(arms) < 2:
        raise ConfigError("arms", f"expected at least two arms, got {list(arms)!r}")
    dataset = (load(experiment) if data is None else data).dataset
    return train_arms(arms, dataset, experiment.seeds, on_progress=on_progress)


def train_arms(
    arms: Mapping[str, TrainConfig],
    dataset: Dataset,
    seeds: tuple[int, ...],
    *,
    epoch_chunk: int | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, TrainResult]:
    """Every arm (name -> training config) trained on the same dataset and seeds, in order, each
    checked before any trains; `on_progress` sees the arms as one task (arm i's units after the
    first i arms' units)."""
    for config in arms.values():
        check(config, dataset, seeds)
    results = {}
    for i, (name, config) in enumerate(arms.items()):

        def progress(done: int, total: int, i: int = i) -> None:
            if on_progress is not None:
                on_progress(i * total + done, len(arms) * total)

        results[name] = train(config, dataset, seeds, epoch_chunk=epoch_chunk, on_progress=progress)
    return results
