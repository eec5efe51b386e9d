"""The return type every sample-based metric shares: a value and its spread."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Estimate"]


class Estimate(NamedTuple):
    """A metric's estimate: ``value`` (mean or median over batches) and its ``std`` (spread
    over batches, or the bootstrap standard deviation), in the metric's own units."""

    value: float
    std: float
