"""Jet-level features of particle clouds, and the input checks every physics metric shares.

``particles`` (n_jets, N, 4): [eta_rel, phi_rel, pt_rel, mask], the layout of
:mod:`physgan.data.jets` and of JetNet (Kansal et al., arXiv:2106.11535). A particle is real
when ``mask >= 0.5``; other rows are ignored whatever they hold. Negative generated pt_rel is
set to 0. Both rules are JetNet's ``jetnet.utils.gen_jet_corrections``, which MPGAN applies to
generated jets before every metric.
"""

from __future__ import annotations

import numpy as np

from physgan.errors import DataError

__all__ = ["check_pair", "check_particles", "jet_features", "masked_features"]


def check_particles(name: str, particles: np.ndarray, *, min_jets: int = 1) -> np.ndarray:
    """``particles`` as a float64 array after checking its layout.

    Raises ``DataError`` (one line, starting with ``name``) for a shape other than
    (n_jets, N, 4), fewer than ``min_jets`` jets, a NaN or inf anywhere, or masks that remove
    every particle of every jet.

    >>> check_particles("real", np.zeros((2, 3)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    physgan.errors.DataError: real: expected shape (n_jets, n_particles, 4) ..., got (2, 3)
    """
    try:
        array = np.asarray(particles, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name}: not a numeric array ({err})") from None
    if array.ndim != 3 or array.shape[-1] != 4:
        raise DataError(
            f"{name}: expected shape (n_jets, n_particles, 4) [eta_rel, phi_rel, pt_rel, mask],"
            f" got {array.shape}"
        )
    if len(array) < min_jets:
        raise DataError(f"{name}: needs at least {min_jets} jets, got {len(array)}")
    if not np.isfinite(array).all():
        raise DataError(f"{name}: holds {int((~np.isfinite(array)).sum())} NaN or inf values")
    if not (array[..., 3] >= 0.5).any():
        raise DataError(f"{name}: the mask (feature 3) removes every particle of every jet")
    return array


def check_pair(
    real: np.ndarray, generated: np.ndarray, *, min_jets: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Both samples checked by :func:`check_particles`, with the same particles per jet.

    >>> check_pair(np.ones((2, 30, 4)), np.ones((2, 20, 4)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    physgan.errors.DataError: real and generated differ in shape: (2, 30, 4) vs (2, 20, 4); ...
    """
    real = check_particles("real", real, min_jets=min_jets)
    generated = check_particles("generated", generated, min_jets=min_jets)
    if real.shape[1:] != generated.shape[1:]:
        raise DataError(
            f"real and generated differ in shape: {real.shape} vs {generated.shape};"
            " need (any, N, 4) for both"
        )
    return real, generated


def masked_features(particles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[eta_rel, phi_rel, pt_rel] (n, N, 3) with padded rows zeroed and negative pt_rel set to
    0, and the boolean mask (n, N) of real particles (``mask >= 0.5``), as JetNet's
    ``gen_jet_corrections`` makes them.

    >>> feats, mask = masked_features(np.array([[[0.1, 0.2, -0.3, 1.0], [5.0, 5.0, 5.0, 0.2]]]))
    >>> feats.tolist(), mask.tolist()
    ([[[0.1, 0.2, 0.0], [0.0, 0.0, 0.0]]], [[True, False]])
    """
    mask = particles[..., 3] >= 0.5
    features = np.where(mask[..., None], particles[..., :3], 0.0)
    features[..., 2] = np.maximum(features[..., 2], 0.0)
    return features, mask


def jet_features(particles: np.ndarray) -> np.ndarray:
    """Jet [pt, eta, phi, mass] (n, 4) of the sum of the real particles taken as massless.

    As JetNet's ``jetnet.utils.jet_features`` on [eta_rel, phi_rel, pt_rel], the units are the
    relative ones: pt and mass are fractions of the jet pT the cloud was built with, eta and phi
    are measured from that jet's axis. Each particle is (px, py, pz, E) = pt_rel (cos phi,
    sin phi, sinh eta, cosh eta); the jet's mass is sqrt(max(E^2 - |p|^2, 0)), and its eta and
    phi are 0 when it has no particles (JetNet's ``nan_to_num``).

    >>> pair = np.array([[[0.1, 0.0, 0.5, 1.0], [-0.1, 0.0, 0.5, 1.0], [7.0, 7.0, 7.0, 0.0]]])
    >>> jet_features(pair).round(6).tolist()  # mass = sinh(0.1)
    [[1.0, 0.0, 0.0, 0.100167]]
    """
    features, _ = masked_features(check_particles("particles", particles))
    eta, phi, pt = features[..., 0], features[..., 1], features[..., 2]
    px = (pt * np.cos(phi)).sum(axis=1)
    py = (pt * np.sin(phi)).sum(axis=1)
    pz = (pt * np.sinh(eta)).sum(axis=1)
    energy = (pt * np.cosh(eta)).sum(axis=1)
    jet_pt = np.hypot(px, py)
    jet_eta = np.arcsinh(np.divide(pz, jet_pt, out=np.zeros_like(pz), where=jet_pt > 0))
    jet_phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0))
    return np.stack([jet_pt, jet_eta, jet_phi, mass], axis=-1)
