"""Evaluation by kind of data: metrics beside their floors, metrics.json and report.html."""

import json
import re

import numpy as np
import pytest

from physgan import api
from physgan.errors import DataError
from physgan.evaluation import data_kind, evaluate_samples


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
    assert {"w1_mass", "w1_tau21", "auc"} <= set(scored.metrics)
    assert scored.metrics["kind"] == "images"


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
