"""Discriminator rejection sampling: the closed form in 1-D, and its use through the API."""

import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from physgan import api
from physgan.errors import ConfigError, DataError
from physgan.generation import load_run, sample_run
from physgan.losses import OBJECTIVES
from physgan.sampling import calibrate_discriminator, rejection_sample
from physgan.training.checkpoint import save_weights, saved_modules


def test_exact_log_ratio_turns_the_proposal_into_the_target():
    # p_g = N(0, 1); the optimal D* = p_data / (p_data + p_g) for p_data = N(0.5, 1) has the
    # logit log(p_data / p_g) = 0.5 x - 0.125, so the accepted samples follow N(0.5, 1).
    gen = torch.Generator().manual_seed(0)

    def log_ratio(x):
        x = x.squeeze(1).double()
        return torch.from_numpy(stats.norm.logpdf(x, 0.5, 1) - stats.norm.logpdf(x, 0, 1))

    x, rate = rejection_sample(
        lambda k: torch.randn(k, 1, generator=gen), log_ratio, 20_000, generator=gen
    )
    x = x.squeeze(1).numpy()
    assert x.shape == (20_000,)
    assert x.mean() == pytest.approx(0.5, abs=0.03)
    assert x.std() == pytest.approx(1.0, abs=0.03)
    assert stats.kstest(x, stats.norm(0.5, 1).cdf).pvalue > 0.01
    assert 0.0 < rate < 0.5  # E_g[r] / max r over the burn-in: most candidates are rejected


def test_a_lower_cap_accepts_more_and_corrects_less():
    def run(cap_quantile):
        gen = torch.Generator().manual_seed(1)
        x, rate = rejection_sample(
            lambda k: torch.randn(k, 1, generator=gen),
            lambda x: 0.5 * x.squeeze(1) - 0.125,
            5_000,
            generator=gen,
            cap_quantile=cap_quantile,
        )
        return float(x.mean()), rate

    (exact_mean, exact_rate), (capped_mean, capped_rate) = run(1.0), run(0.5)
    assert capped_rate > exact_rate
    assert 0.0 < capped_mean < exact_mean


def test_rejection_sample_is_seeded_and_checks_its_arguments():
    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        return rejection_sample(
            lambda k: torch.randn(k, 2, generator=gen), lambda x: -x[:, 0], 50, generator=gen
        )[0]

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))
    gen = torch.Generator()
    with pytest.raises(ValueError, match="cap_quantile"):
        rejection_sample(torch.randn, lambda x: x[:, 0], 5, generator=gen, cap_quantile=0.0)
    with pytest.raises(DataError, match="accepted"):
        rejection_sample(
            lambda k: torch.randn(k, 1),
            lambda x: 100 * x[:, 0],
            10**6,
            generator=gen,
            chunk=1_000,
            max_candidates=2_000,
        )


def test_api_samples_with_rejection_from_the_config_or_the_argument(tiny_config, tmp_path):
    api.train(tiny_config, tmp_path / "run")
    plain = api.sample(tmp_path / "run", 300, seed=2)
    kept = api.sample(tmp_path / "run", 300, seed=2, rejection=True)
    assert kept.shape == plain.shape
    assert np.isfinite(kept).all()
    assert not np.array_equal(kept, plain)
    np.testing.assert_array_equal(kept, api.sample(tmp_path / "run", 300, seed=2, rejection=True))
    result = api.evaluate(tmp_path / "run", n=300, seed=2, rejection=True)
    assert result["rejection"] is True
    assert result["n_modes"] == 8

    config = {
        **tiny_config,
        "sample": {"rejection": True, "cap_quantile": 0.9, "calibrate_steps": 20},
    }
    api.train(config, tmp_path / "run2")
    assert api.evaluate(tmp_path / "run2", n=300, seed=2)["rejection"] is True


