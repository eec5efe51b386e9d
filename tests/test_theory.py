"""Tests of physgan.theory against fine-grid integrals, Monte Carlo and moment matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from physgan.data.toy import GaussianMixture, bimodal_1d
from physgan.theory import (
    OBJECTIVES,
    c_of_g,
    fit_gaussian,
    fit_gaussians,
    optimal_discriminator,
    value,
)

LN4 = math.log(4.0)


def _gauss(mu: float, sigma: float) -> GaussianMixture:
    return GaussianMixture.isotropic([mu], sigma)


def _asymmetric() -> GaussianMixture:
    return GaussianMixture([-1.0, 0.5, 3.0], [[[0.3**2]], [[1.2**2]], [[0.7**2]]], [0.2, 0.5, 0.3])


def _scipy_logpdf(gm: GaussianMixture):
    """log density of a 1-D mixture from scipy.stats.norm, independent of GaussianMixture."""
    mus, sigmas, weights = gm.means[:, 0].copy(), gm.stds[:, 0].copy(), gm.weights.copy()

    def logpdf(x: np.ndarray) -> np.ndarray:
        terms = [
            math.log(w) + stats.norm(m, s).logpdf(x)
            for m, s, w in zip(mus, sigmas, weights, strict=True)
        ]
        return special.logsumexp(terms, axis=0)

    return logpdf


def _grid(lo: float, hi: float, n: int = 400_001) -> np.ndarray:
    return np.linspace(lo, hi, n)


def _jsd_grid(logpdf_p, logpdf_q, lo: float, hi: float) -> float:
    """JSD by the trapezoid rule on a fine grid, from log densities (no underflow of m)."""
    x = _grid(lo, hi)
    lp, lq = logpdf_p(x), logpdf_q(x)
    lm = np.logaddexp(lp, lq) - math.log(2)
    integrand = 0.5 * np.exp(lp) * (lp - lm) + 0.5 * np.exp(lq) * (lq - lm)
    return float(np.trapezoid(integrand, x))


def _kl_grid(logpdf_p, logpdf_q, lo: float, hi: float) -> float:
    x = _grid(lo, hi)
    lp, lq = logpdf_p(x), logpdf_q(x)
    return float(np.trapezoid(np.exp(lp) * (lp - lq), x))


# (p_data, p_g, lo, hi, scipy log-pdfs of both for the independent JSD, its grid window)
PAIRS = {
    "plain N(0,1) vs N(1,1)": (
        stats.norm(0, 1).pdf,
        stats.norm(1, 1).pdf,
        -np.inf,
        np.inf,
        stats.norm(0, 1).logpdf,
        stats.norm(1, 1).logpdf,
    ),
    "N(0,1) vs N(0.5,2)": (
        _gauss(0.0, 1.0),
        _gauss(0.5, 2.0),
        -np.inf,
        np.inf,
        stats.norm(0, 1).logpdf,
        stats.norm(0.5, 2).logpdf,
    ),
    "plain N(-1,0.3) vs N(2,1.5)": (
        stats.norm(-1, 0.3).pdf,
        stats.norm(2, 1.5).pdf,
        -15.0,
        15.0,
        stats.norm(-1, 0.3).logpdf,
        stats.norm(2, 1.5).logpdf,
    ),
    "narrow N(0,0.01) vs N(0.02,0.015)": (
        _gauss(0.0, 0.01),
        _gauss(0.02, 0.015),
        -10.0,
        10.0,
        stats.norm(0, 0.01).logpdf,
        stats.norm(0.02, 0.015).logpdf,
    ),
    "bimodal vs N(0,2)": (
        bimodal_1d(),
        _gauss(0.0, 2.0),
        -20.0,
        20.0,
        _scipy_logpdf(bimodal_1d()),
        stats.norm(0, 2).logpdf,
    ),
    "bimodal vs N(2,0.5)": (
        bimodal_1d(),
        _gauss(2.0, 0.5),
        -np.inf,
        np.inf,
        _scipy_logpdf(bimodal_1d()),
        stats.norm(2, 0.5).logpdf,
    ),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_c_of_g_identity(name):
    p_data, p_g, lo, hi, logpdf_data, logpdf_g = PAIRS[name]
    identity = c_of_g(p_data, p_g, lo, hi)
    assert identity.v_opt == pytest.approx(identity.rhs, abs=1e-6)
    assert identity.rhs == -LN4 + 2 * identity.jsd
    grid_lo, grid_hi = max(lo, -20.0), min(hi, 20.0)
    jsd_independent = _jsd_grid(logpdf_data, logpdf_g, grid_lo, grid_hi)
    assert identity.v_opt == pytest.approx(-LN4 + 2 * jsd_independent, abs=1e-6)
    assert 0 < identity.jsd < math.log(2)


def test_optimal_discriminator_matches_ratio():
    d_star = optimal_discriminator(bimodal_1d(), _gauss(0.5, 1.5))
    x = np.linspace(-6, 6, 240)
    pd = 0.5 * stats.norm(-2, 0.5).pdf(x) + 0.5 * stats.norm(2, 0.5).pdf(x)
    pg = stats.norm(0.5, 1.5).pdf(x)
    np.testing.assert_allclose(d_star(x), pd / (pd + pg), rtol=1e-12)
    np.testing.assert_allclose(d_star.logit(x), np.log(pd) - np.log(pg), rtol=1e-10)
    assert d_star(x.reshape(3, -1)).shape == (3, 80)


def test_optimal_discriminator_where_densities_vanish():
    # Disjoint supports: D* = 1 on p_data's, 0 on p_g's, 1/2 where neither has mass.
    d_star = optimal_discriminator(stats.uniform(0, 1).pdf, stats.uniform(2, 1).pdf)
    np.testing.assert_array_equal(d_star(np.array([0.5, 1.5, 2.5, -7.0])), [1.0, 0.5, 0.0, 0.5])
    identity = c_of_g(stats.uniform(0, 1).pdf, stats.uniform(2, 1).pdf, -1, 4, points=[0, 1, 2, 3])
    assert identity.v_opt == pytest.approx(0.0, abs=1e-9)  # -ln 4 + 2 ln 2
    assert identity.jsd == pytest.approx(math.log(2), abs=1e-9)


@pytest.mark.parametrize(
    ("p", "lo", "hi"),
    [(stats.norm(0.3, 0.7).pdf, -np.inf, np.inf), (bimodal_1d(), -np.inf, np.inf)],
)
def test_equal_densities_give_half_and_minus_ln4(p, lo, hi):
    d_star = optimal_discriminator(p, p)
    # Far out both densities underflow (plain pdf) or agree exactly (log_prob): D* = 1/2.
    x = np.array([-1e3, -3.0, 0.0, 0.4, 2.0, 1e3])
    np.testing.assert_array_equal(d_star(x), 0.5)
    assert value(d_star, p, p, lo, hi) == pytest.approx(-LN4, abs=1e-9)
    identity = c_of_g(p, p, lo, hi)
    assert identity.jsd == pytest.approx(0.0, abs=1e-9)
    assert identity.v_opt == pytest.approx(-LN4, abs=1e-9)


def _perturbations(d_star, rng: np.random.Generator) -> dict[str, object]:
    out = {
        "0.9 D*": lambda x: 0.9 * d_star(x),
        "D* halfway to 1/2": lambda x: 0.5 * (d_star(x) + 0.5),
        "D* to the power 1.2": lambda x: d_star(x) ** 1.2,
        "constant 1/2": lambda x: np.full_like(x, 0.5),
    }
    for i in range(5):
        # Logits of at most ~60 on the window: D stays strictly inside (0, 1).
        coeffs = rng.normal(0.0, 2.0, size=4)
        out[f"sigmoid of polynomial {i}"] = lambda x, c=coeffs: special.expit(
            np.polyval(c, x / 7.5)
        )
    return out


@pytest.mark.parametrize(
    ("p_data", "p_g"),
    [(bimodal_1d(), _gauss(0.0, 2.0)), (stats.norm(0, 1).pdf, stats.norm(1, 1).pdf)],
)
def test_any_other_discriminator_gives_less(p_data, p_g):
    lo, hi = -15.0, 15.0  # holds all but 1e-13 of both densities' mass
    d_star = optimal_discriminator(p_data, p_g)
    v_opt = value(d_star, p_data, p_g, lo, hi)
    for name, d in _perturbations(d_star, np.random.default_rng(20140610)).items():
        v = value(d, p_data, p_g, lo, hi)
        assert v < v_opt - 1e-6, name
        if name == "constant 1/2":
            assert v == pytest.approx(-LN4, abs=1e-9)


class _LogisticD:
    """D(x) = sigmoid(a + b x), given by its logit so that log D is exact in the tails."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def logit(self, x: np.ndarray) -> np.ndarray:
        return self.a + self.b * x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return special.expit(self.logit(x))


