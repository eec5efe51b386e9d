"""G's MMD terms on jet observables (loss.mass_mmd, loss.tau21_mmd, loss.pixel_mmd): the torch
observables against the NumPy ones of the metrics, MMD^2 against scikit-learn's kernels, the
mass and pixel terms' gradients restoring a jet width and a pixel brightness, and the training
runs and resumes that use them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import ks_2samp, norm
from sklearn.metrics.pairwise import rbf_kernel

from physgan import api, observables
from physgan.data import images
from physgan.errors import ConfigError
from physgan.losses import ObservableMMD, mmd_squared
from physgan.metrics.jetfeatures import jet_features


def clouds(n: int, seed: int, width: float = 0.2) -> np.ndarray:
    """Jets (n, 12, 4) with 2 to 12 particles of angles ~ N(0, width), some pt_rel below 0 and
    padded rows that hold junk (masks 0.3): what the mass must ignore."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n, 12, 4))
    p[..., :2] = rng.normal(0.0, width, (n, 12, 2))
    p[..., 2] = rng.exponential(0.1, (n, 12)) - 0.01
    k = rng.integers(2, 13, n)
    real = np.arange(12) < k[:, None]
    p[..., 3] = np.where(real, 1.0, 0.3)
    p[~real, :3] = rng.normal(0.0, 5.0, (int((~real).sum()), 3))
    return p


@pytest.mark.parametrize("seed", [11, 12])
def test_relative_jet_mass_is_the_metrics_mass(seed):
    p = clouds(500, seed)
    expected = jet_features(p)[:, 3]
    got = observables.relative_jet_mass(torch.tensor(p)).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)  # sqrt(m^2 + 1e-12): 1e-6 at m = 0


def test_mmd_squared_is_sklearns_kernel_sums():
    rng = np.random.default_rng(21)
    x, y = rng.normal(0, 1, 40), rng.normal(0.5, 2, 60)
    widths = [0.3, 1.0, 2.5]

    def mean_k(a, b):
        return sum(rbf_kernel(a[:, None], b[:, None], gamma=1 / (2 * s**2)).mean() for s in widths)

    expected = mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y)
    got = mmd_squared(torch.tensor(x), torch.tensor(y), widths).item()
    assert got == pytest.approx(expected, rel=1e-10)
    same = mmd_squared(torch.tensor(x), torch.tensor(x), widths).item()
    assert same == pytest.approx(0, abs=1e-12)


def gaussian_mmd_squared(m1: float, s1: float, m2: float, s2: float, widths) -> float:
    """Population MMD^2 between N(m1, s1^2) and N(m2, s2^2) under the sum of Gaussian kernels of
    bandwidths ``widths``: E k(x, y) = w / sqrt(w^2 + s_x^2 + s_y^2) exp(-(m_x - m_y)^2 /
    (2 (w^2 + s_x^2 + s_y^2))) for independent x, y (a Gaussian convolution)."""

    def mean_k(ma, sa, mb, sb):
        v = np.array(widths) ** 2 + sa**2 + sb**2
        return float((np.array(widths) / np.sqrt(v) * np.exp(-((ma - mb) ** 2) / (2 * v))).sum())

    return mean_k(m1, s1, m1, s1) + mean_k(m2, s2, m2, s2) - 2 * mean_k(m1, s1, m2, s2)


def one_hot(labels: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(labels), 2).double()


@pytest.mark.parametrize("seed", [51, 52])
def test_the_per_class_term_is_the_classes_gaussian_mmds_weighted_by_their_shares(seed):
    # Class 0: generated N(0.3, 0.1^2) against real N(0.2, 0.1^2); class 1: N(0.5, 0.15^2)
    # against N(0.55, 0.12^2); each sample the normal quantiles at (i + 1/2) / n (so that the
    # MMD is the population one up to the V-statistic's O(1/n) bias), a random share of the
    # batch per class, the rows shuffled.
    rng = np.random.default_rng(seed)
    n, spread = 6_000, 0.16
    counts = [int(rng.integers(1_000, 2_000)), 0]
    counts[1] = n - counts[0]
    means = [(0.3, 0.1, 0.2, 0.1), (0.5, 0.15, 0.55, 0.12)]

    def gaussian(mean, sd, k):
        return mean + sd * norm.ppf((np.arange(k) + 0.5) / k)

    fake = np.r_[gaussian(0.3, 0.1, counts[0]), gaussian(0.5, 0.15, counts[1])]
    real = np.r_[gaussian(0.2, 0.1, counts[0]), gaussian(0.55, 0.12, counts[1])]
    real = np.r_[rng.permutation(real[: counts[0]]), rng.permutation(real[counts[0] :])]
    labels = np.repeat([0, 1], counts)
    order = rng.permutation(n)  # rows in any order, the real ones of the same class as before
    term = ObservableMMD([(2.0, lambda v: v, spread)], per_class=True)
    got = term(torch.tensor(fake[order]), torch.tensor(real[order]), one_hot(labels[order]))
    widths = [spread * k for k in ObservableMMD.FRACTIONS]
    expected = 2.0 * sum(
        c / n * gaussian_mmd_squared(*m, widths) for c, m in zip(counts, means, strict=True)
    )
    assert got.item() == pytest.approx(expected, rel=1e-3)


