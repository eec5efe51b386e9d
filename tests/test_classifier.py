"""physgan.metrics.classifier against the closed-form Bayes-optimal AUC of two Gaussians, the
null hypothesis (two samples of one distribution), a known shift of particle clouds, its mask
and seed invariants, and bad input."""

import math
import re

import numpy as np
import pytest
import scipy.stats

from physgan.errors import ConfigError, DataError
from physgan.metrics.classifier import classifier_auc


def jet_clouds(
    rng: np.random.Generator, n_jets: int, n_max: int = 10, pt_scale: float = 1.0
) -> np.ndarray:
    """(n_jets, n_max, 4) clouds in physgan's layout: 3..n_max real particles per jet, sorted by
    decreasing pt_rel (summing to about ``pt_scale``), padded rows all zero."""
    n_real = rng.integers(3, n_max + 1, size=n_jets)
    mask = np.arange(n_max) < n_real[:, None]
    pt = -np.sort(-rng.exponential(size=(n_jets, n_max)) * mask, axis=1)
    pt *= pt_scale * rng.normal(1.0, 0.05, size=(n_jets, 1)) / pt.sum(axis=1, keepdims=True)
    eta, phi = rng.normal(0.0, 0.1, size=(2, n_jets, n_max)) * mask
    return np.stack([eta, phi, pt, mask], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- null and closed form


@pytest.mark.parametrize("kind", ["features", "clouds"])
def test_same_distribution_is_indistinguishable(kind):
    rng = np.random.default_rng(601)
    if kind == "features":
        real, generated = rng.normal(size=(2, 2000, 3))
    else:
        real, generated = jet_clouds(rng, 2000), jet_clouds(rng, 2000)
    auc = classifier_auc(real, generated, seed=17)
    # Under the null the test AUC is a Mann-Whitney statistic of sd sqrt((n + m + 1) / (12 n m)),
    # n = m = 600 held-out rows; Hanley-McNeil at an AUC near 0.5 is within 1 % of it.
    assert auc.std == pytest.approx(math.sqrt((600 + 600 + 1) / (12 * 600 * 600)), rel=0.01)
    assert abs(auc.value - 0.5) < 3 * auc.std


def test_separated_gaussians_reach_bayes_auc():
    rng = np.random.default_rng(602)
    real = rng.normal(0.0, 1.0, size=(4000, 1))
    generated = rng.normal(2.0, 1.0, size=(4000, 1))
    auc = classifier_auc(real, generated, seed=3)
    bayes = scipy.stats.norm.cdf(2.0 / math.sqrt(2.0))  # Phi(delta / sqrt 2) = 0.9214
    # The likelihood ratio is the best score (Neyman-Pearson), so a fitted classifier sits at
    # or below it up to the test noise: allow 3 standard errors above and 4 below (~0.006 each).
    assert 0.004 < auc.std < 0.008
    assert bayes - 4 * auc.std < auc.value < bayes + 3 * auc.std


def test_unbalanced_samples_are_subsampled():
    rng = np.random.default_rng(603)
    auc = classifier_auc(rng.normal(0, 1, (3000, 2)), rng.normal(0, 1, (500, 2)), seed=4)
    n_test = round(0.3 * 1000) // 2  # 500 per class after balancing, 30 % held out
    assert auc.std == pytest.approx(math.sqrt((2 * n_test + 1) / (12 * n_test**2)), rel=0.01)


# --------------------------------------------------------------------------- particle clouds


def test_shifted_pt_rel_is_detected():
    rng = np.random.default_rng(604)
    real = jet_clouds(rng, 1500)
    generated = jet_clouds(rng, 1500, pt_scale=1.15)
    auc = classifier_auc(real, generated, seed=5)
    assert auc.value > 0.9
    assert auc.value - 0.5 > 10 * auc.std


def test_padded_rows_are_ignored():
    rng = np.random.default_rng(605)
    real = jet_clouds(rng, 600)
    generated = jet_clouds(rng, 600, pt_scale=1.1)
    noisy = generated.copy()
    padding = noisy[..., 3] == 0
    noisy[..., :3][padding] = rng.normal(size=(int(padding.sum()), 3))
    assert classifier_auc(real, noisy, seed=6) == classifier_auc(real, generated, seed=6)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_auc_other_seed_other_split():
    rng = np.random.default_rng(606)
    real = rng.normal(0.0, 1.0, size=(800, 2))
    generated = rng.normal(0.3, 1.0, size=(700, 2))
    first = classifier_auc(real, generated, seed=11)
    assert classifier_auc(real, generated, seed=11) == first
    assert classifier_auc(real, generated, seed=11, n_threads=2) == first
    assert classifier_auc(real, generated, seed=12).value != first.value


# --------------------------------------------------------------------------- bad input

GOOD = np.zeros((30, 3))
CLOUDS = np.zeros((30, 5, 4))


def with_value(x: np.ndarray, index: tuple, value: float) -> np.ndarray:
    x = x.copy()
    x[index] = value
    return x


@pytest.mark.parametrize(
    ("real", "generated", "message"),
    [
        (np.zeros(30), GOOD, "real has shape (30,): expected features"),
        (GOOD, np.zeros((30, 5, 4, 1)), "generated has shape (30, 5, 4, 1): expected"),
        (GOOD, np.zeros((30, 4)), "trailing shapes must match"),
        (CLOUDS, np.zeros((30, 6, 4)), "trailing shapes must match"),
        (np.zeros((30, 5, 3)), np.zeros((30, 5, 3)), "particle clouds need 4 features"),
        (with_value(GOOD, (3, 1), np.nan), GOOD, "real holds 1 NaN or infinite"),
        (GOOD, with_value(GOOD, (0, 0), -np.inf), "generated holds 1 NaN or infinite"),
        (GOOD, np.zeros((10, 3)), "generated has shape (10, 3): need at least 20 samples"),
        (np.zeros((30, 0)), np.zeros((30, 0)), "real has shape (30, 0): no features"),
        (with_value(CLOUDS, (0, 0, 3), 0.5), CLOUDS, "real has a mask"),
        (np.full((30, 3), "a"), GOOD, "real is not a numeric array"),
    ],
)
def test_bad_input_raises_data_error(real, generated, message):
    with pytest.raises(DataError, match=re.escape(message)) as excinfo:
        classifier_auc(real, generated)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.2])
def test_bad_test_fraction_raises_config_error(test_fraction):
    with pytest.raises(ConfigError, match="test_fraction must lie in"):
        classifier_auc(GOOD, GOOD, test_fraction=test_fraction)
