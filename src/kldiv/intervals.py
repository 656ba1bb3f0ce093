"""Student t intervals of a mean, from SciPy's special functions alone.

`scipy.stats.t.interval(c, df, loc, scale)` computes each end as `scipy.special.stdtrit(df, q) *
scale + loc` with q = (1 - c) / 2 and (1 + c) / 2; `t_interval` is that computation, bit for bit
(tests/test_intervals.py), without importing `scipy.stats` (0.55 s on this project's machine,
against 0.13 s for `scipy.special`), which a multi-seed `kldiv run` would otherwise import only
to print two intervals.
"""

from __future__ import annotations

import numpy as np


def t_interval(
    mean: np.ndarray | float, sem: np.ndarray | float, n: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval mean ± t_{(1+c)/2, n-1} · sem, elementwise; zero width where sem == 0.

    `scipy.stats.t.interval` is undefined for scale 0 (it returns NaN and warns), but the limit of
    the formula is the point itself, which is what a sample of equal values gives.

    Raises:
      ValueError: n below 2, or confidence outside [0, 1].
    """
    if n < 2:
        raise ValueError(f"n: expected at least 2 values for a t interval, got {n}")
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence: expected a value in [0, 1], got {confidence!r}")
    from scipy.special import stdtrit

    mean, sem = np.asarray(mean, dtype=float), np.asarray(sem, dtype=float)
    positive = sem > 0
    scale = np.where(positive, sem, 1.0)

    def quantile(q: float) -> float:  # scipy.stats takes the support's ends at q = 0 and 1
        return -np.inf if q == 0.0 else np.inf if q == 1.0 else stdtrit(n - 1, q)

    low = quantile((1.0 - confidence) / 2) * scale + mean
    high = quantile((1.0 + confidence) / 2) * scale + mean
    return np.where(positive, low, mean), np.where(positive, high, mean)