def test_the_per_class_term_sees_classes_swapped_where_the_pooled_one_cannot():
    # Generated samples of each class drawn as the real ones of the other: the pooled batches
    # are the same values (MMD^2 0), class by class they are far apart.
    rng = np.random.default_rng(53)
    labels = np.repeat([0, 1], 200)
    real = np.where(labels == 0, rng.normal(0.2, 0.05, 400), rng.normal(0.5, 0.1, 400))
    fake = np.r_[real[200:], real[:200]]
    args = (torch.tensor(fake), torch.tensor(real), one_hot(labels))
    pooled = ObservableMMD([(1.0, lambda v: v, 0.2)])
    per_class = ObservableMMD([(1.0, lambda v: v, 0.2)], per_class=True)
    assert pooled(*args).item() == pytest.approx(0.0, abs=1e-12)
    widths = [0.2 * k for k in ObservableMMD.FRACTIONS]
    floor = gaussian_mmd_squared(0.2, 0.05, 0.5, 0.1, widths)
    assert per_class(*args).item() > 0.5 * floor
    with pytest.raises(ValueError, match="one-hot conditions"):
        per_class(*args[:2])


def jet_images(n: int, seed: int) -> np.ndarray:
    """Images (n, 1, 25, 25) of a few exponential-pT pixels, two-pronged or not, never empty."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 1, 25, 25))
    for image in out:
        k = rng.integers(1, 30)
        rows, cols = rng.integers(8, 17, k), rng.integers(4, 21, k)
        np.add.at(image[0], (rows, cols), rng.exponential(20.0, k))
    return out


@pytest.mark.parametrize("seed", [41, 42])
def test_image_mass_and_tau21_are_those_of_the_metrics(seed):
    x = jet_images(300, seed)
    t = torch.tensor(x)
    mass = observables.image_mass(t).numpy()
    np.testing.assert_allclose(mass, images.image_mass(x[:, 0]), rtol=1e-9, atol=2e-6)
    expected = images.image_tau21(x[:, 0])
    two = (x[:, 0] > 0).sum(axis=(1, 2)) >= 2  # one lit pixel: tau_1 = 0, tau_21 undefined
    assert two.mean() > 0.9
    tau21 = observables.image_tau21(t).numpy()[two]
    np.testing.assert_allclose(tau21, expected[two], rtol=1e-6, atol=2e-6)
    assert observables.image_tau21(torch.zeros(1, 1, 25, 25)).item() == 0.0


def test_pixel_log_pt_is_the_metrics_spectrum_sorted_or_its_order_statistics():
    x = jet_images(200, 45)
    spectrum = np.sort(images.pixel_log_pt(x))
    assert 1000 < spectrum.size < 5000
    t = torch.tensor(x)
    np.testing.assert_allclose(observables.pixel_log_pt(t, points=5000).numpy(), spectrum)
    # Fewer points: a sorted subset from the smallest to the largest value whose empirical
    # distribution is within 1/points of the whole spectrum's (Kolmogorov-Smirnov distance).
    few = observables.pixel_log_pt(t, points=64).numpy()
    assert few.size == 64
    assert np.abs(few[:, None] - spectrum[None]).min(axis=1).max() < 1e-12  # all its values
    assert np.all(np.diff(few) >= 0)
    np.testing.assert_allclose(few[[0, -1]], spectrum[[0, -1]], rtol=1e-12)
    assert ks_2samp(few, spectrum).statistic <= 1 / 64 + 1e-9
    assert observables.pixel_log_pt(torch.zeros(2, 1, 25, 25)).numel() == 0


def test_the_pixel_spectrum_gradient_reaches_the_lit_pixels_only():
    x = torch.tensor(jet_images(4, 46), requires_grad=True)
    observables.pixel_log_pt(x, points=10_000).sum().backward()
    lit = x.detach() > 0
    expected = 1 / (x.detach() * np.log(10))  # d log10(x) / dx
    np.testing.assert_allclose(x.grad[lit].numpy(), expected[lit].numpy(), rtol=1e-12)
    assert (x.grad[~lit] == 0).all()


def test_the_pixel_term_dims_too_bright_pixels_back():
    real = torch.tensor(jet_images(200, 47))
    spread = float(images.pixel_log_pt(real.numpy()).std())
    term = ObservableMMD([(1.0, observables.pixel_log_pt, spread)])
    # Other images of the same kind with every pixel's pT times s = 2: descent on the term alone
    # brings s back near 1, where the two spectra agree.
    other = torch.tensor(jet_images(200, 48))
    log_s = torch.tensor(np.log(2.0), requires_grad=True)
    opt = torch.optim.Adam([log_s], lr=0.02)
    for _ in range(200):
        loss = term(other * log_s.exp(), real)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(log_s.exp().item() - 1.0) < 0.1
    assert term(torch.zeros(3, 1, 25, 25), real).item() == 0.0  # no lit pixel: no term


def test_the_image_observables_gradients_are_their_derivatives():
    x = torch.tensor(jet_images(3, 43)) + torch.rand(
        3, 1, 25, 25, generator=torch.Generator().manual_seed(44)
    )
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(observables.image_mass, (x,))
    assert torch.autograd.gradcheck(observables.image_tau21, (x,))


def test_the_mass_term_widens_too_narrow_jets_back():
    real = torch.tensor(clouds(1000, 31, width=0.1))
    spread = float(jet_features(real.numpy())[:, 3].std())
    term = ObservableMMD([(1.0, observables.relative_jet_mass, spread)])
    # Other jets of the same kind with their angles scaled by s = 0.7: gradient descent on the
    # term alone brings s back near 1, where the two mass distributions agree.
    other = torch.tensor(clouds(1000, 32, width=0.1))
    scale = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([scale], lr=0.01)
    for _ in range(300):
        loss = term(torch.cat([other[..., :2] * scale, other[..., 2:]], dim=-1), real)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(scale.item() - 1.0) < 0.05


def jet_config(tiny_jet_config, **loss) -> dict:
    config = yaml.safe_load(tiny_jet_config.read_text())
    config["data"]["condition_on"] = ["pt", "n_particles"]
    config["loss"] = {"name": "lsgan", **loss}
    config["train"] |= {"steps": 6, "log_every": 2, "checkpoint_every": 2}
    return config


def metric_rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_logs_the_term_and_a_resume_may_switch_it_on(tiny_jet_config, tmp_path):
    api.train(jet_config(tiny_jet_config, mass_mmd=2.0), tmp_path / "on")
    rows = metric_rows(tmp_path / "on")
    assert all(r["mmd"] >= 0 for r in rows)
    assert any(r["mmd"] > 0 for r in rows)

    # A trained run fine-tuned with the term: the resume records it, the other settings stay.
    plain = jet_config(tiny_jet_config)
    api.train(plain, tmp_path / "tuned")
    api.train(
        plain,
        tmp_path / "tuned",
        resume=True,
        overrides=("train.steps=10", "loss.mass_mmd=3"),
    )
    saved = yaml.safe_load((tmp_path / "tuned" / "config.yaml").read_text())
    assert (saved["loss"]["mass_mmd"], saved["loss"]["name"]) == (3.0, "lsgan")
    rows = metric_rows(tmp_path / "tuned")
    assert "mmd" not in rows[0]
    assert "mmd" in rows[-1]
    with pytest.raises(ConfigError, match=r"loss: differs .* loss\.mmd_per_class may change"):
        api.train(plain, tmp_path / "tuned", resume=True, overrides=("loss.name=hinge",))


def test_the_terms_start_at_their_share_of_the_steps(tiny_jet_config, tmp_path):
    api.train(jet_config(tiny_jet_config, mass_mmd=2.0, mmd_from=0.5), tmp_path / "late")
    logged = {r["step"]: "mmd" in r for r in metric_rows(tmp_path / "late")}
    assert logged == {2: False, 4: True, 6: True}  # from step 3 of 6 on


@pytest.mark.parametrize("per_class", [False, True])
def test_an_image_run_trains_with_the_three_terms(tiny_image_overrides, tmp_path, per_class):
    pytest.importorskip("pythia8mc")
    terms = ("loss.mass_mmd=1", "loss.tau21_mmd=1", "loss.pixel_mmd=1")
    overrides = (*tiny_image_overrides, *terms, f"loss.mmd_per_class={per_class}")
    api.train("jet-images", tmp_path / "run", overrides=overrides, progress=False)
    rows = metric_rows(tmp_path / "run")
    assert all(np.isfinite(r["mmd"]) and r["mmd"] >= 0 for r in rows)


def test_a_term_on_data_it_does_not_fit_is_a_config_error(tiny_config, tiny_jet_config, tmp_path):
    with pytest.raises(ConfigError, match=r"loss\.tau21_mmd and loss\.pixel_mmd need jets"):
        api.train(tiny_config, tmp_path / "toy", overrides=("loss.mass_mmd=1",))
    with pytest.raises(ConfigError, match=r"loss\.tau21_mmd needs jet images"):
        api.train(jet_config(tiny_jet_config, tau21_mmd=1.0), tmp_path / "jets")
    with pytest.raises(ConfigError, match=r"loss\.pixel_mmd needs jet images"):
        api.train(jet_config(tiny_jet_config, pixel_mmd=1.0), tmp_path / "jets2")
    with pytest.raises(ConfigError, match=r"loss\.mmd_per_class needs data conditioned on a"):
        api.train(jet_config(tiny_jet_config, mass_mmd=1.0, mmd_per_class=True), tmp_path / "j3")
