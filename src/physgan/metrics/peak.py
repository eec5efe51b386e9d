"""Where a distribution peaks: the mode of a 1-D sample from a Gaussian kernel density estimate,
and the shift between the modes of two samples (e.g. the W mass peak of jet images, which the
LAGAN benchmark's users read off the mass histogram)."""

from __future__ import annotations

import numpy as np
from scipy.stats import gaussian_kde

from physgan.errors import DataError
from physgan.metrics.estimate import Estimate

__all__ = ["mode", "peak_shift"]

_GRID = 2_001


def mode(x: np.ndarray) -> float:
    """The mode of ``x`` (n,): the maximum of its Gaussian KDE (Scott's bandwidth), on a grid
    of 2,001 points over the sample's range, in the units of ``x``; a constant sample's value.
    Non-finite values are dropped.

    >>> rng = np.random.default_rng(0)
    >>> round(mode(rng.gamma(5.0, 2.0, 50_000)), 0)  # (k - 1) theta
    8.0
    """
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if not x.size:
        raise DataError("mode: the sample has no finite value")
    if x.min() == x.max():  # e.g. the masses of a generator of empty images
        return float(x[0])
    grid = np.linspace(x.min(), x.max(), _GRID)
    return float(grid[np.argmax(gaussian_kde(x)(grid))])


def peak_shift(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> Estimate:
    """|mode(generated) - mode(real)| of two 1-D samples, in their units (``seed`` unused: the
    estimate is deterministic; its spread comes from :func:`~physgan.metrics.with_floor`)."""
    return Estimate(abs(mode(generated) - mode(real)), 0.0)
