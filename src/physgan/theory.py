"""The lecture's GAN theory in numbers: V(D, G), the optimal discriminator, C(G), and why the
direction of the KL divergence decides between covering and seeking modes.

Goodfellow et al. 2014 (arXiv:1406.2661) write the GAN game as

    V(D, G) = E_{x ~ p_data}[log D(x)] + E_{x ~ p_g}[log(1 - D(x))].

For fixed G the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Prop. 1), and
at D* the game's value is C(G) = V(D*, G) = -ln 4 + 2 JSD(p_data || p_g) (Thm. 1), minimal
exactly when p_g = p_data. :func:`value`, :func:`optimal_discriminator` and :func:`c_of_g` compute
these for 1-D densities by adaptive quadrature, so both sides of the identity can be compared.

:func:`fit_gaussian` fits one Gaussian to a (multimodal) density by minimising the forward KL
(maximum likelihood: the fit covers all modes), the reverse KL (the fit seeks one mode) or the
JSD (the GAN's divergence at the optimal discriminator). Everything is in nats.

Densities are plain callables ``x -> p(x)`` on a 1-D NumPy array, or objects with a
``log_prob(x)`` method (such as :class:`physgan.data.toy.GaussianMixture`), which is used in
preference so that far tails stay exact in log space. Objects that expose ``means`` and ``stds``
(a 1-D mixture) also tell the quadrature where their mass lies, so narrow peaks are never missed;
for other callables, pass such ``points`` yourself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from physgan import divergences
from physgan.data.toy import GaussianMixture
from physgan.errors import ConfigError

__all__ = [
    "OBJECTIVES",
    "CGIdentity",
    "GaussianFit",
    "OptimalDiscriminator",
    "c_of_g",
    "fit_gaussian",
    "fit_gaussians",
    "optimal_discriminator",
    "value",
]

LN4 = math.log(4.0)

#: The divergences :func:`fit_gaussian` can minimise.
OBJECTIVES = ("forward_kl", "reverse_kl", "jsd")


class HasLogProb(Protocol):
    """A density given by its natural log, ``log_prob(x) -> log p(x)`` on a 1-D array."""

    def log_prob(self, x: np.ndarray) -> np.ndarray: ...


Density = Callable[[np.ndarray], np.ndarray] | HasLogProb

# Offsets, in component standard deviations, where a mixture's mass changes: quadrature pieces.
_HINT_OFFSETS = np.array([-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0])
# Adaptive-quadrature tolerances per piece; V and JSD are O(1), so 1e-10 is far below 1e-6.
_QUAD_EPSABS = 1e-11
_QUAD_EPSREL = 1e-10
_QUAD_LIMIT = 200
# An integral whose error estimate exceeds this (absolute, or relative to the value) is an error:
# ten times below the 1e-6 to which C(G) = -ln 4 + 2 JSD is checked.
_QUAD_ACCEPT = 1e-7


class _MinusInfinity(Exception):
    """Raised inside an integrand to stop quad: V(D, G) is -inf."""


# ---------------------------------------------------------------------------------------------
# densities and quadrature helpers


def _log_density(p: Density) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> log p(x)`` for any shape of x (see :func:`physgan.divergences.log_density`)."""
    if hasattr(p, "dim") and p.dim != 1:
        raise ValueError(f"theory works with 1-D densities, got one of dimension {p.dim}")
    return divergences.log_density(p)


