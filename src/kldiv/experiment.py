"""The Python API behind `kldiv run` and `kldiv compare`: configs in, results out.

>>> from kldiv.experiment import Experiment, run
>>> result = run(Experiment(seeds=(0,)))                  # the tutorial, one seed
>>> result.final["test_accuracy"], result.history["val_loss"].shape
(array([0.8...], dtype=float32), (1, 100))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kldiv.config import BlobsConfig, TrainConfig, to_dict
from kldiv.data import Dataset, blobs_dataset
from kldiv.losses import canonical_loss_name
from kldiv.train import ProgressFn, TrainResult, train


@dataclass(frozen=True)
class Experiment:
    """What to train: the data, the model and its training, and the seeds (one run per seed).

    `data_seed` lives in `data.random_state`; each training seed derives the initial weights and every
    epoch's shuffle. Defaults reproduce the tutorial with training seed 0.
    """

    data: BlobsConfig = field(default_factory=BlobsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32 for s in self.seeds
        ):
            raise ValueError(
                f"seeds: expected a non-empty tuple of integers in [0, 2**32), got {self.seeds!r}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: expected distinct seeds, got {self.seeds!r}")

    def to_dict(self) -> dict:
        return {
            "data": to_dict(self.data),
            "train": {**to_dict(self.train), "loss": canonical_loss_name(self.train.loss)},
            "seeds": list(self.seeds),
        }


def dataset(experiment: Experiment) -> Dataset:
    """The arrays an experiment trains and validates on."""
    return blobs_dataset(experiment.data)


def run(
    experiment: Experiment, *, epoch_chunk: int | None = None, on_progress: ProgressFn | None = None
) -> TrainResult:
    """Train every seed of `experiment`; see `kldiv.train.train` for the result's layout."""
    return train(
        experiment.train,
        dataset(experiment),
        experiment.seeds,
        epoch_chunk=epoch_chunk,
        on_progress=on_progress,
    )


def compare(
    experiment: Experiment, losses: Sequence[str], *, on_progress: ProgressFn | None = None
) -> dict[str, TrainResult]:
    """Run `experiment` once per loss on the same seeds (paired: same seed, same initial weights and
    same data order for every loss). Keys are canonical loss names in the given order."""
    names = [canonical_loss_name(name) for name in losses]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"losses: expected at least two different losses, got {list(losses)!r}")
    data = dataset(experiment)
    results = {}
    for i, name in enumerate(names):

        def progress(done: int, total: int, i: int = i) -> None:
            if on_progress is not None:
                on_progress(i * total + done, len(names) * total)

        config = experiment.train.replace(loss=name)
        results[name] = train(config, data, experiment.seeds, on_progress=progress)
    return results