def test_training_stores_the_calibrated_discriminator_that_sampling_would_make(
    tiny_config, tmp_path
):
    config = {**tiny_config, "sample": {"rejection": True, "calibrate_steps": 30}}
    api.train(config, tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    assert {"generator", "discriminator", "ema", "calibrated"} <= saved_modules(checkpoint)
    run, loaded, meta, state = load_run(tmp_path / "run")
    stored = state.calibrated
    assert stored is not None
    state.calibrated = None  # as a run that stopped before storing it: calibrated when sampling
    again = sample_run(run, loaded, meta, state, 400, 3)
    np.testing.assert_allclose(api.sample(tmp_path / "run", 400, seed=3), again, atol=1e-5)
    assert not any(
        torch.equal(a, b)
        for a, b in zip(stored.parameters(), state.discriminator.parameters(), strict=True)
    )

    # A resumed run calibrates again for its new final generator.
    api.train(config, tmp_path / "run", resume=True, overrides=("train.steps=80",))
    state = load_run(tmp_path / "run")[3]
    assert state.step == 80
    assert not torch.equal(next(state.calibrated.parameters()), next(stored.parameters()))

    plain = {**tiny_config, "sample": {"rejection": False, "calibrate_steps": 30}}
    api.train(plain, tmp_path / "plain")
    assert "calibrated" not in saved_modules(tmp_path / "plain" / "checkpoint.safetensors")


def test_rejection_needs_a_per_sample_logit(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match=r"sample\.rejection"):
        api.train(
            {**tiny_config, "loss": {"name": "hinge"}, "sample": {"rejection": True}},
            tmp_path / "a",
        )
    hinge = {**tiny_config, "loss": {"name": "hinge"}}
    api.train(hinge, tmp_path / "b")
    with pytest.raises(ConfigError, match=r"sample\.rejection"):
        api.sample(tmp_path / "b", 10, rejection=True)


def test_calibration_turns_a_discriminator_into_the_log_density_ratio():
    # p_g puts 0.8 / 0.2 on N(-2, 0.3) / N(2, 0.3), p_data 0.5 / 0.5: at D*, the logit is
    # log(p_data / p_g) = log(0.5 / 0.8) on the left mode and log(0.5 / 0.2) on the right one, and
    # exact rejection with it gives the data's equal weights.
    torch.manual_seed(5)
    D = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    before = [p.detach().clone() for p in D.parameters()]
    gen = torch.Generator().manual_seed(6)

    def mixture(k, left):
        side = torch.where(torch.rand(k, generator=gen) < left, -2.0, 2.0)
        return (side + 0.3 * torch.randn(k, generator=gen)).unsqueeze(1)

    real = mixture(50_000, 0.5)
    calibrated = calibrate_discriminator(
        D,
        lambda k: mixture(k, 0.8),
        real,
        OBJECTIVES.get("nonsaturating").d_loss,
        steps=1_500,
        batch_size=256,
        lr=1e-2,
        betas=(0.5, 0.999),
        generator=gen,
    )
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True))
    assert not calibrated.training
    with torch.no_grad():
        left, right = calibrated(torch.tensor([[-2.0], [2.0]])).squeeze(1).tolist()
    assert left == pytest.approx(np.log(0.5 / 0.8), abs=0.15)
    assert right == pytest.approx(np.log(0.5 / 0.2), abs=0.15)

    x, _ = rejection_sample(lambda k: mixture(k, 0.8), calibrated, 20_000, generator=gen)
    assert float((x < 0).float().mean()) == pytest.approx(0.5, abs=0.02)


class _ClassToyG(torch.nn.Module):
    """1-D class-conditional proposal: N(-2, 0.3) with probability LEFT[class], else N(2, 0.3)."""

    LEFT = torch.tensor([0.8, 0.5])

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # draw() reads the device from it

    def sample_latent(self, n, *, generator=None):
        return torch.randn(n, 2, generator=generator)

    def forward(self, z, cond=None):
        left = z[:, 0] < torch.special.ndtri(cond @ self.LEFT)
        return (torch.where(left, -2.0, 2.0) + 0.3 * z[:, 1]).unsqueeze(1)


class _ClassToyD(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
        )

    def forward(self, x, cond=None):
        return self.net(torch.cat([x, cond], dim=1))


