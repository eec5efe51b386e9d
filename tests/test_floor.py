"""The real-vs-real noise floor beside a generated sample's metric."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from physgan.errors import DataError
from physgan.metrics.estimate import Estimate
from physgan.metrics.floor import split_real, verdict, with_floor


def w1(real, generated, *, seed=0):
    return Estimate(wasserstein_distance(real[:, 0], generated[:, 0]), 0.0)


def test_split_is_disjoint_and_seeded():
    real = np.arange(100.0)[:, None]
    a, b = split_real(real, 40, seed=3)
    assert len(set(a[:, 0]) | set(b[:, 0])) == 80
    np.testing.assert_array_equal(split_real(real, 40, seed=3)[0], a)
    with pytest.raises(DataError, match="needs 2 x 60"):
        split_real(real, 60, seed=0)


def test_a_perfect_generator_matches_and_a_shifted_one_does_not():
    rng = np.random.default_rng(21)
    real = rng.normal(size=(20_000, 1))
    same = with_floor(w1, real, rng.normal(size=(10_000, 1)), seed=1)
    shifted = with_floor(w1, real, rng.normal(0.5, 1.0, size=(10_000, 1)), seed=1)
    assert same.floor == pytest.approx(shifted.floor)  # the floor does not see the generator
    assert same.floor < 0.05
    assert shifted.value == pytest.approx(0.5, abs=0.05)  # W1 of a translation is the shift
    assert shifted.verdict.endswith("x floor")
    # A zero-spread metric "matches" only at or below the floor: sampling noise decides here.
    assert verdict(same.floor, same.floor, 0.0) == "matches"


def test_sample_size_is_shared_by_both_comparisons():
    seen = []

    def record(real, generated, *, seed=0):
        seen.append((len(real), len(generated)))
        return Estimate(0.0, 0.0)

    with_floor(record, np.zeros((50, 1)), np.zeros((100, 1)))
    assert seen == [(25, 25), (25, 25)]
