"""GAN, VAE and flow through the same schema, loop, run directory, sample, evaluate, compare."""

import json
import math

import numpy as np
import pytest
from safetensors.torch import load_file
from scipy import integrate

from physgan import api, cli
from physgan.comparison import model_log_density
from physgan.config import parse_config
from physgan.errors import CheckpointError, ConfigError
from physgan.generation import load_run
from physgan.training.rundir import RunDir

pytest.importorskip("zuko")

MU, SIGMA = 3.0, 0.5

MODELS = {
    "gan": {
        "generator": {"latent_dim": 2, "hidden": 32, "depth": 2},
        "discriminator": {"hidden": 32, "depth": 2},
    },
    "vae": {"family": "vae", "latent_dim": 1, "hidden": 32, "depth": 2},
    "flow": {"family": "flow", "transforms": 2, "hidden": 32, "bins": 8},
}


def _config(path, family, steps, seed=0):
    train = {"steps": steps, "batch_size": 128, "log_every": 50, "eval_samples": 256, "ema": None}
    if family == "gan":
        train |= {"lr_g": 1e-3, "lr_d": 1e-3}
    else:
        train |= {"lr_g": 3e-3, "betas_g": [0.9, 0.999]}
    return {
        "seed": seed,
        "data": {"path": str(path)},
        "model": MODELS[family],
        "train": train,
    }


@pytest.fixture(scope="module")
def gaussian_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "gauss.npy"
    np.save(path, np.random.default_rng(11).normal(MU, SIGMA, (4000, 1)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def runs(gaussian_file, tmp_path_factory):
    """One trained run per family on N(3, 0.5^2) (1-D)."""
    root = tmp_path_factory.mktemp("runs")
    steps = {"gan": 600, "vae": 600, "flow": 800}
    return {
        family: api.train(_config(gaussian_file, family, steps[family]), root / family).run_dir
        for family in MODELS
    }


@pytest.mark.parametrize("family", list(MODELS))
def test_each_family_learns_a_gaussian(runs, family):
    x = api.sample(runs[family], 20_000, seed=5)
    assert x.shape == (20_000, 1)
    assert abs(x.mean() - MU) < 0.1
    assert abs(x.std() - SIGMA) < 0.1
    np.testing.assert_array_equal(api.sample(runs[family], 20_000, seed=5), x)


def test_flow_density_in_data_units_integrates_to_one(runs):
    run_dir = runs["flow"]
    _, _, _, state = load_run(run_dir)
    log_q = model_log_density(RunDir(run_dir), state)
    grid = np.linspace(MU - 12 * SIGMA, MU + 12 * SIGMA, 20_001)[:, None]
    density = np.exp(log_q(grid))
    assert integrate.simpson(density, x=grid[:, 0]) == pytest.approx(1.0, abs=2e-3)
    # ... and it is the data's density: the likelihood of fresh N(3, 0.5^2) draws is close to
    # the truth's, E[log p] = -H = -log(sigma sqrt(2 pi e)).
    fresh = np.random.default_rng(99).normal(MU, SIGMA, (20_000, 1))
    assert log_q(fresh).mean() == pytest.approx(
        -math.log(SIGMA * math.sqrt(2 * math.pi * math.e)), abs=0.05
    )


@pytest.mark.parametrize("family", ["vae", "flow"])
def test_likelihood_runs_resume_exactly(gaussian_file, tmp_path, family, assert_same_weights):
    whole = api.train(_config(gaussian_file, family, 40), tmp_path / "whole")
    api.train(_config(gaussian_file, family, 20), tmp_path / "part")
    api.train(_config(gaussian_file, family, 40), tmp_path / "part", resume=True)
    assert any(k.startswith("model.") for k in load_file(str(RunDir(whole.run_dir).checkpoint)))
    assert_same_weights(whole.run_dir, tmp_path / "part")


def test_evaluate_writes_a_report_for_a_vae(runs):
    metrics = api.evaluate(runs["vae"], n=500, seed=1)
    assert metrics["kind"] == "vectors"
    assert 0.4 < metrics["auc"]["value"] < 0.75
    assert (runs["vae"] / "report.html").is_file()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": "vae", "loss": {"name": "hinge"}}, "loss.name: a GAN setting"),
        ({"model": "flow", "train": {"n_critic": 2}}, "train.n_critic: a GAN setting"),
        ({"model": "vae", "sample": {"rejection": True}}, "sample.rejection: a GAN setting"),
        ({"model": "diffusion"}, "model: unknown family 'diffusion'; choose from: gan, vae, flow"),
        ({"model": {"family": "vae", "generator": {}}}, "model.generator: unknown key"),
        ({"model": {"family": "flow", "passes": 1}}, "model.passes: Input should be greater"),
        ({"model": {"family": "vae", "decoder": "rnn"}}, "model.decoder: Input should be"),
    ],
)
def test_family_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match="^config: " + message.replace("(", r"\(")):
        parse_config(raw)


def test_model_shorthand_and_saved_configs_round_trip():
    config = parse_config({"model": "flow"})
    assert config.model.family == "flow"
    assert parse_config(config.to_dict()) == config
    assert parse_config({"model": {"generator": {"hidden": 8}}}).model.family == "gan"


def test_rejection_sampling_refused_for_a_vae(runs):
    with pytest.raises(ConfigError, match="GAN setting"):
        api.sample(runs["vae"], 10, rejection=True)


