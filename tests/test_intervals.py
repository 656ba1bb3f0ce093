"""t intervals from scipy.special: the bits of scipy.stats.t.interval, without its import."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from kldiv.intervals import t_interval


@pytest.mark.parametrize("confidence", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("n", [2, 3, 10, 30, 1000])
def test_the_ends_are_scipy_stats_bit_for_bit(n, confidence):
    rng = np.random.default_rng(n)
    mean = rng.normal(size=50) * 10.0 ** rng.integers(-5, 5, size=50)
    sem = rng.random(50) * 10.0 ** rng.integers(-8, 2, size=50)
    got = t_interval(mean, sem, n, confidence)
    want = sps.t.interval(confidence, n - 1, loc=mean, scale=sem)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    scalar = t_interval(float(mean[0]), float(sem[0]), n, confidence)  # 0-d in, 0-d out
    assert (float(scalar[0]), float(scalar[1])) == (float(want[0][0]), float(want[1][0]))


def test_no_spread_gives_the_point_and_nan_stays_nan():
    low, high = t_interval(np.array([0.8, np.nan, 0.5]), np.array([0.0, 0.1, 0.01]), 5)
    assert low[0] == high[0] == 0.8 and np.isnan(low[1]) and np.isnan(high[1])
    assert low[2] < 0.5 < high[2]


@pytest.mark.parametrize(
    "n, confidence, field", [(1, 0.95, "n"), (5, 1.5, "confidence"), (5, -0.1, "confidence")]
)
def test_bad_arguments_name_the_parameter(n, confidence, field):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        t_interval(0.5, 0.1, n, confidence)


def test_a_multi_seed_run_does_not_import_scipy_stats(tmp_path):
    """scipy.stats takes ~0.5 s to import; printing a run's intervals needs only scipy.special."""
    check = (
        "import sys; from kldiv.cli.main import main; "
        f"code = main(['run', '--seeds', '3', '--epochs', '2', '--no-plot', '--out', {str(tmp_path)!r}]); "
        "print(code, 'scipy.special' in sys.modules, 'scipy.stats' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.split()[-3:] == ["0", "True", "False"], done.stderr
