"""physgan.image_ratio: jet images' observables, and the classifier of them whose logit is the
log density ratio that rejection sampling (``sample.ratio: observables``) uses."""

import shutil

import numpy as np
import pytest
import torch
import yaml

from physgan import api
from physgan.errors import ConfigError
from physgan.generation import load_run
from physgan.image_ratio import (
    OBSERVABLES,
    ObservableRatio,
    fit_observable_ratio,
    image_observables,
)
from physgan.training.checkpoint import save_weights


def test_observables_by_hand():
    images = np.zeros((3, 1, 5, 5))
    images[0, 0, 2, 2] = 100.0  # one pixel: mass 0
    # log10 pT: -1.2, -1.0 (on an edge: the bin above), 0.25, 3.0
    images[1, 0, 1, 1], images[1, 0, 0, 0] = 10**-1.2, 0.1
    images[1, 0, 2, 2], images[1, 0, 3, 4] = 10**0.25, 1000.0
    x = image_observables(images)
    assert x.shape == (3, len(OBSERVABLES))
    assert x.dtype == np.float32
    assert x[0, 0] == 0.0
    assert x[0, 2] == 100.0
    np.testing.assert_array_equal(x[0, 3:], [0, 0, 0, 0, 0, 0, 1])  # log10 100 = 2 > 1.5
    assert x[1, 2] == pytest.approx(1000.0 + 0.1 + 10**-1.2 + 10**0.25)
    np.testing.assert_array_equal(x[1, 3:], [1, 1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(x[2], [0, np.nan, 0, 0, 0, 0, 0, 0, 0, 0])  # empty


def test_fitted_logit_is_the_log_density_ratio_of_each_class():
    # Class 0: the first observable is N(0.5, 1) in the data and N(0, 1) in the generator, so
    # log(p_data / p_g) = 0.5 x - 0.125; class 1: N(-1, 1) against N(0, 1), -x - 0.5. The other
    # nine are the same in both (N(0, 1), tau_21's NaN in 10% of rows, as for empty images).
    rng = np.random.default_rng(3)
    n = 60_000
    cond = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    shift = np.where(cond[:, 0] == 1, 0.5, -1.0)
    real = rng.normal(size=(n, len(OBSERVABLES)))
    real[:, 0] += shift
    generated = rng.normal(size=(n, len(OBSERVABLES)))
    for x in (real, generated):
        x[rng.random(n) < 0.1, 1] = np.nan
    ratio = fit_observable_ratio(
        real.astype(np.float32), generated.astype(np.float32), cond, steps=2000, seed=4
    )
    assert not ratio.training
    points = np.zeros((4, len(OBSERVABLES)), dtype=np.float32)
    points[:, 0] = [-1.0, 1.0, -1.0, 1.0]
    with torch.no_grad():
        logits = ratio(torch.from_numpy(points), torch.eye(2)[[0, 0, 1, 1]]).numpy()
    expected = [0.5 * -1 - 0.125, 0.5 * 1 - 0.125, 1 - 0.5, -1 - 0.5]
    np.testing.assert_allclose(logits, expected, atol=0.15)
    # Seeded: the same inputs and seed give the same weights.
    again = fit_observable_ratio(
        real.astype(np.float32), generated.astype(np.float32), cond, steps=50, seed=4
    )
    once = fit_observable_ratio(
        real.astype(np.float32), generated.astype(np.float32), cond, steps=50, seed=4
    )
    assert all(
        torch.equal(a, b) for a, b in zip(again.parameters(), once.parameters(), strict=True)
    )


def test_ratio_checks_its_inputs():
    with pytest.raises(ValueError, match=r"same shape \(n, 10\)"):
        fit_observable_ratio(np.zeros((5, 10), np.float32), np.zeros((4, 10), np.float32))
    with pytest.raises(ValueError, match="condition of width 2"):
        ObservableRatio(cond_dim=2)(torch.zeros(3, 10))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, class_image_run):
    """A class-conditional image run sampled by rejection with the observables' ratio."""
    sample = {"rejection": True, "ratio": "observables", "cap_quantile": 0.99}
    return class_image_run(tmp_path_factory.mktemp("image-ratio"), sample)


def test_rejection_by_the_observables_ratio_through_the_api(image_run, tmp_path):
    cond = np.eye(2, dtype=np.float32)[np.arange(200) % 2]
    x = api.sample(image_run, 200, seed=1, cond=cond)
    assert x.shape == (200, 1, 9, 9)
    assert (x >= 0).all()
    assert (image_run / "ratio.safetensors").is_file()  # fitted once, kept in the run
    np.testing.assert_array_equal(api.sample(image_run, 200, seed=1, cond=cond), x)
    assert not np.array_equal(api.sample(image_run, 200, seed=1, cond=cond, rejection=False), x)
    # A directory with the sampling files alone (a shipped generator's: no checkpoint, no
    # training data to fit on) samples the same with the kept ratio.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("meta.json", "transform.json", "ratio.safetensors"):
        shutil.copy(image_run / name, bare / name)
    config = yaml.safe_load((image_run / "config.yaml").read_text())
    config["data"]["path"] = str(tmp_path / "gone.npz")
    (bare / "config.yaml").write_text(yaml.safe_dump(config))
    state = load_run(image_run)[3]
    save_weights(bare / "best.safetensors", state.sampler, {"step": state.step})
    np.testing.assert_array_equal(api.sample(bare, 200, seed=1, cond=cond), x)


def test_the_observables_ratio_is_for_images(tiny_config, tmp_path):
    run = api.train(tiny_config, tmp_path / "run").run_dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["sample"] |= {"rejection": True, "ratio": "observables"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="for jet images"):
        api.sample(run, 10)
