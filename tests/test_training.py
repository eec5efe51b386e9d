"""The training loop end to end: learning, resume determinism, sampling, evaluation."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from physgan import api
from physgan.errors import ConfigError
from physgan.losses import OBJECTIVES


def _tensors(run_dir):
    return load_file(str(run_dir / "checkpoint.safetensors"))


@pytest.mark.parametrize(
    ("loss", "precision"),
    [(name, "fp32") for name in OBJECTIVES.names()]
    + [("nonsaturating", "fp16"), ("wgan-gp", "bf16")],
)
def test_tiny_run_learns_a_1d_gaussian(loss, precision, gaussian_file, tmp_path):
    config = {
        "seed": 0,
        "data": {"path": str(gaussian_file)},
        "model": {
            "generator": {"kind": "mlp", "latent_dim": 2, "hidden": 32, "depth": 2},
            "discriminator": {"kind": "mlp", "hidden": 32, "depth": 2},
        },
        "loss": {"name": loss},
        "train": {
            "steps": 600,
            "batch_size": 128,
            "lr_g": 1e-3,
            "lr_d": 1e-3,
            "log_every": 100,
            "checkpoint_every": 600,
            "ema": 0.99,
            "precision": precision,
        },
    }
    if loss == "wgan-gp":
        # In 1-D a critic's slope cannot change sign without |D'| passing through 0, which a
        # penalty weight of 10 makes a barrier: D stays in the basin it starts in (for a linear
        # critic, slope 0.9 with W-term +1.8 is a local minimum). A weight of 1 removes it.
        config["loss"]["gp"] = 1.0
        config["train"].update(n_critic=3, betas_g=[0.5, 0.9], betas_d=[0.5, 0.9])
        # Scoring one sample at a time, D lets G's spread swing, and collapse, past step 1,000:
        # at step 600 the EMA's std was 0.06-0.51 over seeds 0-7 (6 of 8 seeds out of bounds in
        # fp32, 4 to 6 in bf16), a phase that rounding picks, so a CPU's kernels (bf16 units or
        # not) decide the outcome. Scoring pairs (PacGAN) the run settles by step 500: over
        # seeds 0-7, fp32 and bf16, with and without bf16 units, |mean - 3| <= 0.014 and
        # |std - 0.5| <= 0.037, well inside the bounds below, as are the sampling error (0.004
        # and 0.003 at n = 20,000) and bf16's rounding of G's output (< 0.004 in data units).
        config["model"]["discriminator"]["pack"] = 2
    api.train(config, tmp_path / "run")
    x = api.sample(tmp_path / "run", 20_000, seed=5)
    assert x.shape == (20_000, 1)
    assert x.mean() == pytest.approx(3.0, abs=0.1)
    assert x.std() == pytest.approx(0.5, abs=0.1)


def test_resume_after_a_crash_gives_bit_identical_weights_and_metrics(
    tiny_config, tmp_path, train_until_crash, assert_same_weights
):
    api.train(tiny_config, tmp_path / "straight")
    train_until_crash(tiny_config, tmp_path / "killed", at=50)  # checkpoint at 40, metrics at 50
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 50

    result = api.train(tiny_config, tmp_path / "killed", resume=True)
    assert result.step == 60
    assert_same_weights(tmp_path / "straight", tmp_path / "killed")
    assert (tmp_path / "straight" / "metrics.jsonl").read_text() == (
        tmp_path / "killed" / "metrics.jsonl"
    ).read_text()


def test_resume_can_extend_a_finished_run(tiny_config, tmp_path, assert_same_weights):
    api.train(tiny_config, tmp_path / "straight")
    api.train(tiny_config, tmp_path / "extended", overrides=("train.steps=30",))
    api.train(tiny_config, tmp_path / "extended", resume=True)
    assert_same_weights(tmp_path / "straight", tmp_path / "extended")


def test_same_seed_same_run_and_other_seed_differs(tiny_config, tmp_path, assert_same_weights):
    cfg = {**tiny_config, "train": {**tiny_config["train"], "steps": 20}}
    api.train(cfg, tmp_path / "a")
    api.train(cfg, tmp_path / "b")
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    api.train({**cfg, "seed": 2}, tmp_path / "c")
    a, c = _tensors(tmp_path / "a"), _tensors(tmp_path / "c")
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_run_directory_contents_and_metrics(tiny_config, tmp_path):
    result = api.train(tiny_config, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "meta.json", "transform.json", "metrics.jsonl"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 1
    assert meta["sample_shape"] == [2]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    for row in rows:
        assert 0.0 <= row["d_real"] <= 1.0
        assert 0.0 <= row["d_fake"] <= 1.0
        assert row["jsd_bound"] <= np.log(2) + 1e-6  # a lower bound on JSD <= ln 2
        assert np.isfinite(row["d_loss"])
        assert np.isfinite(row["g_loss"])
    assert result.metrics == rows[-1]


def test_fresh_run_refuses_a_non_empty_directory(tiny_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        api.train(tiny_config, tmp_path / "run")
    assert (tmp_path / "run" / "precious.txt").read_text() == "keep me"


def test_resume_refuses_a_changed_config(tiny_config, tmp_path):
    cfg = {**tiny_config, "train": {**tiny_config["train"], "steps": 20}}
    api.train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="loss"):
        api.train(cfg, tmp_path / "run", resume=True, overrides=("loss.name=hinge",))


def test_conditional_toy_generates_the_requested_mode(tmp_path):
    from physgan.data.toy import ring8

    config = {
        "seed": 0,
        "data": {"name": "ring8", "n_train": 8_000, "conditional": True},
        "model": {
            "generator": {"latent_dim": 4, "hidden": 64, "depth": 2},
            "discriminator": {"hidden": 64, "depth": 2},
        },
        "train": {
            "steps": 600,
            "batch_size": 128,
            "lr_g": 1e-3,
            "lr_d": 1e-3,
            "log_every": 200,
            "checkpoint_every": 600,
            "ema": 0.98,
        },
    }
    api.train(config, tmp_path / "run")
    labels = np.repeat(np.arange(8), 100)
    x = api.sample(tmp_path / "run", 800, seed=3, cond=np.eye(8)[labels])
    nearest = np.argmin(((x[:, None, :] - ring8().means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95  # each condition yields its own mode
    with pytest.raises(ValueError, match="cond"):
        api.sample(tmp_path / "run", 10, cond=np.ones((10, 3)))


def test_evaluate_writes_mode_metrics(tiny_config, tmp_path):
    api.train(tiny_config, tmp_path / "run")
    result = api.evaluate(tmp_path / "run", n=500, seed=0)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == result
    assert saved["n_modes"] == 8
    assert 0 <= saved["modes"] <= 8
    assert 0.0 <= saved["high_quality"] <= 1.0
    assert sum(saved["mode_counts"]) == round(saved["high_quality"] * 500)


def test_sample_writes_npy_and_h5(tiny_config, tmp_path):
    import h5py

    api.train(tiny_config, tmp_path / "run")
    a = api.sample(tmp_path / "run", 100, seed=4, out=tmp_path / "s.npy")
    b = api.sample(tmp_path / "run", 100, seed=4, out=tmp_path / "s.h5")
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), a)
    with h5py.File(tmp_path / "s.h5") as fh:
        np.testing.assert_array_equal(fh["x"][()], b)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, api.sample(tmp_path / "run", 100, seed=5))


def test_metrics_also_go_to_tensorboard(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    api.train(tiny_config, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"d_loss", "g_loss", "jsd_bound"} <= set(events.Tags()["scalars"])
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    jsonl = [json.loads(line)["g_loss"] for line in lines]
    board = [e.value for e in events.Scalars("g_loss")]
    assert [e.step for e in events.Scalars("g_loss")] == [10, 20, 30, 40, 50, 60]
    np.testing.assert_allclose(board, jsonl, rtol=1e-6)


def test_api_functions_are_reexported_lazily():
    import physgan

    assert physgan.train is api.train
    assert physgan.sample is api.sample
    with pytest.raises(AttributeError, match="no attribute"):
        physgan.no_such_function  # noqa: B018


def test_a_config_error_found_late_leaves_no_run_files(tiny_config, tmp_path):
    cfg = {**tiny_config, "data": {"name": "ring8", "n_train": 40, "holdout_fraction": 0.05}}
    cfg["model"] = {**cfg["model"], "discriminator": {"hidden": 8, "depth": 1, "pack": 4}}
    cfg["train"] = {**cfg["train"], "batch_size": 8}
    with pytest.raises(ConfigError, match="holdout"):
        api.train(cfg, tmp_path / "run")  # 2 holdout samples < pack 4
    assert not any((tmp_path / "run").iterdir())
    api.train(tiny_config, tmp_path / "run")  # the directory is still usable
