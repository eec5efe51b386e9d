"""The noise floor: a metric between two disjoint real samples, beside its generated value.

A sample-based metric is never exactly zero, even for a perfect generator: two finite samples
of one distribution differ. The floor is the same metric, at the same sample size, between two
disjoint halves of the real data; a generated sample *matches* when its value lies within the
floor's value plus its spread (Kansal et al. 2023, arXiv:2211.10295, report metrics this way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from physgan.errors import DataError
from physgan.metrics.estimate import Estimate

__all__ = ["FloorResult", "split_real", "verdict", "with_floor"]

Metric = Callable[..., Estimate]


class FloorResult(NamedTuple):
    """A metric of generated vs real beside real vs real, and the verdict on the two."""

    value: float
    std: float
    floor: float
    floor_std: float
    verdict: str


def verdict(value: float, floor: float, floor_std: float, ideal: float = 0.0) -> str:
    """``"matches"`` within the floor's spread, else how many floors the value is.

    Distances from ``ideal`` (0 for a distance, 0.5 for a classifier AUC) are compared. A floor
    closer to the ideal than its own spread (KPD, AUC, FPD at large n) is noise around the
    ideal, and a ratio to it would be noise too: the value is then given in floor spreads.

    >>> verdict(1.1, 1.0, 0.2), verdict(3.0, 1.0, 0.2), verdict(0.5, 0.0, 0.0)
    ('matches', '3.0x floor', 'above a zero floor')
    >>> verdict(0.9, 0.45, 0.02, ideal=0.5), verdict(0.607, 0.5002, 0.024, ideal=0.5)
    ('8.0x floor', "4.5x the floor's spread")
    """
    excess, floor_excess = abs(value - ideal), abs(floor - ideal)
    if excess <= floor_excess + floor_std:
        return "matches"
    if max(floor_excess, floor_std) <= 0:
        return "above a zero floor"
    if floor_excess < floor_std:
        return f"{excess / floor_std:.1f}x the floor's spread"
    return f"{excess / floor_excess:.1f}x floor"


def split_real(real: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random subsets of ``real`` with ``n`` rows each (seeded)."""
    if 2 * n > len(real):
        raise DataError(
            f"the noise floor needs 2 x {n} real samples; only {len(real)} are available"
        )
    order = np.random.default_rng(seed).permutation(len(real))
    return real[order[:n]], real[order[n : 2 * n]]


def with_floor(
    metric: Metric,
    real: np.ndarray,
    generated: np.ndarray,
    *,
    seed: int = 0,
    ideal: float = 0.0,
    **kwargs: object,
) -> FloorResult:
    """``metric`` of ``generated`` against one real half, and of the two real halves.

    Both comparisons use ``min(len(real) // 2, len(generated))`` samples per side; ``kwargs``
    go to ``metric`` (with ``seed``); ``ideal`` is the metric's value for identical
    distributions (see :func:`verdict`). Returns the :class:`FloorResult`.
    """
    n = min(len(real) // 2, len(generated))
    if n < 2:
        raise DataError(
            f"need at least 4 real and 2 generated samples, got {len(real)} and {len(generated)}"
        )
    real_a, real_b = split_real(real, n, seed)
    gen = generated[np.random.default_rng([seed, 1]).permutation(len(generated))[:n]]
    value = metric(real_a, gen, seed=seed, **kwargs)
    floor = metric(real_a, real_b, seed=seed, **kwargs)
    return FloorResult(
        float(value.value),
        float(value.std),
        float(floor.value),
        float(floor.std),
        verdict(float(value.value), float(floor.value), float(floor.std), ideal),
    )
