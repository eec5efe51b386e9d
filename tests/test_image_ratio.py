"""physgan.image_ratio: jet images' observables, and the classifier of them whose logit is the
log density ratio that rejection sampling (``sample.ratio: observables``) uses."""

import shutil

import numpy as np
import pytest
import torch
import yaml
from sklearn.ensemble import HistGradientBoostingClassifier

from physgan import api
from physgan.errors import ConfigError, DataError
from physgan.generation import load_run
from physgan.image_ratio import (
    OBSERVABLES,
    ObservableRatio,
    Trees,
    fit_observable_ratio,
    image_observables,
)
from physgan.training.checkpoint import read_weights, save_tensors, save_weights


def test_observables_by_hand():
    images = np.zeros((3, 1, 5, 5))
    images[0, 0, 2, 2] = 100.0  # one pixel: mass 0
    # log10 pT: -1.2, -1.0 (on an edge: the bin above), 0.3, 3.0
    images[1, 0, 1, 1], images[1, 0, 0, 0] = 10**-1.2, 0.1
    images[1, 0, 2, 2], images[1, 0, 3, 4] = 10**0.3, 1000.0
    x = image_observables(images)
    assert x.shape == (3, len(OBSERVABLES)) == (3, 27)
    assert x.dtype == np.float32
    assert x[0, 0] == 0.0
    assert x[0, 2] == 100.0
    # bin i holds log10 pT in [-3.5 + 0.25 (i - 1), -3.5 + 0.25 i); bin 23 is 2.0 and above
    np.testing.assert_array_equal(np.flatnonzero(x[0, 3:]), [23])  # log10 100 = 2.0
    assert x[1, 2] == pytest.approx(1000.0 + 0.1 + 10**-1.2 + 10**0.3)
    np.testing.assert_array_equal(np.flatnonzero(x[1, 3:]), [10, 11, 16, 23])
    assert x[1, 3:].sum() == 4
    assert np.isnan(x[2, 1])  # empty
    assert not x[2, [0, 2, *range(3, 27)]].any()


def test_trees_are_evaluated_as_scikit_learn_evaluates_them():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3000, 4))
    y = (x[:, 0] + x[:, 1] ** 2 + rng.normal(size=3000) > 1).astype(float)
    x[rng.random(3000) < 0.2, 2] = np.nan
    y[np.isnan(x[:, 2])] = 1.0  # a split of the missing values alone (threshold inf)
    classifier = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    trees = Trees.of(classifier)
    test = rng.normal(size=(5000, 4))  # more rows than one pass holds
    test[::3, 2] = np.nan
    np.testing.assert_allclose(trees.logit(test), classifier.decision_function(test), atol=1e-12)


def leaf(value: float, baseline: float) -> Trees:
    """One tree of a single leaf: every row's logit is ``baseline + value``."""
    one, zero = np.ones(1, bool), np.zeros(1, np.int64)
    return Trees(zero, np.zeros(1), one, zero, zero, one, np.full(1, value), zero,
                 np.full(1, baseline))  # fmt: skip


def test_one_leaf_trees_by_hand_and_their_file(tmp_path):
    ratio = ObservableRatio([leaf(0.5, 0.1), leaf(-2.0, 0.25)])
    features = np.zeros((3, len(OBSERVABLES)), np.float32)
    cond = np.eye(2)[[0, 1, 0]]
    np.testing.assert_allclose(ratio(features, cond), [0.6, -1.75, 0.6])
    save_tensors(tmp_path / "ratio.safetensors", ratio.tensors(), {"step": 3})
    tensors, meta = read_weights(tmp_path / "ratio.safetensors")
    assert meta["step"] == 3
    np.testing.assert_allclose(
        ObservableRatio.from_tensors(tensors)(features, cond), [0.6, -1.75, 0.6]
    )
    with pytest.raises(ValueError, match="no tensor"):
        ObservableRatio.from_tensors({"class0.baseline": torch.zeros(1)})
    broken = ratio.tensors() | {"class1.left": torch.tensor([5])}  # one node: 5 is outside
    with pytest.raises(ValueError, match="do not fit together"):
        ObservableRatio.from_tensors(broken)


