"""``data.transform: scale``: one factor for every feature (images keep zeros and signs);
``sqrt``: the square root of non-negative data over one factor (zeros stay zeros)."""

import numpy as np
import pytest

from physgan import api
from physgan.data.transforms import SqrtScale, Standardize, transform_from_dict
from physgan.errors import CheckpointError, ConfigError


def test_scale_divides_by_the_root_mean_square():
    rng = np.random.default_rng(5)
    x = rng.exponential(30.0, size=(400, 1, 5, 5)) * (rng.random((400, 1, 5, 5)) < 0.2)
    t = Standardize.fit_scale(x)
    x_norm = t.forward(x)
    assert np.sqrt(np.mean(x_norm**2)) == pytest.approx(1.0)
    assert ((x_norm == 0) == (x == 0)).all()  # sparse images stay sparse
    np.testing.assert_allclose(t.inverse(x_norm), x, rtol=1e-12)
    np.testing.assert_allclose(t.log_abs_det(x), -25 * np.log(t.std[0]))
    assert transform_from_dict(t.to_dict()) == t
    assert Standardize.fit_scale(np.zeros((3, 2))).std == (1.0, 1.0)


def test_a_scaled_run_samples_in_the_data_units(tmp_path, gaussian_file):
    config = {
        "data": {"path": str(gaussian_file), "transform": "scale"},
        "train": {"steps": 2, "batch_size": 32, "log_every": 1, "eval_samples": 64},
    }
    run = api.train(config, tmp_path / "run").run_dir
    spec = api.RunDir(run).read_json(api.RunDir(run).transform)
    x = np.load(gaussian_file)
    assert spec["mean"] == [0.0]
    # Fitted on the training 90% of the file: close to the root mean square of all of it.
    assert spec["std"][0] == pytest.approx(np.sqrt(np.mean(x.astype(np.float64) ** 2)), rel=1e-2)
    assert np.isfinite(api.sample(run, 10)).all()


def test_scale_is_refused_for_particle_clouds(tmp_path):
    path = tmp_path / "clouds.npy"
    clouds = np.zeros((100, 4, 4), np.float32)
    clouds[:, :2, 3] = 1.0
    np.save(path, clouds)
    config = {"data": {"path": str(path), "transform": "scale"}, "train": {"steps": 2}}
    with pytest.raises(ConfigError, match="scale is not for particle clouds"):
        api.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _sparse_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.exponential(30.0, size=(n, 1, 5, 5)) * (rng.random((n, 1, 5, 5)) < 0.2)


def test_sqrt_compresses_the_range_and_inverts():
    x = _sparse_images(400, seed=6)
    t = SqrtScale.fit(x)
    x_norm = t.forward(x)
    assert t.scale == pytest.approx(x.mean())
    assert np.sqrt(np.mean(x_norm**2)) == pytest.approx(1.0)  # mean(x / mean x) = 1
    assert ((x_norm == 0) == (x == 0)).all()
    np.testing.assert_allclose(x_norm, np.sqrt(x / x.mean()), rtol=1e-12)
    np.testing.assert_allclose(t.inverse(x_norm), x, rtol=1e-12)
    np.testing.assert_array_equal(t.inverse(np.array([-0.5, 0.0])), [0.0, 0.0])  # no negative pT
    assert transform_from_dict(t.to_dict()) == t
    assert SqrtScale.fit(np.zeros((3, 2))).scale == 1.0
    with pytest.raises(ValueError, match="smallest value is -1"):
        SqrtScale.fit(np.array([1.0, -1.0]))


def test_sqrt_is_refused_for_negative_data_and_clouds(tmp_path):
    path = tmp_path / "signed.npy"
    np.save(path, np.random.default_rng(8).normal(size=(200, 2)).astype(np.float32))
    config = {"data": {"path": str(path), "transform": "sqrt"}, "train": {"steps": 2}}
    with pytest.raises(ConfigError, match="transform sqrt needs non-negative data"):
        api.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    path = tmp_path / "clouds.npy"
    clouds = np.zeros((100, 4, 4), np.float32)
    clouds[:, :2, 3] = 1.0
    np.save(path, clouds)
    config["data"]["path"] = str(path)
    with pytest.raises(ConfigError, match="sqrt is not for particle clouds"):
        api.train(config, tmp_path / "run")


def test_a_sqrt_run_samples_non_negative_images(tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, _sparse_images(200, seed=7).astype(np.float32))
    config = {
        "data": {"path": str(path), "transform": "sqrt"},
        "model": {
            "generator": {"kind": "dcgan", "latent_dim": 4, "base_channels": 4},
            "discriminator": {"kind": "dcgan", "base_channels": 4},
        },
        "train": {"steps": 2, "batch_size": 16, "log_every": 1, "eval_samples": 32},
    }
    run = api.train(config, tmp_path / "run").run_dir
    spec = api.RunDir(run).read_json(api.RunDir(run).transform)
    assert spec["kind"] == "sqrt"
    assert spec["scale"] > 0
    x = api.sample(run, 20, seed=1)
    assert x.shape == (20, 1, 5, 5)
    assert (x >= 0).all()  # a linear output's negative values become empty pixels
    assert (x == 0).any()
    transform_path = api.RunDir(run).transform
    transform_path.write_text('{"kind": "sqrt", "scale": -1.0}')
    with pytest.raises(CheckpointError, match="scale must be a positive number"):
        api.sample(run, 5)
