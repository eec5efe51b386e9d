"""Gaussian mixtures with exact log-densities and seeded sampling: the toy benchmarks.

:class:`GaussianMixture` holds the parameters of ``sum_k w_k N(mu_k, S_k)`` in ``d`` dimensions;
its ``log_prob`` is exact and its ``sample`` takes the seed as an argument. The factories build the
mixtures the literature uses, and :data:`TOY_DATASETS` finds them by the names used in configs:

- ``bimodal``: 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2) in 1-D, the lecture's mode-covering example;
- ``ring8``: 8 modes on a circle of radius 2, sigma 0.02 (VEEGAN, arXiv:1705.07761; PacGAN,
  arXiv:1712.04086);
- ``grid25``: 25 modes on the grid {-4, -2, 0, 2, 4}^2, sigma 0.05 (the same papers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import solve_triangular

from physgan.registry import Registry

__all__ = ["TOY_DATASETS", "GaussianMixture", "LabelledSample", "bimodal_1d", "grid25", "ring8"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class LabelledSample(NamedTuple):
    """Points and the mixture component each was drawn from."""

    x: np.ndarray
    """shape (n, d)"""
    labels: np.ndarray
    """shape (n,), int64 component indices"""


class GaussianMixture:
    """A mixture of ``K`` Gaussians in ``d`` dimensions with exact density and seeded sampling.

    Args:
        means: component means, shape (K, d); a 1-D array of K numbers means d = 1.
        covs: component covariance matrices, shape (K, d, d), each symmetric positive definite.
        weights: non-negative mixture weights, shape (K,), normalised here; ``None`` means
            uniform.

    Raises:
        ValueError: a shape does not fit, a value is not finite, a covariance is not symmetric
            positive definite, or a weight is negative (or all are 0). The message names the
            argument.

    >>> gm = GaussianMixture([-1.0, 1.0], [[[0.25]], [[0.25]]], weights=[1, 3])
    >>> gm.dim, gm.n_components, gm.weights.tolist()
    (1, 2, [0.25, 0.75])
    >>> x = gm.sample(4, seed=0)
    >>> x.shape
    (4, 1)
    >>> bool(np.array_equal(x, gm.sample(4, seed=0)))
    True
    >>> # log(0.25 N(1; -1, 0.5^2) + 0.75 N(1; 1, 0.5^2))
    >>> round(float(gm.log_prob(np.array([1.0]))[0]), 6)
    -0.513362
    """

    def __init__(self, means: ArrayLike, covs: ArrayLike, weights: ArrayLike | None = None) -> None:
        means_arr = np.array(means, dtype=float)
        if means_arr.ndim == 1:
            means_arr = means_arr[:, None]
        if means_arr.ndim != 2 or means_arr.shape[0] == 0 or means_arr.shape[1] == 0:
            raise ValueError(
                f"means must have shape (K, d) or (K,) with K, d >= 1, got {np.shape(means)}"
            )
        if not np.all(np.isfinite(means_arr)):
            raise ValueError("means must be finite")
        n_components, dim = means_arr.shape

        covs_arr = np.array(covs, dtype=float)
        if covs_arr.shape != (n_components, dim, dim):
            raise ValueError(
                f"covs must have shape (K, d, d) = {(n_components, dim, dim)}, got {covs_arr.shape}"
            )
        if not np.all(np.isfinite(covs_arr)):
            raise ValueError("covs must be finite")
        if not np.allclose(covs_arr, np.swapaxes(covs_arr, 1, 2), rtol=1e-10, atol=0.0):
            raise ValueError("covs must be symmetric")
        try:
            chol = np.linalg.cholesky(covs_arr)
        except np.linalg.LinAlgError:
            raise ValueError("covs must be positive definite") from None

        if weights is None:
            weights_arr = np.full(n_components, 1.0 / n_components)
        else:
            weights_arr = np.array(weights, dtype=float)
            if weights_arr.shape != (n_components,):
                raise ValueError(
                    f"weights must have shape (K,) = ({n_components},), got {weights_arr.shape}"
                )
            if not np.all(np.isfinite(weights_arr)):
                raise ValueError("weights must be finite")
            if np.any(weights_arr < 0):
                raise ValueError("weights must be non-negative")
            total = weights_arr.sum()
            if total <= 0:
                raise ValueError("weights must not all be 0")
            weights_arr = weights_arr / total

        self._means = _read_only(means_arr)
        self._covs = _read_only(covs_arr)
        self._chol = _read_only(chol)
        self._weights = _read_only(weights_arr)
        # log(0) = -inf drops a component from the logsumexp without a divide-by-zero warning.
        self._log_weights = np.log(
            weights_arr, out=np.full(n_components, -np.inf), where=weights_arr > 0
        )
        # log det S_k = 2 sum_i log L_k,ii: the normalisation, computed once.
        self._log_norm = -0.5 * (
            dim * _LOG_2PI + 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        )

    @classmethod
    def isotropic(
        cls, means: ArrayLike, sigma: ArrayLike, weights: ArrayLike | None = None
    ) -> GaussianMixture:
        """A mixture whose components have covariance ``sigma_k^2 I``.

        Args:
            means: shape (K, d), or (K,) for d = 1.
            sigma: standard deviation, a positive scalar shared by all components or shape (K,).
            weights: as in :class:`GaussianMixture`.

        >>> GaussianMixture.isotropic([[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0]).covs[1].tolist()
        [[4.0, 0.0], [0.0, 4.0]]
        """
        means_arr = np.array(means, dtype=float)
        if means_arr.ndim == 1:
            means_arr = means_arr[:, None]
        if means_arr.ndim != 2:
            raise ValueError(f"means must have shape (K, d) or (K,), got {np.shape(means)}")
        n_components, dim = means_arr.shape
        sigma_arr = np.array(sigma, dtype=float)
        if sigma_arr.ndim == 0:
            sigma_arr = np.full(n_components, float(sigma_arr))
        if sigma_arr.shape != (n_components,):
            raise ValueError(
                f"sigma must be a scalar or have shape (K,) = ({n_components},), "
                f"got {sigma_arr.shape}"
            )
        if not np.all(np.isfinite(sigma_arr)) or np.any(sigma_arr <= 0):
            raise ValueError("sigma must be finite and positive")
        covs = sigma_arr[:, None, None] ** 2 * np.eye(dim)
        return cls(means_arr, covs, weights)

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the space."""
        return self._means.shape[1]

    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return self._means.shape[0]

    @property
    def means(self) -> np.ndarray:
        """Component means, shape (K, d), read-only."""
        return self._means

    @property
    def covs(self) -> np.ndarray:
        """Component covariances, shape (K, d, d), read-only."""
        return self._covs

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights, shape (K,), read-only."""
        return self._weights

    @property
    def stds(self) -> np.ndarray:
        """Per-component standard deviation along each axis, ``sqrt(diag S_k)``, shape (K, d)."""
        return np.sqrt(np.diagonal(self._covs, axis1=1, axis2=2))

    def _as_points(self, x: ArrayLike) -> np.ndarray:
        x_arr = np.asarray(x, dtype=float)
        if self.dim == 1 and x_arr.ndim == 1:
            x_arr = x_arr[:, None]
        if x_arr.ndim != 2 or x_arr.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape (n, {self.dim})"
                + (" or (n,)" if self.dim == 1 else "")
                + f", got {x_arr.shape}"
            )
        if np.isnan(x_arr).any():
            raise ValueError("x has NaN entries")
        return x_arr

    def log_prob(self, x: ArrayLike) -> np.ndarray:
        """Natural log of the density at each point.

        Args:
            x: points, shape (n, d); for d = 1 also shape (n,).

        Returns:
            shape (n,); ``log sum_k w_k N(x; mu_k, S_k)``, summed in log space so that far tails
            stay finite.
        """
        x_arr = self._as_points(x)
        if self.dim == 1:
            # One vectorised step for all components: L_k is the scalar sigma_k.
            z = (x_arr[:, 0] - self._means[:, :1]) / self._chol[:, 0, :1]
            z2 = z**2
        else:
            z2 = np.empty((self.n_components, x_arr.shape[0]))
            for k in range(self.n_components):
                # z = L^-1 (x - mu), so (x - mu)^T S^-1 (x - mu) = |z|^2 without inverting S.
                diff = (x_arr - self._means[k]).T
                z2[k] = (solve_triangular(self._chol[k], diff, lower=True) ** 2).sum(axis=0)
        log_terms = (self._log_weights + self._log_norm)[:, None] - 0.5 * z2
        # logsumexp over components by hand: scipy's carries array-API overhead that dominates
        # the many small calls of quadrature.
        peak = log_terms.max(axis=0)
        peak[~np.isfinite(peak)] = 0.0
        total = np.exp(log_terms - peak).sum(axis=0)
        # total is 0 only where every term is -inf (x = +-inf): log p = -inf, without a warning.
        return np.log(total, out=np.full_like(total, -np.inf), where=total > 0) + peak

    def prob(self, x: ArrayLike) -> np.ndarray:
        """Density at each point, ``exp(log_prob(x))``, shape (n,)."""
        return np.exp(self.log_prob(x))

    __call__ = prob

    def sample(self, n: int, seed: int | np.random.Generator) -> np.ndarray:
        """Draw ``n`` points, shape (n, d); the same seed gives the same points.

        Args:
            n: number of points, >= 0.
            seed: an integer seed or a :class:`numpy.random.Generator` (advanced in place).
        """
        return self.sample_labelled(n, seed).x

    def sample_labelled(self, n: int, seed: int | np.random.Generator) -> LabelledSample:
        """Draw ``n`` points and the index of the component each came from.

        The points are those of :meth:`sample` with the same seed.

        Returns:
            ``LabelledSample(x, labels)``: x of shape (n, d), labels of shape (n,) (int64,
            in [0, K)).

        >>> x, labels = ring8().sample_labelled(3, seed=0)
        >>> x.shape, labels.shape, bool(np.array_equal(x, ring8().sample(3, seed=0)))
        ((3, 2), (3,), True)
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.n_components, size=int(n), p=self._weights)
        z = rng.standard_normal((int(n), self.dim))
        x = self._means[labels] + np.einsum("nij,nj->ni", self._chol[labels], z)
        return LabelledSample(x, labels.astype(np.int64))

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim})"