def test_class_conditional_calibration_and_rejection_give_each_class_its_shares():
    # Class 0: p_g 0.8 / 0.2 on the left / right mode, p_data 0.5 / 0.5; class 1: p_g 0.5 / 0.5,
    # p_data 0.3 / 0.7. At D*(x, c) the logit is log(p_data(x | c) / p_g(x | c)) per class, and
    # rejection class by class turns each proposal into its own class's data.
    from types import SimpleNamespace

    from physgan.generation import _discriminator_score, _generate_rejected

    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(8)
    G, D = _ClassToyG(), _ClassToyD()
    data_left = torch.tensor([0.5, 0.3])
    cond = torch.eye(2)[torch.arange(50_000) % 2]
    left = torch.rand(50_000, generator=gen) < cond @ data_left
    real = (torch.where(left, -2.0, 2.0) + 0.3 * torch.randn(50_000, generator=gen)).unsqueeze(1)
    calibrated = calibrate_discriminator(
        D,
        lambda k, c: G(G.sample_latent(k, generator=gen), c),
        real,
        OBJECTIVES.get("nonsaturating").d_loss,
        real_cond=cond,
        steps=2_000,
        batch_size=256,
        lr=1e-2,
        betas=(0.5, 0.999),
        generator=gen,
    )
    with torch.no_grad():
        logits = calibrated(
            torch.tensor([[-2.0], [2.0], [-2.0], [2.0]]), torch.eye(2)[[0, 0, 1, 1]]
        )
    expected = np.log([0.5 / 0.8, 0.5 / 0.2, 0.3 / 0.5, 0.7 / 0.5])
    np.testing.assert_allclose(logits.squeeze(1).numpy(), expected, atol=0.15)

    config = SimpleNamespace(sample=SimpleNamespace(cap_quantile=1.0))
    classes = np.arange(20_000) % 3 % 2  # unequal class counts, interleaved
    net_cond = np.eye(2, dtype=np.float32)[classes]
    x = _generate_rejected(config, G, _discriminator_score(calibrated), net_cond, 20_000, 4, (1,))
    assert x.shape == (20_000, 1)
    for c, share in enumerate(data_left.tolist()):
        assert float((x[classes == c] < 0).mean()) == pytest.approx(share, abs=0.02)


@pytest.fixture(scope="module")
def class_images(tmp_path_factory, class_image_run):
    """A class-conditional image run with rejection sampling by its calibrated D."""
    root = tmp_path_factory.mktemp("class-rejection")
    return class_image_run(root, {"rejection": True, "calibrate_steps": 6})


def test_a_class_conditional_run_samples_by_rejection_class_by_class(class_images, tmp_path):
    assert "calibrated" in saved_modules(class_images / "checkpoint.safetensors")
    cond = np.eye(2, dtype=np.float32)[np.arange(300) % 3 % 2]
    x = api.sample(class_images, 300, seed=3, cond=cond)
    assert x.shape == (300, 1, 9, 9)
    assert (x >= 0).all()
    np.testing.assert_array_equal(api.sample(class_images, 300, seed=3, cond=cond), x)
    assert not np.array_equal(api.sample(class_images, 300, seed=4, cond=cond), x)
    plain = api.sample(class_images, 300, seed=3, cond=cond, rejection=False)
    assert not np.array_equal(plain, x)
    with pytest.raises(ConfigError, match="one-hot class conditions only"):
        api.sample(class_images, 2, seed=3, cond=np.full((2, 2), 0.5, dtype=np.float32))

    # Without the stored copy (a run that stopped early, or best weights), sampling calibrates
    # once, keeps that D in calibrated.safetensors, and a directory holding only the sampling
    # files (a shipped generator's) samples with it the same images.
    run, loaded, meta, state = load_run(class_images)
    state.calibrated = None
    again = sample_run(run, loaded, meta, state, 300, 3, cond)
    np.testing.assert_allclose(again, x, atol=1e-5)
    assert (class_images / "calibrated.safetensors").is_file()
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "meta.json", "transform.json", "calibrated.safetensors"):
        shutil.copy(class_images / name, bare / name)
    save_weights(bare / "best.safetensors", state.sampler, {"step": state.step})
    assert load_run(bare)[3].calibrated is not None
    np.testing.assert_allclose(api.sample(bare, 300, seed=3, cond=cond), x, atol=1e-5)

    # The evaluation samples as the config does, with conditions drawn from the training data.
    result = api.evaluate(class_images, n=40, seed=1, out=tmp_path / "ev")
    assert result["rejection"] is True
    assert 0.0 <= result["auc"]["value"] <= 1.0


def test_rejection_by_d_is_refused_where_no_discriminator_ships(class_images, tmp_path):
    # A directory of the generator alone (a shipped generator's files without a calibrated D):
    # no D to score or calibrate with.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "meta.json", "transform.json"):
        shutil.copy(class_images / name, bare / name)
    state = load_run(class_images)[3]
    save_weights(bare / "best.safetensors", state.sampler, {"step": state.step})
    with pytest.raises(ConfigError, match="holds the generator alone"):
        api.sample(bare, 10, seed=0)
    assert api.sample(bare, 10, seed=0, rejection=False).shape == (10, 1, 9, 9)
