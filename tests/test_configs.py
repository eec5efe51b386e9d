"""Every shipped config validates and trains for two steps on tiny data (a smoke test)."""

import math

import pytest

from physgan import api
from physgan.config import load_config, shipped_configs

CONFIGS = sorted(shipped_configs())


def test_configs_exist():
    assert set(CONFIGS) >= {
        "grid25",
        "ring8",
        "grid25-minimax",
        "ring8-vae",
        "ring8-flow",
        "gluon-flow",
    }


@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains_two_steps(name, tmp_path):
    config = load_config(name)  # validates as shipped
    jets = config.data.name.startswith("jets-") or config.data.name == "jet-images"  # simulated
    tiny = (
        "train.steps=2",
        "train.log_every=1",
        "train.eval_samples=64",
        f"data.n_train={200 if jets else 2000}",
    )
    if config.data.name.startswith("jets-") and config.data.name != "jets-gluon":
        # The full-size configs differ only in the process, which test_jetgen.py simulates.
        tiny += ("data.name=jets-gluon",)
    result = api.train(name, tmp_path / "run", overrides=tiny)
    assert result.step == 2
    expected = {
        "gan": {"d_loss", "g_loss", "d_real", "d_fake", "jsd_bound"},
        "vae": {"loss", "elbo", "kl", "holdout_elbo"},
        "flow": {"loss", "holdout_nll"},
    }[config.model.family]
    if config.model.family == "gan" and config.loss.name not in ("minimax", "nonsaturating"):
        expected -= {"jsd_bound"}  # the JSD bound needs D's probabilities (log-loss D)
    assert set(result.metrics) >= expected
    assert all(math.isfinite(v) for v in result.metrics.values())
