"""Pythia 8 + FastJet jets: physics checks on small samples, determinism, shards, files, CLI."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from physgan.data import jetgen
from physgan.data.images import image_mass, image_tau21
from physgan.data.io import load, read_arrays
from physgan.data.jets import particle_cloud
from physgan.data.pythia import IMAGE_SELECTION, simulate_jets
from physgan.errors import DataError
from physgan.training.builder import load_data

pytestmark = pytest.mark.hep


def mass(p4):
    return np.sqrt(np.maximum(p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(axis=1), 0.0))


def mode(values, lo, hi, width):
    counts, edges = np.histogram(values, bins=np.arange(lo, hi + width, width))
    return edges[counts.argmax()] + width / 2


@pytest.fixture(scope="module")
def w_jets():
    return simulate_jets("W", 500, seed=101)


@pytest.fixture(scope="module")
def top_jets():
    return simulate_jets("top", 400, seed=102)


def test_w_and_top_jet_masses_peak_at_their_masses(w_jets, top_jets):
    # The underlying event adds a few GeV to R = 0.8 jets at 1 TeV: peaks sit a little high.
    assert 75 <= mode(mass(w_jets.p4), 40, 150, 10) <= 95
    assert 165 <= mode(mass(top_jets.p4), 100, 260, 10) <= 195
    assert np.median(mass(simulate_jets("gluon", 100, seed=103).p4)) > 40  # no peak at m_W


def test_constituents_add_up_to_the_jet(w_jets):
    np.testing.assert_allclose(w_jets.constituents.sum(axis=1), w_jets.p4, atol=1e-6, rtol=1e-9)
    pt = np.hypot(w_jets.constituents[..., 0], w_jets.constituents[..., 1])
    assert (np.diff(pt, axis=1) <= 0).all()  # sorted by decreasing pT, zero padding last
    real = np.arange(pt.shape[1]) < w_jets.n_constituents[:, None]
    assert (pt[real] > 0).all()
    assert (pt[~real] == 0).all()


def test_jet_cuts_and_relative_features(w_jets):
    cloud = particle_cloud(w_jets.p4, w_jets.constituents, w_jets.n_constituents, 30)
    pt, eta = cloud.jets[:, 0], cloud.jets[:, 1]
    assert ((pt >= 800) & (pt < 1200)).all()
    assert (np.abs(eta) < 2.5).all()
    mask = cloud.particles[..., 3] == 1
    # Within R = 0.8 of the axis in (eta, phi), but for soft massive hadrons: FastJet clusters
    # in rapidity, which differs from pseudorapidity when pT is near the mass.
    dr = np.hypot(cloud.particles[..., 0], cloud.particles[..., 1])[mask]
    pt_rel = cloud.particles[..., 2][mask]
    assert (dr[pt_rel > 0.01] < 0.8 + 1e-3).all()
    assert pt_rel[dr > 0.8].sum() < 1e-3 * pt_rel.sum()
    # Scalar pT adds to at least the jet's (triangle inequality); the 30 kept to about 1.
    everything = particle_cloud(w_jets.p4, w_jets.constituents, w_jets.n_constituents, 500)
    assert (everything.particles[..., 2].sum(axis=1) >= 1 - 1e-5).all()
    assert (cloud.particles[..., 2].sum(axis=1) <= 1.01).all()
    np.testing.assert_array_equal(cloud.jets[:, 3], np.minimum(w_jets.n_constituents, 30))


def test_same_seed_same_jets_other_seed_other_jets():
    a, b = simulate_jets("gluon", 30, seed=7), simulate_jets("gluon", 30, seed=7)
    np.testing.assert_array_equal(a.p4, b.p4)
    assert not np.array_equal(a.p4, simulate_jets("gluon", 30, seed=8).p4)


def test_file_independent_of_workers_and_shards_concatenate(tmp_path, monkeypatch):
    monkeypatch.setattr(jetgen, "CHUNK_JETS", 20)  # 3 chunks of 20 jets
    one = jetgen.generate_jets("top", 60, tmp_path / "one.h5", seed=4, n_particles=20)
    two = jetgen.generate_jets("top", 60, tmp_path / "two.h5", seed=4, n_particles=20, workers=2)
    shards = tmp_path / "shards"
    shards.mkdir()
    for k in range(3):
        jetgen.generate_jets(
            "top", 60, shards / f"top-{k}.h5", seed=4, n_particles=20, shard=(k, 3)
        )
    whole = load(one)
    np.testing.assert_array_equal(load(two)["particles"], whole["particles"])
    joined = load(shards)
    np.testing.assert_array_equal(joined["particles"], whole["particles"])
    np.testing.assert_array_equal(load(shards / "top-*.h5")["jets"], whole["jets"])
    assert whole["particles"].shape == (60, 20, 4)
    x, cond = read_arrays(one)
    assert x.shape == (60, 20, 4)
    assert cond is None


def test_file_layout_and_attributes(tmp_path):
    import h5py

    path = jetgen.generate_jets("Z", 20, tmp_path / "z.h5", seed=3, n_particles=10)
    with h5py.File(path) as fh:
        assert list(fh["particles"].attrs["features"]) == ["eta_rel", "phi_rel", "pt_rel", "mask"]
        assert list(fh["jets"].attrs["features"]) == ["pt", "eta", "mass", "n_particles"]
        assert fh.attrs["process"] == "Z"
        assert fh.attrs["seed"] == 3
        assert fh["particles"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["z.h5"]  # no temporary file left


def test_interrupted_generation_leaves_no_file(tmp_path, monkeypatch):
    def fail(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(jetgen, "_chunk", fail)
    with pytest.raises(KeyboardInterrupt):
        jetgen.generate_jets("gluon", 10, tmp_path / "g.h5")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"process": "higgs"}, "unknown process 'higgs'"),
        ({"n": 0}, "n must be at least 1"),
        ({"out": "jets.npy"}, "must end in .h5"),
        ({"out": "missing/jets.h5"}, "does not exist"),
        ({"seed": -1}, "seed must be non-negative"),
    ],
)
def test_bad_requests_fail_before_simulating(tmp_path, kwargs, message):
    args = {"process": "gluon", "n": 10, "out": "jets.h5"} | kwargs
    args["out"] = tmp_path / args["out"]
    with pytest.raises(DataError, match=message):
        jetgen.generate_jets(args.pop("process"), args.pop("n"), args.pop("out"), **args)
    assert list(tmp_path.iterdir()) == []


def test_cache_reuses_a_valid_file_and_replaces_a_bad_one(tmp_path, monkeypatch):
    path = jetgen.cached_jets("gluon", 12, n_particles=5, seed=2, cache_dir=tmp_path)
    reference = load(path)["particles"]

    def refuse(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(jetgen, "generate_jets", refuse)
    assert jetgen.cached_jets("gluon", 12, n_particles=5, seed=2, cache_dir=tmp_path) == path
    monkeypatch.undo()
    path.write_bytes(path.read_bytes()[:100])  # truncated: regenerated, same jets
    again = jetgen.cached_jets("gluon", 12, n_particles=5, seed=2, cache_dir=tmp_path)
    np.testing.assert_array_equal(load(again)["particles"], reference)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    directory = tmp_path_factory.mktemp("images")
    return {
        name: load(jetgen.generate_jet_images(name, 150, directory / f"{name}.h5", seed=5))
        for name in ("W", "QCD")
    }


def test_w_images_have_two_prongs_and_the_w_mass(images):
    w, qcd = images["W"]["images"], images["QCD"]["images"]
    assert w.shape == (150, 25, 25)
    assert 70 <= mode(image_mass(w), 20, 150, 10) <= 90
    assert 70 <= mode(images["W"]["jets"][:, 2], 20, 150, 10) <= 90
    assert np.median(image_mass(qcd)) < 60
    assert np.nanmedian(image_tau21(w)) < 0.8 * np.nanmedian(image_tau21(qcd))
    # The mean W image: the leading prong at the centre, the second below it, none above.
    mean = w.mean(axis=0)
    centre = 12
    assert mean.argmax() == centre * 25 + centre
    below, above = mean[: centre - 2, 10:15].sum(), mean[centre + 3 :, 10:15].sum()
    assert below > 5 * above
    assert mean[:, 13:].sum() >= mean[:, :12].sum()  # brighter side on the right
    pt = images["W"]["jets"][:, 0]
    assert ((pt >= IMAGE_SELECTION.pt_min) & (pt < IMAGE_SELECTION.pt_max)).all()


def test_cli_writes_jets_and_reports_bad_input(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    out = tmp_path / "g.h5"
    cmd = [sys.executable, "-m", "physgan", "data", "jets", "--process", "gluon", "-n", "5"]
    done = subprocess.run(
        [*cmd, "-o", str(out), "--no-progress"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert load(out)["particles"].shape == (5, 30, 4)
    bad = subprocess.run([*cmd, "-o", str(out), "--shard", "2/2"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["physgan: error: shard '2/2': need 0 <= K < N"]


def test_demo_runs_the_main_job_end_to_end(tmp_path, tiny_jet_config):
    from physgan import api

    path = tiny_jet_config
    result = api.demo(path, tmp_path / "demo", n=60, pretrained=None)
    assert result.shipped is None
    assert (result.run_dir / "report.html").is_file()
    assert "fewer than the field's 10,000" in result.table
    for name in ("w1m", "w1p", "w1efp", "fpd", "kpd", "auc"):
        assert name in result.table
    assert result.speed["generated_jets_per_s"] > 0
    assert result.speed["speedup_same_cores"] == pytest.approx(
        result.speed["generated_jets_per_s"]
        / (result.speed["simulated_jets_per_s_per_core"] * result.speed["cores"])
    )
    # The finished run is reused, not retrained.
    again = api.demo(path, tmp_path / "demo", n=60, pretrained=None)
    assert again.metrics == result.metrics


def test_class_conditional_image_gan_is_evaluated_per_class(tmp_path):
    """data.name jet-images: cached W and QCD images, one-hot class conditions; evaluate scores
    each class's generated images against its own held-out ones."""
    import json

    from physgan import api

    config = {
        "seed": 2,
        "data": {
            "name": "jet-images",
            "n_train": 200,
            "holdout_fraction": 0.5,
            "conditional": True,
        },
        "model": {
            "generator": {
                "kind": "dcgan",
                "latent_dim": 8,
                "base_channels": 4,
                "output": "softplus",
            },
            "discriminator": {"kind": "dcgan", "base_channels": 4},
        },
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "checkpoint_every": 4},
    }
    run = api.train(config, tmp_path / "run").run_dir
    data = load_data(api.parse_config(config))
    assert data.classes == ("W", "QCD")
    assert data.sample_shape == (1, 25, 25)
    labels = np.concatenate([data.cond_train, data.cond_holdout]).argmax(1)
    assert np.bincount(labels).tolist() == [100, 100]
    # The W images are W jets: their image mass peaks near the W mass, QCD's lower.
    from physgan.data.images import image_mass

    mass = image_mass(data.x_train[:, 0])
    w = data.cond_train.argmax(1) == 0
    assert np.median(mass[w]) > np.median(mass[~w])

    result = api.evaluate(run, n=20)
    assert set(result["classes"]) == {"W", "QCD"}
    for name in ("W", "QCD"):
        assert set(result["classes"][name]) >= {"w1_mass", "w1_tau21", "auc"}
        assert result["classes"][name]["w1_mass"]["value"] >= 0
    html = (run / "report.html").read_text()
    assert "W jets: Mean jet images" in html
    assert "QCD: w1_mass" in html
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["classes"]["QCD"]["kind"] == "images"
    # Asked for a class, the generator makes images of that class's shape.
    x = api.sample(run, 5, cond=np.eye(2, dtype=np.float32)[[0, 0, 1, 1, 1]])
    assert x.shape == (5, 1, 25, 25)
    assert (x >= 0).all()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_killed_simulation_leaves_no_worker_running(tmp_path):
    """SIGKILL of `physgan data jets --workers 2` (nothing can clean up): its worker processes
    notice that their parent is gone and exit instead of simulating on as orphans."""
    import signal
    import time

    cmd = [sys.executable, "-m", "physgan", "data", "jets", "--process", "gluon", "-n", "20000"]
    proc = subprocess.Popen([*cmd, "--workers", "2", "--no-progress", "-o", str(tmp_path / "g.h5")])
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = [
            c
            for c in _children(proc.pid)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
        ]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(w) for w in workers):
        time.sleep(0.2)
    assert not any(_running(w) for w in workers)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (exited, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
