"""Evaluation by kind of data: metrics beside their floors, metrics.json and report.html."""

import json
import re

import numpy as np
import pytest

from physgan import api
from physgan.errors import DataError
from physgan.evaluation import data_kind, evaluate_samples
from physgan.metrics.support import image_outlier_fraction


def clouds(n, seed, n_particles=10, pt_scale=1.0):
    """Synthetic particle clouds (n, N, 4) in the JetNet layout, 5 to N particles per jet."""
    rng = np.random.default_rng(seed)
    pt = np.sort(rng.dirichlet(np.ones(n_particles), size=n), axis=1)[:, ::-1] * pt_scale
    cloud = np.stack(
        [
            rng.normal(0, 0.1, (n, n_particles)),
            rng.normal(0, 0.1, (n, n_particles)),
            pt,
            np.ones((n, n_particles)),
        ],
        axis=-1,
    )
    real = np.arange(n_particles) < rng.integers(5, n_particles + 1, n)[:, None]
    return np.where(real[..., None], cloud, 0.0).astype(np.float32)


def test_data_kinds():
    assert data_kind((30, 4), None) == "jets"
    assert data_kind((1, 25, 25), None) == "images"
    assert data_kind((5,), None) == "vectors"


def test_jet_metrics_sit_at_the_floor_for_real_and_above_it_for_a_shift():
    real = clouds(3000, seed=31)
    same = evaluate_samples(real, clouds(1500, seed=32), seed=0)
    shifted = evaluate_samples(real, clouds(1500, seed=33, pt_scale=1.3), seed=0)
    for name in ("w1m", "w1p", "w1efp", "fpd", "kpd"):
        s, d = same.metrics[name], shifted.metrics[name]
        assert s["floor"] == pytest.approx(d["floor"])  # the floor never sees the generator
        assert s["value"] <= 3 * s["floor"] + 3 * s["floor_std"] + 1e-9, name
        assert d["value"] > 5 * d["floor"], name
        assert d["verdict"].endswith(("x floor", "x the floor's spread")), name
    assert abs(same.metrics["auc"]["value"] - 0.5) < 0.06
    assert shifted.metrics["auc"]["value"] > 0.8
    captions = [caption for caption, _ in shifted.figures]
    assert "Relative jet mass" in captions
    assert "Particles per jet" in captions


def test_generated_masks_are_made_canonical():
    real = clouds(400, seed=41)
    noisy = clouds(200, seed=42)
    noisy[..., 3] = np.where(noisy[..., 3] > 0, 0.8, 0.2)  # soft masks, as a generator makes
    noisy[noisy[..., 3] < 0.5, :3] = 7.0  # junk in padded rows
    scored = evaluate_samples(real, noisy, seed=0)
    assert scored.metrics["w1p"]["value"] < 0.05  # the junk rows were dropped


def test_image_metrics():
    rng = np.random.default_rng(5)
    real = rng.exponential(1.0, (200, 1, 25, 25)).astype(np.float32)
    generated = rng.exponential(1.0, (100, 1, 25, 25)).astype(np.float32)
    scored = evaluate_samples(real, generated, seed=1)
    names = {"w1_pt", "w1_mass", "mass_peak", "w1_tau21", "w1_pixels", "outliers", "auc"}
    assert names <= set(scored.metrics)
    assert scored.metrics["kind"] == "images"


@pytest.mark.parametrize("seed", [21, 22])
def test_real_vs_real_image_outliers_follow_the_order_statistics(seed):
    """A fresh image of the real distribution leaves the range of n real ones in one of the 4
    features with probability at most 4 * 2 / (n + 1) (a union bound)."""
    n, fresh, trials = 150, 200, 10
    rng = np.random.default_rng(seed)
    hits = [
        image_outlier_fraction(_sparse_images(n, rng)[:, 0], _sparse_images(fresh, rng)[:, 0])
        for _ in range(trials)
    ]
    mean = np.mean([h.value for h in hits])
    assert 0 < mean <= 4 * 2 / (n + 1) * 1.5  # 1.5: room for the trials' own noise


