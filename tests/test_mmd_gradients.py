"""scripts/mmd_gradients.py: the G-gradient norms of the adversarial loss and the MMD terms, and
where G goes when it follows one of them alone."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from physgan import api
from physgan.config import parse_config
from physgan.data.images import image_mass, image_tau21
from physgan.errors import ConfigError
from physgan.metrics.jetfeatures import jet_features
from physgan.training.builder import load_data
from physgan.training.rundir import RunDir

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mmd_gradients.py"
spec = importlib.util.spec_from_file_location("mmd_gradients", SCRIPT)
mmd_gradients = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mmd_gradients)


def check(norms: dict, names: list[str]) -> None:
    assert list(norms) == ["adversarial", *names]
    for row in norms.values():
        assert np.isfinite(row["value"])
        assert 0 < row["grad_norm_min"] <= row["grad_norm"] <= row["grad_norm_max"]
    for name in names:
        assert norms[name]["value"] >= 0  # an MMD^2 (the biased estimate is never negative)


def test_a_jet_run_has_the_mass_term_whatever_its_own_weight(tiny_jet_config, tmp_path):
    config = yaml.safe_load(tiny_jet_config.read_text())
    api.train(config, tmp_path / "run", progress=False)  # trained without the term
    run = mmd_gradients.load(tmp_path / "run")
    norms = mmd_gradients.gradient_norms(run, batches=3, seed=0)
    check(norms, ["mass"])
    assert mmd_gradients.gradient_norms(run, batches=3, seed=0) == norms
    assert mmd_gradients.gradient_norms(run, batches=3, seed=1) != norms


def test_an_image_run_has_the_three_terms(tiny_image_overrides, tmp_path):
    pytest.importorskip("pythia8mc")
    api.train("jet-images", tmp_path / "run", overrides=tiny_image_overrides, progress=False)
    check(
        mmd_gradients.gradient_norms(mmd_gradients.load(tmp_path / "run"), batches=2, seed=0),
        ["mass", "tau21", "pixel"],
    )


def test_a_toy_run_is_refused_in_one_line(tiny_config, tmp_path):
    api.train(tiny_config, tmp_path / "toy", progress=False)
    with pytest.raises(ConfigError, match="need jets"):
        mmd_gradients.load(tmp_path / "toy")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "toy")], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().startswith("mmd_gradients: config: loss.mass_mmd")
    assert "Traceback" not in done.stderr


def test_following_a_loss_moves_g_from_the_checkpoint_and_reports_the_held_out_means(
    tiny_image_overrides, tmp_path
):
    pytest.importorskip("pythia8mc")
    api.train("jet-images", tmp_path / "run", overrides=tiny_image_overrides, progress=False)
    run = mmd_gradients.load(tmp_path / "run")
    moved = mmd_gradients.follow(run, "tau21", steps=3, lr=1e-3, seed=0)
    still = mmd_gradients.follow(run, "adversarial", steps=0, lr=1e-3, seed=0)  # after moved
    assert list(moved) == ["W", "QCD"]
    data = load_data(parse_config(RunDir(tmp_path / "run").read_config()))
    for k, name in enumerate(["W", "QCD"]):
        held = data.x_holdout[data.cond_holdout.argmax(1) == k][:1000, 0]
        tau21 = image_tau21(held)
        assert moved[name]["mass"]["real"] == pytest.approx(image_mass(held).mean(), rel=1e-9)
        assert moved[name]["tau21"]["real"] == pytest.approx(np.nanmean(tau21), rel=1e-9)
        for observable in ("mass", "tau21"):
            row, same = moved[name][observable], still[name][observable]
            assert same["before"] == same["after"]  # no step: the same G, the same latents
            assert row["before"] == same["before"]  # the checkpoint's G again, whichever loss
            assert row["after"] != row["before"]
    with pytest.raises(SystemExit, match="--loss size: one of adversarial, mass, tau21, pixel"):
        mmd_gradients.follow(run, "size", steps=1, lr=1e-3, seed=0)


def test_following_on_jets_compares_all_jets_with_their_relative_mass(tiny_jet_config, tmp_path):
    config = yaml.safe_load(tiny_jet_config.read_text())
    api.train(config, tmp_path / "run", progress=False)
    moved = mmd_gradients.follow(
        mmd_gradients.load(tmp_path / "run"), "mass", steps=2, lr=1e-3, seed=0
    )
    assert list(moved) == ["all"]
    assert list(moved["all"]) == ["mass"]
    data = load_data(parse_config(RunDir(tmp_path / "run").read_config()))
    expected = jet_features(data.x_holdout[:1000])[:, 3].mean()
    assert moved["all"]["mass"]["real"] == pytest.approx(expected, rel=1e-9)
    assert np.isfinite(moved["all"]["mass"]["after"])
