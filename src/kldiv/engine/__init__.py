"""The training core: what one run computes (`run`), how many runs execute (`runner`), and the
run-axis-last accelerator for CPU (`lanes`). `train` is the entry point."""

from kldiv.engine.runner import ProgressFn, TrainResult, train

__all__ = ["ProgressFn", "TrainResult", "train"]
