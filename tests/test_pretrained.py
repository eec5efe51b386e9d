"""Shipped generators (pretrained:NAME): found, loaded and sampled like run directories, small,
documented, and evaluated only against real jets the user gives."""

import json
import subprocess
import sys

import numpy as np
import pytest

from physgan import api
from physgan.data.jets import canonical_cloud, sort_by_pt
from physgan.errors import ConfigError
from physgan.generation import load_run
from physgan.pretrained import PREFIX, pretrained_dir
from physgan.version import __version__

SHIPPED = sorted(api.pretrained_models())
JETS = [name for name in SHIPPED if name != "jet-images"]


def test_the_gluon_and_top_generators_ship():
    assert {"gluon", "top"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_generator_is_small_documented_and_current(name):
    folder = pretrained_dir(PREFIX + name)
    assert (folder / "best.safetensors").stat().st_size <= 2 << 20
    assert not (folder / "checkpoint.safetensors").exists()  # no D, no optimiser state
    card = (folder / "CARD.md").read_text()
    for needed in ("CPU hours", "real vs real (floor)", "physgan evaluate pretrained:"):
        assert needed in card
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["physgan_version"] == __version__


@pytest.mark.parametrize("name", JETS)
def test_a_shipped_generator_samples_jets_in_the_file_layout(name):
    x = api.sample(PREFIX + name, 300, seed=4)
    assert x.shape == (300, 30, 4)
    assert np.isfinite(x).all()
    np.testing.assert_array_equal(x, sort_by_pt(canonical_cloud(x)))
    again = api.sample(PREFIX + name, 300, seed=4)
    np.testing.assert_array_equal(x, again)
    cond = {"pt": 1000.0, "n_particles": 17}
    k = (api.sample(PREFIX + name, 50, seed=5, cond=cond)[..., 3] > 0.5).sum(axis=1)
    assert (k == 17).all()


def test_the_shipped_jet_image_generator_draws_each_class_with_its_total_pt():
    for name in ("W", "QCD"):
        x = api.sample(PREFIX + "jet-images", 200, seed=4, cond={"class": name})
        assert x.shape == (200, 1, 25, 25)
        assert (x >= 0).all()
        np.testing.assert_array_equal(
            x, api.sample(PREFIX + "jet-images", 200, seed=4, cond={"class": name})
        )
        # The total pT is drawn from the training images' (250-300 GeV jets, trimmed).
        total = x.sum(axis=(1, 2, 3))
        assert total.min() > 200
        assert total.max() < 350


def test_the_shipped_conditions_are_the_training_jets():
    loaded = load_run(PREFIX + "gluon")
    cond = loaded.run.read_conditions(2)
    assert 1_000 <= len(cond) <= 20_000
    # JetNet-like gluon jets: pT within the simulated window, 1 to 30 particles.
    assert 500 < np.median(cond[:, 0]) < 2000
    assert cond[:, 1].min() >= 1
    assert cond[:, 1].max() <= 30


def test_unknown_names_and_missing_references_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"no such shipped generator .*pretrained:gluon"):
        api.sample("pretrained:nope", 10)
    with pytest.raises(ConfigError, match="give --reference"):
        api.evaluate("pretrained:gluon", out=tmp_path)


def test_the_cli_lists_shows_and_samples(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "physgan", *args], capture_output=True, text=True, cwd=tmp_path
        )

    listed = run("pretrained")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [PREFIX + n for n in SHIPPED]
    shown = run("pretrained", "show", "gluon")
    assert shown.stdout.startswith("# gluon jets")
    done = run(
        "sample",
        "pretrained:gluon",
        "-n",
        "20",
        "-o",
        "jets.h5",
        "--cond",
        "pt=1000",
        "--cond",
        "n_particles=30",
    )
    assert done.returncode == 0, done.stderr
    drawn = run("sample", "pretrained:gluon", "-n", "20", "-o", "drawn.h5")
    assert drawn.returncode == 0, drawn.stderr
    import h5py

    with h5py.File(tmp_path / "drawn.h5") as fh:
        jets, particles = fh["jets"][:], fh["particles"][:]
    assert np.isfinite(jets[:, [0, 2, 3]]).all()  # pt drawn from the training jets, mass
    np.testing.assert_array_equal(jets[:, 3], (particles[..., 3] > 0.5).sum(axis=1))
    bad = run("sample", "pretrained:nope", "-n", "20", "-o", "x.h5")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists()


def test_the_demo_shows_the_shipped_generator_on_fresh_jets(tmp_path, tiny_jet_config):
    import os
    from pathlib import Path

    result = api.demo(tiny_jet_config, tmp_path / "demo", n=60, n_fresh=100, seed=2)
    shipped = result.shipped
    assert shipped.run_dir == "pretrained:gluon"
    assert shipped.metrics["n_compared"] == 100
    assert shipped.speed["cores"] == 1  # one core against one core
    assert (tmp_path / "demo" / "pretrained-gluon" / "report.html").is_file()
    # Compared with jets of data seed 3 (seed + 1): never the shipped model's seed 0.
    assert (Path(os.environ["PHYSGAN_CACHE"]) / "jets-gluon-n200-p30-seed3-v1.h5").is_file()
    first, second = result.table.split("\n\n")
    assert first.startswith("pretrained:gluon: the shipped generator")
    assert "trained here for 4 steps" in second
    assert (result.run_dir / "report.html").is_file()


def test_a_bad_output_is_refused_before_anything_is_loaded(tmp_path):
    from physgan.errors import DataError

    with pytest.raises(DataError, match="unsupported output format"):
        api.sample("pretrained:nope", 5, out=tmp_path / "jets.csv")  # not the name's error
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_jet_image_generator_samples_by_rejection_with_its_ratio():
    folder = pretrained_dir(PREFIX + "jet-images")
    assert (folder / "ratio.safetensors").is_file()  # fitted for its generator, not again here
    sample = api.load_config(folder / "config.yaml").sample
    assert sample.rejection
    assert sample.ratio == "observables"
    cond = {"class": "W"}
    kept = api.sample(PREFIX + "jet-images", 100, seed=1, cond=cond)
    alone = api.sample(PREFIX + "jet-images", 100, seed=1, cond=cond, rejection=False)
    assert kept.shape == alone.shape == (100, 1, 25, 25)
    assert not np.array_equal(kept, alone)


def test_a_shipped_generator_without_a_ratio_for_its_observables_is_refused(monkeypatch):
    from physgan import generation
    from physgan.errors import ConfigError

    monkeypatch.setattr(generation, "_kept_ratio", lambda path, classes: (None, None))  # e.g. stale
    with pytest.raises(ConfigError, match=r"ships no ratio\.safetensors for this generator"):
        api.sample(PREFIX + "jet-images", 10, seed=1, cond={"class": "W"})
