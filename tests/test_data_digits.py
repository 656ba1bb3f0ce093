"""The bundled digits: scikit-learn's arrays element for element, split by class, fingerprinted,
and loaded without importing scikit-learn."""

import hashlib
import os
import subprocess
import sys
from importlib.resources import files

import numpy as np
from sklearn.datasets import load_digits

from kldiv.data import DEFAULT_TEST_FRAC, DataConfig, load_data, stratified_split
from kldiv.data.digits import load_digits as bundled_digits


def test_bundled_digits_are_scikit_learns_and_split_by_class():
    reference = load_digits()
    loaded = load_data(DataConfig("digits", seed=0))
    assert loaded.feature_names == tuple(reference.feature_names)
    assert loaded.class_names == tuple(str(k) for k in reference.target_names)
    train, test = stratified_split(reference.target, DEFAULT_TEST_FRAC, 0)
    np.testing.assert_array_equal(loaded.dataset.x_train, reference.data[train].astype(np.float32))
    np.testing.assert_array_equal(loaded.dataset.x_val, reference.data[test].astype(np.float32))
    np.testing.assert_array_equal(loaded.labels_train, reference.target[train])
    np.testing.assert_array_equal(loaded.dataset.y_val.argmax(axis=1), reference.target[test])
    assert loaded.dataset.y_train.shape == (train.size, 10)
    counts = np.bincount(reference.target)
    np.testing.assert_array_equal(
        np.bincount(loaded.labels_test), np.floor(0.25 * counts + 0.5).astype(int)
    )
    archive = (files("kldiv.data") / "digits.npz").read_bytes()
    assert loaded.fingerprint["files"] == [
        {
            "role": "source",
            "path": "digits",
            "bytes": len(archive),
            "sha256": hashlib.sha256(archive).hexdigest(),
        }
    ]


def test_bundled_archive_holds_the_documented_arrays():
    pixels, labels = bundled_digits()
    reference = load_digits()
    assert pixels.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(pixels, reference.data)
    np.testing.assert_array_equal(labels, reference.target)


def test_loading_digits_never_imports_scikit_learn():
    code = (
        "import sys\n"
        "from kldiv.data import DataConfig, load_data\n"
        "loaded = load_data(DataConfig('digits', standardize=True))\n"
        "assert loaded.dataset.x_train.shape[1] == 64\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
