"""The mode of a sample and the shift between two samples' peaks, against closed forms."""

import numpy as np
import pytest

from physgan.data.images import image_mass
from physgan.errors import DataError
from physgan.metrics.peak import mode, peak_shift


@pytest.mark.parametrize("seed", [101, 102])
def test_the_mode_of_a_normal_sample_is_its_mean(seed):
    # The KDE mode of 40,000 draws varies by about 0.07 sigma: 0.4 is over 5 of that.
    assert mode(np.random.default_rng(seed).normal(80.0, 10.0, 40_000)) == pytest.approx(
        80.0, abs=4.0
    )


@pytest.mark.parametrize("seed", [103, 104])
def test_the_mode_of_a_gamma_sample_is_k_minus_1_theta(seed):
    k, theta = 20.0, 4.0  # sigma = sqrt(k) theta = 17.9
    x = np.random.default_rng(seed).gamma(k, theta, 40_000)
    assert mode(x) == pytest.approx((k - 1) * theta, abs=0.3 * np.sqrt(k) * theta)


@pytest.mark.parametrize("seed", [105, 106])
def test_two_normal_peaks_3_gev_apart(seed):
    rng = np.random.default_rng(seed)
    real, shifted = rng.normal(80.0, 3.0, 20_000), rng.normal(83.0, 3.0, 20_000)
    assert peak_shift(real, shifted).value == pytest.approx(3.0, abs=1.5)
    step = (real.max() - real.min()) / 2_000
    assert peak_shift(real, real + 3.0).value == pytest.approx(3.0, abs=step)  # same draws


def test_images_10_percent_brighter_move_the_mass_peak_by_10_percent():
    """Image mass is linear in the pixel pT and the KDE's bandwidth scales with the sample, so
    the mode scales too: exactly, up to the grid's step."""
    rng = np.random.default_rng(107)
    images = rng.exponential(5.0, (3_000, 25, 25)) * (rng.random((3_000, 25, 25)) < 0.05)
    images[:, 12, 12] += 150.0
    mass = image_mass(images)
    step = (mass.max() - mass.min()) / 2_000
    assert peak_shift(mass, 1.1 * mass).value == pytest.approx(0.1 * mode(mass), abs=2 * step)


def test_a_constant_sample_peaks_at_its_value_and_an_empty_one_is_refused():
    assert mode(np.zeros(50)) == 0.0
    assert mode(np.array([np.nan, 4.0, np.inf, 4.0])) == 4.0
    with pytest.raises(DataError, match="no finite value"):
        mode(np.array([np.nan]))
