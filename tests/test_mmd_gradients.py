"""scripts/mmd_gradients.py: the G-gradient norms of the adversarial loss and the MMD terms."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from physgan import api
from physgan.errors import ConfigError

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
    norms = mmd_gradients.gradient_norms(tmp_path / "run", batches=3, seed=0)
    check(norms, ["mass"])
    assert mmd_gradients.gradient_norms(tmp_path / "run", batches=3, seed=0) == norms
    assert mmd_gradients.gradient_norms(tmp_path / "run", batches=3, seed=1) != norms


def test_an_image_run_has_the_three_terms(tiny_image_overrides, tmp_path):
    pytest.importorskip("pythia8mc")
    api.train("jet-images", tmp_path / "run", overrides=tiny_image_overrides, progress=False)
    check(
        mmd_gradients.gradient_norms(tmp_path / "run", batches=2, seed=0),
        ["mass", "tau21", "pixel"],
    )


def test_a_toy_run_is_refused_in_one_line(tiny_config, tmp_path):
    api.train(tiny_config, tmp_path / "toy", progress=False)
    with pytest.raises(ConfigError, match="need jets"):
        mmd_gradients.gradient_norms(tmp_path / "toy", batches=1, seed=0)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "toy")], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().startswith("mmd_gradients: config: loss.mass_mmd")
    assert "Traceback" not in done.stderr