@pytest.mark.parametrize(
    "d",
    [_LogisticD(0.3, 1.2), lambda x: 0.05 + 0.9 * special.expit(0.3 - 0.8 * x)],
    ids=["logit", "plain"],
)
def test_value_matches_monte_carlo(d):
    p_data, p_g = bimodal_1d(), _gauss(0.5, 1.5)
    n = 400_000
    x_data = p_data.sample(n, seed=1)[:, 0]
    x_g = p_g.sample(n, seed=2)[:, 0]
    log_d = np.log(d(x_data))
    log_1m_d = np.log1p(-d(x_g))
    v_mc = log_d.mean() + log_1m_d.mean()
    se = math.sqrt(log_d.var() / n + log_1m_d.var() / n)
    assert value(d, p_data, p_g, -np.inf, np.inf) == pytest.approx(v_mc, abs=5 * se)


def test_value_is_minus_inf_where_d_rejects_mass():
    p_data, p_g = _gauss(0.0, 1.0), _gauss(3.0, 1.0)
    assert value(lambda x: np.where(x < 1, 0.0, 1.0), p_data, p_g, -10, 10) == -math.inf
    assert value(lambda x: np.ones_like(x), p_data, p_g, -10, 10) == -math.inf
    # D = 0 only where p_data has no mass costs nothing there.
    uniform_data = stats.uniform(0, 1).pdf
    d_off_support = lambda x: np.where((x > 0) & (x < 1), 0.5, 0.0)  # noqa: E731
    v = value(d_off_support, uniform_data, stats.uniform(0, 1).pdf, -1, 2, points=[0, 1])
    assert v == pytest.approx(-LN4, abs=1e-9)


