"""Data as plain arrays: the tutorial's blobs, the bundled digits, or the user's CSV and .npz files.

One concept per module: `dataset` (the arrays the trainer consumes), `blobs` (the tutorial's data),
`digits` (the bundled 8x8 digits), `files` (reading and checking CSV and .npz files), `split`
(stratified train/test split, standardization), `source` (`DataConfig` and `load_data`).
"""

from kldiv.data.blobs import blobs_dataset, make_blobs
from kldiv.data.dataset import Dataset, one_hot
from kldiv.data.files import PROB_TOLERANCE, load_features
from kldiv.data.source import DEFAULT_TEST_FRAC, DataConfig, LoadedData, load_data, standardized
from kldiv.data.split import Standardizer, stratified_split

__all__ = [
    "DEFAULT_TEST_FRAC",
    "PROB_TOLERANCE",
    "DataConfig",
    "Dataset",
    "LoadedData",
    "Standardizer",
    "blobs_dataset",
    "load_data",
    "load_features",
    "make_blobs",
    "one_hot",
    "standardized",
    "stratified_split",
]
