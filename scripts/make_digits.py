"""Write `src/kldiv/data/digits.npz`, the 8x8 handwritten digits bundled with kldiv.

Source: scikit-learn's `sklearn/datasets/data/digits.csv.gz` (1797 rows of 64 pixel values 0..16
and the digit as a 65th column; the UCI optical recognition of handwritten digits test set), the
file `sklearn.datasets.load_digits` reads. Output: a compressed .npz with `x` uint8 (1797, 64) and
`y` int64 (1797,), written with a fixed timestamp so the same input gives the same bytes (and so
the same sha256 in every run record).

    python scripts/make_digits.py   # needs scikit-learn, which kldiv itself never imports
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import sklearn

OUT = Path(__file__).resolve().parents[1] / "src" / "kldiv" / "data" / "digits.npz"


def main() -> None:
    source = Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(source, "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)  # (1797, 65)
    pixels, labels = table[:, :-1], table[:, -1]
    assert pixels.shape == (1797, 64) and pixels.min() >= 0 and pixels.max() <= 16
    assert set(np.unique(labels)) == set(range(10))
    with zipfile.ZipFile(OUT, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in (("x", pixels.astype(np.uint8)), ("y", labels.astype(np.int64))):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
