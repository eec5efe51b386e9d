"""Tests of physgan.data.toy against SciPy's Gaussians, quadrature and analytic moments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate, special, stats

from physgan.data.toy import TOY_DATASETS, GaussianMixture, bimodal_1d, grid25, ring8


def _asymmetric_1d() -> GaussianMixture:
    return GaussianMixture([-1.0, 0.5, 3.0], [[[0.3**2]], [[1.2**2]], [[0.7**2]]], [0.2, 0.5, 0.3])


def _correlated_2d() -> GaussianMixture:
    covs = [[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.3], [-0.3, 1.5]], [[2.0, 0.0], [0.0, 0.3]]]
    return GaussianMixture([[-1.0, 0.0], [1.5, 1.0], [0.0, -2.0]], covs, [0.5, 0.3, 0.2])


MIXTURES = {
    "asymmetric_1d": _asymmetric_1d,
    "correlated_2d": _correlated_2d,
    **{name: TOY_DATASETS.get(name) for name in TOY_DATASETS},
}


def _scipy_density(gm: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """Weighted sum of scipy.stats.multivariate_normal densities, from the raw parameters."""
    return sum(
        w * stats.multivariate_normal(mean=m, cov=c).pdf(x)
        for w, m, c in zip(gm.weights, gm.means, gm.covs, strict=True)
    )


def _analytic_moments(gm: GaussianMixture) -> tuple[np.ndarray, np.ndarray]:
    """Mixture mean sum_k w_k mu_k and covariance sum_k w_k (S_k + mu_k mu_k^T) - m m^T."""
    mean = gm.weights @ gm.means
    second = np.einsum("k,kij->ij", gm.weights, gm.covs + np.einsum("ki,kj->kij", *[gm.means] * 2))
    return mean, second - np.outer(mean, mean)


def test_registry_names_and_types():
    assert TOY_DATASETS.names() == ["bimodal", "grid25", "ring8"]
    assert TOY_DATASETS.get("bimodal") is bimodal_1d
    for name in TOY_DATASETS:
        assert isinstance(TOY_DATASETS.get(name)(), GaussianMixture)


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_log_prob_matches_scipy(name):
    gm = MIXTURES[name]()
    rng = np.random.default_rng(1)
    # Points near the modes and well away from them.
    x = np.concatenate([gm.sample(200, seed=2), rng.uniform(-6, 6, size=(200, gm.dim))], axis=0)
    np.testing.assert_allclose(gm.prob(x), _scipy_density(gm, x), rtol=1e-10, atol=0)
    log_terms = [
        np.log(w) + stats.multivariate_normal(mean=m, cov=c).logpdf(x)
        for w, m, c in zip(gm.weights, gm.means, gm.covs, strict=True)
    ]
    np.testing.assert_allclose(gm.log_prob(x), special.logsumexp(log_terms, axis=0), rtol=1e-10)
    np.testing.assert_array_equal(gm(x), gm.prob(x))


def test_log_prob_1d_matches_norm_and_accepts_flat_input():
    gm = bimodal_1d()
    x = np.linspace(-8, 8, 101)
    expected = 0.5 * stats.norm(-2, 0.5).pdf(x) + 0.5 * stats.norm(2, 0.5).pdf(x)
    np.testing.assert_allclose(gm.prob(x), expected, rtol=1e-12)
    np.testing.assert_array_equal(gm.log_prob(x), gm.log_prob(x[:, None]))


def test_log_prob_stays_finite_in_far_tails():
    gm = bimodal_1d()
    x = np.array([-60.0, 60.0])
    # Far from both modes the nearer one dominates: log(0.5 N(60; 2, 0.5^2)).
    expected = np.log(0.5) + stats.norm(2, 0.5).logpdf(60.0)
    np.testing.assert_allclose(gm.log_prob(x), [expected, expected], rtol=1e-12)


@pytest.mark.parametrize("make", [bimodal_1d, _asymmetric_1d])
def test_1d_density_integrates_to_one(make):
    gm = make()
    points = (gm.means[:, 0, None] + gm.stds[:, 0, None] * np.array([-3.0, 0.0, 3.0])).ravel()
    lo, hi = points.min(), points.max()
    inner = integrate.quad(lambda t: gm.prob(np.array([t]))[0], lo, hi, points=points)[0]
    left = integrate.quad(lambda t: gm.prob(np.array([t]))[0], -np.inf, lo)[0]
    right = integrate.quad(lambda t: gm.prob(np.array([t]))[0], hi, np.inf)[0]
    assert inner + left + right == pytest.approx(1.0, abs=1e-10)


def test_2d_density_integrates_to_one_on_a_grid():
    gm = _correlated_2d()
    # Every component lies well inside the box; mass outside is < 1e-12.
    ticks = np.linspace(-14, 14, 561)
    xx, yy = np.meshgrid(ticks, ticks, indexing="ij")
    dens = gm.prob(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
    mass = integrate.trapezoid(integrate.trapezoid(dens, ticks, axis=1), ticks)
    assert mass == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_sample_moments_match_analytic(name):
    gm = MIXTURES[name]()
    n = 200_000
    x = gm.sample(n, seed=7)
    assert x.shape == (n, gm.dim)
    mean, cov = _analytic_moments(gm)
    # Standard errors estimated from the sample itself: valid for any finite-variance law.
    mean_se = x.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * mean_se)
    centred = x - mean
    products = np.einsum("ni,nj->nij", centred, centred)
    cov_se = products.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(axis=0) - cov) < 5 * cov_se + 1e-12)


def test_sample_weights_follow_the_mixture():
    gm = GaussianMixture.isotropic([-10.0, 0.0, 10.0], 0.1, weights=[1, 2, 7])
    x = gm.sample(100_000, seed=3)[:, 0]
    fractions = np.array([np.mean(x < -5), np.mean(np.abs(x) < 5), np.mean(x > 5)])
    se = np.sqrt(gm.weights * (1 - gm.weights) / x.size)
    assert np.all(np.abs(fractions - [0.1, 0.2, 0.7]) < 5 * se)


def test_sample_is_deterministic_per_seed():
    gm = ring8()
    np.testing.assert_array_equal(gm.sample(500, seed=11), gm.sample(500, seed=11))
    assert not np.array_equal(gm.sample(500, seed=11), gm.sample(500, seed=12))
    # A Generator is used as given and advanced.
    rng = np.random.default_rng(11)
    first, second = gm.sample(500, seed=rng), gm.sample(500, seed=rng)
    np.testing.assert_array_equal(first, gm.sample(500, seed=11))
    assert not np.array_equal(first, second)
    assert gm.sample(0, seed=0).shape == (0, 2)


def test_sample_labelled_labels_the_component():
    gm = grid25()
    x, labels = gm.sample_labelled(5000, seed=4)
    np.testing.assert_array_equal(x, gm.sample(5000, seed=4))
    assert labels.dtype == np.int64
    # With sigma 0.05 on a spacing of 2, each point is nearest its own centre.
    nearest = np.argmin(((x[:, None, :] - gm.means[None]) ** 2).sum(axis=-1), axis=1)
    np.testing.assert_array_equal(labels, nearest)


def test_ring8_centres():
    gm = ring8()
    angles = 2 * np.pi * np.arange(8) / 8
    np.testing.assert_allclose(np.hypot(*gm.means.T), 2.0, rtol=1e-14)
    np.testing.assert_allclose(np.arctan2(gm.means[:, 1], gm.means[:, 0]) % (2 * np.pi), angles)
    np.testing.assert_allclose(gm.stds, 0.02)
    np.testing.assert_allclose(gm.weights, 1 / 8)
    np.testing.assert_allclose(ring8(radius=3.0, sigma=0.1).means, 1.5 * gm.means)


def test_grid25_centres():
    gm = grid25()
    expected = sorted(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert sorted(map(tuple, gm.means.tolist())) == expected
    np.testing.assert_allclose(gm.stds, 0.05)
    np.testing.assert_allclose(gm.weights, 1 / 25)


def test_bimodal_parameters():
    gm = bimodal_1d()
    assert (gm.dim, gm.n_components) == (1, 2)
    np.testing.assert_array_equal(gm.means, [[-2.0], [2.0]])
    np.testing.assert_array_equal(gm.covs, [[[0.25]], [[0.25]]])


def test_properties_are_read_only_and_weights_normalised():
    gm = GaussianMixture.isotropic([[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0], weights=[3, 1])
    np.testing.assert_allclose(gm.weights, [0.75, 0.25])
    np.testing.assert_allclose(gm.stds, [[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="read-only"):
        gm.means[0, 0] = 5.0


def test_zero_weight_component_is_ignored():
    with_zero = GaussianMixture.isotropic([0.0, 5.0], 1.0, weights=[1.0, 0.0])
    x = np.linspace(-5, 10, 31)
    np.testing.assert_allclose(with_zero.prob(x), stats.norm(0, 1).pdf(x), rtol=1e-12)
    assert np.all(with_zero.sample(1000, seed=0) < 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"means": np.zeros((2, 2, 2)), "covs": np.ones((2, 1, 1))}, "means"),
        ({"means": np.zeros((0, 1)), "covs": np.ones((0, 1, 1))}, "means"),
        ({"means": [0.0, np.nan], "covs": np.ones((2, 1, 1))}, "means"),
        ({"means": [0.0, 1.0], "covs": np.ones((2, 1))}, "covs"),
        ({"means": [0.0, 1.0], "covs": np.ones((3, 1, 1))}, "covs"),
        ({"means": [0.0, 1.0], "covs": [[[1.0]], [[np.inf]]]}, "covs"),
        ({"means": [0.0, 1.0], "covs": [[[1.0]], [[-1.0]]]}, "covs.*positive definite"),
        ({"means": [[0.0, 0.0]], "covs": [[[1.0, 2.0], [2.0, 1.0]]]}, "covs.*positive definite"),
        ({"means": [[0.0, 0.0]], "covs": [[[1.0, 0.5], [0.0, 1.0]]]}, "covs.*symmetric"),
        ({"means": [0.0, 1.0], "covs": np.ones((2, 1, 1)), "weights": [1.0, -0.5]}, "weights"),
        ({"means": [0.0, 1.0], "covs": np.ones((2, 1, 1)), "weights": [0.0, 0.0]}, "weights"),
        ({"means": [0.0, 1.0], "covs": np.ones((2, 1, 1)), "weights": [1.0]}, "weights"),
        ({"means": [0.0, 1.0], "covs": np.ones((2, 1, 1)), "weights": [1.0, np.nan]}, "weights"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


@pytest.mark.parametrize(
    ("sigma", "match"), [(0.0, "sigma"), (-1.0, "sigma"), ([1.0, 2.0, 3.0], "sigma")]
)
def test_isotropic_bad_sigma_raises(sigma, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture.isotropic([0.0, 1.0], sigma)


def test_bad_points_and_sizes_raise():
    gm = ring8()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        gm.log_prob(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        gm.log_prob(np.array([[0.0, np.nan]]))
    np.testing.assert_array_equal(bimodal_1d().log_prob(np.array([-np.inf, np.inf])), -np.inf)
    with pytest.raises(ValueError, match="n must be"):
        gm.sample(-1, seed=0)
    with pytest.raises(ValueError, match="n must be"):
        gm.sample(2.5, seed=0)
