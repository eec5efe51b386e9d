"""Metrics of generated samples against real data or a known density.

Toy mixtures: :func:`mode_stats`. Jets (particle clouds, JetNet layout): :func:`w1m`,
:func:`w1p`, :func:`w1efp`, :func:`fpd`, :func:`kpd`, :func:`outlier_fraction`; any samples:
:func:`classifier_auc`.
Each jet metric returns an :class:`Estimate`; :func:`with_floor` sets it beside the
real-vs-real noise floor.
"""

from physgan.metrics.classifier import classifier_auc
from physgan.metrics.estimate import Estimate
from physgan.metrics.floor import FloorResult, with_floor
from physgan.metrics.frechet import fpd, kpd
from physgan.metrics.modes import ModeStats, mode_stats
from physgan.metrics.support import outlier_fraction, support_features
from physgan.metrics.wasserstein import w1efp, w1m, w1p

__all__ = [
    "Estimate",
    "FloorResult",
    "ModeStats",
    "classifier_auc",
    "fpd",
    "kpd",
    "mode_stats",
    "outlier_fraction",
    "support_features",
    "w1efp",
    "w1m",
    "w1p",
    "with_floor",
]