def test_value_rejects_bad_input():
    p = _gauss(0.0, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        value(lambda x: np.full_like(x, 1.5), p, p, -5, 5)
    with pytest.raises(ValueError, match="lo < hi"):
        value(lambda x: np.full_like(x, 0.5), p, p, 5, -5)
    with pytest.raises(ValueError, match="1-D"):
        value(lambda x: np.full_like(x, 0.5), GaussianMixture.isotropic([[0.0, 0.0]], 1.0), p, 0, 1)


# ------------------------------------------------------------------------------------- fits


@pytest.fixture(scope="module")
def bimodal_fits():
    return fit_gaussians(bimodal_1d(), -10, 10)


def _mixture_moments(gm: GaussianMixture) -> tuple[float, float]:
    """Mean and std of a 1-D mixture: the maximum-likelihood Gaussian (moment matching)."""
    mus, variances, weights = gm.means[:, 0], gm.stds[:, 0] ** 2, gm.weights
    mean = float(weights @ mus)
    return mean, math.sqrt(float(weights @ (variances + mus**2)) - mean**2)


def test_fit_gaussians_returns_every_objective(bimodal_fits):
    assert list(bimodal_fits) == list(OBJECTIVES)
    for name, fit in bimodal_fits.items():
        assert fit.objective == name
        assert all(isinstance(v, float) for v in fit[1:])


@pytest.mark.parametrize("make", [bimodal_1d, _asymmetric])
def test_forward_kl_fit_is_moment_matching(make, bimodal_fits):
    gm = make()
    fit = (
        bimodal_fits["forward_kl"]
        if make is bimodal_1d
        else fit_gaussian(gm, "forward_kl", -10, 10)
    )
    mean, std = _mixture_moments(gm)
    assert fit.mu == pytest.approx(mean, abs=1e-3)
    assert fit.sigma == pytest.approx(std, abs=1e-3)
    if make is bimodal_1d:
        assert std == pytest.approx(math.sqrt(0.25 + 4.0))


def test_forward_fit_of_a_plain_callable_agrees():
    left, right = stats.norm(-2, 0.5), stats.norm(2, 0.5)
    pdf = lambda x: 0.5 * left.pdf(x) + 0.5 * right.pdf(x)  # noqa: E731
    fit = fit_gaussian(pdf, "forward_kl", -10, 10)
    assert fit.mu == pytest.approx(0.0, abs=1e-3)
    assert fit.sigma == pytest.approx(math.sqrt(4.25), abs=1e-3)


def test_reverse_kl_fit_seeks_one_mode(bimodal_fits):
    fit = bimodal_fits["reverse_kl"]
    assert abs(fit.mu) == pytest.approx(2.0, abs=0.1)
    assert fit.sigma == pytest.approx(0.5, abs=0.1)
    # On one mode q/p ~ 2, so KL(q || p) ~ ln 2; forward KL pays for the missed mode.
    assert fit.kl_reverse == pytest.approx(math.log(2), abs=1e-3)
    assert fit.kl_forward > 5.0


def test_each_fit_is_optimal_for_its_own_objective(bimodal_fits):
    by_objective = {"forward_kl": "kl_forward", "reverse_kl": "kl_reverse", "jsd": "jsd"}
    for name, field in by_objective.items():
        own = getattr(bimodal_fits[name], field)
        for other in bimodal_fits.values():
            assert own <= getattr(other, field) + 1e-9, (name, other.objective)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_reported_divergences_match_a_grid(objective, bimodal_fits):
    fit = bimodal_fits[objective]
    log_data, log_fit = _scipy_logpdf(bimodal_1d()), stats.norm(fit.mu, fit.sigma).logpdf
    assert fit.kl_forward == pytest.approx(_kl_grid(log_data, log_fit, -10, 10), abs=1e-6)
    assert fit.kl_reverse == pytest.approx(_kl_grid(log_fit, log_data, -10, 10), abs=1e-6)
    assert fit.jsd == pytest.approx(_jsd_grid(log_data, log_fit, -10, 10), abs=1e-6)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="forward_kl, jsd, reverse_kl"):
        fit_gaussian(bimodal_1d(), "reverse-kl", -10, 10)
    with pytest.raises(ValueError, match="finite window"):
        fit_gaussian(bimodal_1d(), "jsd", -np.inf, 10)
    with pytest.raises(ValueError, match="mass"):
        fit_gaussian(bimodal_1d(), "jsd", 0, 10)
