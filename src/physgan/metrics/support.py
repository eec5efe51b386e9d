"""Jets outside the real data's support: the rare unphysical jet a table of averages misses.

A generated jet is an *outlier* when one of its support features lies outside the range that
the real jets span: the jet mass and the sum of pt_rel (both in units of the jet pT, see
:func:`~physgan.metrics.jetfeatures.jet_features`), and the largest |eta_rel| and |phi_rel| of
its particles. Two samples of one distribution still differ at their extremes: with n real jets
a fresh real jet falls outside their range of one feature with probability 2 / (n + 1), which is
why the metric is reported beside its real-vs-real floor.
"""

from __future__ import annotations

import numpy as np

from physgan.metrics.estimate import Estimate
from physgan.metrics.jetfeatures import check_pair, jet_features, masked_features

__all__ = ["SUPPORT_FEATURES", "outlier_fraction", "support_features"]

SUPPORT_FEATURES = ("mass_rel", "sum_pt_rel", "max_abs_eta_rel", "max_abs_phi_rel")


def support_features(particles: np.ndarray) -> np.ndarray:
    """(n, 4): [jet mass / pT, sum of pt_rel, max |eta_rel|, max |phi_rel|] of (n, N, 4) clouds;
    the maxima are 0 for a jet without particles.

    >>> jet = np.array([[[0.1, 0.0, 0.5, 1.0], [-0.1, 0.2, 0.5, 1.0], [9.0, 9.0, 9.0, 0.0]]])
    >>> support_features(jet).round(4).tolist()  # m^2 = 2 (0.5)(0.5)(cosh 0.2 - cos 0.2)
    [[0.1414, 1.0, 0.1, 0.2]]
    """
    features, _ = masked_features(particles)
    return np.stack(
        [
            jet_features(particles)[:, 3],
            features[..., 2].sum(axis=1),
            np.abs(features[..., 0]).max(axis=1, initial=0.0),
            np.abs(features[..., 1]).max(axis=1, initial=0.0),
        ],
        axis=1,
    )


def outlier_fraction(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> Estimate:
    """The fraction of ``generated`` jets with a support feature outside the range of ``real``
    (both (n, N, 4) clouds), with its binomial standard error. ``seed`` is unused (the metric
    is exact); it is accepted so that the metric fits :func:`~physgan.metrics.with_floor`.

    >>> real = np.array([[[0.0, 0.0, 1.0, 1.0]], [[0.2, 0.1, 1.0, 1.0]]])
    >>> far = np.array([[[0.1, 0.05, 1.0, 1.0]], [[0.5, 0.0, 1.0, 1.0]]])  # |eta| 0.5 > 0.2
    >>> outlier_fraction(real, far).value
    0.5
    """
    real, generated = check_pair(real, generated)
    reference = support_features(real)
    values = support_features(generated)
    outside = (values < reference.min(axis=0)) | (values > reference.max(axis=0))
    p = float(outside.any(axis=1).mean())
    return Estimate(p, float(np.sqrt(p * (1 - p) / len(generated))))
