"""Jets as particle clouds in JetNet's layout, computed from four-momenta without Python loops.

``particles`` (n_jets, N, 4): [eta_rel, phi_rel, pt_rel, mask] of each jet's N highest-pT
constituents relative to the jet axis (eta_rel = eta - eta_jet, phi_rel wrapped to [-pi, pi),
pt_rel = pT / pT_jet; mask 1 for a particle, 0 for padding, padded rows all zero).
``jets`` (n_jets, 4): [pt (GeV), eta, mass (GeV), n_particles (real particles kept, <= N)].
This is the layout of JetNet (Kansal et al., arXiv:2106.11535) and of every physgan jet file.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "ARRAY_ATTRS",
    "JET_FEATURES",
    "PARTICLE_FEATURES",
    "JetCloud",
    "canonical_cloud",
    "is_cloud",
    "jet_features",
    "particle_cloud",
    "sort_by_pt",
    "wrap_phi",
]

PARTICLE_FEATURES = ("eta_rel", "phi_rel", "pt_rel", "mask")
JET_FEATURES = ("pt", "eta", "mass", "n_particles")
# The attributes of each array in a jet file, simulated (physgan.data.jetgen) or generated
# (physgan.data.writers).
ARRAY_ATTRS: dict[str, dict[str, Any]] = {
    "particles": {"features": list(PARTICLE_FEATURES)},
    "jets": {"features": list(JET_FEATURES), "units": ["GeV", "", "GeV", ""]},
    "images": {"axes": ["jet", "phi_rel", "eta_rel"], "units": "GeV", "extent": 1.25},
}


class JetCloud(NamedTuple):
    """``particles`` (n, N, 4) and ``jets`` (n, 4) float32 arrays, as the module describes."""

    particles: np.ndarray
    jets: np.ndarray


def is_cloud(shape: tuple[int, ...]) -> bool:
    """Particle clouds (N, 4): eta_rel, phi_rel, pt_rel and a mask per particle."""
    return len(shape) == 2 and shape[1] == 4


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Azimuthal angles (radians) mapped into [-pi, pi).

    >>> wrap_phi(np.array([np.pi + 0.1, -np.pi - 0.1, 0.5])).round(4).tolist()
    [-3.0416, 3.0416, 0.5]
    """
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p[..., 0], p[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, p[..., 2] / np.where(pt > 0, pt, 1.0), 0.0))
    return pt, eta, np.arctan2(p[..., 1], p[..., 0])


def particle_cloud(
    p4: np.ndarray, constituents: np.ndarray, n_constituents: np.ndarray, n_particles: int = 30
) -> JetCloud:
    """Particle-cloud features of jets from four-momenta in GeV.

    Args:
        p4: (n, 4) jet four-momenta (px, py, pz, E).
        constituents: (n, m, 4) constituent four-momenta sorted by decreasing pT, zero-padded.
        n_constituents: (n,) real rows of ``constituents`` per jet.
        n_particles: N, the constituents kept per jet (the rest dropped, or zero-padded to N).

    >>> jet = np.array([[100.0, 0.0, 0.0, 100.0]])
    >>> parts = np.array([[[60.0, 0.0, 0.0, 60.0], [40.0, 0.0, 0.0, 40.0]]])
    >>> cloud = particle_cloud(jet, parts, np.array([2]), n_particles=3)
    >>> cloud.particles[0].astype(float).round(3).tolist()
    [[0.0, 0.0, 0.6, 1.0], [0.0, 0.0, 0.4, 1.0], [0.0, 0.0, 0.0, 0.0]]
    >>> cloud.jets[0].tolist()
    [100.0, 0.0, 0.0, 2.0]
    """
    n, m = constituents.shape[:2]
    width = min(m, n_particles)
    kept = constituents[:, :width]
    mask = np.arange(width) < np.minimum(n_constituents, n_particles)[:, None]

    pt_jet, eta_jet, phi_jet = _pt_eta_phi(p4)
    pt, eta, phi = _pt_eta_phi(kept)
    features = np.stack(
        [eta - eta_jet[:, None], wrap_phi(phi - phi_jet[:, None]), pt / pt_jet[:, None], mask],
        axis=-1,
    )
    particles = np.zeros((n, n_particles, 4), dtype=np.float32)
    particles[:, :width] = np.where(mask[..., None], features, 0.0)

    return JetCloud(particles, jet_features(p4, mask.sum(axis=1)))


def jet_features(p4: np.ndarray, n_particles: np.ndarray) -> np.ndarray:
    """Jet features (n, 4) float32 [pt (GeV), eta, mass (GeV), n_particles] of (n, 4) p4.

    >>> jet_features(np.array([[30.0, 40.0, 0.0, 60.0]]), np.array([7])).tolist()
    [[50.0, 0.0, 33.1662483215332, 7.0]]
    """
    pt, eta, _ = _pt_eta_phi(p4)
    mass = np.sqrt(np.maximum(p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(axis=1), 0.0))
    return np.stack([pt, eta, mass, n_particles], axis=-1).astype(np.float32)


def canonical_cloud(particles: np.ndarray) -> np.ndarray:
    """A generated cloud in the file layout: mask 1 where mask >= 0.5, else an all-zero row.

    Negative pt_rel is clipped to 0, as JetNet's ``gen_jet_corrections`` does. Returns float32.

    >>> cloud = np.array([[[0.1, 0.2, 0.5, 0.9], [0.3, -0.1, -0.01, 0.7], [0.5, 0.5, 0.5, 0.2]]])
    >>> canonical_cloud(cloud)[0].astype(float).round(2).tolist()
    [[0.1, 0.2, 0.5, 1.0], [0.3, -0.1, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    """
    mask = particles[..., 3] >= 0.5
    out = np.where(mask[..., None], particles, 0.0).astype(np.float32)
    out[..., 2] = np.maximum(out[..., 2], 0.0)
    out[..., 3] = mask
    return out


def sort_by_pt(particles: np.ndarray) -> np.ndarray:
    """Each jet's particles by decreasing pt_rel, padded rows (mask 0) last; same shape.

    >>> cloud = np.array([[[0.1, 0.0, 0.2, 1.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.7, 1.0]]])
    >>> sort_by_pt(cloud)[0, :, 2].tolist()
    [0.7, 0.2, 0.0]
    """
    key = np.where(particles[..., 3] > 0.5, particles[..., 2], -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    return np.take_along_axis(particles, order[..., None], axis=1)
