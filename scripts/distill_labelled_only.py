"""Train the plain classifier on a distillation's labelled rows alone: is the scratch arm fair?

`kldiv distill --label-frac F --seeds N` trains its scratch arm on every training row with the
unlabelled ones at weight 0, so each batch holds few labelled rows. This script trains the same
student as a plain cross-entropy classifier on the labelled rows only (listed in the comparison's
config.json), on the same seeds and test rows, for the given epochs, and prints the test accuracy.

    python scripts/distill_labelled_only.py runs/<...>-distill [EPOCHS ...]   # default 100 1000
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import kldiv.runtime


def main(argv: list[str]) -> None:
    kldiv.runtime.configure()
    from kldiv.config import TrainConfig
    from kldiv.data import DataConfig, load_data
    from kldiv.engine import train

    record = json.loads((Path(argv[0]) / "config.json").read_text())
    rows = np.asarray(record["distillation"]["labelled_indices"])
    student = TrainConfig.from_dict(record["train"]).replace(distillation=None)
    data = load_data(DataConfig.from_dict(record["data"])).dataset
    labelled = data._replace(x_train=data.x_train[rows], y_train=data.y_train[rows])
    for epochs in [int(e) for e in argv[1:]] or [100, 1000]:
        result = train(student.replace(epochs=epochs), labelled, record["seeds"])
        acc = result.final["test_accuracy"]
        print(
            f"{rows.size} labelled rows, {epochs} epochs: test accuracy "
            f"{acc.mean():.4f} ± {acc.std(ddof=1):.4f} over {acc.size} seeds"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