def _mixture_parts(p: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(means, stds) of a 1-D mixture-like density, or None for other densities."""
    means, stds = getattr(p, "means", None), getattr(p, "stds", None)
    if means is None or stds is None:
        return None
    return np.asarray(means, dtype=float).reshape(-1), np.asarray(stds, dtype=float).reshape(-1)


def _hint_points(*densities: object) -> np.ndarray:
    """Where the mass of mixture-like densities lies: around each mean, in steps of its std."""
    points = [np.empty(0)]
    for p in densities:
        parts = _mixture_parts(p)
        if parts is not None:
            means, stds = parts
            points.append((means[:, None] + stds[:, None] * _HINT_OFFSETS).ravel())
    return np.concatenate(points)


def _peaks(points: Sequence[float] | None, *densities: object) -> list[float]:
    """Peak locations for :mod:`physgan.divergences`, which lays its own ladder around each."""
    peaks = [np.empty(0)] if points is None else [np.asarray(points, dtype=float).reshape(-1)]
    for p in densities:
        parts = _mixture_parts(p)
        if parts is not None:
            peaks.append(parts[0])
    out = np.unique(np.concatenate(peaks))
    return out[np.isfinite(out)].tolist()


def _check_window(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")
    return lo, hi


def _pieces(lo: float, hi: float, points: np.ndarray) -> np.ndarray:
    inside = points[np.isfinite(points) & (points > lo) & (points < hi)]
    return np.unique(np.concatenate([[lo, hi], inside]))


def _integrate(
    f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, points: np.ndarray
) -> float:
    """Adaptive quadrature of a vectorised integrand, split at ``points`` (lo/hi may be inf)."""

    def scalar(t: float) -> float:
        return float(f(np.array([t]))[0])

    edges = _pieces(lo, hi, points)
    total, error = [], 0.0
    for a, b in itertools.pairwise(edges):
        # full_output: quad returns its diagnostics instead of warning; judged below.
        piece, abserr, *_ = quad(
            scalar, a, b, epsabs=_QUAD_EPSABS, epsrel=_QUAD_EPSREL, limit=_QUAD_LIMIT, full_output=1
        )
        total.append(piece)
        error += abserr
    result = math.fsum(total)
    if not math.isfinite(result) or error > _QUAD_ACCEPT * max(1.0, abs(result)):
        raise ValueError(
            f"quadrature did not converge (value {result}, error estimate {error}); pass "
            "break points near narrow features with `points`"
        )
    return result


def _p_times(p: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """``p * log_y`` with 0 * (-inf) = 0: points without mass contribute nothing."""
    return np.multiply(p, log_y, out=np.zeros(np.broadcast(p, log_y).shape), where=p > 0)


def _all_points(points: Sequence[float] | None, *densities: object) -> np.ndarray:
    extra = np.empty(0) if points is None else np.asarray(points, dtype=float).reshape(-1)
    return np.concatenate([_hint_points(*densities), extra])


# ---------------------------------------------------------------------------------------------
# V(D, G), D* and C(G)


class OptimalDiscriminator:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), evaluated stably from log densities.

    D* is the logistic sigmoid of its logit ``log p_data(x) - log p_g(x)``; it is 1/2 where
    both densities vanish. :func:`value` uses :meth:`logit` to get ``log D*`` and
    ``log(1 - D*)`` without rounding D* to 0 or 1 in the tails. Goodfellow et al. 2014,
    arXiv:1406.2661, Prop. 1.
    """

    def __init__(self, p_data: Density, p_g: Density) -> None:
        self.p_data = p_data
        self.p_g = p_g
        self._log_p_data = _log_density(p_data)
        self._log_p_g = _log_density(p_g)

    def logit(self, x: ArrayLike) -> np.ndarray:
        """``log D*(x) - log(1 - D*(x)) = log p_data(x) - log p_g(x)``, same shape as x."""
        log_pd, log_pg = self._log_p_data(x), self._log_p_g(x)
        both_zero = np.isneginf(log_pd) & np.isneginf(log_pg)
        return np.subtract(log_pd, log_pg, out=np.zeros(log_pd.shape), where=~both_zero)

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """D*(x) in [0, 1], same shape as x."""
        return expit(self.logit(x))


def optimal_discriminator(p_data: Density, p_g: Density) -> OptimalDiscriminator:
    """The discriminator that maximises V(D, G) for fixed G (arXiv:1406.2661, Prop. 1).

    Args:
        p_data, p_g: 1-D densities (callables, or objects with ``log_prob``).

    Returns:
        a callable ``x -> D*(x)`` (same shape as x) that also has a ``logit`` method.

    >>> from physgan.data.toy import GaussianMixture
    >>> p_data = GaussianMixture.isotropic([0.0], 1.0)
    >>> p_g = GaussianMixture.isotropic([1.0], 1.0)
    >>> d_star = optimal_discriminator(p_data, p_g)
    >>> d_star(np.array([0.5, 100.0])).round(6).tolist()  # logit = 0.5 - x
    [0.5, 0.0]
    >>> float(d_star.logit(np.array([100.0]))[0])
    -99.5
    """
    return OptimalDiscriminator(p_data, p_g)


def _log_d_pair(
    discriminator: Callable[[np.ndarray], np.ndarray],
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``x -> (log D(x), log(1 - D(x)))``, through ``D.logit`` when D has one."""
    logit = getattr(discriminator, "logit", None)

    def log_d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if callable(logit):
            z = np.broadcast_to(np.asarray(logit(x), dtype=float), x.shape)
            return log_expit(z), log_expit(-z)
        d = np.broadcast_to(np.asarray(discriminator(x), dtype=float), x.shape)
        if np.any(np.isnan(d)) or np.any(d < 0) or np.any(d > 1):
            raise ValueError("the discriminator must return values in [0, 1]")
        # D = 0 or 1 exactly gives -inf; value() turns that into V = -inf where it has mass.
        with np.errstate(divide="ignore"):
            return np.log(d), np.log1p(-d)

    return log_d


def value(
    D: Callable[[np.ndarray], np.ndarray],
    p_data: Density,
    p_g: Density,
    lo: float,
    hi: float,
    *,
    points: Sequence[float] | None = None,
) -> float:
    """V(D, G) = E_data[log D(x)] + E_g[log(1 - D(x))] for 1-D densities, in nats.

    Both expectations are integrals over [lo, hi] (infinite ends allowed), computed by adaptive
    quadrature split at the densities' modes, with 0 log 0 = 0. Goodfellow et al. 2014,
    arXiv:1406.2661, eq. (1).

    Args:
        D: the discriminator, ``x -> D(x)`` in [0, 1] on a 1-D array. If it has a ``logit``
            method (as :func:`optimal_discriminator`'s result does), ``log D`` and
            ``log(1 - D)`` come from the logit, exact in the tails.
        p_data, p_g: 1-D densities (callables, or objects with ``log_prob``).
        lo, hi: the integration window, lo < hi.
        points: where else the integrands change quickly (narrow peaks of plain callables).

    Returns:
        V(D, G); ``-inf`` when D = 0 on mass of p_data, or D = 1 on mass of p_g.

    >>> from physgan.data.toy import GaussianMixture
    >>> p_data = GaussianMixture.isotropic([0.0], 1.0)
    >>> p_g = GaussianMixture.isotropic([3.0], 1.0)
    >>> round(value(lambda x: np.full_like(x, 0.5), p_data, p_g, -np.inf, np.inf), 9)
    -1.386294361
    >>> value(lambda x: np.zeros_like(x), p_data, p_g, -np.inf, np.inf)
    -inf
    """
    lo, hi = _check_window(lo, hi)
    log_p_data, log_p_g = _log_density(p_data), _log_density(p_g)
    log_d_pair = _log_d_pair(D)

    def integrand(x: np.ndarray) -> np.ndarray:
        log_d, log_1m_d = log_d_pair(x)
        out = _p_times(np.exp(log_p_data(x)), log_d) + _p_times(np.exp(log_p_g(x)), log_1m_d)
        if np.any(np.isneginf(out)):
            raise _MinusInfinity
        return out

    try:
        return _integrate(integrand, lo, hi, _all_points(points, p_data, p_g, D))
    except _MinusInfinity:
        return -math.inf


class CGIdentity(NamedTuple):
    """Both sides of C(G) = V(D*, G) = -ln 4 + 2 JSD(p_data || p_g), in nats."""

    v_opt: float
    """V(D*, G) by quadrature of the game's value at the optimal discriminator."""
    jsd: float
    """JSD(p_data || p_g) from :func:`physgan.divergences.js_density`."""
    rhs: float
    """-ln 4 + 2 jsd."""


def c_of_g(
    p_data: Density,
    p_g: Density,
    lo: float,
    hi: float,
    *,
    points: Sequence[float] | None = None,
) -> CGIdentity:
    """Compute C(G) = V(D*, G) and, independently, -ln 4 + 2 JSD (arXiv:1406.2661, Thm. 1).

    The two agree to quadrature accuracy; the difference is the identity's numerical check.

    Args:
        p_data, p_g: 1-D densities (callables, or objects with ``log_prob``).
        lo, hi: the integration window, lo < hi (infinite ends allowed).
        points: extra quadrature break points for :func:`value`.

    >>> from physgan.data.toy import GaussianMixture, bimodal_1d
    >>> c = c_of_g(bimodal_1d(), GaussianMixture.isotropic([0.0], 2.0), -20, 20)
    >>> abs(c.v_opt - c.rhs) < 1e-6
    True
    """
    d_star = optimal_discriminator(p_data, p_g)
    v_opt = value(d_star, p_data, p_g, lo, hi, points=points)
    peaks = _peaks(points, p_data, p_g)
    jsd = float(divergences.js_density(p_data, p_g, lo, hi, points=peaks))
    return CGIdentity(v_opt=v_opt, jsd=jsd, rhs=-LN4 + 2.0 * jsd)


# ---------------------------------------------------------------------------------------------
# one Gaussian fitted to p_data by forward KL, reverse KL or JSD


class GaussianFit(NamedTuple):
    """The Gaussian N(mu, sigma^2) that minimises ``objective``, and its divergences in nats.

    ``kl_forward`` = KL(p_data || fit), ``kl_reverse`` = KL(fit || p_data) and ``jsd`` =
    JSD(p_data || fit), each over the fit's window from :mod:`physgan.divergences`.
    """

    objective: str
    mu: float
    sigma: float
    kl_forward: float
    kl_reverse: float
    jsd: float


# Fixed-node quadrature for the fits: Gauss-Legendre of this order on every panel. A fixed rule
# makes the objective a smooth function of (mu, log sigma), which the optimiser needs (adaptive
# quadrature jumps when its subdivision changes), and evaluates all nodes in one vector call.
_GL_ORDER = 10
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_ORDER)
# Uniform panels over the data window, so that p_data is resolved even without hints.
_N_DATA_PANELS = 100
# The model's panels: one per model standard deviation out to this many of them.
_MODEL_REACH = 10.0
# Objective value standing in for +inf, which the simplex arithmetic cannot handle.
_HUGE = float(np.finfo(float).max) / 4
# Starting points: these quantiles of p_data for mu, times these fractions of its std for sigma.
_START_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
_START_SIGMA_FRACTIONS = (1.0, 0.25)
# The smallest sigma searched, as a fraction of the window's width (the largest is the width).
_SIGMA_MIN_FRACTION = 1e-4
# p_data must integrate to 1 on the window within this, as physgan.divergences checks too.
_MASS_TOL = 1e-3
_LN2 = math.log(2.0)


def _gauss_legendre(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (ascending) and weights of the composite rule on the panels between ``edges``."""
    half = 0.5 * np.diff(edges)
    centre = 0.5 * (edges[:-1] + edges[1:])
    nodes = centre[:, None] + half[:, None] * _GL_X
    return nodes.ravel(), (half[:, None] * _GL_W).ravel()


def _gauss_log_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2.0 * math.pi)


def _divergence_on_nodes(
    objective: str, log_p: np.ndarray, log_q: np.ndarray, w: np.ndarray
) -> float:
    """The objective's integral from log p_data and log q (finite) on quadrature nodes."""
    p, q = np.exp(log_p), np.exp(log_q)
    if objective == "forward_kl":
        # log_q is finite, so log_p - log_q never meets inf - inf.
        return float(w @ _p_times(p, log_p - log_q))
    if objective == "reverse_kl":
        return float(w @ _p_times(q, log_q - log_p))
    log_m = np.logaddexp(log_p, log_q) - _LN2
    return float(w @ (0.5 * _p_times(p, log_p - log_m) + 0.5 * _p_times(q, log_q - log_m)))


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(
            f"unknown objective {objective!r}; choose from: {', '.join(sorted(OBJECTIVES))}"
        )


def _fit(
    objective: str,
    log_p_data: Callable[[np.ndarray], np.ndarray],
    data_edges: np.ndarray,
    starts: list[tuple[float, float]],
    bounds: list[tuple[float, float]],
) -> tuple[float, float]:
    model_offsets = np.linspace(-_MODEL_REACH, _MODEL_REACH, 2 * int(_MODEL_REACH) + 1)

    def loss(theta: np.ndarray) -> float:
        mu, sigma = float(theta[0]), math.exp(float(theta[1]))
        # Integrate over data and model panels together, so the model is resolved wherever
        # it is, even outside the window or narrower than the data panels.
        edges = np.unique(np.concatenate([data_edges, mu + sigma * model_offsets]))
        x, w = _gauss_legendre(edges)
        out = _divergence_on_nodes(objective, log_p_data(x), _gauss_log_pdf(x, mu, sigma), w)
        return min(out, _HUGE)

    lower, upper = np.array(bounds).T

    def search(mu0: float, log_sigma0: float, step: float, xatol: float, fatol: float):
        step_mu = step * math.exp(log_sigma0)
        simplex = [[mu0, log_sigma0], [mu0 + step_mu, log_sigma0], [mu0, log_sigma0 + step]]
        simplex = np.clip(simplex, lower, upper)
        return minimize(
            loss,
            simplex[0],
            method="Nelder-Mead",
            bounds=bounds,
            options={
                "initial_simplex": simplex,
                "xatol": xatol,
                "fatol": fatol,
                "maxiter": 2000,
            },
        )

    # A coarse search from every start finds the basin; one tight search polishes the best.
    coarse = [search(mu0, log_sigma0, 0.25, 1e-3, 1e-8) for mu0, log_sigma0 in starts]
    # min keeps the first of equal values; mirror-image optima (the two modes of a symmetric
    # mixture) are told apart by round-off, the same way on every run.
    best = min(coarse, key=lambda res: res.fun)
    fine = search(float(best.x[0]), float(best.x[1]), 0.01, 1e-8, 1e-14)
    theta = fine.x if fine.fun <= best.fun else best.x
    return float(theta[0]), math.exp(float(theta[1]))


def _data_summary(
    p_data: Density, lo: float, hi: float, points: Sequence[float] | None
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, list[tuple[float, float]]]:
    """log p_data, its quadrature panel edges and the starting points (mu, log sigma)."""
    log_p_data = _log_density(p_data)
    hints = _all_points(points, p_data)
    data_edges = np.unique(np.concatenate([np.linspace(lo, hi, _N_DATA_PANELS + 1), hints]))
    data_edges = data_edges[(data_edges >= lo) & (data_edges <= hi)]
    x, w = _gauss_legendre(data_edges)
    mass_on_nodes = w * np.exp(log_p_data(x))
    mass = float(mass_on_nodes.sum())
    if abs(mass - 1.0) > _MASS_TOL:
        raise ValueError(
            f"p_data has mass {mass:.6g} in [{lo}, {hi}], not 1: widen the window, or pass "
            "points where narrow peaks lie"
        )
    mean = float(mass_on_nodes @ x) / mass
    std = math.sqrt(float(mass_on_nodes @ (x - mean) ** 2) / mass)
    cdf = np.cumsum(mass_on_nodes) / mass
    start_mus = np.interp(_START_QUANTILES, cdf, x)
    # The floor only matters for a p_data narrower than the smallest sigma searched.
    sigma_floor = _SIGMA_MIN_FRACTION * (hi - lo)
    starts = [
        (float(m), math.log(max(frac * std, sigma_floor)))
        for frac in _START_SIGMA_FRACTIONS
        for m in start_mus
    ]
    return log_p_data, data_edges, starts


def fit_gaussian(
    p_data: Density,
    objective: str,
    lo: float,
    hi: float,
    *,
    points: Sequence[float] | None = None,
) -> GaussianFit:
    """Fit one Gaussian N(mu, sigma^2) to a 1-D density by minimising a divergence.

    ``"forward_kl"`` minimises KL(p_data || q), i.e. maximises the expected log-likelihood: the
    fit spreads over all modes. ``"reverse_kl"`` minimises KL(q || p_data): the fit sits on one
    mode. ``"jsd"`` minimises JSD(p_data || q), the divergence of the GAN game at the optimal
    discriminator (arXiv:1406.2661, Thm. 1).

    The minimum over (mu, log sigma) is found by Nelder-Mead from several starting points
    (quantiles of p_data for mu, fractions of its std for sigma), keeping the best. During the
    search the divergence is a fixed Gauss-Legendre rule on panels that cover [lo, hi] and
    +-10 sigma around the model, so it is smooth in the parameters; the reported divergences
    are then computed by :mod:`physgan.divergences` over [lo, hi].

    Args:
        p_data: a 1-D density (callable, or object with ``log_prob``) with all but a negligible
            part of its mass in [lo, hi].
        objective: one of :data:`OBJECTIVES`.
        lo, hi: a finite window, lo < hi; mu is searched in [lo, hi], sigma up to hi - lo.
        points: where else p_data changes quickly (narrow peaks of a plain callable).

    Returns:
        the fit and its forward KL, reverse KL and JSD to p_data, in nats.

    Raises:
        ConfigError: (a ValueError) the objective is unknown.
        ValueError: the window is not finite, or p_data's mass in it is not 1 (to 1e-3).

    >>> from physgan.data.toy import bimodal_1d
    >>> fit = fit_gaussian(bimodal_1d(), "forward_kl", -10, 10)
    >>> round(fit.mu, 4) + 0.0, round(fit.sigma, 4)  # the mixture's mean and std
    (0.0, 2.0616)
    """
    _check_objective(objective)
    lo, hi = _check_window(lo, hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"fit_gaussian needs a finite window, got [{lo}, {hi}]")
    log_p_data, data_edges, starts = _data_summary(p_data, lo, hi, points)
    width = hi - lo
    bounds = [(lo, hi), (math.log(_SIGMA_MIN_FRACTION * width), math.log(width))]
    mu, sigma = _fit(objective, log_p_data, data_edges, starts, bounds)
    return _with_divergences(objective, mu, sigma, p_data, lo, hi, points)


def _with_divergences(
    objective: str,
    mu: float,
    sigma: float,
    p_data: Density,
    lo: float,
    hi: float,
    points: Sequence[float] | None,
) -> GaussianFit:
    model = GaussianMixture.isotropic([mu], sigma)
    peaks = _peaks(points, p_data, model)
    return GaussianFit(
        objective=objective,
        mu=mu,
        sigma=sigma,
        kl_forward=float(divergences.kl_density(p_data, model, lo, hi, points=peaks)),
        kl_reverse=float(divergences.kl_density(model, p_data, lo, hi, points=peaks)),
        jsd=float(divergences.js_density(p_data, model, lo, hi, points=peaks)),
    )


def fit_gaussians(
    p_data: Density,
    lo: float,
    hi: float,
    *,
    points: Sequence[float] | None = None,
) -> dict[str, GaussianFit]:
    """:func:`fit_gaussian` for every objective, keyed by name in the order of OBJECTIVES.

    >>> from physgan.data.toy import bimodal_1d
    >>> fits = fit_gaussians(bimodal_1d(), -10, 10)
    >>> list(fits)
    ['forward_kl', 'reverse_kl', 'jsd']
    >>> round(abs(fits["reverse_kl"].mu), 2), round(fits["reverse_kl"].sigma, 2)
    (2.0, 0.5)
    """
    return {name: fit_gaussian(p_data, name, lo, hi, points=points) for name in OBJECTIVES}
