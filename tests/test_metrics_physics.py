"""Physics metrics (jet features, EFPs, W1, FPD, KPD) against independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.stats import iqr, wasserstein_distance

from physgan.data.jets import particle_cloud
from physgan.errors import DataError
from physgan.metrics.efp import efp, efps, efps_d4
from physgan.metrics.frechet import fpd, frechet_distance, kpd, mmd_poly
from physgan.metrics.jetfeatures import jet_features
from physgan.metrics.wasserstein import w1efp, w1efp_features, w1m, w1p, w1p_features


def clouds(
    seed: int, n_jets: int, n_particles: int = 8, eta_width: float = 0.1, pt_scale: float = 1.0
) -> np.ndarray:
    """Random particle clouds (n_jets, n_particles, 4), 2..N real particles each, zero padding."""
    rng = np.random.default_rng(seed)
    mask = np.arange(n_particles) < rng.integers(2, n_particles + 1, n_jets)[:, None]
    pt = rng.exponential(1.0, (n_jets, n_particles)) * mask
    pt = pt_scale * pt / pt.sum(axis=1, keepdims=True)
    eta = rng.normal(0.0, eta_width, (n_jets, n_particles))
    phi = rng.normal(0.0, 0.1, (n_jets, n_particles))
    return np.stack([eta, phi, pt, mask], axis=-1) * mask[..., None]


def mass_by_loops(cloud: np.ndarray) -> np.ndarray:
    """Jet masses summing massless four-vectors particle by particle (mask >= 0.5)."""
    masses = []
    for jet in cloud:
        e = px = py = pz = 0.0
        for eta, phi, pt, mask in jet:
            if mask >= 0.5:
                pt = max(pt, 0.0)
                e += pt * math.cosh(eta)
                px += pt * math.cos(phi)
                py += pt * math.sin(phi)
                pz += pt * math.sinh(eta)
        masses.append(math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)))
    return np.array(masses)


# ---------------------------------------------------------------- jet features


def test_jet_features_match_particle_loops_and_ignore_padding():
    cloud = clouds(0, 50)
    cloud[:, -1] = [9.0, 9.0, 9.0, 0.49]  # junk in a row the mask removes
    features = jet_features(cloud)
    np.testing.assert_allclose(features[:, 3], mass_by_loops(cloud), rtol=1e-12, atol=1e-15)
    kept = cloud[:, :-1]
    np.testing.assert_allclose(jet_features(kept), features, atol=1e-15)


def test_jet_features_of_clouds_built_from_four_momenta():
    rng = np.random.default_rng(1)
    n_jets, n_const = 20, 6
    pt = rng.uniform(20, 200, (n_jets, n_const))
    eta = rng.normal(1.0, 0.3, (n_jets, n_const))
    phi = rng.normal(3.0, 0.3, (n_jets, n_const))  # straddles the +-pi wrap
    constituents = np.stack(
        [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], axis=-1
    )
    constituents = np.take_along_axis(constituents, np.argsort(-pt)[..., None], axis=1)
    cloud = particle_cloud(constituents.sum(axis=1), constituents, np.full(n_jets, n_const), 8)
    features = jet_features(cloud.particles)
    # a z boost and a phi rotation keep the mass; pt_rel scales it by 1 / pT_jet
    np.testing.assert_allclose(features[:, 0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(features[:, 2], 0.0, atol=1e-5)
    np.testing.assert_allclose(features[:, 3], cloud.jets[:, 2] / cloud.jets[:, 0], rtol=1e-4)


# ---------------------------------------------------------------- EFPs


def _theta(p: np.ndarray, i: int, j: int) -> float:
    dphi = abs(p[i, 1] - p[j, 1])
    dphi = min(dphi, 2 * math.pi - dphi)
    return math.hypot(p[i, 0] - p[j, 0], dphi)


# The 5 w1efp multigraphs as products of angles over the vertex assignment (a, b, c, d).
W1EFP_BY_HAND = [
    lambda t, a, b, c, d: t(a, b) * t(a, c) ** 2 * t(a, d),  # star, one edge doubled
    lambda t, a, b, c, d: t(a, b) * t(a, c) ** 2 * t(b, d),  # path c-a-b-d, end edge doubled
    lambda t, a, b, c, d: t(a, b) ** 2 * t(a, c) * t(b, d),  # path c-a-b-d, middle doubled
    lambda t, a, b, c, d: t(a, b) * t(a, c) * t(b, c) * t(a, d),  # triangle with a tail
    lambda t, a, b, c, d: t(a, b) * t(a, c) * t(b, d) * t(c, d),  # square a-b-d-c
]


def efp_by_loops(jet: np.ndarray, graph, n_vertices: int, normed: bool = False) -> float:
    real = jet[jet[:, 3] >= 0.5]
    z = real[:, 2] / (real[:, 2].sum() if normed else 1.0)
    total = 0.0
    for assignment in itertools.product(range(len(real)), repeat=n_vertices):
        weight = math.prod(z[i] for i in assignment)
        total += weight * graph(lambda i, j: _theta(real, i, j), *assignment)
    return total


TINY = np.array(
    [
        [[0.1, 0.2, 0.5, 1.0], [-0.2, 0.1, 0.3, 1.0], [0.05, -0.3, 0.2, 1.0], [0, 0, 0, 0]],
        [[0.0, 3.1, 0.7, 1.0], [0.1, -3.1, 0.3, 1.0], [5.0, 5.0, 5.0, 0.0], [0, 0, 0, 0]],
        [[0.3, 0.0, 0.4, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]],
    ]
)


@pytest.mark.parametrize("index", range(5))
@pytest.mark.parametrize("normed", [False, True])
def test_w1efp_efps_match_sum_over_vertex_assignments(index, normed):
    expected = [efp_by_loops(jet, W1EFP_BY_HAND[index], 4, normed) for jet in TINY]
    np.testing.assert_allclose(efps(TINY, normed=normed)[:, index], expected, rtol=1e-12)
    assert expected[2] == 0.0  # one particle: every angle is 0


def test_efp_wraps_phi_and_counts_coincident_vertices():
    # theta = 0.1 across the +-pi boundary; EFP of one edge = sum_{a,b} z_a z_b theta_ab
    jet = np.array([[[0.0, math.pi - 0.05, 0.6, 1.0], [0.0, -math.pi + 0.05, 0.4, 1.0]]])
    np.testing.assert_allclose(efp(jet, ((0, 1),)), [2 * 0.6 * 0.4 * 0.1], rtol=1e-12)
    np.testing.assert_allclose(efp(jet, ()), [1.0])


def test_efps_d4_columns():
    cloud = clouds(2, 30, n_particles=5, pt_scale=0.9)
    values = efps_d4(cloud)
    assert values.shape == (30, 36)
    np.testing.assert_allclose(values[:, 0], 0.9)  # sum of z
    np.testing.assert_allclose(values[:, [12, 14, 15, 16, 17]], efps(cloud), rtol=1e-12)
    np.testing.assert_allclose(values[:, 21], values[:, 1] ** 2, rtol=1e-12)
    np.testing.assert_allclose(values[:, 35], values[:, 1] ** 4, rtol=1e-12)
    np.testing.assert_allclose(values[:, 28], values[:, 1] * values[:, 9], rtol=1e-12)

    def star4(t, a, b, c, d, e):
        return t(a, b) * t(a, c) * t(a, d) * t(a, e)

    np.testing.assert_allclose(
        values[:3, 18], [efp_by_loops(jet, star4, 5) for jet in cloud[:3]], rtol=1e-12
    )


def test_efps_invariant_to_particle_order_padding_and_normalisation():
    cloud = clouds(3, 40)
    rng = np.random.default_rng(3)
    shuffled = cloud[:, rng.permutation(cloud.shape[1])]
    padded = np.concatenate([cloud, np.zeros((40, 3, 4))], axis=1)
    padded[:, -3:, :3] = rng.normal(size=(40, 3, 3))  # junk where mask = 0
    values = efps(cloud)
    np.testing.assert_allclose(efps(shuffled), values, rtol=1e-12)
    np.testing.assert_allclose(efps(padded), values, rtol=1e-12)
    doubled = cloud * np.array([1.0, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(efps(doubled), 16 * values, rtol=1e-12)  # degree 4 in z
    np.testing.assert_allclose(efps(doubled, normed=True), efps(cloud, normed=True), rtol=1e-12)


# ---------------------------------------------------------------- W1


def _same_subsets(n_real: int, n_gen: int, size: int, batches: int, seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.choice(n_real, size), rng.choice(n_gen, size)) for _ in range(batches)]


def test_w1m_and_w1p_match_scipy_on_the_same_subsets():
    real, gen = clouds(4, 300), clouds(5, 200, eta_width=0.15)
    gen[:, :, 3] *= 0.8  # generated masks need not be exactly 1
    real_mass, gen_mass = mass_by_loops(real), mass_by_loops(gen)
    w1_mass, w1_parts = [], []
    for pick_real, pick_gen in _same_subsets(300, 200, 400, 4, seed=7):
        w1_mass.append(wasserstein_distance(real_mass[pick_real], gen_mass[pick_gen]))
        parts_real = real[pick_real][real[pick_real][..., 3] >= 0.5]
        parts_gen = gen[pick_gen][gen[pick_gen][..., 3] >= 0.5]
        w1_parts.append([wasserstein_distance(parts_real[:, k], parts_gen[:, k]) for k in range(3)])
    kwargs = {"num_eval_samples": 400, "num_batches": 4, "seed": 7}
    assert w1m(real, gen, **kwargs) == pytest.approx((np.mean(w1_mass), np.std(w1_mass)))
    per_feature = w1p_features(real, gen, **kwargs)
    np.testing.assert_allclose(per_feature[:, 0], np.mean(w1_parts, axis=0), rtol=1e-12)
    np.testing.assert_allclose(per_feature[:, 1], np.std(w1_parts, axis=0), rtol=1e-12)
    assert w1p(real, gen, **kwargs) == pytest.approx(
        (per_feature[:, 0].mean(), np.linalg.norm(per_feature[:, 1]))
    )


def test_w1efp_matches_scipy_on_the_same_subsets():
    real, gen = clouds(6, 150), clouds(7, 120, pt_scale=0.9)
    real_efps, gen_efps = efps(real), efps(gen)
    w1s = [
        [wasserstein_distance(real_efps[r, k], gen_efps[g, k]) for k in range(5)]
        for r, g in _same_subsets(150, 120, 200, 3, seed=1)
    ]
    per_efp = w1efp_features(real, gen, num_eval_samples=200, num_batches=3, seed=1)
    np.testing.assert_allclose(per_efp, np.stack([np.mean(w1s, 0), np.std(w1s, 0)], 1))
    assert w1efp(real, gen, num_eval_samples=200, num_batches=3, seed=1) == pytest.approx(
        (per_efp[:, 0].mean(), np.linalg.norm(per_efp[:, 1]))
    )


def test_w1_of_one_distribution_is_small_and_shrinks_with_size():
    real, gen = clouds(8, 4000), clouds(9, 4000)
    small = w1m(real, gen, num_eval_samples=100, num_batches=5, seed=0).value
    large = w1m(real, gen, num_eval_samples=4000, num_batches=5, seed=0).value
    assert large < small / 3
    shifted = w1m(real, clouds(9, 4000, eta_width=0.2), num_eval_samples=4000, seed=0).value
    assert shifted > 10 * large


@pytest.mark.parametrize(("feature", "shift"), [(0, 0.25), (2, 0.05)])
def test_w1p_of_a_translation_is_the_shift(feature, shift):
    move = np.zeros(4)
    move[feature] = shift
    # identical jets: every batch holds the same particles, so W1 is exactly the shift
    one_jet = np.repeat(clouds(10, 1), 30, axis=0)
    moved = np.where(one_jet[..., 3:] >= 0.5, one_jet + move, one_jet)
    exact = w1p_features(one_jet, moved, num_eval_samples=30, num_batches=2)
    np.testing.assert_allclose(exact[:, 0], np.eye(3)[feature] * shift, atol=1e-12)
    # random jets: the shift up to sampling noise
    real = clouds(11, 3000)
    noisy = w1p_features(real, np.where(real[..., 3:] >= 0.5, real + move, real), seed=2)
    assert noisy[feature, 0] == pytest.approx(shift, rel=0.1)


# ---------------------------------------------------------------- FPD, KPD


def _exact_moments(rng, mean, cov, n):
    """n samples whose sample mean and (ddof 1) covariance are exactly mean and cov."""
    x = rng.normal(size=(n, len(mean)))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(12)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.5, 0.0])
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    closed = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    exact = frechet_distance(_exact_moments(rng, mu1, s1, 50), _exact_moments(rng, mu2, s2, 80))
    assert exact == pytest.approx(closed, rel=1e-9)
    sampled = frechet_distance(
        rng.multivariate_normal(mu1, s1, 200_000), rng.multivariate_normal(mu2, s2, 200_000)
    )
    assert sampled == pytest.approx(closed, rel=0.02)


@pytest.mark.parametrize("degree", [3, 4])
def test_mmd_poly_matches_double_loop(degree):
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(5, 3)), rng.normal(0.5, 1.0, size=(7, 3))

    def k(u, v):
        return (u @ v / 3 + 1) ** degree

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    yy = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(7)) / (5 * 7)
    assert mmd_poly(x, y, degree=degree) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kpd_is_the_median_of_mmd_over_seeded_batches():
    real, gen = clouds(14, 300), clouds(15, 200, eta_width=0.2)
    x, y = efps_d4(real), efps_d4(gen)
    scale = np.abs(x).max(axis=0)
    x, y = x / scale, y / scale
    values = []
    for i in range(6):
        rng = np.random.default_rng(3 + 1000 * i)
        values.append(mmd_poly(x[rng.choice(300, 150)], y[rng.choice(200, 150)]))
    expected = (np.median(values), iqr(values, rng=(16.275, 83.725)) / 2)
    assert kpd(real, gen, num_batches=6, batch_size=150, seed=3) == pytest.approx(expected)


def test_fpd_and_kpd_near_zero_for_one_distribution_and_larger_when_shifted():
    real, same = clouds(16, 1500), clouds(17, 1500)
    other = clouds(18, 1500, eta_width=0.13)
    fpd_kwargs = {"min_samples": 500, "max_samples": 1500, "num_batches": 5, "num_points": 4}
    fpd_same, fpd_other = fpd(real, same, **fpd_kwargs), fpd(real, other, **fpd_kwargs)
    assert fpd_same.value < 3 * fpd_same.std + 1e-3
    assert fpd_other.value > 10 * max(fpd_same.value, fpd_same.std)
    kpd_same = kpd(real, same, batch_size=1000, num_batches=4)
    kpd_other = kpd(real, other, batch_size=1000, num_batches=4)
    assert abs(kpd_same.value) < 3 * kpd_same.std + 1e-4
    assert kpd_other.value > 10 * abs(kpd_same.value)


def test_fpd_adapts_to_small_samples_and_refuses_too_few():
    small = fpd(clouds(19, 40), clouds(20, 30), num_batches=3)  # sizes 12..30 instead
    assert 0 <= small.value < np.inf
    with pytest.raises(DataError, match="distinct batch sizes"):
        fpd(clouds(19, 2), clouds(20, 2))


# ---------------------------------------------------------------- bad input

METRICS = [w1m, w1p, w1p_features, w1efp, w1efp_features, fpd, kpd]


def _bad_inputs():
    good = clouds(21, 10)
    nan = good.copy()
    nan[3, 0, 1] = np.nan
    inf = good.copy()
    inf[0, 0, 2] = np.inf
    no_mask = good.copy()
    no_mask[..., 3] = 0.3
    return {
        "mismatched particles": (good, clouds(22, 10, n_particles=6), "differ in shape"),
        "three features": (good, good[..., :3], "expected shape"),
        "two dimensions": (good, good[:, 0], "expected shape"),
        "NaN": (good, nan, "NaN or inf"),
        "inf": (inf, good, "NaN or inf"),
        "empty masks": (good, no_mask, "removes every particle"),
        "one jet": (good[:1], good, "at least 2 jets"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
@pytest.mark.parametrize("metric", METRICS, ids=lambda f: f.__name__)
def test_bad_input_raises_one_line_data_error(metric, case):
    real, gen, message = _bad_inputs()[case]
    with pytest.raises(DataError, match=message) as caught:
        metric(real, gen)
    assert "\n" not in str(caught.value)
