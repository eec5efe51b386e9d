"""Model selection during training (train.select_every), best weights, and the support metric."""

import json

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from physgan import api
from physgan.data.images import image_mass
from physgan.errors import CheckpointError, ConfigError
from physgan.generation import load_run
from physgan.metrics import outlier_fraction, support_features
from physgan.metrics.efp import efps
from physgan.training.checkpoint import read_weights
from physgan.training.selection import _halves, image_scorer, jet_scorer
from test_conditioning import config as jet_config
from test_conditioning import toy_jets


def _selecting(path, steps=400):
    cfg = jet_config(path, steps=steps)
    cfg["train"].update(select_every=100, select_samples=500)
    return cfg


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    root = tmp_path_factory.mktemp("select")
    path = toy_jets(root / "toy.h5")
    return api.train(_selecting(path), root / "run").run_dir, path


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_scores_are_logged_and_the_best_weights_kept(selected):
    run_dir, _ = selected
    scored = [r for r in _rows(run_dir) if "val_score" in r]
    assert [r["step"] for r in scored] == [100, 200, 300, 400]
    for row in scored:
        assert min(row["val_w1m"], row["val_w1p"], row["val_w1efp"], row["val_outliers"]) >= 0
        assert row["val_outliers"] <= 1
    best = min(scored, key=lambda r: r["val_score"])
    assert scored[-1]["best_step"] == best["step"]
    saved = read_weights(run_dir / "best.safetensors")[1]
    assert saved["step"] == best["step"]
    assert saved["score"] == pytest.approx(best["val_score"])


def test_a_resume_may_select_more_often_and_trains_the_same(tmp_path, assert_same_weights):
    path = toy_jets(tmp_path / "toy.h5")

    def config(steps):
        cfg = _selecting(path, steps=steps)
        cfg["train"]["log_every"] = 50
        return cfg

    api.train(config(200), tmp_path / "straight")
    api.train(config(100), tmp_path / "changed")
    overrides = ("train.steps=200", "train.select_every=50")
    api.train(config(100), tmp_path / "changed", resume=True, overrides=overrides)
    scored = [r["step"] for r in _rows(tmp_path / "changed") if "val_score" in r]
    assert scored == [100, 150, 200]
    assert_same_weights(tmp_path / "straight", tmp_path / "changed")


def test_sampling_uses_the_best_weights_unless_asked_for_the_last(selected):
    run_dir, _ = selected
    best_step = read_weights(run_dir / "best.safetensors")[1]["step"]
    assert load_run(run_dir).state.step == best_step
    assert load_run(run_dir, weights="last").state.step == 400
    if best_step != 400:
        a = api.sample(run_dir, 50, seed=1)
        b = api.sample(run_dir, 50, seed=1, weights="last")
        assert not np.array_equal(a, b)


def test_a_resumed_run_keeps_the_best_so_far(selected, tmp_path):
    _, path = selected
    run = tmp_path / "run"
    api.train(_selecting(path, steps=200), run)
    first = read_weights(run / "best.safetensors")[1]
    api.train(_selecting(path, steps=400), run, resume=True)
    rows = [r for r in _rows(run) if "val_score" in r]
    assert [r["step"] for r in rows] == [100, 200, 300, 400]
    after = read_weights(run / "best.safetensors")[1]
    assert after["score"] <= first["score"]
    assert after["score"] == pytest.approx(min(r["val_score"] for r in rows))