def test_fitted_logit_is_the_log_density_ratio_of_each_class():
    # Class 0: the first observable is N(0.5, 1) in the data and N(0, 1) in the generator, so
    # log(p_data / p_g) = 0.5 x - 0.125; class 1: N(-1, 1) against N(0, 1), -x - 0.5. The
    # others are the same in both (N(0, 1), tau_21's NaN in 10% of rows, as for empty images).
    rng = np.random.default_rng(3)
    n = 60_000
    cond = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    shift = np.where(cond[:, 0] == 1, 0.5, -1.0)
    real = rng.normal(size=(n, len(OBSERVABLES)))
    real[:, 0] += shift
    generated = rng.normal(size=(n, len(OBSERVABLES)))
    for x in (real, generated):
        x[rng.random(n) < 0.1, 1] = np.nan
    real, generated = real.astype(np.float32), generated.astype(np.float32)
    ratio = fit_observable_ratio(real, generated, cond, seed=4)
    points = np.zeros((4, len(OBSERVABLES)), dtype=np.float32)
    points[:, 0] = [-1.0, 1.0, -1.0, 1.0]
    logits = ratio(points, np.eye(2)[[0, 0, 1, 1]])
    expected = [0.5 * -1 - 0.125, 0.5 * 1 - 0.125, 1 - 0.5, -1 - 0.5]
    np.testing.assert_allclose(logits, expected, atol=0.25)  # trees: steps, shrunk a little
    # What rejection uses: fresh generated rows weighted by exp(logit) have about the data's
    # mean (from 0 to 0.5 and -1; early-stopped trees fall short by up to 0.08 over data seeds).
    fresh = np.random.default_rng(5).normal(size=(20_000, len(OBSERVABLES))).astype(np.float32)
    for c, mean in enumerate((0.5, -1.0)):
        weights = np.exp(ratio(fresh, np.eye(2)[[c] * len(fresh)]))
        assert np.average(fresh[:, 0], weights=weights) == pytest.approx(mean, abs=0.15)
    # Seeded: the same inputs and seed give the same trees.
    again = fit_observable_ratio(real[:4000], generated[:4000], cond[:4000], max_iter=20, seed=4)
    once = fit_observable_ratio(real[:4000], generated[:4000], cond[:4000], max_iter=20, seed=4)
    for key, value in again.tensors().items():
        torch.testing.assert_close(value, once.tensors()[key], rtol=0, atol=0)


def test_ratio_checks_its_inputs():
    with pytest.raises(ValueError, match=r"same shape \(n, 27\)"):
        fit_observable_ratio(np.zeros((5, 27), np.float32), np.zeros((4, 27), np.float32))
    with pytest.raises(ValueError, match="no rows of class 1"):
        fit_observable_ratio(
            np.zeros((50, 27), np.float32), np.zeros((50, 27), np.float32), np.eye(2)[[0] * 50]
        )
    with pytest.raises(ValueError, match="condition of width 2"):
        ObservableRatio([leaf(0.0, 0.0), leaf(0.0, 0.0)])(np.zeros((3, 27)))


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
    # A kept ratio of other observables (an older physgan's) is fitted again in a run; a
    # directory without its training data says so.
    stale = {"class0.baseline": torch.zeros(1)}
    for folder in (image_run, bare):
        save_tensors(folder / "ratio.safetensors", stale, {"step": state.step})
    with pytest.raises(DataError, match=r"gone\.npz: no such file"):
        api.sample(bare, 200, seed=1, cond=cond)
    np.testing.assert_array_equal(api.sample(image_run, 200, seed=1, cond=cond), x)
    assert read_weights(image_run / "ratio.safetensors")[1]["observables"] == list(OBSERVABLES)


def test_the_observables_ratio_is_for_images(tiny_config, tmp_path):
    run = api.train(tiny_config, tmp_path / "run").run_dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["sample"] |= {"rejection": True, "ratio": "observables"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="for jet images"):
        api.sample(run, 10)