def _sparse_images(n: int, seed: int | np.random.Generator) -> np.ndarray:
    """(n, 1, 25, 25) images with about 30 non-zero pixels of exponential pT (GeV)."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(10.0, (n, 1, 25, 25))
    return (pt * (rng.random(pt.shape) < 0.05)).astype(np.float32)


def test_a_faint_glow_shows_in_the_pixel_spectrum_only():
    """A glow of 0.01 GeV over every empty pixel barely moves pT, mass and tau_21, but it turns
    most pixels of the intensity spectrum into faint ones: W1 of log10 pT, in decades."""
    real, glow = _sparse_images(600, seed=8), _sparse_images(300, seed=9)
    glow[glow == 0] = 0.01
    scored = evaluate_samples(real, glow, seed=2, figures=False).metrics
    pixels = scored["w1_pixels"]
    assert pixels["value"] > 1.0 > 20 * pixels["floor"]  # log10 10 GeV - log10 0.01 GeV = 3
    assert scored["outliers"]["value"] < 0.2  # mostly inside the real ranges still
    same = evaluate_samples(real, _sparse_images(300, seed=10), seed=2, figures=False).metrics
    assert same["w1_pixels"]["value"] < 0.05


def test_negative_pixels_are_outliers():
    real, generated = _sparse_images(400, seed=11), _sparse_images(100, seed=12)
    generated[::4, 0, 0, 0] = -0.5
    scored = evaluate_samples(real, generated, seed=3, figures=False).metrics
    assert scored["outliers"]["value"] >= 0.25


def test_empty_generated_images_score_an_infinite_distance():
    """A generator whose images are all empty (a dead ReLU output) has no tau_21 at all."""
    real = np.random.default_rng(6).exponential(1.0, (200, 1, 25, 25)).astype(np.float32)
    scored = evaluate_samples(real, np.zeros((100, 1, 25, 25), np.float32), seed=1)
    assert scored.metrics["w1_tau21"]["value"] == np.inf
    assert np.isfinite(scored.metrics["w1_tau21"]["floor"])
    assert scored.metrics["w1_mass"]["value"] > 0


@pytest.fixture
def jet_run(tmp_path):
    import h5py

    path = tmp_path / "jets.h5"
    with h5py.File(path, "w") as fh:
        fh["particles"] = clouds(600, seed=51)
        fh["jets"] = np.ones((600, 4), np.float32)
    config = {
        "seed": 2,
        "data": {"path": str(path), "holdout_fraction": 0.5},
        "model": {
            "generator": {"kind": "epic", "hidden": 16, "layers": 1, "global_dim": 4},
            "discriminator": {"kind": "epic", "hidden": 16, "layers": 1, "global_dim": 4},
        },
        "train": {"steps": 30, "batch_size": 32, "log_every": 10, "checkpoint_every": 30},
    }
    api.train(config, tmp_path / "run")
    return tmp_path / "run", path


def test_evaluate_a_jet_run_writes_metrics_and_a_self_contained_report(jet_run, tmp_path):
    run, data = jet_run
    result = api.evaluate(run, n=100, seed=3)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == result
    assert saved["kind"] == "jets"
    assert saved["n_compared"] == 100
    for name in ("w1m", "w1p", "w1efp", "fpd", "kpd", "auc"):
        assert set(saved[name]) == {"value", "std", "floor", "floor_std", "verdict"}
    html = (run / "report.html").read_text()
    assert "w1efp" in html
    assert re.search(r"https?://", html) is None
    assert html.count('src="data:image/png;base64,') >= 5
    assert api.evaluate(run, n=100, seed=3) == result  # deterministic
    generated = api.sample(run, 100, seed=3)
    mask = generated[..., 3]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert (np.diff(np.where(mask > 0, generated[..., 2], -1), axis=1) <= 0).all()  # pT order
    counts = np.bincount(mask.sum(axis=1).astype(int), minlength=11)
    assert counts[:5].sum() == 0  # multiplicities 5..10, as in the training data

    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((50, 7), np.float32))
    with pytest.raises(DataError, match=r"wrong.npy: samples of shape \(7,\)"):
        api.evaluate(run, n=50, reference=wrong)
    with_reference = api.evaluate(run, n=100, seed=3, reference=data)
    assert with_reference["n_compared"] == 100