def test_selection_is_refused_for_data_without_a_scorer(tiny_config, gaussian_file, tmp_path):
    tiny_config["data"] = {"path": str(gaussian_file)}
    tiny_config["train"].update(select_every=20)
    with pytest.raises(ConfigError, match="select_every: model selection scores jets"):
        api.train(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_toys_are_selected_by_their_modes(tmp_path):
    """Any family: a flow on the lecture's 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2), which it
    learns in a few hundred steps."""
    from physgan.data.toy import TOY_DATASETS
    from physgan.metrics import mode_stats

    config = {
        "data": {"name": "bimodal", "n_train": 4000},
        "model": {"family": "flow", "transforms": 2, "hidden": 32, "bins": 8},
        "train": {
            "steps": 600,
            "batch_size": 128,
            "lr_g": 3e-3,
            "log_every": 100,
            "checkpoint_every": 600,
            "eval_samples": 256,
            "select_every": 200,
            "select_samples": 1_000,
        },
    }
    run = api.train(config, tmp_path / "run").run_dir
    rows = [r for r in _rows(run) if "val_score" in r]
    assert [r["step"] for r in rows] == [200, 400, 600]
    for r in rows:  # the score: modes missed + reverse KL of the modes + low-quality share
        expected = (2 - r["val_modes"]) + r["val_reverse_kl_modes"] + 1 - r["val_high_quality"]
        assert r["val_score"] == pytest.approx(expected)
    best = min(rows, key=lambda r: r["val_score"])
    assert read_weights(run / "best.safetensors")[1]["step"] == best["step"]
    # Samples of the kept weights, scored independently, are as good as the logged best.
    truth = TOY_DATASETS.get("bimodal")()
    x = api.sample(run, 5_000, seed=9)
    stats = mode_stats(x, truth.means, truth.stds, weights=truth.weights)
    assert best["val_modes"] == 2  # both modes, as the kept weights show on fresh draws:
    assert stats.modes == 2
    assert stats.high_quality == pytest.approx(best["val_high_quality"], abs=0.05)
    assert load_run(run).state.step == best["step"]


def test_select_every_must_be_a_multiple_of_log_every(tiny_config, tmp_path):
    tiny_config["train"].update(select_every=15)
    with pytest.raises(ConfigError, match="not a multiple of log_every"):
        api.train(tiny_config, tmp_path / "run")


def test_a_weights_file_that_does_not_fit_is_one_line(selected, tmp_path):
    import shutil

    run_dir, _ = selected
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "best.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError, match="refused"):
        load_run(copy)


def _jets(rng, n, k=5):
    """n clouds of k particles (eta, phi ~ N(0, 0.1^2), pt_rel 1 / k), mask 1."""
    angles = rng.normal(0.0, 0.1, (n, k, 2))
    return np.concatenate([angles, np.full((n, k, 1), 1.0 / k), np.ones((n, k, 1))], -1)


def test_support_features_by_hand():
    rng = np.random.default_rng(7)
    x = _jets(rng, 20)
    x[3, 2:, 3] = 0.0  # a jet of 2 particles
    x[3, 2:, :3] = 0.0
    feats = support_features(x)
    np.testing.assert_allclose(feats[:, 1], np.where(np.arange(20) == 3, 0.4, 1.0))
    np.testing.assert_allclose(feats[:, 2], np.abs(x[..., 0]).max(axis=1))
    np.testing.assert_allclose(feats[:, 3], np.abs(x[..., 1]).max(axis=1))
    # The mass from the four-vectors of massless particles, summed by hand.
    pt, eta, phi = x[..., 2] * x[..., 3], x[..., 0], x[..., 1]
    e, pz = (pt * np.cosh(eta)).sum(1), (pt * np.sinh(eta)).sum(1)
    px, py = (pt * np.cos(phi)).sum(1), (pt * np.sin(phi)).sum(1)
    np.testing.assert_allclose(feats[:, 0], np.sqrt(e**2 - px**2 - py**2 - pz**2), rtol=1e-6)


def test_outliers_counted_exactly():
    rng = np.random.default_rng(8)
    real = _jets(rng, 500)
    generated = real[:100].copy()
    assert outlier_fraction(real, generated).value == 0.0
    generated[:3, 0, 0] = 2.0  # |eta_rel| beyond any real particle's
    generated[3, :, 2] *= 3.0  # sum of pt_rel 3 and three times the mass
    assert outlier_fraction(real, generated).value == pytest.approx(4 / 100)


@pytest.mark.parametrize("seed", [11, 12])
def test_real_vs_real_outliers_follow_the_order_statistics(seed):
    """A fresh draw of a continuous feature falls outside the range of n earlier draws with
    probability 2 / (n + 1). Jets of one particle at the axis with pt_rel ~ U(0.5, 1) vary in
    their sum of pt_rel alone (mass 0, |eta_rel| = |phi_rel| = 0 exactly)."""
    rng = np.random.default_rng(seed)
    n, trials, fresh = 99, 400, 50

    def jets(m):
        x = np.zeros((m, 1, 4))
        x[:, 0, 2], x[:, 0, 3] = rng.uniform(0.5, 1.0, m), 1.0
        return x

    hits = sum(outlier_fraction(jets(n), jets(fresh)).value * fresh for _ in range(trials))
    expected = 2 / (n + 1)
    assert hits / (trials * fresh) == pytest.approx(
        expected, abs=4 * np.sqrt(expected / (trials * fresh))
    )


def test_sampled_jets_stay_inside_the_training_support(selected):
    from physgan.generation import sample_run

    run_dir, _ = selected
    loaded = load_run(run_dir)
    lo, hi = loaded.run.read_support()
    # The training jets' range, as the run saved it.
    from physgan.training.builder import load_data

    feats = np.sort(support_features(load_data(loaded.config).x_train), axis=0)
    # The 10^-4 quantiles: between the smallest (largest) two of the ~4,500 training jets.
    assert ((feats[0] <= lo) & (lo <= feats[1])).all()
    assert ((feats[-2] <= hi) & (hi <= feats[-1])).all()

    inside = sample_run(*loaded, 2_000, 3)
    live = hi > lo  # the toy's sum of pt_rel is exactly 1 in every jet: not checked
    assert live.tolist() == [True, False, True, True]
    f = support_features(inside)[:, live]
    assert ((f >= lo[live]) & (f <= hi[live])).all()
    raw_config = loaded.config.model_copy(
        update={"sample": loaded.config.sample.model_copy(update={"in_support": False})}
    )
    raw = sample_run(loaded.run, raw_config, loaded.meta, loaded.state, 2_000, 3)
    g = support_features(raw)[:, live]
    kept = ((g >= lo[live]) & (g <= hi[live])).all(axis=1)
    assert kept.mean() < 1.0  # a 400-step toy model strays, so the test means something
    np.testing.assert_array_equal(inside[kept], raw[kept])  # only the strays were drawn again


# --- jet images -------------------------------------------------------------------------------


def _images(n, seed, scale=1.0):
    """(n, 1, 25, 25) sparse images of exponential pixel pT (GeV) around a bright core."""
    rng = np.random.default_rng(seed)
    images = rng.exponential(5.0, (n, 1, 25, 25)) * (rng.random((n, 1, 25, 25)) < 0.05)
    images[:, 0, 12, 12] += rng.uniform(100, 200, n)
    images[:, 0, 9, 12] += rng.uniform(0, 80, n)  # a second prong of varying pT
    return (scale * images).astype(np.float32)


class _Fixed(torch.nn.Module):
    """A stand-in generator that returns given samples, in order, whatever z."""

    def __init__(self, samples):
        super().__init__()
        self.samples = torch.as_tensor(samples)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def sample_latent(self, n, *, generator=None):
        return torch.zeros(n, 1)

    def forward(self, z, cond=None):
        return self.samples[: len(z)]


def test_image_score_is_near_one_for_real_images_and_large_for_wrong_ones():
    holdout, n = _images(800, seed=31), 300
    score = image_scorer(holdout, None, lambda x: x, n, seed=4)
    row, real_score = score(_Fixed(_images(n, seed=32)))
    assert 0.2 < real_score < 3  # each W1 over a real-vs-real floor of the same size
    assert set(row) == {"val_w1_mass", "val_w1_tau21", "val_w1_pixels", "val_outliers"}
    assert row["val_outliers"] < 0.1
    heavy_row, heavy = score(_Fixed(_images(n, seed=32, scale=1.5)))  # every pT x 1.5
    assert heavy > 5 * real_score
    expected = wasserstein_distance(
        image_mass(_images(n, seed=32)[:, 0]), image_mass(_images(n, seed=32, scale=1.5)[:, 0])
    )
    assert heavy_row["val_w1_mass"] == pytest.approx(expected, rel=0.3)  # real vs x 1.5 mass
    assert heavy_row["val_outliers"] > row["val_outliers"]
    _, empty = score(_Fixed(np.zeros((n, 1, 25, 25), np.float32)))
    assert empty == np.inf  # no tau_21 at all: never the best


def test_jet_score_is_the_mean_of_three_ratios_to_their_floors(tmp_path):
    import h5py

    with h5py.File(toy_jets(tmp_path / "jets.h5", n=1_000, seed=33), "r") as fh:
        holdout = fh["particles"][:]
    n, seed = 400, 5
    score = jet_scorer(holdout, None, lambda x: x, n, seed=seed)
    _, real, other, _, _ = _halves(holdout, None, n, seed, "jets")
    row, same = score(_Fixed(real))
    assert same < 1  # the scored half itself: W1 of its bootstrap draws only
    assert set(row) == {"val_w1m", "val_w1p", "val_w1efp", "val_outliers"}
    row, floor = score(_Fixed(other))
    assert floor == pytest.approx(1.0)  # the floor's own half: each ratio is exactly 1
    wide = other * np.array([1.5, 1.5, 1.0, 1.0], np.float32)  # angles x 1.5: EFPs x 1.5^4
    row, worse = score(_Fixed(wide))
    assert worse > 5
    efp_real = efps(real)
    expected = np.mean([wasserstein_distance(efp_real[:, i], efps(wide)[:, i]) for i in range(5)])
    assert row["val_w1efp"] == pytest.approx(expected, rel=0.3)


def test_image_score_is_per_class():
    # Class 0: the images of _images; class 1: every pT x 1.5. A generator that draws each
    # class's images scores near 1; one that swaps the classes has the right mixture (which a
    # score of the pooled images could not tell) and scores far worse.
    n = 300
    holdout = np.concatenate([_images(400, seed=41), _images(400, seed=42, scale=1.5)])
    onehot = np.repeat(np.eye(2, dtype=np.float32), 400, axis=0)
    score = image_scorer(holdout, onehot, lambda x: x, n, seed=6)
    *_, cond = _halves(holdout, onehot, n, 6, "images")
    is_one = cond[:, 1] == 1
    right = np.where(is_one[:, None, None, None], _images(n, 43, scale=1.5), _images(n, 43))
    swapped = np.where(is_one[:, None, None, None], _images(n, 43), _images(n, 43, scale=1.5))
    _, good = score(_Fixed(right))
    _, bad = score(_Fixed(swapped))
    assert good < 3
    assert bad > 5 * good


def test_image_runs_keep_their_best_weights(tmp_path):
    rng = np.random.default_rng(0)
    images = np.concatenate([_images(60, seed=33), _images(60, seed=34, scale=0.7)])
    cond = np.eye(2, dtype=np.float32)[np.repeat([0, 1], 60)]
    np.savez(tmp_path / "images.npz", x=images[rng.permutation(120)], cond=cond)
    config = {
        "seed": 2,
        "data": {
            "path": str(tmp_path / "images.npz"),
            "transform": "scale",
            "holdout_fraction": 0.25,
        },
        "model": {
            "generator": {"kind": "dcgan", "latent_dim": 4, "base_channels": 4, "output": "relu"},
            "discriminator": {"kind": "dcgan", "base_channels": 4},
        },
        "train": {"steps": 20, "batch_size": 8, "log_every": 10, "select_every": 10},
    }
    run_dir = api.train(config, tmp_path / "run").run_dir
    scored = [r for r in _rows(run_dir) if "val_score" in r]
    assert [r["step"] for r in scored] == [10, 20]
    assert all(r["val_w1_mass"] > 0 and 0 <= r["val_outliers"] <= 1 for r in scored)
    finite = [r for r in scored if np.isfinite(r["val_score"])]
    if not finite:  # a 20-step generator may still draw only empty images (score inf)
        assert not (run_dir / "best.safetensors").exists()  # an infinite score is never kept
        return
    best = min(finite, key=lambda r: r["val_score"])
    assert read_weights(run_dir / "best.safetensors")[1]["step"] == best["step"]


def test_a_holdout_too_small_to_select_on_leaves_no_run_directory(tmp_path):
    np.savez(tmp_path / "images.npz", x=_images(60, seed=35))
    config = {
        "data": {"path": str(tmp_path / "images.npz"), "transform": "scale"},
        "model": {
            "generator": {"kind": "dcgan", "latent_dim": 4, "base_channels": 4},
            "discriminator": {"kind": "dcgan", "base_channels": 4},
        },
        "train": {"steps": 10, "batch_size": 8, "log_every": 10, "select_every": 10},
    }
    with pytest.raises(
        ConfigError,
        match=r"train.select_samples is \d+ and the holdout has 6 \(at least 20 needed\)$",
    ):
        api.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
