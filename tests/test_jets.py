"""Particle-cloud features and jet images from four-momenta built by hand."""

import numpy as np
import pytest

from physgan.data.images import image_mass, image_tau21, jet_images, pixel_centres
from physgan.data.jets import jet_features, particle_cloud, wrap_phi


def p4(pt, eta, phi, mass=0.0):
    """Four-momenta (..., 4) = (px, py, pz, E) from pT (GeV), eta, phi and mass."""
    pt, eta, phi = np.broadcast_arrays(*map(np.asarray, (pt, eta, phi)))
    pz = pt * np.sinh(eta)
    e = np.sqrt(pt**2 * np.cosh(eta) ** 2 + mass**2)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, e], axis=-1)


def invariant_mass(p):
    return np.sqrt(np.maximum(p[..., 3] ** 2 - (p[..., :3] ** 2).sum(-1), 0))


def test_wrap_phi_range_and_identity():
    phi = np.random.default_rng(3).uniform(-20, 20, 1000)
    wrapped = wrap_phi(phi)
    assert wrapped.min() >= -np.pi
    assert wrapped.max() < np.pi
    np.testing.assert_allclose(np.cos(wrapped), np.cos(phi), atol=1e-12)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(phi), atol=1e-12)


def test_particle_cloud_across_the_phi_boundary():
    # A jet just below +pi whose constituents straddle the +-pi seam.
    parts = p4([300.0, 200.0, 100.0], [0.5, 0.6, 0.4], [np.pi - 0.1, -np.pi + 0.05, np.pi - 0.2])
    jet = parts.sum(axis=0)
    cloud = particle_cloud(jet[None], parts[None], np.array([3]), n_particles=5)
    jet_phi = np.arctan2(jet[1], jet[0])
    expected = wrap_phi(np.array([np.pi - 0.1, -np.pi + 0.05, np.pi - 0.2]) - jet_phi)
    np.testing.assert_allclose(cloud.particles[0, :3, 1], expected, atol=1e-6)
    assert np.abs(cloud.particles[0, :3, 1]).max() < 0.3  # not ~2 pi
    np.testing.assert_array_equal(cloud.particles[0, :, 3], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(cloud.particles[0, 3:], 0)


def test_particle_cloud_features_against_hand_values():
    rng = np.random.default_rng(7)
    n, m = 20, 12
    pt = np.sort(rng.uniform(1, 100, (n, m)), axis=1)[:, ::-1]
    eta = rng.normal(0.3, 0.2, (n, m))
    phi = rng.normal(1.0, 0.2, (n, m))
    parts = p4(pt, eta, phi, mass=0.14)
    counts = rng.integers(3, m + 1, n)
    parts[np.arange(m) >= counts[:, None]] = 0.0
    jets = parts.sum(axis=1)
    cloud = particle_cloud(jets, parts, counts, n_particles=8)
    jet_pt = np.hypot(jets[:, 0], jets[:, 1])
    jet_eta = np.arcsinh(jets[:, 2] / jet_pt)
    kept = np.minimum(counts, 8)
    for i in range(n):
        k = kept[i]
        np.testing.assert_allclose(cloud.particles[i, :k, 0], eta[i, :k] - jet_eta[i], atol=1e-5)
        np.testing.assert_allclose(cloud.particles[i, :k, 2], pt[i, :k] / jet_pt[i], rtol=1e-5)
        np.testing.assert_array_equal(cloud.particles[i, k:], 0)
    np.testing.assert_allclose(cloud.jets[:, 0], jet_pt, rtol=1e-6)
    np.testing.assert_allclose(cloud.jets[:, 2], invariant_mass(jets), rtol=1e-5)
    np.testing.assert_array_equal(cloud.jets[:, 3], kept)


def test_jet_features_of_a_massive_jet():
    jet = p4(500.0, -1.2, 2.0, mass=80.4)
    features = jet_features(jet[None], np.array([17]))
    np.testing.assert_allclose(features[0], [500.0, -1.2, 80.4, 17], rtol=1e-5)


def _two_prong(eta0, phi0, angle, dr=0.6, pts=(200.0, 80.0)):
    """A jet of two particles (the subjets), the second at ``angle`` and ``dr`` from the first."""
    eta = np.array([eta0, eta0 + dr * np.cos(angle)])
    phi = np.array([phi0, phi0 + dr * np.sin(angle)])
    parts = p4(np.array(pts), eta, phi)
    return parts, parts.copy()


@pytest.mark.parametrize(("eta0", "phi0", "angle"), [(0.0, 0.0, 0.3), (1.3, np.pi - 0.1, 2.5)])
def test_image_puts_leading_subjet_at_centre_and_second_below(eta0, phi0, angle):
    parts, subjets = _two_prong(eta0, phi0, angle)
    image = jet_images(parts[None], np.array([2]), subjets[None], pixels=25)[0]
    centre = 12
    assert image[centre, centre] == pytest.approx(200.0, rel=1e-6)
    assert image[centre - 6, centre] == pytest.approx(80.0, rel=1e-6)  # dr 0.6 = 6 pixels below
    assert image.sum() == pytest.approx(280.0, rel=1e-6)


def test_image_is_invariant_under_rotation_boost_and_mirror():
    rng = np.random.default_rng(5)
    pt = rng.uniform(1, 50, 30)
    d_eta, d_phi = rng.normal(0, 0.25, 30), rng.normal(0, 0.25, 30)
    pt[0], d_eta[0], d_phi[0] = 300.0, 0.0, 0.0
    pt[1], d_eta[1], d_phi[1] = 120.0, 0.35, 0.2

    def image(eta0, phi0, sign):
        parts = p4(pt, eta0 + sign * d_eta, phi0 + d_phi)
        return jet_images(parts[None], np.array([30]), parts[None, :2], pixels=33)[0]

    reference = image(0.0, 0.0, 1)
    np.testing.assert_allclose(image(1.7, 2.9, 1), reference, atol=1e-3)
    np.testing.assert_allclose(image(-0.8, -3.0, -1), reference, atol=1e-3)
    right = reference[:, 17:].sum()
    assert right >= reference[:, :16].sum()


def test_image_mass_matches_invariant_mass_at_pixel_centres():
    centres = pixel_centres(25, 1.25)
    rng = np.random.default_rng(11)
    # Particles at pixel centres, the second subjet straight below the first: no rotation.
    cols = rng.integers(8, 17, 15)
    rows = rng.integers(5, 17, 15)
    rows[0], cols[0], rows[1], cols[1] = 12, 12, 6, 12
    pt = rng.uniform(5, 60, 15)
    pt[0], pt[1] = 200.0, 90.0
    if pt[cols > 12].sum() < pt[cols < 12].sum():
        cols = 24 - cols
    parts = p4(pt, centres[cols], centres[rows])
    image = jet_images(parts[None], np.array([15]), parts[None, :2], pixels=25)
    np.testing.assert_allclose(image_mass(image)[0], invariant_mass(parts.sum(0)), rtol=1e-5)


def test_tau21_against_scikit_learn_kmeans():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(2)
    image = np.zeros((25, 25))
    for row, col in ((12, 12), (5, 13)):
        image[row - 1 : row + 2, col - 1 : col + 2] += rng.uniform(1, 20, (3, 3))
    centres = pixel_centres(25, 1.25)
    phi, eta = np.meshgrid(centres, centres, indexing="ij")
    points = np.stack([eta.ravel(), phi.ravel()], axis=-1)
    w = image.ravel()
    km = KMeans(2, n_init=10, random_state=0).fit(points, sample_weight=w)
    dist = np.linalg.norm(points[:, None] - km.cluster_centers_[None], axis=-1).min(axis=1)
    centroid = (w @ points) / w.sum()
    tau1 = (w * np.linalg.norm(points - centroid, axis=1)).sum()
    expected = (w * dist).sum() / tau1
    assert image_tau21(image[None])[0] == pytest.approx(expected, rel=1e-6)
    one_prong = np.zeros((1, 25, 25))
    one_prong[0, 10:15, 10:15] = rng.uniform(1, 20, (5, 5))
    assert image_tau21(one_prong)[0] > 2 * image_tau21(image[None])[0]
