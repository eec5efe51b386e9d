"""G's mass-MMD term (loss.mass_mmd): the torch jet mass against the metrics' NumPy one, MMD^2
against scikit-learn's kernels, its gradient restoring a jet width, and the training run and
resume that use it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics.pairwise import rbf_kernel

from physgan import api
from physgan.data.transforms import ParticleStandardize
from physgan.errors import ConfigError
from physgan.losses import MassMMD, mmd_squared, relative_jet_mass
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
    got = relative_jet_mass(torch.tensor(p)).numpy()
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


def test_mass_mmd_in_normalised_units_widens_too_narrow_jets_back():
    real = clouds(1000, 31, width=0.1)
    t = ParticleStandardize.fit(real)
    mass_std = float(jet_features(real)[:, 3].std())
    term = MassMMD(1.0, t.mean, t.std, mass_std)
    # The masses it sees are those of the clouds in physics units.
    np.testing.assert_allclose(
        term.masses(torch.tensor(t.forward(real))).numpy(), jet_features(real)[:, 3], atol=2e-6
    )
    # Other jets of the same kind with their angles scaled by s = 0.7: gradient descent on the
    # term alone brings s back near 1, where the two mass distributions agree.
    other = torch.tensor(clouds(1000, 32, width=0.1))
    target = torch.tensor(t.forward(real), dtype=torch.float64)
    scale = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([scale], lr=0.02)
    for _ in range(200):
        fake = torch.cat([other[..., :2] * scale, other[..., 2:]], dim=-1)
        normalised = (fake[..., :3] - torch.tensor(t.mean)) / torch.tensor(t.std)
        loss = term(torch.cat([normalised, fake[..., 3:]], dim=-1), target)
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
    assert all(r["mass_mmd"] >= 0 for r in rows)
    assert any(r["mass_mmd"] > 0 for r in rows)

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
    assert "mass_mmd" not in rows[0]
    assert "mass_mmd" in rows[-1]
    with pytest.raises(ConfigError, match=r"loss: differs .* loss\.mass_mmd may change"):
        api.train(plain, tmp_path / "tuned", resume=True, overrides=("loss.name=hinge",))


def test_the_term_on_data_that_are_not_jets_is_a_config_error(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match=r"loss\.mass_mmd needs jets as particle clouds"):
        api.train(tiny_config, tmp_path / "run", overrides=("loss.mass_mmd=1",))
