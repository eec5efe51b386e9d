"""Jets conditioned on jet-level features (``data.condition_on``): pT and multiplicity.

A toy jet file whose particles' eta centre moves with the jet pT and whose multiplicity is the
jets' n_particles: a conditional EPiC GAN must generate exactly the multiplicity it is asked
for, and particles where the pT it is given puts them.
"""

import h5py
import numpy as np
import pytest
import torch

from physgan import api
from physgan.data.jets import JET_FEATURES
from physgan.errors import ConfigError, DataError
from physgan.generation import load_run, sample_with_conditions
from physgan.models import EPiCGenerator
from physgan.training.seeding import Stream

N = 8


def toy_jets(path, n: int = 6_000, seed: int = 0):
    """A jet-layout HDF5 file: pt ~ U(500, 1500) GeV, k ~ U{2..N} particles of pt_rel 1 / k
    with phi ~ N(0, 0.1^2) and eta ~ N(eta_centre(pt), 0.1^2)."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(500.0, 1500.0, n)
    k = rng.integers(2, N + 1, n)
    mask = np.arange(N) < k[:, None]
    angles = 0.1 * rng.normal(size=(n, N, 2))
    angles[..., 0] += eta_centre(pt)[:, None]
    particles = np.concatenate(
        [angles, np.broadcast_to(1.0 / k[:, None, None], (n, N, 1)), np.ones((n, N, 1))], -1
    )
    particles = (particles * mask[..., None]).astype(np.float32)
    jets = np.stack([pt, np.zeros(n), 0.1 * pt, k], -1).astype(np.float32)
    with h5py.File(path, "w") as fh:
        fh["particles"] = particles
        fh["jets"] = jets
    return path


def eta_centre(pt: np.ndarray) -> np.ndarray:
    return (pt - 1000.0) / 2000.0


def config(path, steps: int = 400, condition_on=("pt", "n_particles")):
    return {
        "seed": 0,
        "data": {"path": str(path), "condition_on": list(condition_on)},
        "model": {
            "generator": {
                "kind": "epic",
                "latent_dim": 4,
                "global_dim": 8,
                "hidden": 32,
                "layers": 2,
            },
            "discriminator": {"kind": "epic", "global_dim": 8, "hidden": 32, "layers": 2},
        },
        "train": {
            "steps": steps,
            "batch_size": 128,
            "lr_g": 1e-3,
            "lr_d": 1e-3,
            "log_every": 100,
            "checkpoint_every": 200,
            "eval_samples": 256,
            "ema": 0.98,
        },
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    path = toy_jets(root / "toy.h5")
    return api.train(config(path), root / "run").run_dir


def test_generated_jets_have_exactly_the_requested_multiplicity(trained):
    n_real = np.arange(600) % (N + 1)  # including 0 and N
    cond = np.stack([np.full(600, 1000.0), n_real], -1)
    x = api.sample(trained, 600, seed=3, cond=cond)
    np.testing.assert_array_equal((x[..., 3] > 0.5).sum(1), n_real)
    assert (x[x[..., 3] == 0] == 0).all()  # nothing generated beyond the multiplicity


@pytest.mark.parametrize("pt", [600.0, 1000.0, 1400.0])
def test_generated_particles_follow_the_pt_condition(trained, pt):
    cond = np.stack([np.full(2_000, pt), np.full(2_000, N)], -1)
    x = api.sample(trained, 2_000, seed=4, cond=cond)
    eta = x[..., 0][x[..., 3] > 0.5]
    # The truth: centres -0.2, 0, 0.2 (the condition's whole effect spans 0.4).
    assert eta.mean() == pytest.approx(eta_centre(np.array(pt)), abs=0.07)


def test_conditions_are_drawn_from_the_data_when_not_given(trained):
    x = api.sample(trained, 2_000, seed=5)
    k = (x[..., 3] > 0.5).sum(1)
    # The toy's multiplicities are uniform on 2..N.
    assert k.min() >= 2
    assert np.bincount(k, minlength=N + 1)[2:].min() > 2_000 / (N - 1) * 0.6


def test_a_run_saves_its_condition_units(trained):
    meta = api.RunDir(trained).read_json(api.RunDir(trained).meta)
    spec = meta["cond_transform"]
    assert spec["kind"] == "standardize"
    assert spec["mean"][0] == pytest.approx(1000.0, rel=0.02)  # pt ~ U(500, 1500)
    assert spec["std"][1] == pytest.approx(np.sqrt((7**2 - 1) / 12), rel=0.05)  # U{2..8}


def test_condition_on_needs_a_jet_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((100, N, 4), np.float32))
    with pytest.raises(DataError, match="condition_on needs a jet file"):
        api.train(config(path, steps=2), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"condition_on": ["pt", "pt"]}, "name each jet feature once"),
        ({"condition_on": []}, "name each jet feature once"),
        ({"condition_on": ["width"]}, "condition_on"),
        ({"condition_on": ["pt"], "conditional": True}, "cannot be combined"),
    ],
)
def test_bad_condition_on_is_one_config_line(tmp_path, data, message):
    raw = config(tmp_path / "toy.h5", steps=2)
    raw["data"].update(data)
    with pytest.raises(ConfigError, match=message) as err:
        api.train(raw, tmp_path / "run")
    assert "\n" not in str(err.value)


def test_generator_takes_its_multiplicity_from_the_condition():
    torch.manual_seed(0)
    g = EPiCGenerator(
        n_particles=N, latent_dim=3, hidden=8, layers=1, cond_dim=2, multiplicity_cond=1
    )
    g.set_multiplicity_condition(5.0, 2.0)  # k = cond * 2 + 5
    z = g.sample_latent(4, generator=torch.Generator().manual_seed(1))
    assert (z[..., -1] == 1).all()  # noise for every row: forward decides the mask
    cond = torch.tensor([[0.0, -2.5], [0.0, -0.9], [0.0, 0.0], [0.0, 9.0]])
    with torch.no_grad():
        x = g(z, cond)
    np.testing.assert_array_equal(x[..., -1].sum(1).numpy(), [0, 3, 5, N])
    assert (x[x[..., -1] == 0] == 0).all()
    assert "multiplicity_units" in g.state_dict()
    with pytest.raises(ValueError, match="column of the condition"):
        EPiCGenerator(n_particles=N, cond_dim=2, multiplicity_cond=2)
    with pytest.raises(ValueError, match="scale > 0"):
        g.set_multiplicity_condition(0.0, 0.0)
    with pytest.raises(ValueError, match="no multiplicity"):
        EPiCGenerator(n_particles=N).set_multiplicity_condition(0.0, 1.0)


def test_jet_features_are_the_names_condition_on_accepts():
    assert JET_FEATURES == ("pt", "eta", "mass", "n_particles")


def test_cli_samples_jets_of_a_given_kind(trained, tmp_path, capsys):
    from physgan.cli import main

    out = tmp_path / "jets.npy"
    argv = ["sample", str(trained), "-n", "50", "-o", str(out), "--cond", "n_particles=5"]
    assert main([*argv, "--cond", "pt=1300"]) == 0
    assert ((np.load(out)[..., 3] > 0.5).sum(1) == 5).all()
    capsys.readouterr()
    assert main([*argv, "--cond", "mass=90", "-o", str(tmp_path / "other.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "conditioned on pt, n_particles; got mass, n_particles" in err
    assert not (tmp_path / "other.npy").exists()


def test_onnx_export_takes_conditions_in_physics_units(trained, tmp_path):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    import shutil

    import onnxruntime

    from physgan.export import export_onnx
    from physgan.training.seeding import derive_seed

    trained = shutil.copytree(trained, tmp_path / "run")
    (trained / "support.json").unlink()  # the graph is the generator alone (no support redraw)
    result = export_onnx(trained, tmp_path / "cond.onnx")
    n, seed = 200, 6
    cond = np.stack([np.linspace(500, 1500, n), np.arange(n) % (N + 1)], -1).astype(np.float32)
    expected = api.sample(trained, n, seed=seed, cond=cond)
    sampler = load_run(trained)[3].sampler
    z = sampler.sample_latent(
        n, generator=torch.Generator().manual_seed(derive_seed(seed, Stream.SAMPLE))
    )
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (x,) = session.run(None, {"z": z.numpy(), "cond": cond})
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, tiny_image_overrides):
    """A 4-step class-conditional run on 8 simulated W and 8 QCD jet images."""
    pytest.importorskip("pythia8mc")
    run = tmp_path_factory.mktemp("images") / "run"
    api.train("jet-images", run, overrides=tiny_image_overrides, progress=False)
    return run


def test_a_class_is_picked_by_name(image_run, tmp_path, capsys):
    from physgan.cli import main

    for name, one_hot in (("W", [1.0, 0.0]), ("QCD", [0.0, 1.0])):
        _, used = sample_with_conditions(*load_run(image_run), 6, 3, {"class": name})
        np.testing.assert_array_equal(used, np.tile(one_hot, (6, 1)))
    w = api.sample(image_run, 6, seed=3, cond={"class": "W"})
    argv = ["sample", str(image_run), "-n", "6", "--seed", "3", "-o"]
    assert main([*argv, str(tmp_path / "w.npy"), "--cond", "class=W"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), w)
    capsys.readouterr()
    assert main([*argv, str(tmp_path / "z.npy"), "--cond", "class=Z"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "class must be one of W, QCD; got 'Z'" in err
    assert not (tmp_path / "z.npy").exists()
    with pytest.raises(ConfigError, match="conditioned on class; got pt"):
        api.sample(image_run, 6, cond={"pt": 1.0})


def test_a_numeric_condition_given_a_word_is_refused(trained):
    with pytest.raises(ConfigError, match="pt needs a number, got 'high'"):
        api.sample(trained, 5, cond={"pt": "high", "n_particles": 5})


def _image_file(path, process, n=40, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.exponential(5.0, (n, 25, 25)) * (rng.random((n, 25, 25)) < 0.1)
    images[:, 12, 12] += 150.0
    with h5py.File(path, "w") as fh:
        fh["images"] = images.astype(np.float32)
        if process is not None:
            fh.attrs["process"] = process
    return path


def test_a_class_conditional_run_is_evaluated_on_the_class_of_its_reference(image_run, tmp_path):
    from physgan.cli import main

    for process, name in (("Wprime", "W"), ("QCD", "QCD")):
        reference = _image_file(tmp_path / f"{name}.h5", process)
        result = api.evaluate(image_run, n=20, reference=reference, out=tmp_path / name)
        assert result["class"] == name
        assert result["n_compared"] == 20
    unlabelled = _image_file(tmp_path / "mixed.h5", None)
    with pytest.raises(DataError, match=r"images of one class.*process is None"):
        api.evaluate(image_run, n=10, reference=unlabelled, out=tmp_path / "none")
    argv = ["evaluate", str(image_run), "-n", "10", "--reference", str(unlabelled)]
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 2
    assert not (tmp_path / "cli" / "metrics.json").exists()


@pytest.mark.parametrize("suffix", [".h5", ".root", ".parquet"])
def test_sampled_images_record_their_class(image_run, tmp_path, suffix):
    from physgan.data.io import load, read_arrays

    if suffix != ".h5":
        pytest.importorskip("uproot")
        pytest.importorskip("pyarrow")
    path = tmp_path / f"mixed{suffix}"
    x = api.sample(image_run, 30, seed=2, out=path)
    _, used = sample_with_conditions(*load_run(image_run), 30, 2, None)
    assert 0 < used[:, 0].sum() < 30  # both classes drawn
    np.testing.assert_array_equal(load(path, ["label"])["label"], used.argmax(axis=1))
    np.testing.assert_array_equal(read_arrays(path)[0], x)
    api.sample(image_run, 5, seed=2, cond={"class": "QCD"}, out=tmp_path / f"qcd{suffix}")
    np.testing.assert_array_equal(load(tmp_path / f"qcd{suffix}", ["label"])["label"], 1)
    if suffix == ".h5":
        with h5py.File(path) as fh:
            assert list(fh["label"].attrs["classes"]) == ["W", "QCD"]


def test_the_speed_of_a_jet_image_run_against_pythia(image_run):
    from physgan.data.jetgen import simulate_jet_images

    images = simulate_jet_images("W", 3, seed=5)
    assert images.shape == (3, 25, 25)
    assert (images >= 0).all()
    # The pixels hold the trimmed jet's pT (250 to 300 GeV), less what falls outside the image.
    assert ((images.sum(axis=(1, 2)) > 150) & (images.sum(axis=(1, 2)) < 320)).all()
    np.testing.assert_array_equal(images, simulate_jet_images("W", 3, seed=5))
    speed = api.fastsim_speed(image_run, n=50, simulated=3, threads=1)
    assert speed["generated_jets_per_s"] > 0
    assert speed["simulated_jets_per_s_per_core"] > 0
    assert speed["speedup_same_cores"] == pytest.approx(
        speed["generated_jets_per_s"] / speed["simulated_jets_per_s_per_core"]
    )
