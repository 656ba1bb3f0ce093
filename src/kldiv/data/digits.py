"""The 8x8 handwritten digits (1797 images, 10 classes), bundled with kldiv: no download, no
scikit-learn at run time.

`digits.npz` in this package holds `x` uint8 (1797, 64), the pixel intensities 0..16 row by row,
and `y` int64 (1797,), the digit. It is `sklearn.datasets.load_digits()` (its data and target,
equal element for element), written once from scikit-learn's `digits.csv.gz` by
`scripts/make_digits.py`. Features are float32 copies of the raw 0..16 values, named like
scikit-learn's `pixel_{row}_{col}`; classes are named "0".."9".
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

from kldiv.data.files import DataFile, Table, npz_arrays

N_ROWS, N_PIXELS, N_CLASSES = 1797, 64, 10
FEATURE_NAMES = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
CLASS_NAMES = tuple(str(k) for k in range(N_CLASSES))


def digits_file() -> DataFile:
    """The bundled archive's bytes, under the name 'digits' (for the run's fingerprint)."""
    return DataFile("digits", (files("kldiv.data") / "digits.npz").read_bytes(), bundled=True)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 (1797, 64), labels int64 (1797,)) as bundled."""
    x, y, _ = _read()
    return x, y


def digits_table() -> Table:
    """The digits as a table of samples: float32 pixel features and integer labels."""
    x, y, file = _read()
    return Table(
        file,
        x.astype(np.float32),
        FEATURE_NAMES,
        y.astype(np.int64),
        None,
        CLASS_NAMES,
        ("y",),
        None,
    )


def _read() -> tuple[np.ndarray, np.ndarray, DataFile]:
    file = digits_file()
    arrays = npz_arrays(file, "source", ("x", "y"))
    x, y = arrays["x"], arrays["y"]
    if x.shape != (N_ROWS, N_PIXELS) or y.shape != (N_ROWS,):  # a damaged installation
        raise RuntimeError(f"the bundled digits have shapes {x.shape}, {y.shape}; reinstall kldiv")
    return x, y, file