def test_compare_three_families(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = cli.main(["compare", *map(str, runs.values()), "--out", str(out), "-n", "2000"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "KL(data||model) kNN" in printed
    saved = json.loads((out / "compare.json").read_text())
    rows = {row["family"]: row for row in saved["runs"]}
    assert set(rows) == set(MODELS)
    # Data from a file have no known density: every family gets kNN estimates only.
    for row in rows.values():
        assert "kl_forward_exact" not in row
        assert row["kl_forward_knn"]["value"] < 0.2
        assert row["samples_per_s"] > 0
    assert rows["gan"]["holdout_nll"] is None
    # Held-out -log-likelihood of the standardised data, whose entropy is that of N(0, 1): a
    # flow reaches it, a VAE's -ELBO lies above it (up to the 256 held-out samples' noise).
    entropy, noise = 0.5 * math.log(2 * math.pi * math.e), 3 * 0.71 / math.sqrt(256)
    assert rows["flow"]["holdout_nll"] == pytest.approx(entropy, abs=noise)
    assert rows["vae"]["holdout_nll"] > entropy - noise
    assert (out / "compare.png").stat().st_size > 1000
    assert (out / "compare.md").read_text().startswith("| run | family |")


def test_compare_exact_on_a_toy(tmp_path):
    """On a toy with a known density a flow gets exact KL both ways, a GAN kNN."""
    config = {
        "data": {"name": "bimodal", "n_train": 4000},
        "model": MODELS["flow"],
        "train": {"steps": 150, "batch_size": 128, "lr_g": 3e-3, "eval_samples": 256},
    }
    flow = api.train(config, tmp_path / "flow").run_dir
    result = api.compare([flow], out=tmp_path / "cmp", n=4000, seed=3)
    (row,) = result.rows
    for key in ("kl_forward_exact", "kl_reverse_exact"):
        value, std = row[key]["value"], row[key]["std"]
        assert value > -4 * std  # KL >= 0 up to Monte Carlo error
    assert 0 <= row["jsd_exact"]["value"] <= math.log(2)
    # The kNN estimate of the same divergence agrees with the exact one (1-D, 4000 samples).
    assert row["kl_forward_knn"]["value"] == pytest.approx(
        row["kl_forward_exact"]["value"], abs=0.1
    )
    assert row["modes"].endswith("/2")
    assert 0.5 < row["mode_width"] < 2


def test_compare_refuses_a_bad_run_before_writing(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = cli.main(["compare", str(runs["gan"]), str(tmp_path / "nope"), "--out", str(out)])
    assert code == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(CheckpointError):
        api.compare([tmp_path], out=out)


def test_vae_kl_warmup_weights_the_kl_linearly():
    import torch

    from physgan.models import VAE
    from physgan.training import LikelihoodState
    from physgan.training.seeding import step_generator
    from physgan.training.steps import vae_step

    torch.manual_seed(4)
    x = torch.randn(64, 3)

    def loss_at(step, warmup):
        model = VAE(sample_shape=(3,), latent_dim=2, hidden=8, depth=1)
        model.load_state_dict(reference.state_dict())
        state = LikelihoodState(model, torch.optim.SGD(model.parameters(), lr=0.0), step=step)
        fn = vae_step(sample_real=lambda n, g: (x, None), batch_size=64, seed=0, warmup=warmup)
        logs = fn(state)
        recon, kl = reference.elbo_terms(x, generator=step_generator(0, step))
        return logs["loss"].item(), recon.mean().item(), kl.mean().item()

    reference = VAE(sample_shape=(3,), latent_dim=2, hidden=8, depth=1)
    for step, warmup, weight in [(0, 10, 0.1), (4, 10, 0.5), (9, 10, 1.0), (50, 10, 1.0)]:
        loss, recon, kl = loss_at(step, warmup)
        assert loss == pytest.approx(weight * kl - recon, rel=1e-5)
    loss, recon, kl = loss_at(0, 0)
    assert loss == pytest.approx(kl - recon, rel=1e-5)


@pytest.mark.parametrize("family", ["vae", "flow"])
def test_conditional_likelihood_models_generate_the_requested_mode(tmp_path, family):
    from physgan.data.toy import ring8

    model = {
        "vae": {"family": "vae", "latent_dim": 2, "hidden": 64, "depth": 2},
        "flow": {"family": "flow", "transforms": 3, "hidden": 32, "depth": 2},
    }[family]
    config = {
        "seed": 0,
        "data": {"name": "ring8", "n_train": 8_000, "conditional": True},
        "model": model,
        "train": {
            "steps": {"vae": 1000, "flow": 400}[family],
            "batch_size": 128,
            "lr_g": 3e-3,
            "betas_g": [0.9, 0.999],
            "log_every": 200,
            "ema": None,
        },
    }
    api.train(config, tmp_path / "run")
    labels = np.repeat(np.arange(8), 100)
    x = api.sample(tmp_path / "run", 800, seed=3, cond=np.eye(8)[labels])
    nearest = np.argmin(((x[:, None, :] - ring8().means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95  # each condition yields its own mode


@pytest.mark.parametrize(
    "model",
    [
        {"family": "vae", "latent_dim": 4, "decoder": "conv", "base_channels": 4, "hidden": 16},
        {"family": "flow", "transforms": 1, "hidden": 16, "depth": 1, "passes": 2},
    ],
    ids=["vae-conv", "flow"],
)
def test_likelihood_families_train_and_sample_images(tmp_path, model):
    images = np.random.default_rng(2).gamma(1.0, 1.0, (64, 1, 9, 9)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    config = {
        "data": {"path": str(tmp_path / "images.npy")},
        "model": model,
        "train": {"steps": 3, "batch_size": 16, "log_every": 1, "eval_samples": 8},
    }
    result = api.train(config, tmp_path / "run")
    assert all(math.isfinite(v) for v in result.metrics.values())
    x = api.sample(tmp_path / "run", 5, seed=1)
    assert x.shape == (5, 1, 9, 9)
    assert np.isfinite(x).all()