TOY_DATASETS: Registry[Callable[..., GaussianMixture]] = Registry("dataset")


@TOY_DATASETS.register("bimodal")
def bimodal_1d() -> GaussianMixture:
    """The lecture's 1-D example: ``0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)``.

    Maximum likelihood with one Gaussian covers both modes (mean 0, std sqrt(0.25 + 4));
    the reverse KL picks one of them.

    >>> gm = bimodal_1d()
    >>> gm.means.ravel().tolist(), gm.stds.ravel().tolist(), gm.weights.tolist()
    ([-2.0, 2.0], [0.5, 0.5], [0.5, 0.5])
    """
    return GaussianMixture.isotropic([-2.0, 2.0], 0.5)


@TOY_DATASETS.register("ring8")
def ring8(radius: float = 2.0, sigma: float = 0.02) -> GaussianMixture:
    """Eight equal modes on a circle, the first at angle 0, each ``N(c_k, sigma^2 I)`` in 2-D.

    Centres ``c_k = radius (cos 2 pi k / 8, sin 2 pi k / 8)``; the defaults are the setup of
    VEEGAN (Srivastava et al. 2017, arXiv:1705.07761) and PacGAN (Lin et al. 2018,
    arXiv:1712.04086).

    >>> ring8().means.round(3)[:3].tolist()
    [[2.0, 0.0], [1.414, 1.414], [0.0, 2.0]]
    """
    angle = 2.0 * np.pi * np.arange(8) / 8
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return GaussianMixture.isotropic(centres, sigma)


@TOY_DATASETS.register("grid25")
def grid25(spacing: float = 2.0, sigma: float = 0.05) -> GaussianMixture:
    """25 equal modes on a 5 x 5 grid, ``{-2, -1, 0, 1, 2}^2 * spacing``, sigma 0.05, in 2-D.

    The defaults (grid {-4, -2, 0, 2, 4}^2) are the setup of VEEGAN (arXiv:1705.07761) and
    PacGAN (arXiv:1712.04086). Centres are ordered with the first coordinate varying slowest.

    >>> gm = grid25()
    >>> gm.n_components, gm.means[:2].tolist()
    (25, [[-4.0, -4.0], [-4.0, -2.0]])
    """
    ticks = spacing * np.arange(-2, 3, dtype=float)
    first, second = np.meshgrid(ticks, ticks, indexing="ij")
    centres = np.stack([first.ravel(), second.ravel()], axis=1)
    return GaussianMixture.isotropic(centres, sigma)
