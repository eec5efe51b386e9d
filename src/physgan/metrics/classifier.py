"""Classifier two-sample test: the held-out ROC AUC of a classifier trained to tell real from
generated samples (0.5 = indistinguishable), as in the CaloChallenge (Krause et al.,
arXiv:2410.21611) and the classifier two-sample tests of Lopez-Paz & Oquab (arXiv:1610.06545).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from physgan.errors import ConfigError, DataError
from physgan.metrics.estimate import Estimate

__all__ = ["classifier_auc"]

# Below this many samples per class the held-out part has a handful of rows per class and the
# AUC's standard error exceeds ~0.15: too noisy to read.
MIN_PER_CLASS = 20


def classifier_auc(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    seed: int = 0,
    test_fraction: float = 0.3,
    max_iter: int = 200,
    n_threads: int | None = 1,
) -> Estimate:
    """ROC AUC of a gradient-boosted classifier separating ``generated`` from ``real``, measured
    on held-out rows, with its Hanley-McNeil standard error.

    The larger sample is subsampled (without replacement) to the size of the smaller, the rows
    are split stratified into a training and a test part, scikit-learn's
    ``HistGradientBoostingClassifier`` is fitted on the training part (early stopping on a
    stratified 20 % validation slice of it, 10 rounds without improvement, at most ``max_iter``
    rounds), and ``sklearn.metrics.roc_auc_score`` of its scores on the test part is returned,
    generated being the positive class. The features are not standardised: the trees bin each
    feature by its quantiles, so an affine rescaling would not change the classifier.

    ``std`` is the Hanley-McNeil (Radiology 143, 29, 1982) standard error of the AUC over the
    test rows; it covers the test sample's noise, not the variation between trainings. An AUC
    below 0.5 (possible by chance when the samples agree) is returned as is, never flipped.

    Particle clouds are made fixed-length by their pT ordering, the canonical form that makes a
    permutation-invariant cloud a vector: the (eta_rel, phi_rel, pt_rel) of the N particles in
    order (zeroed where the mask is 0), then the number of real particles, the sum of pt_rel and
    the pt_rel-weighted mean and standard deviation of eta_rel and phi_rel.

    Args:
        real: (n, d) features, or (n, N, 4) particle clouds [eta_rel, phi_rel, pt_rel, mask]
            sorted by decreasing pT (``physgan.data.jets``).
        generated: (m, d) or (m, N, 4), the same trailing shape as ``real``.
        seed: seeds the subsampling, the split and the classifier; same inputs and seed give
            the same AUC.
        test_fraction: share of the balanced rows held out for the AUC, in (0, 1).
        max_iter: most boosting rounds.
        n_threads: OpenMP threads for the fit, limited only during this call (threadpoolctl);
            None lets OpenMP use every core. One thread is the default because on a few
            thousand rows the threads mostly wait on each other, and on busy cores they make
            the fit tens of times slower; the fitted trees do not depend on it.

    Returns:
        ``Estimate(value=AUC, std=standard error)``, both in [0, 1].

    >>> rng = np.random.default_rng(0)
    >>> auc = classifier_auc(rng.normal(0, 1, (600, 2)), rng.normal(3, 1, (400, 2)), seed=1)
    >>> auc.value > 0.95, 0 < auc.std < 0.02
    (True, True)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    real, generated = _check(real, "real"), _check(generated, "generated")
    if real.shape[1:] != generated.shape[1:]:
        raise DataError(
            f"real has shape {real.shape} and generated {generated.shape}: "
            "the trailing shapes must match"
        )
    x_real, x_gen = _features(real), _features(generated)

    rng = np.random.default_rng(seed)
    n = min(len(x_real), len(x_gen))
    x_real = x_real[np.sort(rng.choice(len(x_real), n, replace=False))]
    x_gen = x_gen[np.sort(rng.choice(len(x_gen), n, replace=False))]
    x = np.concatenate([x_real, x_gen])
    y = np.repeat([0, 1], n)
    split_seed, fit_seed = (int(s) for s in rng.integers(2**31 - 1, size=2))
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )

    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=10,
        random_state=fit_seed,
    )
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        model.fit(x_train, y_train)
        scores = model.predict_proba(x_test)[:, 1]
    auc = float(roc_auc_score(y_test, scores))
    return Estimate(
        auc, _hanley_mcneil_std(auc, int((y_test == 1).sum()), int((y_test == 0).sum()))
    )


def _check(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as float64, or a one-line DataError naming what is wrong with it."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name} is not a numeric array: {err}") from None
    if x.ndim not in (2, 3):
        raise DataError(
            f"{name} has shape {x.shape}: expected features (n, d) or particle clouds (n, N, 4)"
        )
    if x.ndim == 3 and x.shape[2] != 4:
        raise DataError(
            f"{name} has shape {x.shape}: particle clouds need 4 features "
            "[eta_rel, phi_rel, pt_rel, mask]"
        )
    if x.shape[0] < MIN_PER_CLASS:
        raise DataError(f"{name} has shape {x.shape}: need at least {MIN_PER_CLASS} samples")
    if 0 in x.shape:
        raise DataError(f"{name} has shape {x.shape}: no features")
    if not np.isfinite(x).all():
        raise DataError(f"{name} holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    if x.ndim == 3 and not np.isin(x[..., 3], (0.0, 1.0)).all():
        raise DataError(f"{name} has a mask (feature 3) with values other than 0 and 1")
    return x


def _features(x: np.ndarray) -> np.ndarray:
    """(n, d) features as they are; (n, N, 4) clouds as (n, 3 N + 6) vectors (module docs)."""
    if x.ndim == 2:
        return x
    mask = x[..., 3]
    eta, phi, pt = (x[..., i] * mask for i in range(3))
    pt_sum = pt.sum(axis=1)
    weight = pt / np.where(pt_sum > 0, pt_sum, 1.0)[:, None]
    eta_mean = (weight * eta).sum(axis=1)
    phi_mean = (weight * phi).sum(axis=1)
    eta_std = np.sqrt(np.maximum((weight * eta**2).sum(axis=1) - eta_mean**2, 0.0))
    phi_std = np.sqrt(np.maximum((weight * phi**2).sum(axis=1) - phi_mean**2, 0.0))
    summaries = np.stack([mask.sum(axis=1), pt_sum, eta_mean, phi_mean, eta_std, phi_std], axis=1)
    particles = np.stack([eta, phi, pt], axis=-1).reshape(len(x), -1)
    return np.concatenate([particles, summaries], axis=1)


def _hanley_mcneil_std(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC from n_pos positive and n_neg negative test rows (Hanley &
    McNeil 1982, eq. 2, with their exponential approximations of Q1 and Q2).

    >>> round(_hanley_mcneil_std(0.5, 100, 100), 4)  # sqrt((n_pos + n_neg + 1) / (12 n n))
    0.0409
    """
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc**2 / (1.0 + auc)
    var = (auc * (1.0 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))
