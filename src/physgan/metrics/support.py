"""Jets and jet images outside the real data's support: the rare unphysical sample a table of
averages misses.

A generated jet is an *outlier* when one of its support features lies outside the range that
the real jets span: the jet mass and the sum of pt_rel (both in units of the jet pT, see
:func:`~physgan.metrics.jetfeatures.jet_features`), and the largest |eta_rel| and |phi_rel| of
its particles. Two samples of one distribution still differ at their extremes: with n real jets
a fresh real jet falls outside their range of one feature with probability 2 / (n + 1), which is
why the metric is reported beside its real-vs-real floor.

A generated jet *image* is an outlier when it has a negative pixel, or when its total pT, its
mass, its tau_21 or its brightest pixel (pT in GeV; see :mod:`physgan.data.images`) lies outside
the range of the real images; an empty image (tau_21 undefined) is always one.
"""

from __future__ import annotations

import numpy as np

from physgan.data.images import image_mass, image_tau21
from physgan.errors import DataError
from physgan.metrics.estimate import Estimate
from physgan.metrics.jetfeatures import check_pair, jet_features, masked_features

__all__ = [
    "IMAGE_SUPPORT_FEATURES",
    "SUPPORT_FEATURES",
    "image_outlier_fraction",
    "image_support_features",
    "outlier_fraction",
    "support_features",
]

SUPPORT_FEATURES = ("mass_rel", "sum_pt_rel", "max_abs_eta_rel", "max_abs_phi_rel")
IMAGE_SUPPORT_FEATURES = ("pt", "mass", "tau21", "max_pixel_pt")


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
    return _binomial(_outside(support_features(real), support_features(generated)))


def _outside(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(n,) True where a row of ``values`` leaves the per-column range of ``reference``; NaN
    values are outside, NaN reference values are ignored."""
    lo, hi = np.nanmin(reference, axis=0), np.nanmax(reference, axis=0)
    return ~((values >= lo) & (values <= hi)).all(axis=1)


def _binomial(outside: np.ndarray) -> Estimate:
    p = float(outside.mean())
    return Estimate(p, float(np.sqrt(p * (1 - p) / len(outside))))


def image_support_features(images: np.ndarray, extent: float = 1.25) -> np.ndarray:
    """(n, 4): [total pT, mass, tau_21, brightest pixel's pT] of (n, P, P) jet images of pixel
    pT in GeV (tau_21 is NaN for an empty image).

    >>> image = np.zeros((1, 5, 5)); image[0, 2, 1] = image[0, 2, 3] = 100.0
    >>> image_support_features(image).round(2).tolist()
    [[200.0, 104.22, 0.0, 100.0]]
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"jet images must have shape (n, P, P), got {images.shape}")
    return np.stack(
        [
            images.sum(axis=(1, 2)),
            image_mass(images, extent),
            image_tau21(images, extent),
            images.max(axis=(1, 2)),
        ],
        axis=1,
    )


def image_outlier_fraction(real: np.ndarray, generated: np.ndarray, *, seed: int = 0) -> Estimate:
    """The fraction of ``generated`` jet images (n, P, P) with a negative pixel or a support
    feature (:func:`image_support_features`) outside the range of ``real``, with its binomial
    standard error. ``seed`` is unused (the metric is exact).

    >>> real = np.zeros((2, 5, 5)); real[:, 2, 1] = real[:, 2, 3] = [50.0, 100.0]
    >>> generated = np.zeros((3, 5, 5)); generated[:, 2, 1] = generated[:, 2, 3] = 75.0
    >>> generated[1, 2, 3] = 150.0  # its brightest pixel is brighter than any real one
    >>> generated[2, 0, 0] = -1.0  # a negative pixel
    >>> round(image_outlier_fraction(real, generated).value, 4)
    0.6667
    """
    reference, values = image_support_features(real), image_support_features(generated)
    negative = (np.asarray(generated) < 0).any(axis=(1, 2))
    return _binomial(negative | _outside(reference, values))
