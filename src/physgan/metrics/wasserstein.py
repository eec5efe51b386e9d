"""Wasserstein-1 distances between real and generated jets: W1M, W1P and W1EFP.

As in the MPGAN paper (Kansal et al., arXiv:2106.11535) and JetNet's ``w1m``, ``w1p`` and
``w1efp``: for each of ``num_batches`` batches, ``num_eval_samples`` jets are drawn *with
replacement* from each sample (``rng = np.random.default_rng(seed)``, then per batch
``rng.choice(len(real), size)`` and ``rng.choice(len(generated), size)``, in that order), and
the 1D W1 (``scipy.stats.wasserstein_distance``) of each feature is taken between the two
batches. A feature's estimate is the mean over batches with the (ddof 0) standard deviation
over batches as its spread. Where features are averaged into one number, the value is their
mean and the spread the root-sum-square of their spreads (JetNet 0.x ``average_over_features``).
Values are unscaled; the papers' tables show W1M x 10^3, W1P x 10^3 and W1EFP x 10^5.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from physgan.errors import DataError
from physgan.metrics.efp import efps
from physgan.metrics.estimate import Estimate
from physgan.metrics.jetfeatures import check_pair, jet_features, masked_features

__all__ = ["w1efp", "w1efp_features", "w1m", "w1p", "w1p_features"]


def w1m(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    num_eval_samples: int = 10_000,
    num_batches: int = 5,
    seed: int = 0,
) -> Estimate:
    """W1 between the jet masses (in units of the jet pT, see
    :func:`~physgan.metrics.jetfeatures.jet_features`) of two (n, N, 4) particle samples.

    >>> rng = np.random.default_rng(0)
    >>> cloud = np.concatenate([rng.normal(0, 0.1, (100, 5, 2)), np.ones((100, 5, 2))], axis=2)
    >>> heavier = cloud * np.array([1.0, 1.0, 2.0, 1.0])  # 2 pt_rel: twice the mass
    >>> w1m(cloud, heavier, num_eval_samples=100).value > 0.1
    True
    """
    real, generated = check_pair(real, generated)
    per_batch = _w1_batches(
        jet_features(real)[:, None, 3:],
        jet_features(generated)[:, None, 3:],
        None,
        None,
        num_eval_samples,
        num_batches,
        seed,
    )
    return Estimate(float(per_batch.mean()), float(per_batch.std()))


def w1p_features(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    num_eval_samples: int = 10_000,
    num_batches: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """W1 (3, 2) [value, std] of each particle feature [eta_rel, phi_rel, pt_rel], pooled over
    the real particles of each batch's jets (``mask >= 0.5`` and, as JetNet's
    ``exclude_zeros``, not all three features exactly 0).

    >>> jet = np.array([[0.1, 0.2, 0.5, 1.0], [-0.2, 0.1, 0.3, 1.0], [0.0, 0.0, 0.0, 0.0]])
    >>> jets = np.stack([jet] * 20)  # every batch holds the same particles
    >>> moved = jets + np.array([0.5, 0.0, 0.0, 0.0])  # eta_rel + 0.5 (padding stays masked)
    >>> w1p_features(jets, moved, num_eval_samples=20)[:, 0].round(6).tolist()
    [0.5, 0.0, 0.0]
    """
    real, generated = check_pair(real, generated)
    (real_feats, real_mask), (gen_feats, gen_mask) = _particles(real), _particles(generated)
    per_batch = _w1_batches(
        real_feats, gen_feats, real_mask, gen_mask, num_eval_samples, num_batches, seed
    )
    return np.stack([per_batch.mean(axis=0), per_batch.std(axis=0)], axis=1)


def w1p(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    num_eval_samples: int = 10_000,
    num_batches: int = 5,
    seed: int = 0,
) -> Estimate:
    """W1P: the mean over [eta_rel, phi_rel, pt_rel] of :func:`w1p_features`, with the
    root-sum-square of their spreads.

    >>> jets = np.stack([[[0.1, 0.2, 0.5, 1.0], [-0.2, 0.1, 0.3, 1.0]]] * 20)
    >>> moved = jets + np.array([0.3, 0.0, 0.0, 0.0])
    >>> round(w1p(jets, moved, num_eval_samples=20).value, 6)  # (0.3 + 0 + 0) / 3
    0.1
    """
    return _average(
        w1p_features(
            real,
            generated,
            num_eval_samples=num_eval_samples,
            num_batches=num_batches,
            seed=seed,
        )
    )


def w1efp_features(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    num_eval_samples: int = 10_000,
    num_batches: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """W1 (5, 2) [value, std] of each of the 5 EFPs of :func:`physgan.metrics.efp.efps`
    (n = 4, d = 4, prime, beta = 1, z_i = pt_rel_i as JetNet), in units of pt_rel^4.

    >>> rng = np.random.default_rng(0)
    >>> cloud = np.concatenate([rng.normal(0, 0.1, (40, 4, 2)), np.ones((40, 4, 2))], axis=2)
    >>> w1efp_features(cloud, cloud, num_eval_samples=40).shape
    (5, 2)
    """
    real, generated = check_pair(real, generated)
    per_batch = _w1_batches(
        efps(real)[:, None],
        efps(generated)[:, None],
        None,
        None,
        num_eval_samples,
        num_batches,
        seed,
    )
    return np.stack([per_batch.mean(axis=0), per_batch.std(axis=0)], axis=1)


def w1efp(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    num_eval_samples: int = 10_000,
    num_batches: int = 5,
    seed: int = 0,
) -> Estimate:
    """W1EFP: the mean over the 5 EFPs of :func:`w1efp_features`, with the root-sum-square of
    their spreads.

    >>> rng = np.random.default_rng(0)
    >>> cloud = np.concatenate([rng.normal(0, 0.1, (40, 4, 2)), np.ones((40, 4, 2))], axis=2)
    >>> w1efp(cloud, cloud, num_eval_samples=40).value >= 0
    True
    """
    return _average(
        w1efp_features(
            real,
            generated,
            num_eval_samples=num_eval_samples,
            num_batches=num_batches,
            seed=seed,
        )
    )


def _particles(particles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features, mask = masked_features(particles)
    return features, mask & (features != 0).any(axis=-1)


def _average(per_feature: np.ndarray) -> Estimate:
    return Estimate(float(per_feature[:, 0].mean()), float(np.linalg.norm(per_feature[:, 1])))


def _w1_batches(
    real: np.ndarray,
    generated: np.ndarray,
    real_mask: np.ndarray | None,
    gen_mask: np.ndarray | None,
    num_eval_samples: int,
    num_batches: int,
    seed: int,
) -> np.ndarray:
    """W1 (num_batches, k) of each feature of (n, P, k) values, over the rows a (n, P) mask
    keeps (all rows when it is None), in batches of jets drawn as the module says."""
    rng = np.random.default_rng(seed)
    per_batch = np.empty((num_batches, real.shape[-1]))
    for batch in range(num_batches):
        pick_real = rng.choice(len(real), size=num_eval_samples)
        pick_gen = rng.choice(len(generated), size=num_eval_samples)
        x_real = _rows(real[pick_real], None if real_mask is None else real_mask[pick_real])
        x_gen = _rows(generated[pick_gen], None if gen_mask is None else gen_mask[pick_gen])
        if len(x_real) == 0 or len(x_gen) == 0:
            raise DataError(
                f"batch {batch} drew only jets without particles; raise num_eval_samples"
            )
        per_batch[batch] = [
            wasserstein_distance(x_real[:, k], x_gen[:, k]) for k in range(real.shape[-1])
        ]
    return per_batch


def _rows(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return values.reshape(-1, values.shape[-1]) if mask is None else values[mask]
