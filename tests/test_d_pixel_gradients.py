"""scripts/d_pixel_gradients.py: D's gradient on the lit and the dark pixels of jet images, ring
by ring from the centre."""

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from physgan import api

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "d_pixel_gradients.py"
spec = importlib.util.spec_from_file_location("d_pixel_gradients", SCRIPT)
d_pixel_gradients = importlib.util.module_from_spec(spec)
spec.loader.exec_module(d_pixel_gradients)


def test_rings_by_distance_from_the_centre():
    rings = d_pixel_gradients.ring_index(5)
    assert rings[2, 2] == 0  # the centre
    assert rings[2, 3] == rings[1, 2] == 1  # 1 pixel away: 0.5-1.5
    assert rings[1, 1] == 1  # sqrt(2) = 1.41
    assert rings[0, 2] == rings[0, 0] == 2  # 2 and 2.83: 1.5-3.5
    big = d_pixel_gradients.ring_index(25)
    assert big[12, 12] == 0
    assert big[12, 16] == 3  # 4 pixels
    assert big[12, 19] == 4  # 7 pixels
    assert big[12, 22] == big[0, 0] == 5  # 10 and 17 pixels


@pytest.fixture(scope="module")
def image_run(tiny_image_overrides, tmp_path_factory):
    pytest.importorskip("pythia8mc")
    out = tmp_path_factory.mktemp("d-grad") / "run"
    overrides = [*tiny_image_overrides, "model.discriminator.log_pixels=0.01"]
    api.train("jet-images", out, overrides=overrides, progress=False)
    return out


@pytest.mark.parametrize("seed", [3, 11])
def test_ring_means_equal_finite_differences_of_d(image_run, seed):
    run = d_pixel_gradients.restore(image_run)
    D = run.state.discriminator.eval()
    rng = np.random.default_rng(seed)
    x = rng.exponential(0.05, (6, 1, 25, 25)) * (rng.random((6, 1, 25, 25)) < 0.2)
    cond = torch.as_tensor(np.eye(2)[rng.integers(0, 2, 6)], dtype=torch.float32)
    rings = d_pixel_gradients.ring_index(25)
    got = d_pixel_gradients.ring_gradients(D, torch.as_tensor(x, dtype=torch.float32), cond, rings)
    D64 = copy.deepcopy(D).double()
    c64, h = cond.double(), 1e-8  # the minibatch std and log channel curve: a small step

    def total(y: np.ndarray) -> float:
        with torch.no_grad():
            return float(D64(torch.as_tensor(y), c64).sum())

    lit = x[:, 0] > 0
    for r in range(len(d_pixel_gradients.RINGS) - 1):
        ring = rings == r
        assert got["lit"][r] == pytest.approx(lit[:, ring].mean(), abs=1e-12)
        for key, chosen in (("grad_lit", lit & ring), ("grad_dark", ~lit & ring)):
            if not chosen.any():
                assert np.isnan(got[key][r])
                continue
            step = h * chosen[:, None]
            # dark pixels only upwards (a dark pixel stays >= 0); lit ones both ways
            if key == "grad_dark":
                slope = (total(x + step) - total(x)) / h
            else:
                slope = (total(x + step) - total(x - step)) / (2 * h)
            expected = slope / chosen.sum()
            assert got[key][r] == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_the_table_per_class_on_held_out_and_generated_images(image_run, tmp_path):
    run = d_pixel_gradients.restore(image_run)
    table = d_pixel_gradients.pixel_gradients(run, samples=3, seed=0)
    assert list(table) == ["W", "QCD"]
    rings = d_pixel_gradients.ring_index(25)
    held = run.data.cond_holdout.argmax(1)
    for k, name in enumerate(["W", "QCD"]):
        real = run.data.x_holdout[held == k][:3, 0]
        expected = [(real[:, rings == r] > 0).mean() for r in range(6)]
        assert table[name]["lit_real"] == pytest.approx(expected, abs=1e-12)
        assert set(table[name]) == {
            f"{key}_{tag}" for key in ("lit", "grad_lit", "grad_dark") for tag in ("gen", "real")
        }
        assert all(0 <= v <= 1 for v in table[name]["lit_gen"])
    np.testing.assert_equal(d_pixel_gradients.pixel_gradients(run, samples=3, seed=0), table)
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(image_run),
            "--samples",
            "3",
            "--json",
            str(tmp_path / "t.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "| W | 0-0.5 |" in done.stdout
    assert (
        yaml.safe_load((tmp_path / "t.json").read_text())["QCD"]["lit_real"]
        == table["QCD"]["lit_real"]
    )


def test_a_jet_run_is_refused_in_one_line(tiny_jet_config, tmp_path):
    api.train(yaml.safe_load(tiny_jet_config.read_text()), tmp_path / "run", progress=False)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "run")], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip() == "d_pixel_gradients: needs a class-conditional jet-image run"
